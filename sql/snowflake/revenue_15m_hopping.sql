-- revenue_15m_hopping: orders and revenue over the last 15 minutes, refreshed every 5 minutes.
--
-- Columns: window_start, window_end (TIMESTAMP_TZ, UTC), orders, revenue (sum of orders.total).
-- Window: 15-minute windows [window_start, window_end) starting every 5 minutes (from a UTC
-- origin), on ordered_at, the time the order was placed (not when it was loaded). Each order
-- falls into three windows: the one starting in its own 5-minute slot and the two before.
-- Cancelled and soft-deleted orders are left out; windows without orders have no row.
-- The 5-minute slot is the UTC minute rounded down to a multiple of 5 (TIME_SLICE would do the
-- same, but it takes only TIMESTAMP_NTZ and would return the windows without a time zone).
CREATE OR REPLACE VIEW {schema}.revenue_15m_hopping AS
WITH placed AS (
    SELECT DATE_TRUNC('MINUTE', CONVERT_TIMEZONE('UTC', ordered_at)) AS ordered_minute,
           total
    FROM {schema}.orders
    WHERE NOT _sluice_deleted
      AND status <> 'cancelled'
),
hops AS (
    SELECT DATEADD(MINUTE, -(MOD(MINUTE(p.ordered_minute), 5) + h.back_minutes), p.ordered_minute)
               AS window_start,
           p.total
    FROM placed AS p
    CROSS JOIN (VALUES (0), (5), (10)) AS h (back_minutes)
)
SELECT window_start,
       DATEADD(MINUTE, 15, window_start) AS window_end,
       COUNT(*) AS orders,
       SUM(total) AS revenue
FROM hops
GROUP BY window_start
