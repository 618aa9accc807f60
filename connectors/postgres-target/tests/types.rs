//! Every type the source has round-trips exactly: the target prints each value as the source
//! does. A bad value fails the batch, naming table and column, and changes nothing.

use sluice_core::{
    Checkpoint, Classify, DeleteMode, Destination, ErrorClass, LogRecord, TableId, Value,
};
use sluice_testkit::fixtures::{TYPE_ZOO, type_zoo_as_text};
use sluice_testkit::{PgCluster, TestDatabase};

use crate::support::*;

/// The source's rows of `zoo` as change values: each value in its text output form, as
/// pgoutput sends it.
async fn source_changes(
    source: &TestDatabase,
) -> (std::sync::Arc<sluice_core::RelationSchema>, Vec<Vec<Value>>) {
    let client = source.client().await.expect("client");
    let relation =
        sluice_postgres_client::catalog::relation_schema(&client, &TableId::new("public", "zoo"))
            .await
            .expect("relation");
    let rows = text_rows(source, "SELECT * FROM zoo ORDER BY id")
        .await
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|v| v.map_or(Value::Null, Value::Text))
                .collect()
        })
        .collect();
    (std::sync::Arc::new(relation), rows)
}

async fn assert_same(source: &TestDatabase, t: &Target) {
    let want = text_rows(source, &type_zoo_as_text("zoo", "true")).await;
    let got = text_rows(&t.db, &type_zoo_as_text("raw.zoo", "true")).await;
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
}

#[tokio::test]
async fn type_zoo_round_trips_exactly() {
    let source = PgCluster::shared().fresh_database().await.expect("source");
    source.execute(TYPE_ZOO).await.expect("zoo");
    let (r, rows) = source_changes(&source).await;
    let mut t = Target::new(DeleteMode::Soft).await;
    t.apply(&[txn(10, rows.into_iter().map(|v| ins(&r, v)).collect())])
        .await;
    assert_same(&source, &t).await;
    let types = t
        .lines(
            "SELECT string_agg(format_type(atttypid, atttypmod), ', ' ORDER BY attnum) \
             FROM pg_attribute WHERE attrelid = 'raw.zoo'::regclass AND attnum > 0",
        )
        .await;
    assert_eq!(
        types,
        vec![
            "integer, boolean, smallint, integer, bigint, real, double precision, \
             numeric(38,10), numeric, text, character varying(5), character(4), bytea, uuid, \
             json, jsonb, date, time without time zone, time with time zone, timestamp without \
             time zone, timestamp with time zone, interval, integer[], text[], inet, text, \
             bigint, timestamp with time zone, boolean, timestamp with time zone"
        ]
    );

    // Changes: update every value of one row, swap another's, delete a third.
    source
        .execute(
            "UPDATE zoo SET (b, f8, n, t, ia, ttz, iv) = (false, 'NaN', '1e-20', 'changed', \
             '{{{1}}}', '23:59:59.999999-15:59', '1 microsecond') WHERE id = 1; \
             UPDATE zoo SET (b, i4, j) = (true, -1, '{\"k\": [true]}') WHERE id = 4; \
             DELETE FROM zoo WHERE id = 2",
        )
        .await
        .expect("changes");
    let (_, rows) = source_changes(&source).await;
    let mut changes: Vec<_> = rows.into_iter().map(|v| upd(&r, None, v)).collect();
    changes.push(del(&r, vals(&[Some("2")])));
    let mut hard = Target {
        db: t.db.clone(),
        dest: sluice_postgres_target::destination({
            let mut c = sluice_postgres_target::PostgresTargetConfig::new(t.db.url());
            c.deletes = DeleteMode::Hard;
            c
        })
        .expect("config"),
    };
    hard.dest.open(PIPELINE).await.expect("open");
    hard.apply(&[txn(20, changes)]).await;
    assert_same(&source, &hard).await;
}

#[tokio::test]
async fn bad_value_fails_the_batch_and_changes_nothing() {
    let r = rel(
        "bad",
        &[
            ("id", sluice_core::pg_type::oid::INT4, -1, true),
            ("n", sluice_core::pg_type::oid::INT4, -1, false),
            ("vc", sluice_core::pg_type::oid::VARCHAR, 5 + 4, false),
        ],
    );
    let ok = rel("fine", &[("id", sluice_core::pg_type::oid::INT4, -1, true)]);
    let mut t = Target::new(DeleteMode::Soft).await;
    let first: Vec<LogRecord> = vec![txn(
        10,
        vec![
            ins(&r, vals(&[Some("1"), Some("1"), Some("a")])),
            ins(&ok, vals(&[Some("1")])),
        ],
    )];
    let (batch, cp) = build(0, &first);
    t.try_apply(&batch, &cp).await.expect("first batch");
    let before = (t.dump("raw.bad").await, t.dump("raw.fine").await);

    for (values, column, reason) in [
        (
            vals(&[Some("1"), Some("abc"), Some("b")]),
            "n",
            "not a valid integer (SQLSTATE 22P02)",
        ),
        (
            vals(&[Some("2"), Some("2"), Some("abcdefgh")]),
            "vc",
            "not a valid character varying(5) (SQLSTATE 22001)",
        ),
    ] {
        let (batch, cp2) = build(
            1,
            &[txn(20, vec![ins(&ok, vals(&[Some("2")])), ins(&r, values)])],
        );
        let err = t.try_apply(&batch, &cp2).await.expect_err("bad value");
        assert_eq!(err.class(), ErrorClass::Definite, "{err}");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("table \"raw\".\"bad\" column \"{column}\": ")),
            "{message}"
        );
        assert!(message.ends_with(reason), "{message}");
        assert_eq!((t.dump("raw.bad").await, t.dump("raw.fine").await), before);
        let stored: Option<Checkpoint> = t.dest.open(PIPELINE).await.expect("open");
        assert_eq!(stored, Some(cp.clone()), "the checkpoint did not move");
    }
}
