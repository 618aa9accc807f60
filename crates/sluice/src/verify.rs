//! `sluice verify`: source and target compared per table, row counts and content digests
//! ([`sluice_core::digest`]), narrowed down to the differing keys.
//!
//! The source is read in one `REPEATABLE READ` snapshot; the target as it is (its checkpoint
//! says up to where it is loaded). Run it against a caught-up pipeline: changes committed at the
//! source after the target's position show up as differences, and the output says when the
//! target is behind.

use serde::Serialize;
use sluice_core::digest::{Inspect, RowDiff, TableDigest, diff_rows, display_key};
use sluice_core::{Lsn, RelationSchema};

use crate::Failure;
use crate::registry::Unreadable;
use crate::settings::Settings;

/// How `verify` compares.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// Key buckets per table: a difference is narrowed down to a bucket, then to keys.
    pub buckets: u32,
    /// Differing keys printed per table and kind, at most.
    pub max_keys: usize,
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct TableReport {
    table: String,
    equal: bool,
    source_rows: u64,
    target_rows: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    /// Set when the loader parked the table: it is not compared, since its changes after the
    /// park are not loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    parked: Option<Parked>,
    differing_buckets: usize,
    missing_in_target: Vec<String>,
    only_in_target: Vec<String>,
    different: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Parked {
    /// The source position the target holds the table at.
    at_lsn: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct Report {
    equal: bool,
    pipeline: String,
    source_lsn: String,
    target_applied_lsn: Option<String>,
    tables: Vec<TableReport>,
}

/// Compares; returns whether source and target are equal.
pub async fn run(settings: &Settings, options: VerifyOptions) -> Result<bool, Failure> {
    let inspector = match settings.target.inspector().await {
        Ok(inspector) => inspector,
        Err(Unreadable::Failed(failure)) => return Err(failure),
        Err(Unreadable::InUse) => {
            return Err(Failure::fatal(
                "target",
                anyhow::anyhow!(
                    "the target {} is in use by another process (a running sluice sync); stop \
                     it or verify while it is not running",
                    settings.target.location()
                ),
            ));
        }
        Err(Unreadable::NotCreated) => {
            return Err(Failure::fatal(
                "target",
                anyhow::anyhow!(
                    "the target {} does not exist yet: run sluice sync first",
                    settings.target.location()
                ),
            ));
        }
    };
    compare(settings, inspector, options).await
}

async fn compare<I: Inspect>(
    settings: &Settings,
    mut target: I,
    options: VerifyOptions,
) -> Result<bool, Failure> {
    let source_err = |e: sluice_postgres::Error| Failure::from_error("source", e);
    let target_err = |e| Failure::from_error("target", e);
    let client = sluice_postgres::connect(&settings.source)
        .await
        .map_err(source_err)?;
    let tables = sluice_postgres::resolve_tables(&client, &settings.capture.tables)
        .await
        .map_err(source_err)?;
    let checkpoint = target
        .checkpoint(&settings.pipeline)
        .await
        .map_err(target_err)?;
    let applied = checkpoint.as_ref().map(|c| c.applied_lsn);
    let parked = checkpoint.map(|c| c.parked).unwrap_or_default();
    // One snapshot for every table.
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(|e| Failure::fatal("source", e.into()))?;
    let txn = &client;
    txn.batch_execute("SET LOCAL DateStyle = 'ISO'; SET LOCAL IntervalStyle = 'postgres'; SET LOCAL extra_float_digits = 1")
        .await
        .map_err(|e| Failure::fatal("source", e.into()))?;
    let source_lsn: String = txn
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .map_err(|e| Failure::fatal("source", e.into()))?
        .get(0);
    let mut reports = Vec::new();
    for table in &tables {
        if let Some(park) = parked.iter().find(|p| p.table == *table) {
            reports.push(parked_report(park));
            continue;
        }
        let relation = sluice_postgres::relation_schema(txn, table)
            .await
            .map_err(source_err)?;
        let source =
            sluice_postgres::digest::digest(txn, &table.schema, &relation, options.buckets, None)
                .await
                .map_err(|e| Failure::from_error("source", e))?;
        let has_table = target.has_table(&relation).await.map_err(target_err)?;
        let target_digest = if has_table {
            target
                .digest(&relation, options.buckets)
                .await
                .map_err(target_err)?
        } else {
            TableDigest::new()
        };
        let differing: Vec<u32> = source
            .keys()
            .chain(target_digest.keys())
            .copied()
            .collect::<std::collections::BTreeSet<u32>>()
            .into_iter()
            .filter(|b| source.get(b) != target_digest.get(b))
            .collect();
        let mut diff = RowDiff::default();
        if !differing.is_empty() {
            let s = sluice_postgres::digest::rows_in(
                txn,
                &table.schema,
                &relation,
                options.buckets,
                &differing,
                None,
            )
            .await
            .map_err(|e| Failure::from_error("source", e))?;
            let t = if has_table {
                target
                    .rows_in(&relation, options.buckets, &differing)
                    .await
                    .map_err(target_err)?
            } else {
                Vec::new()
            };
            diff = diff_rows(&s, &t);
        }
        reports.push(table_report(
            &relation,
            &source,
            &target_digest,
            has_table,
            differing.len(),
            diff,
            options.max_keys,
        ));
    }
    txn.batch_execute("COMMIT")
        .await
        .map_err(|e| Failure::fatal("source", e.into()))?;
    let equal = reports.iter().all(|r| r.equal);
    let report = Report {
        equal,
        pipeline: settings.pipeline.clone(),
        source_lsn,
        target_applied_lsn: applied.map(|l| l.to_string()),
        tables: reports,
    };
    print(&report, options.json, applied);
    Ok(equal)
}

/// A parked table's report: not equal, and not compared.
fn parked_report(park: &sluice_core::ParkedTable) -> TableReport {
    TableReport {
        table: park.table.to_string(),
        equal: false,
        source_rows: 0,
        target_rows: 0,
        note: None,
        parked: Some(Parked {
            at_lsn: park.lsn.to_string(),
            reason: park.reason.clone(),
        }),
        differing_buckets: 0,
        missing_in_target: Vec::new(),
        only_in_target: Vec::new(),
        different: Vec::new(),
    }
}

fn table_report(
    relation: &RelationSchema,
    source: &TableDigest,
    target: &TableDigest,
    has_table: bool,
    differing_buckets: usize,
    diff: RowDiff,
    max_keys: usize,
) -> TableReport {
    let rows = |d: &TableDigest| d.values().map(|b| b.rows).sum::<u64>();
    let keys = |v: Vec<String>| {
        v.iter()
            .take(max_keys)
            .map(|k| display_key(k))
            .collect::<Vec<_>>()
    };
    TableReport {
        table: relation.table.to_string(),
        equal: differing_buckets == 0,
        source_rows: rows(source),
        target_rows: rows(target),
        note: (!has_table).then(|| "the target has no such table".to_owned()),
        parked: None,
        differing_buckets,
        missing_in_target: keys(diff.missing),
        only_in_target: keys(diff.extra),
        different: keys(diff.different),
    }
}

fn print(report: &Report, json: bool, applied: Option<Lsn>) {
    if json {
        match serde_json::to_string_pretty(report) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("error: cannot print the report: {e}"),
        }
        return;
    }
    println!(
        "verify pipeline \"{}\": source at {}, target loaded up to {}",
        report.pipeline,
        report.source_lsn,
        applied.map_or("(no checkpoint)".to_owned(), |l| l.to_string())
    );
    for t in &report.tables {
        if t.equal {
            println!("equal     {}: {} rows", t.table, t.source_rows);
            continue;
        }
        if let Some(park) = &t.parked {
            println!(
                "PARKED    {}: not loaded since {} ({}); `sluice status` gives the resync steps",
                t.table, park.at_lsn, park.reason
            );
            continue;
        }
        println!(
            "DIFFERENT {}: source {} rows, target {} rows; {} key bucket(s) differ{}",
            t.table,
            t.source_rows,
            t.target_rows,
            t.differing_buckets,
            t.note
                .as_ref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        );
        for (label, keys) in [
            ("missing in target", &t.missing_in_target),
            ("only in target", &t.only_in_target),
            ("different content", &t.different),
        ] {
            if !keys.is_empty() {
                println!(
                    "          {label}: {}",
                    keys.iter()
                        .map(|k| format!("({k})"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
        }
    }
    let differing = report.tables.iter().filter(|t| !t.equal).count();
    if differing == 0 {
        println!(
            "source and target are equal ({} tables)",
            report.tables.len()
        );
    } else {
        println!("{differing} of {} tables differ", report.tables.len());
        println!(
            "hint: if the source changed after the target's position, run `sluice sync --until-caught-up` and verify again"
        );
    }
}
