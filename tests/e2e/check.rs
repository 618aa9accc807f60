//! `sluice check` and configuration errors: each problem named, with what to do.

use std::process::Command;

use sluice_testkit::{AuthMethod, PgCluster};
use sluice_tests::{Pipeline, sluice_bin};

fn run(args: &[&str], config: &std::path::Path) -> (i32, String) {
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

#[tokio::test]
async fn check_names_missing_prerequisites() {
    let cluster = PgCluster::builder()
        .conf("wal_level = replica")
        .user("plain", "pw-Secret-1", AuthMethod::ScramSha256)
        .start()
        .expect("cluster");
    let db = cluster.fresh_database().await.expect("database");
    db.execute(
        "CREATE TABLE keyed (id int PRIMARY KEY); CREATE TABLE loose (a int, b text);
         ALTER ROLE plain NOREPLICATION; GRANT SELECT ON keyed, loose TO plain;",
    )
    .await
    .expect("schema");
    let pipeline = Pipeline::new(&db, &["public.*"], "");
    let text = std::fs::read_to_string(&pipeline.config).expect("config");
    let url = db.url_for("plain", "pw-Secret-1");
    std::fs::write(&pipeline.config, text.replace(&db.url(), &url)).expect("write");

    let (code, out) = run(&["check"], &pipeline.config);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("wal_level is \"replica\"")
            && out.contains("ALTER SYSTEM SET wal_level = logical"),
        "{out}"
    );
    assert!(
        out.contains("lacks the REPLICATION attribute") && out.contains("WITH REPLICATION"),
        "{out}"
    );
    assert!(
        out.contains("\"public\".\"loose\"") && out.contains("append-only"),
        "{out}"
    );
    assert!(
        out.contains("REPLICA IDENTITY FULL"),
        "the hint says how to fix it: {out}"
    );
    assert!(
        !out.contains("pw-Secret-1"),
        "the password never shows: {out}"
    );

    let (code, json) = run(&["check", "--json"], &pipeline.config);
    assert_eq!(code, 1);
    assert!(
        json.contains("\"level\": \"error\"") && !json.contains("pw-Secret-1"),
        "{json}"
    );
}

#[tokio::test]
async fn bad_configuration_exits_2_naming_the_field() {
    let dir = sluice_tests::tempfile_dir::Dir::new();
    let config = dir.path().join("sluice.toml");
    for (text, field) in [
        (
            "[source]\nurl = \"postgres://u@h/db\"\ntables = [\"orders\"]\n",
            "source.tables[0]",
        ),
        (
            "[source]\nurl = \"postgres://u@h/db\"\ntables = [\"public.t\"]\n[load]\nmax_batch_bytes = -1\n",
            "load",
        ),
        (
            "[source]\nurl = \"postgres://u:${NOPE_UNSET}@h/db\"\ntables = [\"public.t\"]\n",
            "source.url",
        ),
        (
            "[source]\nurl = \"postgres://u@h/db\"\ntables = [\"public.t\"]\n[target]\nkind = \"oracle\"\n",
            "target.kind",
        ),
        (
            "[source]\nurl = \"postgres://u@h/db\"\ntables = [\"public.t\"]\nslott = \"x\"\n",
            "source",
        ),
    ] {
        std::fs::write(&config, text).expect("write");
        let (code, out) = run(&["check"], &config);
        assert_eq!(code, 2, "{text}: {out}");
        assert!(
            out.contains(&format!("{field}:")),
            "{text}: expected {field} in {out}"
        );
    }
    let (code, out) = run(&["sync"], &dir.path().join("missing.toml"));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("sluice init"), "{out}");
}
