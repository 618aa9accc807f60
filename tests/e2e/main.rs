//! End-to-end tests: the real `sluice` binary, a real PostgreSQL, a real DuckDB file.

mod bad_input;
mod check;
mod crash;
mod demo;
mod failpoints;
mod faults;
mod fidelity;
mod idle;
mod large;
mod operations;
mod postgres_target;
mod security;
mod snapshot;
mod status;
mod sync;
mod types;
mod verify;
mod views;
