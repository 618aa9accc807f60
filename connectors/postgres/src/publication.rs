//! The publication that names the captured tables.
//!
//! Created when missing: `FOR TABLES IN SCHEMA` for `schema.*` patterns (so tables created
//! later in the schema are captured too) plus `FOR TABLE` for single tables. An existing
//! publication is used as it is, after checking that it covers every configured table; tables
//! it lacks are added when the role may do so, otherwise the error says which to add.

use sluice_core::TableId;
use tokio_postgres::Client;

use crate::catalog::TablePattern;
use crate::error::{Error, Result};
use crate::ident::{quote_ident, quote_literal};

/// Creates the publication if missing and makes sure it covers `tables`.
pub async fn ensure(
    client: &Client,
    name: &str,
    patterns: &[TablePattern],
    tables: &[TableId],
) -> Result<()> {
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1",
            &[&name],
        )
        .await
        .map_err(|e| Error::client("looking up the publication", e))?
        .is_some();
    if !exists {
        let sql = create_statement(name, patterns);
        tracing::info!(publication = name, "creating publication");
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| Error::client(format!("creating publication {}", quote_ident(name)), e))?;
        return Ok(());
    }
    let published = published_tables(client, name).await?;
    let missing: Vec<&TableId> = tables.iter().filter(|t| !published.contains(t)).collect();
    if missing.is_empty() {
        return Ok(());
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
    })
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

/// `CREATE PUBLICATION` for the patterns. Pure.
pub fn create_statement(name: &str, patterns: &[TablePattern]) -> String {
    let schemas: Vec<String> = patterns
        .iter()
        .filter(|p| p.table.is_none())
        .map(|p| quote_ident(&p.schema))
        .collect();
    let tables: Vec<String> = patterns
        .iter()
        .filter_map(|p| {
            p.table
                .as_ref()
                .map(|t| qualified(&TableId::new(&p.schema, t)))
        })
        .collect();
    let mut parts = Vec::new();
    if !tables.is_empty() {
        parts.push(format!("TABLE {}", tables.join(", ")));
    }
    if !schemas.is_empty() {
        parts.push(format!("TABLES IN SCHEMA {}", schemas.join(", ")));
    }
    // Deletes and updates need the old key; truncates are captured too.
    format!(
        "CREATE PUBLICATION {} FOR {} WITH (publish = {})",
        quote_ident(name),
        parts.join(", "),
        quote_literal("insert, update, delete, truncate")
    )
}

fn qualified(t: &TableId) -> String {
    format!("{}.{}", quote_ident(&t.schema), quote_ident(&t.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_statement_quotes_everything() {
        let patterns = vec![
            TablePattern {
                schema: "public".into(),
                table: Some("orders".into()),
            },
            TablePattern {
                schema: "we\"ird".into(),
                table: Some("; DROP TABLE x; --".into()),
            },
            TablePattern {
                schema: "sales".into(),
                table: None,
            },
        ];
        assert_eq!(
            create_statement("my \"pub\"", &patterns),
            "CREATE PUBLICATION \"my \"\"pub\"\"\" FOR TABLE \"public\".\"orders\", \
             \"we\"\"ird\".\"; DROP TABLE x; --\", TABLES IN SCHEMA \"sales\" \
             WITH (publish = 'insert, update, delete, truncate')"
        );
    }
}
