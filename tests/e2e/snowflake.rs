//! `sluice sync --until-caught-up` into Snowflake (the fakesnow stand-in, driven through the
//! same REST protocol as the real service): the snapshot, then inserts, updates, deletes, a
//! key change, an unchanged TOAST value, a truncate and an added column; the Snowflake tables
//! equal the source value by value, and `sluice verify` agrees (and finds a changed row).

use std::path::Path;
use std::process::Command;

use secrecy::SecretString;
use sluice_snowflake::{Auth, Client, ClientOptions, Credentials};
use sluice_testkit::fakesnow::FakeSnow;
use sluice_testkit::{PgCluster, TestDatabase};
use sluice_tests::{sluice_bin, tempfile_dir};

const SOURCE: &str = "CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, \
    amount numeric(12,2), placed_at timestamptz, paid boolean, note text); \
    ALTER TABLE orders ALTER COLUMN note SET STORAGE EXTERNAL; \
    INSERT INTO orders SELECT g, 'customer ' || g, g * 1.25, \
    '2024-05-01 10:00:00.123456+00'::timestamptz + g * interval '1 minute', g % 2 = 0, \
    CASE WHEN g = 3 THEN repeat('long note ', 400) END FROM generate_series(1, 5) g";

/// The live rows, each column as text both sides print the same way.
const SOURCE_ROWS: &str = "SELECT id::text, customer, amount::text, \
    (extract(epoch FROM placed_at) * 1000000)::bigint::text, paid::text, md5(note) \
    FROM orders ORDER BY id";
const TARGET_ROWS: &str = "SELECT TO_VARCHAR(id), customer, TO_VARCHAR(amount), \
    TO_VARCHAR(DATE_PART(epoch_microsecond, placed_at)), CASE WHEN paid THEN 'true' WHEN NOT paid THEN 'false' END, md5(note) \
    FROM raw.orders WHERE NOT _sluice_deleted ORDER BY id";

async fn snowflake(server: &FakeSnow, sql: &str) -> Vec<Vec<Option<String>>> {
    let mut client = Client::login(
        Credentials {
            account: "sluice_test".into(),
            user: "reader".into(),
            auth: Auth::Password(SecretString::from("not-checked".to_owned())),
            role: None,
            warehouse: None,
            database: Some("ANALYTICS".into()),
            schema: None,
        },
        ClientOptions {
            endpoint: Some(server.endpoint().parse().expect("url")),
            ..ClientOptions::default()
        },
    )
    .await
    .expect("login");
    client.query(sql).await.expect("query").rows
}

fn run(config: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(sluice_bin())
        .args(args)
        .arg("-c")
        .arg(config)
        .env("SLUICE_LOG", "info,sluice=debug")
        .output()
        .expect("run sluice");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn sync(config: &Path) {
    let (code, out) = run(config, &["sync", "--until-caught-up"]);
    assert_eq!(code, Some(0), "sluice sync failed:\n{out}");
}

async fn assert_same(source: &TestDatabase, server: &FakeSnow, also: &str) {
    let mut want = source
        .text_rows(&SOURCE_ROWS.replace("md5(note)", &format!("md5(note){also}")))
        .await
        .expect("source rows");
    let mut got = snowflake(
        server,
        &TARGET_ROWS.replace("md5(note)", &format!("md5(note){also}")),
    )
    .await;
    want.sort();
    got.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn sync_into_snowflake_value_by_value() {
    let server = FakeSnow::start();
    let source = PgCluster::shared().fresh_database().await.expect("source");
    source.execute(SOURCE).await.expect("source table");

    let dir = tempfile_dir::Dir::new();
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nurl = \"{src}\"\ntables = [\"public.orders\"]\nslot = \"s_{slot}\"\n\
             publication = \"sluice_pub\"\n\n\
             [log]\nkind = \"local\"\npath = \"{log}\"\n\n\
             [target]\nkind = \"snowflake\"\naccount = \"sluice_test\"\nuser = \"LOADER\"\n\
             password = \"not-checked-by-the-stand-in\"\ndatabase = \"analytics\"\n\
             schema = \"raw\"\nendpoint = \"{endpoint}\"\n\n\
             [load]\nflush_interval_ms = 200\n",
            src = source.url(),
            slot = source.name(),
            log = dir.path().join("log").display(),
            endpoint = server.endpoint(),
        ),
    )
    .expect("write config");

    sync(&config);
    assert_same(&source, &server, "").await;

    source
        .execute(
            "UPDATE orders SET amount = 99.99 WHERE id = 3; \
             UPDATE orders SET id = 40, paid = NULL WHERE id = 4; \
             DELETE FROM orders WHERE id = 2; \
             INSERT INTO orders (id, customer) VALUES (6, 'new customer'); \
             ALTER TABLE orders ADD COLUMN channel text; \
             INSERT INTO orders (id, customer, channel) VALUES (7, 'added', 'web'); \
             UPDATE orders SET channel = 'shop' WHERE id = 1;",
        )
        .await
        .expect("changes");
    sync(&config);
    assert_same(&source, &server, ", channel").await;
    // The unchanged TOAST value of row 3 was kept, not overwritten with NULL.
    let note = snowflake(&server, "SELECT LENGTH(note) FROM raw.orders WHERE id = 3").await;
    assert_eq!(note, vec![vec![Some("4000".to_owned())]]);
    let deleted = snowflake(
        &server,
        "SELECT id FROM raw.orders WHERE _sluice_deleted ORDER BY id",
    )
    .await;
    assert_eq!(
        deleted,
        vec![vec![Some("2".to_owned())], vec![Some("4".to_owned())]],
        "soft deletes, including the old key of a key change"
    );

    source
        .execute("TRUNCATE orders; INSERT INTO orders (id, customer) VALUES (8, 'after truncate')")
        .await
        .expect("truncate");
    sync(&config);
    assert_same(&source, &server, ", channel").await;

    // verify agrees, and finds a value changed behind its back.
    let (code, out) = run(&config, &["verify"]);
    assert_eq!(code, Some(0), "{out}");
    snowflake(
        &server,
        "UPDATE raw.orders SET customer = 'tampered' WHERE id = 8",
    )
    .await;
    let (code, out) = run(&config, &["verify"]);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("different content: (8)"), "{out}");
}

/// `sluice views install` into Snowflake: the retail fixture of `tests/e2e/views.rs` as the
/// target stores it (created by `tests/scripts/snowflake_views.py`), the ten views installed
/// by the binary, and every view's rows compared with the hand-computed ones by the script.
#[test]
fn views_install_into_snowflake_and_return_the_fixture_rows() {
    let server = FakeSnow::start();
    let port = server
        .endpoint()
        .rsplit(':')
        .next()
        .expect("a port")
        .to_owned();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/snowflake_views.py");
    let python = |phase: &str| {
        let out = Command::new(server.python())
            .args([script, "--port", &port, "--phase", phase])
            .output()
            .expect("run the views script");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{phase}:\n{text}");
        text
    };
    python("fixture");
    let dir = tempfile_dir::Dir::new();
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nurl = \"postgres://unused@127.0.0.1:1/unused\"\ntables = [\"public.*\"]\n\n\
             [log]\nkind = \"local\"\npath = \"{log}\"\n\n\
             [target]\nkind = \"snowflake\"\naccount = \"sluice_test\"\nuser = \"LOADER\"\n\
             password = \"not-checked-by-the-stand-in\"\ndatabase = \"analytics\"\n\
             schema = \"raw\"\nendpoint = \"{endpoint}\"\n",
            log = dir.path().join("log").display(),
            endpoint = server.endpoint(),
        ),
    )
    .expect("write config");
    let (code, out) = run(&config, &["views", "install"]);
    assert_eq!(code, Some(0), "{out}");
    let checked = python("check");
    assert!(checked.contains("10 of 10 views match"), "{checked}");
}

/// The process dies in the middle of a Snowflake batch (after a table's rows are applied in
/// the load's transaction, before the checkpoint and COMMIT); the next run loads everything,
/// and every row is there exactly once, equal to the source.
#[tokio::test]
async fn a_crash_mid_batch_leaves_every_row_exactly_once() {
    let server = FakeSnow::start();
    let source = PgCluster::shared().fresh_database().await.expect("source");
    source
        .execute(
            "CREATE TABLE a (id bigint PRIMARY KEY, v text); \
             CREATE TABLE b (id bigint PRIMARY KEY, v text); \
             INSERT INTO a SELECT g, 'a' || g FROM generate_series(1, 3000) g; \
             INSERT INTO b SELECT g, 'b' || g FROM generate_series(1, 3000) g;",
        )
        .await
        .expect("source tables");
    let dir = tempfile_dir::Dir::new();
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nurl = \"{src}\"\ntables = [\"public.a\", \"public.b\"]\n\
             slot = \"s_{slot}\"\npublication = \"sluice_pub\"\n\n\
             [log]\nkind = \"local\"\npath = \"{log}\"\n\n\
             [target]\nkind = \"snowflake\"\naccount = \"sluice_test\"\nuser = \"LOADER\"\n\
             password = \"not-checked-by-the-stand-in\"\ndatabase = \"analytics\"\n\
             schema = \"raw\"\nendpoint = \"{endpoint}\"\n\n\
             [load]\nflush_interval_ms = 200\nmax_batch_rows = 2000\n",
            src = source.url(),
            slot = source.name(),
            log = dir.path().join("log").display(),
            endpoint = server.endpoint(),
        ),
    )
    .expect("write config");
    // Changes to both tables in each transaction, so batches hold both.
    source
        .execute(
            "UPDATE a SET v = v || '!' WHERE id % 7 = 0; UPDATE b SET v = v || '?' WHERE id % 5 = 0; \
             DELETE FROM a WHERE id % 11 = 0; DELETE FROM b WHERE id % 13 = 0;",
        )
        .await
        .expect("changes");

    let out = Command::new(sluice_bin())
        .args(["sync", "--until-caught-up", "-c"])
        .arg(&config)
        .env("FAILPOINTS", "target-mid-batch=1*off->return")
        .output()
        .expect("run sluice");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("failpoint target-mid-batch: aborting the process"),
        "sluice should have died at the failpoint ({:?}):\n{text}",
        out.status
    );
    sync(&config);

    for table in ["a", "b"] {
        let mut want = source
            .text_rows(&format!("SELECT id::text, v FROM {table}"))
            .await
            .expect("source rows");
        let mut got = snowflake(
            &server,
            &format!("SELECT TO_VARCHAR(id), v FROM raw.{table} WHERE NOT _sluice_deleted"),
        )
        .await;
        want.sort();
        got.sort();
        assert_eq!(got.len(), want.len(), "{table}: row count");
        assert_eq!(got, want, "{table}");
        let once = snowflake(
            &server,
            &format!("SELECT COUNT(*) = COUNT(DISTINCT id) FROM raw.{table}"),
        )
        .await;
        assert_eq!(
            once,
            vec![vec![Some("true".to_owned())]],
            "{table}: a key twice"
        );
    }
    let (code, out) = run(&config, &["verify"]);
    assert_eq!(code, Some(0), "{out}");
}
