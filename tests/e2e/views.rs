//! `sluice views install` on a DuckDB and a PostgreSQL target: one fixture of retail rows
//! inserted straight into target-shaped tables (source columns plus the `_sluice_*` metadata),
//! the views installed by the real binary, every view queried and compared with values worked
//! out by hand from the fixture (the arithmetic is in the comments next to them).
//!
//! The fixture holds a late order (placed at 10:02:30, committed after orders placed at 10:20
//! and 10:40), a soft-deleted order, refunds, orders exactly at 10:00:00 and at 10:00:59.999999,
//! a card used from DE and FR 9:59 apart, and stock movements before, at and after the
//! snapshot's `as_of`. Every time is UTC on 2024-05-01 unless it says otherwise.

use std::path::Path;
use std::process::{Command, Output};

use sluice_testkit::PgCluster;
use sluice_tests::{sluice_bin, tempfile_dir};

/// The target tables and their rows. `{s}` is the quoted schema; `{char2}`, `{json}`, `{blob}`
/// are the engine's types for `char(2)`, `jsonb` and `bytea`; `{card_x}` a card fingerprint.
const FIXTURE: &str = r#"
CREATE SCHEMA {s};
CREATE TABLE {s}.products (id bigint PRIMARY KEY, sku text, name text, price numeric(10,2), reorder_at int, tags text[], _sluice_lsn bigint, _sluice_commit_ts timestamptz, _sluice_deleted boolean, _sluice_synced_at timestamptz);
CREATE TABLE {s}.warehouses (id int PRIMARY KEY, name text, channel text, _sluice_lsn bigint, _sluice_commit_ts timestamptz, _sluice_deleted boolean, _sluice_synced_at timestamptz);
CREATE TABLE {s}.stock_snapshot (product_id bigint, warehouse_id int, on_hand int, as_of timestamptz, _sluice_lsn bigint, _sluice_commit_ts timestamptz, _sluice_deleted boolean, _sluice_synced_at timestamptz, PRIMARY KEY (product_id, warehouse_id));
CREATE TABLE {s}.inventory_movements (id bigint PRIMARY KEY, product_id bigint, warehouse_id int, delta int, reason text, moved_at timestamptz, _sluice_lsn bigint, _sluice_commit_ts timestamptz, _sluice_deleted boolean, _sluice_synced_at timestamptz);
CREATE TABLE {s}.customers (id bigint PRIMARY KEY, email text, country {char2}, profile {json}, _sluice_lsn bigint, _sluice_commit_ts timestamptz, _sluice_deleted boolean, _sluice_synced_at timestamptz);
CREATE TABLE {s}.orders (id bigint PRIMARY KEY, customer_id bigint, status text, total numeric(12,2), ordered_at timestamptz, _sluice_lsn bigint, _sluice_commit_ts timestamptz, _sluice_deleted boolean, _sluice_synced_at timestamptz);
CREATE TABLE {s}.order_lines (order_id bigint, line_no int, product_id bigint, qty int, unit_price numeric(10,2), _sluice_lsn bigint, _sluice_commit_ts timestamptz, _sluice_deleted boolean, _sluice_synced_at timestamptz, PRIMARY KEY (order_id, line_no));
CREATE TABLE {s}.payments (id uuid PRIMARY KEY, order_id bigint, card_fingerprint {blob}, country {char2}, amount numeric(12,2), succeeded boolean, attempted_at timestamptz, _sluice_lsn bigint, _sluice_commit_ts timestamptz, _sluice_deleted boolean, _sluice_synced_at timestamptz);
CREATE TABLE {s}._sluice_checkpoints (pipeline text PRIMARY KEY, position text NOT NULL, applied_lsn bigint NOT NULL, applied_lsn_text text NOT NULL, applied_commit_ts timestamptz NOT NULL, updated_at timestamptz NOT NULL);

-- Product 3 is soft-deleted (it never shows in low_stock).
INSERT INTO {s}.products VALUES
 (1, 'SKU-1', 'Trowel', 10.00, 20, NULL, 10, '2024-05-01 09:00:00+00', false, '2024-05-01 12:00:00+00'),
 (2, 'SKU-2', 'Kettle', 25.00, 5, NULL, 10, '2024-05-01 09:00:00+00', false, '2024-05-01 12:00:00+00'),
 (3, 'SKU-3', 'Robot', 40.00, 10, NULL, 11, '2024-05-01 09:10:00+00', true, '2024-05-01 12:00:00+00');
INSERT INTO {s}.warehouses VALUES
 (1, 'Berlin DC', 'online', 10, '2024-05-01 09:00:00+00', false, '2024-05-01 12:00:00+00'),
 (2, 'Paris store', 'store', 10, '2024-05-01 09:00:00+00', false, '2024-05-01 12:00:00+00');
-- Opening balances counted at 09:00; (2, 2) is soft-deleted.
INSERT INTO {s}.stock_snapshot VALUES
 (1, 1, 30, '2024-05-01 09:00:00+00', 10, '2024-05-01 09:00:00+00', false, '2024-05-01 12:00:00+00'),
 (1, 2, 8, '2024-05-01 09:00:00+00', 10, '2024-05-01 09:00:00+00', false, '2024-05-01 12:00:00+00'),
 (2, 1, 6, '2024-05-01 09:00:00+00', 10, '2024-05-01 09:00:00+00', false, '2024-05-01 12:00:00+00'),
 (2, 2, 99, '2024-05-01 09:00:00+00', 12, '2024-05-01 09:20:00+00', true, '2024-05-01 12:00:00+00'),
 (3, 1, 1, '2024-05-01 09:00:00+00', 10, '2024-05-01 09:00:00+00', false, '2024-05-01 12:00:00+00');
INSERT INTO {s}.inventory_movements VALUES
 (1, 1, 1, -5, 'sale', '2024-05-01 08:30:00+00', 5, '2024-05-01 08:30:00+00', false, '2024-05-01 12:00:00+00'),
 (2, 1, 1, -8, 'sale', '2024-05-01 09:15:00+00', 20, '2024-05-01 09:15:00+00', false, '2024-05-01 12:00:00+00'),
 (3, 1, 1, 3, 'return', '2024-05-01 09:00:00+00', 10, '2024-05-01 09:00:00+00', false, '2024-05-01 12:00:00+00'),
 (4, 1, 2, -2, 'sale', '2024-05-01 10:00:00+00', 30, '2024-05-01 10:00:00+00', false, '2024-05-01 12:00:00+00'),
 (5, 2, 1, 10, 'receipt', '2024-05-01 08:00:00+00', 4, '2024-05-01 08:00:00+00', false, '2024-05-01 12:00:00+00'),
 (6, 2, 1, -1, 'sale', '2024-05-01 09:30:00+00', 25, '2024-05-01 09:30:00+00', false, '2024-05-01 12:00:00+00'),
 (7, 1, 1, -100, 'transfer', '2024-05-01 09:45:00+00', 31, '2024-05-01 10:01:00+00', true, '2024-05-01 12:00:00+00');
INSERT INTO {s}.customers VALUES
 (1, 'a@example.com', 'DE', NULL, 10, '2024-05-01 09:00:00+00', false, '2024-05-01 12:00:00+00'),
 (2, 'b@example.com', 'FR', NULL, 10, '2024-05-01 09:00:00+00', false, '2024-05-01 12:00:00+00'),
 (3, 'c@example.com', 'NL', NULL, 10, '2024-05-01 09:05:00+00', false, '2024-05-01 12:00:00+00');
-- Order 7 is late: placed at 10:02:30, committed and loaded after orders placed at 10:20 and
-- 10:40. Order 5 is soft-deleted (its delete is the newest commit of the table).
INSERT INTO {s}.orders VALUES
 (1, 1, 'paid', 10.00, '2024-05-01 10:00:00+00', 40, '2024-05-01 10:00:00+00', false, '2024-05-01 12:00:00+00'),
 (2, 1, 'paid', 20.00, '2024-05-01 10:00:59.999999+00', 41, '2024-05-01 10:00:59.999999+00', false, '2024-05-01 12:00:00+00'),
 (3, 2, 'paid', 30.00, '2024-05-01 10:01:00+00', 42, '2024-05-01 10:01:00+00', false, '2024-05-01 12:00:00+00'),
 (4, 2, 'cancelled', 99.00, '2024-05-01 10:01:10+00', 43, '2024-05-01 10:01:10+00', false, '2024-05-01 12:00:00+00'),
 (5, 3, 'paid', 40.00, '2024-05-01 10:03:00+00', 90, '2024-05-01 11:30:00+00', true, '2024-05-01 12:00:00+00'),
 (6, 1, 'refunded', 50.00, '2024-05-01 10:20:00+00', 60, '2024-05-01 10:35:00+00', false, '2024-05-01 12:00:00+00'),
 (7, 3, 'paid', 15.00, '2024-05-01 10:02:30+00', 70, '2024-05-01 10:45:00+00', false, '2024-05-01 12:00:00+00'),
 (8, 2, 'paid', 100.00, '2024-05-01 10:40:00+00', 65, '2024-05-01 10:40:00+00', false, '2024-05-01 12:00:00+00'),
 (9, 1, 'paid', 5.00, '2024-05-01 10:50:00+00', 75, '2024-05-01 10:50:00+00', false, '2024-05-01 12:00:00+00'),
 (10, 1, 'paid', 7.00, '2024-05-01 11:20:00.000001+00', 80, '2024-05-01 11:20:00.000001+00', false, '2024-05-01 12:00:00+00'),
 (11, 2, 'refunded', 10.00, '2024-05-02 00:00:00+00', 95, '2024-05-02 00:00:00+00', false, '2024-05-02 00:01:00+00');
INSERT INTO {s}.order_lines VALUES
 (1, 1, 1, 1, 10.00, 40, '2024-05-01 10:00:00+00', false, '2024-05-01 12:00:00+00'),
 (2, 1, 1, 2, 10.00, 41, '2024-05-01 10:00:59.999999+00', false, '2024-05-01 12:00:00+00'),
 (3, 1, 1, 3, 10.00, 42, '2024-05-01 10:01:00+00', false, '2024-05-01 12:00:00+00'),
 (4, 1, 2, 4, 24.75, 43, '2024-05-01 10:01:10+00', false, '2024-05-01 12:00:00+00'),
 (5, 1, 1, 4, 10.00, 50, '2024-05-01 10:03:00+00', false, '2024-05-01 12:00:00+00'),
 (6, 1, 2, 2, 25.00, 60, '2024-05-01 10:35:00+00', false, '2024-05-01 12:00:00+00'),
 (7, 1, 1, 1, 10.00, 70, '2024-05-01 10:45:00+00', false, '2024-05-01 12:00:00+00'),
 (7, 2, 2, 1, 5.00, 70, '2024-05-01 10:45:00+00', false, '2024-05-01 12:00:00+00'),
 (7, 3, 2, 1, 25.00, 71, '2024-05-01 10:46:00+00', true, '2024-05-01 12:00:00+00'),
 (8, 1, 2, 4, 25.00, 65, '2024-05-01 10:40:00+00', false, '2024-05-01 12:00:00+00'),
 (9, 1, 1, 1, 5.00, 75, '2024-05-01 10:50:00+00', false, '2024-05-01 12:00:00+00'),
 (10, 1, 1, 1, 7.00, 80, '2024-05-01 11:20:00.000001+00', false, '2024-05-01 12:00:00+00'),
 (11, 1, 1, 1, 10.00, 95, '2024-05-02 00:00:00+00', false, '2024-05-02 00:01:00+00');
-- Card a: DE then FR 9:59 later. Card b: DE then FR 20 minutes later (the NL attempt in
-- between is soft-deleted). Card c: 6 attempts from 10:40:00 to 10:45:00. Card d: 6 attempts
-- from 11:00:00 to 11:05:00.000001.
INSERT INTO {s}.payments VALUES
 ('00000000-0000-0000-0000-000000000001', 1, {card_a}, 'DE', 10.00, true, '2024-05-01 10:00:00+00', 40, '2024-05-01 10:00:00+00', false, '2024-05-01 12:00:00+00'),
 ('00000000-0000-0000-0000-000000000002', 3, {card_a}, 'FR', 30.00, true, '2024-05-01 10:09:59+00', 44, '2024-05-01 10:09:59+00', false, '2024-05-01 12:00:00+00'),
 ('00000000-0000-0000-0000-000000000003', 6, {card_b}, 'DE', 50.00, true, '2024-05-01 10:20:00+00', 60, '2024-05-01 10:20:00+00', false, '2024-05-01 12:00:00+00'),
 ('00000000-0000-0000-0000-000000000004', 6, {card_b}, 'NL', 50.00, false, '2024-05-01 10:21:00+00', 61, '2024-05-01 10:21:00+00', true, '2024-05-01 12:00:00+00'),
 ('00000000-0000-0000-0000-000000000005', 8, {card_b}, 'FR', 100.00, true, '2024-05-01 10:40:00+00', 65, '2024-05-01 10:40:00+00', false, '2024-05-01 12:00:00+00'),
 ('00000000-0000-0000-0000-000000000011', 8, {card_c}, 'NL', 1.00, false, '2024-05-01 10:40:00+00', 66, '2024-05-01 10:40:00+00', false, '2024-05-01 12:00:00+00'),
 ('00000000-0000-0000-0000-000000000012', 8, {card_c}, 'NL', 1.00, false, '2024-05-01 10:40:30+00', 66, '2024-05-01 10:40:30+00', false, '2024-05-01 12:00:00+00'),
 ('00000000-0000-0000-0000-000000000013', 8, {card_c}, 'NL', 1.00, false, '2024-05-01 10:41:00+00', 66, '2024-05-01 10:41:00+00', false, '2024-05-01 12:00:00+00'),
 ('00000000-0000-0000-0000-000000000014', 8, {card_c}, 'NL', 1.00, false, '2024-05-01 10:42:00+00', 66, '2024-05-01 10:42:00+00', false, '2024-05-01 12:00:00+00'),
 ('00000000-0000-0000-0000-000000000015', 8, {card_c}, 'NL', 1.00, false, '2024-05-01 10:43:00+00', 66, '2024-05-01 10:43:00+00', false, '2024-05-01 12:00:00+00'),
 ('00000000-0000-0000-0000-000000000016', 8, {card_c}, 'NL', 1.00, true, '2024-05-01 10:45:00+00', 67, '2024-05-01 10:45:00+00', false, '2024-05-01 12:00:00+00'),
 ('00000000-0000-0000-0000-000000000021', 10, {card_d}, 'DE', 1.00, false, '2024-05-01 11:00:00+00', 85, '2024-05-01 11:00:00+00', false, '2024-05-01 12:00:00+00'),
 ('00000000-0000-0000-0000-000000000022', 10, {card_d}, 'DE', 1.00, false, '2024-05-01 11:01:00+00', 85, '2024-05-01 11:01:00+00', false, '2024-05-01 12:00:00+00'),
 ('00000000-0000-0000-0000-000000000023', 10, {card_d}, 'DE', 1.00, false, '2024-05-01 11:02:00+00', 85, '2024-05-01 11:02:00+00', false, '2024-05-01 12:00:00+00'),
 ('00000000-0000-0000-0000-000000000024', 10, {card_d}, 'DE', 1.00, false, '2024-05-01 11:03:00+00', 85, '2024-05-01 11:03:00+00', false, '2024-05-01 12:00:00+00'),
 ('00000000-0000-0000-0000-000000000025', 10, {card_d}, 'DE', 1.00, false, '2024-05-01 11:04:00+00', 85, '2024-05-01 11:04:00+00', false, '2024-05-01 12:00:00+00'),
 ('00000000-0000-0000-0000-000000000026', 10, {card_d}, 'DE', 7.00, true, '2024-05-01 11:05:00.000001+00', 86, '2024-05-01 11:05:00.000001+00', false, '2024-05-01 12:00:00+00');
INSERT INTO {s}._sluice_checkpoints VALUES
 ('default', '{"segment":0,"offset":4096}', 95, '0/5F', '2024-05-02 00:00:00+00', '2024-05-02 00:01:00+00');
"#;

/// A target engine: how the fixture is spelled and how a view's columns are rendered as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    DuckDb,
    Postgres,
}

/// How a view column is rendered so both engines print the same text.
#[derive(Debug, Clone, Copy)]
enum Col {
    /// Integers, text, dates: their text as is.
    Text,
    /// timestamptz: UTC, with microseconds.
    Ts,
    /// Money (sums of numeric(12,2)): two decimals.
    Money,
    /// Shares and averages: rounded to four decimals.
    Ratio,
    /// bytea: lower-case hex.
    Hex,
    /// An interval: whether it is longer than 700 days (the fixture is from May 2024).
    OverAYear,
}

impl Engine {
    fn fixture(self, schema: &str) -> String {
        let (char2, json, blob) = match self {
            Engine::DuckDb => ("VARCHAR", "JSON", "BLOB"),
            Engine::Postgres => ("char(2)", "jsonb", "bytea"),
        };
        let card = |hex: &str| match self {
            Engine::DuckDb => format!("from_hex('{hex}')"),
            Engine::Postgres => format!("decode('{hex}', 'hex')"),
        };
        FIXTURE
            .replace("{s}", schema)
            .replace("{char2}", char2)
            .replace("{json}", json)
            .replace("{blob}", blob)
            .replace("{card_a}", &card("aa01"))
            .replace("{card_b}", &card("bb02"))
            .replace("{card_c}", &card("cc03"))
            .replace("{card_d}", &card("dd04"))
    }

    fn render(self, column: &str, col: Col) -> String {
        let expr = match (col, self) {
            (Col::Text, _) => column.to_owned(),
            (Col::Ts, Engine::DuckDb) => {
                format!("strftime(timezone('UTC', {column}), '%Y-%m-%d %H:%M:%S.%f')")
            }
            (Col::Ts, Engine::Postgres) => {
                format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')")
            }
            (Col::Money, _) => format!("CAST({column} AS DECIMAL(18,2))"),
            (Col::Ratio, _) => format!("CAST(round({column}, 4) AS DECIMAL(18,4))"),
            (Col::Hex, Engine::DuckDb) => format!("lower(hex({column}))"),
            (Col::Hex, Engine::Postgres) => format!("encode({column}, 'hex')"),
            (Col::OverAYear, _) => format!("{column} > INTERVAL '700 days'"),
        };
        format!("CAST({expr} AS VARCHAR)")
    }

    /// `SELECT` of a view's columns, rendered, in the order `order_by` gives.
    fn select(self, schema: &str, view: &str, columns: &[(&str, Col)], order_by: &str) -> String {
        let list = columns
            .iter()
            .map(|(c, col)| self.render(c, *col))
            .collect::<Vec<_>>()
            .join(", ");
        format!("SELECT {list} FROM {schema}.{view} ORDER BY {order_by}")
    }
}

/// One view, the columns compared, and the rows expected from the fixture (NULL as "NULL").
struct Expectation {
    view: &'static str,
    columns: &'static [(&'static str, Col)],
    order_by: &'static str,
    rows: &'static [&'static [&'static str]],
}

const EXPECTED: &[Expectation] = &[
    Expectation {
        view: "stock_on_hand",
        columns: &[
            ("product_id", Col::Text),
            ("warehouse_id", Col::Text),
            ("opening", Col::Text),
            ("moved", Col::Text),
            ("on_hand", Col::Text),
        ],
        order_by: "product_id, warehouse_id",
        rows: &[
            // (1, 1): 30 at 09:00; -5 at 08:30 and +3 at 09:00 are already in the count, the
            // -100 transfer is soft-deleted: only -8 at 09:15 moves it. 30 - 8 = 22.
            &["1", "1", "30", "-8", "22"],
            // (1, 2): 8 - 2 (10:00) = 6.
            &["1", "2", "8", "-2", "6"],
            // (2, 1): +10 at 08:00 is before as_of; 6 - 1 (09:30) = 5.
            &["2", "1", "6", "-1", "5"],
            // (2, 2) is soft-deleted; (3, 1) has no movement: 1 + 0.
            &["3", "1", "1", "0", "1"],
        ],
    },
    Expectation {
        view: "low_stock",
        columns: &[
            ("product_id", Col::Text),
            ("sku", Col::Text),
            ("warehouse_id", Col::Text),
            ("on_hand", Col::Text),
            ("reorder_at", Col::Text),
        ],
        order_by: "product_id, warehouse_id",
        // (1, 1): 22 >= 20; (1, 2): 6 < 20, low; (2, 1): 5 = 5 is not below; (3, 1): 1 < 10
        // but product 3 is soft-deleted.
        rows: &[&["1", "SKU-1", "2", "6", "20"]],
    },
    Expectation {
        view: "orders_per_minute",
        columns: &[
            ("window_start", Col::Ts),
            ("orders", Col::Text),
            ("revenue", Col::Money),
        ],
        order_by: "window_start",
        rows: &[
            // Orders 1 (10:00:00, 10.00) and 2 (10:00:59.999999, 20.00): 10 + 20.
            &["2024-05-01 10:00:00.000000", "2", "30.00"],
            // Order 3 at 10:01:00 exactly; order 4 (10:01:10) is cancelled.
            &["2024-05-01 10:01:00.000000", "1", "30.00"],
            // The late order 7 lands in its own minute. Order 5 (10:03) is soft-deleted.
            &["2024-05-01 10:02:00.000000", "1", "15.00"],
            // Order 6 is refunded, still an order of that minute.
            &["2024-05-01 10:20:00.000000", "1", "50.00"],
            &["2024-05-01 10:40:00.000000", "1", "100.00"],
            &["2024-05-01 10:50:00.000000", "1", "5.00"],
            &["2024-05-01 11:20:00.000000", "1", "7.00"],
            &["2024-05-02 00:00:00.000000", "1", "10.00"],
        ],
    },
    Expectation {
        view: "revenue_15m_hopping",
        columns: &[
            ("window_start", Col::Ts),
            ("window_end", Col::Ts),
            ("orders", Col::Text),
            ("revenue", Col::Money),
        ],
        order_by: "window_start",
        rows: &[
            // Orders 1, 2, 3, 7 (10:00-10:02:30) are in the windows starting 09:50, 09:55,
            // 10:00: 10 + 20 + 30 + 15 = 75.
            &[
                "2024-05-01 09:50:00.000000",
                "2024-05-01 10:05:00.000000",
                "4",
                "75.00",
            ],
            &[
                "2024-05-01 09:55:00.000000",
                "2024-05-01 10:10:00.000000",
                "4",
                "75.00",
            ],
            &[
                "2024-05-01 10:00:00.000000",
                "2024-05-01 10:15:00.000000",
                "4",
                "75.00",
            ],
            // Order 6 (10:20, 50).
            &[
                "2024-05-01 10:10:00.000000",
                "2024-05-01 10:25:00.000000",
                "1",
                "50.00",
            ],
            &[
                "2024-05-01 10:15:00.000000",
                "2024-05-01 10:30:00.000000",
                "1",
                "50.00",
            ],
            &[
                "2024-05-01 10:20:00.000000",
                "2024-05-01 10:35:00.000000",
                "1",
                "50.00",
            ],
            // Order 8 (10:40, 100); order 9 (10:50, 5) is not in [10:35, 10:50).
            &[
                "2024-05-01 10:30:00.000000",
                "2024-05-01 10:45:00.000000",
                "1",
                "100.00",
            ],
            &[
                "2024-05-01 10:35:00.000000",
                "2024-05-01 10:50:00.000000",
                "1",
                "100.00",
            ],
            // 100 + 5.
            &[
                "2024-05-01 10:40:00.000000",
                "2024-05-01 10:55:00.000000",
                "2",
                "105.00",
            ],
            &[
                "2024-05-01 10:45:00.000000",
                "2024-05-01 11:00:00.000000",
                "1",
                "5.00",
            ],
            &[
                "2024-05-01 10:50:00.000000",
                "2024-05-01 11:05:00.000000",
                "1",
                "5.00",
            ],
            // Order 10 (11:20:00.000001, 7).
            &[
                "2024-05-01 11:10:00.000000",
                "2024-05-01 11:25:00.000000",
                "1",
                "7.00",
            ],
            &[
                "2024-05-01 11:15:00.000000",
                "2024-05-01 11:30:00.000000",
                "1",
                "7.00",
            ],
            &[
                "2024-05-01 11:20:00.000000",
                "2024-05-01 11:35:00.000000",
                "1",
                "7.00",
            ],
            // Order 11 (May 2, 00:00, 10).
            &[
                "2024-05-01 23:50:00.000000",
                "2024-05-02 00:05:00.000000",
                "1",
                "10.00",
            ],
            &[
                "2024-05-01 23:55:00.000000",
                "2024-05-02 00:10:00.000000",
                "1",
                "10.00",
            ],
            &[
                "2024-05-02 00:00:00.000000",
                "2024-05-02 00:15:00.000000",
                "1",
                "10.00",
            ],
        ],
    },
    Expectation {
        view: "product_revenue_1h_moving_avg",
        columns: &[
            ("product_id", Col::Text),
            ("minute_start", Col::Ts),
            ("revenue", Col::Money),
            ("revenue_1h", Col::Money),
            ("avg_revenue_per_minute_1h", Col::Ratio),
        ],
        order_by: "product_id, minute_start",
        rows: &[
            // Product 1: orders 1 (1 x 10) + 2 (2 x 10) at 10:00 = 30; 30 / 60 = 0.5.
            &[
                "1",
                "2024-05-01 10:00:00.000000",
                "30.00",
                "30.00",
                "0.5000",
            ],
            // Order 3 (3 x 10) = 30; 30 + 30 = 60; 60 / 60 = 1.
            &[
                "1",
                "2024-05-01 10:01:00.000000",
                "30.00",
                "60.00",
                "1.0000",
            ],
            // Late order 7 line 1 (1 x 10); 60 + 10 = 70; 70 / 60 = 1.16666...
            // (order 4 is cancelled, order 5 soft-deleted).
            &[
                "1",
                "2024-05-01 10:02:00.000000",
                "10.00",
                "70.00",
                "1.1667",
            ],
            // Order 9 (1 x 5); 10:00-10:02 are within 59 minutes: 70 + 5 = 75; 75 / 60 = 1.25.
            &["1", "2024-05-01 10:50:00.000000", "5.00", "75.00", "1.2500"],
            // Order 10 (1 x 7); only 10:50 (5) is within [10:21, 11:20]: 5 + 7 = 12; 0.2.
            &["1", "2024-05-01 11:20:00.000000", "7.00", "12.00", "0.2000"],
            // Order 11 (1 x 10); 10 / 60 = 0.1666...
            &[
                "1",
                "2024-05-02 00:00:00.000000",
                "10.00",
                "10.00",
                "0.1667",
            ],
            // Product 2: order 7 line 2 (1 x 5; line 3 is soft-deleted); 5 / 60 = 0.08333...
            &["2", "2024-05-01 10:02:00.000000", "5.00", "5.00", "0.0833"],
            // Order 6 (2 x 25) = 50; 5 + 50 = 55; 55 / 60 = 0.91666...
            &[
                "2",
                "2024-05-01 10:20:00.000000",
                "50.00",
                "55.00",
                "0.9167",
            ],
            // Order 8 (4 x 25) = 100; 55 + 100 = 155; 155 / 60 = 2.58333...
            &[
                "2",
                "2024-05-01 10:40:00.000000",
                "100.00",
                "155.00",
                "2.5833",
            ],
        ],
    },
    Expectation {
        view: "customer_sessions",
        columns: &[
            ("customer_id", Col::Text),
            ("session_start", Col::Ts),
            ("session_end", Col::Ts),
            ("orders", Col::Text),
        ],
        order_by: "customer_id, session_start",
        rows: &[
            // Customer 1: 10:00:00, 10:00:59.999999, 10:20 (19 minutes later), 10:50 (30
            // minutes exactly: same session); 11:20:00.000001 is 30 minutes and 1 us later.
            &[
                "1",
                "2024-05-01 10:00:00.000000",
                "2024-05-01 10:50:00.000000",
                "4",
            ],
            &[
                "1",
                "2024-05-01 11:20:00.000001",
                "2024-05-01 11:20:00.000001",
                "1",
            ],
            // Customer 2: 10:01:00 and the cancelled 10:01:10; 10:40 (38m50s later); May 2.
            &[
                "2",
                "2024-05-01 10:01:00.000000",
                "2024-05-01 10:01:10.000000",
                "2",
            ],
            &[
                "2",
                "2024-05-01 10:40:00.000000",
                "2024-05-01 10:40:00.000000",
                "1",
            ],
            &[
                "2",
                "2024-05-02 00:00:00.000000",
                "2024-05-02 00:00:00.000000",
                "1",
            ],
            // Customer 3: the late order 7; order 5 is soft-deleted.
            &[
                "3",
                "2024-05-01 10:02:30.000000",
                "2024-05-01 10:02:30.000000",
                "1",
            ],
        ],
    },
    Expectation {
        view: "fraud_card_countries",
        columns: &[
            ("card_fingerprint", Col::Hex),
            ("first_country", Col::Text),
            ("first_at", Col::Ts),
            ("second_country", Col::Text),
            ("second_at", Col::Ts),
        ],
        order_by: "first_at",
        // Card a: DE at 10:00:00, FR at 10:09:59 (9m59s). Card b: DE 10:20 and FR 10:40 are
        // 20 minutes apart, its NL attempt at 10:21 is soft-deleted.
        rows: &[&[
            "aa01",
            "DE",
            "2024-05-01 10:00:00.000000",
            "FR",
            "2024-05-01 10:09:59.000000",
        ]],
    },
    Expectation {
        view: "fraud_card_velocity",
        columns: &[
            ("card_fingerprint", Col::Hex),
            ("window_start", Col::Ts),
            ("window_end", Col::Ts),
            ("attempts", Col::Text),
        ],
        order_by: "window_end",
        // Card c: 10:40:00, 10:40:30, 10:41, 10:42, 10:43, 10:45:00: 6 within [10:40, 10:45].
        // Card d: at 11:05:00.000001 the window starts at 11:00:00.000001, so 5, not 6.
        rows: &[&[
            "cc03",
            "2024-05-01 10:40:00.000000",
            "2024-05-01 10:45:00.000000",
            "6",
        ]],
    },
    Expectation {
        view: "fraud_refund_share",
        columns: &[
            ("scope", Col::Text),
            ("customer_id", Col::Text),
            ("order_date", Col::Text),
            ("revenue", Col::Money),
            ("refunded", Col::Money),
            ("refund_share", Col::Ratio),
        ],
        order_by: "scope, customer_id, order_date",
        rows: &[
            // Customer 1: 10 + 20 + 50 (refunded) + 5 + 7 = 92; 50 / 92 = 0.54347...
            // (customer 2: 30 + 100 + 10 refunded = 140, 10 / 140 = 0.07; customer 3: none).
            &["customer", "1", "NULL", "92.00", "50.00", "0.5435"],
            // May 1: 10 + 20 + 30 + 50 + 15 + 100 + 5 + 7 = 237 (order 4 cancelled, order 5
            // soft-deleted); 50 / 237 = 0.21097...
            &["day", "NULL", "2024-05-01", "237.00", "50.00", "0.2110"],
            // May 2: order 11, refunded: 10 / 10.
            &["day", "NULL", "2024-05-02", "10.00", "10.00", "1.0000"],
        ],
    },
    Expectation {
        view: "pipeline_freshness",
        columns: &[
            ("table_name", Col::Text),
            ("last_commit_ts", Col::Ts),
            ("lag", Col::OverAYear),
            ("pipeline", Col::Text),
            ("applied_lsn", Col::Text),
            ("applied_commit_ts", Col::Ts),
        ],
        order_by: "table_name",
        // max(_sluice_commit_ts) per table, soft-deleted rows included.
        rows: &[
            &[
                "customers",
                "2024-05-01 09:05:00.000000",
                "true",
                "default",
                "0/5F",
                "2024-05-02 00:00:00.000000",
            ],
            // The deleted transfer was committed at 10:01.
            &[
                "inventory_movements",
                "2024-05-01 10:01:00.000000",
                "true",
                "default",
                "0/5F",
                "2024-05-02 00:00:00.000000",
            ],
            &[
                "order_lines",
                "2024-05-02 00:00:00.000000",
                "true",
                "default",
                "0/5F",
                "2024-05-02 00:00:00.000000",
            ],
            &[
                "orders",
                "2024-05-02 00:00:00.000000",
                "true",
                "default",
                "0/5F",
                "2024-05-02 00:00:00.000000",
            ],
            &[
                "payments",
                "2024-05-01 11:05:00.000001",
                "true",
                "default",
                "0/5F",
                "2024-05-02 00:00:00.000000",
            ],
            // Product 3's delete at 09:10.
            &[
                "products",
                "2024-05-01 09:10:00.000000",
                "true",
                "default",
                "0/5F",
                "2024-05-02 00:00:00.000000",
            ],
            // The (2, 2) snapshot's delete at 09:20.
            &[
                "stock_snapshot",
                "2024-05-01 09:20:00.000000",
                "true",
                "default",
                "0/5F",
                "2024-05-02 00:00:00.000000",
            ],
            &[
                "warehouses",
                "2024-05-01 09:00:00.000000",
                "true",
                "default",
                "0/5F",
                "2024-05-02 00:00:00.000000",
            ],
        ],
    },
];

/// Runs `sluice views install -c config`.
fn install(config: &Path) -> Output {
    Command::new(sluice_bin())
        .args(["views", "install", "-c"])
        .arg(config)
        .output()
        .expect("run sluice")
}

fn assert_installed(out: &Output, schema: &str, dialect: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sluice views install failed ({:?}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for e in EXPECTED {
        assert!(
            stdout.contains(&format!("installed view {schema}.{}\n", e.view)),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains(&format!(
            "10 KPI views installed in schema \"{schema}\" ({dialect} dialect)"
        )),
        "{stdout}"
    );
}

/// A config whose `[source]` points nowhere: `views install` must not contact it.
fn write_config(dir: &Path, target: &str) -> std::path::PathBuf {
    let config = dir.join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nurl = \"postgres://nobody@127.0.0.1:9/nowhere\"\ntables = [\"public.*\"]\n\n\
             [log]\nkind = \"local\"\npath = \"{log}\"\n\n[target]\n{target}\n",
            log = dir.join("log").display()
        ),
    )
    .expect("write config");
    config
}

/// Runs each expectation's query (its text and number of columns) and compares the rows.
fn compare(engine: Engine, schema: &str, mut query: impl FnMut(&str, usize) -> Vec<Vec<String>>) {
    for e in EXPECTED {
        let got = query(
            &engine.select(schema, e.view, e.columns, e.order_by),
            e.columns.len(),
        );
        let want: Vec<Vec<String>> = e
            .rows
            .iter()
            .map(|r| r.iter().map(|v| (*v).to_owned()).collect())
            .collect();
        assert_eq!(got, want, "{engine:?}: view {}", e.view);
    }
}

#[test]
fn views_on_duckdb() {
    let dir = tempfile_dir::Dir::new();
    let warehouse = dir.path().join("warehouse.duckdb");
    // A hostile schema name: quotes, a space, upper case.
    let schema = "Sales \"raw\"";
    let quoted = "\"Sales \"\"raw\"\"\"";
    let conn = duckdb::Connection::open(&warehouse).expect("open warehouse");
    conn.execute_batch(&Engine::DuckDb.fixture(quoted))
        .expect("fixture");
    let config = write_config(
        dir.path(),
        &format!(
            "kind = \"duckdb\"\npath = \"{}\"\nschema = \"Sales \\\"raw\\\"\"",
            warehouse.display()
        ),
    );

    // While another process holds the file (as `sluice sync` does), the install fails clearly.
    let out = install(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is locked by another process"), "{stderr}");
    drop(conn);

    assert_installed(&install(&config), schema, "duckdb");
    // Installing again replaces the views.
    assert_installed(&install(&config), schema, "duckdb");

    // A session time zone far from UTC moves no window.
    let conn = duckdb::Connection::open(&warehouse).expect("open warehouse");
    conn.execute_batch("SET TimeZone = 'Asia/Kolkata'")
        .expect("time zone");
    compare(Engine::DuckDb, quoted, |sql, n| {
        let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        stmt.query_map([], |r| {
            (0..n)
                .map(|i| {
                    Ok(r.get::<_, Option<String>>(i)?
                        .unwrap_or_else(|| "NULL".into()))
                })
                .collect::<duckdb::Result<Vec<_>>>()
        })
        .and_then(|rows| rows.collect::<duckdb::Result<Vec<_>>>())
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    });
}

#[tokio::test]
async fn views_on_postgres() {
    let target = PgCluster::shared()
        .fresh_database()
        .await
        .expect("target database");
    target
        .execute(&Engine::Postgres.fixture("raw"))
        .await
        .expect("fixture");
    let dir = tempfile_dir::Dir::new();
    let config = write_config(
        dir.path(),
        &format!(
            "kind = \"postgres\"\nurl = \"{}\"\nschema = \"raw\"",
            target.url()
        ),
    );
    assert_installed(&install(&config), "raw", "postgres");
    assert_installed(&install(&config), "raw", "postgres");

    let client = target.client().await.expect("client");
    client
        .batch_execute("SET TimeZone = 'Asia/Kolkata'")
        .await
        .expect("time zone");
    let mut results = Vec::new();
    for e in EXPECTED {
        let sql = Engine::Postgres.select("raw", e.view, e.columns, e.order_by);
        let rows = client
            .simple_query(&sql)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"))
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                    (0..r.len())
                        .map(|i| r.get(i).unwrap_or("NULL").to_owned())
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .collect::<Vec<_>>();
        results.push((sql, rows));
    }
    compare(Engine::Postgres, "raw", |sql, _| {
        results
            .iter()
            .find(|(s, _)| s == sql)
            .map(|(_, rows)| rows.clone())
            .expect("queried above")
    });
}

#[tokio::test]
async fn views_need_the_loaded_tables() {
    let target = PgCluster::shared()
        .fresh_database()
        .await
        .expect("target database");
    target.execute("CREATE SCHEMA raw").await.expect("schema");
    let dir = tempfile_dir::Dir::new();
    let config = write_config(
        dir.path(),
        &format!("kind = \"postgres\"\nurl = \"{}\"", target.url()),
    );
    let out = install(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("while installing view \"stock_on_hand\""),
        "{stderr}"
    );
    assert!(stderr.contains("run `sluice sync`"), "{stderr}");
}
