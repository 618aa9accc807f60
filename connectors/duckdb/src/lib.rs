//! DuckDB destination for Sluice: loads batches into an embedded DuckDB file.
//!
//! Target tables are named like the source table (without its schema) in the configured schema
//! (`raw` by default), with the source's columns mapped to DuckDB types (the table is in the
//! `schema` module's documentation) and the metadata columns of [`sluice_core::meta`]. Each
//! `apply` is one DuckDB transaction that evolves tables, stages rows through the appender,
//! MERGEs them guarded by `_sluice_lsn`, and stores the checkpoint in `_sluice_checkpoints`.
//!
//! Linking: without the `bundled` feature the crate links against a prebuilt `libduckdb`
//! found through `DUCKDB_LIB_DIR` (its directory also goes into the binaries' rpath).

mod client;
mod config;
mod destination;
mod digest;
mod encode;
mod error;
mod schema;
mod sql;

pub use config::{DEFAULT_SCHEMA, DuckDbConfig};
pub use destination::DuckDbDestination;
pub use digest::{DuckDbInspector, canonical_expr};
pub use error::{Error, OpenSource, Result};
