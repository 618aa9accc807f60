//! `sluice check`: configuration, connectivity and prerequisites, each with what to do.

use serde::Serialize;
use sluice_config::redact_url;
use sluice_postgres::{Finding, Level};

use crate::registry::{LogKind, TargetKind};
use crate::settings::Settings;

#[derive(Serialize)]
struct Report<'a> {
    ok: bool,
    pipeline: &'a str,
    source: String,
    findings: &'a [Finding],
}

/// Runs every check; returns whether none failed.
pub async fn run(settings: &Settings, json: bool) -> bool {
    let mut findings =
        sluice_postgres::check_prerequisites(&settings.source, &settings.capture).await;
    if let Some(f) = check_type_mapping(settings).await {
        findings.push(f);
    }
    findings.push(check_log(&settings.log).await);
    findings.push(check_target(&settings.target, &settings.pipeline).await);
    let ok = findings.iter().all(|f| f.level != Level::Error);
    // The source's Display redacts the password.
    let source = redact_url(&settings.source.to_string());
    if json {
        let report = Report {
            ok,
            pipeline: &settings.pipeline,
            source,
            findings: &findings,
        };
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("error: cannot print the report: {e}"),
        }
    } else {
        println!("pipeline \"{}\", source {source}", settings.pipeline);
        for f in &findings {
            let mark = match f.level {
                Level::Ok => "ok     ",
                Level::Warning => "warning",
                Level::Error => "error  ",
            };
            println!("{mark} {}: {}", f.subject, f.message);
            if let Some(hint) = &f.hint {
                println!("        hint: {hint}");
            }
        }
        println!(
            "{}",
            if ok {
                "all checks passed"
            } else {
                "some checks failed"
            }
        );
    }
    ok
}

/// Lists the captured columns the target keeps as exact text instead of a native type; `None`
/// when the tables cannot be read (the prerequisite findings say why).
async fn check_type_mapping(settings: &Settings) -> Option<Finding> {
    use sluice_sql::SqlDialect;
    let client = sluice_postgres::connect(&settings.source).await.ok()?;
    let tables = sluice_postgres::resolve_tables(&client, &settings.capture.tables)
        .await
        .ok()?;
    let kept = |pg: &sluice_core::PgType| match &settings.target {
        #[cfg(feature = "duckdb")]
        TargetKind::DuckDb(_) => sluice_sql::DuckDb { json: true }.kept_as_text(pg),
        #[cfg(feature = "postgres")]
        TargetKind::Postgres(_) => sluice_sql::Postgres.kept_as_text(pg),
    };
    let switched = switched_to_text(settings, &tables).await;
    let mut columns = Vec::new();
    for table in &tables {
        let Ok(relation) = sluice_postgres::relation_schema(&client, table).await else {
            continue;
        };
        for column in &relation.columns {
            let pg = sluice_core::PgType::from_oid(column.type_oid, column.type_modifier);
            if let Some(why) = kept(&pg) {
                columns.push(format!("{}.{} ({why})", table, column.name));
            } else if !text_at_source(&pg)
                && switched.contains(&(table.name.clone(), column.name.clone()))
            {
                columns.push(format!(
                    "{}.{} (changed to text while loading: some values do not fit the native \
                     type)",
                    table, column.name
                ));
            }
        }
    }
    let message = if columns.is_empty() {
        "every captured column maps to a native target type".to_owned()
    } else {
        format!(
            "{} column{} kept as exact PostgreSQL text (lossless; cast in queries): {}",
            columns.len(),
            if columns.len() == 1 { "" } else { "s" },
            columns.join("; ")
        )
    };
    Some(Finding {
        level: Level::Ok,
        subject: "type mapping".to_owned(),
        message,
        hint: None,
    })
}

/// Whether a source column holds character data (`text`, `varchar`, `char`), alone or in an
/// array: such a column is text in every target.
fn text_at_source(pg: &sluice_core::PgType) -> bool {
    use sluice_core::PgType;
    match pg {
        PgType::Array(element) => text_at_source(element),
        PgType::Text | PgType::Varchar(_) | PgType::Bpchar(_) => true,
        PgType::Other(o) => *o == sluice_core::pg_type::oid::NAME_ARRAY,
        _ => false,
    }
}

/// `(table, column)` of the target's text columns; with [`text_at_source`] and the mapping,
/// those that hold text although their source type maps
/// to a native type: the destination changed them when values arrived that the native type
/// cannot hold (DuckDB: numeric `NaN` in a `DECIMAL`, timestamps after 294247). Empty when the
/// target cannot be read (the target finding says why) or never changes column types.
async fn switched_to_text(
    settings: &Settings,
    tables: &[sluice_core::TableId],
) -> Vec<(String, String)> {
    match &settings.target {
        #[cfg(feature = "duckdb")]
        TargetKind::DuckDb(config) => {
            use sluice_sql::{DuckDb, DuckType, SqlDialect as _};
            let Ok(mut destination) = sluice_duckdb::destination(config.clone()) else {
                return Vec::new();
            };
            let Ok(conn) = destination.session_mut().reader().await else {
                return Vec::new();
            };
            let schema = config.schema.clone();
            let names: Vec<String> = tables.iter().map(|t| t.name.clone()).collect();
            tokio::task::spawn_blocking(move || {
                let d = DuckDb { json: true };
                let mut found = Vec::new();
                for name in names {
                    let Ok(mut stmt) = conn.prepare(&d.table_columns(&schema, &name)) else {
                        continue;
                    };
                    let Ok(rows) = stmt
                        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                    else {
                        continue;
                    };
                    for (column, ty) in rows.flatten() {
                        let text =
                            DuckType::parse(&ty).is_some_and(|t| *t.element() == DuckType::Varchar);
                        if text {
                            found.push((name.clone(), column));
                        }
                    }
                }
                found
            })
            .await
            .unwrap_or_default()
        }
        #[cfg(feature = "postgres")]
        TargetKind::Postgres(_) => Vec::new(),
    }
}

async fn check_log(log: &LogKind) -> Finding {
    match log {
        LogKind::Local(options) => {
            let dir = options.dir.clone();
            let probe = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                std::fs::create_dir_all(&dir)?;
                let file = tempfile::NamedTempFile::new_in(&dir)?;
                file.close()
            })
            .await;
            let subject = "change log".to_owned();
            match probe {
                Ok(Ok(())) => Finding {
                    level: Level::Ok,
                    subject,
                    message: format!("local directory \"{}\" is writable", options.dir.display()),
                    hint: None,
                },
                Ok(Err(e)) => Finding {
                    level: Level::Error,
                    subject,
                    message: format!(
                        "local directory \"{}\" is not writable: {e}",
                        options.dir.display()
                    ),
                    hint: Some("Set log.path to a writable directory.".to_owned()),
                },
                Err(e) => Finding {
                    level: Level::Error,
                    subject,
                    message: e.to_string(),
                    hint: None,
                },
            }
        }
    }
}

/// An error and its causes, `: `-separated.
#[cfg(feature = "postgres")]
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        message.push_str(": ");
        message.push_str(&c.to_string());
        cause = c.source();
    }
    message
}

async fn check_target(target: &TargetKind, pipeline: &str) -> Finding {
    let subject = "target".to_owned();
    let outcome: Result<String, String> = match target {
        #[cfg(feature = "duckdb")]
        TargetKind::DuckDb(config) => {
            use sluice_core::Destination;
            match sluice_duckdb::destination(config.clone()) {
                Ok(mut d) => match d.open(pipeline).await {
                    Ok(cp) => Ok(format!(
                        "duckdb \"{}\" schema \"{}\": {}",
                        config.path.display(),
                        config.schema,
                        cp.map_or("no checkpoint yet".to_owned(), |c| format!(
                            "loaded up to {}",
                            c.applied_lsn
                        ))
                    )),
                    Err(e) => Err(format!("{e:#}")),
                },
                Err(e) => Err(format!("{e:#}")),
            }
        }
        #[cfg(feature = "postgres")]
        TargetKind::Postgres(config) => {
            use sluice_core::Destination;
            // The URL is printed without its password.
            match sluice_postgres_target::destination(config.clone()) {
                Ok(mut d) => match d.open(pipeline).await {
                    Ok(cp) => Ok(format!(
                        "postgres {} schema \"{}\": {}",
                        config.redacted_url(),
                        config.schema,
                        cp.map_or("no checkpoint yet".to_owned(), |c| format!(
                            "loaded up to {}",
                            c.applied_lsn
                        ))
                    )),
                    Err(e) => Err(with_causes(&e)),
                },
                Err(e) => Err(with_causes(&e)),
            }
        }
    };
    match outcome {
        Ok(message) => Finding {
            level: Level::Ok,
            subject,
            message,
            hint: None,
        },
        Err(message) => Finding {
            level: Level::Error,
            subject,
            message,
            hint: None,
        },
    }
}
