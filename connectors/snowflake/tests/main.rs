//! Integration tests of the Snowflake destination against fakesnow (`sluice_testkit::fakesnow`).

mod client;
mod conformance;
