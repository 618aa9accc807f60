//! TLS, passwords and privileges through the `sluice` binary: `sslmode=verify-full` against a
//! server whose certificate a throw-away CA signed, refused for a CA that did not sign it and
//! for a host name the certificate does not name; a SCRAM-SHA-256 user; and the README's
//! least-privilege setup (a role with REPLICATION and SELECT only, the publication created by
//! the tables' owner) syncing and verifying without asking for more.

use std::path::Path;
use std::process::Command;

use sluice_testkit::{AuthMethod, CertificateAuthority, PgCluster, TestDatabase, percent_encode};
use sluice_tests::{Kind, Pipeline, assert_same, sluice_bin, tempfile_dir};

const COLUMNS: &[(&str, Kind)] = &[("id", Kind::Plain), ("v", Kind::Plain)];

/// Runs `sluice <args> -c config`; returns the exit code and stdout followed by stderr.
fn sluice(config: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(sluice_bin())
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .expect("run sluice");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Points the pipeline's source at `url` (the rest of the config stays).
fn set_source_url(pipeline: &Pipeline, db: &TestDatabase, url: &str) {
    let text = std::fs::read_to_string(&pipeline.config).expect("config");
    assert!(text.contains(&db.url()), "{text}");
    std::fs::write(&pipeline.config, text.replace(&db.url(), url)).expect("write config");
}

/// `url` with the host replaced and `query` appended.
fn tls_url(db: &TestDatabase, user: &str, password: &str, host: &str, query: &str) -> String {
    let url = db.url_for(user, password).replacen("127.0.0.1", host, 1);
    format!("{url}?{query}")
}

/// Rows inserted, updated and deleted in several transactions.
async fn change_rows(db: &TestDatabase, from: i32) {
    db.execute(&format!(
        "INSERT INTO t SELECT g, 'v' || g FROM generate_series({from}, {from} + 49) g;
         UPDATE t SET v = v || ' changed' WHERE id % 7 = 0;
         DELETE FROM t WHERE id % 11 = 0;"
    ))
    .await
    .expect("changes");
}

#[tokio::test]
async fn verify_full_tls_with_scram_syncs_and_refuses_a_wrong_ca_or_host() {
    let password = "Tls-Scram-7x!";
    // Plain TCP is refused for the role, ordinary and replication connections alike, so a
    // sync that works went over TLS.
    let cluster = PgCluster::builder()
        .tls()
        .hba("hostnossl all sluice_tls 127.0.0.1/32 reject")
        .hba("hostnossl replication sluice_tls 127.0.0.1/32 reject")
        .user("sluice_tls", password, AuthMethod::ScramSha256)
        .start()
        .expect("tls cluster");
    let ca = cluster.ca_cert_path().expect("tls cluster has a CA");
    let db = cluster.fresh_database().await.expect("database");
    db.execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         ALTER TABLE t OWNER TO sluice_tls;",
    )
    .await
    .expect("schema");
    db.execute(&format!(
        "GRANT CREATE ON DATABASE \"{}\" TO sluice_tls",
        db.name()
    ))
    .await
    .expect("grant");
    change_rows(&db, 1).await;

    let pipeline = Pipeline::new(&db, &["public.t"], "");
    let good = tls_url(
        &db,
        "sluice_tls",
        password,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    );
    set_source_url(&pipeline, &db, &good);
    let (code, out) = sluice(&pipeline.config, &["check"]);
    assert_eq!(code, 0, "check over verify-full: {out}");
    let (code, out) = sluice(&pipeline.config, &["sync", "--until-caught-up"]);
    assert_eq!(code, 0, "sync over verify-full: {out}");
    change_rows(&db, 1000).await;
    let (code, out) = sluice(&pipeline.config, &["sync", "--until-caught-up"]);
    assert_eq!(code, 0, "streaming over verify-full: {out}");
    let (code, out) = sluice(&pipeline.config, &["verify"]);
    assert_eq!(code, 0, "verify over verify-full: {out}");
    assert_same(&db, &pipeline.warehouse(), "t", COLUMNS).await;
    // Without TLS the server refuses the role: the sync above was encrypted.
    let plain = db.url_for("sluice_tls", password) + "?sslmode=disable";
    let text = std::fs::read_to_string(&pipeline.config).expect("config");
    let plain_config = pipeline.dir.path().join("plain.toml");
    std::fs::write(&plain_config, text.replace(&good, &plain)).expect("write config");
    let (code, out) = sluice(&plain_config, &["check"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("no encryption"),
        "pg_hba refuses plain TCP: {out}"
    );

    // A CA that signed nothing the server presents.
    let dir = tempfile_dir::Dir::new();
    let other_ca = dir.path().join("other-ca.crt");
    std::fs::write(
        &other_ca,
        CertificateAuthority::generate("another throw-away CA")
            .expect("CA")
            .cert_pem(),
    )
    .expect("write CA");
    let wrong_ca = tls_url(
        &db,
        "sluice_tls",
        password,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", other_ca.display()),
    );
    let wrong_ca_config = dir.path().join("wrong-ca.toml");
    std::fs::write(&wrong_ca_config, text.replace(&good, &wrong_ca)).expect("write config");
    assert_certificate_refused(&wrong_ca_config, password, "UnknownIssuer");

    // A certificate for localhost only, reached as 127.0.0.1.
    let localhost_only = PgCluster::builder()
        .tls_for_names(&["localhost"])
        .user("sluice_tls", password, AuthMethod::ScramSha256)
        .start()
        .expect("tls cluster");
    let ca = localhost_only.ca_cert_path().expect("CA");
    let db2 = localhost_only.fresh_database().await.expect("database");
    db2.execute("CREATE TABLE t (id int PRIMARY KEY, v text); ALTER TABLE t OWNER TO sluice_tls;")
        .await
        .expect("schema");
    db2.execute(&format!(
        "GRANT CREATE ON DATABASE \"{}\" TO sluice_tls",
        db2.name()
    ))
    .await
    .expect("grant");
    let by_ip = tls_url(
        &db2,
        "sluice_tls",
        password,
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    );
    let wrong_host_config = dir.path().join("wrong-host.toml");
    std::fs::write(&wrong_host_config, text.replace(&good, &by_ip)).expect("write config");
    assert_certificate_refused(
        &wrong_host_config,
        password,
        "certificate not valid for name \"127.0.0.1\"",
    );
    // The same server by the name on its certificate is fine.
    let by_name = by_ip.replacen("127.0.0.1", "localhost", 1);
    let right_host_config = dir.path().join("right-host.toml");
    std::fs::write(&right_host_config, text.replace(&good, &by_name)).expect("write config");
    let (code, out) = sluice(&right_host_config, &["check"]);
    assert_eq!(code, 0, "the name on the certificate verifies: {out}");
}

/// `check`, `sync` and `status` refuse the server's certificate: exit 1 (not retried for
/// minutes), an error that says the certificate is the problem, and no password.
fn assert_certificate_refused(config: &Path, password: &str, problem: &str) {
    for args in [&["check"][..], &["sync", "--until-caught-up"], &["status"]] {
        let started = std::time::Instant::now();
        let (code, out) = sluice(config, args);
        assert_eq!(code, 1, "{args:?}: {out}");
        assert!(
            out.contains("tls handshake") && out.contains("certificate") && out.contains(problem),
            "{args:?} names the certificate problem ({problem}): {out}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{args:?} gave up at once, not after retries"
        );
        assert!(
            !out.contains(password) && !out.contains(&percent_encode(password)),
            "{args:?} printed the password: {out}"
        );
    }
}

/// The README's least-privilege setup, statement for statement.
const LEAST_PRIVILEGE_SETUP: &str = "
    GRANT SELECT ON public.orders, public.customers TO sluice_reader;
    CREATE PUBLICATION sluice_pub FOR TABLE public.orders, public.customers;";

#[tokio::test]
async fn least_privilege_role_syncs_with_the_owners_publication() {
    let password = "Least-Priv-3!";
    // The kit creates the role as the README says: LOGIN REPLICATION PASSWORD, nothing else.
    // Every statement is logged with its role, to show what Sluice ran.
    let cluster = PgCluster::builder()
        .user("sluice_reader", password, AuthMethod::ScramSha256)
        .conf("log_statement = 'all'")
        .conf("log_line_prefix = '[%u] '")
        .start()
        .expect("cluster");
    let db = cluster.fresh_database().await.expect("database");
    // Tables owned by someone else (the superuser here, the application's role in real life).
    db.execute(
        "CREATE TABLE orders (id int PRIMARY KEY, customer_id int, total numeric(10,2), note text);
         CREATE TABLE customers (id int PRIMARY KEY, email text);
         CREATE TABLE secrets (id int PRIMARY KEY, token text);
         INSERT INTO customers SELECT g, 'c' || g || '@example.com' FROM generate_series(1, 30) g;
         INSERT INTO orders SELECT g, g % 30 + 1, g * 1.25, repeat('x', 3000) FROM generate_series(1, 200) g;",
    )
    .await
    .expect("schema");
    let attributes = db
        .query(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls
             FROM pg_roles WHERE rolname = 'sluice_reader'",
            &[],
        )
        .await
        .expect("role");
    let flags: Vec<bool> = (0..5).map(|i| attributes[0].get(i)).collect();
    assert_eq!(
        flags,
        [false, false, false, true, false],
        "REPLICATION only"
    );

    let pipeline = Pipeline::new(&db, &["public.orders", "public.customers"], "");
    set_source_url(&pipeline, &db, &db.url_for("sluice_reader", password));

    // Before the owner has done anything, check names both missing pieces and what to run.
    let (code, out) = sluice(&pipeline.config, &["check"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("the role may not SELECT from it") && out.contains("GRANT SELECT ON"),
        "{out}"
    );
    assert!(
        out.contains("publication \"sluice_pub\": does not exist, and role \"sluice_reader\" does not own \"public\".\"orders\", \"public\".\"customers\" and lacks the CREATE privilege on the database")
            && out.contains("Run as the tables' owner: CREATE PUBLICATION \"sluice_pub\" FOR TABLE \"public\".\"orders\", \"public\".\"customers\""),
        "{out}"
    );

    // The owner's part.
    db.execute(LEAST_PRIVILEGE_SETUP).await.expect("setup");
    let (code, out) = sluice(&pipeline.config, &["check"]);
    assert_eq!(code, 0, "check passes with REPLICATION and SELECT: {out}");
    assert!(
        out.contains("publication \"sluice_pub\": exists and publishes all 2 tables"),
        "{out}"
    );

    let (code, out) = sluice(&pipeline.config, &["sync", "--until-caught-up"]);
    assert_eq!(code, 0, "snapshot: {out}");
    db.execute(
        "INSERT INTO orders SELECT g, g % 30 + 1, g, 'new' FROM generate_series(201, 260) g;
         UPDATE orders SET total = total + 1 WHERE id % 5 = 0;
         UPDATE orders SET note = repeat('y', 5000) WHERE id = 7;
         DELETE FROM orders WHERE id % 13 = 0;
         UPDATE customers SET email = 'moved@example.com' WHERE id = 3;
         DELETE FROM customers WHERE id = 30;
         INSERT INTO secrets VALUES (1, 'not published');",
    )
    .await
    .expect("changes");
    let (code, out) = sluice(&pipeline.config, &["sync", "--until-caught-up"]);
    assert_eq!(code, 0, "streaming: {out}");
    let (code, out) = sluice(&pipeline.config, &["verify"]);
    assert_eq!(code, 0, "verify: {out}");
    let (code, out) = sluice(&pipeline.config, &["status"]);
    assert_eq!(code, 0, "status: {out}");
    assert_same(
        &db,
        &pipeline.warehouse(),
        "customers",
        &[("id", Kind::Plain), ("email", Kind::Plain)],
    )
    .await;
    assert_same(
        &db,
        &pipeline.warehouse(),
        "orders",
        &[
            ("id", Kind::Plain),
            ("customer_id", Kind::Plain),
            ("total", Kind::Plain),
            ("note", Kind::Plain),
        ],
    )
    .await;

    // What the role ran: never DDL on the source, never a publication change.
    let log = std::fs::read_to_string(cluster.log_path()).expect("server log");
    let statements: Vec<&str> = log
        .lines()
        .filter(|l| {
            // Simple queries log as `statement:`, extended ones as `execute <name>:`.
            l.starts_with("[sluice_reader] LOG:  statement: ")
                || l.starts_with("[sluice_reader] LOG:  execute ")
        })
        .collect();
    assert!(
        statements.iter().any(|l| l.contains("COPY")),
        "the log shows the role's statements: {}",
        statements.join("\n")
    );
    for forbidden in [
        "CREATE PUBLICATION",
        "ALTER PUBLICATION",
        "CREATE TABLE",
        "GRANT",
        "ALTER ",
    ] {
        let ran: Vec<&&str> = statements
            .iter()
            .filter(|l| l.to_ascii_uppercase().contains(forbidden))
            .collect();
        assert!(ran.is_empty(), "sluice ran {forbidden}: {ran:?}");
    }
    // The grants did not change along the way.
    let grants = db
        .query(
            "SELECT table_name::text, privilege_type::text FROM information_schema.role_table_grants
             WHERE grantee = 'sluice_reader' ORDER BY 1, 2",
            &[],
        )
        .await
        .expect("grants");
    let grants: Vec<(String, String)> = grants.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        grants,
        [
            ("customers".to_owned(), "SELECT".to_owned()),
            ("orders".to_owned(), "SELECT".to_owned())
        ]
    );

    // A table added to the configuration but not to the publication: the role may not add
    // it, and check and sync say what the owner must run.
    db.execute("GRANT SELECT ON secrets TO sluice_reader")
        .await
        .expect("grant");
    let text = std::fs::read_to_string(&pipeline.config).expect("config");
    std::fs::write(
        &pipeline.config,
        text.replace(
            "tables = [\"public.orders\", \"public.customers\"]",
            "tables = [\"public.orders\", \"public.customers\", \"public.secrets\"]",
        ),
    )
    .expect("write config");
    let hint = "ALTER PUBLICATION \"sluice_pub\" ADD TABLE \"public\".\"secrets\"";
    let (code, out) = sluice(&pipeline.config, &["check"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("does not include \"public\".\"secrets\"") && out.contains(hint),
        "{out}"
    );
    let (code, out) = sluice(&pipeline.config, &["sync", "--until-caught-up"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(hint), "{out}");

    // Teardown drops the slot (REPLICATION allows that); the publication is its owner's to
    // drop, and the output says it was not dropped.
    let (_, out) = sluice(&pipeline.config, &["teardown", "--yes"]);
    assert!(out.contains("dropped replication slot"), "{out}");
    assert!(
        out.contains("must be owner of publication sluice_pub"),
        "{out}"
    );
    let left = db
        .query(
            "SELECT (SELECT count(*) FROM pg_replication_slots), (SELECT count(*) FROM pg_publication)",
            &[],
        )
        .await
        .expect("slots and publications");
    assert_eq!(
        (left[0].get::<_, i64>(0), left[0].get::<_, i64>(1)),
        (0, 1),
        "slot dropped, the owner's publication kept"
    );
}
