//! [`PostgresSession`]: the [`Session`] of a PostgreSQL database, and
//! [`PostgresDestination`], the SQL-warehouse driver over it.
//!
//! Rows are staged with `COPY ... FROM STDIN (FORMAT binary)` into the dialect's temporary
//! staging table (`ON COMMIT DROP`), whose data columns are `text`: each value goes as the
//! source printed it and the MERGE casts it.
//!
//! A value PostgreSQL refuses fails the MERGE with a data exception (SQLSTATE class 22) that
//! does not say which column. The MERGE runs under a savepoint; after such a failure each
//! column's conversion is tried alone (an INSERT into a one-column temporary table of the
//! column's type, so the same assignment rules apply) to name the column in the error, which
//! parks the table.

use bytes::BytesMut;
use sluice_sql::{PgTarget, Postgres, SqlDialect as _};
use sluice_warehouse::{Rows, Session, SqlDestination, StageTable, TargetOptions};

use crate::client::Client;
use crate::config::PostgresTargetConfig;
use crate::encode;
use crate::error::Result;

/// The dialect of every statement.
const PG: Postgres = Postgres;

/// COPY data is sent in chunks of about this size: large enough to keep the connection busy,
/// small enough to bound what is buffered for one table.
const COPY_CHUNK_BYTES: usize = 1 << 20;

/// Savepoint around each MERGE, so a data error can be investigated in the same transaction.
const SAVEPOINT: &str = "sluice_merge";

/// One-column table a suspect column's values are inserted into.
const PROBE: &str = "_sluice_probe";

/// Loads batches into a PostgreSQL database.
pub type PostgresDestination = SqlDestination<PostgresSession>;

/// A destination for `config` (validated here; the connection opens in `open`).
pub fn destination(config: PostgresTargetConfig) -> Result<PostgresDestination> {
    Ok(SqlDestination::new(PostgresSession::new(config)?))
}

type WarehouseResult<T> = sluice_warehouse::Result<T>;

/// One connection to the target database, opened on first use and again when lost.
pub struct PostgresSession {
    config: PostgresTargetConfig,
    options: TargetOptions,
    client: Option<Client>,
    generation: u64,
}

impl PostgresSession {
    /// A session for `config` (validated here).
    pub fn new(config: PostgresTargetConfig) -> Result<Self> {
        config.validate()?;
        Ok(PostgresSession {
            options: TargetOptions {
                schema: config.schema.clone(),
                deletes: config.deletes,
            },
            config,
            client: None,
            generation: 0,
        })
    }

    /// The configuration this session was built with.
    pub fn config(&self) -> &PostgresTargetConfig {
        &self.config
    }

    /// The open connection (after [`Session::connect`]).
    fn client(&self) -> WarehouseResult<&Client> {
        self.client
            .as_ref()
            .ok_or_else(|| sluice_warehouse::Error::Config("no connection to the target".into()))
    }

    async fn run(&self, statement: &str, context: &str) -> WarehouseResult<()> {
        self.client()?
            .execute(statement, context)
            .await
            .map_err(sluice_warehouse::Error::session)
    }

    /// The first column of the stage whose values PostgreSQL refuses, as a value error;
    /// `None` when each converts alone. Leaves the transaction usable.
    async fn find_bad_column(
        &self,
        table: &StageTable<PgTarget>,
    ) -> WarehouseResult<Option<sluice_warehouse::Error>> {
        let probe = PG.quote_ident(PROBE);
        for (i, column) in table.columns.iter().enumerate() {
            if column.ty == PgTarget::Text {
                continue;
            }
            self.run("SAVEPOINT sluice_probe", "setting a savepoint")
                .await?;
            let tried = self
                .run(
                    &format!(
                        "CREATE TEMP TABLE {probe} (v {}) ON COMMIT DROP; INSERT INTO {probe} \
                         SELECT {} FROM {}",
                        column.ty,
                        PG.convert(&format!("c{i}"), &column.ty),
                        PG.stage()
                    ),
                    "checking a column's values",
                )
                .await;
            self.run(
                "ROLLBACK TO SAVEPOINT sluice_probe",
                "rolling back to the savepoint",
            )
            .await?;
            if let Err(e) = tried
                && let Some(state) = e.code().filter(|s| s.starts_with("22"))
            {
                return Ok(Some(table.value_error(
                    i,
                    None,
                    format!("a value is not a valid {} (SQLSTATE {state})", column.ty),
                )));
            }
        }
        Ok(None)
    }
}

impl Session for PostgresSession {
    type Dialect = Postgres;

    fn options(&self) -> &TargetOptions {
        &self.options
    }

    fn dialect(&self) -> Postgres {
        PG
    }

    async fn connect(&mut self) -> WarehouseResult<u64> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            let connection = self.config.connection()?;
            let client = Client::connect(&connection)
                .await
                .map_err(sluice_warehouse::Error::session)?;
            self.client = Some(client);
            self.generation += 1;
        }
        Ok(self.generation)
    }

    async fn execute(&mut self, statement: String, context: String) -> WarehouseResult<()> {
        self.run(&statement, &context).await
    }

    async fn query(&mut self, query: String, context: String) -> WarehouseResult<Rows> {
        self.client()?
            .query_text(&query, &context)
            .await
            .map_err(sluice_warehouse::Error::session)
    }

    async fn load_stage(&mut self, table: &StageTable<PgTarget>) -> WarehouseResult<()> {
        let mut chunks = Vec::new();
        let mut buf = BytesMut::with_capacity(COPY_CHUNK_BYTES.min(64 * 1024));
        buf.extend_from_slice(encode::HEADER);
        for (row, source) in table.rows(&encode::stage_value).zip(&table.table().rows) {
            encode::write_row(&row?, &mut buf)
                .map_err(|reason| table.value_error(0, Some(source), reason))?;
            if buf.len() >= COPY_CHUNK_BYTES {
                chunks.push(buf.split().freeze());
            }
        }
        buf.extend_from_slice(encode::TRAILER);
        chunks.push(buf.freeze());
        self.client()?
            .copy_in(
                &format!("COPY {} FROM STDIN (FORMAT binary)", PG.stage()),
                chunks,
                &format!("staging rows for {}", table.target),
            )
            .await
            .map_err(sluice_warehouse::Error::session)?;
        Ok(())
    }

    async fn rollback(&mut self) {
        if let Some(c) = self.client.as_ref().filter(|c| !c.is_closed()) {
            let _ = c.execute("ROLLBACK", "rolling back").await;
        }
    }

    async fn merge(
        &mut self,
        statements: Vec<String>,
        table: &StageTable<PgTarget>,
    ) -> WarehouseResult<()> {
        let context = format!("merging into {}", table.target);
        self.run(&format!("SAVEPOINT {SAVEPOINT}"), "setting a savepoint")
            .await?;
        for statement in &statements {
            let Err(e) = self.run(statement, &context).await else {
                continue;
            };
            if e.code().is_some_and(|s| s.starts_with("22")) {
                self.run(
                    &format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}"),
                    "rolling back to the savepoint",
                )
                .await?;
                if let Some(found) = self.find_bad_column(table).await? {
                    return Err(found);
                }
            }
            return Err(e);
        }
        Ok(())
    }
}
