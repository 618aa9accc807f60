//! The Amazon Redshift dialect.
//!
//! ## Type mapping
//!
//! | PostgreSQL | Redshift | notes |
//! |---|---|---|
//! | `bool` | `BOOLEAN` | |
//! | `int2` / `int4` / `int8` | `SMALLINT` / `INTEGER` / `BIGINT` | |
//! | `float4` / `float8` | `REAL` / `DOUBLE PRECISION` | |
//! | `numeric(p,s)`, `1 <= p <= 38`, `0 <= s <= p` | `NUMERIC(p,s)` | `NaN` and infinities fail the batch |
//! | `numeric`, `numeric(p,s)` with `p > 38` or odd scale | `VARCHAR(65535)` | exact text (Redshift's NUMERIC stops at 38 digits) |
//! | `text`, `name`, `varchar`, `char` | `VARCHAR(65535)` | |
//! | `varchar(n)` / `char(n)` | `VARCHAR(min(4n, 65535))` | Redshift counts bytes, PostgreSQL characters; `char(n)` keeps its padding |
//! | `bytea` | `VARBYTE(1024000)` | staged as bare hex, converted with `FROM_HEX` |
//! | `uuid` | `CHAR(36)` | |
//! | `json`, `jsonb` | `SUPER` | `JSON_PARSE` of the text |
//! | arrays | `SUPER` | staged as a JSON array by the loader, then `JSON_PARSE` |
//! | `date` | `DATE` | `±infinity` fails the batch |
//! | `time` / `timetz` | `TIME` / `TIMETZ` | |
//! | `timestamp` / `timestamptz` | `TIMESTAMP` / `TIMESTAMPTZ` | `±infinity` fails the batch |
//! | `interval` | `VARCHAR(65535)` | exact text (Redshift cannot store months and seconds in one column) |
//! | anything else | `VARCHAR(65535)` | exact text |
//!
//! Text columns hold at most 65535 bytes; the staging table's columns too. A longer value
//! fails the batch with its table and column ([`SqlDialect::reject`]), it is never truncated.
//!
//! ## Widening
//!
//! Redshift's `ALTER COLUMN ... TYPE` only lengthens `VARCHAR`: that is the only widening; any
//! other type change is refused.
//!
//! ## The MERGE and its guard
//!
//! Redshift's MERGE takes a table (not a subquery) as its source and no condition on its
//! WHEN clauses (`WHEN MATCHED THEN UPDATE | DELETE`, `WHEN NOT MATCHED THEN INSERT`). The
//! `_sluice_lsn` guard is therefore expressed by filtering the source: a second temporary
//! table `_sluice_merge` is built from the staging table LEFT JOINed to the target, keeping
//! only rows whose key the target lacks or whose `_sluice_lsn` is newer than the target's.
//! That join also resolves what the conditional branches of the other dialects do: an
//! unchanged TOAST value takes the target's value, and a soft delete keeps the target's
//! values and sets `_sluice_deleted = (op = 'D')` (a newer upsert clears it; a delete of an
//! unknown key inserts the tombstone). The MERGE then updates every match and inserts every
//! non-match unconditionally. Hard deletes run first as `DELETE ... USING` the staging table
//! with the same guard, and the merge table keeps upserts only. The merge table is built first
//! from the common source (see the crate docs), so a moved row's unchanged values are read
//! from the target's row of its old key before the hard deletes remove that row.
//!
//! Identifiers: Redshift folds even quoted identifiers to lower case unless
//! `enable_case_sensitive_identifier` is on; names differing only by case collide.

use std::fmt;
use std::fmt::Write as _;

use sluice_core::{DeleteMode, PgType, meta};

use crate::statement::{is_unchanged, key_match, prefixed, source};
use crate::{CheckpointRow, Guard, OP, STAGE, SqlDialect, TargetColumn};

/// The merge source table built from the staging table (see the module docs).
pub const MERGE_SOURCE: &str = "_sluice_merge";

/// The longest `VARCHAR`, in bytes.
pub const MAX_VARCHAR: u32 = 65535;

/// The `VARBYTE` length given to `bytea` columns, in bytes.
pub const VARBYTE_BYTES: u32 = 1_024_000;

/// The Amazon Redshift dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Redshift;

/// A Redshift column type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RsType {
    Boolean,
    SmallInt,
    Integer,
    BigInt,
    Real,
    Double,
    Numeric(u8, u8),
    /// Length in bytes.
    Varchar(u32),
    Char(u32),
    VarByte(u32),
    Super,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
}

impl fmt::Display for RsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RsType::Boolean => f.write_str("BOOLEAN"),
            RsType::SmallInt => f.write_str("SMALLINT"),
            RsType::Integer => f.write_str("INTEGER"),
            RsType::BigInt => f.write_str("BIGINT"),
            RsType::Real => f.write_str("REAL"),
            RsType::Double => f.write_str("DOUBLE PRECISION"),
            RsType::Numeric(p, s) => write!(f, "NUMERIC({p},{s})"),
            RsType::Varchar(n) => write!(f, "VARCHAR({n})"),
            RsType::Char(n) => write!(f, "CHAR({n})"),
            RsType::VarByte(n) => write!(f, "VARBYTE({n})"),
            RsType::Super => f.write_str("SUPER"),
            RsType::Date => f.write_str("DATE"),
            RsType::Time => f.write_str("TIME"),
            RsType::TimeTz => f.write_str("TIMETZ"),
            RsType::Timestamp => f.write_str("TIMESTAMP"),
            RsType::TimestampTz => f.write_str("TIMESTAMPTZ"),
        }
    }
}

impl RsType {
    /// Parses a type as `format_type()` prints it (or as written in DDL).
    pub fn parse(s: &str) -> Option<RsType> {
        let s = s.trim().to_ascii_lowercase();
        let arg = |prefixes: &[&str]| {
            prefixes.iter().find_map(|p| {
                s.strip_prefix(p)
                    .and_then(|r| r.trim_start().strip_prefix('('))
                    .and_then(|r| r.strip_suffix(')'))
                    .map(str::to_owned)
            })
        };
        if let Some(args) = arg(&["numeric", "decimal"]) {
            let (p, sc) = args.split_once(',')?;
            return Some(RsType::Numeric(
                p.trim().parse().ok()?,
                sc.trim().parse().ok()?,
            ));
        }
        if let Some(n) = arg(&["character varying", "varchar"]) {
            return Some(RsType::Varchar(n.trim().parse().ok()?));
        }
        if let Some(n) = arg(&["varbyte", "binary varying"]) {
            return Some(RsType::VarByte(n.trim().parse().ok()?));
        }
        if let Some(n) = arg(&["character", "char"]) {
            return Some(RsType::Char(n.trim().parse().ok()?));
        }
        Some(match s.as_str() {
            "boolean" | "bool" => RsType::Boolean,
            "smallint" | "int2" => RsType::SmallInt,
            "integer" | "int" | "int4" => RsType::Integer,
            "bigint" | "int8" => RsType::BigInt,
            "real" | "float4" => RsType::Real,
            "double precision" | "float8" => RsType::Double,
            "super" => RsType::Super,
            "date" => RsType::Date,
            "time" | "time without time zone" => RsType::Time,
            "timetz" | "time with time zone" => RsType::TimeTz,
            "timestamp" | "timestamp without time zone" => RsType::Timestamp,
            "timestamptz" | "timestamp with time zone" => RsType::TimestampTz,
            _ => return None,
        })
    }
}

/// `VARCHAR` for `n` PostgreSQL characters (up to four UTF-8 bytes each).
fn varchar_for(chars: Option<u32>) -> RsType {
    RsType::Varchar(chars.map_or(MAX_VARCHAR, |n| n.saturating_mul(4).clamp(1, MAX_VARCHAR)))
}

impl SqlDialect for Redshift {
    type Type = RsType;

    fn name(&self) -> &'static str {
        "redshift"
    }

    /// Redshift string literals treat a backslash as an escape: double it too.
    fn quote_literal(&self, text: &str) -> String {
        format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
    }

    fn max_identifier_bytes(&self) -> Option<usize> {
        Some(127)
    }

    /// The start of the transaction (Redshift's `current_timestamp` is not a per-transaction
    /// value on compute nodes).
    fn now(&self) -> &'static str {
        "SYSDATE"
    }

    fn map_type(&self, pg: &PgType, _array_depth: usize) -> RsType {
        match pg {
            PgType::Bool => RsType::Boolean,
            PgType::Int2 => RsType::SmallInt,
            PgType::Int4 => RsType::Integer,
            PgType::Int8 => RsType::BigInt,
            PgType::Float4 => RsType::Real,
            PgType::Float8 => RsType::Double,
            PgType::Numeric {
                precision: Some(p),
                scale: Some(s),
            } if (1..=38).contains(p) && s <= p => RsType::Numeric(*p as u8, *s as u8),
            PgType::Numeric { .. } => RsType::Varchar(MAX_VARCHAR),
            PgType::Varchar(n) | PgType::Bpchar(n) => varchar_for(*n),
            PgType::Text | PgType::Interval | PgType::Other(_) => RsType::Varchar(MAX_VARCHAR),
            PgType::Bytea => RsType::VarByte(VARBYTE_BYTES),
            PgType::Uuid => RsType::Char(36),
            PgType::Json | PgType::Jsonb | PgType::Array(_) => RsType::Super,
            PgType::Date => RsType::Date,
            PgType::Time => RsType::Time,
            PgType::TimeTz => RsType::TimeTz,
            PgType::Timestamp => RsType::Timestamp,
            PgType::TimestampTz => RsType::TimestampTz,
        }
    }

    fn parse_type(&self, catalog: &str) -> Option<RsType> {
        RsType::parse(catalog)
    }

    fn converts_exactly(&self, from: &RsType, to: &RsType) -> bool {
        match (from, to) {
            (RsType::Varchar(a), RsType::Varchar(b)) => b >= a,
            _ => from == to,
        }
    }

    fn reject(&self, ty: &RsType, text: &str) -> Option<String> {
        let too_long = |limit: u32, what: &str| {
            (text.len() > limit as usize).then(|| {
                format!(
                    "a value of {} bytes is longer than the {limit} bytes {what} holds",
                    text.len()
                )
            })
        };
        match ty {
            RsType::Varchar(n) | RsType::Char(n) => too_long(*n, &ty.to_string()),
            // Staged through a VARCHAR: the JSON text and the hex form must fit it.
            RsType::Super => too_long(MAX_VARCHAR, "the staging VARCHAR"),
            RsType::VarByte(_) => too_long(MAX_VARCHAR, "the staging VARCHAR (hex)"),
            RsType::Numeric(..) if matches!(text, "NaN" | "Infinity" | "-Infinity") => {
                Some(format!("{text} has no {ty} value in Redshift"))
            }
            RsType::Date | RsType::Timestamp | RsType::TimestampTz
                if matches!(text, "infinity" | "-infinity") =>
            {
                Some(format!("{text} has no {ty} value in Redshift"))
            }
            _ => None,
        }
    }

    /// Only `VARCHAR` lengthens in place.
    fn alter_column_type(&self, schema: &str, table: &str, column: &str, ty: &RsType) -> String {
        format!(
            "ALTER TABLE {} ALTER COLUMN {} TYPE {ty}",
            self.qualified(schema, table),
            self.quote_ident(column)
        )
    }

    fn table_columns(&self, schema: &str, table: &str) -> String {
        format!(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
             FROM pg_catalog.pg_attribute a \
             JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = {} AND c.relname = {} AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            self.quote_literal(schema),
            self.quote_literal(table)
        )
    }

    /// Temporary tables shadow permanent ones of the same name in the session.
    fn stage(&self) -> String {
        self.quote_ident(STAGE)
    }

    fn create_stage(&self, columns: usize, keys: usize) -> String {
        let text = format!("VARCHAR({MAX_VARCHAR})");
        format!(
            "CREATE TEMP TABLE {} ({})",
            self.quote_ident(STAGE),
            crate::statement::stage_columns(self, &text, "CHAR(1)", "BIGINT", columns, keys)
        )
    }

    fn convert(&self, expr: &str, ty: &RsType) -> String {
        match ty {
            RsType::Varchar(_) | RsType::Char(_) => expr.to_owned(),
            RsType::Super => format!("JSON_PARSE({expr})"),
            RsType::VarByte(_) => format!("FROM_HEX({expr})"),
            other => format!("CAST({expr} AS {other})"),
        }
    }

    fn timestamptz_from_micros(&self, expr: &str) -> String {
        format!(
            "(TIMESTAMPTZ 'epoch' + ({expr} / 1000000) * INTERVAL '1 second' + ({expr} % 1000000) \
             * INTERVAL '1 microsecond')"
        )
    }

    /// See the module docs: the guard filters the merge source, built as a temporary table.
    fn merge(
        &self,
        schema: &str,
        table: &str,
        columns: &[TargetColumn<RsType>],
        deletes: DeleteMode,
        moved: bool,
        _unchanged: bool,
        guard: Guard,
    ) -> Vec<String> {
        let q = |s| self.quote_ident(s);
        let op_guard = guard.operator();
        let (lsn, ts, deleted, synced) = (
            q(meta::LSN),
            q(meta::COMMIT_TS),
            q(meta::DELETED),
            q(meta::SYNCED_AT),
        );
        let op = q(OP);
        let target = self.qualified(schema, table);
        let merge_source = q(MERGE_SOURCE);
        let mut statements = vec![format!("DROP TABLE IF EXISTS {merge_source}")];

        // The newer rows, with the values the target row ends up holding.
        let mut select = String::from("SELECT ");
        for (i, c) in columns.iter().enumerate() {
            let n = q(&c.name);
            if c.key {
                let _ = write!(select, "s.{n}, ");
            } else {
                let _ = write!(
                    select,
                    "CASE WHEN s.{op} = 'D' OR {} THEN t.{n} ELSE s.{n} END AS {n}, ",
                    is_unchanged(self, "s", i)
                );
            }
        }
        let _ = write!(
            select,
            "s.{op}, s.{lsn}, s.{ts} FROM ({}) AS s LEFT JOIN {target} AS t ON ({}) \
             WHERE (t.{lsn} IS NULL OR s.{lsn} {op_guard} t.{lsn})",
            source(self, columns, false, moved.then_some((schema, table))),
            key_match(self, columns, "t", "s"),
        );
        if deletes == DeleteMode::Hard {
            let _ = write!(select, " AND s.{op} = 'U'");
        }
        statements.push(format!("CREATE TEMP TABLE {merge_source} AS {select}"));

        if deletes == DeleteMode::Hard {
            let on = columns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.key)
                .map(|(i, c)| {
                    format!(
                        "{target}.{} = {}",
                        q(&c.name),
                        self.convert(&format!("s.c{i}"), &c.ty)
                    )
                })
                .collect::<Vec<_>>()
                .join(" AND ");
            statements.push(format!(
                "DELETE FROM {target} USING {} AS s WHERE {on} AND s.{op} = 'D' AND s.{lsn} {op_guard} \
                 {target}.{lsn}",
                self.stage()
            ));
        }

        let names = columns.iter().map(|c| q(&c.name)).collect::<Vec<_>>();
        let on = columns
            .iter()
            .filter(|c| c.key)
            .map(|c| format!("{target}.{n} = s.{n}", n = q(&c.name)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let mut merge = format!(
            "MERGE INTO {target} USING {merge_source} AS s ON {on} WHEN MATCHED THEN UPDATE SET "
        );
        for c in columns.iter().filter(|c| !c.key) {
            let _ = write!(merge, "{n} = s.{n}, ", n = q(&c.name));
        }
        let now = self.now();
        let _ = write!(
            merge,
            "{lsn} = s.{lsn}, {ts} = s.{ts}, {deleted} = (s.{op} = 'D'), {synced} = {now} \
             WHEN NOT MATCHED THEN INSERT ({}, {lsn}, {ts}, {deleted}, {synced}) VALUES ({}, \
             s.{lsn}, s.{ts}, (s.{op} = 'D'), {now})",
            names.join(", "),
            prefixed(&names, "s"),
        );
        statements.push(merge);
        statements.push(format!("DROP TABLE {merge_source}"));
        statements
    }

    fn create_checkpoint_table(&self, schema: &str) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} (pipeline VARCHAR(1024) NOT NULL, position \
             VARCHAR({MAX_VARCHAR}) NOT NULL, applied_lsn BIGINT NOT NULL, applied_lsn_text \
             VARCHAR(32) NOT NULL, applied_commit_ts TIMESTAMPTZ NOT NULL, updated_at \
             TIMESTAMPTZ NOT NULL, PRIMARY KEY (pipeline))",
            self.qualified(schema, meta::CHECKPOINT_TABLE)
        )
    }

    /// Redshift has no `ON CONFLICT` (and does not enforce primary keys): delete, then insert,
    /// in the load's transaction.
    fn upsert_checkpoint(&self, schema: &str, row: &CheckpointRow<'_>) -> Vec<String> {
        crate::statement::delete_then_insert_checkpoint(self, schema, row)
    }

    fn select_checkpoint(&self, schema: &str, pipeline: &str) -> String {
        format!(
            "SELECT position, applied_lsn, DATEDIFF(microsecond, TIMESTAMPTZ 'epoch', \
             applied_commit_ts) FROM {} WHERE pipeline = {}",
            self.qualified(schema, meta::CHECKPOINT_TABLE),
            self.quote_literal(pipeline)
        )
    }
}
