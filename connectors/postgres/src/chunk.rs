//! Chunks of the initial snapshot: how a table is split so that several connections copy it
//! at once, and so that a restart after a crash copies again only what is not yet durable.
//!
//! - A table with a primary key, or else a replica identity index, is split by ranges of that
//!   key, in the index's column order (composite keys too). The boundaries are every N-th key
//!   in key order (`N` = `[source] snapshot_chunk_rows`), read once inside the exported
//!   snapshot. Chunk `i` holds the keys `b[i-1] <= key < b[i]` compared as row values
//!   (`(a, b) >= ('1', 'x')`); the first chunk has no lower bound and the last no upper one,
//!   so a key outside the sampled range (one inserted after the boundaries were read, when a
//!   resumed snapshot copies under a later snapshot) still falls in exactly one chunk.
//!   Boundaries are kept as the key types' output text and cast back with the column's type,
//!   so the comparison is the type's own btree order under the column's collation, the same
//!   order the boundaries were read in.
//! - A table without such a key is split by ranges of heap blocks (`ctid >= '(b,0)'`),
//!   which PostgreSQL 14 and later scan without reading other blocks (TID range scans); the
//!   last range is open-ended, as the table may have grown. Before 14 it is one chunk.
//!
//! Only key chunks can be copied again under a later snapshot on resume: the target's
//! position guard then makes the later copy win over rows of the earlier one. Block ranges
//! are not stable across snapshots and keyless tables are appended without a guard, so an
//! unfinished keyless table means the snapshot starts over (see the `snapshot` module).

use serde::{Deserialize, Serialize};
use sluice_core::RelationSchema;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::error::{Error, Result};
use sluice_postgres_client::{quote_ident, quote_literal};

/// A column of the key a table is split by: its name and its type as SQL (`format_type`,
/// without type modifier so that a cast never truncates a boundary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyColumn {
    pub name: String,
    pub type_name: String,
}

/// What one chunk of a table holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bounds {
    /// Keys from `lower` (included) to `upper` (excluded), each the key's values as text in
    /// key column order; `None` is unbounded.
    Key {
        lower: Option<Vec<String>>,
        upper: Option<Vec<String>>,
    },
    /// Heap blocks from `lower` (included) to `upper` (excluded); `None` is unbounded.
    Blocks {
        lower: Option<u32>,
        upper: Option<u32>,
    },
    /// The whole table.
    Whole,
}

/// How a table is split, and its chunks in key (or block) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePlan {
    /// The key the table is split by; `None` for block ranges or a single chunk.
    pub key: Option<Vec<KeyColumn>>,
    pub chunks: Vec<Bounds>,
}

/// Consecutive ranges between sorted `boundaries`: `n` boundaries make `n + 1` ranges, the
/// first without a lower bound and the last without an upper one. Pure.
pub fn ranges<T: Clone>(boundaries: &[T]) -> Vec<(Option<T>, Option<T>)> {
    let mut out = Vec::with_capacity(boundaries.len() + 1);
    let mut lower = None;
    for b in boundaries {
        out.push((lower.take(), Some(b.clone())));
        lower = Some(b.clone());
    }
    out.push((lower, None));
    out
}

/// The `WHERE` condition selecting the rows of a chunk; `None` for the whole table. Pure.
pub fn condition(key: Option<&[KeyColumn]>, bounds: &Bounds) -> Option<String> {
    match bounds {
        Bounds::Whole => None,
        Bounds::Blocks { lower, upper } => {
            let mut parts = Vec::new();
            if let Some(l) = lower {
                parts.push(format!("ctid >= '({l},0)'::tid"));
            }
            if let Some(u) = upper {
                parts.push(format!("ctid < '({u},0)'::tid"));
            }
            (!parts.is_empty()).then(|| parts.join(" AND "))
        }
        Bounds::Key { lower, upper } => {
            let key = key?;
            let columns = key
                .iter()
                .map(|c| quote_ident(&c.name))
                .collect::<Vec<_>>()
                .join(", ");
            let tuple = |values: &[String]| {
                key.iter()
                    .zip(values)
                    .map(|(c, v)| format!("{}::{}", quote_literal(v), c.type_name))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut parts = Vec::new();
            if let Some(l) = lower {
                parts.push(format!("({columns}) >= ({})", tuple(l)));
            }
            if let Some(u) = upper {
                parts.push(format!("({columns}) < ({})", tuple(u)));
            }
            (!parts.is_empty()).then(|| parts.join(" AND "))
        }
    }
}

/// Blocks per chunk when the table's statistics say nothing about rows per block: about 50
/// rows of 150 bytes fill an 8 KiB block.
const ROWS_PER_BLOCK_GUESS: f64 = 50.0;

/// Plans the chunks of `relation`, on a connection inside the snapshot; about `chunk_rows`
/// rows per chunk. `server_version` is `server_version_num`.
pub async fn plan(
    client: &Client,
    relation: &RelationSchema,
    chunk_rows: u64,
    server_version: i32,
) -> Result<TablePlan> {
    let chunk_rows = chunk_rows.max(1);
    if let Some(key) = key_columns(client, relation).await? {
        let boundaries = key_boundaries(client, relation, &key, chunk_rows).await?;
        let chunks = ranges(&boundaries)
            .into_iter()
            .map(|(lower, upper)| Bounds::Key { lower, upper })
            .collect();
        return Ok(TablePlan {
            key: Some(key),
            chunks,
        });
    }
    if server_version < 140_000 {
        return Ok(TablePlan {
            key: None,
            chunks: vec![Bounds::Whole],
        });
    }
    let boundaries = block_boundaries(client, relation, chunk_rows).await?;
    let chunks = ranges(&boundaries)
        .into_iter()
        .map(|(lower, upper)| Bounds::Blocks { lower, upper })
        .collect();
    Ok(TablePlan { key: None, chunks })
}

/// The columns of the table's primary key, or else of its replica identity index, in index
/// order; `None` when it has neither.
async fn key_columns(client: &Client, relation: &RelationSchema) -> Result<Option<Vec<KeyColumn>>> {
    let rows = client
        .query(
            "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, NULL) \
             FROM (SELECT i.indexrelid, i.indrelid, i.indkey FROM pg_catalog.pg_index i \
                   WHERE i.indrelid = $1 AND (i.indisprimary OR i.indisreplident) \
                   ORDER BY i.indisprimary DESC LIMIT 1) ix \
             CROSS JOIN LATERAL unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum \
             ORDER BY k.n",
            &[&relation.oid],
        )
        .await
        .map_err(|e| Error::client(format!("reading the key of {}", relation.table), e))?;
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        rows.iter()
            .map(|r| KeyColumn {
                name: r.get(0),
                type_name: r.get(1),
            })
            .collect(),
    ))
}

/// Every `every`-th key in key order, as text.
async fn key_boundaries(
    client: &Client,
    relation: &RelationSchema,
    key: &[KeyColumn],
    every: u64,
) -> Result<Vec<Vec<String>>> {
    let columns = key
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let aliases = (0..key.len())
        .map(|i| format!("k{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    // The simple query protocol returns each key value as its type's output text, exactly
    // what the boundary literal is cast back from.
    let sql = format!(
        "SELECT {aliases} FROM (SELECT {columns}, row_number() OVER (ORDER BY {columns}) \
         FROM {}.{}) AS b({aliases}, n) WHERE n % {every} = 0 ORDER BY n",
        quote_ident(&relation.table.schema),
        quote_ident(&relation.table.name)
    );
    let what = || format!("planning the snapshot chunks of {}", relation.table);
    let messages = client
        .simple_query(&sql)
        .await
        .map_err(|e| Error::client(what(), e))?;
    let mut out = Vec::new();
    for m in messages {
        if let SimpleQueryMessage::Row(row) = m {
            let values = (0..key.len())
                .map(|i| row.get(i).map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| Error::snapshot(relation, "a key value is NULL".to_owned()))?;
            out.push(values);
        }
    }
    Ok(out)
}

/// Block numbers that start chunks of about `rows` rows, from the table's current size and
/// the planner's rows per block.
async fn block_boundaries(
    client: &Client,
    relation: &RelationSchema,
    rows: u64,
) -> Result<Vec<u32>> {
    let row = client
        .query_one(
            "SELECT (pg_catalog.pg_relation_size(c.oid) / current_setting('block_size')::int8)::int8, \
                    c.reltuples::float8, c.relpages::int8 \
             FROM pg_catalog.pg_class c WHERE c.oid = $1",
            &[&relation.oid],
        )
        .await
        .map_err(|e| Error::client(format!("sizing {}", relation.table), e))?;
    let blocks: i64 = row.get(0);
    let tuples: f64 = row.get(1);
    let pages: i64 = row.get(2);
    let per_block = if tuples > 0.0 && pages > 0 {
        tuples / pages as f64
    } else {
        ROWS_PER_BLOCK_GUESS
    };
    let step = ((rows as f64 / per_block).ceil() as u64).max(1);
    let blocks = u64::try_from(blocks).unwrap_or(0);
    Ok((1..)
        .map(|i: u64| i * step)
        .take_while(|&b| b < blocks)
        .filter_map(|b| u32::try_from(b).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(cols: &[(&str, &str)]) -> Vec<KeyColumn> {
        cols.iter()
            .map(|(n, t)| KeyColumn {
                name: (*n).into(),
                type_name: (*t).into(),
            })
            .collect()
    }

    #[test]
    fn ranges_cover_everything_with_open_ends() {
        assert_eq!(ranges::<u32>(&[]), vec![(None, None)]);
        assert_eq!(
            ranges(&[10, 20]),
            vec![(None, Some(10)), (Some(10), Some(20)), (Some(20), None)]
        );
        // Every value lands in exactly one range, including those outside the boundaries.
        let r = ranges(&[10, 20, 30]);
        for v in [0, 9, 10, 19, 20, 29, 30, 1000] {
            let hits = r
                .iter()
                .filter(|(l, u)| l.is_none_or(|l| v >= l) && u.is_none_or(|u| v < u))
                .count();
            assert_eq!(hits, 1, "value {v}");
        }
    }

    #[test]
    fn key_conditions_compare_row_values_with_typed_literals() {
        let k = key(&[("tenant", "integer"), ("Order Id", "text")]);
        let first = Bounds::Key {
            lower: None,
            upper: Some(vec!["3".into(), "o'1".into()]),
        };
        assert_eq!(
            condition(Some(&k), &first).as_deref(),
            Some("(\"tenant\", \"Order Id\") < ('3'::integer, 'o''1'::text)")
        );
        let middle = Bounds::Key {
            lower: Some(vec!["3".into(), "a".into()]),
            upper: Some(vec!["7".into(), "b".into()]),
        };
        assert_eq!(
            condition(Some(&k), &middle).as_deref(),
            Some(
                "(\"tenant\", \"Order Id\") >= ('3'::integer, 'a'::text) AND (\"tenant\", \"Order Id\") < ('7'::integer, 'b'::text)"
            )
        );
        let only = Bounds::Key {
            lower: None,
            upper: None,
        };
        assert_eq!(condition(Some(&k), &only), None);
    }

    #[test]
    fn block_conditions_use_tid_ranges() {
        let b = Bounds::Blocks {
            lower: Some(8),
            upper: None,
        };
        assert_eq!(condition(None, &b).as_deref(), Some("ctid >= '(8,0)'::tid"));
        let b = Bounds::Blocks {
            lower: None,
            upper: Some(8),
        };
        assert_eq!(condition(None, &b).as_deref(), Some("ctid < '(8,0)'::tid"));
        assert_eq!(condition(None, &Bounds::Whole), None);
    }
}
