//! Errors of the DuckDB destination and what the runtime should do with them.
//!
//! DuckDB reports failures as a message whose prefix names the exception type
//! (`Conversion Error: ...`, `IO Error: ...`); [`class_of_duckdb`] maps that prefix to an
//! [`ErrorClass`]. The mapping table is [`DUCKDB_CLASSES`], unit tested below.

use std::path::PathBuf;

use sluice_core::{Classify, ErrorClass};

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while loading into DuckDB.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid (`validate`).
    #[error("{0}")]
    Config(String),

    /// Another process holds the database file's lock.
    #[error(
        "database file \"{}\" is locked by another process. Stop the other process (another \
         sluice, or a DuckDB client holding it open) or point target.path elsewhere",
        path.display()
    )]
    Locked {
        path: PathBuf,
        #[source]
        source: duckdb::Error,
    },

    /// The database file cannot be opened (permissions, not a DuckDB file, newer format).
    #[error("cannot open database file \"{}\"", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: OpenSource,
    },

    /// A statement failed.
    #[error("duckdb failed while {context}")]
    Sql {
        context: String,
        #[source]
        source: duckdb::Error,
    },

    /// What verify or status read back is not what Sluice wrote.
    #[error("{what} in the target is unreadable: {reason}")]
    Unreadable { what: String, reason: String },

    /// The worker thread running DuckDB panicked or was cancelled.
    #[error("the duckdb worker thread stopped unexpectedly")]
    Worker(#[source] tokio::task::JoinError),
}

/// Why a database file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenSource {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    DuckDb(#[from] duckdb::Error),
}

/// DuckDB exception types (the prefix of its messages) and their class. Anything not listed is
/// transient, as the house rule says for unknown errors.
pub(crate) const DUCKDB_CLASSES: &[(&str, ErrorClass)] = &[
    // Bad data or a statement the target cannot run: this batch is wedged.
    ("Conversion Error", ErrorClass::Definite),
    ("Invalid Input Error", ErrorClass::Definite),
    ("Out of Range Error", ErrorClass::Definite),
    ("Constraint Error", ErrorClass::Definite),
    ("Catalog Error", ErrorClass::Definite),
    ("Binder Error", ErrorClass::Definite),
    ("Parser Error", ErrorClass::Definite),
    ("Dependency Error", ErrorClass::Definite),
    ("Not implemented Error", ErrorClass::Definite),
    ("Mismatch Type Error", ErrorClass::Definite),
    ("Invalid type Error", ErrorClass::Definite),
    // The environment: retry.
    ("IO Error", ErrorClass::Transient),
    ("Out of Memory Error", ErrorClass::Transient),
    ("Interrupt Error", ErrorClass::Transient),
    ("TransactionContext Error", ErrorClass::Transient),
    ("Serialization Error", ErrorClass::Transient),
    // The database refuses to go on (invalidated after a fatal error, read-only, no access).
    ("Permission Error", ErrorClass::Fatal),
    ("FATAL Error", ErrorClass::Fatal),
    ("INTERNAL Error", ErrorClass::Fatal),
];

/// The class of a DuckDB error by the exception type its message starts with.
pub(crate) fn class_of_duckdb(error: &duckdb::Error) -> ErrorClass {
    let message = error.to_string();
    DUCKDB_CLASSES
        .iter()
        .find(|(prefix, _)| {
            message
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with(':'))
        })
        .map_or(ErrorClass::Transient, |(_, class)| *class)
}

impl Classify for Error {
    fn class(&self) -> ErrorClass {
        match self {
            Error::Config(_) | Error::Unreadable { .. } => ErrorClass::Fatal,
            Error::Locked { .. } | Error::Worker(_) => ErrorClass::Transient,
            // A lock held elsewhere is `Locked`; any other failure to open (a path that cannot
            // be created, no permission, not a DuckDB file, a newer storage format) needs an
            // operator.
            Error::Open { .. } => ErrorClass::Fatal,
            Error::Sql { source, .. } => class_of_duckdb(source),
        }
    }
}

impl sluice_warehouse::SessionError for Error {}

impl Error {
    pub(crate) fn sql(context: impl Into<String>) -> impl FnOnce(duckdb::Error) -> Error {
        let context = context.into();
        move |source| Error::Sql { context, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(message: &str) -> duckdb::Error {
        duckdb::Error::DuckDBFailure(duckdb::ffi::Error::new(1), Some(message.to_owned()))
    }

    #[test]
    fn duckdb_mapping() {
        let cases = [
            (
                "Conversion Error: Could not convert string \"NaN\" to DECIMAL(10,2)",
                ErrorClass::Definite,
            ),
            (
                "Catalog Error: Table with name x does not exist!",
                ErrorClass::Definite,
            ),
            (
                "Parser Error: syntax error at or near \"x\"",
                ErrorClass::Definite,
            ),
            ("Constraint Error: Duplicate key", ErrorClass::Definite),
            (
                "IO Error: Could not set lock on file",
                ErrorClass::Transient,
            ),
            (
                "Out of Memory Error: failed to allocate",
                ErrorClass::Transient,
            ),
            (
                "FATAL Error: database has been invalidated",
                ErrorClass::Fatal,
            ),
            ("Permission Error: read-only", ErrorClass::Fatal),
            ("Something new: whatever", ErrorClass::Transient),
            ("IO Errorish: not a prefix match", ErrorClass::Transient),
        ];
        for (message, class) in cases {
            assert_eq!(class_of_duckdb(&failure(message)), class, "{message}");
        }
    }

    #[test]
    fn crate_errors() {
        assert_eq!(Error::Config("x".into()).class(), ErrorClass::Fatal);
        let locked = Error::Locked {
            path: "/tmp/x.duckdb".into(),
            source: failure("IO Error: Could not set lock on file"),
        };
        assert_eq!(locked.class(), ErrorClass::Transient);
        let sql = Error::Sql {
            context: "merging".into(),
            source: failure("Conversion Error: nope"),
        };
        assert_eq!(sql.class(), ErrorClass::Definite);
        assert_eq!(sql.to_string(), "duckdb failed while merging");
    }
}
