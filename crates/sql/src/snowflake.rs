//! The Snowflake dialect.
//!
//! ## Names
//!
//! A source name that is all lower-case letters, digits, `_` and `$` (and does not start with
//! a digit or `$`) becomes Snowflake's canonical upper-case name, so unquoted SQL finds it
//! (`select id from raw.orders`); any other name keeps its exact spelling, quoted. Names that
//! fold to the same upper-case name (`id` and `ID`) collide. Sluice's own names follow the
//! same rule (`_SLUICE_LSN`, `_SLUICE_CHECKPOINTS`).
//!
//! ## Type mapping
//!
//! | PostgreSQL | Snowflake | notes |
//! |---|---|---|
//! | `bool` | `BOOLEAN` | |
//! | `int2` / `int4` / `int8` | `NUMBER(38,0)` | Snowflake's integers are all `NUMBER(38,0)` |
//! | `float4` / `float8` | `FLOAT` | `Infinity` staged as `inf` |
//! | `numeric(p,s)`, `1 <= p <= 38`, `0 <= s <= p` | `NUMBER(p,s)` | `NaN` parks the table |
//! | `numeric` without a precision, or wider than 38 digits | `VARCHAR` | exact text |
//! | `text`, `varchar`, `char`, `uuid` | `VARCHAR` | at most 16 MiB a value |
//! | `bytea` | `BINARY` | staged as bare hex; at most 8 MiB a value |
//! | `json`, `jsonb` | `VARIANT` | `PARSE_JSON` of the text |
//! | `date`, `time` | `DATE`, `TIME` | |
//! | `timestamp` / `timestamptz` | `TIMESTAMP_NTZ` / `TIMESTAMP_TZ` | microseconds kept |
//! | `timetz`, `interval`, arrays, anything else | `VARCHAR` | exact text |
//!
//! A staged value its column's type cannot hold (`NaN` in a `NUMBER`, `infinity` or a BC date
//! in a `DATE` or timestamp) is found by [`SqlDialect::check_stage`] before anything changes,
//! and parks its table with the column and key: Snowflake cannot change a column's type into
//! `VARCHAR` in place.
//!
//! ## Transactions
//!
//! Every DDL statement commits the open transaction in Snowflake, temporary tables included
//! ([`SqlDialect::ddl_commits`]): the driver creates tables and staging tables and stages the
//! rows before `BEGIN`, then applies every table and the checkpoint in one transaction. Each
//! staged table has a transient table of its own (`_SLUICE_STAGING._SLUICE_STAGE_<n>`,
//! dropped after the commit).
//!
//! ## Applying the staged rows
//!
//! Three guarded statements per keyed table instead of one MERGE, in this order: an `UPDATE
//! ... FROM` of the rows the target holds with an older `_sluice_lsn` (soft deletes keep the
//! values and set `_sluice_deleted`), an `INSERT ... SELECT` of the keys the target lacks
//! (tombstones for soft deletes), then with hard deletes a `DELETE ... USING`. The result is
//! the MERGE's. The insert runs before the delete so a moved row still finds its old key's
//! values.

use std::fmt;
use std::fmt::Write as _;

use sluice_core::{DeleteMode, PgType, meta};

use crate::statement::{is_unchanged, key_match, prefixed, source};
use crate::{CheckpointRow, Guard, OP, STAGE, SqlDialect, TargetColumn};

/// The schema holding the staging tables and the internal stage.
pub const STAGING_SCHEMA: &str = "_sluice_staging";

/// The longest `VARCHAR` (and `VARIANT`) value, in bytes.
pub const MAX_VARCHAR_BYTES: usize = 16 * 1024 * 1024;

/// The longest `BINARY` value, in bytes.
pub const MAX_BINARY_BYTES: usize = 8 * 1024 * 1024;

/// The Snowflake dialect; `stage` numbers the staging table it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Snowflake {
    stage: usize,
}

/// A Snowflake column type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SfType {
    Boolean,
    Number(u8, u8),
    Float,
    Varchar,
    Binary,
    Variant,
    Date,
    Time,
    TimestampNtz,
    TimestampTz,
}

impl fmt::Display for SfType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SfType::Boolean => f.write_str("BOOLEAN"),
            SfType::Number(p, s) => write!(f, "NUMBER({p},{s})"),
            SfType::Float => f.write_str("FLOAT"),
            SfType::Varchar => f.write_str("VARCHAR"),
            SfType::Binary => f.write_str("BINARY"),
            SfType::Variant => f.write_str("VARIANT"),
            SfType::Date => f.write_str("DATE"),
            SfType::Time => f.write_str("TIME"),
            SfType::TimestampNtz => f.write_str("TIMESTAMP_NTZ"),
            SfType::TimestampTz => f.write_str("TIMESTAMP_TZ"),
        }
    }
}

impl SfType {
    /// Parses a type as [`Snowflake::table_columns`] prints it (or as written in DDL).
    pub fn parse(s: &str) -> Option<SfType> {
        let s = s.trim().to_ascii_uppercase();
        if let Some(args) = s.strip_prefix("NUMBER(").and_then(|r| r.strip_suffix(')')) {
            let (p, sc) = args.split_once(',')?;
            return Some(SfType::Number(
                p.trim().parse().ok()?,
                sc.trim().parse().ok()?,
            ));
        }
        let base = s.split('(').next().unwrap_or_default();
        Some(match base {
            "BOOLEAN" => SfType::Boolean,
            "NUMBER" => SfType::Number(38, 0),
            "FLOAT" | "DOUBLE" | "REAL" => SfType::Float,
            "TEXT" | "VARCHAR" | "STRING" => SfType::Varchar,
            "BINARY" | "VARBINARY" => SfType::Binary,
            "VARIANT" => SfType::Variant,
            "DATE" => SfType::Date,
            "TIME" => SfType::Time,
            "TIMESTAMP_NTZ" => SfType::TimestampNtz,
            "TIMESTAMP_TZ" => SfType::TimestampTz,
            _ => return None,
        })
    }
}

/// Whether `name` is written as Snowflake's canonical upper-case name.
fn folds(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
}

impl Snowflake {
    /// The dialect naming the staging table `n`.
    pub const fn staging(n: usize) -> Snowflake {
        Snowflake { stage: n }
    }

    /// A name as Snowflake stores it: upper-cased when it folds (see the module docs).
    pub fn stored_name(name: &str) -> String {
        if folds(name) {
            name.to_ascii_uppercase()
        } else {
            name.to_owned()
        }
    }

    /// The source name of a name as Snowflake's catalog prints it (the inverse of
    /// [`Snowflake::stored_name`]).
    pub fn source_name(stored: &str) -> String {
        let lower = stored.to_ascii_lowercase();
        if folds(&lower) && lower.to_ascii_uppercase() == stored {
            lower
        } else {
            stored.to_owned()
        }
    }
}

impl SqlDialect for Snowflake {
    type Type = SfType;

    fn name(&self) -> &'static str {
        "snowflake"
    }

    fn quote_ident(&self, ident: &str) -> String {
        format!("\"{}\"", Snowflake::stored_name(ident).replace('"', "\"\""))
    }

    /// Snowflake string literals treat a backslash as an escape: double it too.
    fn quote_literal(&self, text: &str) -> String {
        format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
    }

    fn max_identifier_bytes(&self) -> Option<usize> {
        Some(255)
    }

    fn column_from_catalog(&self, name: &str) -> String {
        Snowflake::source_name(name)
    }

    fn ddl_commits(&self) -> bool {
        true
    }

    fn with_stage(&self, n: usize) -> Self {
        Snowflake::staging(n)
    }

    fn map_type(&self, pg: &PgType, _array_depth: usize) -> SfType {
        match pg {
            PgType::Bool => SfType::Boolean,
            PgType::Int2 | PgType::Int4 | PgType::Int8 => SfType::Number(38, 0),
            PgType::Float4 | PgType::Float8 => SfType::Float,
            PgType::Numeric {
                precision: Some(p),
                scale: Some(s),
            } if (1..=38).contains(p) && s <= p => SfType::Number(*p as u8, *s as u8),
            PgType::Bytea => SfType::Binary,
            PgType::Json | PgType::Jsonb => SfType::Variant,
            PgType::Date => SfType::Date,
            PgType::Time => SfType::Time,
            PgType::Timestamp => SfType::TimestampNtz,
            PgType::TimestampTz => SfType::TimestampTz,
            PgType::Numeric { .. }
            | PgType::Text
            | PgType::Varchar(_)
            | PgType::Bpchar(_)
            | PgType::Uuid
            | PgType::TimeTz
            | PgType::Interval
            | PgType::Array(_)
            | PgType::Other(_) => SfType::Varchar,
        }
    }

    fn kept_as_text(&self, pg: &PgType) -> Option<&'static str> {
        match pg {
            PgType::Numeric { .. } if self.map_type(pg, 1) == SfType::Varchar => {
                Some("numeric without a precision up to 38 digits has no NUMBER")
            }
            PgType::TimeTz => Some("Snowflake has no time of day with a time zone"),
            PgType::Interval => Some("Snowflake has no interval type"),
            PgType::Array(_) => Some("arrays are kept as PostgreSQL's text"),
            PgType::Other(_) => Some("no Snowflake type for it"),
            _ => None,
        }
    }

    fn parse_type(&self, catalog: &str) -> Option<SfType> {
        SfType::parse(catalog)
    }

    /// Snowflake changes a column's type in place only to a `NUMBER` of more digits at the
    /// same scale.
    fn converts_exactly(&self, from: &SfType, to: &SfType) -> bool {
        match (from, to) {
            (SfType::Number(p1, s1), SfType::Number(p2, s2)) => s1 == s2 && p2 >= p1,
            _ => from == to,
        }
    }

    fn reject(&self, ty: &SfType, text: &str) -> Option<String> {
        let too_long = |limit: usize, what: &str| {
            (text.len() > limit).then(|| {
                format!(
                    "a value of {} bytes is longer than the {limit} bytes {what} holds",
                    text.len()
                )
            })
        };
        match ty {
            SfType::Varchar | SfType::Variant => too_long(MAX_VARCHAR_BYTES, &ty.to_string()),
            // Staged as hex, two characters a byte.
            SfType::Binary => too_long(2 * MAX_BINARY_BYTES + 2, "BINARY (as hex)"),
            _ => None,
        }
    }

    fn table_columns(&self, schema: &str, table: &str) -> String {
        format!(
            "SELECT column_name, CASE WHEN data_type = 'NUMBER' THEN 'NUMBER(' || \
             numeric_precision || ',' || numeric_scale || ')' ELSE data_type END \
             FROM information_schema.columns WHERE table_schema = {} AND table_name = {} \
             ORDER BY ordinal_position",
            self.quote_literal(&Snowflake::stored_name(schema)),
            self.quote_literal(&Snowflake::stored_name(table))
        )
    }

    /// A transient table in the schema [`STAGING_SCHEMA`]: `COPY INTO` a temporary table, or
    /// a table in a schema whose name needs quoting, fails on the stand-in. One loader per
    /// database owns these names.
    fn stage(&self) -> String {
        self.qualified(STAGING_SCHEMA, &format!("{STAGE}_{}", self.stage))
    }

    fn create_stage(&self, columns: usize, keys: usize) -> String {
        format!(
            "CREATE OR REPLACE TRANSIENT TABLE {} ({})",
            self.stage(),
            crate::statement::stage_columns(
                self,
                "VARCHAR",
                "VARCHAR",
                "NUMBER(38,0)",
                columns,
                keys
            )
        )
    }

    fn convert(&self, expr: &str, ty: &SfType) -> String {
        match ty {
            SfType::Varchar => expr.to_owned(),
            SfType::Variant => format!("PARSE_JSON({expr})"),
            SfType::Binary => format!("TO_BINARY({expr}, 'HEX')"),
            other => format!("CAST({expr} AS {other})"),
        }
    }

    fn timestamptz_from_micros(&self, expr: &str) -> String {
        format!("DATEADD(microsecond, {expr}, '1970-01-01 00:00:00 +00:00'::TIMESTAMP_TZ)")
    }

    fn check_stage(&self, columns: &[TargetColumn<SfType>]) -> Option<(String, Vec<usize>)> {
        let mut checks = Vec::new();
        let mut positions = Vec::new();
        for (i, c) in columns.iter().enumerate() {
            let tried = match &c.ty {
                SfType::Varchar => continue,
                SfType::Variant => format!("TRY_PARSE_JSON(c{i})"),
                SfType::Binary => format!("TRY_TO_BINARY(c{i}, 'HEX')"),
                other => format!("TRY_CAST(c{i} AS {other})"),
            };
            checks.push(format!(
                "COALESCE(MAX(CASE WHEN c{i} IS NOT NULL AND {tried} IS NULL THEN 1 ELSE 0 END), \
                 0) = 1"
            ));
            positions.push(i);
        }
        (!checks.is_empty()).then(|| {
            (
                format!("SELECT {} FROM {}", checks.join(", "), self.stage()),
                positions,
            )
        })
    }

    /// See the module docs: update, insert, then (hard deletes) delete.
    fn merge(
        &self,
        schema: &str,
        table: &str,
        columns: &[TargetColumn<SfType>],
        deletes: DeleteMode,
        moved: bool,
        unchanged: bool,
        guard: Guard,
    ) -> Vec<String> {
        let q = |s| self.quote_ident(s);
        let (lsn, ts, deleted, synced) = (
            q(meta::LSN),
            q(meta::COMMIT_TS),
            q(meta::DELETED),
            q(meta::SYNCED_AT),
        );
        let op = q(OP);
        let target = self.qualified(schema, table);
        let from = source(self, columns, false, moved.then_some((schema, table)));
        let on = key_match(self, columns, "t", "s");
        let newer = format!("s.{lsn} {} t.{lsn}", guard.operator());
        let now = self.now();
        let hard = deletes == DeleteMode::Hard;

        let mut update = format!("UPDATE {target} AS t SET ");
        for (i, c) in columns.iter().enumerate().filter(|(_, c)| !c.key) {
            let n = q(&c.name);
            let mut keep = Vec::new();
            if !hard {
                keep.push(format!("s.{op} = 'D'"));
            }
            if unchanged {
                keep.push(is_unchanged(self, "s", i));
            }
            if keep.is_empty() {
                let _ = write!(update, "{n} = s.{n}, ");
            } else {
                let _ = write!(
                    update,
                    "{n} = CASE WHEN {} THEN t.{n} ELSE s.{n} END, ",
                    keep.join(" OR ")
                );
            }
        }
        let _ = write!(
            update,
            "{lsn} = s.{lsn}, {ts} = s.{ts}, {deleted} = (s.{op} = 'D'), {synced} = {now} \
             FROM ({from}) AS s WHERE {on} AND {newer}"
        );
        if hard {
            let _ = write!(update, " AND s.{op} = 'U'");
        }

        let names = columns.iter().map(|c| q(&c.name)).collect::<Vec<_>>();
        let mut insert = format!(
            "INSERT INTO {target} ({}, {lsn}, {ts}, {deleted}, {synced}) SELECT {}, s.{lsn}, \
             s.{ts}, (s.{op} = 'D'), {now} FROM ({from}) AS s WHERE NOT EXISTS (SELECT 1 FROM \
             {target} AS t WHERE {on})",
            names.join(", "),
            prefixed(&names, "s"),
        );
        if hard {
            let _ = write!(insert, " AND s.{op} = 'U'");
        }
        let mut statements = vec![update, insert];
        if hard {
            statements.push(format!(
                "DELETE FROM {target} AS t USING ({}) AS s WHERE {on} AND s.{op} = 'D' AND \
                 {newer}",
                source(self, columns, false, None)
            ));
        }
        statements
    }

    fn create_checkpoint_table(&self, schema: &str) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} (pipeline VARCHAR NOT NULL, position VARCHAR NOT \
             NULL, applied_lsn NUMBER(38,0) NOT NULL, applied_lsn_text VARCHAR NOT NULL, \
             applied_commit_ts TIMESTAMP_TZ NOT NULL, updated_at TIMESTAMP_TZ NOT NULL)",
            self.qualified(schema, meta::CHECKPOINT_TABLE)
        )
    }

    /// Delete, then insert, in the load's transaction (Snowflake enforces no key).
    fn upsert_checkpoint(&self, schema: &str, row: &CheckpointRow<'_>) -> Vec<String> {
        crate::statement::delete_then_insert_checkpoint(self, schema, row)
    }

    fn select_checkpoint(&self, schema: &str, pipeline: &str) -> String {
        format!(
            "SELECT position, applied_lsn, DATEDIFF(microsecond, '1970-01-01 00:00:00 \
             +00:00'::TIMESTAMP_TZ, applied_commit_ts) FROM {} WHERE pipeline = {}",
            self.qualified(schema, meta::CHECKPOINT_TABLE),
            self.quote_literal(pipeline)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_case_names_fold_and_others_keep_their_spelling() {
        let d = Snowflake::default();
        assert_eq!(d.quote_ident("orders"), "\"ORDERS\"");
        assert_eq!(d.quote_ident("_sluice_lsn"), "\"_SLUICE_LSN\"");
        assert_eq!(d.quote_ident("Mixed"), "\"Mixed\"");
        assert_eq!(d.quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(d.quote_ident("1st"), "\"1st\"");
        for name in [
            "orders",
            "_sluice_lsn",
            "Mixed",
            "ORDERS",
            "a b",
            "ünï",
            "x$1",
        ] {
            let stored = Snowflake::stored_name(name);
            let back = Snowflake::source_name(&stored);
            if folds(name) {
                assert_eq!(back, name, "{name} round-trips");
            } else if name != "ORDERS" {
                assert_eq!(back, name, "{name} is kept as is");
            }
        }
        // An upper-case source name reads back as its lower-case twin: they collide.
        assert_eq!(Snowflake::source_name("ORDERS"), "orders");
    }

    #[test]
    fn catalog_types_parse_back() {
        for ty in [
            SfType::Boolean,
            SfType::Number(12, 2),
            SfType::Float,
            SfType::Varchar,
            SfType::Binary,
            SfType::Variant,
            SfType::Date,
            SfType::Time,
            SfType::TimestampNtz,
            SfType::TimestampTz,
        ] {
            assert_eq!(SfType::parse(&ty.to_string()), Some(ty.clone()), "{ty}");
        }
        assert_eq!(SfType::parse("TEXT"), Some(SfType::Varchar));
        assert_eq!(SfType::parse("ARRAY"), None);
    }

    #[test]
    fn only_more_digits_at_the_same_scale_widen() {
        let d = Snowflake::default();
        assert!(d.converts_exactly(&SfType::Number(10, 2), &SfType::Number(12, 2)));
        assert!(!d.converts_exactly(&SfType::Number(10, 2), &SfType::Number(12, 3)));
        assert!(!d.converts_exactly(&SfType::Number(12, 2), &SfType::Number(10, 2)));
    }

    #[test]
    fn each_table_stages_into_its_own_temporary_table() {
        assert_eq!(
            Snowflake::staging(3).stage(),
            "\"_SLUICE_STAGING\".\"_SLUICE_STAGE_3\""
        );
        assert!(Snowflake::staging(0).create_stage(2, 1).starts_with(
            "CREATE OR REPLACE TRANSIENT TABLE \"_SLUICE_STAGING\".\"_SLUICE_STAGE_0\" (c0 VARCHAR"
        ));
    }
}
