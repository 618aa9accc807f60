//! Operating a running sync: `/metrics` (every documented metric, with counts that match what
//! was changed), `/healthz` and `/readyz`, `sluice status --json` from the sync's state file,
//! the Grafana dashboard and alert rules against the real metric names, SIGTERM finishing
//! within the deadline with the checkpoint written, and a target outage absorbed by the change
//! log (`[wal] absorb_backlog`) while the slot keeps advancing.

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice::telemetry::{Kind, METRICS};
use sluice_testkit::{PgCluster, TestDatabase};
use sluice_tests::{Pipeline, sluice_bin, tempfile_dir};

/// A free local port (released before use: the sync binds it right after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `GET path` on 127.0.0.1:port: status code and body; `None` when nothing answers.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((code, body))
}

/// Polls `check` every 200 ms until it returns `Some`, or panics after `secs` with `what`.
fn wait_for<T>(secs: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A series `name{a="x",b="y"}` with its labels sorted, so order does not matter.
fn normalize(series: &str) -> String {
    match series.split_once('{') {
        None => series.to_owned(),
        Some((name, labels)) => {
            let mut pairs: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
            pairs.sort_unstable();
            format!("{name}{{{}}}", pairs.join(","))
        }
    }
}

/// The value of the sample `series` (labels in any order), if present.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    let want = normalize(series);
    metrics.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (normalize(name) == want).then(|| value.parse().ok())?
    })
}

/// Metric names of every sample in a scrape.
fn names(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next().map(str::to_owned))
        .collect()
}

/// The names a documented metric shows as in a scrape.
fn exported_names(name: &str, kind: Kind) -> Vec<String> {
    match kind {
        Kind::Histogram => ["_bucket", "_sum", "_count"]
            .iter()
            .map(|s| format!("{name}{s}"))
            .collect(),
        Kind::Counter | Kind::Gauge => vec![name.to_owned()],
    }
}

fn spawn(pipeline: &Pipeline, args: &[&str], log: &Path) -> Child {
    let file = std::fs::File::create(log).expect("log file");
    Command::new(sluice_bin())
        .args(args)
        .arg("-c")
        .arg(&pipeline.config)
        .env("SLUICE_LOG", "info,sluice=debug")
        .stdout(Stdio::piped())
        .stderr(file)
        .spawn()
        .expect("spawn sluice")
}

fn status_json(pipeline: &Pipeline) -> Value {
    let out = Command::new(sluice_bin())
        .args(["status", "--json", "-c"])
        .arg(&pipeline.config)
        .output()
        .expect("run status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

async fn slot_row(db: &TestDatabase, slot: &str) -> (String, Option<i64>) {
    let client = db.client().await.expect("client");
    let row = client
        .query_one(
            "SELECT confirmed_flush_lsn::text, safe_wal_size FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .expect("slot");
    (row.get(0), row.get(1))
}

async fn lsn_now(db: &TestDatabase) -> String {
    let client = db.client().await.expect("client");
    client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .expect("lsn")
        .get(0)
}

/// `X/Y` as a number.
fn lsn(text: &str) -> u64 {
    let (hi, lo) = text.split_once('/').expect("X/Y");
    (u64::from_str_radix(hi, 16).expect("hex") << 32) | u64::from_str_radix(lo, 16).expect("hex")
}

/// Live rows of `raw.t` in a PostgreSQL target; `None` while it cannot be read.
async fn count(db: &TestDatabase) -> Option<i64> {
    let c = db.client().await.ok()?;
    let row = c
        .query_one("SELECT count(*) FROM raw.t WHERE NOT _sluice_deleted", &[])
        .await
        .ok()?;
    Some(row.get::<_, i64>(0))
}

fn log_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test]
async fn metrics_health_status_and_sigterm_while_syncing() {
    let cluster = PgCluster::builder()
        .conf("max_slot_wal_keep_size = '1GB'")
        .start()
        .expect("cluster");
    let db = cluster.fresh_database().await.expect("database");
    db.execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 100) g;
         ANALYZE t;",
    )
    .await
    .expect("schema");
    let pipeline = Pipeline::new(
        &db,
        &["public.t"],
        "[wal]\ncheck_interval_ms = 300\nwarn_retained = \"1KiB\"\n",
    );
    let port = free_port();
    let log = pipeline.dir.path().join("sync.log");
    let mut child = spawn(
        &pipeline,
        &["sync", "--metrics-listen", &format!("127.0.0.1:{port}")],
        &log,
    );

    let ready = wait_for(60, "/readyz to answer 200", || {
        get(port, "/readyz").filter(|(code, _)| *code == 200)
    });
    assert_eq!(ready.1, "ready\n");
    assert_eq!(get(port, "/healthz"), Some((200, "ok\n".to_owned())));

    db.execute(
        "INSERT INTO t SELECT g, 'new ' || g FROM generate_series(101, 150) g;
         UPDATE t SET v = 'changed' WHERE id <= 10;
         DELETE FROM t WHERE id > 145;",
    )
    .await
    .expect("changes");
    let applied =
        |op: &str| format!("sluice_changes_applied_total{{op=\"{op}\",table=\"public.t\"}}");
    let captured =
        |op: &str| format!("sluice_changes_captured_total{{op=\"{op}\",table=\"public.t\"}}");
    let mut last = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let scrape = loop {
        if let Some((_, body)) = get(port, "/metrics") {
            if sample(&body, &applied("delete")) == Some(5.0) {
                break body;
            }
            last = body;
        }
        assert!(
            Instant::now() < deadline,
            "the changes were not applied:\n{last}\n{}",
            log_text(&log)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // 100 snapshot rows plus 50 inserts; 10 updates; 5 deletes.
    assert_eq!(sample(&scrape, &applied("insert")), Some(150.0), "{scrape}");
    assert_eq!(sample(&scrape, &applied("update")), Some(10.0));
    assert_eq!(sample(&scrape, &captured("insert")), Some(50.0));
    assert_eq!(sample(&scrape, &captured("update")), Some(10.0));
    assert_eq!(sample(&scrape, &captured("delete")), Some(5.0));
    assert_eq!(
        sample(&scrape, "sluice_snapshot_rows_total{table=\"public.t\"}"),
        Some(100.0)
    );
    assert_eq!(sample(&scrape, "sluice_source_up"), Some(1.0));
    assert_eq!(sample(&scrape, "sluice_target_up"), Some(1.0));
    assert!(sample(&scrape, "sluice_end_to_end_latency_seconds_count").is_some_and(|n| n >= 1.0));
    assert!(sample(&scrape, "sluice_batches_applied_total").is_some_and(|n| n >= 2.0));

    // Every documented metric is exported (the slot's once the monitor has read it).
    let scrape = wait_for(30, "the slot's metrics", || {
        let (_, body) = get(port, "/metrics")?;
        names(&body)
            .contains("sluice_slot_safe_wal_size_bytes")
            .then_some(body)
    });
    let exported = names(&scrape);
    for m in METRICS {
        for name in exported_names(m.name, m.kind) {
            assert!(
                exported.contains(&name),
                "{name} is documented but not exported"
            );
        }
    }
    // ... and nothing undocumented is.
    let documented: BTreeSet<String> = METRICS
        .iter()
        .flat_map(|m| exported_names(m.name, m.kind))
        .collect();
    let extra: Vec<_> = exported.difference(&documented).collect();
    assert!(extra.is_empty(), "undocumented metrics: {extra:?}");

    // status --json reads the running sync's state file and the slot's real values.
    let status = wait_for(30, "the state file to show the changes", || {
        let v = status_json(&pipeline);
        // The drain rate needs two readings of the slot.
        (v["sync"][0]["applied_changes"] == 165 && v["slot"]["drain_bytes_per_sec"].is_number())
            .then_some(v)
    });
    let sync = &status["sync"][0];
    assert_eq!(sync["running"], true, "{status}");
    assert_eq!(sync["role"], "capture and load");
    assert_eq!(sync["pid"], child.id());
    assert_eq!(sync["tables"][0]["table"], "public.t");
    assert_eq!(sync["tables"][0]["snapshot"], "done");
    assert_eq!(sync["tables"][0]["snapshot_rows"], 100);
    assert_eq!(sync["tables"][0]["applied_changes"], 165);
    let slot = format!("s_{}", db.name());
    let (confirmed, safe) = slot_row(&db, &slot).await;
    assert_eq!(status["slot"]["confirmed_flush_lsn"], confirmed.as_str());
    let reported_safe = status["slot"]["safe_wal_size"].as_i64().expect("safe size");
    let real_safe = safe.expect("max_slot_wal_keep_size is set");
    assert!(
        (reported_safe - real_safe).abs() < 64 << 20 && real_safe > 0,
        "{reported_safe} vs {real_safe}"
    );
    assert!(
        status["slot"]["drain_bytes_per_sec"].is_number(),
        "{status}"
    );
    assert!(
        status["sync"][0]["wal"]["retained_wal_bytes"].is_number(),
        "{status}"
    );
    // The slot holds more than the 1 KiB warning threshold: status and the log say so.
    assert_eq!(status["slot"]["over_warning"], true, "{status}");
    assert_eq!(sync["wal"]["over_warning"], true, "{status}");
    assert!(
        log_text(&log).contains("retains more WAL than [wal] warn_retained"),
        "{}",
        log_text(&log)
    );
    assert!(
        sync["tables"][0]["freshness_lag_ms"]
            .as_i64()
            .is_some_and(|ms| ms >= 0),
        "{status}"
    );

    // SIGTERM: the sync finishes its batch, writes its checkpoint and exits 0 in time.
    db.execute("INSERT INTO t VALUES (1000, 'last')")
        .await
        .expect("insert");
    let started = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let status_code = wait_for(35, "the sync to exit after SIGTERM", || {
        child.try_wait().expect("wait")
    });
    let took = started.elapsed();
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout).expect("stdout");
    }
    assert!(
        status_code.success(),
        "exit {status_code:?}\n{}",
        log_text(&log)
    );
    assert!(
        took < Duration::from_secs(30),
        "took {took:?}, beyond the 30 s deadline"
    );
    let final_lsn = stdout
        .trim()
        .rsplit_once("target at ")
        .map(|(_, l)| l.to_owned())
        .unwrap_or_else(|| panic!("no final position in {stdout:?}"));
    let warehouse = pipeline.warehouse();
    let stored: i64 = warehouse
        .query_row("SELECT applied_lsn FROM raw._sluice_checkpoints", [], |r| {
            r.get(0)
        })
        .expect("checkpoint");
    assert_eq!(
        stored as u64,
        lsn(&final_lsn),
        "the checkpoint holds the reported position"
    );
    drop(warehouse);
    let after = status_json(&pipeline);
    assert_eq!(after["sync"][0]["running"], false, "{after}");
    assert_eq!(
        after["sync"][0]["applied_lsn"],
        final_lsn.as_str(),
        "{after}"
    );
    assert_eq!(
        after["target"]["checkpoint"]["applied_lsn"],
        final_lsn.as_str()
    );
}

#[tokio::test]
async fn target_outage_is_absorbed_by_the_change_log() {
    outage(false).await;
}

/// With a backlog budget of a few small segments, capture pauses while the target is down
/// (the slot stops advancing) and resumes once the loader has drained the change log.
#[tokio::test]
async fn a_full_backlog_pauses_capture_until_the_target_returns() {
    outage(true).await;
}

async fn outage(small_budget: bool) {
    let source_cluster = PgCluster::shared();
    let source = source_cluster.fresh_database().await.expect("source");
    let mut target_cluster = PgCluster::start().expect("target cluster");
    let target = target_cluster.fresh_database().await.expect("target");
    source
        .execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text);
             INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 20) g;",
        )
        .await
        .expect("schema");
    let dir = tempfile_dir::Dir::new();
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nurl = \"{}\"\ntables = [\"public.t\"]\nslot = \"s_{}\"\n\n\
             [log]\nkind = \"local\"\npath = \"{}\"\nsegment_bytes = 1024\n\n\
             [target]\nkind = \"postgres\"\nurl = \"{}\"\n\n\
             [load]\nflush_interval_ms = 200\n\n\
             [wal]\nabsorb_backlog = \"{budget}\"\n",
            source.url(),
            source.name(),
            dir.path().join("log").display(),
            target.url(),
            budget = if small_budget { "4KiB" } else { "1GiB" },
        ),
    )
    .expect("config");
    let port = free_port();
    let log = dir.path().join("sync.log");
    let file = std::fs::File::create(&log).expect("log");
    let mut child = Command::new(sluice_bin())
        .args([
            "sync",
            "--metrics-listen",
            &format!("127.0.0.1:{port}"),
            "-c",
        ])
        .arg(&config)
        .env("SLUICE_LOG", "info,sluice=debug")
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&target).await != Some(20) {
        assert!(
            Instant::now() < deadline,
            "snapshot never loaded:\n{}",
            log_text(&log)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for(30, "/readyz to answer 200", || {
        get(port, "/readyz").filter(|(c, _)| *c == 200)
    });

    // The target goes away: readiness says so, and capture keeps confirming the slot.
    target_cluster.halt();
    let (_, body) = wait_for(30, "/readyz to turn unready", || {
        get(port, "/readyz").filter(|(c, _)| *c == 503)
    });
    assert!(body.contains("target not reachable"), "{body}");
    // 500 rows in 20 transactions over a few seconds, so capture appends several times.
    for i in 0..20 {
        let first = 21 + i * 25;
        source
            .execute(&format!(
                "INSERT INTO t SELECT g, 'during outage' FROM generate_series({first}, {}) g",
                first + 24
            ))
            .await
            .expect("changes during the outage");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let written = lsn(&lsn_now(&source).await);
    let slot = format!("s_{}", source.name());
    if small_budget {
        // The outage's changes do not fit: capture stops confirming until the target returns.
        wait_for(60, "capture to pause on the full backlog", || {
            log_text(&log)
                .contains("over the 4096-byte budget")
                .then_some(())
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (confirmed, _) = slot_row(&source, &slot).await;
        assert!(
            lsn(&confirmed) < written,
            "the slot advanced past a full backlog:\n{}",
            log_text(&log)
        );
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the sync gave up:\n{}",
            log_text(&log)
        );
    }
    let deadline = Instant::now() + Duration::from_secs(if small_budget { 1 } else { 60 });
    loop {
        if small_budget {
            break;
        }
        let (confirmed, _) = slot_row(&source, &slot).await;
        if lsn(&confirmed) >= written {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "confirmed_flush_lsn {confirmed} stayed behind the outage's changes:\n{}",
            log_text(&log)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        child.try_wait().expect("wait").is_none(),
        "the sync gave up:\n{}",
        log_text(&log)
    );

    // The target returns: the backlog drains and the sync becomes ready again.
    target_cluster.resume().expect("restart the target");
    let deadline = Instant::now() + Duration::from_secs(90);
    while count(&target).await != Some(520) {
        assert!(
            Instant::now() < deadline,
            "the warehouse did not catch up:\n{}",
            log_text(&log)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_for(30, "/readyz to recover", || {
        get(port, "/readyz").filter(|(c, _)| *c == 200)
    });
    let (confirmed, _) = slot_row(&source, &slot).await;
    assert!(lsn(&confirmed) >= written, "the slot did not catch up");
    let _ = child.kill();
    let _ = child.wait();
    let logged = log_text(&log);
    assert!(logged.contains("failed; retrying"), "{logged}");
}

/// The dashboard and the alert rules in `infra/` use only metrics Sluice exports, and the
/// README documents exactly the exported list.
#[test]
fn dashboards_alerts_and_readme_use_the_documented_metrics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let documented: BTreeSet<String> = METRICS
        .iter()
        .flat_map(|m| exported_names(m.name, m.kind))
        .collect();
    let used = |text: &str| -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while let Some(at) = text[i..].find("sluice_") {
            let start = i + at;
            let boundary = start == 0
                || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
            let end = text[start..]
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .map_or(text.len(), |e| start + e);
            if boundary {
                found.insert(text[start..end].to_owned());
            }
            i = end;
        }
        found
    };
    let dashboard = std::fs::read_to_string(root.join("infra/grafana/sluice-dashboard.json"))
        .expect("dashboard");
    let parsed: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let panels = parsed["panels"].as_array().expect("panels");
    assert!(panels.len() >= 6, "{} panels", panels.len());
    let alerts = std::fs::read_to_string(root.join("infra/prometheus/sluice-alerts.yml"))
        .expect("alert rules");
    for (what, text) in [("dashboard", &dashboard), ("alert rules", &alerts)] {
        let names = used(text);
        assert!(names.len() >= 5, "{what} uses {names:?}");
        for name in names {
            assert!(
                documented.contains(&name),
                "{what} uses {name}, which Sluice does not export"
            );
        }
    }
    for alert in [
        "SluiceDown",
        "SluiceRetainedWalHigh",
        "SluiceFreshnessLag",
        "SluiceErrors",
    ] {
        assert!(
            alerts.contains(&format!("alert: {alert}")),
            "missing alert {alert}"
        );
    }
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
    let in_readme: BTreeSet<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `sluice_"))
        .filter_map(|l| l.split('`').next())
        .map(|n| format!("sluice_{n}"))
        .collect();
    let listed: BTreeSet<String> = METRICS.iter().map(|m| m.name.to_owned()).collect();
    assert_eq!(
        in_readme, listed,
        "the README's metric table and the exported list differ"
    );
}

/// `sluice init` on a terminal asks for the source, the tables and the data directory (with
/// the flags' values as defaults), and writes what was answered.
#[test]
fn init_asks_on_a_terminal() {
    let dir = tempfile_dir::Dir::new();
    let config = dir.path().join("asked.toml");
    // `script` gives the command a pseudo-terminal; the answers are typed into it.
    let mut child = Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{} init -c {}",
            sluice_bin().display(),
            config.display()
        ))
        .arg("/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    let mut stdin = child.stdin.take().expect("stdin");
    for answer in ["postgres://me@db:5432/shop", "public.orders, sales.*", ""] {
        std::thread::sleep(Duration::from_millis(700));
        write!(stdin, "{answer}\r").expect("type");
    }
    std::thread::sleep(Duration::from_millis(700));
    drop(stdin);
    let out = child.wait_with_output().expect("init");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("Source PostgreSQL URL"), "{shown}");
    let text = std::fs::read_to_string(&config).unwrap_or_else(|e| panic!("{e}: {shown}"));
    assert!(
        text.contains("url = \"postgres://me@db:5432/shop\""),
        "{text}"
    );
    assert!(
        text.contains("tables = [\"public.orders\", \"sales.*\"]"),
        "{text}"
    );
    // An empty answer takes the default.
    assert!(text.contains("path = \"./sluice-data/log\""), "{text}");
}
