//! The client against fakesnow: login, typed round trip, transactions, errors, stage upload.

use bytes::Bytes;
use secrecy::SecretString;
use sluice_core::{Classify as _, ErrorClass};
use sluice_snowflake::{Auth, Client, ClientOptions, Credentials, Error, PrivateKey};

use sluice_testkit::fakesnow::FakeSnow;

fn credentials(auth: Auth) -> Credentials {
    Credentials {
        account: "sluice_test".into(),
        user: "loader".into(),
        auth,
        role: None,
        warehouse: Some("WH".into()),
        database: Some("DB1".into()),
        schema: Some("PUBLIC".into()),
    }
}

fn options(server: &FakeSnow) -> ClientOptions {
    let mut options = ClientOptions {
        endpoint: Some(server.endpoint().parse().expect("url")),
        ..ClientOptions::default()
    };
    // A private in-memory database per session, so tests never see each other's tables.
    options
        .session_parameters
        .insert("FAKESNOW_DB_PATH".into(), ":isolated:".into());
    options
}

async fn login(server: &FakeSnow) -> Client {
    let auth = Auth::Password(SecretString::from("not-checked-by-fakesnow"));
    Client::login(credentials(auth), options(server))
        .await
        .expect("login")
}

fn texts(rows: &[&[Option<&str>]]) -> Vec<Vec<Option<String>>> {
    rows.iter()
        .map(|row| row.iter().map(|v| v.map(str::to_owned)).collect())
        .collect()
}

async fn run(client: &mut Client, sql: &str) -> Vec<Vec<Option<String>>> {
    match client.query(sql).await {
        Ok(result) => result.rows,
        Err(e) => panic!("{sql}: {e}"),
    }
}

#[tokio::test]
async fn typed_values_round_trip_as_exact_text() {
    let server = FakeSnow::start();
    let mut client = login(&server).await;
    assert_eq!(client.generation(), 1);
    run(
        &mut client,
        "CREATE TABLE typed (n NUMBER(38,0), d NUMBER(12,2), s VARCHAR, b BOOLEAN, dt DATE, \
         ts TIMESTAMP_NTZ, bin BINARY, f FLOAT, v VARIANT)",
    )
    .await;
    let inserted = client
        .query(
            "INSERT INTO typed SELECT 9223372036854775807, 1234567890.12, 'héllo ''q''', TRUE, \
             '2024-02-29'::DATE, '2024-02-29 13:14:15.123456'::TIMESTAMP_NTZ, \
             TO_BINARY('DEADBEEF', 'HEX'), 0.1, PARSE_JSON('{\"a\": [1, 2]}')",
        )
        .await
        .expect("insert");
    assert_eq!(inserted.columns, ["number of rows inserted"]);
    assert_eq!(inserted.rows, texts(&[&[Some("1")]]));
    assert!(!inserted.query_id.is_empty());
    run(
        &mut client,
        "INSERT INTO typed SELECT -1, -0.05, '', FALSE, '1969-12-31'::DATE, \
         '1969-12-31 23:59:59.5'::TIMESTAMP_NTZ, TO_BINARY('00ff', 'HEX'), -1.5e300, \
         PARSE_JSON('\"x\"')",
    )
    .await;
    run(&mut client, "INSERT INTO typed (n) VALUES (3)").await;

    let result = client
        .query("SELECT n, d, s, b, dt, ts, bin, f, v FROM typed ORDER BY n")
        .await
        .expect("select");
    assert_eq!(
        result.columns,
        ["N", "D", "S", "B", "DT", "TS", "BIN", "F", "V"]
    );
    let huge = (-1.5e300f64).to_string();
    let expected = texts(&[
        &[
            Some("-1"),
            Some("-0.05"),
            Some(""),
            Some("false"),
            Some("1969-12-31"),
            Some("1969-12-31 23:59:59.5"),
            Some("00ff"),
            Some(&huge),
            Some("\"x\""),
        ],
        &[Some("3"), None, None, None, None, None, None, None, None],
        &[
            Some("9223372036854775807"),
            Some("1234567890.12"),
            Some("héllo 'q'"),
            Some("true"),
            Some("2024-02-29"),
            Some("2024-02-29 13:14:15.123456"),
            Some("deadbeef"),
            Some("0.1"),
            Some("{\"a\":[1,2]}"),
        ],
    ]);
    assert_eq!(result.rows, expected);
    client.close().await.expect("close");
}

#[tokio::test]
async fn rollback_leaves_nothing() {
    let server = FakeSnow::start();
    let mut client = login(&server).await;
    run(&mut client, "CREATE TABLE t (id INT)").await;
    run(&mut client, "BEGIN").await;
    assert_eq!(
        run(&mut client, "INSERT INTO t VALUES (1), (2)").await,
        texts(&[&[Some("2")]])
    );
    run(&mut client, "ROLLBACK").await;
    assert_eq!(
        run(&mut client, "SELECT COUNT(*) FROM t").await,
        texts(&[&[Some("0")]])
    );
    run(&mut client, "BEGIN").await;
    run(&mut client, "INSERT INTO t VALUES (3)").await;
    run(&mut client, "COMMIT").await;
    assert_eq!(
        run(&mut client, "SELECT id FROM t").await,
        texts(&[&[Some("3")]])
    );
}

#[tokio::test]
async fn sql_error_carries_code_and_sqlstate() {
    let server = FakeSnow::start();
    let mut client = login(&server).await;
    let err = client
        .query("SELECT * FROM no_such_table")
        .await
        .expect_err("missing table");
    let server_error = err
        .server()
        .unwrap_or_else(|| panic!("not a server error: {err:?}"));
    assert_eq!(server_error.code, "002003");
    assert_eq!(server_error.sql_state.as_deref(), Some("42S02"));
    assert!(server_error.message.contains("NO_SUCH_TABLE"), "{err}");
    // fakesnow sends no queryId with errors (real Snowflake does: see the unit tests).
    assert_eq!(err.query_id(), None);
    assert_eq!(err.class(), ErrorClass::Definite);
}

#[tokio::test]
async fn json_http_500_is_final_and_not_retried() {
    let server = FakeSnow::start();
    let mut client = login(&server).await;
    run(&mut client, "CREATE TABLE m (id INT, v VARCHAR)").await;
    run(&mut client, "CREATE TABLE s (id INT, v VARCHAR)").await;
    run(&mut client, "BEGIN").await;
    // fakesnow 0.12.1 cannot MERGE inside a transaction (its MERGE writes a second DuckDB
    // database): its own unhandled error, HTTP 500 with a JSON body.
    let err = client
        .query(
            "MERGE INTO m USING s ON m.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v \
             WHEN NOT MATCHED THEN INSERT (id, v) VALUES (s.id, s.v)",
        )
        .await
        .expect_err("unsupported by fakesnow");
    run(&mut client, "ROLLBACK").await;
    // A retried 500 would end as Error::Status once the retries ran out.
    let Error::Server(server_error) = &err else {
        panic!("expected the server's answer, got {err:?}");
    };
    assert_eq!(
        (server_error.code.as_str(), server_error.http_status),
        ("261000", 500)
    );
    assert_eq!(err.class(), ErrorClass::Definite);
    assert_eq!(
        server.log().matches("Unhandled exception").count(),
        1,
        "the statement ran more than once"
    );
}

#[tokio::test]
async fn lost_session_logs_in_again_with_a_new_generation() {
    let server = FakeSnow::start();
    let mut client = login(&server).await;
    assert_eq!(run(&mut client, "SELECT 1").await, texts(&[&[Some("1")]]));
    let server = server.restart();
    assert_eq!(run(&mut client, "SELECT 2").await, texts(&[&[Some("2")]]));
    assert_eq!(client.generation(), 2, "a new session must be reported");
    drop(server);
}

#[tokio::test]
async fn key_pair_login() {
    let server = FakeSnow::start();
    let key = PrivateKey::from_pem(include_str!("keys/rsa_key.p8"), None).expect("key");
    // fakesnow accepts any credentials: this checks the JWT login request is well formed.
    let mut client = Client::login(credentials(Auth::KeyPair(key)), options(&server))
        .await
        .expect("login");
    assert_eq!(run(&mut client, "SELECT 'k'").await, texts(&[&[Some("k")]]));
}

#[tokio::test]
async fn abort_after_a_dropped_statement() {
    let server = FakeSnow::start();
    let mut client = login(&server).await;
    assert!(!client.abort().await.expect("nothing to abort"));
    {
        let mut query = std::pin::pin!(client.query("SELECT 1"));
        // One poll sends the request; dropping the future leaves it unanswered.
        let polled =
            std::future::poll_fn(|cx| std::task::Poll::Ready(query.as_mut().poll(cx))).await;
        assert!(
            polled.is_pending(),
            "the statement cannot be answered in one poll"
        );
    }
    assert!(client.abort().await.expect("abort"));
    assert!(!client.abort().await.expect("already aborted"));
}

#[tokio::test]
async fn upload_to_internal_stage_then_list_and_copy() {
    let server = FakeSnow::start();
    let mut client = login(&server).await;
    run(&mut client, "CREATE STAGE stg").await;
    run(&mut client, "CREATE TABLE loaded (id INT, s VARCHAR)").await;
    client
        .upload("@stg", "batch-1.csv", Bytes::from_static(b"1,a\n2,b\n"))
        .await
        .expect("upload");
    let listed = run(&mut client, "LIST @stg").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0][0].as_deref(), Some("stg/batch-1.csv"));
    assert_eq!(listed[0][1].as_deref(), Some("8"), "size");
    // fakesnow 0.12.1 fails `FROM @stg FILES=('batch-1.csv')` ("invalid URL prefix"), so the
    // file is named in the path.
    let copied = run(
        &mut client,
        "COPY INTO loaded FROM @stg/batch-1.csv FILE_FORMAT=(TYPE=CSV)",
    )
    .await;
    assert_eq!(
        copied[0][..4],
        texts(&[&[
            Some("stg/batch-1.csv"),
            Some("LOADED"),
            Some("2"),
            Some("2")
        ]])[0][..]
    );
    assert_eq!(
        run(&mut client, "SELECT id, s FROM loaded ORDER BY id").await,
        texts(&[&[Some("1"), Some("a")], &[Some("2"), Some("b")]])
    );
    let err = client
        .upload("@stg", "../escape.csv", Bytes::new())
        .await
        .expect_err("a path is not a file name");
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}
