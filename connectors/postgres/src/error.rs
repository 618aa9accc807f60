//! The errors of the PostgreSQL source, and what the runtime should do with each.
//!
//! The mapping table is [`Error::class`]: configuration, TLS verification and authentication
//! failures are fatal (an operator must act); server errors are classified by SQLSTATE through
//! [`ErrorClass::from_sqlstate`] (08 transient, 28 fatal, 42, 3D and 3F definite, unknown
//! transient); I/O errors, resets and timeouts are transient.

use std::io;
use std::path::PathBuf;

use sluice_core::{Classify, ErrorClass};

pub use sluice_postgres_client::ServerError;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to the source database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection failed: settings, TCP, TLS, authentication, a server error, the protocol.
    #[error(transparent)]
    Connection(#[from] sluice_postgres_client::Error),

    /// Nothing arrived on the replication connection for `silent`, not even the answer to a
    /// status update that asked for one: the connection is taken for lost (a network
    /// partition leaves it open on this side for as long as TCP does not give up).
    #[error(
        "the source sent nothing for {} ms, not even the answer to a status update that asked for one: taking the replication connection for lost",
        silent.as_millis()
    )]
    ReceiveTimeout { silent: std::time::Duration },

    /// A query on the ordinary connection got no answer in time while streaming (a network
    /// partition): the connections are taken for lost.
    #[error("the source did not answer {what} within {} ms: taking the connection for lost", waited.as_millis())]
    QueryTimeout {
        what: &'static str,
        waited: std::time::Duration,
    },

    /// A replication message could not be decoded.
    #[error("malformed replication message")]
    Decode(#[from] sluice_pgoutput::DecodeError),

    /// The source is not set up the way capture needs: the message says what is wrong, the
    /// hint what to do.
    #[error("{message}. {hint}")]
    Prerequisite { message: String, hint: String },

    /// A value captured from the source cannot be represented.
    #[error("column \"{column}\" of table {table}: {reason}")]
    Value {
        table: sluice_core::TableId,
        column: String,
        reason: String,
    },

    /// The initial snapshot's `COPY` output could not be read.
    #[error("snapshot of table {table}: {reason}")]
    Snapshot {
        table: sluice_core::TableId,
        reason: String,
    },

    /// Writing the snapshot's chunk ledger (next to the change log) failed.
    #[error("writing the snapshot ledger \"{}\" failed", path.display())]
    Ledger { path: PathBuf, source: io::Error },

    /// A spill file of a transaction streamed before its commit could not be written or read.
    #[error("spill file \"{}\" failed", path.display())]
    Spill { path: PathBuf, source: io::Error },

    /// Appending to the change log failed.
    #[error("appending to the change log failed")]
    ChangeLog {
        class: ErrorClass,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    pub(crate) fn prerequisite(message: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Prerequisite {
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub(crate) fn client(action: impl Into<String>, source: tokio_postgres::Error) -> Error {
        sluice_postgres_client::Error::client(action, source).into()
    }

    pub(crate) fn snapshot(relation: &sluice_core::RelationSchema, reason: String) -> Error {
        Error::Snapshot {
            table: relation.table.clone(),
            reason,
        }
    }

    pub(crate) fn config(reason: impl Into<String>) -> Error {
        sluice_postgres_client::Error::config(reason).into()
    }

    /// The server sent something the protocol does not allow here.
    pub(crate) fn protocol(what: String) -> Error {
        sluice_postgres_client::Error::Protocol(what).into()
    }

    /// The server closed the replication connection.
    pub(crate) fn closed() -> Error {
        sluice_postgres_client::Error::Closed.into()
    }

    /// Whether the server closed the replication connection.
    pub fn is_closed(&self) -> bool {
        matches!(
            self,
            Error::Connection(sluice_postgres_client::Error::Closed)
        )
    }

    /// The server's error, when the server sent one (also through tokio-postgres).
    pub fn server_error(&self) -> Option<ServerError> {
        match self {
            Error::Connection(e) => e.server_error(),
            _ => None,
        }
    }

    /// The SQLSTATE, when the server sent one.
    pub fn sqlstate(&self) -> Option<String> {
        self.server_error().map(|e| e.code)
    }

    /// What the runtime should do with this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Connection(e) => e.class(),
            Error::ReceiveTimeout { .. }
            | Error::QueryTimeout { .. }
            | Error::Ledger { .. }
            | Error::Spill { .. } => ErrorClass::Transient,
            // Malformed input from the server cannot be skipped without losing changes.
            Error::Decode(_) | Error::Snapshot { .. } => ErrorClass::Fatal,
            Error::Prerequisite { .. } => ErrorClass::Fatal,
            Error::Value { .. } => ErrorClass::Fatal,
            Error::ChangeLog { class, .. } => *class,
        }
    }
}

impl Classify for Error {
    fn class(&self) -> ErrorClass {
        Error::class(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_table() {
        let cases = [
            (Error::closed(), ErrorClass::Transient),
            (Error::protocol("p".into()), ErrorClass::Transient),
            (
                Error::ReceiveTimeout {
                    silent: std::time::Duration::from_secs(30),
                },
                ErrorClass::Transient,
            ),
            (Error::prerequisite("m", "h"), ErrorClass::Fatal),
            (Error::config("x"), ErrorClass::Fatal),
        ];
        for (error, class) in cases {
            assert_eq!(error.class(), class, "{error:?}");
        }
        assert!(Error::closed().is_closed());
        assert!(!Error::protocol("p".into()).is_closed());
    }
}
