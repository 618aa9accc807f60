//! What a running sync watches and shows besides moving data:
//!
//! - the slot's retained WAL, read every `[wal] check_interval_ms`: metrics, a warning above
//!   `[wal] warn_retained`, and the rates that estimate when the slot would be invalidated;
//! - a state file in capture's state directory, rewritten every second, that `sluice status`
//!   reads (throughput, per-table positions, snapshot progress, the slot's trend) whether or
//!   not the sync still runs;
//! - on a terminal, a progress bar per table while the snapshot copies, then a status line
//!   (changes/s, lag, freshness). Off a terminal, nothing is drawn.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sluice_core::Lsn;
use sluice_core::telemetry::{SnapshotState, Stats, now_micros, table_label};

use crate::status::utc_text;
use sluice_postgres::SourceConfig;
use tokio_util::sync::CancellationToken;

use crate::settings::WalPolicy;

/// Name of the state file in capture's state directory (`[capture] state_dir`, by default
/// the change-log directory), per role of the process.
pub fn state_file_name(load_only: bool) -> &'static str {
    if load_only {
        "sync-state-load.json"
    } else {
        "sync-state.json"
    }
}

/// How often the state file and the terminal display are refreshed.
const TICK: Duration = Duration::from_secs(1);
/// A slot check that takes longer than this is abandoned.
const SLOT_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Rates are computed over this window.
const RATE_WINDOW: Duration = Duration::from_secs(30);

/// The state file: a running sync's own view, for `sluice status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SyncState {
    pub pid: u32,
    /// RFC 3339 UTC of the last rewrite, and the same as Unix microseconds.
    pub updated_at: String,
    pub updated_at_us: i64,
    pub captured_changes: u64,
    pub applied_changes: u64,
    /// Over the last 30 seconds.
    pub capture_rate_per_sec: f64,
    pub apply_rate_per_sec: f64,
    pub confirmed_lsn: Option<String>,
    pub applied_lsn: Option<String>,
    pub source_up: bool,
    pub target_up: bool,
    pub wal: Option<WalState>,
    pub tables: Vec<TableState>,
}

/// The slot as the sync last read it, with trends.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WalState {
    pub retained_wal_bytes: Option<i64>,
    pub safe_wal_size: Option<i64>,
    pub wal_status: Option<String>,
    pub warn_retained_bytes: u64,
    pub over_warning: bool,
    /// How fast the slot's confirmed position advances (what Sluice drains), bytes/s.
    pub drain_bytes_per_sec: Option<f64>,
    /// How fast retained WAL grows (negative: shrinks), bytes/s.
    pub retained_growth_bytes_per_sec: Option<f64>,
    /// At the current growth, seconds until `safe_wal_size` is used up; `None` when unlimited
    /// or not growing.
    pub seconds_to_invalidation: Option<f64>,
}

/// One table's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TableState {
    pub table: String,
    /// `none`, `pending`, `copying` or `done`.
    pub snapshot: String,
    pub snapshot_rows: u64,
    pub snapshot_estimated_rows: Option<u64>,
    pub applied_changes: u64,
    pub applied_lsn: Option<String>,
    /// RFC 3339 UTC of the last applied commit that touched the table, and the same as Unix
    /// microseconds.
    pub applied_commit_time: Option<String>,
    pub applied_commit_ts_us: Option<i64>,
    /// How far the table's loaded data is behind: filled in by `sluice status` (the source's
    /// clock minus the last applied commit time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freshness_lag_ms: Option<i64>,
}

/// What the monitor needs.
pub struct MonitorConfig {
    pub source: SourceConfig,
    pub slot: String,
    pub wal: WalPolicy,
    /// Where to write the state file; none for a log without a directory.
    pub state_file: Option<PathBuf>,
    /// The local change-log directory (its size is a metric).
    pub log_dir: Option<PathBuf>,
    /// Draw progress bars and the status line (stderr is a terminal).
    pub display: bool,
    /// Whether this process captures (it then watches the slot).
    pub captures: bool,
}

/// One reading of the slot.
#[derive(Debug, Clone, Copy)]
struct SlotSample {
    at: Instant,
    confirmed: Option<Lsn>,
    retained: Option<i64>,
}

/// Runs until `stop`, then writes the state file a last time.
pub async fn run(config: MonitorConfig, stats: Arc<Stats>, stop: CancellationToken) {
    let mut display = config.display.then(Display::new);
    let mut samples: VecDeque<(Instant, u64, u64)> = VecDeque::new();
    let mut slot_samples: VecDeque<SlotSample> = VecDeque::new();
    let mut wal: Option<WalState> = None;
    let mut last_check: Option<Instant> = None;
    // One connection for the slot checks, opened again only after it failed.
    let mut client: Option<tokio_postgres::Client> = None;
    let mut warned = false;
    metrics::gauge!("sluice_wal_warn_retained_bytes").set(config.wal.warn_retained as f64);
    loop {
        let stopped = tokio::select! {
            () = tokio::time::sleep(TICK) => false,
            () = stop.cancelled() => true,
        };
        let now = Instant::now();
        samples.push_back((
            now,
            stats.captured_changes.load(Ordering::Relaxed),
            stats.applied_changes.load(Ordering::Relaxed),
        ));
        while samples.len() > 2 && now.duration_since(samples[0].0) > RATE_WINDOW {
            samples.pop_front();
        }
        if config.captures
            && !stopped
            && last_check.is_none_or(|t| t.elapsed() >= config.wal.check_interval)
        {
            last_check = Some(now);
            // Bounded, so a partitioned network never holds the monitor (or the shutdown that
            // waits for it); a timed-out read leaves no connection behind.
            let read = tokio::time::timeout(
                SLOT_READ_TIMEOUT,
                read_slot(&mut client, &config.source, &config.slot),
            )
            .await
            .unwrap_or_else(|_| {
                Err(sluice_postgres::Error::Connection(
                    sluice_postgres_client::Error::Closed,
                ))
            });
            match read {
                Ok(Some(slot)) => {
                    slot_samples.push_back(SlotSample {
                        at: now,
                        confirmed: slot.confirmed_flush_lsn,
                        retained: slot.retained_wal_bytes,
                    });
                    while slot_samples.len() > 2
                        && now.duration_since(slot_samples[0].at)
                            > RATE_WINDOW.max(config.wal.check_interval * 3)
                    {
                        slot_samples.pop_front();
                    }
                    let state = wal_state(&slot, &slot_samples, config.wal.warn_retained);
                    if let Some(r) = state.retained_wal_bytes {
                        metrics::gauge!("sluice_retained_wal_bytes").set(r as f64);
                    }
                    if let Some(s) = state.safe_wal_size {
                        metrics::gauge!("sluice_slot_safe_wal_size_bytes").set(s as f64);
                    }
                    if state.over_warning && !warned {
                        tracing::warn!(
                            slot = %config.slot,
                            retained_wal_bytes = state.retained_wal_bytes.unwrap_or(0),
                            warn_retained_bytes = config.wal.warn_retained,
                            "the replication slot retains more WAL than [wal] warn_retained: the source keeps WAL until Sluice confirms it; check that the target keeps up (sluice status)"
                        );
                    } else if !state.over_warning && warned {
                        tracing::info!(slot = %config.slot, "retained WAL is back under [wal] warn_retained");
                    }
                    warned = state.over_warning;
                    wal = Some(state);
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "cannot read the slot's retained WAL"),
            }
        }
        if let Some(dir) = &config.log_dir
            && let Some(bytes) = log_bytes(dir).await
        {
            metrics::gauge!("sluice_change_log_bytes").set(bytes as f64);
        }
        let (capture_rate, apply_rate) = rates(&samples);
        let state = snapshot_state(&stats, capture_rate, apply_rate, wal.clone());
        if let Some(path) = &config.state_file
            && let Err(e) = write_state(path, &state).await
        {
            tracing::debug!(error = %e, path = %path.display(), "cannot write the state file");
        }
        if let Some(d) = display.as_mut() {
            d.draw(&stats, &state, stopped);
        }
        if stopped {
            return;
        }
    }
}

/// Reads the slot over `client`, connecting first when there is none; a failed read drops the
/// connection so the next check opens a fresh one.
async fn read_slot(
    client: &mut Option<tokio_postgres::Client>,
    source: &SourceConfig,
    slot: &str,
) -> Result<Option<sluice_postgres::SlotState>, sluice_postgres::Error> {
    let c = match client.take() {
        Some(c) if !c.is_closed() => c,
        _ => sluice_postgres::connect(source).await?,
    };
    let state = sluice_postgres::find_slot(&c, slot).await?;
    *client = Some(c);
    Ok(state)
}

/// Bytes of the change-log segments (metadata only, no reading).
async fn log_bytes(dir: &Path) -> Option<u64> {
    let mut entries = tokio::fs::read_dir(dir).await.ok()?;
    let mut total = 0;
    while let Ok(Some(e)) = entries.next_entry().await {
        if e.path().extension().is_some_and(|x| x == "seg")
            && let Ok(m) = e.metadata().await
        {
            total += m.len();
        }
    }
    Some(total)
}

/// Changes per second captured and applied over the samples' window.
fn rates(samples: &VecDeque<(Instant, u64, u64)>) -> (f64, f64) {
    match (samples.front(), samples.back()) {
        (Some(first), Some(last)) if last.0 > first.0 => {
            let secs = last.0.duration_since(first.0).as_secs_f64();
            (
                last.1.saturating_sub(first.1) as f64 / secs,
                last.2.saturating_sub(first.2) as f64 / secs,
            )
        }
        _ => (0.0, 0.0),
    }
}

/// The slot's state with its trends from the samples (oldest first, last = `slot`).
fn wal_state(
    slot: &sluice_postgres::SlotState,
    samples: &VecDeque<SlotSample>,
    warn_retained: u64,
) -> WalState {
    let (drain, growth) = match (samples.front(), samples.back()) {
        (Some(a), Some(b)) if b.at > a.at => {
            let secs = b.at.duration_since(a.at).as_secs_f64();
            let drain = match (a.confirmed, b.confirmed) {
                (Some(x), Some(y)) => Some(y.0.saturating_sub(x.0) as f64 / secs),
                _ => None,
            };
            let growth = match (a.retained, b.retained) {
                (Some(x), Some(y)) => Some((y - x) as f64 / secs),
                _ => None,
            };
            (drain, growth)
        }
        _ => (None, None),
    };
    WalState {
        retained_wal_bytes: slot.retained_wal_bytes,
        safe_wal_size: slot.safe_wal_size,
        wal_status: slot.wal_status.clone(),
        warn_retained_bytes: warn_retained,
        over_warning: slot
            .retained_wal_bytes
            .is_some_and(|r| r > i64::try_from(warn_retained).unwrap_or(i64::MAX)),
        drain_bytes_per_sec: drain,
        retained_growth_bytes_per_sec: growth,
        seconds_to_invalidation: seconds_to_invalidation(slot.safe_wal_size, growth),
    }
}

/// Seconds until `safe_wal_size` is used up at `growth` bytes/s; `None` when unlimited or not
/// growing.
pub fn seconds_to_invalidation(safe_wal_size: Option<i64>, growth: Option<f64>) -> Option<f64> {
    match (safe_wal_size, growth) {
        (Some(safe), Some(g)) if g > 0.0 => Some(safe.max(0) as f64 / g),
        _ => None,
    }
}

fn snapshot_state(
    stats: &Stats,
    capture_rate: f64,
    apply_rate: f64,
    wal: Option<WalState>,
) -> SyncState {
    let now_us = now_micros();
    let lsn = |f: &std::sync::atomic::AtomicU64| {
        let v = f.load(Ordering::Relaxed);
        (v > 0).then(|| Lsn(v).to_string())
    };
    SyncState {
        pid: std::process::id(),
        updated_at: utc_text(now_us),
        updated_at_us: now_us,
        captured_changes: stats.captured_changes.load(Ordering::Relaxed),
        applied_changes: stats.applied_changes.load(Ordering::Relaxed),
        capture_rate_per_sec: capture_rate.round(),
        apply_rate_per_sec: apply_rate.round(),
        confirmed_lsn: lsn(&stats.confirmed_lsn),
        applied_lsn: lsn(&stats.applied_lsn),
        source_up: stats.source_up.load(Ordering::Relaxed),
        target_up: stats.target_up.load(Ordering::Relaxed),
        wal,
        tables: stats
            .tables()
            .into_iter()
            .map(|t| TableState {
                table: table_label(&t.table),
                snapshot: match t.snapshot {
                    SnapshotState::None => "none",
                    SnapshotState::Pending => "pending",
                    SnapshotState::Copying { .. } => "copying",
                    SnapshotState::Done { .. } => "done",
                }
                .to_owned(),
                snapshot_rows: t.snapshot_rows,
                snapshot_estimated_rows: t.snapshot_estimate,
                applied_changes: t.applied_changes,
                applied_lsn: (t.applied_lsn > Lsn::ZERO).then(|| t.applied_lsn.to_string()),
                applied_commit_time: (t.applied_commit_ts != 0)
                    .then(|| utc_text(t.applied_commit_ts)),
                applied_commit_ts_us: (t.applied_commit_ts != 0).then_some(t.applied_commit_ts),
                freshness_lag_ms: None,
            })
            .collect(),
    }
}

/// Writes the state file atomically (temporary file, then rename).
async fn write_state(path: &Path, state: &SyncState) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    tokio::fs::write(&tmp, text).await?;
    tokio::fs::rename(&tmp, path).await
}

/// Reads a state file; `None` when there is none or it cannot be parsed.
pub fn read_state(path: &Path) -> Option<SyncState> {
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Whether the process that wrote a state file still runs.
pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Progress bars per snapshot table and a status line, on stderr.
struct Display {
    multi: MultiProgress,
    bars: Vec<(String, ProgressBar)>,
    status: Option<ProgressBar>,
}

impl Display {
    fn new() -> Display {
        Display {
            multi: crate::progress::multi().clone(),
            bars: Vec::new(),
            status: None,
        }
    }

    fn draw(&mut self, stats: &Stats, state: &SyncState, stopped: bool) {
        let bar_style = ProgressStyle::with_template(
            "{prefix:>28} {bar:30} {human_pos:>11}/{human_len:11} rows  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        for t in stats.tables() {
            if t.snapshot == SnapshotState::None {
                continue;
            }
            let name = table_label(&t.table);
            let bar = match self.bars.iter().find(|(n, _)| *n == name) {
                Some((_, b)) => b.clone(),
                None => {
                    let b = self
                        .multi
                        .add(ProgressBar::new(t.snapshot_estimate.unwrap_or(0)));
                    b.set_style(bar_style.clone());
                    b.set_prefix(name.clone());
                    self.bars.push((name, b.clone()));
                    b
                }
            };
            // The estimate may be stale: never show more rows than the bar's length.
            bar.set_length(t.snapshot_estimate.unwrap_or(0).max(t.snapshot_rows));
            bar.set_position(t.snapshot_rows);
            match t.snapshot {
                SnapshotState::Copying { started } => {
                    let secs = started.elapsed().as_secs_f64();
                    let rate = if secs > 0.0 {
                        t.snapshot_rows as f64 / secs
                    } else {
                        0.0
                    };
                    let left = t
                        .snapshot_estimate
                        .unwrap_or(0)
                        .saturating_sub(t.snapshot_rows);
                    let eta = if rate > 0.0 && left > 0 {
                        format!(", about {}s left", (left as f64 / rate).ceil())
                    } else {
                        String::new()
                    };
                    bar.set_message(format!("{:.0} rows/s{eta}", rate));
                }
                SnapshotState::Done { rows_per_sec } if !bar.is_finished() => {
                    bar.set_length(t.snapshot_rows);
                    bar.set_message(format!("{rows_per_sec} rows/s, done"));
                    bar.finish();
                }
                SnapshotState::Pending => bar.set_message("waiting"),
                _ => {}
            }
        }
        let status = self.status.get_or_insert_with(|| {
            let s = self.multi.add(ProgressBar::new_spinner());
            s.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            s
        });
        let freshness = {
            let ts = stats.applied_commit_ts.load(Ordering::Relaxed);
            if ts == 0 {
                "-".to_owned()
            } else {
                format!("{:.1}s", (now_micros() - ts).max(0) as f64 / 1e6)
            }
        };
        let lag = {
            let end = stats.source_wal_end.load(Ordering::Relaxed);
            let confirmed = stats.confirmed_lsn.load(Ordering::Relaxed);
            crate::status::size(end.saturating_sub(confirmed))
        };
        status.set_message(format!(
            "captured {}/s, applied {}/s ({} total) | slot lag {lag} | freshness {freshness}{}",
            state.capture_rate_per_sec,
            state.apply_rate_per_sec,
            state.applied_changes,
            if state.target_up {
                ""
            } else {
                " | target unreachable"
            }
        ));
        status.tick();
        if stopped {
            status.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidation_estimate_needs_a_limit_and_growth() {
        assert_eq!(seconds_to_invalidation(None, Some(10.0)), None);
        assert_eq!(seconds_to_invalidation(Some(1000), Some(0.0)), None);
        assert_eq!(seconds_to_invalidation(Some(1000), Some(-5.0)), None);
        assert_eq!(seconds_to_invalidation(Some(1000), Some(10.0)), Some(100.0));
    }

    #[test]
    fn rates_cover_the_window() {
        let t0 = Instant::now();
        let samples: VecDeque<_> = [
            (t0, 100, 50),
            (t0 + Duration::from_secs(2), 300, 50),
            (t0 + Duration::from_secs(4), 500, 250),
        ]
        .into_iter()
        .collect();
        assert_eq!(rates(&samples), (100.0, 50.0));
        assert_eq!(rates(&VecDeque::new()), (0.0, 0.0));
    }
}
