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
            "load.max_batch_bytes",
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
            "source.slott",
        ),
        (
            "[source]\nurl = \"postgres://u@h/db\"\ntables = [\"public.t\"]\n[wal]\nabsorb_backlog = \"1MiB\"\n",
            "wal.absorb_backlog",
        ),
        (
            "[source]\nurl = \"postgres://u@h/db\"\ntables = [\"public.t\"]\n[metrics]\nlisten = \"everywhere\"\n",
            "metrics.listen",
        ),
        // DuckDB would write each batch out to disk while merging it.
        (
            "[source]\nurl = \"postgres://u@h/db\"\ntables = [\"public.t\"]\n[target]\nkind = \"duckdb\"\npath = \"w.duckdb\"\nmemory_limit_bytes = 67108864\n[load]\nmax_batch_bytes = \"64MiB\"\n",
            "target.memory_limit_bytes",
        ),
        (
            "[source]\nurl = \"postgres://u@h/db\"\ntables = [\"public.t\"]\n[wal]\nwarn_retained = \"lots\"\n",
            "wal.warn_retained",
        ),
        // Wrong types name the key, not only the section.
        (
            "[source]\nurl = \"postgres://u@h/db\"\ntables = \"public.t\"\n",
            "source.tables",
        ),
        (
            "[source]\nurl = \"postgres://u@h/db\"\ntables = [\"public.t\"]\n[load]\nflush_interval_ms = \"fast\"\n",
            "load.flush_interval_ms",
        ),
        (
            "pipeline = 5\n[source]\nurl = \"postgres://u@h/db\"\ntables = [\"public.t\"]\n",
            "pipeline",
        ),
        (
            "load = 5\n[source]\nurl = \"postgres://u@h/db\"\ntables = [\"public.t\"]\n",
            "load",
        ),
        // Missing sections and keys.
        ("[log]\nkind = \"local\"\npath = \"log\"\n", "source"),
        ("[source]\ntables = [\"public.t\"]\n", "source.url"),
        (
            "[source]\nurl = \"postgres://u@h/db\"\ntables = []\n",
            "source.tables",
        ),
        (
            "[source]\nurl = \"postgres://u@h/db\"\ntables = [\"public.t\"]\n[target]\nkind = \"postgres\"\n",
            "target.url",
        ),
        // Bad URLs.
        (
            "[source]\nurl = \"http://u@h/db\"\ntables = [\"public.t\"]\n",
            "source.url",
        ),
        (
            "[source]\nurl = \"postgres://u@h:notaport/db\"\ntables = [\"public.t\"]\n",
            "source.url",
        ),
        (
            "[source]\nurl = \"postgres://u@h/db?sslmode=maybe\"\ntables = [\"public.t\"]\n",
            "source.url",
        ),
        (
            "[source]\nurl = \"postgres://u@h/db\"\ntables = [\"public.t\"]\n[target]\nkind = \"postgres\"\nurl = \"mysql://u@h/db\"\n",
            "target.url",
        ),
        // Unknown kinds and keys of a connector section.
        (
            "[source]\nurl = \"postgres://u@h/db\"\ntables = [\"public.t\"]\n[log]\nkind = \"kafka\"\n",
            "log.kind",
        ),
        (
            "[source]\nurl = \"postgres://u@h/db\"\ntables = [\"public.t\"]\n[target]\nfile = \"w.duckdb\"\n",
            "target.file",
        ),
        // Negative and too small sizes.
        (
            "[source]\nurl = \"postgres://u@h/db\"\ntables = [\"public.t\"]\n[load]\nmax_batch_rows = -5\n",
            "load.max_batch_rows",
        ),
        (
            "[source]\nurl = \"postgres://u@h/db\"\ntables = [\"public.t\"]\n[log]\nsegment_bytes = -1\n",
            "log.segment_bytes",
        ),
        (
            "[source]\nurl = \"postgres://u@h/db\"\ntables = [\"public.t\"]\n[log]\nsegment_bytes = 64\n",
            "log.segment_bytes",
        ),
        (
            "[source]\nurl = \"postgres://u@h/db\"\ntables = [\"public.t\"]\n[load]\nmax_batch_bytes = \"100kB\"\n",
            "load.max_batch_bytes",
        ),
        (
            "[source]\nurl = \"postgres://u@h/db\"\ntables = [\"public.t\"]\nslot = \"Bad-Slot\"\n",
            "source.slot",
        ),
        // Not TOML at all: the line is named.
        (
            "[source]\nurl = \"postgres://u@h/db\"\ntables = [\"public.t\"\n",
            "line 4",
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

    // An environment override is checked like the file.
    std::fs::write(
        &config,
        "[source]\nurl = \"postgres://u@h/db\"\ntables = [\"public.t\"]\n",
    )
    .expect("write");
    let out = Command::new(sluice_bin())
        .args(["check", "-c"])
        .arg(&config)
        .env("SLUICE__LOAD__FLUSH_INTERVAL_MS", "soon")
        .output()
        .expect("run sluice");
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("load.flush_interval_ms:"), "{text}");

    // Files that cannot be read as configuration (the tests run as root, which reads any
    // file whatever its mode): a directory, and bytes that are not UTF-8.
    let not_utf8 = dir.path().join("latin1.toml");
    std::fs::write(
        &not_utf8,
        b"[source]\nurl = \"postgres://u@h/caf\xe9\"\ntables = [\"public.t\"]\n",
    )
    .expect("write");
    for path in [dir.path().to_path_buf(), not_utf8] {
        for command in ["check", "sync", "status", "verify"] {
            let (code, out) = run(&[command], &path);
            assert_eq!(code, 2, "{command} {}: {out}", path.display());
            assert!(
                out.contains(&format!("\"{}\"", path.display())),
                "{command}: the file is named: {out}"
            );
        }
    }
}

/// Passwords in the source and target URLs never reach the output of any command.
#[tokio::test]
async fn passwords_never_printed() {
    let secret = "Pw-9f3!kq";
    let cluster = PgCluster::builder()
        .user("loader", secret, AuthMethod::ScramSha256)
        .start()
        .expect("cluster");
    let source = cluster.fresh_database().await.expect("source");
    let target = cluster.fresh_database().await.expect("target");
    source
        .execute(&format!(
            "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');
             ALTER TABLE t OWNER TO loader; GRANT CREATE ON DATABASE \"{}\" TO loader;",
            source.name()
        ))
        .await
        .expect("schema");
    target
        .execute(&format!(
            "GRANT ALL ON DATABASE \"{}\" TO loader",
            target.name()
        ))
        .await
        .expect("grant");
    let dir = sluice_tests::tempfile_dir::Dir::new();
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nurl = \"{}\"\ntables = [\"public.t\"]\nslot = \"s_{}\"\n\n\
             [log]\nkind = \"local\"\npath = \"{}\"\n\n\
             [target]\nkind = \"postgres\"\nurl = \"{}\"\n",
            source.url_for("loader", secret),
            source.name(),
            dir.path().join("log").display(),
            target.url_for("loader", secret),
        ),
    )
    .expect("write config");
    // The URLs carry the password percent-encoded (`%21` for `!`): look for a piece of it
    // that both forms share, as well as for each form.
    let shared = "Pw-9f3";
    let encoded = sluice_testkit::percent_encode(secret);
    // Returns the exit code, and stdout followed by stderr.
    let scan = |args: &[&str], config: &std::path::Path| -> (Option<i32>, String, String) {
        let out = Command::new(sluice_bin())
            .args(args)
            .arg("-c")
            .arg(config)
            .env("SLUICE_LOG", "debug")
            .output()
            .expect("run sluice");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.is_empty(), "{args:?} printed something");
        for needle in [secret, encoded.as_str(), shared] {
            assert!(
                !text.contains(needle),
                "{args:?} printed the password ({needle}):\n{text}"
            );
        }
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), text, stderr)
    };
    // Some(code): the exit code the command must end with; None: check may warn or fail.
    for (args, code) in [
        (&["check"][..], None),
        (&["check", "--json"], None),
        (&["sync", "--until-caught-up"], Some(0)),
        (&["verify"], Some(0)),
        (&["verify", "--json"], Some(0)),
        (&["status"], Some(0)),
        (&["status", "--json"], Some(0)),
        (
            &["--log-format", "json", "sync", "--until-caught-up"],
            Some(0),
        ),
        // The demo's retail tables are not loaded, so the views cannot be created: the error
        // names the target, not its password.
        (&["views", "install"], Some(1)),
        // No terminal to ask on: refused, with a hint naming the source.
        (&["teardown"], Some(2)),
        (&["teardown", "--yes"], Some(0)),
        (&["status"], Some(0)),
    ] {
        let (got, text, stderr) = scan(args, &config);
        if let Some(code) = code {
            assert_eq!(got, Some(code), "{args:?}:\n{text}");
        }
        if args[0] == "--log-format" {
            // Every log line is a JSON object with a level and a message.
            let mut lines = 0;
            for line in stderr.lines() {
                let v: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
                assert!(v["level"].is_string(), "{line}");
                assert!(v["fields"]["message"].is_string(), "{line}");
                lines += 1;
            }
            assert!(lines >= 3, "too few log lines:\n{stderr}");
        }
    }

    // A wrong password is refused by the server; the refusal does not repeat it.
    let wrong = "Pw-9f3-wrong!";
    let text = std::fs::read_to_string(&config).expect("config");
    let bad = dir.path().join("wrong.toml");
    std::fs::write(
        &bad,
        text.replace(&encoded, &sluice_testkit::percent_encode(wrong)),
    )
    .expect("write config");
    for args in [
        &["check"][..],
        &["sync", "--until-caught-up"],
        &["verify"],
        &["status"],
        &["teardown", "--yes"],
    ] {
        let (got, text, _) = scan(args, &bad);
        assert_ne!(got, Some(0), "{args:?} with a wrong password:\n{text}");
        assert!(
            text.contains("password authentication failed for user \"loader\""),
            "{args:?} says why:\n{text}"
        );
    }
}
