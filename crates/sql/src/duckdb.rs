//! The DuckDB dialect.
//!
//! ## Type mapping
//!
//! Values arrive in PostgreSQL's text output; each column gets the DuckDB type that holds every
//! value of its PostgreSQL type exactly, or `VARCHAR` with the exact text when none does.
//!
//! | PostgreSQL | DuckDB | notes |
//! |---|---|---|
//! | `bool` | `BOOLEAN` | |
//! | `int2` / `int4` / `int8` | `SMALLINT` / `INTEGER` / `BIGINT` | |
//! | `float4` / `float8` | `REAL` / `DOUBLE` | `NaN`, `Infinity`, `-Infinity`, `-0` kept |
//! | `numeric(p,s)`, `1 <= p <= 38`, `0 <= s <= p` | `DECIMAL(p,s)` | `NaN`: the column becomes `VARCHAR` (below) |
//! | `numeric`, `numeric(p,s)` with `p > 38` or odd scale | `VARCHAR` | exact text |
//! | `text`, `varchar(n)`, `char(n)`, `name` | `VARCHAR` | `char(n)` keeps its padding |
//! | `bytea` | `BLOB` | staged as bare hex, converted with `from_hex` |
//! | `uuid` | `UUID` | |
//! | `json`, `jsonb` | `JSON` with the json extension, else `VARCHAR` | text kept as sent |
//! | `date` | `DATE` | `infinity`, `-infinity` and BC dates kept |
//! | `time` / `timetz` | `TIME` / `TIMETZ` | microseconds, offset kept |
//! | `timestamp` / `timestamptz` | `TIMESTAMP` / `TIMESTAMPTZ` | microseconds, `±infinity`, BC; after 294247 AD the column becomes `VARCHAR` (below) |
//! | `interval` | `INTERVAL` | months, days and microseconds kept apart |
//! | `oid` | `BIGINT` | |
//! | arrays of the above (and of `time`, `timetz`, `interval`, `name`, `oid`) | `T[]`, `T[][]`, ... | NULL elements kept; see below |
//! | anything else | `VARCHAR` | exact text |
//!
//! A PostgreSQL array column has no fixed number of dimensions, a DuckDB list column does: the
//! depth is taken from the first non-empty value seen when the column is created (one when
//! there is none).
//!
//! ## Values a typed column cannot hold
//!
//! PostgreSQL values that a column's DuckDB type cannot hold are `NaN` in a `numeric(p,s)`
//! (`DECIMAL`) and timestamps after 294247 AD (DuckDB's last one); in lists too. The destination
//! finds them with [`DuckDb::check_stage`] and changes the column into text
//! ([`DuckDb::to_text`]: `VARCHAR`, or `VARCHAR` lists of the same depth), converting the
//! values already loaded into the text PostgreSQL prints for them; later relations keep the
//! text column (`DECIMAL`, `TIMESTAMP` and `TIMESTAMPTZ` convert exactly into it). A value of
//! another type that does not convert cannot come from PostgreSQL and fails the batch.
//!
//! ## Widening
//!
//! `SMALLINT` → `INTEGER` → `BIGINT`, integers into a wide enough `DECIMAL` or into `VARCHAR`,
//! `REAL` → `DOUBLE`, `DECIMAL` into a wider `DECIMAL` or `VARCHAR`, `TIMESTAMP` and
//! `TIMESTAMPTZ` into `VARCHAR` (BC years rewritten as PostgreSQL prints them), lists
//! element-wise.
//!
//! ## Staging
//!
//! The staging table is `temp.main._sluice_stage` with `VARCHAR` data columns, filled through
//! the appender. Casts that fail are found before the MERGE by [`DuckDb::check_stage`]
//! (`TRY_CAST`), so a bad value is reported with its column.

use std::fmt;

use sluice_core::{PgType, meta};

use crate::{CheckpointRow, STAGE, SqlDialect, statement};

/// The DuckDB dialect. `json` says whether the json extension is loaded (JSON columns are
/// `JSON` then, `VARCHAR` otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DuckDb {
    pub json: bool,
}

/// A DuckDB column type this dialect creates or recognises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DuckType {
    Boolean,
    SmallInt,
    Integer,
    BigInt,
    Real,
    Double,
    Decimal(u8, u8),
    Varchar,
    Blob,
    Uuid,
    Json,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Interval,
    List(Box<DuckType>),
}

impl fmt::Display for DuckType {
    /// The type as written in DDL.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DuckType::Boolean => f.write_str("BOOLEAN"),
            DuckType::SmallInt => f.write_str("SMALLINT"),
            DuckType::Integer => f.write_str("INTEGER"),
            DuckType::BigInt => f.write_str("BIGINT"),
            DuckType::Real => f.write_str("REAL"),
            DuckType::Double => f.write_str("DOUBLE"),
            DuckType::Decimal(p, s) => write!(f, "DECIMAL({p},{s})"),
            DuckType::Varchar => f.write_str("VARCHAR"),
            DuckType::Blob => f.write_str("BLOB"),
            DuckType::Uuid => f.write_str("UUID"),
            DuckType::Json => f.write_str("JSON"),
            DuckType::Date => f.write_str("DATE"),
            DuckType::Time => f.write_str("TIME"),
            DuckType::TimeTz => f.write_str("TIMETZ"),
            DuckType::Timestamp => f.write_str("TIMESTAMP"),
            DuckType::TimestampTz => f.write_str("TIMESTAMPTZ"),
            DuckType::Interval => f.write_str("INTERVAL"),
            DuckType::List(inner) => write!(f, "{inner}[]"),
        }
    }
}

impl DuckType {
    /// Parses a type as `information_schema.columns.data_type` prints it.
    pub fn parse(s: &str) -> Option<DuckType> {
        let s = s.trim();
        if let Some(inner) = s.strip_suffix("[]") {
            return DuckType::parse(inner).map(|t| DuckType::List(Box::new(t)));
        }
        if let Some(args) = s
            .strip_prefix("DECIMAL(")
            .or_else(|| s.strip_prefix("NUMERIC("))
            .and_then(|r| r.strip_suffix(')'))
        {
            let (p, sc) = args.split_once(',')?;
            return Some(DuckType::Decimal(
                p.trim().parse().ok()?,
                sc.trim().parse().ok()?,
            ));
        }
        Some(match s {
            "BOOLEAN" => DuckType::Boolean,
            "SMALLINT" => DuckType::SmallInt,
            "INTEGER" => DuckType::Integer,
            "BIGINT" => DuckType::BigInt,
            "FLOAT" | "REAL" => DuckType::Real,
            "DOUBLE" => DuckType::Double,
            "VARCHAR" => DuckType::Varchar,
            "BLOB" => DuckType::Blob,
            "UUID" => DuckType::Uuid,
            "JSON" => DuckType::Json,
            "DATE" => DuckType::Date,
            "TIME" => DuckType::Time,
            "TIME WITH TIME ZONE" | "TIMETZ" => DuckType::TimeTz,
            "TIMESTAMP" => DuckType::Timestamp,
            "TIMESTAMP WITH TIME ZONE" | "TIMESTAMPTZ" => DuckType::TimestampTz,
            "INTERVAL" => DuckType::Interval,
            _ => return None,
        })
    }

    /// Number of list levels (0 for a scalar).
    pub fn depth(&self) -> usize {
        match self {
            DuckType::List(inner) => 1 + inner.depth(),
            _ => 0,
        }
    }

    /// The scalar type at the bottom of the lists.
    pub fn element(&self) -> &DuckType {
        match self {
            DuckType::List(inner) => inner.element(),
            other => other,
        }
    }

    /// Whether every value of `self` converts into `to` exactly (same value, and for
    /// `VARCHAR` the same text PostgreSQL would print).
    pub fn converts_exactly_into(&self, to: &DuckType) -> bool {
        use DuckType::*;
        fn int_digits(t: &DuckType) -> Option<u8> {
            match t {
                SmallInt => Some(5),
                Integer => Some(10),
                BigInt => Some(19),
                _ => None,
            }
        }
        if self == to {
            return true;
        }
        match (self, to) {
            (SmallInt, Integer | BigInt) | (Integer, BigInt) => true,
            (SmallInt | Integer, Double) | (Real, Double) => true,
            (SmallInt | Integer | BigInt, Decimal(p, s)) => {
                int_digits(self).is_some_and(|d| p - s >= d)
            }
            // DuckDB prints these as PostgreSQL does; timestamps are rewritten where they
            // differ (BC years; see `DuckDb::to_text` and `alter_column_type`).
            (SmallInt | Integer | BigInt | Decimal(..) | Timestamp | TimestampTz, Varchar) => true,
            (Decimal(p1, s1), Decimal(p2, s2)) => s2 >= s1 && p2 - s2 >= p1 - s1,
            (List(a), List(b)) => a.converts_exactly_into(b),
            _ => false,
        }
    }
}

impl DuckDb {
    /// Whether the json extension is loaded (one row, one BOOLEAN).
    pub fn json_loaded() -> String {
        "SELECT count(*) > 0 FROM duckdb_extensions() WHERE extension_name = 'json' AND loaded"
            .to_owned()
    }

    /// One row with one BOOLEAN per listed column: whether some staged value of that column
    /// does not convert to its target type. Returns the query and the positions it covers;
    /// `None` when no column needs checking.
    pub fn check_stage_columns(
        &self,
        columns: &[crate::TargetColumn<DuckType>],
    ) -> Option<(String, Vec<usize>)> {
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
                format!("SELECT {} FROM {}", checks.join(", "), self.stage()),
                positions,
            )
        })
    }
}

impl DuckDb {
    /// The text column replacing a column of type `ty` whose staged values it cannot hold:
    /// `VARCHAR`, or a list of `VARCHAR` with as many levels as `ty` has.
    pub fn text_type(ty: &DuckType) -> DuckType {
        (0..ty.depth()).fold(DuckType::Varchar, |t, _| DuckType::List(Box::new(t)))
    }

    /// Changes a column of type `from` into [`DuckDb::text_type`], every existing value
    /// converted into the exact text PostgreSQL prints for it (in capture's session: ISO dates,
    /// UTC). Only for the types whose PostgreSQL values may not fit: `DECIMAL` (numeric `NaN`)
    /// and `TIMESTAMP` / `TIMESTAMPTZ` (after 294247), alone or in lists; `None` for the others,
    /// where a value that does not convert is a bad value, not a PostgreSQL one.
    pub fn to_text_column(
        &self,
        schema: &str,
        table: &str,
        column: &str,
        from: &DuckType,
    ) -> Option<String> {
        let c = self.quote_ident(column);
        fn elements(expr: &str, ty: &DuckType, level: usize) -> Option<String> {
            match ty {
                DuckType::List(inner) => {
                    let var = format!("x{level}");
                    Some(format!(
                        "list_transform({expr}, lambda {var}: {})",
                        elements(&var, inner, level + 1)?
                    ))
                }
                other => pg_text(expr, other),
            }
        }
        Some(format!(
            "ALTER TABLE {} ALTER COLUMN {c} SET DATA TYPE {} USING {}",
            self.qualified(schema, table),
            DuckDb::text_type(from),
            elements(&c, from, 1)?
        ))
    }
}

/// PostgreSQL's text of a DuckDB value `expr` of type `ty`, for the types [`DuckDb::to_text`]
/// changes. DuckDB prints BC years as `0044-03-15 (BC) 12:00:00` where PostgreSQL prints
/// `0044-03-15 12:00:00 BC`, and a `TIMESTAMPTZ` in the session's time zone where capture's
/// text is in UTC (`+00`).
fn pg_text(expr: &str, ty: &DuckType) -> Option<String> {
    Some(match ty {
        DuckType::Decimal(..) => format!("CAST({expr} AS VARCHAR)"),
        DuckType::Timestamp => bc(format!("CAST({expr} AS VARCHAR)")),
        DuckType::TimestampTz => format!(
            "CASE WHEN isfinite({expr}) THEN {} ELSE CAST({expr} AS VARCHAR) END",
            bc(format!(
                "CAST(make_timestamp(epoch_us({expr})) AS VARCHAR) || '+00'"
            ))
        ),
        _ => return None,
    })
}

/// DuckDB's text of a date or timestamp (`text`, an expression) with a BC year as PostgreSQL
/// prints it: `0044-03-15 (BC) 12:00:00` becomes `0044-03-15 12:00:00 BC`; other text stays.
fn bc(text: String) -> String {
    format!("regexp_replace({text}, '^(\\S+) \\(BC\\)(.*)$', '\\1\\2 BC')")
}

/// The DuckDB type of a PostgreSQL type outside [`PgType`]'s list that has one: `oid` (an
/// unsigned 32-bit number) and arrays of types the mapping knows.
fn native_other(type_oid: u32) -> Option<DuckType> {
    use sluice_core::pg_type::oid;
    let list = |t| Some(DuckType::List(Box::new(t)));
    match type_oid {
        oid::OID => Some(DuckType::BigInt),
        oid::OID_ARRAY => list(DuckType::BigInt),
        oid::NAME_ARRAY => list(DuckType::Varchar),
        oid::TIME_ARRAY => list(DuckType::Time),
        oid::TIMETZ_ARRAY => list(DuckType::TimeTz),
        oid::INTERVAL_ARRAY => list(DuckType::Interval),
        _ => None,
    }
}

fn list_varchar(depth: usize) -> String {
    format!("VARCHAR{}", "[]".repeat(depth))
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

impl SqlDialect for DuckDb {
    type Type = DuckType;

    fn check_stage(
        &self,
        columns: &[crate::TargetColumn<DuckType>],
    ) -> Option<(String, Vec<usize>)> {
        self.check_stage_columns(columns)
    }

    fn to_text(
        &self,
        schema: &str,
        table: &str,
        column: &str,
        from: &DuckType,
    ) -> Option<(String, DuckType)> {
        self.to_text_column(schema, table, column, from)
            .map(|alter| (alter, DuckDb::text_type(from)))
    }

    fn name(&self) -> &'static str {
        "duckdb"
    }

    // DuckDB string literals have no backslash escapes: the default quoting is exact.

    fn map_type(&self, pg: &PgType, depth: usize) -> DuckType {
        let json = self.json;
        match pg {
            PgType::Array(element) => {
                let mut t = self.map_type(element, 0);
                for _ in 0..depth.max(1) {
                    t = DuckType::List(Box::new(t));
                }
                t
            }
            PgType::Bool => DuckType::Boolean,
            PgType::Int2 => DuckType::SmallInt,
            PgType::Int4 => DuckType::Integer,
            PgType::Int8 => DuckType::BigInt,
            PgType::Float4 => DuckType::Real,
            PgType::Float8 => DuckType::Double,
            PgType::Numeric {
                precision: Some(p),
                scale: Some(s),
            } if (1..=38).contains(p) && s <= p => DuckType::Decimal(*p as u8, *s as u8),
            PgType::Numeric { .. } => DuckType::Varchar,
            PgType::Other(o) => match native_other(*o) {
                Some(DuckType::List(element)) => {
                    (0..depth.max(1)).fold(*element, |t, _| DuckType::List(Box::new(t)))
                }
                Some(t) => t,
                None => DuckType::Varchar,
            },
            PgType::Text | PgType::Varchar(_) | PgType::Bpchar(_) => DuckType::Varchar,
            PgType::Bytea => DuckType::Blob,
            PgType::Uuid => DuckType::Uuid,
            PgType::Json | PgType::Jsonb if json => DuckType::Json,
            PgType::Json | PgType::Jsonb => DuckType::Varchar,
            PgType::Date => DuckType::Date,
            PgType::Time => DuckType::Time,
            PgType::TimeTz => DuckType::TimeTz,
            PgType::Timestamp => DuckType::Timestamp,
            PgType::TimestampTz => DuckType::TimestampTz,
            PgType::Interval => DuckType::Interval,
        }
    }

    fn kept_as_text(&self, pg: &PgType) -> Option<&'static str> {
        match pg {
            PgType::Array(element) => self.kept_as_text(element),
            PgType::Numeric {
                precision: None, ..
            } => Some("numeric without a precision: beyond DECIMAL(38), kept as exact text"),
            PgType::Numeric { .. } if self.map_type(pg, 0) == DuckType::Varchar => {
                Some("numeric precision above 38 or scale outside 0..precision: kept as exact text")
            }
            PgType::Json | PgType::Jsonb if !self.json => {
                Some("json without DuckDB's json extension: kept as text")
            }
            PgType::Other(o) if native_other(*o).is_none() => {
                Some("no DuckDB type holds it exactly: kept as its PostgreSQL text")
            }
            _ => None,
        }
    }

    fn array_depth(&self, ty: &DuckType) -> usize {
        ty.depth()
    }

    fn parse_type(&self, catalog: &str) -> Option<DuckType> {
        DuckType::parse(catalog)
    }

    fn converts_exactly(&self, from: &DuckType, to: &DuckType) -> bool {
        from.converts_exactly_into(to)
    }

    /// Into text, each value (each element of a list) is printed by DuckDB with BC years
    /// rewritten as PostgreSQL prints them (`0044-03-15 12:00:00 BC`).
    fn alter_column_type(&self, schema: &str, table: &str, column: &str, ty: &DuckType) -> String {
        let c = self.quote_ident(column);
        let mut sql = format!(
            "ALTER TABLE {} ALTER COLUMN {c} SET DATA TYPE {ty}",
            self.qualified(schema, table)
        );
        if *ty.element() == DuckType::Varchar {
            let depth = ty.depth();
            let mut using = bc(format!(
                "CAST({} AS VARCHAR)",
                if depth == 0 {
                    c.clone()
                } else {
                    format!("x{depth}")
                }
            ));
            for level in (1..=depth).rev() {
                let over = if level == 1 {
                    c.clone()
                } else {
                    format!("x{}", level - 1)
                };
                using = format!("list_transform({over}, lambda x{level}: {using})");
            }
            sql.push_str(&format!(" USING {using}"));
        }
        sql
    }

    fn table_columns(&self, schema: &str, table: &str) -> String {
        format!(
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_catalog = current_database() AND table_schema = {} AND table_name = {} \
             ORDER BY ordinal_position",
            self.quote_literal(schema),
            self.quote_literal(table)
        )
    }

    /// The temporary table lives in the `temp` catalog and dies with the connection.
    fn stage(&self) -> String {
        format!("temp.main.{}", self.quote_ident(STAGE))
    }

    fn create_stage(&self, columns: usize, keys: usize) -> String {
        format!(
            "CREATE OR REPLACE TEMP TABLE {} ({})",
            self.quote_ident(STAGE),
            statement::stage_columns(self, "VARCHAR", "VARCHAR", "BIGINT", columns, keys)
        )
    }

    /// Lists are cast to `VARCHAR` lists first (the staged text is a DuckDB list literal),
    /// then converted element by element.
    fn convert(&self, expr: &str, ty: &DuckType) -> String {
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

    fn timestamptz_from_micros(&self, expr: &str) -> String {
        format!("(TIMESTAMPTZ '1970-01-01 00:00:00+00' + to_microseconds({expr}))")
    }

    fn create_checkpoint_table(&self, schema: &str) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} (pipeline VARCHAR PRIMARY KEY, position VARCHAR NOT \
             NULL, applied_lsn BIGINT NOT NULL, applied_lsn_text VARCHAR NOT NULL, \
             applied_commit_ts TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL)",
            self.qualified(schema, meta::CHECKPOINT_TABLE)
        )
    }

    fn upsert_checkpoint(&self, schema: &str, row: &CheckpointRow<'_>) -> Vec<String> {
        vec![statement::upsert_checkpoint_on_conflict(self, schema, row)]
    }

    fn select_checkpoint(&self, schema: &str, pipeline: &str) -> String {
        format!(
            "SELECT position, applied_lsn, epoch_us(applied_commit_ts) FROM {} WHERE pipeline = {}",
            self.qualified(schema, meta::CHECKPOINT_TABLE),
            self.quote_literal(pipeline)
        )
    }
}
