//! Snowflake destination of Sluice: the [`SnowflakeSession`] the SQL-warehouse driver loads
//! through ([`destination`]), over the driver REST protocol that Snowflake's own connectors
//! speak (login, queries, result decoding, stage uploads). The SQL is the dialect's
//! ([`sluice_sql::Snowflake`]).
//!
//! [`Client::login`] opens a session with a password or a key pair ([`PrivateKey`]),
//! [`Client::query`] runs one statement and returns every value as text (forms in the
//! `rowset` module's doc), and [`Client::upload`] puts a file into an internal stage for
//! `COPY INTO`.

mod auth;
mod client;
mod config;
mod destination;
mod error;
mod inspect;
mod rowset;

pub use auth::PrivateKey;
pub use client::{
    Auth, Client, ClientOptions, Credentials, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RETRIES,
    DEFAULT_REQUEST_TIMEOUT, DEFAULT_RETRY_BUDGET, QueryResult,
};
pub use config::{DEFAULT_SCHEMA, INTERNAL_STAGE, SnowflakeConfig};
pub use destination::{SnowflakeDestination, SnowflakeSession, destination};
pub use error::{Error, Result, ServerError};
pub use inspect::{SnowflakeInspector, execute_script, inspector};
pub use rowset::Row;
