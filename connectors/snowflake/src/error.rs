//! The errors of the Snowflake transport, and what the runtime should do with each.
//!
//! The mapping table is [`Error::class`]:
//!
//! | error | class |
//! |---|---|
//! | network error, timeout, HTTP 429, 502, 503, 504, any 5xx without a JSON body | transient |
//! | session or master token expired (390112, 390114, 390104) after renewal failed | transient |
//! | authentication refused (other 3901xx and 3902xx codes, e.g. 390100, 390144) | fatal |
//! | a bad private key, an unsupported stage, bad settings | fatal |
//! | an SQL error: by its SQLSTATE (`ErrorClass::from_sqlstate`), definite without one | by SQLSTATE |
//! | a JSON `success:false` answer with HTTP 5xx (fakesnow's unhandled statements) | definite |
//! | a result that cannot be decoded | definite |
//!
//! Nothing here holds a password, token, key or JWT.

use sluice_core::{Classify, ErrorClass};

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An answer of Snowflake with `success: false`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// The query it belongs to, when Snowflake gave one.
    pub query_id: Option<String>,
    /// Snowflake's error code, e.g. `002003`.
    pub code: String,
    /// The SQLSTATE, e.g. `42S02`, when Snowflake gave one.
    pub sql_state: Option<String>,
    pub message: String,
    /// The HTTP status of the answer (200 for ordinary SQL errors).
    pub http_status: u16,
}

impl ServerError {
    /// An authentication failure: wrong password, a JWT Snowflake refuses, a locked user.
    pub fn is_authentication(&self) -> bool {
        (self.code.starts_with("3901") || self.code.starts_with("3902"))
            && !self.is_session_expired()
    }

    /// The session (or its master token) expired or is gone: renew or log in again.
    pub fn is_session_expired(&self) -> bool {
        matches!(
            self.code.as_str(),
            SESSION_EXPIRED | MASTER_EXPIRED | LOGIN_AGAIN
        )
    }

    fn hint(&self) -> Option<&'static str> {
        match self.code.as_str() {
            "390100" => Some("Check the user name and password of the Snowflake user."),
            "390144" => Some(
                "Check that the public key registered for the user (ALTER USER … SET \
                 RSA_PUBLIC_KEY) belongs to the configured private key, and that the machine's \
                 clock is right.",
            ),
            _ if self.is_authentication() => {
                Some("Check the Snowflake user, its credentials and whether it is locked.")
            }
            _ => None,
        }
    }
}

/// The session token expired; the master token can renew it.
pub(crate) const SESSION_EXPIRED: &str = "390112";
/// The master token expired: only a new login helps.
pub(crate) const MASTER_EXPIRED: &str = "390114";
/// The session is unknown to the server (fakesnow's answer to a stale token).
pub(crate) const LOGIN_AGAIN: &str = "390104";

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "snowflake error {}", self.code)?;
        if let Some(state) = &self.sql_state {
            write!(f, " (sqlstate {state})")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(id) = &self.query_id {
            write!(f, "; query id {id}")?;
        }
        if let Some(hint) = self.hint() {
            write!(f, "; hint: {hint}")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong talking to Snowflake.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The settings are unusable (account, endpoint, file name).
    #[error("invalid snowflake settings: {0}")]
    Config(String),

    /// The private key could not be read.
    #[error("invalid private key: {reason}")]
    Key { reason: String },

    /// The request could not be sent or its answer not read (connection, TLS, timeout).
    #[error("{action} failed")]
    Http {
        action: &'static str,
        source: reqwest::Error,
    },

    /// An HTTP error status whose body is not a Snowflake answer.
    #[error("{action} failed with http status {status}: {body}")]
    Status {
        action: &'static str,
        status: u16,
        /// The start of the body, for the operator.
        body: String,
    },

    /// Snowflake answered `success: false`.
    #[error("{0}")]
    Server(Box<ServerError>),

    /// The answer is not what the protocol allows.
    #[error("malformed snowflake answer{}: {reason}", query_id.as_deref().map(|id| format!(" to query {id}")).unwrap_or_default())]
    Protocol {
        query_id: Option<String>,
        reason: String,
    },

    /// Something this client does not implement, such as an S3 or Azure stage upload.
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// Snowflake replaced the session with a new login in the middle of a batch: its
    /// temporary tables and open transaction are gone, so the batch is loaded again.
    #[error(
        "the Snowflake session expired and was replaced by a new login; the batch is loaded again"
    )]
    SessionReplaced,

    /// A statement that commits implicitly was about to run inside a load's transaction.
    #[error("refusing to run DDL inside a load's transaction (Snowflake would commit it): {0}")]
    DdlInTransaction(String),

    /// The target's settings or files are unusable (the key file cannot be read).
    #[error("{0}")]
    Target(String),
}

impl Error {
    pub(crate) fn protocol(query_id: Option<&str>, reason: impl Into<String>) -> Error {
        Error::Protocol {
            query_id: query_id.map(str::to_owned),
            reason: reason.into(),
        }
    }

    /// The query the error belongs to, when there is one.
    pub fn query_id(&self) -> Option<&str> {
        match self {
            Error::Server(e) => e.query_id.as_deref(),
            Error::Protocol { query_id, .. } => query_id.as_deref(),
            _ => None,
        }
    }

    /// The Snowflake answer, for an error Snowflake reported.
    pub fn server(&self) -> Option<&ServerError> {
        match self {
            Error::Server(e) => Some(e),
            _ => None,
        }
    }

    /// Worth retrying the same request: network errors, timeouts, overload and gateway errors.
    pub fn is_transient(&self) -> bool {
        self.class() == ErrorClass::Transient
    }
}

/// HTTP statuses that say "try again later".
pub(crate) fn transient_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

impl Classify for Error {
    fn class(&self) -> ErrorClass {
        match self {
            Error::Http { .. } => ErrorClass::Transient,
            Error::Status { status, .. } if transient_status(*status) || *status >= 500 => {
                ErrorClass::Transient
            }
            Error::Status { .. } => ErrorClass::Definite,
            Error::Server(e) if e.is_session_expired() => ErrorClass::Transient,
            Error::Server(e) if e.is_authentication() => ErrorClass::Fatal,
            Error::Server(e) if e.http_status >= 500 => ErrorClass::Definite,
            Error::Server(e) => match e.sql_state.as_deref() {
                Some(state) if !state.is_empty() => ErrorClass::from_sqlstate(state),
                _ => ErrorClass::Definite,
            },
            Error::Protocol { .. } => ErrorClass::Definite,
            Error::SessionReplaced => ErrorClass::Transient,
            Error::Config(_)
            | Error::Key { .. }
            | Error::Unsupported(_)
            | Error::DdlInTransaction(_)
            | Error::Target(_) => ErrorClass::Fatal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: &str, sql_state: Option<&str>, http_status: u16) -> Error {
        Error::Server(Box::new(ServerError {
            query_id: Some("01b2-q".into()),
            code: code.into(),
            sql_state: sql_state.map(str::to_owned),
            message: "m".into(),
            http_status,
        }))
    }

    #[test]
    fn mapping_table() {
        let status = |status| Error::Status {
            action: "query",
            status,
            body: String::new(),
        };
        let cases = [
            (status(429), ErrorClass::Transient),
            (status(502), ErrorClass::Transient),
            (status(503), ErrorClass::Transient),
            (status(504), ErrorClass::Transient),
            (status(500), ErrorClass::Transient),
            (status(400), ErrorClass::Definite),
            (server("390112", None, 200), ErrorClass::Transient),
            (server("390114", None, 200), ErrorClass::Transient),
            (server("390100", Some("08004"), 200), ErrorClass::Fatal),
            (server("390144", Some("08004"), 200), ErrorClass::Fatal),
            (server("002003", Some("42S02"), 200), ErrorClass::Definite),
            (server("100038", Some("22018"), 200), ErrorClass::Definite),
            (server("000604", Some("57014"), 200), ErrorClass::Transient),
            (server("261000", None, 500), ErrorClass::Definite),
            (server("000002", None, 200), ErrorClass::Definite),
            (Error::protocol(None, "x"), ErrorClass::Definite),
            (Error::Unsupported("S3".into()), ErrorClass::Fatal),
        ];
        for (err, class) in cases {
            assert_eq!(err.class(), class, "{err}");
        }
    }

    #[test]
    fn display_names_code_state_query_and_hint() {
        let err = server("390100", Some("08004"), 200);
        assert_eq!(
            err.to_string(),
            "snowflake error 390100 (sqlstate 08004): m; query id 01b2-q; hint: Check the user \
             name and password of the Snowflake user."
        );
        assert_eq!(err.query_id(), Some("01b2-q"));
    }
}
