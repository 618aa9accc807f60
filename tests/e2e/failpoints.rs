//! Crashes at named failpoints (the `failpoints` feature of the `sluice` package; `make test`
//! builds the binary with it). Each test runs `sluice sync` with
//! `FAILPOINTS=<name>=<n>*off->return` while a writer changes the source; the process dies with
//! SIGABRT the n+1-th time it passes the point. Right after the crash the target must hold no
//! row newer than its checkpoint (nothing of a batch that did not commit). A restarted
//! `sync --until-caught-up` must then leave the target equal to the source: row by row, one
//! row per key, and by `sluice verify`.
//!
//! SIGKILL at arbitrary moments is `crash.rs`; `random_failpoints_under_load` chains crashes
//! at points and counts drawn from a seed (printed, and taken from `SLUICE_FAILPOINT_SEED` to
//! replay one).

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::Signal;
use sluice_testkit::{PgCluster, TestDatabase};
use sluice_tests::{Kind, Pipeline, Writer, assert_same, sluice_bin, tempfile_dir};

const LEDGER: &[(&str, Kind)] = &[
    ("id", Kind::Plain),
    ("account", Kind::Plain),
    ("amount", Kind::Plain),
    ("note", Kind::Plain),
];
const AUDIT: &[(&str, Kind)] = &[("seq", Kind::Plain), ("note", Kind::Plain)];
const TABLES: &[&str] = &["public.ledger", "public.audit"];

/// Longest a run may take to reach its failpoint; past it the failpoint is taken as missing.
const CRASH_DEADLINE: Duration = Duration::from_secs(60);

/// A small segment cap, so that rotations happen every few transactions.
const SMALL_SEGMENTS: (&str, &str) = ("SLUICE__LOG__SEGMENT_BYTES", "4KiB");

/// A fresh source database with `ledger` holding `rows` rows of about 160 bytes (as the
/// snapshot counts them) and `audit` one.
async fn source(rows: u32) -> TestDatabase {
    let db = PgCluster::shared()
        .fresh_database()
        .await
        .expect("database");
    db.execute(&format!(
        "CREATE TABLE ledger (id bigint PRIMARY KEY, account int NOT NULL, amount numeric(14,2), note text);
         CREATE TABLE audit (seq bigserial PRIMARY KEY, note text);
         INSERT INTO ledger SELECT g, g % 100, g * 0.5, repeat('n', 50) FROM generate_series(1, {rows}) g;
         INSERT INTO audit (note) VALUES ('seed');"
    ))
    .await
    .expect("schema");
    db
}

/// Small transactions over both tables (inserts, updates, deletes, a key change, a delete and
/// re-insert of one key).
fn ledger_writes(n: i64) -> String {
    sluice_tests::ledger_transaction(
        n,
        sluice_tests::LedgerRanges {
            insert_base: 1_000_000,
            inserts: 5,
            moved_base: 500,
            move_by: 10_000_000,
        },
    )
}

/// Keeps the aborted processes from writing core files.
fn no_core_files() {
    let (_, hard) = getrlimit(Resource::RLIMIT_CORE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_CORE, 0, hard).expect("setrlimit");
}

fn sluice(config: &Path, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut c = Command::new(sluice_bin());
    c.args(args)
        .arg("-c")
        .arg(config)
        .env("SLUICE_LOG", "info,sluice=debug")
        .env_remove("FAILPOINTS");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Runs `sluice sync` with `failpoint` set to `actions`; asserts it crashed there (SIGABRT and
/// the failpoint's message). Its log goes to `log`.
fn crash_at(config: &Path, env: &[(&str, &str)], failpoint: &str, actions: &str, log: &Path) {
    no_core_files();
    let file = std::fs::File::create(log).expect("log file");
    let mut child = sluice(config, env, &["sync"])
        .env("FAILPOINTS", format!("{failpoint}={actions}"))
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("spawn sluice");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > CRASH_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "failpoint {failpoint} ({actions}) did not fire within {}s:\n{}",
                CRASH_DEADLINE.as_secs(),
                tail(log)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(
        !text.contains("built without failpoints"),
        "the sluice binary has no failpoints: build it with `cargo build -p sluice --features failpoints` (make test does)"
    );
    assert_eq!(
        status.signal(),
        Some(Signal::SIGABRT as i32),
        "sluice should have crashed at failpoint {failpoint} ({actions}), it ended with {status:?}:\n{}",
        tail(log)
    );
    assert!(
        text.contains(&format!("failpoint {failpoint}: aborting the process")),
        "sluice aborted, but not at failpoint {failpoint}:\n{}",
        tail(log)
    );
}

/// The last lines of a log, for failure messages.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// `sluice sync --until-caught-up`, which must succeed.
fn catch_up(config: &Path, env: &[(&str, &str)]) -> Output {
    let out = sluice(config, env, &["sync", "--until-caught-up"])
        .output()
        .expect("run sluice");
    assert!(
        out.status.success(),
        "sluice sync after the crash failed ({:?}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `sluice verify` must find source and target equal.
fn verify(config: &Path) {
    let out = sluice(config, &[], &["verify"])
        .output()
        .expect("run verify");
    assert_eq!(
        out.status.code(),
        Some(0),
        "sluice verify after recovery:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn open_read_only(path: &Path) -> duckdb::Connection {
    let config = duckdb::Config::default()
        .access_mode(duckdb::AccessMode::ReadOnly)
        .expect("read-only config");
    duckdb::Connection::open_with_flags(path, config).expect("open warehouse")
}

/// After a crash: once the snapshot is loaded (applied LSN above zero), no row of the
/// warehouse is newer than the checkpoint, i.e. no batch wrote rows without its checkpoint.
/// Rows of a resumed snapshot (at one of `resumed`, positions of a later snapshot than the
/// slot's) are exempt: they are newer than the checkpoint by design until streaming passes
/// them. Returns the ledger rows the warehouse holds.
fn duckdb_consistent(warehouse: &Path, resumed: &[i64]) -> i64 {
    if !warehouse.exists() {
        return 0;
    }
    let wh = open_read_only(warehouse);
    let tables: Vec<String> = wh
        .prepare("SELECT table_name FROM information_schema.tables WHERE table_schema = 'raw'")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("list tables");
    if !tables.iter().any(|t| t == "_sluice_checkpoints") {
        return 0;
    }
    let applied: Option<i64> = wh
        .query_row(
            "SELECT max(applied_lsn) FROM raw._sluice_checkpoints",
            [],
            |r| r.get(0),
        )
        .expect("checkpoint");
    let mut ledger_rows = 0;
    for table in ["ledger", "audit"] {
        if !tables.iter().any(|t| t == table) {
            continue;
        }
        let exempt = resumed
            .iter()
            .map(i64::to_string)
            .chain(std::iter::once("-1".to_owned()))
            .collect::<Vec<_>>()
            .join(", ");
        let (rows, newest): (i64, Option<i64>) = wh
            .query_row(
                &format!(
                    "SELECT count(*), max(_sluice_lsn) FILTER (WHERE _sluice_lsn NOT IN ({exempt})) FROM raw.{table}"
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("newest row");
        if table == "ledger" {
            ledger_rows = rows;
        }
        if let (Some(applied), Some(newest)) = (applied, newest)
            && applied > 0
        {
            assert!(
                newest <= applied,
                "raw.{table} holds a row at {newest}, past the checkpoint's {applied}: a batch committed in part"
            );
        }
    }
    ledger_rows
}

/// The warehouse equals the source, with one row per key.
async fn assert_duckdb_equal(db: &TestDatabase, warehouse: &Path) {
    let wh = open_read_only(warehouse);
    assert_same(db, &wh, "ledger", LEDGER).await;
    assert_same(db, &wh, "audit", AUDIT).await;
    let (rows, keys): (i64, i64) = wh
        .query_row(
            "SELECT count(*), count(DISTINCT id) FROM raw.ledger",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("count");
    assert_eq!(rows, keys, "duplicate keys in the warehouse");
}

/// One crash at `failpoint` into DuckDB, then recovery and the comparisons.
async fn crash_into_duckdb(failpoint: &str, actions: &str, rows: u32, env: &[(&str, &str)]) {
    let db = source(rows).await;
    let pipeline = Pipeline::new(&db, TABLES, "max_batch_rows = 2000");
    let writer = Writer::start(&db, ledger_writes).await;
    crash_at(
        &pipeline.config,
        env,
        failpoint,
        actions,
        &pipeline.dir.path().join("crash.log"),
    );
    let loaded = duckdb_consistent(&pipeline.warehouse, &[]);
    eprintln!("{failpoint}: {loaded} ledger rows in the warehouse at the crash");
    let transactions = writer.stop().await;
    eprintln!("{failpoint}: the writer committed {transactions} transactions");
    catch_up(&pipeline.config, env);
    assert_duckdb_equal(&db, &pipeline.warehouse).await;
    verify(&pipeline.config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_decode_before_append() {
    crash_into_duckdb("capture-after-decode", "20*off->return", 2_000, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_append_before_ack() {
    crash_into_duckdb("capture-after-append", "8*off->return", 2_000, &[]).await;
}

/// The snapshot appends three chunks: two of `ledger` (40,000 rows, about 6 MiB) and one of
/// `audit`. Capture sleeps after the second so the loader takes the chunks so far into the
/// warehouse, and dies after the third, before the snapshot's end: the next run snapshots
/// again over loaded rows, while the writer has deleted and moved some of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_between_snapshot_chunks() {
    crash_into_duckdb(
        "snapshot-chunk",
        "1*off->1*sleep(1500)->return",
        40_000,
        &[],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_during_segment_rotation() {
    crash_into_duckdb(
        "log-segment-rotation",
        "12*off->return",
        2_000,
        &[SMALL_SEGMENTS],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_batch_in_duckdb() {
    crash_into_duckdb("target-mid-batch", "4*off->return", 2_000, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_commit_before_release() {
    crash_into_duckdb(
        "loader-after-commit",
        "3*off->return",
        2_000,
        &[SMALL_SEGMENTS],
    )
    .await;
}

/// Rows of a query, every value as text.
async fn text_rows(db: &TestDatabase, sql: &str) -> Vec<Vec<Option<String>>> {
    db.text_rows(sql).await.expect("query")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_batch_in_postgres() {
    let db = source(2_000).await;
    let target = PgCluster::shared().fresh_database().await.expect("target");
    let dir = tempfile_dir::Dir::new();
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nurl = \"{src}\"\ntables = [\"public.ledger\", \"public.audit\"]\n\
             slot = \"s_{slot}\"\npublication = \"sluice_pub\"\n\n\
             [log]\nkind = \"local\"\npath = \"{log}\"\n\n\
             [target]\nkind = \"postgres\"\nurl = \"{dst}\"\nschema = \"raw\"\n\n\
             [load]\nflush_interval_ms = 200\nmax_batch_rows = 2000\n",
            src = db.url(),
            slot = db.name(),
            log = dir.path().join("log").display(),
            dst = target.url(),
        ),
    )
    .expect("write config");
    // The snapshot loads first, so the crash comes in a batch of streamed changes: how many
    // batches the snapshot takes depends on timing.
    catch_up(&config, &[]);
    let writer = Writer::start(&db, ledger_writes).await;
    crash_at(
        &config,
        &[],
        "target-mid-batch",
        "1*off->return",
        &dir.path().join("crash.log"),
    );
    // The server rolled the open transaction back when the connection dropped: no row is
    // newer than the checkpoint.
    let newest = text_rows(
        &target,
        "SELECT (SELECT max(applied_lsn) FROM raw._sluice_checkpoints)::text, \
                greatest((SELECT max(_sluice_lsn) FROM raw.ledger), \
                         (SELECT max(_sluice_lsn) FROM raw.audit))::text",
    )
    .await;
    let lsn = |v: &Option<String>| v.as_deref().map_or(0, |s| s.parse::<i64>().expect("lsn"));
    let (applied, newest) = (lsn(&newest[0][0]), lsn(&newest[0][1]));
    assert!(applied > 0, "the crash came after the snapshot was loaded");
    assert!(
        newest <= applied,
        "a row at {newest} is past the checkpoint's {applied}: a batch committed in part"
    );
    writer.stop().await;
    catch_up(&config, &[]);
    for (source_sql, target_sql) in [
        (
            "SELECT id::text, account::text, amount::text, note FROM ledger ORDER BY id",
            "SELECT id::text, account::text, amount::text, note FROM raw.ledger \
             WHERE NOT _sluice_deleted ORDER BY id",
        ),
        (
            "SELECT seq::text, note FROM audit ORDER BY seq",
            "SELECT seq::text, note FROM raw.audit WHERE NOT _sluice_deleted ORDER BY seq",
        ),
    ] {
        let want = text_rows(&db, source_sql).await;
        let got = text_rows(&target, target_sql).await;
        assert_eq!(got.len(), want.len(), "row counts: {target_sql}");
        assert!(got == want, "rows differ: {target_sql}");
    }
    verify(&config);
}

/// Failpoints passed while streaming, with the most passes a run may take before its crash.
const STREAMING: &[(&str, u64)] = &[
    ("capture-after-decode", 40),
    ("capture-after-append", 20),
    ("log-segment-rotation", 20),
    ("target-mid-batch", 8),
    ("loader-after-commit", 5),
];

/// splitmix64: a seeded sequence, so a failing seed can be replayed.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Several crashes in a row under a steady writer, each at a failpoint and pass drawn from a
/// seed: the first interrupts the snapshot, later ones may interrupt the repeated snapshot,
/// the recovery of a rotation, or each other's replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_failpoints_under_load() {
    let seed = std::env::var("SLUICE_FAILPOINT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("random failpoints: SLUICE_FAILPOINT_SEED={seed}");
    let mut state = seed;
    let db = source(20_000).await;
    let pipeline = Pipeline::new(&db, TABLES, "max_batch_rows = 2000");
    let env = [("SLUICE__LOG__SEGMENT_BYTES", "8KiB")];
    let writer = Writer::start(&db, ledger_writes).await;
    let mut rounds = vec![("snapshot-chunk", 0)];
    for _ in 0..4 {
        let (name, most) = STREAMING[(next(&mut state) % STREAMING.len() as u64) as usize];
        rounds.push((name, next(&mut state) % (most + 1)));
    }
    let mut resumed = Vec::new();
    for (round, (failpoint, passes)) in rounds.iter().enumerate() {
        eprintln!("round {round}: {failpoint} after {passes} passes (seed {seed})");
        crash_at(
            &pipeline.config,
            &env,
            failpoint,
            &if *passes == 0 {
                "return".to_owned()
            } else {
                format!("{passes}*off->return")
            },
            &pipeline.dir.path().join(format!("round-{round}.log")),
        );
        let log = std::fs::read_to_string(pipeline.dir.path().join(format!("round-{round}.log")))
            .unwrap_or_default();
        resumed.extend(resumed_positions(&log));
        duckdb_consistent(&pipeline.warehouse, &resumed);
    }
    writer.stop().await;
    catch_up(&pipeline.config, &env);
    assert_duckdb_equal(&db, &pipeline.warehouse).await;
    verify(&pipeline.config);
}

/// The positions a resumed snapshot wrote its rows at (`resume_lsn - 1`), from a run's log.
fn resumed_positions(log: &str) -> Vec<i64> {
    log.lines()
        .filter(|l| l.contains("resuming the snapshot"))
        .filter_map(|l| {
            let at = l.find(" resume_lsn=")? + " resume_lsn=".len();
            let (hi, lo) = l[at..].split_whitespace().next()?.split_once('/')?;
            let lsn =
                (u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?;
            i64::try_from(lsn).ok().map(|l| l - 1)
        })
        .collect()
}
