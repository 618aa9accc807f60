//! Integration tests against real DuckDB files in temporary directories.

#![allow(clippy::unwrap_used)]

mod apply;
mod checkpoint;
mod conformance;
mod errors;
mod hostile;
mod parquet;
mod support;
mod types;
