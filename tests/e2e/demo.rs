//! The retail demo: the traffic generator against the retail schema, loaded by the real
//! `sluice` binary, and the dashboard running the pipeline in-process. Stock on hand in the
//! warehouse (the `stock_on_hand` view) must equal the same computation run on the source once
//! the traffic stops and the pipeline catches up.

use std::process::Command;
use std::time::Duration;

use sluice_demo::{dashboard, generator};
use sluice_testkit::PgCluster;
use sluice_tests::{Pipeline, sluice_bin};
use tokio_util::sync::CancellationToken;

const RETAIL: &str = include_str!("../demo/retail.sql");

/// Stock on hand at the source: the opening count plus every movement after it.
const SOURCE_STOCK: &str = "
SELECT s.product_id, s.warehouse_id, s.on_hand::int8, (s.on_hand + coalesce(sum(m.delta), 0))::int8
FROM stock_snapshot AS s
LEFT JOIN inventory_movements AS m
       ON m.product_id = s.product_id AND m.warehouse_id = s.warehouse_id AND m.moved_at > s.as_of
GROUP BY s.product_id, s.warehouse_id, s.on_hand
ORDER BY 1, 2";

/// (product, warehouse, opening, on hand) from the warehouse's view.
fn warehouse_stock(wh: &duckdb::Connection) -> Vec<(i64, i32, i64, i64)> {
    let mut stmt = wh
        .prepare(
            "SELECT product_id, warehouse_id, CAST(opening AS BIGINT), CAST(on_hand AS BIGINT)
             FROM raw.stock_on_hand ORDER BY 1, 2",
        )
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query stock_on_hand")
        .map(|r| r.expect("row"))
        .collect()
}

/// Movements at the source dated after the opening count of their product and warehouse.
async fn movements_after_opening(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM inventory_movements AS m JOIN stock_snapshot AS s
               ON s.product_id = m.product_id AND s.warehouse_id = m.warehouse_id
             WHERE m.moved_at > s.as_of",
            &[],
        )
        .await
        .expect("movements")
        .get(0)
}

#[tokio::test]
async fn stock_on_hand_in_the_warehouse_equals_the_source_after_the_traffic() {
    let db = PgCluster::shared()
        .fresh_database()
        .await
        .expect("database");
    db.execute(RETAIL).await.expect("retail schema");
    let pipeline = Pipeline::new(&db, &["public.*"], "");
    // The opening stock arrives with the snapshot; the traffic's movements stream after it.
    pipeline.sync_until_caught_up();

    let client = db.client().await.expect("connect");
    let before = movements_after_opening(&client).await;
    let last_order: i64 = client
        .query_one("SELECT max(id) FROM orders", &[])
        .await
        .expect("orders")
        .get(0);
    let options = generator::Options {
        rate: 400.0,
        duration: Some(Duration::from_secs(20)),
        max_events: Some(1_200),
        seed: 42,
        customers: 5_000,
    };
    let report = generator::run(&client, &options, &CancellationToken::new(), None)
        .await
        .expect("traffic");
    let sent = &report.stats;
    assert_eq!(sent.transactions, 1_200, "{sent:?}");
    assert!(
        sent.orders > 1_000
            && sent.late_orders > 0
            && sent.receipts > 0
            && sent.cancellations > 0
            && sent.units_returned > 0,
        "{sent:?}"
    );

    pipeline.sync_until_caught_up();
    let out = Command::new(sluice_bin())
        .args(["views", "install", "-c"])
        .arg(&pipeline.config)
        .output()
        .expect("run sluice views install");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let source: Vec<(i64, i32, i64, i64)> = client
        .query(SOURCE_STOCK, &[])
        .await
        .expect("source stock")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let target = warehouse_stock(&pipeline.warehouse());
    assert_eq!(source.len(), 600, "200 products in 3 warehouses");
    assert_eq!(target.len(), source.len());
    for (s, t) in source.iter().zip(&target) {
        assert_eq!(
            s, t,
            "(product, warehouse, opening, on hand): source, then warehouse"
        );
    }

    // Not a trivial equality: the traffic moved most of the stock, and every movement it
    // wrote is dated after the opening count, so every one of them counts.
    let moved = target
        .iter()
        .filter(|(_, _, opening, on_hand)| opening != on_hand)
        .count();
    assert!(moved > 150, "only {moved} of 600 pairs moved");
    assert_eq!(
        movements_after_opening(&client).await - before,
        sent.movements as i64
    );
    let wh = pipeline.warehouse();
    let reasons: Vec<(String, i64)> = wh
        .prepare(
            "SELECT m.reason, count(*) FROM raw.inventory_movements AS m
             JOIN raw.stock_snapshot AS s USING (product_id, warehouse_id)
             WHERE m.moved_at > s.as_of AND NOT m._sluice_deleted GROUP BY 1 ORDER BY 1",
        )
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("reasons")
        .map(|r| r.expect("row"))
        .collect();
    let count = |reason: &str| {
        reasons
            .iter()
            .find(|(r, _)| r == reason)
            .map_or(0, |(_, n)| *n)
    };
    assert_eq!(count("receipt"), sent.receipts as i64, "{reasons:?}");
    assert!(count("sale") > 1_000 && count("return") > 0, "{reasons:?}");
    // Late orders landed in the minutes they were placed, before they were loaded.
    let late: i64 = wh
        .query_row(
            "SELECT count(*) FROM raw.orders
             WHERE id > ? AND _sluice_commit_ts - ordered_at > INTERVAL 50 SECOND",
            [last_order],
            |r| r.get(0),
        )
        .expect("late orders");
    assert_eq!(late, sent.late_orders as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_runs_the_pipeline_in_process_and_ends_equal_to_the_source() {
    let db = PgCluster::shared()
        .fresh_database()
        .await
        .expect("database");
    db.execute(RETAIL).await.expect("retail schema");
    let pipeline = Pipeline::new(&db, &["public.*"], "");

    let summary = dashboard::run(dashboard::Options {
        config: pipeline.config.clone(),
        rate: 50.0,
        seed: 3,
        duration: Some(Duration::from_secs(5)),
        source_url: None,
        interactive: false,
        frame: Some((120, 36)),
    })
    .await
    .expect("dashboard");

    let reconciled = summary.reconciled.expect("a run of fixed length compares");
    assert!(reconciled.matches(), "{reconciled:?}");
    assert_eq!(reconciled.stock_rows, 600);
    assert!(reconciled.source.orders > 1_000 + 100, "{reconciled:?}");
    // The figures moved between the first read and the last.
    let (first, last) = (
        summary.first.expect("a first read"),
        summary.last.expect("a last read"),
    );
    assert!(
        last.orders > first.orders,
        "{} -> {}",
        first.orders,
        last.orders
    );
    assert!(last.movements > first.movements);
    assert_eq!(last.orders, reconciled.warehouse.orders);
    assert_eq!(last.top.len(), 8);
    assert!(summary.loaded.batches > 1 && summary.loaded.changes > 1_000);
    let frame = summary.frame.expect("a frame");
    for panel in [
        "Orders per minute",
        "Revenue by window",
        "Stock on hand",
        "Fraud alerts",
        "Freshness",
        "Pipeline throughput",
        "inventory_movements",
    ] {
        assert!(frame.contains(panel), "{panel} missing:\n{frame}");
    }
}
