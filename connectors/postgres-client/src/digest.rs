//! `sluice verify` at the source (and at any PostgreSQL holding the same tables): the canonical
//! row text of [`sluice_core::digest`] in PostgreSQL's SQL, bucket digests and row hashes.

use sluice_core::digest::{BucketDigest, Inspect, RowHash, TableDigest, text_expressions};
use sluice_core::{
    Checkpoint, LogPosition, Lsn, ParkedTable, PgType, RelationSchema, TableId, meta,
};
use tokio_postgres::GenericClient;

use crate::error::{Error, Result};
use crate::ident::quote_ident;

/// The canonical text of one column, in PostgreSQL's SQL. Pure.
pub fn canonical_expr(column: &str, pg_type: &PgType) -> String {
    let c = quote_ident(column);
    match pg_type {
        PgType::Timestamp | PgType::TimestampTz => format!(
            "CASE WHEN isfinite({c}) THEN trunc(extract(epoch FROM {c}) * 1000000)::text ELSE {c}::text END"
        ),
        // Microseconds as exact numerics: beyond bigint for the extreme values PostgreSQL holds.
        PgType::Interval => format!("trunc(extract(epoch FROM {c}) * 1000000)::text"),
        PgType::Bytea => format!("encode({c}, 'hex')"),
        PgType::Array(_) => format!("array_to_json({c})::text"),
        // bpchar's cast to text drops the padding; everything else prints as PostgreSQL does.
        _ => format!("{c}::text"),
    }
}

/// `SELECT k, v FROM table [WHERE filter]`: key text and row text of every row. Pure.
pub fn rows_query(schema: &str, relation: &RelationSchema, filter: Option<&str>) -> String {
    let (key, row) = text_expressions(relation, |c| canonical_expr(&c.name, &c.pg_type()));
    format!(
        "SELECT {key} AS k, {row} AS v FROM {}.{}{}",
        quote_ident(schema),
        quote_ident(&relation.table.name),
        filter.map(|f| format!(" WHERE {f}")).unwrap_or_default()
    )
}

fn bucket_expr(buckets: u32) -> String {
    format!("((('x' || substr(md5(k), 1, 8))::bit(32)::bigint % {buckets})::int)")
}

const HASH_EXPR: &str = "('x' || substr(md5(v), 1, 15))::bit(60)::bigint";

/// Bucket digests of a table. `schema` is the table's schema (the source schema at the source).
pub async fn digest<C: GenericClient>(
    client: &C,
    schema: &str,
    relation: &RelationSchema,
    buckets: u32,
    filter: Option<&str>,
) -> Result<TableDigest> {
    let sql = format!(
        "SELECT {b}, count(*), sum({HASH_EXPR})::text FROM ({rows}) r GROUP BY 1",
        b = bucket_expr(buckets),
        rows = rows_query(schema, relation, filter)
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|e| Error::client(format!("digesting {}", relation.table), e))?;
    let mut out = TableDigest::new();
    for r in rows {
        let bucket: i32 = r.get(0);
        let count: i64 = r.get(1);
        let sum: String = r.get(2);
        out.insert(
            bucket as u32,
            BucketDigest {
                rows: count as u64,
                hash_sum: sum
                    .parse()
                    .map_err(|_| Error::Protocol(format!("bad hash sum {sum:?}")))?,
            },
        );
    }
    Ok(out)
}

/// Key texts and row hashes of the rows in `which` buckets.
pub async fn rows_in<C: GenericClient>(
    client: &C,
    schema: &str,
    relation: &RelationSchema,
    buckets: u32,
    which: &[u32],
    filter: Option<&str>,
) -> Result<Vec<RowHash>> {
    let list = which
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT k, {HASH_EXPR} FROM ({rows}) r WHERE {b} IN ({list})",
        b = bucket_expr(buckets),
        rows = rows_query(schema, relation, filter)
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|e| Error::client(format!("reading keys of {}", relation.table), e))?;
    Ok(rows
        .iter()
        .map(|r| RowHash {
            key: r.get(0),
            hash: r.get(1),
        })
        .collect())
}

/// Reads a PostgreSQL target (tables loaded by Sluice into `schema`) for `sluice verify`.
pub struct PostgresInspector {
    client: tokio_postgres::Client,
    schema: String,
}

impl PostgresInspector {
    /// An inspector of the tables in `schema` over `client`.
    pub fn new(client: tokio_postgres::Client, schema: impl Into<String>) -> Self {
        PostgresInspector {
            client,
            schema: schema.into(),
        }
    }
}

/// Live rows of a target table.
const LIVE: &str = "NOT _sluice_deleted";

impl Inspect for PostgresInspector {
    type Error = Error;

    async fn applied_lsn(&mut self, pipeline: &str) -> Result<Option<Lsn>> {
        let sql = format!(
            "SELECT applied_lsn_text FROM {}.{} WHERE pipeline = $1",
            quote_ident(&self.schema),
            quote_ident(meta::CHECKPOINT_TABLE)
        );
        let row = self
            .client
            .query_opt(&sql, &[&pipeline])
            .await
            .map_err(|e| Error::client("reading the target's checkpoint", e))?;
        Ok(row.and_then(|r| r.get::<_, String>(0).parse().ok()))
    }

    async fn checkpoint(&mut self, pipeline: &str) -> Result<Option<Checkpoint>> {
        let table = format!(
            "{}.{}",
            quote_ident(&self.schema),
            quote_ident(meta::CHECKPOINT_TABLE)
        );
        let exists: bool = self
            .client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
            .await
            .map_err(|e| Error::client("looking up the target's checkpoint table", e))?
            .get(0);
        if !exists {
            return Ok(None);
        }
        // The position is JSON text (`{"partitions": {...}, "parked": [...]}`); the server
        // takes it apart, so this crate needs no JSON parser.
        let parked = |field: &str| {
            format!(
                "ARRAY(SELECT {field} FROM jsonb_array_elements(coalesce(position::jsonb -> \
                 'parked', '[]'::jsonb)) WITH ORDINALITY AS e(p, n) ORDER BY n)"
            )
        };
        let sql = format!(
            "SELECT applied_lsn, CAST(extract(epoch FROM applied_commit_ts) * 1000000 AS bigint), \
                    ARRAY(SELECT key FROM jsonb_each_text(position::jsonb -> 'partitions') ORDER BY key), \
                    ARRAY(SELECT value FROM jsonb_each_text(position::jsonb -> 'partitions') ORDER BY key), \
                    {}, {}, {}, {} \
             FROM {table} WHERE pipeline = $1",
            parked("p -> 'table' ->> 'schema'"),
            parked("p -> 'table' ->> 'name'"),
            parked("p ->> 'lsn'"),
            parked("p ->> 'reason'"),
        );
        let Some(row) = self
            .client
            .query_opt(&sql, &[&pipeline])
            .await
            .map_err(|e| Error::client("reading the target's checkpoint", e))?
        else {
            return Ok(None);
        };
        let keys: Vec<String> = row.get(2);
        let values: Vec<String> = row.get(3);
        let schemas: Vec<String> = row.get(4);
        let names: Vec<String> = row.get(5);
        let lsns: Vec<String> = row.get(6);
        let reasons: Vec<String> = row.get(7);
        let parked = schemas
            .into_iter()
            .zip(names)
            .zip(lsns.iter().zip(reasons))
            .map(|((schema, name), (lsn, reason))| ParkedTable {
                table: TableId::new(schema, name),
                // Written by Sluice as a JSON number; a figure to show, never a position to
                // resume from.
                lsn: Lsn(lsn.parse().unwrap_or_default()),
                reason,
            })
            .collect();
        Ok(Some(Checkpoint {
            position: LogPosition {
                partitions: keys.into_iter().zip(values).collect(),
            },
            // Stored bit for bit as a signed 64-bit number.
            applied_lsn: Lsn(row.get::<_, i64>(0) as u64),
            applied_commit_ts: row.get(1),
            parked,
        }))
    }

    async fn has_table(&mut self, relation: &RelationSchema) -> Result<bool> {
        let row = self
            .client
            .query_one(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2",
                &[&self.schema, &relation.table.name],
            )
            .await
            .map_err(|e| Error::client("looking up a target table", e))?;
        Ok(row.get::<_, i64>(0) > 0)
    }

    async fn digest(&mut self, relation: &RelationSchema, buckets: u32) -> Result<TableDigest> {
        digest(&self.client, &self.schema, relation, buckets, Some(LIVE)).await
    }

    async fn rows_in(
        &mut self,
        relation: &RelationSchema,
        buckets: u32,
        which: &[u32],
    ) -> Result<Vec<RowHash>> {
        rows_in(
            &self.client,
            &self.schema,
            relation,
            buckets,
            which,
            Some(LIVE),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use sluice_core::{Column, ReplicaIdentity, TableId};

    use super::*;

    #[test]
    fn rows_query_renders_keys_and_rows() {
        let relation = RelationSchema {
            table: TableId::new("public", "we\"ird"),
            oid: 1,
            version: 1,
            replica_identity: ReplicaIdentity::Default,
            columns: vec![
                Column {
                    name: "id".into(),
                    type_oid: 20,
                    type_modifier: -1,
                    key: true,
                    nullable: false,
                },
                Column {
                    name: "at".into(),
                    type_oid: 1184,
                    type_modifier: -1,
                    key: false,
                    nullable: true,
                },
                Column {
                    name: "b".into(),
                    type_oid: 17,
                    type_modifier: -1,
                    key: false,
                    nullable: true,
                },
            ],
        };
        assert_eq!(
            rows_query("raw", &relation, Some("NOT _sluice_deleted")),
            "SELECT concat_ws(chr(31), coalesce(\"id\"::text, chr(1))) AS k, concat_ws(chr(31), \
             coalesce(\"id\"::text, chr(1)), coalesce(CASE WHEN isfinite(\"at\") THEN trunc(extract(epoch FROM \"at\") \
             * 1000000)::text ELSE \"at\"::text END, chr(1)), coalesce(encode(\"b\", 'hex'), chr(1))) AS v \
             FROM \"raw\".\"we\"\"ird\" WHERE NOT _sluice_deleted"
        );
    }
}
