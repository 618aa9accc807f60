//! What the shop does, one source transaction at a time: the [`Planner`] turns a seeded random
//! stream into [`Event`]s, keeping its own model of the stock so that every sale it plans can
//! be shipped. It does no I/O; the generator (`crate::generator`) writes each event as one
//! transaction.
//!
//! The traffic, per ten thousand events:
//!
//! - orders (the rest, about 95%): a customer buys 1 to 4 products (demand is skewed towards
//!   the first products of the catalog) from one warehouse (60% the online one); each line
//!   ships at most the stock on hand there (a line with nothing on hand is dropped), and the
//!   order, its lines, one `sale` movement per line (negative delta) and its payment attempts
//!   are one transaction. 3% of orders have a declined attempt before the one that succeeds;
//!   5% are late: a store uploads them 1 to 10 minutes after they were placed, so their
//!   `ordered_at`, `moved_at` and `attempted_at` are in the past.
//! - 200 cancellations of a recent order (status `cancelled`, a `return` movement per line),
//!   10 refunds of a recent order (status `refunded`, nothing goes back to stock);
//! - 150 new customers, 50 price changes (within 10% of the price);
//! - fraud: 5 card-testing runs (an order left `pending` while a card from another country is
//!   declined 6 to 9 times, 0.5 to 2 seconds apart, then the order is cancelled: the
//!   `fraud_card_velocity` view flags it) and 10 country hops (a card that just paid at home
//!   pays again from another country: `fraud_card_countries`); three customers, chosen by the
//!   seed, order big baskets about every 75 seconds and have 60% of their orders refunded a
//!   few seconds later (`fraud_refund_share`).
//!
//! Other customers are picked uniformly, so the customer base must be large for the rate
//! (`crate::generator` sizes it) for them to stay below the fraud views' thresholds.
//!
//! When a sale leaves a warehouse with less than the product's `reorder_at`, a `receipt`
//! restocking it is planned for 2 to 6 seconds later. Time is counted in events, converted
//! with the rate the events are sent at, so the same seed plans the same events at any rate.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt as _, SeedableRng as _};

use crate::shop::{COUNTRIES, Customer, Shop};

/// Per ten thousand events: cancellations of a recent order.
const CANCELS: u32 = 200;
/// Per ten thousand events: refunds of a recent order.
const REFUNDS: u32 = 10;
/// Per ten thousand events: new customers.
const SIGNUPS: u32 = 150;
/// Per ten thousand events: price changes.
const REPRICES: u32 = 50;
/// Per ten thousand events: card-testing runs started.
const CARD_TESTS: u32 = 5;
/// Per ten thousand events: a card used again from another country.
const COUNTRY_HOPS: u32 = 10;
/// Share of orders placed with the online warehouse.
const ONLINE_SHARE: f64 = 0.6;
/// Share of orders uploaded late, and how late (milliseconds).
const LATE_SHARE: f64 = 0.05;
const LATE_MS: std::ops::RangeInclusive<u64> = 60_000..=600_000;
/// Share of orders with a declined attempt before the successful one.
const DECLINE_SHARE: f64 = 0.03;
/// How strongly demand favours the first products: a product's index is `n * u^SKEW` for a
/// uniform `u`, so with 200 products the first ten take about 15% of the lines.
const SKEW: f64 = 1.6;
/// Customers who refund most of what they buy, and how much of it.
const ABUSERS: usize = 3;
const ABUSER_REFUND_SHARE: f64 = 0.6;
/// Seconds between two orders of one abuser, on average: under the 5 attempts in 5 minutes
/// that `fraud_card_velocity` flags.
const ABUSER_ORDER_INTERVAL_S: f64 = 75.0;
/// Card-testing runs: declined attempts in a run, and seconds between them. Any run stays well
/// inside the 5 minutes of `fraud_card_velocity` and above its 5 attempts.
const CARD_TEST_ATTEMPTS: std::ops::RangeInclusive<u32> = 6..=9;
const CARD_TEST_GAP_S: std::ops::Range<f64> = 0.5..2.0;
/// Seconds between a sale that leaves stock below `reorder_at` and the receipt restocking it.
const RESTOCK_LEAD_S: std::ops::Range<f64> = 2.0..6.0;
/// Seconds between an abuser's order and its refund.
const ABUSE_REFUND_S: std::ops::Range<f64> = 2.0..10.0;
/// Recent orders kept for cancellations, refunds and country hops.
const RECENT_ORDERS: usize = 500;
/// Country hops reuse a card from one of the last few orders (seconds old: well inside the 10
/// minutes of `fraud_card_countries`).
const HOP_RECENT: usize = 20;

/// One source transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An order with its lines, its sale movements (when shipped) and payment attempts.
    Order(Order),
    /// A further payment attempt on an open order, at the time it is written.
    Attempt(Attempt),
    /// The order is cancelled; what it shipped comes back (`return` movements).
    Cancel {
        order_id: i64,
        warehouse_id: i32,
        returns: Vec<(i64, i32)>,
    },
    /// The order is refunded; the goods stay with the customer.
    Refund { order_id: i64 },
    /// A supplier delivery (`receipt` movement).
    Receipt {
        product_id: i64,
        warehouse_id: i32,
        qty: i32,
    },
    /// A new customer.
    Signup { customer_id: i64, country: String },
    /// A price change.
    Reprice { product_id: i64, price_cents: i64 },
}

/// Why an order was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    Regular,
    /// Uploaded late: its times are `late_ms` in the past.
    Late,
    /// Paid with a card that just paid from its home country, from another country.
    CountryHop,
    /// The first declined attempt of a card-testing run; the order stays `pending`.
    CardTest,
}

/// A planned order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: i64,
    pub customer_id: i64,
    /// `paid`, or `pending` while a card is being tested.
    pub status: &'static str,
    pub warehouse_id: i32,
    pub lines: Vec<Line>,
    /// Sale movements are written (the goods left the warehouse).
    pub shipped: bool,
    /// How long ago it was placed (0: now).
    pub late_ms: u64,
    pub attempts: Vec<Attempt>,
    pub pattern: Pattern,
    /// Lines the customer wanted but the warehouse had nothing of.
    pub short_lines: u32,
}

impl Order {
    pub fn total_cents(&self) -> i64 {
        self.lines
            .iter()
            .map(|l| i64::from(l.qty) * l.unit_cents)
            .sum()
    }
}

/// An order line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub product_id: i64,
    pub qty: i32,
    pub unit_cents: i64,
}

/// A payment attempt with the card of `card_owner`, made from `country`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub order_id: i64,
    pub card_owner: i64,
    pub country: String,
    pub amount_cents: i64,
    pub succeeded: bool,
}

/// An order that shipped, as long as it may still be cancelled or refunded.
#[derive(Debug, Clone)]
struct Placed {
    id: i64,
    customer_id: i64,
    country: String,
    warehouse_id: i32,
    lines: Vec<(i64, i32)>,
    /// Placed minutes ago: its payment is too old to pair with a country hop.
    late: bool,
}

/// Plans the shop's events from a seed.
pub struct Planner {
    rng: Xoshiro256PlusPlus,
    shop: Shop,
    ticks_per_second: f64,
    /// Events planned so far.
    tick: u64,
    /// Planned for later, by (tick due, order of planning).
    scheduled: BTreeMap<(u64, u64), Event>,
    planned: u64,
    /// Product and warehouse pairs with a receipt on its way.
    restocking: BTreeSet<(i64, i32)>,
    recent: VecDeque<Placed>,
    abusers: Vec<i64>,
    next_order_id: i64,
    next_customer_id: i64,
}

impl Planner {
    /// A planner for `shop`, whose events will be sent at `events_per_second`.
    pub fn new(shop: Shop, seed: u64, events_per_second: f64) -> Planner {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut abusers = Vec::new();
        while abusers.len() < ABUSERS.min(shop.customers.len()) {
            let c = shop.customers[rng.random_range(0..shop.customers.len())].id;
            if !abusers.contains(&c) {
                abusers.push(c);
            }
        }
        Planner {
            rng,
            next_order_id: shop.max_order_id + 1,
            next_customer_id: shop.max_customer_id + 1,
            shop,
            ticks_per_second: events_per_second.max(1.0),
            tick: 0,
            scheduled: BTreeMap::new(),
            planned: 0,
            restocking: BTreeSet::new(),
            recent: VecDeque::new(),
            abusers,
        }
    }

    /// The shop as the events planned so far leave it.
    pub fn shop(&self) -> &Shop {
        &self.shop
    }

    /// The customers who refund most of their orders.
    pub fn abusers(&self) -> &[i64] {
        &self.abusers
    }

    /// The next event.
    pub fn next_event(&mut self) -> Event {
        self.tick += 1;
        if let Some(event) = self.due() {
            return event;
        }
        let roll = self.rng.random_range(0..10_000u32);
        let mut bound = 0;
        let mut within = |per_10k| {
            bound += per_10k;
            roll < bound
        };
        let planned = if within(CANCELS) {
            self.cancel()
        } else if within(REFUNDS) {
            self.refund()
        } else if within(SIGNUPS) {
            Some(self.signup())
        } else if within(REPRICES) {
            Some(self.reprice())
        } else if within(CARD_TESTS) {
            Some(self.card_test())
        } else if within(COUNTRY_HOPS) {
            self.country_hop()
        } else {
            None
        };
        planned
            .or_else(|| self.order())
            .unwrap_or_else(|| self.signup())
    }

    /// A scheduled event whose time has come.
    fn due(&mut self) -> Option<Event> {
        let (&key, _) = self.scheduled.first_key_value()?;
        if key.0 > self.tick {
            return None;
        }
        let event = self.scheduled.remove(&key)?;
        if let Event::Receipt {
            product_id,
            warehouse_id,
            qty,
        } = &event
        {
            *self
                .shop
                .stock
                .entry((*product_id, *warehouse_id))
                .or_default() += i64::from(*qty);
            self.restocking.remove(&(*product_id, *warehouse_id));
        }
        Some(event)
    }

    fn schedule(&mut self, after_ticks: u64, event: Event) {
        self.planned += 1;
        self.scheduled
            .insert((self.tick + after_ticks.max(1), self.planned), event);
    }

    /// A random delay in `seconds`, in events.
    fn ticks(&mut self, seconds: std::ops::Range<f64>) -> u64 {
        let s = self.rng.random_range(seconds);
        ((s * self.ticks_per_second).round() as u64).max(1)
    }

    fn customer(&mut self) -> Customer {
        self.shop.customers[self.rng.random_range(0..self.shop.customers.len())].clone()
    }

    fn other_country(&mut self, than: &str) -> String {
        let others: Vec<&str> = COUNTRIES.iter().copied().filter(|c| *c != than).collect();
        others[self.rng.random_range(0..others.len())].to_owned()
    }

    fn warehouse(&mut self) -> i32 {
        let online = self.rng.random_bool(ONLINE_SHARE);
        let choice: Vec<i32> = self
            .shop
            .warehouses
            .iter()
            .filter(|w| w.online == online)
            .map(|w| w.id)
            .collect();
        let choice = if choice.is_empty() {
            self.shop.warehouses.iter().map(|w| w.id).collect()
        } else {
            choice
        };
        choice[self.rng.random_range(0..choice.len())]
    }

    /// A product index, skewed towards the first products.
    fn product_index(&mut self) -> usize {
        let u: f64 = self.rng.random();
        let n = self.shop.products.len();
        ((n as f64 * u.powf(SKEW)) as usize).min(n - 1)
    }

    /// Lines of up to `wanted` distinct products from `warehouse`, each shipping what is on
    /// hand, taken from the stock (and restocking planned where it runs low).
    fn pick_lines(&mut self, warehouse: i32, wanted: usize) -> (Vec<Line>, u32) {
        let mut lines: Vec<Line> = Vec::with_capacity(wanted);
        let mut short = 0;
        for _ in 0..wanted {
            let index = self.product_index();
            let product = self.shop.products[index].clone();
            if lines.iter().any(|l| l.product_id == product.id) {
                continue;
            }
            let want = self.rng.random_range(1..=3i64);
            let on_hand = self
                .shop
                .stock
                .get(&(product.id, warehouse))
                .copied()
                .unwrap_or(0);
            let qty = want.min(on_hand);
            if qty <= 0 {
                short += 1;
                continue;
            }
            let left = on_hand - qty;
            self.shop.stock.insert((product.id, warehouse), left);
            if left < i64::from(product.reorder_at)
                && self.restocking.insert((product.id, warehouse))
            {
                let qty = 40 + product.reorder_at * 4 + self.rng.random_range(0..=40);
                let lead = self.ticks(RESTOCK_LEAD_S);
                self.schedule(
                    lead,
                    Event::Receipt {
                        product_id: product.id,
                        warehouse_id: warehouse,
                        qty,
                    },
                );
            }
            lines.push(Line {
                product_id: product.id,
                qty: i32::try_from(qty).expect("at most 3 units per line"),
                unit_cents: product.price_cents,
            });
        }
        (lines, short)
    }

    fn new_order_id(&mut self) -> i64 {
        let id = self.next_order_id;
        self.next_order_id += 1;
        id
    }

    /// A regular (possibly late) order; `None` when nothing wanted is on hand.
    fn order(&mut self) -> Option<Event> {
        let abuser_share =
            self.abusers.len() as f64 / (ABUSER_ORDER_INTERVAL_S * self.ticks_per_second);
        let abuser = !self.abusers.is_empty() && self.rng.random_bool(abuser_share.min(1.0));
        let customer = if abuser {
            let id = self.abusers[self.rng.random_range(0..self.abusers.len())];
            Customer {
                id,
                country: self.shop.country_of(id).to_owned(),
            }
        } else {
            self.customer()
        };
        let warehouse = self.warehouse();
        let wanted = if abuser {
            4
        } else {
            [1, 1, 1, 1, 2, 2, 2, 3, 3, 4][self.rng.random_range(0..10)]
        };
        let (lines, short_lines) = self.pick_lines(warehouse, wanted);
        if lines.is_empty() {
            return None;
        }
        let id = self.new_order_id();
        let late_ms = if self.rng.random_bool(LATE_SHARE) {
            self.rng.random_range(LATE_MS)
        } else {
            0
        };
        let mut order = Order {
            id,
            customer_id: customer.id,
            status: "paid",
            warehouse_id: warehouse,
            lines,
            shipped: true,
            late_ms,
            attempts: Vec::new(),
            pattern: if late_ms > 0 {
                Pattern::Late
            } else {
                Pattern::Regular
            },
            short_lines,
        };
        let amount = order.total_cents();
        let attempt = |succeeded| Attempt {
            order_id: id,
            card_owner: customer.id,
            country: customer.country.clone(),
            amount_cents: amount,
            succeeded,
        };
        if self.rng.random_bool(DECLINE_SHARE) {
            order.attempts.push(attempt(false));
        }
        order.attempts.push(attempt(true));
        if self.abusers.contains(&customer.id) {
            if self.rng.random_bool(ABUSER_REFUND_SHARE) {
                let after = self.ticks(ABUSE_REFUND_S);
                self.schedule(after, Event::Refund { order_id: id });
            }
        } else {
            self.remember(&order, &customer.country);
        }
        Some(Event::Order(order))
    }

    fn remember(&mut self, order: &Order, country: &str) {
        if self.recent.len() == RECENT_ORDERS {
            self.recent.pop_front();
        }
        self.recent.push_back(Placed {
            id: order.id,
            customer_id: order.customer_id,
            country: country.to_owned(),
            warehouse_id: order.warehouse_id,
            lines: order.lines.iter().map(|l| (l.product_id, l.qty)).collect(),
            late: order.late_ms > 0,
        });
    }

    /// A recent order, taken out of the recent ones.
    fn take_recent(&mut self) -> Option<Placed> {
        if self.recent.is_empty() {
            return None;
        }
        let i = self.rng.random_range(0..self.recent.len());
        self.recent.remove(i)
    }

    fn cancel(&mut self) -> Option<Event> {
        let placed = self.take_recent()?;
        for (product, qty) in &placed.lines {
            *self
                .shop
                .stock
                .entry((*product, placed.warehouse_id))
                .or_default() += i64::from(*qty);
        }
        Some(Event::Cancel {
            order_id: placed.id,
            warehouse_id: placed.warehouse_id,
            returns: placed.lines,
        })
    }

    fn refund(&mut self) -> Option<Event> {
        let placed = self.take_recent()?;
        Some(Event::Refund {
            order_id: placed.id,
        })
    }

    fn signup(&mut self) -> Event {
        let id = self.next_customer_id;
        self.next_customer_id += 1;
        let country = COUNTRIES[self.rng.random_range(0..COUNTRIES.len())].to_owned();
        self.shop.customers.push(Customer {
            id,
            country: country.clone(),
        });
        Event::Signup {
            customer_id: id,
            country,
        }
    }

    fn reprice(&mut self) -> Event {
        let i = self.rng.random_range(0..self.shop.products.len());
        let factor = self.rng.random_range(0.9..1.1);
        let product = &mut self.shop.products[i];
        let mut price = ((product.price_cents as f64 * factor).round() as i64).max(99);
        if price == product.price_cents {
            price += 1;
        }
        product.price_cents = price;
        Event::Reprice {
            product_id: product.id,
            price_cents: price,
        }
    }

    /// A card from another country declined again and again on a pending order, which is
    /// then cancelled.
    fn card_test(&mut self) -> Event {
        let customer = self.customer();
        let owner = self.customer();
        let country = self.other_country(&owner.country);
        let product =
            self.shop.products[self.rng.random_range(0..self.shop.products.len())].clone();
        let id = self.new_order_id();
        let warehouse = self.warehouse();
        let attempt = Attempt {
            order_id: id,
            card_owner: owner.id,
            country,
            amount_cents: product.price_cents,
            succeeded: false,
        };
        let attempts = self.rng.random_range(CARD_TEST_ATTEMPTS);
        let mut after = 0;
        for _ in 1..attempts {
            after += self.ticks(CARD_TEST_GAP_S);
            self.schedule(after, Event::Attempt(attempt.clone()));
        }
        after += self.ticks(CARD_TEST_GAP_S);
        self.schedule(
            after,
            Event::Cancel {
                order_id: id,
                warehouse_id: warehouse,
                returns: Vec::new(),
            },
        );
        Event::Order(Order {
            id,
            customer_id: customer.id,
            status: "pending",
            warehouse_id: warehouse,
            lines: vec![Line {
                product_id: product.id,
                qty: 1,
                unit_cents: product.price_cents,
            }],
            shipped: false,
            late_ms: 0,
            attempts: vec![attempt],
            pattern: Pattern::CardTest,
            short_lines: 0,
        })
    }

    /// Someone else pays with the card of a customer who just ordered at home, from another
    /// country. The order is not remembered: its card is not the buyer's to hop with.
    fn country_hop(&mut self) -> Option<Event> {
        let from = self.recent.len().saturating_sub(HOP_RECENT);
        let candidates: Vec<usize> = (from..self.recent.len())
            .filter(|i| !self.recent[*i].late)
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let victim = self.recent[candidates[self.rng.random_range(0..candidates.len())]].clone();
        let buyer = self.customer();
        let country = self.other_country(&victim.country);
        let warehouse = self.warehouse();
        let (lines, short_lines) = self.pick_lines(warehouse, 2);
        if lines.is_empty() {
            return None;
        }
        let id = self.new_order_id();
        let mut order = Order {
            id,
            customer_id: buyer.id,
            status: "paid",
            warehouse_id: warehouse,
            lines,
            shipped: true,
            late_ms: 0,
            attempts: Vec::new(),
            pattern: Pattern::CountryHop,
            short_lines,
        };
        order.attempts.push(Attempt {
            order_id: id,
            card_owner: victim.customer_id,
            country,
            amount_cents: order.total_cents(),
            succeeded: true,
        });
        Some(Event::Order(order))
    }
}

/// What the events sent so far add up to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events, each one source transaction.
    pub transactions: u64,
    pub orders: u64,
    pub late_orders: u64,
    pub order_lines: u64,
    pub units_sold: u64,
    pub payments: u64,
    pub declined: u64,
    pub cancellations: u64,
    pub refunds: u64,
    pub receipts: u64,
    pub units_received: u64,
    pub units_returned: u64,
    /// Rows written to `inventory_movements`.
    pub movements: u64,
    pub signups: u64,
    pub reprices: u64,
    pub card_tests: u64,
    pub country_hops: u64,
    /// Order lines dropped because the warehouse had nothing of the product.
    pub short_lines: u64,
}

impl Stats {
    /// Counts an event that was written.
    pub fn record(&mut self, event: &Event) {
        self.transactions += 1;
        match event {
            Event::Order(order) => {
                self.orders += 1;
                self.order_lines += order.lines.len() as u64;
                self.short_lines += u64::from(order.short_lines);
                if order.shipped {
                    self.movements += order.lines.len() as u64;
                    self.units_sold += order.lines.iter().map(|l| l.qty as u64).sum::<u64>();
                }
                self.payments += order.attempts.len() as u64;
                self.declined += order.attempts.iter().filter(|a| !a.succeeded).count() as u64;
                match order.pattern {
                    Pattern::Regular => {}
                    Pattern::Late => self.late_orders += 1,
                    Pattern::CountryHop => self.country_hops += 1,
                    Pattern::CardTest => self.card_tests += 1,
                }
            }
            Event::Attempt(attempt) => {
                self.payments += 1;
                self.declined += u64::from(!attempt.succeeded);
            }
            Event::Cancel { returns, .. } => {
                self.cancellations += 1;
                self.movements += returns.len() as u64;
                self.units_returned += returns.iter().map(|(_, q)| *q as u64).sum::<u64>();
            }
            Event::Refund { .. } => self.refunds += 1,
            Event::Receipt { qty, .. } => {
                self.receipts += 1;
                self.movements += 1;
                self.units_received += *qty as u64;
            }
            Event::Signup { .. } => self.signups += 1,
            Event::Reprice { .. } => self.reprices += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::shop::{Product, Warehouse};

    /// The shop of `tests/demo/retail.sql`, built the same way.
    fn retail() -> Shop {
        let products: Vec<Product> = (1..=200)
            .map(|g: i64| Product {
                id: g,
                price_cents: (5 + (g * 37) % 200) * 100 + 99,
                reorder_at: 10 + (g % 15) as i32,
            })
            .collect();
        let warehouses = vec![
            Warehouse {
                id: 1,
                online: true,
            },
            Warehouse {
                id: 2,
                online: false,
            },
            Warehouse {
                id: 3,
                online: false,
            },
        ];
        let mut stock = BTreeMap::new();
        for p in &products {
            for w in &warehouses {
                stock.insert((p.id, w.id), 20 + (p.id * i64::from(w.id) * 7) % 80);
            }
        }
        Shop {
            products,
            customers: (1..=500)
                .map(|g: i64| Customer {
                    id: g,
                    country: COUNTRIES[(g % 4) as usize].to_owned(),
                })
                .collect(),
            warehouses,
            stock,
            max_order_id: 1000,
            max_customer_id: 500,
            opening_floor_us: 0,
        }
    }

    fn plan(seed: u64, n: usize, rate: f64) -> (Vec<Event>, Planner) {
        let mut planner = Planner::new(retail(), seed, rate);
        let events = (0..n).map(|_| planner.next_event()).collect();
        (events, planner)
    }

    #[test]
    fn the_same_seed_plans_the_same_events() {
        let (a, _) = plan(7, 3000, 100.0);
        let (b, _) = plan(7, 3000, 100.0);
        let (c, _) = plan(8, 3000, 100.0);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    /// Replays the movements the events write on the opening stock: nothing goes below zero,
    /// every shipped line has its sale movement, and the result is the planner's own stock.
    #[test]
    fn stock_follows_the_movements_and_never_goes_negative() {
        let (events, planner) = plan(1, 20_000, 100.0);
        let mut stock = retail().stock;
        let mut orders: HashMap<i64, &Order> = HashMap::new();
        let mut changed = BTreeSet::new();
        for event in &events {
            let mut moves: Vec<(i64, i32, i64)> = Vec::new();
            match event {
                Event::Order(o) => {
                    assert!(!o.lines.is_empty());
                    assert!(
                        o.attempts.iter().all(|a| a.amount_cents == o.total_cents()),
                        "payments are for the order's total"
                    );
                    if o.shipped {
                        moves.extend(
                            o.lines
                                .iter()
                                .map(|l| (l.product_id, o.warehouse_id, -i64::from(l.qty))),
                        );
                    }
                    orders.insert(o.id, o);
                }
                Event::Cancel {
                    order_id,
                    warehouse_id,
                    returns,
                } => {
                    let o = orders[order_id];
                    assert_eq!(o.warehouse_id, *warehouse_id);
                    let shipped: Vec<(i64, i32)> = if o.shipped {
                        o.lines.iter().map(|l| (l.product_id, l.qty)).collect()
                    } else {
                        Vec::new()
                    };
                    assert_eq!(
                        returns, &shipped,
                        "returns are what order {order_id} shipped"
                    );
                    moves.extend(
                        returns
                            .iter()
                            .map(|(p, q)| (*p, *warehouse_id, i64::from(*q))),
                    );
                }
                Event::Receipt {
                    product_id,
                    warehouse_id,
                    qty,
                } => moves.push((*product_id, *warehouse_id, i64::from(*qty))),
                _ => {}
            }
            for (p, w, delta) in moves {
                let on_hand = stock.get_mut(&(p, w)).expect("an opening count");
                *on_hand += delta;
                assert!(*on_hand >= 0, "product {p} in warehouse {w} went negative");
                changed.insert((p, w));
            }
        }
        assert_eq!(stock, planner.shop().stock);
        assert!(changed.len() > 300, "only {} pairs moved", changed.len());
    }

    #[test]
    fn low_stock_is_restocked() {
        let (events, planner) = plan(2, 20_000, 100.0);
        let receipts = events
            .iter()
            .filter(|e| matches!(e, Event::Receipt { .. }))
            .count();
        assert!(receipts > 50, "{receipts} receipts");
        // Whatever is below its reorder level now has a receipt on the way.
        for p in &planner.shop().products {
            for w in 1..=3 {
                if planner.shop().stock[&(p.id, w)] < i64::from(p.reorder_at) {
                    assert!(planner.restocking.contains(&(p.id, w)), "{} in {w}", p.id);
                }
            }
        }
    }

    #[test]
    fn card_tests_decline_more_than_five_times_within_five_minutes() {
        let rate = 50.0;
        let (events, _) = plan(3, 40_000, rate);
        let mut runs: HashMap<i64, Vec<usize>> = HashMap::new();
        let mut cancelled = BTreeSet::new();
        for (i, e) in events.iter().enumerate() {
            match e {
                Event::Order(o) if o.pattern == Pattern::CardTest => {
                    assert_eq!(o.status, "pending");
                    assert!(!o.shipped);
                    runs.entry(o.id).or_default().push(i);
                }
                Event::Attempt(a) => {
                    assert!(!a.succeeded);
                    runs.get_mut(&a.order_id).expect("a run").push(i);
                }
                Event::Cancel {
                    order_id, returns, ..
                } if runs.contains_key(order_id) => {
                    assert!(returns.is_empty());
                    cancelled.insert(*order_id);
                }
                _ => {}
            }
        }
        // Runs started in the last half minute may not be over.
        let finished: Vec<_> = runs
            .iter()
            .filter(|(id, _)| cancelled.contains(*id))
            .collect();
        assert!(finished.len() >= 10, "{} runs", finished.len());
        for (id, at) in finished {
            assert!(at.len() > 5, "order {id}: {} attempts", at.len());
            let seconds = (at[at.len() - 1] - at[0]) as f64 / rate;
            assert!(seconds < 300.0, "order {id}: {seconds} s");
        }
    }

    #[test]
    fn country_hops_use_a_recent_card_from_another_country() {
        let (events, planner) = plan(4, 30_000, 100.0);
        let mut last_home_payment: HashMap<i64, (usize, String)> = HashMap::new();
        let mut hops = 0;
        for (i, e) in events.iter().enumerate() {
            let Event::Order(o) = e else { continue };
            for a in &o.attempts {
                if o.pattern == Pattern::CountryHop {
                    hops += 1;
                    let owner_country = planner.shop().country_of(a.card_owner);
                    assert_ne!(a.country, owner_country);
                    let (at, country) = &last_home_payment[&a.card_owner];
                    assert_eq!(country, owner_country);
                    assert!(
                        i - at < 6_000,
                        "the card paid at home {} events ago",
                        i - at
                    );
                } else if o.pattern != Pattern::CardTest {
                    last_home_payment.insert(a.card_owner, (i, a.country.clone()));
                }
            }
        }
        assert!(hops >= 15, "{hops} hops");
    }

    #[test]
    fn abusers_refund_more_than_a_fifth_and_others_do_not() {
        let (events, planner) = plan(5, 60_000, 100.0);
        let mut bought: HashMap<i64, i64> = HashMap::new();
        let mut owner: HashMap<i64, (i64, i64)> = HashMap::new();
        let mut refunded: HashMap<i64, i64> = HashMap::new();
        for e in &events {
            match e {
                Event::Order(o) if o.status == "paid" => {
                    *bought.entry(o.customer_id).or_default() += o.total_cents();
                    owner.insert(o.id, (o.customer_id, o.total_cents()));
                }
                Event::Refund { order_id } => {
                    let (c, total) = owner[order_id];
                    *refunded.entry(c).or_default() += total;
                }
                _ => {}
            }
        }
        let share = |c: &i64| *refunded.get(c).unwrap_or(&0) as f64 / bought[c] as f64;
        for c in planner.abusers() {
            assert!(share(c) > 0.3, "abuser {c}: {}", share(c));
        }
        let others: Vec<f64> = bought
            .keys()
            .filter(|c| !planner.abusers().contains(c))
            .map(share)
            .collect();
        let flagged = others.iter().filter(|s| **s > 0.2).count();
        assert!(
            flagged * 10 < others.len(),
            "{flagged} of {} regular customers refund over 20%",
            others.len()
        );
    }

    #[test]
    fn some_orders_are_late_by_one_to_ten_minutes() {
        let (events, _) = plan(6, 20_000, 100.0);
        let orders: Vec<&Order> = events
            .iter()
            .filter_map(|e| match e {
                Event::Order(o) => Some(o),
                _ => None,
            })
            .collect();
        let late: Vec<&&Order> = orders.iter().filter(|o| o.late_ms > 0).collect();
        assert!(late.iter().all(|o| o.pattern == Pattern::Late));
        assert!(late.iter().all(|o| LATE_MS.contains(&o.late_ms)));
        let share = late.len() as f64 / orders.len() as f64;
        assert!((0.03..0.07).contains(&share), "{share}");
    }

    #[test]
    fn stats_count_what_the_events_write() {
        let (events, _) = plan(9, 5_000, 100.0);
        let mut stats = Stats::default();
        for e in &events {
            stats.record(e);
        }
        let sales: u64 = events
            .iter()
            .map(|e| match e {
                Event::Order(o) if o.shipped => o.lines.len() as u64,
                _ => 0,
            })
            .sum();
        assert_eq!(stats.transactions, 5_000);
        assert_eq!(
            stats.movements,
            sales
                + stats.receipts
                + events
                    .iter()
                    .map(|e| match e {
                        Event::Cancel { returns, .. } => returns.len() as u64,
                        _ => 0,
                    })
                    .sum::<u64>()
        );
        assert!(stats.orders > 4_000 && stats.cancellations > 0 && stats.signups > 0);
    }
}
