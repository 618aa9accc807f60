//! The PostgreSQL dialect (PostgreSQL 15 or later, for MERGE).
//!
//! ## Type mapping
//!
//! The target holds exactly what the source had: every type maps to itself, with its
//! modifier, and values are cast from the source's own text output (`CAST(s.c AS <type>)`),
//! which PostgreSQL reads back exactly.
//!
//! | PostgreSQL source | PostgreSQL target |
//! |---|---|
//! | `bool`, `int2`, `int4`, `int8`, `float4`, `float8` | the same (`boolean`, `smallint`, `integer`, `bigint`, `real`, `double precision`) |
//! | `numeric(p,s)` / `numeric` | `numeric(p,s)` / `numeric` (NaN kept) |
//! | `text`, `name` | `text` |
//! | `varchar(n)` / `char(n)` | `character varying(n)` / `character(n)` |
//! | `bytea`, `uuid`, `json`, `jsonb`, `date`, `interval` | the same |
//! | `time` / `timetz` | `time without time zone` / `time with time zone` |
//! | `timestamp` / `timestamptz` | `timestamp without time zone` / `timestamp with time zone` (±infinity, BC kept) |
//! | `inet`, `cidr`, `macaddr`, `macaddr8`, `xml`, `oid`, `"char"`, `tsvector`, geometric types, built-in ranges, and their arrays | the same |
//! | `bit(n)`, `varbit` | `bit varying` (`bit` alone would be `bit(1)`) |
//! | arrays of the above | `T[]` (any number of dimensions, NULL elements kept) |
//! | domains | their base type (capture describes a domain by its base type) |
//! | anything else (enums, `money`, extension types, ...) | `text`, the exact text |
//!
//! ## Widening
//!
//! `smallint` → `integer` → `bigint`, integers into `double precision`, a wide enough
//! `numeric(p,s)` or `numeric`, `real` → `double precision`, `numeric(p,s)` into a wider
//! `numeric(p,s)` or `numeric`, `character varying(n)` into a longer one, `character varying`
//! or `text`, integers and numerics into `text`, arrays element-wise. Anything else is refused.
//!
//! ## Staging
//!
//! `pg_temp._sluice_stage` is created `ON COMMIT DROP` in the load's transaction with `text`
//! data columns and filled with `COPY ... FROM STDIN (FORMAT binary)`; a text field in binary
//! COPY is its UTF-8 bytes. The destination sets `standard_conforming_strings = on`, which the
//! literal quoting relies on (no backslash escapes).

use std::fmt::{self, Write as _};

use sluice_core::{PgType, meta};

use crate::{CheckpointRow, STAGE, SqlDialect, TargetColumn, statement};

/// The PostgreSQL dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Postgres;

/// A PostgreSQL column type, printed the way `format_type()` prints it so catalog types
/// compare with mapped ones as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgTarget {
    Boolean,
    SmallInt,
    Integer,
    BigInt,
    Real,
    Double,
    /// `numeric(precision, scale)`; `None` for unconstrained `numeric`.
    Numeric(Option<(u16, i16)>),
    Text,
    Varchar(Option<u32>),
    Char(Option<u32>),
    Bytea,
    Uuid,
    Json,
    Jsonb,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Interval,
    /// A built-in type without a modifier known by name (`inet`, `xml`, ...).
    Named(&'static str),
    Array(Box<PgTarget>),
}

/// Built-in types outside [`PgType`]'s list that map to themselves: (type OID, array type
/// OID, name).
const NAMED: &[(u32, u32, &str)] = &[
    (869, 1041, "inet"),
    (650, 651, "cidr"),
    (829, 1040, "macaddr"),
    (774, 775, "macaddr8"),
    (142, 143, "xml"),
    (26, 1028, "oid"),
    (18, 1002, "\"char\""),
    // bit(n) too: `bit` alone would be bit(1), and varying keeps every value exactly.
    (1560, 1561, "bit varying"),
    (1562, 1563, "bit varying"),
    (3614, 3643, "tsvector"),
    (600, 1017, "point"),
    (601, 1018, "lseg"),
    (602, 1019, "path"),
    (603, 1020, "box"),
    (604, 1027, "polygon"),
    (628, 629, "line"),
    (718, 719, "circle"),
    (3904, 3905, "int4range"),
    (3926, 3927, "int8range"),
    (3906, 3907, "numrange"),
    (3908, 3909, "tsrange"),
    (3910, 3911, "tstzrange"),
    (3912, 3913, "daterange"),
];

/// Array types outside [`PgType`]'s list: (array type OID, element).
const ARRAYS: &[(u32, PgTarget)] = &[
    (1183, PgTarget::Time),
    (1270, PgTarget::TimeTz),
    (1187, PgTarget::Interval),
];

impl fmt::Display for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgTarget::Boolean => f.write_str("boolean"),
            PgTarget::SmallInt => f.write_str("smallint"),
            PgTarget::Integer => f.write_str("integer"),
            PgTarget::BigInt => f.write_str("bigint"),
            PgTarget::Real => f.write_str("real"),
            PgTarget::Double => f.write_str("double precision"),
            PgTarget::Numeric(None) => f.write_str("numeric"),
            PgTarget::Numeric(Some((p, s))) => write!(f, "numeric({p},{s})"),
            PgTarget::Text => f.write_str("text"),
            PgTarget::Varchar(None) => f.write_str("character varying"),
            PgTarget::Varchar(Some(n)) => write!(f, "character varying({n})"),
            PgTarget::Char(None) => f.write_str("bpchar"),
            PgTarget::Char(Some(n)) => write!(f, "character({n})"),
            PgTarget::Bytea => f.write_str("bytea"),
            PgTarget::Uuid => f.write_str("uuid"),
            PgTarget::Json => f.write_str("json"),
            PgTarget::Jsonb => f.write_str("jsonb"),
            PgTarget::Date => f.write_str("date"),
            PgTarget::Time => f.write_str("time without time zone"),
            PgTarget::TimeTz => f.write_str("time with time zone"),
            PgTarget::Timestamp => f.write_str("timestamp without time zone"),
            PgTarget::TimestampTz => f.write_str("timestamp with time zone"),
            PgTarget::Interval => f.write_str("interval"),
            PgTarget::Named(name) => f.write_str(name),
            PgTarget::Array(inner) => write!(f, "{inner}[]"),
        }
    }
}

impl PgTarget {
    /// Parses a type as `format_type()` prints it.
    pub fn parse(s: &str) -> Option<PgTarget> {
        let s = s.trim();
        if let Some(inner) = s.strip_suffix("[]") {
            return PgTarget::parse(inner).map(|t| PgTarget::Array(Box::new(t)));
        }
        let with_arg = |prefix: &str| {
            s.strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('('))
                .and_then(|r| r.strip_suffix(')'))
        };
        if let Some(args) = with_arg("numeric") {
            let (p, sc) = args.split_once(',')?;
            return Some(PgTarget::Numeric(Some((
                p.trim().parse().ok()?,
                sc.trim().parse().ok()?,
            ))));
        }
        if let Some(n) = with_arg("character varying") {
            return Some(PgTarget::Varchar(Some(n.trim().parse().ok()?)));
        }
        if let Some(n) = with_arg("character") {
            return Some(PgTarget::Char(Some(n.trim().parse().ok()?)));
        }
        if let Some(&(_, _, name)) = NAMED.iter().find(|(_, _, n)| *n == s) {
            return Some(PgTarget::Named(name));
        }
        Some(match s {
            "boolean" => PgTarget::Boolean,
            "smallint" => PgTarget::SmallInt,
            "integer" => PgTarget::Integer,
            "bigint" => PgTarget::BigInt,
            "real" => PgTarget::Real,
            "double precision" => PgTarget::Double,
            "numeric" => PgTarget::Numeric(None),
            "text" => PgTarget::Text,
            "character varying" => PgTarget::Varchar(None),
            "bpchar" => PgTarget::Char(None),
            "bytea" => PgTarget::Bytea,
            "uuid" => PgTarget::Uuid,
            "json" => PgTarget::Json,
            "jsonb" => PgTarget::Jsonb,
            "date" => PgTarget::Date,
            "time without time zone" => PgTarget::Time,
            "time with time zone" => PgTarget::TimeTz,
            "timestamp without time zone" => PgTarget::Timestamp,
            "timestamp with time zone" => PgTarget::TimestampTz,
            "interval" => PgTarget::Interval,
            _ => return None,
        })
    }

    /// The type with `varchar(n)` / `char(n)` lengths removed (element types too).
    pub fn without_length(&self) -> PgTarget {
        match self {
            PgTarget::Varchar(Some(_)) => PgTarget::Varchar(None),
            PgTarget::Char(Some(_)) => PgTarget::Char(None),
            PgTarget::Array(inner) => PgTarget::Array(Box::new(inner.without_length())),
            other => other.clone(),
        }
    }

    fn int_digits(&self) -> Option<i32> {
        match self {
            PgTarget::SmallInt => Some(5),
            PgTarget::Integer => Some(10),
            PgTarget::BigInt => Some(19),
            _ => None,
        }
    }

    /// Whether every value of `self` converts into `to` exactly.
    pub fn converts_exactly_into(&self, to: &PgTarget) -> bool {
        use PgTarget::*;
        if self == to {
            return true;
        }
        match (self, to) {
            (SmallInt, Integer | BigInt) | (Integer, BigInt) => true,
            (SmallInt | Integer, Double) | (Real, Double) => true,
            (SmallInt | Integer | BigInt, Numeric(None)) => true,
            (SmallInt | Integer | BigInt, Numeric(Some((p, s)))) => self
                .int_digits()
                .is_some_and(|d| i32::from(*p) - i32::from(*s) >= d),
            (Numeric(Some(_)), Numeric(None)) => true,
            (Numeric(Some((p1, s1))), Numeric(Some((p2, s2)))) => {
                s2 >= s1 && i32::from(*p2) - i32::from(*s2) >= i32::from(*p1) - i32::from(*s1)
            }
            (SmallInt | Integer | BigInt | Numeric(_), Text) => true,
            (Varchar(Some(a)), Varchar(Some(b))) => b >= a,
            (Varchar(_) | Text, Varchar(None)) | (Varchar(_), Text) => true,
            (Array(a), Array(b)) => a.converts_exactly_into(b),
            _ => false,
        }
    }
}

impl SqlDialect for Postgres {
    type Type = PgTarget;

    fn name(&self) -> &'static str {
        "postgres"
    }

    /// `NAMEDATALEN - 1`: longer identifiers are truncated by the server.
    fn max_identifier_bytes(&self) -> Option<usize> {
        Some(63)
    }

    /// With an index on the key columns: every MERGE looks rows up by key, and without one
    /// each batch scans the whole table. Not unique: a batch may move keys between rows.
    fn create_table(
        &self,
        schema: &str,
        table: &str,
        columns: &[TargetColumn<PgTarget>],
    ) -> String {
        let mut sql = statement::create_table(self, schema, table, columns);
        let keys: Vec<String> = columns
            .iter()
            .filter(|c| c.key)
            .map(|c| self.quote_ident(&c.name))
            .collect();
        if !keys.is_empty() {
            let _ = write!(
                sql,
                "; CREATE INDEX ON {} ({})",
                self.qualified(schema, table),
                keys.join(", ")
            );
        }
        sql
    }

    fn map_type(&self, pg: &PgType, _array_depth: usize) -> PgTarget {
        match pg {
            PgType::Bool => PgTarget::Boolean,
            PgType::Int2 => PgTarget::SmallInt,
            PgType::Int4 => PgTarget::Integer,
            PgType::Int8 => PgTarget::BigInt,
            PgType::Float4 => PgTarget::Real,
            PgType::Float8 => PgTarget::Double,
            // The modifier's scale is a signed 16-bit number (negative scales since 15).
            PgType::Numeric {
                precision: Some(p),
                scale: Some(s),
            } => PgTarget::Numeric(Some((*p, *s as i16))),
            PgType::Numeric { .. } => PgTarget::Numeric(None),
            PgType::Text => PgTarget::Text,
            PgType::Varchar(n) => PgTarget::Varchar(*n),
            PgType::Bpchar(n) => PgTarget::Char(*n),
            PgType::Bytea => PgTarget::Bytea,
            PgType::Uuid => PgTarget::Uuid,
            PgType::Json => PgTarget::Json,
            PgType::Jsonb => PgTarget::Jsonb,
            PgType::Date => PgTarget::Date,
            PgType::Time => PgTarget::Time,
            PgType::TimeTz => PgTarget::TimeTz,
            PgType::Timestamp => PgTarget::Timestamp,
            PgType::TimestampTz => PgTarget::TimestampTz,
            PgType::Interval => PgTarget::Interval,
            PgType::Array(element) => PgTarget::Array(Box::new(self.map_type(element, 0))),
            PgType::Other(oid) => {
                if let Some(&(_, _, name)) = NAMED.iter().find(|(o, _, _)| o == oid) {
                    PgTarget::Named(name)
                } else if let Some(&(_, _, name)) = NAMED.iter().find(|(_, a, _)| a == oid) {
                    PgTarget::Array(Box::new(PgTarget::Named(name)))
                } else if let Some((_, element)) = ARRAYS.iter().find(|(a, _)| a == oid) {
                    PgTarget::Array(Box::new(element.clone()))
                } else {
                    PgTarget::Text
                }
            }
        }
    }

    fn kept_as_text(&self, pg: &PgType) -> Option<&'static str> {
        match pg {
            PgType::Array(element) => self.kept_as_text(element),
            PgType::Other(_) if self.map_type(pg, 0) == PgTarget::Text => Some(
                "a type the target may not have (an enum, range or extension type): kept as its text",
            ),
            _ => None,
        }
    }

    fn parse_type(&self, catalog: &str) -> Option<PgTarget> {
        PgTarget::parse(catalog)
    }

    fn converts_exactly(&self, from: &PgTarget, to: &PgTarget) -> bool {
        from.converts_exactly_into(to)
    }

    /// `USING` spells out the conversion: not every widening has an implicit cast.
    fn alter_column_type(&self, schema: &str, table: &str, column: &str, ty: &PgTarget) -> String {
        let c = self.quote_ident(column);
        format!(
            "ALTER TABLE {} ALTER COLUMN {c} SET DATA TYPE {ty} USING CAST({c} AS {ty})",
            self.qualified(schema, table),
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

    fn stage(&self) -> String {
        format!("pg_temp.{}", self.quote_ident(STAGE))
    }

    /// Dropped at the end of the load's transaction whatever happens.
    fn create_stage(&self, columns: usize, keys: usize) -> String {
        format!(
            "CREATE TEMP TABLE {} ({}) ON COMMIT DROP",
            self.quote_ident(STAGE),
            statement::stage_columns(self, "text", "text", "bigint", columns, keys)
        )
    }

    /// Casts to the type without its length: an explicit cast to `varchar(n)` or `char(n)`
    /// truncates in silence, while assigning the result to the column checks the length and
    /// fails the batch.
    fn convert(&self, expr: &str, ty: &PgTarget) -> String {
        match ty {
            PgTarget::Text => expr.to_owned(),
            other => format!("CAST({expr} AS {})", other.without_length()),
        }
    }

    /// Whole seconds and the remaining microseconds separately: each product is exact
    /// (a bigint times an interval goes through double precision).
    fn timestamptz_from_micros(&self, expr: &str) -> String {
        format!(
            "(TIMESTAMPTZ 'epoch' + ({expr} / 1000000) * INTERVAL '1 second' + ({expr} % 1000000) \
             * INTERVAL '1 microsecond')"
        )
    }

    fn create_checkpoint_table(&self, schema: &str) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} (pipeline text PRIMARY KEY, position text NOT NULL, \
             applied_lsn bigint NOT NULL, applied_lsn_text text NOT NULL, \
             applied_commit_ts timestamptz NOT NULL, updated_at timestamptz NOT NULL)",
            self.qualified(schema, meta::CHECKPOINT_TABLE)
        )
    }

    fn upsert_checkpoint(&self, schema: &str, row: &CheckpointRow<'_>) -> Vec<String> {
        vec![statement::upsert_checkpoint_on_conflict(self, schema, row)]
    }

    fn select_checkpoint(&self, schema: &str, pipeline: &str) -> String {
        format!(
            "SELECT position, applied_lsn, \
             CAST(extract(epoch FROM applied_commit_ts) * 1000000 AS bigint) \
             FROM {} WHERE pipeline = {}",
            self.qualified(schema, meta::CHECKPOINT_TABLE),
            self.quote_literal(pipeline)
        )
    }
}
