//! Row semantics: upserts, deletes, truncates, key changes, replays, unchanged TOAST.

use sluice_core::pg_type::oid;
use sluice_core::{DeleteMode, Destination, Value};

use crate::support::*;

use sluice_testkit::records::{insert_orders, order_history, orders};

const ROWS: &str =
    "SELECT id, status, note, _sluice_lsn, _sluice_deleted FROM raw.orders ORDER BY id";

#[tokio::test]
async fn insert_update_soft_delete_undelete() {
    let r = orders();
    let mut t = Target::new(DeleteMode::Soft).await;
    for records in order_history() {
        t.apply(&records).await;
    }
    assert_eq!(
        t.lines(ROWS).await,
        vec!["1|paid|NULL|20|f", "2|new|b|30|t"],
        "the update replaced the row, the soft delete kept its values"
    );
    assert_eq!(
        t.lines("SELECT _sluice_commit_ts AT TIME ZONE 'UTC' FROM raw.orders WHERE id = 2")
            .await,
        vec!["2024-01-01 00:00:30"]
    );
    // A delete of a key the target never saw leaves a tombstone.
    t.apply(&[txn(35, vec![del(&r, vals(&[Some("9"), None, None]))])])
        .await;
    // Un-delete: a newer upsert of a soft-deleted row revives it.
    t.apply(&[txn(
        40,
        vec![ins(&r, vals(&[Some("2"), Some("again"), None]))],
    )])
    .await;
    assert_eq!(
        t.lines(ROWS).await,
        vec!["1|paid|NULL|20|f", "2|again|NULL|40|f", "9|NULL|NULL|35|t"]
    );
    // An older insert of the tombstoned key does not resurrect it.
    t.apply(&[txn(
        33,
        vec![ins(&r, vals(&[Some("9"), Some("old"), None]))],
    )])
    .await;
    assert_eq!(
        t.lines("SELECT status, _sluice_deleted FROM raw.orders WHERE id = 9")
            .await,
        vec!["NULL|t"]
    );
}

#[tokio::test]
async fn hard_delete_truncate_and_key_change() {
    let r = orders();
    let mut t = Target::new(DeleteMode::Hard).await;
    t.apply(&[insert_orders(10, &[("1", "a"), ("2", "b"), ("3", "c")])])
        .await;
    t.apply(&[txn(
        20,
        vec![
            del(&r, vals(&[Some("1"), None, None])),
            // Key change 2 -> 5: the old key goes, the new one arrives.
            upd(
                &r,
                Some(vals(&[Some("2"), None, None])),
                vals(&[Some("5"), Some("b2"), None]),
            ),
        ],
    )])
    .await;
    assert_eq!(t.lines(ROWS).await, vec!["3|c|NULL|10|f", "5|b2|NULL|20|f"]);
    t.apply(&[
        txn(30, vec![truncate(&r)]),
        txn(40, vec![ins(&r, vals(&[Some("7"), Some("after"), None]))]),
    ])
    .await;
    assert_eq!(t.lines(ROWS).await, vec!["7|after|NULL|40|f"]);

    let mut s = Target::new(DeleteMode::Soft).await;
    s.apply(&[txn(10, vec![ins(&r, vals(&[Some("1"), Some("a"), None]))])])
        .await;
    s.apply(&[txn(20, vec![truncate(&r)])]).await;
    assert_eq!(
        s.lines(ROWS).await,
        vec!["1|a|NULL|10|t"],
        "soft truncate marks rows"
    );
}

#[tokio::test]
async fn duplicate_and_older_delivery_change_nothing() {
    let r = orders();
    let mut t = Target::new(DeleteMode::Soft).await;
    let records = [
        txn(10, vec![ins(&r, vals(&[Some("1"), Some("a"), Some("x")]))]),
        txn(
            20,
            vec![upd(&r, None, vals(&[Some("1"), Some("b"), Some("y")]))],
        ),
        txn(30, vec![del(&r, vals(&[Some("1"), None, None]))]),
        txn(40, vec![ins(&r, vals(&[Some("2"), Some("c"), None]))]),
    ];
    let (batch, cp) = build(0, &records);
    t.try_apply(&batch, &cp).await.expect("first");
    let before = t.dump("raw.orders").await;
    t.try_apply(&batch, &cp).await.expect("again");
    assert_eq!(
        t.dump("raw.orders").await,
        before,
        "a replayed batch changes nothing"
    );
    // Each prefix, delivered again, changes nothing either.
    for n in 1..records.len() {
        t.apply(&records[..n]).await;
        assert_eq!(t.dump("raw.orders").await, before, "prefix of {n}");
    }
    // An older change of a held row does not overwrite the newer one.
    let (older, older_cp) = build(
        9,
        &[txn(
            35,
            vec![upd(&r, None, vals(&[Some("2"), Some("older"), None]))],
        )],
    );
    t.try_apply(&older, &older_cp).await.expect("older");
    assert_eq!(t.dump("raw.orders").await, before);
    let stored = t
        .dest
        .open(PIPELINE)
        .await
        .expect("reopen")
        .expect("checkpoint");
    assert_eq!(stored, older_cp, "the checkpoint is the last one applied");
}

#[tokio::test]
async fn unchanged_toast_keeps_the_target_value_and_nulls_stay_null() {
    let r = orders();
    let mut t = Target::new(DeleteMode::Soft).await;
    t.apply(&[txn(
        10,
        vec![ins(
            &r,
            vals(&[Some("1"), Some("a"), Some("big toasted value")]),
        )],
    )])
    .await;
    t.apply(&[txn(
        20,
        vec![upd(
            &r,
            None,
            vec![Value::from("1"), Value::Null, Value::Unchanged],
        )],
    )])
    .await;
    assert_eq!(t.lines(ROWS).await, vec!["1|NULL|big toasted value|20|f"]);
    // Unchanged for a row the target lacks: nothing to keep, NULL.
    t.apply(&[txn(
        30,
        vec![upd(
            &r,
            None,
            vec![Value::from("2"), Value::from("b"), Value::Unchanged],
        )],
    )])
    .await;
    assert_eq!(
        t.lines(ROWS).await,
        vec!["1|NULL|big toasted value|20|f", "2|b|NULL|30|f"]
    );
}

#[tokio::test]
async fn tables_without_key_append_and_columns_evolve() {
    let events = rel(
        "events",
        &[("k", oid::INT4, -1, false), ("v", oid::TEXT, -1, false)],
    );
    let mut t = Target::new(DeleteMode::Soft).await;
    t.apply(&[txn(
        10,
        vec![
            ins(&events, vals(&[Some("1"), Some("a")])),
            ins(&events, vals(&[Some("1"), Some("a")])),
        ],
    )])
    .await;
    assert_eq!(
        t.lines("SELECT k, v FROM raw.events").await,
        vec!["1|a", "1|a"]
    );

    // Added column, widened type, then an unsafe change refused with both types named.
    let v1 = rel(
        "w",
        &[("id", oid::INT4, -1, true), ("n", oid::INT2, -1, false)],
    );
    t.apply(&[txn(10, vec![ins(&v1, vals(&[Some("1"), Some("5")]))])])
        .await;
    let v2 = rel(
        "w",
        &[
            ("id", oid::INT4, -1, true),
            ("n", oid::INT8, -1, false),
            ("extra", oid::JSONB, -1, false),
        ],
    );
    t.apply(&[txn(
        20,
        vec![ins(
            &v2,
            vals(&[Some("2"), Some("9000000000"), Some("{\"a\": 1}")]),
        )],
    )])
    .await;
    assert_eq!(
        t.lines("SELECT id, n, extra, pg_typeof(n) FROM raw.w ORDER BY id")
            .await,
        vec!["1|5|NULL|bigint", "2|9000000000|{\"a\": 1}|bigint"]
    );
    let v3 = rel(
        "w",
        &[
            ("id", oid::INT4, -1, true),
            ("n", oid::TIMESTAMP, -1, false),
        ],
    );
    let (batch, cp) = build(
        5,
        &[txn(
            30,
            vec![ins(&v3, vals(&[Some("3"), Some("2024-01-01 00:00:00")]))],
        )],
    );
    let err = t.try_apply(&batch, &cp).await.expect_err("unsafe change");
    assert_eq!(
        sluice_core::Classify::class(&err),
        sluice_core::ErrorClass::Definite
    );
    assert_eq!(
        err.to_string(),
        "table \"raw\".\"w\": column \"n\" changed from bigint to timestamp without time zone, \
         which cannot hold every existing value exactly"
    );
    assert!(
        sluice_core::Classify::wedged_table(&err).is_some(),
        "the table to park"
    );
}

#[tokio::test]
async fn hostile_names_round_trip() {
    let long = "c_23456789_123456789_123456789_123456789_123456789_123456789_12";
    let r = rel(
        "; DROP TABLE x; --",
        &[
            ("we\"ird", oid::INT4, -1, true),
            ("with space", oid::TEXT, -1, false),
            ("ünïcödé", oid::TEXT, -1, false),
            ("select", oid::TEXT, -1, false),
            (long, oid::TEXT, -1, false),
            ("; DROP TABLE x; --", oid::TEXT, -1, false),
        ],
    );
    let mut t = Target::new(DeleteMode::Soft).await;
    t.apply(&[txn(
        10,
        vec![ins(
            &r,
            vals(&[
                Some("1"),
                Some("it's"),
                Some("\\x"),
                Some("'; --"),
                Some("l"),
                Some("\""),
            ]),
        )],
    )])
    .await;
    t.apply(&[txn(
        20,
        vec![del(&r, vals(&[Some("1"), None, None, None, None, None]))],
    )])
    .await;
    let columns = "\"we\"\"ird\", \"with space\", \"ünïcödé\", \"select\", \"c_23456789_123456789_123456789_123456789_123456789_123456789_12\", \"; DROP TABLE x; --\", _sluice_deleted";
    assert_eq!(
        t.lines(&format!("SELECT {columns} FROM raw.\"; DROP TABLE x; --\""))
            .await,
        vec!["1|it's|\\x|'; --|l|\"|t"]
    );
}
