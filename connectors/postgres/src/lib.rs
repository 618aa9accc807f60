//! PostgreSQL source for Sluice: the logical replication client, slots, publications, the
//! initial snapshot and capture. Connections, TLS, authentication and quoting are the
//! PostgreSQL client's (`sluice-postgres-client`), re-exported here.
//!
//! - [`ReplicationClient`] speaks the replication protocol itself (tokio-postgres has no
//!   copy-both mode): `IDENTIFY_SYSTEM`, `CREATE_REPLICATION_SLOT` with an exported snapshot,
//!   `START_REPLICATION` into a [`ReplicationStream`] of raw `CopyData` payloads.
//! - [`Capture`] runs the source side of a pipeline: publication and slot set-up, the initial
//!   snapshot ([`snapshot`]) and streaming, appending to a change log.
//! - [`Error`] says through [`Error::class`] whether to retry, park or stop.

mod capture;
mod catalog;
mod chunk;
mod error;
mod ledger;
mod prerequisites;
mod progress;
mod publication;
mod replication;
mod slot;
pub mod snapshot;
mod spill;
mod startup;

pub use capture::{Capture, CaptureControl, CaptureOptions, CaptureReport};
pub use catalog::{TablePattern, relation_schema, resolve_tables};
pub use prerequisites::{Finding, Level, check as check_prerequisites};
pub use publication::{drop as drop_publication, exists as publication_exists, published_tables};
pub use slot::{SlotState, drop as drop_slot, find as find_slot};
pub use snapshot::{SnapshotOptions, ledger_path};

pub use error::{Error, Result, ServerError};
/// The source's connection settings: the PostgreSQL client's.
pub use sluice_postgres_client::PgConfig as SourceConfig;
pub use sluice_postgres_client::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_PORT, SslMode, digest, publication_names, quote_ident,
    quote_literal,
};

/// Opens an ordinary connection to the source.
pub async fn connect(config: &SourceConfig) -> Result<tokio_postgres::Client> {
    Ok(sluice_postgres_client::connect(config).await?)
}
pub use replication::{
    CreatedSlot, ReplicationClient, ReplicationStream, SlotOptions, SnapshotAction, SystemIdentity,
    TextRows,
};
