//! Filling one micro-batch: every decision the loader takes about the records it reads, with no
//! I/O. The driver ([`crate::run`]) reads, applies and waits; [`Fill`] says what to read, what a
//! record does to the batch, when a slice of a large transaction goes to the target and when the
//! batch closes. Time comes in as an [`Instant`] argument, never from the clock.
//!
//! Invariants:
//! - A batch holds whole log records and closes on `max_bytes`, `max_rows` or `flush_interval`,
//!   whichever comes first; an idle batch (nothing read, or a large transaction still open)
//!   never closes on time.
//! - The first part of a large transaction starts a batch of its own: what came before it
//!   closes first, so abandoning the transaction never takes other changes with it. Its parts
//!   go to the target in slices of at most [`LARGE_TXN_STAGE_BYTES`] (`apply_part`), and the
//!   batch holding its end record commits them (`apply`).
//! - A record that is not the open transaction's next part or its end abandons the transaction:
//!   what was applied of it is discarded and the batch starts over from that record.
//! - A batch never ends inside a source transaction: shutdown or the end of input with a large
//!   transaction open stops the loader (discarding what was applied of it) instead.
//! - Streamed transactions at or below the checkpoint's applied LSN were loaded before: they are
//!   not counted (the [`BatchBuilder`] leaves out their rows).

use std::time::{Duration, Instant};

use sluice_core::{
    Batch, BatchBuilder, Checkpoint, LogPosition, LogRecord, Lsn, ReadRecord, Transaction, TxnKind,
};

use crate::figures::BatchFigures;

/// A source transaction too large for one batch is staged in slices of at most this many
/// bytes (or `max_batch_bytes`, when smaller): large enough that each slice's MERGE is
/// worthwhile, small enough that the loader's share of memory stays small next to the
/// target's.
pub const LARGE_TXN_STAGE_BYTES: usize = 16 * 1024 * 1024;

/// While nothing is read yet (or the rest of a large transaction is awaited), a read waits at
/// most this long, so shutdown and the end of input are noticed within a tenth of a second.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// While idle, the loader checks the target this often, so readiness notices a target that
/// went away before the next batch does.
const PING_INTERVAL: Duration = Duration::from_secs(2);

/// While tables are parked, the loader repeats the error this often: once a minute is enough
/// to be seen in any log window without drowning the rest.
const PARK_REMINDER: Duration = Duration::from_secs(60);

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

    /// Whether `builder`, holding parts of a large transaction, holds a slice to apply: the
    /// batch limits, with bytes capped at [`LARGE_TXN_STAGE_BYTES`].
    fn slice_full(&self, builder: &BatchBuilder) -> bool {
        builder.bytes() >= self.max_bytes.min(LARGE_TXN_STAGE_BYTES)
            || builder.changes() >= self.max_rows
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

/// Whether the target is due a ping, `since` its last answer.
pub(crate) fn ping_due(since: Duration) -> bool {
    since >= PING_INTERVAL
}

/// Whether the parked tables are due to be logged again, `since` the last time.
pub(crate) fn park_reminder_due(since: Duration) -> bool {
    since >= PARK_REMINDER
}

/// Whether a streamed transaction was loaded before: it commits at or below the checkpoint's
/// applied LSN. Snapshot copies are never skipped (their rows carry the snapshot's position).
pub(crate) fn already_applied(txn: &Transaction, checkpoint: &Checkpoint) -> bool {
    txn.kind == TxnKind::Stream && txn.commit_lsn <= checkpoint.applied_lsn
}

/// A source transaction too large for one record, whose parts the loader is reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LargeTxn {
    xid: u32,
    commit_lsn: Lsn,
    /// The part that must come next.
    next_part: u32,
}

/// What a record does to the large transaction being read, if any.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
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
    pub(crate) fn step(open: Option<&LargeTxn>, record: &LogRecord) -> Step {
        let same =
            |t: &LargeTxn, txn: &Transaction| t.xid == txn.xid && t.commit_lsn == txn.commit_lsn;
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

/// What pushing a record into a [`Fill`] asks of the driver.
#[derive(Debug)]
pub(crate) enum Push {
    /// Taken into the batch.
    Taken,
    /// Taken, and the open large transaction holds a slice: [`Fill::take_slice`] and apply it
    /// with `apply_part`.
    SliceFull,
    /// The first part of a large transaction, after other records: the batch closes without
    /// it; the record and those after it start the next batch.
    Closes(ReadRecord),
    /// Not the open large transaction's next record: the batch starts over from this record.
    /// When `discard`, slices of the transaction were applied and must be discarded.
    Abandons {
        record: ReadRecord,
        discard: bool,
        /// The abandoned transaction's commit LSN.
        lsn: Lsn,
    },
    /// A part whose earlier parts were not read: the log is damaged.
    Stray(ReadRecord),
}

/// What the driver does after the records of one read are pushed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Read more.
    Read,
    /// Apply the batch (an empty one is dropped).
    Close,
    /// Nothing to read and nothing held: ping the target when [`ping_due`], then read again.
    Idle,
    /// Stop the loader without applying; when `discard`, discard the applied slices first.
    Stop { discard: bool },
}

/// What the driver knows of the world after a read.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Signals {
    /// Shutdown was asked for.
    pub shutdown: bool,
    /// Capture has appended everything it will.
    pub input_done: bool,
    /// Capture had finished before this batch began and nothing was carried into it: an empty
    /// read means the log is drained.
    pub drained: bool,
}

/// A batch being filled: after `checkpoint`, started at `started`.
pub(crate) struct Fill {
    checkpoint: Checkpoint,
    builder: BatchBuilder,
    last: Option<LogPosition>,
    figures: BatchFigures,
    started: Instant,
    /// The large transaction whose parts this batch is loading.
    large: Option<LargeTxn>,
    /// Whether slices of that transaction were handed to `apply_part`.
    staged: bool,
}

/// A closed batch: what to apply, the checkpoint that commits with it and its figures.
pub(crate) struct Filled {
    pub batch: Batch,
    pub checkpoint: Checkpoint,
    pub figures: BatchFigures,
}

impl Fill {
    /// An empty batch after `checkpoint`, started `now`.
    pub(crate) fn after(checkpoint: &Checkpoint, now: Instant) -> Fill {
        Fill {
            checkpoint: checkpoint.clone(),
            builder: BatchBuilder::after(checkpoint),
            last: None,
            figures: BatchFigures::default(),
            started: now,
            large: None,
            staged: false,
        }
    }

    /// Whether the batch holds as much as it may.
    pub(crate) fn full(&self, limits: BatchLimits) -> bool {
        limits.full(&self.builder)
    }

    /// How many bytes of records to read next.
    pub(crate) fn read_budget(&self, limits: BatchLimits) -> usize {
        limits.read_budget(&self.builder)
    }

    /// Nothing read yet and no large transaction open: shutdown may interrupt the read.
    pub(crate) fn idle(&self) -> bool {
        self.builder.records() == 0 && self.large.is_none()
    }

    /// How long the next read may wait for a first record, at `now`.
    pub(crate) fn wait(&self, limits: BatchLimits, now: Instant, input_done: bool) -> Duration {
        if input_done {
            // Capture has finished: what the log holds is all there is, do not wait.
            Duration::ZERO
        } else if self.builder.records() == 0 || self.large.is_some() {
            // Nothing yet (or the rest of a large transaction): poll in short steps so
            // shutdown and end of input are noticed.
            IDLE_POLL.min(limits.flush_interval)
        } else {
            limits
                .flush_interval
                .saturating_sub(now.saturating_duration_since(self.started))
        }
    }

    /// Takes `read` into the batch, or says why not.
    pub(crate) fn push(&mut self, read: ReadRecord, limits: BatchLimits) -> Push {
        match LargeTxn::step(self.large.as_ref(), &read.record) {
            Step::Whole => {}
            Step::Starts(txn) => {
                if self.builder.records() > 0 {
                    return Push::Closes(read);
                }
                self.large = Some(txn);
            }
            Step::Continues => {
                if let Some(txn) = self.large.as_mut() {
                    txn.next_part += 1;
                }
            }
            Step::Ends => self.large = None,
            Step::Abandons => {
                // Capture stopped while appending the parts; the source sent the whole
                // transaction again, further on in the log.
                let lsn = self.large.take().map_or(Lsn::ZERO, |t| t.commit_lsn);
                self.builder = BatchBuilder::after(&self.checkpoint);
                self.figures = BatchFigures::default();
                return Push::Abandons {
                    record: read,
                    discard: std::mem::take(&mut self.staged),
                    lsn,
                };
            }
            Step::Stray => return Push::Stray(read),
        }
        self.figures.note(&read.record, &self.checkpoint);
        self.builder.push(read.record);
        self.last = Some(read.position);
        if self.large.is_some() && limits.slice_full(&self.builder) {
            // Bounded memory: apply what is held without committing.
            Push::SliceFull
        } else {
            Push::Taken
        }
    }

    /// Takes `read` into a batch read ahead, while another is applied: only whole records,
    /// only while the batch is not full. Gives `read` back otherwise (it starts the next read).
    pub(crate) fn take_ahead(
        &mut self,
        read: ReadRecord,
        limits: BatchLimits,
    ) -> Result<(), ReadRecord> {
        if LargeTxn::step(None, &read.record) != Step::Whole || self.full(limits) {
            return Err(read);
        }
        self.figures.note(&read.record, &self.checkpoint);
        self.builder.push(read.record);
        self.last = Some(read.position);
        Ok(())
    }

    /// The rows held of the open large transaction, for `apply_part`; the batch goes on
    /// empty, and its end must now commit or discard them.
    pub(crate) fn take_slice(&mut self) -> Batch {
        self.staged = true;
        let builder = std::mem::replace(&mut self.builder, BatchBuilder::after(&self.checkpoint));
        builder.finish(LogPosition::default()).0
    }

    /// What to do after the `got` records of one read were pushed, at `now`.
    pub(crate) fn after_read(
        &self,
        got: usize,
        now: Instant,
        limits: BatchLimits,
        signals: Signals,
    ) -> Next {
        if self.large.is_some() {
            // A batch never ends inside a source transaction.
            if signals.shutdown || (got == 0 && signals.input_done) {
                return Next::Stop {
                    discard: self.staged,
                };
            }
            return Next::Read;
        }
        let holds = self.builder.records() > 0 || self.staged;
        let timed_out = now.saturating_duration_since(self.started) >= limits.flush_interval;
        if self.full(limits) || (holds && (timed_out || got == 0)) {
            return Next::Close;
        }
        if self.builder.records() == 0 && got == 0 {
            if signals.drained {
                // Capture finished before this empty read began: the log is drained.
                return Next::Stop { discard: false };
            }
            if signals.input_done || signals.shutdown {
                return Next::Close;
            }
            return Next::Idle;
        }
        Next::Read
    }

    /// The batch, ending at the last record taken, with the checkpoint after it; `None` when
    /// nothing was taken.
    pub(crate) fn finish(self) -> Option<Filled> {
        let position = self.last?;
        let (batch, checkpoint) = self.builder.finish(position);
        Some(Filled {
            batch,
            checkpoint,
            figures: self.figures,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_core::{
        Change, Column, Op, ParkedTable, RelationSchema, ReplicaIdentity, TableId, Value,
    };

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn limits(max_bytes: usize, max_rows: usize) -> BatchLimits {
        BatchLimits {
            flush_interval: SECOND,
            max_bytes,
            max_rows,
        }
    }

    /// Limits that only time reaches.
    fn roomy() -> BatchLimits {
        limits(1 << 30, 1_000_000)
    }

    fn relation(name: &str) -> Arc<RelationSchema> {
        Arc::new(RelationSchema {
            table: TableId::new("public", name),
            oid: 1,
            version: 1,
            replica_identity: ReplicaIdentity::Default,
            columns: vec![Column {
                name: "id".into(),
                type_oid: 25,
                type_modifier: -1,
                key: true,
                nullable: false,
            }],
        })
    }

    /// `n` inserts into `table`, keys from `first`.
    fn inserts(table: &str, first: usize, n: usize) -> Vec<Change> {
        let relation = relation(table);
        (first..first + n)
            .map(|k| Change {
                relation: relation.clone(),
                op: Op::Insert,
                new: Some(vec![Value::Text(k.to_string())]),
                old: None,
            })
            .collect()
    }

    fn stream(xid: u32, commit: u64, changes: Vec<Change>) -> Transaction {
        Transaction {
            kind: TxnKind::Stream,
            xid,
            commit_lsn: Lsn(commit),
            end_lsn: Lsn(commit + 1),
            commit_ts: commit as i64,
            changes,
        }
    }

    /// A whole streamed transaction of `n` changes to table `t` (with none, exactly 64 bytes).
    fn txn(commit: u64, n: usize) -> LogRecord {
        LogRecord::Transaction(stream(commit as u32, commit, inserts("t", 0, n)))
    }

    /// Part `part` of the large transaction committing at `commit`, one change.
    fn part(commit: u64, part: u32) -> LogRecord {
        LogRecord::TransactionPart {
            part,
            txn: stream(commit as u32, commit, inserts("t", part as usize, 1)),
        }
    }

    /// The record ending the large transaction committing at `commit`, one change.
    fn end(commit: u64) -> LogRecord {
        LogRecord::Transaction(stream(commit as u32, commit, inserts("t", 1000, 1)))
    }

    fn at(record: LogRecord, offset: u64) -> ReadRecord {
        ReadRecord {
            record,
            position: LogPosition::single("0", offset),
        }
    }

    /// A fill after the empty checkpoint, started at the returned instant.
    fn fill() -> (Fill, Instant) {
        let t0 = Instant::now();
        (Fill::after(&Checkpoint::default(), t0), t0)
    }

    fn push(fill: &mut Fill, record: LogRecord, limits: BatchLimits) -> Push {
        fill.push(at(record, 0), limits)
    }

    #[track_caller]
    fn taken(push: Push) {
        assert!(matches!(push, Push::Taken), "{push:?}");
    }

    fn reading() -> Signals {
        Signals::default()
    }

    // When a batch is full.

    #[test]
    fn a_batch_is_full_once_it_holds_max_bytes() {
        let limits = limits(128, 1_000);
        let (mut fill, _) = fill();
        taken(push(&mut fill, txn(10, 0), limits));
        assert!(!fill.full(limits), "64 of 128 bytes");
        taken(push(&mut fill, txn(20, 0), limits));
        assert!(fill.full(limits), "128 of 128 bytes");
    }

    #[test]
    fn a_batch_is_full_once_it_holds_max_rows() {
        let limits = limits(1 << 30, 3);
        let (mut fill, _) = fill();
        taken(push(&mut fill, txn(10, 2), limits));
        assert!(!fill.full(limits), "2 of 3 changes");
        taken(push(&mut fill, txn(20, 1), limits));
        assert!(fill.full(limits), "3 of 3 changes");
    }

    #[test]
    fn a_full_batch_closes_before_its_flush_interval() {
        let limits = limits(1 << 30, 2);
        let (mut fill, t0) = fill();
        taken(push(&mut fill, txn(10, 2), limits));
        assert_eq!(fill.after_read(1, t0, limits, reading()), Next::Close);
    }

    // When a batch closes on time or on an empty read.

    #[test]
    fn a_batch_holding_records_closes_once_the_flush_interval_passed() {
        let (mut fill, t0) = fill();
        taken(push(&mut fill, txn(10, 1), roomy()));
        let early = t0 + SECOND - Duration::from_millis(1);
        assert_eq!(fill.after_read(1, early, roomy(), reading()), Next::Read);
        assert_eq!(
            fill.after_read(1, t0 + SECOND, roomy(), reading()),
            Next::Close
        );
    }

    #[test]
    fn a_batch_holding_records_closes_when_a_read_comes_back_empty() {
        let (mut fill, t0) = fill();
        taken(push(&mut fill, txn(10, 1), roomy()));
        assert_eq!(fill.after_read(0, t0, roomy(), reading()), Next::Close);
    }

    #[test]
    fn an_empty_batch_never_closes_on_time_and_idles() {
        let (fill, t0) = fill();
        let late = t0 + 60 * SECOND;
        assert_eq!(fill.after_read(0, late, roomy(), reading()), Next::Idle);
    }

    #[test]
    fn an_empty_read_stops_the_loader_only_when_the_log_was_drained() {
        let (fill, t0) = fill();
        let ended = Signals {
            input_done: true,
            ..reading()
        };
        let drained = Signals {
            drained: true,
            ..ended
        };
        let stopping = Signals {
            shutdown: true,
            ..reading()
        };
        assert_eq!(
            fill.after_read(0, t0, roomy(), drained),
            Next::Stop { discard: false }
        );
        // Input ended during this batch: one more round, then the log counts as drained.
        assert_eq!(fill.after_read(0, t0, roomy(), ended), Next::Close);
        assert_eq!(fill.after_read(0, t0, roomy(), stopping), Next::Close);
        assert_eq!(
            fill.after_read(1, t0, roomy(), drained),
            Next::Read,
            "records were read: not drained"
        );
    }

    #[test]
    fn the_target_is_pinged_after_two_idle_seconds() {
        assert!(!ping_due(2 * SECOND - Duration::from_millis(1)));
        assert!(ping_due(2 * SECOND));
    }

    #[test]
    fn parked_tables_are_logged_again_every_minute() {
        assert!(!park_reminder_due(59 * SECOND));
        assert!(park_reminder_due(60 * SECOND));
    }

    // How long a read waits and how much it reads.

    #[test]
    fn a_read_waits_for_what_is_left_of_the_flush_interval() {
        let (mut fill, t0) = fill();
        taken(push(&mut fill, txn(10, 1), roomy()));
        let now = t0 + Duration::from_millis(300);
        assert_eq!(fill.wait(roomy(), now, false), Duration::from_millis(700));
        assert_eq!(fill.wait(roomy(), t0 + 2 * SECOND, false), Duration::ZERO);
    }

    #[test]
    fn an_idle_read_polls_in_short_steps() {
        let (mut fill, t0) = fill();
        assert_eq!(fill.wait(roomy(), t0, false), IDLE_POLL);
        let quick = BatchLimits {
            flush_interval: Duration::from_millis(20),
            ..roomy()
        };
        assert_eq!(fill.wait(quick, t0, false), Duration::from_millis(20));
        // The rest of a large transaction is awaited the same way, whatever the time.
        taken(push(&mut fill, part(50, 0), roomy()));
        assert_eq!(fill.wait(roomy(), t0 + 10 * SECOND, false), IDLE_POLL);
    }

    #[test]
    fn nothing_is_waited_for_once_input_ended() {
        let (fill, t0) = fill();
        assert_eq!(fill.wait(roomy(), t0, true), Duration::ZERO);
    }

    #[test]
    fn shutdown_may_interrupt_only_a_read_into_an_empty_batch() {
        let (mut fill, _) = fill();
        assert!(fill.idle());
        taken(push(&mut fill, part(50, 0), roomy()));
        assert!(!fill.idle(), "a large transaction is open");
        let (mut fill, _) = self::fill();
        taken(push(&mut fill, txn(10, 1), roomy()));
        assert!(!fill.idle(), "records are held");
    }

    #[test]
    fn the_read_budget_is_what_the_batch_still_takes() {
        let limits = limits(1000, 1_000);
        let (mut fill, _) = fill();
        assert_eq!(fill.read_budget(limits), 1000);
        taken(push(&mut fill, txn(10, 0), limits));
        assert_eq!(fill.read_budget(limits), 1000 - 64);
    }

    #[test]
    fn the_read_budget_never_exceeds_a_large_transaction_slice() {
        let (fill, _) = fill();
        assert_eq!(fill.read_budget(roomy()), LARGE_TXN_STAGE_BYTES);
    }

    #[test]
    fn the_read_budget_of_a_full_batch_is_one_byte() {
        let limits = limits(100, 1_000);
        let (mut fill, _) = fill();
        taken(push(&mut fill, txn(10, 0), limits));
        taken(push(&mut fill, txn(20, 0), limits));
        assert_eq!(fill.read_budget(limits), 1);
    }

    // Large transactions.

    #[test]
    fn the_first_part_of_a_large_transaction_closes_the_batch_before_it() {
        let (mut fill, _) = fill();
        taken(push(&mut fill, txn(10, 1), roomy()));
        match push(&mut fill, part(50, 0), roomy()) {
            Push::Closes(r) => assert_eq!(r.record, part(50, 0)),
            other => panic!("{other:?}"),
        }
        let filled = fill.finish().expect("the transaction before it");
        assert_eq!(filled.batch.changes, 1);
        assert_eq!(filled.checkpoint.applied_lsn, Lsn(11));
    }

    #[test]
    fn a_large_transaction_is_applied_in_slices_of_the_batch_limits() {
        let limits = limits(1 << 30, 2);
        let (mut fill, _) = fill();
        taken(push(&mut fill, part(50, 0), limits));
        assert!(matches!(
            push(&mut fill, part(50, 1), limits),
            Push::SliceFull
        ));
        let slice = fill.take_slice();
        assert_eq!(slice.changes, 2);
        assert!(fill.builder.records() == 0, "the slice leaves the batch");
        taken(push(&mut fill, part(50, 2), limits));
    }

    #[test]
    fn slices_are_at_most_the_stage_size_whatever_max_batch_bytes() {
        let big = LogRecord::TransactionPart {
            part: 0,
            txn: stream(
                50,
                50,
                vec![Change {
                    relation: relation("t"),
                    op: Op::Insert,
                    new: Some(vec![Value::Text("x".repeat(LARGE_TXN_STAGE_BYTES))]),
                    old: None,
                }],
            ),
        };
        let (mut fill, _) = fill();
        assert!(matches!(push(&mut fill, big, roomy()), Push::SliceFull));
    }

    #[test]
    fn whole_transactions_are_never_sliced() {
        let limits = limits(1 << 30, 2);
        let (mut fill, _) = fill();
        taken(push(&mut fill, txn(10, 5), limits));
    }

    #[test]
    fn a_batch_never_closes_inside_a_large_transaction() {
        let limits = limits(64, 1);
        let (mut fill, t0) = fill();
        let _ = push(&mut fill, part(50, 0), limits);
        let late = t0 + 60 * SECOND;
        assert_eq!(fill.after_read(0, late, limits, reading()), Next::Read);
        assert_eq!(fill.after_read(1, late, limits, reading()), Next::Read);
    }

    #[test]
    fn the_end_record_commits_the_large_transaction() {
        let limits = limits(1 << 30, 2);
        let (mut fill, t0) = fill();
        taken(push(&mut fill, part(50, 0), limits));
        assert!(matches!(
            push(&mut fill, part(50, 1), limits),
            Push::SliceFull
        ));
        let _ = fill.take_slice();
        taken(fill.push(at(end(50), 7), limits));
        assert_eq!(fill.after_read(2, t0, limits, reading()), Next::Read);
        assert_eq!(fill.after_read(0, t0, limits, reading()), Next::Close);
        let filled = fill.finish().expect("the end record");
        assert_eq!(filled.batch.changes, 1, "the parts went in slices");
        assert_eq!(filled.checkpoint.applied_lsn, Lsn(51));
        assert_eq!(filled.checkpoint.position, LogPosition::single("0", 7));
    }

    #[test]
    fn a_part_that_does_not_follow_its_predecessor_discards_what_was_applied() {
        let limits = limits(1 << 30, 2);
        let (mut fill, _) = fill();
        taken(push(&mut fill, part(50, 0), limits));
        assert!(matches!(
            push(&mut fill, part(50, 1), limits),
            Push::SliceFull
        ));
        let _ = fill.take_slice();
        taken(push(&mut fill, part(50, 2), limits));
        // Capture crashed after part 2; the source sent the transaction again from part 0.
        match push(&mut fill, part(50, 0), limits) {
            Push::Abandons {
                record,
                discard,
                lsn,
            } => {
                assert_eq!(record.record, part(50, 0));
                assert!(discard, "a slice was applied");
                assert_eq!(lsn, Lsn(50));
            }
            other => panic!("{other:?}"),
        }
        assert!(fill.idle(), "the batch starts over");
        assert!(fill.figures.changes_per_table().is_empty());
        // The record that abandoned it starts the transaction again.
        taken(push(&mut fill, part(50, 0), limits));
        assert!(!fill.staged, "nothing of the new run is applied yet");
    }

    #[test]
    fn abandoning_a_large_transaction_before_any_slice_discards_nothing() {
        let (mut fill, _) = fill();
        taken(push(&mut fill, part(50, 0), roomy()));
        match push(&mut fill, txn(60, 1), roomy()) {
            Push::Abandons { discard, .. } => assert!(!discard),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn another_transaction_or_a_skipped_part_abandons_the_open_one() {
        for next in [txn(60, 1), part(60, 0), part(50, 2), end(60)] {
            let (mut fill, _) = fill();
            taken(push(&mut fill, part(50, 0), roomy()));
            let pushed = push(&mut fill, next.clone(), roomy());
            assert!(
                matches!(pushed, Push::Abandons { .. }),
                "{next:?}: {pushed:?}"
            );
        }
    }

    #[test]
    fn a_part_without_its_first_part_is_stray() {
        let (mut fill, _) = fill();
        assert!(matches!(
            push(&mut fill, part(50, 1), roomy()),
            Push::Stray(_)
        ));
    }

    #[test]
    fn shutdown_inside_a_large_transaction_stops_and_discards_what_was_applied() {
        let limits = limits(1 << 30, 1);
        let (mut fill, t0) = fill();
        assert!(matches!(
            push(&mut fill, part(50, 0), limits),
            Push::SliceFull
        ));
        let _ = fill.take_slice();
        let stopping = Signals {
            shutdown: true,
            ..reading()
        };
        assert_eq!(
            fill.after_read(1, t0, limits, stopping),
            Next::Stop { discard: true }
        );
    }

    #[test]
    fn input_ending_inside_a_large_transaction_stops_after_an_empty_read() {
        let (mut fill, t0) = fill();
        taken(push(&mut fill, part(50, 0), roomy()));
        let ended = Signals {
            input_done: true,
            ..reading()
        };
        assert_eq!(fill.after_read(1, t0, roomy(), ended), Next::Read);
        assert_eq!(
            fill.after_read(0, t0, roomy(), ended),
            Next::Stop { discard: false },
            "nothing was applied of it"
        );
    }

    // Reading ahead while a batch is applied.

    #[test]
    fn reading_ahead_takes_whole_records_until_the_batch_is_full() {
        let limits = limits(1 << 30, 2);
        let (mut fill, _) = fill();
        assert!(fill.take_ahead(at(txn(10, 1), 1), limits).is_ok());
        assert!(fill.take_ahead(at(txn(20, 1), 2), limits).is_ok());
        let left = fill.take_ahead(at(txn(30, 1), 3), limits);
        assert_eq!(left.map_err(|r| r.record), Err(txn(30, 1)));
        let filled = fill.finish().expect("two records");
        assert_eq!(filled.checkpoint.position, LogPosition::single("0", 2));
    }

    #[test]
    fn reading_ahead_leaves_parts_for_the_next_batch() {
        let (mut fill, _) = fill();
        assert!(fill.take_ahead(at(part(50, 0), 1), roomy()).is_err());
        assert!(fill.take_ahead(at(part(50, 1), 1), roomy()).is_err());
        assert!(fill.finish().is_none());
    }

    // What was loaded before.

    #[test]
    fn streamed_transactions_at_or_below_the_applied_lsn_are_skipped() {
        let checkpoint = Checkpoint {
            applied_lsn: Lsn(31),
            ..Default::default()
        };
        // Committed at 30, ended at 31: applied. The boundary itself, a commit at 31.
        assert!(already_applied(&stream(1, 31, vec![]), &checkpoint));
        assert!(!already_applied(&stream(1, 32, vec![]), &checkpoint));
        let mut fill = Fill::after(&checkpoint, Instant::now());
        for commit in [20, 30, 40] {
            taken(push(&mut fill, txn(commit, 1), roomy()));
        }
        assert_eq!(
            fill.figures.changes_per_table(),
            vec![(TableId::new("public", "t"), 1)],
            "only the transaction committed at 40 counts"
        );
        let filled = fill.finish().expect("records");
        assert_eq!(filled.batch.changes, 1);
        assert_eq!(filled.checkpoint.applied_lsn, Lsn(41));
    }

    #[test]
    fn snapshot_copies_are_never_skipped() {
        let checkpoint = Checkpoint {
            applied_lsn: Lsn(31),
            ..Default::default()
        };
        let mut copy = stream(0, 10, inserts("t", 0, 1));
        copy.kind = TxnKind::Snapshot;
        assert!(!already_applied(&copy, &checkpoint));
        let streamed = stream(0, 10, inserts("t", 0, 1));
        assert!(already_applied(&streamed, &checkpoint));
    }

    #[test]
    fn parked_tables_are_not_counted() {
        let checkpoint = Checkpoint {
            parked: vec![ParkedTable {
                table: TableId::new("public", "t"),
                lsn: Lsn::ZERO,
                reason: "wedged".into(),
            }],
            ..Default::default()
        };
        let mut fill = Fill::after(&checkpoint, Instant::now());
        let mut changes = inserts("t", 0, 1);
        changes.extend(inserts("u", 0, 2));
        taken(push(
            &mut fill,
            LogRecord::Transaction(stream(1, 10, changes)),
            roomy(),
        ));
        assert_eq!(
            fill.figures.changes_per_table(),
            vec![(TableId::new("public", "u"), 2)]
        );
    }

    #[test]
    fn an_empty_batch_finishes_as_nothing() {
        let (fill, _) = fill();
        assert!(fill.finish().is_none());
    }
}
