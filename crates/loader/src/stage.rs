//! The loader's driver: reads the change log, applies to the destination and waits, doing
//! what [`Fill`] and [`table_to_park`] decide. It holds no decision of its own beyond the
//! order of its I/O.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sluice_core::telemetry::Stats;
use sluice_core::{ChangeLogReader, Checkpoint, Classify, Destination, ReadRecord};
use tokio_util::sync::CancellationToken;

use crate::error::{LoadError, Result};
use crate::figures::count_error;
use crate::fill::{BatchLimits, Fill, Filled, Next, Push, Signals, park_reminder_due, ping_due};
use crate::park::{self, ResyncHint, table_to_park};

/// How the loader decides it is finished.
#[derive(Debug, Clone)]
pub struct LoaderControl {
    /// Stop between batches.
    pub shutdown: CancellationToken,
    /// Capture has appended everything it will: stop once the log is drained.
    pub input_done: CancellationToken,
    /// Where the loader reports its progress.
    pub stats: Arc<Stats>,
    /// What to tell the operator about a parked table.
    pub resync: ResyncHint,
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
) -> Result<LoaderReport>
where
    R: ChangeLogReader,
    D: Destination,
{
    let mut report = LoaderReport::default();
    let mut checkpoint = destination
        .open(pipeline)
        .await
        .map_err(LoadError::target)?
        .unwrap_or_default();
    control.stats.target_up.store(true, Ordering::Relaxed);
    tracing::info!(lsn = %checkpoint.applied_lsn, "loader resuming from checkpoint");
    reader
        .seek(&checkpoint.position)
        .await
        .map_err(LoadError::change_log)?;
    control.stats.log_released(&checkpoint.position);
    report.checkpoint = checkpoint.clone();
    remind_parked(&checkpoint, control);
    let mut reminded = Instant::now();
    let mut last_contact = Instant::now();
    // Records read but left for the next batch (a large transaction starts its own batch).
    let mut carry: VecDeque<ReadRecord> = VecDeque::new();
    // The start of the next batch, read while the previous one was being applied.
    let mut ahead: Option<Fill> = None;

    'batches: loop {
        if control.shutdown.is_cancelled() {
            return Ok(report);
        }
        let drained = control.input_done.is_cancelled() && carry.is_empty();
        let mut fill = ahead
            .take()
            .unwrap_or_else(|| Fill::after(&checkpoint, Instant::now()));
        'fill: loop {
            let records: Vec<ReadRecord> = if carry.is_empty() {
                let wait = fill.wait(limits, Instant::now(), control.input_done.is_cancelled());
                let budget = fill.read_budget(limits);
                let idle = fill.idle();
                tokio::select! {
                    r = reader.read(budget, wait) => r.map_err(LoadError::change_log)?,
                    () = control.shutdown.cancelled(), if idle => return Ok(report),
                }
            } else {
                carry.drain(..).collect()
            };
            let got = records.len();
            let mut records = records.into_iter();
            while let Some(r) = records.next() {
                match fill.push(r, limits) {
                    Push::Taken => {}
                    Push::SliceFull => {
                        if let Err(e) = destination.apply_part(fill.take_slice()).await {
                            park(
                                LoadError::target(e),
                                &mut checkpoint,
                                reader,
                                destination,
                                control,
                            )
                            .await?;
                            carry.clear();
                            continue 'batches;
                        }
                        last_contact = Instant::now();
                    }
                    Push::Closes(r) => {
                        // Commit what came before: the large transaction gets a batch of its
                        // own, so abandoning it never takes other changes with it.
                        carry.push_back(r);
                        carry.extend(records);
                        break 'fill;
                    }
                    Push::Abandons {
                        record,
                        discard,
                        lsn,
                    } => {
                        tracing::warn!(
                            %lsn,
                            "discarding the parts of a transaction whose end is not in the change log"
                        );
                        if discard {
                            destination.discard().await.map_err(LoadError::target)?;
                        }
                        carry.push_back(record);
                        carry.extend(records);
                        continue 'fill;
                    }
                    Push::Stray(r) => return Err(LoadError::stray_part(&r.position)),
                }
            }
            let signals = Signals {
                shutdown: control.shutdown.is_cancelled(),
                input_done: control.input_done.is_cancelled(),
                drained,
            };
            match fill.after_read(got, Instant::now(), limits, signals) {
                Next::Read => {}
                Next::Close => break,
                Next::Stop { discard } => {
                    if discard {
                        destination.discard().await.map_err(LoadError::target)?;
                    }
                    return Ok(report);
                }
                Next::Idle => {
                    if ping_due(last_contact.elapsed()) {
                        destination.ping().await.map_err(LoadError::target)?;
                        last_contact = Instant::now();
                    }
                }
            }
        }
        let Some(Filled {
            batch,
            checkpoint: next,
            figures,
        }) = fill.finish()
        else {
            continue;
        };
        let t0 = Instant::now();
        let (changes, rows, batch_bytes) = (batch.changes, batch.rows(), batch.bytes);
        // The next batch is read and built while this one is applied: decoding the log and
        // applying to the target overlap.
        let mut next_fill = Fill::after(&next, Instant::now());
        let (applied, read) = tokio::join!(
            destination.apply(batch, &next),
            read_ahead(reader, &mut carry, &mut next_fill, limits)
        );
        if let Err(e) = applied {
            park(
                LoadError::target(e),
                &mut checkpoint,
                reader,
                destination,
                control,
            )
            .await?;
            carry.clear();
            continue;
        }
        read?;
        ahead = Some(next_fill);
        // A crash here leaves the batch and its checkpoint committed but the log not released:
        // the next run seeks past the batch and releases later.
        #[cfg(feature = "failpoints")]
        fail::fail_point!("loader-after-commit", |_| {
            eprintln!("failpoint loader-after-commit: aborting the process");
            std::process::abort()
        });
        last_contact = Instant::now();
        let elapsed = t0.elapsed();
        figures.report(&control.stats, &next, changes, batch_bytes, elapsed);
        tracing::debug!(
            changes,
            rows,
            batch_bytes,
            lsn = %next.applied_lsn,
            elapsed_ms = elapsed.as_millis() as u64,
            "batch applied"
        );
        reader
            .release(&next.position)
            .await
            .map_err(LoadError::change_log)?;
        control.stats.log_released(&next.position);
        report.batches += 1;
        report.changes += changes as u64;
        report.rows += rows as u64;
        report.checkpoint = next.clone();
        checkpoint = next;
        if !checkpoint.parked.is_empty() && park_reminder_due(reminded.elapsed()) {
            remind_parked(&checkpoint, control);
            reminded = Instant::now();
        }
    }
}

/// Reads what the log holds now, without waiting, into `fill` (the batch after the one being
/// applied), up to the batch limits. Stops at the first part of a large transaction, which is
/// left in `carry` with everything after it, as are records beyond the limits. Does nothing
/// when `carry` holds records already: they come first.
async fn read_ahead<R: ChangeLogReader>(
    reader: &mut R,
    carry: &mut VecDeque<ReadRecord>,
    fill: &mut Fill,
    limits: BatchLimits,
) -> Result<()> {
    if !carry.is_empty() {
        return Ok(());
    }
    while !fill.full(limits) {
        let records = reader
            .read(fill.read_budget(limits), Duration::ZERO)
            .await
            .map_err(LoadError::change_log)?;
        if records.is_empty() {
            return Ok(());
        }
        let mut records = records.into_iter();
        while let Some(r) = records.next() {
            if let Err(r) = fill.take_ahead(r, limits) {
                carry.push_back(r);
                carry.extend(records);
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Parks the table `error` wedges, or gives the error back when it parks none
/// ([`table_to_park`]). The failed `apply` or `apply_part` rolled back; what earlier slices
/// left is discarded and the reader is moved back to the checkpoint, so the same records load
/// again without the table.
async fn park<R, D>(
    error: LoadError,
    checkpoint: &mut Checkpoint,
    reader: &mut R,
    destination: &mut D,
    control: &LoaderControl,
) -> Result<()>
where
    R: ChangeLogReader,
    D: Destination,
{
    let Some(table) = table_to_park(&error, checkpoint) else {
        return Err(error);
    };
    count_error(error.what(), error.class());
    destination.discard().await.map_err(LoadError::target)?;
    let reason = error.reason();
    tracing::error!(
        table = %table,
        lsn = %checkpoint.applied_lsn,
        error = %reason,
        hint = %control.resync.hint(&table),
        "table parked"
    );
    park::park(checkpoint, table, reason);
    control
        .stats
        .tables_parked
        .store(checkpoint.parked.len() as u64, Ordering::Relaxed);
    reader
        .seek(&checkpoint.position)
        .await
        .map_err(LoadError::change_log)
}

/// Logs every parked table again, with what to do, and reports how many there are.
fn remind_parked(checkpoint: &Checkpoint, control: &LoaderControl) {
    control
        .stats
        .tables_parked
        .store(checkpoint.parked.len() as u64, Ordering::Relaxed);
    for parked in &checkpoint.parked {
        tracing::error!(
            table = %parked.table,
            lsn = %parked.lsn,
            error = %parked.reason,
            hint = %control.resync.hint(&parked.table),
            "table parked"
        );
    }
}
