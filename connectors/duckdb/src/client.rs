//! The connection to the database file: opening it, running statements and transactions,
//! appending staged rows. Blocking calls: the destination runs them off the async runtime.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use duckdb::arrow::array::{ArrayRef, Int64Builder, StringBuilder};
use duckdb::arrow::datatypes::{DataType, Field, Schema};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::{Connection, OptionalExt as _};

use crate::encode::StagedRow;
use crate::error::{Error, OpenSource, Result};
use sluice_sql::{DuckDb, STAGE, SqlDialect as _};

/// An open database file.
pub(crate) struct Client {
    conn: Connection,
    /// Whether the json extension is loaded (JSON columns are `JSON`, else `VARCHAR`).
    pub json: bool,
}

impl Client {
    /// Opens (creating when missing) the database file at `path`, with its parent directories,
    /// limiting DuckDB's memory to `memory_limit_bytes`.
    pub(crate) fn open(path: &Path, memory_limit_bytes: u64) -> Result<Client> {
        let open_error = |source: OpenSource| Error::Open {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| open_error(e.into()))?;
        }
        let conn = Connection::open(path).map_err(|e| {
            if e.to_string().contains("Could not set lock on file") {
                Error::Locked {
                    path: PathBuf::from(path),
                    source: e,
                }
            } else {
                open_error(e.into())
            }
        })?;
        // Whole KiB: DuckDB takes the limit as text with a unit.
        conn.execute_batch(&format!(
            "SET memory_limit = '{}KiB'",
            memory_limit_bytes / 1024
        ))
        .map_err(Error::sql("setting the memory limit"))?;
        let json = conn
            .query_row(&DuckDb::json_loaded(), [], |r| r.get::<_, bool>(0))
            .map_err(Error::sql("checking for the json extension"))?;
        Ok(Client { conn, json })
    }

    /// Another connection to the same database.
    pub(crate) fn try_clone(&self) -> Result<Connection> {
        self.conn
            .try_clone()
            .map_err(Error::sql("opening a second connection"))
    }

    /// The dialect of this database (JSON columns as the json extension allows).
    pub(crate) fn dialect(&self) -> DuckDb {
        DuckDb { json: self.json }
    }

    /// Runs one statement (or several separated by `;`) that returns no rows.
    pub(crate) fn execute(&self, statement: &str, context: &str) -> Result<()> {
        self.conn
            .execute_batch(statement)
            .map_err(Error::sql(context))
    }

    /// `(column_name, data_type)` of a table in column order, `None` when it does not exist.
    pub(crate) fn table_columns(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<Option<Vec<(String, String)>>> {
        let context = || {
            format!(
                "reading the columns of {}",
                self.dialect().quote_ident(table)
            )
        };
        let mut stmt = self
            .conn
            .prepare(&self.dialect().table_columns(schema, table))
            .map_err(|e| Error::sql(context())(e))?;
        let columns = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .and_then(|rows| rows.collect::<duckdb::Result<Vec<_>>>())
            .map_err(|e| Error::sql(context())(e))?;
        Ok((!columns.is_empty()).then_some(columns))
    }

    /// The first row of a query of BOOLEAN columns.
    pub(crate) fn query_bools(&self, query: &str, n: usize, context: &str) -> Result<Vec<bool>> {
        self.conn
            .query_row(query, [], |r| (0..n).map(|i| r.get::<_, bool>(i)).collect())
            .map_err(Error::sql(context))
    }

    /// `(position, applied_lsn, applied_commit_ts)` of a stored checkpoint.
    pub(crate) fn query_checkpoint(&self, query: &str) -> Result<Option<(String, i64, i64)>> {
        self.conn
            .query_row(query, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
            .map_err(Error::sql("reading the checkpoint"))
    }

    /// Appends rows to the staging table (created beforehand with `columns` data columns and
    /// `keys` old-key columns), stopping at the first row that cannot be encoded. Rows go in
    /// as Arrow record batches of [`APPEND_ROWS`], column by column.
    pub(crate) fn append_stage<'a>(
        &self,
        columns: usize,
        keys: usize,
        rows: impl Iterator<Item = Result<StagedRow<'a>>>,
    ) -> Result<()> {
        let context = "appending rows to the staging table";
        let mut appender = self
            .conn
            .appender_to_catalog_and_db(STAGE, "temp", "main")
            .map_err(Error::sql(context))?;
        let mut chunk = StageChunk::new(columns, keys);
        for row in rows {
            chunk.push(row?);
            if chunk.rows == APPEND_ROWS {
                appender
                    .append_record_batch(chunk.finish()?)
                    .map_err(Error::sql(context))?;
            }
        }
        if chunk.rows > 0 {
            appender
                .append_record_batch(chunk.finish()?)
                .map_err(Error::sql(context))?;
        }
        appender.flush().map_err(Error::sql(context))
    }

    /// Runs `f` in one transaction: committed when it succeeds, rolled back when it fails.
    pub(crate) fn transaction<T>(&self, f: impl FnOnce(&Client) -> Result<T>) -> Result<T> {
        self.execute("BEGIN TRANSACTION", "beginning a transaction")?;
        self.finish_transaction(f(self))
    }

    /// Ends the open transaction: commits it when `result` is a success, rolls it back
    /// otherwise (or when the commit fails).
    pub(crate) fn finish_transaction<T>(&self, result: Result<T>) -> Result<T> {
        let result = result.and_then(|v| {
            self.execute("COMMIT", "committing")?;
            Ok(v)
        });
        if result.is_err() {
            self.rollback();
        }
        result
    }

    /// Rolls back the open transaction, if any.
    pub(crate) fn rollback(&self) {
        // After a failed COMMIT DuckDB has already rolled back; ignore "no transaction".
        let _ = self.conn.execute_batch("ROLLBACK");
    }
}

/// Rows per record batch appended to the staging table: a multiple of DuckDB's vector size
/// (2,048), small enough that the column builders stay a few MiB.
const APPEND_ROWS: usize = 16 * 2048;

/// The staging table's columns being filled: one text builder per data column, then op,
/// position, commit time, the unchanged marks and the old key columns.
struct StageChunk {
    values: Vec<StringBuilder>,
    op: StringBuilder,
    lsn: Int64Builder,
    commit_ts: Int64Builder,
    unchanged: StringBuilder,
    moved_from: Vec<StringBuilder>,
    rows: usize,
}

impl StageChunk {
    fn new(columns: usize, keys: usize) -> StageChunk {
        StageChunk {
            values: (0..columns).map(|_| StringBuilder::new()).collect(),
            op: StringBuilder::new(),
            lsn: Int64Builder::new(),
            commit_ts: Int64Builder::new(),
            unchanged: StringBuilder::new(),
            moved_from: (0..keys).map(|_| StringBuilder::new()).collect(),
            rows: 0,
        }
    }

    fn push(&mut self, row: StagedRow<'_>) {
        for (builder, value) in self.values.iter_mut().zip(&row.values) {
            builder.append_option(value.as_deref());
        }
        self.op.append_value(row.op);
        self.lsn.append_value(row.lsn);
        self.commit_ts.append_value(row.commit_ts);
        self.unchanged.append_option(row.unchanged.as_deref());
        for (builder, value) in self.moved_from.iter_mut().zip(&row.moved_from) {
            builder.append_option(value.as_deref());
        }
        self.rows += 1;
    }

    /// The rows pushed so far as one record batch; the builders start over empty.
    fn finish(&mut self) -> Result<RecordBatch> {
        let text = |name: String, nullable| Field::new(name, DataType::Utf8, nullable);
        let mut fields = Vec::with_capacity(self.values.len() + 4 + self.moved_from.len());
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(fields.capacity());
        for (i, b) in self.values.iter_mut().enumerate() {
            fields.push(text(format!("c{i}"), true));
            arrays.push(Arc::new(b.finish()));
        }
        fields.push(text("op".into(), false));
        arrays.push(Arc::new(self.op.finish()));
        fields.push(Field::new("lsn", DataType::Int64, false));
        arrays.push(Arc::new(self.lsn.finish()));
        fields.push(Field::new("commit_ts", DataType::Int64, false));
        arrays.push(Arc::new(self.commit_ts.finish()));
        fields.push(text("unchanged".into(), true));
        arrays.push(Arc::new(self.unchanged.finish()));
        for (j, b) in self.moved_from.iter_mut().enumerate() {
            fields.push(text(format!("k{j}"), true));
            arrays.push(Arc::new(b.finish()));
        }
        self.rows = 0;
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| {
            Error::sql("building the rows to stage")(duckdb::Error::ToSqlConversionFailure(
                Box::new(e),
            ))
        })
    }
}
