-- orders_per_minute: how many orders were placed, and for how much, minute by minute.
--
-- Columns: window_start, orders, revenue (sum of orders.total).
-- Window: 1-minute tumbling windows [window_start, window_start + 1 minute) on ordered_at, the
-- time the order was placed (not when it was loaded: a late order lands in its own minute).
-- Minutes are counted from a UTC origin, so the session time zone does not move them. Cancelled
-- and soft-deleted orders are left out; minutes without orders have no row.
CREATE OR REPLACE VIEW {schema}.orders_per_minute AS
SELECT time_bucket(INTERVAL '1 minute', ordered_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS window_start,
       count(*) AS orders,
       sum(total) AS revenue
FROM {schema}.orders
WHERE NOT _sluice_deleted
  AND status <> 'cancelled'
GROUP BY 1
