//! Building batches from log records, and reading the database file back.

use std::path::PathBuf;

use duckdb::Connection;
use sluice_core::{Batch, Checkpoint, DeleteMode, Destination, LogRecord};
use sluice_duckdb::{DuckDbConfig, DuckDbDestination};

pub use sluice_testkit::records::{
    Col, build, del, ins, relation as rel, t, truncate, txn, upd, vals,
};

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
        sluice_testkit::records::lines(self.query(sql))
    }

    /// Every column of every row of a table, as text, in a stable order: for comparing a table
    /// byte for byte before and after.
    pub fn dump(&mut self, qualified: &str) -> Vec<Vec<Option<String>>> {
        self.query(&format!("SELECT * FROM {qualified} ORDER BY ALL"))
    }
}
