//! Integration tests of the local change log, one binary.

mod common;
mod reader;
mod recovery;
mod retention;
mod round_trip;
