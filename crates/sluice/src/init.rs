//! `sluice init`: write a commented configuration file.

use std::io::Write;

use anyhow::Context;

use crate::cli::{InitArgs, InitTarget};

/// Renders the commented configuration for these answers.
pub fn render(args: &InitArgs) -> String {
    let tables = args
        .tables
        .iter()
        .map(|t| toml_string(t))
        .collect::<Vec<_>>()
        .join(", ");
    let data = args.data_dir.display().to_string();
    format!(
        r#"# Sluice configuration. Reference: README.md. Values may use ${{VAR}} for secrets, and any key
# can be overridden from the environment as SLUICE__SECTION__KEY (SLUICE__LOAD__FLUSH_INTERVAL_MS=200).

# Name of this pipeline: the key of its checkpoint row in the target.
pipeline = "default"

[source]
# PostgreSQL to capture (wal_level = logical; a role with REPLICATION and SELECT).
# sslmode: disable | prefer | require | verify-ca | verify-full (sslrootcert=/path/ca.pem).
url = {url}
# "schema.table" or "schema.*".
tables = [{tables}]
# Replication slot and publication, created when missing.
slot = "sluice"
publication = "sluice"
# Connections copying the initial snapshot in parallel, in chunks of about this many rows.
# A restart after a crash copies only the chunks not yet in the change log.
snapshot_workers = 4
snapshot_chunk_rows = 100000

[log]
# The durable change log between capture and loader: a local directory.
kind = "local"
path = {log}

{target}
[load]
# A micro-batch closes at whichever comes first.{flush_note}
flush_interval_ms = {flush}
max_batch_bytes = "16MiB"
max_batch_rows = 500000

[wal]
# Warn (log, metric, sluice status) when the slot retains more WAL than this on the source.
warn_retained = "1GiB"
check_interval_ms = 10000
# "0": after about ten minutes of failing to reach the target the sync stops, and the slot
# retains WAL from then on. A size such as "20GiB": ride out target outages in the change log
# (the slot keeps advancing) until it holds that much; needs a durable disk for the log.
absorb_backlog = "0"

[metrics]
# Serve /metrics, /healthz and /readyz here (or pass --metrics-listen to sluice sync).
# listen = "127.0.0.1:9187"
"#,
        url = toml_string(&args.source_url),
        log = toml_string(&format!("{data}/log")),
        target = target_section(args.target, &data),
        flush = match args.target {
            InitTarget::Duckdb => 1000,
            InitTarget::Snowflake => 300_000,
        },
        flush_note = match args.target {
            InitTarget::Duckdb => "",
            InitTarget::Snowflake => {
                "\n# Snowflake bills a running warehouse per second (60 s at least per resume): a\n\
                 # batch every second keeps it on all day. Every five minutes lets it suspend in\n\
                 # between (README, \"Snowflake\", has the cost model); lower it for fresher data."
            }
        },
    )
}

/// The `[target]` section for `target`.
fn target_section(target: InitTarget, data: &str) -> String {
    match target {
        InitTarget::Duckdb => format!(
            r#"[target]
# The warehouse: an embedded DuckDB file.
kind = "duckdb"
path = {wh}
# Schema of the loaded tables.
schema = "raw"
# "soft" keeps deleted rows with _sluice_deleted = true; "hard" removes them.
deletes = "soft"
"#,
            wh = toml_string(&format!("{data}/warehouse.duckdb"))
        ),
        InitTarget::Snowflake => r#"[target]
# The warehouse: Snowflake. `sluice check` logs in and prints the GRANT statements a missing
# privilege needs.
kind = "snowflake"
account = "myorg-myaccount"
user = "SLUICE_LOADER"
# Key-pair authentication (a PKCS#8 key; register its public key with ALTER USER ... SET
# RSA_PUBLIC_KEY); or password = "${SNOWFLAKE_PASSWORD}".
private_key_path = "/run/secrets/snowflake_key.p8"
# private_key_passphrase = "${SNOWFLAKE_KEY_PASSPHRASE}"
role = "SLUICE_LOADER"
warehouse = "LOAD_WH"
# The database must exist; the schema is created.
database = "ANALYTICS"
schema = "raw"
# "soft" keeps deleted rows with _SLUICE_DELETED = true; "hard" removes them.
deletes = "soft"
# stage = "internal"                    # files PUT to an internal stage Sluice creates
# endpoint = "http://127.0.0.1:8085"    # overrides https://<account>.snowflakecomputing.com
"#
        .to_owned(),
    }
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Asks for the answers on a terminal, offering the flags' values as defaults.
fn ask(args: &InitArgs) -> anyhow::Result<InitArgs> {
    use dialoguer::Input;
    let source_url: String = Input::new()
        .with_prompt("Source PostgreSQL URL (a password is better written as ${PGPASSWORD})")
        .default(args.source_url.clone())
        .interact_text()?;
    let tables: String = Input::new()
        .with_prompt("Tables to capture (schema.table or schema.*, comma-separated)")
        .default(args.tables.join(","))
        .validate_with(|text: &String| -> Result<(), String> {
            text.split(',')
                .map(str::trim)
                .try_for_each(|t| sluice_config::parse_table_pattern(t).map(|_| ()))
        })
        .interact_text()?;
    let data_dir: String = Input::new()
        .with_prompt("Directory for the change log and the DuckDB warehouse")
        .default(args.data_dir.display().to_string())
        .interact_text()?;
    Ok(InitArgs {
        source_url,
        tables: tables.split(',').map(|t| t.trim().to_owned()).collect(),
        data_dir: data_dir.into(),
        ..args.clone()
    })
}

/// Writes the file, refusing to overwrite unless `--force`. On a terminal (unless
/// `--no-input`) the answers are asked for first.
pub fn run(args: &InitArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let asked;
    let args =
        if !args.no_input && std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
            asked = ask(args)?;
            &asked
        } else {
            args
        };
    let text = render(args);
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if args.force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(&args.config).with_context(|| {
        if args.config.exists() {
            format!(
                "{} already exists (use --force to overwrite)",
                args.config.display()
            )
        } else {
            format!("cannot create {}", args.config.display())
        }
    })?;
    file.write_all(text.as_bytes())?;
    println!("wrote {}", args.config.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn rendered_file_is_a_valid_config() {
        let args = InitArgs {
            config: "x.toml".into(),
            source_url: "postgres://u:${PGPASSWORD}@h/db".into(),
            tables: vec!["public.orders".into(), "sales.*".into()],
            data_dir: "/tmp/d \"q\"".into(),
            target: InitTarget::Duckdb,
            force: false,
            no_input: true,
        };
        let vars: BTreeMap<String, String> = [("PGPASSWORD".to_owned(), "pw".to_owned())].into();
        let config = sluice_config::Config::from_toml(&render(&args), &vars).expect("parses");
        config.validate().expect("valid");
        assert_eq!(config.wal.absorb_backlog.0, 0);
        assert_eq!(config.metrics.listen, None);
        config.validate().expect("valid");
        assert_eq!(config.source.tables, vec!["public.orders", "sales.*"]);
        assert_eq!(
            config.target.rest.get("path").and_then(|v| v.as_str()),
            Some("/tmp/d \"q\"/warehouse.duckdb")
        );
    }

    #[cfg(feature = "snowflake")]
    #[test]
    fn a_snowflake_file_parses_and_flushes_every_five_minutes() {
        let args = InitArgs {
            config: "x.toml".into(),
            source_url: "postgres://u@h/db".into(),
            tables: vec!["public.*".into()],
            data_dir: "./d".into(),
            target: InitTarget::Snowflake,
            force: false,
            no_input: true,
        };
        let config =
            sluice_config::Config::from_toml(&render(&args), &BTreeMap::new()).expect("parses");
        config.validate().expect("valid");
        assert_eq!(config.target.kind, "snowflake");
        assert_eq!(config.load.flush_interval_ms, 300_000);
        let target = crate::registry::target(&config.target).expect("a valid [target]");
        assert_eq!(target.name(), "snowflake");
    }
}
