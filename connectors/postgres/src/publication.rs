//! The publication that names the captured tables.
//!
//! Created when missing, `FOR TABLE` with the tables the patterns resolve to (a table owner
//! may do that; `FOR TABLES IN SCHEMA` would need a superuser). Every start resolves the
//! patterns again and adds tables the publication lacks, so a table created later in a
//! `schema.*` schema is captured from the next start. When the role may not add them, the
//! error gives the statement to run.

use sluice_core::TableId;
use tokio_postgres::Client;

use crate::error::{Error, Result};
use sluice_postgres_client::{quote_ident, quote_literal};

/// Creates the publication if missing and makes sure it covers `tables`; returns the tables it
/// had to add to an existing publication.
pub async fn ensure(
    client: &Client,
    name: &str,
    tables: &[TableId],
    via_root: bool,
) -> Result<Vec<TableId>> {
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1",
            &[&name],
        )
        .await
        .map_err(|e| Error::client("looking up the publication", e))?
        .is_some();
    if !exists {
        let sql = create_statement(name, tables, via_root);
        tracing::info!(publication = name, "creating publication");
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| Error::client(format!("creating publication {}", quote_ident(name)), e))?;
        return Ok(Vec::new());
    }
    if via_root {
        check_via_root(client, name, tables).await?;
    }
    let published = published_tables(client, name).await?;
    let missing: Vec<&TableId> = tables.iter().filter(|t| !published.contains(t)).collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let list = missing
        .iter()
        .map(|t| qualified(t))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("ALTER PUBLICATION {} ADD TABLE {list}", quote_ident(name));
    tracing::info!(publication = name, tables = %list, "adding tables to the publication");
    client.batch_execute(&sql).await.map_err(|e| {
        Error::prerequisite(
            format!(
                "publication {} does not include {list}: {e}",
                quote_ident(name)
            ),
            format!("Run as the tables' owner: {sql};"),
        )
    })?;
    Ok(missing.into_iter().cloned().collect())
}

/// Whether the publication named `name` exists.
pub async fn exists(client: &Client, name: &str) -> Result<bool> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1",
            &[&name],
        )
        .await
        .map_err(|e| Error::client("looking up the publication", e))?
        .is_some())
}

/// Drops the publication named `name` if it exists; returns whether it existed.
pub async fn drop(client: &Client, name: &str) -> Result<bool> {
    if !exists(client, name).await? {
        return Ok(false);
    }
    tracing::info!(publication = name, "dropping publication");
    client
        .batch_execute(&drop_statement(name))
        .await
        .map_err(|e| Error::client(format!("dropping publication {}", quote_ident(name)), e))?;
    Ok(true)
}

/// `DROP PUBLICATION IF EXISTS`. Pure.
pub fn drop_statement(name: &str) -> String {
    format!("DROP PUBLICATION IF EXISTS {}", quote_ident(name))
}

/// The tables a publication publishes, as the server resolves it.
pub async fn published_tables(client: &Client, name: &str) -> Result<Vec<TableId>> {
    let rows = client
        .query(
            "SELECT schemaname::text, tablename::text FROM pg_catalog.pg_publication_tables \
             WHERE pubname = $1 ORDER BY 1, 2",
            &[&name],
        )
        .await
        .map_err(|e| Error::client("listing the publication's tables", e))?;
    Ok(rows
        .iter()
        .map(|r| TableId::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect())
}

/// Fails when publication `name` publishes a captured partitioned table through its
/// partitions: their changes would arrive under the partitions' names, not the table's.
async fn check_via_root(client: &Client, name: &str, tables: &[TableId]) -> Result<()> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'p' AND NOT (SELECT pubviaroot FROM pg_catalog.pg_publication \
                                            WHERE pubname = $1)",
            &[&name],
        )
        .await
        .map_err(|e| Error::client("looking up partitioned tables", e))?;
    let through_partitions: Vec<String> = rows
        .iter()
        .map(|r| TableId::new(r.get::<_, String>(0), r.get::<_, String>(1)))
        .filter(|t| tables.contains(t))
        .map(|t| t.to_string())
        .collect();
    if through_partitions.is_empty() {
        return Ok(());
    }
    Err(Error::prerequisite(
        format!(
            "publication {} publishes the partitioned table {} through its partitions, so \
             their changes would not reach the table",
            quote_ident(name),
            through_partitions.join(", ")
        ),
        format!(
            "Run as the publication's owner: ALTER PUBLICATION {} SET (publish_via_partition_root = true);",
            quote_ident(name)
        ),
    ))
}

/// `CREATE PUBLICATION` for the tables. With `via_root` (PostgreSQL 13+), a partitioned
/// table's changes are published as the table's, whichever partition holds the row. Pure.
pub fn create_statement(name: &str, tables: &[TableId], via_root: bool) -> String {
    let list = tables.iter().map(qualified).collect::<Vec<_>>().join(", ");
    // Updates and deletes need the old key; truncates are captured too.
    format!(
        "CREATE PUBLICATION {} FOR TABLE {list} WITH (publish = {}{})",
        quote_ident(name),
        quote_literal("insert, update, delete, truncate"),
        if via_root {
            ", publish_via_partition_root = true"
        } else {
            ""
        }
    )
}

fn qualified(t: &TableId) -> String {
    format!("{}.{}", quote_ident(&t.schema), quote_ident(&t.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_statement_quotes_the_name() {
        assert_eq!(
            drop_statement("p\"; DROP TABLE x; --"),
            "DROP PUBLICATION IF EXISTS \"p\"\"; DROP TABLE x; --\""
        );
    }

    #[test]
    fn create_statement_quotes_everything() {
        let tables = vec![
            TableId::new("public", "orders"),
            TableId::new("we\"ird", "; DROP TABLE x; --"),
        ];
        assert_eq!(
            create_statement("my \"pub\"", &tables, false),
            "CREATE PUBLICATION \"my \"\"pub\"\"\" FOR TABLE \"public\".\"orders\", \
             \"we\"\"ird\".\"; DROP TABLE x; --\" \
             WITH (publish = 'insert, update, delete, truncate')"
        );
        assert!(create_statement("p", &tables, true).ends_with(
            "WITH (publish = 'insert, update, delete, truncate', publish_via_partition_root = true)"
        ));
    }
}
