//! `sluice`: change data capture from PostgreSQL into analytical warehouses.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 bad configuration or usage, 3 `verify` found a
//! mismatch.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use sluice::cli::{Cli, Command, LogFormat, ViewsCommand};
use sluice::settings::{self, Settings};
use sluice::{check, init, status, sync, teardown, telemetry, verify, views};
use sluice_core::telemetry::Stats;

/// Exit code of a runtime failure.
const EXIT_FAILURE: u8 = 1;
/// Exit code of a bad configuration or usage.
const EXIT_CONFIG: u8 = 2;
/// Exit code of `verify` finding a difference.
const EXIT_MISMATCH: u8 = 3;
/// After SIGINT/SIGTERM, the pipeline has this long to finish its batch and report its position.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    if let Err(e) = failpoints::configure() {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    runtime.block_on(run(cli))
}

/// glibc's allocator gives every thread that allocates an arena of its own (up to eight per
/// core) and keeps what is freed there for that thread: with the runtime's workers, its
/// blocking threads and DuckDB's, a large transaction leaves far more memory resident than is
/// in use. Two arenas keep the peak near what is live (175 instead of 237 MiB loading a
/// 1,000,000-row transaction into PostgreSQL).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets an allocator parameter; it runs before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

async fn run(cli: Cli) -> ExitCode {
    let log_format = cli.log_format;
    match cli.command {
        Command::Init(args) => match init::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Check { config, json } => {
            let Some(settings) = load(&config.config) else {
                return ExitCode::from(EXIT_CONFIG);
            };
            if check::run(&settings, json).await {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILURE)
            }
        }
        Command::Verify {
            config,
            json,
            buckets,
            max_keys,
        } => {
            let Some(settings) = load(&config.config) else {
                return ExitCode::from(EXIT_CONFIG);
            };
            let options = verify::VerifyOptions {
                buckets,
                max_keys,
                json,
            };
            match verify::run(&settings, options).await {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(EXIT_MISMATCH),
                Err(failure) => {
                    eprintln!("error: {failure}");
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
        Command::Status { config, json } => {
            let Some(settings) = load(&config.config) else {
                return ExitCode::from(EXIT_CONFIG);
            };
            if status::run(&settings, json).await {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILURE)
            }
        }
        Command::Teardown { config, yes } => {
            let Some(settings) = load(&config.config) else {
                return ExitCode::from(EXIT_CONFIG);
            };
            match teardown::run(&settings, yes).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(teardown::Refused::NotConfirmed { hint }) => {
                    eprintln!("error: teardown needs confirmation");
                    eprintln!("hint: {hint}");
                    ExitCode::from(EXIT_CONFIG)
                }
                Err(teardown::Refused::Declined) => {
                    eprintln!("teardown cancelled: nothing dropped");
                    ExitCode::from(EXIT_FAILURE)
                }
                Err(teardown::Refused::Failed { message, hint }) => {
                    eprintln!("error: {message}");
                    if let Some(hint) = hint {
                        eprintln!("hint: {hint}");
                    }
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
        Command::Views {
            command: ViewsCommand::Install { config },
        } => {
            let Some(settings) = load(&config.config) else {
                return ExitCode::from(EXIT_CONFIG);
            };
            match views::install(&settings).await {
                Ok(installed) => {
                    for view in &installed.views {
                        println!("installed view {}.{view}", installed.schema);
                    }
                    println!(
                        "{} KPI views installed in schema \"{}\" ({} dialect)",
                        installed.views.len(),
                        installed.schema,
                        installed.dialect
                    );
                    ExitCode::SUCCESS
                }
                Err(failure) => {
                    eprintln!("error: {failure}");
                    if failure.class == sluice_core::ErrorClass::Definite {
                        eprintln!("{}", views::HINT);
                    }
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
        Command::Sync {
            config,
            until_caught_up,
            stage,
            metrics_listen,
        } => {
            let Some(settings) = load(&config.config) else {
                return ExitCode::from(EXIT_CONFIG);
            };
            let stop = CancellationToken::new();
            tokio::spawn(stop_on_signal(stop.clone()));
            let stats = Arc::new(Stats::default());
            let listen = metrics_listen.or(settings.metrics_listen);
            let server = match listen {
                None => None,
                Some(addr) => {
                    let Some(handle) = telemetry::install() else {
                        eprintln!("error: cannot install the metrics recorder");
                        return ExitCode::from(EXIT_FAILURE);
                    };
                    match telemetry::serve(addr, handle, stats.clone(), stop.child_token()).await {
                        Ok(task) => Some(task),
                        Err(e) => {
                            eprintln!("error: cannot serve metrics on {addr}: {e}");
                            eprintln!(
                                "hint: choose another address with [metrics] listen or --metrics-listen"
                            );
                            return ExitCode::from(EXIT_CONFIG);
                        }
                    }
                }
            };
            let options = sync::SyncOptions {
                stage,
                until_caught_up,
                stop: stop.clone(),
                stats,
                display: progress_display(log_format),
            };
            let result = sync::run(settings, options).await;
            stop.cancel();
            if let Some(server) = server {
                let _ = server.await;
            }
            match result {
                Ok(report) => {
                    println!(
                        "sync finished: snapshot {} rows; streamed {} transactions, {} changes; loaded {} batches, {} rows; target at {}",
                        report.capture.snapshot_rows,
                        report.capture.transactions,
                        report.capture.changes,
                        report.loader.batches,
                        report.loader.rows,
                        report.loader.checkpoint.applied_lsn
                    );
                    ExitCode::SUCCESS
                }
                Err(failure) => {
                    tracing::error!(error = %failure, class = ?failure.class, "sync stopped");
                    eprintln!("error: {failure}");
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
    }
}

/// Progress bars and the status line: on a terminal, with human-readable logs.
fn progress_display(format: LogFormat) -> bool {
    format == LogFormat::Text && std::io::stderr().is_terminal()
}

/// Loads settings, printing every problem; `None` means exit code 2.
fn load(path: &std::path::Path) -> Option<Settings> {
    match Settings::load(path) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("error: {e}");
            if let settings::SettingsError::Read { .. } = e {
                eprintln!("hint: create one with `sluice init`, or pass -c <file>");
            }
            None
        }
    }
}

/// Cancels `stop` on the first SIGINT or SIGTERM; exits at once if the pipeline has not
/// stopped within the deadline or on a second signal.
async fn stop_on_signal(stop: CancellationToken) {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping: finishing the batch in flight");
    stop.cancel();
    tokio::select! {
        () = tokio::time::sleep(SHUTDOWN_DEADLINE) => {
            eprintln!("error: did not stop within {}s; exiting", SHUTDOWN_DEADLINE.as_secs());
        }
        _ = tokio::signal::ctrl_c() => eprintln!("error: second signal; exiting at once"),
        _ = term.recv() => eprintln!("error: second signal; exiting at once"),
    }
    std::process::exit(i32::from(EXIT_FAILURE));
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let directives = std::env::var("SLUICE_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_owned());
    // The database driver logs statement texts at debug level: keep it quiet unless asked by
    // name, so a general `debug` never puts SQL (or what it carries) into the logs.
    let directives = if directives.contains("tokio_postgres") {
        directives
    } else {
        format!("{directives},tokio_postgres=info")
    };
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sluice::progress::LogWriter::default);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// Failpoints for the crash tests (`tests/e2e/failpoints.rs`), set from the `FAILPOINTS`
/// environment variable in the `fail` crate's syntax: `name=actions;name=actions`, for example
/// `FAILPOINTS=capture-after-append=2*off->return`. In Sluice the `return` action ends the
/// process at once with SIGABRT, as a crash would; `off`, `sleep`, `pause`, `panic` and
/// `print` work as the crate documents. Compiled in only with the `failpoints` feature.
mod failpoints {
    /// Every failpoint, in pipeline order (ARCHITECTURE.md says where each one is).
    #[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
    pub const NAMES: &[&str] = &[
        "snapshot-chunk",
        "capture-after-decode",
        "capture-after-append",
        "log-segment-rotation",
        "target-mid-batch",
        "loader-after-commit",
    ];

    /// The environment variable that sets failpoints.
    const VAR: &str = "FAILPOINTS";

    /// Sets the failpoints `FAILPOINTS` names; refuses unknown names and bad actions.
    #[cfg(feature = "failpoints")]
    pub fn configure() -> Result<(), String> {
        let Some(spec) = std::env::var_os(VAR) else {
            return Ok(());
        };
        let spec = spec
            .into_string()
            .map_err(|_| format!("{VAR} is not valid UTF-8"))?;
        for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, actions) = entry
                .split_once('=')
                .ok_or_else(|| format!("{VAR}: \"{entry}\" is not name=actions"))?;
            let name = name.trim();
            if !NAMES.contains(&name) {
                return Err(format!(
                    "{VAR}: unknown failpoint \"{name}\" (known: {})",
                    NAMES.join(", ")
                ));
            }
            fail::cfg(name, actions.trim())
                .map_err(|e| format!("{VAR}: failpoint \"{name}\": {e}"))?;
        }
        Ok(())
    }

    /// Without the feature there is nothing to set: a `FAILPOINTS` that asks for some is an
    /// error rather than a test that silently injects nothing.
    #[cfg(not(feature = "failpoints"))]
    pub fn configure() -> Result<(), String> {
        if std::env::var_os(VAR).is_some_and(|v| !v.is_empty()) {
            return Err(format!(
                "{VAR} is set but this sluice was built without failpoints \
                 (cargo build -p sluice --features failpoints)"
            ));
        }
        Ok(())
    }
}
