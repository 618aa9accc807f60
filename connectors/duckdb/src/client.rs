//! The connection to the database file: opening it, running statements and transactions,
//! appending staged rows. Blocking calls: the destination runs them off the async runtime.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use duckdb::Connection;
use duckdb::arrow::array::{ArrayRef, Int64Builder, StringBuilder};
use duckdb::arrow::datatypes::{DataType, Field, Schema};
use duckdb::arrow::record_batch::RecordBatch;

use crate::error::{Error, OpenSource, Result};
use sluice_sql::{DuckDb, STAGE};
use sluice_warehouse::{Rows, StagedRow};

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

    /// Runs one statement (or several separated by `;`) that returns no rows.
    pub(crate) fn execute(&self, statement: &str, context: &str) -> Result<()> {
        self.conn
            .execute_batch(statement)
            .map_err(Error::sql(context))
    }

    /// The rows of a query, each value as text (`None` for NULL; booleans `true`/`false`,
    /// integers in decimal).
    pub(crate) fn query_text(&self, query: &str, context: &str) -> Result<Rows> {
        use duckdb::types::ValueRef;
        let mut stmt = self.conn.prepare(query).map_err(Error::sql(context))?;
        let mut rows = stmt.query([]).map_err(Error::sql(context))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(Error::sql(context))? {
            let n = row.as_ref().column_count();
            let mut values = Vec::with_capacity(n);
            for i in 0..n {
                let value = row.get_ref(i).map_err(Error::sql(context))?;
                values.push(match value {
                    ValueRef::Null => None,
                    ValueRef::Boolean(b) => Some(b.to_string()),
                    ValueRef::TinyInt(v) => Some(v.to_string()),
                    ValueRef::SmallInt(v) => Some(v.to_string()),
                    ValueRef::Int(v) => Some(v.to_string()),
                    ValueRef::BigInt(v) => Some(v.to_string()),
                    ValueRef::HugeInt(v) => Some(v.to_string()),
                    ValueRef::UTinyInt(v) => Some(v.to_string()),
                    ValueRef::USmallInt(v) => Some(v.to_string()),
                    ValueRef::UInt(v) => Some(v.to_string()),
                    ValueRef::UBigInt(v) => Some(v.to_string()),
                    ValueRef::Text(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
                    other => Some(format!("{:?}", other.to_owned())),
                });
            }
            out.push(values);
        }
        Ok(out)
    }

    /// Appends rows to the staging table (created beforehand with `columns` data columns and
    /// `keys` old-key columns), stopping at the first row that cannot be encoded. Rows go in
    /// as Arrow record batches of [`APPEND_ROWS`], column by column.
    pub(crate) fn append_stage<'a>(
        &self,
        columns: usize,
        keys: usize,
        rows: impl Iterator<Item = sluice_warehouse::Result<StagedRow<'a>>>,
    ) -> sluice_warehouse::Result<()> {
        let context = "appending rows to the staging table";
        let failed = |e| sluice_warehouse::Error::session(Error::sql(context)(e));
        let mut appender = self
            .conn
            .appender_to_catalog_and_db(STAGE, "temp", "main")
            .map_err(failed)?;
        let mut chunk = StageChunk::new(columns, keys);
        for row in rows {
            chunk.push(row?);
            if chunk.rows == APPEND_ROWS {
                let batch = chunk.finish().map_err(sluice_warehouse::Error::session)?;
                appender.append_record_batch(batch).map_err(failed)?;
            }
        }
        if chunk.rows > 0 {
            let batch = chunk.finish().map_err(sluice_warehouse::Error::session)?;
            appender.append_record_batch(batch).map_err(failed)?;
        }
        appender.flush().map_err(failed)
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
