//! The one place that knows every connector: `[log] kind` and `[target] kind` are matched here
//! to concrete connectors, each behind its Cargo feature.

use std::path::PathBuf;

use serde::Deserialize;
use sluice_config::{ByteSize, ConfigError, Problem, Section};

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
];

fn invalid(path: &str, message: String) -> ConfigError {
    ConfigError::Invalid(vec![Problem::new(path, message)])
}
