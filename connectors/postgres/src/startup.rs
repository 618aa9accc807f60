//! Capture's start-up decision: from the slot and the change log's last record, what to do
//! before streaming. Pure; [`crate::capture`] gathers the facts and carries the action out.
//!
//! | slot | last record in the change log | action |
//! |---|---|---|
//! | none | none, or snapshot unfinished | create the slot, snapshot, stream |
//! | exists | snapshot unfinished, matching chunk ledger, no unfinished keyless table | keep the slot, copy the unfinished chunks under a temporary slot's snapshot, stream |
//! | exists | none, or snapshot unfinished otherwise | drop and re-create the slot, snapshot again, stream |
//! | exists | snapshot end, a streamed transaction, or parts of one | stream from the slot's confirmed position |
//! | none | snapshot end, a streamed transaction, or parts of one | stop: changes may have been lost |

use sluice_core::{LastAppended, TxnKind};

/// What the change log ends with, as far as start-up cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogEnd {
    /// An empty log.
    Nothing,
    /// `SnapshotBegin` or a snapshot chunk: the snapshot was interrupted.
    UnfinishedSnapshot,
    /// `SnapshotEnd` or a streamed transaction.
    Streamed,
    /// Part of a source transaction whose ending record is not in the log.
    Parts,
}

impl LogEnd {
    /// Classifies the log's last record.
    pub fn of(last: Option<LastAppended>) -> LogEnd {
        match last {
            None => LogEnd::Nothing,
            Some(LastAppended::SnapshotBegin { .. })
            | Some(LastAppended::Transaction {
                kind: TxnKind::Snapshot,
                ..
            }) => LogEnd::UnfinishedSnapshot,
            Some(LastAppended::SnapshotEnd { .. })
            | Some(LastAppended::Transaction {
                kind: TxnKind::Stream,
                ..
            }) => LogEnd::Streamed,
            Some(LastAppended::TransactionPart { .. }) => LogEnd::Parts,
        }
    }

    /// Whether the initial snapshot is complete in the log (and the publication must already
    /// hold every captured table).
    pub fn snapshot_done(self) -> bool {
        matches!(self, LogEnd::Streamed | LogEnd::Parts)
    }
}

/// What capture does before it streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Startup {
    /// Create the slot with an exported snapshot, copy every table, stream.
    Snapshot,
    /// Keep the slot, copy the chunks the ledger does not mark done under a temporary slot's
    /// snapshot, stream.
    ResumeSnapshot,
    /// Drop the slot, create it again, copy every table, stream.
    RecreateAndSnapshot,
    /// Stream from the slot's confirmed position.
    Stream,
    /// Stop: the log holds changes from a slot that is gone, so changes may have been lost.
    SlotLost,
}

/// The start-up action. `resumable_ledger`: the chunk ledger describes the unfinished snapshot
/// the log ends in and the slot's position, and has no unfinished table without a key (only
/// looked at when the slot exists and the log ends inside a snapshot).
pub(crate) fn decide(slot_exists: bool, log_end: LogEnd, resumable_ledger: bool) -> Startup {
    match (slot_exists, log_end) {
        (false, LogEnd::Nothing | LogEnd::UnfinishedSnapshot) => Startup::Snapshot,
        (false, LogEnd::Streamed | LogEnd::Parts) => Startup::SlotLost,
        (true, LogEnd::UnfinishedSnapshot) if resumable_ledger => Startup::ResumeSnapshot,
        (true, LogEnd::Nothing | LogEnd::UnfinishedSnapshot) => Startup::RecreateAndSnapshot,
        (true, LogEnd::Streamed | LogEnd::Parts) => Startup::Stream,
    }
}

#[cfg(test)]
mod tests {
    use sluice_core::Lsn;

    use super::*;

    const ALL_ENDS: [LogEnd; 4] = [
        LogEnd::Nothing,
        LogEnd::UnfinishedSnapshot,
        LogEnd::Streamed,
        LogEnd::Parts,
    ];

    #[test]
    fn no_slot_and_an_empty_log_creates_the_slot_and_snapshots() {
        for ledger in [false, true] {
            assert_eq!(decide(false, LogEnd::Nothing, ledger), Startup::Snapshot);
        }
    }

    #[test]
    fn no_slot_and_an_unfinished_snapshot_starts_the_snapshot_over_with_a_new_slot() {
        for ledger in [false, true] {
            assert_eq!(
                decide(false, LogEnd::UnfinishedSnapshot, ledger),
                Startup::Snapshot
            );
        }
    }

    #[test]
    fn slot_and_an_unfinished_snapshot_with_a_matching_ledger_resumes_the_chunks() {
        assert_eq!(
            decide(true, LogEnd::UnfinishedSnapshot, true),
            Startup::ResumeSnapshot
        );
    }

    #[test]
    fn slot_and_an_unfinished_snapshot_without_a_matching_ledger_recreates_the_slot() {
        assert_eq!(
            decide(true, LogEnd::UnfinishedSnapshot, false),
            Startup::RecreateAndSnapshot
        );
    }

    #[test]
    fn slot_and_an_empty_log_recreates_the_slot() {
        for ledger in [false, true] {
            assert_eq!(
                decide(true, LogEnd::Nothing, ledger),
                Startup::RecreateAndSnapshot
            );
        }
    }

    #[test]
    fn slot_and_a_finished_snapshot_or_streamed_transaction_streams() {
        for ledger in [false, true] {
            assert_eq!(decide(true, LogEnd::Streamed, ledger), Startup::Stream);
        }
    }

    #[test]
    fn slot_and_a_log_ending_in_parts_streams() {
        for ledger in [false, true] {
            assert_eq!(decide(true, LogEnd::Parts, ledger), Startup::Stream);
        }
    }

    #[test]
    fn no_slot_and_streamed_changes_in_the_log_stops_because_changes_may_be_lost() {
        for end in [LogEnd::Streamed, LogEnd::Parts] {
            for ledger in [false, true] {
                assert_eq!(decide(false, end, ledger), Startup::SlotLost, "{end:?}");
            }
        }
    }

    #[test]
    fn only_an_existing_slot_with_an_unfinished_snapshot_looks_at_the_ledger() {
        for slot in [false, true] {
            for end in ALL_ENDS {
                let looks = decide(slot, end, true) != decide(slot, end, false);
                assert_eq!(looks, slot && end == LogEnd::UnfinishedSnapshot);
            }
        }
    }

    #[test]
    fn the_last_record_classifies_the_log_end() {
        let cases = [
            (None, LogEnd::Nothing),
            (
                Some(LastAppended::SnapshotBegin {
                    consistent_point: Lsn(0x100),
                }),
                LogEnd::UnfinishedSnapshot,
            ),
            (
                Some(LastAppended::Transaction {
                    kind: TxnKind::Snapshot,
                    commit_lsn: Lsn(0xFF),
                    end_lsn: Lsn(0xFF),
                }),
                LogEnd::UnfinishedSnapshot,
            ),
            (
                Some(LastAppended::SnapshotEnd {
                    consistent_point: Lsn(0x100),
                }),
                LogEnd::Streamed,
            ),
            (
                Some(LastAppended::Transaction {
                    kind: TxnKind::Stream,
                    commit_lsn: Lsn(0x200),
                    end_lsn: Lsn(0x210),
                }),
                LogEnd::Streamed,
            ),
            (
                Some(LastAppended::TransactionPart {
                    commit_lsn: Lsn(0x300),
                }),
                LogEnd::Parts,
            ),
        ];
        for (last, end) in cases {
            assert_eq!(LogEnd::of(last), end, "{last:?}");
        }
    }

    #[test]
    fn the_snapshot_is_done_once_the_log_holds_its_end_or_streamed_changes() {
        assert!(!LogEnd::Nothing.snapshot_done());
        assert!(!LogEnd::UnfinishedSnapshot.snapshot_done());
        assert!(LogEnd::Streamed.snapshot_done());
        assert!(LogEnd::Parts.snapshot_done());
    }
}
