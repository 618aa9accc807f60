//! The shared destination conformance suite (`sluice_testkit::conformance`) against fakesnow:
//! one server per case, a fresh database per target.
//!
//! Rows are read back through the crate's own client: dates, floats, text and numbers as it
//! prints them (PostgreSQL's spelling for those), timestamps as epoch microseconds computed by
//! Snowflake, binary as hex. Columns kept as exact PostgreSQL text go through the suite's
//! `canonical` like the PostgreSQL target's.

use std::sync::atomic::{AtomicUsize, Ordering};

use secrecy::SecretString;
use sluice_core::{DeleteMode, PgType};
use sluice_snowflake::{
    Auth, Client, ClientOptions, Credentials, SnowflakeConfig, SnowflakeDestination,
};
use sluice_sql::{Snowflake, SqlDialect as _};
use sluice_testkit::conformance::{Harness, Supports, canonical};
use sluice_testkit::fakesnow::FakeSnow;

static DATABASES: AtomicUsize = AtomicUsize::new(0);

#[derive(Default)]
struct SnowHarness {
    server: Option<FakeSnow>,
    /// Database, schema and delete mode of the current target.
    target: Option<(String, String, DeleteMode)>,
}

impl SnowHarness {
    fn server(&mut self) -> &FakeSnow {
        self.server.get_or_insert_with(FakeSnow::start)
    }

    fn target(&self) -> &(String, String, DeleteMode) {
        self.target.as_ref().expect("fresh() was called")
    }

    fn config(&mut self) -> SnowflakeConfig {
        let endpoint = self.server().endpoint();
        let (database, schema, deletes) = self.target().clone();
        serde_json::from_value(serde_json::json!({
            "account": "sluice_test",
            "user": "loader",
            "password": "not-checked-by-fakesnow",
            "database": database,
            "schema": schema,
            "deletes": deletes,
            "endpoint": endpoint,
        }))
        .expect("a valid configuration")
    }

    async fn client(&mut self) -> Client {
        let endpoint = self.server().endpoint();
        let database = self.target().0.clone();
        Client::login(
            Credentials {
                account: "sluice_test".into(),
                user: "reader".into(),
                auth: Auth::Password(SecretString::from("not-checked".to_owned())),
                role: None,
                warehouse: None,
                database: Some(Snowflake::stored_name(&database)),
                schema: None,
            },
            ClientOptions {
                endpoint: Some(endpoint.parse().expect("url")),
                ..ClientOptions::default()
            },
        )
        .await
        .expect("login")
    }
}

impl Harness for SnowHarness {
    type Dest = SnowflakeDestination;

    fn supports(&self) -> Supports {
        Supports {
            float_special: true,
            // NUMBER has no NaN, and DATE and the timestamps neither infinity nor years
            // before 1: such a value parks its table.
            numeric_special_in_decimal: false,
            infinite_datetimes: false,
            bc_datetimes: false,
            // fakesnow cannot run a name holding a quote (real Snowflake can).
            quotes_in_names: false,
        }
    }

    async fn fresh(&mut self, schema: &str, deletes: DeleteMode) {
        let n = DATABASES.fetch_add(1, Ordering::Relaxed);
        self.target = Some((format!("conformance_{n}"), schema.to_owned(), deletes));
    }

    async fn destination(&mut self) -> SnowflakeDestination {
        sluice_snowflake::destination(self.config()).expect("destination")
    }

    async fn rows(&mut self, table: &str, columns: &[(&str, PgType)]) -> Vec<Vec<Option<String>>> {
        let d = Snowflake::default();
        let select = columns
            .iter()
            .map(|(name, ty)| {
                let c = d.quote_ident(name);
                match ty {
                    PgType::Timestamp | PgType::TimestampTz => {
                        format!("DATE_PART(epoch_microsecond, {c})")
                    }
                    _ => c,
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let schema = self.target().1.clone();
        let sql = format!("SELECT {select} FROM {}", d.qualified(&schema, table));
        let result = self.client().await.query(&sql).await.expect("select");
        result
            .rows
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .zip(columns)
                    .map(|(v, (_, ty))| v.map(|text| canonical_of(ty, &text)))
                    .collect()
            })
            .collect()
    }

    async fn columns(&mut self, table: &str) -> Vec<String> {
        let schema = self.target().1.clone();
        let d = Snowflake::default();
        let sql = format!(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = {} AND \
             table_name = {}",
            d.quote_literal(&Snowflake::stored_name(&schema)),
            d.quote_literal(&Snowflake::stored_name(table)),
        );
        let result = self.client().await.query(&sql).await.expect("columns");
        result
            .rows
            .into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .map(|name| Snowflake::source_name(&name))
            .collect()
    }
}

/// The suite's canonical form of a value as the client prints it.
fn canonical_of(ty: &PgType, text: &str) -> String {
    match ty {
        // Already epoch microseconds.
        PgType::Timestamp | PgType::TimestampTz => text.to_owned(),
        PgType::Bytea => canonical(ty, &format!("\\x{text}")),
        _ => canonical(ty, text),
    }
}

sluice_testkit::conformance_tests!(SnowHarness::default());
