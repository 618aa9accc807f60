//! The replication client against a real server: commands, exported snapshots, streaming,
//! standby status updates.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sluice_core::{ErrorClass, Lsn};
use sluice_postgres::{
    ReplicationClient, SlotOptions, SnapshotAction, connect, publication_names, quote_ident,
};
use sluice_testkit::{PgCluster, TestDatabase};

use crate::support::{PATIENCE, slot_name, source, within};

async fn database() -> TestDatabase {
    PgCluster::shared()
        .fresh_database()
        .await
        .expect("fresh database")
}

async fn replication(db: &TestDatabase) -> ReplicationClient {
    ReplicationClient::connect(&source(&db.url()))
        .await
        .expect("replication connection")
}

/// Microseconds since 2000-01-01, PostgreSQL's epoch.
fn pg_now() -> i64 {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros();
    i64::try_from(unix).expect("fits") - 946_684_800_000_000
}

/// A standby status update ('r'), encoded by hand.
fn status_update(lsn: Lsn) -> Vec<u8> {
    let mut m = vec![b'r'];
    for _ in 0..3 {
        m.extend_from_slice(&lsn.0.to_be_bytes()); // write, flush, apply
    }
    m.extend_from_slice(&pg_now().to_be_bytes());
    m.push(0); // no reply requested
    m
}

fn u64_at(frame: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(frame[at..at + 8].try_into().expect("8 bytes"))
}

#[tokio::test]
async fn identify_system() {
    let db = database().await;
    let mut repl = replication(&db).await;
    let id = repl.identify_system().await.expect("identify");
    assert_eq!(id.timeline, 1);
    assert!(!id.xlogpos.is_zero());
    assert_eq!(id.dbname.as_deref(), Some(db.name()));
    assert!(id.systemid.parse::<u64>().is_ok(), "{}", id.systemid);
    assert!(
        repl.parameter("server_version")
            .is_some_and(|v| v.starts_with("15"))
    );
    assert!(repl.process_id() > 0);
}

#[tokio::test]
async fn exported_snapshot_is_usable_while_the_connection_stays_open() {
    let db = database().await;
    db.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await
        .expect("setup");
    let mut repl = replication(&db).await;
    let slot = slot_name(&db, "snap");
    let created = repl
        .create_slot(&slot, &SlotOptions::default())
        .await
        .expect("create slot");
    assert_eq!(created.slot_name, slot);
    assert_eq!(created.output_plugin.as_deref(), Some("pgoutput"));
    assert!(!created.consistent_point.is_zero());
    let snapshot = created.snapshot_name.expect("exported snapshot");

    // Committed after the slot's consistent point: streamed later, not in the snapshot.
    db.execute("INSERT INTO t VALUES (2)")
        .await
        .expect("insert");

    let client = connect(&source(&db.url()))
        .await
        .expect("ordinary connection");
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT {}",
            sluice_postgres::quote_literal(&snapshot)
        ))
        .await
        .expect("import snapshot");
    let in_snapshot: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(in_snapshot, 1);
    client.batch_execute("COMMIT").await.expect("commit");
    let now: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(now, 2);

    repl.drop_slot(&slot, false).await.expect("drop slot");
}

#[tokio::test]
async fn streams_changes_and_acknowledges_them() {
    let db = database().await;
    // A hostile publication name: quoted as an identifier inside a quoted literal.
    let publication = r#"pub "x"; DROP TABLE t; -- ü"#;
    db.execute(&format!(
        "CREATE TABLE t (id int PRIMARY KEY, v text); CREATE PUBLICATION {} FOR TABLE t",
        quote_ident(publication)
    ))
    .await
    .expect("setup");
    let mut repl = replication(&db).await;
    let slot = slot_name(&db, "stream");
    let created = repl
        .create_slot(
            &slot,
            &SlotOptions {
                temporary: false,
                snapshot: SnapshotAction::Nothing,
            },
        )
        .await
        .expect("create slot");
    assert!(created.snapshot_name.is_none());
    db.execute("INSERT INTO t VALUES (1, 'one')")
        .await
        .expect("insert");

    let names = publication_names(&[publication]);
    let mut stream = repl
        .start_replication(
            &slot,
            created.consistent_point,
            &[("proto_version", "1"), ("publication_names", &names)],
        )
        .await
        .expect("start replication");

    let mut first_xlog: Option<Vec<u8>> = None;
    let mut keepalive_end = None;
    let deadline = Instant::now() + PATIENCE;
    while first_xlog.is_none() || keepalive_end.is_none() {
        assert!(
            Instant::now() < deadline,
            "no xlog data and keepalive in time"
        );
        let frame = within("a copy-data frame", stream.recv())
            .await
            .expect("recv")
            .expect("stream open");
        match frame[0] {
            b'w' => {
                assert!(frame.len() > 25, "xlog data carries a header and a message");
                first_xlog.get_or_insert_with(|| frame.to_vec());
            }
            b'k' => {
                assert_eq!(frame.len(), 18, "keepalive: k, wal end, time, reply flag");
                // Only a keepalive after the data covers the insert's commit.
                if first_xlog.is_some() {
                    keepalive_end = Some(Lsn(u64_at(&frame, 1)));
                }
            }
            other => panic!("unexpected frame {other:#04x}"),
        }
    }
    let xlog = first_xlog.expect("seen");
    // The first pgoutput message of a transaction is Begin.
    assert_eq!(xlog[25], b'B');
    let flush = keepalive_end.expect("seen");
    assert!(flush > created.consistent_point);

    stream
        .send(&status_update(flush))
        .await
        .expect("send status");
    let observer = connect(&source(&db.url())).await.expect("observer");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let confirmed: String = observer
            .query_one(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .expect("slot row")
            .get(0);
        let confirmed: Lsn = confirmed.parse().expect("lsn");
        if confirmed == flush {
            break;
        }
        assert!(
            confirmed < flush,
            "confirmed {confirmed} beyond the flush {flush} we sent"
        );
        assert!(
            Instant::now() < deadline,
            "confirmed_flush_lsn stuck at {confirmed}, sent {flush}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let mut repl = within("finish", stream.finish()).await.expect("finish");
    // The connection takes commands again, and the slot is no longer in use.
    let id = repl.identify_system().await.expect("identify after finish");
    assert!(id.xlogpos >= flush);
    repl.drop_slot(&slot, false).await.expect("drop slot");
}

#[tokio::test]
async fn server_errors_keep_the_connection_usable() {
    let db = database().await;
    db.execute("CREATE TABLE x (id int)").await.expect("setup");
    let mut repl = replication(&db).await;

    // Slot names allow only [a-z0-9_]: the server refuses the hostile name as a name, which
    // shows it arrived as one quoted identifier.
    let err = repl
        .create_slot("x'; DROP TABLE x; -- ü", &SlotOptions::default())
        .await
        .expect_err("invalid slot name");
    assert_eq!(err.sqlstate().as_deref(), Some("42602"), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Definite);
    // A double quote cannot be expressed in a replication command: refused before sending.
    let err = repl
        .create_slot(r#"x"; DROP TABLE x; --"#, &SlotOptions::default())
        .await
        .expect_err("unrepresentable slot name");
    assert!(err.sqlstate().is_none(), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Fatal);

    let err = repl
        .simple_query("DROP_REPLICATION_SLOT \"no_such_slot\"")
        .await
        .expect_err("no such slot");
    assert_eq!(err.sqlstate().as_deref(), Some("42704"), "{err:?}");
    assert!(err.to_string().contains("no_such_slot"), "{err}");
    assert_eq!(err.class(), ErrorClass::Definite);

    let err = repl
        .start_replication("no_such_slot", Lsn(0), &[])
        .await
        .expect_err("no such slot");
    assert_eq!(err.sqlstate().as_deref(), Some("42704"), "{err:?}");

    let mut repl = replication(&db).await;
    repl.identify_system().await.expect("still usable");
    let rows = db
        .query("SELECT count(*) FROM x", &[])
        .await
        .expect("table x still exists");
    assert_eq!(rows[0].get::<_, i64>(0), 0);
}

#[tokio::test]
async fn simple_query_returns_text_rows() {
    let db = database().await;
    let mut repl = replication(&db).await;
    let rows = repl
        .simple_query("SELECT 1 AS one, NULL::text AS nothing, 'it''s' AS quoted")
        .await
        .expect("query");
    assert_eq!(rows.columns, ["one", "nothing", "quoted"]);
    assert_eq!(
        rows.rows,
        vec![vec![Some("1".to_owned()), None, Some("it's".to_owned())]]
    );
}
