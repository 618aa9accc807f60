//! The PostgreSQL client of Sluice, shared by the source (capture), the PostgreSQL target and
//! Redshift: connection settings, TLS, authentication and quoting, with one error
//! classification.
//!
//! - [`PgConfig`] parses a URL (or a `key=value` string) including libpq's `sslmode` values;
//!   the password is a secret that nothing prints.
//! - [`connect`] opens an ordinary connection (tokio-postgres over our own TCP + TLS stream);
//!   [`connect::open_stream`], [`connect::startup`] and [`connect::Wire`] are the raw protocol
//!   the replication client builds on, under the same TLS policy.
//! - [`quote_ident`] and [`quote_literal`] are the only way names and values reach SQL.
//! - [`digest`] renders and hashes rows for `sluice verify`, on either side.
//! - [`Error`] says through [`Error::class`] whether to retry, park or stop.

pub mod catalog;
mod config;
pub mod connect;
pub mod digest;
mod error;
mod ident;
mod tls;

pub use config::{DEFAULT_PORT, PgConfig, SslMode};
pub use connect::{DEFAULT_CONNECT_TIMEOUT, connect};
pub use error::{Error, Result, ServerError};
pub use ident::{publication_names, quote_ident, quote_literal};
