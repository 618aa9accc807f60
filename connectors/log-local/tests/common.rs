//! Records of every kind and small helpers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice_core::{
    Change, ChangeLogReader, LogRecord, Lsn, Op, ReadRecord, Transaction, TxnKind, Value,
};
use sluice_log_local::{LocalLog, LogOptions, LogReader};

pub use sluice_testkit::log_conformance::relation;

/// A transaction of `changes` changes cycling through every op and value kind.
pub fn transaction(i: u64, changes: usize) -> LogRecord {
    let rel = relation(if i.is_multiple_of(2) {
        "orders"
    } else {
        "inventory \"movements\""
    });
    let changes = (0..changes)
        .map(|c| {
            let id = Value::Text(format!("{}", i * 1000 + c as u64));
            let note = match c % 3 {
                0 => Value::Null,
                1 => Value::Unchanged,
                _ => Value::Text(format!("note {i}/{c} é ✓")),
            };
            let (op, new, old) = match c % 4 {
                0 => (Op::Insert, Some(vec![id, note]), None),
                1 => (
                    Op::Update,
                    Some(vec![id.clone(), note]),
                    Some(vec![id, Value::Null]),
                ),
                2 => (Op::Delete, None, Some(vec![id, Value::Null])),
                _ => (Op::Truncate, None, None),
            };
            Change {
                relation: rel.clone(),
                op,
                new,
                old,
            }
        })
        .collect();
    LogRecord::Transaction(Transaction {
        kind: if i.is_multiple_of(5) {
            TxnKind::Snapshot
        } else {
            TxnKind::Stream
        },
        xid: i as u32,
        commit_lsn: Lsn(0x1_0000_0000 + i * 100),
        end_lsn: Lsn(0x1_0000_0000 + i * 100 + 40),
        commit_ts: 1_700_000_000_000_000 + i as i64,
        changes,
    })
}

/// `n` records: snapshot markers and transactions of varied sizes.
pub fn records(n: u64) -> Vec<LogRecord> {
    (0..n)
        .map(|i| match i % 10 {
            0 => LogRecord::SnapshotBegin {
                consistent_point: Lsn(i),
                relations: vec![relation("orders"), relation("customers")],
            },
            9 => LogRecord::SnapshotEnd {
                consistent_point: Lsn(i),
            },
            _ => transaction(i, (i % 7) as usize + 1),
        })
        .collect()
}

pub async fn open(dir: &Path, segment_bytes: u64) -> LocalLog {
    LocalLog::open(LogOptions::new(dir).segment_bytes(segment_bytes))
        .await
        .expect("log opens")
}

pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir lists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    out.sort();
    out
}

/// Everything available now.
pub async fn read_all(reader: &mut LogReader) -> Vec<ReadRecord> {
    let mut out = Vec::new();
    loop {
        let got = reader.read(64 * 1024, Duration::ZERO).await.expect("reads");
        if got.is_empty() {
            return out;
        }
        out.extend(got);
    }
}

pub fn offset(r: &ReadRecord) -> u64 {
    r.position.partitions["0"].parse().expect("numeric offset")
}
