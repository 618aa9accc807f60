//! The one place that knows every connector: `[log] kind` and `[target] kind` are matched here
//! to concrete connectors, each behind its Cargo feature.

use std::path::PathBuf;

use serde::Deserialize;
use sluice_config::{ByteSize, ConfigError, Problem, Section};

use crate::Failure;

/// Default change log directory.
pub const DEFAULT_LOG_PATH: &str = "./sluice-data/log";

/// A configured change log.
#[derive(Debug, Clone)]
pub enum LogKind {
    Local(sluice_log_local::LogOptions),
}

/// A configured destination.
#[derive(Debug, Clone)]
pub enum TargetKind {
    #[cfg(feature = "duckdb")]
    DuckDb(sluice_duckdb::DuckDbConfig),
    /// `Debug` shows the URL without its password.
    #[cfg(feature = "postgres")]
    Postgres(sluice_postgres_target::PostgresTargetConfig),
    /// `Debug` shows neither the password nor the key's passphrase.
    #[cfg(feature = "snowflake")]
    Snowflake(sluice_snowflake::SnowflakeConfig),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalLogSection {
    #[serde(default = "default_log_path")]
    path: PathBuf,
    segment_bytes: Option<ByteSize>,
}

fn default_log_path() -> PathBuf {
    PathBuf::from(DEFAULT_LOG_PATH)
}

/// Parses `[log]` for its kind.
pub fn log(section: &Section) -> Result<LogKind, ConfigError> {
    match section.kind.as_str() {
        "local" => {
            let s: LocalLogSection = section.parse()?;
            let mut options = sluice_log_local::LogOptions::new(s.path);
            if let Some(bytes) = s.segment_bytes {
                options = options.segment_bytes(bytes.0);
            }
            options
                .validate()
                .map_err(|e| invalid("log.segment_bytes", e.to_string()))?;
            Ok(LogKind::Local(options))
        }
        other => Err(invalid(
            "log.kind",
            format!("unknown change log kind {other:?}; expected \"local\""),
        )),
    }
}

/// Parses `[target]` for its kind.
pub fn target(section: &Section) -> Result<TargetKind, ConfigError> {
    match section.kind.as_str() {
        #[cfg(feature = "duckdb")]
        "duckdb" => {
            let c: sluice_duckdb::DuckDbConfig = section.parse()?;
            c.validate().map_err(|e| invalid("target", e.to_string()))?;
            Ok(TargetKind::DuckDb(c))
        }
        #[cfg(feature = "postgres")]
        "postgres" => {
            let c: sluice_postgres_target::PostgresTargetConfig = section.parse()?;
            // Messages name the field and never hold the URL's password.
            c.validate().map_err(|e| invalid("target", e.to_string()))?;
            Ok(TargetKind::Postgres(c))
        }
        #[cfg(feature = "snowflake")]
        "snowflake" => {
            let c: sluice_snowflake::SnowflakeConfig = section.parse()?;
            c.validate().map_err(|e| invalid("target", e.to_string()))?;
            Ok(TargetKind::Snowflake(c))
        }
        other => Err(invalid(
            "target.kind",
            format!(
                "unknown target kind {other:?}; this build supports: {}",
                SUPPORTED_TARGETS.join(", ")
            ),
        )),
    }
}

/// Target kinds compiled into this build.
pub const SUPPORTED_TARGETS: &[&str] = &[
    #[cfg(feature = "duckdb")]
    "duckdb",
    #[cfg(feature = "postgres")]
    "postgres",
    #[cfg(feature = "snowflake")]
    "snowflake",
];

fn invalid(path: &str, message: String) -> ConfigError {
    ConfigError::Invalid(vec![Problem::new(path, message)])
}

/// Why a target cannot be read right now (`sluice status`, `sluice verify`).
pub enum Unreadable {
    /// Nothing was loaded yet: the database does not exist.
    NotCreated,
    /// Another process holds it (a running `sluice sync` on a DuckDB file).
    InUse,
    /// It failed; the failure says why.
    Failed(Failure),
}

/// What every command asks of the configured target; the only place that knows each one.
impl TargetKind {
    /// The kind's name, as written in `[target] kind`.
    pub fn name(&self) -> &'static str {
        match self {
            #[cfg(feature = "duckdb")]
            TargetKind::DuckDb(_) => "duckdb",
            #[cfg(feature = "postgres")]
            TargetKind::Postgres(_) => "postgres",
            #[cfg(feature = "snowflake")]
            TargetKind::Snowflake(_) => "snowflake",
        }
    }

    /// The target schema every table is loaded into.
    pub fn schema(&self) -> &str {
        match self {
            #[cfg(feature = "duckdb")]
            TargetKind::DuckDb(config) => &config.schema,
            #[cfg(feature = "postgres")]
            TargetKind::Postgres(config) => &config.schema,
            #[cfg(feature = "snowflake")]
            TargetKind::Snowflake(config) => &config.schema,
        }
    }

    /// Where the target is, for people: a path, or a URL without its password.
    pub fn location(&self) -> String {
        match self {
            #[cfg(feature = "duckdb")]
            TargetKind::DuckDb(config) => format!("\"{}\"", config.path.display()),
            #[cfg(feature = "postgres")]
            TargetKind::Postgres(config) => config.redacted_url(),
            #[cfg(feature = "snowflake")]
            TargetKind::Snowflake(config) => format!(
                "account {}, database {}{}",
                config.account,
                config.database,
                config
                    .endpoint
                    .as_ref()
                    .map(|e| format!(" at {e}"))
                    .unwrap_or_default()
            ),
        }
    }

    /// An identifier quoted for the target's SQL.
    pub fn quote_ident(&self, ident: &str) -> String {
        (self.quote_fn())(ident)
    }

    /// The target dialect's identifier quoting.
    pub fn quote_fn(&self) -> fn(&str) -> String {
        use sluice_sql::SqlDialect as _;
        match self {
            #[cfg(feature = "duckdb")]
            TargetKind::DuckDb(_) => |ident| sluice_sql::DuckDb { json: true }.quote_ident(ident),
            #[cfg(feature = "postgres")]
            TargetKind::Postgres(_) => |ident| sluice_sql::Postgres.quote_ident(ident),
            #[cfg(feature = "snowflake")]
            TargetKind::Snowflake(_) => |ident| sluice_sql::Snowflake::default().quote_ident(ident),
        }
    }

    /// The dialect's name for the views in `sql/`.
    pub fn views_dialect(&self) -> &'static str {
        self.name()
    }

    /// Why a source column of type `pg` is kept as exact PostgreSQL text in this target, if it
    /// is (`sluice check` lists such columns).
    pub fn kept_as_text(&self, pg: &sluice_core::PgType) -> Option<&'static str> {
        use sluice_sql::SqlDialect as _;
        match self {
            #[cfg(feature = "duckdb")]
            TargetKind::DuckDb(_) => sluice_sql::DuckDb { json: true }.kept_as_text(pg),
            #[cfg(feature = "postgres")]
            TargetKind::Postgres(_) => sluice_sql::Postgres.kept_as_text(pg),
            #[cfg(feature = "snowflake")]
            TargetKind::Snowflake(_) => sluice_sql::Snowflake::default().kept_as_text(pg),
        }
    }

    /// Checks the target's settings against the batch size the loader uses.
    pub fn check_batch_bytes(&self, max_batch_bytes: u64) -> Result<(), Problem> {
        match self {
            #[cfg(feature = "duckdb")]
            TargetKind::DuckDb(duck) if duck.memory_limit_bytes / 2 < max_batch_bytes => {
                Err(Problem::new(
                    "target.memory_limit_bytes",
                    format!(
                        "must be at least twice load.max_batch_bytes ({max_batch_bytes} bytes): \
                         with less, DuckDB writes each batch out to disk while merging it and \
                         loading slows down by orders of magnitude"
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Builds the destination and hands it to `load`.
    pub async fn load<L: Load>(&self, load: L) -> Result<L::Output, Failure> {
        match self {
            #[cfg(feature = "duckdb")]
            TargetKind::DuckDb(config) => {
                load.run(sluice_duckdb::destination(config.clone()).map_err(target_failure)?)
                    .await
            }
            #[cfg(feature = "postgres")]
            TargetKind::Postgres(config) => {
                let destination =
                    sluice_postgres_target::destination(config.clone()).map_err(target_failure)?;
                load.run(destination).await
            }
            #[cfg(feature = "snowflake")]
            TargetKind::Snowflake(config) => {
                let destination =
                    sluice_snowflake::destination(config.clone()).map_err(target_failure)?;
                load.run(destination).await
            }
        }
    }

    /// Opens the target for reading.
    pub async fn inspector(&self) -> Result<TargetInspector, Unreadable> {
        match self {
            #[cfg(feature = "duckdb")]
            TargetKind::DuckDb(config) => {
                if !tokio::fs::try_exists(&config.path).await.unwrap_or(false) {
                    return Err(Unreadable::NotCreated);
                }
                match sluice_duckdb::DuckDbInspector::open(config) {
                    Ok(inspector) => Ok(TargetInspector::DuckDb(inspector)),
                    Err(sluice_duckdb::Error::Locked { .. }) => Err(Unreadable::InUse),
                    Err(e) => Err(Unreadable::Failed(target_failure(e))),
                }
            }
            #[cfg(feature = "postgres")]
            TargetKind::Postgres(config) => {
                let inspector = sluice_postgres_target::inspector(config)
                    .await
                    .map_err(|e| Unreadable::Failed(target_failure(e)))?;
                Ok(TargetInspector::Postgres(inspector))
            }
            #[cfg(feature = "snowflake")]
            TargetKind::Snowflake(config) => {
                let inspector = sluice_snowflake::inspector(config)
                    .await
                    .map_err(|e| Unreadable::Failed(target_failure(e)))?;
                Ok(TargetInspector::Snowflake(Box::new(inspector)))
            }
        }
    }

    /// `(table, column)` of the target's text columns: with the type mapping, those a
    /// destination changed to text when values arrived that the native type cannot hold.
    /// Empty when the target cannot be read or never changes column types.
    pub async fn text_columns(&self, tables: &[sluice_core::TableId]) -> Vec<(String, String)> {
        match self {
            #[cfg(feature = "duckdb")]
            TargetKind::DuckDb(config) => {
                let Ok(mut destination) = sluice_duckdb::destination(config.clone()) else {
                    return Vec::new();
                };
                let Ok(conn) = destination.session_mut().reader().await else {
                    return Vec::new();
                };
                let schema = config.schema.clone();
                let names: Vec<String> = tables.iter().map(|t| t.name.clone()).collect();
                tokio::task::spawn_blocking(move || {
                    sluice_duckdb::text_columns(&conn, &schema, &names)
                })
                .await
                .unwrap_or_default()
            }
            #[cfg(feature = "postgres")]
            TargetKind::Postgres(_) => Vec::new(),
            #[cfg(feature = "snowflake")]
            TargetKind::Snowflake(_) => Vec::new(),
        }
    }

    /// Creates or replaces `statements` (`(what it does, SQL)`) in one transaction.
    pub async fn run_script(&self, statements: Vec<(String, String)>) -> Result<(), Failure> {
        match self {
            #[cfg(feature = "duckdb")]
            TargetKind::DuckDb(config) => {
                let config = config.clone();
                tokio::task::spawn_blocking(move || {
                    sluice_duckdb::execute_script(
                        &config,
                        statements.iter().map(|(a, s)| (a.as_str(), s.as_str())),
                    )
                })
                .await
                .map_err(|e| Failure::fatal("target", e.into()))?
                .map_err(|e| Failure::from_error("target", e))
            }
            #[cfg(feature = "postgres")]
            TargetKind::Postgres(config) => sluice_postgres_target::execute_script(
                config,
                statements.iter().map(|(a, s)| (a.as_str(), s.as_str())),
            )
            .await
            .map_err(|e| Failure::from_error("target", e)),
            #[cfg(feature = "snowflake")]
            TargetKind::Snowflake(config) => sluice_snowflake::execute_script(
                config,
                statements.iter().map(|(a, s)| (a.as_str(), s.as_str())),
            )
            .await
            .map_err(|e| Failure::from_error("target", e)),
        }
    }
}

/// A failure of the target.
fn target_failure<E>(e: E) -> Failure
where
    E: std::error::Error + sluice_core::Classify + Send + Sync + 'static,
{
    Failure::from_error("target", e)
}

/// What runs with the destination [`TargetKind::load`] builds (the pipeline's stages).
pub trait Load {
    type Output;

    /// Runs with the destination.
    fn run<D: sluice_core::Destination + 'static>(
        self,
        destination: D,
    ) -> impl std::future::Future<Output = Result<Self::Output, Failure>>;
}

/// The configured target opened for reading.
pub enum TargetInspector {
    #[cfg(feature = "duckdb")]
    DuckDb(sluice_duckdb::DuckDbInspector),
    #[cfg(feature = "postgres")]
    Postgres(sluice_postgres_client::digest::PostgresInspector),
    /// Boxed: it holds a whole HTTP session.
    #[cfg(feature = "snowflake")]
    Snowflake(Box<sluice_snowflake::SnowflakeInspector>),
}

/// An error of [`TargetInspector`]: the inspected target's own.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[cfg(feature = "duckdb")]
    #[error(transparent)]
    DuckDb(#[from] sluice_duckdb::Error),
    #[cfg(feature = "postgres")]
    #[error(transparent)]
    Postgres(#[from] sluice_postgres_client::Error),
    #[cfg(feature = "snowflake")]
    #[error(transparent)]
    Snowflake(#[from] sluice_snowflake::Error),
}

impl sluice_core::Classify for InspectError {
    fn class(&self) -> sluice_core::ErrorClass {
        match self {
            #[cfg(feature = "duckdb")]
            InspectError::DuckDb(e) => e.class(),
            #[cfg(feature = "postgres")]
            InspectError::Postgres(e) => e.class(),
            #[cfg(feature = "snowflake")]
            InspectError::Snowflake(e) => e.class(),
        }
    }
}

/// Runs the same call on whichever inspector this is, with its error as an [`InspectError`].
macro_rules! on_inspector {
    ($self:ident, $i:ident => $call:expr) => {
        match $self {
            #[cfg(feature = "duckdb")]
            TargetInspector::DuckDb($i) => Ok($call.await?),
            #[cfg(feature = "postgres")]
            TargetInspector::Postgres($i) => Ok($call.await?),
            #[cfg(feature = "snowflake")]
            TargetInspector::Snowflake($i) => Ok($call.await?),
        }
    };
}

impl sluice_core::digest::Inspect for TargetInspector {
    type Error = InspectError;

    async fn applied_lsn(
        &mut self,
        pipeline: &str,
    ) -> Result<Option<sluice_core::Lsn>, InspectError> {
        on_inspector!(self, i => i.applied_lsn(pipeline))
    }

    async fn checkpoint(
        &mut self,
        pipeline: &str,
    ) -> Result<Option<sluice_core::Checkpoint>, InspectError> {
        on_inspector!(self, i => i.checkpoint(pipeline))
    }

    async fn has_table(
        &mut self,
        relation: &sluice_core::RelationSchema,
    ) -> Result<bool, InspectError> {
        on_inspector!(self, i => i.has_table(relation))
    }

    async fn digest(
        &mut self,
        relation: &sluice_core::RelationSchema,
        buckets: u32,
    ) -> Result<sluice_core::digest::TableDigest, InspectError> {
        on_inspector!(self, i => i.digest(relation, buckets))
    }

    async fn rows_in(
        &mut self,
        relation: &sluice_core::RelationSchema,
        buckets: u32,
        which: &[u32],
    ) -> Result<Vec<sluice_core::digest::RowHash>, InspectError> {
        on_inspector!(self, i => i.rows_in(relation, buckets, which))
    }
}
