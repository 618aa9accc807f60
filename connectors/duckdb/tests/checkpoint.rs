//! The checkpoint row: stored with the data, read back by `open`.

use sluice_core::pg_type::oid;
use sluice_core::{Batch, Checkpoint, DeleteMode, Destination, LogPosition, Lsn};
use sluice_duckdb::DuckDbConfig;

use crate::support::*;

#[tokio::test]
async fn round_trips_through_open() {
    let mut f = Fixture::new(DeleteMode::Soft);
    assert_eq!(f.reopen().await, None, "a fresh file has no checkpoint");

    let r = rel("public", "t", 1, &[("id", oid::INT4, -1, true)]);
    let (batch, mut cp) = build(
        41,
        &[txn(0x16_B374_D848, vec![ins(&r, vals(&[Some("1")]))])],
    );
    cp.position
        .partitions
        .insert("shard-\"2\"".into(), "4957'1".into());
    f.try_apply(&batch, &cp).await.unwrap();
    assert_eq!(f.reopen().await, Some(cp.clone()));
    assert_eq!(
        f.lines("SELECT pipeline, applied_lsn, applied_lsn_text, applied_commit_ts FROM raw._sluice_checkpoints"),
        vec![format!(
            "main|{}|16/B374D849|{}",
            0x16_B374_D849u64,
            "2024-01-01 00:00:00+00"
        )
        .replace("2024-01-01 00:00:00+00", &commit_text(0x16_B374_D848))]
    );

    // An empty batch still moves the checkpoint; LSNs above 2^63 survive bit for bit.
    let later = Checkpoint {
        position: LogPosition::single("0", 99),
        applied_lsn: Lsn(u64::MAX - 1),
        applied_commit_ts: -1,
        parked: Vec::new(),
    };
    f.try_apply(&Batch::default(), &later).await.unwrap();
    assert_eq!(f.reopen().await, Some(later));
}

fn commit_text(lsn: u64) -> String {
    // txn() puts the commit `lsn` seconds after 2024-01-01 00:00:00 UTC.
    let conn = duckdb::Connection::open_in_memory().unwrap();
    conn.query_row(
        &format!("SELECT (TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds({lsn}))::VARCHAR"),
        [],
        |r| r.get::<_, String>(0),
    )
    .unwrap()
}

#[tokio::test]
async fn pipelines_are_kept_apart() {
    let dir = tempfile::tempdir().unwrap();
    let config = DuckDbConfig::new(dir.path().join("w.duckdb"));
    let mut a = sluice_duckdb::destination(config.clone()).unwrap();
    assert_eq!(a.open("a").await.unwrap(), None);
    let cp = Checkpoint {
        position: LogPosition::single("0", 7),
        applied_lsn: Lsn(70),
        applied_commit_ts: 1,
        parked: Vec::new(),
    };
    a.apply(Batch::default(), &cp).await.unwrap();
    drop(a);
    let mut b = sluice_duckdb::destination(config).unwrap();
    assert_eq!(b.open("b").await.unwrap(), None);
    assert_eq!(b.open("a").await.unwrap(), Some(cp));
}
