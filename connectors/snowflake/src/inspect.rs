//! `sluice verify` and `sluice status` in Snowflake, and `sluice views install`.
//!
//! The canonical row text of [`sluice_core::digest`] is built in Rust from the values the
//! client reads (live rows only), and hashed here with the same MD5 rule as the source's SQL:
//! a row's bucket is the first 8 hex digits of the MD5 of its key text, its hash the first 15
//! of the MD5 of its row text. Snowflake computes only what its own functions give exactly:
//! booleans as `true`/`false`, timestamps as epoch microseconds, dates as text.

use md5::{Digest as _, Md5};
use sluice_core::digest::{BucketDigest, Inspect, RowHash, TableDigest};
use sluice_core::{Checkpoint, Lsn, PgType, RelationSchema, meta};
use sluice_sql::{Snowflake, SqlDialect as _};

use crate::config::SnowflakeConfig;
use crate::destination::SnowflakeSession;
use crate::error::{Error, Result};

const DIALECT: Snowflake = Snowflake::staging(0);

/// Reads a Snowflake target.
pub struct SnowflakeInspector {
    session: SnowflakeSession,
    schema: String,
}

/// Opens a session on the target for reading.
pub async fn inspector(config: &SnowflakeConfig) -> Result<SnowflakeInspector> {
    let mut session = SnowflakeSession::new(config.clone())?;
    session.open_reader().await?;
    Ok(SnowflakeInspector {
        session,
        schema: config.schema.clone(),
    })
}

/// Runs `statements` (`(what it does, SQL)`) one after the other: Snowflake commits every
/// DDL statement by itself, so a failure leaves the earlier ones in place.
pub async fn execute_script<'a>(
    config: &SnowflakeConfig,
    statements: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<()> {
    let mut session = SnowflakeSession::new(config.clone())?;
    session.open_reader().await?;
    for (what, sql) in statements {
        session
            .query_text(sql)
            .await
            .map_err(|e| Error::Target(format!("{what}: {e}")))?;
    }
    Ok(())
}

impl SnowflakeInspector {
    fn table(&self, relation: &RelationSchema) -> String {
        DIALECT.qualified(&self.schema, &relation.table.name)
    }

    /// Every live row as `(key text, row text)`.
    async fn texts(&mut self, relation: &RelationSchema) -> Result<Vec<(String, String)>> {
        let select = relation
            .columns
            .iter()
            .map(|c| column_expr(&DIALECT.quote_ident(&c.name), &c.pg_type()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {select} FROM {} WHERE NOT {}",
            self.table(relation),
            DIALECT.quote_ident(meta::DELETED)
        );
        let rows = self.session.query_text(&sql).await?;
        let keys = if relation.has_key() {
            relation.key_positions()
        } else {
            (0..relation.columns.len()).collect()
        };
        Ok(rows
            .into_iter()
            .map(|row| {
                let values: Vec<String> = row
                    .iter()
                    .zip(&relation.columns)
                    .map(|(v, c)| match v {
                        Some(text) => canonical(&c.pg_type(), text),
                        None => "\u{1}".to_owned(),
                    })
                    .collect();
                let key = keys
                    .iter()
                    .map(|&i| values[i].as_str())
                    .collect::<Vec<_>>()
                    .join("\u{1f}");
                (key, values.join("\u{1f}"))
            })
            .collect())
    }
}

/// The SQL reading one column for its canonical text.
fn column_expr(c: &str, pg: &PgType) -> String {
    match pg {
        PgType::Bool => format!("CASE WHEN {c} THEN 'true' WHEN NOT {c} THEN 'false' END"),
        PgType::Timestamp | PgType::TimestampTz => {
            format!("TO_VARCHAR(DATE_PART(epoch_microsecond, {c}))")
        }
        _ => c.to_owned(),
    }
}

/// The canonical text of a value as the client prints it (module docs of
/// [`sluice_core::digest`]).
fn canonical(pg: &PgType, text: &str) -> String {
    match pg {
        PgType::Float4 => text.parse::<f32>().map_or_else(
            |_| text.to_owned(),
            |v| float_text(f64::from(v), format!("{v}"), format!("{v:e}"), 6),
        ),
        PgType::Float8 => text.parse::<f64>().map_or_else(
            |_| text.to_owned(),
            |v| float_text(v, format!("{v}"), format!("{v:e}"), 15),
        ),
        PgType::Bpchar(_) => text.trim_end_matches(' ').to_owned(),
        _ => text.to_owned(),
    }
}

/// PostgreSQL's shortest text of a float: `NaN`, `Infinity`, fixed notation for decimal
/// exponents from -4 below `digits`, else `1.5e+20` / `1e-05`.
fn float_text(v: f64, fixed: String, exp: String, digits: i32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let (mantissa, e) = exp.split_once('e').unwrap_or((&exp, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    if v == 0.0 || (-4..digits).contains(&e) {
        return fixed;
    }
    format!("{mantissa}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}

/// The first `n` hex digits of the MD5 of `text`, as an integer.
fn md5_prefix(text: &str, n: usize) -> i64 {
    let digest = Md5::digest(text.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    i64::from_str_radix(&hex[..n], 16).unwrap_or_default()
}

fn bucket(key: &str, buckets: u32) -> u32 {
    (md5_prefix(key, 8) % i64::from(buckets.max(1))) as u32
}

impl Inspect for SnowflakeInspector {
    type Error = Error;

    async fn applied_lsn(&mut self, pipeline: &str) -> Result<Option<Lsn>> {
        Ok(self.checkpoint(pipeline).await?.map(|c| c.applied_lsn))
    }

    async fn checkpoint(&mut self, pipeline: &str) -> Result<Option<Checkpoint>> {
        let exists = format!(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = {} AND \
             table_name = {}",
            DIALECT.quote_literal(&Snowflake::stored_name(&self.schema)),
            DIALECT.quote_literal(&Snowflake::stored_name(meta::CHECKPOINT_TABLE)),
        );
        let n = self.session.query_text(&exists).await?;
        if n.first()
            .and_then(|r| r.first())
            .cloned()
            .flatten()
            .as_deref()
            == Some("0")
        {
            return Ok(None);
        }
        let rows = self
            .session
            .query_text(&DIALECT.select_checkpoint(&self.schema, pipeline))
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let field = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let unreadable = |reason: String| {
            Error::Target(format!(
                "checkpoint of pipeline \"{pipeline}\" is unreadable: {reason}"
            ))
        };
        let lsn: i64 = field(1)
            .parse()
            .map_err(|e| unreadable(format!("applied_lsn: {e}")))?;
        let ts: i64 = field(2)
            .parse()
            .map_err(|e| unreadable(format!("applied_commit_ts: {e}")))?;
        // Stored bit for bit as a signed 64-bit number.
        Checkpoint::from_stored(&field(0), Lsn(lsn as u64), ts)
            .map(Some)
            .map_err(|e| unreadable(format!("position is not valid JSON ({e})")))
    }

    async fn has_table(&mut self, relation: &RelationSchema) -> Result<bool> {
        let sql = format!(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = {} AND \
             table_name = {}",
            DIALECT.quote_literal(&Snowflake::stored_name(&self.schema)),
            DIALECT.quote_literal(&Snowflake::stored_name(&relation.table.name)),
        );
        let rows = self.session.query_text(&sql).await?;
        Ok(rows
            .first()
            .and_then(|r| r.first())
            .cloned()
            .flatten()
            .as_deref()
            != Some("0"))
    }

    async fn digest(&mut self, relation: &RelationSchema, buckets: u32) -> Result<TableDigest> {
        let mut out = TableDigest::new();
        for (key, row) in self.texts(relation).await? {
            let d: &mut BucketDigest = out.entry(bucket(&key, buckets)).or_default();
            d.rows += 1;
            d.hash_sum += i128::from(md5_prefix(&row, 15));
        }
        Ok(out)
    }

    async fn rows_in(
        &mut self,
        relation: &RelationSchema,
        buckets: u32,
        which: &[u32],
    ) -> Result<Vec<RowHash>> {
        Ok(self
            .texts(relation)
            .await?
            .into_iter()
            .filter(|(key, _)| which.contains(&bucket(key, buckets)))
            .map(|(key, row)| RowHash {
                hash: md5_prefix(&row, 15),
                key,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_postgresql_prints_them() {
        let f8 = |v: f64| canonical(&PgType::Float8, &format!("{v}"));
        assert_eq!(f8(1.5), "1.5");
        assert_eq!(f8(0.0001), "0.0001");
        assert_eq!(f8(0.00001), "1e-05");
        assert_eq!(f8(1e100), "1e+100");
        assert_eq!(f8(123456789012345.0), "123456789012345");
        assert_eq!(f8(1234567890123456.0), "1.234567890123456e+15");
        assert_eq!(canonical(&PgType::Float8, "inf"), "Infinity");
        assert_eq!(canonical(&PgType::Float8, "NaN"), "NaN");
        assert_eq!(canonical(&PgType::Float4, "1000000"), "1e+06");
    }

    #[test]
    fn hashes_follow_the_source_rule() {
        // md5("1") = c4ca4238a0b923820dcc509a6f75849b
        assert_eq!(md5_prefix("1", 8), 0xc4ca4238);
        assert_eq!(bucket("1", 16), (0xc4ca4238_i64 % 16) as u32);
        assert_eq!(md5_prefix("1", 15), 0xc4ca4238a0b9238);
    }
}
