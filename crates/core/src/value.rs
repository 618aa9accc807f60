//! Column values.
//!
//! A value is kept in PostgreSQL's text output format, the form `pgoutput` and `COPY` produce.
//! That form is lossless for every built-in type (exact numeric digits, `NaN` and infinities,
//! microsecond timestamps with their offset, array and JSON syntax, `\x` hex for bytea), so
//! nothing is rounded or reinterpreted between the source and the destination: each destination
//! parses the text according to the column's [`crate::PgType`] into its best native type.
//!
//! An unchanged TOASTed value (an update that did not touch a large column) is
//! [`Value::Unchanged`], never a NULL: the destination must keep what it holds.

use serde::{Deserialize, Serialize};

/// One column value of a row image.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// The source did not send this value because it did not change (unchanged TOAST).
    Unchanged,
    /// The value in PostgreSQL's text output format.
    Text(String),
}

impl Value {
    /// The text form, if the value is present.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            Value::Null | Value::Unchanged => None,
        }
    }

    /// Approximate in-memory size, for byte budgets: the value itself plus its text's heap
    /// allocation.
    pub fn size(&self) -> usize {
        match self {
            Value::Text(s) => std::mem::size_of::<Value>() + s.capacity(),
            Value::Null | Value::Unchanged => std::mem::size_of::<Value>(),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}
