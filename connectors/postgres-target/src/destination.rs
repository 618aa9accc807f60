//! [`PostgresDestination`]: the [`Destination`] contract over a PostgreSQL database.
//!
//! One `apply` is one transaction: DDL for new tables and columns, then per table the
//! truncate (if any), staging with binary COPY into a temporary table, one MERGE (or an INSERT
//! for tables without a key), then the checkpoint row, then COMMIT. Any error rolls everything
//! back, so the target and its checkpoint are as they were. `stage` does the same without the
//! checkpoint and leaves the transaction open for the next `apply` (or `discard`) to end.
//!
//! A value PostgreSQL refuses fails the MERGE with a data exception (SQLSTATE class 22) that
//! does not say which column. The MERGE runs under a savepoint; after such a failure each
//! column's conversion is tried alone (an INSERT into a one-column temporary table of the
//! column's type, so the same assignment rules apply) to name the column in the error.

use std::collections::HashMap;

use bytes::BytesMut;
use sluice_core::{Batch, Capabilities, Checkpoint, DeleteMode, Destination, Lsn, TableBatch};
use sluice_sql::{CheckpointRow, Guard, PgTarget, Postgres, SqlDialect as _};

use crate::client::Client;
use crate::config::PostgresTargetConfig;
use crate::encode;
use crate::error::{Error, Result};

type TablePlan = sluice_sql::TablePlan<PgTarget>;

/// The dialect of every statement.
const PG: Postgres = Postgres;

/// COPY data is sent in chunks of about this size: large enough to keep the connection busy,
/// small enough to bound what is buffered for one table.
const COPY_CHUNK_BYTES: usize = 1 << 20;

/// Savepoint around each MERGE, so a data error can be investigated in the same transaction.
const SAVEPOINT: &str = "sluice_merge";

/// One-column table a suspect column's values are inserted into.
const PROBE: &str = "_sluice_probe";

/// Loads batches into a PostgreSQL database.
pub struct PostgresDestination {
    config: PostgresTargetConfig,
    client: Option<Client>,
    pipeline: Option<String>,
    /// A transaction left open by `stage`, on `client`.
    staged: bool,
}

impl PostgresDestination {
    /// A destination for `config` (validated here; the connection opens in `open`).
    pub fn new(config: PostgresTargetConfig) -> Result<Self> {
        config.validate()?;
        Ok(PostgresDestination {
            config,
            client: None,
            pipeline: None,
            staged: false,
        })
    }

    /// The configuration this destination was built with.
    pub fn config(&self) -> &PostgresTargetConfig {
        &self.config
    }

    /// The open connection, connecting first when there is none or it was lost.
    async fn client(&mut self) -> Result<&Client> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            // A lost connection ended its transaction.
            self.staged = false;
            let connection = self.config.connection()?;
            self.client = Some(Client::connect(&connection).await?);
        }
        self.client
            .as_ref()
            .ok_or_else(|| Error::Config("no connection".into()))
    }
}

impl Destination for PostgresDestination {
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
        let c = self.client().await?;
        c.execute(&PG.create_schema(&schema), "creating the target schema")
            .await?;
        c.execute(
            &PG.create_checkpoint_table(&schema),
            "creating the checkpoint table",
        )
        .await?;
        let rows = c
            .query_text(
                &PG.select_checkpoint(&schema, pipeline),
                "reading the checkpoint",
            )
            .await?;
        self.pipeline = Some(pipeline.to_owned());
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let unreadable = |reason: String| Error::Checkpoint {
            pipeline: pipeline.to_owned(),
            reason,
        };
        let field = |i: usize| {
            row.get(i)
                .cloned()
                .flatten()
                .ok_or_else(|| unreadable(format!("column {} is NULL", i + 1)))
        };
        let position = field(0)?;
        let applied_lsn: i64 = field(1)?
            .parse()
            .map_err(|e| unreadable(format!("applied_lsn is not a number ({e})")))?;
        let applied_commit_ts: i64 = field(2)?
            .parse()
            .map_err(|e| unreadable(format!("applied_commit_ts is not a number ({e})")))?;
        // Stored bit for bit as a signed 64-bit number.
        let checkpoint =
            Checkpoint::from_stored(&position, Lsn(applied_lsn as u64), applied_commit_ts)
                .map_err(|e| unreadable(format!("position is not valid JSON ({e})")))?;
        Ok(Some(checkpoint))
    }

    async fn apply_part(&mut self, batch: Batch) -> Result<()> {
        let schema = self.config.schema.clone();
        let deletes = self.config.deletes;
        let staged = self.staged;
        self.staged = false;
        let c = self.client().await?;
        if !staged {
            c.execute("BEGIN", "beginning a transaction").await?;
        }
        if let Err(e) = apply_tables(c, &schema, deletes, Guard::after(staged), &batch).await {
            let _ = c.execute("ROLLBACK", "rolling back").await;
            return Err(e);
        }
        self.staged = true;
        tracing::debug!(rows = batch.rows(), "part of a large transaction staged");
        Ok(())
    }

    async fn discard(&mut self) -> Result<()> {
        if !std::mem::take(&mut self.staged) {
            return Ok(());
        }
        match &self.client {
            Some(c) if !c.is_closed() => c.execute("ROLLBACK", "rolling back").await,
            _ => Ok(()),
        }
    }

    async fn ping(&mut self) -> Result<()> {
        self.client()
            .await?
            .execute("SELECT 1", "checking the target")
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
        let schema = self.config.schema.clone();
        let deletes = self.config.deletes;
        let upsert = PG.upsert_checkpoint(
            &schema,
            &CheckpointRow {
                pipeline: &pipeline,
                position: &position,
                applied_lsn: checkpoint.applied_lsn.0 as i64,
                applied_lsn_text: &lsn_text,
                applied_commit_ts: checkpoint.applied_commit_ts,
            },
        );
        let staged = self.staged;
        self.staged = false;
        let c = self.client().await?;
        if !staged {
            c.execute("BEGIN", "beginning a transaction").await?;
        }
        let result = async {
            apply_tables(c, &schema, deletes, Guard::after(staged), &batch).await?;
            for statement in &upsert {
                c.execute(statement, "storing the checkpoint").await?;
            }
            c.execute("COMMIT", "committing").await
        }
        .await;
        if let Err(e) = result {
            // A failed COMMIT has already ended the transaction; a lost connection has too.
            let _ = c.execute("ROLLBACK", "rolling back").await;
            return Err(e);
        }
        tracing::debug!(
            tables = batch.tables.len(),
            rows = batch.rows(),
            lsn = %checkpoint.applied_lsn,
            "batch applied"
        );
        Ok(())
    }
}

/// Creates or evolves every table of the batch, then applies each table's rows.
async fn apply_tables(
    c: &Client,
    schema: &str,
    deletes: DeleteMode,
    guard: Guard,
    batch: &Batch,
) -> Result<()> {
    c.execute(&PG.create_schema(schema), "creating the target schema")
        .await?;
    let mut targets: HashMap<&str, &TableBatch> = HashMap::new();
    let mut plans = Vec::with_capacity(batch.tables.len());
    for table in &batch.tables {
        let name = table.relation.table.name.as_str();
        if let Some(other) = targets.insert(name, table) {
            return Err(Error::Schema {
                table: PG.qualified(schema, name),
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
        let existing = table_columns(c, schema, name).await?;
        let plan = sluice_sql::plan(
            &PG,
            schema,
            &table.relation,
            existing.as_deref(),
            &table.rows,
        )?;
        for statement in &plan.ddl {
            c.execute(
                statement,
                &format!("creating or changing table {}", plan.display),
            )
            .await?;
        }
        plans.push(plan);
    }
    for (table, plan) in batch.tables.iter().zip(&plans) {
        apply_table(c, schema, deletes, guard, table, plan).await?;
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

/// `(name, type)` of a table's columns, `None` when it does not exist.
async fn table_columns(
    c: &Client,
    schema: &str,
    table: &str,
) -> Result<Option<Vec<(String, String)>>> {
    let rows = c
        .query_text(
            &PG.table_columns(schema, table),
            &format!("reading the columns of {}", PG.qualified(schema, table)),
        )
        .await?;
    let columns: Vec<(String, String)> = rows
        .into_iter()
        .filter_map(|r| match r.as_slice() {
            [Some(name), Some(ty)] => Some((name.clone(), ty.clone())),
            _ => None,
        })
        .collect();
    Ok((!columns.is_empty()).then_some(columns))
}

async fn apply_table(
    c: &Client,
    schema: &str,
    deletes: DeleteMode,
    guard: Guard,
    table: &TableBatch,
    plan: &TablePlan,
) -> Result<()> {
    if let Some(below) = table.truncate_below.map(|b| guard.truncate_below(b)) {
        c.execute(
            &PG.truncate_below(schema, &plan.name, below.0 as i64, deletes),
            &format!("truncating {}", plan.display),
        )
        .await?;
    }
    if table.rows.is_empty() {
        return Ok(());
    }
    let value_error = |i: usize, reason: String| Error::Value {
        table: plan.display.clone(),
        column: plan
            .columns
            .get(i)
            .map_or_else(String::new, |col| col.name.clone()),
        reason,
    };
    let mut chunks = Vec::new();
    let mut buf = BytesMut::with_capacity(COPY_CHUNK_BYTES.min(64 * 1024));
    buf.extend_from_slice(encode::HEADER);
    for row in &table.rows {
        encode::stage_row(row, &plan.columns, &mut buf).map_err(|(i, e)| value_error(i, e))?;
        if buf.len() >= COPY_CHUNK_BYTES {
            chunks.push(buf.split().freeze());
        }
    }
    buf.extend_from_slice(encode::TRAILER);
    chunks.push(buf.freeze());

    let keys = plan.columns.iter().filter(|col| col.key).count();
    c.execute(
        &PG.create_stage(plan.columns.len(), keys),
        "creating the staging table",
    )
    .await?;
    c.copy_in(
        &format!("COPY {} FROM STDIN (FORMAT binary)", PG.stage()),
        chunks,
        &format!("staging rows for {}", plan.display),
    )
    .await?;
    c.execute(&format!("SAVEPOINT {SAVEPOINT}"), "setting a savepoint")
        .await?;
    if let Err(e) = merge_staged(c, schema, deletes, guard, table, plan).await {
        if e.sqlstate().is_some_and(|s| s.starts_with("22")) {
            c.execute(
                &format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}"),
                "rolling back to the savepoint",
            )
            .await?;
            if let Some(found) = find_bad_column(c, plan).await? {
                return Err(found);
            }
        }
        return Err(e);
    }
    c.execute(&PG.drop_stage(), "dropping the staging table")
        .await
}

/// Applies the staged rows: one MERGE, or an append when every row is new.
async fn merge_staged(
    c: &Client,
    schema: &str,
    deletes: DeleteMode,
    guard: Guard,
    table: &TableBatch,
    plan: &TablePlan,
) -> Result<()> {
    let statements = if table.keyed() && !only_new_rows(c, schema, table, plan).await? {
        let (moved, unchanged) = (table.any_moved(), table.any_unchanged());
        PG.merge(
            schema,
            &plan.name,
            &plan.columns,
            deletes,
            moved,
            unchanged,
            guard,
        )
    } else {
        vec![PG.append(schema, &plan.name, &plan.columns)]
    };
    for statement in &statements {
        c.execute(statement, &format!("merging into {}", plan.display))
            .await?;
    }
    Ok(())
}

/// Whether the staged rows are upserts of keys the table does not hold (an initial snapshot,
/// inserts): appending them is what the MERGE would do, without joining the table.
async fn only_new_rows(
    c: &Client,
    schema: &str,
    table: &TableBatch,
    plan: &TablePlan,
) -> Result<bool> {
    if !table.only_upserts() {
        return Ok(false);
    }
    let loaded = c
        .query_text(
            &PG.any_key_loaded(schema, &plan.name, &plan.columns),
            &format!("looking up the staged keys in {}", plan.display),
        )
        .await?;
    Ok(loaded == [vec![Some("f".to_owned())]])
}

/// The first column whose staged values PostgreSQL refuses, as a [`Error::Value`]; `None`
/// when each converts alone. Leaves the transaction usable.
async fn find_bad_column(c: &Client, plan: &TablePlan) -> Result<Option<Error>> {
    let probe = PG.quote_ident(PROBE);
    for (i, column) in plan.columns.iter().enumerate() {
        if column.ty == PgTarget::Text {
            continue;
        }
        c.execute("SAVEPOINT sluice_probe", "setting a savepoint")
            .await?;
        let tried = c
            .execute(
                &format!(
                    "CREATE TEMP TABLE {probe} (v {}) ON COMMIT DROP; INSERT INTO {probe} \
                     SELECT {} FROM {}",
                    column.ty,
                    PG.convert(&format!("c{i}"), &column.ty),
                    PG.stage()
                ),
                "checking a column's values",
            )
            .await;
        c.execute(
            "ROLLBACK TO SAVEPOINT sluice_probe",
            "rolling back to the savepoint",
        )
        .await?;
        if let Err(e) = tried {
            let state = e.sqlstate().unwrap_or_default().to_owned();
            if state.starts_with("22") {
                return Ok(Some(Error::Value {
                    table: plan.display.clone(),
                    column: column.name.clone(),
                    reason: format!("a value is not a valid {} (SQLSTATE {state})", column.ty),
                }));
            }
        }
    }
    Ok(None)
}
