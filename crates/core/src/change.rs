//! Changes and transactions.
//!
//! Capture groups changes by source transaction. The ordering key of a change is
//! `(commit_lsn, ordinal)`: the commit position of its transaction and its place within it.
//! Snapshot rows travel as [`Transaction`]s of kind [`TxnKind::Snapshot`] whose commit LSN is
//! the slot's consistent point minus one, so that every streamed change (committed at or after
//! the consistent point) orders after every snapshot row.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Lsn, RelationSchema, Value};

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    Insert,
    Update,
    Delete,
    /// `TRUNCATE` of the change's table: every row written before this change goes away.
    Truncate,
}

/// One row change (or a truncate) of one table.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The relation as described when the change was captured; `new` and `old` are aligned
    /// with its columns.
    pub relation: Arc<RelationSchema>,
    pub op: Op,
    /// The new row image (insert and update).
    pub new: Option<Vec<Value>>,
    /// The old row image: the identity columns (other columns NULL) or, with
    /// `REPLICA IDENTITY FULL`, the whole old row. Present on deletes, and on updates when the
    /// identity changed or the identity is FULL.
    pub old: Option<Vec<Value>>,
}

impl Change {
    /// Approximate in-memory size, for byte budgets.
    pub fn size(&self) -> usize {
        let row =
            |r: &Option<Vec<Value>>| r.as_ref().map_or(0, |r| r.iter().map(Value::size).sum());
        32 + row(&self.new) + row(&self.old)
    }

    /// The identity of the row this change leaves behind (new image), or of the row it removes
    /// (deletes): the values of the key columns. `None` when the relation has no key or the
    /// image lacks a key value.
    pub fn key(&self) -> Option<Vec<&Value>> {
        let image = match self.op {
            Op::Insert | Op::Update => self.new.as_ref(),
            Op::Delete => self.old.as_ref(),
            Op::Truncate => None,
        }?;
        key_of(&self.relation, image)
    }

    /// For an update that changed the row identity: the old identity.
    pub fn old_key_if_changed(&self) -> Option<Vec<&Value>> {
        if self.op != Op::Update {
            return None;
        }
        let old = key_of(&self.relation, self.old.as_ref()?)?;
        let new = self.key()?;
        (old != new).then_some(old)
    }
}

fn key_of<'a>(relation: &RelationSchema, image: &'a [Value]) -> Option<Vec<&'a Value>> {
    let mut key = Vec::new();
    for (column, value) in relation.columns.iter().zip(image) {
        if column.key {
            match value {
                Value::Text(_) => key.push(value),
                Value::Null | Value::Unchanged => return None,
            }
        }
    }
    (!key.is_empty()).then_some(key)
}

/// Where a transaction came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxnKind {
    /// A source transaction decoded from the replication stream.
    Stream,
    /// A chunk of rows copied by the initial snapshot.
    Snapshot,
}

/// The changes of one source transaction (or one snapshot chunk), in source order.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    pub kind: TxnKind,
    /// Source transaction id; 0 for snapshot chunks.
    pub xid: u32,
    /// Position of the commit record (for snapshot chunks: the consistent point minus one).
    pub commit_lsn: Lsn,
    /// Position just after the commit record: what the slot may be acknowledged up to once this
    /// transaction is durable. Equal to `commit_lsn` for snapshot chunks.
    pub end_lsn: Lsn,
    /// Commit time, microseconds since the Unix epoch.
    pub commit_ts: i64,
    pub changes: Vec<Change>,
}

impl Transaction {
    /// Approximate in-memory size, for byte budgets.
    pub fn size(&self) -> usize {
        64 + self.changes.iter().map(Change::size).sum::<usize>()
    }

    /// The ordering key of the change at `ordinal`.
    pub fn seq(&self, ordinal: usize) -> SeqKey {
        SeqKey {
            commit_lsn: self.commit_lsn,
            ordinal: ordinal as u32,
        }
    }
}

/// The ordering key of a change: `(commit_lsn, ordinal within the transaction)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SeqKey {
    pub commit_lsn: Lsn,
    pub ordinal: u32,
}

/// The highest commit below which everything is known: a loader may apply every transaction
/// with `commit_lsn <= frontier.commit_lsn` without waiting for more input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Frontier {
    pub commit_lsn: Lsn,
    pub end_lsn: Lsn,
}
