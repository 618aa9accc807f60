//! `sluice sync --until-caught-up` into a PostgreSQL target (a second database of the same
//! cluster): after the snapshot and after changes, the target holds the source's values, every
//! column printed as the source prints it.

use std::process::Command;

use sluice_testkit::{PgCluster, TestDatabase};
use sluice_tests::{sluice_bin, tempfile_dir};

const ZOO: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'happy', 'ünï');
CREATE TABLE zoo (
    id int PRIMARY KEY,
    b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8,
    n38 numeric(38,10), n numeric, t text, vc varchar(5), c char(4), by bytea, u uuid,
    j json, jb jsonb, d date, tm time, ttz timetz, ts timestamp, tstz timestamptz,
    iv interval, ia int[], ta text[], ip inet, m mood
);
INSERT INTO zoo VALUES
 (1, true, -32768, 2147483647, -9223372036854775808, 'NaN', '-Infinity',
  '1234567890123456789012345678.0123456789', 'NaN', E'ünïcödé ☃ "q" \\ '' \t end', 'abcde', 'ab',
  '\x00ff00'::bytea, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2.50],  "b":null}',
  '{"z": 1, "a": "x"}', 'infinity', '23:59:59.999999', '12:00:00+05:30',
  '0044-03-15 12:00:00.5 BC', '-infinity', '1 year 2 mons -3 days 04:05:06.789',
  '{{1,NULL},{3,4}}', '{"a b",NULL,"c\"d","",NULL}', '192.168.0.1/24', 'ünï'),
 (2, false, 0, 0, 0, 'Infinity', '-0', '-0.0000000001', '-12345678901234567890.123456789012345678901',
  '', 'x', 'abcd', '\x', '00000000-0000-0000-0000-000000000000', '[]', '{}',
  '0044-03-15 BC', '00:00', '00:00:00-12', '2024-02-29 23:59:59.123456', 'infinity',
  '-178000000 years', '{}', '{}', '::1', 'sad'),
 (3, NULL, NULL, NULL, NULL, '3.4028235e+38', '1.7976931348623157e+308', NULL, '0', NULL, NULL,
  NULL, NULL, NULL, 'null', 'null', '-infinity', NULL, NULL, NULL,
  '2024-03-10 02:30:00.000001+00', NULL, '{NULL}', '{NULL}', NULL, NULL),
 (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"#;

/// Every column of the zoo as `col::text`, live rows only, in key order.
fn as_text(table: &str, live: &str) -> String {
    let columns = "id b i2 i4 i8 f4 f8 n38 n t vc c by u j jb d tm ttz ts tstz iv ia ta ip m"
        .split(' ')
        .map(|c| format!("{c}::text"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("SELECT {columns} FROM {table} WHERE {live} ORDER BY id")
}

async fn rows(db: &TestDatabase, sql: &str) -> Vec<Vec<Option<String>>> {
    let client = db.client().await.expect("client");
    client
        .simple_query(sql)
        .await
        .expect("query")
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect()
}

async fn assert_same(source: &TestDatabase, target: &TestDatabase) {
    let want = rows(source, &as_text("zoo", "true")).await;
    let got = rows(target, &as_text("raw.zoo", "NOT _sluice_deleted")).await;
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
    source.execute(ZOO).await.expect("zoo");

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
