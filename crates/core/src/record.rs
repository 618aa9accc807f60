//! What the change log carries, and its binary encoding.
//!
//! Each log record is self-contained: a transaction record carries the relation schemas its
//! changes refer to, so a reader needs no earlier record (older segments may be gone).
//!
//! ## Encoding (version 1)
//!
//! ```text
//! +---------+------------------------------------------------+
//! | 0x01    | postcard encoding of the record (see RecordWire)|
//! +---------+------------------------------------------------+
//! ```
//!
//! The first byte is the format version; a reader refuses versions it does not know rather than
//! guessing. Framing, checksums and offsets belong to the change log, not to this encoding.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Change, Lsn, Op, RelationSchema, Transaction, TxnKind, Value};

/// The current record format version.
pub const RECORD_FORMAT_VERSION: u8 = 1;

/// One entry of the change log.
#[derive(Debug, Clone, PartialEq)]
pub enum LogRecord {
    /// A committed source transaction, or a chunk of snapshot rows.
    Transaction(Transaction),
    /// Part `part` (from 0) of a source transaction too large to hold in memory. The parts of
    /// one transaction are contiguous in the log and in order, and the transaction ends with
    /// an ordinary [`LogRecord::Transaction`] of the same `xid` and `commit_lsn` holding its
    /// last changes. Its `end_lsn` may be unknown (`0/0`) while the commit has not been seen.
    /// A run of parts not followed by its transaction (capture stopped while appending them)
    /// is abandoned: the source sends the whole transaction again, from part 0.
    TransactionPart { part: u32, txn: Transaction },
    /// An initial snapshot of these tables begins at `consistent_point`. Rows that the target
    /// holds from before (an interrupted earlier snapshot) are removed when their position is
    /// older than the snapshot's rows (`consistent_point - 1`).
    SnapshotBegin {
        consistent_point: Lsn,
        relations: Vec<Arc<RelationSchema>>,
    },
    /// The initial snapshot that began at `consistent_point` is complete; streaming follows.
    SnapshotEnd { consistent_point: Lsn },
}

impl LogRecord {
    /// Approximate in-memory size, for byte budgets.
    pub fn size(&self) -> usize {
        match self {
            LogRecord::Transaction(t) | LogRecord::TransactionPart { txn: t, .. } => t.size(),
            LogRecord::SnapshotBegin { relations, .. } => 64 + relations.len() * 256,
            LogRecord::SnapshotEnd { .. } => 16,
        }
    }
}

/// A record that cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("empty log record")]
    Empty,
    #[error(
        "log record format version {0} is not supported (this build reads version {RECORD_FORMAT_VERSION})"
    )]
    UnsupportedVersion(u8),
    #[error("malformed log record")]
    Malformed(#[source] postcard::Error),
    #[error("log record refers to relation {index} but carries only {count}")]
    BadRelationIndex { index: u32, count: usize },
}

#[derive(Serialize)]
enum RecordWireRef<'a> {
    Transaction(TxnWireRef<'a>),
    SnapshotBegin {
        consistent_point: Lsn,
        relations: Vec<&'a RelationSchema>,
    },
    SnapshotEnd {
        consistent_point: Lsn,
    },
    TransactionPart {
        part: u32,
        txn: TxnWireRef<'a>,
    },
}

#[derive(Serialize)]
struct TxnWireRef<'a> {
    kind: TxnKind,
    xid: u32,
    commit_lsn: Lsn,
    end_lsn: Lsn,
    commit_ts: i64,
    relations: Vec<&'a RelationSchema>,
    changes: Vec<ChangeWireRef<'a>>,
}

#[derive(Serialize)]
struct ChangeWireRef<'a> {
    rel: u32,
    op: Op,
    new: Option<&'a [Value]>,
    old: Option<&'a [Value]>,
}

#[derive(Deserialize)]
enum RecordWire {
    Transaction(TxnWire),
    SnapshotBegin {
        consistent_point: Lsn,
        relations: Vec<RelationSchema>,
    },
    SnapshotEnd {
        consistent_point: Lsn,
    },
    TransactionPart {
        part: u32,
        txn: TxnWire,
    },
}

#[derive(Deserialize)]
struct TxnWire {
    kind: TxnKind,
    xid: u32,
    commit_lsn: Lsn,
    end_lsn: Lsn,
    commit_ts: i64,
    relations: Vec<RelationSchema>,
    changes: Vec<ChangeWire>,
}

#[derive(Deserialize)]
struct ChangeWire {
    rel: u32,
    op: Op,
    new: Option<Vec<Value>>,
    old: Option<Vec<Value>>,
}

/// Encodes `record` (version byte included) onto the end of `out`.
pub fn encode_record(record: &LogRecord, out: &mut Vec<u8>) {
    out.push(RECORD_FORMAT_VERSION);
    let wire = match record {
        LogRecord::Transaction(t) => RecordWireRef::Transaction(txn_wire(t)),
        LogRecord::TransactionPart { part, txn } => RecordWireRef::TransactionPart {
            part: *part,
            txn: txn_wire(txn),
        },
        LogRecord::SnapshotBegin {
            consistent_point,
            relations,
        } => RecordWireRef::SnapshotBegin {
            consistent_point: *consistent_point,
            relations: relations.iter().map(|r| &**r).collect(),
        },
        LogRecord::SnapshotEnd { consistent_point } => RecordWireRef::SnapshotEnd {
            consistent_point: *consistent_point,
        },
    };
    // Serializing plain data into a Vec cannot fail.
    let encoded = postcard::to_extend(&wire, std::mem::take(out));
    *out = encoded.expect("postcard serialization into a Vec is infallible");
}

/// A transaction's wire form: each relation once, changes pointing at it by index.
fn txn_wire(t: &Transaction) -> TxnWireRef<'_> {
    let mut relations: Vec<&RelationSchema> = Vec::new();
    let mut changes = Vec::with_capacity(t.changes.len());
    for c in &t.changes {
        // Transactions touch few relations: a linear scan beats hashing here.
        let rel = match relations
            .iter()
            .position(|r| std::ptr::eq(*r, &*c.relation))
        {
            Some(i) => i,
            None => match relations.iter().position(|r| **r == *c.relation) {
                Some(i) => i,
                None => {
                    relations.push(&c.relation);
                    relations.len() - 1
                }
            },
        };
        changes.push(ChangeWireRef {
            rel: rel as u32,
            op: c.op,
            new: c.new.as_deref(),
            old: c.old.as_deref(),
        });
    }
    TxnWireRef {
        kind: t.kind,
        xid: t.xid,
        commit_lsn: t.commit_lsn,
        end_lsn: t.end_lsn,
        commit_ts: t.commit_ts,
        relations,
        changes,
    }
}

fn txn_from_wire(t: TxnWire) -> Result<Transaction, RecordError> {
    let relations: Vec<Arc<RelationSchema>> = t.relations.into_iter().map(Arc::new).collect();
    let mut changes = Vec::with_capacity(t.changes.len());
    for c in t.changes {
        let relation = relations
            .get(c.rel as usize)
            .ok_or(RecordError::BadRelationIndex {
                index: c.rel,
                count: relations.len(),
            })?;
        changes.push(Change {
            relation: relation.clone(),
            op: c.op,
            new: c.new,
            old: c.old,
        });
    }
    Ok(Transaction {
        kind: t.kind,
        xid: t.xid,
        commit_lsn: t.commit_lsn,
        end_lsn: t.end_lsn,
        commit_ts: t.commit_ts,
        changes,
    })
}

/// Decodes a record written by [`encode_record`].
pub fn decode_record(buf: &[u8]) -> Result<LogRecord, RecordError> {
    let (&version, body) = buf.split_first().ok_or(RecordError::Empty)?;
    if version != RECORD_FORMAT_VERSION {
        return Err(RecordError::UnsupportedVersion(version));
    }
    let wire: RecordWire = postcard::from_bytes(body).map_err(RecordError::Malformed)?;
    Ok(match wire {
        RecordWire::Transaction(t) => LogRecord::Transaction(txn_from_wire(t)?),
        RecordWire::TransactionPart { part, txn } => LogRecord::TransactionPart {
            part,
            txn: txn_from_wire(txn)?,
        },
        RecordWire::SnapshotBegin {
            consistent_point,
            relations,
        } => LogRecord::SnapshotBegin {
            consistent_point,
            relations: relations.into_iter().map(Arc::new).collect(),
        },
        RecordWire::SnapshotEnd { consistent_point } => LogRecord::SnapshotEnd { consistent_point },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Column, ReplicaIdentity, TableId};

    fn relation(name: &str) -> Arc<RelationSchema> {
        Arc::new(RelationSchema {
            table: TableId::new("public", name),
            oid: 16384,
            version: 1,
            replica_identity: ReplicaIdentity::Default,
            columns: vec![
                Column {
                    name: "id".into(),
                    type_oid: 20,
                    type_modifier: -1,
                    key: true,
                    nullable: false,
                },
                Column {
                    name: "v".into(),
                    type_oid: 25,
                    type_modifier: -1,
                    key: false,
                    nullable: true,
                },
            ],
        })
    }

    #[test]
    fn transaction_round_trips_and_shares_relations() {
        let a = relation("a");
        let b = relation("b \"quoted\"");
        let txn = Transaction {
            kind: TxnKind::Stream,
            xid: 42,
            commit_lsn: Lsn(0x1_0000_0010),
            end_lsn: Lsn(0x1_0000_0040),
            commit_ts: 1_700_000_000_123_456,
            changes: vec![
                Change {
                    relation: a.clone(),
                    op: Op::Insert,
                    new: Some(vec!["1".into(), Value::Null]),
                    old: None,
                },
                Change {
                    relation: b.clone(),
                    op: Op::Update,
                    new: Some(vec!["2".into(), Value::Unchanged]),
                    old: Some(vec!["1".into(), Value::Null]),
                },
                Change {
                    relation: a.clone(),
                    op: Op::Delete,
                    new: None,
                    old: Some(vec!["1".into(), Value::Null]),
                },
                Change {
                    relation: a,
                    op: Op::Truncate,
                    new: None,
                    old: None,
                },
            ],
        };
        let record = LogRecord::Transaction(txn);
        let mut buf = Vec::new();
        encode_record(&record, &mut buf);
        assert_eq!(buf[0], RECORD_FORMAT_VERSION);
        let decoded = decode_record(&buf).expect("decodes");
        assert_eq!(decoded, record);
        let LogRecord::Transaction(t) = decoded else {
            panic!("not a transaction")
        };
        assert!(Arc::ptr_eq(&t.changes[0].relation, &t.changes[2].relation));
    }

    #[test]
    fn transaction_parts_round_trip() {
        let a = relation("a");
        let record = LogRecord::TransactionPart {
            part: 3,
            txn: Transaction {
                kind: TxnKind::Stream,
                xid: 7,
                commit_lsn: Lsn(0x20),
                end_lsn: Lsn::ZERO,
                commit_ts: 5,
                changes: vec![Change {
                    relation: a,
                    op: Op::Insert,
                    new: Some(vec!["1".into(), "x".into()]),
                    old: None,
                }],
            },
        };
        let mut buf = Vec::new();
        encode_record(&record, &mut buf);
        assert_eq!(decode_record(&buf).expect("decodes"), record);
    }

    #[test]
    fn markers_round_trip() {
        for record in [
            LogRecord::SnapshotBegin {
                consistent_point: Lsn(77),
                relations: vec![relation("x")],
            },
            LogRecord::SnapshotEnd {
                consistent_point: Lsn(77),
            },
        ] {
            let mut buf = Vec::new();
            encode_record(&record, &mut buf);
            assert_eq!(decode_record(&buf).expect("decodes"), record);
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(decode_record(&[]), Err(RecordError::Empty)));
        assert!(matches!(
            decode_record(&[9, 0]),
            Err(RecordError::UnsupportedVersion(9))
        ));
        assert!(matches!(
            decode_record(&[1, 0xff, 0xff]),
            Err(RecordError::Malformed(_))
        ));
        // A change pointing past the relation list.
        let mut buf = vec![RECORD_FORMAT_VERSION];
        buf.extend(
            postcard::to_stdvec(&RecordWireRef::Transaction(TxnWireRef {
                kind: TxnKind::Stream,
                xid: 1,
                commit_lsn: Lsn(1),
                end_lsn: Lsn(2),
                commit_ts: 0,
                relations: vec![],
                changes: vec![ChangeWireRef {
                    rel: 3,
                    op: Op::Insert,
                    new: None,
                    old: None,
                }],
            }))
            .expect("encodes"),
        );
        assert!(matches!(
            decode_record(&buf),
            Err(RecordError::BadRelationIndex { index: 3, count: 0 })
        ));
    }
}
