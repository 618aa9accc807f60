//! The retail demo of Sluice: a traffic generator that runs a small shop in the source
//! (`tests/demo/retail.sql`), and a live dashboard that runs the pipeline in-process into
//! DuckDB and shows the KPI views (`sql/duckdb/`) as they change.
//!
//! - [`traffic`] plans the shop's events from a seed (pure), [`generator`] writes them as
//!   source transactions at a chosen rate ([`pacing`]).
//! - [`dashboard`] runs `sluice sync` in this process (DuckDB locks its file to one process),
//!   reads the warehouse through a second connection every second ([`warehouse`]), and draws
//!   it ([`screen`]) on a terminal or, without one, prints a summary.

pub mod dashboard;
mod error;
pub mod generator;
mod meter;
pub mod pacing;
pub mod screen;
pub mod shop;
pub mod traffic;
pub mod warehouse;

pub use error::{Error, Result};
