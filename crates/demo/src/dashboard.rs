//! `sluice-demo dashboard`: the pipeline, the traffic and the screen in one process.
//!
//! DuckDB locks its file to one process, so the dashboard runs `sluice sync` itself (with the
//! destination wrapped in a meter) and reads the warehouse through a second connection of
//! the same database, which sees each committed batch. Once a second it reads the KPI views
//! (installed as soon as the retail tables are loaded), the generator's counts and the meter,
//! and draws the screen, or without a terminal prints one line of figures.
//!
//! Stopping: `q`, `Esc` or Ctrl-C (or SIGINT/SIGTERM without a terminal) stops the traffic,
//! then cancels the sync, which finishes the batch it is applying and exits; the warehouse
//! file stays. A run of fixed length (`--seconds`, or without a terminal) also waits for the
//! warehouse to catch up with the source once the traffic stops, and compares the two.

use std::io::{Stdout, stdout};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use ratatui::Terminal;
use ratatui_crossterm::CrosstermBackend;
use ratatui_crossterm::crossterm::event::{self, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui_crossterm::crossterm::{cursor, execute, terminal};
use sluice::registry::TargetKind;
use sluice::settings::Settings;
use sluice_postgres::SourceConfig;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::generator::{self, Report};
use crate::meter::{Meter, Metered, Reading};
use crate::screen::{self, Dashboard, span, thousands};
use crate::shop;
use crate::warehouse::{Kpis, Tally, Warehouse};

/// How often the screen refreshes.
const REFRESH: Duration = Duration::from_secs(1);
/// How long a fixed-length run waits for the warehouse to catch up after the traffic stops.
const CATCH_UP: Duration = Duration::from_secs(60);
/// How often it checks meanwhile.
const CATCH_UP_POLL: Duration = Duration::from_millis(200);

/// How to run the dashboard.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: PathBuf,
    /// Source transactions per second.
    pub rate: f64,
    pub seed: u64,
    /// Run this long, then catch up and compare; `None`: until stopped.
    pub duration: Option<Duration>,
    /// Where the traffic goes; the pipeline's `[source]` when `None`.
    pub source_url: Option<String>,
    /// Draw on the terminal; otherwise print a line of figures every second.
    pub interactive: bool,
    /// Render the last screen as text of this width and height.
    pub frame: Option<(u16, u16)>,
}

/// What a run did.
#[derive(Debug)]
pub struct Summary {
    pub warehouse: PathBuf,
    pub ran_for: Duration,
    pub traffic: Report,
    pub loaded: Reading,
    /// The first read of the KPIs with orders loaded, and the last read.
    pub first: Option<Kpis>,
    pub last: Option<Kpis>,
    /// After a fixed-length run: the warehouse against the source.
    pub reconciled: Option<Reconciled>,
    pub frame: Option<String>,
    pub stopped_early: bool,
}

/// The warehouse compared with the source after the traffic stopped.
#[derive(Debug)]
pub struct Reconciled {
    /// How long the warehouse took to show the source's last transaction (`None`: not within
    /// [`CATCH_UP`]).
    pub caught_up_in: Option<Duration>,
    pub source: Tally,
    pub warehouse: Tally,
    /// Product and warehouse pairs of `stock_on_hand`, and those whose on-hand differs from
    /// the same computation at the source (or exist on one side only).
    pub stock_rows: usize,
    pub stock_differences: Vec<String>,
}

impl Reconciled {
    pub fn matches(&self) -> bool {
        self.caught_up_in.is_some()
            && self.source == self.warehouse
            && self.stock_differences.is_empty()
    }
}

/// Runs the dashboard until stopped or for `options.duration`.
pub async fn run(options: Options) -> anyhow::Result<Summary> {
    let settings = Settings::load(&options.config)?;
    let target = match &settings.target {
        TargetKind::DuckDb(config) => config.clone(),
        #[allow(unreachable_patterns)]
        _ => anyhow::bail!(
            "the dashboard reads a DuckDB warehouse; \"{}\" has another [target] kind",
            options.config.display()
        ),
    };
    let source = match &options.source_url {
        Some(url) => SourceConfig::parse(url).context("--source-url")?,
        None => settings.source.clone(),
    };

    let mut destination = sluice_duckdb::destination(target.clone())?;
    let reader = destination
        .session_mut()
        .reader()
        .await
        .context("opening the warehouse")?;
    let mut warehouse = Some(Warehouse::new(reader, &target.schema));
    let meter = Arc::new(Meter::default());
    let sync_stop = CancellationToken::new();
    let sync = tokio::spawn(sluice::sync::run_with_destination(
        settings,
        Metered::new(destination, meter.clone()),
        false,
        sync_stop.clone(),
    ));

    let client = sluice_postgres::connect(&source)
        .await
        .map_err(crate::Error::Connect)?;
    let traffic_stop = CancellationToken::new();
    let (progress, traffic_progress) = watch::channel(Report::default());
    let traffic_options = generator::Options {
        rate: options.rate,
        duration: None,
        max_events: None,
        seed: options.seed,
        customers: generator::customers_for(options.rate),
    };
    let traffic = tokio::spawn({
        let stop = traffic_stop.clone();
        async move { generator::run(&client, &traffic_options, &stop, Some(&progress)).await }
    });

    let (quit_tx, mut quit) = mpsc::unbounded_channel();
    let keys_done = Arc::new(AtomicBool::new(false));
    let mut tty = if options.interactive {
        let tty = Tty::enter().context("setting up the terminal")?;
        spawn_keys(quit_tx.clone(), keys_done.clone());
        Some(tty)
    } else {
        None
    };
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;

    let mut screen = Dashboard {
        source: format!("{}:{}/{}", source.host, source.port, source.dbname),
        warehouse: target.path.display().to_string(),
        interactive: options.interactive,
        target_rate: options.rate,
        status: "starting the pipeline".to_owned(),
        ..Dashboard::default()
    };
    let mut summary = Summary {
        warehouse: target.path.clone(),
        ran_for: Duration::ZERO,
        traffic: Report::default(),
        loaded: Reading::default(),
        first: None,
        last: None,
        reconciled: None,
        frame: None,
        stopped_early: false,
    };
    let start = Instant::now();
    let mut ticker = tokio::time::interval(REFRESH);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failed: Option<&str> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            Some(()) = quit.recv() => { summary.stopped_early = true; break; }
            _ = tokio::signal::ctrl_c() => { summary.stopped_early = true; break; }
            _ = sigterm.recv() => { summary.stopped_early = true; break; }
        }
        if sync.is_finished() {
            failed = Some("the pipeline stopped");
            break;
        }
        if traffic.is_finished() {
            failed = Some("the traffic stopped");
            break;
        }
        screen.elapsed = start.elapsed();
        refresh(
            &mut screen,
            &mut summary,
            &mut warehouse,
            &meter,
            &traffic_progress,
        )
        .await;
        show(&mut tty, &screen)?;
        if options.duration.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
    }
    summary.ran_for = start.elapsed();

    screen.status = "stopping the traffic".to_owned();
    show(&mut tty, &screen)?;
    traffic_stop.cancel();
    let traffic_result = traffic.await.context("the traffic task")?;
    summary.traffic = match &traffic_result {
        Ok(report) => report.clone(),
        Err(_) => traffic_progress.borrow().clone(),
    };
    if !summary.stopped_early && failed.is_none() {
        screen.status =
            "the traffic stopped; waiting for the warehouse to catch up with the source".to_owned();
        show(&mut tty, &screen)?;
        if tty.is_none() {
            println!("{}", screen.status);
        }
        summary.reconciled = Some(reconcile(&source, &mut warehouse).await?);
    }

    screen.status = "stopping the pipeline after its current batch".to_owned();
    show(&mut tty, &screen)?;
    sync_stop.cancel();
    let sync_result = sync.await.context("the pipeline task")?;
    screen.elapsed = start.elapsed();
    refresh(
        &mut screen,
        &mut summary,
        &mut warehouse,
        &meter,
        &traffic_progress,
    )
    .await;
    screen.status = match (&summary.reconciled, failed) {
        (_, Some(why)) => why.to_owned(),
        (Some(r), None) if r.matches() => "stopped; the warehouse matches the source".to_owned(),
        (Some(_), None) => "stopped; the warehouse does not match the source".to_owned(),
        (None, None) => "stopped".to_owned(),
    };
    show(&mut tty, &screen)?;
    summary.frame = options.frame.map(|(w, h)| {
        let mut frame = screen.clone();
        frame.interactive = true;
        screen::render_text(&frame, w, h)
    });
    keys_done.store(true, Ordering::Relaxed);
    drop(tty);

    sync_result.map_err(|failure| anyhow!("{failure}"))?;
    traffic_result.context("the traffic generator failed")?;
    if let Some(why) = failed {
        anyhow::bail!("{why} unexpectedly");
    }
    Ok(summary)
}

/// Reads the traffic's counts, the meter and the KPIs into the screen.
async fn refresh(
    screen: &mut Dashboard,
    summary: &mut Summary,
    warehouse: &mut Option<Warehouse>,
    meter: &Meter,
    traffic: &watch::Receiver<Report>,
) {
    let report = traffic.borrow().clone();
    let sent = report
        .stats
        .transactions
        .saturating_sub(screen.traffic.stats.transactions);
    Dashboard::push(&mut screen.traffic_per_second, sent);
    screen.traffic = report;
    let loaded = meter.read();
    Dashboard::push(
        &mut screen.loaded_per_second,
        loaded.changes.saturating_sub(screen.loaded.changes),
    );
    screen.loaded = loaded;
    summary.loaded = loaded;
    match with_warehouse(warehouse, Warehouse::read).await {
        Ok(Some(kpis)) => {
            if summary.first.is_none() && kpis.orders > 0 {
                summary.first = Some(kpis.clone());
            }
            summary.last = Some(kpis.clone());
            screen.kpis = Some(kpis);
            screen.status =
                "streaming; every panel is a query on the warehouse, once a second".to_owned();
        }
        Ok(None) => screen.status = "loading the snapshot".to_owned(),
        Err(e) => screen.status = format!("reading the warehouse: {e:#}"),
    }
}

/// Draws the screen on the terminal, or prints a line of figures.
fn show(tty: &mut Option<Tty>, screen: &Dashboard) -> anyhow::Result<()> {
    match tty {
        Some(tty) => {
            tty.terminal
                .draw(|f| screen::draw(f, screen))
                .context("drawing on the terminal")?;
        }
        None if screen.status.starts_with("streaming") || screen.status.starts_with("loading") => {
            println!("{}", progress_line(screen));
        }
        None => {}
    }
    Ok(())
}

/// One line of figures for a run without a terminal.
pub fn progress_line(d: &Dashboard) -> String {
    let t = &d.traffic.stats;
    let rate = d.traffic_per_second.back().copied().unwrap_or(0);
    let loaded = d.loaded_per_second.back().copied().unwrap_or(0);
    let latency = d
        .loaded
        .latency_us()
        .map_or("-".to_owned(), |us| span(us as f64 / 1e6));
    match &d.kpis {
        Some(k) => {
            let minute = k.per_minute.last().map_or(0, |w| w.orders);
            let on_hand: i64 = k
                .top
                .first()
                .map_or(0, |p| p.on_hand.iter().map(|(_, n)| n).sum());
            format!(
                "{:>5}  source {} tx ({rate}/s) · warehouse {} orders, {} this minute, {} movements · top seller on hand {} · loaded {} changes ({loaded}/s), latency {latency} · fraud {}/{}/{}",
                span(d.elapsed.as_secs_f64()),
                thousands(t.transactions as i64),
                thousands(k.orders),
                thousands(minute),
                thousands(k.movements),
                thousands(on_hand),
                thousands(d.loaded.changes as i64),
                k.velocity_cards,
                k.country_cards,
                k.refund_customers,
            )
        }
        None => format!(
            "{:>5}  source {} tx ({rate}/s) · {}",
            span(d.elapsed.as_secs_f64()),
            thousands(t.transactions as i64),
            d.status
        ),
    }
}

/// Waits until the warehouse shows the source's last transaction, then compares stock on hand.
async fn reconcile(
    source: &SourceConfig,
    warehouse: &mut Option<Warehouse>,
) -> anyhow::Result<Reconciled> {
    let client = sluice_postgres::connect(source)
        .await
        .map_err(crate::Error::Connect)?;
    let at_source = shop::tally(&client).await?;
    let started = Instant::now();
    let (caught_up_in, in_warehouse) = loop {
        let read = with_warehouse(warehouse, |w| w.tally()).await;
        match read {
            Ok(t) if t == at_source => break (Some(started.elapsed()), t),
            Ok(t) if started.elapsed() > CATCH_UP => break (None, t),
            Err(e) if started.elapsed() > CATCH_UP => return Err(e),
            _ => tokio::time::sleep(CATCH_UP_POLL).await,
        }
    };
    let source_stock = shop::stock_on_hand(&client).await?;
    let warehouse_stock = with_warehouse(warehouse, |w| w.stock()).await?;
    Ok(Reconciled {
        caught_up_in,
        source: at_source,
        warehouse: in_warehouse,
        stock_rows: source_stock.len(),
        stock_differences: differences(&source_stock, &warehouse_stock),
    })
}

/// Rows that differ between two key-ordered lists of (product, warehouse, on hand).
fn differences(source: &[(i64, i32, i64)], warehouse: &[(i64, i32, i64)]) -> Vec<String> {
    use std::collections::BTreeMap;
    let index = |rows: &[(i64, i32, i64)]| -> BTreeMap<(i64, i32), i64> {
        rows.iter().map(|(p, w, n)| ((*p, *w), *n)).collect()
    };
    let (s, w) = (index(source), index(warehouse));
    let mut keys: Vec<&(i64, i32)> = s.keys().chain(w.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| s.get(k) != w.get(k))
        .map(|(p, wh)| {
            let show = |v: Option<&i64>| v.map_or("missing".to_owned(), i64::to_string);
            format!(
                "product {p} in warehouse {wh}: source {}, warehouse {}",
                show(s.get(&(*p, *wh))),
                show(w.get(&(*p, *wh)))
            )
        })
        .collect()
}

/// Runs `f` with the warehouse connection on a blocking thread.
async fn with_warehouse<T, F>(slot: &mut Option<Warehouse>, f: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce(&mut Warehouse) -> crate::Result<T> + Send + 'static,
{
    let mut warehouse = slot.take().context("the warehouse connection was lost")?;
    let (warehouse, result) = tokio::task::spawn_blocking(move || {
        let result = f(&mut warehouse);
        (warehouse, result)
    })
    .await
    .context("reading the warehouse")?;
    *slot = Some(warehouse);
    Ok(result?)
}

/// The terminal in raw mode on the alternate screen, restored when dropped (and on a panic).
struct Tty {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Tty {
    fn enter() -> std::io::Result<Tty> {
        terminal::enable_raw_mode()?;
        execute!(stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = leave_tty();
            hook(info);
        }));
        Ok(Tty {
            terminal: Terminal::new(CrosstermBackend::new(stdout()))?,
        })
    }
}

fn leave_tty() -> std::io::Result<()> {
    terminal::disable_raw_mode()?;
    execute!(stdout(), terminal::LeaveAlternateScreen, cursor::Show)
}

impl Drop for Tty {
    fn drop(&mut self) {
        let _ = leave_tty();
    }
}

/// Reads keys on a thread of its own until a quitting key or `done`.
fn spawn_keys(quit: mpsc::UnboundedSender<()>, done: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        while !done.load(Ordering::Relaxed) {
            match event::poll(Duration::from_millis(100)) {
                Ok(true) => {
                    if let Ok(event::Event::Key(key)) = event::read()
                        && is_quit(&key)
                    {
                        let _ = quit.send(());
                        return;
                    }
                }
                Ok(false) => {}
                Err(_) => return,
            }
        }
    });
}

/// `q`, `Esc` or Ctrl-C.
fn is_quit(key: &KeyEvent) -> bool {
    key.kind == KeyEventKind::Press
        && (matches!(key.code, KeyCode::Char('q' | 'Q') | KeyCode::Esc)
            || (key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_escape_and_ctrl_c_quit() {
        let key = |code, modifiers| KeyEvent::new(code, modifiers);
        assert!(is_quit(&key(KeyCode::Char('q'), KeyModifiers::NONE)));
        assert!(is_quit(&key(KeyCode::Esc, KeyModifiers::NONE)));
        assert!(is_quit(&key(KeyCode::Char('c'), KeyModifiers::CONTROL)));
        assert!(!is_quit(&key(KeyCode::Char('c'), KeyModifiers::NONE)));
        assert!(!is_quit(&key(KeyCode::Char('x'), KeyModifiers::NONE)));
    }

    #[test]
    fn stock_differences_name_the_pair() {
        let source = [(1, 1, 10), (1, 2, 5), (2, 1, 7)];
        assert!(differences(&source, &source).is_empty());
        let warehouse = [(1, 1, 10), (1, 2, 6)];
        assert_eq!(
            differences(&source, &warehouse),
            vec![
                "product 1 in warehouse 2: source 5, warehouse 6".to_owned(),
                "product 2 in warehouse 1: source 7, warehouse missing".to_owned(),
            ]
        );
    }
}
