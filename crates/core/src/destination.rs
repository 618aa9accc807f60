//! The destination contract: how a loader hands deduplicated batches to a warehouse.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::{Batch, Classify, LogPosition, Lsn, TableId};

/// Names of the metadata columns every target table carries.
pub mod meta {
    /// Position of the change that last wrote the row (commit LSN as a signed 64-bit number).
    pub const LSN: &str = "_sluice_lsn";
    /// Commit time of that change at the source.
    pub const COMMIT_TS: &str = "_sluice_commit_ts";
    /// Whether the row was deleted at the source (soft deletes).
    pub const DELETED: &str = "_sluice_deleted";
    /// When the row was loaded.
    pub const SYNCED_AT: &str = "_sluice_synced_at";
    /// The checkpoint table in the target schema.
    pub const CHECKPOINT_TABLE: &str = "_sluice_checkpoints";
}

/// What happens to a row deleted at the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteMode {
    /// Keep the row with `_sluice_deleted = true` (history stays visible to views).
    #[default]
    Soft,
    /// Remove the row.
    Hard,
}

/// A loader's progress, stored in the destination in the same transaction as the data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Position in the change log just after the last record applied.
    pub position: LogPosition,
    /// End LSN of the last source transaction applied (`0/0` before any).
    pub applied_lsn: Lsn,
    /// Commit time of that transaction, microseconds since the Unix epoch (0 before any).
    pub applied_commit_ts: i64,
    /// Tables the loader no longer loads (a definite error wedged them), in the order they
    /// were parked. Their changes after [`ParkedTable::lsn`] are not in the target.
    pub parked: Vec<ParkedTable>,
}

/// A table the loader left out of every batch since a definite error wedged it, so the other
/// tables keep flowing. Only a resync brings it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedTable {
    /// The source table.
    pub table: TableId,
    /// The applied LSN when it was parked: the target holds the table as of this position,
    /// and none of its changes committed after it.
    pub lsn: Lsn,
    /// The error that parked it (names the object and what went wrong).
    pub reason: String,
}

/// How the `position` column of the checkpoint table holds a checkpoint's log position and
/// parked tables: one JSON object, `{"partitions": {...}, "parked": [...]}` (`parked` left out
/// when empty, so a row written before tables could be parked reads the same).
#[derive(Serialize, Deserialize)]
struct StoredPosition {
    #[serde(flatten)]
    position: LogPosition,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    parked: Vec<ParkedTable>,
}

impl Checkpoint {
    /// Whether `table` is parked.
    pub fn is_parked(&self, table: &TableId) -> bool {
        self.parked.iter().any(|p| p.table == *table)
    }

    /// The text stored in the checkpoint table's `position` column: the log position and the
    /// parked tables, so both commit with the data in the same row.
    pub fn stored_position(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(&StoredPosition {
            position: self.position.clone(),
            parked: self.parked.clone(),
        })
    }

    /// A checkpoint read back from the checkpoint table's columns.
    pub fn from_stored(
        position: &str,
        applied_lsn: Lsn,
        applied_commit_ts: i64,
    ) -> Result<Checkpoint, serde_json::Error> {
        let stored: StoredPosition = serde_json::from_str(position)?;
        Ok(Checkpoint {
            position: stored.position,
            applied_lsn,
            applied_commit_ts,
            parked: stored.parked,
        })
    }
}

/// What a destination can do, so generic code never branches on which destination it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Data and checkpoint commit in one transaction.
    pub transactional: bool,
    /// The largest batch the destination takes in one apply, if it has a limit.
    pub max_batch_bytes: Option<usize>,
}

/// A warehouse that applies batches.
///
/// - **Atomicity**: `apply` commits the batch's rows and the checkpoint together: after a
///   crash at any point either both are visible or neither is.
/// - **Idempotence**: every target row carries the position of the change that wrote it, and a
///   change is applied only when it is newer than what the row holds. Applying a batch again,
///   wholly or partly applied before, leaves the tables as they are.
/// - **Consistency**: a batch spans whole source transactions of every table, so the target
///   never shows half of a source transaction. A transaction too large for one batch is
///   applied in [parts](Destination::apply_part) within one target transaction that `apply` commits.
/// - **Concurrency**: one loader per pipeline; methods take `&mut self`.
/// - **Cancellation**: `apply` is not cancellation safe; let it finish.
pub trait Destination: Send {
    type Error: std::error::Error + Classify + Send + Sync + 'static;

    /// What this destination supports.
    fn capabilities(&self) -> Capabilities;

    /// Creates what the destination needs (target schema, checkpoint table) and returns the
    /// checkpoint stored for `pipeline`, if any.
    fn open(
        &mut self,
        pipeline: &str,
    ) -> impl Future<Output = Result<Option<Checkpoint>, Self::Error>> + Send;

    /// Creates or evolves target tables as the batch's relations require, applies its rows and
    /// stores `checkpoint` for the pipeline given to `open`, atomically. The batch is handed
    /// over so a destination can move it to where the work happens without copying it.
    fn apply(
        &mut self,
        batch: Batch,
        checkpoint: &Checkpoint,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Applies a batch's rows inside the transaction that the next [`Destination::apply`]
    /// commits, storing no checkpoint: the loader hands over the parts of a source transaction too
    /// large for one batch in order, and hands the batch with its end to `apply`.
    ///
    /// Nothing applied this way is visible before that commit. After an error, a crash or
    /// [`Destination::discard`], nothing of it remains. A part may hold rows at the
    /// same position as rows of an earlier part (the same source transaction): the later rows
    /// win, as within one batch.
    fn apply_part(&mut self, batch: Batch) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Rolls back the parts applied since the last `apply` (the rest of that source transaction
    /// never came: the log holds it again further on). Does nothing when no part is open.
    fn discard(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Checks that the destination answers (reconnecting if needed); the loader calls it while
    /// idle so readiness reflects a target that went away.
    fn ping(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_position_round_trips_parked_tables() {
        let mut checkpoint = Checkpoint {
            position: LogPosition::single("0", 42),
            applied_lsn: Lsn(7),
            applied_commit_ts: 9,
            parked: Vec::new(),
        };
        let plain = checkpoint.stored_position().expect("json");
        assert_eq!(
            plain, r#"{"partitions":{"0":"42"}}"#,
            "the format of a row without parks"
        );
        checkpoint.parked.push(ParkedTable {
            table: TableId::new("public", "t"),
            lsn: Lsn(5),
            reason: "column \"d\" changed".into(),
        });
        let text = checkpoint.stored_position().expect("json");
        let back = Checkpoint::from_stored(&text, Lsn(7), 9).expect("read back");
        assert_eq!(back, checkpoint);
        assert!(back.is_parked(&TableId::new("public", "t")));
        assert!(!back.is_parked(&TableId::new("public", "other")));
        // A position written by a version without parked tables.
        let old = Checkpoint::from_stored(r#"{"partitions":{"0":"3"}}"#, Lsn(1), 2).expect("old");
        assert!(old.parked.is_empty());
        assert_eq!(old.position, LogPosition::single("0", 3));
    }
}
