//! Building change-log records and batches by hand, for the destination crates' tests.

use std::sync::Arc;

use sluice_core::{
    Batch, BatchBuilder, Change, Checkpoint, Column, LogPosition, LogRecord, Lsn, Op,
    RelationSchema, ReplicaIdentity, TableId, Transaction, TxnKind, Value,
};

/// A column: name, type OID, type modifier, key.
pub type Col<'a> = (&'a str, u32, i32, bool);

/// A relation of `schema.name` at `version`, with replica identity default.
pub fn relation(
    schema: &str,
    name: &str,
    version: u32,
    columns: &[Col<'_>],
) -> Arc<RelationSchema> {
    Arc::new(RelationSchema {
        table: TableId::new(schema, name),
        oid: 16384,
        version,
        replica_identity: ReplicaIdentity::Default,
        columns: columns
            .iter()
            .map(|&(name, type_oid, type_modifier, key)| Column {
                name: name.into(),
                type_oid,
                type_modifier,
                key,
                nullable: !key,
            })
            .collect(),
    })
}

/// A text value.
pub fn t(s: &str) -> Value {
    Value::Text(s.into())
}

/// Text values, `None` for NULL.
pub fn vals(items: &[Option<&str>]) -> Vec<Value> {
    items
        .iter()
        .map(|v| v.map_or(Value::Null, |s| Value::Text(s.into())))
        .collect()
}

/// A change of `r`.
pub fn change(
    r: &Arc<RelationSchema>,
    op: Op,
    old: Option<Vec<Value>>,
    new: Option<Vec<Value>>,
) -> Change {
    Change {
        relation: r.clone(),
        op,
        new,
        old,
    }
}

pub fn ins(r: &Arc<RelationSchema>, new: Vec<Value>) -> Change {
    change(r, Op::Insert, None, Some(new))
}

pub fn upd(r: &Arc<RelationSchema>, old: Option<Vec<Value>>, new: Vec<Value>) -> Change {
    change(r, Op::Update, old, Some(new))
}

pub fn del(r: &Arc<RelationSchema>, old: Vec<Value>) -> Change {
    change(r, Op::Delete, Some(old), None)
}

pub fn truncate(r: &Arc<RelationSchema>) -> Change {
    change(r, Op::Truncate, None, None)
}

/// A committed transaction at `commit` whose commit time is `commit` seconds after
/// 2024-01-01 00:00:00 UTC.
pub fn txn(commit: u64, changes: Vec<Change>) -> LogRecord {
    LogRecord::Transaction(Transaction {
        kind: TxnKind::Stream,
        xid: commit as u32,
        commit_lsn: Lsn(commit),
        end_lsn: Lsn(commit + 1),
        commit_ts: 1_704_067_200_000_000 + commit as i64 * 1_000_000,
        changes,
    })
}

/// The batch and checkpoint of `records`, read from offset `from` of partition "0".
pub fn build(from: usize, records: &[LogRecord]) -> (Batch, Checkpoint) {
    let mut b = BatchBuilder::default();
    for r in records {
        b.push(r.clone());
    }
    b.finish(LogPosition::single("0", from + records.len()))
}

/// `public.orders (id int4 key, status text, note text)`, the relation of the row-semantics
/// tests every destination runs.
pub fn orders() -> Arc<RelationSchema> {
    relation(
        "public",
        "orders",
        1,
        &[
            ("id", sluice_core::pg_type::oid::INT4, -1, true),
            ("status", sluice_core::pg_type::oid::TEXT, -1, false),
            ("note", sluice_core::pg_type::oid::TEXT, -1, false),
        ],
    )
}

/// Two batches of [`orders`]: orders 1 and 2 inserted at 10, order 1 paid (its note NULL) at
/// 20; then order 2 deleted at 30.
pub fn order_history() -> [Vec<LogRecord>; 2] {
    let r = orders();
    [
        vec![
            txn(
                10,
                vec![
                    ins(&r, vals(&[Some("1"), Some("new"), Some("a")])),
                    ins(&r, vals(&[Some("2"), Some("new"), Some("b")])),
                ],
            ),
            txn(
                20,
                vec![upd(&r, None, vals(&[Some("1"), Some("paid"), None]))],
            ),
        ],
        vec![txn(30, vec![del(&r, vals(&[Some("2"), None, None]))])],
    ]
}

/// Query rows as `|`-joined text, NULL as `NULL`.
pub fn lines(rows: Vec<Vec<Option<String>>>) -> Vec<String> {
    rows.into_iter()
        .map(|r| {
            r.into_iter()
                .map(|v| v.unwrap_or_else(|| "NULL".into()))
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

/// A transaction at `commit` inserting [`orders`] rows `(id, status)` with a NULL note.
pub fn insert_orders(commit: u64, rows: &[(&str, &str)]) -> LogRecord {
    let r = orders();
    txn(
        commit,
        rows.iter()
            .map(|&(id, status)| ins(&r, vals(&[Some(id), Some(status), None])))
            .collect(),
    )
}
