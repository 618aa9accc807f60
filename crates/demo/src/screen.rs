//! The dashboard's screen: six panels drawn from one [`Dashboard`] state, with ratatui. Pure
//! drawing; [`render_text`] draws into an off-screen buffer and returns it as text (a captured
//! frame, and what the tests read).
//!
//! Times are shown in UTC, as the views window them.

use std::collections::VecDeque;
use std::time::Duration;

use ratatui::backend::TestBackend;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Sparkline, Table};
use ratatui::{Frame, Terminal};

use crate::generator::Report;
use crate::meter::Reading;
use crate::warehouse::{Alert, Kpis, MINUTES};

/// How many seconds the throughput sparklines keep.
pub const HISTORY: usize = 120;

/// Everything the screen shows.
#[derive(Debug, Clone, Default)]
pub struct Dashboard {
    /// Where the traffic goes, e.g. `127.0.0.1:5432/shop`.
    pub source: String,
    /// The DuckDB file.
    pub warehouse: String,
    pub elapsed: Duration,
    /// Shows the keys that stop it.
    pub interactive: bool,
    pub target_rate: f64,
    pub traffic: Report,
    /// Transactions written per second, oldest first.
    pub traffic_per_second: VecDeque<u64>,
    pub loaded: Reading,
    /// Changes applied per second, oldest first.
    pub loaded_per_second: VecDeque<u64>,
    pub kpis: Option<Kpis>,
    pub status: String,
}

impl Dashboard {
    /// Adds a second's figures to a history, keeping the last [`HISTORY`].
    pub fn push(history: &mut VecDeque<u64>, value: u64) {
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(value);
    }
}

const TITLE: Style = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
const DIM: Style = Style::new().fg(Color::DarkGray);
const ALERT: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
const LOW: Style = Style::new().fg(Color::Red);
const GOOD: Style = Style::new().fg(Color::Green);

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, d: &Dashboard) {
    let [title, top, middle, bottom, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(9),
        Constraint::Min(12),
        Constraint::Length(11),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let halves = |area| {
        Layout::horizontal([Constraint::Percentage(58), Constraint::Percentage(42)])
            .areas::<2>(area)
    };
    let [per_minute, windows] = halves(top);
    let [stock, fraud] = halves(middle);
    let [freshness, throughput] =
        Layout::horizontal([Constraint::Percentage(42), Constraint::Percentage(58)]).areas(bottom);

    let keys = if d.interactive { " · q quits" } else { "" };
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(" Sluice retail demo ", TITLE),
            Span::raw(format!(
                " {} → sluice → {} · {}{keys}",
                d.source,
                d.warehouse,
                span(d.elapsed.as_secs_f64())
            )),
        ])),
        title,
    );
    match &d.kpis {
        Some(k) => {
            draw_per_minute(frame, per_minute, k);
            draw_windows(frame, windows, k);
            draw_stock(frame, stock, k);
            draw_fraud(frame, fraud, k);
            draw_freshness(frame, freshness, k);
        }
        None => {
            for (area, name) in [
                (per_minute, "Orders per minute"),
                (windows, "Revenue by window"),
                (stock, "Stock on hand"),
                (fraud, "Fraud alerts"),
                (freshness, "Freshness per table"),
            ] {
                frame.render_widget(
                    Paragraph::new(Span::styled("waiting for the first load…", DIM))
                        .block(panel(name)),
                    area,
                );
            }
        }
    }
    draw_throughput(frame, throughput, d);
    frame.render_widget(
        Paragraph::new(Span::styled(format!(" {}", d.status), DIM)),
        status,
    );
}

fn panel(title: &str) -> Block<'_> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(DIM)
        .title(Span::styled(format!(" {title} "), TITLE))
}

fn draw_per_minute(frame: &mut Frame, area: Rect, k: &Kpis) {
    let block = panel("Orders per minute · last 30 min · orders_per_minute");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [chart, legend] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(2)]).areas(inner);
    // Each minute as wide a bar as fits.
    let width = usize::from(chart.width / MINUTES as u16).max(1);
    let data: Vec<u64> = k
        .per_minute
        .iter()
        .flat_map(|w| std::iter::repeat_n(w.orders.max(0) as u64, width))
        .collect();
    frame.render_widget(
        Sparkline::default()
            .data(&data)
            .style(Style::new().fg(Color::Yellow)),
        chart,
    );
    let (first, last) = (k.per_minute.first(), k.per_minute.last());
    let current = last.map_or(0, |w| w.orders);
    let revenue = last.map_or(0.0, |w| w.revenue);
    let previous = k.per_minute.iter().rev().nth(1).map_or(0, |w| w.orders);
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(vec![
                Span::styled(first.map_or(String::new(), |w| hm(w.start_ms)), DIM),
                Span::styled(
                    format!(
                        "{:>width$}",
                        last.map_or(String::new(), |w| hm(w.start_ms)),
                        width = usize::from(chart.width).saturating_sub(5)
                    ),
                    DIM,
                ),
            ]),
            Line::from(vec![
                Span::raw("this minute "),
                Span::styled(thousands(current), GOOD),
                Span::raw(format!(
                    " orders ({}) · minute before {}",
                    money(revenue),
                    thousands(previous),
                )),
            ]),
        ]),
        legend,
    );
}

fn draw_windows(frame: &mut Frame, area: Rect, k: &Kpis) {
    let mut rows: Vec<Row> = k
        .hopping
        .iter()
        .map(|w| {
            Row::new(vec![
                Cell::from("15 min"),
                Cell::from(format!("{}–{}", hm(w.start_ms), hm(w.end_ms))),
                Cell::from(thousands(w.orders)),
                Cell::from(money(w.revenue)),
            ])
        })
        .collect();
    rows.extend(k.per_minute.iter().rev().take(3).map(|w| {
        Row::new(vec![
            Cell::from("1 min"),
            Cell::from(format!("{}–{}", hm(w.start_ms), hm(w.end_ms))),
            Cell::from(thousands(w.orders)),
            Cell::from(money(w.revenue)),
        ])
    }));
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(6),
                Constraint::Length(11),
                Constraint::Length(7),
                Constraint::Min(10),
            ],
        )
        .header(Row::new(vec!["window", "UTC", "orders", "revenue"]).style(DIM))
        .block(panel("Revenue by window · revenue_15m_hopping")),
        area,
    );
}

fn draw_stock(frame: &mut Frame, area: Rect, k: &Kpis) {
    let mut header = vec!["product".to_owned(), "sold".to_owned()];
    header.extend(k.warehouses.iter().map(|(_, name)| name.clone()));
    let mut widths = vec![Constraint::Min(14), Constraint::Length(6)];
    widths.extend(k.warehouses.iter().map(|_| Constraint::Length(12)));
    let rows: Vec<Row> = k
        .top
        .iter()
        .map(|p| {
            let mut cells = vec![Cell::from(p.name.clone()), Cell::from(thousands(p.sold))];
            cells.extend(k.warehouses.iter().map(|(w, _)| {
                match p.on_hand.iter().find(|(id, _)| id == w) {
                    Some((_, n)) if *n < p.reorder_at => {
                        Cell::from(format!("{n:>5} low")).style(LOW)
                    }
                    Some((_, n)) => Cell::from(format!("{n:>5}")),
                    None => Cell::from(""),
                }
            }));
            Row::new(cells)
        })
        .collect();
    let block = panel("Stock on hand · top sellers · stock_on_hand");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [table, footer] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
    frame.render_widget(
        Table::new(rows, widths).header(Row::new(header).style(DIM)),
        table,
    );
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(
                thousands(k.low_stock),
                if k.low_stock > 0 { LOW } else { GOOD },
            ),
            Span::raw(" product × warehouse pairs below their reorder level (low_stock)"),
        ])),
        footer,
    );
}

fn draw_fraud(frame: &mut Frame, area: Rect, k: &Kpis) {
    let mut lines = vec![Line::from(vec![
        Span::raw("card testing "),
        Span::styled(thousands(k.velocity_cards), ALERT),
        Span::raw(" · two countries "),
        Span::styled(thousands(k.country_cards), ALERT),
        Span::raw(" · refunds "),
        Span::styled(thousands(k.refund_customers), ALERT),
    ])];
    let mut timed: Vec<(i64, Line)> = Vec::new();
    let mut refunds: Vec<Line> = Vec::new();
    for alert in &k.alerts {
        match alert {
            Alert::Velocity {
                card,
                attempts,
                at_ms,
            } => timed.push((
                *at_ms,
                Line::from(vec![
                    Span::styled(clock(*at_ms), DIM),
                    Span::raw(format!(" card {card} ")),
                    Span::styled(format!("{attempts} attempts in 5 min"), ALERT),
                ]),
            )),
            Alert::Countries {
                card,
                first,
                second,
                first_ms,
                second_ms,
            } => timed.push((
                *second_ms,
                Line::from(vec![
                    Span::styled(clock(*second_ms), DIM),
                    Span::raw(format!(" card {card} ")),
                    Span::styled(format!("{first} then {second}"), ALERT),
                    Span::raw(format!(
                        " {} apart",
                        span((second_ms - first_ms) as f64 / 1000.0)
                    )),
                ]),
            )),
            Alert::Refunds {
                customer_id,
                share,
                refunded,
            } => refunds.push(Line::from(vec![
                Span::raw(format!("         customer {customer_id} refunded ")),
                Span::styled(format!("{:.0}%", share * 100.0), ALERT),
                Span::raw(format!(" ({})", money(*refunded))),
            ])),
        }
    }
    timed.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    lines.extend(timed.into_iter().map(|(_, l)| l).take(6));
    lines.extend(refunds.into_iter().take(3));
    frame.render_widget(
        Paragraph::new(lines).block(panel("Fraud alerts · fraud_* views")),
        area,
    );
}

fn draw_freshness(frame: &mut Frame, area: Rect, k: &Kpis) {
    let rows: Vec<Row> = k
        .freshness
        .iter()
        .map(|f| {
            // A table whose last commit is older than the pipeline's position is idle at the
            // source, not behind.
            let idle = match (f.last_commit_ms, k.applied_commit_ms) {
                (Some(last), Some(applied)) => last + 1_000 < applied,
                _ => false,
            };
            let lag = f.lag_s.map_or("-".to_owned(), span);
            Row::new(vec![
                Cell::from(f.table.clone()),
                Cell::from(f.last_commit_ms.map_or("-".to_owned(), clock)),
                if idle {
                    Cell::from(format!("{lag} idle")).style(DIM)
                } else {
                    Cell::from(lag).style(GOOD)
                },
            ])
        })
        .collect();
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(19),
                Constraint::Length(11),
                Constraint::Min(8),
            ],
        )
        .header(Row::new(vec!["table", "last commit", "lag"]).style(DIM))
        .block(panel("Freshness · pipeline_freshness")),
        area,
    );
}

fn draw_throughput(frame: &mut Frame, area: Rect, d: &Dashboard) {
    let block = panel("Pipeline throughput");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [chart, text] = Layout::vertical([Constraint::Min(1), Constraint::Length(5)]).areas(inner);
    let width = usize::from(chart.width);
    let data: Vec<u64> = d
        .loaded_per_second
        .iter()
        .skip(d.loaded_per_second.len().saturating_sub(width))
        .copied()
        .collect();
    frame.render_widget(
        Sparkline::default()
            .data(&data)
            .max(scale(&data))
            .style(Style::new().fg(Color::Green)),
        chart,
    );
    let last = |h: &VecDeque<u64>| h.back().copied().unwrap_or(0);
    let t = &d.traffic.stats;
    let l = &d.loaded;
    let latency = l
        .latency_us()
        .map_or("-".to_owned(), |us| span(us as f64 / 1e6));
    let lines = vec![
        Line::from(vec![
            Span::styled("source    ", DIM),
            Span::styled(
                format!("{} tx/s", thousands(last(&d.traffic_per_second) as i64)),
                GOOD,
            ),
            Span::raw(format!(
                " (target {}) · {} tx · {} orders · {} late",
                d.target_rate,
                thousands(t.transactions as i64),
                thousands(t.orders as i64),
                thousands(t.late_orders as i64),
            )),
        ]),
        Line::from(vec![
            Span::styled("warehouse ", DIM),
            Span::styled(
                format!("{} changes/s", thousands(last(&d.loaded_per_second) as i64)),
                GOOD,
            ),
            Span::raw(format!(
                " · {} changes · {} batches · {}",
                thousands(l.changes as i64),
                thousands(l.batches as i64),
                bytes(l.bytes)
            )),
        ]),
        Line::from(vec![
            Span::styled("latency   ", DIM),
            Span::styled(latency, GOOD),
            Span::raw(" from source commit to warehouse commit"),
        ]),
        Line::from(vec![
            Span::styled("stock     ", DIM),
            Span::raw(format!(
                "{} sold · {} restocked · {} returned",
                thousands(t.units_sold as i64),
                thousands(t.units_received as i64),
                thousands(t.units_returned as i64)
            )),
        ]),
        Line::from(vec![
            Span::styled("fraud     ", DIM),
            Span::raw(format!(
                "{} card tests · {} country hops · {} refunds · {} cancels",
                t.card_tests, t.country_hops, t.refunds, t.cancellations
            )),
        ]),
    ];
    frame.render_widget(Paragraph::new(lines), text);
}

/// The top of a sparkline's scale: twice the 90th percentile, so that the snapshot's burst
/// does not flatten the steady stream (the burst's bars are cut at full height).
fn scale(data: &[u64]) -> u64 {
    let mut sorted = data.to_vec();
    sorted.sort_unstable();
    let p90 = sorted.get(sorted.len() * 9 / 10).copied().unwrap_or(0);
    p90.saturating_mul(2).max(1)
}

/// Draws the screen into an off-screen buffer of `width` × `height` and returns its text.
pub fn render_text(d: &Dashboard, width: u16, height: u16) -> String {
    let mut terminal =
        Terminal::new(TestBackend::new(width, height)).expect("the test backend never fails");
    terminal
        .draw(|f| draw(f, d))
        .expect("the test backend never fails");
    let buffer = terminal.backend().buffer();
    let mut text = String::new();
    for y in 0..height {
        let mut line = String::new();
        for x in 0..width {
            line.push_str(buffer[(x, y)].symbol());
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// `12,345`.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// `12,345.67`.
pub fn money(amount: f64) -> String {
    let cents = (amount * 100.0).round() as i64;
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!(
        "{sign}{}.{:02}",
        thousands((cents / 100) as i64),
        cents % 100
    )
}

/// `0.42 s`, `12 s`, `3m05s`, `2h03m`.
pub fn span(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "-".to_owned();
    }
    let s = seconds.max(0.0);
    if s < 10.0 {
        format!("{s:.2} s")
    } else if s < 60.0 {
        format!("{s:.0} s")
    } else if s < 3600.0 {
        let s = s as u64;
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        let m = s as u64 / 60;
        format!("{}h{:02}m", m / 60, m % 60)
    }
}

/// `12.3 MiB`.
fn bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", n / (1024.0 * 1024.0))
    } else {
        format!("{:.0} KiB", n / 1024.0)
    }
}

/// `HH:MM:SS` of a UTC time in epoch milliseconds.
pub fn clock(ms: i64) -> String {
    let s = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

/// `HH:MM` of a UTC time in epoch milliseconds.
fn hm(ms: i64) -> String {
    let s = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}", s / 3600, s % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::warehouse::{Freshness, TopProduct, Window};

    #[test]
    fn numbers_read_like_numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(-1_234_567), "-1,234,567");
        assert_eq!(money(12345.675), "12,345.68");
        assert_eq!(money(-0.5), "-0.50");
        assert_eq!(span(0.4213), "0.42 s");
        assert_eq!(span(42.0), "42 s");
        assert_eq!(span(185.0), "3m05s");
        assert_eq!(span(7380.0), "2h03m");
        assert_eq!(clock(1_700_000_000_000), "22:13:20");
        assert_eq!(hm(1_700_000_000_000), "22:13");
    }

    fn kpis() -> Kpis {
        let minute = 28_333_334 * 60_000;
        Kpis {
            now_ms: minute + 30_000,
            warehouses: vec![(1, "Berlin DC".into()), (2, "Paris store".into())],
            top: vec![TopProduct {
                id: 7,
                name: "Product 7".into(),
                reorder_at: 17,
                sold: 1234,
                on_hand: vec![(1, 12), (2, 88)],
            }],
            per_minute: (0..MINUTES as i64)
                .rev()
                .map(|b| Window {
                    start_ms: minute - b * 60_000,
                    end_ms: minute - b * 60_000 + 60_000,
                    orders: if b == 0 { 4321 } else { 1 },
                    revenue: 98765.4,
                })
                .collect(),
            hopping: vec![],
            alerts: vec![
                Alert::Velocity {
                    card: "3F2A91C0".into(),
                    attempts: 7,
                    at_ms: minute,
                },
                Alert::Refunds {
                    customer_id: 42,
                    share: 0.64,
                    refunded: 1234.0,
                },
            ],
            velocity_cards: 1,
            country_cards: 0,
            refund_customers: 1,
            freshness: vec![
                Freshness {
                    table: "orders".into(),
                    last_commit_ms: Some(minute),
                    lag_s: Some(0.5),
                },
                Freshness {
                    table: "warehouses".into(),
                    last_commit_ms: Some(minute - 600_000),
                    lag_s: Some(600.5),
                },
            ],
            applied_commit_ms: Some(minute),
            orders: 5555,
            movements: 9,
            low_stock: 3,
        }
    }

    #[test]
    fn a_frame_shows_every_panel_with_its_figures() {
        let mut d = Dashboard {
            source: "127.0.0.1:5432/shop".into(),
            warehouse: "sluice-data/warehouse.duckdb".into(),
            interactive: true,
            target_rate: 100.0,
            kpis: Some(kpis()),
            status: "streaming".into(),
            ..Dashboard::default()
        };
        Dashboard::push(&mut d.loaded_per_second, 1500);
        Dashboard::push(&mut d.traffic_per_second, 99);
        let text = render_text(&d, 120, 36);
        for expected in [
            "q quits",
            "Orders per minute",
            "this minute 4,321 orders (98,765.40) · minute before 1",
            "Product 7",
            "1,234",
            "12 low",
            "88",
            "3 product × warehouse pairs below their reorder level",
            "card 3F2A91C0 7 attempts in 5 min",
            "customer 42 refunded 64% (1,234.00)",
            "0.50 s",
            "10m00s idle",
            "99 tx/s",
            "1,500 changes/s",
            "streaming",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from\n{text}");
        }
    }

    #[test]
    fn before_the_first_load_every_panel_waits() {
        let text = render_text(&Dashboard::default(), 100, 36);
        assert_eq!(text.matches("waiting for the first load").count(), 5);
    }

    #[test]
    fn a_burst_does_not_flatten_the_scale() {
        let mut data = vec![600; 50];
        data[0] = 77_000;
        assert_eq!(scale(&data), 1_200);
        assert_eq!(scale(&[]), 1);
    }

    #[test]
    fn history_keeps_the_last_seconds() {
        let mut h = VecDeque::new();
        for i in 0..(HISTORY as u64 + 5) {
            Dashboard::push(&mut h, i);
        }
        assert_eq!(h.len(), HISTORY);
        assert_eq!(h.front(), Some(&5));
    }
}
