//! Errors of the PostgreSQL destination and what the runtime should do with them.
//!
//! | error | class |
//! |---|---|
//! | `Config` | fatal |
//! | `Connect` | as the connection error says (unreachable: transient, authentication: fatal) |
//! | `Sql` | by SQLSTATE ([`ErrorClass::from_sqlstate`]); without one (connection lost): transient |
//! | `Value`, `Schema` | definite: this batch is wedged |
//! | `Checkpoint`, `NotOpen` | fatal |

use sluice_core::{Classify, ErrorClass, TableId};

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
        source: sluice_postgres::Error,
    },

    /// A statement failed.
    #[error("the target failed while {context}")]
    Sql {
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },

    /// A value cannot be stored in its target column.
    #[error("table {table} column \"{column}\": {reason}", column = column.replace('"', "\"\""))]
    Value {
        table: String,
        column: String,
        reason: String,
    },

    /// The source changed a table in a way the target cannot follow safely.
    #[error("table {table}: {reason}")]
    Schema {
        table: String,
        reason: String,
        /// The source table wedged by it, when it concerns that table alone (the loader
        /// parks it and loads the others).
        parks: Option<TableId>,
    },

    /// The stored checkpoint cannot be read back.
    #[error("checkpoint of pipeline \"{pipeline}\" in the target is unreadable: {reason}")]
    Checkpoint { pipeline: String, reason: String },

    /// `apply` was called before `open`.
    #[error("apply called before open: the destination does not know its pipeline yet")]
    NotOpen,
}

impl Error {
    /// A constructor for `map_err` on statement failures.
    pub(crate) fn sql(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
        let context = context.into();
        move |source| Error::Sql { context, source }
    }

    /// The SQLSTATE of a statement failure.
    pub(crate) fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Sql { source, .. } => source.code().map(|c| c.code()),
            _ => None,
        }
    }
}

impl From<sluice_sql::SchemaError> for Error {
    fn from(e: sluice_sql::SchemaError) -> Self {
        Error::Schema {
            table: e.table,
            reason: e.reason,
            parks: Some(e.source_table),
        }
    }
}

impl Classify for Error {
    fn class(&self) -> ErrorClass {
        match self {
            Error::Config(_) | Error::Checkpoint { .. } | Error::NotOpen => ErrorClass::Fatal,
            Error::Connect { source, .. } => source.class(),
            Error::Sql { .. } => self
                .sqlstate()
                .map_or(ErrorClass::Transient, ErrorClass::from_sqlstate),
            Error::Value { .. } | Error::Schema { .. } => ErrorClass::Definite,
        }
    }

    fn wedged_table(&self) -> Option<&TableId> {
        match self {
            Error::Schema { parks, .. } => parks.as_ref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(Error::Config("x".into()).class(), ErrorClass::Fatal);
        assert_eq!(Error::NotOpen.class(), ErrorClass::Fatal);
        let value = Error::Value {
            table: "\"raw\".\"t\"".into(),
            column: "a\"b".into(),
            reason: "bad".into(),
        };
        assert_eq!(value.class(), ErrorClass::Definite);
        assert_eq!(
            value.to_string(),
            "table \"raw\".\"t\" column \"a\"\"b\": bad"
        );
        let schema: Error = sluice_sql::SchemaError {
            table: "t".into(),
            source_table: TableId::new("public", "t"),
            reason: "r".into(),
        }
        .into();
        assert_eq!(schema.class(), ErrorClass::Definite);
        assert_eq!(
            schema.wedged_table(),
            Some(&TableId::new("public", "t")),
            "an unsafe schema change parks its table"
        );
        assert_eq!(value.wedged_table(), None);
    }
}
