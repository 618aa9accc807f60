//! The Sluice change model and the contracts between its stages.
//!
//! Capture turns the source's write-ahead log into [`Transaction`]s of [`Change`]s; a change
//! log carries them durably; a loader applies them to a destination. This crate holds the types
//! every stage shares and the traits that are the contracts between them. It does no I/O.

mod lsn;

pub use lsn::{Lsn, ParseLsnError};
