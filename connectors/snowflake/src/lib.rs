//! Snowflake transport of Sluice: the driver REST protocol that Snowflake's own connectors
//! speak (login, queries, result decoding, stage uploads), with no SQL dialect in it.
//!
//! [`Client::login`] opens a session with a password or a key pair ([`PrivateKey`]),
//! [`Client::query`] runs one statement and returns every value as text (forms in the
//! `rowset` module's doc), and [`Client::upload`] puts a file into an internal stage for
//! `COPY INTO`.

mod auth;
mod client;
mod error;
mod rowset;

pub use auth::PrivateKey;
pub use client::{
    Auth, Client, ClientOptions, Credentials, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RETRIES,
    DEFAULT_REQUEST_TIMEOUT, DEFAULT_RETRY_BUDGET, QueryResult,
};
pub use error::{Error, Result, ServerError};
pub use rowset::Row;
