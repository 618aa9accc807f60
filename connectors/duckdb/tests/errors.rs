//! Failures: what is refused, how it is classified, and that nothing is left half applied.

use sluice_core::pg_type::oid;
use sluice_core::{Batch, Checkpoint, Classify, DeleteMode, Destination, ErrorClass, Value};
use sluice_duckdb::{DuckDbConfig, Error};

use crate::support::*;

/// Applies a first good batch, then `bad` values in a second table of a batch that also
/// changes the first table: the batch must fail naming the column and leave everything as it
/// was, with an error that parks the table of the bad value alone.
async fn refused(column_oid: u32, typmod: i32, bad: &str) -> sluice_warehouse::Error {
    let good = rel(
        "public",
        "good",
        1,
        &[("id", oid::INT4, -1, true), ("v", oid::TEXT, -1, false)],
    );
    let target = rel(
        "public",
        "target",
        1,
        &[
            ("id", oid::INT4, -1, true),
            ("odd col", column_oid, typmod, false),
        ],
    );
    let mut f = Fixture::new(DeleteMode::Soft);
    f.apply(&[txn(
        10,
        vec![
            ins(&good, vals(&[Some("1"), Some("before")])),
            ins(&target, vals(&[Some("1"), None])),
        ],
    )])
    .await;
    let cp_before = f.reopen().await;
    let good_before = f.dump("raw.good");
    let target_before = f.dump("raw.target");

    let (batch, cp) = build(
        1,
        &[txn(
            20,
            vec![
                upd(&good, None, vals(&[Some("1"), Some("after")])),
                ins(&good, vals(&[Some("2"), Some("new")])),
                ins(&target, vals(&[Some("2"), Some(bad)])),
            ],
        )],
    );
    let err = f
        .try_apply(&batch, &cp)
        .await
        .expect_err("the batch must fail");
    assert_eq!(err.class(), ErrorClass::Definite, "{err}");
    assert_eq!(
        err.wedged_table(),
        Some(&sluice_core::TableId::new("public", "target")),
        "a bad value parks its table alone: {err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("\"raw\".\"target\"") && message.contains("\"odd col\""),
        "the error names table and column: {message}"
    );
    assert!(
        !message.contains(bad),
        "the error does not print the value: {message}"
    );
    assert_eq!(
        f.dump("raw.good"),
        good_before,
        "the other table is untouched"
    );
    assert_eq!(f.dump("raw.target"), target_before);
    assert_eq!(f.reopen().await, cp_before, "the checkpoint is untouched");
    // The destination still works after the failure.
    let (ok, cp) = build(
        2,
        &[txn(30, vec![ins(&good, vals(&[Some("3"), Some("ok")]))])],
    );
    f.try_apply(&ok, &cp).await.unwrap();
    assert_eq!(f.lines("SELECT count(*) FROM raw.good"), vec!["2"]);
    err
}

// Numeric NaN in a DECIMAL and timestamps after DuckDB's last one are PostgreSQL values: they
// are not refused, the column becomes text (`types::values_beyond_the_type_turn_the_column_into_text`).

#[tokio::test]
async fn bytea_in_escape_format() {
    refused(oid::BYTEA, -1, "abc\\000").await;
}

#[tokio::test]
async fn interval_in_another_style() {
    refused(oid::INTERVAL, -1, "P1Y2M").await;
}

#[tokio::test]
async fn array_with_other_dimensions_than_the_column() {
    let err = refused(oid::INT4_ARRAY, -1, "{{1,2},{3,4}}").await;
    assert!(err.to_string().contains("2 dimensions"), "{err}");
}

#[tokio::test]
async fn array_with_lower_bounds() {
    refused(oid::INT4_ARRAY, -1, "[0:1]={1,2}").await;
}

#[tokio::test]
async fn int_array_element_out_of_range() {
    refused(oid::INT2_ARRAY, -1, "{1,70000}").await;
}

#[tokio::test]
async fn unsafe_type_change_is_refused() {
    let v1 = rel(
        "public",
        "t",
        1,
        &[("id", oid::INT4, -1, true), ("v", oid::INT8, -1, false)],
    );
    let v2 = rel(
        "public",
        "t",
        2,
        &[
            ("id", oid::INT4, -1, true),
            ("v", oid::TIMESTAMP, -1, false),
        ],
    );
    let mut f = Fixture::new(DeleteMode::Soft);
    f.apply(&[txn(10, vec![ins(&v1, vals(&[Some("1"), Some("5")]))])])
        .await;
    let (batch, cp) = build(
        1,
        &[txn(
            20,
            vec![ins(&v2, vals(&[Some("2"), Some("2024-01-01 00:00:00")]))],
        )],
    );
    let err = f.try_apply(&batch, &cp).await.expect_err("unsafe change");
    assert_eq!(err.class(), ErrorClass::Definite);
    assert_eq!(
        err.to_string(),
        "table \"raw\".\"t\": column \"v\" changed from BIGINT to TIMESTAMP, which cannot hold \
         every existing value exactly"
    );
    assert_eq!(
        sluice_core::Classify::wedged_table(&err),
        Some(&v2.table),
        "the table to park"
    );
    assert_eq!(f.lines("SELECT id, v FROM raw.t"), vec!["1|5"]);
}

#[tokio::test]
async fn two_source_schemas_into_one_target_table() {
    let a = rel("public", "t", 1, &[("id", oid::INT4, -1, true)]);
    let b = rel("sales", "t", 1, &[("id", oid::INT4, -1, true)]);
    let mut f = Fixture::new(DeleteMode::Soft);
    let (batch, cp) = build(
        0,
        &[txn(
            10,
            vec![ins(&a, vals(&[Some("1")])), ins(&b, vals(&[Some("2")]))],
        )],
    );
    let err = f.try_apply(&batch, &cp).await.expect_err("collision");
    assert_eq!(err.class(), ErrorClass::Definite);
    assert!(err.to_string().contains("\"sales\".\"t\""), "{err}");
}

#[tokio::test]
async fn reserved_column_names_are_refused() {
    let r = rel(
        "public",
        "t",
        1,
        &[
            ("id", oid::INT4, -1, true),
            ("_sluice_op", oid::TEXT, -1, false),
        ],
    );
    let mut f = Fixture::new(DeleteMode::Soft);
    let (batch, cp) = build(0, &[txn(10, vec![ins(&r, vec![t("1"), Value::Null])])]);
    let err = f.try_apply(&batch, &cp).await.expect_err("reserved");
    assert_eq!(err.class(), ErrorClass::Definite);
}

#[tokio::test]
async fn apply_before_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = sluice_duckdb::destination(DuckDbConfig::new(dir.path().join("w.duckdb"))).unwrap();
    let err = d
        .apply(Batch::default(), &Checkpoint::default())
        .await
        .expect_err("not open");
    assert!(matches!(err, sluice_warehouse::Error::NotOpen));
    assert_eq!(err.class(), ErrorClass::Fatal);
}

#[tokio::test]
async fn invalid_config_is_refused_by_new() {
    let err = sluice_duckdb::destination(DuckDbConfig::new(""))
        .err()
        .expect("invalid");
    assert_eq!(err.to_string(), "target.path: must not be empty");
}

/// Another process holding the file's lock: a transient error that says so.
#[tokio::test]
async fn file_locked_by_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.duckdb");
    let mut d = sluice_duckdb::destination(DuckDbConfig::new(&path)).unwrap();
    d.open("main").await.unwrap();
    drop(d);
    // python3 takes the same kind of lock (fcntl) DuckDB takes, from another process.
    let mut holder = std::process::Command::new("python3")
        .args([
            "-c",
            "import fcntl,sys,time\nf=open(sys.argv[1],'r+b')\nfcntl.lockf(f,fcntl.LOCK_EX)\nprint('locked',flush=True)\ntime.sleep(60)",
        ])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("this test needs python3 on PATH to hold a lock from another process");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    let mut d = sluice_duckdb::destination(DuckDbConfig::new(&path)).unwrap();
    let result = d.open("main").await;
    holder.kill().unwrap();
    holder.wait().unwrap();
    let err = result.expect_err("the file is locked");
    assert!(
        matches!(err.downcast_session::<Error>(), Some(Error::Locked { .. })),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Transient);
    assert!(
        err.to_string().contains("is locked by another process"),
        "{err}"
    );
    // Once the other process is gone, the same destination opens.
    assert_eq!(d.open("main").await.unwrap(), None);
}

#[tokio::test]
async fn a_file_that_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.duckdb");
    std::fs::write(
        &path,
        b"this is not a duckdb file, just some text long enough",
    )
    .unwrap();
    let mut d = sluice_duckdb::destination(DuckDbConfig::new(&path)).unwrap();
    let err = d.open("main").await.expect_err("not a database");
    assert!(
        matches!(err.downcast_session::<Error>(), Some(Error::Open { .. })),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Fatal);
    assert!(err.to_string().contains("w.duckdb"), "{err}");
}
