//! [`DuckDbSession`]: the [`Session`] of an embedded DuckDB file, and [`DuckDbDestination`],
//! the SQL-warehouse driver over it.
//!
//! DuckDB calls block, so every call runs on a blocking thread (`spawn_blocking`) that takes
//! the connection and gives it back. If that thread dies, the connection is dropped and the
//! next call opens the file again (a new generation: an open transaction is gone with it).
//! Staged rows go in through the appender as Arrow record batches ([`Client::append_stage`]).

use sluice_sql::DuckDb;
use sluice_warehouse::{Rows, Session, SqlDestination, StageTable, TargetOptions};

use crate::client::Client;
use crate::config::DuckDbConfig;
use crate::encode;
use crate::error::{Error, Result};

/// Loads batches into an embedded DuckDB file.
pub type DuckDbDestination = SqlDestination<DuckDbSession>;

/// A destination for `config` (validated here; the file is opened by `open`).
pub fn destination(config: DuckDbConfig) -> Result<DuckDbDestination> {
    Ok(SqlDestination::new(DuckDbSession::new(config)?))
}

/// One connection to a DuckDB file, opened on first use.
pub struct DuckDbSession {
    config: DuckDbConfig,
    options: TargetOptions,
    client: Option<Client>,
    /// Whether the json extension is loaded (JSON columns are `JSON`, else `VARCHAR`).
    json: bool,
    generation: u64,
}

type WarehouseResult<T> = sluice_warehouse::Result<T>;

impl DuckDbSession {
    /// A session for `config` (validated here).
    pub fn new(config: DuckDbConfig) -> Result<Self> {
        config.validate()?;
        Ok(DuckDbSession {
            options: TargetOptions {
                schema: config.schema.clone(),
                deletes: config.deletes,
            },
            config,
            client: None,
            json: false,
            generation: 0,
        })
    }

    /// The configuration this session was built with.
    pub fn config(&self) -> &DuckDbConfig {
        &self.config
    }

    /// A second connection to the same database (opening the file first if needed), for
    /// reading the warehouse in the process that loads it: DuckDB locks the file to one
    /// process, but connections of that process see each committed batch.
    pub async fn reader(&mut self) -> Result<duckdb::Connection> {
        self.run(|client| client.try_clone()).await
    }

    /// Runs `f` with the connection on a blocking thread, opening the file first if needed.
    async fn run<T, F>(&mut self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Client) -> Result<T> + Send + 'static,
    {
        let client = self.client.take();
        let opened = client.is_none();
        let path = self.config.path.clone();
        let memory_limit = self.config.memory_limit_bytes;
        let (client, result) = tokio::task::spawn_blocking(move || {
            let client = match client {
                Some(c) => c,
                None => match Client::open(&path, memory_limit) {
                    Ok(c) => c,
                    Err(e) => return (None, Err(e)),
                },
            };
            let result = f(&client);
            (Some(client), result)
        })
        .await
        .map_err(Error::Worker)?;
        if let Some(c) = &client
            && opened
        {
            self.generation += 1;
            self.json = c.json;
        }
        self.client = client;
        result
    }

    /// [`DuckDbSession::run`] with the error as the driver's.
    async fn call<T, F>(&mut self, f: F) -> WarehouseResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Client) -> Result<T> + Send + 'static,
    {
        self.run(f).await.map_err(sluice_warehouse::Error::session)
    }
}

impl Session for DuckDbSession {
    type Dialect = DuckDb;

    fn options(&self) -> &TargetOptions {
        &self.options
    }

    fn dialect(&self) -> DuckDb {
        DuckDb { json: self.json }
    }

    async fn connect(&mut self) -> WarehouseResult<u64> {
        self.call(|_| Ok(())).await?;
        Ok(self.generation)
    }

    async fn execute(&mut self, statement: String, context: String) -> WarehouseResult<()> {
        self.call(move |c| c.execute(&statement, &context)).await
    }

    async fn query(&mut self, query: String, context: String) -> WarehouseResult<Rows> {
        self.call(move |c| c.query_text(&query, &context)).await
    }

    async fn load_stage(
        &mut self,
        table: &StageTable<sluice_sql::DuckType>,
    ) -> WarehouseResult<()> {
        let table = table.clone();
        self.run(move |c| {
            Ok(c.append_stage(
                table.columns.len(),
                table.keys(),
                table.rows(&encode::stage_value),
            ))
        })
        .await
        .map_err(sluice_warehouse::Error::session)?
    }

    async fn begin(&mut self) -> WarehouseResult<()> {
        self.execute("BEGIN TRANSACTION".into(), "beginning a transaction".into())
            .await
    }

    async fn rollback(&mut self) {
        if self.client.is_some() {
            let _ = self
                .run(|c| {
                    c.rollback();
                    Ok(())
                })
                .await;
        }
    }
}
