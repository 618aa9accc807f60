//! Transaction assembly: the changes between Begin and Commit become a transaction record (cut
//! into parts when they outgrow [`TXN_PART_BYTES`]), and records wait in a [`Group`] to be
//! appended together, one fsync per group.

use sluice_core::telemetry::{OpCounts, Stats, op_label, table_label};
use sluice_core::{Change, LogRecord, Lsn, Transaction, TxnKind};
use sluice_pgoutput::Begin;

use crate::capture::{GROUP_BYTES, TXN_PART_BYTES};

/// A transaction between its Begin and its Commit.
pub(super) struct OpenTxn {
    xid: u32,
    /// Position of its commit record (known from `Begin`).
    commit_lsn: Lsn,
    commit_ts: i64,
    changes: Vec<Change>,
    bytes: usize,
    /// Parts already handed to the change log.
    parts: u32,
    /// Already in the change log (re-sent after a restart): its changes are dropped.
    pub(super) skip: bool,
}

impl OpenTxn {
    pub(super) fn begin(b: &Begin, skip: bool) -> OpenTxn {
        OpenTxn {
            xid: b.xid,
            commit_lsn: b.final_lsn,
            commit_ts: sluice_pgoutput::time::pg_to_unix_micros(b.commit_ts).unwrap_or(0),
            changes: Vec::new(),
            bytes: 0,
            parts: 0,
            skip,
        }
    }

    /// Adds a change; returns a part for the change log once the changes held reach
    /// [`TXN_PART_BYTES`].
    pub(super) fn push(&mut self, change: Change) -> Option<LogRecord> {
        if self.skip {
            return None;
        }
        self.bytes += change.size();
        self.changes.push(change);
        if self.bytes < TXN_PART_BYTES {
            return None;
        }
        let part = LogRecord::TransactionPart {
            part: self.parts,
            txn: Transaction {
                kind: TxnKind::Stream,
                xid: self.xid,
                commit_lsn: self.commit_lsn,
                // Known once the commit arrives.
                end_lsn: Lsn::ZERO,
                commit_ts: self.commit_ts,
                changes: std::mem::take(&mut self.changes),
            },
        };
        self.parts += 1;
        self.bytes = 0;
        Some(part)
    }

    /// Whether it holds nothing of ours (no change, no part).
    pub(super) fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.parts == 0
    }

    /// The transaction's record (it ends its parts, if any).
    pub(super) fn finish(self, commit_lsn: Lsn, end_lsn: Lsn) -> Transaction {
        Transaction {
            kind: TxnKind::Stream,
            xid: self.xid,
            commit_lsn,
            end_lsn,
            commit_ts: self.commit_ts,
            changes: self.changes,
        }
    }
}

/// Records waiting to be appended together.
#[derive(Default)]
pub(super) struct Group {
    records: Vec<LogRecord>,
    bytes: usize,
    /// Change counts of the records, for the figures once they are appended.
    changes: Vec<u64>,
    /// Changes per table and operation, likewise.
    counts: OpCounts,
}

impl Group {
    /// Adds a transaction record (or a part of one); returns its number of changes.
    pub(super) fn queue(&mut self, record: LogRecord) -> u64 {
        let (LogRecord::Transaction(txn) | LogRecord::TransactionPart { txn, .. }) = &record else {
            return 0;
        };
        let changes = txn.changes.len() as u64;
        self.bytes += txn.size();
        for change in &txn.changes {
            self.counts.add(&change.relation.table, change.op, 1);
        }
        self.changes.push(changes);
        self.records.push(record);
        changes
    }

    pub(super) fn records(&self) -> &[LogRecord] {
        &self.records
    }

    pub(super) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Whether the group is big enough to append now.
    pub(super) fn full(&self) -> bool {
        self.bytes >= GROUP_BYTES
    }

    /// The group was appended: counts it in `stats` and the metrics, and empties it.
    pub(super) fn appended(&mut self, stats: &Stats) {
        for changes in self.changes.drain(..) {
            stats.captured(changes);
        }
        let transactions = self
            .records
            .iter()
            .filter(|r| matches!(r, LogRecord::Transaction(_)))
            .count();
        metrics::counter!("sluice_transactions_captured_total").increment(transactions as u64);
        metrics::counter!("sluice_captured_bytes_total").increment(self.bytes as u64);
        for (table, op, n) in self.counts.drain() {
            metrics::counter!("sluice_changes_captured_total", "table" => table_label(&table), "op" => op_label(op))
                .increment(n);
        }
        self.records.clear();
        self.bytes = 0;
    }
}
