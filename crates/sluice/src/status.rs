//! `sluice status`: where each stage of the pipeline stands, read without changing anything, so
//! it works whether or not a sync runs.
//!
//! - source: the server's current WAL position; the slot (active and by which process, its
//!   positions, the WAL it retains and the WAL not yet confirmed, `wal_status`,
//!   `safe_wal_size`); the publication and its tables.
//! - change log: what is retained and what the loader has not applied yet, counted from the
//!   target's checkpoint position.
//! - target: the applied LSN and commit time, and the freshness lag (the source's clock minus
//!   that commit time).
//!
//! Absent things (no slot, no log directory, no warehouse, no checkpoint) are reported as such.
//! A DuckDB file held by a running sync cannot be opened at all (DuckDB locks it per process):
//! the target is then reported in use, and the change log without the loader's position. The
//! only failure is an unreachable source (exit 1); the rest is printed all the same.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use sluice_config::redact_url;
use sluice_core::digest::Inspect;
use sluice_core::{Checkpoint, LogPosition, Lsn};

use crate::monitor::SyncState;
use crate::park::Resync;
use crate::registry::{LogKind, Unreadable};
use crate::settings::Settings;

/// Width of the label column of the human output.
const LABEL_WIDTH: usize = 23;

#[derive(Debug, Serialize)]
struct Report {
    pipeline: String,
    source: SourceReport,
    /// `None` when the source cannot be reached.
    slot: Option<SlotReport>,
    publication: Option<PublicationReport>,
    change_log: LogReport,
    target: TargetReport,
    /// What sync processes wrote in their state files (the last word of one that stopped).
    sync: Vec<SyncProcessReport>,
}

#[derive(Debug, Serialize)]
struct SyncProcessReport {
    /// `capture and load`, or `load` for `--stage load`.
    role: &'static str,
    /// Whether the process that wrote the state still runs.
    running: bool,
    #[serde(flatten)]
    state: SyncState,
}

#[derive(Debug, Serialize)]
struct SourceReport {
    /// Without the password.
    url: String,
    reachable: bool,
    error: Option<String>,
    current_lsn: Option<String>,
}

#[derive(Debug, Serialize)]
struct SlotReport {
    name: String,
    exists: bool,
    /// The database the slot belongs to (another pipeline's when it is not the source's).
    database: Option<String>,
    active: bool,
    active_pid: Option<i32>,
    restart_lsn: Option<String>,
    confirmed_flush_lsn: Option<String>,
    retained_wal_bytes: Option<i64>,
    pending_wal_bytes: Option<i64>,
    wal_status: Option<String>,
    /// `None` when `max_slot_wal_keep_size` is unlimited.
    safe_wal_size: Option<i64>,
    /// How fast the confirmed position advances (0 while no sync runs), bytes/s.
    drain_bytes_per_sec: Option<f64>,
    /// How fast the retained WAL grows, bytes/s.
    retained_growth_bytes_per_sec: Option<f64>,
    /// At that growth, seconds until `safe_wal_size` is used up (`None`: unlimited or not
    /// growing).
    seconds_to_invalidation: Option<f64>,
    /// Whether the retained WAL is above `[wal] warn_retained`.
    over_warning: bool,
}

#[derive(Debug, Serialize)]
struct PublicationReport {
    name: String,
    exists: bool,
    tables: Vec<String>,
}

#[derive(Debug, Serialize)]
struct LogReport {
    kind: &'static str,
    path: String,
    exists: bool,
    error: Option<String>,
    oldest_offset: Option<u64>,
    next_offset: Option<u64>,
    /// Records after the target's checkpoint position: `None` when that position is unknown
    /// (the target cannot be read).
    pending_records: Option<u64>,
    pending_bytes: Option<u64>,
    segments: Option<usize>,
    total_bytes: Option<u64>,
}

#[derive(Debug, Serialize)]
struct TargetReport {
    kind: &'static str,
    /// The DuckDB file, or the URL without its password.
    location: String,
    schema: String,
    state: TargetState,
    error: Option<String>,
    /// `None` when there is no checkpoint yet or it cannot be read.
    checkpoint: Option<CheckpointReport>,
}

/// Whether the target could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum TargetState {
    Ready,
    /// No warehouse file yet.
    NotCreated,
    /// Held by a running sync.
    InUse,
    Error,
}

#[derive(Debug, Serialize)]
struct CheckpointReport {
    applied_lsn: String,
    /// RFC 3339, UTC; `None` before any transaction was applied.
    applied_commit_time: Option<String>,
    /// The source's clock (this machine's when the source cannot be reached) minus the
    /// applied commit time.
    freshness_lag_ms: Option<i64>,
    /// The change-log position after the last applied record, per partition.
    log_position: BTreeMap<String, String>,
    /// Tables the loader no longer loads, with why and how to resync them.
    parked: Vec<ParkedReport>,
}

#[derive(Debug, Serialize)]
struct ParkedReport {
    /// `schema.name` at the source, unquoted.
    table: String,
    /// The applied LSN when it was parked: none of its later changes are in the target.
    parked_at_lsn: String,
    reason: String,
    /// The steps that load it again.
    resync: String,
}

/// What the source said, read over one connection.
struct SourceState {
    current_lsn: Option<Lsn>,
    now_us: i64,
    slot: SlotReport,
    publication: PublicationReport,
}

/// Prints the status; returns whether the source could be reached.
pub async fn run(settings: &Settings, json: bool) -> bool {
    let mut sync = read_sync_states(&settings.state_dir);
    let live_capture = sync.iter().find(|p| p.running && p.role == CAPTURE_ROLE);
    let mut source = read_source(settings).await;
    if let Ok(state) = source.as_mut() {
        match live_capture.and_then(|p| p.state.wal.as_ref()) {
            Some(wal) => {
                state.slot.drain_bytes_per_sec = wal.drain_bytes_per_sec;
                state.slot.retained_growth_bytes_per_sec = wal.retained_growth_bytes_per_sec;
                state.slot.seconds_to_invalidation = wal.seconds_to_invalidation;
            }
            None if state.slot.exists && live_capture.is_none() => {
                // Nothing drains the slot: it grows as fast as the server writes WAL.
                let growth = wal_write_rate(settings).await;
                state.slot.drain_bytes_per_sec = Some(0.0);
                state.slot.retained_growth_bytes_per_sec = growth;
                state.slot.seconds_to_invalidation =
                    crate::monitor::seconds_to_invalidation(state.slot.safe_wal_size, growth);
            }
            None => {}
        }
    }
    let (target, checkpoint) = read_target(settings).await;
    let resync = Resync::from_settings(settings);
    let change_log = read_log(&settings.log, &target, checkpoint.as_ref()).await;
    let now_us = match &source {
        Ok(s) => s.now_us,
        Err(_) => sluice_core::telemetry::now_micros(),
    };
    for process in &mut sync {
        for t in &mut process.state.tables {
            t.freshness_lag_ms = t
                .applied_commit_ts_us
                .map(|ts| now_us.saturating_sub(ts) / 1000);
        }
    }
    let target = TargetReport {
        checkpoint: checkpoint.map(|c| checkpoint_report(&c, now_us, &resync)),
        ..target
    };
    let url = redact_url(&settings.source.to_string());
    let reachable = source.is_ok();
    let report = match source {
        Ok(s) => Report {
            pipeline: settings.pipeline.clone(),
            source: SourceReport {
                url,
                reachable,
                error: None,
                current_lsn: s.current_lsn.map(|l| l.to_string()),
            },
            slot: Some(s.slot),
            publication: Some(s.publication),
            change_log,
            target,
            sync,
        },
        Err(error) => Report {
            pipeline: settings.pipeline.clone(),
            source: SourceReport {
                url,
                reachable,
                error: Some(error),
                current_lsn: None,
            },
            slot: None,
            publication: None,
            change_log,
            target,
            sync,
        },
    };
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("error: cannot print the report: {e}"),
        }
    } else {
        print_human(&report, &settings.source.dbname);
    }
    reachable
}

/// Role of the process that captures (and usually loads).
const CAPTURE_ROLE: &str = "capture and load";

/// The state files of sync processes in capture's state directory.
fn read_sync_states(state_dir: &Path) -> Vec<SyncProcessReport> {
    [(false, CAPTURE_ROLE), (true, "load")]
        .into_iter()
        .filter_map(|(load_only, role)| {
            let path = state_dir.join(crate::monitor::state_file_name(load_only));
            let state = crate::monitor::read_state(&path)?;
            Some(SyncProcessReport {
                role,
                running: crate::monitor::alive(state.pid),
                state,
            })
        })
        .collect()
}

/// WAL the source writes per second, sampled over one second.
async fn wal_write_rate(settings: &Settings) -> Option<f64> {
    let client = sluice_postgres::connect(&settings.source).await.ok()?;
    let sql = "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() \
                            ELSE pg_current_wal_lsn() END)::text";
    let first: Option<String> = client.query_one(sql, &[]).await.ok()?.get(0);
    let t0 = std::time::Instant::now();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let second: Option<String> = client.query_one(sql, &[]).await.ok()?.get(0);
    let (a, b) = (first?.parse::<Lsn>().ok()?, second?.parse::<Lsn>().ok()?);
    Some(b.0.saturating_sub(a.0) as f64 / t0.elapsed().as_secs_f64())
}

async fn read_source(settings: &Settings) -> Result<SourceState, String> {
    let client = sluice_postgres::connect(&settings.source)
        .await
        .map_err(|e| chain(&e))?;
    let row = client
        .query_one(
            "SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() \
                          ELSE pg_current_wal_lsn() END)::text, \
                    CAST(extract(epoch FROM clock_timestamp()) * 1000000 AS bigint)",
            &[],
        )
        .await
        .map_err(|e| chain(&e))?;
    let current_lsn = row
        .get::<_, Option<String>>(0)
        .and_then(|s| s.parse::<Lsn>().ok());
    let now_us: i64 = row.get(1);
    let slot_name = &settings.capture.slot;
    let slot = sluice_postgres::find_slot(&client, slot_name)
        .await
        .map_err(|e| chain(&e))?;
    let slot = match slot {
        Some(s) => SlotReport {
            name: slot_name.clone(),
            exists: true,
            database: s.database,
            active: s.active_pid.is_some(),
            active_pid: s.active_pid,
            restart_lsn: s.restart_lsn.map(|l| l.to_string()),
            confirmed_flush_lsn: s.confirmed_flush_lsn.map(|l| l.to_string()),
            retained_wal_bytes: s.retained_wal_bytes,
            pending_wal_bytes: s.pending_wal_bytes,
            wal_status: s.wal_status,
            safe_wal_size: s.safe_wal_size,
            drain_bytes_per_sec: None,
            retained_growth_bytes_per_sec: None,
            seconds_to_invalidation: None,
            over_warning: s
                .retained_wal_bytes
                .is_some_and(|r| r > i64::try_from(settings.wal.warn_retained).unwrap_or(i64::MAX)),
        },
        None => SlotReport {
            name: slot_name.clone(),
            exists: false,
            database: None,
            active: false,
            active_pid: None,
            restart_lsn: None,
            confirmed_flush_lsn: None,
            retained_wal_bytes: None,
            pending_wal_bytes: None,
            wal_status: None,
            safe_wal_size: None,
            drain_bytes_per_sec: None,
            retained_growth_bytes_per_sec: None,
            seconds_to_invalidation: None,
            over_warning: false,
        },
    };
    let pub_name = &settings.capture.publication;
    let exists = sluice_postgres::publication_exists(&client, pub_name)
        .await
        .map_err(|e| chain(&e))?;
    let tables = if exists {
        sluice_postgres::published_tables(&client, pub_name)
            .await
            .map_err(|e| chain(&e))?
            .iter()
            .map(|t| format!("{}.{}", t.schema, t.name))
            .collect()
    } else {
        Vec::new()
    };
    Ok(SourceState {
        current_lsn,
        now_us,
        slot,
        publication: PublicationReport {
            name: pub_name.clone(),
            exists,
            tables,
        },
    })
}

/// The target's report (without its checkpoint part) and its checkpoint.
async fn read_target(settings: &Settings) -> (TargetReport, Option<Checkpoint>) {
    let pipeline = settings.pipeline.as_str();
    let target = &settings.target;
    let mut report = TargetReport {
        kind: target.name(),
        location: target.location(),
        schema: target.schema().to_owned(),
        state: TargetState::Ready,
        error: None,
        checkpoint: None,
    };
    match target.inspector().await {
        Ok(inspector) => with_checkpoint(report, inspector, pipeline).await,
        Err(Unreadable::NotCreated) => {
            report.state = TargetState::NotCreated;
            (report, None)
        }
        Err(Unreadable::InUse) => {
            report.state = TargetState::InUse;
            (report, None)
        }
        Err(Unreadable::Failed(failure)) => {
            report.state = TargetState::Error;
            report.error = Some(format!("{:#}", failure.error));
            (report, None)
        }
    }
}

async fn with_checkpoint<I: Inspect>(
    mut report: TargetReport,
    mut inspector: I,
    pipeline: &str,
) -> (TargetReport, Option<Checkpoint>) {
    match inspector.checkpoint(pipeline).await {
        Ok(checkpoint) => (report, checkpoint),
        Err(e) => {
            report.state = TargetState::Error;
            report.error = Some(chain(&e));
            (report, None)
        }
    }
}

async fn read_log(
    log: &LogKind,
    target: &TargetReport,
    checkpoint: Option<&Checkpoint>,
) -> LogReport {
    match log {
        LogKind::Local(options) => {
            let dir = options.dir.clone();
            let mut report = LogReport {
                kind: "local",
                path: dir.display().to_string(),
                exists: false,
                error: None,
                oldest_offset: None,
                next_offset: None,
                pending_records: None,
                pending_bytes: None,
                segments: None,
                total_bytes: None,
            };
            if !tokio::fs::try_exists(&dir).await.unwrap_or(false) {
                return report;
            }
            report.exists = true;
            // Without a checkpoint nothing is applied yet: everything retained is pending.
            // With a target that cannot be read, what is pending is unknown.
            let known =
                target.state == TargetState::Ready || target.state == TargetState::NotCreated;
            let after = checkpoint.map_or_else(LogPosition::default, |c| c.position.clone());
            let stats = match sluice_log_local::LogReader::open(&dir).await {
                Ok(reader) => reader.stats(&after).await,
                Err(e) => Err(e),
            };
            match stats {
                Ok(s) => {
                    report.oldest_offset = Some(s.oldest_offset);
                    report.next_offset = Some(s.next_offset);
                    report.segments = Some(s.segments);
                    report.total_bytes = Some(s.total_bytes);
                    if known {
                        report.pending_records = Some(s.records_after);
                        report.pending_bytes = Some(s.bytes_after);
                    }
                }
                Err(e) => report.error = Some(chain(&e)),
            }
            report
        }
    }
}

fn checkpoint_report(c: &Checkpoint, now_us: i64, resync: &Resync) -> CheckpointReport {
    // A checkpoint written before any transaction was applied has no commit time.
    let committed = (c.applied_commit_ts != 0).then_some(c.applied_commit_ts);
    CheckpointReport {
        applied_lsn: c.applied_lsn.to_string(),
        applied_commit_time: committed.map(utc_text),
        freshness_lag_ms: committed.map(|ts| now_us.saturating_sub(ts) / 1000),
        log_position: c.position.partitions.clone(),
        parked: c
            .parked
            .iter()
            .map(|p| ParkedReport {
                table: format!("{}.{}", p.table.schema, p.table.name),
                parked_at_lsn: p.lsn.to_string(),
                reason: p.reason.clone(),
                resync: resync.hint(&p.table),
            })
            .collect(),
    }
}

fn print_human(r: &Report, dbname: &str) {
    let line = |label: &str, value: &str| println!("{label:<LABEL_WIDTH$}{value}");
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    println!("pipeline \"{}\"", r.pipeline);

    line("source", &r.source.url);
    if let Some(e) = &r.source.error {
        line("  error", &format!("cannot reach the source: {e}"));
    }
    if let Some(lsn) = &r.source.current_lsn {
        line("  current wal lsn", lsn);
    }

    if let Some(s) = &r.slot {
        if !s.exists {
            line("slot", &format!("\"{}\": does not exist", s.name));
        } else {
            let state = match s.active_pid {
                Some(pid) => format!("active (server process {pid})"),
                None => "inactive".to_owned(),
            };
            line("slot", &format!("\"{}\": {state}", s.name));
            if let Some(other) = s.database.as_deref().filter(|d| *d != dbname) {
                line(
                    "  database",
                    &format!("\"{other}\": not this pipeline's slot (the source is \"{dbname}\")"),
                );
            }
            line("  restart lsn", &opt(&s.restart_lsn));
            line("  confirmed flush lsn", &opt(&s.confirmed_flush_lsn));
            line(
                "  retained wal",
                &s.retained_wal_bytes.map_or("-".to_owned(), size),
            );
            line(
                "  pending wal",
                &s.pending_wal_bytes.map_or("-".to_owned(), size),
            );
            line("  wal status", &opt(&s.wal_status));
            line(
                "  safe wal size",
                &s.safe_wal_size
                    .map_or("unlimited (max_slot_wal_keep_size = -1)".to_owned(), size),
            );
            if s.over_warning {
                line(
                    "  warning",
                    "retained WAL is above [wal] warn_retained: see that the sync runs and the target keeps up",
                );
            }
            if let Some(drain) = s.drain_bytes_per_sec {
                line("  drain rate", &format!("{}/s", size(drain as i64)));
            }
            if let Some(growth) = s.retained_growth_bytes_per_sec {
                line("  retained growth", &format!("{}/s", size(growth as i64)));
            }
            if s.safe_wal_size.is_some() {
                line(
                    "  invalidated in",
                    &s.seconds_to_invalidation
                        .map_or("not at the current rate".to_owned(), |secs| {
                            duration((secs * 1000.0) as i64)
                        }),
                );
            }
        }
    }

    if let Some(p) = &r.publication {
        if p.exists {
            let n = p.tables.len();
            line(
                "publication",
                &format!(
                    "\"{}\": {n} table{}{}",
                    p.name,
                    if n == 1 { "" } else { "s" },
                    if n == 0 {
                        String::new()
                    } else {
                        format!(" ({})", p.tables.join(", "))
                    }
                ),
            );
        } else {
            line("publication", &format!("\"{}\": does not exist", p.name));
        }
    }

    let l = &r.change_log;
    line("change log", &l.path);
    if !l.exists {
        line("  state", "does not exist yet (nothing captured)");
    } else if let Some(e) = &l.error {
        line("  error", e);
    } else {
        match (l.pending_records, l.pending_bytes) {
            (Some(records), Some(bytes)) => line(
                "  not yet applied",
                &format!(
                    "{records} record{}, {}",
                    if records == 1 { "" } else { "s" },
                    size(bytes)
                ),
            ),
            _ => line(
                "  not yet applied",
                "unknown (the target's position cannot be read)",
            ),
        }
        if let (Some(oldest), Some(next)) = (l.oldest_offset, l.next_offset) {
            line("  oldest offset", &oldest.to_string());
            line("  next offset", &next.to_string());
        }
        if let (Some(segments), Some(total)) = (l.segments, l.total_bytes) {
            line(
                "  on disk",
                &format!(
                    "{segments} segment{}, {}",
                    if segments == 1 { "" } else { "s" },
                    size(total)
                ),
            );
        }
    }

    for p in &r.sync {
        let st = &p.state;
        line(
            "sync",
            &format!(
                "{} (process {}): {}, updated {}",
                p.role,
                st.pid,
                if p.running { "running" } else { "not running" },
                st.updated_at
            ),
        );
        if p.running {
            line(
                "  throughput",
                &format!(
                    "captured {}/s, applied {}/s",
                    st.capture_rate_per_sec, st.apply_rate_per_sec
                ),
            );
            if !st.source_up || !st.target_up {
                let mut down = Vec::new();
                if !st.source_up {
                    down.push("source not connected");
                }
                if !st.target_up {
                    down.push("target not reachable");
                }
                line("  not ready", &down.join(", "));
            }
        }
        for t in &st.tables {
            let snapshot = match (t.snapshot.as_str(), t.snapshot_estimated_rows) {
                ("copying", Some(est)) if est > 0 => format!(
                    "snapshot {} of ~{est} rows ({}%), ",
                    t.snapshot_rows,
                    (t.snapshot_rows * 100 / est.max(1)).min(100)
                ),
                ("copying" | "pending", _) => {
                    format!("snapshot {} ({} rows), ", t.snapshot, t.snapshot_rows)
                }
                _ => String::new(),
            };
            line(
                &format!("  {}", t.table),
                &format!(
                    "{snapshot}{} changes applied, at {} ({}{})",
                    t.applied_changes,
                    t.applied_lsn.as_deref().unwrap_or("-"),
                    t.applied_commit_time.as_deref().unwrap_or("no commit yet"),
                    t.freshness_lag_ms
                        .map(|ms| format!(", {} behind", duration(ms)))
                        .unwrap_or_default()
                ),
            );
        }
    }

    let t = &r.target;
    line(
        "target",
        &format!("{} {}, schema \"{}\"", t.kind, t.location, t.schema),
    );
    match t.state {
        TargetState::NotCreated => line("  state", "not created yet (nothing loaded)"),
        TargetState::InUse => line("  state", "in use by a running sync"),
        TargetState::Error => line("  error", &opt(&t.error)),
        TargetState::Ready => match &t.checkpoint {
            None => line("  checkpoint", "none yet (nothing loaded)"),
            Some(c) => {
                line("  applied lsn", &c.applied_lsn);
                line("  applied commit time", &opt(&c.applied_commit_time));
                line(
                    "  freshness lag",
                    &c.freshness_lag_ms.map_or("-".to_owned(), duration),
                );
                for p in &c.parked {
                    line(
                        "  parked table",
                        &format!("{} at {}: {}", p.table, p.parked_at_lsn, p.reason),
                    );
                    line("    resync", &p.resync);
                }
            }
        },
    }
}

/// An error and its causes, `: `-separated.
fn chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        message.push_str(": ");
        message.push_str(&c.to_string());
        cause = c.source();
    }
    message
}

/// Bytes, readably: `512 B`, `1.5 MiB (1572864 bytes)`. Pure.
pub fn size(bytes: impl Into<i128>) -> String {
    let bytes: i128 = bytes.into();
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes.abs() < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if value.abs() < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    format!("{value:.1} {unit} ({bytes} bytes)")
}

/// Milliseconds, readably: `850ms`, `12.3s`, `4m 05s`, `2h 03m`, `3d 04h`. Pure.
fn duration(ms: i64) -> String {
    if ms < 0 {
        // The source's clock said the commit lies ahead: the lag is below what clocks resolve.
        return "0ms".to_owned();
    }
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..60 => format!("{:.1}s", ms as f64 / 1000.0),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Microseconds since the Unix epoch as RFC 3339 in UTC. Pure.
pub fn utc_text(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let us = micros.rem_euclid(1_000_000);
    let (y, m, d) = sluice_core::calendar::civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{us:06}Z",
        t / 3600,
        t % 3600 / 60,
        t % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_text_formats_rfc3339() {
        assert_eq!(utc_text(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            utc_text(1_700_000_000_123_456),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(utc_text(951_782_400_000_000), "2000-02-29T00:00:00.000000Z");
        assert_eq!(utc_text(-1), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(size(0i64), "0 B");
        assert_eq!(size(1023u64), "1023 B");
        assert_eq!(size(1536i64), "1.5 KiB (1536 bytes)");
        assert_eq!(size(16u64 << 20), "16.0 MiB (16777216 bytes)");
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(12_345), "12.3s");
        assert_eq!(duration(245_000), "4m 05s");
        assert_eq!(duration(7_380_000), "2h 03m");
        assert_eq!(duration(273_600_000), "3d 04h");
        assert_eq!(duration(-5), "0ms");
    }
}
