//! Building batches from log records, and reading the target back.

use std::sync::Arc;

use sluice_core::{
    Batch, BatchBuilder, Change, Checkpoint, Column, DeleteMode, Destination, LogPosition,
    LogRecord, Lsn, Op, RelationSchema, ReplicaIdentity, TableId, Transaction, TxnKind, Value,
};
use sluice_postgres_target::{PostgresDestination, PostgresTargetConfig};
use sluice_testkit::{PgCluster, TestDatabase};

/// A column: name, type OID, type modifier, key.
pub type Col<'a> = (&'a str, u32, i32, bool);

pub fn rel(name: &str, columns: &[Col<'_>]) -> Arc<RelationSchema> {
    Arc::new(RelationSchema {
        table: TableId::new("public", name),
        oid: 16384,
        version: 1,
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

pub fn vals(items: &[Option<&str>]) -> Vec<Value> {
    items
        .iter()
        .map(|v| v.map_or(Value::Null, |s| Value::Text(s.into())))
        .collect()
}

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

pub const PIPELINE: &str = "main";

/// A fresh target database with an opened destination.
pub struct Target {
    pub db: TestDatabase,
    pub dest: PostgresDestination,
}

impl Target {
    pub async fn new(deletes: DeleteMode) -> Target {
        let db = PgCluster::shared()
            .fresh_database()
            .await
            .expect("database");
        let mut config = PostgresTargetConfig::new(db.url());
        config.deletes = deletes;
        let mut dest = sluice_postgres_target::destination(config).expect("valid config");
        assert_eq!(dest.open(PIPELINE).await.expect("open"), None);
        Target { db, dest }
    }

    pub async fn try_apply(
        &mut self,
        batch: &Batch,
        cp: &Checkpoint,
    ) -> Result<(), sluice_warehouse::Error> {
        self.dest.apply(batch.clone(), cp).await
    }

    pub async fn apply(&mut self, records: &[LogRecord]) {
        let (batch, cp) = build(0, records);
        self.try_apply(&batch, &cp).await.expect("apply");
    }

    /// Rows of `sql` as `|`-joined text, NULL as `NULL`.
    pub async fn lines(&self, sql: &str) -> Vec<String> {
        text_rows(&self.db, sql)
            .await
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|v| v.unwrap_or_else(|| "NULL".into()))
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    }

    /// Every row of a table, in a stable order.
    pub async fn dump(&self, table: &str) -> Vec<String> {
        self.lines(&format!("SELECT t::text FROM {table} t ORDER BY 1"))
            .await
    }
}

/// Rows of `sql`, each value in its text output form (simple query protocol).
pub async fn text_rows(db: &TestDatabase, sql: &str) -> Vec<Vec<Option<String>>> {
    let client = db.client().await.expect("client");
    client
        .simple_query(sql)
        .await
        .expect("query")
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect()
}
