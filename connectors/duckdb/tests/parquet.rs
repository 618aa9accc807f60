//! Staged Parquet files (`sluice_warehouse::staging::write_parquet`) read by a real engine:
//! DuckDB loads them by column name into the staging table its dialect creates.

use std::borrow::Cow;
use std::sync::Arc;

use duckdb::Connection;
use sluice_core::Value;
use sluice_core::pg_type::oid;
use sluice_sql::{DuckDb, DuckType, STAGE, SqlDialect, TargetColumn};
use sluice_warehouse::StageTable;
use sluice_warehouse::staging::{ParquetOptions, write_parquet};

use crate::support::*;

fn keep<'a>(text: &'a str, _: &DuckType) -> Result<Cow<'a, str>, String> {
    Ok(Cow::Borrowed(text))
}

/// Rows of `sql` as `|`-joined text, NULL as `NULL`.
fn lines(conn: &Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(sql).unwrap();
    let mut rows = stmt.query([]).unwrap();
    let n = rows.as_ref().unwrap().column_count();
    let mut out = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        let values: Vec<String> = (0..n)
            .map(|i| {
                row.get::<_, Option<String>>(i)
                    .unwrap()
                    .unwrap_or_else(|| "NULL".into())
            })
            .collect();
        out.push(values.join("|"));
    }
    out
}

#[test]
fn duckdb_loads_staged_parquet_files_by_name_into_its_staging_table() {
    let r = rel(
        "public",
        "orders",
        1,
        &[
            ("id", oid::INT4, -1, true),
            ("status", oid::TEXT, -1, false),
            ("note", oid::TEXT, -1, false),
        ],
    );
    let (batch, _) = build(
        0,
        &[txn(
            10,
            vec![
                ins(&r, vals(&[Some("1"), Some("new"), Some("Grüße, 世界 🚀")])),
                ins(&r, vals(&[Some("4"), None, None])),
                upd(&r, None, vec![t("3"), t("paid"), Value::Unchanged]),
                del(&r, vals(&[Some("2"), None, None])),
                upd(
                    &r,
                    Some(vals(&[Some("5"), None, None])),
                    vec![t("6"), t("moved"), Value::Unchanged],
                ),
            ],
        )],
    );
    let table = StageTable {
        batch: Arc::new(batch),
        index: 0,
        columns: vec![
            TargetColumn {
                name: "id".into(),
                ty: DuckType::Integer,
                key: true,
            },
            TargetColumn {
                name: "status".into(),
                ty: DuckType::Varchar,
                key: false,
            },
            TargetColumn {
                name: "note".into(),
                ty: DuckType::Varchar,
                key: false,
            },
        ],
        target: "\"raw\".\"orders\"".into(),
        stage: "_sluice_stage".into(),
    };
    // Three rows a file at most (each stages at most 40 bytes): several files.
    let options = ParquetOptions {
        max_file_bytes: 120,
        row_group_rows: 2,
    };
    let files = write_parquet(&table, &keep, &options).unwrap();
    assert!(files.len() > 1, "{} files", files.len());

    let dir = tempfile::tempdir().unwrap();
    let dialect = DuckDb { json: false };
    let paths: Vec<String> = files
        .iter()
        .map(|file| {
            let path = dir.path().join(&file.name);
            std::fs::write(&path, &file.bytes).unwrap();
            dialect.quote_literal(path.to_str().unwrap())
        })
        .collect();
    let source = format!("read_parquet([{}])", paths.join(", "));

    let conn = Connection::open_in_memory().unwrap();
    // What DuckDB reads the files as: the staging columns' names and types.
    assert_eq!(
        lines(
            &conn,
            &format!(
                "SELECT column_name, column_type, \"null\" FROM (DESCRIBE SELECT * FROM {source})"
            )
        ),
        [
            "c0|VARCHAR|YES",
            "c1|VARCHAR|YES",
            "c2|VARCHAR|YES",
            "_sluice_op|VARCHAR|YES",
            "_sluice_lsn|BIGINT|YES",
            "_sluice_commit_ts|BIGINT|YES",
            "_sluice_unchanged|VARCHAR|YES",
            "_sluice_from_0|VARCHAR|YES",
        ]
    );
    // Loaded by name into the staging table the dialect creates, so a column named otherwise
    // would fail the insert.
    conn.execute_batch(&dialect.create_stage(3, 1)).unwrap();
    conn.execute_batch(&format!(
        "INSERT INTO {} BY NAME SELECT * FROM {source}",
        dialect.quote_ident(STAGE)
    ))
    .unwrap();
    let ts = 1_704_067_200_000_000_i64 + 10_000_000;
    assert_eq!(
        lines(
            &conn,
            &format!(
                "SELECT COLUMNS(*)::VARCHAR FROM {} ORDER BY c0, _sluice_op",
                dialect.quote_ident(STAGE)
            )
        ),
        [
            format!("1|new|Grüße, 世界 🚀|U|10|{ts}|NULL|NULL"),
            format!("2|NULL|NULL|D|10|{ts}|NULL|NULL"),
            format!("3|paid|NULL|U|10|{ts}|001|NULL"),
            format!("4|NULL|NULL|U|10|{ts}|NULL|NULL"),
            format!("5|NULL|NULL|D|10|{ts}|NULL|NULL"),
            format!("6|moved|NULL|U|10|{ts}|001|5"),
        ]
    );
}
