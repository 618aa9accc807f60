//! Errors as the binary handles them: a class (what to do), the stage it came from, and the
//! error chain, printed once where it is handled.

use std::fmt;

use sluice_core::{Classify, ErrorClass, TableId};

/// A stage's error with its class.
pub struct Failure {
    pub class: ErrorClass,
    /// The part of the system that failed (`"source"`, `"target"`, `"change log"`).
    pub what: &'static str,
    /// The one table a definite error wedges, when the others can go on without it.
    pub table: Option<TableId>,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn from_error<E>(what: &'static str, error: E) -> Self
    where
        E: std::error::Error + Classify + Send + Sync + 'static,
    {
        Failure {
            class: error.class(),
            what,
            table: error.wedged_table().cloned(),
            error: anyhow::Error::new(error),
        }
    }

    pub fn fatal(what: &'static str, error: anyhow::Error) -> Self {
        Failure {
            class: ErrorClass::Fatal,
            what,
            table: None,
            error,
        }
    }
}

impl Failure {
    /// The table to park for this failure: a definite error of the target that wedges one
    /// table only.
    pub fn parks(&self) -> Option<&TableId> {
        (self.class == ErrorClass::Definite && self.what == "target")
            .then_some(self.table.as_ref())
            .flatten()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:#}", self.what, self.error)
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self} ({:?})", self.class)
    }
}
