//! The shared destination conformance suite (`sluice_testkit::conformance`) against a fresh
//! database of the test kit's PostgreSQL cluster per target.

// A failed read of the target is a failed test.
#![allow(clippy::unwrap_used)]

use sluice_core::{DeleteMode, PgType};
use sluice_postgres_target::{PostgresDestination, PostgresTargetConfig};
use sluice_testkit::PgCluster;
use sluice_testkit::TestDatabase;
use sluice_testkit::conformance::{Harness, Supports, canonical};

/// A fresh database per target; rows are read with tokio-postgres as PostgreSQL's text output
/// (UTC, ISO dates, hex bytea, shortest floats), which the suite's `canonical` turns into the
/// canonical form.
#[derive(Default)]
struct PgHarness {
    target: Option<(TestDatabase, String, DeleteMode)>,
}

impl PgHarness {
    fn target(&self) -> &(TestDatabase, String, DeleteMode) {
        self.target.as_ref().expect("fresh() was called")
    }

    async fn client(&self) -> tokio_postgres::Client {
        let client = self.target().0.client().await.unwrap();
        client
            .batch_execute(
                "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; \
                 SET extra_float_digits = 1; SET bytea_output = 'hex'",
            )
            .await
            .unwrap();
        client
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

impl Harness for PgHarness {
    type Dest = PostgresDestination;

    fn supports(&self) -> Supports {
        Supports::ALL
    }

    async fn fresh(&mut self, schema: &str, deletes: DeleteMode) {
        let db = PgCluster::shared().fresh_database().await.unwrap();
        self.target = Some((db, schema.to_owned(), deletes));
    }

    async fn destination(&mut self) -> PostgresDestination {
        let (db, schema, deletes) = self.target();
        let mut config = PostgresTargetConfig::new(db.url());
        config.schema = schema.clone();
        config.deletes = *deletes;
        sluice_postgres_target::destination(config).unwrap()
    }

    async fn rows(&mut self, table: &str, columns: &[(&str, PgType)]) -> Vec<Vec<Option<String>>> {
        let select = columns
            .iter()
            .map(|(name, ty)| match ty {
                // A cast of character(n) to text drops the padding; the driver reads the
                // column itself as text with it.
                PgType::Bpchar(_) => quote(name),
                _ => format!("{}::text", quote(name)),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {select} FROM {}.{}",
            quote(&self.target().1),
            quote(table)
        );
        let rows = self.client().await.query(&sql, &[]).await.unwrap();
        rows.iter()
            .map(|row| {
                columns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, ty))| {
                        row.get::<_, Option<String>>(i)
                            .map(|text| canonical(ty, &text))
                    })
                    .collect()
            })
            .collect()
    }

    async fn columns(&mut self, table: &str) -> Vec<String> {
        let schema = self.target().1.clone();
        self.client()
            .await
            .query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = $2",
                &[&schema, &table],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
}

sluice_testkit::conformance_tests!(PgHarness::default());
