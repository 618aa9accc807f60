-- low_stock: which products must be reordered, per warehouse.
--
-- Columns: product_id, sku, name, warehouse_id, on_hand, reorder_at.
-- Window: none. A product is low where its stock on hand (the stock_on_hand view: opening
-- balance plus movements since, by event time) is below products.reorder_at; equal is not low.
-- Soft-deleted products are left out.
CREATE OR REPLACE VIEW {schema}.low_stock AS
SELECT s.product_id,
       p.sku,
       p.name,
       s.warehouse_id,
       s.on_hand,
       p.reorder_at
FROM {schema}.stock_on_hand AS s
JOIN {schema}.products AS p
  ON p.id = s.product_id
 AND NOT p._sluice_deleted
WHERE s.on_hand < p.reorder_at
