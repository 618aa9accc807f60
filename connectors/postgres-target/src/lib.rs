//! PostgreSQL destination for Sluice: loads batches into a PostgreSQL 15+ database.
//!
//! Target tables are named like the source table (without its schema) in the configured
//! schema (`raw` by default). Every column keeps its source type (the table is in the
//! documentation of [`sluice_sql::Postgres`], the PostgreSQL dialect that builds every
//! statement this destination runs), plus the metadata columns of [`sluice_core::meta`].
//!
//! Each `apply` is one transaction: tables are created or evolved ([`sluice_sql::plan`]),
//! each table's rows are staged with `COPY ... FROM STDIN (FORMAT binary)` into a temporary
//! table (`ON COMMIT DROP`) whose data columns are `text`, one MERGE per table guarded by
//! `_sluice_lsn` casts them from the source's own text output, and the checkpoint row in
//! `_sluice_checkpoints` is upserted before COMMIT. Any error rolls everything back.
//!
//! The connection is the PostgreSQL client's ([`sluice_postgres_client::PgConfig`],
//! [`sluice_postgres_client::connect`]), as the source's is: `sslmode`, `sslrootcert`, SCRAM and
//! the rest behave the same.

mod client;
mod config;
mod destination;
mod encode;
mod error;
mod script;

pub use config::{DEFAULT_SCHEMA, PostgresTargetConfig};
pub use destination::{PostgresDestination, PostgresSession, destination};
pub use error::{Error, Result};
pub use script::execute_script;

/// Opens the target for reading (`sluice verify`, `sluice status`).
pub async fn inspector(
    config: &PostgresTargetConfig,
) -> Result<sluice_postgres_client::digest::PostgresInspector> {
    let connection = config.connection()?;
    let client = sluice_postgres_client::connect(&connection)
        .await
        .map_err(|source| Error::Connect {
            target: connection.to_string(),
            source,
        })?;
    Ok(sluice_postgres_client::digest::PostgresInspector::new(
        client,
        config.schema.clone(),
    ))
}
