//! What `sluice check` verifies at the source before anything is created: each finding says
//! what is wrong and what to do about it.

use sluice_core::ReplicaIdentity;

use sluice_core::TableId;

use crate::SourceConfig;
use crate::capture::CaptureOptions;
use crate::{catalog, connect, publication, slot};
use sluice_postgres_client::quote_ident;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warning,
    Error,
}

/// One result of a check.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub level: Level,
    /// What was checked (`"wal_level"`, `"table \"public\".\"orders\""`).
    pub subject: String,
    pub message: String,
    /// What to do, as a full sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Finding {
    fn new(
        level: Level,
        subject: impl Into<String>,
        message: impl Into<String>,
        hint: Option<&str>,
    ) -> Self {
        Finding {
            level,
            subject: subject.into(),
            message: message.into(),
            hint: hint.map(str::to_owned),
        }
    }
}

/// Checks the source's settings, the role's privileges, the tables and the slot.
pub async fn check(source: &SourceConfig, options: &CaptureOptions) -> Vec<Finding> {
    let mut out = Vec::new();
    let client = match connect(source).await {
        Ok(c) => c,
        Err(e) => {
            out.push(Finding::new(
                Level::Error,
                "connection",
                format!("cannot connect to the source: {}", error_chain(&e)),
                Some("Check source.url (host, port, database, user, password, sslmode)."),
            ));
            return out;
        }
    };
    out.push(Finding::new(
        Level::Ok,
        "connection",
        format!(
            "connected to {}:{}/{}",
            source.host, source.port, source.dbname
        ),
        None,
    ));
    match client
        .query_one(
            "SELECT current_setting('wal_level'), current_setting('server_version_num')::int, \
                    current_setting('max_replication_slots')::int, \
                    (SELECT count(*)::int FROM pg_replication_slots), \
                    r.rolreplication, r.rolsuper, current_user::text, \
                    current_setting('server_encoding') \
             FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
    {
        Ok(row) => {
            let wal_level: String = row.get(0);
            let version: i32 = row.get(1);
            let max_slots: i32 = row.get(2);
            let used_slots: i32 = row.get(3);
            let replication: bool = row.get(4);
            let superuser: bool = row.get(5);
            let user: String = row.get(6);
            let encoding: String = row.get(7);
            out.push(if wal_level == "logical" {
                Finding::new(Level::Ok, "wal_level", "logical", None)
            } else {
                Finding::new(
                    Level::Error,
                    "wal_level",
                    format!("wal_level is \"{wal_level}\"; logical replication needs \"logical\""),
                    Some("Run ALTER SYSTEM SET wal_level = logical; and restart PostgreSQL."),
                )
            });
            out.push(server_version(version));
            // Capture refuses any other encoding: say so here rather than at the first sync.
            out.push(if encoding == "UTF8" {
                Finding::new(Level::Ok, "server encoding", "UTF8", None)
            } else {
                Finding::new(
                    Level::Error,
                    "server encoding",
                    format!("server_encoding is \"{encoding}\", Sluice needs UTF8"),
                    Some("Capture from a database created with ENCODING 'UTF8'."),
                )
            });
            out.push(if replication || superuser {
                Finding::new(
                    Level::Ok,
                    "role",
                    format!("\"{user}\" may use replication"),
                    None,
                )
            } else {
                Finding::new(
                    Level::Error,
                    "role",
                    format!("role \"{user}\" lacks the REPLICATION attribute"),
                    Some(&format!(
                        "Run ALTER ROLE \"{}\" WITH REPLICATION; as a superuser.",
                        user.replace('"', "\"\"")
                    )),
                )
            });
            match slot::find(&client, &options.slot).await {
                Ok(Some(s)) => out.push(match slot::check_usable(&options.slot, &s, &source.dbname) {
                    Ok(()) => Finding::new(
                        Level::Ok,
                        "replication slot",
                        format!(
                            "\"{}\" exists (confirmed flush {})",
                            options.slot,
                            s.confirmed_flush_lsn.map_or("-".to_owned(), |l| l.to_string())
                        ),
                        None,
                    ),
                    Err(e) => Finding::new(Level::Error, "replication slot", error_chain(&e), None),
                }),
                Ok(None) if used_slots >= max_slots => out.push(Finding::new(
                    Level::Error,
                    "replication slot",
                    format!("\"{}\" does not exist and all {max_slots} slots (max_replication_slots) are in use", options.slot),
                    Some("Drop an unused slot or raise max_replication_slots and restart PostgreSQL."),
                )),
                Ok(None) => out.push(Finding::new(
                    Level::Ok,
                    "replication slot",
                    format!("\"{}\" will be created ({used_slots} of {max_slots} slots in use)", options.slot),
                    None,
                )),
                Err(e) => out.push(Finding::new(Level::Error, "replication slot", error_chain(&e), None)),
            }
        }
        Err(e) => out.push(Finding::new(
            Level::Error,
            "settings",
            format!("cannot read server settings: {e}"),
            None,
        )),
    }
    let tables = match catalog::resolve_tables(&client, &options.tables).await {
        Ok(t) => t,
        Err(e) => {
            out.push(Finding::new(Level::Error, "tables", error_chain(&e), None));
            return out;
        }
    };
    if tables.is_empty() {
        out.push(Finding::new(
            Level::Warning,
            "tables",
            "the configured patterns match no table",
            Some("Check source.tables; a schema.* pattern only matches tables that exist."),
        ));
    }
    if !tables.is_empty() {
        out.push(publication_finding(&client, &options.publication, &tables).await);
    }
    if let Some(finding) = publish_actions_finding(&client, &options.publication).await {
        out.push(finding);
    }
    for table in &tables {
        let subject = format!("table {table}");
        let relation = match catalog::relation_schema(&client, table).await {
            Ok(r) => r,
            Err(e) => {
                out.push(Finding::new(Level::Error, subject, error_chain(&e), None));
                continue;
            }
        };
        let can_select = client
            .query_one(
                "SELECT has_table_privilege($1::oid, 'SELECT')",
                &[&relation.oid],
            )
            .await
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(false);
        if !can_select {
            out.push(Finding::new(
                Level::Error,
                subject.clone(),
                "the role may not SELECT from it (needed for the initial snapshot)",
                Some(&format!("Run GRANT SELECT ON {table} TO the sluice role.")),
            ));
        }
        let finding = if !relation.has_key() {
            let why = match relation.replica_identity {
                ReplicaIdentity::Nothing => "REPLICA IDENTITY NOTHING",
                _ => "no primary key and no replica identity index",
            };
            Finding::new(
                Level::Warning,
                subject,
                format!(
                    "{why}: loaded append-only (updates add rows, deletes are not applied); PostgreSQL refuses UPDATE and DELETE on it once published"
                ),
                Some(&format!(
                    "Add a primary key, or run ALTER TABLE {table} REPLICA IDENTITY FULL; to merge on all columns."
                )),
            )
        } else if relation.columns.iter().all(|c| c.key)
            && relation.replica_identity == ReplicaIdentity::Full
        {
            Finding::new(
                Level::Warning,
                subject,
                "no primary key: rows are matched on all columns (REPLICA IDENTITY FULL)",
                Some("Add a primary key for faster and exact merges."),
            )
        } else {
            let keys: Vec<&str> = relation
                .columns
                .iter()
                .filter(|c| c.key)
                .map(|c| c.name.as_str())
                .collect();
            Finding::new(
                Level::Ok,
                subject,
                format!(
                    "{} columns, merged on ({})",
                    relation.columns.len(),
                    keys.join(", ")
                ),
                None,
            )
        };
        out.push(finding);
    }
    out
}

/// Whether the publication covers `tables`, or whether the role may create it or add what it
/// lacks (as `sync` will): a least-privilege role (REPLICATION and SELECT only) relies on the
/// tables' owner having created it.
async fn publication_finding(
    client: &tokio_postgres::Client,
    name: &str,
    tables: &[TableId],
) -> Finding {
    let subject = format!("publication {}", quote_ident(name));
    let found = async {
        let exists = publication::exists(client, name).await?;
        let published = if exists {
            publication::published_tables(client, name).await?
        } else {
            Vec::new()
        };
        let row = client
            .query_one(
                "SELECT has_database_privilege(current_database(), 'CREATE'), current_user::text",
                &[],
            )
            .await
            .map_err(|e| crate::Error::client("reading the role's privileges", e))?;
        let mut not_owned = Vec::new();
        for table in tables.iter().filter(|t| !published.contains(t)) {
            let owned: bool = client
                .query_one(
                    "SELECT pg_has_role(c.relowner, 'USAGE') FROM pg_catalog.pg_class c \
                     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = $1 AND c.relname = $2",
                    &[&table.schema, &table.name],
                )
                .await
                .map_err(|e| crate::Error::client(format!("reading the owner of {table}"), e))?
                .get(0);
            if !owned {
                not_owned.push(table.clone());
            }
        }
        Ok::<_, crate::Error>((
            exists,
            published,
            row.get::<_, bool>(0),
            row.get::<_, String>(1),
            not_owned,
        ))
    };
    let (exists, published, may_create, user, not_owned) = match found.await {
        Ok(f) => f,
        Err(e) => return Finding::new(Level::Error, subject, error_chain(&e), None),
    };
    let missing: Vec<&TableId> = tables.iter().filter(|t| !published.contains(t)).collect();
    let list = |ts: &[&TableId]| {
        ts.iter()
            .map(|t| format!("{}.{}", quote_ident(&t.schema), quote_ident(&t.name)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let owner_hint = |sql: String| format!("Run as the tables' owner: {sql};");
    if exists && missing.is_empty() {
        return Finding::new(
            Level::Ok,
            subject,
            format!("exists and publishes all {} tables", tables.len()),
            None,
        );
    }
    if exists {
        let sql = format!(
            "ALTER PUBLICATION {} ADD TABLE {}",
            quote_ident(name),
            list(&missing)
        );
        return if not_owned.is_empty() {
            Finding::new(
                Level::Ok,
                subject,
                format!("exists; {} will be added", list(&missing)),
                None,
            )
        } else {
            Finding::new(
                Level::Error,
                subject,
                format!(
                    "does not include {}, and role \"{user}\" may not add it (it does not own the table)",
                    list(&missing)
                ),
                Some(&owner_hint(sql)),
            )
        };
    }
    if may_create && not_owned.is_empty() {
        return Finding::new(
            Level::Ok,
            subject,
            format!("will be created for {} tables", tables.len()),
            None,
        );
    }
    let mut lacks = Vec::new();
    if !not_owned.is_empty() {
        lacks.push(format!(
            "does not own {}",
            list(&not_owned.iter().collect::<Vec<_>>())
        ));
    }
    if !may_create {
        lacks.push("lacks the CREATE privilege on the database".to_owned());
    }
    Finding::new(
        Level::Error,
        subject,
        format!(
            "does not exist, and role \"{user}\" {}, which creating it needs",
            lacks.join(" and ")
        ),
        // The statement for PostgreSQL 13+ (partitioned tables published through their root).
        Some(&owner_hint(publication::create_statement(
            name, tables, true,
        ))),
    )
}

/// A publication that exists but leaves out some kinds of change (`WITH (publish = ...)`):
/// pgoutput never sends them, so the target would silently keep rows the source changed.
/// `None` when there is no such publication or it publishes everything.
async fn publish_actions_finding(client: &tokio_postgres::Client, name: &str) -> Option<Finding> {
    let subject = format!("publication {}", quote_ident(name));
    let row = match client
        .query_opt(
            "SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_catalog.pg_publication \
             WHERE pubname = $1",
            &[&name],
        )
        .await
    {
        Ok(row) => row?,
        Err(e) => {
            let e = crate::Error::client("reading the publication's options", e);
            return Some(Finding::new(Level::Error, subject, error_chain(&e), None));
        }
    };
    let actions = ["insert", "update", "delete", "truncate"];
    let skipped: Vec<&str> = (0..4)
        .filter(|&i| !row.get::<_, bool>(i))
        .map(|i| actions[i])
        .collect();
    if skipped.is_empty() {
        return None;
    }
    // Without truncates the target keeps rows a TRUNCATE removed; without the others it
    // misses or keeps every such change.
    let level = if skipped == ["truncate"] {
        Level::Warning
    } else {
        Level::Error
    };
    Some(Finding::new(
        level,
        subject,
        format!(
            "does not publish {}: the target would never see those changes",
            skipped.join(", ")
        ),
        Some(&format!(
            "Run as its owner: ALTER PUBLICATION {} SET (publish = 'insert, update, delete, truncate');",
            quote_ident(name)
        )),
    ))
}

/// Oldest `server_version_num` capture works with: `pgoutput` and logical replication of
/// tables arrived in PostgreSQL 10.
const MIN_SERVER_VERSION_NUM: i32 = 100_000;

/// The finding on the server's `server_version_num`.
fn server_version(version_num: i32) -> Finding {
    let name = version_name(version_num);
    if version_num >= MIN_SERVER_VERSION_NUM {
        Finding::new(Level::Ok, "server version", name, None)
    } else {
        Finding::new(
            Level::Error,
            "server version",
            format!(
                "{name} (server_version_num {version_num}) is not supported: logical replication with pgoutput needs PostgreSQL 10 or later"
            ),
            Some("Upgrade the source to PostgreSQL 10 or later (Sluice is tested on 15)."),
        )
    }
}

/// `server_version_num` as PostgreSQL names the release: `150004` is 15.4, `90624` is 9.6.24.
fn version_name(n: i32) -> String {
    if n >= MIN_SERVER_VERSION_NUM {
        format!("PostgreSQL {}.{}", n / 10_000, n % 10_000)
    } else {
        format!("PostgreSQL {}.{}.{}", n / 10_000, n / 100 % 100, n % 100)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions_before_10_are_refused_by_name() {
        for (num, level, text) in [
            (150_004, Level::Ok, "PostgreSQL 15.4"),
            (100_000, Level::Ok, "PostgreSQL 10.0"),
            (170_000, Level::Ok, "PostgreSQL 17.0"),
            (
                90_624,
                Level::Error,
                "PostgreSQL 9.6.24 (server_version_num 90624) is not supported",
            ),
            (90_400, Level::Error, "PostgreSQL 9.4.0"),
            (0, Level::Error, "is not supported"),
        ] {
            let f = server_version(num);
            assert_eq!(f.level, level, "{num}");
            assert_eq!(f.subject, "server version");
            assert!(f.message.contains(text), "{num}: {}", f.message);
            assert_eq!(f.hint.is_some(), level == Level::Error, "{num}");
        }
    }
}
