-- revenue_15m_hopping: orders and revenue over the last 15 minutes, refreshed every 5 minutes.
--
-- Columns: window_start, window_end, orders, revenue (sum of orders.total).
-- Window: 15-minute windows [window_start, window_end) starting every 5 minutes (from a UTC
-- origin), on ordered_at, the time the order was placed (not when it was loaded). Each order
-- falls into three windows: the one starting in its own 5-minute slot and the two before.
-- Cancelled and soft-deleted orders are left out; windows without orders have no row.
CREATE OR REPLACE VIEW {schema}.revenue_15m_hopping AS
WITH hops AS (
    SELECT time_bucket(INTERVAL '5 minutes', o.ordered_at, TIMESTAMPTZ '2000-01-01 00:00:00+00')
               - h.back AS window_start,
           o.total
    FROM {schema}.orders AS o
    CROSS JOIN (VALUES (INTERVAL '0 minutes'), (INTERVAL '5 minutes'), (INTERVAL '10 minutes'))
        AS h(back)
    WHERE NOT o._sluice_deleted
      AND o.status <> 'cancelled'
)
SELECT window_start,
       window_start + INTERVAL '15 minutes' AS window_end,
       count(*) AS orders,
       sum(total) AS revenue
FROM hops
GROUP BY window_start
