//! Running SQL that ships with Sluice (the KPI views of `sluice views install`) against an
//! existing warehouse file: opened read-write for the call only, every statement in one
//! transaction, all or nothing.

use std::path::PathBuf;

use duckdb::Connection;

use crate::config::DuckDbConfig;
use crate::error::{Error, OpenSource, Result};

/// Runs `statements` in order in one transaction on the existing database file of `config`;
/// each is `(what, sql)`, and `what` names the statement in an error (`installing view
/// "low_stock"`). Fails with [`Error::Locked`] while another process (a running `sluice sync`)
/// holds the file, and with [`Error::Open`] when the file does not exist: it is never created
/// here. Blocking: call it off the async runtime.
pub fn execute_script<'a>(
    config: &DuckDbConfig,
    statements: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<()> {
    let path = PathBuf::from(&config.path);
    if !path.is_file() {
        return Err(Error::Open {
            path,
            source: OpenSource::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such database file (run sluice sync first)",
            )),
        });
    }
    let mut conn = Connection::open(&path).map_err(|e| {
        if e.to_string().contains("Could not set lock on file") {
            Error::Locked {
                path: path.clone(),
                source: e,
            }
        } else {
            Error::Open {
                path: path.clone(),
                source: e.into(),
            }
        }
    })?;
    let tx = conn
        .transaction()
        .map_err(Error::sql("starting a transaction"))?;
    for (what, sql) in statements {
        tx.execute_batch(sql).map_err(Error::sql(what))?;
    }
    tx.commit().map_err(Error::sql("committing"))
}

/// `(table, column)` of the text columns (`VARCHAR`, or lists of it) of `tables` in `schema`,
/// read on `conn`; tables that cannot be read are left out. With the type mapping, `sluice
/// check` tells from these which columns were changed to text while loading. Blocking.
pub fn text_columns(conn: &Connection, schema: &str, tables: &[String]) -> Vec<(String, String)> {
    use sluice_sql::{DuckDb, DuckType, SqlDialect as _};
    let d = DuckDb { json: true };
    let mut found = Vec::new();
    for name in tables {
        let Ok(mut stmt) = conn.prepare(&d.table_columns(schema, name)) else {
            continue;
        };
        let Ok(rows) = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        else {
            continue;
        };
        for (column, ty) in rows.flatten() {
            if DuckType::parse(&ty).is_some_and(|t| *t.element() == DuckType::Varchar) {
                found.push((name.clone(), column));
            }
        }
    }
    found
}
