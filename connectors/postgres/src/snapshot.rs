//! The initial snapshot: every captured table copied with `COPY ... TO STDOUT` inside a
//! `REPEATABLE READ` transaction that imports the slot's exported snapshot, so the copy sees
//! exactly the commits before the slot's consistent point and streaming continues from there.
//!
//! `COPY` text format (what [`CopyTextParser`] reads): one row per line ending in `\n`, fields
//! separated by `\t`, `\N` for NULL, and backslash escapes `\b \f \n \r \t \v \\`, `\NNN`
//! (octal) and `\xHH` (hex) for bytes inside a field. Field text is the type's output
//! function, the same text form `pgoutput` sends.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use sluice_core::telemetry::{Stats, now_micros, table_label};
use sluice_core::{
    Change, ChangeLogWriter, LogRecord, Lsn, Op, RelationSchema, TableId, Transaction, TxnKind,
    Value,
};
use tokio_postgres::Client;

use crate::catalog;
use crate::config::SourceConfig;
use crate::error::{Error, Result};
use crate::ident::{quote_ident, quote_literal};
use crate::replication::{ReplicationClient, SlotOptions};

/// Snapshot rows are appended in records of about this size.
pub const SNAPSHOT_CHUNK_BYTES: usize = 4 * 1024 * 1024;

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

/// The `COPY` statement for a relation's columns. Pure.
pub fn copy_statement(relation: &RelationSchema) -> String {
    let columns = relation
        .columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "COPY (SELECT {columns} FROM {}.{}) TO STDOUT",
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

/// Copies the rows of `relation` into `sink` in chunks of about `chunk_bytes`; returns the
/// number of rows.
pub async fn copy_table<S: RowSink>(
    client: &Client,
    relation: &RelationSchema,
    chunk_bytes: usize,
    sink: &mut S,
) -> Result<u64> {
    let stream = client
        .copy_out(&copy_statement(relation))
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

/// Creates the slot with an exported snapshot, copies every table into `log` between
/// `SnapshotBegin` and `SnapshotEnd`; returns the rows copied.
pub(crate) async fn take<W: ChangeLogWriter>(
    source: &SourceConfig,
    slot: &str,
    repl: &mut ReplicationClient,
    log: &mut W,
    tables: &[TableId],
    stats: &Stats,
) -> Result<u64> {
    let created = repl.create_slot(slot, &SlotOptions::default()).await?;
    let cp = created.consistent_point;
    let snapshot_name = created.snapshot_name.ok_or_else(|| {
        Error::Protocol("CREATE_REPLICATION_SLOT returned no snapshot name".to_owned())
    })?;
    tracing::info!(slot = %slot, lsn = %cp, tables = tables.len(), "slot created, copying tables");
    // The exported snapshot lives while `repl` stays idle: copy on another connection.
    let copier = crate::connect(source).await?;
    begin(&copier, &snapshot_name).await?;
    let mut relations = Vec::with_capacity(tables.len());
    let mut planned = Vec::with_capacity(tables.len());
    for t in tables {
        let relation = catalog::relation_schema(&copier, t).await?;
        planned.push((
            t.clone(),
            catalog::estimated_rows(&copier, relation.oid).await?,
        ));
        relations.push(Arc::new(relation));
    }
    stats.snapshot_planned(&planned);
    crate::capture::append(
        log,
        &[LogRecord::SnapshotBegin {
            consistent_point: cp,
            relations: relations.clone(),
        }],
    )
    .await?;
    let rows_at = Lsn(cp.0.saturating_sub(1));
    let commit_ts = now_micros();
    let mut total = 0;
    for relation in &relations {
        let started = Instant::now();
        stats.snapshot_started(&relation.table);
        let mut sink = SnapshotSink {
            log: &mut *log,
            relation,
            rows_at,
            commit_ts,
            stats,
            label: table_label(&relation.table),
        };
        let rows = copy_table(&copier, relation, SNAPSHOT_CHUNK_BYTES, &mut sink).await?;
        stats.snapshot_done(&relation.table);
        total += rows;
        tracing::info!(table = %relation.table, rows, elapsed_ms = started.elapsed().as_millis() as u64, "table copied");
    }
    commit(&copier).await?;
    crate::capture::append(
        log,
        &[LogRecord::SnapshotEnd {
            consistent_point: cp,
        }],
    )
    .await?;
    Ok(total)
}

/// Appends snapshot rows as snapshot transactions positioned just before the consistent point.
struct SnapshotSink<'a, W> {
    log: &'a mut W,
    relation: &'a Arc<RelationSchema>,
    rows_at: Lsn,
    commit_ts: i64,
    stats: &'a Stats,
    /// The table's name as a metric label.
    label: String,
}

impl<W: ChangeLogWriter> RowSink for SnapshotSink<'_, W> {
    async fn accept(&mut self, rows: Vec<Vec<Value>>) -> Result<()> {
        let n = rows.len() as u64;
        let changes = rows
            .into_iter()
            .map(|new| Change {
                relation: self.relation.clone(),
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
        crate::capture::append(self.log, &[record]).await?;
        // A crash here leaves an unfinished snapshot in the log: the next run starts it over.
        #[cfg(feature = "failpoints")]
        fail::fail_point!("snapshot-chunk", |_| crate::capture::crash(
            "snapshot-chunk"
        ));
        self.stats.snapshot_rows(&self.relation.table, n);
        self.stats.captured(n);
        metrics::counter!("sluice_snapshot_rows_total", "table" => self.label.clone()).increment(n);
        Ok(())
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
