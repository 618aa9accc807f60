//! Errors of the SQL-warehouse driver and what the runtime should do with them.
//!
//! | error | class |
//! |---|---|
//! | `Config`, `Checkpoint`, `NotOpen` | fatal: an operator must act |
//! | `Session` | as the session's own mapping table says (SQLSTATE, engine exception type) |
//! | `PartsLost` | transient: the loader reads the transaction again from its checkpoint |
//! | `Value`, `Schema` | definite; both park their table when they concern one table alone |
//! | `Format` | definite: parks the table whose staged rows could not be written |

use sluice_core::{Classify, ErrorClass, TableId};

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error of a session's own (opening the database, a failed statement), classified by the
/// session's mapping table.
pub trait SessionError: std::error::Error + Classify + Send + Sync + 'static {
    /// The SQLSTATE (or the engine's equivalent code) of a failed statement, if any.
    fn code(&self) -> Option<&str> {
        None
    }
}

/// Everything that can go wrong while loading into a SQL warehouse.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid (`validate`).
    #[error("{0}")]
    Config(String),

    /// The session failed: opening the connection, or a statement.
    #[error(transparent)]
    Session(SessionFailure),

    /// A value cannot be stored in its target column. Parks the source table.
    #[error("{0}")]
    Value(Box<RefusedValue>),

    /// The source changed a table in a way the target cannot follow safely.
    #[error("table {table}: {reason}")]
    Schema {
        table: String,
        reason: String,
        /// The source table wedged by it, when it concerns that table alone (the loader
        /// parks it and loads the others).
        parks: Option<TableId>,
    },

    /// A table's staged rows could not be written in a file or batch format (Arrow,
    /// Parquet). The layout is fixed, so this is a defect, not bad input: park the table.
    #[error("table {target}: writing the staged rows as {format} failed")]
    Format {
        table: TableId,
        /// `schema.name` of the target, quoted.
        target: String,
        format: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The stored checkpoint cannot be read back.
    #[error("checkpoint of pipeline \"{pipeline}\" in the target is unreadable: {reason}")]
    Checkpoint { pipeline: String, reason: String },

    /// `apply` was called before `open`.
    #[error("apply called before open: the destination does not know its pipeline yet")]
    NotOpen,

    /// The connection was lost while parts of a large source transaction were applied in an
    /// open target transaction: they were rolled back with it.
    #[error(
        "the connection to the target was lost with parts of a large transaction applied; \
         they were rolled back and are loaded again"
    )]
    PartsLost,
}

/// A value a target column cannot hold: where it is, never what it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "table {target} column \"{column}\"{key}: {reason}",
    column = column.replace('"', "\"\""),
    key = key.as_ref().map(|k| format!(" at key {k}")).unwrap_or_default()
)]
pub struct RefusedValue {
    /// The source table, which the loader parks.
    pub table: TableId,
    /// `schema.name` of the target, quoted.
    pub target: String,
    pub column: String,
    /// The key of a row holding such a value (`(id)=(42)`), when it could be found.
    pub key: Option<String>,
    /// Why, never quoting the value.
    pub reason: String,
}

/// A session's error, boxed: its `Display` and `source()` are the session error's own.
#[derive(Debug)]
pub struct SessionFailure(Box<dyn SessionError>);

impl std::fmt::Display for SessionFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SessionFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl Error {
    /// A session's own error.
    pub fn session(e: impl SessionError) -> Error {
        Error::Session(SessionFailure(Box::new(e)))
    }

    /// The session's error, when this is one.
    pub fn session_error(&self) -> Option<&dyn SessionError> {
        match self {
            Error::Session(SessionFailure(e)) => Some(e.as_ref()),
            _ => None,
        }
    }

    /// The session's error as its concrete type, when this is one of that type.
    pub fn downcast_session<E: SessionError>(&self) -> Option<&E> {
        let e: &dyn std::error::Error = self.session_error()?;
        e.downcast_ref::<E>()
    }

    /// The SQLSTATE (or engine code) of a failed statement.
    pub fn code(&self) -> Option<&str> {
        self.session_error().and_then(SessionError::code)
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
            Error::Session(SessionFailure(e)) => e.class(),
            Error::PartsLost => ErrorClass::Transient,
            Error::Value(_) | Error::Schema { .. } | Error::Format { .. } => ErrorClass::Definite,
        }
    }

    fn wedged_table(&self) -> Option<&TableId> {
        match self {
            Error::Schema { parks, .. } => parks.as_ref(),
            Error::Value(refused) => Some(&refused.table),
            Error::Format { table, .. } => Some(table),
            Error::Session(SessionFailure(e)) => e.wedged_table(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_errors_park_their_table_and_name_column_and_key() {
        let value = Error::Value(Box::new(RefusedValue {
            table: TableId::new("public", "t"),
            target: "\"raw\".\"t\"".into(),
            column: "a\"b".into(),
            key: Some("(id)=(7)".into()),
            reason: "x".into(),
        }));
        assert_eq!(value.class(), ErrorClass::Definite);
        assert_eq!(value.wedged_table(), Some(&TableId::new("public", "t")));
        assert_eq!(
            value.to_string(),
            "table \"raw\".\"t\" column \"a\"\"b\" at key (id)=(7): x"
        );
    }

    #[test]
    fn schema_errors_park_only_when_they_name_one_table() {
        let schema: Error = sluice_sql::SchemaError {
            table: "t".into(),
            source_table: TableId::new("public", "t"),
            reason: "r".into(),
        }
        .into();
        assert_eq!(schema.class(), ErrorClass::Definite);
        assert_eq!(schema.wedged_table(), Some(&TableId::new("public", "t")));
        let both = Error::Schema {
            table: "t".into(),
            reason: "r".into(),
            parks: None,
        };
        assert_eq!(both.wedged_table(), None);
    }

    #[test]
    fn format_errors_park_their_table_and_keep_the_cause_out_of_the_message() {
        let format = Error::Format {
            table: TableId::new("public", "t"),
            target: "\"raw\".\"t\"".into(),
            format: "Parquet",
            source: "column count differs".into(),
        };
        assert_eq!(format.class(), ErrorClass::Definite);
        assert_eq!(format.wedged_table(), Some(&TableId::new("public", "t")));
        assert_eq!(
            format.to_string(),
            "table \"raw\".\"t\": writing the staged rows as Parquet failed"
        );
        let source = std::error::Error::source(&format).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("column count differs"));
    }

    #[test]
    fn lost_parts_are_retried_and_configuration_stops() {
        assert_eq!(Error::PartsLost.class(), ErrorClass::Transient);
        assert_eq!(Error::NotOpen.class(), ErrorClass::Fatal);
        assert_eq!(Error::Config("x".into()).class(), ErrorClass::Fatal);
    }
}
