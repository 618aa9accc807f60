//! `sluice-demo`: the retail demo's traffic generator and live dashboard.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sluice_demo::dashboard::{self, Summary};
use sluice_demo::generator::{self, Report};
use sluice_demo::screen::{money, span, thousands};
use tokio_util::sync::CancellationToken;

/// How long a dashboard without a terminal runs when `--seconds` is not given.
const DEFAULT_PLAIN_SECONDS: u64 = 20;

#[derive(Parser)]
#[command(name = "sluice-demo", version, about = "The retail demo of Sluice")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Send shop traffic into a database holding the retail schema (tests/demo/retail.sql).
    Generate {
        /// The source database, e.g. postgres://postgres@127.0.0.1:5432/shop?sslmode=disable
        #[arg(long, env = "SLUICE_DEMO_URL")]
        url: String,
        /// Transactions per second. Delays in the traffic (restocking, card-testing runs) are
        /// counted in transactions at this rate: choose one the database keeps up with.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// Stop after this many seconds (default: until Ctrl-C).
        #[arg(long)]
        seconds: Option<u64>,
        /// Stop after this many transactions.
        #[arg(long)]
        events: Option<u64>,
        /// Seed of the traffic: the same seed on the same data plans the same transactions.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Customers to have before the traffic starts (default: 600 per transaction per
        /// second, so that genuine customers rarely look like card testing).
        #[arg(long)]
        customers: Option<u64>,
    },
    /// Run the pipeline into DuckDB with traffic at the source, and show the KPIs live.
    Dashboard {
        /// The pipeline's configuration (a DuckDB target).
        #[arg(short, long, env = "SLUICE_CONFIG", default_value = "sluice.toml")]
        config: PathBuf,
        /// Transactions per second sent to the source. Delays in the traffic (restocking,
        /// card-testing runs) are counted in transactions at this rate: choose one the source
        /// keeps up with.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Run this long, then wait for the warehouse to catch up and compare it with the
        /// source (default without a terminal: 20 s; with one: until `q`).
        #[arg(long)]
        seconds: Option<u64>,
        /// Print lines of figures instead of drawing on the terminal.
        #[arg(long)]
        plain: bool,
        /// At the end, print the last screen as text of this size (e.g. 120x36).
        #[arg(long, value_parser = parse_size)]
        frame: Option<(u16, u16)>,
        /// Send the traffic here instead of the pipeline's [source].
        #[arg(long)]
        source_url: Option<String>,
    },
}

fn parse_size(s: &str) -> Result<(u16, u16), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("{s:?}: expected WIDTHxHEIGHT, e.g. 120x36"))?;
    let parse = |v: &str| {
        v.parse::<u16>()
            .ok()
            .filter(|n| (20..=500).contains(n))
            .ok_or_else(|| format!("{s:?}: sizes are 20 to 500"))
    };
    Ok((parse(w)?, parse(h)?))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Generate {
            url,
            rate,
            seconds,
            events,
            seed,
            customers,
        } => {
            check_rate(rate)?;
            let source = sluice_postgres::SourceConfig::parse(&url).context("--url")?;
            let client = sluice_postgres::connect(&source)
                .await
                .map_err(sluice_demo::Error::Connect)?;
            let stop = CancellationToken::new();
            tokio::spawn({
                let stop = stop.clone();
                async move {
                    if tokio::signal::ctrl_c().await.is_ok() {
                        stop.cancel();
                    }
                }
            });
            let options = generator::Options {
                rate,
                duration: seconds.map(Duration::from_secs),
                max_events: events,
                seed,
                customers: customers.unwrap_or_else(|| generator::customers_for(rate)),
            };
            let report = generator::run(&client, &options, &stop, None).await?;
            print_traffic(&report);
            Ok(ExitCode::SUCCESS)
        }
        Command::Dashboard {
            config,
            rate,
            seed,
            seconds,
            plain,
            frame,
            source_url,
        } => {
            check_rate(rate)?;
            let interactive = !plain && std::io::stdout().is_terminal();
            let seconds = if interactive {
                seconds
            } else {
                Some(seconds.unwrap_or(DEFAULT_PLAIN_SECONDS))
            };
            anyhow::ensure!(
                config.is_file(),
                "cannot read configuration file \"{}\"; write one with `sluice init`",
                config.display()
            );
            let log = log_to_file(&config)?;
            let summary = dashboard::run(dashboard::Options {
                config,
                rate,
                seed,
                duration: seconds.map(Duration::from_secs),
                source_url,
                interactive,
                frame,
            })
            .await?;
            print_summary(&summary, &log);
            let matches = summary.reconciled.as_ref().is_none_or(|r| r.matches());
            Ok(if matches {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn check_rate(rate: f64) -> anyhow::Result<()> {
    anyhow::ensure!(
        rate.is_finite() && rate > 0.0,
        "--rate: must be a positive number of transactions per second"
    );
    Ok(())
}

/// The pipeline's logs go to `dashboard.log` next to the configuration, not over the screen.
fn log_to_file(config: &Path) -> anyhow::Result<PathBuf> {
    let dir = config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let path = dir.join("dashboard.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open the log file \"{}\"", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .init();
    Ok(path)
}

fn print_traffic(report: &Report) {
    let s = &report.stats;
    if report.customers_added > 0 {
        println!(
            "added {} customers before the traffic, for its rate",
            thousands(report.customers_added as i64)
        );
    }
    println!(
        "sent {} transactions in {} ({:.1}/s): {} orders ({} late, {} lines, {} units), {} payment attempts ({} declined), {} cancellations, {} refunds, {} receipts ({} units), {} movements, {} new customers, {} price changes; fraud: {} card-testing runs, {} country hops; {} lines short of stock",
        thousands(s.transactions as i64),
        span(report.elapsed.as_secs_f64()),
        report.rate(),
        thousands(s.orders as i64),
        thousands(s.late_orders as i64),
        thousands(s.order_lines as i64),
        thousands(s.units_sold as i64),
        thousands(s.payments as i64),
        thousands(s.declined as i64),
        thousands(s.cancellations as i64),
        thousands(s.refunds as i64),
        thousands(s.receipts as i64),
        thousands(s.units_received as i64),
        thousands(s.movements as i64),
        thousands(s.signups as i64),
        thousands(s.reprices as i64),
        s.card_tests,
        s.country_hops,
        thousands(s.short_lines as i64),
    );
}

fn print_summary(summary: &Summary, log: &Path) {
    if let Some(frame) = &summary.frame {
        print!("{frame}");
    }
    println!();
    print_traffic(&summary.traffic);
    let l = &summary.loaded;
    println!(
        "loaded {} changes ({} rows) in {} batches; last batch {} after its source commit",
        thousands(l.changes as i64),
        thousands(l.rows as i64),
        thousands(l.batches as i64),
        l.latency_us()
            .map_or("-".to_owned(), |us| span(us as f64 / 1e6)),
    );
    if let (Some(first), Some(last)) = (&summary.first, &summary.last) {
        println!(
            "warehouse: {} orders and {} movements at the first read, {} and {} at the last; {} below reorder level; fraud alerts: {} cards tested, {} cards in two countries, {} refund-heavy customers",
            thousands(first.orders),
            thousands(first.movements),
            thousands(last.orders),
            thousands(last.movements),
            thousands(last.low_stock),
            last.velocity_cards,
            last.country_cards,
            last.refund_customers,
        );
        if let Some(w) = last.hopping.last() {
            println!(
                "revenue in the current 15-minute window: {} from {} orders",
                money(w.revenue),
                thousands(w.orders)
            );
        }
    }
    if let Some(r) = &summary.reconciled {
        match r.caught_up_in {
            Some(t) => println!(
                "the warehouse caught up with the source {} after the traffic stopped",
                span(t.as_secs_f64())
            ),
            None => println!("the warehouse did not catch up with the source within a minute"),
        }
        if r.source == r.warehouse {
            println!(
                "source and warehouse agree: {} orders ({} cancelled, {} refunded), {} lines, {} movements ({} units), {} payments, {} customers",
                thousands(r.source.orders),
                thousands(r.source.cancelled),
                thousands(r.source.refunded),
                thousands(r.source.order_lines),
                thousands(r.source.movements),
                thousands(r.source.units_moved),
                thousands(r.source.payments),
                thousands(r.source.customers),
            );
        } else {
            println!("source:    {:?}\nwarehouse: {:?}", r.source, r.warehouse);
        }
        if r.stock_differences.is_empty() {
            println!(
                "stock on hand equal at the source and in the warehouse for all {} product × warehouse pairs",
                r.stock_rows
            );
        } else {
            println!(
                "stock on hand differs for {} of {} pairs:",
                r.stock_differences.len(),
                r.stock_rows
            );
            for d in r.stock_differences.iter().take(10) {
                println!("  {d}");
            }
        }
    }
    println!(
        "the warehouse is {} (the pipeline's log: {})",
        summary.warehouse.display(),
        log.display()
    );
}
