//! The crate's one error type and its classification.
//!
//! Mapping (unit tested below):
//!
//! | error | class | why |
//! |---|---|---|
//! | `InUse` | fatal | another process owns the log; an operator must stop one of them |
//! | `Corrupt`, `Decode` | fatal | the bytes on disk are damaged; retrying reads the same bytes |
//! | `NotRetained`, `BeyondEnd`, `BadPosition` | fatal | the stored position does not fit this log |
//! | `RecordTooLarge`, `Config` | fatal | the same input fails the same way |
//! | `Io` | transient, except missing files and permissions (fatal) | disk full, interrupted I/O |
//! | `Task` | fatal | a blocking task panicked or the runtime is shutting down |
//! | `BacklogFull` | transient | the loader catches up and frees space |

use std::io;
use std::path::PathBuf;

use sluice_core::{Classify, ErrorClass, RecordError};
use thiserror::Error;

/// Result of a change log operation.
pub type Result<T, E = LogError> = std::result::Result<T, E>;

/// A failure of the local change log.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LogError {
    /// Another writer holds the directory lock.
    #[error("change log \"{dir}\" is in use by another process")]
    InUse { dir: PathBuf },
    /// A segment's bytes are damaged somewhere a crash cannot explain.
    #[error("corrupt change log segment \"{segment}\" at byte {at}: {what}")]
    Corrupt {
        segment: PathBuf,
        at: u64,
        what: String,
    },
    /// A record's checksum is fine but its payload is not a record this build understands.
    #[error("change log record {offset} in segment \"{segment}\" cannot be decoded")]
    Decode {
        segment: PathBuf,
        offset: u64,
        #[source]
        source: RecordError,
    },
    /// A position before the oldest retained record.
    #[error("change log position {requested} is no longer retained (oldest is {oldest})")]
    NotRetained { requested: u64, oldest: u64 },
    /// A position after the last record.
    #[error("change log position {requested} is beyond the end of the log (next record is {end})")]
    BeyondEnd { requested: u64, end: u64 },
    /// A position that this log did not issue.
    #[error("change log position {position} is not a position of a local change log: {reason}")]
    BadPosition { position: String, reason: String },
    /// An encoded record does not fit the `u32` length of a frame.
    #[error("change log record of {len} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge { len: usize, max: u32 },
    /// Invalid options.
    #[error("log.{field}: {reason}")]
    Config { field: &'static str, reason: String },
    /// A file system operation failed.
    #[error("cannot {action} \"{path}\"")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A blocking file task did not complete.
    #[error("change log file task failed")]
    Task(#[source] tokio::task::JoinError),
    /// More is waiting to be loaded than the configured backlog allows: capture pauses (and
    /// the source retains WAL) until the loader catches up.
    #[error(
        "change log \"{dir}\" holds {bytes} bytes not yet loaded, over the {budget}-byte budget ([wal] absorb_backlog): capture pauses until the target catches up"
    )]
    BacklogFull {
        dir: PathBuf,
        bytes: u64,
        budget: u64,
    },
}

impl LogError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| LogError::Io {
            action,
            path,
            source,
        }
    }
}

impl Classify for LogError {
    fn class(&self) -> ErrorClass {
        match self {
            LogError::BacklogFull { .. } => ErrorClass::Transient,
            LogError::Io { source, .. } => match source.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => ErrorClass::Fatal,
                _ => ErrorClass::Transient,
            },
            LogError::InUse { .. }
            | LogError::Corrupt { .. }
            | LogError::Decode { .. }
            | LogError::NotRetained { .. }
            | LogError::BeyondEnd { .. }
            | LogError::BadPosition { .. }
            | LogError::RecordTooLarge { .. }
            | LogError::Config { .. }
            | LogError::Task(_) => ErrorClass::Fatal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(kind: io::ErrorKind) -> LogError {
        LogError::Io {
            action: "write change log segment",
            path: "/x/0.seg".into(),
            source: io::Error::from(kind),
        }
    }

    #[test]
    fn classes() {
        let cases = [
            (LogError::InUse { dir: "/x".into() }, ErrorClass::Fatal),
            (
                LogError::BacklogFull {
                    dir: "/x".into(),
                    bytes: 2,
                    budget: 1,
                },
                ErrorClass::Transient,
            ),
            (
                LogError::Corrupt {
                    segment: "/x/0.seg".into(),
                    at: 7,
                    what: "bad".into(),
                },
                ErrorClass::Fatal,
            ),
            (
                LogError::Decode {
                    segment: "/x/0.seg".into(),
                    offset: 3,
                    source: RecordError::Empty,
                },
                ErrorClass::Fatal,
            ),
            (
                LogError::NotRetained {
                    requested: 1,
                    oldest: 5,
                },
                ErrorClass::Fatal,
            ),
            (
                LogError::BeyondEnd {
                    requested: 9,
                    end: 5,
                },
                ErrorClass::Fatal,
            ),
            (
                LogError::BadPosition {
                    position: "x".into(),
                    reason: "y".into(),
                },
                ErrorClass::Fatal,
            ),
            (
                LogError::RecordTooLarge { len: 1, max: 0 },
                ErrorClass::Fatal,
            ),
            (
                LogError::Config {
                    field: "segment_bytes",
                    reason: "r".into(),
                },
                ErrorClass::Fatal,
            ),
            (io(io::ErrorKind::StorageFull), ErrorClass::Transient),
            (io(io::ErrorKind::Interrupted), ErrorClass::Transient),
            (io(io::ErrorKind::NotFound), ErrorClass::Fatal),
            (io(io::ErrorKind::PermissionDenied), ErrorClass::Fatal),
        ];
        for (e, class) in cases {
            assert_eq!(e.class(), class, "{e}");
        }
    }

    #[test]
    fn messages_name_the_object() {
        assert_eq!(
            LogError::Corrupt {
                segment: "/d/00000000000000000000.seg".into(),
                at: 22,
                what: "record checksum mismatch".into(),
            }
            .to_string(),
            "corrupt change log segment \"/d/00000000000000000000.seg\" at byte 22: record checksum mismatch"
        );
        assert_eq!(
            LogError::InUse { dir: "/d".into() }.to_string(),
            "change log \"/d\" is in use by another process"
        );
        assert_eq!(
            LogError::NotRetained {
                requested: 3,
                oldest: 10
            }
            .to_string(),
            "change log position 3 is no longer retained (oldest is 10)"
        );
    }
}
