//! `sluice teardown`: drops what Sluice keeps at the source, the replication slot (so the
//! server stops retaining WAL for it) and the publication, each only if it exists.
//!
//! It asks first on a terminal; without one it needs `--yes` and otherwise refuses before
//! connecting (exit 2), so a script never drops anything by accident. A slot a process streams
//! from is never dropped: the sync must stop first. The change log and the target are left as
//! they are; the output says how to remove them.

use std::io::{IsTerminal, Write};

use sluice_postgres::{SourceConfig, quote_ident};

use crate::Failure;
use crate::registry::LogKind;
use crate::settings::Settings;

/// Why nothing (or not everything) was dropped.
pub enum Refused {
    /// No `--yes` and no terminal to ask on: a usage error (exit 2).
    NotConfirmed { hint: String },
    /// The operator answered no (exit 1).
    Declined,
    /// The source could not be read or changed, or the slot is in use (exit 1).
    Failed {
        message: String,
        hint: Option<String>,
    },
}

impl From<Failure> for Refused {
    fn from(f: Failure) -> Self {
        Refused::Failed {
            message: f.to_string(),
            hint: None,
        }
    }
}

/// Drops the slot and the publication.
pub async fn run(settings: &Settings, yes: bool) -> Result<(), Refused> {
    let slot_name = &settings.capture.slot;
    let pub_name = &settings.capture.publication;
    let interactive = std::io::stdin().is_terminal();
    if !yes && !interactive {
        return Err(Refused::NotConfirmed {
            hint: format!(
                "There is no terminal to ask on. Run `sluice teardown --yes` to drop replication \
                 slot {} and publication {} on {} without asking.",
                quote_ident(slot_name),
                quote_ident(pub_name),
                place(&settings.source)
            ),
        });
    }
    let source_err = |e| Failure::from_error("source", e);
    let client = sluice_postgres::connect(&settings.source)
        .await
        .map_err(source_err)?;
    let slot = sluice_postgres::find_slot(&client, slot_name)
        .await
        .map_err(source_err)?;
    let has_publication = sluice_postgres::publication_exists(&client, pub_name)
        .await
        .map_err(source_err)?;
    // A slot of the same name in another database of the cluster is another pipeline's.
    if let Some(other) = slot
        .as_ref()
        .and_then(|s| s.database.as_deref())
        .filter(|d| *d != settings.source.dbname)
    {
        return Err(Refused::Failed {
            message: format!(
                "replication slot {} belongs to database {}, not {}",
                quote_ident(slot_name),
                quote_ident(other),
                quote_ident(&settings.source.dbname)
            ),
            hint: Some(
                "It is not this pipeline's slot; check source.slot and source.url.".to_owned(),
            ),
        });
    }
    if let Some(pid) = slot.as_ref().and_then(|s| s.active_pid) {
        return Err(Refused::Failed {
            message: format!(
                "replication slot {} is in use by server process {pid}",
                quote_ident(slot_name)
            ),
            hint: Some(
                "Stop the sync streaming from it (`sluice sync`) first, then run `sluice teardown` again."
                    .to_owned(),
            ),
        });
    }
    let mut what = Vec::new();
    if slot.is_some() {
        what.push(format!("replication slot {}", quote_ident(slot_name)));
    }
    if has_publication {
        what.push(format!("publication {}", quote_ident(pub_name)));
    }
    if what.is_empty() {
        println!(
            "nothing to drop: replication slot {} and publication {} do not exist on {}",
            quote_ident(slot_name),
            quote_ident(pub_name),
            place(&settings.source)
        );
        print_kept(settings);
        return Ok(());
    }
    let question = format!(
        "drop {} on {}?",
        what.join(" and "),
        place(&settings.source)
    );
    if !yes && !confirm(&question).await {
        return Err(Refused::Declined);
    }
    if slot.is_some() {
        sluice_postgres::drop_slot(&client, slot_name)
            .await
            .map_err(source_err)?;
        println!("dropped replication slot {}", quote_ident(slot_name));
    } else {
        println!("replication slot {} does not exist", quote_ident(slot_name));
    }
    if sluice_postgres::drop_publication(&client, pub_name)
        .await
        .map_err(source_err)?
    {
        println!("dropped publication {}", quote_ident(pub_name));
    } else {
        println!("publication {} does not exist", quote_ident(pub_name));
    }
    print_kept(settings);
    Ok(())
}

/// `host/dbname` of the source.
fn place(source: &SourceConfig) -> String {
    format!("{}/{}", source.host, source.dbname)
}

/// Says what teardown leaves alone and how to remove it.
fn print_kept(settings: &Settings) {
    match &settings.log {
        LogKind::Local(options) => println!(
            "kept the change log in \"{}\" (remove the directory if no longer wanted)",
            options.dir.display()
        ),
    }
    let target = &settings.target;
    let schema = target.quote_ident(target.schema());
    println!(
        "kept the target schema {schema} in {} (DROP SCHEMA {schema} CASCADE if no longer wanted)",
        target.location(),
    );
}

/// Asks `question` on the terminal; only `y` or `yes` agree.
async fn confirm(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    // Without the flush the question may not show before the read blocks.
    if std::io::stderr().flush().is_err() {
        return false;
    }
    let answer = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await;
    matches!(
        answer.map(|a| a.map(|l| l.trim().to_ascii_lowercase())),
        Ok(Ok(ref l)) if l == "y" || l == "yes"
    )
}
