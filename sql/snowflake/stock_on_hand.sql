-- stock_on_hand: how many units of each product each warehouse holds now.
--
-- Columns: product_id, warehouse_id, opening, moved, on_hand.
-- Window: none. The opening balance is the stock_snapshot row (counted at its as_of); every
-- inventory movement with moved_at after as_of is added, by the time the goods moved, not by
-- when the row was loaded, so a movement that arrives late still counts and one at or before
-- as_of (already in the count) never does. Soft-deleted snapshots and movements are left out.
CREATE OR REPLACE VIEW {schema}.stock_on_hand AS
SELECT s.product_id,
       s.warehouse_id,
       s.on_hand AS opening,
       CAST(COALESCE(SUM(m.delta), 0) AS NUMBER(38,0)) AS moved,
       s.on_hand + CAST(COALESCE(SUM(m.delta), 0) AS NUMBER(38,0)) AS on_hand
FROM {schema}.stock_snapshot AS s
LEFT JOIN {schema}.inventory_movements AS m
       ON m.product_id = s.product_id
      AND m.warehouse_id = s.warehouse_id
      AND m.moved_at > s.as_of
      AND NOT m._sluice_deleted
WHERE NOT s._sluice_deleted
GROUP BY s.product_id, s.warehouse_id, s.on_hand
