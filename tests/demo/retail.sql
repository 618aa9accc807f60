-- A small retail schema for the demo: products, warehouses, opening stock, movements,
-- customers, orders with lines, and payments. The opening stock was counted 15 minutes ago,
-- so that an order uploaded up to 10 minutes late still moves stock after the count.
SET client_min_messages = warning;

CREATE TABLE products (
    id         bigint PRIMARY KEY,
    sku        text NOT NULL UNIQUE,
    name       text NOT NULL,
    price      numeric(10,2) NOT NULL,
    reorder_at int NOT NULL DEFAULT 20,
    tags       text[]
);
CREATE TABLE warehouses (id int PRIMARY KEY, name text NOT NULL, channel text NOT NULL);
CREATE TABLE stock_snapshot (
    product_id   bigint REFERENCES products,
    warehouse_id int REFERENCES warehouses,
    on_hand      int NOT NULL,
    as_of        timestamptz NOT NULL,
    PRIMARY KEY (product_id, warehouse_id)
);
CREATE TABLE inventory_movements (
    id           bigserial PRIMARY KEY,
    product_id   bigint NOT NULL REFERENCES products,
    warehouse_id int NOT NULL REFERENCES warehouses,
    delta        int NOT NULL,
    reason       text NOT NULL CHECK (reason IN ('receipt', 'sale', 'return', 'transfer')),
    moved_at     timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL, country char(2) NOT NULL, profile jsonb);
CREATE TABLE orders (
    id          bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers,
    status      text NOT NULL,
    total       numeric(12,2) NOT NULL,
    ordered_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE order_lines (
    order_id   bigint REFERENCES orders ON DELETE CASCADE,
    line_no    int,
    product_id bigint NOT NULL REFERENCES products,
    qty        int NOT NULL,
    unit_price numeric(10,2) NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
CREATE TABLE payments (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id         bigint NOT NULL REFERENCES orders,
    card_fingerprint bytea NOT NULL,
    country          char(2) NOT NULL,
    amount           numeric(12,2) NOT NULL,
    succeeded        boolean NOT NULL,
    attempted_at     timestamptz NOT NULL DEFAULT now()
);

INSERT INTO warehouses VALUES (1, 'Berlin DC', 'online'), (2, 'Paris store', 'store'), (3, 'Lyon store', 'store');
INSERT INTO products
SELECT g, 'SKU-' || lpad(g::text, 5, '0'), 'Product ' || g, (5 + (g * 37) % 200) + 0.99,
       10 + g % 15, ARRAY[(ARRAY['garden', 'kitchen', 'tools', 'toys'])[1 + g % 4]]
FROM generate_series(1, 200) g;
INSERT INTO stock_snapshot
SELECT p.id, w.id, 20 + (p.id * w.id * 7) % 80, now() - interval '15 minutes'
FROM products p CROSS JOIN warehouses w;
INSERT INTO customers
SELECT g, 'customer' || g || '@example.com', (ARRAY['DE', 'FR', 'NL', 'US'])[1 + g % 4],
       jsonb_build_object('tier', (ARRAY['basic', 'gold'])[1 + g % 2], 'since', 2015 + g % 10)
FROM generate_series(1, 500) g;
INSERT INTO orders
SELECT g, 1 + (g * 13) % 500, 'paid', 0, now() - (g || ' minutes')::interval FROM generate_series(1, 1000) g;
INSERT INTO order_lines
SELECT o, l, 1 + (o * 7 + l * 31) % 200, 1 + (o + l) % 3, 0 FROM generate_series(1, 1000) o, generate_series(1, 3) l;
UPDATE order_lines ol SET unit_price = p.price FROM products p WHERE p.id = ol.product_id;
UPDATE orders o SET total = s.total
FROM (SELECT order_id, sum(qty * unit_price) AS total FROM order_lines GROUP BY order_id) s WHERE s.order_id = o.id;
INSERT INTO payments (order_id, card_fingerprint, country, amount, succeeded, attempted_at)
SELECT o.id, sha256(('card' || o.customer_id)::bytea), c.country, o.total, true, o.ordered_at
FROM orders o JOIN customers c ON c.id = o.customer_id;
INSERT INTO inventory_movements (product_id, warehouse_id, delta, reason, moved_at)
SELECT ol.product_id, 1 + ol.order_id::int % 3, -ol.qty, 'sale', o.ordered_at
FROM order_lines ol JOIN orders o ON o.id = ol.order_id;
