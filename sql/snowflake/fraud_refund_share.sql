-- fraud_refund_share: customers, and days, where refunds take more than 20% of revenue.
--
-- Columns: scope ('customer' or 'day'), customer_id (scope 'customer'), order_date (scope
-- 'day'), revenue, refunded (revenue of orders with status 'refunded'), refund_share.
-- Window: per customer over all time, and per UTC calendar day of ordered_at (event time: a
-- late order counts on the day it was placed). Revenue is the sum of orders.total of orders
-- not cancelled, refunded ones included; soft-deleted orders are left out. A row only where
-- refund_share is above 0.2.
CREATE OR REPLACE VIEW {schema}.fraud_refund_share AS
WITH live AS (
    SELECT customer_id,
           CAST(CONVERT_TIMEZONE('UTC', ordered_at) AS DATE) AS order_date,
           total,
           CASE WHEN status = 'refunded' THEN total ELSE 0 END AS refunded
    FROM {schema}.orders
    WHERE NOT _sluice_deleted
      AND status <> 'cancelled'
),
totals AS (
    SELECT CASE WHEN GROUPING(customer_id) = 0 THEN 'customer' ELSE 'day' END AS scope,
           customer_id,
           order_date,
           SUM(total) AS revenue,
           SUM(refunded) AS refunded
    FROM live
    GROUP BY GROUPING SETS ((customer_id), (order_date))
)
SELECT scope,
       customer_id,
       order_date,
       revenue,
       refunded,
       refunded / revenue AS refund_share
FROM totals
WHERE revenue > 0
  AND refunded > 0.2 * revenue
