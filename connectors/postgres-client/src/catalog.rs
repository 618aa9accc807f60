//! What the catalog says of a table: its columns, types, key and replica identity, as a
//! [`RelationSchema`] (capture reconciles the change stream's description with it; `verify`
//! reads both sides with it).

use sluice_core::{Column, RelationSchema, ReplicaIdentity, TableId};
use tokio_postgres::Client;

use crate::error::{Error, Result};

/// A table's description from the catalog. `version` is 1.
pub async fn relation_schema(client: &Client, table: &TableId) -> Result<RelationSchema> {
    let rows = client
        .query(
            "SELECT c.oid, c.relreplident::text, a.attname::text, \
                    CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END, \
                    CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END, \
                    a.attnotnull, \
                    coalesce(a.attnum = ANY (pk.indkey::int2[]), false), \
                    coalesce(a.attnum = ANY (ri.indkey::int2[]), false) \
             FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 \
                  AND NOT a.attisdropped AND a.attgenerated = '' \
             JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_catalog.pg_index pk ON pk.indrelid = c.oid AND pk.indisprimary \
             LEFT JOIN pg_catalog.pg_index ri ON ri.indrelid = c.oid AND ri.indisreplident \
             WHERE n.nspname = $1 AND c.relname = $2 \
             ORDER BY a.attnum",
            &[&table.schema, &table.name],
        )
        .await
        .map_err(|e| Error::client(format!("reading the columns of {table}"), e))?;
    let first = rows.first().ok_or_else(|| Error::MissingTable {
        table: table.clone(),
    })?;
    let oid: u32 = first.get(0);
    let identity = match first.get::<_, String>(1).as_str() {
        "n" => ReplicaIdentity::Nothing,
        "f" => ReplicaIdentity::Full,
        "i" => ReplicaIdentity::Index,
        _ => ReplicaIdentity::Default,
    };
    let mut columns: Vec<Column> = rows
        .iter()
        .map(|r| Column {
            name: r.get(2),
            type_oid: r.get(3),
            type_modifier: r.get(4),
            nullable: !r.get::<_, bool>(5),
            key: r.get(6),
        })
        .collect();
    let has_pk = rows.iter().any(|r| r.get::<_, bool>(6));
    if !has_pk {
        match identity {
            ReplicaIdentity::Index => {
                for (c, r) in columns.iter_mut().zip(&rows) {
                    c.key = r.get(7);
                }
            }
            ReplicaIdentity::Full => columns.iter_mut().for_each(|c| c.key = true),
            ReplicaIdentity::Default | ReplicaIdentity::Nothing => {}
        }
    }
    Ok(RelationSchema {
        table: table.clone(),
        oid,
        version: 1,
        replica_identity: identity,
        columns,
    })
}
