//! The Sluice change model and the contracts between its stages.
//!
//! Capture turns the source's write-ahead log into [`Transaction`]s of [`Change`]s; a change
//! log ([`ChangeLogWriter`], [`ChangeLogReader`]) carries them durably as [`LogRecord`]s; a
//! loader folds records into [`Batch`]es with a [`BatchBuilder`] and hands them to a
//! [`Destination`], together with the [`Checkpoint`] that commits with them. This crate holds
//! the types every stage shares and the traits that are the contracts between them. It does no
//! I/O.

mod batch;
pub mod calendar;
mod change;
mod destination;
pub mod digest;
mod error;
mod log;
mod lsn;
pub mod pg_type;
mod record;
mod relation;
pub mod telemetry;
mod value;

pub use batch::{Batch, BatchBuilder, Row, RowOp, TableBatch};
pub use change::{Change, Frontier, Op, SeqKey, Transaction, TxnKind};
pub use destination::{Capabilities, Checkpoint, DeleteMode, Destination, ParkedTable, meta};
pub use error::{Classify, ErrorClass};
pub use log::{ChangeLogReader, ChangeLogWriter, LastAppended, LogPosition, ReadRecord};
pub use lsn::{Lsn, ParseLsnError};
pub use pg_type::PgType;
pub use record::{LogRecord, RECORD_FORMAT_VERSION, RecordError, decode_record, encode_record};
pub use relation::{Column, RelationSchema, ReplicaIdentity, TableId};
pub use value::Value;
