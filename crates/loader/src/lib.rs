//! The loader stage: change log to destination, in micro-batches.
//!
//! Invariants:
//! - A batch holds whole log records (whole source transactions) and closes on
//!   `max_batch_bytes`, `max_batch_rows` or `flush_interval_ms`, whichever comes first.
//! - The checkpoint (log position and applied LSN) commits in the same destination transaction
//!   as the batch's rows ([`Destination::apply`]); only after that commit does the loader
//!   release the log up to that position.
//! - On start the loader seeks the log to the checkpoint the destination holds, so a crash at
//!   any point replays at most the records after the last committed batch, which the
//!   destination's position guard makes harmless.
//! - Shutdown is checked only between batches: an `apply` is never abandoned half-way.
//! - While a batch is applied, the next one is read from the log and built (only read: one
//!   batch at a time reaches the destination), so decoding and applying overlap. A failed
//!   apply drops what was read ahead; the reader goes back to the checkpoint.
//! - A definite error of the target that wedges one table parks that table: the loader adds
//!   it to the checkpoint's parked tables, reads the log again from the checkpoint and loads
//!   the same records without it; every later batch leaves it out, and the park commits with
//!   the next batch's checkpoint. The other tables keep their guarantees; a source transaction
//!   that touched the parked table is loaded without it.
//!
//! Every decision (when a batch closes, what to read, large transactions, parking) is made by
//! I/O-free code (`fill`, `park`) that [`run`] drives; the driver only reads, applies and
//! waits.
//!
//! [`Destination::apply`]: sluice_core::Destination::apply

mod error;
mod figures;
mod fill;
mod park;
mod stage;

pub use crate::error::{BoxedError, LoadError, Result};
pub use crate::fill::{BatchLimits, LARGE_TXN_STAGE_BYTES};
pub use crate::park::ResyncHint;
pub use crate::stage::{LoaderControl, LoaderReport, run};
