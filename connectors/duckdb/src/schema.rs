//! Type mapping, table DDL and schema evolution.
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
//! | `numeric(p,s)`, `1 <= p <= 38`, `0 <= s <= p` | `DECIMAL(p,s)` | `NaN` and infinities fail the batch |
//! | `numeric`, `numeric(p,s)` with `p > 38` or odd scale | `VARCHAR` | exact text |
//! | `text`, `varchar(n)`, `char(n)`, `name` | `VARCHAR` | `char(n)` keeps its padding |
//! | `bytea` | `BLOB` | from the `\x` hex form |
//! | `uuid` | `UUID` | |
//! | `json`, `jsonb` | `JSON` with the json extension, else `VARCHAR` | text kept as sent |
//! | `date` | `DATE` | `infinity`, `-infinity` and BC dates kept |
//! | `time` / `timetz` | `TIME` / `TIMETZ` | microseconds, offset kept |
//! | `timestamp` / `timestamptz` | `TIMESTAMP` / `TIMESTAMPTZ` | microseconds, `±infinity`, BC; beyond DuckDB's range (after 294247 AD) fails the batch |
//! | `interval` | `INTERVAL` | months, days and microseconds kept apart |
//! | arrays of the above | `T[]`, `T[][]`, ... | NULL elements kept; see below |
//! | anything else | `VARCHAR` | exact text |
//!
//! A PostgreSQL array column has no fixed number of dimensions, a DuckDB list column does: the
//! depth is taken from the first non-empty value seen when the column is created (one when
//! there is none). A later value with another number of dimensions, or an array with
//! non-default lower bounds (`[0:1]={1,2}`), fails the batch with an error naming the column.
//!
//! ## Evolution
//!
//! A table is created on first sight, with the relation's columns and the metadata columns
//! ([`sluice_core::meta`]). Later relations are compared with the table's columns in
//! `information_schema.columns`: missing columns are added; a column whose type changed is
//! widened when every old value converts exactly (`SMALLINT` → `INTEGER` → `BIGINT`, integers
//! into a wide enough `DECIMAL` or into `VARCHAR`, `REAL` → `DOUBLE`, `DECIMAL` into a wider
//! `DECIMAL` or `VARCHAR`, lists element-wise), kept when the new type converts exactly into the
//! existing one, and refused otherwise with an error naming table, column and both types.
//! Columns the source dropped stay in the target and are NULL in rows written afterwards.
//!
//! Target tables get no PRIMARY KEY: MERGE matches on the key columns without one, the
//! loader's dedupe already guarantees one row per key per batch, and a constraint would pin
//! the key columns (DuckDB cannot drop or replace a primary key when the source's identity
//! changes) and cost an index update on every load.

use std::fmt;

use sluice_core::{PgType, RelationSchema, Row, Value, meta};

use crate::error::{Error, Result};
use crate::sql;

/// Columns whose names start with this prefix are Sluice's own.
pub(crate) const RESERVED_PREFIX: &str = "_sluice_";

/// A DuckDB column type this destination creates or recognises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DuckType {
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
    pub(crate) fn parse(s: &str) -> Option<DuckType> {
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
    pub(crate) fn depth(&self) -> usize {
        match self {
            DuckType::List(inner) => 1 + inner.depth(),
            _ => 0,
        }
    }

    /// The scalar type at the bottom of the lists.
    pub(crate) fn element(&self) -> &DuckType {
        match self {
            DuckType::List(inner) => inner.element(),
            other => other,
        }
    }

    /// Whether every value of `self` converts into `to` exactly (same value, and for
    /// `VARCHAR` the same text PostgreSQL would print).
    fn converts_exactly_into(&self, to: &DuckType) -> bool {
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
            (SmallInt | Integer | BigInt | Decimal(..), Varchar) => true,
            (Decimal(p1, s1), Decimal(p2, s2)) => s2 >= s1 && p2 - s2 >= p1 - s1,
            (List(a), List(b)) => a.converts_exactly_into(b),
            _ => false,
        }
    }
}

/// The DuckDB type of a PostgreSQL type. `json` says whether the json extension is loaded;
/// `depth` is the number of list levels an array column gets.
pub(crate) fn map_type(pg: &PgType, json: bool, depth: usize) -> DuckType {
    match pg {
        PgType::Array(element) => {
            let mut t = map_type(element, json, 0);
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
        PgType::Text | PgType::Varchar(_) | PgType::Bpchar(_) | PgType::Other(_) => {
            DuckType::Varchar
        }
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

/// Number of dimensions of a PostgreSQL array in text form (`{{1,2}}` has 2), `None` for an
/// empty array (whose dimensions PostgreSQL does not print).
pub(crate) fn array_dims(text: &str) -> Option<usize> {
    let body = match text.find("]={") {
        Some(i) if text.starts_with('[') => &text[i + 2..],
        _ => text,
    };
    let dims = body.bytes().take_while(|&b| b == b'{').count();
    let empty = body.as_bytes().get(dims) == Some(&b'}');
    (dims > 0 && !empty).then_some(dims)
}

/// What one target table needs before rows can be applied.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TablePlan {
    /// `schema.name` of the target, quoted, for messages.
    pub display: String,
    /// The target table name.
    pub name: String,
    /// Per relation column (same order): its name, target type and whether it is a key.
    pub columns: Vec<TargetColumn>,
    /// DDL to run first (create, add columns, widen), in order.
    pub ddl: Vec<String>,
}

/// One relation column as loaded into the target.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TargetColumn {
    pub name: String,
    pub ty: DuckType,
    pub key: bool,
}

/// The plan for loading `relation` into `schema`, given the target table's current columns
/// (`None` when it does not exist) as `(name, data_type)` from `information_schema.columns`.
/// `rows` are the batch's rows, used to size list columns created now.
pub(crate) fn plan(
    schema: &str,
    relation: &RelationSchema,
    existing: Option<&[(String, String)]>,
    json: bool,
    rows: &[Row],
) -> Result<TablePlan> {
    let name = relation.table.name.clone();
    let display = format!("{}.{}", sql::quote_ident(schema), sql::quote_ident(&name));
    for c in &relation.columns {
        if c.name.starts_with(RESERVED_PREFIX) {
            return Err(Error::Schema {
                table: display,
                reason: format!(
                    "source column {} uses the prefix \"{RESERVED_PREFIX}\" reserved for \
                     Sluice's metadata columns. Rename the column at the source",
                    sql::quote_ident(&c.name)
                ),
            });
        }
    }
    let depth_in_rows = |i: usize| {
        rows.iter()
            .filter_map(|r| r.values.get(i).and_then(Value::as_text))
            .find_map(array_dims)
            .unwrap_or(1)
    };
    let mut columns = Vec::with_capacity(relation.columns.len());
    let mut ddl = Vec::new();
    match existing {
        None => {
            for (i, c) in relation.columns.iter().enumerate() {
                columns.push(TargetColumn {
                    name: c.name.clone(),
                    ty: map_type(&c.pg_type(), json, depth_in_rows(i)),
                    key: c.key,
                });
            }
            ddl.push(sql::create_table(schema, &name, &columns));
        }
        Some(existing) => {
            for required in [meta::LSN, meta::COMMIT_TS, meta::DELETED, meta::SYNCED_AT] {
                if !existing.iter().any(|(n, _)| n == required) {
                    return Err(Error::Schema {
                        table: display,
                        reason: format!(
                            "the table exists without the metadata column \"{required}\", so \
                             it was not created by Sluice. Drop or rename it, or load into \
                             another schema"
                        ),
                    });
                }
            }
            for (i, c) in relation.columns.iter().enumerate() {
                let found = existing.iter().find(|(n, _)| *n == c.name);
                let ty = match found {
                    None => {
                        let ty = map_type(&c.pg_type(), json, depth_in_rows(i));
                        ddl.push(sql::add_column(schema, &name, &c.name, &ty));
                        ty
                    }
                    Some((_, old_text)) => {
                        let old = DuckType::parse(old_text);
                        let depth = old.as_ref().map_or(1, DuckType::depth);
                        let new = map_type(&c.pg_type(), json, depth);
                        match old {
                            Some(old) if new.converts_exactly_into(&old) => old,
                            Some(old) if old.converts_exactly_into(&new) => {
                                ddl.push(sql::alter_column_type(schema, &name, &c.name, &new));
                                new
                            }
                            _ => {
                                return Err(Error::Schema {
                                    table: display,
                                    reason: format!(
                                        "column {} changed from {old_text} to {new}, which \
                                         cannot hold every existing value exactly. Convert \
                                         the target column by hand, or drop the target table \
                                         and resnapshot",
                                        sql::quote_ident(&c.name)
                                    ),
                                });
                            }
                        }
                    }
                };
                columns.push(TargetColumn {
                    name: c.name.clone(),
                    ty,
                    key: c.key,
                });
            }
        }
    }
    Ok(TablePlan {
        display,
        name,
        columns,
        ddl,
    })
}

#[cfg(test)]
mod tests {
    use sluice_core::pg_type::oid;
    use sluice_core::{Column, ReplicaIdentity, TableId};

    use super::*;

    fn relation(columns: &[(&str, u32, i32, bool)]) -> RelationSchema {
        RelationSchema {
            table: TableId::new("public", "t"),
            oid: 1,
            version: 1,
            replica_identity: ReplicaIdentity::Default,
            columns: columns
                .iter()
                .map(|&(name, type_oid, type_modifier, key)| Column {
                    name: name.into(),
                    type_oid,
                    type_modifier,
                    key,
                    nullable: true,
                })
                .collect(),
        }
    }

    fn numeric(p: i32, s: i32) -> i32 {
        ((p << 16) | s) + 4
    }

    #[test]
    fn mapping() {
        let cases = [
            (PgType::Bool, "BOOLEAN"),
            (PgType::Int8, "BIGINT"),
            (PgType::Float4, "REAL"),
            (
                PgType::from_oid(oid::NUMERIC, numeric(38, 10)),
                "DECIMAL(38,10)",
            ),
            (PgType::from_oid(oid::NUMERIC, numeric(39, 2)), "VARCHAR"),
            (PgType::from_oid(oid::NUMERIC, -1), "VARCHAR"),
            (PgType::from_oid(oid::NUMERIC, numeric(5, 7)), "VARCHAR"),
            (PgType::Bpchar(Some(3)), "VARCHAR"),
            (PgType::Bytea, "BLOB"),
            (PgType::Jsonb, "JSON"),
            (PgType::TimeTz, "TIMETZ"),
            (PgType::TimestampTz, "TIMESTAMPTZ"),
            (PgType::Interval, "INTERVAL"),
            (PgType::Other(600), "VARCHAR"),
            (PgType::from_oid(oid::INT4_ARRAY, -1), "INTEGER[]"),
        ];
        for (pg, duck) in cases {
            assert_eq!(map_type(&pg, true, 1).to_string(), duck, "{pg:?}");
        }
        assert_eq!(map_type(&PgType::Json, false, 1), DuckType::Varchar);
        assert_eq!(
            map_type(&PgType::from_oid(oid::TEXT_ARRAY, -1), true, 2).to_string(),
            "VARCHAR[][]"
        );
    }

    #[test]
    fn parses_catalog_names() {
        for t in [
            "BOOLEAN",
            "DECIMAL(38,10)",
            "BIGINT[]",
            "VARCHAR[][]",
            "JSON",
            "UUID",
            "INTERVAL",
            "TIMESTAMP",
        ] {
            assert_eq!(
                DuckType::parse(t).map(|t| t.to_string()).as_deref(),
                Some(t)
            );
        }
        assert_eq!(
            DuckType::parse("TIMESTAMP WITH TIME ZONE"),
            Some(DuckType::TimestampTz)
        );
        assert_eq!(
            DuckType::parse("TIME WITH TIME ZONE"),
            Some(DuckType::TimeTz)
        );
        assert_eq!(DuckType::parse("FLOAT"), Some(DuckType::Real));
        assert_eq!(DuckType::parse("STRUCT(a INTEGER)"), None);
    }

    #[test]
    fn dims() {
        assert_eq!(array_dims("{1,2}"), Some(1));
        assert_eq!(array_dims("{{1,2},{3,4}}"), Some(2));
        assert_eq!(array_dims("{\"{x\"}"), Some(1));
        assert_eq!(array_dims("{}"), None);
        assert_eq!(array_dims("[0:1]={1,2}"), Some(1));
    }

    fn existing(cols: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = cols
            .iter()
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect();
        for (n, t) in [
            (meta::LSN, "BIGINT"),
            (meta::COMMIT_TS, "TIMESTAMP WITH TIME ZONE"),
            (meta::DELETED, "BOOLEAN"),
            (meta::SYNCED_AT, "TIMESTAMP WITH TIME ZONE"),
        ] {
            v.push((n.to_owned(), t.to_owned()));
        }
        v
    }

    #[test]
    fn evolution() {
        let r = relation(&[
            ("id", oid::INT8, -1, true),
            ("n", oid::INT4, -1, false),
            ("amount", oid::NUMERIC, numeric(12, 2), false),
            ("added", oid::TEXT, -1, false),
        ]);
        // int2 -> int4 widens, numeric(10,2) -> numeric(12,2) widens, a new column is added,
        // a target that is already wider (BIGINT for an int8) stays.
        let cols = existing(&[
            ("id", "BIGINT"),
            ("n", "SMALLINT"),
            ("amount", "DECIMAL(10,2)"),
            ("gone", "VARCHAR"),
        ]);
        let p = plan("raw", &r, Some(&cols), true, &[]).expect("safe changes");
        assert_eq!(
            p.ddl,
            vec![
                "ALTER TABLE \"raw\".\"t\" ALTER COLUMN \"n\" SET DATA TYPE INTEGER",
                "ALTER TABLE \"raw\".\"t\" ALTER COLUMN \"amount\" SET DATA TYPE DECIMAL(12,2)",
                "ALTER TABLE \"raw\".\"t\" ADD COLUMN \"added\" VARCHAR",
            ]
        );
        let narrower = existing(&[("id", "BIGINT"), ("n", "BIGINT")]);
        let p = plan("raw", &r, Some(&narrower), true, &[]).expect("narrower source");
        assert_eq!(p.columns[1].ty, DuckType::BigInt);

        let unsafe_change = existing(&[("id", "BIGINT"), ("n", "TIMESTAMP")]);
        let err = plan("raw", &r, Some(&unsafe_change), true, &[]).expect_err("unsafe");
        assert_eq!(
            err.to_string(),
            "table \"raw\".\"t\": column \"n\" changed from TIMESTAMP to INTEGER, which cannot \
             hold every existing value exactly. Convert the target column by hand, or drop the \
             target table and resnapshot"
        );
        assert_eq!(
            sluice_core::Classify::class(&err),
            sluice_core::ErrorClass::Definite
        );
    }

    #[test]
    fn refuses_foreign_tables_and_reserved_names() {
        let r = relation(&[("id", oid::INT8, -1, true)]);
        let foreign = vec![("id".to_owned(), "BIGINT".to_owned())];
        assert!(plan("raw", &r, Some(&foreign), true, &[]).is_err());
        let reserved = relation(&[("_sluice_lsn", oid::INT8, -1, true)]);
        assert!(plan("raw", &reserved, None, true, &[]).is_err());
    }

    #[test]
    fn list_depth_from_rows() {
        let r = relation(&[
            ("id", oid::INT4, -1, true),
            ("m", oid::INT4_ARRAY, -1, false),
        ]);
        let row = Row {
            op: sluice_core::RowOp::Upsert,
            values: vec![Value::from("1"), Value::from("{{1,2},{3,4}}")],
            lsn: sluice_core::Lsn(1),
            commit_ts: 0,
        };
        let p = plan("raw", &r, None, true, &[row]).expect("plan");
        assert_eq!(p.columns[1].ty.to_string(), "INTEGER[][]");
    }
}
