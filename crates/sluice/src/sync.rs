//! `sluice sync`: capture and loader as two tasks joined by the change log.
//!
//! Each stage runs under a supervisor that retries transient errors with jittered exponential
//! backoff (each attempt logged once) and stops the whole pipeline on definite or fatal ones.
//! SIGINT/SIGTERM stop capture (which appends what is complete and reports its final position)
//! and the loader (between batches, never inside one).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sluice_core::telemetry::Stats;
use sluice_core::{
    ChangeLogReader, ChangeLogWriter, Classify, Destination, ErrorClass, LastAppended, LogPosition,
    LogRecord,
};
use sluice_loader::{self as loader, LoadError, LoaderControl, LoaderReport, ResyncHint};
use sluice_postgres::{Capture, CaptureControl, CaptureReport};
use tokio_util::sync::CancellationToken;

use crate::Failure;
use crate::cli::Stage;
use crate::monitor::{self, MonitorConfig};
use crate::registry::{Load, LogKind};
use crate::settings::Settings;
use crate::telemetry;

/// First retry delay after a transient error.
const RETRY_BASE: Duration = Duration::from_millis(500);
/// Longest retry delay: keeps a recovered service picked up within half a minute.
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Transient failures in a row before giving up (about ten minutes of retrying).
const RETRY_ATTEMPTS: u32 = 25;
/// A stage that ran this long before failing starts its retry count afresh.
const RETRY_RESET: Duration = Duration::from_secs(120);

/// What a sync run did.
#[derive(Debug, Default)]
pub struct SyncReport {
    pub capture: CaptureReport,
    pub loader: LoaderReport,
}

/// How a sync run is driven and observed.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub stage: Stage,
    /// Stop once everything committed at the source when sync started is loaded.
    pub until_caught_up: bool,
    /// Cancel to stop (between batches).
    pub stop: CancellationToken,
    /// Where the stages report their figures (shared with `/metrics`).
    pub stats: Arc<Stats>,
    /// Draw progress bars and a status line on stderr.
    pub display: bool,
}

impl SyncOptions {
    /// Both stages, no display, fresh figures.
    pub fn new(until_caught_up: bool, stop: CancellationToken) -> SyncOptions {
        SyncOptions {
            stage: Stage::All,
            until_caught_up,
            stop,
            stats: Arc::new(Stats::default()),
            display: false,
        }
    }
}

/// Runs the pipeline until `stop` is cancelled (or, with `until_caught_up`, until everything
/// committed at start is loaded).
pub async fn run(settings: Settings, options: SyncOptions) -> Result<SyncReport, Failure> {
    let target = settings.target.clone();
    target.load(Pipeline { settings, options }).await
}

/// The pipeline, run with the destination the registry builds.
struct Pipeline {
    settings: Settings,
    options: SyncOptions,
}

impl Load for Pipeline {
    type Output = SyncReport;

    async fn run<D: Destination + 'static>(self, destination: D) -> Result<SyncReport, Failure> {
        run_stages(self.settings, destination, self.options).await
    }
}

/// Runs the pipeline with a destination the caller has opened (for example a DuckDB database
/// the caller also reads from); the configured `[target]` is not opened. The change log comes
/// from `[log]` as in [`run`].
pub async fn run_with_destination<D: Destination + 'static>(
    settings: Settings,
    destination: D,
    until_caught_up: bool,
    stop: CancellationToken,
) -> Result<SyncReport, Failure> {
    run_stages(
        settings,
        destination,
        SyncOptions::new(until_caught_up, stop),
    )
    .await
}

async fn run_stages<D: Destination + 'static>(
    settings: Settings,
    destination: D,
    options: SyncOptions,
) -> Result<SyncReport, Failure> {
    let capture = Capture::new(settings.source.clone(), settings.capture.clone());
    let LogKind::Local(log_options) = settings.log.clone();
    let dir = log_options.dir.clone();
    let (writer, reader) = local_log(log_options, options.stage).await?;
    tokio::fs::create_dir_all(&settings.state_dir)
        .await
        .map_err(|e| {
            Failure::fatal(
                "capture state",
                anyhow::Error::new(e).context(format!(
                    "cannot create the state directory \"{}\" ([capture] state_dir)",
                    settings.state_dir.display()
                )),
            )
        })?;
    let writer = writer.map(|inner| TrackedLog {
        inner,
        stats: options.stats.clone(),
        budget: settings.wal.absorb_backlog,
        checked: None,
    });
    let stages = Stages {
        capture: writer.map(|w| (capture, w)),
        load: (options.stage != Stage::Capture).then_some((reader, destination)),
    };
    let monitor = MonitorConfig {
        source: settings.source.clone(),
        slot: settings.capture.slot.clone(),
        wal: settings.wal,
        state_file: Some(
            settings
                .state_dir
                .join(monitor::state_file_name(options.stage == Stage::Load)),
        ),
        log_dir: Some(dir),
        display: options.display,
        captures: options.stage != Stage::Load,
    };
    pipeline(stages, &settings, monitor, options).await
}

/// The local change log: a writer unless another process captures (`--stage load`), and a
/// reader.
async fn local_log(
    options: sluice_log_local::LogOptions,
    stage: Stage,
) -> Result<
    (
        Option<sluice_log_local::LocalLog>,
        sluice_log_local::LogReader,
    ),
    Failure,
> {
    let log_failure = |e| Failure::from_error("change log", e);
    if stage == Stage::Load {
        // Another process captures: read by polling, append nothing.
        let reader = sluice_log_local::LogReader::open(options.dir.clone())
            .await
            .map_err(log_failure)?;
        Ok((None, reader))
    } else {
        let writer = sluice_log_local::LocalLog::open(options)
            .await
            .map_err(log_failure)?;
        let reader = writer.reader();
        Ok((Some(writer), reader))
    }
}

/// How often the change log's size is compared with the backlog budget.
const BACKLOG_CHECK: Duration = Duration::from_secs(1);

/// The local change log's writer, reporting its end to the shared figures and, with a backlog
/// budget (`[wal] absorb_backlog`), refusing appends while more than that waits on disk.
struct TrackedLog {
    inner: sluice_log_local::LocalLog,
    stats: Arc<Stats>,
    budget: u64,
    checked: Option<Instant>,
}

impl ChangeLogWriter for TrackedLog {
    type Error = sluice_log_local::LogError;

    async fn append(&mut self, records: &[LogRecord]) -> Result<(), Self::Error> {
        if self.budget > 0 && self.checked.is_none_or(|t| t.elapsed() >= BACKLOG_CHECK) {
            // Asking at the end of the log reads file sizes only.
            let end = LogPosition::single("0", self.inner.next_offset());
            let on_disk = self.inner.stats(&end).await?.total_bytes;
            if on_disk > self.budget {
                return Err(sluice_log_local::LogError::BacklogFull {
                    dir: self.inner.dir().to_path_buf(),
                    bytes: on_disk,
                    budget: self.budget,
                });
            }
            self.checked = Some(Instant::now());
        }
        self.inner.append(records).await?;
        self.stats
            .log_next_offset
            .store(self.inner.next_offset(), Ordering::Relaxed);
        Ok(())
    }

    fn last_appended(&self) -> Option<LastAppended> {
        self.inner.last_appended()
    }
}

/// The stages to run: capture with its log writer, the loader with its log reader and target.
struct Stages<W, R, D> {
    capture: Option<(Capture, W)>,
    load: Option<(R, D)>,
}

async fn pipeline<W, R, D>(
    stages: Stages<W, R, D>,
    settings: &Settings,
    monitor: MonitorConfig,
    options: SyncOptions,
) -> Result<SyncReport, Failure>
where
    W: ChangeLogWriter + 'static,
    R: ChangeLogReader + 'static,
    D: Destination + 'static,
{
    let SyncOptions {
        until_caught_up,
        stop,
        stats,
        ..
    } = options;
    // With a backlog budget the stages wait out a target outage instead of giving up.
    let unlimited = settings.wal.absorb_backlog > 0;
    let input_done = CancellationToken::new();
    let monitor_stop = CancellationToken::new();
    let monitor_task = tokio::spawn(monitor::run(monitor, stats.clone(), monitor_stop.clone()));
    let capture_control = CaptureControl {
        shutdown: stop.clone(),
        until_caught_up,
        stats: stats.clone(),
    };
    let capture_task = stages.capture.map(|(capture, mut writer)| {
        let stop = stop.clone();
        let input_done = input_done.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            let mut retry = Retry::new(unlimited);
            let mut report = CaptureReport::default();
            let result = loop {
                match capture
                    .run(&mut writer, &capture_control, &mut report)
                    .await
                {
                    Ok(()) => break Ok(report),
                    Err(e) => {
                        stats.source_up.store(false, Ordering::Relaxed);
                        let failure = Failure::from_error("source", e);
                        if !retry.wait(&failure, &stop).await {
                            break Err(failure);
                        }
                    }
                }
            };
            stats.source_up.store(false, Ordering::Relaxed);
            if result.is_err() {
                stop.cancel();
            }
            input_done.cancel();
            result
        })
    });
    if capture_task.is_none() {
        // Another process captures: readiness follows the target alone.
        stats.source_up.store(true, Ordering::Relaxed);
        if until_caught_up {
            // Nothing appends in this process: load what the log holds now, then stop.
            input_done.cancel();
        }
    }
    let loader_task = stages.load.map(|(mut reader, mut destination)| {
        let stop = stop.clone();
        let control = LoaderControl {
            shutdown: stop.clone(),
            input_done: input_done.clone(),
            stats: stats.clone(),
            resync: {
                let resync = crate::park::Resync::from_settings(settings);
                ResyncHint::new(move |table| resync.hint(table))
            },
        };
        let pipeline = settings.pipeline.clone();
        let limits = settings.limits;
        tokio::spawn(async move {
            let mut retry = Retry::new(unlimited);
            let result = loop {
                match loader::run(&mut reader, &mut destination, &pipeline, limits, &control).await
                {
                    Ok(report) => break Ok(report),
                    Err(error) => {
                        let failure = load_failure(error);
                        if failure.what == "target" {
                            control.stats.target_up.store(false, Ordering::Relaxed);
                        }
                        if !retry.wait(&failure, &stop).await {
                            break Err(failure);
                        }
                    }
                }
            };
            if result.is_err() {
                stop.cancel();
            }
            result
        })
    });
    if loader_task.is_none() {
        stats.target_up.store(true, Ordering::Relaxed);
    }
    let mut report = SyncReport::default();
    let mut outcome = Ok(());
    if let Some(task) = capture_task {
        match task.await.map_err(|e| Failure::fatal("source", e.into())) {
            Ok(Ok(r)) => report.capture = r,
            Ok(Err(f)) | Err(f) => outcome = Err(f),
        }
    }
    if let Some(task) = loader_task {
        match task.await.map_err(|e| Failure::fatal("target", e.into())) {
            Ok(Ok(r)) => report.loader = r,
            Ok(Err(f)) | Err(f) => {
                if outcome.is_ok() {
                    outcome = Err(f);
                }
            }
        }
    }
    // The state file's last word is written after both stages stopped.
    monitor_stop.cancel();
    let _ = monitor_task.await;
    outcome.map(|()| report)
}

/// The loader's error as the supervisor handles it: the side that failed names the stage part,
/// and the side's error is the chain printed.
fn load_failure(error: LoadError) -> Failure {
    Failure {
        class: error.class(),
        what: error.what(),
        table: error.wedged_table().cloned(),
        error: anyhow::Error::from_boxed(error.into_source()),
    }
}

/// Retry bookkeeping of one stage.
struct Retry {
    attempts: u32,
    since: Option<Instant>,
    /// Retry transient failures without a limit on attempts.
    unlimited: bool,
}

impl Retry {
    fn new(unlimited: bool) -> Retry {
        Retry {
            attempts: 0,
            since: None,
            unlimited,
        }
    }

    /// Waits before the next attempt; false when the failure should not be retried.
    async fn wait(&mut self, failure: &Failure, stop: &CancellationToken) -> bool {
        telemetry::count_error(failure.what, failure.class);
        if self.since.is_some_and(|t| t.elapsed() > RETRY_RESET) {
            self.attempts = 0;
        }
        if failure.class != ErrorClass::Transient
            || (self.attempts >= RETRY_ATTEMPTS && !self.unlimited)
            || stop.is_cancelled()
        {
            return false;
        }
        self.attempts = self.attempts.saturating_add(1);
        let delay = backoff(self.attempts);
        tracing::warn!(
            error = %failure,
            attempt = self.attempts,
            retry_in_ms = delay.as_millis() as u64,
            "{} failed; retrying",
            failure.what
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.cancelled() => return false,
        }
        self.since = Some(Instant::now());
        true
    }
}

/// Exponential backoff with full jitter in its upper half.
fn backoff(attempt: u32) -> Duration {
    let exp = RETRY_BASE
        .saturating_mul(1u32 << attempt.min(10))
        .min(RETRY_MAX);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let half = exp / 2;
    half + Duration::from_nanos(u64::from(nanos) % half.as_nanos().max(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_errors_keep_their_side_class_table_and_chain() {
        let table = sluice_core::TableId::new("public", "t");
        let wedged = load_failure(LoadError::Target {
            class: ErrorClass::Definite,
            table: Some(table.clone()),
            source: "column \"c\" changed type".into(),
        });
        assert_eq!(wedged.parks(), Some(&table));
        assert_eq!(wedged.to_string(), "target: column \"c\" changed type");
        let log = load_failure(LoadError::ChangeLog {
            class: ErrorClass::Fatal,
            source: Box::new(std::io::Error::other("segment 3 is damaged")),
        });
        assert_eq!((log.what, log.class), ("change log", ErrorClass::Fatal));
        assert_eq!(log.parks(), None);
        assert_eq!(log.to_string(), "change log: segment 3 is damaged");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..40 {
            let d = backoff(attempt);
            let exp = RETRY_BASE
                .saturating_mul(1u32 << attempt.min(10))
                .min(RETRY_MAX);
            assert!(d >= exp / 2 && d <= exp, "attempt {attempt}: {d:?}");
        }
        assert!(backoff(30) <= RETRY_MAX);
    }
}
