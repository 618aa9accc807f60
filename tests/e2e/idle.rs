//! On an idle publication the slot keeps up with the server's WAL.

use std::time::{Duration, Instant};

use sluice_testkit::PgCluster;
use sluice_tests::Pipeline;

#[tokio::test]
async fn confirmed_flush_follows_unpublished_changes() {
    let db = PgCluster::shared()
        .fresh_database()
        .await
        .expect("database");
    db.execute("CREATE TABLE published (id int PRIMARY KEY); CREATE TABLE other (id int PRIMARY KEY, pad text);")
        .await
        .expect("schema");
    let pipeline = Pipeline::new(&db, &["public.published"], "");
    let log = pipeline.dir.path().join("sync.log");
    let mut child = pipeline.spawn_sync(&log);
    let client = db.client().await.expect("client");
    let slot = format!("s_{}", db.name());

    // Wait for streaming to start (the slot created, active and confirmed), then write only
    // to the unpublished table.
    let deadline = Instant::now() + Duration::from_secs(30);
    let before: String = loop {
        let row = client
            .query_opt(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots \
                 WHERE slot_name = $1 AND active AND confirmed_flush_lsn IS NOT NULL",
                &[&slot],
            )
            .await
            .expect("slot");
        if let Some(row) = row {
            break row.get(0);
        }
        assert!(
            Instant::now() < deadline,
            "sync never started streaming; log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for i in 0..20 {
        client
            .execute("INSERT INTO other SELECT g, repeat('x', 200) FROM generate_series($1::int * 1000, $1::int * 1000 + 999) g", &[&i])
            .await
            .expect("insert");
    }
    let written: String = client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .expect("lsn")
        .get(0);

    // The slot must reach the position written, although none of it is published.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut caught_up = false;
    while Instant::now() < deadline {
        let behind: bool = client
            .query_one(
                "SELECT confirmed_flush_lsn < $2::text::pg_lsn FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot, &written],
            )
            .await
            .expect("compare")
            .get(0);
        if !behind {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        caught_up,
        "confirmed_flush_lsn stayed behind {written} (was {before} before the writes); log: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}
