//! `sluice verify`: equal after a sync; a changed target row and a changed column value give
//! exit code 3 and name the keys.

use std::process::Command;

use sluice_testkit::PgCluster;
use sluice_tests::{Pipeline, sluice_bin};

fn verify(pipeline: &Pipeline, json: bool) -> (i32, String) {
    let mut cmd = Command::new(sluice_bin());
    cmd.arg("verify").arg("-c").arg(&pipeline.config);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().expect("run verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn verify_finds_changed_rows_and_values() {
    let db = PgCluster::shared()
        .fresh_database()
        .await
        .expect("database");
    db.execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric(12,2), opened timestamptz,
                                flags bool[], blob bytea, score float8, code char(4));
         INSERT INTO accounts SELECT g, 'owner ' || g, g * 10.5, timestamptz '2024-01-01 00:00:00.5+00' + g * interval '1 hour',
                                     array[g % 2 = 0, NULL], decode('00ff' || lpad(to_hex(g), 4, '0'), 'hex'), g / 7.0, 'c' || g % 10
         FROM generate_series(1, 300) g;
         CREATE TABLE notes (n int PRIMARY KEY, body text);
         INSERT INTO notes VALUES (1, 'one'), (2, NULL);
         DELETE FROM accounts WHERE id = 300;",
    )
    .await
    .expect("schema");
    let pipeline = Pipeline::new(&db, &["public.*"], "");
    pipeline.sync_until_caught_up();
    db.execute("UPDATE accounts SET owner = 'changed' WHERE id = 5; DELETE FROM notes WHERE n = 2")
        .await
        .expect("changes");
    pipeline.sync_until_caught_up();

    let (code, out) = verify(&pipeline, false);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("source and target are equal (2 tables)"),
        "{out}"
    );

    // Break the target: change one column value, remove one row, add a row the source lacks.
    {
        let wh = duckdb::Connection::open(&pipeline.warehouse).expect("open warehouse");
        wh.execute_batch(
            "UPDATE raw.accounts SET balance = balance + 0.01 WHERE id = 42;
             DELETE FROM raw.accounts WHERE id = 7;
             INSERT INTO raw.accounts (id, owner, _sluice_lsn, _sluice_deleted) VALUES (1000, 'ghost', 1, false);",
        )
        .expect("tamper");
    }
    let (code, out) = verify(&pipeline, false);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("DIFFERENT \"public\".\"accounts\""), "{out}");
    assert!(out.contains("missing in target: (7)"), "{out}");
    assert!(out.contains("only in target: (1000)"), "{out}");
    assert!(out.contains("different content: (42)"), "{out}");
    assert!(out.contains("equal     \"public\".\"notes\""), "{out}");

    let (code, json) = verify(&pipeline, true);
    assert_eq!(code, 3);
    assert!(
        json.contains("\"equal\": false") && json.contains("\"different\": [\n        \"42\""),
        "{json}"
    );
}
