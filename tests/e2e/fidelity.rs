//! Capture fidelity on a DuckDB target: unchanged TOAST values, every replica identity,
//! TRUNCATE in both delete modes, and schema changes while streaming, each compared value by
//! value with the source.

use std::process::Command;

use sluice_testkit::{PgCluster, TestDatabase};
use sluice_tests::{Kind, Pipeline, assert_same, sluice_bin};

/// Runs `sluice <args> -c <config>`; returns whether it succeeded, and stdout + stderr.
fn run(pipeline: &Pipeline, args: &[&str]) -> (bool, String) {
    let out = Command::new(sluice_bin())
        .args(args)
        .arg("-c")
        .arg(&pipeline.config)
        .env("SLUICE_LOG", "info")
        .output()
        .expect("run sluice");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs `sync --until-caught-up`, which must succeed although a table gets parked; returns
/// its output.
fn sync_past_a_park(pipeline: &Pipeline) -> String {
    let (ok, out) = run(pipeline, &["sync", "--until-caught-up"]);
    assert!(ok, "sync goes on without the parked table:\n{out}");
    out
}

/// The parked tables `sluice status --json` reports.
fn parked_tables(pipeline: &Pipeline) -> Vec<serde_json::Value> {
    let status = Command::new(sluice_bin())
        .args(["status", "--json", "-c"])
        .arg(&pipeline.config)
        .output()
        .expect("run status");
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    report["target"]["checkpoint"]["parked"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no parked tables: {report}"))
}

/// Captures everything committed so far into the change log, then loads it in a separate
/// run, so that the loader sees all of it at once. Returns the loader's output.
fn capture_then_load(pipeline: &Pipeline) -> String {
    for stage in ["capture", "load"] {
        let (ok, out) = run(pipeline, &["sync", "--until-caught-up", "--stage", stage]);
        assert!(ok, "sluice sync --stage {stage} failed:\n{out}");
        if stage == "load" {
            return out;
        }
    }
    unreachable!("the loop returns after the load stage")
}

fn use_hard_deletes(pipeline: &Pipeline) {
    let text = std::fs::read_to_string(&pipeline.config).expect("read config");
    std::fs::write(
        &pipeline.config,
        text.replace("schema = \"raw\"", "schema = \"raw\"\ndeletes = \"hard\""),
    )
    .expect("write config");
}

async fn fresh(schema: &str) -> TestDatabase {
    let db = PgCluster::shared()
        .fresh_database()
        .await
        .expect("database");
    db.execute(schema).await.expect("schema");
    db
}

async fn execute_all(db: &TestDatabase, statements: &[&str]) {
    for sql in statements {
        db.execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

fn count(wh: &duckdb::Connection, sql: &str) -> i64 {
    wh.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// A ~22 kB value that does not compress (and `STORAGE EXTERNAL` does not try): stored out
/// of line, so updates that leave it alone send it as "unchanged".
const BIG: &str = "repeat(md5(random()::text), 700)";

/// Compares the live rows of `table` (`id`, `n`, `small`, `big`) with the source, the big
/// column by its length and MD5 so that a difference prints short.
async fn assert_toast_same(db: &TestDatabase, pipeline: &Pipeline, table: &str) {
    let client = db.client().await.expect("client");
    let mut source: Vec<Vec<Option<String>>> = client
        .query(
            &format!(
                "SELECT id::text, n::text, small, length(big)::text, md5(big) FROM public.{table}"
            ),
            &[],
        )
        .await
        .expect("source rows")
        .iter()
        .map(|r| (0..5).map(|i| r.get(i)).collect())
        .collect();
    let wh = pipeline.warehouse();
    let mut stmt = wh
        .prepare(&format!(
            "SELECT CAST(id AS VARCHAR), CAST(n AS VARCHAR), small, CAST(length(big) AS VARCHAR), \
             md5(big) FROM raw.{table} WHERE NOT _sluice_deleted"
        ))
        .expect("prepare");
    let mut target: Vec<Vec<Option<String>>> = stmt
        .query_map([], |r| (0..5).map(|i| r.get(i)).collect())
        .expect("target rows")
        .map(|r| r.expect("row"))
        .collect();
    source.sort();
    target.sort();
    let missing: Vec<_> = source.iter().filter(|r| !target.contains(r)).collect();
    let extra: Vec<_> = target.iter().filter(|r| !source.contains(r)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "table {table} (id, n, small, length(big), md5(big)): missing in target {missing:?}; \
         extra in target {extra:?}"
    );
}

#[tokio::test]
async fn unchanged_toast_values_keep_the_large_value() {
    let db = fresh(&format!(
        "CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL, small text, big text);
         ALTER TABLE t ALTER COLUMN big SET STORAGE EXTERNAL;
         INSERT INTO t SELECT g, 0, 's' || g, {BIG} FROM generate_series(1, 20) g;
         CREATE TABLE tf (id int PRIMARY KEY, n int NOT NULL, small text, big text);
         ALTER TABLE tf ALTER COLUMN big SET STORAGE EXTERNAL;
         ALTER TABLE tf REPLICA IDENTITY FULL;
         INSERT INTO tf SELECT g, 0, 's' || g, {BIG} FROM generate_series(1, 5) g;"
    ))
    .await;
    let client = db.client().await.expect("client");
    let toasted: bool = client
        .query_one(
            "SELECT pg_relation_size(reltoastrelid) > 0 FROM pg_class WHERE oid = 'public.t'::regclass",
            &[],
        )
        .await
        .expect("toast size")
        .get(0);
    assert!(toasted, "the big values are stored out of line");
    let pipeline = Pipeline::new(&db, &["public.t", "public.tf"], "");
    pipeline.sync_until_caught_up();
    assert_toast_same(&db, &pipeline, "t").await;

    // Updates of small columns only, each loaded on its own.
    execute_all(
        &db,
        &[
            "UPDATE t SET n = n + 1 WHERE id <= 10",
            "UPDATE t SET small = 'changed' WHERE id = 3",
        ],
    )
    .await;
    pipeline.sync_until_caught_up();
    assert_toast_same(&db, &pipeline, "t").await;

    // One batch holding every way an unchanged value can meet an earlier change of its row.
    let statements = [
        "INSERT INTO t VALUES (100, 0, 'new', BIG)",
        "UPDATE t SET n = 7 WHERE id = 100",
        "UPDATE t SET small = 'other' WHERE id = 4",
        "BEGIN; DELETE FROM t WHERE id = 5; INSERT INTO t VALUES (5, 50, 'reborn', BIG); COMMIT",
        "UPDATE t SET n = 55 WHERE id = 5",
        "BEGIN; UPDATE t SET big = BIG WHERE id = 6; UPDATE t SET n = 66 WHERE id = 6; COMMIT",
        "UPDATE t SET big = BIG WHERE id = 7",
        "UPDATE t SET n = 77 WHERE id = 7",
        "BEGIN; INSERT INTO t VALUES (101, 0, 'x', BIG); UPDATE t SET n = 1 WHERE id = 101; COMMIT",
        // A key change of a row whose value is earlier in the batch.
        "INSERT INTO t VALUES (102, 0, 'to move', BIG)",
        "UPDATE t SET id = 1102 WHERE id = 102",
    ];
    for sql in statements {
        let sql = sql.replace("BIG", BIG);
        db.execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let out = capture_then_load(&pipeline);
    assert!(out.contains("loaded 1 batches"), "{out}");
    assert_toast_same(&db, &pipeline, "t").await;

    // With REPLICA IDENTITY FULL the old image carries the value: a key change of a row
    // loaded long ago keeps it.
    execute_all(
        &db,
        &[
            "UPDATE tf SET id = 1000 WHERE id = 1",
            "UPDATE tf SET id = 1001, n = 1 WHERE id = 2",
            "UPDATE tf SET small = 'changed' WHERE id = 3",
        ],
    )
    .await;
    pipeline.sync_until_caught_up();
    assert_toast_same(&db, &pipeline, "tf").await;
    assert_toast_same(&db, &pipeline, "t").await;
}

/// With the default replica identity, a key change of a row loaded in an earlier batch sends
/// the big value as "unchanged" and nothing in the batch holds it: the destination copies it
/// from the target's row of the old key.
#[tokio::test]
async fn unchanged_toast_follows_a_key_change_across_batches() {
    let db = fresh(&format!(
        "CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL, small text, big text);
         ALTER TABLE t ALTER COLUMN big SET STORAGE EXTERNAL;
         INSERT INTO t SELECT g, 0, 's' || g, {BIG} FROM generate_series(1, 3) g;"
    ))
    .await;
    let pipeline = Pipeline::new(&db, &["public.t"], "");
    pipeline.sync_until_caught_up();
    db.execute("UPDATE t SET id = 1000 WHERE id = 1")
        .await
        .expect("key change");
    pipeline.sync_until_caught_up();
    assert_toast_same(&db, &pipeline, "t").await;
}

const PK: &[(&str, Kind)] = &[("id", Kind::Plain), ("v", Kind::Plain)];
const IDX: &[(&str, Kind)] = &[
    ("code", Kind::Plain),
    ("v", Kind::Plain),
    ("n", Kind::Plain),
];
const FULL: &[(&str, Kind)] = &[("a", Kind::Plain), ("b", Kind::Plain), ("c", Kind::Plain)];
const NOTHING: &[(&str, Kind)] = &[("a", Kind::Plain), ("b", Kind::Plain)];

#[tokio::test]
async fn every_replica_identity_lands() {
    let db = fresh(
        "CREATE TABLE pk (id int PRIMARY KEY, v text);
         CREATE TABLE idx (code text NOT NULL, v text, n int);
         CREATE UNIQUE INDEX idx_code ON idx (code);
         ALTER TABLE idx REPLICA IDENTITY USING INDEX idx_code;
         CREATE TABLE full_t (a int, b text, c numeric(8,2));
         ALTER TABLE full_t REPLICA IDENTITY FULL;
         CREATE TABLE nothing_t (a int, b text);
         ALTER TABLE nothing_t REPLICA IDENTITY NOTHING;
         INSERT INTO pk SELECT g, 'v' || g FROM generate_series(1, 20) g;
         INSERT INTO idx SELECT 'c' || g, 'v' || g, g FROM generate_series(1, 20) g;
         INSERT INTO full_t SELECT g, 'b' || g, g * 1.5 FROM generate_series(1, 20) g;
         INSERT INTO nothing_t SELECT g, 'b' || g FROM generate_series(1, 20) g;",
    )
    .await;
    let pipeline = Pipeline::new(
        &db,
        &[
            "public.pk",
            "public.idx",
            "public.full_t",
            "public.nothing_t",
        ],
        "",
    );
    let (_, check) = run(&pipeline, &["check"]);
    assert!(
        check.contains("\"public\".\"nothing_t\"") && check.contains("append-only"),
        "{check}"
    );
    for line in [
        "table \"public\".\"pk\": 2 columns, merged on (id)",
        "table \"public\".\"idx\": 3 columns, merged on (code)",
        "table \"public\".\"full_t\": no primary key: rows are matched on all columns",
    ] {
        assert!(check.contains(line), "expected {line:?} in:\n{check}");
    }
    pipeline.sync_until_caught_up();
    {
        let wh = pipeline.warehouse();
        assert_same(&db, &wh, "pk", PK).await;
        assert_same(&db, &wh, "idx", IDX).await;
        assert_same(&db, &wh, "full_t", FULL).await;
        assert_same(&db, &wh, "nothing_t", NOTHING).await;
    }

    execute_all(
        &db,
        &[
            // DEFAULT with a primary key.
            "UPDATE pk SET v = 'updated' WHERE id <= 5",
            "UPDATE pk SET id = id + 100 WHERE id <= 3",
            "DELETE FROM pk WHERE id = 10",
            "INSERT INTO pk VALUES (50, 'new')",
            // USING INDEX: the index column identifies rows.
            "UPDATE idx SET v = 'updated', n = -n WHERE code IN ('c1', 'c2', 'c3', 'c4')",
            "UPDATE idx SET code = 'moved-' || code WHERE code IN ('c1', 'c2')",
            "DELETE FROM idx WHERE code = 'c10'",
            "INSERT INTO idx VALUES ('c50', 'new', 50)",
            // FULL without a key: matched on every column.
            "UPDATE full_t SET b = 'updated' WHERE a = 1",
            "UPDATE full_t SET a = 1000 WHERE a = 2",
            "UPDATE full_t SET c = 99.99 WHERE a IN (4, 5)",
            "DELETE FROM full_t WHERE a IN (3, 6)",
            "INSERT INTO full_t VALUES (50, 'new', 0)",
            "UPDATE full_t SET b = 'twice' WHERE a = 50",
            // NOTHING without a key: inserts only (the source refuses updates and deletes).
            "INSERT INTO nothing_t VALUES (50, 'new'), (51, 'new')",
        ],
    )
    .await;
    pipeline.sync_until_caught_up();
    let wh = pipeline.warehouse();
    assert_same(&db, &wh, "pk", PK).await;
    assert_same(&db, &wh, "idx", IDX).await;
    assert_same(&db, &wh, "full_t", FULL).await;
    assert_same(&db, &wh, "nothing_t", NOTHING).await;
    // Moved rows leave their old identity behind, soft-deleted.
    assert_eq!(
        count(
            &wh,
            "SELECT count(*) FROM raw.pk WHERE _sluice_deleted AND id IN (1, 2, 3, 10)"
        ),
        4
    );
    assert_eq!(
        count(
            &wh,
            "SELECT count(*) FROM raw.idx WHERE _sluice_deleted AND code IN ('c1', 'c2', 'c10')"
        ),
        3
    );
    assert_eq!(
        count(
            &wh,
            "SELECT count(*) FROM raw.full_t WHERE _sluice_deleted AND a IN (1, 2, 3, 4, 5, 6, 50)"
        ),
        7
    );
}

async fn truncate_while_streaming(hard: bool) {
    let db = fresh(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         CREATE TABLE other (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 10) g;
         INSERT INTO other SELECT g, 'o' || g FROM generate_series(1, 10) g;",
    )
    .await;
    let pipeline = Pipeline::new(&db, &["public.t", "public.other"], "");
    if hard {
        use_hard_deletes(&pipeline);
    }
    pipeline.sync_until_caught_up();

    // In one batch: a row before the truncate, a truncate with inserts (including keys the
    // target holds) in the same transaction, then later transactions.
    execute_all(
        &db,
        &[
            "INSERT INTO t VALUES (11, 'before')",
            "BEGIN; UPDATE t SET v = 'doomed' WHERE id = 1; TRUNCATE t; \
             INSERT INTO t VALUES (1, 'same txn'), (2, 'same txn'), (12, 'same txn'); COMMIT",
            "INSERT INTO t VALUES (3, 'later'), (50, 'later')",
            "UPDATE t SET v = 'later update' WHERE id = 2",
            "UPDATE other SET v = 'untouched by the truncate' WHERE id = 1",
        ],
    )
    .await;
    capture_then_load(&pipeline);
    {
        let wh = pipeline.warehouse();
        assert_same(&db, &wh, "t", PK).await;
        assert_same(&db, &wh, "other", PK).await;
        let total = count(&wh, "SELECT count(*) FROM raw.t");
        let deleted = count(&wh, "SELECT count(*) FROM raw.t WHERE _sluice_deleted");
        if hard {
            assert_eq!((total, deleted), (5, 0));
        } else {
            // 1..10 loaded before (11 never reached the target): 4..10 stay marked deleted,
            // 1, 2 and 3 came back; 12 and 50 are new.
            assert_eq!((total, deleted), (12, 7));
        }
    }

    // A truncate of both tables alone in its batch, then inserts in a later one.
    db.execute("TRUNCATE t, other").await.expect("truncate");
    pipeline.sync_until_caught_up();
    {
        let wh = pipeline.warehouse();
        assert_same(&db, &wh, "t", PK).await;
        assert_same(&db, &wh, "other", PK).await;
        assert_eq!(
            count(&wh, "SELECT count(*) FROM raw.t WHERE NOT _sluice_deleted"),
            0
        );
        if hard {
            assert_eq!(count(&wh, "SELECT count(*) FROM raw.other"), 0);
        }
    }
    db.execute("INSERT INTO t VALUES (1, 'after'); INSERT INTO other VALUES (7, 'after')")
        .await
        .expect("insert");
    pipeline.sync_until_caught_up();
    let wh = pipeline.warehouse();
    assert_same(&db, &wh, "t", PK).await;
    assert_same(&db, &wh, "other", PK).await;
}

#[tokio::test]
async fn truncate_soft_marks_rows_deleted() {
    truncate_while_streaming(false).await;
}

#[tokio::test]
async fn truncate_hard_empties_the_target() {
    truncate_while_streaming(true).await;
}

#[tokio::test]
async fn schema_changes_while_streaming() {
    let db = fresh(
        "CREATE TABLE t (id int PRIMARY KEY, n int, code varchar(10), amount numeric(10,2),
                         gone text, keep text);
         INSERT INTO t SELECT g, g, 'c' || g, g * 1.25, 'g' || g, 'k' || g
         FROM generate_series(1, 10) g;",
    )
    .await;
    let pipeline = Pipeline::new(&db, &["public.t"], "");
    pipeline.sync_until_caught_up();
    let base = [
        ("id", Kind::Plain),
        ("n", Kind::Plain),
        ("code", Kind::Plain),
        ("amount", Kind::Plain),
        ("keep", Kind::Plain),
    ];

    // An added column with a default, values set afterwards, a row inserted with it.
    execute_all(
        &db,
        &[
            "UPDATE t SET keep = 'before add' WHERE id = 1",
            "ALTER TABLE t ADD COLUMN extra int DEFAULT 5",
            "UPDATE t SET extra = id * 10",
            "INSERT INTO t VALUES (11, 11, 'c11', 1.5, 'g11', 'k11', 110)",
            "INSERT INTO t (id, n) VALUES (12, 12)",
        ],
    )
    .await;
    pipeline.sync_until_caught_up();
    let mut columns = base.to_vec();
    columns.extend([("gone", Kind::Plain), ("extra", Kind::Plain)]);
    assert_same(&db, &pipeline.warehouse(), "t", &columns).await;

    // A dropped column stays in the target, NULL in rows written afterwards.
    execute_all(
        &db,
        &[
            "UPDATE t SET keep = 'before drop' WHERE id = 4",
            "ALTER TABLE t DROP COLUMN gone",
            "UPDATE t SET keep = 'after drop' WHERE id <= 3",
            "INSERT INTO t (id, n, keep, extra) VALUES (13, 13, 'k13', 130)",
            "BEGIN; DELETE FROM t WHERE id = 5; INSERT INTO t (id, n) VALUES (5, 55); COMMIT",
        ],
    )
    .await;
    pipeline.sync_until_caught_up();
    let mut columns = base.to_vec();
    columns.push(("extra", Kind::Plain));
    {
        let wh = pipeline.warehouse();
        assert_same(&db, &wh, "t", &columns).await;
        assert_eq!(
            count(
                &wh,
                "SELECT count(*) FROM raw.t WHERE id IN (1, 2, 3, 5, 13) AND gone IS NULL"
            ),
            5,
            "rows written after the drop hold NULL in the dropped column"
        );
        assert_eq!(
            count(
                &wh,
                "SELECT count(*) FROM raw.t WHERE id BETWEEN 6 AND 11 AND gone = 'g' || id"
            ),
            6,
            "rows not written since keep their value"
        );
    }

    // Widened types, each followed by changes that need the wider type.
    execute_all(
        &db,
        &[
            "UPDATE t SET n = n + 1 WHERE id = 6",
            "ALTER TABLE t ALTER COLUMN n TYPE bigint",
            "UPDATE t SET n = 5000000000 WHERE id = 1",
            "UPDATE t SET code = 'abc' WHERE id = 7",
            "ALTER TABLE t ALTER COLUMN code TYPE text",
            "UPDATE t SET code = 'a code much longer than ten characters' WHERE id = 2",
            "UPDATE t SET amount = amount + 1 WHERE id = 8",
            "ALTER TABLE t ALTER COLUMN amount TYPE numeric(14,2)",
            "UPDATE t SET amount = 123456789012.34 WHERE id = 3",
            "INSERT INTO t (id, n, code, amount) VALUES (14, -9000000000, repeat('z', 40), -99999999999.99)",
        ],
    )
    .await;
    pipeline.sync_until_caught_up();
    let wh = pipeline.warehouse();
    assert_same(&db, &wh, "t", &columns).await;
    let mut stmt = wh
        .prepare(
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_schema = 'raw' AND table_name = 't' AND column_name IN ('n', 'code', 'amount') \
             ORDER BY column_name",
        )
        .expect("prepare");
    let types: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("types")
        .map(|r| r.expect("row"))
        .collect();
    assert_eq!(
        types,
        [
            ("amount".to_owned(), "DECIMAL(14,2)".to_owned()),
            ("code".to_owned(), "VARCHAR".to_owned()),
            ("n".to_owned(), "BIGINT".to_owned()),
        ]
    );
}

/// A type change the target cannot follow exactly parks that table with an error naming the
/// table, the column, both types and how to resync; the other table keeps loading (also the
/// part of a source transaction that touched both), the park survives a restart and shows in
/// `sluice status --json`, and after the steps of the hint both tables equal the source.
#[tokio::test]
async fn unsafe_type_change_parks_only_that_table() {
    let db = fresh(
        "CREATE TABLE t (id int PRIMARY KEY, d text);
         CREATE TABLE other (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, '2024-01-0' || g FROM generate_series(1, 9) g;
         INSERT INTO other SELECT g, 'o' || g FROM generate_series(1, 10) g;",
    )
    .await;
    let pipeline = Pipeline::new(&db, &["public.t", "public.other"], "");
    pipeline.sync_until_caught_up();
    execute_all(
        &db,
        &[
            "UPDATE other SET v = 'before' WHERE id <= 5",
            "UPDATE t SET d = '2024-02-01' WHERE id = 1",
        ],
    )
    .await;
    pipeline.sync_until_caught_up();

    execute_all(
        &db,
        &[
            "UPDATE other SET v = 'same run' WHERE id = 6",
            "UPDATE t SET d = '2024-03-01' WHERE id = 3",
            "ALTER TABLE t ALTER COLUMN d TYPE date USING d::date",
            "UPDATE t SET d = d + 1 WHERE id = 2",
            // One transaction touching both tables: the other table's part is loaded.
            "BEGIN; UPDATE t SET d = d + 2 WHERE id = 4; UPDATE other SET v = 'after' WHERE id = 7; COMMIT",
        ],
    )
    .await;
    let out = sync_past_a_park(&pipeline);
    assert!(
        out.contains("table \"raw\".\"t\": column \"d\" changed from VARCHAR to DATE"),
        "the error names the table, the column and both types:\n{out}"
    );
    assert!(
        out.contains("sluice teardown --yes") && out.contains("DROP TABLE \"raw\".\"t\""),
        "the error says how to resync:\n{out}"
    );
    // Changes to the other table after the ALTER, in the same run and a later one.
    execute_all(&db, &["UPDATE other SET v = 'later' WHERE id = 8"]).await;
    let (ok, out) = run(&pipeline, &["sync", "--until-caught-up"]);
    assert!(ok, "the park survives a restart:\n{out}");
    assert!(
        out.contains("table parked"),
        "a restart says so again:\n{out}"
    );
    {
        let wh = pipeline.warehouse();
        assert_same(&db, &wh, "other", PK).await;
        assert_eq!(
            count(&wh, "SELECT count(*) FROM raw.t WHERE d = '2024-03-01'"),
            0,
            "nothing of the parked table after the park"
        );
        assert_eq!(
            count(&wh, "SELECT count(*) FROM raw.t WHERE d = '2024-01-03'"),
            1,
            "the parked table stays as it was at the park"
        );
    }
    let parked = parked_tables(&pipeline);
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0]["table"], "public.t");
    let reason = parked[0]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("column \"d\" changed from VARCHAR to DATE"),
        "{reason}"
    );
    let resync = parked[0]["resync"].as_str().expect("resync");
    assert!(resync.contains("sluice teardown --yes"), "{resync}");

    // The operator follows the hint.
    let (ok, out) = run(&pipeline, &["teardown", "--yes"]);
    assert!(ok, "{out}");
    std::fs::remove_dir_all(pipeline.dir.path().join("log")).expect("remove the change log");
    {
        let sql = resync
            .split("run in the target: ")
            .nth(1)
            .and_then(|rest| rest.split(" and run `sluice sync`").next())
            .unwrap_or_else(|| panic!("no target SQL in the hint: {resync}"));
        let wh = duckdb::Connection::open(&pipeline.warehouse).expect("open warehouse");
        wh.execute_batch(sql).expect("the hint's SQL runs");
    }
    execute_all(&db, &["UPDATE t SET d = d + 3 WHERE id = 5"]).await;
    pipeline.sync_until_caught_up();
    let wh = pipeline.warehouse();
    assert_same(&db, &wh, "t", &[("id", Kind::Plain), ("d", Kind::Plain)]).await;
    assert_same(&db, &wh, "other", PK).await;
    let (_, out) = run(&pipeline, &["status", "--json"]);
    assert!(out.contains("\"parked\""), "{out}");
    assert!(
        !out.contains("\"parked_at_lsn\""),
        "unparked after the resync:\n{out}"
    );
}

/// A value the target refuses (an array whose dimensions differ from its DuckDB list column's)
/// parks only its table: the other table keeps loading, `sluice status` names the table, the
/// column and the key, and `sluice verify` exits 3 reporting the table as parked.
#[tokio::test]
async fn a_refused_value_parks_only_its_table() {
    let db = fresh(
        "CREATE TABLE t (id int PRIMARY KEY, a int[]);
         CREATE TABLE other (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, ARRAY[g, g + 1] FROM generate_series(1, 5) g;
         INSERT INTO other SELECT g, 'o' || g FROM generate_series(1, 10) g;",
    )
    .await;
    let pipeline = Pipeline::new(&db, &["public.t", "public.other"], "");
    pipeline.sync_until_caught_up();
    execute_all(
        &db,
        &[
            "UPDATE other SET v = 'before' WHERE id = 1",
            // Two dimensions where the column holds one: the target refuses the value.
            "BEGIN; INSERT INTO t VALUES (42, '{{1,2},{3,4}}'); UPDATE other SET v = 'same txn' WHERE id = 2; COMMIT",
            "UPDATE t SET a = ARRAY[7] WHERE id = 1",
            "UPDATE other SET v = 'after' WHERE id = 3",
        ],
    )
    .await;
    let out = sync_past_a_park(&pipeline);
    assert!(
        out.contains("table \"raw\".\"t\" column \"a\" at key (id)=(42)"),
        "the error names the table, the column and the key:\n{out}"
    );
    assert!(
        !out.contains("{{1,2},{3,4}}"),
        "the value itself stays out of the logs:\n{out}"
    );
    {
        let wh = pipeline.warehouse();
        assert_same(&db, &wh, "other", PK).await;
        assert_eq!(
            count(&wh, "SELECT count(*) FROM raw.t WHERE id = 42"),
            0,
            "nothing of the parked table after the park"
        );
    }
    let parked = parked_tables(&pipeline);
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0]["table"], "public.t");
    let reason = parked[0]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("column \"a\" at key (id)=(42)") && reason.contains("2 dimensions"),
        "{reason}"
    );
    let verify = Command::new(sluice_bin())
        .args(["verify", "-c"])
        .arg(&pipeline.config)
        .output()
        .expect("run verify");
    let out = String::from_utf8_lossy(&verify.stdout);
    assert_eq!(
        verify.status.code(),
        Some(3),
        "verify reports a difference:\n{out}"
    );
    assert!(
        out.contains("PARKED    \"public\".\"t\"")
            && out.contains("equal     \"public\".\"other\""),
        "verify reports the table as parked and the other as equal:\n{out}"
    );
}

/// `sluice check` lists the columns the target keeps as exact text (DuckDB: unconstrained
/// numeric, types without a DuckDB counterpart), and only those.
#[tokio::test]
async fn check_lists_the_columns_kept_as_text() {
    let db = fresh("CREATE TABLE m (id int PRIMARY KEY, amount numeric, price numeric(10,2), addr inet, tags inet[], cash money)").await;
    let pipeline = Pipeline::new(&db, &["public.m"], "");
    let out = Command::new(sluice_bin())
        .args(["check", "--json", "-c"])
        .arg(&pipeline.config)
        .output()
        .expect("run check");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("check JSON");
    let finding = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["subject"] == "type mapping")
        .unwrap_or_else(|| panic!("no type mapping finding: {report}"));
    let message = finding["message"].as_str().expect("message");
    assert!(
        message.starts_with("4 columns kept as exact PostgreSQL text"),
        "{message}"
    );
    for kept in ["m\".amount", "m\".addr", "m\".tags", "m\".cash"] {
        assert!(message.contains(kept), "{kept} missing: {message}");
    }
    for native in ["m\".id", "m\".price"] {
        assert!(!message.contains(native), "{native} listed: {message}");
    }
}

#[tokio::test]
async fn partitioned_tables_replicate_through_their_root() {
    let db = fresh(
        "CREATE TABLE m (id int, region text, v text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
         CREATE TABLE m_eu PARTITION OF m FOR VALUES IN ('eu');
         CREATE TABLE m_us PARTITION OF m FOR VALUES IN ('us');
         INSERT INTO m SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, 'v' || g
           FROM generate_series(1, 40) g;",
    )
    .await;
    let pipeline = Pipeline::new(&db, &["public.m"], "");
    pipeline.sync_until_caught_up();
    execute_all(
        &db,
        &[
            "INSERT INTO m VALUES (100, 'eu', 'new eu'), (101, 'us', 'new us')",
            "UPDATE m SET v = 'changed' WHERE id <= 10",
            // A row moving to the other partition.
            "UPDATE m SET region = 'us' WHERE id = 2",
            "DELETE FROM m WHERE id BETWEEN 20 AND 25",
        ],
    )
    .await;
    pipeline.sync_until_caught_up();
    let wh = pipeline.warehouse();
    let cols = &[
        ("id", Kind::Plain),
        ("region", Kind::Plain),
        ("v", Kind::Plain),
    ];
    assert_same(&db, &wh, "m", cols).await;
    assert_eq!(
        count(
            &wh,
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'raw' \
             AND table_name IN ('m_eu', 'm_us')"
        ),
        0,
        "the partitions' changes land in the table, not in tables of their own"
    );
}
