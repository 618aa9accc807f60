//! Live figures of a running pipeline, shared by its stages and read by whoever reports them
//! (the `/metrics` endpoint, the terminal status line and progress bars, the state file that
//! `sluice status` reads).
//!
//! Stages write with relaxed atomics: every figure is a monotonic counter or a latest value,
//! read as a snapshot that may be a moment old, never used to decide what is durable.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use crate::{Lsn, Op, TableId};

/// The figures of one pipeline run.
#[derive(Debug, Default)]
pub struct Stats {
    /// Transactions and changes appended to the change log by capture (snapshot rows count as
    /// changes).
    pub captured_transactions: AtomicU64,
    pub captured_changes: AtomicU64,
    /// The end LSN of the last transaction known durable in the change log.
    pub captured_lsn: AtomicU64,
    /// The last flush position acknowledged to the source.
    pub confirmed_lsn: AtomicU64,
    /// The source's WAL end as last reported by the server.
    pub source_wal_end: AtomicU64,
    /// Whether capture is connected and streaming (or copying the snapshot).
    pub source_up: AtomicBool,

    /// Changes and batches applied to the target.
    pub applied_changes: AtomicU64,
    pub applied_batches: AtomicU64,
    /// Commit LSN and time (Unix microseconds) of the last transaction applied.
    pub applied_lsn: AtomicU64,
    pub applied_commit_ts: AtomicI64,
    /// Whether the target answered the loader's last request.
    pub target_up: AtomicBool,
    /// Tables the loader has parked (a definite error wedged them).
    pub tables_parked: AtomicU64,

    /// Change-log offsets: the next record to be appended, and the first not yet applied
    /// (both in the log's own units; `None`-like zero until known).
    pub log_next_offset: AtomicU64,
    pub log_applied_offset: AtomicU64,

    /// Per-table figures: snapshot progress and the last applied position.
    tables: Mutex<Vec<TableStats>>,
}

/// What is known about one table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableStats {
    pub table: TableId,
    /// Snapshot rows copied so far, and the planner's estimate of the table's rows.
    pub snapshot_rows: u64,
    pub snapshot_estimate: Option<u64>,
    pub snapshot: SnapshotState,
    /// Changes applied to the target (snapshot rows included).
    pub applied_changes: u64,
    /// Commit LSN and time of the last applied transaction that touched the table.
    pub applied_lsn: Lsn,
    pub applied_commit_ts: i64,
}

/// Where a table's initial copy stands in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotState {
    /// No snapshot of this table in this run.
    None,
    Pending,
    Copying {
        started: Instant,
    },
    Done {
        rows_per_sec: u64,
    },
}

impl Stats {
    /// Records the change count of one captured transaction (or snapshot chunk).
    pub fn captured(&self, changes: u64) {
        self.captured_transactions.fetch_add(1, Ordering::Relaxed);
        self.captured_changes.fetch_add(changes, Ordering::Relaxed);
    }

    /// Sets `field` to `lsn` unless it already holds a later one.
    pub fn advance(field: &AtomicU64, lsn: Lsn) {
        field.fetch_max(lsn.0, Ordering::Relaxed);
    }

    /// Reads an LSN field.
    pub fn lsn(field: &AtomicU64) -> Lsn {
        Lsn(field.load(Ordering::Relaxed))
    }

    /// Announces the tables of a snapshot about to be copied, with row estimates.
    pub fn snapshot_planned(&self, tables: &[(TableId, Option<u64>)]) {
        self.with_tables(|all| {
            for (table, estimate) in tables {
                let entry = entry(all, table);
                entry.snapshot = SnapshotState::Pending;
                entry.snapshot_rows = 0;
                entry.snapshot_estimate = *estimate;
            }
        });
    }

    /// A table's copy began.
    pub fn snapshot_started(&self, table: &TableId) {
        self.with_tables(|all| {
            entry(all, table).snapshot = SnapshotState::Copying {
                started: Instant::now(),
            };
        });
    }

    /// `rows` more rows of a table were copied.
    pub fn snapshot_rows(&self, table: &TableId, rows: u64) {
        self.with_tables(|all| entry(all, table).snapshot_rows += rows);
    }

    /// A table's copy finished.
    pub fn snapshot_done(&self, table: &TableId) {
        self.with_tables(|all| {
            let entry = entry(all, table);
            let rows_per_sec = match entry.snapshot {
                SnapshotState::Copying { started } => {
                    let secs = started.elapsed().as_secs_f64();
                    if secs > 0.0 {
                        (entry.snapshot_rows as f64 / secs) as u64
                    } else {
                        entry.snapshot_rows
                    }
                }
                _ => 0,
            };
            entry.snapshot = SnapshotState::Done { rows_per_sec };
        });
    }

    /// A batch was applied: `per_table` holds each touched table with its change count and the
    /// commit LSN and time of its last change.
    pub fn applied(&self, per_table: &[(TableId, u64, Lsn, i64)], lsn: Lsn, commit_ts: i64) {
        let changes: u64 = per_table.iter().map(|(_, n, _, _)| n).sum();
        self.applied_changes.fetch_add(changes, Ordering::Relaxed);
        self.applied_batches.fetch_add(1, Ordering::Relaxed);
        Stats::advance(&self.applied_lsn, lsn);
        if commit_ts != 0 {
            self.applied_commit_ts.store(commit_ts, Ordering::Relaxed);
        }
        self.with_tables(|all| {
            for (table, n, lsn, ts) in per_table {
                let entry = entry(all, table);
                entry.applied_changes += n;
                entry.applied_lsn = entry.applied_lsn.max(*lsn);
                if *ts != 0 {
                    entry.applied_commit_ts = *ts;
                }
            }
        });
    }

    /// The loader's position in the change log moved to `position` (records before it are
    /// applied). Record-numbered logs (the local one) give their depth in records from this.
    pub fn log_released(&self, position: &crate::LogPosition) {
        let offset: u64 = position
            .partitions
            .values()
            .filter_map(|v| v.parse::<u64>().ok())
            .sum();
        self.log_applied_offset.store(offset, Ordering::Relaxed);
    }

    /// A copy of the per-table figures, in the order tables were first seen.
    pub fn tables(&self) -> Vec<TableStats> {
        self.tables.lock().map(|t| t.clone()).unwrap_or_default()
    }

    fn with_tables(&self, f: impl FnOnce(&mut Vec<TableStats>)) {
        // A poisoned lock only means a reporter panicked: the figures are still usable.
        let mut guard = match self.tables.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard);
    }
}

/// Changes counted per table and operation between two reports (for labelled counters).
#[derive(Debug, Default)]
pub struct OpCounts {
    counts: Vec<(TableId, [u64; 4])>,
}

impl OpCounts {
    pub fn add(&mut self, table: &TableId, op: Op, n: u64) {
        let i = match self.counts.iter().position(|(t, _)| t == table) {
            Some(i) => i,
            None => {
                self.counts.push((table.clone(), [0; 4]));
                self.counts.len() - 1
            }
        };
        self.counts[i].1[op_index(op)] += n;
    }

    /// The non-zero counts as `(table, op, n)`, leaving the counter empty.
    pub fn drain(&mut self) -> impl Iterator<Item = (TableId, Op, u64)> + '_ {
        self.counts.drain(..).flat_map(|(table, counts)| {
            [Op::Insert, Op::Update, Op::Delete, Op::Truncate]
                .into_iter()
                .zip(counts)
                .filter(|(_, n)| *n > 0)
                .map(move |(op, n)| (table.clone(), op, n))
        })
    }
}

fn op_index(op: Op) -> usize {
    match op {
        Op::Insert => 0,
        Op::Update => 1,
        Op::Delete => 2,
        Op::Truncate => 3,
    }
}

/// This machine's clock as Unix microseconds (0 before 1970).
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// The `table` label of a table in metrics and state: `schema.name`, unquoted.
pub fn table_label(table: &TableId) -> String {
    format!("{}.{}", table.schema, table.name)
}

/// The `op` label of an operation in metrics.
pub fn op_label(op: Op) -> &'static str {
    match op {
        Op::Insert => "insert",
        Op::Update => "update",
        Op::Delete => "delete",
        Op::Truncate => "truncate",
    }
}

fn entry<'a>(all: &'a mut Vec<TableStats>, table: &TableId) -> &'a mut TableStats {
    let i = match all.iter().position(|t| &t.table == table) {
        Some(i) => i,
        None => {
            all.push(TableStats {
                table: table.clone(),
                snapshot_rows: 0,
                snapshot_estimate: None,
                snapshot: SnapshotState::None,
                applied_changes: 0,
                applied_lsn: Lsn::ZERO,
                applied_commit_ts: 0,
            });
            all.len() - 1
        }
    };
    &mut all[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applied_batches_accumulate_per_table() {
        let stats = Stats::default();
        let a = TableId::new("public", "a");
        let b = TableId::new("public", "b");
        stats.applied(&[(a.clone(), 3, Lsn(10), 100)], Lsn(12), 100);
        stats.applied(
            &[(a.clone(), 2, Lsn(20), 200), (b.clone(), 1, Lsn(18), 190)],
            Lsn(22),
            200,
        );
        let tables = stats.tables();
        assert_eq!(tables.len(), 2);
        assert_eq!(
            (tables[0].applied_changes, tables[0].applied_lsn),
            (5, Lsn(20))
        );
        assert_eq!(tables[0].applied_commit_ts, 200);
        assert_eq!(
            (tables[1].applied_changes, tables[1].applied_lsn),
            (1, Lsn(18))
        );
        assert_eq!(stats.applied_changes.load(Ordering::Relaxed), 6);
        assert_eq!(Stats::lsn(&stats.applied_lsn), Lsn(22));
    }

    #[test]
    fn snapshot_progress_moves_through_its_states() {
        let stats = Stats::default();
        let t = TableId::new("public", "t");
        stats.snapshot_planned(&[(t.clone(), Some(1000))]);
        assert_eq!(stats.tables()[0].snapshot, SnapshotState::Pending);
        stats.snapshot_started(&t);
        stats.snapshot_rows(&t, 400);
        stats.snapshot_rows(&t, 600);
        assert!(matches!(
            stats.tables()[0].snapshot,
            SnapshotState::Copying { .. }
        ));
        assert_eq!(stats.tables()[0].snapshot_rows, 1000);
        stats.snapshot_done(&t);
        assert!(matches!(
            stats.tables()[0].snapshot,
            SnapshotState::Done { .. }
        ));
        assert_eq!(stats.tables()[0].snapshot_estimate, Some(1000));
    }

    #[test]
    fn op_counts_drain_per_table_and_op() {
        let mut counts = OpCounts::default();
        let a = TableId::new("public", "a");
        let b = TableId::new("public", "b");
        counts.add(&a, Op::Insert, 2);
        counts.add(&b, Op::Delete, 1);
        counts.add(&a, Op::Insert, 1);
        counts.add(&a, Op::Update, 4);
        let drained: Vec<_> = counts.drain().collect();
        assert_eq!(
            drained,
            vec![
                (a.clone(), Op::Insert, 3),
                (a, Op::Update, 4),
                (b, Op::Delete, 1)
            ]
        );
        assert_eq!(counts.drain().count(), 0);
    }

    #[test]
    fn positions_never_move_back() {
        let stats = Stats::default();
        Stats::advance(&stats.confirmed_lsn, Lsn(50));
        Stats::advance(&stats.confirmed_lsn, Lsn(40));
        assert_eq!(Stats::lsn(&stats.confirmed_lsn), Lsn(50));
    }
}
