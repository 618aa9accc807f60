//! The test kit's errors.

use std::io;
use std::path::PathBuf;

/// Result alias of the test kit.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a throwaway cluster could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system or process operation failed.
    #[error("{action} failed")]
    Io {
        /// What was being done, e.g. `create directory "/tmp/x"`.
        action: String,
        source: io::Error,
    },
    /// A PostgreSQL program (`initdb`, `psql`) exited with an error.
    #[error("{program} exited with {status}: {output}")]
    Program {
        program: String,
        status: String,
        output: String,
    },
    /// The server did not become ready or exited during start-up.
    #[error("postgres in \"{data_dir}\" did not start: {log_tail}")]
    Start { data_dir: PathBuf, log_tail: String },
    /// Generating the test certificates failed.
    #[error("generating the test certificate failed")]
    Certificate { source: rcgen::Error },
    /// A query against the test cluster failed.
    #[error("query against the test cluster failed")]
    Query { source: tokio_postgres::Error },
}

impl Error {
    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
        let action = action.into();
        move |source| Error::Io { action, source }
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(source: tokio_postgres::Error) -> Self {
        Error::Query { source }
    }
}

impl From<rcgen::Error> for Error {
    fn from(source: rcgen::Error) -> Self {
        Error::Certificate { source }
    }
}
