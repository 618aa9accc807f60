//! A source transaction far larger than memory: capture writes it to the change log in parts,
//! the loader stages the parts in one target transaction, and the process stays small.

use std::path::Path;
use std::process::Command;

use nix::sys::resource::{UsageWho, getrusage};
use sluice_testkit::{PgCluster, TestDatabase};
use sluice_tests::{sluice_bin, tempfile_dir};

/// Rows in the one large transaction, each with a 200-byte row image.
const ROWS: i64 = 1_000_000;

/// Peak resident set size of the largest child this test process has waited for, in MiB.
fn children_peak_rss_mib() -> i64 {
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    // Linux reports kilobytes.
    usage.max_rss() / 1024
}

fn sluice(config: &Path, args: &[&str]) -> String {
    let out = Command::new(sluice_bin())
        .args(args)
        .arg("-c")
        .arg(config)
        .env("SLUICE_LOG", "info")
        .env_remove("FAILPOINTS")
        .output()
        .expect("run sluice");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "sluice {args:?}: {text}");
    text
}

/// Syncs one transaction of a million inserts, then changes to rows inserted at its start
/// (they sit in an earlier part than the change), deletes in the middle, and a row of another
/// table; checks the target with `sluice verify`. Returns the peak RSS of the sync, in MiB.
async fn sync_a_large_transaction(db: &TestDatabase, target: &str) -> i64 {
    let (config, _dir) = configure(db, target).await;
    sluice(&config, &["sync", "--until-caught-up"]);
    db.execute(&large_transaction(ROWS))
        .await
        .expect("large transaction");
    let wal: i64 = db
        .query(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&format!("s_{}", db.name())],
        )
        .await
        .expect("slot lag")[0]
        .get(0);

    sluice(&config, &["sync", "--until-caught-up"]);
    let peak = children_peak_rss_mib();
    eprintln!(
        "{ROWS}-row transaction ({} MiB of WAL): peak RSS of sluice sync {peak} MiB",
        wal / (1024 * 1024)
    );
    // Row counts and content hashes of both tables at one position.
    sluice(&config, &["verify"]);
    peak
}

/// The large transaction: `rows` inserts, then changes to rows inserted at its start (they sit
/// in an earlier part than the change), deletes in the middle, and a row of another table.
fn large_transaction(rows: i64) -> String {
    format!(
        "BEGIN;
         INSERT INTO wide SELECT g, rpad(md5(g::text), 190, md5((g + 1)::text))
           FROM generate_series(1, {rows}) g;
         UPDATE wide SET payload = 'updated at the end' WHERE id <= 1000;
         DELETE FROM wide WHERE id BETWEEN {from} AND {to};
         INSERT INTO small VALUES (100, 'in the large transaction');
         COMMIT;",
        from = rows / 2 + 1,
        to = rows / 2 + 1000
    )
}

/// The `[target]` settings of a DuckDB warehouse at `path`, with `extra` lines.
fn duckdb_target(path: &Path, extra: &str) -> String {
    format!(
        "kind = \"duckdb\"\npath = \"{}\"\nschema = \"raw\"\n{extra}",
        path.display()
    )
}

/// Creates the tables and a config capturing them into `target`; returns the config's path
/// and the directory holding it (removed on drop).
async fn configure(db: &TestDatabase, target: &str) -> (std::path::PathBuf, tempfile_dir::Dir) {
    db.execute(
        "CREATE TABLE wide (id bigint PRIMARY KEY, payload text NOT NULL);
         CREATE TABLE small (k int PRIMARY KEY, v text);
         INSERT INTO small SELECT g, 'before ' || g FROM generate_series(1, 10) g;",
    )
    .await
    .expect("schema");
    let dir = tempfile_dir::Dir::new();
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nurl = \"{src}\"\ntables = [\"public.wide\", \"public.small\"]\n\
             slot = \"s_{slot}\"\npublication = \"sluice_pub\"\n\n\
             [log]\nkind = \"local\"\npath = \"{log}\"\n\n\
             [target]\n{target}\n\n[load]\nflush_interval_ms = 200\n",
            src = db.url(),
            slot = db.name(),
            log = dir.path().join("log").display(),
        ),
    )
    .expect("write config");
    (config, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_row_transaction_into_postgres_in_bounded_memory() {
    let cluster = PgCluster::shared();
    let db = cluster.fresh_database().await.expect("source");
    let target = cluster.fresh_database().await.expect("target");
    let peak = sync_a_large_transaction(
        &db,
        &format!(
            "kind = \"postgres\"\nurl = \"{}\"\nschema = \"raw\"",
            target.url()
        ),
    )
    .await;
    let count = |sql: &'static str| {
        let target = &target;
        async move { target.query(sql, &[]).await.expect(sql)[0].get::<_, i64>(0) }
    };
    assert_eq!(
        count("SELECT count(*) FROM raw.wide WHERE NOT _sluice_deleted").await,
        ROWS - 1000
    );
    assert_eq!(
        count("SELECT count(*) FROM raw.wide WHERE payload = 'updated at the end'").await,
        1000,
        "changes to rows inserted in an earlier part of the transaction apply"
    );
    assert_eq!(
        count("SELECT count(*) FROM raw.small WHERE k = 100").await,
        1
    );
    // The whole transaction held in memory at once takes about 800 MiB.
    assert!(peak < 256, "peak RSS {peak} MiB is over 256 MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_row_transaction_into_duckdb_in_bounded_memory() {
    let db = PgCluster::shared()
        .fresh_database()
        .await
        .expect("database");
    let dir = tempfile_dir::Dir::new();
    let warehouse = dir.path().join("warehouse.duckdb");
    // DuckDB's share of memory follows its limit: the smallest accepted.
    let peak = sync_a_large_transaction(
        &db,
        &duckdb_target(&warehouse, "memory_limit_bytes = 67108864"),
    )
    .await;
    let wh = duckdb::Connection::open(&warehouse).expect("open warehouse");
    let count = |sql: &str| -> i64 { wh.query_row(sql, [], |r| r.get(0)).expect(sql) };
    assert_eq!(
        count("SELECT count(*) FROM raw.wide WHERE NOT _sluice_deleted"),
        ROWS - 1000
    );
    assert_eq!(
        count("SELECT count(*) FROM raw.wide WHERE payload = 'updated at the end'"),
        1000,
        "changes to rows inserted in an earlier part of the transaction apply"
    );
    assert_eq!(
        count("SELECT count(*) FROM raw.wide WHERE _sluice_deleted"),
        1000
    );
    assert_eq!(count("SELECT count(*) FROM raw.small WHERE k = 100"), 1);
    // DuckDB keeps part of an open transaction's rows in memory (about 0.4 byte per byte of
    // WAL here, on top of its limit); the whole transaction held by Sluice takes about 800 MiB.
    assert!(peak < 480, "peak RSS {peak} MiB is over 480 MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_left_by_a_crash_are_discarded_and_the_transaction_loads_once() {
    const ROWS: i64 = 100_000;
    let db = PgCluster::shared()
        .fresh_database()
        .await
        .expect("database");
    let dir = tempfile_dir::Dir::new();
    let warehouse = dir.path().join("warehouse.duckdb");
    let (config, _config_dir) = configure(&db, &duckdb_target(&warehouse, "")).await;
    sluice(&config, &["sync", "--until-caught-up"]);
    db.execute(&large_transaction(ROWS))
        .await
        .expect("large transaction");
    // The first append while streaming is the transaction's first part: the process dies
    // right after it is durable, before the rest and the end are.
    let out = Command::new(sluice_bin())
        .args(["sync", "--until-caught-up", "-c"])
        .arg(&config)
        .env("SLUICE_LOG", "info")
        .env("FAILPOINTS", "capture-after-append=return")
        .output()
        .expect("run sluice");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(nix::sys::signal::Signal::SIGABRT as i32),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sluice(&config, &["sync", "--until-caught-up"]);
    assert!(
        out.contains("discarding the parts of a transaction whose end is not in the change log"),
        "{out}"
    );
    sluice(&config, &["verify"]);
    let wh = duckdb::Connection::open(&warehouse).expect("open warehouse");
    let count = |sql: &str| -> i64 { wh.query_row(sql, [], |r| r.get(0)).expect(sql) };
    assert_eq!(
        count("SELECT count(*) FROM raw.wide WHERE NOT _sluice_deleted"),
        ROWS - 1000
    );
    assert_eq!(
        count("SELECT count(*) FROM raw.wide"),
        ROWS,
        "each row once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_streamed_before_their_commit_load_exactly() {
    let db = PgCluster::shared()
        .fresh_database()
        .await
        .expect("database");
    // The server streams any transaction over 64 kB (its smallest setting) before its commit.
    db.execute(&format!(
        "ALTER DATABASE \"{}\" SET logical_decoding_work_mem = '64kB'",
        db.name()
    ))
    .await
    .expect("streaming threshold");
    let dir = tempfile_dir::Dir::new();
    let warehouse = dir.path().join("warehouse.duckdb");
    let (config, config_dir) = configure(&db, &duckdb_target(&warehouse, "")).await;
    sluice(&config, &["sync", "--until-caught-up"]);
    let row = |from: i64, to: i64, note: &str| {
        format!(
            "INSERT INTO wide SELECT g, '{note} ' || rpad(md5(g::text), 150, 'x') \
             FROM generate_series({from}, {to}) g;"
        )
    };
    // Subtransactions: one rolled back (its rows never load), one released.
    db.execute(&format!(
        "BEGIN; {} SAVEPOINT a; {} ROLLBACK TO SAVEPOINT a; SAVEPOINT b; \
         UPDATE wide SET payload = 'released' WHERE id <= 100; RELEASE SAVEPOINT b; {} COMMIT;",
        row(1, 5_000, "kept"),
        row(5_001, 10_000, "rolled back"),
        row(10_001, 15_000, "after")
    ))
    .await
    .expect("subtransactions");
    // A whole transaction rolled back after the server streamed it.
    db.execute(&format!(
        "BEGIN; {} ROLLBACK;",
        row(20_001, 30_000, "aborted")
    ))
    .await
    .expect("aborted transaction");
    // Two transactions open at once: their streamed blocks interleave.
    let first = db.client().await.expect("client");
    let second = db.client().await.expect("client");
    first
        .batch_execute(&format!("BEGIN; {}", row(40_001, 45_000, "first")))
        .await
        .expect("first");
    second
        .batch_execute(&format!("BEGIN; {}", row(50_001, 55_000, "second")))
        .await
        .expect("second");
    first
        .batch_execute(&row(45_001, 48_000, "first"))
        .await
        .expect("first again");
    second
        .batch_execute("COMMIT")
        .await
        .expect("second commits");
    first.batch_execute("COMMIT").await.expect("first commits");

    let out = sluice(&config, &["sync", "--until-caught-up"]);
    assert!(
        out.matches("transaction streamed before its commit is in the change log")
            .count()
            >= 3,
        "{out}"
    );
    sluice(&config, &["verify"]);
    let wh = duckdb::Connection::open(&warehouse).expect("open warehouse");
    let count = |sql: &str| -> i64 { wh.query_row(sql, [], |r| r.get(0)).expect(sql) };
    assert_eq!(
        count("SELECT count(*) FROM raw.wide"),
        10_000 + 8_000 + 5_000
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM raw.wide WHERE payload LIKE 'rolled back%' OR payload LIKE 'aborted%'"
        ),
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM raw.wide WHERE payload = 'released'"),
        100
    );
    let spill = config_dir.path().join("log").join("spill");
    let left = std::fs::read_dir(&spill).expect("spill directory").count();
    assert_eq!(
        left, 0,
        "spill files are removed once their transaction ends"
    );
}
