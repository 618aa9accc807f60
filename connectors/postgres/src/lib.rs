//! PostgreSQL source for Sluice: connections, TLS, authentication and the logical replication
//! client.
//!
//! - [`SourceConfig`] parses the source URL (or a `key=value` string) including libpq's
//!   `sslmode` values; the password is a secret that nothing prints.
//! - [`connect`] opens an ordinary connection (tokio-postgres over our own TCP + TLS stream).
//! - [`ReplicationClient`] speaks the replication protocol itself (tokio-postgres has no
//!   copy-both mode): `IDENTIFY_SYSTEM`, `CREATE_REPLICATION_SLOT` with an exported snapshot,
//!   `START_REPLICATION` into a [`ReplicationStream`] of raw `CopyData` payloads.
//! - [`Capture`] runs the source side of a pipeline: publication and slot set-up, the initial
//!   snapshot ([`snapshot`]) and streaming, appending to a change log.
//! - [`Error`] says through [`Error::class`] whether to retry, park or stop.

mod capture;
mod catalog;
mod chunk;
mod config;
mod connect;
pub mod digest;
mod error;
mod ident;
mod ledger;
mod prerequisites;
mod progress;
mod publication;
mod replication;
mod slot;
pub mod snapshot;
mod spill;
mod startup;
mod tls;

pub use capture::{Capture, CaptureControl, CaptureOptions, CaptureReport};
pub use catalog::{TablePattern, relation_schema, resolve_tables};
pub use prerequisites::{Finding, Level, check as check_prerequisites};
pub use publication::{drop as drop_publication, exists as publication_exists, published_tables};
pub use slot::{SlotState, drop as drop_slot, find as find_slot};
pub use snapshot::{SnapshotOptions, ledger_path};

pub use config::{DEFAULT_PORT, SourceConfig, SslMode};
pub use connect::{DEFAULT_CONNECT_TIMEOUT, connect};
pub use error::{Error, Result, ServerError};
pub use ident::{publication_names, quote_ident, quote_literal};
pub use replication::{
    CreatedSlot, ReplicationClient, ReplicationStream, SlotOptions, SnapshotAction, SystemIdentity,
    TextRows,
};
