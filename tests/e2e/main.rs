//! End-to-end tests: the real `sluice` binary, a real PostgreSQL, a real DuckDB file, and the
//! stand-ins for the cloud warehouses.

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
mod snowflake;
mod status;
mod sync;
mod types;
mod verify;
mod views;
