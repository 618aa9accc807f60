//! SQL dialects of Sluice's warehouses: pure builders of every statement a destination runs.
//!
//! A [`SqlDialect`] owns, for one warehouse: identifier and literal quoting, the mapping from a
//! source column's [`PgType`] to a target type (each dialect's module documents its table),
//! DDL (schema, table, added column, widened type), the staging table, the MERGE guarded by
//! `_sluice_lsn` with soft or hard deletes, appends for tables without a key, truncate-below,
//! and the statements of the checkpoint table. Nothing here does I/O: destinations run the
//! statements, and the tests of each destination run them against the real engine.
//!
//! Four dialects: [`DuckDb`], [`Postgres`] (PostgreSQL 15 or later), [`Redshift`] and
//! [`Snowflake`].
//! [`plan`] uses a dialect to decide what DDL a relation needs against an existing table.
//!
//! ## The staging table and the MERGE
//!
//! Rows of one target table are staged into the temporary table [`STAGE`]: one text column
//! per relation column (`c0`, `c1`, ... in relation order) holding text the dialect's
//! [`SqlDialect::convert`] turns into the target type, then [`OP`] (`'U'` upsert, `'D'`
//! delete), `_sluice_lsn` (commit LSN as a signed 64-bit number), `_sluice_commit_ts`
//! (microseconds since the Unix epoch) and [`UNCHANGED`] (one `'0'`/`'1'` per column, `'1'`
//! where the value is an unchanged TOAST value; NULL when none is), then one [`MOVED_FROM`]
//! column per key column (`_sluice_from_0`, ... in key order): for an upsert produced by a
//! key change that still holds unchanged TOAST values ([`sluice_core::Row::moved_from`]),
//! the old key in staged text; NULL for every other row.
//!
//! When a batch stages such a moved row, the MERGE's source (`moved = true`) LEFT JOINs the
//! target on the old key and takes each unchanged value of a moved row from the target's row
//! of the old key, typed as stored (no round trip through text), clearing its unchanged mark:
//! the new key has nothing of its own to keep. The MERGE reads the target as it was before
//! it runs, so the old key's delete in the same MERGE does not hide the values. When the
//! target lacks the old key's row, the values are NULL.
//!
//! The MERGE applies a staged row only when its `_sluice_lsn` is newer than the target row's
//! (`s._sluice_lsn > t._sluice_lsn`), so a replayed or older change never overwrites a newer
//! one. An upsert of a row the target holds keeps the target's value where the staged value
//! is an unchanged TOAST value, and clears `_sluice_deleted` (an upsert newer than a soft
//! delete brings the row back). A soft delete of a held row sets `_sluice_deleted = true`
//! and keeps the values; a soft delete of a key the target lacks inserts a tombstone (the key,
//! NULLs, `_sluice_deleted = true`) so that an older change delivered later cannot resurrect
//! the row. A hard delete removes the row. Tables without a key get every upsert appended.

use std::fmt;

use sluice_core::{DeleteMode, Lsn, PgType, meta};

mod duckdb;
mod plan;
mod postgres;
mod redshift;
mod snowflake;
mod statement;

pub use duckdb::{DuckDb, DuckType};

/// Which staged rows a MERGE lets touch a target row, by their `_sluice_lsn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Only rows newer than the target row (`>`): a replayed change touches nothing.
    Newer,
    /// Rows at least as new (`>=`): for the later slices of a source transaction staged in
    /// parts within one target transaction, whose rows all share its commit position.
    NotOlder,
}

impl Guard {
    /// The guard for rows applied after earlier slices of the same source transaction were
    /// staged in this target transaction (`staged`) or not.
    pub fn after(staged: bool) -> Guard {
        if staged {
            Guard::NotOlder
        } else {
            Guard::Newer
        }
    }

    /// The comparison operator of the guard.
    pub fn operator(self) -> &'static str {
        match self {
            Guard::Newer => ">",
            Guard::NotOlder => ">=",
        }
    }

    /// The bound below which a truncate removes target rows, for a batch truncating below
    /// `below`: with [`Guard::NotOlder`], rows at `below` itself were written by earlier
    /// slices of the same source transaction, before its truncate, and go too.
    pub fn truncate_below(self, below: Lsn) -> Lsn {
        match self {
            Guard::Newer => below,
            Guard::NotOlder => Lsn(below.0.saturating_add(1)),
        }
    }
}
pub use plan::{RESERVED_PREFIX, SchemaError, TablePlan, array_dims, plan};
pub use postgres::{PgTarget, Postgres};
pub use redshift::{Redshift, RsType};
pub use snowflake::{STAGING_SCHEMA as SNOWFLAKE_STAGING_SCHEMA, SfType, Snowflake};

/// The staging table's name (a temporary table in every dialect).
pub const STAGE: &str = "_sluice_stage";
/// Staging column: `'U'` (upsert) or `'D'` (delete).
pub const OP: &str = "_sluice_op";
/// Staging column: which values are unchanged TOAST values (`'1'` at their position).
pub const UNCHANGED: &str = "_sluice_unchanged";
/// Prefix of the staging columns holding a moved row's old key: `_sluice_from_0`, ...
pub const MOVED_FROM: &str = "_sluice_from_";

/// The staging column holding the old key's value of the `j`-th key column.
pub fn moved_from_column(j: usize) -> String {
    format!("{MOVED_FROM}{j}")
}

/// One relation column as loaded into the target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetColumn<T> {
    pub name: String,
    pub ty: T,
    /// Part of the key the MERGE matches on.
    pub key: bool,
}

/// What the checkpoint table stores for one pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow<'a> {
    pub pipeline: &'a str,
    /// The change-log position as JSON text.
    pub position: &'a str,
    /// End LSN of the last source transaction applied, bit for bit as a signed 64-bit number.
    pub applied_lsn: i64,
    /// The same LSN in PostgreSQL's `X/Y` form, for people reading the table.
    pub applied_lsn_text: &'a str,
    /// Commit time of that transaction, microseconds since the Unix epoch.
    pub applied_commit_ts: i64,
}

/// The SQL of one warehouse. Every method is a pure function of its arguments and the
/// dialect's settings; identifiers reach SQL only through [`SqlDialect::quote_ident`] and
/// literals only through [`SqlDialect::quote_literal`].
///
/// Statements that take `schema` and `table` name the target table `schema.table`. Column
/// lists (`columns`) are in relation order and match the staging table's `c0`, `c1`, ...
pub trait SqlDialect: Clone {
    /// A column type of this warehouse, printed as written in DDL.
    type Type: Clone + PartialEq + fmt::Debug + fmt::Display + Send + Sync + 'static;

    /// The warehouse's name, for messages.
    fn name(&self) -> &'static str;

    /// A quoted identifier: wrapped in double quotes, inner double quotes doubled.
    fn quote_ident(&self, ident: &str) -> String {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }

    /// A quoted string literal: wrapped in single quotes, inner single quotes doubled.
    fn quote_literal(&self, text: &str) -> String {
        format!("'{}'", text.replace('\'', "''"))
    }

    /// The longest identifier the warehouse keeps whole, in bytes (longer ones would be
    /// truncated or refused by the engine); `None` when unlimited.
    fn max_identifier_bytes(&self) -> Option<usize> {
        None
    }

    /// `schema.table`, both quoted.
    fn qualified(&self, schema: &str, table: &str) -> String {
        format!("{}.{}", self.quote_ident(schema), self.quote_ident(table))
    }

    /// A column name as the source names it, from the name [`SqlDialect::table_columns`]
    /// prints (the same unless the warehouse changes the case of names).
    fn column_from_catalog(&self, name: &str) -> String {
        name.to_owned()
    }

    /// Whether DDL (temporary tables included) commits the open transaction. The driver then
    /// creates and stages every table before `BEGIN`, each table in a staging table of its own
    /// ([`SqlDialect::with_stage`]), and runs only DML inside the transaction.
    fn ddl_commits(&self) -> bool {
        false
    }

    /// The dialect naming the `n`-th staging table in [`SqlDialect::stage`]; only dialects
    /// whose DDL commits ([`SqlDialect::ddl_commits`]) keep several at once.
    fn with_stage(&self, _n: usize) -> Self {
        self.clone()
    }

    /// The current time as a timestamp with time zone (`_sluice_synced_at`).
    fn now(&self) -> &'static str {
        "current_timestamp"
    }

    // ---- types ----

    /// The target type of a source column. `array_depth` is the number of dimensions an
    /// array column gets where the target fixes it (DuckDB lists); others ignore it.
    fn map_type(&self, pg: &PgType, array_depth: usize) -> Self::Type;

    /// Why a source column of type `pg` is stored as its exact PostgreSQL text instead of a
    /// native type of this target (the documented lossless fallback), or `None` when it maps
    /// to a native type. `sluice check` lists such columns.
    fn kept_as_text(&self, _pg: &PgType) -> Option<&'static str> {
        None
    }

    /// The number of array dimensions of an existing column's type, passed back to
    /// [`SqlDialect::map_type`] when the column is compared with a new relation.
    fn array_depth(&self, _ty: &Self::Type) -> usize {
        1
    }

    /// Parses a type as the catalog query of [`SqlDialect::table_columns`] prints it.
    fn parse_type(&self, catalog: &str) -> Option<Self::Type>;

    /// Whether every value of `from` converts into `to` exactly: `to` can replace `from`
    /// without losing or changing a value.
    fn converts_exactly(&self, from: &Self::Type, to: &Self::Type) -> bool;

    /// Why the source text `text` cannot be stored in a column of type `ty` (without
    /// quoting the value), or `None` when it can as far as a pure check can tell. Engines
    /// whose casts are checked by a query or fail loudly by themselves need no rule here.
    fn reject(&self, _ty: &Self::Type, _text: &str) -> Option<String> {
        None
    }

    // ---- DDL ----

    fn create_schema(&self, schema: &str) -> String {
        format!("CREATE SCHEMA IF NOT EXISTS {}", self.quote_ident(schema))
    }

    /// The target table: the relation's columns, then the metadata columns.
    fn create_table(
        &self,
        schema: &str,
        table: &str,
        columns: &[TargetColumn<Self::Type>],
    ) -> String {
        statement::create_table(self, schema, table, columns)
    }

    fn add_column(&self, schema: &str, table: &str, column: &str, ty: &Self::Type) -> String {
        format!(
            "ALTER TABLE {} ADD COLUMN {} {ty}",
            self.qualified(schema, table),
            self.quote_ident(column)
        )
    }

    /// Changes a column's type to `ty` (a widening [`SqlDialect::converts_exactly`] allows).
    fn alter_column_type(
        &self,
        schema: &str,
        table: &str,
        column: &str,
        ty: &Self::Type,
    ) -> String {
        format!(
            "ALTER TABLE {} ALTER COLUMN {} SET DATA TYPE {ty}",
            self.qualified(schema, table),
            self.quote_ident(column)
        )
    }

    /// `(column_name, type)` rows of a table, in column order; no rows when it does not exist.
    fn table_columns(&self, schema: &str, table: &str) -> String;

    // ---- staging ----

    /// How statements refer to the staging table.
    fn stage(&self) -> String;

    /// Creates the staging table for `columns` relation columns, `keys` of them key columns
    /// (each gets a [`MOVED_FROM`] column).
    fn create_stage(&self, columns: usize, keys: usize) -> String;

    fn drop_stage(&self) -> String {
        format!("DROP TABLE IF EXISTS {}", self.stage())
    }

    /// The expression converting staged text `expr` into `ty`.
    fn convert(&self, expr: &str, ty: &Self::Type) -> String;

    /// A timestamp with time zone from an expression holding microseconds since the Unix
    /// epoch, exact and independent of the session time zone.
    fn timestamptz_from_micros(&self, expr: &str) -> String;

    // ---- loading ----

    /// The statements applying the staged rows of a keyed table, in order. The default is
    /// one MERGE whose WHEN clauses carry the `_sluice_lsn` guard. `moved` says whether some
    /// staged row has an old key ([`MOVED_FROM`]) whose target row fills its unchanged values,
    /// `unchanged` whether some staged row has an unchanged TOAST value at all (without one,
    /// an update need not read the target row's values).
    #[allow(clippy::too_many_arguments)]
    fn merge(
        &self,
        schema: &str,
        table: &str,
        columns: &[TargetColumn<Self::Type>],
        deletes: DeleteMode,
        moved: bool,
        unchanged: bool,
        guard: Guard,
    ) -> Vec<String> {
        vec![statement::guarded_merge(
            self, schema, table, columns, deletes, moved, unchanged, guard,
        )]
    }

    /// A query of one boolean: whether the target table holds a row with the key of any
    /// staged row. When it holds none and no staged row is a delete or moves a key, the MERGE
    /// would insert every row, and [`SqlDialect::append`] does the same for less.
    fn any_key_loaded(
        &self,
        schema: &str,
        table: &str,
        columns: &[TargetColumn<Self::Type>],
    ) -> String {
        format!(
            "SELECT EXISTS (SELECT 1 FROM {} AS t JOIN ({}) AS s ON ({}))",
            self.qualified(schema, table),
            statement::source(self, columns, false, None),
            statement::key_match(self, columns, "t", "s")
        )
    }

    /// Applies the staged rows of a table without a key: every upsert is appended.
    fn append(&self, schema: &str, table: &str, columns: &[TargetColumn<Self::Type>]) -> String {
        statement::append(self, schema, table, columns)
    }

    /// Removes rows written before `lsn` (a TRUNCATE at the source, or a restarted
    /// snapshot). Soft: marks them deleted, keeping their position so rows at `lsn` still
    /// apply; rows already marked are left alone, so a replay changes nothing.
    fn truncate_below(&self, schema: &str, table: &str, lsn: i64, deletes: DeleteMode) -> String {
        let q = |s| self.quote_ident(s);
        let l = q(meta::LSN);
        match deletes {
            DeleteMode::Soft => format!(
                "UPDATE {} SET {} = true, {} = {} WHERE {l} < {lsn} AND NOT {}",
                self.qualified(schema, table),
                q(meta::DELETED),
                q(meta::SYNCED_AT),
                self.now(),
                q(meta::DELETED),
            ),
            DeleteMode::Hard => {
                format!(
                    "DELETE FROM {} WHERE {l} < {lsn}",
                    self.qualified(schema, table)
                )
            }
        }
    }

    // ---- values the mapped type cannot hold ----

    /// A query over the staging table of one row with one BOOLEAN per listed column: whether
    /// some staged value of that column does not convert to its target type; with the
    /// positions of the columns it covers. `None` (the default) when the engine's casts fail
    /// loudly by themselves, or no column needs checking.
    fn check_stage(&self, _columns: &[TargetColumn<Self::Type>]) -> Option<(String, Vec<usize>)> {
        None
    }

    /// The statement that changes `column` of type `from` into a type holding PostgreSQL's
    /// exact text of every value (the documented lossless fallback), existing values
    /// converted, with that new type; `None` when this target has no such fallback for `from`
    /// (a value that does not convert is then a bad value).
    fn to_text(
        &self,
        _schema: &str,
        _table: &str,
        _column: &str,
        _from: &Self::Type,
    ) -> Option<(String, Self::Type)> {
        None
    }

    // ---- checkpoints ----

    /// `_sluice_checkpoints`: pipeline, position (JSON text), applied_lsn (bigint),
    /// applied_lsn_text, applied_commit_ts, updated_at.
    fn create_checkpoint_table(&self, schema: &str) -> String;

    /// Stores a pipeline's checkpoint, replacing the previous one.
    fn upsert_checkpoint(&self, schema: &str, row: &CheckpointRow<'_>) -> Vec<String>;

    /// `(position, applied_lsn, applied_commit_ts as epoch microseconds)` of a pipeline.
    fn select_checkpoint(&self, schema: &str, pipeline: &str) -> String;
}

#[cfg(test)]
mod tests;
