//! Building batches from log records, and reading the target back.

use sluice_core::{Batch, Checkpoint, DeleteMode, Destination, LogRecord};
use sluice_postgres_target::{PostgresDestination, PostgresTargetConfig};
use sluice_testkit::{PgCluster, TestDatabase};

pub use sluice_testkit::records::{Col, build, del, ins, truncate, txn, upd, vals};

/// A relation `public.<name>`, version 1.
pub fn rel(name: &str, columns: &[Col<'_>]) -> std::sync::Arc<sluice_core::RelationSchema> {
    sluice_testkit::records::relation("public", name, 1, columns)
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
        sluice_testkit::records::lines(text_rows(&self.db, sql).await)
    }

    /// Every row of a table, in a stable order.
    pub async fn dump(&self, table: &str) -> Vec<String> {
        self.lines(&format!("SELECT t::text FROM {table} t ORDER BY 1"))
            .await
    }
}

/// Rows of `sql`, each value in its text output form (simple query protocol).
pub async fn text_rows(db: &TestDatabase, sql: &str) -> Vec<Vec<Option<String>>> {
    db.text_rows(sql).await.expect("query")
}
