//! `sluice sync --until-caught-up` copies a database, then its changes, value by value.

use sluice_testkit::PgCluster;
use sluice_tests::{Kind, Pipeline, assert_same};

const ITEMS: &[(&str, Kind)] = &[
    ("id", Kind::Plain),
    ("name", Kind::Plain),
    ("price", Kind::Plain),
    ("qty", Kind::Plain),
    ("active", Kind::Bool),
    ("created_at", Kind::Timestamp),
    ("local_at", Kind::Timestamp),
    ("day", Kind::Plain),
    ("ref", Kind::Plain),
    ("attrs", Kind::Json),
    ("blob", Kind::Bytes),
    ("tags", Kind::Array),
    ("scores", Kind::Array),
    ("ratio", Kind::Float),
];

const SCHEMA: &str = "
CREATE TABLE items (
    id bigint PRIMARY KEY,
    name text,
    price numeric(12,2),
    qty int,
    active boolean,
    created_at timestamptz,
    local_at timestamp,
    day date,
    ref uuid,
    attrs jsonb,
    blob bytea,
    tags text[],
    scores int[],
    ratio double precision
);
CREATE TABLE events (k int PRIMARY KEY, v text);
INSERT INTO items
SELECT g, 'item ' || g || E' \\t \"quoted\" \\\\ ünïcode', g * 1.25, g % 7, g % 2 = 0,
       timestamptz '2024-03-01 12:00:00.123456+02' + g * interval '1 minute',
       timestamp '2024-03-01 12:00:00.5' + g * interval '1 hour',
       date '2024-01-01' + g::int,
       md5(g::text)::uuid,
       jsonb_build_object('g', g, 'nested', jsonb_build_object('a', array[1, 2]), 's', 'x\"y'),
       decode(lpad(to_hex(g), 8, '0') || '00ff', 'hex'),
       array['a' || g, NULL, 'c,d', 'e \"f\"'],
       array[g::int, NULL, -g::int],
       g / 3.0
FROM generate_series(1, 500) g;
UPDATE items SET name = NULL, price = NULL, attrs = NULL, blob = NULL, tags = NULL WHERE id = 7;
INSERT INTO events SELECT g, 'e' || g FROM generate_series(1, 50) g;
";

#[tokio::test]
async fn snapshot_then_changes_land_value_by_value() {
    let db = PgCluster::shared()
        .fresh_database()
        .await
        .expect("database");
    db.execute(SCHEMA).await.expect("schema");
    let pipeline = Pipeline::new(&db, &["public.*"], "");

    let out = pipeline.sync_until_caught_up();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("snapshot 550 rows"), "{summary}");
    {
        let wh = pipeline.warehouse();
        assert_same(&db, &wh, "items", ITEMS).await;
        assert_same(
            &db,
            &wh,
            "events",
            &[("k", Kind::Plain), ("v", Kind::Plain)],
        )
        .await;
    }

    // Changes: several transactions on the same rows, deletes, a primary-key change, a key
    // inserted, deleted and re-inserted in one transaction, and a truncate.
    for sql in [
        "UPDATE items SET qty = qty + 1, name = 'updated' WHERE id <= 50",
        "UPDATE items SET qty = qty + 1 WHERE id <= 25",
        "DELETE FROM items WHERE id BETWEEN 100 AND 120",
        "UPDATE items SET id = 10000 WHERE id = 200",
        "UPDATE items SET id = id + 20000 WHERE id BETWEEN 300 AND 310",
        "BEGIN; INSERT INTO items (id, name) VALUES (5000, 'first'); DELETE FROM items WHERE id = 5000; \
         INSERT INTO items (id, name, tags) VALUES (5000, 'second', '{x}'); COMMIT",
        "BEGIN; DELETE FROM items WHERE id = 1; INSERT INTO items (id, name) VALUES (1, 'reborn'); COMMIT",
        "UPDATE items SET attrs = attrs || '{\"more\": true}', blob = '\\x00'::bytea, scores = '{}' WHERE id = 2",
        "TRUNCATE events",
        "INSERT INTO events VALUES (1, 'after truncate')",
        "INSERT INTO items (id) VALUES (6000)",
    ] {
        db.execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let out = pipeline.sync_until_caught_up();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("snapshot 0 rows"),
        "no second snapshot: {summary}"
    );
    let wh = pipeline.warehouse();
    assert_same(&db, &wh, "items", ITEMS).await;
    assert_same(
        &db,
        &wh,
        "events",
        &[("k", Kind::Plain), ("v", Kind::Plain)],
    )
    .await;

    // Soft deletes keep the deleted rows, flagged.
    let deleted: i64 = wh
        .query_row(
            "SELECT count(*) FROM raw.items WHERE _sluice_deleted",
            [],
            |r| r.get(0),
        )
        .expect("count");
    // 21 deleted, 1 + 11 moved away by key changes.
    assert_eq!(deleted, 21 + 12);
    let (lsn, ts): (i64, i64) = wh
        .query_row(
            "SELECT min(_sluice_lsn), min(epoch_us(_sluice_commit_ts)) FROM raw.items WHERE id = 5000",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("metadata");
    assert!(lsn > 0 && ts > 0, "metadata columns are set: {lsn} {ts}");
}

#[tokio::test]
async fn hard_deletes_remove_rows() {
    let db = PgCluster::shared()
        .fresh_database()
        .await
        .expect("database");
    db.execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' FROM generate_series(1, 10) g;")
        .await
        .expect("schema");
    let pipeline = Pipeline::new(&db, &["public.t"], "");
    std::fs::write(
        &pipeline.config,
        std::fs::read_to_string(&pipeline.config)
            .expect("read")
            .replace("schema = \"raw\"", "schema = \"raw\"\ndeletes = \"hard\""),
    )
    .expect("write");
    pipeline.sync_until_caught_up();
    db.execute("DELETE FROM t WHERE id <= 4; UPDATE t SET id = 100 WHERE id = 5")
        .await
        .expect("changes");
    pipeline.sync_until_caught_up();
    let wh = pipeline.warehouse();
    let total: i64 = wh
        .query_row("SELECT count(*) FROM raw.t", [], |r| r.get(0))
        .expect("count");
    assert_eq!(total, 6);
    assert_same(&db, &wh, "t", &[("id", Kind::Plain), ("v", Kind::Plain)]).await;
}

/// With `synchronous_commit = off` a commit can be acknowledged before its WAL is flushed:
/// `--until-caught-up` must still wait for it.
#[tokio::test]
async fn until_caught_up_includes_the_latest_async_commit() {
    let db = PgCluster::shared()
        .fresh_database()
        .await
        .expect("database");
    db.execute("CREATE TABLE t (id int PRIMARY KEY)")
        .await
        .expect("schema");
    let pipeline = Pipeline::new(&db, &["public.t"], "");
    pipeline.sync_until_caught_up();
    let client = db.client().await.expect("client");
    client
        .batch_execute("SET synchronous_commit = off")
        .await
        .expect("async commit");
    for id in 1..=15 {
        client
            .execute("INSERT INTO t VALUES ($1)", &[&id])
            .await
            .expect("insert");
        pipeline.sync_until_caught_up();
        let wh = pipeline.warehouse();
        let n: i64 = wh
            .query_row("SELECT count(*) FROM raw.t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(
            n,
            i64::from(id),
            "round {id}: the commit made just before the sync is loaded"
        );
    }
}
