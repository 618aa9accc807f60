//! What the loader reports: per batch, the figures noted while its records were read (metrics
//! and the shared [`Stats`]), and the errors it handled itself (a parked table's).

use std::sync::atomic::Ordering;
use std::time::Duration;

use sluice_core::telemetry::{OpCounts, Stats, now_micros, op_label, table_label};
use sluice_core::{Checkpoint, ErrorClass, LogRecord, Lsn, TableId, TxnKind};

use crate::fill::already_applied;

/// What a batch carried, noted as its records are read, for metrics and per-table figures.
#[derive(Default)]
pub(crate) struct BatchFigures {
    counts: OpCounts,
    /// Per table: changes, and the commit LSN and time of its last change.
    tables: Vec<(TableId, u64, Lsn, i64)>,
    /// Commit times of the streamed transactions (snapshot copies have no source commit).
    commit_times: Vec<i64>,
}

impl BatchFigures {
    /// Notes a record read after `checkpoint` (what is at or below its applied position was
    /// loaded before, and parked tables are not loaded).
    pub(crate) fn note(&mut self, record: &LogRecord, checkpoint: &Checkpoint) {
        let (txn, last) = match record {
            LogRecord::Transaction(txn) => (txn, true),
            LogRecord::TransactionPart { txn, .. } => (txn, false),
            _ => return,
        };
        if already_applied(txn, checkpoint) {
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

    /// Changes noted per table, in the order the tables were first seen.
    #[cfg(test)]
    pub(crate) fn changes_per_table(&self) -> Vec<(TableId, u64)> {
        self.tables
            .iter()
            .map(|(t, n, ..)| (t.clone(), *n))
            .collect()
    }

    /// Reports an applied batch: metrics, and the shared figures.
    pub(crate) fn report(
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

/// Counts an error the loader handled itself (it parked a table), as the binary counts the
/// errors its supervisors handle: `sluice_errors_total` by stage and class.
pub(crate) fn count_error(stage: &'static str, class: ErrorClass) {
    let class = match class {
        ErrorClass::Transient => "transient",
        ErrorClass::Definite => "definite",
        ErrorClass::Fatal => "fatal",
    };
    metrics::counter!("sluice_errors_total", "stage" => stage, "class" => class).increment(1);
}
