//! Micro-batches: what a loader hands to a destination in one transaction.
//!
//! A [`BatchBuilder`] takes whole log records in order and keeps, per table and key, only the
//! newest change by ordering key `(commit_lsn, ordinal)`. Invariants of a built [`Batch`]:
//!
//! - it spans whole records (never half a source transaction);
//! - per table, at most one row per key; rows of tables without a key are kept in order
//!   (append-only);
//! - a row's values are aligned with its table's `relation` (the newest description seen);
//! - a [`Value::Unchanged`] left in an upsert means the target must keep its current value; when
//!   an earlier change in the same batch carried that value, it has been filled in;
//! - an upsert produced by a key change that still holds a [`Value::Unchanged`] has
//!   [`Row::moved_from`] set to the key (in key column order) of the row the target holds:
//!   the target's values at that key fill those unchanged values (the same batch may hold a
//!   delete of that key, which the destination applies after reading them); every other row
//!   has it `None`;
//! - `truncate_below` removes target rows whose position is older, before rows are applied;
//! - it holds nothing of a table the checkpoint it starts after has parked
//!   ([`Checkpoint::parked`]): the rest of each source transaction is loaded without it.

use std::collections::BTreeMap;
use std::sync::Arc;

use foldhash::HashMap;

use crate::{
    Change, Checkpoint, LogRecord, Lsn, Op, ParkedTable, RelationSchema, TableId, TxnKind, Value,
};

/// What a row does to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOp {
    /// Insert the row or update the matching one (when this row is newer).
    Upsert,
    /// Delete the matching row (soft or hard, by configuration) when this row is newer.
    Delete,
}

/// One row change after deduplication.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub op: RowOp,
    /// Aligned with the table batch's relation columns. For deletes, the old image (at least
    /// the key columns).
    pub values: Vec<Value>,
    /// Commit LSN of the change: the guard the destination compares with `_sluice_lsn`.
    pub lsn: Lsn,
    /// Commit time, microseconds since the Unix epoch.
    pub commit_ts: i64,
    /// For an upsert produced by a key change that still holds unchanged TOAST values: the
    /// key values (in key column order) under which the target holds the row's previous
    /// values. `None` otherwise.
    pub moved_from: Option<Vec<Value>>,
}

/// The rows of one table in a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct TableBatch {
    pub relation: Arc<RelationSchema>,
    /// Target rows with a position older than this are removed first (TRUNCATE, or a
    /// restarted snapshot).
    pub truncate_below: Option<Lsn>,
    /// Rows to apply; keyed tables have at most one row per key.
    pub rows: Vec<Row>,
}

impl TableBatch {
    /// Whether rows are matched by key (otherwise they are appended).
    pub fn keyed(&self) -> bool {
        self.relation.has_key()
    }

    /// Whether some row moved from another key ([`Row::moved_from`]).
    pub fn any_moved(&self) -> bool {
        self.rows.iter().any(|r| r.moved_from.is_some())
    }

    /// Whether some row has an unchanged TOAST value.
    pub fn any_unchanged(&self) -> bool {
        self.rows
            .iter()
            .any(|r| r.values.contains(&Value::Unchanged))
    }

    /// Whether every row is an upsert that keeps its key (no delete, no moved key).
    pub fn only_upserts(&self) -> bool {
        self.rows
            .iter()
            .all(|r| r.op == RowOp::Upsert && r.moved_from.is_none())
    }
}

/// A micro-batch: whole source transactions of every table, deduplicated per key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub tables: Vec<TableBatch>,
    /// Changes read into this batch (before deduplication).
    pub changes: usize,
    /// Approximate size of the records read into this batch.
    pub bytes: usize,
}

impl Batch {
    /// Rows left after deduplication.
    pub fn rows(&self) -> usize {
        self.tables.iter().map(|t| t.rows.len()).sum()
    }
}

struct TableAcc {
    relation: Arc<RelationSchema>,
    truncate_below: Option<Lsn>,
    rows: Vec<Row>,
    by_key: HashMap<Vec<Value>, usize>,
}

impl TableAcc {
    fn new(relation: Arc<RelationSchema>) -> Self {
        TableAcc {
            relation,
            truncate_below: None,
            rows: Vec::new(),
            by_key: HashMap::default(),
        }
    }

    /// Switches to a new description of the table, realigning rows by column name.
    fn adopt(&mut self, relation: &Arc<RelationSchema>) {
        if Arc::ptr_eq(&self.relation, relation) || self.relation.same_shape(relation) {
            return;
        }
        let old = std::mem::replace(&mut self.relation, relation.clone());
        let key_names = |r: &RelationSchema| {
            r.columns
                .iter()
                .filter(|c| c.key)
                .map(|c| c.name.clone())
                .collect::<Vec<_>>()
        };
        let same_key = key_names(&old) == key_names(relation);
        for row in &mut self.rows {
            row.values = realign(&old, relation, std::mem::take(&mut row.values));
            if !same_key {
                row.moved_from = None;
            }
        }
        self.reindex();
    }

    fn reindex(&mut self) {
        self.by_key.clear();
        let keys = self.relation.key_positions();
        if keys.is_empty() {
            return;
        }
        for (i, row) in self.rows.iter().enumerate() {
            if let Some(k) = key_values(&keys, &row.values) {
                self.by_key.insert(k, i);
            }
        }
    }

    fn truncate(&mut self, below: Lsn) {
        self.rows.clear();
        self.by_key.clear();
        self.truncate_below = Some(self.truncate_below.map_or(below, |t| t.max(below)));
    }

    /// Fills unchanged TOAST values of `values` from the batch's upsert of `key`, if any.
    /// Returns the key under which the target holds the values still unchanged: `key`
    /// itself, or where the batch's upsert of `key` was itself moved from.
    fn fill_from_row(&self, key: &[Value], values: &mut [Value]) -> Vec<Value> {
        let Some(&i) = self.by_key.get(key) else {
            return key.to_vec();
        };
        let previous = &self.rows[i];
        if previous.op != RowOp::Upsert {
            return key.to_vec();
        }
        fill_unchanged(values, &previous.values);
        previous.moved_from.clone().unwrap_or_else(|| key.to_vec())
    }

    fn put(&mut self, key: Option<Vec<Value>>, mut row: Row) {
        let Some(key) = key else {
            self.rows.push(row);
            return;
        };
        match self.by_key.get(&key) {
            Some(&i) => {
                let previous = &self.rows[i];
                if previous.op == RowOp::Upsert {
                    // An unchanged TOAST value takes the value written earlier in the batch; a
                    // delete's old image (often the key only) takes the last values written, so
                    // a soft-delete tombstone shows the row as it was.
                    let fill = |v: &Value| match row.op {
                        RowOp::Upsert => *v == Value::Unchanged,
                        RowOp::Delete => matches!(v, Value::Null | Value::Unchanged),
                    };
                    for (v, p) in row.values.iter_mut().zip(&previous.values) {
                        if fill(v) {
                            *v = p.clone();
                        }
                    }
                    // Values still unchanged are still those of the row the earlier upsert
                    // was moved from.
                    if row.op == RowOp::Upsert
                        && row.moved_from.is_none()
                        && row.values.contains(&Value::Unchanged)
                    {
                        row.moved_from = previous.moved_from.clone();
                    }
                }
                if row.op == RowOp::Delete {
                    row.moved_from = None;
                }
                self.rows[i] = row;
            }
            None => {
                self.by_key.insert(key, self.rows.len());
                self.rows.push(row);
            }
        }
    }
}

/// Replaces unchanged TOAST values in `values` with the present values of `from` (aligned).
fn fill_unchanged(values: &mut [Value], from: &[Value]) {
    for (v, f) in values.iter_mut().zip(from) {
        if *v == Value::Unchanged && matches!(f, Value::Text(_)) {
            *v = f.clone();
        }
    }
}

fn key_values(keys: &[usize], values: &[Value]) -> Option<Vec<Value>> {
    keys.iter()
        .map(|&k| match values.get(k) {
            Some(v @ Value::Text(_)) => Some(v.clone()),
            _ => None,
        })
        .collect()
}

/// Values of `row` (aligned with `from`) realigned with `to` by column name; columns that `from`
/// lacks become NULL.
fn realign(from: &RelationSchema, to: &RelationSchema, mut row: Vec<Value>) -> Vec<Value> {
    to.columns
        .iter()
        .map(|c| match from.position(&c.name) {
            Some(i) if i < row.len() => std::mem::replace(&mut row[i], Value::Null),
            _ => Value::Null,
        })
        .collect()
}

/// Accumulates log records into a [`Batch`] and the [`Checkpoint`] that follows it.
#[derive(Default)]
pub struct BatchBuilder {
    tables: BTreeMap<TableId, TableAcc>,
    changes: usize,
    bytes: usize,
    records: usize,
    applied_lsn: Lsn,
    applied_commit_ts: i64,
    /// Tables left out of the batch, carried over into the checkpoint.
    parked: Vec<ParkedTable>,
}

impl BatchBuilder {
    /// Starts a batch after `checkpoint` (whose applied LSN and parked tables carry over).
    pub fn after(checkpoint: &Checkpoint) -> Self {
        BatchBuilder {
            applied_lsn: checkpoint.applied_lsn,
            applied_commit_ts: checkpoint.applied_commit_ts,
            parked: checkpoint.parked.clone(),
            ..Default::default()
        }
    }

    fn is_parked(&self, table: &TableId) -> bool {
        self.parked.iter().any(|p| p.table == *table)
    }

    /// Number of records pushed.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Approximate size of the records pushed.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of changes pushed.
    pub fn changes(&self) -> usize {
        self.changes
    }

    /// End LSN of the newest streamed transaction pushed (or carried over).
    pub fn applied_lsn(&self) -> Lsn {
        self.applied_lsn
    }

    /// Adds a whole record, taking its values.
    pub fn push(&mut self, record: LogRecord) {
        self.records += 1;
        self.bytes += record.size();
        match record {
            LogRecord::Transaction(txn) => {
                // A streamed transaction at or below what is applied was already loaded
                // (re-delivery after a restart): skip it. The per-row guard would make it
                // harmless for keyed tables; skipping also keeps append-only tables exact.
                if txn.kind == TxnKind::Stream && txn.end_lsn <= self.applied_lsn {
                    return;
                }
                for change in txn.changes {
                    self.changes += 1;
                    self.push_change(txn.commit_lsn, txn.commit_ts, change);
                }
                match txn.kind {
                    TxnKind::Stream => {
                        self.applied_lsn = txn.end_lsn;
                        self.applied_commit_ts = txn.commit_ts;
                    }
                    // Snapshot rows are as of the snapshot's time: freshness starts there.
                    TxnKind::Snapshot => {
                        self.applied_commit_ts = self.applied_commit_ts.max(txn.commit_ts);
                    }
                }
            }
            LogRecord::TransactionPart { txn, .. } => {
                // Parts of a transaction applied before (re-delivery) are skipped as the
                // transaction is. The applied position moves with the transaction's last record.
                if txn.kind == TxnKind::Stream && txn.commit_lsn < self.applied_lsn {
                    return;
                }
                for change in txn.changes {
                    self.changes += 1;
                    self.push_change(txn.commit_lsn, txn.commit_ts, change);
                }
            }
            LogRecord::SnapshotBegin {
                consistent_point,
                relations,
            } => {
                let rows_at = Lsn(consistent_point.0.saturating_sub(1));
                for relation in &relations {
                    if !self.is_parked(&relation.table) {
                        self.table(relation).truncate(rows_at);
                    }
                }
            }
            LogRecord::SnapshotEnd { consistent_point } => {
                // Everything committed before the consistent point is in the snapshot.
                self.applied_lsn = self.applied_lsn.max(consistent_point);
            }
        }
    }

    fn table(&mut self, relation: &Arc<RelationSchema>) -> &mut TableAcc {
        let acc = self
            .tables
            .entry(relation.table.clone())
            .or_insert_with(|| TableAcc::new(relation.clone()));
        acc.adopt(relation);
        acc
    }

    fn push_change(&mut self, lsn: Lsn, commit_ts: i64, change: Change) {
        if self.is_parked(&change.relation.table) {
            return;
        }
        let owned = |k: Option<Vec<&Value>>| k.map(|k| k.into_iter().cloned().collect::<Vec<_>>());
        let key = owned(change.key());
        let old_key = owned(change.old_key_if_changed());
        let keyed = change.relation.has_key();
        let acc = self.table(&change.relation);
        let row = |op, values: Option<Vec<Value>>| Row {
            op,
            values: values.unwrap_or_default(),
            lsn,
            commit_ts,
            moved_from: None,
        };
        match change.op {
            Op::Truncate => acc.truncate(lsn),
            Op::Insert | Op::Update => {
                let mut new = change.new;
                let mut moved_from = None;
                if let Some(values) = new.as_mut() {
                    // An unchanged TOAST value is the old row's value: take it from the old
                    // image when that carries it (REPLICA IDENTITY FULL), and when the key
                    // changed, from the old key's row earlier in the batch, since the new
                    // key has nothing in the target to keep.
                    if let Some(old) = &change.old {
                        fill_unchanged(values, old);
                    }
                    // Values the batch does not hold are read by the destination from the
                    // target's row of the old key.
                    if let Some(old_key) = &old_key {
                        let from = acc.fill_from_row(old_key, values);
                        if values.contains(&Value::Unchanged) {
                            moved_from = Some(from);
                        }
                    }
                }
                if old_key.is_some() {
                    acc.put(old_key, row(RowOp::Delete, change.old));
                }
                acc.put(
                    key,
                    Row {
                        moved_from,
                        ..row(RowOp::Upsert, new)
                    },
                );
            }
            Op::Delete => {
                if keyed {
                    acc.put(key, row(RowOp::Delete, change.old));
                }
                // Without a key a delete cannot be matched: append-only tables keep history.
            }
        }
    }

    /// The batch and the checkpoint that records `position` as consumed.
    pub fn finish(self, position: crate::LogPosition) -> (Batch, Checkpoint) {
        let batch = Batch {
            tables: self
                .tables
                .into_values()
                .map(|t| TableBatch {
                    relation: t.relation,
                    truncate_below: t.truncate_below,
                    rows: t.rows,
                })
                .collect(),
            changes: self.changes,
            bytes: self.bytes,
        };
        let checkpoint = Checkpoint {
            position,
            applied_lsn: self.applied_lsn,
            applied_commit_ts: self.applied_commit_ts,
            parked: self.parked,
        };
        (batch, checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Column, LogPosition, ReplicaIdentity, Transaction};

    fn rel(columns: &[(&str, bool)]) -> Arc<RelationSchema> {
        Arc::new(RelationSchema {
            table: TableId::new("public", "t"),
            oid: 1,
            version: 1,
            replica_identity: ReplicaIdentity::Default,
            columns: columns
                .iter()
                .map(|(n, k)| Column {
                    name: (*n).into(),
                    type_oid: 25,
                    type_modifier: -1,
                    key: *k,
                    nullable: true,
                })
                .collect(),
        })
    }

    fn v(s: &str) -> Value {
        Value::Text(s.into())
    }

    fn txn(commit: u64, changes: Vec<Change>) -> LogRecord {
        LogRecord::Transaction(Transaction {
            kind: TxnKind::Stream,
            xid: 1,
            commit_lsn: Lsn(commit),
            end_lsn: Lsn(commit + 1),
            commit_ts: commit as i64,
            changes,
        })
    }

    fn ins(r: &Arc<RelationSchema>, vals: Vec<Value>) -> Change {
        Change {
            relation: r.clone(),
            op: Op::Insert,
            new: Some(vals),
            old: None,
        }
    }
    fn upd(r: &Arc<RelationSchema>, old: Option<Vec<Value>>, vals: Vec<Value>) -> Change {
        Change {
            relation: r.clone(),
            op: Op::Update,
            new: Some(vals),
            old,
        }
    }
    fn del(r: &Arc<RelationSchema>, old: Vec<Value>) -> Change {
        Change {
            relation: r.clone(),
            op: Op::Delete,
            new: None,
            old: Some(old),
        }
    }

    fn build(records: &[LogRecord]) -> (Batch, Checkpoint) {
        let mut b = BatchBuilder::default();
        for r in records {
            b.push(r.clone());
        }
        b.finish(LogPosition::single("0", records.len()))
    }

    #[test]
    fn keeps_newest_change_per_key() {
        let r = rel(&[("id", true), ("v", false)]);
        let (batch, cp) = build(&[
            txn(
                10,
                vec![ins(&r, vec![v("1"), v("a")]), ins(&r, vec![v("2"), v("b")])],
            ),
            txn(20, vec![upd(&r, None, vec![v("1"), v("a2")])]),
            txn(30, vec![del(&r, vec![v("2"), Value::Null])]),
        ]);
        let rows = &batch.tables[0].rows;
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            Row {
                op: RowOp::Upsert,
                values: vec![v("1"), v("a2")],
                lsn: Lsn(20),
                commit_ts: 20,
                moved_from: None,
            }
        );
        assert_eq!(rows[1].op, RowOp::Delete);
        assert_eq!(rows[1].lsn, Lsn(30));
        assert_eq!(batch.changes, 4);
        assert_eq!(cp.applied_lsn, Lsn(31));
        assert_eq!(cp.position, LogPosition::single("0", 3));
    }

    #[test]
    fn insert_delete_reinsert_in_one_transaction() {
        let r = rel(&[("id", true), ("v", false)]);
        let (batch, _) = build(&[txn(
            10,
            vec![
                ins(&r, vec![v("1"), v("a")]),
                del(&r, vec![v("1"), Value::Null]),
                ins(&r, vec![v("1"), v("c")]),
            ],
        )]);
        assert_eq!(
            batch.tables[0].rows,
            vec![Row {
                op: RowOp::Upsert,
                values: vec![v("1"), v("c")],
                lsn: Lsn(10),
                commit_ts: 10,
                moved_from: None,
            }]
        );
    }

    #[test]
    fn delete_after_insert_in_batch_keeps_the_last_values() {
        let r = rel(&[("id", true), ("v", false)]);
        let (batch, _) = build(&[
            txn(10, vec![ins(&r, vec![v("1"), v("a")])]),
            txn(20, vec![del(&r, vec![v("1"), Value::Null])]),
        ]);
        assert_eq!(
            batch.tables[0].rows,
            vec![Row {
                op: RowOp::Delete,
                values: vec![v("1"), v("a")],
                lsn: Lsn(20),
                commit_ts: 20,
                moved_from: None,
            }]
        );
    }

    #[test]
    fn key_change_deletes_the_old_key() {
        let r = rel(&[("id", true), ("v", false)]);
        let (batch, _) = build(&[txn(
            10,
            vec![upd(
                &r,
                Some(vec![v("1"), Value::Null]),
                vec![v("9"), v("x")],
            )],
        )]);
        let rows = &batch.tables[0].rows;
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].op, &rows[0].values[0]), (RowOp::Delete, &v("1")));
        assert_eq!((rows[1].op, &rows[1].values[0]), (RowOp::Upsert, &v("9")));
    }

    #[test]
    fn unchanged_toast_filled_from_earlier_change_in_batch() {
        let r = rel(&[("id", true), ("big", false), ("n", false)]);
        let (batch, _) = build(&[
            txn(10, vec![ins(&r, vec![v("1"), v("large"), v("0")])]),
            txn(
                20,
                vec![upd(&r, None, vec![v("1"), Value::Unchanged, v("1")])],
            ),
            txn(
                30,
                vec![upd(&r, None, vec![v("2"), Value::Unchanged, v("1")])],
            ),
        ]);
        let rows = &batch.tables[0].rows;
        assert_eq!(rows[0].values, vec![v("1"), v("large"), v("1")]);
        // Nothing earlier in the batch for key 2: the marker stays for the destination.
        assert_eq!(rows[1].values, vec![v("2"), Value::Unchanged, v("1")]);
    }

    #[test]
    fn unchanged_toast_follows_a_key_change() {
        let r = rel(&[("id", true), ("big", false), ("n", false)]);
        let (batch, _) = build(&[
            txn(10, vec![ins(&r, vec![v("1"), v("large"), v("0")])]),
            txn(
                20,
                vec![upd(
                    &r,
                    Some(vec![v("1"), Value::Null, Value::Null]),
                    vec![v("9"), Value::Unchanged, v("1")],
                )],
            ),
            // REPLICA IDENTITY FULL: the old image carries the value.
            txn(
                30,
                vec![upd(
                    &r,
                    Some(vec![v("2"), v("kept"), v("0")]),
                    vec![v("3"), Value::Unchanged, v("1")],
                )],
            ),
        ]);
        let rows = &batch.tables[0].rows;
        let upserts: Vec<_> = rows
            .iter()
            .filter(|r| r.op == RowOp::Upsert)
            .map(|r| r.values.clone())
            .collect();
        assert_eq!(
            upserts,
            vec![
                vec![v("9"), v("large"), v("1")],
                vec![v("3"), v("kept"), v("1")]
            ]
        );
    }

    #[test]
    fn key_change_with_unchanged_toast_names_the_target_row() {
        let r = rel(&[("id", true), ("big", false), ("n", false)]);
        let moved = |old: &str, new: &str, n: &str| {
            upd(
                &r,
                Some(vec![v(old), Value::Null, Value::Null]),
                vec![v(new), Value::Unchanged, v(n)],
            )
        };
        // Key 1 was loaded by an earlier batch: the value is read from the target's row 1,
        // through a later update of the new key and a second key change alike.
        let (batch, _) = build(&[
            txn(10, vec![moved("1", "9", "1")]),
            txn(
                20,
                vec![upd(&r, None, vec![v("9"), Value::Unchanged, v("2")])],
            ),
            txn(30, vec![moved("9", "5", "3")]),
            txn(40, vec![ins(&r, vec![v("7"), v("large"), v("0")])]),
            txn(50, vec![moved("7", "8", "1")]),
            txn(60, vec![moved("2", "3", "1")]),
            txn(70, vec![del(&r, vec![v("3"), Value::Null, Value::Null])]),
        ]);
        let rows: Vec<_> = batch.tables[0]
            .rows
            .iter()
            .map(|r| (r.op, r.values.clone(), r.moved_from.clone()))
            .collect();
        assert_eq!(
            rows,
            vec![
                (RowOp::Delete, vec![v("1"), Value::Null, Value::Null], None),
                (RowOp::Delete, vec![v("9"), Value::Unchanged, v("2")], None),
                (
                    RowOp::Upsert,
                    vec![v("5"), Value::Unchanged, v("3")],
                    Some(vec![v("1")])
                ),
                (RowOp::Delete, vec![v("7"), v("large"), v("0")], None),
                // Filled from the batch: nothing to read from the target.
                (RowOp::Upsert, vec![v("8"), v("large"), v("1")], None),
                (RowOp::Delete, vec![v("2"), Value::Null, Value::Null], None),
                (RowOp::Delete, vec![v("3"), Value::Unchanged, v("1")], None),
            ]
        );
    }

    #[test]
    fn truncate_drops_earlier_rows_and_sets_the_bound() {
        let r = rel(&[("id", true)]);
        let (batch, _) = build(&[
            txn(10, vec![ins(&r, vec![v("1")])]),
            txn(
                20,
                vec![
                    Change {
                        relation: r.clone(),
                        op: Op::Truncate,
                        new: None,
                        old: None,
                    },
                    ins(&r, vec![v("2")]),
                ],
            ),
        ]);
        assert_eq!(batch.tables[0].truncate_below, Some(Lsn(20)));
        assert_eq!(batch.tables[0].rows.len(), 1);
        assert_eq!(batch.tables[0].rows[0].values, vec![v("2")]);
    }

    #[test]
    fn skips_transactions_already_applied() {
        let r = rel(&[("id", true)]);
        let mut b = BatchBuilder::after(&Checkpoint {
            applied_lsn: Lsn(21),
            ..Default::default()
        });
        b.push(txn(20, vec![ins(&r, vec![v("1")])]));
        b.push(txn(30, vec![ins(&r, vec![v("2")])]));
        let (batch, cp) = b.finish(LogPosition::default());
        assert_eq!(batch.tables[0].rows.len(), 1);
        assert_eq!(batch.tables[0].rows[0].values, vec![v("2")]);
        assert_eq!(cp.applied_lsn, Lsn(31));
    }

    #[test]
    fn transaction_parts_move_the_applied_position_only_at_the_end() {
        let r = rel(&[("id", true)]);
        let part = |n: u32, lsn: u64, key: &str| LogRecord::TransactionPart {
            part: n,
            txn: Transaction {
                kind: TxnKind::Stream,
                xid: 9,
                commit_lsn: Lsn(lsn),
                end_lsn: Lsn::ZERO,
                commit_ts: 0,
                changes: vec![ins(&r, vec![v(key)])],
            },
        };
        let mut b = BatchBuilder::after(&Checkpoint {
            applied_lsn: Lsn(21),
            ..Default::default()
        });
        // A part of a transaction applied before is skipped, as its transaction is.
        b.push(part(0, 20, "0"));
        b.push(part(0, 30, "1"));
        b.push(part(1, 30, "2"));
        assert_eq!(b.applied_lsn(), Lsn(21), "parts do not move the position");
        b.push(txn(30, vec![ins(&r, vec![v("3")])]));
        let (batch, cp) = b.finish(LogPosition::default());
        let keys: Vec<_> = batch.tables[0]
            .rows
            .iter()
            .map(|r| r.values[0].clone())
            .collect();
        assert_eq!(keys, vec![v("1"), v("2"), v("3")]);
        assert_eq!(cp.applied_lsn, Lsn(31));
        assert_eq!(batch.changes, 3);
    }

    #[test]
    fn snapshot_rows_set_the_applied_commit_time() {
        let mut b = BatchBuilder::default();
        b.push(LogRecord::Transaction(Transaction {
            kind: TxnKind::Snapshot,
            xid: 0,
            commit_lsn: Lsn(99),
            end_lsn: Lsn(99),
            commit_ts: 1_700_000_000_000_000,
            changes: vec![ins(&rel(&[("id", true)]), vec![v("1")])],
        }));
        let (_, cp) = b.finish(LogPosition::default());
        assert_eq!(cp.applied_commit_ts, 1_700_000_000_000_000);
        assert_eq!(
            cp.applied_lsn,
            Lsn::ZERO,
            "only the snapshot's end marks its position"
        );
    }

    #[test]
    fn snapshot_end_marks_the_consistent_point_applied() {
        let mut b = BatchBuilder::default();
        b.push(LogRecord::SnapshotEnd {
            consistent_point: Lsn(500),
        });
        // A stream transaction ending at or before the consistent point is in the snapshot.
        b.push(txn(400, vec![ins(&rel(&[("id", true)]), vec![v("1")])]));
        let (batch, cp) = b.finish(LogPosition::default());
        assert_eq!(cp.applied_lsn, Lsn(500));
        assert!(batch.tables.is_empty());
    }

    #[test]
    fn added_column_realigns_earlier_rows() {
        let r1 = rel(&[("id", true), ("a", false)]);
        let mut r2 = (*rel(&[("id", true), ("a", false), ("b", false)])).clone();
        r2.version = 2;
        let r2 = Arc::new(r2);
        let (batch, _) = build(&[
            txn(10, vec![ins(&r1, vec![v("1"), v("x")])]),
            txn(20, vec![ins(&r2, vec![v("2"), v("y"), v("z")])]),
        ]);
        let t = &batch.tables[0];
        assert_eq!(t.relation.columns.len(), 3);
        assert_eq!(t.rows[0].values, vec![v("1"), v("x"), Value::Null]);
        assert_eq!(t.rows[1].values, vec![v("2"), v("y"), v("z")]);
    }

    #[test]
    fn parked_tables_are_left_out_and_carried_over() {
        let t = rel(&[("id", true)]);
        let mut o = (*rel(&[("id", true)])).clone();
        o.table = TableId::new("public", "other");
        let o = Arc::new(o);
        let parked = ParkedTable {
            table: TableId::new("public", "t"),
            lsn: Lsn(5),
            reason: "wedged".into(),
        };
        let mut b = BatchBuilder::after(&Checkpoint {
            applied_lsn: Lsn(5),
            parked: vec![parked.clone()],
            ..Default::default()
        });
        b.push(LogRecord::SnapshotBegin {
            consistent_point: Lsn(8),
            relations: vec![t.clone(), o.clone()],
        });
        // One source transaction touching both tables: the other table's part is loaded.
        b.push(txn(10, vec![ins(&t, vec![v("1")]), ins(&o, vec![v("2")])]));
        b.push(txn(20, vec![ins(&t, vec![v("3")])]));
        let (batch, cp) = b.finish(LogPosition::single("0", 3));
        assert_eq!(batch.tables.len(), 1, "{batch:?}");
        assert_eq!(batch.tables[0].relation.table, o.table);
        assert_eq!(batch.tables[0].truncate_below, Some(Lsn(7)));
        assert_eq!(batch.tables[0].rows.len(), 1);
        assert_eq!(batch.tables[0].rows[0].values, vec![v("2")]);
        assert_eq!(
            cp.applied_lsn,
            Lsn(21),
            "the position moves past the parked changes"
        );
        assert_eq!(
            cp.parked,
            vec![parked],
            "the park is stored with the checkpoint"
        );
    }

    #[test]
    fn tables_without_key_are_append_only() {
        let r = rel(&[("a", false)]);
        let (batch, _) = build(&[txn(
            10,
            vec![
                ins(&r, vec![v("1")]),
                ins(&r, vec![v("1")]),
                del(&r, vec![v("1")]),
            ],
        )]);
        assert_eq!(batch.tables[0].rows.len(), 2);
        assert!(!batch.tables[0].keyed());
    }
}
