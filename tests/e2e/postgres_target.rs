//! `sluice sync --until-caught-up` into a PostgreSQL target (a second database of the same
//! cluster): after the snapshot and after changes, the target holds the source's values, every
//! column printed as the source prints it.

use std::process::Command;

use sluice_testkit::fixtures::{TYPE_ZOO, type_zoo_as_text};
use sluice_testkit::{PgCluster, TestDatabase};
use sluice_tests::{sluice_bin, tempfile_dir};

async fn rows(db: &TestDatabase, sql: &str) -> Vec<Vec<Option<String>>> {
    db.text_rows(sql).await.expect("query")
}

async fn assert_same(source: &TestDatabase, target: &TestDatabase) {
    let want = rows(source, &type_zoo_as_text("zoo", "true")).await;
    let got = rows(target, &type_zoo_as_text("raw.zoo", "NOT _sluice_deleted")).await;
    assert_eq!(got.len(), want.len(), "row counts");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
}

fn sync(config: &std::path::Path) {
    let out = Command::new(sluice_bin())
        .args(["sync", "--until-caught-up", "-c"])
        .arg(config)
        .env("SLUICE_LOG", "info,sluice=debug")
        .output()
        .expect("run sluice");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "sluice sync failed ({:?}):\n{}\n{stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
    );
}

#[tokio::test]
async fn sync_into_postgres_value_by_value() {
    let cluster = PgCluster::shared();
    let source = cluster.fresh_database().await.expect("source");
    let target = cluster.fresh_database().await.expect("target");
    source.execute(TYPE_ZOO).await.expect("zoo");

    let dir = tempfile_dir::Dir::new();
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nurl = \"{src}\"\ntables = [\"public.zoo\"]\nslot = \"s_{slot}\"\n\
             publication = \"sluice_pub\"\n\n\
             [log]\nkind = \"local\"\npath = \"{log}\"\n\n\
             [target]\nkind = \"postgres\"\nurl = \"{dst}\"\nschema = \"raw\"\n\n\
             [load]\nflush_interval_ms = 200\n",
            src = source.url(),
            slot = source.name(),
            log = dir.path().join("log").display(),
            dst = target.url(),
        ),
    )
    .expect("write config");

    sync(&config);
    assert_same(&source, &target).await;
    // MERGEs find rows by key through an index on the key columns.
    let indexed = rows(
        &target,
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'raw' AND tablename = 'zoo'",
    )
    .await;
    assert!(
        indexed
            .iter()
            .any(|r| r[0].as_deref().is_some_and(|d| d.ends_with("(id)"))),
        "{indexed:?}"
    );

    source
        .execute(
            "UPDATE zoo SET (b, f8, n, t, ia, ttz, iv, jb) = (false, 'NaN', '1e-20', 'changed', \
             '{{{1}}}', '23:59:59.999999-15:59', '1 microsecond', '{\"new\": [null]}') \
             WHERE id = 1; \
             UPDATE zoo SET id = 40, i4 = -1 WHERE id = 4; \
             DELETE FROM zoo WHERE id = 2; \
             INSERT INTO zoo (id, ts, m, by) VALUES (5, '294276-12-31 23:59:59.999999', 'happy', \
             '\\x0000');",
        )
        .await
        .expect("changes");
    sync(&config);
    assert_same(&source, &target).await;
    let deleted = rows(
        &target,
        "SELECT id FROM raw.zoo WHERE _sluice_deleted ORDER BY id",
    )
    .await;
    assert_eq!(
        deleted,
        vec![vec![Some("2".to_owned())], vec![Some("4".to_owned())]],
        "soft deletes, including the old key of a key change"
    );

    // verify agrees, and finds a value changed behind its back.
    let verify = |config: &std::path::Path| {
        let out = Command::new(sluice_bin())
            .args(["verify", "-c"])
            .arg(config)
            .output()
            .expect("verify");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, out) = verify(&config);
    assert_eq!(code, Some(0), "{out}");
    target
        .execute("UPDATE raw.zoo SET t = 'tampered' WHERE id = 1")
        .await
        .expect("tamper");
    let (code, out) = verify(&config);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("different content: (1)"), "{out}");
}
