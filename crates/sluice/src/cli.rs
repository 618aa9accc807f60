//! The command line: `sluice <command> [-c sluice.toml]`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Change data capture from PostgreSQL into analytical warehouses.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log output format (logs go to stderr; levels come from SLUICE_LOG or RUST_LOG).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Which stages `sluice sync` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Stage {
    All,
    Capture,
    Load,
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Configuration file.
    #[arg(short, long, default_value = "sluice.toml", env = "SLUICE_CONFIG")]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented sluice.toml.
    Init(InitArgs),
    /// Validate the configuration, connectivity and source prerequisites.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Snapshot if needed, then stream changes until SIGINT or SIGTERM.
    Sync {
        #[command(flatten)]
        config: ConfigArg,
        /// Stop once everything committed at the source when sync started is loaded.
        #[arg(long)]
        until_caught_up: bool,
        /// Run only one stage: `capture` (source into the change log) or `load` (change log
        /// into the target), for running them as separate processes.
        #[arg(long, value_enum, default_value_t = Stage::All)]
        stage: Stage,
        /// Serve /metrics, /healthz and /readyz on this address (overrides [metrics] listen).
        #[arg(long, value_name = "HOST:PORT")]
        metrics_listen: Option<std::net::SocketAddr>,
    },
    /// Compare source and target per table (row counts and content hashes); exit 3 on a
    /// mismatch.
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// Key buckets per table: a difference is narrowed down to a bucket, then to its keys.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65536))]
        buckets: u32,
        /// Differing keys printed per table and kind, at most.
        #[arg(long, default_value_t = 20)]
        max_keys: usize,
    },
    /// Slot, retained WAL, change-log depth, applied position and freshness; reads only, so it
    /// works while a sync runs.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drop the replication slot and the publication at the source (asks first, or --yes); the
    /// change log and the target are kept.
    Teardown {
        #[command(flatten)]
        config: ConfigArg,
        /// Drop without asking (needed without a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// KPI views over the loaded tables (stock, orders per minute, sessions, fraud signals,
    /// freshness).
    Views {
        #[command(subcommand)]
        command: ViewsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ViewsCommand {
    /// Create or replace the KPI views in the target schema, for the target's SQL dialect.
    Install {
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// Where to write the file.
    #[arg(short, long, default_value = "sluice.toml")]
    pub config: PathBuf,
    /// Source connection URL (a password is better given as ${PGPASSWORD}).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub source_url: String,
    /// Tables to capture, `schema.table` or `schema.*` (repeat or separate with commas).
    #[arg(long, value_delimiter = ',', default_value = "public.*")]
    pub tables: Vec<String>,
    /// Directory for the change log and the DuckDB warehouse.
    #[arg(long, default_value = "./sluice-data")]
    pub data_dir: PathBuf,
    /// The warehouse the file is written for (its `[target]` section, commented).
    #[arg(long, value_enum, default_value_t = InitTarget::Duckdb)]
    pub target: InitTarget,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
    /// Do not ask on a terminal: take the flags (and their defaults) as given.
    #[arg(long)]
    pub no_input: bool,
}

/// The warehouses `sluice init` writes a `[target]` section for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InitTarget {
    /// An embedded DuckDB file under the data directory.
    Duckdb,
    /// Snowflake, with key-pair authentication.
    Snowflake,
}
