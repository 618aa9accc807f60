//! The streaming loop: frames from the replication connection are decoded and dispatched by
//! concern (transaction assembly, streamed blocks, relations, the caught-up marker), complete
//! transactions are appended in groups, and the position the progress rule allows is
//! acknowledged.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use sluice_core::telemetry::Stats;
use sluice_core::{Change, ChangeLogWriter, LogRecord, Lsn, TableId, Transaction, TxnKind};
use sluice_pgoutput::{Commit, Frame, LogicalMessage, Message, StatusUpdate, StreamCommit};
use tokio_postgres::Client;

use super::relations::Relations;
use super::status::{Liveness, Quiet};
use super::streamed::Streams;
use super::transaction::{Group, OpenTxn};
use super::{CaptureControl, CaptureReport, CaughtUp, MARKER_PREFIX, append, check_published};
use crate::error::{Error, Result};
use crate::progress::{InFlight, Progress};
use crate::replication::ReplicationStream;

/// The source capture reads from, and what the publication must keep holding.
pub(super) struct Source<'a> {
    pub(super) client: &'a Client,
    pub(super) publication: &'a str,
    pub(super) tables: &'a [TableId],
}

pub(super) struct Streamer<'a> {
    source: Source<'a>,
    relations: Relations,
    txn: Option<OpenTxn>,
    /// Records waiting to be appended.
    group: Group,
    progress: Progress,
    /// Transactions streamed before their commit (protocol 2).
    streams: Streams,
    /// Knows whether a message is inside a streamed block (protocol 2).
    decoder: sluice_pgoutput::MessageDecoder,
    pub(super) report: CaptureReport,
    status_buf: BytesMut,
    /// This run's caught-up marker, and whether it arrived.
    marker: Option<String>,
    marker_seen: bool,
    stats: Arc<Stats>,
}

enum Next {
    Frame(bytes::Bytes),
    Quiet,
    End,
    Shutdown,
}

/// `Some` ends streaming with that outcome; `None` goes on. (An error returned instead ends it
/// without the final flush and status update.)
type Step = Option<Result<()>>;

impl<'a> Streamer<'a> {
    pub(super) fn new(
        source: Source<'a>,
        progress: Progress,
        streams: Streams,
        marker: Option<String>,
        report: CaptureReport,
        stats: Arc<Stats>,
    ) -> Self {
        Streamer {
            source,
            relations: Relations::default(),
            txn: None,
            group: Group::default(),
            progress,
            streams,
            decoder: sluice_pgoutput::MessageDecoder::new(),
            report,
            status_buf: BytesMut::with_capacity(64),
            marker,
            marker_seen: false,
            stats,
        }
    }

    pub(super) async fn stream<W: ChangeLogWriter>(
        &mut self,
        mut stream: ReplicationStream,
        log: &mut W,
        control: &CaptureControl,
        status_interval: Duration,
        caught_up: Option<&CaughtUp>,
    ) -> Result<()> {
        let mut live = Liveness::new(status_interval);
        let outcome = loop {
            let wait = live.wait(self.group.is_empty());
            let next = receive(&mut stream, control, wait).await?;
            if matches!(next, Next::Frame(_)) {
                live.heard();
            }
            if live.publication_check_due()
                && let Some(end) = self.check_publication(log, live.reply_wait).await?
            {
                break end;
            }
            if let Some(end) = self.on_next(next, &mut stream, log, &mut live).await? {
                break end;
            }
            if live.status_due() || self.progress.ahead_of_confirmed(self.in_flight()) {
                self.send_status(&mut stream, false).await?;
                live.status_sent(false);
            }
            if self.caught_up(caught_up) {
                tracing::info!(lsn = %self.progress.confirmed(), "caught up");
                break Ok(());
            }
        };
        if outcome.is_ok() {
            self.flush(log).await?;
            self.send_status(&mut stream, false).await?;
            stream.finish().await?.close().await?;
        }
        self.report.confirmed = self.progress.confirmed();
        outcome
    }

    /// Checks that every captured table is still in the publication. Bounded: on a
    /// partitioned network the query would otherwise wait for TCP.
    async fn check_publication<W: ChangeLogWriter>(
        &mut self,
        log: &mut W,
        reply_wait: Duration,
    ) -> Result<Step> {
        let s = &self.source;
        let checked = tokio::time::timeout(
            reply_wait,
            check_published(s.client, s.publication, s.tables),
        )
        .await;
        match checked {
            Ok(Ok(())) => Ok(None),
            Ok(Err(e)) => {
                // Keep what is complete: it was captured while the table was published.
                self.flush(log).await?;
                Ok(Some(Err(e)))
            }
            Err(_) => Ok(Some(Err(Error::QueryTimeout {
                what: "the publication check",
                waited: reply_wait,
            }))),
        }
    }

    async fn on_next<W: ChangeLogWriter>(
        &mut self,
        next: Next,
        stream: &mut ReplicationStream,
        log: &mut W,
        live: &mut Liveness,
    ) -> Result<Step> {
        match next {
            Next::Shutdown => return Ok(Some(Ok(()))),
            Next::End => return Ok(Some(Err(Error::closed()))),
            Next::Quiet => {
                self.flush(log).await?;
                match live.quiet() {
                    Quiet::GiveUp { silent } => {
                        return Ok(Some(Err(Error::ReceiveTimeout { silent })));
                    }
                    Quiet::Ask => {
                        self.send_status(stream, true).await?;
                        live.status_sent(true);
                    }
                    Quiet::Wait => {}
                }
            }
            Next::Frame(bytes) => match sluice_pgoutput::decode_frame(bytes)? {
                Frame::XLogData(x) => {
                    self.server_end_seen(x.wal_end);
                    let message = self.decoder.decode(x.data)?;
                    self.handle(message, log).await?;
                    if self.group.full() {
                        self.flush(log).await?;
                    }
                }
                Frame::PrimaryKeepalive(k) => {
                    self.progress.keepalive(k.wal_end);
                    self.server_end_seen(k.wal_end);
                    self.flush(log).await?;
                    if k.reply_requested {
                        self.send_status(stream, false).await?;
                        live.status_sent(false);
                    }
                }
            },
        }
        Ok(None)
    }

    fn in_flight(&self) -> InFlight {
        InFlight {
            transaction: self.txn.is_some(),
            streamed: self.streams.any_open(),
            pending: !self.group.is_empty(),
        }
    }

    fn caught_up(&self, caught_up: Option<&CaughtUp>) -> bool {
        match caught_up {
            None => false,
            Some(CaughtUp::Marker(_)) => self.marker_seen && self.txn.is_none(),
            Some(CaughtUp::Position(target)) => self.progress.reached(*target, self.in_flight()),
        }
    }

    /// Sends a standby status update at the position the progress rule allows; with
    /// `reply_requested` the server answers with a keepalive at once.
    async fn send_status(
        &mut self,
        stream: &mut ReplicationStream,
        reply_requested: bool,
    ) -> Result<()> {
        let position = self.progress.flush_lsn(self.in_flight());
        self.status_buf.clear();
        sluice_pgoutput::encode_status_update(
            &StatusUpdate {
                write: position,
                flush: position,
                apply: position,
                client_time: sluice_pgoutput::time::system_time_to_pg_micros(SystemTime::now())
                    .unwrap_or(0),
                reply_requested,
            },
            &mut self.status_buf,
        );
        stream.send(&self.status_buf).await?;
        self.progress.sent(position);
        Stats::advance(&self.stats.confirmed_lsn, position);
        Ok(())
    }

    /// Notes the server's WAL end (for the lag figures only; the progress rule uses
    /// keepalives).
    fn server_end_seen(&self, wal_end: Lsn) {
        Stats::advance(&self.stats.source_wal_end, wal_end);
    }

    /// Appends the waiting group; its last transaction becomes durable.
    async fn flush<W: ChangeLogWriter>(&mut self, log: &mut W) -> Result<()> {
        if self.group.is_empty() {
            return Ok(());
        }
        append(log, self.group.records()).await?;
        // A crash here leaves transactions durable in the log but not acknowledged: the
        // server sends them again and the restart skips them.
        #[cfg(feature = "failpoints")]
        fail::fail_point!("capture-after-append", |_| super::crash(
            "capture-after-append"
        ));
        self.progress.appended(self.group.records());
        Stats::advance(&self.stats.captured_lsn, self.progress.durable());
        self.group.appended(&self.stats);
        Ok(())
    }

    /// Dispatches a decoded message to the concern it belongs to.
    async fn handle<W: ChangeLogWriter>(&mut self, message: Message, log: &mut W) -> Result<()> {
        if let Some((changes, xid)) = self.relations.changes(&message)? {
            for change in changes {
                self.push(change, xid).await?;
            }
            return Ok(());
        }
        match message {
            Message::StreamStart(start) => self.streams.start(&start).await,
            Message::StreamStop => self.streams.stop().await,
            Message::StreamAbort(abort) => self.streams.abort(&abort).await,
            Message::StreamCommit(c) => self.stream_commit(&c, log).await,
            Message::Begin(b) => {
                let skip = self.progress.skips_from_begin(b.final_lsn);
                self.txn = Some(OpenTxn::begin(&b, skip));
                Ok(())
            }
            Message::Commit(c) => self.commit(&c),
            Message::Relation(r) => self.relations.describe(self.source.client, r).await,
            Message::Message(m) => {
                self.note_marker(&m);
                Ok(())
            }
            Message::Insert(_)
            | Message::Update(_)
            | Message::Delete(_)
            | Message::Truncate(_)
            | Message::Origin(_)
            | Message::Type(_) => Ok(()),
        }
    }

    /// Notes this run's caught-up marker.
    fn note_marker(&mut self, m: &LogicalMessage) {
        if !m.transactional
            && m.prefix == MARKER_PREFIX
            && self
                .marker
                .as_deref()
                .is_some_and(|t| m.content.as_ref() == t.as_bytes())
        {
            self.marker_seen = true;
        }
    }

    /// Adds a change of (sub)transaction `xid` (sent with changes inside streamed blocks) to
    /// the transaction it belongs to.
    async fn push(&mut self, change: Change, xid: Option<u32>) -> Result<()> {
        if self.streams.receiving() {
            return self.streams.push(change, xid).await;
        }
        let txn = self.txn.as_mut().ok_or_else(|| {
            Error::protocol("change outside a transaction in the replication stream".to_owned())
        })?;
        if let Some(part) = txn.push(change) {
            self.queue(part);
        }
        Ok(())
    }

    /// Commit: the open transaction's record joins the group (unless the log holds it, or it
    /// holds nothing of ours).
    fn commit(&mut self, c: &Commit) -> Result<()> {
        let txn = self.txn.take().ok_or_else(|| {
            Error::protocol("Commit without Begin in the replication stream".to_owned())
        })?;
        if txn.skip || self.progress.skips_end(c.end_lsn) {
            tracing::debug!(lsn = %c.end_lsn, "skipping a transaction already in the change log");
            return Ok(());
        }
        if txn.is_empty() {
            // Nothing of ours in it; its position still counts as received.
            self.progress.passed_over(c.end_lsn);
            return Ok(());
        }
        self.report.transactions += 1;
        self.queue(LogRecord::Transaction(txn.finish(c.commit_lsn, c.end_lsn)));
        // A crash here loses decoded transactions that were never appended nor
        // acknowledged: the server sends them again.
        #[cfg(feature = "failpoints")]
        fail::fail_point!("capture-after-decode", |_| super::crash(
            "capture-after-decode"
        ));
        Ok(())
    }

    /// Stream Commit: the spilled changes go to the change log as parts, then the
    /// transaction's record ends them; nothing else is appended in between.
    async fn stream_commit<W: ChangeLogWriter>(
        &mut self,
        c: &StreamCommit,
        log: &mut W,
    ) -> Result<()> {
        let mut streamed = self.streams.commit(c.xid)?;
        if self.progress.skips(c.commit_lsn, c.end_lsn) {
            tracing::debug!(lsn = %c.end_lsn, "skipping a transaction already in the change log");
            return streamed.file.remove().await;
        }
        streamed.spill().await?;
        let commit_ts = sluice_pgoutput::time::pg_to_unix_micros(c.commit_ts).unwrap_or(0);
        let txn = |changes| Transaction {
            kind: TxnKind::Stream,
            xid: c.xid,
            commit_lsn: c.commit_lsn,
            end_lsn: c.end_lsn,
            commit_ts,
            changes,
        };
        let mut reader = streamed.file.into_reader().await?;
        let mut part = 0;
        while let Some(changes) = reader.next().await? {
            self.queue(LogRecord::TransactionPart {
                part,
                txn: txn(changes),
            });
            part += 1;
            if self.group.full() {
                self.flush(log).await?;
            }
        }
        reader.remove().await?;
        tracing::info!(lsn = %c.commit_lsn, parts = part, "transaction streamed before its commit is in the change log");
        self.report.transactions += 1;
        self.queue(LogRecord::Transaction(txn(Vec::new())));
        self.flush(log).await
    }

    /// Adds a transaction record (or a part of one) to the group waiting to be appended.
    fn queue(&mut self, record: LogRecord) {
        self.report.changes += self.group.queue(record);
    }
}

/// The next frame, or why there is none. `recv` is cancellation safe, so losing the race to
/// the timer or shutdown is fine.
async fn receive(
    stream: &mut ReplicationStream,
    control: &CaptureControl,
    wait: Duration,
) -> Result<Next> {
    Ok(tokio::select! {
        biased;
        () = control.shutdown.cancelled() => Next::Shutdown,
        r = tokio::time::timeout(wait, stream.recv()) => match r {
            Err(_) => Next::Quiet,
            Ok(r) => match r? {
                Some(b) => Next::Frame(b),
                None => Next::End,
            },
        },
    })
}
