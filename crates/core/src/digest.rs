//! Content digests for `sluice verify`: the same numbers computed at the source and in a
//! target, so a difference shows which keys differ.
//!
//! Every live row is rendered as **canonical text**: each column in a canonical form (integers,
//! numerics, text, uuid, json, dates and times as PostgreSQL prints them; booleans `true` /
//! `false`; floats in PostgreSQL's shortest form with `NaN`, `Infinity`, `-Infinity`;
//! timestamps and intervals as microseconds since the epoch / in total; bytea as lower-case
//! hex; `char(n)` without trailing blanks; arrays as JSON), NULL as `\x01`, columns joined by
//! `\x1f`. The row's **key text** is the same rendering of its key columns (of all columns for
//! tables without a key).
//!
//! - bucket of a row = first 8 hex digits of `md5(key text)` as an integer, modulo the bucket
//!   count;
//! - row hash = first 15 hex digits of `md5(row text)` as a (non-negative) 64-bit integer;
//! - a bucket's digest = its row count and the sum of its row hashes.
//!
//! Sums are order-independent, so neither side needs to sort; equal digests mean equal
//! content with overwhelming probability, and a differing bucket is narrowed down to keys by
//! comparing its `(key text, row hash)` pairs.

use std::collections::BTreeMap;
use std::future::Future;

use crate::{Checkpoint, Classify, Lsn, RelationSchema};

/// Row count and hash sum of one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketDigest {
    pub rows: u64,
    pub hash_sum: i128,
}

/// A table's digest: bucket number to digest (empty buckets absent).
pub type TableDigest = BTreeMap<u32, BucketDigest>;

/// A row's key text and row hash.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RowHash {
    pub key: String,
    pub hash: i64,
}

/// Reads what a target holds, for `sluice verify` and `sluice status`. Implemented by each
/// destination with its own SQL for the canonical forms of the module documentation.
pub trait Inspect: Send {
    type Error: std::error::Error + Classify + Send + Sync + 'static;

    /// The applied LSN of the pipeline's checkpoint, if it has one.
    fn applied_lsn(
        &mut self,
        pipeline: &str,
    ) -> impl Future<Output = Result<Option<Lsn>, Self::Error>> + Send;

    /// The pipeline's whole checkpoint (change-log position, applied LSN, commit time), for
    /// `sluice status`. `None` when there is none yet, including when the checkpoint table has
    /// not been created: a target nothing was loaded into is not an error.
    fn checkpoint(
        &mut self,
        pipeline: &str,
    ) -> impl Future<Output = Result<Option<Checkpoint>, Self::Error>> + Send;

    /// Whether the target has a table for this relation.
    fn has_table(
        &mut self,
        relation: &RelationSchema,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// The digest of the live (not soft-deleted) rows of the relation's target table.
    fn digest(
        &mut self,
        relation: &RelationSchema,
        buckets: u32,
    ) -> impl Future<Output = Result<TableDigest, Self::Error>> + Send;

    /// Key texts and row hashes of the live rows in the given buckets.
    fn rows_in(
        &mut self,
        relation: &RelationSchema,
        buckets: u32,
        which: &[u32],
    ) -> impl Future<Output = Result<Vec<RowHash>, Self::Error>> + Send;
}

/// Canonical-text separators and NULL marker, as SQL `chr()` arguments.
pub const COLUMN_SEPARATOR_CODE: u32 = 31;
pub const NULL_MARKER_CODE: u32 = 1;

/// The SQL of a row's key text and row text (`(key_sql, row_sql)`), given each column's
/// canonical-text expression in the engine's SQL. `concat_ws`, `coalesce` and `chr` mean the
/// same in every supported engine. Pure.
pub fn text_expressions(
    relation: &RelationSchema,
    canonical: impl Fn(&crate::Column) -> String,
) -> (String, String) {
    let all: Vec<usize> = (0..relation.columns.len()).collect();
    let keys = if relation.has_key() {
        relation.key_positions()
    } else {
        all.clone()
    };
    let text = |positions: &[usize]| {
        let parts: Vec<String> = positions
            .iter()
            .map(|&i| {
                format!(
                    "coalesce({}, chr({NULL_MARKER_CODE}))",
                    canonical(&relation.columns[i])
                )
            })
            .collect();
        format!(
            "concat_ws(chr({COLUMN_SEPARATOR_CODE}), {})",
            parts.join(", ")
        )
    };
    (text(&keys), text(&all))
}

/// Readable form of a key text: columns joined by `, `, NULL as `NULL`.
pub fn display_key(key: &str) -> String {
    key.split('\u{1f}')
        .map(|p| if p == "\u{1}" { "NULL" } else { p })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Differences between two sets of row hashes of the same buckets: keys missing in the target,
/// keys only in the target, and keys whose content differs. Each list is sorted.
pub fn diff_rows(source: &[RowHash], target: &[RowHash]) -> RowDiff {
    let s: BTreeMap<&str, Vec<i64>> = group(source);
    let t: BTreeMap<&str, Vec<i64>> = group(target);
    let mut diff = RowDiff::default();
    for (key, hashes) in &s {
        match t.get(key) {
            None => diff.missing.push((*key).to_owned()),
            Some(other) if other != hashes => diff.different.push((*key).to_owned()),
            Some(_) => {}
        }
    }
    for key in t.keys() {
        if !s.contains_key(key) {
            diff.extra.push((*key).to_owned());
        }
    }
    diff
}

fn group(rows: &[RowHash]) -> BTreeMap<&str, Vec<i64>> {
    let mut map: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for r in rows {
        map.entry(&r.key).or_default().push(r.hash);
    }
    for v in map.values_mut() {
        v.sort_unstable();
    }
    map
}

/// What differs between source and target rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowDiff {
    pub missing: Vec<String>,
    pub extra: Vec<String>,
    pub different: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rh(key: &str, hash: i64) -> RowHash {
        RowHash {
            key: key.into(),
            hash,
        }
    }

    #[test]
    fn diff_finds_missing_extra_and_changed() {
        let source = [rh("1", 10), rh("2", 20), rh("3", 30)];
        let target = [rh("3", 31), rh("1", 10), rh("4", 40)];
        let d = diff_rows(&source, &target);
        assert_eq!(d.missing, vec!["2"]);
        assert_eq!(d.extra, vec!["4"]);
        assert_eq!(d.different, vec!["3"]);
    }

    #[test]
    fn duplicates_count() {
        let d = diff_rows(&[rh("k", 1)], &[rh("k", 1), rh("k", 1)]);
        assert_eq!(d.different, vec!["k"]);
    }

    #[test]
    fn keys_display_readably() {
        assert_eq!(display_key("1\u{1f}\u{1}\u{1f}a b"), "1, NULL, a b");
    }
}
