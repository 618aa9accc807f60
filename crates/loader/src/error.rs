//! The loader's errors: which side failed (the target or the change log), the error it gave
//! and its class, so the caller can retry, park or stop without knowing either side's type.

use std::error::Error as StdError;
use std::fmt::Write as _;

use sluice_core::{Classify, ErrorClass, LogPosition, TableId};

/// The error a side gave, with its chain.
pub type BoxedError = Box<dyn StdError + Send + Sync + 'static>;

pub type Result<T, E = LoadError> = std::result::Result<T, E>;

/// A failure of one loader run. `Display` names the side only; the side's error is the
/// [`source`](StdError::source), printed once by whoever handles this.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The destination failed (open, apply, apply_part, discard or ping).
    #[error("the target failed")]
    Target {
        class: ErrorClass,
        /// The one table a definite error wedges, when the others can go on without it.
        table: Option<TableId>,
        #[source]
        source: BoxedError,
    },
    /// The change log failed (seek, read or release), or holds what a loader cannot load.
    #[error("the change log failed")]
    ChangeLog {
        class: ErrorClass,
        #[source]
        source: BoxedError,
    },
}

/// A part of a large transaction whose earlier parts the log does not hold before it: capture
/// writes the parts of one transaction contiguously and from part 0, so the log is damaged.
#[derive(Debug, thiserror::Error)]
#[error(
    "change log record at {position:?} is a part of a transaction whose first part it does not follow"
)]
struct StrayPart {
    position: std::collections::BTreeMap<String, String>,
}

impl LoadError {
    /// An error of the destination.
    pub fn target<E>(error: E) -> LoadError
    where
        E: StdError + Classify + Send + Sync + 'static,
    {
        LoadError::Target {
            class: error.class(),
            table: error.wedged_table().cloned(),
            source: Box::new(error),
        }
    }

    /// An error of the change log.
    pub fn change_log<E>(error: E) -> LoadError
    where
        E: StdError + Classify + Send + Sync + 'static,
    {
        LoadError::ChangeLog {
            class: error.class(),
            source: Box::new(error),
        }
    }

    /// The record at `position` is a transaction part that follows no earlier part.
    pub(crate) fn stray_part(position: &LogPosition) -> LoadError {
        LoadError::ChangeLog {
            class: ErrorClass::Fatal,
            source: Box::new(StrayPart {
                position: position.partitions.clone(),
            }),
        }
    }

    /// The side that failed, as the runtime names it: `"target"` or `"change log"`.
    pub fn what(&self) -> &'static str {
        match self {
            LoadError::Target { .. } => "target",
            LoadError::ChangeLog { .. } => "change log",
        }
    }

    /// The side's error, for whoever reports it.
    pub fn into_source(self) -> BoxedError {
        match self {
            LoadError::Target { source, .. } | LoadError::ChangeLog { source, .. } => source,
        }
    }

    /// The side's error and its causes on one line, `error: cause: cause` (what a parked
    /// table's reason holds).
    pub(crate) fn reason(&self) -> String {
        let (LoadError::Target { source, .. } | LoadError::ChangeLog { source, .. }) = self;
        let mut text = source.to_string();
        let mut cause = source.source();
        while let Some(c) = cause {
            let _ = write!(text, ": {c}");
            cause = c.source();
        }
        text
    }
}

impl Classify for LoadError {
    fn class(&self) -> ErrorClass {
        match self {
            LoadError::Target { class, .. } | LoadError::ChangeLog { class, .. } => *class,
        }
    }

    fn wedged_table(&self) -> Option<&TableId> {
        match self {
            LoadError::Target { table, .. } => table.as_ref(),
            LoadError::ChangeLog { .. } => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A side's error for tests: a class, maybe a wedged table, maybe a cause.
    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    pub(crate) struct SideError {
        pub text: &'static str,
        pub class: ErrorClass,
        pub table: Option<TableId>,
        #[source]
        pub cause: Option<Box<SideError>>,
    }

    impl SideError {
        pub(crate) fn new(class: ErrorClass, table: Option<&str>) -> SideError {
            SideError {
                text: "table \"t\" cannot follow the schema change",
                class,
                table: table.map(|t| TableId::new("public", t)),
                cause: None,
            }
        }
    }

    impl Classify for SideError {
        fn class(&self) -> ErrorClass {
            self.class
        }

        fn wedged_table(&self) -> Option<&TableId> {
            self.table.as_ref()
        }
    }

    #[test]
    fn display_names_the_side_and_source_keeps_the_error() {
        let error = LoadError::target(SideError::new(ErrorClass::Definite, Some("t")));
        assert_eq!(error.to_string(), "the target failed");
        let source = error.source().map(ToString::to_string);
        assert_eq!(
            source.as_deref(),
            Some("table \"t\" cannot follow the schema change")
        );
        assert_eq!(error.what(), "target");
        assert_eq!(error.class(), ErrorClass::Definite);
        assert_eq!(error.wedged_table(), Some(&TableId::new("public", "t")));
    }

    #[test]
    fn change_log_errors_wedge_no_table() {
        let error = LoadError::change_log(SideError::new(ErrorClass::Transient, Some("t")));
        assert_eq!(error.what(), "change log");
        assert_eq!(error.class(), ErrorClass::Transient);
        assert_eq!(error.wedged_table(), None);
    }

    #[test]
    fn reason_is_the_error_and_its_causes_on_one_line() {
        let mut outer = SideError::new(ErrorClass::Definite, Some("t"));
        outer.cause = Some(Box::new(SideError {
            text: "column \"c\" changed type",
            ..SideError::new(ErrorClass::Definite, None)
        }));
        let error = LoadError::target(outer);
        assert_eq!(
            error.reason(),
            "table \"t\" cannot follow the schema change: column \"c\" changed type"
        );
    }

    #[test]
    fn a_stray_part_is_fatal_and_says_where_it_is() {
        let error = LoadError::stray_part(&LogPosition::single("0", 42));
        assert_eq!(error.what(), "change log");
        assert_eq!(error.class(), ErrorClass::Fatal);
        assert_eq!(
            error.into_source().to_string(),
            "change log record at {\"0\": \"42\"} is a part of a transaction whose first part it does not follow"
        );
    }
}
