//! sslmode semantics against servers with and without TLS.

use std::path::PathBuf;
use std::sync::OnceLock;

use sluice_core::ErrorClass;
use sluice_postgres::{Error, ReplicationClient, SourceConfig, connect};
use sluice_testkit::{AuthMethod, CertificateAuthority, PgCluster, TestDatabase};

use crate::support::source;

/// TLS with a certificate for localhost and 127.0.0.1, and a SCRAM user.
fn tls_cluster() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        PgCluster::builder()
            .tls()
            .user("scram_user", "s3cret", AuthMethod::ScramSha256)
            .start()
            .expect("tls cluster starts")
    })
}

/// TLS with a certificate valid only for a name the tests never connect to.
fn other_name_cluster() -> &'static PgCluster {
    static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        PgCluster::builder()
            .tls_for_names(&["db.example.internal"])
            .start()
            .expect("tls cluster starts")
    })
}

fn ca_of(cluster: &PgCluster) -> String {
    cluster
        .ca_cert_path()
        .expect("tls cluster has a CA")
        .display()
        .to_string()
}

/// A CA that signed nothing the servers present.
fn unrelated_ca() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let ca = CertificateAuthority::generate("unrelated test CA").expect("generate CA");
        let path = tls_cluster().root_dir().join("unrelated-ca.crt");
        std::fs::write(&path, ca.cert_pem()).expect("write CA");
        path
    })
    .clone()
}

fn cfg(db: &TestDatabase, host: &str, query: &str) -> SourceConfig {
    let url = db.url().replacen("127.0.0.1", host, 1);
    source(&format!("{url}?{query}"))
}

/// Connects both kinds and returns whether the ordinary connection is encrypted.
async fn connect_both(cfg: &SourceConfig) -> Result<bool, Error> {
    let client = connect(cfg).await?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    let ordinary_tls: bool = row.get(0);
    let repl = ReplicationClient::connect(cfg).await?;
    assert_eq!(repl.is_tls(), ordinary_tls, "both kinds follow one policy");
    repl.close().await?;
    Ok(ordinary_tls)
}

fn assert_verification_failed(err: &Error) {
    assert!(
        matches!(
            err,
            Error::Connection(sluice_postgres_client::Error::Tls { .. })
        ),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Fatal, "{err:?}");
}

#[tokio::test]
async fn require_encrypts_without_verifying() {
    let db = tls_cluster().fresh_database().await.expect("db");
    assert!(
        connect_both(&cfg(&db, "127.0.0.1", "sslmode=require"))
            .await
            .expect("connects")
    );
    // Without a root certificate, require does not care who signed the certificate.
    let db = other_name_cluster().fresh_database().await.expect("db");
    assert!(
        connect_both(&cfg(&db, "127.0.0.1", "sslmode=require"))
            .await
            .expect("connects")
    );
}

#[tokio::test]
async fn require_with_a_root_certificate_verifies_the_chain() {
    let db = tls_cluster().fresh_database().await.expect("db");
    let query = format!("sslmode=require&sslrootcert={}", unrelated_ca().display());
    let err = connect_both(&cfg(&db, "127.0.0.1", &query))
        .await
        .expect_err("wrong CA");
    assert_verification_failed(&err);
}

#[tokio::test]
async fn verify_full_with_the_right_ca() {
    let db = tls_cluster().fresh_database().await.expect("db");
    let ca = ca_of(tls_cluster());
    for host in ["127.0.0.1", "localhost"] {
        let query = format!("sslmode=verify-full&sslrootcert={ca}");
        assert!(connect_both(&cfg(&db, host, &query)).await.expect(host));
    }
}

#[tokio::test]
async fn verify_full_with_a_wrong_ca_is_fatal() {
    let db = tls_cluster().fresh_database().await.expect("db");
    let query = format!(
        "sslmode=verify-full&sslrootcert={}",
        unrelated_ca().display()
    );
    let err = connect(&cfg(&db, "127.0.0.1", &query))
        .await
        .expect_err("wrong CA");
    assert_verification_failed(&err);
    let err = ReplicationClient::connect(&cfg(&db, "127.0.0.1", &query))
        .await
        .expect_err("wrong CA");
    assert_verification_failed(&err);
}

#[tokio::test]
async fn verify_full_with_a_wrong_host_name_fails() {
    let cluster = other_name_cluster();
    let db = cluster.fresh_database().await.expect("db");
    let query = format!("sslmode=verify-full&sslrootcert={}", ca_of(cluster));
    let err = connect(&cfg(&db, "127.0.0.1", &query))
        .await
        .expect_err("wrong name");
    assert_verification_failed(&err);
    let err = ReplicationClient::connect(&cfg(&db, "127.0.0.1", &query))
        .await
        .expect_err("wrong name");
    assert_verification_failed(&err);
}

#[tokio::test]
async fn verify_ca_ignores_the_host_name_but_not_the_chain() {
    let cluster = other_name_cluster();
    let db = cluster.fresh_database().await.expect("db");
    let query = format!("sslmode=verify-ca&sslrootcert={}", ca_of(cluster));
    assert!(
        connect_both(&cfg(&db, "127.0.0.1", &query))
            .await
            .expect("connects")
    );
    let query = format!("sslmode=verify-ca&sslrootcert={}", unrelated_ca().display());
    let err = connect_both(&cfg(&db, "127.0.0.1", &query))
        .await
        .expect_err("wrong CA");
    assert_verification_failed(&err);
}

#[tokio::test]
async fn prefer_falls_back_to_plaintext() {
    let db = PgCluster::shared().fresh_database().await.expect("db");
    assert!(
        !connect_both(&cfg(&db, "127.0.0.1", "sslmode=prefer"))
            .await
            .expect("connects")
    );
    // And uses TLS where the server has it.
    let db = tls_cluster().fresh_database().await.expect("db");
    assert!(
        connect_both(&cfg(&db, "127.0.0.1", "sslmode=prefer"))
            .await
            .expect("connects")
    );
}

#[tokio::test]
async fn require_against_a_plaintext_server_is_fatal() {
    let db = PgCluster::shared().fresh_database().await.expect("db");
    for mode in ["require", "verify-ca", "verify-full"] {
        let query = format!("sslmode={mode}&sslrootcert={}", unrelated_ca().display());
        let err = connect(&cfg(&db, "127.0.0.1", &query))
            .await
            .expect_err(mode);
        assert!(
            matches!(
                err,
                Error::Connection(sluice_postgres_client::Error::TlsRefused { .. })
            ),
            "{err:?}"
        );
        assert_eq!(err.class(), ErrorClass::Fatal);
    }
}

#[tokio::test]
async fn scram_over_tls() {
    // The server offers SCRAM-SHA-256-PLUS over TLS; we answer without channel binding.
    let db = tls_cluster().fresh_database().await.expect("db");
    let url = db.url_for("scram_user", "s3cret");
    let query = format!("sslmode=verify-full&sslrootcert={}", ca_of(tls_cluster()));
    assert!(
        connect_both(&source(&format!("{url}?{query}")))
            .await
            .expect("connects")
    );
}
