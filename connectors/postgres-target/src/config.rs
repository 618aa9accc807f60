//! `[target]` settings of the PostgreSQL destination.
//!
//! ```toml
//! [target]
//! kind = "postgres"
//! url = "postgres://loader:${TARGET_PASSWORD}@warehouse:5432/analytics?sslmode=verify-full"
//! schema = "raw"       # default
//! deletes = "soft"     # default; or "hard"
//! ```
//!
//! [`PostgresTargetConfig::validate`] is pure (it parses the URL, connects to nothing). The URL
//! is a secret: `Debug` and [`PostgresTargetConfig::redacted_url`] never show the password.

use std::fmt;

use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use sluice_core::DeleteMode;
use sluice_postgres_client::PgConfig as SourceConfig;

use crate::error::{Error, Result};

/// The target schema when none is configured: loaded tables are raw copies of the source,
/// kept apart from the views built over them.
pub const DEFAULT_SCHEMA: &str = "raw";

/// PostgreSQL keeps identifiers up to `NAMEDATALEN - 1` bytes and truncates longer ones.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// Where and how to load into a PostgreSQL database.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresTargetConfig {
    /// `postgres://` URL or `key=value` string, as for the source (sslmode, sslrootcert, ...).
    pub url: SecretString,
    /// The schema that receives the target tables and the checkpoint table.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// What a delete at the source does to the target row.
    #[serde(default)]
    pub deletes: DeleteMode,
}

fn default_schema() -> String {
    DEFAULT_SCHEMA.to_owned()
}

impl fmt::Debug for PostgresTargetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresTargetConfig")
            .field("url", &self.redacted_url())
            .field("schema", &self.schema)
            .field("deletes", &self.deletes)
            .finish()
    }
}

impl PostgresTargetConfig {
    /// A configuration with the defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresTargetConfig {
            url: SecretString::from(url.into()),
            schema: default_schema(),
            deletes: DeleteMode::default(),
        }
    }

    /// The connection settings the URL describes.
    pub fn connection(&self) -> Result<SourceConfig> {
        SourceConfig::parse(self.url.expose_secret())
            .map_err(|e| Error::Config(format!("target.url: {e}")))
    }

    /// The URL with its password replaced, for messages; a placeholder when it does not
    /// parse (the text could hold the password anywhere).
    pub fn redacted_url(&self) -> String {
        self.connection()
            .map_or_else(|_| "<unparsable url>".to_owned(), |c| c.to_string())
    }

    /// Checks the settings without connecting.
    pub fn validate(&self) -> Result<()> {
        self.connection()?;
        if self.schema.is_empty() {
            return Err(Error::Config("target.schema: must not be empty".into()));
        }
        if self.schema.contains('\0') {
            return Err(Error::Config(
                "target.schema: must not contain a NUL character".into(),
            ));
        }
        if self.schema.len() > MAX_IDENTIFIER_BYTES {
            return Err(Error::Config(format!(
                "target.schema: must be at most {MAX_IDENTIFIER_BYTES} bytes, the longest name \
                 PostgreSQL keeps"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> std::result::Result<PostgresTargetConfig, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn defaults_and_unknown_fields() {
        let c = parse(r#"{"url": "postgres://u:pw@h/db"}"#).expect("parses");
        assert_eq!(c.schema, "raw");
        assert_eq!(c.deletes, DeleteMode::Soft);
        let hard = parse(r#"{"url": "postgres://h/db", "schema": "s", "deletes": "hard"}"#)
            .expect("parses");
        assert_eq!(hard.deletes, DeleteMode::Hard);
        assert!(parse(r#"{"url": "postgres://h/db", "shema": "s"}"#).is_err());
        assert!(parse(r#"{"schema": "s"}"#).is_err());
    }

    #[test]
    fn password_never_printed() {
        let c = PostgresTargetConfig::new("postgres://u:s3cret@h:5433/db?sslmode=require");
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(!c.redacted_url().contains("s3cret"));
        assert!(
            c.redacted_url().contains("h:5433/db"),
            "{}",
            c.redacted_url()
        );
        let bad = PostgresTargetConfig::new("postgres://u:s3cret@h:notaport/db");
        assert!(!format!("{bad:?}").contains("s3cret"));
        let err = bad.validate().expect_err("bad port");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn validation_names_the_field() {
        assert!(
            PostgresTargetConfig::new("postgres://u@h/db")
                .validate()
                .is_ok()
        );
        let err = PostgresTargetConfig::new("mysql://u@h/db")
            .validate()
            .expect_err("not postgres");
        assert!(err.to_string().starts_with("target.url: "), "{err}");
        let mut c = PostgresTargetConfig::new("postgres://u@h/db");
        c.schema = String::new();
        assert_eq!(
            c.validate().expect_err("empty schema").to_string(),
            "target.schema: must not be empty"
        );
        c.schema = "x".repeat(64);
        assert!(c.validate().is_err());
    }
}
