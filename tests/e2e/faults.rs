//! Faults from outside, while `sluice sync` runs and a writer changes the source: the source
//! connection cut (through [`FaultProxy`]), the source restarted (fast and immediate shutdown),
//! the network to the source black-holed, the DuckDB file locked by another process, a
//! PostgreSQL target stopped, the replication slot dropped behind Sluice's back, and the
//! publication altered.
//!
//! Each fault either heals by itself (the log shows one "failed; retrying" line per attempt,
//! numbered from 1; the running sync then loads a change made after the fault; the target
//! equals the source row by row and `sluice verify` exits 0) or stops the sync with exit
//! code 1 and an error that says what happened and what to do.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_testkit::{FaultProxy, PgCluster, ShutdownMode, TestDatabase};
use sluice_tests::{Kind, Pipeline, assert_same, sluice_bin, tempfile_dir};
use tokio::task::JoinHandle;

const COLUMNS: &[(&str, Kind)] = &[("id", Kind::Plain), ("v", Kind::Plain), ("n", Kind::Plain)];

const SCHEMA: &str = "
CREATE TABLE t (id bigint PRIMARY KEY, v text, n int);
INSERT INTO t SELECT g, 'seed ' || g, 0 FROM generate_series(1, 200) g;
";

/// A `sluice sync` child process, killed if the test ends without stopping it.
struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    fn start(config: &Path, args: &[&str], log: PathBuf) -> Running {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let child = Command::new(sluice_bin())
            .args(args)
            .arg("-c")
            .arg(config)
            .env("SLUICE_LOG", "info,sluice=debug")
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("spawn sluice");
        Running { child, log }
    }

    fn sync(pipeline: &Pipeline) -> Running {
        Running::start(
            &pipeline.config,
            &["sync"],
            pipeline.dir.path().join("sync.log"),
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("wait for sluice")
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.exited() {
            panic!("sluice sync exited ({status}):\n{}", self.log());
        }
    }

    /// Waits up to `secs` for the process to exit by itself.
    async fn exit_within(&mut self, secs: u64) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "sluice sync did not exit within {secs} s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then expects a clean exit.
    async fn stop(mut self) -> String {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("SIGTERM");
        let status = self.exit_within(40).await;
        let log = self.log();
        assert!(status.success(), "sluice sync exited with {status}:\n{log}");
        log
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Transactions against `t` (insert a new row, update an old one, sometimes delete a recent
/// one) every 20 ms, reconnecting after errors, until stopped.
struct Writer {
    stop: Arc<AtomicBool>,
    committed: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Writer {
    fn start(db: &TestDatabase, first_id: i64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicU64::new(0));
        let task = {
            let (db, stop, committed) = (db.clone(), stop.clone(), committed.clone());
            tokio::spawn(async move {
                let mut client = None;
                let mut n: i64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    if client.is_none() {
                        client = db.client().await.ok();
                    }
                    if let Some(c) = &client {
                        n += 1;
                        let id = first_id + n;
                        let sql = format!(
                            "BEGIN;
                             INSERT INTO t VALUES ({id}, 'new {n}', {n});
                             UPDATE t SET v = 'updated {n}', n = {n} WHERE id = {old};
                             DELETE FROM t WHERE id = {gone} AND {n} % 4 = 0;
                             COMMIT;",
                            old = n * 7 % 200 + 1,
                            gone = id - 3,
                        );
                        match c.batch_execute(&sql).await {
                            Ok(()) => {
                                committed.fetch_add(1, Ordering::Relaxed);
                            }
                            // The server went away (restart): the source stays the truth.
                            Err(_) => client = None,
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        Writer {
            stop,
            committed,
            task,
        }
    }

    fn committed(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    /// Waits until `more` transactions have committed since the call.
    async fn wait_for_commits(&self, more: u64, what: &str) {
        let target = self.committed() + more;
        wait_until(60, what, || async { self.committed() >= target }).await;
    }

    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let committed = self.committed.clone();
        self.task.await.expect("writer task");
        committed.load(Ordering::Relaxed)
    }
}

/// Polls `check` every 100 ms until true; panics after `secs`.
async fn wait_until<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The running sync's state file (rewritten every second).
fn state(pipeline: &Pipeline) -> Option<Value> {
    let text = std::fs::read(pipeline.dir.path().join("log").join("sync-state.json")).ok()?;
    serde_json::from_slice(&text).ok()
}

/// `X/Y` as a number.
fn lsn(text: &str) -> u64 {
    let (hi, lo) = text.split_once('/').expect("X/Y");
    (u64::from_str_radix(hi, 16).expect("hex") << 32) | u64::from_str_radix(lo, 16).expect("hex")
}

async fn current_lsn(db: &TestDatabase) -> u64 {
    let row = db
        .query("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .expect("current lsn");
    lsn(row[0].get(0))
}

/// Waits until the running sync has taken its snapshot and loaded it.
async fn wait_snapshot_loaded(pipeline: &Pipeline, sync: &mut Running) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        sync.assert_running();
        if state(pipeline)
            .is_some_and(|s| s["tables"][0]["snapshot"] == "done" && s["applied_lsn"].is_string())
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the snapshot was not loaded:\n{}",
            sync.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Commits a marker change now and waits until the running sync has applied it (and so every
/// change committed before it).
async fn wait_caught_up(db: &TestDatabase, pipeline: &Pipeline, sync: &mut Running, secs: u64) {
    let before = current_lsn(db).await;
    db.execute("UPDATE t SET v = 'marker', n = -1 WHERE id = 1")
        .await
        .expect("marker");
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        sync.assert_running();
        let applied = state(pipeline)
            .and_then(|s| s["applied_lsn"].as_str().map(lsn))
            .unwrap_or(0);
        if applied > before {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the running sync did not catch up within {secs} s:\n{}",
            sync.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The attempt numbers of the "`what` failed; retrying" lines, in order.
fn retries(log: &str, what: &str) -> Vec<u64> {
    let line = format!("{what} failed; retrying");
    log.lines()
        .filter(|l| l.contains(&line))
        .map(|l| {
            l.split("attempt=")
                .nth(1)
                .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no attempt number in {l:?}"))
        })
        .collect()
}

/// Asserts the log shows retries of `what`, one line per attempt, numbered 1, 2, ...
fn assert_retried(log: &str, what: &str) -> usize {
    let attempts = retries(log, what);
    let expected: Vec<u64> = (1..=attempts.len() as u64).collect();
    assert!(
        !attempts.is_empty(),
        "no \"{what} failed; retrying\" line:\n{log}"
    );
    assert_eq!(attempts, expected, "one line per attempt:\n{log}");
    attempts.len()
}

/// `sluice verify -c config`: exit code and output.
fn verify(config: &Path) -> (i32, String) {
    let out = Command::new(sluice_bin())
        .args(["verify", "-c"])
        .arg(config)
        .output()
        .expect("run verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn assert_verified(config: &Path) {
    let (code, out) = verify(config);
    assert_eq!(code, 0, "sluice verify found a difference:\n{out}");
    assert!(out.contains("source and target are equal"), "{out}");
}

/// The DuckDB warehouse equals the source row by row, holds each key once, and `verify`
/// agrees.
async fn assert_equal(db: &TestDatabase, pipeline: &Pipeline) {
    {
        let wh = pipeline.warehouse();
        assert_same(db, &wh, "t", COLUMNS).await;
        let (rows, keys): (i64, i64) = wh
            .query_row("SELECT count(*), count(DISTINCT id) FROM raw.t", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("count");
        assert_eq!(rows, keys, "a key is doubled in the warehouse");
    }
    assert_verified(&pipeline.config);
}

/// A pipeline into DuckDB whose source URL goes through `proxy`.
fn pipeline_through(db: &TestDatabase, proxy: &FaultProxy) -> Pipeline {
    let pipeline = Pipeline::new(db, &["public.t"], "");
    let text = std::fs::read_to_string(&pipeline.config).expect("config");
    std::fs::write(&pipeline.config, text.replace(&db.url(), &proxy.url(db))).expect("config");
    pipeline
}

/// (a) The source connections are cut three times mid-stream: the running sync reconnects
/// each time and loses or doubles nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_connection_cut_mid_stream() {
    let db = PgCluster::shared().fresh_database().await.expect("db");
    db.execute(SCHEMA).await.expect("schema");
    let proxy = FaultProxy::to(&db).expect("proxy");
    let pipeline = pipeline_through(&db, &proxy);
    let mut sync = Running::sync(&pipeline);
    wait_snapshot_loaded(&pipeline, &mut sync).await;

    let writer = Writer::start(&db, 10_000);
    for cut in 1..=3 {
        writer
            .wait_for_commits(20, "the writer to commit before a cut")
            .await;
        proxy.cut();
        // Each cut is noticed once; the next one comes after sluice has reconnected.
        wait_until(30, "sluice to notice the cut", || {
            let attempts = retries(&sync.log(), "source").len();
            async move { attempts == cut }
        })
        .await;
        wait_until(30, "sluice to reconnect", || async { proxy.active() >= 2 }).await;
        sync.assert_running();
    }
    writer
        .wait_for_commits(20, "the writer after the cuts")
        .await;
    let committed = writer.stop().await;
    assert!(committed >= 80, "{committed} transactions");
    wait_caught_up(&db, &pipeline, &mut sync, 60).await;
    let log = sync.stop().await;
    assert_eq!(
        assert_retried(&log, "source"),
        3,
        "one retry per cut:\n{log}"
    );
    // The summary counts what every attempt of capture streamed, not only the last one's.
    let streamed: u64 = log
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("sync finished: ")?;
            rest.split("streamed ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no summary line:\n{log}"));
    assert!(
        streamed >= committed,
        "summary says {streamed} transactions streamed, the writer committed {committed}:\n{log}"
    );
    assert!(
        log.contains("the server closed the replication connection")
            || log.contains("i/o error on the replication connection"),
        "{log}"
    );
    assert_equal(&db, &pipeline).await;
}

/// (b) The source server restarts under a running sync and a writer.
async fn source_restart(mode: ShutdownMode) {
    let mut cluster = PgCluster::start().expect("source cluster");
    let db = cluster.fresh_database().await.expect("db");
    db.execute(SCHEMA).await.expect("schema");
    let pipeline = Pipeline::new(&db, &["public.t"], "");
    let mut sync = Running::sync(&pipeline);
    wait_snapshot_loaded(&pipeline, &mut sync).await;

    let writer = Writer::start(&db, 10_000);
    writer
        .wait_for_commits(30, "the writer before the restart")
        .await;
    let restart = tokio::task::spawn_blocking(move || {
        let result = cluster.restart(mode);
        (cluster, result)
    });
    let (cluster, restarted) = restart.await.expect("restart task");
    restarted.expect("the server restarts (a fast shutdown finishes in time)");
    writer
        .wait_for_commits(30, "the writer after the restart")
        .await;
    writer.stop().await;
    wait_caught_up(&db, &pipeline, &mut sync, 60).await;
    let log = sync.stop().await;
    assert_retried(&log, "source");
    if mode == ShutdownMode::Fast {
        // The walsender ends the stream once Sluice has confirmed what it sent.
        assert!(
            log.contains("source failed; retrying error=source: the server closed the replication connection attempt=1"),
            "{log}"
        );
    }
    assert_equal(&db, &pipeline).await;
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_restarted_with_fast_shutdown() {
    source_restart(ShutdownMode::Fast).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_restarted_with_immediate_shutdown() {
    source_restart(ShutdownMode::Immediate).await;
}

/// (c) The network to the source black-holes for at least 15 s (longer than the server's
/// 10 s `wal_sender_timeout`): Sluice notices by its own timeouts while the partition lasts,
/// first on the silent replication connection (it asks the server for a reply, then gives up
/// on it), then on a connection attempt that gets no answer (`connect_timeout`), and recovers
/// once the partition ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_network_black_hole() {
    let db = PgCluster::shared().fresh_database().await.expect("db");
    db.execute(SCHEMA).await.expect("schema");
    let proxy = FaultProxy::to(&db).expect("proxy");
    let pipeline = pipeline_through(&db, &proxy);
    let text = std::fs::read_to_string(&pipeline.config).expect("config");
    let url = proxy.url(&db);
    std::fs::write(
        &pipeline.config,
        text.replace(&url, &format!("{url}?connect_timeout=2")),
    )
    .expect("config");
    let mut sync = Running::sync(&pipeline);
    wait_snapshot_loaded(&pipeline, &mut sync).await;

    let writer = Writer::start(&db, 10_000);
    writer
        .wait_for_commits(20, "the writer before the partition")
        .await;
    proxy.blackhole(true);
    let started = Instant::now();
    loop {
        sync.assert_running();
        if retries(&sync.log(), "source").len() >= 2 && started.elapsed() >= Duration::from_secs(15)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "sluice did not give up on the black-holed source twice within 40 s:\n{}",
            sync.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    proxy.blackhole(false);
    let during = sync.log();
    let line = |attempt: u64| {
        during
            .lines()
            .find(|l| {
                l.contains("source failed; retrying") && l.contains(&format!("attempt={attempt} "))
            })
            .unwrap_or_else(|| panic!("no attempt {attempt}:\n{during}"))
            .to_owned()
    };
    // Whichever notices first: the silent replication stream, or the publication check
    // (every 10 s) getting no answer on the ordinary connection.
    let first = line(1);
    assert!(
        (first.contains("error=source: the source sent nothing for ")
            && first.contains(
                " ms, not even the answer to a status update that asked for one: taking the replication connection for lost"
            ))
            || first.contains(
                "error=source: the source did not answer the publication check within "
            ),
        "{during}"
    );
    assert!(
        line(2).contains(&format!(
            "error=source: timed out connecting to 127.0.0.1:{}",
            proxy.port()
        )),
        "{during}"
    );
    writer
        .wait_for_commits(20, "the writer after the partition")
        .await;
    writer.stop().await;
    wait_caught_up(&db, &pipeline, &mut sync, 60).await;
    let log = sync.stop().await;
    assert_retried(&log, "source");
    assert_equal(&db, &pipeline).await;
}

/// (d) Another process (this test) holds the DuckDB file open for writing when a sync
/// starts: the loader retries while the file is locked, and loads everything once released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_file_locked_by_another_process() {
    let db = PgCluster::shared().fresh_database().await.expect("db");
    db.execute(SCHEMA).await.expect("schema");
    let pipeline = Pipeline::new(&db, &["public.t"], "");
    pipeline.sync_until_caught_up();

    let holder = duckdb::Connection::open(&pipeline.warehouse).expect("lock the warehouse");
    let writer = Writer::start(&db, 10_000);
    writer.wait_for_commits(20, "the writer").await;
    let mut sync = Running::start(
        &pipeline.config,
        &["sync", "--until-caught-up"],
        pipeline.dir.path().join("sync.log"),
    );
    wait_until(30, "the loader to retry the locked file twice", || {
        let attempts = retries(&sync.log(), "target").len();
        async move { attempts >= 2 }
    })
    .await;
    sync.assert_running();
    let log = sync.log();
    assert!(
        log.contains(&format!(
            "database file \"{}\" is locked by another process",
            pipeline.warehouse.display()
        )),
        "{log}"
    );
    writer.stop().await;
    drop(holder);
    let status = sync.exit_within(60).await;
    let log = sync.log();
    assert!(status.success(), "exit {status}:\n{log}");
    assert_retried(&log, "target");
    // Everything committed before the sync started is in; the rest comes with the next run.
    pipeline.sync_until_caught_up();
    assert_equal(&db, &pipeline).await;
}

/// Rows of `t` at the source and of `raw.t` in a PostgreSQL target, as text, by key.
async fn pg_rows(db: &TestDatabase, sql: &str) -> Vec<(i64, Option<String>, Option<i32>)> {
    db.query(sql, &[])
        .await
        .expect("rows")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// (e) A PostgreSQL target goes down for a while under the default configuration (no
/// `[wal] absorb_backlog`): the loader retries within its budget and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_target_stopped_then_back() {
    let source = PgCluster::shared().fresh_database().await.expect("source");
    source.execute(SCHEMA).await.expect("schema");
    let mut target_cluster = PgCluster::start().expect("target cluster");
    let target = target_cluster.fresh_database().await.expect("target");
    let dir = tempfile_dir::Dir::new();
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nurl = \"{}\"\ntables = [\"public.t\"]\nslot = \"s_{}\"\n\n\
             [log]\nkind = \"local\"\npath = \"{}\"\n\n\
             [target]\nkind = \"postgres\"\nurl = \"{}\"\n\n\
             [load]\nflush_interval_ms = 200\n",
            source.url(),
            source.name(),
            dir.path().join("log").display(),
            target.url(),
        ),
    )
    .expect("config");
    let state_file = dir.path().join("log").join("sync-state.json");
    let applied = || {
        std::fs::read(&state_file)
            .ok()
            .and_then(|t| serde_json::from_slice::<Value>(&t).ok())
            .and_then(|s| s["applied_lsn"].as_str().map(lsn))
            .unwrap_or(0)
    };
    let mut sync = Running::start(&config, &["sync"], dir.path().join("sync.log"));
    wait_until(60, "the snapshot to load", || async { applied() > 0 }).await;

    let writer = Writer::start(&source, 10_000);
    writer
        .wait_for_commits(20, "the writer before the outage")
        .await;
    target_cluster.halt();
    writer
        .wait_for_commits(50, "the writer during the outage")
        .await;
    wait_until(30, "the loader to notice the outage", || {
        let attempts = retries(&sync.log(), "target").len();
        async move { attempts >= 1 }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    sync.assert_running();
    target_cluster.resume().expect("the target starts again");
    writer
        .wait_for_commits(20, "the writer after the outage")
        .await;
    writer.stop().await;

    let before = current_lsn(&source).await;
    source
        .execute("UPDATE t SET v = 'marker', n = -1 WHERE id = 1")
        .await
        .expect("marker");
    let deadline = Instant::now() + Duration::from_secs(60);
    while applied() <= before {
        sync.assert_running();
        assert!(
            Instant::now() < deadline,
            "the loader did not catch up:\n{}",
            sync.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = sync.stop().await;
    assert_retried(&log, "target");
    let want = pg_rows(&source, "SELECT id, v, n FROM t ORDER BY id").await;
    let got = pg_rows(
        &target,
        "SELECT id, v, n FROM raw.t WHERE NOT _sluice_deleted ORDER BY id",
    )
    .await;
    assert_eq!(got.len(), want.len(), "row counts");
    assert_eq!(got, want);
    assert_verified(&config);
}

const SLOT_GONE: &str = "does not exist, but the change log already holds changes from it. \
     Changes made while the slot was missing cannot be recovered. Remove the change log \
     directory and the target tables, then sync again to take a new snapshot.";

async fn slot_exists(db: &TestDatabase, slot: &str) -> bool {
    !db.query(
        "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
        &[&slot],
    )
    .await
    .expect("slots")
    .is_empty()
}

/// (f) The slot is dropped while Sluice is stopped: the next sync stops with exit code 1 and
/// says what happened and what to do, without creating a new slot; doing what it says works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_dropped_while_stopped() {
    let db = PgCluster::shared().fresh_database().await.expect("db");
    db.execute(SCHEMA).await.expect("schema");
    let pipeline = Pipeline::new(&db, &["public.t"], "");
    pipeline.sync_until_caught_up();
    let slot = format!("s_{}", db.name());
    db.execute(&format!("SELECT pg_drop_replication_slot('{slot}')"))
        .await
        .expect("drop the slot");
    db.execute("UPDATE t SET v = 'while the slot was missing' WHERE id <= 10")
        .await
        .expect("changes");

    let out = Command::new(sluice_bin())
        .args(["sync", "--until-caught-up", "-c"])
        .arg(&pipeline.config)
        .output()
        .expect("run sluice");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: source: replication slot \"{slot}\" {SLOT_GONE}"
        )),
        "{stderr}"
    );
    assert!(
        !slot_exists(&db, &slot).await,
        "sluice created a new slot and would skip the changes made without one"
    );

    // What the hint says: remove the change log and the target, sync again.
    std::fs::remove_dir_all(pipeline.dir.path().join("log")).expect("remove the change log");
    std::fs::remove_file(&pipeline.warehouse).expect("remove the warehouse");
    pipeline.sync_until_caught_up();
    assert_equal(&db, &pipeline).await;
}

/// (f) The slot is dropped while a sync streams from it (its walsender terminated first, as
/// an active slot cannot be dropped): the sync stops with the same error instead of creating
/// a new slot and skipping what was written meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_dropped_while_streaming() {
    let db = PgCluster::shared().fresh_database().await.expect("db");
    db.execute(SCHEMA).await.expect("schema");
    let pipeline = Pipeline::new(&db, &["public.t"], "");
    let mut sync = Running::sync(&pipeline);
    wait_snapshot_loaded(&pipeline, &mut sync).await;
    let slot = format!("s_{}", db.name());
    let writer = Writer::start(&db, 10_000);
    writer.wait_for_commits(20, "the writer").await;

    let client = db.client().await.expect("client");
    wait_until(30, "the slot to be dropped", || async {
        // Waits (up to 5 s) for the walsender to exit, so the slot is free to drop.
        let _ = client
            .execute(
                "SELECT pg_terminate_backend(active_pid, 5000) FROM pg_replication_slots \
                 WHERE slot_name = $1 AND active_pid IS NOT NULL",
                &[&slot],
            )
            .await;
        client
            .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
            .await
            .is_ok()
    })
    .await;
    writer
        .wait_for_commits(20, "the writer after the drop")
        .await;
    let status = sync.exit_within(30).await;
    writer.stop().await;
    let log = sync.log();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!(
            "error: source: replication slot \"{slot}\" {SLOT_GONE}"
        )),
        "{log}"
    );
    assert!(
        !slot_exists(&db, &slot).await,
        "sluice created a new slot and would skip the changes made without one"
    );
}

/// Runs `sluice sync --until-caught-up` and returns its stderr; panics unless it exits 0.
fn sync_once(pipeline: &Pipeline) -> String {
    let out = Command::new(sluice_bin())
        .args(["sync", "--until-caught-up", "-c"])
        .arg(&pipeline.config)
        .output()
        .expect("run sluice");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "exit {}:\n{stderr}", out.status);
    stderr
}

/// (g) The publication is altered while a sync runs: `u` (captured) is dropped from it and
/// `w` (not captured) added. Changes to `u` while it is out of the publication never reach the
/// stream, so the running sync stops within a publication check (10 s) with an error naming
/// `u` and what to do, having loaded everything of `t`; a restart refuses the same way rather
/// than putting `u` back silently. Accepting the gap (adding `u` back by hand) lets it go on
/// and `verify` shows the rows missed; a new snapshot brings them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publication_altered_while_syncing() {
    let db = PgCluster::shared().fresh_database().await.expect("db");
    db.execute(SCHEMA).await.expect("schema");
    db.execute(
        "CREATE TABLE u (id int PRIMARY KEY, v text);
         INSERT INTO u SELECT g, 'seed' FROM generate_series(1, 10) g;
         CREATE TABLE w (id int PRIMARY KEY, v text);",
    )
    .await
    .expect("more tables");
    let pipeline = Pipeline::new(&db, &["public.t", "public.u"], "");
    let mut sync = Running::sync(&pipeline);
    wait_snapshot_loaded(&pipeline, &mut sync).await;
    let writer = Writer::start(&db, 10_000);
    writer.wait_for_commits(20, "the writer").await;
    db.execute(
        "UPDATE u SET v = 'while published' WHERE id = 1;
         ALTER PUBLICATION sluice_pub DROP TABLE u;
         UPDATE u SET v = 'while not published' WHERE id = 2;
         INSERT INTO u VALUES (11, 'while not published');
         ALTER PUBLICATION sluice_pub ADD TABLE w;
         INSERT INTO w VALUES (1, 'not captured');",
    )
    .await
    .expect("alter the publication");
    writer.stop().await;
    let status = sync.exit_within(40).await;
    let log = sync.log();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains(
            "\"public\".\"u\" is captured by this pipeline but not in publication \"sluice_pub\""
        ),
        "{log}"
    );
    assert!(
        log.contains("ALTER PUBLICATION \"sluice_pub\" ADD TABLE \"public\".\"u\";"),
        "{log}"
    );

    // A restart refuses too, and leaves the publication as it is.
    let out = Command::new(sluice_bin())
        .args(["sync", "--until-caught-up", "-c"])
        .arg(&pipeline.config)
        .output()
        .expect("run sluice");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is captured by this pipeline but not in publication"),
        "{stderr}"
    );
    let client = db.client().await.expect("client");
    let published: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_publication_tables WHERE pubname = 'sluice_pub' AND tablename = 'u'",
            &[],
        )
        .await
        .expect("publication tables")
        .get(0);
    assert_eq!(published, 0, "the refused start did not add u back");

    // Everything of `t`, and of `u` while it was published, was loaded before the stop.
    sync_once_after_accepting_the_gap(&db, &pipeline).await;
    {
        let wh = pipeline.warehouse();
        assert_same(&db, &wh, "t", COLUMNS).await;
        let first: String = wh
            .query_row("SELECT v FROM raw.u WHERE id = 1", [], |r| r.get(0))
            .expect("u 1");
        assert_eq!(first, "while published");
    }
    let (code, out) = verify(&pipeline.config);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("equal     \"public\".\"t\""), "{out}");
    assert!(out.contains("missing in target: (11)"), "{out}");
    assert!(out.contains("different content: (2)"), "{out}");

    // A new snapshot (change log, slot and target removed) brings back what was missed.
    std::fs::remove_dir_all(pipeline.dir.path().join("log")).expect("remove the change log");
    std::fs::remove_file(&pipeline.warehouse).expect("remove the warehouse");
    db.execute(&format!(
        "SELECT pg_drop_replication_slot('s_{}')",
        db.name()
    ))
    .await
    .expect("drop the slot");
    sync_once(&pipeline);
    assert_equal(&db, &pipeline).await;
    let (code, out) = verify(&pipeline.config);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("source and target are equal (2 tables)"),
        "{out}"
    );
}

/// The operator accepts the gap as the error's hint says (adds `u` back to the publication),
/// and a sync then goes on.
async fn sync_once_after_accepting_the_gap(db: &TestDatabase, pipeline: &Pipeline) {
    db.execute("ALTER PUBLICATION sluice_pub ADD TABLE u")
        .await
        .expect("add u back");
    sync_once(pipeline);
}
