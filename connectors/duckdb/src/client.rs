//! The connection to the database file: opening it, running statements and transactions,
//! appending staged rows. Blocking calls: the destination runs them off the async runtime.

use std::path::{Path, PathBuf};

use duckdb::Connection;

use crate::error::{Error, OpenSource, Result};
use sluice_sql::{DuckDb, STAGE};
use sluice_warehouse::staging::ArrowChunk;
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
    /// as Arrow record batches of [`APPEND_ROWS`], column by column (the appender matches
    /// columns by position, not by the batches' field names).
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
        let mut chunk = ArrowChunk::new(columns, keys);
        let finish = |chunk: &mut ArrowChunk| {
            chunk.finish().map_err(|e| {
                let e = duckdb::Error::ToSqlConversionFailure(Box::new(e));
                sluice_warehouse::Error::session(Error::sql("building the rows to stage")(e))
            })
        };
        for row in rows {
            chunk.push(row?);
            if chunk.len() == APPEND_ROWS {
                appender
                    .append_record_batch(finish(&mut chunk)?)
                    .map_err(failed)?;
            }
        }
        if !chunk.is_empty() {
            appender
                .append_record_batch(finish(&mut chunk)?)
                .map_err(failed)?;
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
