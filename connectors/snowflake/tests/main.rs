//! Integration tests of the Snowflake transport against fakesnow (see `fakesnow.rs`).

mod client;
mod fakesnow;
