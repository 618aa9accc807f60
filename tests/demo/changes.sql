-- Changes the demo makes after the first sync: new orders with lines, payments and stock
-- movements in one transaction each, a cancellation, a refund, a price change, a deleted
-- customer without orders, and a restock.
BEGIN;
INSERT INTO orders VALUES (1001, 42, 'paid', 0, now());
INSERT INTO order_lines VALUES (1001, 1, 7, 2, 0), (1001, 2, 9, 1, 0);
UPDATE order_lines ol SET unit_price = p.price FROM products p WHERE p.id = ol.product_id AND ol.order_id = 1001;
UPDATE orders SET total = (SELECT sum(qty * unit_price) FROM order_lines WHERE order_id = 1001) WHERE id = 1001;
INSERT INTO inventory_movements (product_id, warehouse_id, delta, reason) VALUES (7, 1, -2, 'sale'), (9, 1, -1, 'sale');
INSERT INTO payments (order_id, card_fingerprint, country, amount, succeeded)
SELECT 1001, sha256('card42'::bytea), 'FR', total, true FROM orders WHERE id = 1001;
COMMIT;

BEGIN;
UPDATE orders SET status = 'cancelled' WHERE id = 17;
INSERT INTO inventory_movements (product_id, warehouse_id, delta, reason)
SELECT product_id, 1, qty, 'return' FROM order_lines WHERE order_id = 17;
COMMIT;

UPDATE orders SET status = 'refunded' WHERE id = 18;
UPDATE products SET price = price * 1.10 WHERE id <= 10;
INSERT INTO customers VALUES (501, 'new@example.com', 'DE', '{"tier": "basic"}');
DELETE FROM customers WHERE id = 501;
INSERT INTO inventory_movements (product_id, warehouse_id, delta, reason)
SELECT id, 2, 25, 'receipt' FROM products WHERE id <= 5;
