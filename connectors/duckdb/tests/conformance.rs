//! The shared destination conformance suite (`sluice_testkit::conformance`) against DuckDB
//! files in temporary directories.

use duckdb::Connection;
use sluice_core::{DeleteMode, PgType};
use sluice_duckdb::{DuckDbConfig, DuckDbDestination};
use sluice_testkit::conformance::{Harness, Supports};

/// A DuckDB file per target; rows are read with the `duckdb` crate after the suite has
/// dropped its destination (one writer per file).
#[derive(Default)]
struct DuckHarness {
    /// The current target: its directory (removed on drop) and configuration.
    target: Option<(tempfile::TempDir, DuckDbConfig)>,
}

impl DuckHarness {
    fn config(&self) -> &DuckDbConfig {
        &self.target.as_ref().expect("fresh() was called").1
    }

    fn connection(&self) -> Connection {
        Connection::open(&self.config().path).unwrap()
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// SQL giving the canonical text (see the suite's docs) of `expr`, a column of PostgreSQL type
/// `ty` stored with `depth` list levels.
fn canonical_sql(expr: &str, ty: &PgType, depth: usize) -> String {
    if let PgType::Array(inner) = ty {
        if depth == 0 {
            return format!("{expr}::VARCHAR");
        }
        // Nested lists for every stored level, the element's canonical text innermost.
        let mut body = canonical_sql("x0", inner, 0);
        for level in 1..depth {
            body = format!("list_transform(x{level}, lambda x{}: {body})", level - 1);
        }
        let x = format!("x{}", depth - 1);
        return format!("to_json(list_transform({expr}, lambda {x}: {body}))::VARCHAR");
    }
    let infinite = |finite: &str, zero: &str| {
        format!(
            "CASE WHEN isinf({expr}) THEN CASE WHEN {expr} > {zero} THEN 'infinity' \
             ELSE '-infinity' END ELSE ({finite})::VARCHAR END"
        )
    };
    match ty {
        PgType::Bytea => format!("lower(hex({expr}))"),
        PgType::Date => infinite(
            &format!("date_diff('day', DATE '1970-01-01', {expr})"),
            "DATE '1970-01-01'",
        ),
        PgType::Timestamp => infinite(&format!("epoch_us({expr})"), "TIMESTAMP '1970-01-01'"),
        PgType::TimestampTz => infinite(
            &format!("epoch_us({expr})"),
            "TIMESTAMPTZ '1970-01-01 00:00:00+00'",
        ),
        _ => format!("{expr}::VARCHAR"),
    }
}

impl Harness for DuckHarness {
    type Dest = DuckDbDestination;

    fn supports(&self) -> Supports {
        Supports {
            float_special: true,
            // DECIMAL has no NaN: the column becomes VARCHAR holding the exact text.
            numeric_special_in_decimal: true,
            infinite_datetimes: true,
            bc_datetimes: true,
            quotes_in_names: true,
        }
    }

    async fn fresh(&mut self, schema: &str, deletes: DeleteMode) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = DuckDbConfig::new(dir.path().join("warehouse.duckdb"));
        config.schema = schema.into();
        config.deletes = deletes;
        self.target = Some((dir, config));
    }

    async fn destination(&mut self) -> DuckDbDestination {
        sluice_duckdb::destination(self.config().clone()).unwrap()
    }

    async fn rows(&mut self, table: &str, columns: &[(&str, PgType)]) -> Vec<Vec<Option<String>>> {
        let conn = self.connection();
        let schema = self.config().schema.clone();
        let mut depths = std::collections::HashMap::new();
        {
            let mut stmt = conn
                .prepare(
                    "SELECT column_name, data_type FROM information_schema.columns \
                     WHERE table_schema = ? AND table_name = ?",
                )
                .unwrap();
            let mut rows = stmt.query([&schema, table]).unwrap();
            while let Some(row) = rows.next().unwrap() {
                let name: String = row.get(0).unwrap();
                let ty: String = row.get(1).unwrap();
                depths.insert(name, ty.matches("[]").count());
            }
        }
        let select = columns
            .iter()
            .map(|(name, ty)| {
                let depth = *depths
                    .get(*name)
                    .unwrap_or_else(|| panic!("column {name:?} missing from {table:?}"));
                canonical_sql(&quote(name), ty, depth)
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("SELECT {select} FROM {}.{}", quote(&schema), quote(table));
        let mut stmt = conn.prepare(&sql).unwrap();
        let mut rows = stmt.query([]).unwrap();
        let mut out = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            out.push(
                (0..columns.len())
                    .map(|i| row.get::<_, Option<String>>(i).unwrap())
                    .collect(),
            );
        }
        out
    }

    async fn columns(&mut self, table: &str) -> Vec<String> {
        let conn = self.connection();
        let schema = self.config().schema.clone();
        let mut stmt = conn
            .prepare(
                "SELECT column_name FROM information_schema.columns \
                 WHERE table_schema = ? AND table_name = ?",
            )
            .unwrap();
        stmt.query_map([&schema, table], |r| r.get::<_, String>(0))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    }
}

sluice_testkit::conformance_tests!(DuckHarness::default());
