//! Capture: the source's changes into the change log.
//!
//! On start, capture decides from the slot and from the last record of the change log what to
//! do:
//!
//! | slot | last record in the log | action |
//! |---|---|---|
//! | none | none | create the slot, snapshot, stream |
//! | exists | a snapshot not finished, its chunk ledger matching | keep the slot, copy the unfinished chunks, stream (`snapshot` module) |
//! | exists | none, or a snapshot not finished otherwise | drop and re-create the slot, snapshot again, stream |
//! | exists | snapshot end or a streamed transaction | stream from the slot's confirmed position |
//! | none | anything | stop: changes may have been lost |
//!
//! **Progress rule.** The flush position reported to the server is the end LSN of the last
//! transaction whose record `append` has returned for (durable), or, while no transaction is in
//! flight and nothing is waiting to be appended, the server's latest keepalive position (so the
//! slot keeps up on an idle publication). It never moves backwards.
//!
//! **Re-delivery.** After a restart the server resends transactions after the slot's confirmed
//! position; those at or below the end LSN of the last streamed transaction in the log are
//! skipped, so the log never holds a transaction twice.
//!
//! Completed transactions are appended in groups (one fsync per group) when the group reaches
//! [`GROUP_BYTES`], when the stream pauses for [`GROUP_WAIT`], or on a keepalive.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use sluice_core::telemetry::{OpCounts, Stats, op_label, table_label};
use sluice_core::{
    Change, ChangeLogWriter, Classify, Column, LastAppended, LogRecord, Lsn, Op, RelationSchema,
    TableId, Transaction, TxnKind, Value,
};
use sluice_pgoutput::{Frame, Message, OldKind, StatusUpdate, Tuple, TupleValue};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::catalog::{self, TablePattern};
use crate::config::SourceConfig;
use crate::error::{Error, Result};
use crate::replication::{ReplicationClient, ReplicationStream};
use crate::{connect, ident, publication, slot, snapshot, spill};

/// Append a group of transactions once it holds this many bytes: big enough to amortise the
/// fsync, small enough to bound memory.
pub const GROUP_BYTES: usize = 8 * 1024 * 1024;
/// Append a group once the stream has been quiet this long: keeps latency low at low rates.
pub const GROUP_WAIT: Duration = Duration::from_millis(10);
/// An open transaction holding this many bytes of changes goes to the change log as a part
/// ([`LogRecord::TransactionPart`]): memory stays bounded whatever the transaction's size.
pub const TXN_PART_BYTES: usize = 8 * 1024 * 1024;
/// Longest gap between standby status updates; shortened to a third of the server's
/// `wal_sender_timeout` when that is smaller.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(10);
/// After a status interval without a message from the server, capture asks it for a reply
/// (as PostgreSQL's own walreceiver does); when this many more intervals pass without one,
/// the connection is taken for lost and capture reconnects. Without it a network partition
/// would hold capture on a silent connection until TCP gives up, for many minutes or never.
pub const REPLY_WAIT_INTERVALS: u32 = 2;

/// What to capture.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    pub tables: Vec<TablePattern>,
    pub slot: String,
    pub publication: String,
    /// Workers, chunk size and resume ledger of the initial snapshot.
    pub snapshot: snapshot::SnapshotOptions,
    /// Where transactions the server streams before their commit wait for it (protocol 2,
    /// PostgreSQL 14+). `None`: protocol 1, where the server holds a transaction until its
    /// commit and capture writes it to the change log in parts as it arrives.
    pub spill: Option<PathBuf>,
}

/// When capture stops.
#[derive(Debug, Clone, Default)]
pub struct CaptureControl {
    /// Stop streaming, append what is complete, report the final position, return.
    pub shutdown: CancellationToken,
    /// Return once everything committed at the source before capture started is appended.
    pub until_caught_up: bool,
    /// Where capture reports its progress.
    pub stats: Arc<Stats>,
}

/// What a capture run did.
#[derive(Debug, Clone, Default)]
pub struct CaptureReport {
    pub snapshot_rows: u64,
    pub transactions: u64,
    pub changes: u64,
    /// The last position reported to the server as flushed.
    pub confirmed: Lsn,
}

/// The PostgreSQL capture.
pub struct Capture {
    source: SourceConfig,
    options: CaptureOptions,
}

impl Capture {
    pub fn new(source: SourceConfig, options: CaptureOptions) -> Self {
        Capture { source, options }
    }

    /// Runs capture into `log` until shut down (or caught up, when asked). What it appends is
    /// added to `report`, also when it fails: a retried capture reports every attempt.
    pub async fn run<W: ChangeLogWriter>(
        &self,
        log: &mut W,
        control: &CaptureControl,
        report: &mut CaptureReport,
    ) -> Result<()> {
        let client = connect(&self.source).await?;
        let version = check_server(&client).await?;
        // Messages (for the caught-up marker) exist from protocol 1 on PostgreSQL 14.
        let messages = version >= 140_000;
        let fallback_target = current_insert_lsn(&client).await?;
        let tables = catalog::resolve_tables(&client, &self.options.tables).await?;
        let last = log.last_appended();
        let snapshot_done = matches!(
            last,
            Some(LastAppended::SnapshotEnd { .. })
                | Some(LastAppended::TransactionPart { .. })
                | Some(LastAppended::Transaction {
                    kind: TxnKind::Stream,
                    ..
                })
        );
        if snapshot_done {
            // Once the snapshot is taken, a captured table missing from the publication means
            // changes Sluice never saw (or rows never copied): stop rather than diverge.
            check_published(&client, &self.options.publication, &tables).await?;
        } else {
            // Partitioned tables publish through their root from PostgreSQL 13 on.
            publication::ensure(
                &client,
                &self.options.publication,
                &tables,
                version >= 130_000,
            )
            .await?;
        }
        let slot_name = &self.options.slot;
        let existing = slot::find(&client, slot_name).await?;
        if let Some(s) = &existing {
            slot::check_usable(slot_name, s, &self.source.dbname)?;
        }
        let mut attempt = report.clone();
        let mut repl = ReplicationClient::connect(&self.source).await?;
        let mut skip_through = Lsn::ZERO;
        match (existing.is_some(), snapshot_done) {
            (true, true) => {
                match last {
                    Some(LastAppended::Transaction { end_lsn, .. }) => skip_through = end_lsn,
                    // Part of a transaction whose end never made it to the log: everything
                    // before that transaction is in the log; it comes again whole.
                    Some(LastAppended::TransactionPart { commit_lsn }) => {
                        skip_through = commit_lsn;
                    }
                    _ => {}
                }
            }
            (false, true) => {
                return Err(Error::prerequisite(
                    format!(
                        "replication slot \"{slot_name}\" does not exist, but the change log already holds changes from it"
                    ),
                    "Changes made while the slot was missing cannot be recovered. Remove the change log directory and the target tables, then sync again to take a new snapshot.",
                ));
            }
            (_, false) => {
                // Take the snapshot, or continue an interrupted one (the `snapshot` module).
                attempt.snapshot_rows += snapshot::unfinished(
                    &self.source,
                    slot_name,
                    &self.options.snapshot,
                    &mut repl,
                    log,
                    &tables,
                    existing.as_ref(),
                    &control.stats,
                )
                .await?;
            }
        }
        let server_timeout = wal_sender_timeout(&client).await?;
        let status_interval = server_timeout
            .filter(|t| !t.is_zero())
            .map_or(STATUS_INTERVAL, |t| STATUS_INTERVAL.min(t / 3));
        let publication_names = ident::publication_names(&[self.options.publication.as_str()]);
        // Protocol 2 streams large transactions before their commit (PostgreSQL 14+): the
        // server's memory and disk stay small and the changes arrive while they are made.
        let spill = match &self.options.spill {
            Some(dir) if version >= 140_000 => {
                spill::reset(dir).await?;
                Some(dir.clone())
            }
            _ => None,
        };
        let mut options = vec![
            ("proto_version", if spill.is_some() { "2" } else { "1" }),
            ("publication_names", publication_names.as_str()),
        ];
        if spill.is_some() {
            options.push(("streaming", "on"));
        }
        if messages {
            options.push(("messages", "true"));
        }
        let caught_up = match (control.until_caught_up, messages) {
            (false, _) => None,
            (true, true) => Some(CaughtUp::Marker(emit_marker(&client).await?)),
            (true, false) => Some(CaughtUp::Position(fallback_target)),
        };
        let stream = repl
            .start_replication(slot_name, Lsn::ZERO, &options)
            .await?;
        let mut streamer = Streamer {
            client: &client,
            publication: &self.options.publication,
            tables: &tables,
            relations: HashMap::new(),
            txn: None,
            pending: Vec::new(),
            pending_bytes: 0,
            durable: skip_through,
            confirmed: Lsn::ZERO,
            server_end: Lsn::ZERO,
            skip_through,
            report: attempt,
            status_buf: BytesMut::with_capacity(64),
            marker: match &caught_up {
                Some(CaughtUp::Marker(token)) => Some(token.clone()),
                _ => None,
            },
            marker_seen: false,
            stats: control.stats.clone(),
            counts: OpCounts::default(),
            pending_txns: Vec::new(),
            decoder: sluice_pgoutput::MessageDecoder::new(),
            spill,
            streams: HashMap::new(),
            streaming: None,
        };
        control.stats.source_up.store(true, Ordering::Relaxed);
        let result = streamer
            .stream(stream, log, control, status_interval, caught_up.as_ref())
            .await;
        *report = streamer.report;
        result
    }
}

/// How often streaming checks that every captured table is still in the publication.
const PUBLICATION_CHECK: Duration = Duration::from_secs(10);

/// Fails when a captured table is not in the publication (after the initial snapshot: its
/// changes are not in the stream).
async fn check_published(client: &Client, publication: &str, tables: &[TableId]) -> Result<()> {
    let published = publication::published_tables(client, publication).await?;
    let missing: Vec<String> = tables
        .iter()
        .filter(|t| !published.contains(t))
        .map(ToString::to_string)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(", ");
    Err(Error::prerequisite(
        format!(
            "{list} {} captured by this pipeline but not in publication \"{publication}\": after the initial snapshot, \
             changes made while a table is out of the publication never reach Sluice (and a table added to source.tables \
             later has its existing rows never copied)",
            if missing.len() == 1 { "is" } else { "are" }
        ),
        format!(
            "For a complete copy: stop, remove the change log directory, the slot and publication (sluice teardown) and \
             the target tables, then sync again. To accept the gap instead: ALTER PUBLICATION {} ADD TABLE {list}; \
             (sluice verify then shows the rows that differ), or remove the table from source.tables.",
            crate::ident::quote_ident(publication)
        ),
    ))
}

pub(crate) async fn append<W: ChangeLogWriter>(log: &mut W, records: &[LogRecord]) -> Result<()> {
    log.append(records).await.map_err(|e| Error::ChangeLog {
        class: e.class(),
        source: Box::new(e),
    })
}

/// How `--until-caught-up` knows everything committed before it started has arrived.
enum CaughtUp {
    /// A non-transactional logical message emitted at start (PostgreSQL 14+): every commit
    /// before it precedes it in the stream.
    Marker(String),
    /// The WAL insert position at start (older servers): reached when a keepalive passes it.
    Position(Lsn),
}

/// Prefix of the caught-up marker messages Sluice emits.
pub const MARKER_PREFIX: &str = "sluice.caught_up";

async fn emit_marker(client: &Client) -> Result<String> {
    let token = format!(
        "{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    client
        .execute(
            "SELECT pg_logical_emit_message(false, $1, $2)",
            &[&MARKER_PREFIX, &token],
        )
        .await
        .map_err(|e| Error::client("emitting the caught-up marker", e))?;
    Ok(token)
}

/// Checks the server's settings; returns `server_version_num`.
async fn check_server(client: &Client) -> Result<i32> {
    let row = client
        .query_one(
            "SELECT current_setting('wal_level'), current_setting('server_version_num')::int, \
                    current_setting('server_encoding')",
            &[],
        )
        .await
        .map_err(|e| Error::client("reading server settings", e))?;
    let wal_level: String = row.get(0);
    let version: i32 = row.get(1);
    let encoding: String = row.get(2);
    if wal_level != "logical" {
        return Err(Error::prerequisite(
            format!("wal_level is \"{wal_level}\", logical replication needs \"logical\""),
            "Set wal_level = logical in postgresql.conf (ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL.",
        ));
    }
    if version < 100_000 {
        return Err(Error::prerequisite(
            format!("PostgreSQL {version} is not supported"),
            "Sluice needs PostgreSQL 10 or later (pgoutput); it is tested on 15.",
        ));
    }
    if encoding != "UTF8" {
        return Err(Error::prerequisite(
            format!("server_encoding is \"{encoding}\", Sluice needs UTF8"),
            "Capture from a database created with ENCODING 'UTF8'.",
        ));
    }
    Ok(version)
}

/// The WAL insert position: includes commits not yet flushed (`synchronous_commit = off`).
async fn current_insert_lsn(client: &Client) -> Result<Lsn> {
    let row = client
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await
        .map_err(|e| Error::client("reading the current WAL position", e))?;
    row.get::<_, String>(0).parse().map_err(|_| {
        Error::Protocol("pg_current_wal_insert_lsn() returned an invalid LSN".to_owned())
    })
}

async fn wal_sender_timeout(client: &Client) -> Result<Option<Duration>> {
    let row = client
        .query_one(
            "SELECT setting::bigint, unit FROM pg_settings WHERE name = 'wal_sender_timeout'",
            &[],
        )
        .await
        .map_err(|e| Error::client("reading wal_sender_timeout", e))?;
    let value: i64 = row.get(0);
    let unit: Option<String> = row.get(1);
    let millis = match unit.as_deref() {
        Some("s") => value.saturating_mul(1000),
        _ => value,
    };
    Ok(u64::try_from(millis).ok().map(Duration::from_millis))
}

struct OpenTxn {
    xid: u32,
    /// Position of its commit record (known from `Begin`).
    commit_lsn: Lsn,
    commit_ts: i64,
    changes: Vec<Change>,
    bytes: usize,
    /// Parts already handed to the change log.
    parts: u32,
    /// Already in the change log (re-sent after a restart): its changes are dropped.
    skip: bool,
}

struct Streamer<'a> {
    client: &'a Client,
    /// The publication and the tables it must keep holding.
    publication: &'a str,
    tables: &'a [TableId],
    relations: HashMap<u32, Arc<RelationSchema>>,
    txn: Option<OpenTxn>,
    pending: Vec<LogRecord>,
    pending_bytes: usize,
    /// End LSN of the last transaction known durable in the log.
    durable: Lsn,
    /// The last flush position sent to the server.
    confirmed: Lsn,
    /// The server's latest keepalive position.
    server_end: Lsn,
    skip_through: Lsn,
    report: CaptureReport,
    status_buf: BytesMut,
    /// This run's caught-up marker, and whether it arrived.
    marker: Option<String>,
    marker_seen: bool,
    stats: Arc<Stats>,
    /// Changes appended since the last report, per table and operation.
    counts: OpCounts,
    /// Change counts of the records waiting in `pending`.
    pending_txns: Vec<u64>,
    /// Knows whether a message is inside a streamed block (protocol 2).
    decoder: sluice_pgoutput::MessageDecoder,
    /// The spill directory, when the server streams transactions before their commit.
    spill: Option<PathBuf>,
    /// Transactions streamed and not yet committed or aborted, by top-level xid.
    streams: HashMap<u32, Streamed>,
    /// The transaction of the streamed block being received.
    streaming: Option<u32>,
}

/// A transaction the server streams before its commit.
struct Streamed {
    file: spill::SpillFile,
    /// Changes not yet written to the file.
    changes: Vec<Change>,
    bytes: usize,
    /// The (sub)transaction the last change belonged to.
    current: u32,
}

impl Streamed {
    /// Writes the changes held in memory to the spill file.
    async fn spill(&mut self) -> Result<()> {
        self.bytes = 0;
        self.file.write(std::mem::take(&mut self.changes)).await
    }
}

enum Next {
    Frame(bytes::Bytes),
    Quiet,
    End,
    Shutdown,
}

impl Streamer<'_> {
    async fn stream<W: ChangeLogWriter>(
        &mut self,
        mut stream: ReplicationStream,
        log: &mut W,
        control: &CaptureControl,
        status_interval: Duration,
        caught_up: Option<&CaughtUp>,
    ) -> Result<()> {
        let mut last_status = Instant::now();
        let mut last_publication_check = Instant::now();
        // When the server was last heard from, and when it was asked for a sign of life since.
        let mut last_heard = Instant::now();
        let mut asked: Option<Instant> = None;
        let reply_wait = status_interval * REPLY_WAIT_INTERVALS;
        let outcome = loop {
            let wait = if self.pending.is_empty() {
                // Wake up in time to ask a silent server for a reply, or to give up on it.
                let due = match asked {
                    None => last_heard + status_interval,
                    Some(at) => at + reply_wait,
                };
                status_interval.min(due.saturating_duration_since(Instant::now()))
            } else {
                GROUP_WAIT
            };
            // `recv` is cancellation safe, so losing the race to the timer or shutdown is fine.
            let next = tokio::select! {
                biased;
                () = control.shutdown.cancelled() => Next::Shutdown,
                r = tokio::time::timeout(wait, stream.recv()) => match r {
                    Err(_) => Next::Quiet,
                    Ok(r) => match r? {
                        Some(b) => Next::Frame(b),
                        None => Next::End,
                    },
                },
            };
            if matches!(next, Next::Frame(_)) {
                last_heard = Instant::now();
                asked = None;
            }
            if last_publication_check.elapsed() >= PUBLICATION_CHECK {
                last_publication_check = Instant::now();
                // Bounded: on a partitioned network the query would otherwise wait for TCP.
                let checked = tokio::time::timeout(
                    reply_wait,
                    check_published(self.client, self.publication, self.tables),
                )
                .await;
                match checked {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        // Keep what is complete: it was captured while the table was published.
                        self.flush(log).await?;
                        break Err(e);
                    }
                    Err(_) => {
                        break Err(Error::QueryTimeout {
                            what: "the publication check",
                            waited: reply_wait,
                        });
                    }
                }
            }
            match next {
                Next::Shutdown => break Ok(()),
                Next::End => break Err(Error::Closed),
                Next::Quiet => {
                    self.flush(log).await?;
                    match asked {
                        Some(at) if at.elapsed() >= reply_wait => {
                            break Err(Error::ReceiveTimeout {
                                silent: last_heard.elapsed(),
                            });
                        }
                        None if last_heard.elapsed() >= status_interval => {
                            self.send_status(&mut stream, true).await?;
                            last_status = Instant::now();
                            asked = Some(last_status);
                        }
                        _ => {}
                    }
                }
                Next::Frame(bytes) => match sluice_pgoutput::decode_frame(bytes)? {
                    Frame::XLogData(x) => {
                        self.server_end_seen(x.wal_end);
                        let message = self.decoder.decode(x.data)?;
                        self.handle(message, log).await?;
                        if self.pending_bytes >= GROUP_BYTES {
                            self.flush(log).await?;
                        }
                    }
                    Frame::PrimaryKeepalive(k) => {
                        self.server_end = self.server_end.max(k.wal_end);
                        self.server_end_seen(k.wal_end);
                        self.flush(log).await?;
                        if k.reply_requested {
                            self.send_status(&mut stream, false).await?;
                            last_status = Instant::now();
                        }
                    }
                },
            }
            if last_status.elapsed() >= status_interval || self.ack_position() > self.confirmed {
                self.send_status(&mut stream, false).await?;
                last_status = Instant::now();
            }
            let done = match caught_up {
                None => false,
                Some(CaughtUp::Marker(_)) => self.marker_seen && self.txn.is_none(),
                Some(CaughtUp::Position(target)) => {
                    self.idle() && self.durable.max(self.server_end) >= *target
                }
            };
            if done {
                tracing::info!(lsn = %self.confirmed, "caught up");
                break Ok(());
            }
        };
        if outcome.is_ok() {
            self.flush(log).await?;
            self.send_status(&mut stream, false).await?;
            stream.finish().await?.close().await?;
        }
        self.report.confirmed = self.confirmed;
        outcome
    }

    fn idle(&self) -> bool {
        self.txn.is_none() && self.pending.is_empty() && self.streams.is_empty()
    }

    /// The position the progress rule allows acknowledging now.
    fn ack_position(&self) -> Lsn {
        let position = if self.idle() {
            self.durable.max(self.server_end)
        } else {
            self.durable
        };
        position.max(self.confirmed)
    }

    /// Sends a standby status update; with `reply_requested` the server answers with a
    /// keepalive at once.
    async fn send_status(
        &mut self,
        stream: &mut ReplicationStream,
        reply_requested: bool,
    ) -> Result<()> {
        let position = self.ack_position();
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
        self.confirmed = position;
        Stats::advance(&self.stats.confirmed_lsn, position);
        Ok(())
    }

    /// Notes the server's WAL end (for the lag figures only; the progress rule uses
    /// keepalives).
    fn server_end_seen(&self, wal_end: Lsn) {
        Stats::advance(&self.stats.source_wal_end, wal_end);
    }

    async fn flush<W: ChangeLogWriter>(&mut self, log: &mut W) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        append(log, &self.pending).await?;
        // A crash here leaves transactions durable in the log but not acknowledged: the
        // server sends them again and the restart skips them.
        #[cfg(feature = "failpoints")]
        fail::fail_point!("capture-after-append", |_| crash("capture-after-append"));
        // Parts of a transaction not yet committed acknowledge nothing.
        if let Some(t) = self.pending.iter().rev().find_map(|r| match r {
            LogRecord::Transaction(t) => Some(t),
            _ => None,
        }) {
            self.durable = self.durable.max(t.end_lsn);
        }
        Stats::advance(&self.stats.captured_lsn, self.durable);
        for changes in self.pending_txns.drain(..) {
            self.stats.captured(changes);
        }
        let transactions = self
            .pending
            .iter()
            .filter(|r| matches!(r, LogRecord::Transaction(_)))
            .count();
        metrics::counter!("sluice_transactions_captured_total").increment(transactions as u64);
        metrics::counter!("sluice_captured_bytes_total").increment(self.pending_bytes as u64);
        for (table, op, n) in self.counts.drain() {
            metrics::counter!("sluice_changes_captured_total", "table" => table_label(&table), "op" => op_label(op))
                .increment(n);
        }
        self.pending.clear();
        self.pending_bytes = 0;
        Ok(())
    }

    async fn handle<W: ChangeLogWriter>(&mut self, message: Message, log: &mut W) -> Result<()> {
        match message {
            Message::StreamStart(start) => {
                let dir = self.spill.as_ref().ok_or_else(|| {
                    Error::Protocol("Stream Start in a stream that was not asked to stream".into())
                })?;
                if start.first_segment || !self.streams.contains_key(&start.xid) {
                    let file = spill::SpillFile::create(dir, start.xid).await?;
                    self.streams.insert(
                        start.xid,
                        Streamed {
                            file,
                            changes: Vec::new(),
                            bytes: 0,
                            current: start.xid,
                        },
                    );
                }
                self.streaming = Some(start.xid);
            }
            Message::StreamStop => {
                if let Some(streamed) = self.streaming.take().and_then(|x| self.streams.get_mut(&x))
                {
                    streamed.spill().await?;
                }
            }
            Message::StreamAbort(abort) => {
                if abort.xid == abort.subxid {
                    if let Some(streamed) = self.streams.remove(&abort.xid) {
                        streamed.file.remove().await?;
                    }
                } else if let Some(streamed) = self.streams.get_mut(&abort.xid) {
                    streamed.spill().await?;
                    streamed.file.abort_subxact(abort.subxid).await?;
                    streamed.current = abort.xid;
                }
            }
            Message::StreamCommit(c) => {
                let Some(mut streamed) = self.streams.remove(&c.xid) else {
                    return Err(Error::Protocol(format!(
                        "Stream Commit of transaction {} that was not streamed",
                        c.xid
                    )));
                };
                if c.end_lsn <= self.skip_through || c.commit_lsn < self.skip_through {
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
                // The parts, then the end, contiguous in the log: nothing else is appended
                // until the transaction is.
                let mut reader = streamed.file.into_reader().await?;
                let mut part = 0;
                while let Some(changes) = reader.next().await? {
                    self.queue(LogRecord::TransactionPart {
                        part,
                        txn: txn(changes),
                    });
                    part += 1;
                    if self.pending_bytes >= GROUP_BYTES {
                        self.flush(log).await?;
                    }
                }
                reader.remove().await?;
                tracing::info!(lsn = %c.commit_lsn, parts = part, "transaction streamed before its commit is in the change log");
                self.report.transactions += 1;
                self.queue(LogRecord::Transaction(txn(Vec::new())));
                self.flush(log).await?;
            }
            Message::Begin(b) => {
                self.txn = Some(OpenTxn {
                    xid: b.xid,
                    commit_lsn: b.final_lsn,
                    commit_ts: sluice_pgoutput::time::pg_to_unix_micros(b.commit_ts).unwrap_or(0),
                    changes: Vec::new(),
                    bytes: 0,
                    parts: 0,
                    skip: b.final_lsn < self.skip_through,
                });
            }
            Message::Commit(c) => {
                let txn = self.txn.take().ok_or_else(|| {
                    Error::Protocol("Commit without Begin in the replication stream".to_owned())
                })?;
                if txn.skip || c.end_lsn <= self.skip_through {
                    tracing::debug!(lsn = %c.end_lsn, "skipping a transaction already in the change log");
                    return Ok(());
                }
                if txn.changes.is_empty() && txn.parts == 0 {
                    // Nothing of ours in it; its position still counts as received.
                    self.server_end = self.server_end.max(c.end_lsn);
                    return Ok(());
                }
                self.report.transactions += 1;
                self.queue(LogRecord::Transaction(Transaction {
                    kind: TxnKind::Stream,
                    xid: txn.xid,
                    commit_lsn: c.commit_lsn,
                    end_lsn: c.end_lsn,
                    commit_ts: txn.commit_ts,
                    changes: txn.changes,
                }));
                // A crash here loses decoded transactions that were never appended nor
                // acknowledged: the server sends them again.
                #[cfg(feature = "failpoints")]
                fail::fail_point!("capture-after-decode", |_| crash("capture-after-decode"));
            }
            Message::Relation(r) => {
                let mut relation = RelationSchema {
                    table: TableId::new(r.namespace.clone(), r.name.clone()),
                    oid: r.rel_id,
                    version: 1,
                    replica_identity: match r.replica_identity {
                        sluice_pgoutput::ReplicaIdentity::Default => {
                            sluice_core::ReplicaIdentity::Default
                        }
                        sluice_pgoutput::ReplicaIdentity::Nothing => {
                            sluice_core::ReplicaIdentity::Nothing
                        }
                        sluice_pgoutput::ReplicaIdentity::Full => {
                            sluice_core::ReplicaIdentity::Full
                        }
                        sluice_pgoutput::ReplicaIdentity::Index => {
                            sluice_core::ReplicaIdentity::Index
                        }
                    },
                    columns: r
                        .columns
                        .iter()
                        .map(|c| Column {
                            name: c.name.clone(),
                            type_oid: c.type_oid,
                            type_modifier: c.type_modifier,
                            key: c.is_key,
                            nullable: true,
                        })
                        .collect(),
                };
                match catalog::relation_schema(self.client, &relation.table).await {
                    Ok(from_catalog) => catalog::reconcile(&mut relation, &from_catalog),
                    Err(e) => {
                        tracing::warn!(table = %relation.table, error = %e, "catalog lookup failed; using the stream's key flags")
                    }
                }
                if let Some(previous) = self.relations.get(&r.rel_id) {
                    if previous.same_shape(&relation) {
                        return Ok(());
                    }
                    relation.version = previous.version + 1;
                }
                tracing::debug!(table = %relation.table, version = relation.version, "relation described");
                self.relations.insert(r.rel_id, Arc::new(relation));
            }
            Message::Insert(i) => {
                let relation = self.relation(i.rel_id)?;
                let new = values(&relation, &i.new)?;
                self.push(
                    Change {
                        relation,
                        op: Op::Insert,
                        new: Some(new),
                        old: None,
                    },
                    i.xid,
                )
                .await?;
            }
            Message::Update(u) => {
                let relation = self.relation(u.rel_id)?;
                let new = values(&relation, &u.new)?;
                let old = match &u.old {
                    Some((OldKind::Key | OldKind::Full, tuple)) => Some(values(&relation, tuple)?),
                    None => None,
                };
                self.push(
                    Change {
                        relation,
                        op: Op::Update,
                        new: Some(new),
                        old,
                    },
                    u.xid,
                )
                .await?;
            }
            Message::Delete(d) => {
                let relation = self.relation(d.rel_id)?;
                let old = values(&relation, &d.old)?;
                self.push(
                    Change {
                        relation,
                        op: Op::Delete,
                        new: None,
                        old: Some(old),
                    },
                    d.xid,
                )
                .await?;
            }
            Message::Truncate(t) => {
                for rel_id in &t.rel_ids {
                    let relation = self.relation(*rel_id)?;
                    self.push(
                        Change {
                            relation,
                            op: Op::Truncate,
                            new: None,
                            old: None,
                        },
                        t.xid,
                    )
                    .await?;
                }
            }
            Message::Message(m) => {
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
            Message::Origin(_) | Message::Type(_) => {}
        }
        Ok(())
    }

    fn relation(&self, rel_id: u32) -> Result<Arc<RelationSchema>> {
        self.relations.get(&rel_id).cloned().ok_or_else(|| {
            Error::Protocol(format!(
                "change for relation {rel_id} before its Relation message"
            ))
        })
    }

    /// Adds a change of (sub)transaction `xid` (sent with changes inside streamed blocks) to
    /// the transaction it belongs to.
    async fn push(&mut self, change: Change, xid: Option<u32>) -> Result<()> {
        if let Some(top) = self.streaming {
            let sub = xid.unwrap_or(top);
            let streamed = self.streams.get_mut(&top).ok_or_else(|| {
                Error::Protocol(format!("change of transaction {top} outside its stream"))
            })?;
            if sub != streamed.current {
                // Where a subtransaction's changes start must be exact: an abort cuts there.
                streamed.spill().await?;
                if sub != top {
                    streamed.file.subxact_starts(sub);
                }
                streamed.current = sub;
            }
            streamed.bytes += change.size();
            streamed.changes.push(change);
            if streamed.bytes >= TXN_PART_BYTES {
                streamed.spill().await?;
            }
            return Ok(());
        }
        self.push_committed(change)
    }

    /// Adds a change of the transaction between Begin and Commit.
    fn push_committed(&mut self, change: Change) -> Result<()> {
        let txn = self.txn.as_mut().ok_or_else(|| {
            Error::Protocol("change outside a transaction in the replication stream".to_owned())
        })?;
        if txn.skip {
            return Ok(());
        }
        txn.bytes += change.size();
        txn.changes.push(change);
        if txn.bytes >= TXN_PART_BYTES {
            let part = LogRecord::TransactionPart {
                part: txn.parts,
                txn: Transaction {
                    kind: TxnKind::Stream,
                    xid: txn.xid,
                    commit_lsn: txn.commit_lsn,
                    // Known once the commit arrives.
                    end_lsn: Lsn::ZERO,
                    commit_ts: txn.commit_ts,
                    changes: std::mem::take(&mut txn.changes),
                },
            };
            txn.parts += 1;
            txn.bytes = 0;
            self.queue(part);
        }
        Ok(())
    }

    /// Adds a transaction record (or a part of one) to the group waiting to be appended.
    fn queue(&mut self, record: LogRecord) {
        let (LogRecord::Transaction(txn) | LogRecord::TransactionPart { txn, .. }) = &record else {
            return;
        };
        self.report.changes += txn.changes.len() as u64;
        self.pending_bytes += txn.size();
        for change in &txn.changes {
            self.counts.add(&change.relation.table, change.op, 1);
        }
        self.pending_txns.push(txn.changes.len() as u64);
        self.pending.push(record);
    }
}

/// The action of a failpoint set to `return`: ends the process at once, as a crash would (no
/// destructors, nothing flushed or sent).
#[cfg(feature = "failpoints")]
pub(crate) fn crash(failpoint: &str) -> ! {
    eprintln!("failpoint {failpoint}: aborting the process");
    std::process::abort()
}

fn values(relation: &RelationSchema, tuple: &Tuple) -> Result<Vec<Value>> {
    if tuple.columns.len() != relation.columns.len() {
        return Err(Error::Protocol(format!(
            "row of {} has {} columns, its relation {}",
            relation.table,
            tuple.columns.len(),
            relation.columns.len()
        )));
    }
    tuple
        .columns
        .iter()
        .zip(&relation.columns)
        .map(|(v, column)| match v {
            TupleValue::Null => Ok(Value::Null),
            TupleValue::UnchangedToast => Ok(Value::Unchanged),
            TupleValue::Text(b) => {
                String::from_utf8(b.to_vec())
                    .map(Value::Text)
                    .map_err(|_| Error::Value {
                        table: relation.table.clone(),
                        column: column.name.clone(),
                        reason: "the value is not valid UTF-8".to_owned(),
                    })
            }
            TupleValue::Binary(_) => Err(Error::Value {
                table: relation.table.clone(),
                column: column.name.clone(),
                reason: "binary tuple data was not requested".to_owned(),
            }),
        })
        .collect()
}
