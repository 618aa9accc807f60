//! DuckDB destination for Sluice: loads batches into an embedded DuckDB file.
//!
//! Target tables are named like the source table (without its schema) in the configured schema
//! (`raw` by default), with the source's columns mapped to DuckDB types (the table is in the
//! documentation of [`sluice_sql::DuckDb`], the DuckDB dialect that builds every statement
//! this destination runs) and the metadata columns of [`sluice_core::meta`]. Each `apply` is
//! one DuckDB transaction that evolves tables ([`sluice_sql::plan`]), stages rows through the
//! appender, MERGEs them guarded by `_sluice_lsn`, and stores the checkpoint in
//! `_sluice_checkpoints`.
//!
//! A PostgreSQL array column has no fixed number of dimensions, a DuckDB list column does: a
//! later value with another number of dimensions than the column's, or an array with
//! non-default lower bounds (`[0:1]={1,2}`), fails the batch with an error naming the column.
//!
//! Linking: without the `bundled` feature the crate links against a prebuilt `libduckdb`
//! found through `DUCKDB_LIB_DIR` (its directory also goes into the binaries' rpath).

mod client;
mod config;
mod destination;
mod digest;
mod encode;
mod error;
mod script;

pub use config::{DEFAULT_SCHEMA, DuckDbConfig};
pub use destination::{DuckDbDestination, DuckDbSession, destination};
pub use digest::{DuckDbInspector, canonical_expr};
pub use error::{Error, OpenSource, Result};
pub use script::{execute_script, text_columns};
