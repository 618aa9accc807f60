-- orders_per_minute: how many orders were placed, and for how much, minute by minute.
--
-- Columns: window_start (TIMESTAMP_TZ, UTC), orders, revenue (sum of orders.total).
-- Window: 1-minute tumbling windows [window_start, window_start + 1 minute) on ordered_at, the
-- time the order was placed (not when it was loaded: a late order lands in its own minute).
-- Minutes are counted in UTC (ordered_at is converted to UTC before it is truncated), so
-- neither the session time zone nor the offset a value was stored with moves them. Cancelled
-- and soft-deleted orders are left out; minutes without orders have no row.
CREATE OR REPLACE VIEW {schema}.orders_per_minute AS
SELECT DATE_TRUNC('MINUTE', CONVERT_TIMEZONE('UTC', ordered_at)) AS window_start,
       COUNT(*) AS orders,
       SUM(total) AS revenue
FROM {schema}.orders
WHERE NOT _sluice_deleted
  AND status <> 'cancelled'
GROUP BY 1
