//! Row semantics: upserts, deletes, truncates, key changes, replays, unchanged TOAST.

use sluice_core::pg_type::oid;
use sluice_core::{Batch, DeleteMode, LogRecord, Lsn, Row, RowOp, TableBatch, Value};

use crate::support::*;

use sluice_testkit::records::{insert_orders, order_history, orders};

const ROWS: &str =
    "SELECT id, status, note, _sluice_lsn, _sluice_deleted FROM raw.orders ORDER BY id";

#[tokio::test]
async fn insert_update_soft_delete() {
    let r = orders();
    let mut f = Fixture::new(DeleteMode::Soft);
    for records in order_history() {
        f.apply(&records).await;
    }
    assert_eq!(
        f.lines(ROWS),
        vec!["1|paid|NULL|20|false", "2|new|b|30|true"],
        "the update replaced the row, the soft delete kept its values"
    );
    let commit = f.lines("SELECT _sluice_commit_ts FROM raw.orders WHERE id = 2");
    assert_eq!(commit, vec!["2024-01-01 00:00:30+00"]);
    assert_eq!(
        f.lines("SELECT count(*) FROM raw.orders WHERE _sluice_synced_at IS NULL"),
        vec!["0"]
    );
    // Un-delete: a newer upsert of a soft-deleted row revives it.
    f.apply(&[txn(
        40,
        vec![ins(&r, vals(&[Some("2"), Some("again"), None]))],
    )])
    .await;
    assert_eq!(
        f.lines(ROWS),
        vec!["1|paid|NULL|20|false", "2|again|NULL|40|false"]
    );
}

#[tokio::test]
async fn hard_delete() {
    let r = orders();
    let mut f = Fixture::new(DeleteMode::Hard);
    f.apply(&[txn(
        10,
        vec![
            ins(&r, vals(&[Some("1"), Some("new"), None])),
            ins(&r, vals(&[Some("2"), Some("new"), None])),
        ],
    )])
    .await;
    f.apply(&[
        txn(20, vec![del(&r, vals(&[Some("2"), None, None]))]),
        // A delete of a row the target never had: nothing to do, no tombstone.
        txn(21, vec![del(&r, vals(&[Some("3"), None, None]))]),
    ])
    .await;
    assert_eq!(f.lines(ROWS), vec!["1|new|NULL|10|false"]);
}

#[tokio::test]
async fn soft_delete_of_a_missing_row_leaves_a_tombstone() {
    let r = orders();
    let mut f = Fixture::new(DeleteMode::Soft);
    f.apply(&[txn(20, vec![del(&r, vals(&[Some("7"), None, None]))])])
        .await;
    assert_eq!(f.lines(ROWS), vec!["7|NULL|NULL|20|true"]);
    // The insert that preceded the delete, delivered late, does not resurrect the row.
    f.apply(&[txn(10, vec![ins(&r, vals(&[Some("7"), Some("x"), None]))])])
        .await;
    assert_eq!(f.lines(ROWS), vec!["7|NULL|NULL|20|true"]);
}

#[tokio::test]
async fn truncate_soft_and_hard() {
    for (mode, expected) in [
        (
            DeleteMode::Soft,
            vec!["1|a|NULL|10|true", "2|b|NULL|10|true", "3|c|NULL|20|false"],
        ),
        (DeleteMode::Hard, vec!["3|c|NULL|20|false"]),
    ] {
        let r = orders();
        let mut f = Fixture::new(mode);
        f.apply(&[txn(
            10,
            vec![
                ins(&r, vals(&[Some("1"), Some("a"), None])),
                ins(&r, vals(&[Some("2"), Some("b"), None])),
            ],
        )])
        .await;
        let second = [txn(
            20,
            vec![truncate(&r), ins(&r, vals(&[Some("3"), Some("c"), None]))],
        )];
        f.apply(&second).await;
        assert_eq!(f.lines(ROWS), expected, "{mode:?}");
        let before = f.dump("raw.orders");
        f.apply(&second).await;
        assert_eq!(f.dump("raw.orders"), before, "{mode:?}: replayed truncate");
    }
}

#[tokio::test]
async fn primary_key_change_deletes_the_old_key() {
    for (mode, expected) in [
        (
            DeleteMode::Soft,
            vec!["1|a|NULL|20|true", "9|b|NULL|20|false"],
        ),
        (DeleteMode::Hard, vec!["9|b|NULL|20|false"]),
    ] {
        let r = orders();
        let mut f = Fixture::new(mode);
        f.apply(&[txn(10, vec![ins(&r, vals(&[Some("1"), Some("a"), None]))])])
            .await;
        f.apply(&[txn(
            20,
            vec![upd(
                &r,
                Some(vals(&[Some("1"), None, None])),
                vals(&[Some("9"), Some("b"), None]),
            )],
        )])
        .await;
        assert_eq!(f.lines(ROWS), expected, "{mode:?}");
    }
}

#[tokio::test]
async fn duplicate_delivery_changes_nothing() {
    for mode in [DeleteMode::Soft, DeleteMode::Hard] {
        let r = orders();
        let mut f = Fixture::new(mode);
        f.apply(&[txn(
            5,
            vec![ins(&r, vals(&[Some("4"), Some("x"), Some("big")]))],
        )])
        .await;
        let records = [
            txn(
                10,
                vec![
                    ins(&r, vals(&[Some("1"), Some("a"), Some("n")])),
                    ins(&r, vals(&[Some("2"), Some("b"), None])),
                ],
            ),
            txn(
                20,
                vec![
                    upd(&r, None, vec![t("4"), t("y"), Value::Unchanged]),
                    del(&r, vals(&[Some("2"), None, None])),
                    del(&r, vals(&[Some("3"), None, None])),
                ],
            ),
        ];
        let (batch, cp) = build(1, &records);
        f.try_apply(&batch, &cp).await.unwrap();
        let once = f.dump("raw.orders");
        f.try_apply(&batch, &cp).await.unwrap();
        assert_eq!(f.dump("raw.orders"), once, "{mode:?}: whole batch replayed");
        // A prefix of it again after a restart, read after the stored checkpoint as the
        // loader does.
        let stored = f.reopen().await.unwrap();
        let mut builder = sluice_core::BatchBuilder::after(&stored);
        builder.push(records[0].clone());
        let (prefix, cp) = builder.finish(sluice_core::LogPosition::single("0", 2));
        f.try_apply(&prefix, &cp).await.unwrap();
        assert_eq!(f.dump("raw.orders"), once, "{mode:?}: prefix replayed");
        if mode == DeleteMode::Soft {
            // Soft deletes keep a guard row, so even a raw replay of the prefix (without the
            // loader skipping it) changes nothing. Hard deletes cannot: the row is gone.
            let (prefix, cp) = build(1, &records[..1]);
            f.try_apply(&prefix, &cp).await.unwrap();
            assert_eq!(f.dump("raw.orders"), once, "raw prefix replayed");
        }
    }
}

#[tokio::test]
async fn an_older_change_never_overwrites_a_newer_one() {
    let r = orders();
    let mut f = Fixture::new(DeleteMode::Soft);
    f.apply(&[insert_orders(50, &[("1", "newest"), ("2", "kept")])])
        .await;
    // Changes older than what the rows hold, delivered late (an upsert and a delete).
    f.apply(&[txn(
        30,
        vec![
            upd(&r, None, vals(&[Some("1"), Some("older"), None])),
            del(&r, vals(&[Some("2"), None, None])),
        ],
    )])
    .await;
    assert_eq!(
        f.lines(ROWS),
        vec!["1|newest|NULL|50|false", "2|kept|NULL|50|false"]
    );
}

#[tokio::test]
async fn unchanged_toast_keeps_the_target_value() {
    let r = orders();
    let mut f = Fixture::new(DeleteMode::Soft);
    f.apply(&[txn(
        10,
        vec![ins(&r, vals(&[Some("1"), Some("a"), Some("large")]))],
    )])
    .await;
    f.apply(&[txn(
        20,
        vec![
            upd(&r, None, vec![t("1"), t("b"), Value::Unchanged]),
            // Unchanged for a row the target lacks: nothing to keep, NULL.
            upd(&r, None, vec![t("5"), Value::Unchanged, t("n")]),
        ],
    )])
    .await;
    assert_eq!(
        f.lines(ROWS),
        vec!["1|b|large|20|false", "5|NULL|n|20|false"]
    );
}

#[tokio::test]
async fn nulls_in_every_column() {
    let r = rel(
        "public",
        "n",
        1,
        &[
            ("id", oid::INT4, -1, true),
            ("a", oid::INT8, -1, false),
            ("b", oid::NUMERIC, ((10 << 16) | 2) + 4, false),
            ("c", oid::BYTEA, -1, false),
            ("d", oid::INT4_ARRAY, -1, false),
            ("e", oid::TIMESTAMPTZ, -1, false),
            ("f", oid::JSONB, -1, false),
            ("g", oid::INTERVAL, -1, false),
        ],
    );
    let mut f = Fixture::new(DeleteMode::Soft);
    let mut row = vec![t("1")];
    row.extend(std::iter::repeat_n(Value::Null, 7));
    f.apply(&[txn(10, vec![ins(&r, row)])]).await;
    assert_eq!(
        f.lines("SELECT id, a, b, c, d, e, f, g FROM raw.n"),
        vec!["1|NULL|NULL|NULL|NULL|NULL|NULL|NULL"]
    );
}

#[tokio::test]
async fn tables_without_a_key_are_append_only() {
    let r = rel("public", "events", 1, &[("kind", oid::TEXT, -1, false)]);
    let mut f = Fixture::new(DeleteMode::Soft);
    f.apply(&[txn(
        10,
        vec![
            ins(&r, vals(&[Some("click")])),
            ins(&r, vals(&[Some("click")])),
        ],
    )])
    .await;
    f.apply(&[txn(20, vec![truncate(&r), ins(&r, vals(&[Some("view")]))])])
        .await;
    assert_eq!(
        f.lines("SELECT kind, _sluice_lsn, _sluice_deleted FROM raw.events ORDER BY ALL"),
        vec!["click|10|true", "click|10|true", "view|20|false"]
    );
}

#[tokio::test]
async fn an_empty_table_batch_creates_the_table() {
    let r = orders();
    let mut f = Fixture::new(DeleteMode::Soft);
    f.apply(&[LogRecord::SnapshotBegin {
        consistent_point: Lsn(100),
        relations: vec![r.clone()],
    }])
    .await;
    assert_eq!(
        f.lines(
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_schema = 'raw' AND table_name = 'orders' ORDER BY ordinal_position"
        ),
        vec![
            "id|INTEGER",
            "status|VARCHAR",
            "note|VARCHAR",
            "_sluice_lsn|BIGINT",
            "_sluice_commit_ts|TIMESTAMP WITH TIME ZONE",
            "_sluice_deleted|BOOLEAN",
            "_sluice_synced_at|TIMESTAMP WITH TIME ZONE",
        ]
    );
    assert_eq!(f.lines("SELECT count(*) FROM raw.orders"), vec!["0"]);
}

#[tokio::test]
async fn snapshot_restart_replaces_rows_of_the_interrupted_snapshot() {
    let r = orders();
    let mut f = Fixture::new(DeleteMode::Soft);
    // Rows of an interrupted snapshot at consistent point 50, then a new snapshot at 100.
    f.apply(&[
        LogRecord::SnapshotBegin {
            consistent_point: Lsn(50),
            relations: vec![r.clone()],
        },
        snapshot_chunk(49, &r, &["1", "2"]),
    ])
    .await;
    f.apply(&[LogRecord::SnapshotBegin {
        consistent_point: Lsn(100),
        relations: vec![r.clone()],
    }])
    .await;
    // Chunks of the new snapshot arrive in separate batches with the same position.
    f.apply(&[snapshot_chunk(99, &r, &["1"])]).await;
    f.apply(&[snapshot_chunk(99, &r, &["3"])]).await;
    assert_eq!(
        f.lines(ROWS),
        vec![
            "1|snap|NULL|99|false",
            "2|snap|NULL|49|true",
            "3|snap|NULL|99|false"
        ]
    );
}

fn snapshot_chunk(
    lsn: u64,
    r: &std::sync::Arc<sluice_core::RelationSchema>,
    ids: &[&str],
) -> LogRecord {
    LogRecord::Transaction(sluice_core::Transaction {
        kind: sluice_core::TxnKind::Snapshot,
        xid: 0,
        commit_lsn: Lsn(lsn),
        end_lsn: Lsn(lsn),
        commit_ts: 0,
        changes: ids
            .iter()
            .map(|id| ins(r, vals(&[Some(id), Some("snap"), None])))
            .collect(),
    })
}

#[tokio::test]
async fn schema_evolution_adds_and_widens_columns() {
    let v1 = rel(
        "public",
        "items",
        1,
        &[
            ("id", oid::INT4, -1, true),
            ("qty", oid::INT2, -1, false),
            ("price", oid::NUMERIC, ((10 << 16) | 2) + 4, false),
            ("tags", oid::INT2_ARRAY, -1, false),
        ],
    );
    let v2 = rel(
        "public",
        "items",
        2,
        &[
            ("id", oid::INT4, -1, true),
            ("qty", oid::INT8, -1, false),
            ("price", oid::NUMERIC, ((14 << 16) | 3) + 4, false),
            ("tags", oid::INT4_ARRAY, -1, false),
            ("added", oid::TEXT, -1, false),
        ],
    );
    let mut f = Fixture::new(DeleteMode::Soft);
    f.apply(&[txn(
        10,
        vec![ins(
            &v1,
            vals(&[Some("1"), Some("7"), Some("12.50"), Some("{1,2}")]),
        )],
    )])
    .await;
    f.apply(&[txn(
        20,
        vec![ins(
            &v2,
            vals(&[
                Some("2"),
                Some("9000000000"),
                Some("12345678901.125"),
                Some("{70000}"),
                Some("x"),
            ]),
        )],
    )])
    .await;
    assert_eq!(
        f.lines(
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_schema = 'raw' AND table_name = 'items' AND column_name NOT LIKE '\\_sluice%' ESCAPE '\\' \
             ORDER BY ordinal_position"
        ),
        vec![
            "id|INTEGER",
            "qty|BIGINT",
            "price|DECIMAL(14,3)",
            "tags|INTEGER[]",
            "added|VARCHAR"
        ]
    );
    assert_eq!(
        f.lines("SELECT id, qty, price, tags, added FROM raw.items ORDER BY id"),
        vec![
            "1|7|12.500|[1, 2]|NULL",
            "2|9000000000|12345678901.125|[70000]|x"
        ]
    );
    // A later relation without a column: the column stays, NULL in new rows.
    let v3 = rel(
        "public",
        "items",
        3,
        &[("id", oid::INT4, -1, true), ("qty", oid::INT8, -1, false)],
    );
    f.apply(&[txn(30, vec![ins(&v3, vals(&[Some("3"), Some("1")]))])])
        .await;
    assert_eq!(
        f.lines("SELECT id, qty, price, added FROM raw.items WHERE id = 3"),
        vec!["3|1|NULL|NULL"]
    );
}

#[tokio::test]
async fn batches_built_by_hand_follow_the_same_rules() {
    // A batch assembled without the builder: one row per key, rows carry their own LSNs.
    let r = orders();
    let mut f = Fixture::new(DeleteMode::Soft);
    let row = |op, id: &str, lsn| Row {
        op,
        values: vals(&[Some(id), Some("s"), None]),
        lsn: Lsn(lsn),
        commit_ts: 0,
        moved_from: None,
    };
    let batch = Batch {
        tables: vec![TableBatch {
            relation: r.clone(),
            truncate_below: None,
            rows: vec![row(RowOp::Upsert, "1", 5), row(RowOp::Delete, "2", 6)],
        }],
        changes: 2,
        bytes: 0,
    };
    f.try_apply(&batch, &Default::default()).await.unwrap();
    assert_eq!(
        f.lines(ROWS),
        vec!["1|s|NULL|5|false", "2|NULL|NULL|6|true"]
    );
    assert_eq!(
        f.lines("SELECT _sluice_commit_ts FROM raw.orders WHERE id = 1"),
        vec!["1970-01-01 00:00:00+00"]
    );
}

/// Target tables have no PRIMARY KEY, so the source may change which columns identify a row:
/// later rows are matched on the new key columns.
#[tokio::test]
async fn key_columns_can_change() {
    let v1 = rel(
        "public",
        "stock",
        1,
        &[
            ("sku", oid::TEXT, -1, true),
            ("site", oid::TEXT, -1, false),
            ("qty", oid::INT4, -1, false),
        ],
    );
    let v2 = rel(
        "public",
        "stock",
        2,
        &[
            ("sku", oid::TEXT, -1, true),
            ("site", oid::TEXT, -1, true),
            ("qty", oid::INT4, -1, false),
        ],
    );
    let mut f = Fixture::new(DeleteMode::Soft);
    f.apply(&[txn(
        10,
        vec![ins(&v1, vals(&[Some("a"), Some("x"), Some("1")]))],
    )])
    .await;
    f.apply(&[txn(
        20,
        vec![
            upd(&v2, None, vals(&[Some("a"), Some("x"), Some("2")])),
            ins(&v2, vals(&[Some("a"), Some("y"), Some("5")])),
        ],
    )])
    .await;
    assert_eq!(
        f.lines("SELECT sku, site, qty, _sluice_lsn FROM raw.stock ORDER BY ALL"),
        vec!["a|x|2|20", "a|y|5|20"]
    );
}
