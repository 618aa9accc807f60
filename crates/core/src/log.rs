//! The change log contract: a partitioned, ordered, durable log between capture and loader.
//!
//! Capture appends [`LogRecord`]s through a [`ChangeLogWriter`]; a loader reads them back
//! through a [`ChangeLogReader`] and stores the reader's [`LogPosition`] in the destination,
//! in the same transaction as the data it applied. The contract fits a single local directory
//! (one partition) as well as a Kinesis stream (one partition per shard, records routed by
//! table and key, frontier markers on every shard so the reader knows when a commit is
//! complete across shards).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Classify, LogRecord, Lsn, TxnKind};

/// A reader's position: for every partition, an offset opaque to everyone but the log that
/// issued it (a record number for the local log, a sequence number for Kinesis). The position
/// points just after the last record consumed. An absent partition means "from the start of
/// what is retained".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPosition {
    pub partitions: BTreeMap<String, String>,
}

impl LogPosition {
    /// A position of a single partition.
    pub fn single(partition: impl Into<String>, offset: impl ToString) -> Self {
        let mut partitions = BTreeMap::new();
        partitions.insert(partition.into(), offset.to_string());
        LogPosition { partitions }
    }
}

/// What capture needs to know about the last record it durably appended, to resume after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastAppended {
    /// A transaction record (stream or snapshot chunk).
    Transaction {
        kind: TxnKind,
        commit_lsn: Lsn,
        end_lsn: Lsn,
    },
    /// A part of a source transaction whose last record may not have been appended.
    TransactionPart {
        commit_lsn: Lsn,
    },
    SnapshotBegin {
        consistent_point: Lsn,
    },
    SnapshotEnd {
        consistent_point: Lsn,
    },
}

impl LastAppended {
    /// Summarises a record.
    pub fn of(record: &LogRecord) -> Self {
        match record {
            LogRecord::Transaction(t) => LastAppended::Transaction {
                kind: t.kind,
                commit_lsn: t.commit_lsn,
                end_lsn: t.end_lsn,
            },
            LogRecord::TransactionPart { txn, .. } => LastAppended::TransactionPart {
                commit_lsn: txn.commit_lsn,
            },
            LogRecord::SnapshotBegin {
                consistent_point, ..
            } => LastAppended::SnapshotBegin {
                consistent_point: *consistent_point,
            },
            LogRecord::SnapshotEnd { consistent_point } => LastAppended::SnapshotEnd {
                consistent_point: *consistent_point,
            },
        }
    }
}

/// The writing half, used by capture.
///
/// - **Ordering**: records are read back in append order within a partition, and a reader
///   never sees a later transaction of a key before an earlier one.
/// - **Durability**: when `append` returns `Ok`, every record passed is durable (fsynced for
///   the local log; acknowledged by the service for Kinesis) and will be read back after any
///   crash. Capture acknowledges the source only up to records that `append` has returned for.
/// - **At-least-once**: after a failed or interrupted `append`, some of the records may be
///   durable; capture resumes after [`ChangeLogWriter::last_appended`] so a record is never
///   appended twice by a correct capture, and loaders tolerate duplicates anyway.
/// - **Concurrency**: one writer per log at a time; `append` takes `&mut self`.
/// - **Cancellation**: not cancellation safe; do not drop an `append` future mid-way and then
///   append again without reopening.
pub trait ChangeLogWriter: Send {
    type Error: std::error::Error + Classify + Send + Sync + 'static;

    /// Appends `records` in order and returns once all of them are durable.
    fn append(
        &mut self,
        records: &[LogRecord],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// The last record durably appended: found when the log was opened, updated by `append`.
    fn last_appended(&self) -> Option<LastAppended>;
}

/// A record read back, with the reader's position just after it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadRecord {
    pub record: LogRecord,
    pub position: LogPosition,
}

/// The reading half, used by a loader.
///
/// - **Ordering**: `read` returns records in commit order; a transaction is returned whole
///   (never split across calls) and only once every partition has what it needs of it.
/// - **Positions**: each returned record carries the position just after it; storing that
///   position and later calling `seek` with it resumes with the next record.
/// - **Retention**: records before a position passed to `release` may be deleted. A log never
///   deletes what a reader has not released. Seeking to a position whose next record is no
///   longer retained fails (in `seek`, or at the latest in the next `read`); a reader never
///   skips ahead to the oldest retained record.
/// - **Corruption**: a damaged record is an error naming where it is; it is never skipped.
/// - **Cancellation**: `read` is cancellation safe (dropping it loses nothing).
pub trait ChangeLogReader: Send {
    type Error: std::error::Error + Classify + Send + Sync + 'static;

    /// Positions the reader just after `position` (as stored by a loader).
    fn seek(
        &mut self,
        position: &LogPosition,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Returns the next records, stopping once their total size ([`LogRecord::size`], the
    /// in-memory estimate loaders budget with) reaches `max_bytes` (but always at least one
    /// record when one is available). Waits up to `wait` for a first
    /// record; returns an empty vector when none arrived in that time.
    fn read(
        &mut self,
        max_bytes: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<ReadRecord>, Self::Error>> + Send;

    /// Declares that everything before `position` is durably applied downstream.
    fn release(
        &mut self,
        position: &LogPosition,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}
