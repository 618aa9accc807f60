//! Authentication methods on both connection kinds.

use std::sync::OnceLock;

use sluice_core::ErrorClass;
use sluice_postgres::{Error, ReplicationClient, connect};
use sluice_testkit::{AuthMethod, PgCluster, TestDatabase};

use crate::support::source;

fn cluster() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        PgCluster::builder()
            .user("scram_user", "correct horse", AuthMethod::ScramSha256)
            .user("md5_user", "battery staple", AuthMethod::Md5)
            .user("clear_user", "pl@in:text/pw", AuthMethod::Password)
            .start()
            .expect("auth cluster starts")
    })
}

async fn database() -> TestDatabase {
    cluster().fresh_database().await.expect("fresh database")
}

/// Both connection kinds log in as `user` with `password` and see themselves as that user.
async fn both_connect(db: &TestDatabase, user: &str, password: &str) {
    let cfg = source(&format!("{}?sslmode=disable", db.url_for(user, password)));
    let client = connect(&cfg).await.expect("ordinary connection");
    let row = client
        .query_one("SELECT current_user::text", &[])
        .await
        .expect("query");
    assert_eq!(row.get::<_, String>(0), user);

    let mut repl = ReplicationClient::connect(&cfg)
        .await
        .expect("replication connection");
    let who = repl
        .simple_query("IDENTIFY_SYSTEM")
        .await
        .expect("identify");
    assert_eq!(who.get(0, "dbname"), Some(db.name()));
    repl.close().await.expect("close");
}

fn assert_auth_refused(err: &Error) {
    assert_eq!(err.class(), ErrorClass::Fatal, "{err:?}");
    assert_eq!(err.sqlstate().as_deref(), Some("28P01"), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("wrong-password"),
        "password leaked: {shown}"
    );
}

#[tokio::test]
async fn trust() {
    let db = PgCluster::shared().fresh_database().await.expect("db");
    both_connect(&db, "postgres", "").await;
}

#[tokio::test]
async fn scram_sha_256() {
    let db = database().await;
    both_connect(&db, "scram_user", "correct horse").await;
}

#[tokio::test]
async fn md5() {
    let db = database().await;
    both_connect(&db, "md5_user", "battery staple").await;
}

#[tokio::test]
async fn cleartext_password() {
    let db = database().await;
    both_connect(&db, "clear_user", "pl@in:text/pw").await;
}

#[tokio::test]
async fn wrong_password_is_fatal() {
    let db = database().await;
    for user in ["scram_user", "md5_user", "clear_user"] {
        let cfg = source(&format!(
            "{}?sslmode=disable",
            db.url_for(user, "wrong-password")
        ));
        let err = connect(&cfg)
            .await
            .expect_err("ordinary connection refused");
        assert_auth_refused(&err);
        let err = ReplicationClient::connect(&cfg)
            .await
            .expect_err("replication connection refused");
        assert_auth_refused(&err);
        assert!(err.to_string().contains(user), "{err}");
    }
}

#[tokio::test]
async fn missing_password_is_fatal() {
    let db = database().await;
    let url = db.url().replacen("postgres@", "scram_user@", 1);
    let err = ReplicationClient::connect(&source(&format!("{url}?sslmode=disable")))
        .await
        .expect_err("no password");
    assert!(
        matches!(
            err,
            Error::Connection(sluice_postgres_client::Error::Auth { .. })
        ),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Fatal);
}
