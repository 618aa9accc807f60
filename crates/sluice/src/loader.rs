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
//! - While a batch is applied, the next one is read from the log and built (only read: one
//!   batch at a time reaches the destination), so decoding and applying overlap. A failed
//!   apply drops what was read ahead; the reader goes back to the checkpoint.
//! - A definite error of the target that wedges one table ([`Failure::parks`]) parks that
//!   table: the loader adds it to the checkpoint's parked tables, reads the log again from the
//!   checkpoint and loads the same records without it; every later batch leaves it out, and
//!   the park commits with the next batch's checkpoint. The other tables keep their
//!   guarantees; a source transaction that touched the parked table is loaded without it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sluice_core::telemetry::{OpCounts, Stats, now_micros, op_label, table_label};
use sluice_core::{
    BatchBuilder, ChangeLogReader, Checkpoint, Destination, LogPosition, LogRecord, Lsn,
    ParkedTable, ReadRecord, TableId, TxnKind,
};
use tokio_util::sync::CancellationToken;

use crate::Failure;
use crate::park::Resync;

/// When a micro-batch closes.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub flush_interval: Duration,
    pub max_bytes: usize,
    pub max_rows: usize,
}

impl BatchLimits {
    /// Whether `builder` holds a whole batch.
    fn full(&self, builder: &BatchBuilder) -> bool {
        builder.bytes() >= self.max_bytes || builder.changes() >= self.max_rows
    }

    /// How many bytes of records to read next into `builder`: what the batch still takes, in
    /// slices no larger than a large transaction's (what is read waits in memory until it is
    /// applied or staged).
    fn read_budget(&self, builder: &BatchBuilder) -> usize {
        self.max_bytes
            .saturating_sub(builder.bytes())
            .clamp(1, LARGE_TXN_STAGE_BYTES)
    }
}

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
    pub resync: Resync,
}

/// While tables are parked, the loader repeats the error this often.
const PARK_REMINDER: Duration = Duration::from_secs(60);

/// While idle, the loader checks the target this often, so readiness notices a target that
/// went away before the next batch does.
const PING_INTERVAL: Duration = Duration::from_secs(2);

/// A source transaction too large for one batch is staged in slices of at most this many
/// bytes (or `max_batch_bytes`, when smaller): large enough that each slice's MERGE is
/// worthwhile, small enough that the loader's share of memory stays small next to the
/// target's.
pub const LARGE_TXN_STAGE_BYTES: usize = 16 * 1024 * 1024;

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
    control.stats.target_up.store(true, Ordering::Relaxed);
    tracing::info!(lsn = %checkpoint.applied_lsn, "loader resuming from checkpoint");
    reader
        .seek(&checkpoint.position)
        .await
        .map_err(|e| Failure::from_error("change log", e))?;
    control.stats.log_released(&checkpoint.position);
    report.checkpoint = checkpoint.clone();
    remind_parked(&checkpoint, control);
    let mut reminded = Instant::now();
    let mut last_contact = Instant::now();
    // Records read but left for the next batch (a large transaction starts its own batch).
    let mut carry: VecDeque<ReadRecord> = VecDeque::new();
    // The start of the next batch, read while the previous one was being applied.
    let mut ahead: Option<Ahead> = None;

    'batches: loop {
        if control.shutdown.is_cancelled() {
            return Ok(report);
        }
        let drained_after_input = control.input_done.is_cancelled() && carry.is_empty();
        let Ahead {
            mut builder,
            mut last,
            mut seen,
            started,
        } = ahead.take().unwrap_or_else(|| Ahead::after(&checkpoint));
        // The large transaction whose parts this batch is loading, and whether some of them
        // are staged in the destination already.
        let mut large: Option<LargeTxn> = None;
        let mut staged = false;
        'fill: loop {
            let records: Vec<ReadRecord> = if carry.is_empty() {
                let elapsed = started.elapsed();
                let wait = if control.input_done.is_cancelled() {
                    // Capture has finished: what the log holds is all there is, do not wait.
                    Duration::ZERO
                } else if builder.records() == 0 || large.is_some() {
                    // Nothing yet (or the rest of a large transaction): poll in short steps so
                    // shutdown and end of input are noticed.
                    Duration::from_millis(100).min(limits.flush_interval)
                } else {
                    limits.flush_interval.saturating_sub(elapsed)
                };
                let budget = limits.read_budget(&builder);
                let idle = builder.records() == 0 && large.is_none();
                tokio::select! {
                    r = reader.read(budget, wait) => r.map_err(|e| Failure::from_error("change log", e))?,
                    () = control.shutdown.cancelled(), if idle => return Ok(report),
                }
            } else {
                carry.drain(..).collect()
            };
            let got = records.len();
            let mut records = records.into_iter();
            while let Some(r) = records.next() {
                match LargeTxn::step(large.as_ref(), &r.record) {
                    Step::Whole => {}
                    Step::Starts(txn) => {
                        if builder.records() > 0 {
                            // Commit what came before: the large transaction gets a batch of
                            // its own, so abandoning it never takes other changes with it.
                            carry.push_back(r);
                            carry.extend(records);
                            break 'fill;
                        }
                        large = Some(txn);
                    }
                    Step::Continues => {
                        if let Some(txn) = large.as_mut() {
                            txn.next_part += 1;
                        }
                    }
                    Step::Ends => large = None,
                    Step::Abandons => {
                        // Capture stopped while appending the parts; the source sent the whole
                        // transaction again, further on in the log.
                        tracing::warn!(
                            lsn = %large.as_ref().map_or(Lsn::ZERO, |t| t.commit_lsn),
                            "discarding the parts of a transaction whose end is not in the change log"
                        );
                        if std::mem::take(&mut staged) {
                            destination
                                .discard()
                                .await
                                .map_err(|e| Failure::from_error("target", e))?;
                        }
                        builder = BatchBuilder::after(&checkpoint);
                        seen = BatchFigures::default();
                        large = None;
                        carry.push_back(r);
                        carry.extend(records);
                        continue 'fill;
                    }
                    Step::Stray => {
                        return Err(Failure::fatal(
                            "change log",
                            anyhow::anyhow!(
                                "change log record at {:?} is a part of a transaction whose first part it does not follow",
                                r.position.partitions
                            ),
                        ));
                    }
                }
                seen.note(&r.record, &checkpoint);
                builder.push(r.record);
                last = Some(r.position);
                if large.is_some()
                    && (builder.bytes() >= limits.max_bytes.min(LARGE_TXN_STAGE_BYTES)
                        || builder.changes() >= limits.max_rows)
                {
                    // Bounded memory: apply what is held without committing.
                    let (batch, _) =
                        std::mem::replace(&mut builder, BatchBuilder::after(&checkpoint))
                            .finish(LogPosition::default());
                    if let Err(e) = destination.apply_part(batch).await {
                        let failure = Failure::from_error("target", e);
                        park(failure, &mut checkpoint, reader, destination, control).await?;
                        carry.clear();
                        continue 'batches;
                    }
                    staged = true;
                    last_contact = Instant::now();
                }
            }
            if large.is_some() {
                // A batch never ends inside a source transaction.
                if control.shutdown.is_cancelled()
                    || (got == 0 && control.input_done.is_cancelled())
                {
                    if staged {
                        destination
                            .discard()
                            .await
                            .map_err(|e| Failure::from_error("target", e))?;
                    }
                    return Ok(report);
                }
                continue;
            }
            let full = limits.full(&builder);
            let timed_out = started.elapsed() >= limits.flush_interval;
            if full || ((builder.records() > 0 || staged) && (timed_out || got == 0)) {
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
                if last_contact.elapsed() >= PING_INTERVAL {
                    destination
                        .ping()
                        .await
                        .map_err(|e| Failure::from_error("target", e))?;
                    last_contact = Instant::now();
                }
            }
        }
        let Some(position) = last else { continue };
        let (batch, next) = builder.finish(position);
        let t0 = Instant::now();
        let (changes, rows, batch_bytes) = (batch.changes, batch.rows(), batch.bytes);
        // The next batch is read and built while this one is applied: decoding the log and
        // applying to the target overlap.
        let mut next_batch = Ahead::after(&next);
        let (applied, read) = tokio::join!(
            destination.apply(batch, &next),
            read_ahead(reader, &mut carry, &mut next_batch, &next, limits)
        );
        if let Err(e) = applied {
            let failure = Failure::from_error("target", e);
            park(failure, &mut checkpoint, reader, destination, control).await?;
            carry.clear();
            continue;
        }
        read?;
        ahead = Some(next_batch);
        // A crash here leaves the batch and its checkpoint committed but the log not released:
        // the next run seeks past the batch and releases later.
        #[cfg(feature = "failpoints")]
        fail::fail_point!("loader-after-commit", |_| {
            eprintln!("failpoint loader-after-commit: aborting the process");
            std::process::abort()
        });
        last_contact = Instant::now();
        let elapsed = t0.elapsed();
        seen.report(&control.stats, &next, changes, batch_bytes, elapsed);
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
            .map_err(|e| Failure::from_error("change log", e))?;
        control.stats.log_released(&next.position);
        report.batches += 1;
        report.changes += changes as u64;
        report.rows += rows as u64;
        report.checkpoint = next.clone();
        checkpoint = next;
        if !checkpoint.parked.is_empty() && reminded.elapsed() >= PARK_REMINDER {
            remind_parked(&checkpoint, control);
            reminded = Instant::now();
        }
    }
}

/// The start of a batch: its records so far, and when the first was read.
struct Ahead {
    builder: BatchBuilder,
    last: Option<LogPosition>,
    seen: BatchFigures,
    started: Instant,
}

impl Ahead {
    fn after(checkpoint: &Checkpoint) -> Ahead {
        Ahead {
            builder: BatchBuilder::after(checkpoint),
            last: None,
            seen: BatchFigures::default(),
            started: Instant::now(),
        }
    }
}

/// Reads what the log holds now, without waiting, into `ahead` (a batch after `checkpoint`),
/// up to the batch limits. Stops at the first part of a large transaction, which is left in
/// `carry` with everything after it, as are records beyond the limits. Does nothing when
/// `carry` holds records already: they come first.
async fn read_ahead<R: ChangeLogReader>(
    reader: &mut R,
    carry: &mut VecDeque<ReadRecord>,
    ahead: &mut Ahead,
    checkpoint: &Checkpoint,
    limits: BatchLimits,
) -> Result<(), Failure> {
    if !carry.is_empty() {
        return Ok(());
    }
    while !limits.full(&ahead.builder) {
        let records = reader
            .read(limits.read_budget(&ahead.builder), Duration::ZERO)
            .await
            .map_err(|e| Failure::from_error("change log", e))?;
        if records.is_empty() {
            return Ok(());
        }
        let mut records = records.into_iter();
        while let Some(r) = records.next() {
            if !matches!(LargeTxn::step(None, &r.record), Step::Whole)
                || limits.full(&ahead.builder)
            {
                carry.push_back(r);
                carry.extend(records);
                return Ok(());
            }
            ahead.seen.note(&r.record, checkpoint);
            ahead.builder.push(r.record);
            ahead.last = Some(r.position);
        }
    }
    Ok(())
}

/// Parks the table `failure` wedges, or gives the failure back when it wedges no single
/// table (or one parked already). The failed `apply` or `apply_part` rolled back; the reader is
/// moved back to the checkpoint so the same records load again without the table.
async fn park<R, D>(
    failure: Failure,
    checkpoint: &mut Checkpoint,
    reader: &mut R,
    destination: &mut D,
    control: &LoaderControl,
) -> Result<(), Failure>
where
    R: ChangeLogReader,
    D: Destination,
{
    let Some(table) = failure.parks().cloned() else {
        return Err(failure);
    };
    if checkpoint.is_parked(&table) {
        return Err(failure);
    }
    crate::telemetry::count_error(failure.what, failure.class);
    destination
        .discard()
        .await
        .map_err(|e| Failure::from_error("target", e))?;
    let reason = format!("{:#}", failure.error);
    tracing::error!(
        table = %table,
        lsn = %checkpoint.applied_lsn,
        error = %reason,
        hint = %control.resync.hint(&table),
        "table parked"
    );
    checkpoint.parked.push(ParkedTable {
        table,
        lsn: checkpoint.applied_lsn,
        reason,
    });
    control
        .stats
        .tables_parked
        .store(checkpoint.parked.len() as u64, Ordering::Relaxed);
    reader
        .seek(&checkpoint.position)
        .await
        .map_err(|e| Failure::from_error("change log", e))
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

/// A source transaction too large for one record, whose parts the loader is reading.
struct LargeTxn {
    xid: u32,
    commit_lsn: Lsn,
    /// The part that must come next.
    next_part: u32,
}

/// What a record does to the large transaction being read, if any.
enum Step {
    /// A record of its own (no large transaction open).
    Whole,
    /// The first part of a large transaction.
    Starts(LargeTxn),
    /// The next part of the open large transaction.
    Continues,
    /// The last record of the open large transaction.
    Ends,
    /// Not the open transaction's next record: its remaining parts never came.
    Abandons,
    /// A part whose earlier parts were not read.
    Stray,
}

impl LargeTxn {
    fn step(open: Option<&LargeTxn>, record: &LogRecord) -> Step {
        let same = |t: &LargeTxn, txn: &sluice_core::Transaction| {
            t.xid == txn.xid && t.commit_lsn == txn.commit_lsn
        };
        match (open, record) {
            (Some(t), LogRecord::TransactionPart { part, txn })
                if same(t, txn) && *part == t.next_part =>
            {
                Step::Continues
            }
            (Some(t), LogRecord::Transaction(txn)) if same(t, txn) => Step::Ends,
            (Some(_), _) => Step::Abandons,
            (None, LogRecord::TransactionPart { part: 0, txn }) => Step::Starts(LargeTxn {
                xid: txn.xid,
                commit_lsn: txn.commit_lsn,
                next_part: 1,
            }),
            (None, LogRecord::TransactionPart { .. }) => Step::Stray,
            (None, _) => Step::Whole,
        }
    }
}

/// What a batch carried, noted as its records are read, for metrics and per-table figures.
#[derive(Default)]
struct BatchFigures {
    counts: OpCounts,
    /// Per table: changes, and the commit LSN and time of its last change.
    tables: Vec<(TableId, u64, Lsn, i64)>,
    /// Commit times of the streamed transactions (snapshot copies have no source commit).
    commit_times: Vec<i64>,
}

impl BatchFigures {
    /// Notes a record read after `checkpoint` (what is at or below its applied position was
    /// loaded before, and parked tables are not loaded).
    fn note(&mut self, record: &LogRecord, checkpoint: &Checkpoint) {
        let applied = checkpoint.applied_lsn;
        let (txn, last) = match record {
            LogRecord::Transaction(txn) => (txn, true),
            LogRecord::TransactionPart { txn, .. } => (txn, false),
            _ => return,
        };
        if txn.kind == TxnKind::Stream && txn.commit_lsn <= applied {
            return;
        }
        if txn.kind == TxnKind::Stream && last {
            self.commit_times.push(txn.commit_ts);
        }
        for change in &txn.changes {
            let table = &change.relation.table;
            if checkpoint.is_parked(table) {
                continue;
            }
            self.counts.add(table, change.op, 1);
            match self.tables.iter_mut().find(|(t, ..)| t == table) {
                Some(entry) => {
                    entry.1 += 1;
                    entry.2 = txn.commit_lsn;
                    entry.3 = txn.commit_ts;
                }
                None => self
                    .tables
                    .push((table.clone(), 1, txn.commit_lsn, txn.commit_ts)),
            }
        }
    }

    /// Reports an applied batch: metrics, and the shared figures.
    fn report(
        mut self,
        stats: &Stats,
        checkpoint: &Checkpoint,
        changes: usize,
        bytes: usize,
        elapsed: Duration,
    ) {
        let now_us = now_micros();
        for commit_ts in &self.commit_times {
            let latency = (now_us - commit_ts).max(0) as f64 / 1e6;
            metrics::histogram!("sluice_end_to_end_latency_seconds").record(latency);
        }
        metrics::counter!("sluice_batches_applied_total").increment(1);
        metrics::histogram!("sluice_batch_changes").record(changes as f64);
        metrics::histogram!("sluice_batch_bytes").record(bytes as f64);
        metrics::histogram!("sluice_batch_duration_seconds").record(elapsed.as_secs_f64());
        for (table, op, n) in self.counts.drain() {
            metrics::counter!("sluice_changes_applied_total", "table" => table_label(&table), "op" => op_label(op))
                .increment(n);
        }
        stats.applied(
            &self.tables,
            checkpoint.applied_lsn,
            checkpoint.applied_commit_ts,
        );
        stats.target_up.store(true, Ordering::Relaxed);
    }
}
