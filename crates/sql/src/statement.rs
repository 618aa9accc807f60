//! Statement builders shared by the dialects, written once over [`SqlDialect`]'s quoting,
//! staging and conversion hooks.

use std::fmt::Write as _;

use sluice_core::{DeleteMode, meta};

use crate::{Guard, OP, SqlDialect, TargetColumn, UNCHANGED, moved_from_column};

pub(crate) fn create_table<D: SqlDialect>(
    d: &D,
    schema: &str,
    table: &str,
    columns: &[TargetColumn<D::Type>],
) -> String {
    let mut sql = format!("CREATE TABLE {} (", d.qualified(schema, table));
    for c in columns {
        let _ = write!(sql, "{} {}, ", d.quote_ident(&c.name), c.ty);
    }
    let _ = write!(
        sql,
        "{} BIGINT NOT NULL, {} TIMESTAMPTZ, {} BOOLEAN NOT NULL, {} TIMESTAMPTZ)",
        d.quote_ident(meta::LSN),
        d.quote_ident(meta::COMMIT_TS),
        d.quote_ident(meta::DELETED),
        d.quote_ident(meta::SYNCED_AT)
    );
    sql
}

/// The staged rows converted to target types, named like the target columns, plus the
/// staging metadata columns (`_sluice_commit_ts` as a timestamp).
///
/// With `moved` (`schema.table` of a keyed target), the stage is LEFT JOINed to the target
/// on the old key of moved rows: their unchanged values are the target's values at the old
/// key, and their unchanged marker is cleared.
pub(crate) fn source<D: SqlDialect>(
    d: &D,
    columns: &[TargetColumn<D::Type>],
    only_upserts: bool,
    moved: Option<(&str, &str)>,
) -> String {
    let q = |s: &str| d.quote_ident(s);
    let (op, lsn, ts, unchanged) = (q(OP), q(meta::LSN), q(meta::COMMIT_TS), q(UNCHANGED));
    let Some((schema, table)) = moved else {
        let mut sql = String::from("SELECT ");
        for (i, c) in columns.iter().enumerate() {
            let _ = write!(
                sql,
                "{} AS {}, ",
                d.convert(&format!("c{i}"), &c.ty),
                q(&c.name)
            );
        }
        let _ = write!(
            sql,
            "{op}, {lsn}, {} AS {ts}, {unchanged} FROM {}",
            d.timestamptz_from_micros(&ts),
            d.stage(),
        );
        if only_upserts {
            let _ = write!(sql, " WHERE {op} = 'U'");
        }
        return sql;
    };
    let is_moved = format!("st.{} IS NOT NULL", q(&moved_from_column(0)));
    let mut sql = String::from("SELECT ");
    for (i, c) in columns.iter().enumerate() {
        let value = d.convert(&format!("st.c{i}"), &c.ty);
        let n = q(&c.name);
        if c.key {
            let _ = write!(sql, "{value} AS {n}, ");
        } else {
            let _ = write!(
                sql,
                "CASE WHEN {is_moved} AND {} THEN f.{n} ELSE {value} END AS {n}, ",
                is_unchanged(d, "st", i)
            );
        }
    }
    let on = columns
        .iter()
        .filter(|c| c.key)
        .enumerate()
        .map(|(j, c)| {
            format!(
                "f.{} = {}",
                q(&c.name),
                d.convert(&format!("st.{}", q(&moved_from_column(j))), &c.ty)
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    let _ = write!(
        sql,
        "st.{op}, st.{lsn}, {} AS {ts}, CASE WHEN {is_moved} THEN NULL ELSE st.{unchanged} END \
         AS {unchanged} FROM {} AS st LEFT JOIN {} AS f ON ({is_moved} AND {on})",
        d.timestamptz_from_micros(&format!("st.{ts}")),
        d.stage(),
        d.qualified(schema, table),
    );
    if only_upserts {
        let _ = write!(sql, " WHERE st.{op} = 'U'");
    }
    sql
}

/// Key columns joined: `t."a" = s."a" AND ...`.
pub(crate) fn key_match<D: SqlDialect>(
    d: &D,
    columns: &[TargetColumn<D::Type>],
    left: &str,
    right: &str,
) -> String {
    columns
        .iter()
        .filter(|c| c.key)
        .map(|c| format!("{left}.{n} = {right}.{n}", n = d.quote_ident(&c.name)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Whether the staged value at 0-based position `i` is an unchanged TOAST value.
pub(crate) fn is_unchanged<D: SqlDialect>(d: &D, alias: &str, i: usize) -> String {
    format!(
        "substr({alias}.{}, {}, 1) = '1'",
        d.quote_ident(UNCHANGED),
        i + 1
    )
}

/// One MERGE matched on the key columns, every branch guarded so only a newer change
/// (`s._sluice_lsn > t._sluice_lsn`, or `>=` with [`Guard::NotOlder`]) touches a row. Needs `WHEN [NOT] MATCHED AND <cond>`
/// (DuckDB, PostgreSQL 15+).
#[allow(clippy::too_many_arguments)]
pub(crate) fn guarded_merge<D: SqlDialect>(
    d: &D,
    schema: &str,
    table: &str,
    columns: &[TargetColumn<D::Type>],
    deletes: DeleteMode,
    moved: bool,
    unchanged: bool,
    guard: Guard,
) -> String {
    let q = |s| d.quote_ident(s);
    let (lsn, ts, deleted, synced) = (
        q(meta::LSN),
        q(meta::COMMIT_TS),
        q(meta::DELETED),
        q(meta::SYNCED_AT),
    );
    let op = q(OP);
    let on = key_match(d, columns, "t", "s");
    let newer = format!("s.{lsn} {} t.{lsn}", guard.operator());
    let now = d.now();
    let stamp = format!("{lsn} = s.{lsn}, {ts} = s.{ts}, {synced} = {now}");

    let mut sql = format!(
        "MERGE INTO {} AS t USING ({}) AS s ON ({on})",
        d.qualified(schema, table),
        source(d, columns, false, moved.then_some((schema, table)))
    );
    // Upsert of a row the target holds: unchanged TOAST values keep the target's value.
    let _ = write!(
        sql,
        " WHEN MATCHED AND {newer} AND s.{op} = 'U' THEN UPDATE SET "
    );
    for (i, c) in columns.iter().enumerate().filter(|(_, c)| !c.key) {
        let n = q(&c.name);
        if unchanged {
            let _ = write!(
                sql,
                "{n} = CASE WHEN {} THEN t.{n} ELSE s.{n} END, ",
                is_unchanged(d, "s", i)
            );
        } else {
            let _ = write!(sql, "{n} = s.{n}, ");
        }
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
         VALUES ({}, s.{lsn}, s.{ts}, false, {now})",
        names.join(", "),
        prefixed(&names, "s")
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
             {synced}) VALUES ({}, s.{lsn}, s.{ts}, true, {now})",
            keys.join(", "),
            prefixed(&keys, "s")
        );
    }
    sql
}

/// `a.x, a.y` from quoted names.
pub(crate) fn prefixed(names: &[String], alias: &str) -> String {
    names
        .iter()
        .map(|n| format!("{alias}.{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn append<D: SqlDialect>(
    d: &D,
    schema: &str,
    table: &str,
    columns: &[TargetColumn<D::Type>],
) -> String {
    let q = |s| d.quote_ident(s);
    let names = columns.iter().map(|c| q(&c.name)).collect::<Vec<_>>();
    format!(
        "INSERT INTO {} ({}, {lsn}, {ts}, {deleted}, {synced}) SELECT {}, {lsn}, {ts}, false, \
         {now} FROM ({}) AS s",
        d.qualified(schema, table),
        names.join(", "),
        names.join(", "),
        source(d, columns, true, None),
        lsn = q(meta::LSN),
        ts = q(meta::COMMIT_TS),
        deleted = q(meta::DELETED),
        synced = q(meta::SYNCED_AT),
        now = d.now(),
    )
}

/// `INSERT ... ON CONFLICT (pipeline) DO UPDATE` of a checkpoint row (DuckDB, PostgreSQL).
pub(crate) fn upsert_checkpoint_on_conflict<D: SqlDialect>(
    d: &D,
    schema: &str,
    row: &crate::CheckpointRow<'_>,
) -> String {
    format!(
        "INSERT INTO {} (pipeline, position, applied_lsn, applied_lsn_text, applied_commit_ts, \
         updated_at) VALUES ({}, {}, {}, {}, {}, {}) \
         ON CONFLICT (pipeline) DO UPDATE SET position = excluded.position, \
         applied_lsn = excluded.applied_lsn, applied_lsn_text = excluded.applied_lsn_text, \
         applied_commit_ts = excluded.applied_commit_ts, updated_at = excluded.updated_at",
        d.qualified(schema, sluice_core::meta::CHECKPOINT_TABLE),
        d.quote_literal(row.pipeline),
        d.quote_literal(row.position),
        row.applied_lsn,
        d.quote_literal(row.applied_lsn_text),
        d.timestamptz_from_micros(&row.applied_commit_ts.to_string()),
        d.now(),
    )
}

/// A checkpoint row stored as a DELETE of the pipeline's row, then an `INSERT ... SELECT` of
/// the new one, in the load's transaction (Redshift and Snowflake: no `ON CONFLICT`, and no
/// enforced key).
pub(crate) fn delete_then_insert_checkpoint<D: SqlDialect>(
    d: &D,
    schema: &str,
    row: &crate::CheckpointRow<'_>,
) -> Vec<String> {
    let table = d.qualified(schema, sluice_core::meta::CHECKPOINT_TABLE);
    vec![
        format!(
            "DELETE FROM {table} WHERE pipeline = {}",
            d.quote_literal(row.pipeline)
        ),
        format!(
            "INSERT INTO {table} (pipeline, position, applied_lsn, applied_lsn_text, \
             applied_commit_ts, updated_at) SELECT {}, {}, {}, {}, {}, {}",
            d.quote_literal(row.pipeline),
            d.quote_literal(row.position),
            row.applied_lsn,
            d.quote_literal(row.applied_lsn_text),
            d.timestamptz_from_micros(&row.applied_commit_ts.to_string()),
            d.now(),
        ),
    ]
}

/// The column list of the staging table, without parentheses: one `text` column per data
/// column (`c0`, `c1`, ...), the op, position and commit time, the unchanged-TOAST marks, and
/// one column per key column for the old key of a moved row. Dialects differ only in the type
/// names (`text` for text columns, `op` for the op column, `int` for 64-bit integers).
pub(crate) fn stage_columns<D: SqlDialect>(
    d: &D,
    text: &str,
    op: &str,
    int: &str,
    columns: usize,
    keys: usize,
) -> String {
    use std::fmt::Write as _;
    let mut sql = String::new();
    for i in 0..columns {
        let _ = write!(sql, "c{i} {text}, ");
    }
    let _ = write!(
        sql,
        "{} {op} NOT NULL, {} {int} NOT NULL, {} {int} NOT NULL, {} {text}",
        d.quote_ident(crate::OP),
        d.quote_ident(meta::LSN),
        d.quote_ident(meta::COMMIT_TS),
        d.quote_ident(crate::UNCHANGED)
    );
    for j in 0..keys {
        let _ = write!(
            sql,
            ", {} {text}",
            d.quote_ident(&crate::moved_from_column(j))
        );
    }
    sql
}
