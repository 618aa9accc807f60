//! Integration tests of the local change log, one binary.

mod common;
mod conformance;
mod reader;
mod recovery;
mod retention;
mod round_trip;
