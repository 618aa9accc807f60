//! What a target table needs before a batch's rows can be applied: creation, added columns,
//! widened types, or a refusal.
//!
//! A table is created on first sight, with the relation's columns and the metadata columns
//! ([`sluice_core::meta`]). Later relations are compared with the table's columns as the
//! dialect's catalog query reports them: missing columns are added; a column whose type
//! changed is widened when every old value converts exactly
//! ([`SqlDialect::converts_exactly`]), kept when the new type converts exactly into the
//! existing one, and refused otherwise with an error naming table, column and both types.
//! Columns the source dropped stay in the target and are NULL in rows written afterwards.
//!
//! Target tables get no PRIMARY KEY: MERGE matches on the key columns without one, the
//! loader's dedupe already guarantees one row per key per batch, and a constraint would pin
//! the key columns when the source's identity changes and cost an index update on every load.

use std::fmt;

use sluice_core::{RelationSchema, Row, TableId, Value, meta};

use crate::{SqlDialect, TargetColumn};

/// Columns whose names start with this prefix are Sluice's own.
pub const RESERVED_PREFIX: &str = "_sluice_";

/// The source changed a table in a way the target cannot follow safely, or the target table
/// is not Sluice's. Always definite: this table is wedged until someone acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    /// `schema.name` of the target, quoted.
    pub table: String,
    /// The source table: the one the loader parks.
    pub source_table: TableId,
    /// What is wrong and what to do.
    pub reason: String,
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "table {}: {}", self.table, self.reason)
    }
}

impl std::error::Error for SchemaError {}

/// What one target table needs before rows can be applied.
#[derive(Debug, Clone, PartialEq)]
pub struct TablePlan<T> {
    /// `schema.name` of the target, quoted, for messages.
    pub display: String,
    /// The target table name.
    pub name: String,
    /// Per relation column (same order): its name, target type and whether it is a key;
    /// then the target's columns the source dropped (not keys), which rows leave NULL.
    pub columns: Vec<TargetColumn<T>>,
    /// DDL to run first (create, add columns, widen), in order.
    pub ddl: Vec<String>,
}

/// Number of dimensions of a PostgreSQL array in text form (`{{1,2}}` has 2), `None` for an
/// empty array (whose dimensions PostgreSQL does not print).
pub fn array_dims(text: &str) -> Option<usize> {
    let body = match text.find("]={") {
        Some(i) if text.starts_with('[') => &text[i + 2..],
        _ => text,
    };
    let dims = body.bytes().take_while(|&b| b == b'{').count();
    let empty = body.as_bytes().get(dims) == Some(&b'}');
    (dims > 0 && !empty).then_some(dims)
}

/// The plan for loading `relation` into `schema`, given the target table's current columns
/// (`None` when it does not exist) as `(name, type)` rows of [`SqlDialect::table_columns`].
/// `rows` are the batch's rows, used to size array columns created now where the dialect
/// fixes their dimensions.
pub fn plan<D: SqlDialect>(
    d: &D,
    schema: &str,
    relation: &RelationSchema,
    existing: Option<&[(String, String)]>,
    rows: &[Row],
) -> Result<TablePlan<D::Type>, SchemaError> {
    let name = relation.table.name.clone();
    let display = format!("{}.{}", d.quote_ident(schema), d.quote_ident(&name));
    let refuse = |reason: String| SchemaError {
        table: display.clone(),
        source_table: relation.table.clone(),
        reason,
    };
    if let Some(max) = d.max_identifier_bytes() {
        let long = std::iter::once(("table", &name))
            .chain(relation.columns.iter().map(|c| ("column", &c.name)))
            .find(|(_, n)| n.len() > max);
        if let Some((what, n)) = long {
            return Err(refuse(format!(
                "{what} name {} is longer than the {max} bytes {} keeps. Rename it at the \
                 source",
                d.quote_ident(n),
                d.name()
            )));
        }
    }
    for c in &relation.columns {
        if c.name.starts_with(RESERVED_PREFIX) {
            return Err(refuse(format!(
                "source column {} uses the prefix \"{RESERVED_PREFIX}\" reserved for Sluice's \
                 metadata columns. Rename the column at the source",
                d.quote_ident(&c.name)
            )));
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
                    ty: d.map_type(&c.pg_type(), depth_in_rows(i)),
                    key: c.key,
                });
            }
            ddl.push(d.create_table(schema, &name, &columns));
        }
        Some(existing) => {
            for required in [meta::LSN, meta::COMMIT_TS, meta::DELETED, meta::SYNCED_AT] {
                if !existing.iter().any(|(n, _)| n == required) {
                    return Err(refuse(format!(
                        "the table exists without the metadata column \"{required}\", so it \
                         was not created by Sluice. Drop or rename it, or load into another \
                         schema"
                    )));
                }
            }
            for (i, c) in relation.columns.iter().enumerate() {
                let found = existing.iter().find(|(n, _)| *n == c.name);
                let ty = match found {
                    None => {
                        let ty = d.map_type(&c.pg_type(), depth_in_rows(i));
                        ddl.push(d.add_column(schema, &name, &c.name, &ty));
                        ty
                    }
                    Some((_, old_text)) => {
                        let old = d.parse_type(old_text);
                        let depth = old.as_ref().map_or(1, |t| d.array_depth(t));
                        let new = d.map_type(&c.pg_type(), depth);
                        match old {
                            Some(old) if d.converts_exactly(&new, &old) => old,
                            Some(old) if d.converts_exactly(&old, &new) => {
                                ddl.push(d.alter_column_type(schema, &name, &c.name, &new));
                                new
                            }
                            _ => {
                                return Err(refuse(format!(
                                    "column {} changed from {old_text} to {new}, which cannot \
                                     hold every existing value exactly",
                                    d.quote_ident(&c.name)
                                )));
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
            // Columns the source dropped: rows carry no value for them, so they are staged
            // as NULL and every row written from now on holds NULL there (a MERGE updates
            // only the columns it names). Deletes and rows not written keep their values.
            for (n, text) in existing {
                if n.starts_with(RESERVED_PREFIX) || relation.position(n).is_some() {
                    continue;
                }
                // Sluice created every column it can parse; one it cannot was added by
                // hand and is left alone.
                if let Some(ty) = d.parse_type(text) {
                    columns.push(TargetColumn {
                        name: n.clone(),
                        ty,
                        key: false,
                    });
                }
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
