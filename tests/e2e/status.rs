//! `sluice status` before any sync, after one, while one runs and while WAL accumulates; and
//! `sluice teardown`: confirmation, dropping slot and publication once, refusing an active
//! slot.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_testkit::{PgCluster, TestDatabase};
use sluice_tests::{Pipeline, sluice_bin};

/// Runs `sluice <args> -c <config>` without a terminal; returns exit code, stdout, stderr.
fn sluice(pipeline: &Pipeline, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(sluice_bin())
        .args(args)
        .arg("-c")
        .arg(&pipeline.config)
        .stdin(Stdio::null())
        .output()
        .expect("run sluice");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `sluice status --json`, parsed; panics unless it exits 0.
fn status_json(pipeline: &Pipeline) -> Value {
    let (code, out, err) = sluice(pipeline, &["status", "--json"]);
    assert_eq!(code, 0, "status failed:\n{out}\n{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{out}"))
}

/// The value printed after `label` in the human output.
fn field<'a>(out: &'a str, label: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .map(str::trim)
}

async fn table_with_rows(db: &TestDatabase) {
    db.execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 100) g;",
    )
    .await
    .expect("schema");
}

async fn count(db: &TestDatabase, sql: &str, name: &str) -> i64 {
    let client = db.client().await.expect("client");
    client.query_one(sql, &[&name]).await.expect("count").get(0)
}

#[tokio::test]
async fn status_before_and_after_a_sync() {
    let db = PgCluster::shared()
        .fresh_database()
        .await
        .expect("database");
    table_with_rows(&db).await;
    let pipeline = Pipeline::new(&db, &["public.t"], "");
    let slot = format!("s_{}", db.name());

    // Before any sync: nothing exists, which is reported, not an error.
    let (code, out, err) = sluice(&pipeline, &["status"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("\"{slot}\": does not exist")),
        "{out}"
    );
    assert!(out.contains("\"sluice_pub\": does not exist"), "{out}");
    assert!(
        out.contains("does not exist yet (nothing captured)"),
        "{out}"
    );
    assert!(out.contains("not created yet (nothing loaded)"), "{out}");
    let before = status_json(&pipeline);
    assert_eq!(before["slot"]["exists"], false, "{before}");
    assert_eq!(before["publication"]["exists"], false, "{before}");
    assert_eq!(before["change_log"]["exists"], false, "{before}");
    assert_eq!(before["target"]["state"], "not_created", "{before}");
    assert!(before["target"]["checkpoint"].is_null(), "{before}");
    assert_eq!(before["source"]["reachable"], true, "{before}");

    pipeline.sync_until_caught_up();

    let after = status_json(&pipeline);
    let s = &after["slot"];
    assert_eq!(s["exists"], true, "{after}");
    assert_eq!(s["active"], false, "{after}");
    assert!(s["active_pid"].is_null(), "{after}");
    assert!(
        s["confirmed_flush_lsn"]
            .as_str()
            .is_some_and(|l| l.contains('/')),
        "{after}"
    );
    assert!(s["restart_lsn"].as_str().is_some(), "{after}");
    assert!(s["retained_wal_bytes"].as_i64().is_some(), "{after}");
    assert!(s["pending_wal_bytes"].as_i64().is_some(), "{after}");
    assert!(s["wal_status"].as_str().is_some(), "{after}");
    assert!(s.get("safe_wal_size").is_some(), "{after}");
    assert_eq!(
        after["publication"]["tables"],
        serde_json::json!(["public.t"]),
        "{after}"
    );
    let log = &after["change_log"];
    assert_eq!(log["exists"], true, "{after}");
    assert_eq!(log["pending_records"], 0, "{after}");
    assert_eq!(log["pending_bytes"], 0, "{after}");
    assert!(
        log["next_offset"].as_u64().is_some_and(|n| n > 0),
        "{after}"
    );
    assert!(log["oldest_offset"].as_u64().is_some(), "{after}");
    let target = &after["target"];
    assert_eq!(target["state"], "ready", "{after}");
    let (applied, position): (String, String) = pipeline
        .warehouse()
        .query_row(
            "SELECT applied_lsn_text, position FROM raw._sluice_checkpoints",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("checkpoint");
    assert_eq!(
        target["checkpoint"]["applied_lsn"],
        applied.as_str(),
        "{after}"
    );
    let position: Value = serde_json::from_str(&position).expect("position JSON");
    assert_eq!(
        target["checkpoint"]["log_position"], position["partitions"],
        "{after}"
    );
    assert!(
        target["checkpoint"]["applied_commit_time"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{after}"
    );
    assert!(
        target["checkpoint"]["freshness_lag_ms"].as_i64().is_some(),
        "{after}"
    );

    let (code, out, err) = sluice(&pipeline, &["status"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&format!("\"{slot}\": inactive")), "{out}");
    assert_eq!(
        field(&out, "not yet applied"),
        Some("0 records, 0 B"),
        "{out}"
    );
    assert_eq!(field(&out, "applied lsn"), Some(applied.as_str()), "{out}");
    assert!(!out.contains("password"), "{out}");

    // While no sync runs, writes at the source pile up behind the slot.
    let retained = s["retained_wal_bytes"].as_i64().expect("retained");
    db.execute("INSERT INTO t SELECT g, repeat('x', 500) FROM generate_series(1000, 5999) g")
        .await
        .expect("writes");
    let later = status_json(&pipeline);
    let grown = later["slot"]["retained_wal_bytes"]
        .as_i64()
        .expect("retained");
    assert!(grown > retained + 2_000_000, "{retained} -> {later}");
    assert!(
        later["slot"]["pending_wal_bytes"]
            .as_i64()
            .is_some_and(|p| p > 2_000_000),
        "{later}"
    );
    // Captured nothing yet: the change log is still fully applied.
    assert_eq!(later["change_log"]["pending_records"], 0, "{later}");
}

#[tokio::test]
async fn status_and_teardown_while_a_sync_runs() {
    let db = PgCluster::shared()
        .fresh_database()
        .await
        .expect("database");
    table_with_rows(&db).await;
    let pipeline = Pipeline::new(&db, &["public.t"], "");
    let log = pipeline.dir.path().join("sync.log");
    let mut child = pipeline.spawn_sync(&log);

    // Wait until the sync streams from the slot and its loader holds the warehouse.
    let deadline = Instant::now() + Duration::from_secs(60);
    let running = loop {
        let (code, out, err) = sluice(&pipeline, &["status", "--json"]);
        assert_eq!(code, 0, "status failed while a sync runs:\n{out}\n{err}");
        let v: Value = serde_json::from_str(&out).expect("status JSON");
        if v["slot"]["active"] == true && v["target"]["state"] == "in_use" {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the sync never became active: {v}\nlog: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let pid = running["slot"]["active_pid"].as_i64().expect("active pid");
    let server_pid = count(
        &db,
        "SELECT active_pid::bigint FROM pg_replication_slots WHERE slot_name = $1",
        &format!("s_{}", db.name()),
    )
    .await;
    assert_eq!(pid, server_pid, "{running}");
    assert!(running["target"]["checkpoint"].is_null(), "{running}");
    assert!(
        running["change_log"]["pending_records"].is_null(),
        "{running}"
    );

    let (code, out, err) = sluice(&pipeline, &["status"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("in use by a running sync"), "{out}");
    assert!(
        out.contains(&format!("active (server process {pid})")),
        "{out}"
    );

    let (code, out, err) = sluice(&pipeline, &["teardown", "--yes"]);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(&format!("is in use by server process {pid}")),
        "{err}"
    );
    assert!(err.contains("Stop the sync"), "{err}");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pg_publication WHERE pubname = $1",
            "sluice_pub"
        )
        .await,
        1,
        "a refused teardown drops nothing"
    );
}

#[tokio::test]
async fn teardown_asks_then_drops_slot_and_publication_once() {
    let db = PgCluster::shared()
        .fresh_database()
        .await
        .expect("database");
    table_with_rows(&db).await;
    let pipeline = Pipeline::new(&db, &["public.t"], "");
    let slot = format!("s_{}", db.name());
    let slots = "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1";

    // A namesake slot in another database is another pipeline's: never dropped.
    let other = PgCluster::shared()
        .fresh_database()
        .await
        .expect("database");
    let other_client = other.client().await.expect("client");
    other_client
        .execute(
            "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&slot],
        )
        .await
        .expect("namesake slot");
    let (code, out, err) = sluice(&pipeline, &["teardown", "--yes"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("belongs to database"), "{err}");
    assert_eq!(count(&db, slots, &slot).await, 1);
    other_client
        .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .expect("drop namesake");

    pipeline.sync_until_caught_up();
    let publications = "SELECT count(*) FROM pg_publication WHERE pubname = $1";
    assert_eq!(count(&db, slots, &slot).await, 1);

    // No terminal, no --yes: a usage error, nothing dropped.
    let (code, out, err) = sluice(&pipeline, &["teardown"]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(count(&db, slots, &slot).await, 1);
    assert_eq!(count(&db, publications, "sluice_pub").await, 1);

    let (code, out, err) = sluice(&pipeline, &["teardown", "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("dropped replication slot \"{slot}\"")),
        "{out}"
    );
    assert!(out.contains("dropped publication \"sluice_pub\""), "{out}");
    assert!(out.contains("kept the change log in"), "{out}");
    assert!(out.contains("kept the target schema \"raw\""), "{out}");
    assert!(out.contains("DROP SCHEMA \"raw\" CASCADE"), "{out}");
    assert_eq!(count(&db, slots, &slot).await, 0);
    assert_eq!(count(&db, publications, "sluice_pub").await, 0);
    // The change log and the warehouse are left alone.
    assert!(pipeline.dir.path().join("log").exists());
    assert!(pipeline.warehouse.exists());

    let (code, out, err) = sluice(&pipeline, &["teardown", "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("nothing to drop"), "{out}");

    let after = status_json(&pipeline);
    assert_eq!(after["slot"]["exists"], false, "{after}");
    assert_eq!(after["publication"]["exists"], false, "{after}");
}
