//! `[target]` settings of the Snowflake destination.
//!
//! ```toml
//! [target]
//! kind = "snowflake"
//! account = "myorg-myaccount"
//! user = "SLUICE_LOADER"
//! private_key_path = "/run/secrets/snowflake_key.p8"   # key-pair (JWT); or password = "${SNOWFLAKE_PASSWORD}"
//! # private_key_passphrase = "${SNOWFLAKE_KEY_PASSPHRASE}"   # for an encrypted key
//! role = "SLUICE_LOADER"
//! warehouse = "LOAD_WH"
//! database = "ANALYTICS"
//! schema = "raw"                                        # default
//! deletes = "soft"                                      # default; or "hard"
//! # stage = "internal"          # default: files PUT to an internal stage Sluice creates
//! # stage = "@analytics.raw.s3_stage"   # or an external stage made over S3
//! # endpoint = "http://127.0.0.1:8085"  # overrides https://<account>.snowflakecomputing.com
//! ```
//!
//! [`SnowflakeConfig::validate`] is pure: it reads no key file and connects to nothing. The
//! password and the passphrase are secrets: `Debug` never shows them.

use std::fmt;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;
use sluice_core::DeleteMode;
use url::Url;

use crate::error::{Error, Result};

/// The target schema when none is configured.
pub const DEFAULT_SCHEMA: &str = "raw";

/// The internal stage Sluice creates (in the staging schema) when `stage = "internal"`.
pub const INTERNAL_STAGE: &str = "_sluice_files";

/// Snowflake keeps identifiers up to 255 bytes.
const MAX_IDENTIFIER_BYTES: usize = 255;

/// Where and how to load into Snowflake.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnowflakeConfig {
    /// The account identifier (`myorg-myaccount`, or a legacy locator such as
    /// `xy12345.us-east-1`).
    pub account: String,
    pub user: String,
    /// Password authentication; prefer a key pair.
    pub password: Option<SecretString>,
    /// A PKCS#8 private key in PEM (encrypted or not) for key-pair authentication.
    pub private_key_path: Option<PathBuf>,
    /// The passphrase of an encrypted private key.
    pub private_key_passphrase: Option<SecretString>,
    pub role: Option<String>,
    pub warehouse: Option<String>,
    /// The database holding the target schema (it must exist).
    pub database: String,
    /// The schema that receives the target tables and the checkpoint table.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// What a delete at the source does to the target row.
    #[serde(default)]
    pub deletes: DeleteMode,
    /// `internal`, or the name of an existing stage (`@db.schema.stage`).
    #[serde(default = "default_stage")]
    pub stage: String,
    /// The service's URL, when not `https://<account>.snowflakecomputing.com`.
    pub endpoint: Option<String>,
}

fn default_schema() -> String {
    DEFAULT_SCHEMA.to_owned()
}

fn default_stage() -> String {
    "internal".to_owned()
}

impl fmt::Debug for SnowflakeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnowflakeConfig")
            .field("account", &self.account)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("private_key_path", &self.private_key_path)
            .field(
                "private_key_passphrase",
                &self.private_key_passphrase.as_ref().map(|_| "<redacted>"),
            )
            .field("role", &self.role)
            .field("warehouse", &self.warehouse)
            .field("database", &self.database)
            .field("schema", &self.schema)
            .field("deletes", &self.deletes)
            .field("stage", &self.stage)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl SnowflakeConfig {
    /// The service's URL.
    pub fn endpoint(&self) -> Result<Url> {
        match &self.endpoint {
            Some(url) => Url::parse(url)
                .map_err(|e| Error::Config(format!("target.endpoint: not a URL ({e})"))),
            None => Url::parse(&format!(
                "https://{}.snowflakecomputing.com",
                self.account.to_ascii_lowercase()
            ))
            .map_err(|e| Error::Config(format!("target.account: not a host name part ({e})"))),
        }
    }

    /// The stage files are uploaded to, as SQL names it, or `None` for the internal stage
    /// Sluice creates.
    pub fn external_stage(&self) -> Option<&str> {
        (self.stage != "internal").then_some(self.stage.as_str())
    }

    /// Checks the settings without connecting or reading the key.
    pub fn validate(&self) -> Result<()> {
        let config = |field: &str, why: &str| Err(Error::Config(format!("target.{field}: {why}")));
        if self.account.is_empty() || self.account.contains(['/', ':', '@', ' ']) {
            return config(
                "account",
                "must be the account identifier, such as \"myorg-myaccount\"",
            );
        }
        if self.user.is_empty() {
            return config("user", "must not be empty");
        }
        match (&self.password, &self.private_key_path) {
            (None, None) => {
                return config(
                    "private_key_path",
                    "set private_key_path (key-pair authentication) or password",
                );
            }
            (Some(_), Some(_)) => {
                return config(
                    "password",
                    "set either password or private_key_path, not both",
                );
            }
            _ => {}
        }
        if self.private_key_passphrase.is_some() && self.private_key_path.is_none() {
            return config("private_key_passphrase", "needs private_key_path");
        }
        for (field, name) in [("database", &self.database), ("schema", &self.schema)] {
            if name.is_empty() {
                return config(field, "must not be empty");
            }
            if name.contains('\0') {
                return config(field, "must not contain a NUL character");
            }
            if name.len() > MAX_IDENTIFIER_BYTES {
                return config(
                    field,
                    "must be at most 255 bytes, the longest name Snowflake keeps",
                );
            }
        }
        if let Some(stage) = self.external_stage()
            && (!stage.starts_with('@') || stage.len() < 2 || stage.contains([';', '\'']))
        {
            return config(
                "stage",
                "must be \"internal\" or the name of an existing stage, such as \
                 \"@analytics.raw.s3_stage\"",
            );
        }
        self.endpoint()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    fn parse(json: &str) -> std::result::Result<SnowflakeConfig, serde_json::Error> {
        serde_json::from_str(json)
    }

    const MINIMAL: &str =
        r#"{"account": "myorg-acct", "user": "LOADER", "password": "s3cret", "database": "DB"}"#;

    #[test]
    fn defaults_and_unknown_fields() {
        let c = parse(MINIMAL).expect("parses");
        assert_eq!(c.schema, "raw");
        assert_eq!(c.deletes, DeleteMode::Soft);
        assert_eq!(c.external_stage(), None);
        assert_eq!(
            c.endpoint().expect("endpoint").as_str(),
            "https://myorg-acct.snowflakecomputing.com/"
        );
        assert!(c.validate().is_ok());
        assert!(parse(&MINIMAL.replace("\"database\"", "\"databse\"")).is_err());
    }

    #[test]
    fn secrets_are_never_printed() {
        let mut c = parse(MINIMAL).expect("parses");
        c.private_key_passphrase = Some(SecretString::from("pass-phrase".to_owned()));
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("pass-phrase"),
            "{debug}"
        );
        assert_eq!(
            c.password.as_ref().map(|p| p.expose_secret()),
            Some("s3cret")
        );
    }

    #[test]
    fn validation_names_the_field() {
        let mut c = parse(MINIMAL).expect("parses");
        c.private_key_path = Some("/k.p8".into());
        assert!(
            c.validate()
                .expect_err("both")
                .to_string()
                .contains("target.password:")
        );
        c.password = None;
        assert!(c.validate().is_ok());
        c.private_key_path = None;
        assert!(
            c.validate()
                .expect_err("neither")
                .to_string()
                .contains("target.private_key_path:")
        );
        let mut c = parse(MINIMAL).expect("parses");
        c.stage = "s3://bucket/".into();
        assert!(
            c.validate()
                .expect_err("stage")
                .to_string()
                .contains("target.stage:")
        );
        c.stage = "@db.raw.s3_stage".into();
        assert!(c.validate().is_ok());
        c.account = "https://x".into();
        assert!(c.validate().is_err());
    }
}
