//! Capture: the source's changes into the change log.
//!
//! On start, capture decides from the slot and from the last record of the change log what to
//! do: create the slot and snapshot, resume an interrupted snapshot, snapshot again, stream, or
//! stop because changes may have been lost. The table is [`crate::startup`]; [`Capture::run`]
//! gathers the facts and carries the action out.
//!
//! While streaming, what capture acknowledges and which re-sent transactions it skips follow
//! the progress rule ([`crate::progress`]). The message handler is split by concern:
//! transaction assembly (`transaction`), streamed blocks and their spill files (`streamed`),
//! relation bookkeeping (`relations`), status and keepalive timing (`status`), and the loop
//! that dispatches to them (`streamer`).
//!
//! Completed transactions are appended in groups (one fsync per group) when the group reaches
//! [`GROUP_BYTES`], when the stream pauses for [`GROUP_WAIT`], or on a keepalive.

mod relations;
mod status;
mod streamed;
mod streamer;
mod transaction;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_core::telemetry::Stats;
use sluice_core::{ChangeLogWriter, Classify, LogRecord, Lsn, TableId};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::SourceConfig;
use crate::catalog::{self, TablePattern};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::replication::ReplicationClient;
use crate::slot::SlotState;
use crate::startup::{self, LogEnd, Startup};
use crate::{connect, publication, slot, snapshot, spill};
use sluice_postgres_client::publication_names;
use streamed::Streams;
use streamer::{Source, Streamer};

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
        let log_end = LogEnd::of(last);
        self.publish(&client, &tables, log_end, version).await?;
        let slot_name = &self.options.slot;
        let existing = slot::find(&client, slot_name).await?;
        if let Some(s) = &existing {
            slot::check_usable(slot_name, s, &self.source.dbname)?;
        }
        let mut attempt = report.clone();
        let mut repl = ReplicationClient::connect(&self.source).await?;
        attempt.snapshot_rows += self
            .start(
                &mut repl,
                log,
                &tables,
                existing.as_ref(),
                log_end,
                &control.stats,
            )
            .await?;
        let server_timeout = wal_sender_timeout(&client).await?;
        let status_interval = server_timeout
            .filter(|t| !t.is_zero())
            .map_or(STATUS_INTERVAL, |t| STATUS_INTERVAL.min(t / 3));
        let publication_names = publication_names(&[self.options.publication.as_str()]);
        // Protocol 2 streams large transactions before their commit (PostgreSQL 14+): the
        // server's memory and disk stay small and the changes arrive while they are made.
        let spill = match &self.options.spill {
            Some(dir) if version >= 140_000 => {
                spill::reset(dir).await?;
                Some(dir.clone())
            }
            _ => None,
        };
        let options = replication_options(&publication_names, spill.is_some(), messages);
        let caught_up = match (control.until_caught_up, messages) {
            (false, _) => None,
            (true, true) => Some(CaughtUp::Marker(emit_marker(&client).await?)),
            (true, false) => Some(CaughtUp::Position(fallback_target)),
        };
        let stream = repl
            .start_replication(slot_name, Lsn::ZERO, &options)
            .await?;
        let marker = match &caught_up {
            Some(CaughtUp::Marker(token)) => Some(token.clone()),
            _ => None,
        };
        let source = Source {
            client: &client,
            publication: &self.options.publication,
            tables: &tables,
        };
        let progress = Progress::resuming_after(last);
        let streams = Streams::new(spill);
        let stats = control.stats.clone();
        let mut streamer = Streamer::new(source, progress, streams, marker, attempt, stats);
        control.stats.source_up.store(true, Ordering::Relaxed);
        let result = streamer
            .stream(stream, log, control, status_interval, caught_up.as_ref())
            .await;
        *report = streamer.report;
        result
    }

    /// Before the snapshot, creates the publication or adds the tables to it; after it,
    /// checks that every captured table is in it.
    async fn publish(
        &self,
        client: &Client,
        tables: &[TableId],
        log_end: LogEnd,
        version: i32,
    ) -> Result<()> {
        let publication = &self.options.publication;
        if log_end.snapshot_done() {
            // Once the snapshot is taken, a captured table missing from the publication means
            // changes Sluice never saw (or rows never copied): stop rather than diverge.
            check_published(client, publication, tables).await
        } else {
            // Partitioned tables publish through their root from PostgreSQL 13 on.
            publication::ensure(client, publication, tables, version >= 130_000).await?;
            Ok(())
        }
    }

    /// Carries out the start-up decision ([`startup::decide`]) for the slot found (if any) and
    /// the change log's end; returns the snapshot rows copied.
    async fn start<W: ChangeLogWriter>(
        &self,
        repl: &mut ReplicationClient,
        log: &mut W,
        tables: &[TableId],
        existing: Option<&SlotState>,
        log_end: LogEnd,
        stats: &Stats,
    ) -> Result<u64> {
        let slot = self.options.slot.as_str();
        let options = &self.options.snapshot;
        // The chunk ledger is read only where the decision looks at it.
        let ledger = match existing {
            Some(state) if log_end == LogEnd::UnfinishedSnapshot => Some(snapshot::resumable(
                options,
                log.last_appended(),
                state,
                tables,
            )),
            _ => None,
        };
        let resumable = matches!(ledger, Some(Ok(_)));
        let reason = match (
            startup::decide(existing.is_some(), log_end, resumable),
            ledger,
        ) {
            (Startup::Stream, _) => return Ok(0),
            (Startup::SlotLost, _) => return Err(slot_lost(slot)),
            (Startup::Snapshot, _) => {
                return snapshot::take(&self.source, slot, options, repl, log, tables, stats).await;
            }
            (Startup::ResumeSnapshot, Some(Ok(found))) => {
                match snapshot::resume(&self.source, options, found, log, tables, stats).await? {
                    Ok(rows) => return Ok(rows),
                    // Found out while resuming: as for a ledger that does not match.
                    Err(why) => Some(why),
                }
            }
            // The table resumes only with a resumable ledger: this one does not match.
            (Startup::ResumeSnapshot | Startup::RecreateAndSnapshot, ledger) => {
                ledger.and_then(Result::err)
            }
        };
        match reason {
            Some(reason) => {
                tracing::info!(slot, reason = %reason, "snapshot was not finished and cannot be resumed: re-creating the slot");
            }
            None => tracing::info!(slot, "snapshot was not finished: re-creating the slot"),
        }
        repl.drop_slot(slot, false).await?;
        snapshot::take(&self.source, slot, options, repl, log, tables, stats).await
    }
}

/// The error of a change log holding changes from a slot that is gone.
fn slot_lost(slot: &str) -> Error {
    Error::prerequisite(
        format!(
            "replication slot \"{slot}\" does not exist, but the change log already holds changes from it"
        ),
        "Changes made while the slot was missing cannot be recovered. Remove the change log directory and the target tables, then sync again to take a new snapshot.",
    )
}

/// The options of `START_REPLICATION`: protocol 2 with `streaming` when transactions may be
/// streamed before their commit, `messages` for the caught-up marker.
fn replication_options(
    publication_names: &str,
    streaming: bool,
    messages: bool,
) -> Vec<(&'static str, &str)> {
    let mut options = vec![
        ("proto_version", if streaming { "2" } else { "1" }),
        ("publication_names", publication_names),
    ];
    if streaming {
        options.push(("streaming", "on"));
    }
    if messages {
        options.push(("messages", "true"));
    }
    options
}

/// How often streaming checks that every captured table is still in the publication.
pub(crate) const PUBLICATION_CHECK: Duration = Duration::from_secs(10);

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
            sluice_postgres_client::quote_ident(publication)
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
        Error::protocol("pg_current_wal_insert_lsn() returned an invalid LSN".to_owned())
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

/// The action of a failpoint set to `return`: ends the process at once, as a crash would (no
/// destructors, nothing flushed or sent).
#[cfg(feature = "failpoints")]
pub(crate) fn crash(failpoint: &str) -> ! {
    eprintln!("failpoint {failpoint}: aborting the process");
    std::process::abort()
}
