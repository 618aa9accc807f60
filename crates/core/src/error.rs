//! What the runtime should do with an error.
//!
//! Every crate's error type can say which [`ErrorClass`] it belongs to. The runtime retries
//! transient errors with jittered backoff, parks the table or batch on definite errors and stops
//! on fatal ones.

use serde::{Deserialize, Serialize};

use crate::TableId;

/// The runtime's reaction to an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorClass {
    /// Retry with jittered backoff: connection loss, timeouts, server restarts.
    Transient,
    /// This table or batch is wedged: park it, surface it, keep the rest flowing.
    Definite,
    /// Stop: an operator must act (bad credentials, missing privilege, corrupt data).
    Fatal,
}

impl ErrorClass {
    /// The class of a PostgreSQL error by its SQLSTATE, following the house mapping:
    /// class 08 (connection) and 57P (operator intervention, like a shutdown) are transient,
    /// 28 (invalid authorization) and 42501 (insufficient privilege) are fatal, 42 (syntax or
    /// access rule), 3D (invalid catalog name) and 3F (invalid schema name) are definite, and
    /// anything else is transient.
    pub fn from_sqlstate(code: &str) -> ErrorClass {
        match code {
            "42501" => return ErrorClass::Fatal,
            "55006" | "53300" | "40001" | "40P01" => return ErrorClass::Transient,
            _ => {}
        }
        match code.get(..2) {
            Some("08") | Some("57") | Some("53") => ErrorClass::Transient,
            Some("28") => ErrorClass::Fatal,
            Some("42") | Some("3D") | Some("3F") | Some("22") | Some("23") => ErrorClass::Definite,
            _ => ErrorClass::Transient,
        }
    }
}

/// Implemented by every crate's error type.
pub trait Classify {
    /// What the runtime should do with this error.
    fn class(&self) -> ErrorClass;

    /// The one source table a definite error wedges, when loading can go on without it: the
    /// loader parks that table and keeps the others flowing. `None` (the default) when the
    /// error concerns the whole batch or stage.
    fn wedged_table(&self) -> Option<&TableId> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstate_mapping() {
        let cases = [
            ("08006", ErrorClass::Transient),
            ("08001", ErrorClass::Transient),
            ("57P01", ErrorClass::Transient),
            ("53300", ErrorClass::Transient),
            ("40001", ErrorClass::Transient),
            ("28P01", ErrorClass::Fatal),
            ("28000", ErrorClass::Fatal),
            ("42501", ErrorClass::Fatal),
            ("42P01", ErrorClass::Definite),
            ("42601", ErrorClass::Definite),
            ("3D000", ErrorClass::Definite),
            ("3F000", ErrorClass::Definite),
            ("22P02", ErrorClass::Definite),
            ("23505", ErrorClass::Definite),
            ("XX000", ErrorClass::Transient),
            ("", ErrorClass::Transient),
        ];
        for (code, class) in cases {
            assert_eq!(ErrorClass::from_sqlstate(code), class, "{code}");
        }
    }
}
