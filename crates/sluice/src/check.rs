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
    let mut columns = Vec::new();
    for table in &tables {
        let Ok(relation) = sluice_postgres::relation_schema(&client, table).await else {
            continue;
        };
        for column in &relation.columns {
            let pg = sluice_core::PgType::from_oid(column.type_oid, column.type_modifier);
            if let Some(why) = kept(&pg) {
                columns.push(format!("{}.{} ({why})", table, column.name));
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
            match sluice_duckdb::DuckDbDestination::new(config.clone()) {
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
            match sluice_postgres_target::PostgresDestination::new(config.clone()) {
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
