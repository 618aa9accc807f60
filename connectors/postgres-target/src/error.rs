//! Errors of the PostgreSQL destination and what the runtime should do with them.
//!
//! | error | class |
//! |---|---|
//! | `Config` | fatal |
//! | `Connect` | as the connection error says (unreachable: transient, authentication: fatal) |
//! | `Sql` | by SQLSTATE ([`ErrorClass::from_sqlstate`]); without one (connection lost): transient |

use sluice_core::{Classify, ErrorClass};

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while loading into PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid (`validate`).
    #[error("{0}")]
    Config(String),

    /// The target cannot be reached or refuses the login.
    #[error("cannot connect to the target {target}")]
    Connect {
        /// The URL without its password.
        target: String,
        #[source]
        source: sluice_postgres_client::Error,
    },

    /// A statement failed.
    #[error("the target failed while {context}")]
    Sql {
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },
}

impl Error {
    /// A constructor for `map_err` on statement failures.
    pub(crate) fn sql(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
        let context = context.into();
        move |source| Error::Sql { context, source }
    }

    /// The SQLSTATE of a statement failure.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Sql { source, .. } => source.code().map(|c| c.code()),
            _ => None,
        }
    }
}

impl Classify for Error {
    fn class(&self) -> ErrorClass {
        match self {
            Error::Config(_) => ErrorClass::Fatal,
            Error::Connect { source, .. } => source.class(),
            Error::Sql { .. } => self
                .sqlstate()
                .map_or(ErrorClass::Transient, ErrorClass::from_sqlstate),
        }
    }
}

impl sluice_warehouse::SessionError for Error {
    fn code(&self) -> Option<&str> {
        self.sqlstate()
    }
}

impl From<Error> for sluice_warehouse::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Config(message) => sluice_warehouse::Error::Config(message),
            other => sluice_warehouse::Error::session(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_errors_stop() {
        assert_eq!(Error::Config("x".into()).class(), ErrorClass::Fatal);
    }
}
