//! Reading the DuckDB warehouse while the pipeline loads it: the KPI views are installed once
//! the retail tables exist, then every read queries them through a connection of the loading
//! process (each query sees the batches committed before it). Every call blocks: run it on a
//! blocking thread.
//!
//! Times come back as milliseconds since the Unix epoch (`epoch_ms`) and amounts as `DOUBLE`,
//! so nothing depends on the session's time zone or on DuckDB's decimal types.

use duckdb::Connection;

use crate::error::{Error, Result};

/// The tables the views read, and the pipeline's checkpoint table.
const TABLES: &[&str] = &[
    "products",
    "warehouses",
    "stock_snapshot",
    "inventory_movements",
    "customers",
    "orders",
    "order_lines",
    "payments",
    "_sluice_checkpoints",
];

/// How many products the stock panel shows.
pub const TOP_PRODUCTS: usize = 8;
/// How many minutes the orders-per-minute sparkline covers.
pub const MINUTES: usize = 30;
/// How many alerts of each kind are listed.
const ALERTS: usize = 5;

/// A product among the best sellers since the opening count.
#[derive(Debug, Clone, PartialEq)]
pub struct TopProduct {
    pub id: i64,
    pub name: String,
    pub reorder_at: i64,
    /// Units sold since the opening count (cancelled orders left out).
    pub sold: i64,
    /// Stock on hand per warehouse id, in warehouse order.
    pub on_hand: Vec<(i32, i64)>,
}

/// One window of the revenue views.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
    pub orders: i64,
    pub revenue: f64,
}

/// A fraud signal.
#[derive(Debug, Clone, PartialEq)]
pub enum Alert {
    /// `fraud_card_velocity`: the most attempts in 5 minutes, at the latest such attempt.
    Velocity {
        card: String,
        attempts: i64,
        at_ms: i64,
    },
    /// `fraud_card_countries`: the latest pair of a card.
    Countries {
        card: String,
        first: String,
        second: String,
        first_ms: i64,
        second_ms: i64,
    },
    /// `fraud_refund_share`, scope `customer`.
    Refunds {
        customer_id: i64,
        share: f64,
        refunded: f64,
    },
}

/// `pipeline_freshness` for one table.
#[derive(Debug, Clone, PartialEq)]
pub struct Freshness {
    pub table: String,
    pub last_commit_ms: Option<i64>,
    pub lag_s: Option<f64>,
}

/// One read of the KPIs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Kpis {
    /// The warehouse's clock at the read.
    pub now_ms: i64,
    pub warehouses: Vec<(i32, String)>,
    pub top: Vec<TopProduct>,
    /// Orders per minute for the last [`MINUTES`] minutes (the current one last), zeros where
    /// a minute had none.
    pub per_minute: Vec<Window>,
    /// The 15-minute hopping windows that contain now.
    pub hopping: Vec<Window>,
    pub alerts: Vec<Alert>,
    pub velocity_cards: i64,
    pub country_cards: i64,
    pub refund_customers: i64,
    pub freshness: Vec<Freshness>,
    pub applied_commit_ms: Option<i64>,
    pub orders: i64,
    pub movements: i64,
    pub low_stock: i64,
}

/// Aggregates that change with every transaction the generator writes, read the same way at
/// the source and in the warehouse (live rows only): equal means the warehouse caught up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub orders: i64,
    pub pending: i64,
    pub cancelled: i64,
    pub refunded: i64,
    pub order_lines: i64,
    pub movements: i64,
    pub units_moved: i64,
    pub payments: i64,
    pub succeeded: i64,
    pub customers: i64,
    pub price_cents: i64,
}

/// The [`Tally`] query over tables named by `table`, keeping rows where `live` holds.
pub fn tally_sql(table: impl Fn(&str) -> String, live: &str) -> String {
    format!(
        "SELECT
           (SELECT count(*) FROM {orders} WHERE {live}),
           (SELECT count(*) FROM {orders} WHERE {live} AND status = 'pending'),
           (SELECT count(*) FROM {orders} WHERE {live} AND status = 'cancelled'),
           (SELECT count(*) FROM {orders} WHERE {live} AND status = 'refunded'),
           (SELECT count(*) FROM {lines} WHERE {live}),
           (SELECT count(*) FROM {movements} WHERE {live}),
           (SELECT CAST(coalesce(sum(delta), 0) AS BIGINT) FROM {movements} WHERE {live}),
           (SELECT count(*) FROM {payments} WHERE {live}),
           (SELECT count(*) FROM {payments} WHERE {live} AND succeeded),
           (SELECT count(*) FROM {customers} WHERE {live}),
           (SELECT CAST(coalesce(sum(price * 100), 0) AS BIGINT) FROM {products} WHERE {live})",
        orders = table("orders"),
        lines = table("order_lines"),
        movements = table("inventory_movements"),
        payments = table("payments"),
        customers = table("customers"),
        products = table("products"),
    )
}

impl Tally {
    /// From a row of [`tally_sql`], read with `get(i)`.
    pub fn from_values(get: impl Fn(usize) -> i64) -> Tally {
        Tally {
            orders: get(0),
            pending: get(1),
            cancelled: get(2),
            refunded: get(3),
            order_lines: get(4),
            movements: get(5),
            units_moved: get(6),
            payments: get(7),
            succeeded: get(8),
            customers: get(9),
            price_cents: get(10),
        }
    }
}

/// A connection to the warehouse and the schema the pipeline loads into.
pub struct Warehouse {
    conn: Connection,
    schema: String,
    views: bool,
}

fn failed(action: &str) -> impl FnOnce(duckdb::Error) -> Error + '_ {
    move |source| Error::Warehouse {
        action: action.to_owned(),
        source,
    }
}

impl Warehouse {
    /// `schema` unquoted, as configured.
    pub fn new(conn: Connection, schema: &str) -> Warehouse {
        Warehouse {
            conn,
            schema: schema.to_owned(),
            views: false,
        }
    }

    fn quoted(&self) -> String {
        sluice_postgres::quote_ident(&self.schema)
    }

    /// Installs the KPI views once every table they read has been loaded; true when they are
    /// installed.
    pub fn ensure_views(&mut self) -> Result<bool> {
        if self.views {
            return Ok(true);
        }
        let list = TABLES
            .iter()
            .map(|t| sluice_postgres::quote_literal(t))
            .collect::<Vec<_>>()
            .join(", ");
        let present: i64 = self
            .conn
            .query_row(
                &format!(
                    "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name IN ({list})"
                ),
                [&self.schema],
                |r| r.get(0),
            )
            .map_err(failed("looking for the loaded tables"))?;
        if present < TABLES.len() as i64 {
            return Ok(false);
        }
        let views = sluice::views::catalog("duckdb").map_err(Error::Views)?;
        let mut script = String::from("BEGIN;\n");
        for view in views {
            script.push_str(&view.statement(&self.schema));
            script.push_str(";\n");
        }
        script.push_str("COMMIT;");
        if let Err(e) = self.conn.execute_batch(&script) {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(failed("installing the KPI views")(e));
        }
        self.views = true;
        Ok(true)
    }

    /// Reads every KPI; `None` while the views cannot be installed yet (nothing loaded).
    pub fn read(&mut self) -> Result<Option<Kpis>> {
        if !self.ensure_views()? {
            return Ok(None);
        }
        let s = self.quoted();
        let c = &self.conn;
        let mut k = Kpis {
            now_ms: c
                .query_row("SELECT epoch_ms(now())", [], |r| r.get(0))
                .map_err(failed("reading the clock"))?,
            ..Kpis::default()
        };
        k.warehouses = rows(
            c,
            &format!("SELECT id, name FROM {s}.warehouses WHERE NOT _sluice_deleted ORDER BY id"),
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        k.top = self.top_products(&s)?;
        k.per_minute = per_minute(
            k.now_ms,
            rows(
                c,
                &format!(
                    "SELECT epoch_ms(window_start), orders, CAST(revenue AS DOUBLE)
                     FROM {s}.orders_per_minute
                     WHERE window_start >= now() - INTERVAL {m} MINUTE ORDER BY 1",
                    m = MINUTES
                ),
                |r| {
                    Ok(Window {
                        start_ms: r.get(0)?,
                        end_ms: r.get::<_, i64>(0)? + 60_000,
                        orders: r.get(1)?,
                        revenue: r.get(2)?,
                    })
                },
            )?,
        );
        k.hopping = rows(
            c,
            &format!(
                "SELECT epoch_ms(window_start), epoch_ms(window_end), orders, CAST(revenue AS DOUBLE)
                 FROM {s}.revenue_15m_hopping
                 WHERE window_start <= now() AND window_end > now() ORDER BY window_start"
            ),
            |r| {
                Ok(Window {
                    start_ms: r.get(0)?,
                    end_ms: r.get(1)?,
                    orders: r.get(2)?,
                    revenue: r.get(3)?,
                })
            },
        )?;
        self.read_alerts(&s, &mut k)?;
        let c = &self.conn;
        k.freshness = rows(
            c,
            &format!(
                "SELECT table_name, epoch_ms(last_commit_ts), CAST(epoch(lag) AS DOUBLE)
                 FROM {s}.pipeline_freshness ORDER BY table_name"
            ),
            |r| {
                Ok(Freshness {
                    table: r.get(0)?,
                    last_commit_ms: r.get(1)?,
                    lag_s: r.get(2)?,
                })
            },
        )?;
        (k.applied_commit_ms, k.orders, k.movements, k.low_stock) = c
            .query_row(
                &format!(
                    "SELECT (SELECT epoch_ms(max(applied_commit_ts)) FROM {s}._sluice_checkpoints),
                            (SELECT count(*) FROM {s}.orders WHERE NOT _sluice_deleted),
                            (SELECT count(*) FROM {s}.inventory_movements WHERE NOT _sluice_deleted),
                            (SELECT count(*) FROM {s}.low_stock)"
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .map_err(failed("reading the counts"))?;
        Ok(Some(k))
    }

    fn top_products(&self, s: &str) -> Result<Vec<TopProduct>> {
        let flat: Vec<(i64, String, i64, i64, i32, i64)> = rows(
            &self.conn,
            &format!(
                "WITH opening AS (
                     SELECT max(as_of) AS as_of FROM {s}.stock_snapshot WHERE NOT _sluice_deleted
                 ),
                 sold AS (
                     SELECT l.product_id, sum(l.qty) AS units
                     FROM {s}.order_lines AS l
                     JOIN {s}.orders AS o ON o.id = l.order_id, opening
                     WHERE NOT l._sluice_deleted AND NOT o._sluice_deleted
                       AND o.status <> 'cancelled' AND o.ordered_at > opening.as_of
                     GROUP BY 1
                 ),
                 top AS (
                     SELECT p.id, p.name, p.reorder_at, coalesce(sold.units, 0) AS units
                     FROM {s}.products AS p LEFT JOIN sold ON sold.product_id = p.id
                     WHERE NOT p._sluice_deleted
                     ORDER BY units DESC, p.id
                     LIMIT {TOP_PRODUCTS}
                 )
                 SELECT top.id, top.name, CAST(top.reorder_at AS BIGINT), CAST(top.units AS BIGINT),
                        k.warehouse_id, CAST(k.on_hand AS BIGINT)
                 FROM top JOIN {s}.stock_on_hand AS k ON k.product_id = top.id
                 ORDER BY top.units DESC, top.id, k.warehouse_id"
            ),
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )?;
        let mut top: Vec<TopProduct> = Vec::new();
        for (id, name, reorder_at, sold, warehouse, on_hand) in flat {
            match top.last_mut() {
                Some(p) if p.id == id => p.on_hand.push((warehouse, on_hand)),
                _ => top.push(TopProduct {
                    id,
                    name,
                    reorder_at,
                    sold,
                    on_hand: vec![(warehouse, on_hand)],
                }),
            }
        }
        Ok(top)
    }

    fn read_alerts(&self, s: &str, k: &mut Kpis) -> Result<()> {
        let c = &self.conn;
        (k.velocity_cards, k.country_cards, k.refund_customers) = c
            .query_row(
                &format!(
                    "SELECT (SELECT count(DISTINCT card_fingerprint) FROM {s}.fraud_card_velocity),
                            (SELECT count(DISTINCT card_fingerprint) FROM {s}.fraud_card_countries),
                            (SELECT count(*) FROM {s}.fraud_refund_share WHERE scope = 'customer')"
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(failed("counting fraud alerts"))?;
        k.alerts = rows(
            c,
            &format!(
                "SELECT upper(left(hex(card_fingerprint), 8)), CAST(max(attempts) AS BIGINT),
                        epoch_ms(max(window_end))
                 FROM {s}.fraud_card_velocity GROUP BY 1 ORDER BY 3 DESC, 1 LIMIT {ALERTS}"
            ),
            |r| {
                Ok(Alert::Velocity {
                    card: r.get(0)?,
                    attempts: r.get(1)?,
                    at_ms: r.get(2)?,
                })
            },
        )?;
        k.alerts.extend(rows(
            c,
            &format!(
                "SELECT upper(left(hex(card_fingerprint), 8)), CAST(first_country AS VARCHAR),
                        CAST(second_country AS VARCHAR), epoch_ms(first_at), epoch_ms(second_at)
                 FROM {s}.fraud_card_countries ORDER BY second_at DESC, 1 LIMIT {ALERTS}"
            ),
            |r| {
                Ok(Alert::Countries {
                    card: r.get(0)?,
                    first: r.get(1)?,
                    second: r.get(2)?,
                    first_ms: r.get(3)?,
                    second_ms: r.get(4)?,
                })
            },
        )?);
        k.alerts.extend(rows(
            c,
            &format!(
                "SELECT customer_id, CAST(refund_share AS DOUBLE), CAST(refunded AS DOUBLE)
                 FROM {s}.fraud_refund_share WHERE scope = 'customer'
                 ORDER BY refunded DESC, customer_id LIMIT {ALERTS}"
            ),
            |r| {
                Ok(Alert::Refunds {
                    customer_id: r.get(0)?,
                    share: r.get(1)?,
                    refunded: r.get(2)?,
                })
            },
        )?);
        Ok(())
    }

    /// The [`Tally`] of the loaded tables.
    pub fn tally(&self) -> Result<Tally> {
        let s = self.quoted();
        let sql = tally_sql(|t| format!("{s}.{t}"), "NOT _sluice_deleted");
        let values: Vec<i64> = self
            .conn
            .query_row(&sql, [], |r| (0..11).map(|i| r.get(i)).collect())
            .map_err(failed("counting the loaded rows"))?;
        Ok(Tally::from_values(|i| values[i]))
    }

    /// `stock_on_hand` as (product, warehouse, on hand), in key order.
    pub fn stock(&self) -> Result<Vec<(i64, i32, i64)>> {
        let s = self.quoted();
        rows(
            &self.conn,
            &format!(
                "SELECT product_id, warehouse_id, CAST(on_hand AS BIGINT)
                 FROM {s}.stock_on_hand ORDER BY 1, 2"
            ),
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }
}

/// Runs `sql` and maps every row.
fn rows<T>(
    conn: &Connection,
    sql: &str,
    f: impl FnMut(&duckdb::Row<'_>) -> duckdb::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare(sql).map_err(failed("preparing a KPI query"))?;
    stmt.query_map([], f)
        .map_err(failed("running a KPI query"))?
        .collect::<duckdb::Result<Vec<T>>>()
        .map_err(failed("reading a KPI row"))
}

/// The last [`MINUTES`] minutes up to `now_ms`, with the windows read filled in.
fn per_minute(now_ms: i64, read: Vec<Window>) -> Vec<Window> {
    let current = now_ms.div_euclid(60_000) * 60_000;
    (0..MINUTES as i64)
        .rev()
        .map(|back| {
            let start_ms = current - back * 60_000;
            read.iter()
                .find(|w| w.start_ms == start_ms)
                .cloned()
                .unwrap_or(Window {
                    start_ms,
                    end_ms: start_ms + 60_000,
                    orders: 0,
                    revenue: 0.0,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_without_orders_are_zero_and_the_current_minute_is_last() {
        let current = 28_333_334 * 60_000;
        let now = current + 30_000;
        let read = vec![Window {
            start_ms: current - 120_000,
            end_ms: current - 60_000,
            orders: 7,
            revenue: 70.0,
        }];
        let filled = per_minute(now, read);
        assert_eq!(filled.len(), MINUTES);
        assert_eq!(filled[MINUTES - 1].start_ms, current);
        assert_eq!(filled[MINUTES - 3].orders, 7);
        assert_eq!(filled.iter().map(|w| w.orders).sum::<i64>(), 7);
    }

    #[test]
    fn the_tally_reads_the_same_columns_on_both_sides() {
        let pg = tally_sql(|t| t.to_owned(), "true");
        let duck = tally_sql(|t| format!("\"raw\".{t}"), "NOT _sluice_deleted");
        assert_eq!(pg.matches("SELECT").count(), 12);
        assert_eq!(
            pg.replace("true", "NOT _sluice_deleted"),
            duck.replace("\"raw\".", "")
        );
    }

    /// The views, the KPI queries and the tally against a small warehouse shaped like the
    /// pipeline's.
    #[test]
    fn kpis_read_from_a_loaded_warehouse() {
        let conn = Connection::open_in_memory().expect("duckdb");
        conn.execute_batch(FIXTURE).expect("fixture");
        let mut wh = Warehouse::new(conn, "raw");
        assert!(wh.read().expect("read").is_some());
        let k = wh.read().expect("read").expect("views");
        assert_eq!(
            k.warehouses,
            vec![(1, "Berlin DC".to_owned()), (2, "Paris store".to_owned())]
        );
        // Product 2 sold 3 units after the opening count (the 1 before it does not count).
        assert_eq!(k.top[0].id, 2);
        assert_eq!(k.top[0].sold, 3);
        assert_eq!(k.top[0].on_hand, vec![(1, 7), (2, 50)]);
        assert_eq!(k.low_stock, 1);
        assert_eq!(k.orders, 3);
        assert_eq!(k.movements, 2);
        assert_eq!(k.velocity_cards, 0);
        assert_eq!(k.country_cards, 1);
        assert!(k.alerts.iter().any(|a| matches!(
            a,
            Alert::Countries { first, second, .. } if first == "DE" && second == "FR"
        )));
        assert!(
            k.alerts
                .iter()
                .any(|a| matches!(a, Alert::Refunds { customer_id: 2, .. }))
        );
        let orders = k
            .freshness
            .iter()
            .find(|f| f.table == "orders")
            .expect("orders");
        assert!(orders.lag_s.is_some_and(|l| l >= 0.0));
        assert_eq!(k.per_minute.iter().map(|w| w.orders).sum::<i64>(), 3);
        let tally = wh.tally().expect("tally");
        assert_eq!(
            (
                tally.orders,
                tally.refunded,
                tally.movements,
                tally.units_moved
            ),
            (3, 1, 2, -4)
        );
        assert_eq!(
            wh.stock().expect("stock"),
            vec![(1, 1, 30), (1, 2, 30), (2, 1, 7), (2, 2, 50)]
        );
    }

    const FIXTURE: &str = r#"
CREATE SCHEMA raw;
CREATE TABLE raw.products (id bigint PRIMARY KEY, sku text, name text, price decimal(10,2), reorder_at int, tags text[], _sluice_lsn bigint, _sluice_commit_ts timestamptz, _sluice_deleted boolean, _sluice_synced_at timestamptz);
CREATE TABLE raw.warehouses (id int PRIMARY KEY, name text, channel text, _sluice_lsn bigint, _sluice_commit_ts timestamptz, _sluice_deleted boolean, _sluice_synced_at timestamptz);
CREATE TABLE raw.stock_snapshot (product_id bigint, warehouse_id int, on_hand int, as_of timestamptz, _sluice_lsn bigint, _sluice_commit_ts timestamptz, _sluice_deleted boolean, _sluice_synced_at timestamptz);
CREATE TABLE raw.inventory_movements (id bigint PRIMARY KEY, product_id bigint, warehouse_id int, delta int, reason text, moved_at timestamptz, _sluice_lsn bigint, _sluice_commit_ts timestamptz, _sluice_deleted boolean, _sluice_synced_at timestamptz);
CREATE TABLE raw.customers (id bigint PRIMARY KEY, email text, country varchar, profile json, _sluice_lsn bigint, _sluice_commit_ts timestamptz, _sluice_deleted boolean, _sluice_synced_at timestamptz);
CREATE TABLE raw.orders (id bigint PRIMARY KEY, customer_id bigint, status text, total decimal(12,2), ordered_at timestamptz, _sluice_lsn bigint, _sluice_commit_ts timestamptz, _sluice_deleted boolean, _sluice_synced_at timestamptz);
CREATE TABLE raw.order_lines (order_id bigint, line_no int, product_id bigint, qty int, unit_price decimal(10,2), _sluice_lsn bigint, _sluice_commit_ts timestamptz, _sluice_deleted boolean, _sluice_synced_at timestamptz);
CREATE TABLE raw.payments (id uuid PRIMARY KEY, order_id bigint, card_fingerprint blob, country varchar, amount decimal(12,2), succeeded boolean, attempted_at timestamptz, _sluice_lsn bigint, _sluice_commit_ts timestamptz, _sluice_deleted boolean, _sluice_synced_at timestamptz);
CREATE TABLE raw._sluice_checkpoints (pipeline text PRIMARY KEY, position text NOT NULL, applied_lsn bigint NOT NULL, applied_lsn_text text NOT NULL, applied_commit_ts timestamptz NOT NULL, updated_at timestamptz NOT NULL);
INSERT INTO raw.products VALUES
 (1, 'SKU-1', 'Trowel', 10.00, 20, NULL, 1, now() - INTERVAL 1 HOUR, false, now()),
 (2, 'SKU-2', 'Kettle', 25.00, 10, NULL, 1, now() - INTERVAL 1 HOUR, false, now());
INSERT INTO raw.warehouses VALUES
 (1, 'Berlin DC', 'online', 1, now() - INTERVAL 1 HOUR, false, now()),
 (2, 'Paris store', 'store', 1, now() - INTERVAL 1 HOUR, false, now());
INSERT INTO raw.stock_snapshot VALUES
 (1, 1, 30, now() - INTERVAL 10 MINUTE, 1, now() - INTERVAL 10 MINUTE, false, now()),
 (1, 2, 30, now() - INTERVAL 10 MINUTE, 1, now() - INTERVAL 10 MINUTE, false, now()),
 (2, 1, 10, now() - INTERVAL 10 MINUTE, 1, now() - INTERVAL 10 MINUTE, false, now()),
 (2, 2, 50, now() - INTERVAL 10 MINUTE, 1, now() - INTERVAL 10 MINUTE, false, now());
INSERT INTO raw.customers VALUES
 (1, 'a@example.com', 'DE', NULL, 1, now() - INTERVAL 1 HOUR, false, now()),
 (2, 'b@example.com', 'FR', NULL, 1, now() - INTERVAL 1 HOUR, false, now());
INSERT INTO raw.orders VALUES
 (1, 1, 'paid', 25.00, now() - INTERVAL 20 MINUTE, 2, now() - INTERVAL 20 MINUTE, false, now()),
 (2, 1, 'paid', 75.00, now() - INTERVAL 1 MINUTE, 3, now() - INTERVAL 1 MINUTE, false, now()),
 (3, 2, 'refunded', 25.00, now() - INTERVAL 1 MINUTE, 4, now() - INTERVAL 1 MINUTE, false, now());
INSERT INTO raw.order_lines VALUES
 (1, 1, 2, 1, 25.00, 2, now() - INTERVAL 20 MINUTE, false, now()),
 (2, 1, 2, 3, 25.00, 3, now() - INTERVAL 1 MINUTE, false, now()),
 (3, 1, 1, 1, 25.00, 4, now() - INTERVAL 1 MINUTE, false, now());
INSERT INTO raw.inventory_movements VALUES
 (1, 2, 1, -3, 'sale', now() - INTERVAL 1 MINUTE, 3, now() - INTERVAL 1 MINUTE, false, now()),
 (2, 2, 1, -1, 'sale', now() - INTERVAL 20 MINUTE, 2, now() - INTERVAL 20 MINUTE, false, now());
INSERT INTO raw.payments VALUES
 ('00000000-0000-0000-0000-000000000001', 2, '\x01'::blob, 'DE', 75.00, true, now() - INTERVAL 2 MINUTE, 3, now() - INTERVAL 1 MINUTE, false, now()),
 ('00000000-0000-0000-0000-000000000002', 3, '\x01'::blob, 'FR', 25.00, true, now() - INTERVAL 1 MINUTE, 4, now() - INTERVAL 1 MINUTE, false, now());
INSERT INTO raw._sluice_checkpoints VALUES ('default', '0', 4, '0/4', now() - INTERVAL 1 MINUTE, now());
"#;
}
