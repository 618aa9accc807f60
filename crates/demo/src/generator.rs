//! Writes the planner's events into the source at a chosen rate, each event one transaction
//! (one statement: data-modifying CTEs write an order, its lines, its movements and its
//! payments together), on one connection, in planning order.
//!
//! Event times are the server's `now()`, less `late_ms` for a late order, never earlier than
//! the opening count (`Shop::opening_floor_us`). Amounts travel as integer cents and prices
//! are written as `cents / 100.0`, exact in `numeric`.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::pacing::Pacer;
use crate::shop::Shop;
use crate::traffic::{Attempt, Event, Order, Planner, Stats};

/// An order, its lines, its sale movements (when `$12`, shipped) and its payment attempts.
const PLACE_ORDER: &str = "
WITH o AS (
    INSERT INTO orders (id, customer_id, status, total, ordered_at)
    VALUES ($1::int8, $2::int8, $3::text, $4::int8 / 100.0,
            greatest(now() - $5::int8 * interval '1 millisecond',
                     'epoch'::timestamptz + $6::int8 * interval '1 microsecond'))
    RETURNING ordered_at
),
l AS (
    INSERT INTO order_lines (order_id, line_no, product_id, qty, unit_price)
    SELECT $1::int8, t.line_no, t.product_id, t.qty, t.unit_cents / 100.0
    FROM unnest($7::int4[], $8::int8[], $9::int4[], $10::int8[])
         AS t(line_no, product_id, qty, unit_cents)
),
m AS (
    INSERT INTO inventory_movements (product_id, warehouse_id, delta, reason, moved_at)
    SELECT t.product_id, $11::int4, -t.qty, 'sale', o.ordered_at
    FROM o, unnest($8::int8[], $9::int4[]) AS t(product_id, qty)
    WHERE $12::bool
)
INSERT INTO payments (order_id, card_fingerprint, country, amount, succeeded, attempted_at)
SELECT $1::int8, sha256(('card' || t.card_owner)::bytea), t.country, t.amount_cents / 100.0,
       t.succeeded, o.ordered_at
FROM o, unnest($13::int8[], $14::text[], $15::int8[], $16::bool[])
     AS t(card_owner, country, amount_cents, succeeded)";

/// One more payment attempt, now. The card is the owner's, as in `retail.sql`.
const ATTEMPT: &str = "
INSERT INTO payments (order_id, card_fingerprint, country, amount, succeeded)
VALUES ($1::int8, sha256(('card' || $2::int8)::bytea), $3::text, $4::int8 / 100.0, $5::bool)";

/// A cancellation and the returns of what the order shipped.
const CANCEL: &str = "
WITH o AS (UPDATE orders SET status = 'cancelled' WHERE id = $1::int8 RETURNING id)
INSERT INTO inventory_movements (product_id, warehouse_id, delta, reason)
SELECT t.product_id, $2::int4, t.qty, 'return'
FROM o, unnest($3::int8[], $4::int4[]) AS t(product_id, qty)";

const REFUND: &str = "UPDATE orders SET status = 'refunded' WHERE id = $1::int8";

const RECEIPT: &str = "
INSERT INTO inventory_movements (product_id, warehouse_id, delta, reason)
VALUES ($1::int8, $2::int4, $3::int4, 'receipt')";

const SIGNUP: &str = "
INSERT INTO customers (id, email, country, profile)
VALUES ($1::int8, 'customer' || $1::int8 || '@example.com', $2::text,
        jsonb_build_object('tier', 'basic', 'since', extract(year FROM now())::int))";

const REPRICE: &str = "UPDATE products SET price = $2::int8 / 100.0 WHERE id = $1::int8";

/// Customers per transaction per second: with uniformly picked customers, one places about
/// half an order in any 5 minutes, and more than 5 (what `fraud_card_velocity` flags) about
/// once in 70,000 customer-windows.
pub const CUSTOMERS_PER_RATE: f64 = 600.0;
/// The most customers the generator adds for the rate.
const MAX_CUSTOMERS: u64 = 200_000;

/// The customer base [`run`] makes sure of for `rate` transactions per second.
pub fn customers_for(rate: f64) -> u64 {
    (rate * CUSTOMERS_PER_RATE).clamp(0.0, MAX_CUSTOMERS as f64) as u64
}

/// Adds customers until there are `$1`, in one transaction, shaped like `retail.sql`'s.
const ADD_CUSTOMERS: &str = "
INSERT INTO customers (id, email, country, profile)
SELECT g, 'customer' || g || '@example.com', (ARRAY['DE', 'FR', 'NL', 'US'])[1 + g % 4],
       jsonb_build_object('tier', (ARRAY['basic', 'gold'])[1 + g % 2], 'since', 2015 + g % 10)
FROM (SELECT coalesce(max(id), 0) AS top, count(*) AS n FROM customers) AS c,
     generate_series(c.top + 1, c.top + $1::int8 - c.n) AS g";

/// How much traffic to send.
#[derive(Debug, Clone)]
pub struct Options {
    /// Events (transactions) per second.
    pub rate: f64,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Stop after this many events.
    pub max_events: Option<u64>,
    pub seed: u64,
    /// Customers to have before the traffic starts (see [`customers_for`]).
    pub customers: u64,
}

/// What a run sent, and how fast.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub stats: Stats,
    pub elapsed: Duration,
    /// Customers added before the traffic started.
    pub customers_added: u64,
}

impl Report {
    /// Transactions per second achieved.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.stats.transactions as f64 / secs
        } else {
            0.0
        }
    }
}

/// Sends traffic into the retail schema `client` is connected to until `stop` is cancelled or
/// the options' duration or event count is reached. Every event written is counted in
/// `progress`, if given.
pub async fn run(
    client: &Client,
    options: &Options,
    stop: &CancellationToken,
    progress: Option<&watch::Sender<Report>>,
) -> Result<Report> {
    let customers_added = client
        .execute(
            ADD_CUSTOMERS,
            &[&i64::try_from(options.customers).unwrap_or(i64::MAX)],
        )
        .await
        .map_err(|source| Error::Postgres {
            action: "adding customers".to_owned(),
            source,
        })?;
    let shop = Shop::load(client).await?;
    let statements = Statements::prepare(client).await?;
    let floor = shop.opening_floor_us;
    let mut planner = Planner::new(shop, options.seed, options.rate);
    let mut pacer = Pacer::new(options.rate);
    let mut report = Report {
        customers_added,
        ..Report::default()
    };
    let start = Instant::now();
    loop {
        let now = start.elapsed();
        if stop.is_cancelled()
            || options.duration.is_some_and(|d| now >= d)
            || options
                .max_events
                .is_some_and(|n| report.stats.transactions >= n)
        {
            break;
        }
        let due = pacer.next_due();
        if due > now {
            let wait = due - now;
            let wait = options
                .duration
                .map_or(wait, |d| wait.min(d.saturating_sub(now)));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => break,
            }
            continue;
        }
        let event = planner.next_event();
        // Not inside a select!: a statement is never abandoned half-sent.
        write(client, &statements, &event, floor).await?;
        report.stats.record(&event);
        report.elapsed = start.elapsed();
        pacer.sent(report.elapsed);
        if let Some(progress) = progress {
            progress.send_replace(report.clone());
        }
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

/// The statements, prepared once per connection.
struct Statements {
    order: Statement,
    attempt: Statement,
    cancel: Statement,
    refund: Statement,
    receipt: Statement,
    signup: Statement,
    reprice: Statement,
}

impl Statements {
    async fn prepare(client: &Client) -> Result<Statements> {
        let prepare = |sql: &'static str| async move {
            client.prepare(sql).await.map_err(|source| Error::Postgres {
                action: "preparing the traffic's statements".to_owned(),
                source,
            })
        };
        Ok(Statements {
            order: prepare(PLACE_ORDER).await?,
            attempt: prepare(ATTEMPT).await?,
            cancel: prepare(CANCEL).await?,
            refund: prepare(REFUND).await?,
            receipt: prepare(RECEIPT).await?,
            signup: prepare(SIGNUP).await?,
            reprice: prepare(REPRICE).await?,
        })
    }
}

/// Writes one event as one transaction.
async fn write(
    client: &Client,
    statements: &Statements,
    event: &Event,
    floor_us: i64,
) -> Result<()> {
    let (statement, action) = match event {
        Event::Order(_) => (&statements.order, "placing an order"),
        Event::Attempt(_) => (&statements.attempt, "adding a payment attempt"),
        Event::Cancel { .. } => (&statements.cancel, "cancelling an order"),
        Event::Refund { .. } => (&statements.refund, "refunding an order"),
        Event::Receipt { .. } => (&statements.receipt, "receiving stock"),
        Event::Signup { .. } => (&statements.signup, "adding a customer"),
        Event::Reprice { .. } => (&statements.reprice, "changing a price"),
    };
    let failed = |source| Error::Postgres {
        action: action.to_owned(),
        source,
    };
    match event {
        Event::Order(order) => {
            let p = OrderParams::new(order, floor_us);
            client
                .execute(statement, &p.params())
                .await
                .map_err(failed)?;
        }
        Event::Attempt(Attempt {
            order_id,
            card_owner,
            country,
            amount_cents,
            succeeded,
        }) => {
            client
                .execute(
                    statement,
                    &[order_id, card_owner, country, amount_cents, succeeded],
                )
                .await
                .map_err(failed)?;
        }
        Event::Cancel {
            order_id,
            warehouse_id,
            returns,
        } => {
            let products: Vec<i64> = returns.iter().map(|(p, _)| *p).collect();
            let qty: Vec<i32> = returns.iter().map(|(_, q)| *q).collect();
            client
                .execute(statement, &[order_id, warehouse_id, &products, &qty])
                .await
                .map_err(failed)?;
        }
        Event::Refund { order_id } => {
            client
                .execute(statement, &[order_id])
                .await
                .map_err(failed)?;
        }
        Event::Receipt {
            product_id,
            warehouse_id,
            qty,
        } => {
            client
                .execute(statement, &[product_id, warehouse_id, qty])
                .await
                .map_err(failed)?;
        }
        Event::Signup {
            customer_id,
            country,
        } => {
            client
                .execute(statement, &[customer_id, country])
                .await
                .map_err(failed)?;
        }
        Event::Reprice {
            product_id,
            price_cents,
        } => {
            client
                .execute(statement, &[product_id, price_cents])
                .await
                .map_err(failed)?;
        }
    }
    Ok(())
}

/// The parameters of [`PLACE_ORDER`].
struct OrderParams<'a> {
    order: &'a Order,
    total: i64,
    late_ms: i64,
    floor_us: i64,
    line_no: Vec<i32>,
    products: Vec<i64>,
    qty: Vec<i32>,
    unit_cents: Vec<i64>,
    card_owner: Vec<i64>,
    country: Vec<&'a str>,
    amount_cents: Vec<i64>,
    succeeded: Vec<bool>,
}

impl<'a> OrderParams<'a> {
    fn new(order: &'a Order, floor_us: i64) -> Self {
        let lines = &order.lines;
        let attempts = &order.attempts;
        OrderParams {
            order,
            total: order.total_cents(),
            late_ms: i64::try_from(order.late_ms).unwrap_or(i64::MAX),
            floor_us,
            line_no: (1..).take(lines.len()).collect(),
            products: lines.iter().map(|l| l.product_id).collect(),
            qty: lines.iter().map(|l| l.qty).collect(),
            unit_cents: lines.iter().map(|l| l.unit_cents).collect(),
            card_owner: attempts.iter().map(|a| a.card_owner).collect(),
            country: attempts.iter().map(|a| a.country.as_str()).collect(),
            amount_cents: attempts.iter().map(|a| a.amount_cents).collect(),
            succeeded: attempts.iter().map(|a| a.succeeded).collect(),
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 16] {
        [
            &self.order.id,
            &self.order.customer_id,
            &self.order.status,
            &self.total,
            &self.late_ms,
            &self.floor_us,
            &self.line_no,
            &self.products,
            &self.qty,
            &self.unit_cents,
            &self.order.warehouse_id,
            &self.order.shipped,
            &self.card_owner,
            &self.country,
            &self.amount_cents,
            &self.succeeded,
        ]
    }
}
