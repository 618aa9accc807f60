//! [`SnowflakeSession`]: the [`Session`] of a Snowflake database, and [`SnowflakeDestination`],
//! the SQL-warehouse driver over it.
//!
//! - **Connecting** logs in (key pair or password), makes the database the session's (`USE`),
//!   creates the target schema, the schema `_SLUICE_STAGING` for staging tables and, for
//!   `stage = "internal"`, the internal stage `_SLUICE_STAGING._SLUICE_FILES`. A session that Snowflake replaces by a new login (an
//!   expired token without a master token) fails the statement in flight with a transient
//!   error: its temporary tables and transaction are gone, and the driver loads the batch
//!   again from its checkpoint.
//! - **Staging** writes a table's staged rows as Parquet files named by their content, PUTs
//!   them to the stage and `COPY`s each into the table's temporary staging table, matching
//!   columns by name. The staging table is created anew for every batch, so a retried COPY
//!   loads into an empty table (`FORCE = TRUE` skips the load history, which belongs to a
//!   permanent table). The files are removed after the commit; a crash can leave some behind
//!   (their names are content hashes: harmless, and a lifecycle rule on an external stage's
//!   bucket clears them).
//! - **Transactions**: DDL commits in Snowflake, so the driver runs none inside a load's
//!   transaction; this session refuses one there, which makes that rule testable on a
//!   stand-in whose DDL does not commit.

use std::borrow::Cow;

use bytes::Bytes;
use secrecy::SecretString;
use sluice_sql::{SNOWFLAKE_STAGING_SCHEMA, SfType, Snowflake, SqlDialect as _};
use sluice_warehouse::staging::{ParquetOptions, write_parquet};
use sluice_warehouse::{Rows, Session, SqlDestination, StageTable, TargetOptions};

use crate::PrivateKey;
use crate::client::{Auth, Client, ClientOptions, Credentials};
use crate::config::{INTERNAL_STAGE, SnowflakeConfig};
use crate::error::{Error, Result};

/// Loads batches into Snowflake.
pub type SnowflakeDestination = SqlDestination<SnowflakeSession>;

/// A destination for `config` (validated here; it connects in `open`).
pub fn destination(config: SnowflakeConfig) -> Result<SnowflakeDestination> {
    Ok(SqlDestination::new(SnowflakeSession::new(config)?))
}

type WarehouseResult<T> = sluice_warehouse::Result<T>;

/// One Snowflake session, opened on first use.
pub struct SnowflakeSession {
    config: SnowflakeConfig,
    options: TargetOptions,
    client: Option<Client>,
    /// The client's generation when this session set it up (`USE`, stage).
    client_generation: u64,
    generation: u64,
    in_transaction: bool,
    /// Files staged since the last commit or rollback, removed after it.
    files: Vec<String>,
}

impl SnowflakeSession {
    /// A session for `config` (validated here).
    pub fn new(config: SnowflakeConfig) -> Result<Self> {
        config.validate()?;
        Ok(SnowflakeSession {
            options: TargetOptions {
                schema: config.schema.clone(),
                deletes: config.deletes,
            },
            config,
            client: None,
            client_generation: 0,
            generation: 0,
            in_transaction: false,
            files: Vec::new(),
        })
    }

    /// The stage files go to, as SQL names it.
    fn stage_ref(&self) -> String {
        match self.config.external_stage() {
            Some(stage) => stage.to_owned(),
            None => format!(
                "@{}",
                Snowflake::default().qualified(SNOWFLAKE_STAGING_SCHEMA, INTERNAL_STAGE)
            ),
        }
    }

    fn credentials(&self) -> Result<Credentials> {
        let auth = match (&self.config.password, &self.config.private_key_path) {
            (Some(password), _) => Auth::Password(password.clone()),
            (None, Some(path)) => {
                let pem = std::fs::read_to_string(path).map_err(|e| {
                    Error::Target(format!(
                        "target.private_key_path: cannot read {}: {e}",
                        path.display()
                    ))
                })?;
                let passphrase: Option<&SecretString> = self.config.private_key_passphrase.as_ref();
                Auth::KeyPair(PrivateKey::from_pem(&pem, passphrase)?)
            }
            (None, None) => {
                return Err(Error::Config(
                    "target.private_key_path: set private_key_path or password".into(),
                ));
            }
        };
        Ok(Credentials {
            account: self.config.account.clone(),
            user: self.config.user.clone(),
            auth,
            role: self.config.role.clone(),
            warehouse: self.config.warehouse.clone(),
            database: Some(Snowflake::stored_name(&self.config.database)),
            schema: None,
        })
    }

    /// Logs in for reading (`USE DATABASE` only: it creates nothing).
    pub(crate) async fn open_reader(&mut self) -> Result<()> {
        self.login(false).await
    }

    /// Runs one statement and returns its rows as text.
    pub(crate) async fn query_text(&mut self, sql: &str) -> Result<Rows> {
        self.run(sql).await
    }

    /// Logs in and prepares the session: the database and, for loading (`load`), the schema
    /// and the internal stage.
    async fn login(&mut self, load: bool) -> Result<()> {
        let options = ClientOptions {
            endpoint: Some(self.config.endpoint()?),
            ..ClientOptions::default()
        };
        let mut client = Client::login(self.credentials()?, options).await?;
        let d = Snowflake::default();
        let mut setup = vec![format!(
            "USE DATABASE {}",
            d.quote_ident(&self.config.database)
        )];
        if load {
            setup.push(d.create_schema(&self.config.schema));
            setup.push(d.create_schema(SNOWFLAKE_STAGING_SCHEMA));
        }
        if load && self.config.external_stage().is_none() {
            setup.push(format!(
                "CREATE STAGE IF NOT EXISTS {} ENCRYPTION = (TYPE = 'SNOWFLAKE_SSE')",
                d.qualified(SNOWFLAKE_STAGING_SCHEMA, INTERNAL_STAGE)
            ));
        }
        for statement in setup {
            if let Err(e) = client.query(&statement).await {
                if !e.server().is_some_and(not_authorized) {
                    return Err(e);
                }
                return Err(Error::Target(format!(
                    "{e}. The role needs these privileges:\n{}",
                    grants(&self.config)
                )));
            }
        }
        self.client_generation = client.generation();
        self.client = Some(client);
        self.generation += 1;
        self.in_transaction = false;
        self.files.clear();
        Ok(())
    }

    /// Runs one statement on the open session.
    async fn run(&mut self, statement: &str) -> Result<Rows> {
        if self.in_transaction && commits_implicitly(statement) {
            return Err(Error::DdlInTransaction(first_words(statement)));
        }
        let Some(client) = self.client.as_mut() else {
            return Err(Error::SessionReplaced);
        };
        let result = client.query(statement).await;
        if client.generation() != self.client_generation {
            // A new login: `USE`, temporary tables and the transaction are gone.
            self.client = None;
            return Err(Error::SessionReplaced);
        }
        Ok(result?.rows)
    }

    /// Removes the files staged since the last commit or rollback; a failure is only logged
    /// (the names are content hashes: a leftover file is harmless).
    async fn remove_files(&mut self) {
        let stage = self.stage_ref();
        for name in std::mem::take(&mut self.files) {
            if let Err(e) = self.run(&format!("REMOVE {stage}/{name}")).await {
                tracing::debug!(error = %e, file = name, "a staged file was left in the stage");
            }
        }
    }
}

/// Whether Snowflake refused a statement for a missing privilege (it says "does not exist or
/// not authorized" for objects the role cannot see).
fn not_authorized(e: &crate::ServerError) -> bool {
    e.sql_state.as_deref() == Some("42501")
        || e.code == "003001"
        || e.message.contains("not authorized")
        || e.message.contains("Insufficient privileges")
}

/// The GRANT statements that give the configured role what loading needs.
fn grants(config: &SnowflakeConfig) -> String {
    let d = Snowflake::default();
    let role = config.role.as_deref().map_or_else(
        || "<the user's default role>".to_owned(),
        |r| d.quote_ident(r),
    );
    let database = d.quote_ident(&config.database);
    let mut grants = Vec::new();
    if let Some(warehouse) = &config.warehouse {
        grants.push(format!(
            "GRANT USAGE ON WAREHOUSE {} TO ROLE {role};",
            d.quote_ident(warehouse)
        ));
    }
    grants.push(format!(
        "GRANT USAGE, CREATE SCHEMA ON DATABASE {database} TO ROLE {role};"
    ));
    for schema in [config.schema.as_str(), SNOWFLAKE_STAGING_SCHEMA] {
        grants.push(format!(
            "GRANT USAGE, CREATE TABLE, CREATE STAGE ON SCHEMA {database}.{} TO ROLE {role};  \
             -- if the schema exists already",
            d.quote_ident(schema)
        ));
    }
    grants.join("\n")
}

/// Whether Snowflake commits the open transaction before running `statement` (DDL).
fn commits_implicitly(statement: &str) -> bool {
    let first = statement
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    matches!(
        first.as_str(),
        "CREATE" | "ALTER" | "DROP" | "TRUNCATE" | "UNDROP" | "GRANT" | "REVOKE" | "COMMENT"
    )
}

/// The start of a statement, for a message (never its literals).
fn first_words(statement: &str) -> String {
    statement
        .split_whitespace()
        .take(4)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Rewrites PostgreSQL's text of a value into text Snowflake converts to `ty` exactly.
fn stage_value<'a>(text: &'a str, ty: &SfType) -> std::result::Result<Cow<'a, str>, String> {
    Ok(match ty {
        SfType::Binary => Cow::Borrowed(
            text.strip_prefix("\\x")
                .ok_or_else(|| "bytea value is not in PostgreSQL's hex format".to_owned())?,
        ),
        SfType::Float => match text {
            "Infinity" => Cow::Borrowed("inf"),
            "-Infinity" => Cow::Borrowed("-inf"),
            _ => Cow::Borrowed(text),
        },
        SfType::Date | SfType::TimestampNtz => {
            datetime_fits(text)?;
            Cow::Borrowed(text)
        }
        SfType::TimestampTz => {
            datetime_fits(text)?;
            timestamptz(text)
        }
        _ => Cow::Borrowed(text),
    })
}

/// Snowflake's dates and timestamps hold the years 1 to 9999: `infinity`, BC years and
/// five-digit years park the table (the value is never written as something else).
fn datetime_fits(text: &str) -> std::result::Result<(), String> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if text.ends_with(" BC") || digits != 4 {
        return Err(format!(
            "{} has no Snowflake date or timestamp (years 1 to 9999)",
            if text.contains("infinity") {
                "infinity"
            } else {
                "a year outside 1 to 9999"
            }
        ));
    }
    Ok(())
}

/// PostgreSQL prints a whole-hour offset as `+05`; Snowflake reads `+05:00`.
fn timestamptz(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let n = bytes.len();
    if n >= 3
        && matches!(bytes[n - 3], b'+' | b'-')
        && bytes[n - 2].is_ascii_digit()
        && bytes[n - 1].is_ascii_digit()
        && text[..n - 3].contains(':')
    {
        Cow::Owned(format!("{text}:00"))
    } else {
        Cow::Borrowed(text)
    }
}

impl sluice_warehouse::SessionError for Error {
    fn code(&self) -> Option<&str> {
        match self {
            Error::Server(e) => e.sql_state.as_deref().or(Some(e.code.as_str())),
            _ => None,
        }
    }
}

fn failed(e: Error) -> sluice_warehouse::Error {
    sluice_warehouse::Error::session(e)
}

impl Session for SnowflakeSession {
    type Dialect = Snowflake;

    fn options(&self) -> &TargetOptions {
        &self.options
    }

    fn dialect(&self) -> Snowflake {
        Snowflake::default()
    }

    async fn connect(&mut self) -> WarehouseResult<u64> {
        if self.client.is_none() {
            self.login(true).await.map_err(failed)?;
        }
        Ok(self.generation)
    }

    async fn execute(&mut self, statement: String, context: String) -> WarehouseResult<()> {
        tracing::trace!(context, "snowflake statement");
        self.run(&statement).await.map(|_| ()).map_err(failed)
    }

    async fn query(&mut self, query: String, context: String) -> WarehouseResult<Rows> {
        tracing::trace!(context, "snowflake query");
        self.run(&query).await.map_err(failed)
    }

    async fn load_stage(&mut self, table: &StageTable<SfType>) -> WarehouseResult<()> {
        let staged = table.clone();
        let files = tokio::task::spawn_blocking(move || {
            write_parquet(&staged, &stage_value, &ParquetOptions::default())
        })
        .await
        .map_err(|e| failed(Error::Target(format!("writing Parquet failed: {e}"))))??;
        let stage = self.stage_ref();
        for file in files {
            let client = self
                .client
                .as_mut()
                .ok_or_else(|| failed(Error::SessionReplaced))?;
            client
                .upload(&stage, &file.name, Bytes::from(file.bytes))
                .await
                .map_err(failed)?;
            self.files.push(file.name.clone());
            self.run(&format!(
                "COPY INTO {} FROM {stage}/{} FILE_FORMAT = (TYPE = PARQUET) \
                 MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE FORCE = TRUE",
                table.stage, file.name
            ))
            .await
            .map_err(failed)?;
        }
        Ok(())
    }

    async fn begin(&mut self) -> WarehouseResult<()> {
        self.run("BEGIN TRANSACTION").await.map_err(failed)?;
        self.in_transaction = true;
        Ok(())
    }

    async fn commit(&mut self) -> WarehouseResult<()> {
        let result = self.run("COMMIT").await;
        self.in_transaction = false;
        result.map_err(failed)?;
        self.remove_files().await;
        Ok(())
    }

    async fn rollback(&mut self) {
        if self.client.is_some() {
            let _ = self.run("ROLLBACK").await;
        }
        self.in_transaction = false;
        self.remove_files().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_rewritten_where_snowflake_reads_them_differently() {
        let v = |text, ty| stage_value(text, &ty).expect("stages");
        assert_eq!(v("\\x0a1b", SfType::Binary), "0a1b");
        assert!(stage_value("0a1b", &SfType::Binary).is_err());
        assert_eq!(v("Infinity", SfType::Float), "inf");
        assert_eq!(v("-Infinity", SfType::Float), "-inf");
        assert_eq!(v("1.5", SfType::Float), "1.5");
        assert_eq!(
            v("2024-01-01 10:00:00+00", SfType::TimestampTz),
            "2024-01-01 10:00:00+00:00"
        );
        assert_eq!(
            v("2024-01-01 10:00:00.5+05:30", SfType::TimestampTz),
            "2024-01-01 10:00:00.5+05:30"
        );
        for bad in [
            "infinity",
            "-infinity",
            "0044-03-15 BC",
            "10000-01-01 00:00:00",
        ] {
            assert!(stage_value(bad, &SfType::TimestampTz).is_err(), "{bad}");
            assert!(stage_value(bad, &SfType::Date).is_err(), "{bad}");
        }
        assert_eq!(v("0001-01-01", SfType::Date), "0001-01-01");
        assert_eq!(v("x", SfType::Varchar), "x");
    }

    #[test]
    fn missing_privileges_come_with_the_grants() {
        let config: SnowflakeConfig = serde_json::from_value(serde_json::json!({
            "account": "a", "user": "u", "password": "p", "database": "analytics",
            "role": "LOADER", "warehouse": "load_wh",
        }))
        .expect("config");
        let text = grants(&config);
        assert!(
            text.contains("GRANT USAGE ON WAREHOUSE \"LOAD_WH\" TO ROLE \"LOADER\";"),
            "{text}"
        );
        assert!(text.contains("ON DATABASE \"ANALYTICS\""), "{text}");
        assert!(text.contains("ON SCHEMA \"ANALYTICS\".\"RAW\""), "{text}");
        assert!(text.contains("\"_SLUICE_STAGING\""), "{text}");
        let refused = crate::ServerError {
            query_id: None,
            code: "003001".into(),
            sql_state: Some("42501".into()),
            message: "SQL access control error: Insufficient privileges".into(),
            http_status: 200,
        };
        assert!(not_authorized(&refused));
    }

    #[test]
    fn ddl_is_recognised_and_dml_is_not() {
        for ddl in [
            "CREATE TABLE x (a int)",
            "  alter table x",
            "DROP TABLE x",
            "TRUNCATE x",
        ] {
            assert!(commits_implicitly(ddl), "{ddl}");
        }
        for dml in [
            "UPDATE x SET a = 1",
            "INSERT INTO x SELECT 1",
            "DELETE FROM x",
            "COPY INTO x",
        ] {
            assert!(!commits_implicitly(dml), "{dml}");
        }
        assert_eq!(
            first_words("CREATE OR REPLACE TEMPORARY TABLE \"X\" (a)"),
            "CREATE OR REPLACE TEMPORARY"
        );
    }
}
