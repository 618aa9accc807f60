//! The DuckDB dialect: pure builders of every statement this destination runs.
//!
//! Identifiers reach SQL only through [`quote_ident`] and literals only through
//! [`quote_literal`]. Nothing here touches a connection; the statements are snapshot tested
//! below and executed against a real DuckDB file by the integration tests.
//!
//! ## Staging and MERGE
//!
//! Rows of one target table are appended to the temporary table [`STAGE`] with one `VARCHAR`
//! column per relation column (`c0`, `c1`, ... in relation order, holding text DuckDB can cast,
//! see `encode`), then `_sluice_op` (`'U'` upsert, `'D'` delete), `_sluice_lsn` (commit LSN as
//! `BIGINT`), `_sluice_commit_ts` (microseconds since the epoch) and `_sluice_unchanged` (one
//! `'0'`/`'1'` per column, `'1'` where the value is an unchanged TOAST value; NULL when none is).
//! One MERGE then applies them, each row only when its `_sluice_lsn` is newer than the target
//! row's, so a replayed or older change never overwrites a newer one.

use std::fmt::Write as _;

use sluice_core::{DeleteMode, meta};

use crate::schema::{DuckType, TargetColumn};

/// The staging table (temporary, so it lives in the `temp` catalog and dies with the
/// connection).
pub(crate) const STAGE: &str = "_sluice_stage";
/// Staging column: `'U'` or `'D'`.
pub(crate) const OP: &str = "_sluice_op";
/// Staging column: which values are unchanged TOAST.
pub(crate) const UNCHANGED: &str = "_sluice_unchanged";

/// A quoted identifier: wrapped in double quotes, inner double quotes doubled.
pub(crate) fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A quoted string literal: wrapped in single quotes, inner single quotes doubled. (DuckDB
/// string literals have no backslash escapes.)
pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

fn stage() -> String {
    format!("temp.main.{}", quote_ident(STAGE))
}

/// A `TIMESTAMPTZ` from an expression holding microseconds since the Unix epoch, exact and
/// independent of the session time zone.
fn timestamptz_from_micros(expr: &str) -> String {
    format!("(TIMESTAMPTZ '1970-01-01 00:00:00+00' + to_microseconds({expr}))")
}

/// Whether the json extension is loaded (one row, one BOOLEAN).
pub(crate) fn json_loaded() -> String {
    "SELECT count(*) > 0 FROM duckdb_extensions() WHERE extension_name = 'json' AND loaded"
        .to_owned()
}

pub(crate) fn create_schema(schema: &str) -> String {
    format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema))
}

/// The target table: the relation's columns, then the metadata columns.
pub(crate) fn create_table(schema: &str, table: &str, columns: &[TargetColumn]) -> String {
    let mut sql = format!("CREATE TABLE {} (", qualified(schema, table));
    for c in columns {
        let _ = write!(sql, "{} {}, ", quote_ident(&c.name), c.ty);
    }
    let _ = write!(
        sql,
        "{} BIGINT NOT NULL, {} TIMESTAMPTZ, {} BOOLEAN NOT NULL, {} TIMESTAMPTZ)",
        quote_ident(meta::LSN),
        quote_ident(meta::COMMIT_TS),
        quote_ident(meta::DELETED),
        quote_ident(meta::SYNCED_AT)
    );
    sql
}

pub(crate) fn add_column(schema: &str, table: &str, column: &str, ty: &DuckType) -> String {
    format!(
        "ALTER TABLE {} ADD COLUMN {} {ty}",
        qualified(schema, table),
        quote_ident(column)
    )
}

pub(crate) fn alter_column_type(schema: &str, table: &str, column: &str, ty: &DuckType) -> String {
    format!(
        "ALTER TABLE {} ALTER COLUMN {} SET DATA TYPE {ty}",
        qualified(schema, table),
        quote_ident(column)
    )
}

/// `(column_name, data_type)` of a table of the database file, in column order.
pub(crate) fn table_columns(schema: &str, table: &str) -> String {
    format!(
        "SELECT column_name, data_type FROM information_schema.columns \
         WHERE table_catalog = current_database() AND table_schema = {} AND table_name = {} \
         ORDER BY ordinal_position",
        quote_literal(schema),
        quote_literal(table)
    )
}

/// The staging table for `columns` relation columns, replacing the previous one.
pub(crate) fn create_stage(columns: usize) -> String {
    let mut sql = format!("CREATE OR REPLACE TEMP TABLE {} (", quote_ident(STAGE));
    for i in 0..columns {
        let _ = write!(sql, "c{i} VARCHAR, ");
    }
    let _ = write!(
        sql,
        "{} VARCHAR NOT NULL, {} BIGINT NOT NULL, {} BIGINT NOT NULL, {} VARCHAR)",
        quote_ident(OP),
        quote_ident(meta::LSN),
        quote_ident(meta::COMMIT_TS),
        quote_ident(UNCHANGED)
    );
    sql
}

pub(crate) fn drop_stage() -> String {
    format!("DROP TABLE IF EXISTS {}", stage())
}

fn list_varchar(depth: usize) -> String {
    format!("VARCHAR{}", "[]".repeat(depth))
}

/// The expression converting staged text `expr` into `ty`. Lists are cast to `VARCHAR` lists
/// first (the staged text is a DuckDB list literal), then converted element by element.
pub(crate) fn convert(expr: &str, ty: &DuckType) -> String {
    fn scalar(expr: &str, ty: &DuckType) -> String {
        match ty {
            DuckType::Varchar => expr.to_owned(),
            DuckType::Blob => format!("from_hex({expr})"),
            other => format!("CAST({expr} AS {other})"),
        }
    }
    fn elements(expr: &str, ty: &DuckType, level: usize) -> String {
        match ty {
            DuckType::List(inner) => {
                let var = format!("x{level}");
                format!(
                    "list_transform({expr}, lambda {var}: {})",
                    elements(&var, inner, level + 1)
                )
            }
            other => scalar(expr, other),
        }
    }
    match ty {
        DuckType::List(_) => {
            let listed = format!("CAST({expr} AS {})", list_varchar(ty.depth()));
            if *ty.element() == DuckType::Varchar {
                listed
            } else {
                elements(&listed, ty, 1)
            }
        }
        other => scalar(expr, other),
    }
}

/// A boolean expression true when staged text `expr` does not convert into `ty`, or `None`
/// when every staged text converts (text, and hex already checked by the encoder).
fn unconvertible(expr: &str, ty: &DuckType) -> Option<String> {
    let element = ty.element();
    if matches!(element, DuckType::Varchar | DuckType::Blob) {
        return None;
    }
    Some(match ty {
        DuckType::List(_) => {
            let mut flat = format!("CAST({expr} AS {})", list_varchar(ty.depth()));
            for _ in 1..ty.depth() {
                flat = format!("flatten({flat})");
            }
            format!(
                "len(list_filter({flat}, lambda x: x IS NOT NULL AND TRY_CAST(x AS {element}) \
                 IS NULL)) > 0"
            )
        }
        _ => format!("{expr} IS NOT NULL AND TRY_CAST({expr} AS {ty}) IS NULL"),
    })
}

/// One row with one BOOLEAN per listed column: whether some staged value of that column does
/// not convert to its target type. Returns the query and the positions it covers; `None` when
/// no column needs checking.
pub(crate) fn check_stage(columns: &[TargetColumn]) -> Option<(String, Vec<usize>)> {
    let mut checks = Vec::new();
    let mut positions = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        if let Some(check) = unconvertible(&format!("c{i}"), &c.ty) {
            checks.push(format!("coalesce(bool_or({check}), false)"));
            positions.push(i);
        }
    }
    (!checks.is_empty()).then(|| {
        (
            format!("SELECT {} FROM {}", checks.join(", "), stage()),
            positions,
        )
    })
}

/// The staged rows converted to target types, named like the target columns, plus the
/// staging metadata columns.
fn source(columns: &[TargetColumn], only_upserts: bool) -> String {
    let mut sql = String::from("SELECT ");
    for (i, c) in columns.iter().enumerate() {
        let _ = write!(
            sql,
            "{} AS {}, ",
            convert(&format!("c{i}"), &c.ty),
            quote_ident(&c.name)
        );
    }
    let _ = write!(
        sql,
        "{op}, {lsn}, {} AS {ts}, {unchanged} FROM {}",
        timestamptz_from_micros(&quote_ident(meta::COMMIT_TS)),
        stage(),
        op = quote_ident(OP),
        lsn = quote_ident(meta::LSN),
        ts = quote_ident(meta::COMMIT_TS),
        unchanged = quote_ident(UNCHANGED),
    );
    if only_upserts {
        let _ = write!(sql, " WHERE {} = 'U'", quote_ident(OP));
    }
    sql
}

/// Applies the staged rows of a keyed table: one MERGE matched on the key columns, every
/// branch guarded so only a newer change (`s._sluice_lsn > t._sluice_lsn`) touches a row.
pub(crate) fn merge(
    schema: &str,
    table: &str,
    columns: &[TargetColumn],
    deletes: DeleteMode,
) -> String {
    let q = quote_ident;
    let (lsn, ts, deleted, synced) = (
        q(meta::LSN),
        q(meta::COMMIT_TS),
        q(meta::DELETED),
        q(meta::SYNCED_AT),
    );
    let op = q(OP);
    let on = columns
        .iter()
        .filter(|c| c.key)
        .map(|c| format!("t.{n} = s.{n}", n = q(&c.name)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let newer = format!("s.{lsn} > t.{lsn}");
    let stamp = format!("{lsn} = s.{lsn}, {ts} = s.{ts}, {synced} = current_timestamp");

    let mut sql = format!(
        "MERGE INTO {} AS t USING ({}) AS s ON ({on})",
        qualified(schema, table),
        source(columns, false)
    );
    // Upsert of a row the target holds: unchanged TOAST values keep the target's value.
    let _ = write!(
        sql,
        " WHEN MATCHED AND {newer} AND s.{op} = 'U' THEN UPDATE SET "
    );
    for (i, c) in columns.iter().enumerate().filter(|(_, c)| !c.key) {
        let n = q(&c.name);
        let _ = write!(
            sql,
            "{n} = CASE WHEN substr(s.{}, {}, 1) = '1' THEN t.{n} ELSE s.{n} END, ",
            q(UNCHANGED),
            i + 1
        );
    }
    let _ = write!(sql, "{stamp}, {deleted} = false");
    // Delete of a row the target holds.
    match deletes {
        DeleteMode::Soft => {
            let _ = write!(
                sql,
                " WHEN MATCHED AND {newer} AND s.{op} = 'D' THEN UPDATE SET {stamp}, \
                 {deleted} = true"
            );
        }
        DeleteMode::Hard => {
            let _ = write!(
                sql,
                " WHEN MATCHED AND {newer} AND s.{op} = 'D' THEN DELETE"
            );
        }
    }
    // Upsert of a new row: unchanged TOAST values (nothing to keep) are NULL.
    let names = columns.iter().map(|c| q(&c.name)).collect::<Vec<_>>();
    let _ = write!(
        sql,
        " WHEN NOT MATCHED AND s.{op} = 'U' THEN INSERT ({}, {lsn}, {ts}, {deleted}, {synced}) \
         VALUES ({}, s.{lsn}, s.{ts}, false, current_timestamp)",
        names.join(", "),
        names
            .iter()
            .map(|n| format!("s.{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Soft deletes of a row the target lacks leave a tombstone holding the key, so that an
    // older change delivered later cannot resurrect the row.
    if deletes == DeleteMode::Soft {
        let keys = columns
            .iter()
            .filter(|c| c.key)
            .map(|c| q(&c.name))
            .collect::<Vec<_>>();
        let _ = write!(
            sql,
            " WHEN NOT MATCHED AND s.{op} = 'D' THEN INSERT ({}, {lsn}, {ts}, {deleted}, \
             {synced}) VALUES ({}, s.{lsn}, s.{ts}, true, current_timestamp)",
            keys.join(", "),
            keys.iter()
                .map(|n| format!("s.{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    sql
}

/// Applies the staged rows of a table without a key: every upsert is appended.
pub(crate) fn append(schema: &str, table: &str, columns: &[TargetColumn]) -> String {
    let q = quote_ident;
    let names = columns.iter().map(|c| q(&c.name)).collect::<Vec<_>>();
    format!(
        "INSERT INTO {} ({}, {lsn}, {ts}, {deleted}, {synced}) SELECT {}, {lsn}, {ts}, false, \
         current_timestamp FROM ({}) AS s",
        qualified(schema, table),
        names.join(", "),
        names.join(", "),
        source(columns, true),
        lsn = q(meta::LSN),
        ts = q(meta::COMMIT_TS),
        deleted = q(meta::DELETED),
        synced = q(meta::SYNCED_AT),
    )
}

/// Removes rows written before `lsn` (a TRUNCATE at the source, or a restarted snapshot).
/// Soft: marks them deleted, keeping their position so rows at `lsn` still apply; rows already
/// marked are left alone, so a replay changes nothing.
pub(crate) fn truncate_below(schema: &str, table: &str, lsn: i64, deletes: DeleteMode) -> String {
    let l = quote_ident(meta::LSN);
    match deletes {
        DeleteMode::Soft => format!(
            "UPDATE {} SET {} = true, {} = current_timestamp WHERE {l} < {lsn} AND NOT {}",
            qualified(schema, table),
            quote_ident(meta::DELETED),
            quote_ident(meta::SYNCED_AT),
            quote_ident(meta::DELETED),
        ),
        DeleteMode::Hard => format!("DELETE FROM {} WHERE {l} < {lsn}", qualified(schema, table)),
    }
}

pub(crate) fn create_checkpoint_table(schema: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (pipeline VARCHAR PRIMARY KEY, position VARCHAR NOT NULL, \
         applied_lsn BIGINT NOT NULL, applied_lsn_text VARCHAR NOT NULL, \
         applied_commit_ts TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL)",
        qualified(schema, meta::CHECKPOINT_TABLE)
    )
}

/// Stores a pipeline's checkpoint. `position` is the JSON of the change-log position,
/// `applied_lsn` the LSN as a signed 64-bit number and `lsn_text` its `X/Y` form.
pub(crate) fn upsert_checkpoint(
    schema: &str,
    pipeline: &str,
    position: &str,
    applied_lsn: i64,
    lsn_text: &str,
    applied_commit_ts: i64,
) -> String {
    format!(
        "INSERT INTO {} (pipeline, position, applied_lsn, applied_lsn_text, applied_commit_ts, \
         updated_at) VALUES ({}, {}, {applied_lsn}, {}, {}, current_timestamp) \
         ON CONFLICT (pipeline) DO UPDATE SET position = excluded.position, \
         applied_lsn = excluded.applied_lsn, applied_lsn_text = excluded.applied_lsn_text, \
         applied_commit_ts = excluded.applied_commit_ts, updated_at = excluded.updated_at",
        qualified(schema, meta::CHECKPOINT_TABLE),
        quote_literal(pipeline),
        quote_literal(position),
        quote_literal(lsn_text),
        timestamptz_from_micros(&applied_commit_ts.to_string()),
    )
}

/// `(position, applied_lsn, applied_commit_ts as epoch microseconds)` of a pipeline.
pub(crate) fn select_checkpoint(schema: &str, pipeline: &str) -> String {
    format!(
        "SELECT position, applied_lsn, epoch_us(applied_commit_ts) FROM {} WHERE pipeline = {}",
        qualified(schema, meta::CHECKPOINT_TABLE),
        quote_literal(pipeline)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: DuckType, key: bool) -> TargetColumn {
        TargetColumn {
            name: name.into(),
            ty,
            key,
        }
    }

    fn columns() -> Vec<TargetColumn> {
        vec![
            col("id", DuckType::BigInt, true),
            col("name", DuckType::Varchar, false),
            col("amount", DuckType::Decimal(12, 2), false),
            col("payload", DuckType::Blob, false),
            col(
                "tags",
                DuckType::List(Box::new(DuckType::List(Box::new(DuckType::Integer)))),
                false,
            ),
        ]
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("select"), "\"select\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("back\\slash"), "'back\\slash'");
    }

    #[test]
    fn ddl() {
        insta::assert_snapshot!("create_schema", create_schema("we\"ird s"));
        insta::assert_snapshot!("create_table", create_table("raw", "orders", &columns()));
        insta::assert_snapshot!(
            "add_column",
            add_column("raw", "; DROP TABLE x; --", "sélect", &DuckType::Uuid)
        );
        insta::assert_snapshot!(
            "alter_column_type",
            alter_column_type("raw", "t", "n", &DuckType::BigInt)
        );
        insta::assert_snapshot!("table_columns", table_columns("it's", "t"));
        insta::assert_snapshot!("create_stage", create_stage(3));
        insta::assert_snapshot!("drop_stage", drop_stage());
    }

    #[test]
    fn conversions() {
        let list2 = DuckType::List(Box::new(DuckType::List(Box::new(DuckType::Blob))));
        assert_eq!(
            convert("c0", &list2),
            "list_transform(CAST(c0 AS VARCHAR[][]), lambda x1: list_transform(x1, lambda x2: \
             from_hex(x2)))"
        );
        let texts = DuckType::List(Box::new(DuckType::Varchar));
        assert_eq!(convert("c0", &texts), "CAST(c0 AS VARCHAR[])");
        assert_eq!(convert("c0", &DuckType::Varchar), "c0");
        assert_eq!(convert("c0", &DuckType::Date), "CAST(c0 AS DATE)");
        insta::assert_snapshot!("check_stage", check_stage(&columns()).expect("checks").0);
        assert_eq!(check_stage(&columns()).expect("checks").1, vec![0, 2, 4]);
        assert!(check_stage(&[col("a", DuckType::Varchar, true)]).is_none());
    }

    #[test]
    fn merges() {
        insta::assert_snapshot!(
            "merge_soft",
            merge("raw", "orders", &columns(), DeleteMode::Soft)
        );
        insta::assert_snapshot!(
            "merge_hard",
            merge("raw", "orders", &columns(), DeleteMode::Hard)
        );
        insta::assert_snapshot!("append", append("raw", "events", &columns()[1..]));
        insta::assert_snapshot!(
            "truncate_soft",
            truncate_below("raw", "t", 42, DeleteMode::Soft)
        );
        insta::assert_snapshot!(
            "truncate_hard",
            truncate_below("raw", "t", 42, DeleteMode::Hard)
        );
    }

    #[test]
    fn checkpoints() {
        insta::assert_snapshot!("create_checkpoint_table", create_checkpoint_table("raw"));
        insta::assert_snapshot!(
            "upsert_checkpoint",
            upsert_checkpoint(
                "raw",
                "it's",
                r#"{"partitions":{"0":"12"}}"#,
                0x16_B374_D848,
                "16/B374D848",
                1_700_000_000_123_456
            )
        );
        insta::assert_snapshot!("select_checkpoint", select_checkpoint("raw", "main"));
    }
}
