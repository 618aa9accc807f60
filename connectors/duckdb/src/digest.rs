//! `sluice verify` in DuckDB: the canonical row text of [`sluice_core::digest`] in DuckDB's SQL
//! over the loaded tables (live rows only), read through a read-only connection.

use std::path::PathBuf;

use duckdb::{AccessMode, Config, Connection};
use sluice_core::digest::{BucketDigest, Inspect, RowHash, TableDigest, text_expressions};
use sluice_core::{Checkpoint, Lsn, PgType, RelationSchema, meta};

use crate::config::DuckDbConfig;
use crate::error::{Error, Result};
use sluice_sql::{DuckDb, SqlDialect as _};

/// Quoting does not depend on the json extension: any DuckDB dialect value quotes.
const DIALECT: DuckDb = DuckDb { json: false };

fn quote_ident(ident: &str) -> String {
    DIALECT.quote_ident(ident)
}

fn quote_literal(text: &str) -> String {
    DIALECT.quote_literal(text)
}

/// Reads a DuckDB warehouse for `sluice verify`.
pub struct DuckDbInspector {
    conn: Connection,
    schema: String,
}

impl DuckDbInspector {
    /// Opens the warehouse read-only (fails while a `sluice sync` holds it).
    pub fn open(config: &DuckDbConfig) -> Result<DuckDbInspector> {
        let path = PathBuf::from(&config.path);
        let flags = Config::default()
            .access_mode(AccessMode::ReadOnly)
            .map_err(|e| Error::Open {
                path: path.clone(),
                source: e.into(),
            })?;
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| {
            if e.to_string().contains("Could not set lock on file") {
                Error::Locked {
                    path: path.clone(),
                    source: e,
                }
            } else {
                Error::Open {
                    path: path.clone(),
                    source: e.into(),
                }
            }
        })?;
        Ok(DuckDbInspector {
            conn,
            schema: config.schema.clone(),
        })
    }

    fn table(&self, relation: &RelationSchema) -> String {
        format!(
            "{}.{}",
            quote_ident(&self.schema),
            quote_ident(&relation.table.name)
        )
    }

    /// `SELECT k, v` over the live rows. Reads the table's column types first: a timestamp
    /// column the destination changed to text (values after DuckDB's last timestamp) is read
    /// from its text.
    fn rows_query(&self, relation: &RelationSchema) -> Result<String> {
        let text = tokio::task::block_in_place(|| self.text_columns(relation))?;
        let (key, row) = text_expressions(relation, |c| {
            let pg_type = c.pg_type();
            match pg_type {
                PgType::Timestamp | PgType::TimestampTz if text.contains(&c.name) => {
                    timestamp_text_expr(&c.name, &pg_type)
                }
                _ => canonical_expr(&c.name, &pg_type),
            }
        });
        Ok(format!(
            "SELECT {key} AS k, {row} AS v FROM {} WHERE NOT {}",
            self.table(relation),
            quote_ident(meta::DELETED)
        ))
    }

    /// The table's columns of type `VARCHAR`.
    fn text_columns(&self, relation: &RelationSchema) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = ? \
                 AND table_name = ? AND data_type = 'VARCHAR'",
            )
            .map_err(Error::sql("reading column types"))?;
        stmt.query_map([&self.schema, &relation.table.name], |r| r.get(0))
            .and_then(|rows| rows.collect::<duckdb::Result<Vec<String>>>())
            .map_err(Error::sql("reading column types"))
    }
}

/// The canonical text of one column as this destination stores it, in DuckDB's SQL. Pure.
pub fn canonical_expr(column: &str, pg_type: &PgType) -> String {
    let c = quote_ident(column);
    match pg_type {
        PgType::Float4 | PgType::Float8 => format!(
            "CASE WHEN isnan({c}) THEN 'NaN' WHEN {c} = 'inf'::DOUBLE THEN 'Infinity' \
             WHEN {c} = '-inf'::DOUBLE THEN '-Infinity' \
             ELSE regexp_replace(CAST({c} AS VARCHAR), '\\.0$', '') END"
        ),
        PgType::Timestamp | PgType::TimestampTz => format!(
            "CASE WHEN isfinite({c}) THEN CAST(epoch_us({c}) AS VARCHAR) ELSE CAST({c} AS VARCHAR) END"
        ),
        // PostgreSQL's epoch of an interval: a year is 365.25 days, a month 30 (computed in
        // quarter days, exactly); DuckDB's epoch_us refuses months.
        PgType::Interval => format!(
            "CAST(CAST(datepart('hour', {c}) AS HUGEINT) * 3600000000 + \
             datepart('minute', {c}) * 60000000 + datepart('microseconds', {c}) + \
             (1461 * CAST(datepart('year', {c}) AS HUGEINT) + 120 * datepart('month', {c}) + \
             4 * datepart('day', {c})) * 21600000000 AS VARCHAR)"
        ),
        PgType::Bytea => format!("lower(hex({c}))"),
        PgType::Bpchar(_) => format!("rtrim(CAST({c} AS VARCHAR), ' ')"),
        PgType::Array(_) => format!("CAST(to_json({c}) AS VARCHAR)"),
        _ => format!("CAST({c} AS VARCHAR)"),
    }
}

/// The canonical text (microseconds since the epoch, exact; `infinity` / `-infinity`) of a
/// timestamp held as PostgreSQL's text, as the destination stores those beyond DuckDB's range
/// (`294276-12-31 23:59:59.999999`, `0044-03-15 12:00:00 BC`, with `+00` for timestamptz).
/// The year is moved by whole 400-year cycles (146097 days each, the same calendar) into
/// 1..=400, parsed there, and the cycles added back as a HUGEINT. Pure.
pub fn timestamp_text_expr(column: &str, pg_type: &PgType) -> String {
    let c = quote_ident(column);
    let ty = if *pg_type == PgType::TimestampTz {
        "TIMESTAMPTZ"
    } else {
        "TIMESTAMP"
    };
    let year = format!("CAST(regexp_extract({c}, '^(\\d+)', 1) AS BIGINT)");
    // Astronomical year: 1 BC is 0.
    let astro = format!("(CASE WHEN {c} LIKE '% BC' THEN 1 - {year} ELSE {year} END)");
    let cycles = format!("CAST(floor(({astro} - 1) / 400) AS BIGINT)");
    let rest = format!("regexp_replace(regexp_replace({c}, ' BC$', ''), '^\\d+', '')");
    let micros = format!(
        "(CAST(epoch_us(CAST(lpad(CAST({astro} - 400 * {cycles} AS VARCHAR), 4, '0') || {rest} \
         AS {ty})) AS HUGEINT) + CAST({cycles} AS HUGEINT) * 12622780800000000)"
    );
    // Beyond i64 microseconds since 1970 (after 294247), the source's extract(epoch) divides
    // in numeric with 4 decimals, rounding to 100 microseconds: round the same way.
    format!(
        "CASE WHEN {c} IN ('infinity', '-infinity') THEN {c} WHEN {micros} > 9223372036854775807 \
         THEN CAST(({micros} + 50) // 100 * 100 AS VARCHAR) ELSE CAST({micros} AS VARCHAR) END"
    )
}

fn bucket_expr(buckets: u32) -> String {
    format!("CAST(CAST('0x' || substr(md5(k), 1, 8) AS BIGINT) % {buckets} AS INTEGER)")
}

const HASH_EXPR: &str = "CAST('0x' || substr(md5(v), 1, 15) AS BIGINT)";

impl Inspect for DuckDbInspector {
    type Error = Error;

    async fn applied_lsn(&mut self, pipeline: &str) -> Result<Option<Lsn>> {
        let sql = format!(
            "SELECT applied_lsn_text FROM {}.{} WHERE pipeline = {}",
            quote_ident(&self.schema),
            quote_ident(meta::CHECKPOINT_TABLE),
            quote_literal(pipeline)
        );
        let text: Option<String> = tokio::task::block_in_place(|| {
            match self.conn.query_row(&sql, [], |r| r.get::<_, String>(0)) {
                Ok(t) => Ok(Some(t)),
                Err(duckdb::Error::QueryReturnedNoRows) => Ok(None),
                Err(e) => Err(Error::sql("reading the checkpoint")(e)),
            }
        })?;
        Ok(text.and_then(|t| t.parse().ok()))
    }

    async fn checkpoint(&mut self, pipeline: &str) -> Result<Option<Checkpoint>> {
        let exists = "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?";
        let select = DIALECT.select_checkpoint(&self.schema, pipeline);
        let stored = tokio::task::block_in_place(|| {
            let n: i64 = self
                .conn
                .query_row(
                    exists,
                    [self.schema.as_str(), meta::CHECKPOINT_TABLE],
                    |r| r.get(0),
                )
                .map_err(Error::sql("looking up the checkpoint table"))?;
            if n == 0 {
                return Ok(None);
            }
            match self.conn.query_row(&select, [], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            }) {
                Ok(row) => Ok(Some(row)),
                Err(duckdb::Error::QueryReturnedNoRows) => Ok(None),
                Err(e) => Err(Error::sql("reading the checkpoint")(e)),
            }
        })?;
        let Some((position, applied_lsn, applied_commit_ts)) = stored else {
            return Ok(None);
        };
        // Stored bit for bit as a signed 64-bit number.
        let checkpoint =
            Checkpoint::from_stored(&position, Lsn(applied_lsn as u64), applied_commit_ts)
                .map_err(|e| Error::Unreadable {
                    what: format!("checkpoint of pipeline \"{pipeline}\""),
                    reason: format!("position is not valid JSON ({e})"),
                })?;
        Ok(Some(checkpoint))
    }

    async fn has_table(&mut self, relation: &RelationSchema) -> Result<bool> {
        let sql = "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?";
        let n: i64 = tokio::task::block_in_place(|| {
            self.conn
                .query_row(sql, [&self.schema, &relation.table.name], |r| r.get(0))
                .map_err(Error::sql("looking up a table"))
        })?;
        Ok(n > 0)
    }

    async fn digest(&mut self, relation: &RelationSchema, buckets: u32) -> Result<TableDigest> {
        let sql = format!(
            "SELECT {b}, count(*), CAST(sum({HASH_EXPR}) AS VARCHAR) FROM ({rows}) r GROUP BY 1",
            b = bucket_expr(buckets),
            rows = self.rows_query(relation)?
        );
        tokio::task::block_in_place(|| {
            let mut stmt = self
                .conn
                .prepare(&sql)
                .map_err(Error::sql("digesting a table"))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i32>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .and_then(|rows| rows.collect::<duckdb::Result<Vec<_>>>())
                .map_err(Error::sql("digesting a table"))?;
            let mut out = TableDigest::new();
            for (bucket, count, sum) in rows {
                let hash_sum = sum.parse().map_err(|_| Error::Unreadable {
                    what: format!("digest of table {}", relation.table),
                    reason: format!("hash sum {sum:?} is not a number"),
                })?;
                out.insert(
                    bucket as u32,
                    BucketDigest {
                        rows: count as u64,
                        hash_sum,
                    },
                );
            }
            Ok(out)
        })
    }

    async fn rows_in(
        &mut self,
        relation: &RelationSchema,
        buckets: u32,
        which: &[u32],
    ) -> Result<Vec<RowHash>> {
        let list = which
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT k, {HASH_EXPR} FROM ({rows}) r WHERE {b} IN ({list})",
            b = bucket_expr(buckets),
            rows = self.rows_query(relation)?
        );
        tokio::task::block_in_place(|| {
            let mut stmt = self
                .conn
                .prepare(&sql)
                .map_err(Error::sql("reading keys"))?;
            stmt.query_map([], |r| {
                Ok(RowHash {
                    key: r.get(0)?,
                    hash: r.get(1)?,
                })
            })
            .and_then(|rows| rows.collect::<duckdb::Result<Vec<_>>>())
            .map_err(Error::sql("reading keys"))
        })
    }
}
