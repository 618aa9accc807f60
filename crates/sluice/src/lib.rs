//! Sluice as a library: the commands of the `sluice` binary, for programs that run a pipeline
//! in-process (the retail demo reads the DuckDB warehouse while the pipeline writes it).

pub mod check;
pub mod cli;
pub mod failure;
pub mod init;
pub mod monitor;
pub mod park;
pub mod progress;
pub mod registry;
pub mod settings;
pub mod status;
pub mod sync;
pub mod teardown;
pub mod telemetry;
pub mod verify;
pub mod views;

pub use crate::failure::Failure;
