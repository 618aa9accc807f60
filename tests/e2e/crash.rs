//! `sluice sync` killed with SIGKILL at random points while changes stream in, restarted each
//! time: the warehouse ends equal to the source, nothing missing, nothing doubled.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sluice_testkit::PgCluster;
use sluice_tests::{Kind, Pipeline, assert_same};

const COLUMNS: &[(&str, Kind)] = &[
    ("id", Kind::Plain),
    ("account", Kind::Plain),
    ("amount", Kind::Plain),
    ("note", Kind::Plain),
];

/// Kill times after each (re)start, in milliseconds: the first lands in the snapshot, later
/// ones mid-stream and mid-batch.
const KILL_AFTER_MS: &[u64] = &[700, 1500, 900, 2300, 1100, 1700];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_and_doubles_nothing() {
    let db = PgCluster::shared()
        .fresh_database()
        .await
        .expect("database");
    db.execute(
        "CREATE TABLE ledger (id bigint PRIMARY KEY, account int NOT NULL, amount numeric(14,2), note text);
         CREATE TABLE audit (seq bigserial PRIMARY KEY, note text);
         INSERT INTO ledger SELECT g, g % 100, g * 0.5, repeat('n', 50) FROM generate_series(1, 200000) g;",
    )
    .await
    .expect("schema");
    let pipeline = Pipeline::new(
        &db,
        &["public.ledger", "public.audit"],
        "max_batch_rows = 5000",
    );
    let log = pipeline.dir.path().join("sync.log");

    // A writer that keeps changing the same rows in many small transactions.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let client = db.client().await.expect("client");
        tokio::spawn(async move {
            let mut n: i64 = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let sql = sluice_tests::ledger_transaction(
                    n,
                    sluice_tests::LedgerRanges {
                        insert_base: 300_000,
                        inserts: 10,
                        moved_base: 100_000,
                        move_by: 1_000_000,
                    },
                );
                client
                    .batch_execute(&sql)
                    .await
                    .expect("writer transaction");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            n
        })
    };

    for (round, ms) in KILL_AFTER_MS.iter().enumerate() {
        let mut child = pipeline.spawn_sync(&log);
        tokio::time::sleep(Duration::from_millis(*ms)).await;
        // SIGKILL: no chance to flush or say goodbye.
        child.kill().expect("kill sluice");
        let status = child.wait().expect("wait");
        assert!(
            !status.success(),
            "round {round}: sluice was killed, not finished"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let transactions = writer.await.expect("writer");
    assert!(
        transactions > 20,
        "the writer ran concurrently ({transactions} transactions)"
    );

    pipeline.sync_until_caught_up();
    let wh = pipeline.warehouse();
    assert_same(&db, &wh, "ledger", COLUMNS).await;
    assert_same(
        &db,
        &wh,
        "audit",
        &[("seq", Kind::Plain), ("note", Kind::Plain)],
    )
    .await;
    // Nothing doubled: one warehouse row per key, live or soft-deleted.
    let (rows, keys): (i64, i64) = wh
        .query_row(
            "SELECT count(*), count(DISTINCT id) FROM raw.ledger",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("count");
    assert_eq!(rows, keys, "duplicate keys in the warehouse");
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        log_text.contains("table copied") || log_text.contains("snapshot"),
        "sanity: the runs logged their work"
    );
}
