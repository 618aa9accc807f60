//! The initial snapshot in parallel chunks, and its resumption after a crash.
//!
//! Tables: `ledger` (bigint key, tens of chunks), `pairs` (composite key), `audit` and
//! `events` (no key: block ranges, appended without a guard). Chunks are small
//! (`snapshot_chunk_rows = 500`) so that a few thousand rows make many of them.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::Signal;
use sluice_testkit::{PgCluster, TestDatabase};
use sluice_tests::{Kind, Pipeline, Writer, assert_same, sluice_bin};

const LEDGER: &[(&str, Kind)] = &[
    ("id", Kind::Plain),
    ("account", Kind::Plain),
    ("amount", Kind::Plain),
    ("note", Kind::Plain),
];
const PAIRS: &[(&str, Kind)] = &[
    ("tenant", Kind::Plain),
    ("code", Kind::Plain),
    ("qty", Kind::Plain),
];
const AUDIT: &[(&str, Kind)] = &[("seq", Kind::Plain), ("note", Kind::Plain)];
const EVENTS: &[(&str, Kind)] = &[("at", Kind::Plain), ("note", Kind::Plain)];

/// `events` first: it is one small chunk, copied early.
const TABLES: &[&str] = &[
    "public.events",
    "public.ledger",
    "public.pairs",
    "public.audit",
];

const CHUNK_ROWS: u32 = 500;

async fn source(ledger_rows: u32, events_rows: u32) -> TestDatabase {
    let db = PgCluster::shared()
        .fresh_database()
        .await
        .expect("database");
    db.execute(&format!(
        "CREATE TABLE ledger (id bigint PRIMARY KEY, account int NOT NULL, amount numeric(14,2), note text);
         CREATE TABLE audit (seq bigserial PRIMARY KEY, note text);
         CREATE TABLE pairs (tenant int, code text, qty int, PRIMARY KEY (tenant, code));
         CREATE TABLE events (at int, note text);
         INSERT INTO ledger SELECT g, g % 100, g * 0.5, repeat('n', 50) FROM generate_series(1, {ledger_rows}) g;
         INSERT INTO pairs SELECT g % 7, 'c' || g, g FROM generate_series(1, 3000) g;
         INSERT INTO events SELECT g, 'e' || g FROM generate_series(1, {events_rows}) g;
         INSERT INTO audit (note) VALUES ('seed');"
    ))
    .await
    .expect("schema");
    db
}

/// A pipeline over [`TABLES`] with small chunks and four workers.
fn pipeline(db: &TestDatabase) -> Pipeline {
    let p = Pipeline::new(db, TABLES, "max_batch_rows = 2000");
    let text = std::fs::read_to_string(&p.config).expect("config");
    let text = text.replacen(
        "publication = \"sluice_pub\"\n",
        &format!(
            "publication = \"sluice_pub\"\nsnapshot_workers = 4\nsnapshot_chunk_rows = {CHUNK_ROWS}\n"
        ),
        1,
    );
    std::fs::write(&p.config, text).expect("write config");
    p
}

/// Small transactions over every table: the ledger writer's mix, plus updates, deletes and
/// inserts in `pairs` (some outside the first snapshot's key range) and inserts into `events`.
fn writes(n: i64) -> String {
    let ledger = sluice_tests::ledger_transaction(
        n,
        sluice_tests::LedgerRanges {
            insert_base: 1_000_000,
            inserts: 5,
            moved_base: 500,
            move_by: 10_000_000,
        },
    );
    let pairs = format!(
        "BEGIN;
         UPDATE pairs SET qty = qty + 1 WHERE tenant = {t} AND code = 'c{c}';
         DELETE FROM pairs WHERE tenant = {dt} AND code = 'c{d}';
         INSERT INTO pairs VALUES (-{n}, 'a', {n}), (9, 'z{n}', {n}), ({t}, 'm{n}', {n});
         INSERT INTO events VALUES ({n} + 1000000, 'live');
         COMMIT;",
        c = (n * 13) % 3000 + 1,
        t = ((n * 13) % 3000 + 1) % 7,
        d = (n * 29) % 3000 + 1,
        dt = ((n * 29) % 3000 + 1) % 7,
    );
    format!("{ledger}\n{pairs}")
}

fn sluice(config: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(sluice_bin());
    c.args(args)
        .arg("-c")
        .arg(config)
        .env("SLUICE_LOG", "info,sluice=debug")
        .env_remove("FAILPOINTS");
    c
}

/// `sluice sync --until-caught-up`, which must succeed; returns its log (stderr).
fn catch_up(config: &Path) -> String {
    let out: Output = sluice(config, &["sync", "--until-caught-up"])
        .output()
        .expect("run sluice");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "sluice sync failed ({:?}):\n{}\n{log}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
    );
    log
}

/// Runs `sluice sync` until the `snapshot-chunk` failpoint aborts it after `records` snapshot
/// records; returns its log.
fn crash_in_snapshot(config: &Path, records: u32, log: &Path) -> String {
    let (_, hard) = getrlimit(Resource::RLIMIT_CORE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_CORE, 0, hard).expect("setrlimit");
    let file = std::fs::File::create(log).expect("log file");
    let mut child = sluice(config, &["sync"])
        .env(
            "FAILPOINTS",
            format!("snapshot-chunk={records}*off->return"),
        )
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("spawn sluice");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the snapshot-chunk failpoint did not fire within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(
        !text.contains("built without failpoints"),
        "build the binary with `cargo build -p sluice --features failpoints`"
    );
    assert_eq!(
        status.signal(),
        Some(Signal::SIGABRT as i32),
        "sluice should have crashed in the snapshot:\n{text}"
    );
    text
}

fn verify(config: &Path) {
    let out = sluice(config, &["verify"]).output().expect("run verify");
    assert_eq!(
        out.status.code(),
        Some(0),
        "sluice verify:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of `field=` on the first log line containing `message`.
fn field(log: &str, message: &str, field: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains(message))?;
    let at = line.find(&format!(" {field}="))? + field.len() + 2;
    Some(line[at..].split_whitespace().next()?.to_owned())
}

fn lsn(text: &str) -> i64 {
    let (hi, lo) = text.split_once('/').expect("an X/Y position");
    let v = (u64::from_str_radix(hi, 16).expect("hex") << 32)
        | u64::from_str_radix(lo, 16).expect("hex");
    i64::try_from(v).expect("lsn fits")
}

async fn assert_all_equal(db: &TestDatabase, p: &Pipeline) {
    let wh = p.warehouse();
    assert_same(db, &wh, "ledger", LEDGER).await;
    assert_same(db, &wh, "pairs", PAIRS).await;
    assert_same(db, &wh, "audit", AUDIT).await;
    assert_same(db, &wh, "events", EVENTS).await;
    for (table, key) in [("ledger", "id"), ("pairs", "tenant, code")] {
        let (rows, keys): (i64, i64) = wh
            .query_row(
                &format!("SELECT count(*), count(DISTINCT ({key})) FROM raw.{table}"),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("count");
        assert_eq!(rows, keys, "duplicate keys in raw.{table}");
    }
    drop(wh);
    verify(&p.config);
}

/// Tens of chunks over four connections while a writer changes every table: the target ends
/// equal to the source, row by row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_chunks_under_concurrent_writes() {
    let db = source(20_000, 3_000).await;
    let p = pipeline(&db);
    let writer = Writer::start(&db, writes).await;
    let first = catch_up(&p.config);
    writer.stop().await;
    let chunks: usize = field(&first, "copying snapshot chunks", "chunks")
        .expect("the snapshot logged its chunks")
        .parse()
        .expect("a number");
    // 40 of ledger, 6 of pairs, 1 of audit, at least 1 of events.
    assert!(
        chunks >= 45,
        "{chunks} chunks: the snapshot was not chunked"
    );
    assert_eq!(
        field(&first, "copying snapshot chunks", "workers").as_deref(),
        Some("4")
    );
    catch_up(&p.config);
    assert_all_equal(&db, &p).await;
}

/// A crash after some chunks are durable, writes while it is down, a restart: the restart
/// keeps the slot, copies only the unfinished chunks under a new snapshot, and the target
/// ends equal to the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_snapshot_resumes_with_the_unfinished_chunks() {
    let db = source(20_000, 10).await;
    let p = pipeline(&db);
    let writer = Writer::start(&db, writes).await;
    let crashed = crash_in_snapshot(&p.config, 16, &p.dir.path().join("crash.log"));
    let created_at = field(&crashed, "slot created", "lsn").expect("the slot was created");
    let client = db.client().await.expect("client");
    let slot = client
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&format!("s_{}", db.name())],
        )
        .await
        .expect("the slot survives the crash");
    let confirmed: String = slot.get(0);
    assert_eq!(confirmed, created_at, "the slot is at its consistent point");
    // Changes while sluice is down.
    tokio::time::sleep(Duration::from_millis(500)).await;
    writer.stop().await;

    let resumed = catch_up(&p.config);
    assert!(
        !resumed.contains("slot created") && !resumed.contains("re-creating the slot"),
        "the restart must keep the slot:\n{resumed}"
    );
    let done: usize = field(&resumed, "resuming the snapshot", "chunks_done")
        .unwrap_or_else(|| panic!("the restart did not resume the snapshot:\n{resumed}"))
        .parse()
        .expect("a number");
    let left: usize = field(&resumed, "resuming the snapshot", "chunks_left")
        .expect("chunks left")
        .parse()
        .expect("a number");
    assert!(done >= 5 && left > 0, "{done} chunks done, {left} left");
    assert_eq!(
        field(&resumed, "resuming the snapshot", "lsn").as_deref(),
        Some(created_at.as_str()),
        "the resumed snapshot ends at the slot's consistent point"
    );
    let resume_lsn = field(&resumed, "resuming the snapshot", "resume_lsn").expect("resume lsn");
    // Finished chunks were not copied again: the restart copied fewer rows than the source
    // holds by at least most of the finished chunks' rows.
    let copied: i64 = field(&resumed, "snapshot copied", "rows")
        .expect("rows copied")
        .parse()
        .expect("a number");
    let total: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM ledger) + (SELECT count(*) FROM pairs) \
                  + (SELECT count(*) FROM audit) + (SELECT count(*) FROM events)",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert!(
        copied <= total - (done as i64) * i64::from(CHUNK_ROWS) / 2,
        "the restart copied {copied} of {total} rows with {done} chunks done before"
    );
    catch_up(&p.config);
    assert_all_equal(&db, &p).await;
    // Rows from the first run's chunks are still as of the slot's consistent point, the
    // others as of the new snapshot: the first run's copy was kept, not started over.
    let wh = p.warehouse();
    let at = |position: i64| -> i64 {
        wh.query_row(
            "SELECT count(*) FROM raw.ledger WHERE _sluice_lsn = ?",
            [position],
            |r| r.get(0),
        )
        .expect("count")
    };
    let (first, second) = (at(lsn(&created_at) - 1), at(lsn(&resume_lsn) - 1));
    eprintln!(
        "resumed at {resume_lsn} after {created_at}: {done} chunks done, {left} left, {copied} of {total} rows copied again; ledger rows at the first position {first}, at the second {second}"
    );
    assert!(
        first > 0 && second > 0,
        "{first} rows at the first snapshot's position, {second} at the resumed one's"
    );
}

/// A keyless table whose copy was cut short cannot be continued (its rows have no guard):
/// the restart starts the snapshot over, and the target still ends equal to the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_keyless_table_starts_the_snapshot_over() {
    let db = source(2_000, 30_000).await;
    let p = pipeline(&db);
    let writer = Writer::start(&db, writes).await;
    let crashed = crash_in_snapshot(&p.config, 1, &p.dir.path().join("crash.log"));
    assert!(crashed.contains("slot created"), "{crashed}");
    writer.stop().await;
    let restarted = catch_up(&p.config);
    let reason = field(&restarted, "cannot be resumed", "reason")
        .unwrap_or_else(|| panic!("the restart should have refused to resume:\n{restarted}"));
    assert!(
        restarted.contains("has no key"),
        "reason {reason}:\n{restarted}"
    );
    assert!(restarted.contains("slot created"), "{restarted}");
    catch_up(&p.config);
    assert_all_equal(&db, &p).await;
}

/// With `[capture] state_dir` elsewhere, capture's own files (the chunk ledger of an
/// interrupted snapshot, the spill files of transactions streamed before their commit, the
/// monitor's `sync-state.json`) live there and never in the change log's directory; the
/// restart finds the ledger there and resumes, and `sluice status` reads the state file there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_state_dir_keeps_the_snapshot_ledger_spill_and_sync_state_out_of_the_log() {
    let db = source(20_000, 10).await;
    // The server streams any transaction over 64 kB (its smallest setting) before its commit.
    db.execute(&format!(
        "ALTER DATABASE \"{}\" SET logical_decoding_work_mem = '64kB'",
        db.name()
    ))
    .await
    .expect("streaming threshold");
    let p = pipeline(&db);
    let state = p.dir.path().join("capture-state");
    let log_dir = p.dir.path().join("log");
    let text = std::fs::read_to_string(&p.config).expect("config");
    std::fs::write(
        &p.config,
        format!("{text}\n[capture]\nstate_dir = \"{}\"\n", state.display()),
    )
    .expect("write config");
    let capture_files = [
        "snapshot-ledger",
        "spill",
        "sync-state.json",
        "sync-state-load.json",
    ];
    let in_log = |when: &str| {
        for name in capture_files {
            assert!(
                !log_dir.join(name).exists(),
                "{when}: {name} is in the change log's directory"
            );
        }
    };

    crash_in_snapshot(&p.config, 16, &p.dir.path().join("crash.log"));
    assert!(
        state.join("snapshot-ledger").is_file(),
        "the interrupted snapshot's ledger is in the state directory"
    );
    in_log("after the crash");

    // One transaction large enough to be streamed before its commit.
    db.execute(
        "INSERT INTO ledger SELECT g, g % 100, g * 0.5, repeat('s', 50) \
         FROM generate_series(2000001, 2010000) g",
    )
    .await
    .expect("large transaction");
    let resumed = catch_up(&p.config);
    assert!(
        resumed.contains("resuming the snapshot"),
        "the restart found the ledger in the state directory:\n{resumed}"
    );
    assert!(
        resumed.contains("transaction streamed before its commit is in the change log"),
        "the large transaction was streamed (through the spill directory):\n{resumed}"
    );
    assert!(
        state.join("spill").is_dir(),
        "spill directory in the state directory"
    );
    assert!(
        state.join("sync-state.json").is_file(),
        "the monitor's state file is in the state directory"
    );
    assert!(
        !state.join("snapshot-ledger").exists(),
        "the finished snapshot's ledger is removed"
    );
    in_log("after the sync");

    let out = sluice(&p.config, &["status", "--json"])
        .output()
        .expect("run status");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status --json ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let sync = status["sync"].as_array().expect("sync processes");
    assert!(
        sync.iter().any(|s| s["role"] == "capture and load"),
        "status reads the sync's state file from the state directory: {status}"
    );
    assert_all_equal(&db, &p).await;
}
