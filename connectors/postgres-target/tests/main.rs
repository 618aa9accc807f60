//! Integration tests of the PostgreSQL destination against a real PostgreSQL (a fresh
//! database of the test kit's shared cluster per test).

mod apply;
mod conformance;
mod support;
mod types;
