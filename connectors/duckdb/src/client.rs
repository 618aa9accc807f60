//! The connection to the database file: opening it, running statements and transactions,
//! appending staged rows. Blocking calls: the destination runs them off the async runtime.

use std::path::{Path, PathBuf};

use duckdb::types::ToSql;
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

    /// Appends rows to the staging table (created beforehand with matching columns), stopping
    /// at the first row that cannot be encoded.
    pub(crate) fn append_stage(&self, rows: impl Iterator<Item = Result<StagedRow>>) -> Result<()> {
        let context = "appending rows to the staging table";
        let mut appender = self
            .conn
            .appender_to_catalog_and_db(STAGE, "temp", "main")
            .map_err(Error::sql(context))?;
        for row in rows {
            let row = row?;
            let mut params: Vec<&dyn ToSql> =
                Vec::with_capacity(row.values.len() + 4 + row.moved_from.len());
            params.extend(row.values.iter().map(|v| v as &dyn ToSql));
            params.push(&row.op);
            params.push(&row.lsn);
            params.push(&row.commit_ts);
            params.push(&row.unchanged);
            params.extend(row.moved_from.iter().map(|v| v as &dyn ToSql));
            appender
                .append_row(params.as_slice())
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
