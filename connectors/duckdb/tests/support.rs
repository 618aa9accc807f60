//! Building batches from log records, and reading the database file back.

use std::path::PathBuf;
use std::sync::Arc;

use duckdb::Connection;
use sluice_core::{
    Batch, BatchBuilder, Change, Checkpoint, Column, DeleteMode, Destination, LogPosition,
    LogRecord, Lsn, Op, RelationSchema, ReplicaIdentity, TableId, Transaction, TxnKind, Value,
};
use sluice_duckdb::{DuckDbConfig, DuckDbDestination};

/// A column: name, type OID, type modifier, key.
pub type Col<'a> = (&'a str, u32, i32, bool);

pub fn rel(schema: &str, name: &str, version: u32, columns: &[Col<'_>]) -> Arc<RelationSchema> {
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

pub fn t(s: &str) -> Value {
    Value::Text(s.into())
}

pub fn vals(items: &[Option<&str>]) -> Vec<Value> {
    items
        .iter()
        .map(|v| v.map_or(Value::Null, |s| Value::Text(s.into())))
        .collect()
}

pub fn ins(r: &Arc<RelationSchema>, new: Vec<Value>) -> Change {
    Change {
        relation: r.clone(),
        op: Op::Insert,
        new: Some(new),
        old: None,
    }
}

pub fn upd(r: &Arc<RelationSchema>, old: Option<Vec<Value>>, new: Vec<Value>) -> Change {
    Change {
        relation: r.clone(),
        op: Op::Update,
        new: Some(new),
        old,
    }
}

pub fn del(r: &Arc<RelationSchema>, old: Vec<Value>) -> Change {
    Change {
        relation: r.clone(),
        op: Op::Delete,
        new: None,
        old: Some(old),
    }
}

pub fn truncate(r: &Arc<RelationSchema>) -> Change {
    Change {
        relation: r.clone(),
        op: Op::Truncate,
        new: None,
        old: None,
    }
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

/// A database file in a temporary directory, with a destination opened on demand and closed
/// whenever the file is read directly.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub config: DuckDbConfig,
    dest: Option<DuckDbDestination>,
}

pub const PIPELINE: &str = "main";

impl Fixture {
    pub fn new(deletes: DeleteMode) -> Self {
        Self::with_schema(deletes, "raw")
    }

    pub fn with_schema(deletes: DeleteMode, schema: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("warehouse.duckdb");
        let mut config = DuckDbConfig::new(&path);
        config.deletes = deletes;
        config.schema = schema.into();
        Fixture {
            _dir: dir,
            path,
            config,
            dest: None,
        }
    }

    /// The destination, opened for [`PIPELINE`]; returns what `open` returned if it opened now.
    pub async fn dest(&mut self) -> &mut DuckDbDestination {
        if self.dest.is_none() {
            let mut d = sluice_duckdb::destination(self.config.clone()).unwrap();
            d.open(PIPELINE).await.unwrap();
            self.dest = Some(d);
        }
        self.dest.as_mut().unwrap()
    }

    /// Opens a fresh destination and returns the stored checkpoint.
    pub async fn reopen(&mut self) -> Option<Checkpoint> {
        self.dest = None;
        let mut d = sluice_duckdb::destination(self.config.clone()).unwrap();
        let cp = d.open(PIPELINE).await.unwrap();
        self.dest = Some(d);
        cp
    }

    pub async fn try_apply(
        &mut self,
        batch: &Batch,
        cp: &Checkpoint,
    ) -> Result<(), sluice_warehouse::Error> {
        self.dest().await.apply(batch.clone(), cp).await
    }

    /// Builds a batch of `records` and applies it.
    pub async fn apply(&mut self, records: &[LogRecord]) {
        let (batch, cp) = build(0, records);
        self.try_apply(&batch, &cp).await.unwrap();
    }

    /// Rows of `sql`, every column read as text (NULL as `None`). Closes the destination.
    pub fn query(&mut self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.dest = None;
        let conn = Connection::open(&self.path).unwrap();
        let wrapped = format!("SELECT COLUMNS(*)::VARCHAR FROM ({sql})");
        let mut stmt = conn.prepare(&wrapped).unwrap();
        let mut rows = stmt.query([]).unwrap();
        let n = rows.as_ref().unwrap().column_count();
        let mut out = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            out.push(
                (0..n)
                    .map(|i| row.get::<_, Option<String>>(i).unwrap())
                    .collect(),
            );
        }
        out
    }

    /// Like [`Fixture::query`], with `None` printed as `NULL` and columns joined by `|`.
    pub fn lines(&mut self, sql: &str) -> Vec<String> {
        self.query(sql)
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|v| v.unwrap_or_else(|| "NULL".into()))
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    }

    /// Every column of every row of a table, as text, in a stable order: for comparing a table
    /// byte for byte before and after.
    pub fn dump(&mut self, qualified: &str) -> Vec<Vec<Option<String>>> {
        self.query(&format!("SELECT * FROM {qualified} ORDER BY ALL"))
    }
}
