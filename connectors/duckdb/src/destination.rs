//! [`DuckDbDestination`]: the [`Destination`] contract over an embedded DuckDB file.
//!
//! One `apply` is one DuckDB transaction: DDL for new tables and columns, then per table the
//! truncate (if any), staging through the appender, a conversion check and one MERGE (or an
//! INSERT for tables without a key; when a row moved to a new key with unchanged TOAST
//! values, the MERGE reads them from the target's row of the old key), then the checkpoint
//! row. Any error rolls everything back. `stage` does the same without the checkpoint and
//! leaves the transaction open for the next `apply` (or `discard`) to end.
//!
//! DuckDB calls block, so every call runs on a blocking thread (`spawn_blocking`) that takes
//! the connection and gives it back. If that thread dies, the connection is dropped and the
//! next call opens the file again.

use std::collections::HashMap;

use sluice_core::{Batch, Capabilities, Checkpoint, DeleteMode, Destination, Lsn, TableBatch};
use sluice_sql::{CheckpointRow, DuckDb, DuckType, Guard, SqlDialect};

use crate::client::Client;
use crate::config::DuckDbConfig;
use crate::encode;
use crate::error::{Error, Result};

type TablePlan = sluice_sql::TablePlan<DuckType>;

/// Loads batches into an embedded DuckDB file.
pub struct DuckDbDestination {
    config: DuckDbConfig,
    client: Option<Client>,
    pipeline: Option<String>,
    /// A transaction left open by `stage`, on `client`.
    staged: bool,
}

impl DuckDbDestination {
    /// A destination for `config` (validated here; the file is opened by `open`).
    pub fn new(config: DuckDbConfig) -> Result<Self> {
        config.validate()?;
        Ok(DuckDbDestination {
            config,
            client: None,
            pipeline: None,
            staged: false,
        })
    }

    /// The configuration this destination was built with.
    pub fn config(&self) -> &DuckDbConfig {
        &self.config
    }

    /// A second connection to the same database (opening the file first if needed), for
    /// reading the warehouse in the process that loads it: DuckDB locks the file to one
    /// process, but connections of that process see each committed batch.
    pub async fn reader(&mut self) -> Result<duckdb::Connection> {
        self.run(|client| client.try_clone()).await
    }

    /// Runs `f` with the connection on a blocking thread, opening the file first if needed.
    async fn run<T, F>(&mut self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Client) -> Result<T> + Send + 'static,
    {
        let client = self.client.take();
        let path = self.config.path.clone();
        let memory_limit = self.config.memory_limit_bytes;
        let (client, result) = tokio::task::spawn_blocking(move || {
            let client = match client {
                Some(c) => c,
                None => match Client::open(&path, memory_limit) {
                    Ok(c) => c,
                    Err(e) => return (None, Err(e)),
                },
            };
            let result = f(&client);
            (Some(client), result)
        })
        .await
        .map_err(Error::Worker)?;
        if client.is_none() {
            // A lost connection ends its transaction.
            self.staged = false;
        }
        self.client = client;
        result
    }
}

impl Destination for DuckDbDestination {
    type Error = Error;

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            transactional: true,
            max_batch_bytes: None,
        }
    }

    async fn open(&mut self, pipeline: &str) -> Result<Option<Checkpoint>> {
        if pipeline.contains('\0') {
            return Err(Error::Config(
                "pipeline name must not contain a NUL character".into(),
            ));
        }
        let schema = self.config.schema.clone();
        let pipeline_name = pipeline.to_owned();
        let stored = self
            .run(move |c| {
                let d = c.dialect();
                c.transaction(|c| {
                    c.execute(&d.create_schema(&schema), "creating the target schema")?;
                    c.execute(
                        &d.create_checkpoint_table(&schema),
                        "creating the checkpoint table",
                    )
                })?;
                c.query_checkpoint(&d.select_checkpoint(&schema, &pipeline_name))
            })
            .await?;
        self.pipeline = Some(pipeline.to_owned());
        let Some((position, applied_lsn, applied_commit_ts)) = stored else {
            return Ok(None);
        };
        // Stored bit for bit as a signed 64-bit number.
        let checkpoint =
            Checkpoint::from_stored(&position, Lsn(applied_lsn as u64), applied_commit_ts)
                .map_err(|e| Error::Checkpoint {
                    pipeline: pipeline.to_owned(),
                    reason: format!("position is not valid JSON ({e})"),
                })?;
        Ok(Some(checkpoint))
    }

    async fn apply_part(&mut self, batch: Batch) -> Result<()> {
        let schema = self.config.schema.clone();
        let deletes = self.config.deletes;
        let begin = !self.staged;
        let rows = batch.rows();
        self.staged = false;
        self.run(move |c| {
            if begin {
                c.execute("BEGIN TRANSACTION", "beginning a transaction")?;
            }
            let applied = apply_tables(c, &schema, deletes, Guard::after(!begin), &batch);
            if applied.is_err() {
                c.rollback();
            }
            applied
        })
        .await?;
        self.staged = true;
        tracing::debug!(rows, "part of a large transaction staged");
        Ok(())
    }

    async fn discard(&mut self) -> Result<()> {
        if !std::mem::take(&mut self.staged) {
            return Ok(());
        }
        self.run(|c| {
            c.rollback();
            Ok(())
        })
        .await
    }

    async fn ping(&mut self) -> Result<()> {
        self.run(|client| client.execute("SELECT 1", "checking the database"))
            .await
    }

    async fn apply(&mut self, batch: Batch, checkpoint: &Checkpoint) -> Result<()> {
        let pipeline = self.pipeline.clone().ok_or(Error::NotOpen)?;
        let position = checkpoint
            .stored_position()
            .map_err(|e| Error::Checkpoint {
                pipeline: pipeline.clone(),
                reason: format!("position cannot be written as JSON ({e})"),
            })?;
        let lsn_text = checkpoint.applied_lsn.to_string();
        // Statements do not depend on the json extension: any dialect value builds them.
        let upsert = DuckDb { json: false }.upsert_checkpoint(
            &self.config.schema,
            &CheckpointRow {
                pipeline: &pipeline,
                position: &position,
                // Stored bit for bit as a signed 64-bit number.
                applied_lsn: checkpoint.applied_lsn.0 as i64,
                applied_lsn_text: &lsn_text,
                applied_commit_ts: checkpoint.applied_commit_ts,
            },
        );
        let schema = self.config.schema.clone();
        let deletes = self.config.deletes;
        let rows = batch.rows();
        let tables = batch.tables.len();
        let staged = std::mem::take(&mut self.staged);
        self.run(move |c| {
            let work = |c: &Client| {
                apply_tables(c, &schema, deletes, Guard::after(staged), &batch)?;
                for statement in &upsert {
                    c.execute(statement, "storing the checkpoint")?;
                }
                Ok(())
            };
            if staged {
                c.finish_transaction(work(c))
            } else {
                c.transaction(work)
            }
        })
        .await?;
        tracing::debug!(
            tables,
            rows,
            lsn = %checkpoint.applied_lsn,
            "batch applied"
        );
        Ok(())
    }
}

/// Creates or evolves every table of the batch, then applies each table's rows.
fn apply_tables(
    c: &Client,
    schema: &str,
    deletes: DeleteMode,
    guard: Guard,
    batch: &Batch,
) -> Result<()> {
    let d = c.dialect();
    c.execute(&d.create_schema(schema), "creating the target schema")?;
    let mut targets: HashMap<&str, &TableBatch> = HashMap::new();
    let mut plans = Vec::with_capacity(batch.tables.len());
    for table in &batch.tables {
        let name = table.relation.table.name.as_str();
        if let Some(other) = targets.insert(name, table) {
            return Err(Error::Schema {
                table: d.qualified(schema, name),
                reason: format!(
                    "source tables {} and {} both load into it (the target name leaves out \
                     the source schema). Load them into separate pipelines with different \
                     target schemas",
                    other.relation.table, table.relation.table
                ),
                // Two tables at once: parking one would hide which was meant.
                parks: None,
            });
        }
        let existing = c.table_columns(schema, name)?;
        let plan = sluice_sql::plan(
            &d,
            schema,
            &table.relation,
            existing.as_deref(),
            &table.rows,
        )?;
        for statement in &plan.ddl {
            c.execute(
                statement,
                &format!("creating or changing table {}", plan.display),
            )?;
        }
        plans.push(plan);
    }
    for (table, plan) in batch.tables.iter().zip(&plans) {
        apply_table(c, schema, deletes, guard, table, plan)?;
        // A crash here, after a table's rows and before the commit, must leave nothing of the
        // batch behind.
        #[cfg(feature = "failpoints")]
        fail::fail_point!("target-mid-batch", |_| {
            eprintln!("failpoint target-mid-batch: aborting the process");
            std::process::abort()
        });
    }
    Ok(())
}

fn apply_table(
    c: &Client,
    schema: &str,
    deletes: DeleteMode,
    guard: Guard,
    table: &TableBatch,
    plan: &TablePlan,
) -> Result<()> {
    let d = c.dialect();
    // Staged and checked before anything changes the table: DuckDB refuses to commit a
    // column's type change made after rows of its table changed in the same transaction.
    let columns = if table.rows.is_empty() {
        plan.columns.clone()
    } else {
        stage_checked(c, schema, table, plan)?
    };
    if let Some(below) = table.truncate_below.map(|b| guard.truncate_below(b)) {
        c.execute(
            &d.truncate_below(schema, &plan.name, below.0 as i64, deletes),
            &format!("truncating {}", plan.display),
        )?;
    }
    if table.rows.is_empty() {
        return Ok(());
    }
    let statements = if table.keyed() && !only_new_rows(c, schema, table, plan, &columns)? {
        let (moved, unchanged) = (table.any_moved(), table.any_unchanged());
        d.merge(
            schema, &plan.name, &columns, deletes, moved, unchanged, guard,
        )
    } else {
        vec![d.append(schema, &plan.name, &columns)]
    };
    for statement in &statements {
        c.execute(statement, &format!("merging into {}", plan.display))?;
    }
    c.execute(&d.drop_stage(), "dropping the staging table")
}

/// Whether the staged rows are upserts of keys the table does not hold (an initial snapshot,
/// inserts): appending them is what the MERGE would do.
fn only_new_rows(
    c: &Client,
    schema: &str,
    table: &TableBatch,
    plan: &TablePlan,
    columns: &[sluice_sql::TargetColumn<DuckType>],
) -> Result<bool> {
    if !table.only_upserts() {
        return Ok(false);
    }
    let loaded = c.query_bools(
        &c.dialect().any_key_loaded(schema, &plan.name, columns),
        1,
        &format!("looking up the staged keys in {}", plan.display),
    )?;
    Ok(loaded == [false])
}

/// Stages the table's rows and checks that every staged value converts exactly into its
/// column's type. A column with values its type cannot hold (numeric `NaN` in a `DECIMAL`, a
/// timestamp after DuckDB's last one, in a list or not) is changed into text holding
/// PostgreSQL's exact text, its existing values converted
/// ([`sluice_sql::DuckDb::to_text`]), and the rows are staged again for the new types, so
/// nothing fails and nothing is lost. Returns the columns as they are now.
fn stage_checked(
    c: &Client,
    schema: &str,
    table: &TableBatch,
    plan: &TablePlan,
) -> Result<Vec<sluice_sql::TargetColumn<DuckType>>> {
    let d = c.dialect();
    let mut columns = plan.columns.clone();
    let value_error =
        |columns: &[sluice_sql::TargetColumn<DuckType>], i: usize, reason: String| Error::Value {
            table: plan.display.clone(),
            column: columns
                .get(i)
                .map_or_else(String::new, |col| col.name.clone()),
            reason,
        };
    let keys = columns.iter().filter(|col| col.key).count();
    // A second round only after columns became text, which every staged value converts into.
    for round in 0..2 {
        c.execute(
            &d.create_stage(columns.len(), keys),
            "creating the staging table",
        )?;
        c.append_stage(
            columns.len(),
            keys,
            table.rows.iter().map(|row| {
                encode::stage_row(row, &columns).map_err(|(i, e)| value_error(&columns, i, e.0))
            }),
        )?;
        let Some((query, positions)) = d.check_stage(&columns) else {
            break;
        };
        let failed = c.query_bools(
            &query,
            positions.len(),
            &format!("checking the values staged for {}", plan.display),
        )?;
        let failed: Vec<usize> = positions
            .iter()
            .zip(&failed)
            .filter(|&(_, &f)| f)
            .map(|(&i, _)| i)
            .collect();
        if failed.is_empty() {
            break;
        }
        for i in failed {
            let from = columns[i].ty.clone();
            let refuse = || {
                value_error(
                    &columns,
                    i,
                    format!("a value cannot be converted to {from} without loss"),
                )
            };
            if round > 0 {
                return Err(refuse());
            }
            let Some(alter) = d.to_text(schema, &plan.name, &columns[i].name, &from) else {
                return Err(refuse());
            };
            let to = DuckDb::text_type(&from);
            c.execute(
                &alter,
                &format!(
                    "changing column {} of {} to {to}",
                    d.quote_ident(&columns[i].name),
                    plan.display
                ),
            )?;
            tracing::warn!(
                table = %plan.display,
                column = %columns[i].name,
                from = %from,
                to = %to,
                "column changed to text holding PostgreSQL's exact text: some values do not \
                 fit its type"
            );
            columns[i].ty = to;
        }
    }
    Ok(columns)
}
