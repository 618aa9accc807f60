//! The progress rule: which position capture acknowledges to the server, and which re-sent
//! transactions it skips after a restart. Pure: the streamer feeds it what happened and asks
//! it what to send; nothing here does I/O.
//!
//! - The flush LSN is the end LSN of the last transaction whose record `append` has returned
//!   for, or, while nothing is in flight ([`InFlight::nothing`]: no transaction between Begin
//!   and Commit, no streamed transaction open, no record waiting to be appended), the server's
//!   latest keepalive position, so the slot follows WAL that does not concern the publication.
//! - It never moves backwards and is never `+1`: it is always an end LSN or a server position.
//! - Parts of a transaction acknowledge nothing: only its ending record does.
//! - While a streamed transaction is open (protocol 2), keepalive positions are not
//!   acknowledged: they lie past changes that are only in a spill file.
//! - On restart the server resends transactions after the slot's confirmed position; those
//!   that end at or below the last streamed transaction in the log are skipped. When the log
//!   ends with parts, the transactions committed before theirs are skipped and theirs comes
//!   again whole.

use sluice_core::{LastAppended, LogRecord, Lsn, TxnKind};

/// What capture holds that is not yet durable in the change log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct InFlight {
    /// A transaction between its Begin and its Commit.
    pub transaction: bool,
    /// A transaction the server streams before its commit, not yet committed or aborted.
    pub streamed: bool,
    /// Decoded records waiting to be appended.
    pub pending: bool,
}

impl InFlight {
    /// Nothing in flight: the server's position may be acknowledged.
    pub fn nothing(self) -> bool {
        !(self.transaction || self.streamed || self.pending)
    }
}

/// Capture's position: what is durable, what the server said, what was acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Progress {
    /// End LSN of the last transaction known durable in the log.
    durable: Lsn,
    /// The server's latest position with nothing of ours before it (keepalives, and commits of
    /// transactions that touched no captured table).
    server_end: Lsn,
    /// The last flush position sent to the server.
    confirmed: Lsn,
    /// Transactions ending at or below this are in the log already (restart skip rule).
    skip_through: Lsn,
}

impl Progress {
    /// The progress of a capture whose change log ends with `last` (streaming from an
    /// existing slot; after a snapshot, `last` is its end and nothing is skipped).
    pub fn resuming_after(last: Option<LastAppended>) -> Progress {
        let skip_through = match last {
            Some(LastAppended::Transaction {
                kind: TxnKind::Stream,
                end_lsn,
                ..
            }) => end_lsn,
            // Part of a transaction whose end never made it to the log: everything before that
            // transaction is in the log; it comes again whole.
            Some(LastAppended::TransactionPart { commit_lsn }) => commit_lsn,
            _ => Lsn::ZERO,
        };
        Progress {
            durable: skip_through,
            server_end: Lsn::ZERO,
            confirmed: Lsn::ZERO,
            skip_through,
        }
    }

    /// `append` returned for `records`: the last transaction among them is durable. Parts
    /// acknowledge nothing.
    pub fn appended(&mut self, records: &[LogRecord]) {
        let last_end = records.iter().rev().find_map(|r| match r {
            LogRecord::Transaction(t) => Some(t.end_lsn),
            _ => None,
        });
        if let Some(end) = last_end {
            self.durable = self.durable.max(end);
        }
    }

    /// The server reported its WAL end in a keepalive.
    pub fn keepalive(&mut self, wal_end: Lsn) {
        self.server_end = self.server_end.max(wal_end);
    }

    /// A transaction that touched no captured table ended at `end_lsn`: its position counts
    /// as received, like a keepalive's.
    pub fn passed_over(&mut self, end_lsn: Lsn) {
        self.server_end = self.server_end.max(end_lsn);
    }

    /// The flush LSN to send in a standby status update now.
    pub fn flush_lsn(&self, in_flight: InFlight) -> Lsn {
        let position = if in_flight.nothing() {
            self.durable.max(self.server_end)
        } else {
            self.durable
        };
        position.max(self.confirmed)
    }

    /// Whether the rule allows acknowledging more than was last sent.
    pub fn ahead_of_confirmed(&self, in_flight: InFlight) -> bool {
        self.flush_lsn(in_flight) > self.confirmed
    }

    /// A status update with flush LSN `lsn` was sent.
    pub fn sent(&mut self, lsn: Lsn) {
        self.confirmed = self.confirmed.max(lsn);
    }

    /// The last flush LSN sent.
    pub fn confirmed(&self) -> Lsn {
        self.confirmed
    }

    /// The end LSN of the last transaction durable in the log.
    pub fn durable(&self) -> Lsn {
        self.durable
    }

    /// Whether everything up to `target` is durable or passed over, with nothing in flight
    /// (`--until-caught-up` on servers without logical messages).
    pub fn reached(&self, target: Lsn, in_flight: InFlight) -> bool {
        in_flight.nothing() && self.durable.max(self.server_end) >= target
    }

    /// Whether a transaction committing at `commit_lsn` is in the log already, as far as its
    /// Begin tells: it committed before the last transaction of the log.
    pub fn skips_from_begin(&self, commit_lsn: Lsn) -> bool {
        commit_lsn < self.skip_through
    }

    /// Whether a transaction ending at `end_lsn` is in the log already.
    pub fn skips_end(&self, end_lsn: Lsn) -> bool {
        end_lsn <= self.skip_through
    }

    /// Whether a transaction committing at `commit_lsn` and ending at `end_lsn` is in the log
    /// already.
    pub fn skips(&self, commit_lsn: Lsn, end_lsn: Lsn) -> bool {
        self.skips_end(end_lsn) || self.skips_from_begin(commit_lsn)
    }
}

#[cfg(test)]
mod tests {
    use sluice_core::Transaction;

    use super::*;

    const NOTHING: InFlight = InFlight {
        transaction: false,
        streamed: false,
        pending: false,
    };
    const STREAMED_OPEN: InFlight = InFlight {
        streamed: true,
        ..NOTHING
    };

    fn txn(commit: u64, end: u64) -> Transaction {
        Transaction {
            kind: TxnKind::Stream,
            xid: 7,
            commit_lsn: Lsn(commit),
            end_lsn: Lsn(end),
            commit_ts: 0,
            changes: Vec::new(),
        }
    }

    fn record(commit: u64, end: u64) -> LogRecord {
        LogRecord::Transaction(txn(commit, end))
    }

    /// A part as a Stream Commit writes it: it carries the transaction's end LSN.
    fn part(commit: u64, end: u64) -> LogRecord {
        LogRecord::TransactionPart {
            part: 0,
            txn: txn(commit, end),
        }
    }

    fn fresh() -> Progress {
        Progress::resuming_after(None)
    }

    #[test]
    fn a_fresh_capture_acknowledges_nothing() {
        assert_eq!(fresh().flush_lsn(NOTHING), Lsn::ZERO);
        assert!(!fresh().ahead_of_confirmed(NOTHING));
    }

    #[test]
    fn flush_lsn_is_the_end_of_the_last_appended_transaction_exactly() {
        let mut p = fresh();
        p.appended(&[record(0x100, 0x110), record(0x200, 0x210)]);
        let busy = InFlight {
            transaction: true,
            ..NOTHING
        };
        assert_eq!(p.flush_lsn(busy), Lsn(0x210), "the end LSN, never +1");
        assert!(p.ahead_of_confirmed(busy));
    }

    #[test]
    fn parts_acknowledge_nothing() {
        let mut p = fresh();
        p.appended(&[record(0x100, 0x110)]);
        p.appended(&[part(0x300, 0x310), part(0x300, 0x310)]);
        assert_eq!(p.flush_lsn(NOTHING), Lsn(0x110));
        assert_eq!(p.durable(), Lsn(0x110));
    }

    #[test]
    fn the_transaction_ending_a_run_of_parts_acknowledges_its_end() {
        let mut p = fresh();
        p.appended(&[part(0x300, 0x310), record(0x300, 0x310), part(0x400, 0x410)]);
        assert_eq!(p.flush_lsn(NOTHING), Lsn(0x310));
    }

    #[test]
    fn keepalive_is_acknowledged_while_nothing_is_in_flight() {
        let mut p = fresh();
        p.appended(&[record(0x100, 0x110)]);
        p.keepalive(Lsn(0x500));
        assert_eq!(p.flush_lsn(NOTHING), Lsn(0x500));
    }

    #[test]
    fn keepalive_is_not_acknowledged_while_a_transaction_is_open() {
        let mut p = fresh();
        p.appended(&[record(0x100, 0x110)]);
        p.keepalive(Lsn(0x500));
        let open = InFlight {
            transaction: true,
            ..NOTHING
        };
        assert_eq!(p.flush_lsn(open), Lsn(0x110));
    }

    #[test]
    fn keepalive_is_not_acknowledged_while_records_wait_to_be_appended() {
        let mut p = fresh();
        p.appended(&[record(0x100, 0x110)]);
        p.keepalive(Lsn(0x500));
        let pending = InFlight {
            pending: true,
            ..NOTHING
        };
        assert_eq!(p.flush_lsn(pending), Lsn(0x110));
    }

    #[test]
    fn keepalive_is_not_acknowledged_while_a_streamed_transaction_is_open() {
        let mut p = fresh();
        p.appended(&[record(0x100, 0x110)]);
        p.keepalive(Lsn(0x500));
        assert_eq!(p.flush_lsn(STREAMED_OPEN), Lsn(0x110));
        p.sent(Lsn(0x110));
        assert!(!p.ahead_of_confirmed(STREAMED_OPEN));
        // Once it commits or aborts, the keepalive counts.
        assert_eq!(p.flush_lsn(NOTHING), Lsn(0x500));
    }

    #[test]
    fn a_transaction_with_nothing_captured_counts_as_received_when_idle() {
        let mut p = fresh();
        p.appended(&[record(0x100, 0x110)]);
        p.passed_over(Lsn(0x180));
        assert_eq!(p.flush_lsn(NOTHING), Lsn(0x180));
        assert_eq!(p.flush_lsn(STREAMED_OPEN), Lsn(0x110));
    }

    #[test]
    fn flush_lsn_never_moves_backwards() {
        let mut p = fresh();
        p.keepalive(Lsn(0x500));
        assert_eq!(p.flush_lsn(NOTHING), Lsn(0x500));
        p.sent(Lsn(0x500));
        // A transaction opens: the durable end is below what was sent.
        p.appended(&[record(0x100, 0x110)]);
        let open = InFlight {
            transaction: true,
            ..NOTHING
        };
        assert_eq!(p.flush_lsn(open), Lsn(0x500));
        // An older keepalive or an older transaction moves nothing either.
        p.keepalive(Lsn(0x400));
        p.appended(&[record(0x50, 0x60)]);
        assert_eq!(p.flush_lsn(NOTHING), Lsn(0x500));
        p.sent(Lsn(0x300));
        assert_eq!(p.confirmed(), Lsn(0x500));
    }

    #[test]
    fn what_was_sent_is_not_ahead_of_itself() {
        let mut p = fresh();
        p.appended(&[record(0x100, 0x110)]);
        let lsn = p.flush_lsn(NOTHING);
        p.sent(lsn);
        assert_eq!(p.confirmed(), Lsn(0x110));
        assert!(!p.ahead_of_confirmed(NOTHING));
    }

    #[test]
    fn caught_up_position_needs_nothing_in_flight() {
        let mut p = fresh();
        p.keepalive(Lsn(0x500));
        assert!(p.reached(Lsn(0x500), NOTHING));
        assert!(!p.reached(Lsn(0x501), NOTHING));
        assert!(!p.reached(Lsn(0x500), STREAMED_OPEN));
    }

    #[test]
    fn restart_after_a_streamed_transaction_skips_it_and_everything_before() {
        let p = Progress::resuming_after(Some(LastAppended::Transaction {
            kind: TxnKind::Stream,
            commit_lsn: Lsn(0x200),
            end_lsn: Lsn(0x210),
        }));
        assert!(p.skips(Lsn(0x200), Lsn(0x210)), "the same transaction");
        assert!(p.skips_end(Lsn(0x210)), "ending exactly at the log's end");
        assert!(p.skips(Lsn(0x100), Lsn(0x110)), "an earlier one");
        assert!(!p.skips(Lsn(0x300), Lsn(0x310)), "a later one");
        assert!(!p.skips_end(Lsn(0x211)));
        // Until something new is appended, the log's end is what is durable.
        assert_eq!(p.flush_lsn(InFlight::default()), Lsn(0x210));
    }

    #[test]
    fn restart_after_parts_skips_earlier_commits_and_takes_theirs_again() {
        let p = Progress::resuming_after(Some(LastAppended::TransactionPart {
            commit_lsn: Lsn(0x300),
        }));
        assert!(p.skips_from_begin(Lsn(0x200)), "committed before the parts");
        assert!(p.skips(Lsn(0x200), Lsn(0x210)));
        assert!(
            !p.skips_from_begin(Lsn(0x300)),
            "the parts' own transaction comes again"
        );
        assert!(!p.skips(Lsn(0x300), Lsn(0x310)));
    }

    #[test]
    fn restart_after_a_snapshot_skips_nothing() {
        for last in [
            None,
            Some(LastAppended::SnapshotEnd {
                consistent_point: Lsn(0x100),
            }),
            Some(LastAppended::Transaction {
                kind: TxnKind::Snapshot,
                commit_lsn: Lsn(0xFF),
                end_lsn: Lsn(0xFF),
            }),
        ] {
            let p = Progress::resuming_after(last);
            assert!(!p.skips(Lsn(0x1), Lsn(0x2)), "{last:?}");
            assert_eq!(p.durable(), Lsn::ZERO);
        }
    }
}
