//! `[target]` settings of the DuckDB destination.
//!
//! ```toml
//! [target]
//! kind = "duckdb"
//! path = "./sluice-data/warehouse.duckdb"
//! schema = "raw"       # default
//! deletes = "soft"     # default; or "hard"
//! memory_limit_bytes = 134217728  # default (128 MiB); at least twice load.max_batch_bytes
//! ```
//!
//! [`DuckDbConfig::validate`] is pure; the file is opened by the destination's `open`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sluice_core::DeleteMode;

use crate::error::{Error, Result};

/// The target schema when none is configured: loaded tables are raw copies of the source,
/// kept apart from the views built over them.
pub const DEFAULT_SCHEMA: &str = "raw";

/// DuckDB's memory limit when none is configured: 128 MiB, eight times the default batch.
/// DuckDB's own default (80% of the machine's memory) suits an analytical session, not a
/// loader running beside other services; past the limit DuckDB spills to a temporary
/// directory next to the file.
pub const DEFAULT_MEMORY_LIMIT_BYTES: u64 = 128 * 1024 * 1024;
/// Smallest accepted memory limit: below about 64 MiB, merging a large source transaction
/// spills so much that loading slows down by an order of magnitude.
pub const MIN_MEMORY_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// Where and how to load into an embedded DuckDB file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuckDbConfig {
    /// The database file; created (with its parent directories) when missing.
    pub path: PathBuf,
    /// The schema that receives the target tables and the checkpoint table.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// What a delete at the source does to the target row.
    #[serde(default)]
    pub deletes: DeleteMode,
    /// DuckDB's memory limit (`SET memory_limit`), in bytes.
    #[serde(default = "default_memory_limit_bytes")]
    pub memory_limit_bytes: u64,
}

fn default_memory_limit_bytes() -> u64 {
    DEFAULT_MEMORY_LIMIT_BYTES
}

fn default_schema() -> String {
    DEFAULT_SCHEMA.to_owned()
}

impl DuckDbConfig {
    /// A configuration with the defaults for everything but the path.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DuckDbConfig {
            path: path.into(),
            schema: default_schema(),
            deletes: DeleteMode::default(),
            memory_limit_bytes: DEFAULT_MEMORY_LIMIT_BYTES,
        }
    }

    /// Checks the settings without touching the file system.
    pub fn validate(&self) -> Result<()> {
        if self.path.as_os_str().is_empty() {
            return Err(Error::Config("target.path: must not be empty".into()));
        }
        if self.path.to_string_lossy().contains('\0') {
            return Err(Error::Config(
                "target.path: must not contain a NUL character".into(),
            ));
        }
        if self.schema.is_empty() {
            return Err(Error::Config("target.schema: must not be empty".into()));
        }
        if self.schema.contains('\0') {
            return Err(Error::Config(
                "target.schema: must not contain a NUL character".into(),
            ));
        }
        if self.memory_limit_bytes < MIN_MEMORY_LIMIT_BYTES {
            return Err(Error::Config(format!(
                "target.memory_limit_bytes: must be at least {MIN_MEMORY_LIMIT_BYTES} (64 MiB)"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_fields() {
        let c: DuckDbConfig = serde_json::from_str(r#"{"path": "w.duckdb"}"#).expect("parses");
        assert_eq!(c, DuckDbConfig::new("w.duckdb"));
        assert_eq!(c.schema, "raw");
        assert_eq!(c.deletes, DeleteMode::Soft);
        let hard: DuckDbConfig =
            serde_json::from_str(r#"{"path": "w", "schema": "s", "deletes": "hard"}"#)
                .expect("parses");
        assert_eq!(hard.deletes, DeleteMode::Hard);
        assert!(serde_json::from_str::<DuckDbConfig>(r#"{"path": "w", "shema": "s"}"#).is_err());
    }

    #[test]
    fn validation_names_the_field() {
        assert!(DuckDbConfig::new("w.duckdb").validate().is_ok());
        let err = DuckDbConfig::new("").validate().expect_err("empty path");
        assert_eq!(err.to_string(), "target.path: must not be empty");
        let mut c = DuckDbConfig::new("w");
        c.schema = String::new();
        assert_eq!(
            c.validate().expect_err("empty schema").to_string(),
            "target.schema: must not be empty"
        );
        c.schema = "a\0b".into();
        assert!(c.validate().is_err());
        let mut c = DuckDbConfig::new("w");
        c.memory_limit_bytes = 1024;
        assert_eq!(
            c.validate().expect_err("tiny memory limit").to_string(),
            "target.memory_limit_bytes: must be at least 67108864 (64 MiB)"
        );
    }
}
