//! `sluice sync`: capture and loader as two tasks joined by the change log.
//!
//! Each stage runs under a supervisor that retries transient errors with jittered exponential
//! backoff (each attempt logged once) and stops the whole pipeline on definite or fatal ones.
//! SIGINT/SIGTERM stop capture (which appends what is complete and reports its final position)
//! and the loader (between batches, never inside one).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sluice_core::{ChangeLogReader, ChangeLogWriter, Destination, ErrorClass};
use sluice_postgres::{Capture, CaptureControl, CaptureReport};
use tokio_util::sync::CancellationToken;

use crate::Failure;
use crate::cli::Stage;
use crate::loader::{self, LoaderControl, LoaderReport};
use crate::registry::{LogKind, TargetKind};
use crate::settings::Settings;

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

/// Runs the pipeline until `stop` is cancelled (or, with `until_caught_up`, until everything
/// committed at start is loaded).
pub async fn run(
    settings: Settings,
    stage: Stage,
    until_caught_up: bool,
    stop: CancellationToken,
) -> Result<SyncReport, Failure> {
    let capture = Capture::new(settings.source.clone(), settings.capture.clone());
    match (settings.log.clone(), settings.target.clone()) {
        #[cfg(feature = "duckdb")]
        (LogKind::Local(options), TargetKind::DuckDb(target)) => {
            let destination = sluice_duckdb::DuckDbDestination::new(target)
                .map_err(|e| Failure::from_error("target", e))?;
            let (writer, reader) = local_log(options, stage).await?;
            let stages = Stages {
                capture: writer.map(|w| (capture, w)),
                load: (stage != Stage::Capture).then_some((reader, destination)),
            };
            pipeline(stages, &settings, until_caught_up, stop).await
        }
        #[cfg(feature = "postgres")]
        (LogKind::Local(options), TargetKind::Postgres(target)) => {
            let (writer, reader) = local_log(options, stage).await?;
            let destination = sluice_postgres_target::PostgresDestination::new(target)
                .map_err(|e| Failure::from_error("target", e))?;
            let stages = Stages {
                capture: writer.map(|w| (capture, w)),
                load: (stage != Stage::Capture).then_some((reader, destination)),
            };
            pipeline(stages, &settings, until_caught_up, stop).await
        }
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
    let capture = Capture::new(settings.source.clone(), settings.capture.clone());
    let LogKind::Local(options) = settings.log.clone();
    let (writer, reader) = local_log(options, Stage::All).await?;
    let stages = Stages {
        capture: writer.map(|w| (capture, w)),
        load: Some((reader, destination)),
    };
    pipeline(stages, &settings, until_caught_up, stop).await
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

/// The stages to run: capture with its log writer, the loader with its log reader and target.
struct Stages<W, R, D> {
    capture: Option<(Capture, W)>,
    load: Option<(R, D)>,
}

async fn pipeline<W, R, D>(
    stages: Stages<W, R, D>,
    settings: &Settings,
    until_caught_up: bool,
    stop: CancellationToken,
) -> Result<SyncReport, Failure>
where
    W: ChangeLogWriter + 'static,
    R: ChangeLogReader + 'static,
    D: Destination + 'static,
{
    let input_done = CancellationToken::new();
    let capture_control = CaptureControl {
        shutdown: stop.clone(),
        until_caught_up,
    };
    let capture_task = stages.capture.map(|(capture, mut writer)| {
        let stop = stop.clone();
        let input_done = input_done.clone();
        tokio::spawn(async move {
            let mut retry = Retry::default();
            let result = loop {
                match capture.run(&mut writer, &capture_control).await {
                    Ok(report) => break Ok(report),
                    Err(e) => {
                        let failure = Failure::from_error("source", e);
                        if !retry.wait(&failure, &stop).await {
                            break Err(failure);
                        }
                    }
                }
            };
            if result.is_err() {
                stop.cancel();
            }
            input_done.cancel();
            result
        })
    });
    if capture_task.is_none() && until_caught_up {
        // Nothing appends in this process: load what the log holds now, then stop.
        input_done.cancel();
    }
    let loader_task = stages.load.map(|(mut reader, mut destination)| {
        let stop = stop.clone();
        let control = LoaderControl {
            shutdown: stop.clone(),
            input_done: input_done.clone(),
        };
        let pipeline = settings.pipeline.clone();
        let limits = settings.limits;
        tokio::spawn(async move {
            let mut retry = Retry::default();
            let result = loop {
                match loader::run(&mut reader, &mut destination, &pipeline, limits, &control).await
                {
                    Ok(report) => break Ok(report),
                    Err(failure) => {
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
    let mut report = SyncReport::default();
    if let Some(task) = capture_task {
        report.capture = task
            .await
            .map_err(|e| Failure::fatal("source", e.into()))??;
    }
    if let Some(task) = loader_task {
        report.loader = task
            .await
            .map_err(|e| Failure::fatal("target", e.into()))??;
    }
    Ok(report)
}

/// Retry bookkeeping of one stage.
#[derive(Default)]
struct Retry {
    attempts: u32,
    since: Option<Instant>,
}

impl Retry {
    /// Waits before the next attempt; false when the failure should not be retried.
    async fn wait(&mut self, failure: &Failure, stop: &CancellationToken) -> bool {
        if self.since.is_some_and(|t| t.elapsed() > RETRY_RESET) {
            self.attempts = 0;
        }
        if failure.class != ErrorClass::Transient
            || self.attempts >= RETRY_ATTEMPTS
            || stop.is_cancelled()
        {
            return false;
        }
        self.attempts += 1;
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
