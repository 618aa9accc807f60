//! The SQL-warehouse driver: [`Destination`](sluice_core::Destination) implemented once, for
//! every warehouse that speaks SQL, over a small per-warehouse [`Session`] and its
//! [`SqlDialect`](sluice_sql::SqlDialect).
//!
//! The driver ([`SqlDestination`]) owns everything the contract asks that does not depend on
//! the engine: the open / apply-part / discard / apply state machine, the checkpoint row, the
//! DDL plan per table, the choice between an append and the guarded MERGE, the lossless text
//! fallback for values a mapped type cannot hold, the errors that park one table, and the
//! `target-mid-batch` failpoint. A session is transport only: run a statement, read rows as
//! text, load a table's staged rows into the staging table, end a transaction. Its rows reach
//! the wire through the one staging-row layout of [`staging`].
//!
//! Adding a warehouse means a session, a dialect in `sluice-sql`, its views and one arm of the
//! registry; nothing here changes.

mod driver;
mod error;
mod session;
pub mod staging;

pub use driver::SqlDestination;
pub use error::{Error, RefusedValue, Result, SessionError, SessionFailure};
pub use session::{Rows, Session, TargetOptions};
pub use staging::{StageTable, StagedRow};
