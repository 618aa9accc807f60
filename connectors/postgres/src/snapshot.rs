//! The initial snapshot: every captured table copied with `COPY ... TO STDOUT` inside
//! `REPEATABLE READ` transactions that import the slot's exported snapshot, so the copy sees
//! exactly the commits before the slot's consistent point `C` and streaming continues from
//! there.
//!
//! **Parallel chunks.** Each table is split into chunks (key ranges, or heap block ranges for
//! tables without a key: see [`crate::chunk`]), planned once inside the snapshot. Up to
//! `[source] snapshot_workers` connections import the same exported snapshot
//! (`SET TRANSACTION SNAPSHOT`), so they all see the same data, and take chunks from one queue.
//! They send rows over a bounded channel to the single appender, which owns the change log
//! writer: snapshot rows become `Transaction` records of kind `Snapshot` at position `C - 1`,
//! between `SnapshotBegin { C }` and `SnapshotEnd { C }`. Records of different chunks
//! interleave; each carries its relation, and no record spans two chunks.
//!
//! **Resume.** The change log is capture's checkpoint (the loader's is in the target). In
//! capture's state directory, a chunk ledger ([`crate::ledger`]) records `C`, the chunk boundaries and which chunks
//! are durable in the log (marked after `append` returned for a chunk's last record). A run
//! that finds the slot, a log ending inside the snapshot and a ledger that matches both (same
//! `C`, the slot still at `C`, the last snapshot record at a position the ledger wrote, the
//! same tables and table shapes) continues instead of starting over:
//!
//! 1. it keeps the slot (its stream still starts at `C`) and writes no second `SnapshotBegin`;
//! 2. it opens a temporary slot with an exported snapshot on a second replication connection,
//!    at a new consistent point `C'` > `C`, and copies only the unfinished chunks under it,
//!    at position `C' - 1` (a chunk cut short by the crash is copied whole again);
//! 3. it writes `SnapshotEnd { C }` with the original `C` and streams from the slot.
//!
//! Why nothing is lost or doubled: the stream replays every change committed after `C`. A
//! change committed before `C'` has a commit position below `C' - 1`, so the target's position
//! guard (a row is written only by a change at least as new as the row) skips it for rows
//! copied at `C' - 1` (they already show it) and applies it to rows copied at `C - 1` (they
//! do not). Changes from `C'` on win everywhere. A chunk copied twice (cut short, or durable
//! but not yet marked) leaves rows at `C - 1` that the copy at `C' - 1` overwrites, and rows
//! deleted meanwhile are removed by their replayed delete. Within one loader batch the newest
//! record of a key wins, which is the replayed change: the changes that follow it up to `C'`
//! bring the row to its state at `C'`. Until streaming passes `C'` the target mixes rows as of
//! `C'` with rows as of earlier positions: it is consistent again from then on.
//!
//! Tables without a key are appended without a guard: when one of them was not finished, the
//! slot is dropped and the whole snapshot starts over (`SnapshotBegin` of the new snapshot
//! removes the rows of the old one), as it does when there is no usable ledger.
//!
//! `COPY` text format (what [`CopyTextParser`] reads): one row per line ending in `\n`, fields
//! separated by `\t`, `\N` for NULL, and backslash escapes `\b \f \n \r \t \v \\`, `\NNN`
//! (octal) and `\xHH` (hex) for bytes inside a field. Field text is the type's output
//! function, the same text form `pgoutput` sends.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use sluice_core::telemetry::{Stats, now_micros, table_label};
use sluice_core::{
    Change, ChangeLogWriter, LastAppended, LogRecord, Lsn, Op, RelationSchema, TableId,
    Transaction, TxnKind, Value,
};
use tokio::sync::mpsc;
use tokio_postgres::Client;

use crate::SourceConfig;
use crate::capture::append;
use crate::chunk;
use crate::error::{Error, Result};
use crate::ledger::{self, Ledger, LedgerTable};
use crate::replication::{ReplicationClient, SlotOptions, SnapshotAction};
use crate::slot::SlotState;
use crate::{catalog, connect};
use sluice_postgres_client::{quote_ident, quote_literal};

/// Snapshot rows are appended in records of about this size.
pub const SNAPSHOT_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// How the initial snapshot runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotOptions {
    /// Connections copying chunks at once.
    pub workers: usize,
    /// Rows per chunk, about.
    pub chunk_rows: u64,
    /// The chunk ledger's file (in capture's state directory, by default the change log's);
    /// `None`: an interrupted snapshot always starts over.
    pub ledger: Option<PathBuf>,
}

/// The ledger's file in capture's state directory `dir`.
pub fn ledger_path(dir: &Path) -> PathBuf {
    dir.join(ledger::FILE_NAME)
}

/// Session settings that make every copied value print the same way the replication
/// connection prints it.
pub const SESSION_SETTINGS: &str = "SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres'; \
     SET extra_float_digits = 3; SET bytea_output = 'hex'; SET TimeZone = 'UTC'";

/// Starts the snapshot transaction on `client`, importing `snapshot_name`.
pub async fn begin(client: &Client, snapshot_name: &str) -> Result<()> {
    client
        .batch_execute(&format!(
            "{SESSION_SETTINGS}; BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
             SET TRANSACTION SNAPSHOT {}",
            quote_literal(snapshot_name)
        ))
        .await
        .map_err(|e| Error::client("importing the slot's snapshot", e))
}

/// Ends the snapshot transaction.
pub async fn commit(client: &Client) -> Result<()> {
    client
        .batch_execute("COMMIT")
        .await
        .map_err(|e| Error::client("ending the snapshot", e))
}

/// The `COPY` statement for a relation's columns, of the rows matching `condition` (all
/// when `None`). Pure.
pub fn copy_statement(relation: &RelationSchema, condition: Option<&str>) -> String {
    let columns = relation
        .columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let filter = condition.map(|c| format!(" WHERE {c}")).unwrap_or_default();
    format!(
        "COPY (SELECT {columns} FROM {}.{}{filter}) TO STDOUT",
        quote_ident(&relation.table.schema),
        quote_ident(&relation.table.name)
    )
}

/// Receives the rows of a table copy, chunk by chunk.
pub trait RowSink {
    /// Takes one chunk of rows, aligned with the relation's columns.
    fn accept(
        &mut self,
        rows: Vec<Vec<Value>>,
    ) -> impl std::future::Future<Output = Result<()>> + Send;
}

/// Copies the rows of `relation` matching `condition` into `sink` in pieces of about
/// `chunk_bytes`; returns the number of rows.
pub async fn copy_table<S: RowSink>(
    client: &Client,
    relation: &RelationSchema,
    condition: Option<&str>,
    chunk_bytes: usize,
    sink: &mut S,
) -> Result<u64> {
    let stream = client
        .copy_out(&copy_statement(relation, condition))
        .await
        .map_err(|e| Error::client(format!("copying {}", relation.table), e))?;
    let mut stream = std::pin::pin!(stream);
    let mut parser = CopyTextParser::new(relation.columns.len());
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk: Bytes =
            chunk.map_err(|e| Error::client(format!("copying {}", relation.table), e))?;
        parser
            .feed(&chunk, |row| {
                bytes += row.iter().map(Value::size).sum::<usize>();
                rows.push(row);
            })
            .map_err(|why| Error::snapshot(relation, why))?;
        if bytes >= chunk_bytes {
            total += rows.len() as u64;
            sink.accept(std::mem::take(&mut rows)).await?;
            bytes = 0;
        }
    }
    parser
        .finish()
        .map_err(|why| Error::snapshot(relation, why))?;
    if !rows.is_empty() {
        total += rows.len() as u64;
        sink.accept(rows).await?;
    }
    Ok(total)
}

/// The chunk ledger of an unfinished snapshot that can be continued: it describes the
/// snapshot the change log ends in and the slot's position (see [`matches_log`]).
pub(crate) struct Resumable {
    path: PathBuf,
    ledger: Ledger,
}

/// Reads the chunk ledger and checks it against the change log's last record, the slot and
/// the captured tables; `Err` says why the snapshot cannot be continued.
pub(crate) fn resumable(
    options: &SnapshotOptions,
    last: Option<LastAppended>,
    slot: &SlotState,
    tables: &[TableId],
) -> std::result::Result<Resumable, String> {
    let path = options
        .ledger
        .clone()
        .ok_or("no snapshot ledger is kept (resuming is off)")?;
    let ledger = match Ledger::load(&path) {
        Ok(Some(l)) => l,
        Ok(None) => return Err("no snapshot ledger".to_owned()),
        Err(why) => return Err(format!("the snapshot ledger is unusable: {why}")),
    };
    matches_log(&ledger, last, slot, tables)?;
    Ok(Resumable { path, ledger })
}

/// Creates the slot with an exported snapshot, plans the chunks, and copies every table into
/// `log` between `SnapshotBegin` and `SnapshotEnd`; returns the rows copied.
pub(crate) async fn take<W: ChangeLogWriter>(
    source: &SourceConfig,
    slot: &str,
    options: &SnapshotOptions,
    repl: &mut ReplicationClient,
    log: &mut W,
    tables: &[TableId],
    stats: &Stats,
) -> Result<u64> {
    let created = repl.create_slot(slot, &SlotOptions::default()).await?;
    let cp = created.consistent_point;
    let snapshot_name = created.snapshot_name.ok_or_else(|| {
        Error::protocol("CREATE_REPLICATION_SLOT returned no snapshot name".to_owned())
    })?;
    tracing::info!(slot, lsn = %cp, tables = tables.len(), "slot created, copying tables");
    // The exported snapshot lives while `repl` stays idle: plan and copy on other connections.
    let planner = connect(source).await?;
    begin(&planner, &snapshot_name).await?;
    let version = server_version(&planner).await?;
    let mut relations = Vec::with_capacity(tables.len());
    let mut planned = Vec::with_capacity(tables.len());
    let mut ledger_tables = Vec::with_capacity(tables.len());
    for t in tables {
        let relation = catalog::relation_schema(&planner, t).await?;
        planned.push((
            t.clone(),
            catalog::estimated_rows(&planner, relation.oid).await?,
        ));
        let plan = chunk::plan(&planner, &relation, options.chunk_rows, version).await?;
        ledger_tables.push(LedgerTable {
            table: t.clone(),
            shape: ledger::shape(&relation),
            key: plan.key,
            done: vec![false; plan.chunks.len()],
            chunks: plan.chunks,
        });
        relations.push(Arc::new(relation));
    }
    commit(&planner).await?;
    drop(planner);
    stats.snapshot_planned(&planned);
    let rows_at = Lsn(cp.0.saturating_sub(1));
    let mut ledger = Ledger {
        consistent_point: cp,
        rows_at: vec![rows_at],
        tables: ledger_tables,
    };
    // Before `SnapshotBegin`: a log ending in this snapshot always has its ledger.
    save(&ledger, options.ledger.as_deref()).await?;
    append(
        log,
        &[LogRecord::SnapshotBegin {
            consistent_point: cp,
            relations: relations.clone(),
        }],
    )
    .await?;
    let (_, chunks) = ledger.progress();
    tracing::info!(lsn = %cp, chunks, workers = options.workers, "copying snapshot chunks");
    let total = copy_chunks(
        source,
        &snapshot_name,
        options,
        &relations,
        &mut ledger,
        rows_at,
        log,
        stats,
    )
    .await?;
    finish(log, cp, options.ledger.as_deref()).await?;
    tracing::info!(lsn = %cp, rows = total, chunks, "snapshot copied");
    Ok(total)
}

/// Continues an unfinished snapshot under a new temporary snapshot (see the module docs).
/// `Ok(Err(reason))`: it cannot be continued after all, the snapshot must start over.
pub(crate) async fn resume<W: ChangeLogWriter>(
    source: &SourceConfig,
    options: &SnapshotOptions,
    resumable: Resumable,
    log: &mut W,
    tables: &[TableId],
    stats: &Stats,
) -> Result<std::result::Result<u64, String>> {
    let Resumable { path, mut ledger } = resumable;
    let path = path.as_path();
    // A second replication connection: its temporary slot exports a snapshot at a new
    // consistent point and disappears when the connection ends.
    let mut temp = ReplicationClient::connect(source).await?;
    let name = format!("sluice_resume_{}", temp.process_id());
    let created = temp
        .create_slot(
            &name,
            &SlotOptions {
                temporary: true,
                snapshot: SnapshotAction::Export,
            },
        )
        .await?;
    let snapshot_name = created.snapshot_name.ok_or_else(|| {
        Error::protocol("CREATE_REPLICATION_SLOT returned no snapshot name".to_owned())
    })?;
    let resumed_at = created.consistent_point;
    if resumed_at < ledger.consistent_point {
        return Ok(Err(format!(
            "the new snapshot's position {resumed_at} is before the slot's {}",
            ledger.consistent_point
        )));
    }
    let planner = connect(source).await?;
    begin(&planner, &snapshot_name).await?;
    let mut relations = Vec::with_capacity(tables.len());
    let mut planned = Vec::with_capacity(tables.len());
    for (t, lt) in tables.iter().zip(&ledger.tables) {
        let relation = catalog::relation_schema(&planner, t).await?;
        if ledger::shape(&relation) != lt.shape {
            return Ok(Err(format!(
                "table {t} changed (columns or key) since the snapshot began"
            )));
        }
        let estimate = if lt.finished() {
            Some(0)
        } else {
            catalog::estimated_rows(&planner, relation.oid).await?
        };
        planned.push((t.clone(), estimate));
        relations.push(Arc::new(relation));
    }
    commit(&planner).await?;
    drop(planner);
    stats.snapshot_planned(&planned);
    let rows_at = Lsn(resumed_at.0.saturating_sub(1));
    ledger.rows_at.push(rows_at);
    save(&ledger, Some(path)).await?;
    let (done, chunks) = ledger.progress();
    tracing::info!(
        lsn = %ledger.consistent_point,
        resume_lsn = %resumed_at,
        chunks_done = done,
        chunks_left = chunks - done,
        workers = options.workers,
        "resuming the snapshot: copying the chunks not yet in the change log under a new snapshot"
    );
    let cp = ledger.consistent_point;
    let total = copy_chunks(
        source,
        &snapshot_name,
        options,
        &relations,
        &mut ledger,
        rows_at,
        log,
        stats,
    )
    .await?;
    finish(log, cp, Some(path)).await?;
    tracing::info!(lsn = %cp, rows = total, chunks = chunks - done, "snapshot copied");
    // Ends the connection, which drops the temporary slot.
    temp.close().await?;
    Ok(Ok(total))
}

/// Whether `ledger` describes the unfinished snapshot that the change log ends in and that the
/// slot is at; `Err` says why not. Pure.
pub(crate) fn matches_log(
    ledger: &Ledger,
    last: Option<LastAppended>,
    slot: &SlotState,
    tables: &[TableId],
) -> std::result::Result<(), String> {
    let cp = ledger.consistent_point;
    match last {
        Some(LastAppended::SnapshotBegin { consistent_point }) if consistent_point == cp => {}
        Some(LastAppended::Transaction {
            kind: TxnKind::Snapshot,
            commit_lsn,
            ..
        }) if ledger.rows_at.contains(&commit_lsn) => {}
        _ => {
            return Err(format!(
                "the change log does not end in the snapshot the ledger describes (consistent point {cp})"
            ));
        }
    }
    if slot.confirmed_flush_lsn != Some(cp) {
        return Err(format!(
            "the slot is at {}, not at the snapshot's consistent point {cp}",
            slot.confirmed_flush_lsn
                .map_or_else(|| "no position".to_owned(), |l| l.to_string())
        ));
    }
    let ledger_tables: Vec<&TableId> = ledger.tables.iter().map(|t| &t.table).collect();
    if ledger_tables != tables.iter().collect::<Vec<_>>() {
        return Err("the captured tables changed since the snapshot began".to_owned());
    }
    if let Some(t) = ledger
        .tables
        .iter()
        .find(|t| t.key.is_none() && !t.finished())
    {
        return Err(format!(
            "table {} has no key (primary key or replica identity index) and its copy was not finished: rows appended without a key cannot be replaced by a later copy",
            t.table
        ));
    }
    Ok(())
}

/// Appends `SnapshotEnd` and removes the ledger, which the log no longer needs.
async fn finish<W: ChangeLogWriter>(log: &mut W, cp: Lsn, ledger: Option<&Path>) -> Result<()> {
    append(
        log,
        &[LogRecord::SnapshotEnd {
            consistent_point: cp,
        }],
    )
    .await?;
    if let Some(path) = ledger.map(Path::to_path_buf) {
        let removed = tokio::task::spawn_blocking(move || Ledger::remove(&path)).await;
        if let Ok(Err(e)) = removed {
            // Harmless: a log that ends past `SnapshotEnd` never reads it.
            tracing::warn!(error = %e, "could not remove the snapshot ledger");
        }
    }
    Ok(())
}

/// Writes the ledger durably, off the runtime's threads.
async fn save(ledger: &Ledger, path: Option<&Path>) -> Result<()> {
    let Some(path) = path.map(Path::to_path_buf) else {
        return Ok(());
    };
    let ledger = ledger.clone();
    let at = path.clone();
    tokio::task::spawn_blocking(move || ledger.save(&at))
        .await
        .map_err(|e| Error::Ledger {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?
        .map_err(|source| Error::Ledger { path, source })
}

async fn server_version(client: &Client) -> Result<i32> {
    client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map(|r| r.get(0))
        .map_err(|e| Error::client("reading the server version", e))
}

/// One chunk for a worker to copy.
struct Job {
    table: usize,
    chunk: usize,
    relation: Arc<RelationSchema>,
    condition: Option<String>,
}

/// What workers send to the appender.
enum Piece {
    Rows {
        table: usize,
        rows: Vec<Vec<Value>>,
    },
    /// Every row of the chunk was sent before this.
    Done {
        table: usize,
        chunk: usize,
    },
    Failed(Error),
}

/// Copies the chunks the ledger does not mark done with up to `options.workers` connections
/// importing `snapshot_name`, appending their rows at `rows_at` and marking each chunk done
/// once its rows are durable; returns the rows copied.
#[allow(clippy::too_many_arguments)]
async fn copy_chunks<W: ChangeLogWriter>(
    source: &SourceConfig,
    snapshot_name: &str,
    options: &SnapshotOptions,
    relations: &[Arc<RelationSchema>],
    ledger: &mut Ledger,
    rows_at: Lsn,
    log: &mut W,
    stats: &Stats,
) -> Result<u64> {
    let mut jobs = VecDeque::new();
    let mut left = vec![0usize; relations.len()];
    for (i, (lt, relation)) in ledger.tables.iter().zip(relations).enumerate() {
        for (c, bounds) in lt.chunks.iter().enumerate() {
            if !lt.done[c] {
                left[i] += 1;
                jobs.push_back(Job {
                    table: i,
                    chunk: c,
                    relation: relation.clone(),
                    condition: chunk::condition(lt.key.as_deref(), bounds),
                });
            }
        }
        if left[i] == 0 {
            stats.snapshot_started(&relation.table);
            stats.snapshot_done(&relation.table);
        }
    }
    let workers = options.workers.clamp(1, jobs.len().max(1));
    let jobs = Arc::new(Mutex::new(jobs));
    // Each piece holds up to SNAPSHOT_CHUNK_BYTES: this bounds what waits for the appender.
    let (tx, mut rx) = mpsc::channel::<Piece>(workers);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (source, name, jobs, tx) = (
            source.clone(),
            snapshot_name.to_owned(),
            jobs.clone(),
            tx.clone(),
        );
        set.spawn(async move {
            if let Err(e) = work(&source, &name, &jobs, &tx).await {
                let _ = tx.send(Piece::Failed(e)).await;
            }
        });
    }
    drop(tx);
    let mut sink = SnapshotSink {
        log,
        rows_at,
        commit_ts: now_micros(),
        stats,
        tables: relations
            .iter()
            .map(|r| TableProgress {
                relation: r.clone(),
                label: table_label(&r.table),
                started: None,
                rows: 0,
            })
            .collect(),
    };
    let mut total = 0;
    while let Some(piece) = rx.recv().await {
        match piece {
            Piece::Rows { table, rows } => total += sink.append(table, rows).await?,
            Piece::Done { table, chunk } => {
                ledger.tables[table].done[chunk] = true;
                save(ledger, options.ledger.as_deref()).await?;
                left[table] -= 1;
                if left[table] == 0 {
                    sink.table_done(table);
                }
            }
            Piece::Failed(e) => return Err(e),
        }
    }
    while let Some(joined) = set.join_next().await {
        if let Err(e) = joined
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    if let Some(t) = left.iter().position(|n| *n > 0) {
        return Err(Error::snapshot(
            &relations[t],
            "the copy stopped before every chunk was copied".to_owned(),
        ));
    }
    Ok(total)
}

/// A copy worker: one connection in the exported snapshot, chunks from the shared queue.
async fn work(
    source: &SourceConfig,
    snapshot_name: &str,
    jobs: &Mutex<VecDeque<Job>>,
    tx: &mpsc::Sender<Piece>,
) -> Result<()> {
    let client = connect(source).await?;
    begin(&client, snapshot_name).await?;
    loop {
        let job = jobs
            .lock()
            .expect("no worker panics holding the queue")
            .pop_front();
        let Some(job) = job else { break };
        let mut sender = ChunkSender {
            table: job.table,
            tx,
        };
        copy_table(
            &client,
            &job.relation,
            job.condition.as_deref(),
            SNAPSHOT_CHUNK_BYTES,
            &mut sender,
        )
        .await?;
        if tx
            .send(Piece::Done {
                table: job.table,
                chunk: job.chunk,
            })
            .await
            .is_err()
        {
            // The appender stopped (it failed): nothing to do.
            return Ok(());
        }
    }
    commit(&client).await
}

/// Sends a worker's rows to the appender.
struct ChunkSender<'a> {
    table: usize,
    tx: &'a mpsc::Sender<Piece>,
}

impl RowSink for ChunkSender<'_> {
    async fn accept(&mut self, rows: Vec<Vec<Value>>) -> Result<()> {
        self.tx
            .send(Piece::Rows {
                table: self.table,
                rows,
            })
            .await
            .map_err(|_| Error::protocol("the snapshot appender stopped".to_owned()))
    }
}

/// Per-table progress of the appender.
struct TableProgress {
    relation: Arc<RelationSchema>,
    /// The table's name as a metric label.
    label: String,
    started: Option<Instant>,
    rows: u64,
}

/// The single appender: snapshot rows become snapshot transactions positioned just before
/// the consistent point (`rows_at`).
struct SnapshotSink<'a, W> {
    log: &'a mut W,
    rows_at: Lsn,
    commit_ts: i64,
    stats: &'a Stats,
    tables: Vec<TableProgress>,
}

impl<W: ChangeLogWriter> SnapshotSink<'_, W> {
    async fn append(&mut self, table: usize, rows: Vec<Vec<Value>>) -> Result<u64> {
        let progress = &mut self.tables[table];
        if progress.started.is_none() {
            progress.started = Some(Instant::now());
            self.stats.snapshot_started(&progress.relation.table);
        }
        let n = rows.len() as u64;
        let changes = rows
            .into_iter()
            .map(|new| Change {
                relation: progress.relation.clone(),
                op: Op::Insert,
                new: Some(new),
                old: None,
            })
            .collect();
        let record = LogRecord::Transaction(Transaction {
            kind: TxnKind::Snapshot,
            xid: 0,
            commit_lsn: self.rows_at,
            end_lsn: self.rows_at,
            commit_ts: self.commit_ts,
            changes,
        });
        append(self.log, &[record]).await?;
        // A crash here leaves an unfinished snapshot in the log: the next run continues it
        // (or starts it over, see the module docs).
        #[cfg(feature = "failpoints")]
        fail::fail_point!("snapshot-chunk", |_| crate::capture::crash(
            "snapshot-chunk"
        ));
        let progress = &mut self.tables[table];
        progress.rows += n;
        self.stats.snapshot_rows(&progress.relation.table, n);
        self.stats.captured(n);
        metrics::counter!("sluice_snapshot_rows_total", "table" => progress.label.clone())
            .increment(n);
        Ok(n)
    }

    /// Every chunk of the table is durable.
    fn table_done(&mut self, table: usize) {
        let progress = &mut self.tables[table];
        let started = *progress.started.get_or_insert_with(|| {
            self.stats.snapshot_started(&progress.relation.table);
            Instant::now()
        });
        self.stats.snapshot_done(&progress.relation.table);
        tracing::info!(table = %progress.relation.table, rows = progress.rows, elapsed_ms = started.elapsed().as_millis() as u64, "table copied");
    }
}

/// Incremental parser of `COPY` text output.
pub struct CopyTextParser {
    columns: usize,
    partial: Vec<u8>,
}

impl CopyTextParser {
    pub fn new(columns: usize) -> Self {
        CopyTextParser {
            columns,
            partial: Vec::new(),
        }
    }

    /// Parses the complete lines of `chunk` (plus what an earlier chunk left), calling `row`
    /// for each; keeps an incomplete last line for the next call.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        mut row: impl FnMut(Vec<Value>),
    ) -> std::result::Result<(), String> {
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let line = &rest[..nl];
            rest = &rest[nl + 1..];
            if self.partial.is_empty() {
                row(parse_line(line, self.columns)?);
            } else {
                self.partial.extend_from_slice(line);
                let whole = std::mem::take(&mut self.partial);
                row(parse_line(&whole, self.columns)?);
            }
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }

    /// Fails if input ended in the middle of a line.
    pub fn finish(&self) -> std::result::Result<(), String> {
        if self.partial.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "COPY output ended inside a row ({} bytes)",
                self.partial.len()
            ))
        }
    }
}

fn parse_line(line: &[u8], columns: usize) -> std::result::Result<Vec<Value>, String> {
    let mut values = Vec::with_capacity(columns);
    for field in line.split(|&b| b == b'\t') {
        values.push(parse_field(field)?);
    }
    if values.len() != columns {
        return Err(format!(
            "COPY row has {} fields, expected {columns}",
            values.len()
        ));
    }
    Ok(values)
}

fn parse_field(field: &[u8]) -> std::result::Result<Value, String> {
    if field == b"\\N" {
        return Ok(Value::Null);
    }
    let text = if field.contains(&b'\\') {
        let mut out = Vec::with_capacity(field.len());
        let mut i = 0;
        while i < field.len() {
            let b = field[i];
            if b != b'\\' {
                out.push(b);
                i += 1;
                continue;
            }
            let Some(&e) = field.get(i + 1) else {
                return Err("COPY field ends with a lone backslash".to_owned());
            };
            i += 2;
            match e {
                b'b' => out.push(8),
                b'f' => out.push(12),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'v' => out.push(11),
                b'0'..=b'7' => {
                    let mut v = u32::from(e - b'0');
                    let mut n = 1;
                    while n < 3
                        && let Some(&d @ b'0'..=b'7') = field.get(i)
                    {
                        v = v * 8 + u32::from(d - b'0');
                        i += 1;
                        n += 1;
                    }
                    out.push((v & 0xFF) as u8);
                }
                b'x' if field.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                    let mut v = 0u32;
                    let mut n = 0;
                    while n < 2
                        && let Some(d) = field.get(i).and_then(|d| (*d as char).to_digit(16))
                    {
                        v = v * 16 + d;
                        i += 1;
                        n += 1;
                    }
                    out.push(v as u8);
                }
                other => out.push(other),
            }
        }
        String::from_utf8(out)
    } else {
        String::from_utf8(field.to_vec())
    };
    text.map(Value::Text)
        .map_err(|_| "COPY field is not valid UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]], columns: usize) -> Vec<Vec<Value>> {
        let mut p = CopyTextParser::new(columns);
        let mut rows = Vec::new();
        for c in chunks {
            p.feed(c, |r| rows.push(r)).expect("parses");
        }
        p.finish().expect("complete");
        rows
    }

    #[test]
    fn nulls_escapes_and_split_chunks() {
        let rows = parse(
            &[b"1\t\\N\ta\\tb\\\\c\\nd\n2\t", b"x\\101\\x41\t\\\\N\n"],
            3,
        );
        assert_eq!(
            rows[0],
            vec!["1".into(), Value::Null, Value::Text("a\tb\\c\nd".into())]
        );
        assert_eq!(
            rows[1],
            vec![
                "2".into(),
                Value::Text("xAA".into()),
                Value::Text("\\N".into())
            ]
        );
    }

    #[test]
    fn empty_string_is_not_null() {
        assert_eq!(
            parse(&[b"\t\n"], 2),
            vec![vec![Value::Text(String::new()), Value::Text(String::new())]]
        );
    }

    #[test]
    fn malformed_rows_are_errors() {
        let mut p = CopyTextParser::new(2);
        assert!(p.feed(b"1\n", |_| {}).is_err());
        let mut p = CopyTextParser::new(1);
        assert!(p.feed(b"a\\\n", |_| {}).is_err());
        let mut p = CopyTextParser::new(1);
        p.feed(b"abc", |_| {}).expect("partial is fine");
        assert!(p.finish().is_err());
        let mut p = CopyTextParser::new(1);
        assert!(p.feed(b"\\xff\n", |_| {}).is_err());
    }
}
