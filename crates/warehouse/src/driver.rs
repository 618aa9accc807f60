//! [`SqlDestination`]: the [`Destination`] contract over any [`Session`].
//!
//! One `apply` is one target transaction: DDL for new tables and columns (planned by
//! [`sluice_sql::plan`] against the table as it is), then per table the staged rows (checked
//! where the dialect can tell values its types cannot hold, whose columns then become exact
//! text), the truncate (if any), one MERGE guarded by `_sluice_lsn` (or an append when every
//! staged row is an upsert of a key the table does not hold, or the table has no key), then
//! the checkpoint row, then COMMIT. Any error rolls everything back, so the target and its
//! checkpoint are as they were. `apply_part` does the same without the checkpoint and leaves
//! the transaction open for the next `apply` (or `discard`) to end; later parts merge with
//! the `>=` guard, since their rows share the transaction's position.
//!
//! Errors that concern one source table alone (a schema change the target cannot follow, a
//! value a column cannot hold) name it ([`sluice_core::Classify::wedged_table`]), so the
//! loader parks that table and keeps the others loading.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_core::{Batch, Capabilities, Checkpoint, Destination, Lsn};
use sluice_sql::{CheckpointRow, Guard, SqlDialect, TablePlan};

use crate::error::{Error, Result};
use crate::session::{Rows, Session};
use crate::staging::StageTable;

type TypeOf<S> = <<S as Session>::Dialect as SqlDialect>::Type;

/// Loads batches into a SQL warehouse through its session.
pub struct SqlDestination<S: Session> {
    session: S,
    pipeline: Option<String>,
    /// The connection generation on which parts of a large transaction are applied in an
    /// open target transaction (or, where DDL commits, staged for the closing `apply`), if
    /// any.
    parts: Option<u64>,
    /// Where DDL commits ([`SqlDialect::ddl_commits`]): the tables staged by `apply_part`,
    /// applied in order by the closing `apply`.
    staged: Vec<Staged<TypeOf<S>>>,
}

/// One table staged before its transaction: its staging table, the target table's name and
/// whether an earlier part of the same source transaction staged before it (its guard).
struct Staged<T> {
    stage: StageTable<T>,
    name: String,
    number: usize,
    later_part: bool,
}

impl<S: Session> SqlDestination<S> {
    /// A destination over `session` (which connects in `open`).
    pub fn new(session: S) -> Self {
        SqlDestination {
            session,
            pipeline: None,
            parts: None,
            staged: Vec::new(),
        }
    }

    /// The session, for what only this warehouse offers (a reader of the same file, say).
    pub fn session(&self) -> &S {
        &self.session
    }

    /// The session, mutably.
    pub fn session_mut(&mut self) -> &mut S {
        &mut self.session
    }

    /// Connects, and checks that parts applied before are still in the open transaction.
    /// Returns the connection's generation and whether parts are open.
    async fn resume_parts(&mut self) -> Result<(u64, bool)> {
        let generation = self.session.connect().await?;
        match self.parts.take() {
            Some(open) if open != generation => Err(Error::PartsLost),
            Some(open) => {
                self.parts = Some(open);
                Ok((generation, true))
            }
            None => Ok((generation, false)),
        }
    }

    /// Creates the target schema unless it exists; returns its name.
    async fn create_schema(&mut self) -> Result<String> {
        let schema = self.session.options().schema.clone();
        let statement = self.session.dialect().create_schema(&schema);
        self.session
            .execute(statement, "creating the target schema".into())
            .await?;
        Ok(schema)
    }

    /// Creates or evolves every table of the batch, then applies each table's rows.
    async fn apply_tables(&mut self, batch: Batch, guard: Guard) -> Result<()> {
        let (batch, plans) = self.plan_tables(batch).await?;
        for (index, plan) in plans.into_iter().enumerate() {
            self.apply_table(&batch, index, plan, guard).await?;
            // A crash here, after a table's rows and before the commit, must leave nothing of
            // the batch behind.
            #[cfg(feature = "failpoints")]
            fail::fail_point!("target-mid-batch", |_| {
                eprintln!("failpoint target-mid-batch: aborting the process");
                std::process::abort()
            });
        }
        Ok(())
    }

    /// Creates or evolves every table of the batch; returns the batch, shared, and the plans.
    async fn plan_tables(
        &mut self,
        batch: Batch,
    ) -> Result<(Arc<Batch>, Vec<TablePlan<TypeOf<S>>>)> {
        let d = self.session.dialect();
        let schema = self.create_schema().await?;
        let batch = Arc::new(batch);
        let mut targets = HashMap::new();
        let mut plans = Vec::with_capacity(batch.tables.len());
        for table in &batch.tables {
            let name = table.relation.table.name.as_str();
            if let Some(other) = targets.insert(name, &table.relation.table) {
                return Err(Error::Schema {
                    table: d.qualified(&schema, name),
                    reason: format!(
                        "source tables {other} and {} both load into it (the target name \
                         leaves out the source schema). Load them into separate pipelines \
                         with different target schemas",
                        table.relation.table
                    ),
                    // Two tables at once: parking one would hide which was meant.
                    parks: None,
                });
            }
            let existing = self.table_columns(&schema, name).await?;
            let plan = sluice_sql::plan(
                &d,
                &schema,
                &table.relation,
                existing.as_deref(),
                &table.rows,
            )?;
            for statement in &plan.ddl {
                self.session
                    .execute(
                        statement.clone(),
                        format!("creating or changing table {}", plan.display),
                    )
                    .await?;
            }
            plans.push(plan);
        }
        Ok((batch, plans))
    }

    /// Where DDL commits: creates or evolves the batch's tables and stages (and checks) each
    /// table's rows into a staging table of its own, all before any transaction; the tables
    /// are kept in `self.staged` for [`SqlDestination::apply_staged`].
    async fn stage_tables(&mut self, batch: Batch, later_part: bool) -> Result<()> {
        let (batch, plans) = self.plan_tables(batch).await?;
        for (index, plan) in plans.into_iter().enumerate() {
            let number = self.staged.len();
            let d = self.session.dialect().with_stage(number);
            let mut stage = StageTable {
                batch: Arc::clone(&batch),
                index,
                columns: plan.columns,
                target: plan.display,
                stage: d.stage(),
            };
            if !stage.table().rows.is_empty() {
                self.stage_checked(&d, &mut stage).await?;
            }
            self.staged.push(Staged {
                stage,
                name: plan.name,
                number,
                later_part,
            });
        }
        Ok(())
    }

    /// Where DDL commits: applies every staged table in order inside the open transaction.
    async fn apply_staged(&mut self) -> Result<()> {
        let staged = std::mem::take(&mut self.staged);
        let result = async {
            for table in &staged {
                let d = self.session.dialect().with_stage(table.number);
                self.merge_table(
                    &d,
                    &table.stage,
                    &table.name,
                    Guard::after(table.later_part),
                )
                .await?;
                #[cfg(feature = "failpoints")]
                fail::fail_point!("target-mid-batch", |_| {
                    eprintln!("failpoint target-mid-batch: aborting the process");
                    std::process::abort()
                });
            }
            Ok(())
        }
        .await;
        self.staged = staged;
        result
    }

    /// Drops the staging tables of `self.staged` (after the commit, or to discard them). A
    /// failure is only logged: the tables are temporary and end with the session anyway.
    async fn drop_staged(&mut self) {
        for table in std::mem::take(&mut self.staged) {
            let d = self.session.dialect().with_stage(table.number);
            if let Err(e) = self
                .session
                .execute(d.drop_stage(), "dropping a staging table".into())
                .await
            {
                tracing::debug!(error = %e, "a staging table was left to end with the session");
            }
        }
    }

    /// `(name, type)` of a table's columns, `None` when it does not exist.
    async fn table_columns(
        &mut self,
        schema: &str,
        table: &str,
    ) -> Result<Option<Vec<(String, String)>>> {
        let d = self.session.dialect();
        let rows = self
            .session
            .query(
                d.table_columns(schema, table),
                format!("reading the columns of {}", d.qualified(schema, table)),
            )
            .await?;
        let columns: Vec<(String, String)> = rows
            .into_iter()
            .filter_map(|r| match r.as_slice() {
                [Some(name), Some(ty), ..] => Some((d.column_from_catalog(name), ty.clone())),
                _ => None,
            })
            .collect();
        Ok((!columns.is_empty()).then_some(columns))
    }

    async fn apply_table(
        &mut self,
        batch: &Arc<Batch>,
        index: usize,
        plan: TablePlan<TypeOf<S>>,
        guard: Guard,
    ) -> Result<()> {
        let d = self.session.dialect();
        let table = &batch.tables[index];
        let mut stage = StageTable {
            batch: Arc::clone(batch),
            index,
            columns: plan.columns,
            target: plan.display,
            stage: d.stage(),
        };
        // Staged and checked before anything changes the table: some engines (DuckDB) refuse
        // to commit a column's type change made after rows of its table changed in the same
        // transaction.
        if !table.rows.is_empty() {
            self.stage_checked(&d, &mut stage).await?;
        }
        self.merge_table(&d, &stage, &plan.name, guard).await?;
        if table.rows.is_empty() {
            return Ok(());
        }
        self.session
            .execute(d.drop_stage(), "dropping the staging table".into())
            .await
    }

    /// Applies a staged table: its truncate, then its rows (a MERGE, or an append of keys
    /// the table does not hold).
    async fn merge_table(
        &mut self,
        d: &S::Dialect,
        stage: &StageTable<TypeOf<S>>,
        name: &str,
        guard: Guard,
    ) -> Result<()> {
        let options = self.session.options().clone();
        let table = stage.table();
        if let Some(below) = table.truncate_below.map(|b| guard.truncate_below(b)) {
            self.session
                .execute(
                    d.truncate_below(&options.schema, name, below.0 as i64, options.deletes),
                    format!("truncating {}", stage.target),
                )
                .await?;
        }
        if table.rows.is_empty() {
            return Ok(());
        }
        let statements = if table.keyed() && !self.only_new_rows(d, stage, name).await? {
            d.merge(
                &options.schema,
                name,
                &stage.columns,
                options.deletes,
                table.any_moved(),
                table.any_unchanged(),
                guard,
            )
        } else {
            vec![d.append(&options.schema, name, &stage.columns)]
        };
        self.session.merge(statements, stage).await
    }

    /// Stages the table's rows and, where the dialect can check them, that every staged value
    /// converts exactly into its column's type. A column with values its type cannot hold is
    /// changed into the dialect's exact-text type (existing values converted) and the rows are
    /// staged again, so nothing fails and nothing is lost; where the dialect has no such
    /// fallback the value parks the table.
    async fn stage_checked(
        &mut self,
        d: &S::Dialect,
        stage: &mut StageTable<TypeOf<S>>,
    ) -> Result<()> {
        let d = d.clone();
        let schema = self.session.options().schema.clone();
        let name = stage.table().relation.table.name.clone();
        // A second round only after columns became text, which every staged value converts
        // into.
        for round in 0..2 {
            self.session
                .execute(
                    d.create_stage(stage.columns.len(), stage.keys()),
                    "creating the staging table".into(),
                )
                .await?;
            self.session.load_stage(stage).await?;
            let Some((query, positions)) = d.check_stage(&stage.columns) else {
                return Ok(());
            };
            let rows = self
                .session
                .query(
                    query,
                    format!("checking the values staged for {}", stage.target),
                )
                .await?;
            let failed: Vec<usize> = positions
                .iter()
                .zip(first_row(&rows))
                .filter(|&(_, f)| f.as_deref().is_some_and(truthy))
                .map(|(&i, _)| i)
                .collect();
            if failed.is_empty() {
                return Ok(());
            }
            for i in failed {
                let from = stage.columns[i].ty.clone();
                let refused = format!("a value cannot be converted to {from} without loss");
                let alter = (round == 0)
                    .then(|| d.to_text(&schema, &name, &stage.columns[i].name, &from))
                    .flatten();
                let Some((alter, to)) = alter else {
                    return Err(stage.value_error(i, None, refused));
                };
                self.session
                    .execute(
                        alter,
                        format!(
                            "changing column {} of {} to {to}",
                            d.quote_ident(&stage.columns[i].name),
                            stage.target
                        ),
                    )
                    .await?;
                tracing::warn!(
                    table = %stage.target,
                    column = %stage.columns[i].name,
                    from = %from,
                    to = %to,
                    "column changed to text holding PostgreSQL's exact text: some values do \
                     not fit its type"
                );
                stage.columns[i].ty = to;
            }
        }
        Ok(())
    }

    /// Whether the staged rows are upserts of keys the table does not hold (an initial
    /// snapshot, inserts): appending them is what the MERGE would do, without joining the
    /// table.
    async fn only_new_rows(
        &mut self,
        d: &S::Dialect,
        stage: &StageTable<TypeOf<S>>,
        name: &str,
    ) -> Result<bool> {
        if !stage.table().only_upserts() {
            return Ok(false);
        }
        let schema = self.session.options().schema.clone();
        let rows = self
            .session
            .query(
                d.any_key_loaded(&schema, name, &stage.columns),
                format!("looking up the staged keys in {}", stage.target),
            )
            .await?;
        Ok(first_row(&rows)
            .first()
            .and_then(|v| v.as_deref())
            .is_some_and(|v| !truthy(v)))
    }

    /// `apply` where DDL commits: stages the batch's tables after those staged by earlier
    /// parts, then applies them all and stores the checkpoint in one transaction.
    async fn apply_deferred(&mut self, batch: Batch, open: bool, store: Vec<String>) -> Result<()> {
        let result = async {
            self.stage_tables(batch, open).await?;
            self.session.begin().await?;
            self.apply_staged().await?;
            self.store_and_commit(store).await
        }
        .await;
        if result.is_err() {
            self.session.rollback().await;
        }
        self.drop_staged().await;
        result
    }

    /// Runs the checkpoint statements `store`, then COMMIT.
    async fn store_and_commit(&mut self, store: Vec<String>) -> Result<()> {
        for statement in store {
            self.session
                .execute(statement, "storing the checkpoint".into())
                .await?;
        }
        self.session.commit().await
    }

    /// The statements storing `checkpoint` for the open pipeline.
    fn checkpoint_statements(&self, checkpoint: &Checkpoint) -> Result<Vec<String>> {
        let pipeline = self.pipeline.as_deref().ok_or(Error::NotOpen)?;
        let position = checkpoint
            .stored_position()
            .map_err(|e| Error::Checkpoint {
                pipeline: pipeline.to_owned(),
                reason: format!("position cannot be written as JSON ({e})"),
            })?;
        let lsn_text = checkpoint.applied_lsn.to_string();
        Ok(self.session.dialect().upsert_checkpoint(
            &self.session.options().schema,
            &CheckpointRow {
                pipeline,
                position: &position,
                // Stored bit for bit as a signed 64-bit number.
                applied_lsn: checkpoint.applied_lsn.0 as i64,
                applied_lsn_text: &lsn_text,
                applied_commit_ts: checkpoint.applied_commit_ts,
            },
        ))
    }
}

/// The first row of a query's result (empty when there is none).
fn first_row(rows: &Rows) -> &[Option<String>] {
    rows.first().map_or(&[], Vec::as_slice)
}

/// Whether an engine's text of a boolean is true.
fn truthy(text: &str) -> bool {
    matches!(text, "t" | "true" | "TRUE" | "True" | "1")
}

/// A checkpoint read back from the text of its three columns.
fn read_checkpoint(pipeline: &str, row: &[Option<String>]) -> Result<Checkpoint> {
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
    Checkpoint::from_stored(&position, Lsn(applied_lsn as u64), applied_commit_ts)
        .map_err(|e| unreadable(format!("position is not valid JSON ({e})")))
}

impl<S: Session> Destination for SqlDestination<S> {
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
        self.session.connect().await?;
        let d = self.session.dialect();
        let schema = self.create_schema().await?;
        self.session
            .execute(
                d.create_checkpoint_table(&schema),
                "creating the checkpoint table".into(),
            )
            .await?;
        let rows = self
            .session
            .query(
                d.select_checkpoint(&schema, pipeline),
                "reading the checkpoint".into(),
            )
            .await?;
        self.pipeline = Some(pipeline.to_owned());
        rows.first()
            .map(|row| read_checkpoint(pipeline, row))
            .transpose()
    }

    async fn apply_part(&mut self, batch: Batch) -> Result<()> {
        let (generation, open) = self.resume_parts().await?;
        if self.session.dialect().ddl_commits() {
            if let Err(e) = self.stage_tables(batch, open).await {
                self.drop_staged().await;
                return Err(e);
            }
            self.parts = Some(generation);
            return Ok(());
        }
        if !open {
            self.session.begin().await?;
        }
        let rows = batch.rows();
        if let Err(e) = self.apply_tables(batch, Guard::after(open)).await {
            self.session.rollback().await;
            return Err(e);
        }
        self.parts = Some(generation);
        tracing::debug!(rows, "part of a large transaction applied");
        Ok(())
    }

    async fn discard(&mut self) -> Result<()> {
        if self.parts.take().is_some() {
            if self.session.dialect().ddl_commits() {
                self.drop_staged().await;
            } else {
                self.session.rollback().await;
            }
        }
        Ok(())
    }

    async fn ping(&mut self) -> Result<()> {
        self.session.connect().await?;
        self.session
            .execute("SELECT 1".into(), "checking the target".into())
            .await
    }

    async fn apply(&mut self, batch: Batch, checkpoint: &Checkpoint) -> Result<()> {
        let store = self.checkpoint_statements(checkpoint)?;
        let (_, open) = self.resume_parts().await?;
        self.parts = None;
        let (tables, rows) = (batch.tables.len(), batch.rows());
        if self.session.dialect().ddl_commits() {
            self.apply_deferred(batch, open, store).await?;
            tracing::debug!(tables, rows, lsn = %checkpoint.applied_lsn, "batch applied");
            return Ok(());
        }
        if !open {
            self.session.begin().await?;
        }
        let result = async {
            self.apply_tables(batch, Guard::after(open)).await?;
            self.store_and_commit(store).await
        }
        .await;
        if let Err(e) = result {
            // A failed COMMIT has already ended the transaction; a lost connection has too.
            self.session.rollback().await;
            return Err(e);
        }
        tracing::debug!(tables, rows, lsn = %checkpoint.applied_lsn, "batch applied");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_reads_back_from_its_text() {
        let row = [
            Some(r#"{"partitions":{"0":"42"}}"#.to_owned()),
            Some("7".to_owned()),
            Some("9".to_owned()),
        ];
        let checkpoint = read_checkpoint("p", &row).expect("readable");
        assert_eq!(checkpoint.applied_lsn, Lsn(7));
        assert_eq!(checkpoint.applied_commit_ts, 9);
        assert_eq!(
            checkpoint.position,
            sluice_core::LogPosition::single("0", 42)
        );
    }

    #[test]
    fn an_unreadable_checkpoint_names_the_pipeline_and_column() {
        let row = [Some("{}".to_owned()), None, Some("9".to_owned())];
        let e = read_checkpoint("main", &row).expect_err("NULL lsn");
        assert_eq!(
            e.to_string(),
            "checkpoint of pipeline \"main\" in the target is unreadable: column 2 is NULL"
        );
        let row = [
            Some("x".to_owned()),
            Some("1".to_owned()),
            Some("2".to_owned()),
        ];
        assert!(
            read_checkpoint("main", &row).is_err(),
            "position is not JSON"
        );
    }

    #[test]
    fn engines_print_true_in_several_ways() {
        for t in ["t", "true", "TRUE", "1"] {
            assert!(truthy(t), "{t}");
        }
        for f in ["f", "false", "0", ""] {
            assert!(!truthy(f), "{f}");
        }
    }
}
