-- product_revenue_1h_moving_avg: how much each product sells per minute, averaged over the
-- last hour.
--
-- Columns: product_id, minute_start (TIMESTAMP_TZ, UTC), revenue (that minute), revenue_1h
-- (the trailing hour), avg_revenue_per_minute_1h (revenue_1h / 60).
-- Window: per product, 1-minute buckets of order_lines revenue (qty * unit_price) by the
-- order's ordered_at (event time, minutes counted in UTC); for each minute with sales, the
-- moving window is that minute and the 59 before it. Minutes without sales count as zero in the
-- average (the sum is divided by 60) and have no row of their own. Lines of cancelled or
-- soft-deleted orders, and soft-deleted lines, are left out.
CREATE OR REPLACE VIEW {schema}.product_revenue_1h_moving_avg AS
WITH per_minute AS (
    SELECT l.product_id,
           DATE_TRUNC('MINUTE', CONVERT_TIMEZONE('UTC', o.ordered_at)) AS minute_start,
           SUM(l.qty * l.unit_price) AS revenue
    FROM {schema}.order_lines AS l
    JOIN {schema}.orders AS o
      ON o.id = l.order_id
    WHERE NOT l._sluice_deleted
      AND NOT o._sluice_deleted
      AND o.status <> 'cancelled'
    GROUP BY 1, 2
)
SELECT product_id,
       minute_start,
       revenue,
       SUM(revenue) OVER (
           PARTITION BY product_id
           ORDER BY minute_start
           RANGE BETWEEN INTERVAL '59 minutes' PRECEDING AND CURRENT ROW
       ) AS revenue_1h,
       SUM(revenue) OVER (
           PARTITION BY product_id
           ORDER BY minute_start
           RANGE BETWEEN INTERVAL '59 minutes' PRECEDING AND CURRENT ROW
       ) / 60 AS avg_revenue_per_minute_1h
FROM per_minute
