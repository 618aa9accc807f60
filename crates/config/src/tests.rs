use std::collections::BTreeMap;

use secrecy::ExposeSecret;

use super::*;

const DESIGN_EXAMPLE: &str = r#"
[source]
url = "postgres://sluice:${PGPASSWORD}@localhost:5432/shop?sslmode=prefer"
tables = ["public.orders", "public.inventory_movements"]
slot = "sluice"
publication = "sluice"

[log]
kind = "local"
path = "./sluice-data/log"

[target]
kind = "duckdb"
path = "./sluice-data/warehouse.duckdb"
schema = "raw"
deletes = "soft"

[load]
flush_interval_ms = 1000
max_batch_bytes = "64MiB"
"#;

const MINIMAL: &str = "[source]\nurl = \"postgres://localhost/shop\"\ntables = [\"public.t\"]\n";

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn paths(err: ConfigError) -> Vec<String> {
    err.problems().into_iter().map(|p| p.path).collect()
}

#[test]
fn parses_the_design_example() {
    let c = Config::from_toml(DESIGN_EXAMPLE, &vars(&[("PGPASSWORD", "s3cr3t")])).expect("parses");
    c.validate().expect("valid");
    assert_eq!(
        c.source.url.expose_secret(),
        "postgres://sluice:s3cr3t@localhost:5432/shop?sslmode=prefer"
    );
    assert_eq!(c.source.tables.len(), 2);
    assert_eq!(c.log.kind, "local");
    assert_eq!(c.target.kind, "duckdb");
    assert_eq!(
        c.target.rest.get("schema").and_then(|v| v.as_str()),
        Some("raw")
    );
    assert_eq!(c.load.max_batch_bytes, ByteSize(64 << 20));
    assert_eq!(c.pipeline, DEFAULT_PIPELINE);
}

#[test]
fn debug_never_shows_the_password() {
    let c = Config::from_toml(DESIGN_EXAMPLE, &vars(&[("PGPASSWORD", "s3cr3t")])).expect("parses");
    let printed = format!("{c:?}");
    assert!(!printed.contains("s3cr3t"), "{printed}");
    assert!(printed.contains("sluice:****@localhost"), "{printed}");
}

#[test]
fn unset_variable_names_the_field() {
    let err = Config::from_toml(DESIGN_EXAMPLE, &vars(&[])).expect_err("unset var");
    let text = err.to_string();
    assert!(
        text.starts_with("source.url: environment variable PGPASSWORD is not set"),
        "{text}"
    );
}

#[test]
fn environment_overrides_beat_the_file() {
    let c = Config::from_toml(
        DESIGN_EXAMPLE,
        &vars(&[
            ("PGPASSWORD", "x"),
            ("SLUICE__LOAD__FLUSH_INTERVAL_MS", "200"),
            ("SLUICE__TARGET__SCHEMA", "other"),
        ]),
    )
    .expect("parses");
    assert_eq!(c.load.flush_interval_ms, 200);
    assert_eq!(
        c.target.rest.get("schema").and_then(|v| v.as_str()),
        Some("other")
    );
}

#[test]
fn unknown_keys_and_sections_are_named() {
    let text = DESIGN_EXAMPLE.replace("slot = \"sluice\"", "slott = \"sluice\"") + "\n[extra]\n";
    let err = Config::from_toml(&text, &vars(&[("PGPASSWORD", "x")])).expect_err("unknown");
    let p = paths(err);
    assert!(p.contains(&"source.slott".to_owned()), "{p:?}");
    assert!(p.contains(&"extra".to_owned()), "{p:?}");
}

#[test]
fn missing_source_is_named() {
    let err =
        Config::from_toml("[load]\nflush_interval_ms = 5\n", &vars(&[])).expect_err("no source");
    assert_eq!(paths(err), vec!["source".to_owned()]);
}

#[test]
fn negative_and_bad_sizes_are_refused() {
    for bad in ["-5", "\"12 parsecs\"", "\"abc\""] {
        let text = DESIGN_EXAMPLE.replace("\"64MiB\"", bad);
        let err = Config::from_toml(&text, &vars(&[("PGPASSWORD", "x")])).expect_err(bad);
        assert_eq!(paths(err), vec!["load.max_batch_bytes".to_owned()], "{bad}");
    }
}

#[test]
fn validate_names_every_bad_field() {
    let text = DESIGN_EXAMPLE
        .replace("\"64MiB\"", "\"100kB\"")
        .replace("flush_interval_ms = 1000", "flush_interval_ms = 0")
        .replace("\"public.orders\", ", "\"orders\", ")
        .replace("slot = \"sluice\"", "slot = \"Bad-Slot\"");
    let c = Config::from_toml(&text, &vars(&[("PGPASSWORD", "x")])).expect("parses");
    let p = paths(c.validate().expect_err("invalid"));
    assert_eq!(
        p,
        vec![
            "source.tables[0]",
            "source.slot",
            "load.flush_interval_ms",
            "load.max_batch_bytes"
        ]
    );
}

#[test]
fn syntax_errors_give_the_line() {
    let err = Config::from_toml("[source]\nurl = \n", &vars(&[])).expect_err("syntax");
    assert!(err.to_string().contains("line 2"), "{err}");
}

#[test]
fn interpolation_escapes_and_errors() {
    let v = vars(&[("A", "1")]);
    let mut t: toml::Table = "x = \"${A}-$${A}-$5\"\ny = \"${A\"\n"
        .parse()
        .expect("toml");
    let err = interpolate(&mut t, &v).expect_err("unterminated");
    assert_eq!(paths(err), vec!["y"]);
    let mut t: toml::Table = "x = \"${A}-$${A}-$5\"".parse().expect("toml");
    interpolate(&mut t, &v).expect("ok");
    assert_eq!(t["x"].as_str(), Some("1-${A}-$5"));
}

#[test]
fn byte_sizes() {
    assert_eq!(parse_byte_size("64MiB"), Ok(64 << 20));
    assert_eq!(parse_byte_size("1 GB"), Ok(1_000_000_000));
    assert_eq!(parse_byte_size("1.5KiB"), Ok(1536));
    assert_eq!(parse_byte_size("42"), Ok(42));
    assert!(parse_byte_size("1 XB").is_err());
    assert!(parse_byte_size("").is_err());
}

#[test]
fn table_patterns() {
    assert_eq!(
        parse_table_pattern("public.orders"),
        Ok(("public".into(), Some("orders".into())))
    );
    assert_eq!(parse_table_pattern("sales.*"), Ok(("sales".into(), None)));
    assert_eq!(
        parse_table_pattern("\"My Schema\".\"Odd.\"\"Name\""),
        Ok(("My Schema".into(), Some("Odd.\"Name".into())))
    );
    assert_eq!(
        parse_table_pattern("s.\"*\""),
        Ok(("s".into(), Some("*".into())))
    );
    for bad in ["orders", "a.b.c", ".x", "x.", "\"unterminated.x", "a\"b.c"] {
        assert!(parse_table_pattern(bad).is_err(), "{bad}");
    }
}

#[test]
fn redacts_passwords_in_urls() {
    assert_eq!(
        redact_url("postgres://u:p@h:5/db?x=1"),
        "postgres://u:****@h:5/db?x=1"
    );
    assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    assert_eq!(
        redact_url("postgres://u:p%40ss@h/db"),
        "postgres://u:****@h/db"
    );
}

#[test]
fn wal_and_metrics_sections_parse_with_defaults() {
    let c = Config::from_toml(MINIMAL, &vars(&[])).expect("parses");
    assert_eq!(c.wal.warn_retained, ByteSize(1 << 30));
    assert_eq!(c.wal.absorb_backlog, ByteSize(0));
    assert_eq!(c.metrics.listen, None);
    let text = format!(
        "{MINIMAL}\n[wal]\nwarn_retained = \"256MiB\"\nabsorb_backlog = \"2GiB\"\n[metrics]\nlisten = \"127.0.0.1:9187\"\n"
    );
    let c = Config::from_toml(&text, &vars(&[])).expect("parses");
    c.validate().expect("valid");
    assert_eq!(c.wal.warn_retained, ByteSize(256 << 20));
    assert_eq!(c.wal.absorb_backlog, ByteSize(2 << 30));
    assert_eq!(c.metrics.listen.as_deref(), Some("127.0.0.1:9187"));
}

#[test]
fn bad_metrics_address_and_wal_interval_name_their_fields() {
    let text =
        format!("{MINIMAL}\n[wal]\ncheck_interval_ms = 5\n[metrics]\nlisten = \"localhost\"\n");
    let c = Config::from_toml(&text, &vars(&[])).expect("parses");
    let err = c.validate().expect_err("invalid");
    assert_eq!(
        paths(err),
        vec![
            "wal.check_interval_ms".to_owned(),
            "metrics.listen".to_owned()
        ]
    );
    let err = Config::from_toml(&format!("{MINIMAL}\n[wal]\nbudget = 1\n"), &vars(&[]))
        .expect_err("unknown key");
    assert_eq!(paths(err), vec!["wal.budget".to_owned()]);
}

#[test]
fn wrong_types_and_missing_keys_name_the_field() {
    for (text, path, says) in [
        (
            "[source]\nurl = \"postgres://h/db\"\ntables = \"public.t\"\n",
            "source.tables",
            "expected a sequence",
        ),
        (
            "[source]\nurl = 5\ntables = [\"public.t\"]\n",
            "source.url",
            "invalid type",
        ),
        (
            "[source]\ntables = [\"public.t\"]\n",
            "source.url",
            "missing field",
        ),
        (
            &format!("{MINIMAL}[load]\nflush_interval_ms = \"fast\"\n"),
            "load.flush_interval_ms",
            "expected u64",
        ),
        (
            &format!("{MINIMAL}[load]\nmax_batch_rows = -5\n"),
            "load.max_batch_rows",
            "-5",
        ),
        (
            &format!("{MINIMAL}[wal]\nabsorb_backlog = true\n"),
            "wal.absorb_backlog",
            "",
        ),
        (
            &format!("{MINIMAL}[metrics]\nlisten = 9187\n"),
            "metrics.listen",
            "invalid type",
        ),
    ] {
        let err = Config::from_toml(text, &vars(&[])).expect_err(text);
        let problems = err.problems();
        assert_eq!(problems.len(), 1, "{text}: {problems:?}");
        assert_eq!(problems[0].path, path, "{text}");
        assert!(problems[0].message.contains(says), "{text}: {problems:?}");
    }
}

#[test]
fn connector_sections_name_the_field() {
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Local {
        path: String,
        #[serde(default)]
        segment_bytes: ByteSize,
    }
    for (text, path) in [
        (
            "[log]\npath = \"x\"\nsegment_bytes = -1\n",
            "log.segment_bytes",
        ),
        (
            "[log]\npath = \"x\"\nsegmentbytes = 1\n",
            "log.segmentbytes",
        ),
        ("[log]\nsegment_bytes = 1\n", "log.path"),
        ("[log]\npath = []\n", "log.path"),
    ] {
        let c = Config::from_toml(&format!("{MINIMAL}{text}"), &vars(&[])).expect("parses");
        let err = c.log.parse::<Local>().expect_err(text);
        assert_eq!(paths(err), vec![path.to_owned()], "{text}");
    }
}

#[test]
fn keys_without_a_bare_name_are_quoted_in_paths() {
    // Found by the `config` fuzz target: `''=0` named a field with no name.
    let err = Config::from_toml("''=0#wA0", &vars(&[])).expect_err("unknown key");
    assert_eq!(paths(err), vec!["source".to_owned(), "\"\"".to_owned()]);
    let err = Config::from_toml(
        &format!("{MINIMAL}[target]\n\"my key\" = \"${{NOPE}}\"\n\"\" = \"${{NOPE}}\"\n"),
        &vars(&[]),
    )
    .expect_err("unset variables");
    assert_eq!(
        paths(err),
        vec!["target.\"\"".to_owned(), "target.\"my key\"".to_owned()]
    );
    assert_eq!(key_name("max_batch_bytes"), "max_batch_bytes");
    assert_eq!(key_name("a.b"), "\"a.b\"");
}

#[test]
fn snapshot_options_default_and_name_their_fields() {
    let c = Config::from_toml(MINIMAL, &vars(&[])).expect("parses");
    assert_eq!(c.source.snapshot_workers, DEFAULT_SNAPSHOT_WORKERS);
    assert_eq!(c.source.snapshot_chunk_rows, DEFAULT_SNAPSHOT_CHUNK_ROWS);
    let text = MINIMAL.to_owned() + "snapshot_workers = 8\nsnapshot_chunk_rows = 500\n";
    let c = Config::from_toml(&text, &vars(&[])).expect("parses");
    c.validate().expect("valid");
    assert_eq!(
        (c.source.snapshot_workers, c.source.snapshot_chunk_rows),
        (8, 500)
    );
    for (workers, rows) in [(0, 0), (MAX_SNAPSHOT_WORKERS + 1, 0)] {
        let text = format!("{MINIMAL}snapshot_workers = {workers}\nsnapshot_chunk_rows = {rows}\n");
        let c = Config::from_toml(&text, &vars(&[])).expect("parses");
        assert_eq!(
            paths(c.validate().expect_err("invalid")),
            vec![
                "source.snapshot_workers".to_owned(),
                "source.snapshot_chunk_rows".to_owned()
            ]
        );
    }
    let err = Config::from_toml(&format!("{MINIMAL}snapshot_workers = -1\n"), &vars(&[]))
        .expect_err("negative");
    assert_eq!(paths(err), vec!["source.snapshot_workers".to_owned()]);
}

#[test]
fn capture_state_dir_parses_and_defaults_to_the_log_directory() {
    let c = Config::from_toml(MINIMAL, &vars(&[])).expect("parses");
    assert_eq!(
        c.capture.state_dir, None,
        "unset: the change log's directory"
    );
    let text = format!("{MINIMAL}[capture]\nstate_dir = \"${{STATE}}/capture\"\n");
    let c = Config::from_toml(&text, &vars(&[("STATE", "/var/lib/sluice")])).expect("parses");
    c.validate().expect("valid");
    assert_eq!(
        c.capture.state_dir.as_deref(),
        Some(std::path::Path::new("/var/lib/sluice/capture"))
    );
    let c = Config::from_toml(
        MINIMAL,
        &vars(&[("SLUICE__CAPTURE__STATE_DIR", "/srv/state")]),
    )
    .expect("parses");
    assert_eq!(
        c.capture.state_dir.as_deref(),
        Some(std::path::Path::new("/srv/state"))
    );
}

#[test]
fn capture_section_names_bad_fields() {
    let err = Config::from_toml(&format!("{MINIMAL}[capture]\nstate = \"x\"\n"), &vars(&[]))
        .expect_err("unknown key");
    assert_eq!(paths(err), vec!["capture.state".to_owned()]);
    let err = Config::from_toml(&format!("{MINIMAL}[capture]\nstate_dir = 3\n"), &vars(&[]))
        .expect_err("not a path");
    assert_eq!(paths(err), vec!["capture.state_dir".to_owned()]);
    let c = Config::from_toml(
        &format!("{MINIMAL}[capture]\nstate_dir = \"\"\n"),
        &vars(&[]),
    )
    .expect("parses");
    assert_eq!(
        paths(c.validate().expect_err("empty")),
        vec!["capture.state_dir".to_owned()]
    );
}
