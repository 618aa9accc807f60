//! The loader stage: change log to destination, in micro-batches.
//!
//! Invariants:
//! - A batch holds whole log records (whole source transactions) and closes on
//!   `max_batch_bytes`, `max_batch_rows` or `flush_interval_ms`, whichever comes first.
//! - The checkpoint (log position and applied LSN) commits in the same destination transaction
//!   as the batch's rows ([`Destination::apply`]); only after that commit does the loader
//!   release the log up to that position.
//! - On start the loader seeks the log to the checkpoint the destination holds, so a crash at
//!   any point replays at most the records after the last committed batch, which the
//!   destination's position guard makes harmless.
//! - Shutdown is checked only between batches: an `apply` is never abandoned half-way.

use std::time::{Duration, Instant};

use sluice_core::{BatchBuilder, ChangeLogReader, Checkpoint, Destination, LogPosition};
use tokio_util::sync::CancellationToken;

use crate::Failure;

/// When a micro-batch closes.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub flush_interval: Duration,
    pub max_bytes: usize,
    pub max_rows: usize,
}

/// How the loader decides it is finished.
#[derive(Debug, Clone)]
pub struct LoaderControl {
    /// Stop between batches.
    pub shutdown: CancellationToken,
    /// Capture has appended everything it will: stop once the log is drained.
    pub input_done: CancellationToken,
}

/// What one loader run achieved.
#[derive(Debug, Default, Clone)]
pub struct LoaderReport {
    pub batches: u64,
    pub changes: u64,
    pub rows: u64,
    pub checkpoint: Checkpoint,
}

/// Runs the loader until shut down or, once `input_done` is set, until the log is drained.
pub async fn run<R, D>(
    reader: &mut R,
    destination: &mut D,
    pipeline: &str,
    limits: BatchLimits,
    control: &LoaderControl,
) -> Result<LoaderReport, Failure>
where
    R: ChangeLogReader,
    D: Destination,
{
    let mut report = LoaderReport::default();
    let mut checkpoint = destination
        .open(pipeline)
        .await
        .map_err(|e| Failure::from_error("target", e))?
        .unwrap_or_default();
    tracing::info!(lsn = %checkpoint.applied_lsn, "loader resuming from checkpoint");
    reader
        .seek(&checkpoint.position)
        .await
        .map_err(|e| Failure::from_error("change log", e))?;
    report.checkpoint = checkpoint.clone();

    loop {
        if control.shutdown.is_cancelled() {
            return Ok(report);
        }
        let drained_after_input = control.input_done.is_cancelled();
        let mut builder = BatchBuilder::after(&checkpoint);
        let mut last: Option<LogPosition> = None;
        let started = Instant::now();
        loop {
            let elapsed = started.elapsed();
            let wait = if control.input_done.is_cancelled() {
                // Capture has finished: what the log holds is all there is, do not wait.
                Duration::ZERO
            } else if builder.records() == 0 {
                // Nothing yet: poll in short steps so shutdown and end of input are noticed.
                Duration::from_millis(100).min(limits.flush_interval)
            } else {
                limits.flush_interval.saturating_sub(elapsed)
            };
            let budget = limits.max_bytes.saturating_sub(builder.bytes()).max(1);
            let records = tokio::select! {
                r = reader.read(budget, wait) => r.map_err(|e| Failure::from_error("change log", e))?,
                () = control.shutdown.cancelled(), if builder.records() == 0 => return Ok(report),
            };
            let got = records.len();
            for r in records {
                builder.push(r.record);
                last = Some(r.position);
            }
            let full = builder.bytes() >= limits.max_bytes || builder.changes() >= limits.max_rows;
            let timed_out = started.elapsed() >= limits.flush_interval;
            if full || (builder.records() > 0 && (timed_out || got == 0)) {
                break;
            }
            if builder.records() == 0 && got == 0 {
                if drained_after_input {
                    // Capture finished before this empty read began: the log is drained.
                    return Ok(report);
                }
                if control.input_done.is_cancelled() || control.shutdown.is_cancelled() {
                    break;
                }
            }
        }
        let Some(position) = last else { continue };
        let (batch, next) = builder.finish(position);
        let t0 = Instant::now();
        let (changes, rows, batch_bytes) = (batch.changes, batch.rows(), batch.bytes);
        destination
            .apply(batch, &next)
            .await
            .map_err(|e| Failure::from_error("target", e))?;
        tracing::debug!(
            changes,
            rows,
            batch_bytes,
            lsn = %next.applied_lsn,
            elapsed_ms = t0.elapsed().as_millis() as u64,
            "batch applied"
        );
        reader
            .release(&next.position)
            .await
            .map_err(|e| Failure::from_error("change log", e))?;
        report.batches += 1;
        report.changes += changes as u64;
        report.rows += rows as u64;
        report.checkpoint = next.clone();
        checkpoint = next;
    }
}
