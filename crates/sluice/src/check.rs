//! `sluice check`: configuration, connectivity and prerequisites, each with what to do.

use serde::Serialize;
use sluice_config::redact_url;
use sluice_postgres::{Finding, Level};

use crate::Failure;
use crate::registry::{Load, LogKind, TargetKind};
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
    let client = sluice_postgres::connect(&settings.source).await.ok()?;
    let tables = sluice_postgres::resolve_tables(&client, &settings.capture.tables)
        .await
        .ok()?;
    let kept = |pg: &sluice_core::PgType| settings.target.kept_as_text(pg);
    let switched = settings.target.text_columns(&tables).await;
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

/// Opens the destination as a sync would, and reads its checkpoint.
struct Probe {
    pipeline: String,
}

impl Load for Probe {
    type Output = Result<Option<sluice_core::Checkpoint>, Failure>;

    async fn run<D: sluice_core::Destination + 'static>(
        self,
        mut destination: D,
    ) -> Result<Self::Output, Failure> {
        Ok(destination
            .open(&self.pipeline)
            .await
            .map_err(|e| Failure::from_error("target", e)))
    }
}

async fn check_target(target: &TargetKind, pipeline: &str) -> Finding {
    let subject = "target".to_owned();
    let outcome: Result<String, String> = target
        .load(Probe {
            pipeline: pipeline.to_owned(),
        })
        .await
        .and_then(|opened| opened)
        .map(|checkpoint| {
            format!(
                "{} {} schema \"{}\": {}",
                target.name(),
                target.location(),
                target.schema(),
                checkpoint.map_or("no checkpoint yet".to_owned(), |c| format!(
                    "loaded up to {}",
                    c.applied_lsn
                ))
            )
        })
        .map_err(|failure| format!("{:#}", failure.error));
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
