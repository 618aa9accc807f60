//! What the source's catalog says about the captured tables: which tables the configured
//! patterns name, and each table's columns, types and row identity.
//!
//! The row identity Sluice merges on is the primary key when the table has one (whatever its
//! `REPLICA IDENTITY`), else the replica identity index, else (with `REPLICA IDENTITY FULL`)
//! every column. Domains are described by their base type.

use sluice_core::{RelationSchema, TableId};
use tokio_postgres::Client;

use crate::error::{Error, Result};

/// A configured table pattern: `schema.table`, or `schema.*` when `table` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePattern {
    pub schema: String,
    pub table: Option<String>,
}

/// The tables the patterns name, in a stable order. A `schema.table` that does not exist is an
/// error; a `schema.*` may match nothing.
pub async fn resolve_tables(client: &Client, patterns: &[TablePattern]) -> Result<Vec<TableId>> {
    let mut tables: Vec<TableId> = Vec::new();
    for p in patterns {
        let rows = client
            .query(
                "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
                   AND n.nspname = $1 AND ($2::text IS NULL OR c.relname = $2) \
                 ORDER BY 1, 2",
                &[&p.schema, &p.table],
            )
            .await
            .map_err(|e| Error::client("listing source tables", e))?;
        if rows.is_empty()
            && let Some(t) = &p.table
        {
            return Err(Error::prerequisite(
                format!(
                    "table {} does not exist at the source",
                    TableId::new(&p.schema, t)
                ),
                "Create the table, or remove it from source.tables.",
            ));
        }
        for row in rows {
            let id = TableId::new(row.get::<_, String>(0), row.get::<_, String>(1));
            if !tables.contains(&id) {
                tables.push(id);
            }
        }
    }
    Ok(tables)
}

/// The planner's estimate of a table's rows (`pg_class.reltuples`), `None` when the table was
/// never analyzed or vacuumed.
pub async fn estimated_rows(client: &Client, oid: u32) -> Result<Option<u64>> {
    let row = client
        .query_one(
            "SELECT c.reltuples::float8 FROM pg_catalog.pg_class c WHERE c.oid = $1",
            &[&oid],
        )
        .await
        .map_err(|e| Error::client(format!("estimating the rows of relation {oid}"), e))?;
    let estimate: f64 = row.get(0);
    Ok((estimate >= 0.0).then_some(estimate as u64))
}

/// A table's description from the catalog. `version` is 1.
pub async fn relation_schema(client: &Client, table: &TableId) -> Result<RelationSchema> {
    sluice_postgres_client::catalog::relation_schema(client, table)
        .await
        .map_err(|e| match e {
            sluice_postgres_client::Error::MissingTable { table } => Error::prerequisite(
                format!("table {table} does not exist at the source"),
                "Create the table, or remove it from source.tables.",
            ),
            other => other.into(),
        })
}

/// OIDs below this belong to built-in objects (`FirstNormalObjectId`).
const FIRST_NORMAL_OID: u32 = 16_384;

/// Applies the catalog's identity and base types to a relation as the change stream describes
/// it (columns in stream order and with stream names), keeping the stream's column list.
pub fn reconcile(stream: &mut RelationSchema, catalog: &RelationSchema) {
    for column in &mut stream.columns {
        if let Some(c) = catalog.columns.iter().find(|c| c.name == column.name) {
            column.key = c.key;
            column.nullable = c.nullable;
            // A domain (always a user-defined type) is described by its base type. A built-in
            // type that differs is a type change the stream has not reached yet: keep the
            // stream's, which describes the rows that follow.
            if c.type_oid != column.type_oid && column.type_oid >= FIRST_NORMAL_OID {
                column.type_oid = c.type_oid;
                column.type_modifier = c.type_modifier;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use sluice_core::{Column, ReplicaIdentity, TableId};

    use super::*;

    fn rel(type_oid: u32, key: bool) -> RelationSchema {
        RelationSchema {
            table: TableId::new("public", "t"),
            oid: 1,
            version: 1,
            replica_identity: ReplicaIdentity::Default,
            columns: vec![Column {
                name: "c".into(),
                type_oid,
                type_modifier: -1,
                key,
                nullable: true,
            }],
        }
    }

    #[test]
    fn domains_take_the_base_type_but_built_in_changes_do_not() {
        // A domain over int4 (user OID) becomes int4, and the catalog's key flag wins.
        let mut stream = rel(16_500, false);
        reconcile(&mut stream, &rel(23, true));
        assert_eq!(
            (stream.columns[0].type_oid, stream.columns[0].key),
            (23, true)
        );
        // timestamp in the stream while the catalog already says timestamptz: keep timestamp.
        let mut stream = rel(1114, false);
        reconcile(&mut stream, &rel(1184, false));
        assert_eq!(stream.columns[0].type_oid, 1114);
    }
}
