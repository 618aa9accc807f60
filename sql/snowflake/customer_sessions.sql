-- customer_sessions: visits of each customer, as runs of orders close together in time.
--
-- Columns: customer_id, session_start, session_end, orders.
-- Window: session windows on ordered_at (event time): an order placed at most 30 minutes after
-- the customer's previous order joins that order's session; a longer gap starts a new one. A
-- late order is placed by its ordered_at and can join, or bridge, sessions. Every order counts
-- (cancelled ones too: they are activity); soft-deleted orders are left out.
CREATE OR REPLACE VIEW {schema}.customer_sessions AS
WITH ordered AS (
    SELECT customer_id,
           ordered_at,
           LAG(ordered_at) OVER (PARTITION BY customer_id ORDER BY ordered_at) AS previous_at
    FROM {schema}.orders
    WHERE NOT _sluice_deleted
),
numbered AS (
    SELECT customer_id,
           ordered_at,
           SUM(CASE WHEN previous_at IS NULL OR ordered_at > DATEADD(MINUTE, 30, previous_at)
                    THEN 1 ELSE 0 END)
               OVER (PARTITION BY customer_id ORDER BY ordered_at
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS session_no
    FROM ordered
)
SELECT customer_id,
       MIN(ordered_at) AS session_start,
       MAX(ordered_at) AS session_end,
       COUNT(*) AS orders
FROM numbered
GROUP BY customer_id, session_no
