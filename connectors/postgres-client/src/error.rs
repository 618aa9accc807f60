//! The errors of a PostgreSQL connection (source, target or Redshift), and what the runtime
//! should do with each.
//!
//! The mapping table is [`Error::class`]: configuration, TLS verification and authentication
//! failures are fatal (an operator must act); server errors are classified by SQLSTATE through
//! [`ErrorClass::from_sqlstate`] (08 transient, 28 fatal, 42, 3D and 3F definite, unknown
//! transient); I/O errors, resets and timeouts are transient.

use std::fmt;
use std::io;
use std::path::PathBuf;

use sluice_core::{Classify, ErrorClass};

use crate::config::SslMode;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An `ErrorResponse` from the server: its SQLSTATE and texts. Never holds the password: the
/// server does not echo it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// `ERROR`, `FATAL` or `PANIC` (non-localized).
    pub severity: String,
    /// The five-character SQLSTATE, e.g. `42704`.
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (sqlstate {})", self.message, self.code)?;
        if let Some(detail) = &self.detail {
            write!(f, "; detail: {detail}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "; hint: {hint}")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong talking to the source database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The source URL or connection string is invalid.
    #[error("invalid connection settings: {reason}")]
    Config { reason: String },

    /// The `sslrootcert` file could not be read or holds no certificate.
    #[error("could not load root certificates from \"{path}\"")]
    RootCertificate { path: PathBuf, source: io::Error },

    /// The TCP connection could not be opened.
    #[error("could not connect to {host}:{port}")]
    Connect {
        host: String,
        port: u16,
        source: io::Error,
    },

    /// Opening the connection (TCP, TLS and start-up) took longer than `connect_timeout`.
    #[error("timed out connecting to {host}:{port}")]
    ConnectTimeout { host: String, port: u16 },

    /// The server does not accept TLS but the sslmode requires it.
    #[error(
        "server {host}:{port} does not accept TLS connections, which sslmode={sslmode} requires"
    )]
    TlsRefused {
        host: String,
        port: u16,
        sslmode: SslMode,
    },

    /// The TLS handshake failed, for instance because the certificate did not verify.
    #[error("tls handshake with {host}:{port} failed")]
    Tls {
        host: String,
        port: u16,
        source: io::Error,
    },

    /// Authentication failed on the client side (the server's refusal is a [`Error::Server`]
    /// with SQLSTATE class 28).
    #[error("authentication of user \"{user}\" failed: {reason}")]
    Auth { user: String, reason: String },

    /// The server answered with an `ErrorResponse`.
    #[error("{0}")]
    Server(Box<ServerError>),

    /// An ordinary (tokio-postgres) connection or query failed.
    #[error("{action} failed")]
    Client {
        action: String,
        source: tokio_postgres::Error,
    },

    /// Reading or writing the replication connection failed.
    #[error("i/o error on the replication connection")]
    Io { source: io::Error },

    /// The server closed the replication connection.
    #[error("the server closed the replication connection")]
    Closed,

    /// The table is not in the catalog.
    #[error("table {table} does not exist")]
    MissingTable { table: sluice_core::TableId },

    /// The server sent something the protocol does not allow here.
    #[error("protocol violation on the replication connection: {0}")]
    Protocol(String),
}

impl Error {
    /// A failed call of an ordinary connection.
    pub fn client(action: impl Into<String>, source: tokio_postgres::Error) -> Error {
        Error::Client {
            action: action.into(),
            source,
        }
    }

    /// Invalid connection settings.
    pub fn config(reason: impl Into<String>) -> Error {
        Error::Config {
            reason: reason.into(),
        }
    }

    /// The server's error, when the server sent one (also through tokio-postgres).
    pub fn server_error(&self) -> Option<ServerError> {
        match self {
            Error::Server(e) => Some((**e).clone()),
            Error::Client { source, .. } => source.as_db_error().map(|db| ServerError {
                severity: db.severity().to_owned(),
                code: db.code().code().to_owned(),
                message: db.message().to_owned(),
                detail: db.detail().map(str::to_owned),
                hint: db.hint().map(str::to_owned),
            }),
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
            Error::Config { .. }
            | Error::RootCertificate { .. }
            | Error::TlsRefused { .. }
            | Error::Auth { .. }
            | Error::MissingTable { .. } => ErrorClass::Fatal,
            Error::Connect { .. }
            | Error::ConnectTimeout { .. }
            | Error::Io { .. }
            | Error::Closed => ErrorClass::Transient,
            Error::Tls { source, .. } => {
                if is_tls_verification_failure(source) {
                    ErrorClass::Fatal
                } else {
                    ErrorClass::Transient
                }
            }
            Error::Server(e) => ErrorClass::from_sqlstate(&e.code),
            Error::Client { source, .. } => client_class(source),
            Error::Protocol(_) => ErrorClass::Transient,
        }
    }
}

impl Classify for Error {
    fn class(&self) -> ErrorClass {
        Error::class(self)
    }
}

/// Whether a handshake error is the peer failing verification (a configuration problem that
/// retrying does not fix) rather than a network problem.
fn is_tls_verification_failure(e: &io::Error) -> bool {
    let Some(inner) = e.get_ref() else {
        return false;
    };
    match inner.downcast_ref::<rustls::Error>() {
        Some(
            rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::UnsupportedNameType
            | rustls::Error::PeerIncompatible(_)
            | rustls::Error::AlertReceived(_),
        ) => true,
        Some(_) | None => false,
    }
}

fn client_class(e: &tokio_postgres::Error) -> ErrorClass {
    if let Some(db) = e.as_db_error() {
        return ErrorClass::from_sqlstate(db.code().code());
    }
    // tokio-postgres' error kinds are private; its fixed messages name them.
    let text = e.to_string();
    if text.starts_with("authentication error")
        || text.starts_with("invalid configuration")
        || text.starts_with("invalid connection string")
    {
        return ErrorClass::Fatal;
    }
    ErrorClass::Transient
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: &str) -> Error {
        Error::Server(Box::new(ServerError {
            severity: "ERROR".into(),
            code: code.into(),
            message: "m".into(),
            detail: None,
            hint: None,
        }))
    }

    #[test]
    fn mapping_table() {
        let io = || io::Error::new(io::ErrorKind::ConnectionReset, "reset");
        let cert_failure = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let cases = [
            (server("08006"), ErrorClass::Transient),
            (server("08P01"), ErrorClass::Transient),
            (server("28P01"), ErrorClass::Fatal),
            (server("28000"), ErrorClass::Fatal),
            (server("42704"), ErrorClass::Definite),
            (server("42601"), ErrorClass::Definite),
            (server("3D000"), ErrorClass::Definite),
            (server("3F000"), ErrorClass::Definite),
            (server("XX000"), ErrorClass::Transient),
            (server("55006"), ErrorClass::Transient),
            (Error::config("x"), ErrorClass::Fatal),
            (
                Error::RootCertificate {
                    path: "/x".into(),
                    source: io(),
                },
                ErrorClass::Fatal,
            ),
            (
                Error::Connect {
                    host: "h".into(),
                    port: 1,
                    source: io(),
                },
                ErrorClass::Transient,
            ),
            (
                Error::ConnectTimeout {
                    host: "h".into(),
                    port: 1,
                },
                ErrorClass::Transient,
            ),
            (
                Error::TlsRefused {
                    host: "h".into(),
                    port: 1,
                    sslmode: SslMode::Require,
                },
                ErrorClass::Fatal,
            ),
            (
                Error::Tls {
                    host: "h".into(),
                    port: 1,
                    source: cert_failure,
                },
                ErrorClass::Fatal,
            ),
            (
                Error::Tls {
                    host: "h".into(),
                    port: 1,
                    source: io(),
                },
                ErrorClass::Transient,
            ),
            (
                Error::Auth {
                    user: "u".into(),
                    reason: "r".into(),
                },
                ErrorClass::Fatal,
            ),
            (Error::Io { source: io() }, ErrorClass::Transient),
            (Error::Closed, ErrorClass::Transient),
            (Error::Protocol("p".into()), ErrorClass::Transient),
        ];
        for (error, class) in cases {
            assert_eq!(error.class(), class, "{error:?}");
        }
    }

    #[test]
    fn display_is_lowercase_and_omits_the_source() {
        let e = Error::Connect {
            host: "db".into(),
            port: 5432,
            source: io::Error::new(io::ErrorKind::ConnectionRefused, "SOURCE TEXT"),
        };
        assert_eq!(e.to_string(), "could not connect to db:5432");
        let e = Error::Server(Box::new(ServerError {
            severity: "ERROR".into(),
            code: "42704".into(),
            message: "replication slot \"x\" does not exist".into(),
            detail: Some("d".into()),
            hint: Some("h".into()),
        }));
        assert_eq!(
            e.to_string(),
            "replication slot \"x\" does not exist (sqlstate 42704); detail: d; hint: h"
        );
        assert_eq!(e.sqlstate().as_deref(), Some("42704"));
    }
}
