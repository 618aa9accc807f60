-- pipeline_freshness: how far behind the source each loaded table is.
--
-- Columns: table_name, last_commit_ts (the latest source commit time loaded into the table,
-- max(_sluice_commit_ts)), lag (seconds from last_commit_ts to the time of the query, with
-- microseconds: Snowflake has no interval values), pipeline, applied_lsn, applied_commit_ts,
-- position (the pipeline's change-log position), checkpoint_updated_at.
-- Window: none; CURRENT_TIMESTAMP() is the time of the query. Unlike the other views this one
-- counts soft-deleted rows: a delete is a loaded change, and leaving it out would make a table
-- look older than it is. The checkpoint columns come from _sluice_checkpoints (one row per
-- table and pipeline; NULL before the first load). A table nothing was loaded into has a NULL
-- last_commit_ts and lag. lag includes the time the source was idle: compare last_commit_ts
-- with applied_commit_ts to tell an idle source from a slow pipeline.
CREATE OR REPLACE VIEW {schema}.pipeline_freshness AS
WITH loaded AS (
    SELECT 'products' AS table_name, MAX(_sluice_commit_ts) AS last_commit_ts FROM {schema}.products
    UNION ALL
    SELECT 'warehouses', MAX(_sluice_commit_ts) FROM {schema}.warehouses
    UNION ALL
    SELECT 'stock_snapshot', MAX(_sluice_commit_ts) FROM {schema}.stock_snapshot
    UNION ALL
    SELECT 'inventory_movements', MAX(_sluice_commit_ts) FROM {schema}.inventory_movements
    UNION ALL
    SELECT 'customers', MAX(_sluice_commit_ts) FROM {schema}.customers
    UNION ALL
    SELECT 'orders', MAX(_sluice_commit_ts) FROM {schema}.orders
    UNION ALL
    SELECT 'order_lines', MAX(_sluice_commit_ts) FROM {schema}.order_lines
    UNION ALL
    SELECT 'payments', MAX(_sluice_commit_ts) FROM {schema}.payments
)
SELECT l.table_name,
       l.last_commit_ts,
       DATEDIFF(MICROSECOND, l.last_commit_ts, CURRENT_TIMESTAMP()) / 1000000 AS lag,
       c.pipeline,
       c.applied_lsn_text AS applied_lsn,
       c.applied_commit_ts,
       c.position,
       c.updated_at AS checkpoint_updated_at
FROM loaded AS l
LEFT JOIN {schema}._sluice_checkpoints AS c ON TRUE
