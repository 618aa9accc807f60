//! The shop the traffic runs in: the catalog, the customers, the warehouses and the stock on
//! hand per product and warehouse, read once from the source's retail schema
//! (`tests/demo/retail.sql`) and then kept up to date by the planner as it plans sales,
//! returns and receipts.
//!
//! Stock on hand is computed as the `stock_on_hand` view does: the `stock_snapshot` count plus
//! every movement after its `as_of`. The generator never dates an event at or before the
//! latest `as_of` (`opening_floor_us`), so its movements always count.

use std::collections::BTreeMap;

use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::warehouse::{Tally, tally_sql};

/// Countries customers live in and cards are used from.
pub const COUNTRIES: &[&str] = &["DE", "FR", "NL", "US"];

/// A product as the planner prices and restocks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: i64,
    pub price_cents: i64,
    pub reorder_at: i32,
}

/// A customer: who orders, and whose card pays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: i64,
    pub country: String,
}

/// A warehouse; `online` ones ship web orders, the others are stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warehouse {
    pub id: i32,
    pub online: bool,
}

/// What the planner knows about the shop.
#[derive(Debug, Clone, Default)]
pub struct Shop {
    /// In id order: the planner's demand is skewed towards the first ones.
    pub products: Vec<Product>,
    /// In id order (new customers get higher ids).
    pub customers: Vec<Customer>,
    pub warehouses: Vec<Warehouse>,
    /// Units on hand per (product id, warehouse id); only pairs with an opening count exist.
    pub stock: BTreeMap<(i64, i32), i64>,
    /// The highest order and customer ids in use.
    pub max_order_id: i64,
    pub max_customer_id: i64,
    /// Just after the latest opening count (`stock_snapshot.as_of`), in microseconds since
    /// the Unix epoch: no generated event is dated earlier.
    pub opening_floor_us: i64,
}

/// The stock on hand at the source, as the `stock_on_hand` view computes it.
const STOCK: &str = "
SELECT s.product_id, s.warehouse_id, (s.on_hand + coalesce(sum(m.delta), 0))::int8
FROM stock_snapshot AS s
LEFT JOIN inventory_movements AS m
       ON m.product_id = s.product_id
      AND m.warehouse_id = s.warehouse_id
      AND m.moved_at > s.as_of
GROUP BY s.product_id, s.warehouse_id, s.on_hand
ORDER BY 1, 2";

impl Shop {
    /// Reads the shop from the source's retail tables.
    pub async fn load(client: &Client) -> Result<Shop> {
        let query = |action: &'static str| {
            move |source| Error::Postgres {
                action: action.to_owned(),
                source,
            }
        };
        let products = client
            .query(
                "SELECT id, (price * 100)::int8, reorder_at FROM products ORDER BY id",
                &[],
            )
            .await
            .map_err(query("reading products"))?
            .iter()
            .map(|r| Product {
                id: r.get(0),
                price_cents: r.get(1),
                reorder_at: r.get(2),
            })
            .collect::<Vec<_>>();
        let customers = client
            .query("SELECT id, country::text FROM customers ORDER BY id", &[])
            .await
            .map_err(query("reading customers"))?
            .iter()
            .map(|r| Customer {
                id: r.get(0),
                country: r.get(1),
            })
            .collect::<Vec<_>>();
        let warehouses = client
            .query(
                "SELECT id, channel = 'online' FROM warehouses ORDER BY id",
                &[],
            )
            .await
            .map_err(query("reading warehouses"))?
            .iter()
            .map(|r| Warehouse {
                id: r.get(0),
                online: r.get(1),
            })
            .collect::<Vec<_>>();
        let stock = client
            .query(STOCK, &[])
            .await
            .map_err(query("reading stock on hand"))?
            .iter()
            .map(|r| ((r.get(0), r.get(1)), r.get(2)))
            .collect::<BTreeMap<(i64, i32), i64>>();
        let ids = client
            .query_one(
                "SELECT (SELECT coalesce(max(id), 0) FROM orders)::int8,
                        (SELECT coalesce(max(id), 0) FROM customers)::int8,
                        (SELECT (extract(epoch FROM max(as_of)) * 1000000)::int8 + 1000
                         FROM stock_snapshot)",
                &[],
            )
            .await
            .map_err(query("reading the highest ids"))?;
        let shop = Shop {
            products,
            customers,
            warehouses,
            stock,
            max_order_id: ids.get(0),
            max_customer_id: ids.get(1),
            opening_floor_us: ids.get::<_, Option<i64>>(2).unwrap_or(0),
        };
        shop.check()?;
        Ok(shop)
    }

    /// The planner needs products, customers, warehouses and opening stock.
    fn check(&self) -> Result<()> {
        let missing = [
            (self.products.is_empty(), "products"),
            (self.customers.is_empty(), "customers"),
            (self.warehouses.is_empty(), "warehouses"),
            (self.stock.is_empty(), "stock_snapshot"),
        ];
        match missing.iter().find(|(empty, _)| *empty) {
            Some((_, table)) => Err(Error::EmptyShop(table)),
            None => Ok(()),
        }
    }

    /// The country of a customer (every card belongs to one).
    pub fn country_of(&self, customer: i64) -> &str {
        self.customers
            .binary_search_by_key(&customer, |c| c.id)
            .map_or(COUNTRIES[0], |i| self.customers[i].country.as_str())
    }
}

/// The [`Tally`] of the source's tables.
pub async fn tally(client: &Client) -> Result<Tally> {
    let row = client
        .query_one(&tally_sql(|t| t.to_owned(), "true"), &[])
        .await
        .map_err(|source| Error::Postgres {
            action: "counting the source's rows".to_owned(),
            source,
        })?;
    Ok(Tally::from_values(|i| row.get(i)))
}

/// Stock on hand at the source as (product, warehouse, on hand), in key order: the
/// `stock_on_hand` view's computation.
pub async fn stock_on_hand(client: &Client) -> Result<Vec<(i64, i32, i64)>> {
    Ok(client
        .query(STOCK, &[])
        .await
        .map_err(|source| Error::Postgres {
            action: "reading stock on hand".to_owned(),
            source,
        })?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}
