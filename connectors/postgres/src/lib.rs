//! PostgreSQL source for Sluice: connections, TLS, authentication and the logical replication
//! client.
//!
//! - [`SourceConfig`] parses the source URL (or a `key=value` string) including libpq's
//!   `sslmode` values; the password is a secret that nothing prints.
//! - [`connect`] opens an ordinary connection (tokio-postgres over our own TCP + TLS stream).
//! - [`ReplicationClient`] speaks the replication protocol itself (tokio-postgres has no
//!   copy-both mode): `IDENTIFY_SYSTEM`, `CREATE_REPLICATION_SLOT` with an exported snapshot,
//!   `START_REPLICATION` into a [`ReplicationStream`] of raw `CopyData` payloads.
//! - [`Error`] says through [`Error::class`] whether to retry, park or stop.

mod config;
mod connect;
mod error;
mod ident;
mod replication;
mod tls;

pub use config::{DEFAULT_PORT, SourceConfig, SslMode};
pub use connect::connect;
pub use error::{Error, Result, ServerError};
pub use ident::{publication_names, quote_ident, quote_literal};
pub use replication::{
    CreatedSlot, ReplicationClient, ReplicationStream, SlotOptions, SnapshotAction, SystemIdentity,
    TextRows,
};
