//! Table identity and relation schemas.
//!
//! A [`RelationSchema`] describes a source table as the change stream last described it: its
//! columns in attribute order with their PostgreSQL types, which columns identify a row, and a
//! version that changes whenever the description does. Row images in [`crate::Change`] are
//! aligned with the columns of the schema they were captured under.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::pg_type::PgType;

/// A source table: schema (namespace) and name, both unquoted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TableId {
    pub schema: String,
    pub name: String,
}

impl TableId {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        TableId {
            schema: schema.into(),
            name: name.into(),
        }
    }
}

/// Prints `schema.name` with each part double-quoted, so names with dots or quotes stay
/// unambiguous in messages.
impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "\"{}\".\"{}\"",
            self.schema.replace('"', "\"\""),
            self.name.replace('"', "\"\"")
        )
    }
}

/// How the source identifies the old row of updates and deletes (`REPLICA IDENTITY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReplicaIdentity {
    /// The primary key (or nothing when the table has none).
    Default,
    /// No old row at all: updates and deletes cannot be matched.
    Nothing,
    /// The whole old row.
    Full,
    /// The columns of a unique index.
    Index,
}

/// One column of a relation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// The PostgreSQL type OID.
    pub type_oid: u32,
    /// The type modifier (`atttypmod`), `-1` when none.
    pub type_modifier: i32,
    /// Whether the column is part of the row identity (primary key or replica identity index).
    pub key: bool,
    /// Whether the column may be NULL; `true` when unknown (the change stream does not say).
    pub nullable: bool,
}

impl Column {
    /// The mapped type of this column.
    pub fn pg_type(&self) -> PgType {
        PgType::from_oid(self.type_oid, self.type_modifier)
    }
}

/// The description of a source table at one point of the change stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RelationSchema {
    pub table: TableId,
    /// The table's OID at the source. Changes refer to relations by OID on the wire.
    pub oid: u32,
    /// Bumped whenever columns, types, keys or identity change for this table.
    pub version: u32,
    pub replica_identity: ReplicaIdentity,
    pub columns: Vec<Column>,
}

impl RelationSchema {
    /// Positions of the identity columns, in column order.
    pub fn key_positions(&self) -> Vec<usize> {
        self.columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.key)
            .map(|(i, _)| i)
            .collect()
    }

    /// Whether rows can be matched by key: some column is part of the identity.
    pub fn has_key(&self) -> bool {
        self.columns.iter().any(|c| c.key)
    }

    /// Position of the column with this name.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Whether `other` describes the same columns, types and identity (ignoring version).
    pub fn same_shape(&self, other: &RelationSchema) -> bool {
        self.table == other.table
            && self.replica_identity == other.replica_identity
            && self.columns == other.columns
    }
}
