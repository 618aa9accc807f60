//! [`Session`]: what one SQL warehouse must provide for the driver to load it. Transport only:
//! every statement comes from the dialect or the driver.

use std::future::Future;

use sluice_core::DeleteMode;
use sluice_sql::SqlDialect;

use crate::error::Result;
use crate::staging::StageTable;

/// Rows of a query, each value as the engine prints it as text (`None` for NULL).
pub type Rows = Vec<Vec<Option<String>>>;

/// Where and how a warehouse loads: the same two settings for every SQL warehouse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetOptions {
    /// The target schema (dataset) every table and the checkpoint table live in.
    pub schema: String,
    /// What happens to a row deleted at the source.
    pub deletes: DeleteMode,
}

/// One connection (or session) to a SQL warehouse.
///
/// - **Order**: the driver calls one method at a time and awaits it; statements run in the
///   order given, on one connection, so a transaction begun stays open across calls until
///   [`Session::commit`] or [`Session::rollback`].
/// - **Reconnecting**: [`Session::connect`] opens a connection when there is none or the last
///   one was lost, and returns a generation that changes with every new connection; the
///   driver compares generations to know that an open transaction went with a lost one.
/// - **Errors** are the session's own ([`crate::Error::Session`]), classified by its mapping
///   table; a session never retries a statement by itself inside a transaction.
/// - **Cancellation**: none of the methods is cancellation safe; the driver never drops one
///   half-way.
pub trait Session: Send + 'static {
    /// The warehouse's SQL.
    type Dialect: SqlDialect + Send + Sync + 'static;

    /// The target schema and delete mode.
    fn options(&self) -> &TargetOptions;

    /// The dialect, as the open connection allows (call after [`Session::connect`]).
    fn dialect(&self) -> Self::Dialect;

    /// Opens a connection unless one is open; returns its generation.
    fn connect(&mut self) -> impl Future<Output = Result<u64>> + Send;

    /// Runs one statement (or several separated by `;` where the engine allows) that returns
    /// no rows. `context` says what it does, for the error.
    fn execute(
        &mut self,
        statement: String,
        context: String,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The rows of a query, as text.
    fn query(
        &mut self,
        query: String,
        context: String,
    ) -> impl Future<Output = Result<Rows>> + Send;

    /// Loads the rows of `table` into the staging table, which the driver has just created
    /// with the dialect's `create_stage`. A value that cannot be encoded is an
    /// [`crate::Error::Value`] (use [`StageTable::rows`]).
    fn load_stage(
        &mut self,
        table: &StageTable<<Self::Dialect as SqlDialect>::Type>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Begins a transaction.
    fn begin(&mut self) -> impl Future<Output = Result<()>> + Send {
        self.execute("BEGIN".to_owned(), "beginning a transaction".to_owned())
    }

    /// Commits the open transaction.
    fn commit(&mut self) -> impl Future<Output = Result<()>> + Send {
        self.execute("COMMIT".to_owned(), "committing".to_owned())
    }

    /// Rolls back the open transaction, if any; a failure (no transaction, a lost connection,
    /// which ended it anyway) is ignored.
    fn rollback(&mut self) -> impl Future<Output = ()> + Send;

    /// Runs the statements that apply the staged rows of `table` (a MERGE or an append). A
    /// session whose engine does not say which column a refused value is in overrides this to
    /// find out and return an [`crate::Error::Value`] naming it.
    fn merge(
        &mut self,
        statements: Vec<String>,
        table: &StageTable<<Self::Dialect as SqlDialect>::Type>,
    ) -> impl Future<Output = Result<()>> + Send {
        let context = format!("merging into {}", table.target);
        async move {
            for statement in statements {
                self.execute(statement, context.clone()).await?;
            }
            Ok(())
        }
    }
}
