//! Metrics and health over HTTP: `/metrics` (Prometheus text format), `/healthz` (the process
//! answers) and `/readyz` (source and target reachable).
//!
//! Stages count through the `metrics` facade; gauges that follow the shared [`Stats`] are set
//! when `/metrics` is scraped. [`METRICS`] is the documented list (the README's table and the
//! dashboards in `infra/` are checked against it by tests).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sluice_core::telemetry::{SnapshotState, Stats, now_micros, table_label};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What a metric measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One documented metric.
#[derive(Debug, Clone, Copy)]
pub struct MetricDoc {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

const fn doc(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> MetricDoc {
    MetricDoc {
        name,
        kind,
        labels,
        help,
    }
}

/// Every metric Sluice exports.
pub const METRICS: &[MetricDoc] = &[
    doc(
        "sluice_changes_captured_total",
        Kind::Counter,
        &["table", "op"],
        "Row changes appended to the change log by capture (streamed changes)",
    ),
    doc(
        "sluice_transactions_captured_total",
        Kind::Counter,
        &[],
        "Source transactions appended to the change log",
    ),
    doc(
        "sluice_captured_bytes_total",
        Kind::Counter,
        &[],
        "Decoded size of the streamed changes appended to the change log, in bytes",
    ),
    doc(
        "sluice_snapshot_rows_total",
        Kind::Counter,
        &["table"],
        "Rows copied by the initial snapshot",
    ),
    doc(
        "sluice_snapshot_estimated_rows",
        Kind::Gauge,
        &["table"],
        "The source's estimate of a table's rows when its snapshot was planned",
    ),
    doc(
        "sluice_snapshot_tables_remaining",
        Kind::Gauge,
        &[],
        "Tables of the running snapshot not yet copied (0 when no snapshot runs)",
    ),
    doc(
        "sluice_changes_applied_total",
        Kind::Counter,
        &["table", "op"],
        "Row changes (snapshot rows included) committed to the target",
    ),
    doc(
        "sluice_batches_applied_total",
        Kind::Counter,
        &[],
        "Micro-batches committed to the target",
    ),
    doc(
        "sluice_batch_changes",
        Kind::Histogram,
        &[],
        "Changes per committed micro-batch",
    ),
    doc(
        "sluice_batch_bytes",
        Kind::Histogram,
        &[],
        "Size of each committed micro-batch, in bytes",
    ),
    doc(
        "sluice_batch_duration_seconds",
        Kind::Histogram,
        &[],
        "Time to apply and commit one micro-batch",
    ),
    doc(
        "sluice_end_to_end_latency_seconds",
        Kind::Histogram,
        &[],
        "Source commit to target commit, per streamed transaction",
    ),
    doc(
        "sluice_replication_lag_bytes",
        Kind::Gauge,
        &[],
        "Source WAL end minus the position acknowledged to the slot",
    ),
    doc(
        "sluice_apply_lag_bytes",
        Kind::Gauge,
        &[],
        "Captured position minus the position committed to the target",
    ),
    doc(
        "sluice_tables_parked",
        Kind::Gauge,
        &[],
        "Tables the loader no longer loads because a definite error wedged them (see sluice status)",
    ),
    doc(
        "sluice_replication_lag_seconds",
        Kind::Gauge,
        &[],
        "0 when everything captured is applied, else now minus the commit time of the last applied transaction",
    ),
    doc(
        "sluice_freshness_seconds",
        Kind::Gauge,
        &[],
        "Now minus the source commit time of the last transaction applied to the target",
    ),
    doc(
        "sluice_retained_wal_bytes",
        Kind::Gauge,
        &[],
        "WAL the replication slot keeps on the source (current position minus restart_lsn)",
    ),
    doc(
        "sluice_slot_safe_wal_size_bytes",
        Kind::Gauge,
        &[],
        "WAL the source may still write before the slot is invalidated (absent when unlimited)",
    ),
    doc(
        "sluice_wal_warn_retained_bytes",
        Kind::Gauge,
        &[],
        "The configured retained-WAL warning threshold ([wal] warn_retained)",
    ),
    doc(
        "sluice_change_log_depth_records",
        Kind::Gauge,
        &[],
        "Change-log records appended but not yet applied to the target",
    ),
    doc(
        "sluice_change_log_bytes",
        Kind::Gauge,
        &[],
        "Bytes of change-log segments on disk (what the loader has not yet released)",
    ),
    doc(
        "sluice_errors_total",
        Kind::Counter,
        &["stage", "class"],
        "Failed attempts of a stage (source, target, change log) by error class",
    ),
    doc(
        "sluice_source_up",
        Kind::Gauge,
        &[],
        "1 while capture is connected to the source",
    ),
    doc(
        "sluice_target_up",
        Kind::Gauge,
        &[],
        "1 while the target answered the loader's last request",
    ),
];

/// Stage labels of `sluice_errors_total`.
pub const STAGES: &[&str] = &["source", "target", "change log"];
/// Class labels of `sluice_errors_total`.
pub const CLASSES: &[&str] = &["transient", "definite", "fatal"];

/// Installs the Prometheus recorder for this process and registers every metric, so a scrape
/// shows them all from the start. `None` when a recorder is already installed.
pub fn install() -> Option<PrometheusHandle> {
    let seconds = [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    ];
    let counts = [1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0];
    let bytes = [
        1024.0,
        16.0 * 1024.0,
        256.0 * 1024.0,
        1024.0 * 1024.0,
        8.0 * 1024.0 * 1024.0,
        64.0 * 1024.0 * 1024.0,
        256.0 * 1024.0 * 1024.0,
    ];
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &seconds)
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full("sluice_batch_changes".to_owned()), &counts)
        })
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full("sluice_batch_bytes".to_owned()), &bytes)
        })
        .ok()?;
    let handle = builder.install_recorder().ok()?;
    for m in METRICS {
        match m.kind {
            Kind::Counter => metrics::describe_counter!(m.name, m.help),
            Kind::Gauge => metrics::describe_gauge!(m.name, m.help),
            Kind::Histogram => metrics::describe_histogram!(m.name, m.help),
        }
        if m.labels.is_empty() {
            match m.kind {
                Kind::Counter => metrics::counter!(m.name).increment(0),
                // Gauges read from the shared figures are set on every scrape; the slot's
                // appear once the slot was read.
                Kind::Gauge | Kind::Histogram => {}
            }
        }
    }
    for stage in STAGES {
        for class in CLASSES {
            metrics::counter!("sluice_errors_total", "stage" => *stage, "class" => *class)
                .increment(0);
        }
    }
    Some(handle)
}

/// Counts a failed attempt of a stage.
pub fn count_error(stage: &str, class: sluice_core::ErrorClass) {
    let class = match class {
        sluice_core::ErrorClass::Transient => "transient",
        sluice_core::ErrorClass::Definite => "definite",
        sluice_core::ErrorClass::Fatal => "fatal",
    };
    metrics::counter!("sluice_errors_total", "stage" => stage.to_owned(), "class" => class)
        .increment(1);
}

/// Why the pipeline is not ready, empty when it is. A parked table does not make it unready:
/// the pipeline works for the other tables, and a restart (what orchestrators do with an
/// unready process) would not bring the table back; `sluice_tables_parked` is the signal.
pub fn unready_reasons(stats: &Stats) -> Vec<&'static str> {
    let mut reasons = Vec::new();
    if !stats.source_up.load(Ordering::Relaxed) {
        reasons.push("source not connected");
    }
    if !stats.target_up.load(Ordering::Relaxed) {
        reasons.push("target not reachable");
    }
    reasons
}

/// Sets the gauges that follow the shared figures.
pub fn refresh(stats: &Stats) {
    let lsn = |f: &std::sync::atomic::AtomicU64| f.load(Ordering::Relaxed);
    let gauge = |name: &'static str, v: f64| metrics::gauge!(name).set(v);
    let (wal_end, confirmed) = (lsn(&stats.source_wal_end), lsn(&stats.confirmed_lsn));
    if wal_end > 0 && confirmed > 0 {
        gauge(
            "sluice_replication_lag_bytes",
            wal_end.saturating_sub(confirmed) as f64,
        );
    }
    gauge("sluice_tables_parked", lsn(&stats.tables_parked) as f64);
    let (captured, applied) = (lsn(&stats.captured_lsn), lsn(&stats.applied_lsn));
    gauge(
        "sluice_apply_lag_bytes",
        captured.saturating_sub(applied) as f64,
    );
    let now_us = now_micros();
    let applied_ts = stats.applied_commit_ts.load(Ordering::Relaxed);
    if applied_ts > 0 {
        let since = (now_us - applied_ts).max(0) as f64 / 1e6;
        gauge("sluice_freshness_seconds", since);
        gauge(
            "sluice_replication_lag_seconds",
            if captured > applied { since } else { 0.0 },
        );
    }
    let (next, done) = (lsn(&stats.log_next_offset), lsn(&stats.log_applied_offset));
    gauge(
        "sluice_change_log_depth_records",
        next.saturating_sub(done) as f64,
    );
    let up = |b: &std::sync::atomic::AtomicBool| f64::from(u8::from(b.load(Ordering::Relaxed)));
    gauge("sluice_source_up", up(&stats.source_up));
    gauge("sluice_target_up", up(&stats.target_up));
    let tables = stats.tables();
    let remaining = tables
        .iter()
        .filter(|t| {
            matches!(
                t.snapshot,
                SnapshotState::Pending | SnapshotState::Copying { .. }
            )
        })
        .count();
    gauge("sluice_snapshot_tables_remaining", remaining as f64);
    for t in tables {
        if let Some(estimate) = t.snapshot_estimate {
            metrics::gauge!("sluice_snapshot_estimated_rows", "table" => table_label(&t.table))
                .set(estimate as f64);
        }
    }
}

#[derive(Clone)]
struct Served {
    handle: PrometheusHandle,
    stats: Arc<Stats>,
}

/// Binds `addr` and serves the endpoints until `stop`; binding errors are returned at once.
pub async fn serve(
    addr: SocketAddr,
    handle: PrometheusHandle,
    stats: Arc<Stats>,
    stop: CancellationToken,
) -> std::io::Result<JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tracing::info!(address = %bound, "serving /metrics, /healthz and /readyz");
    let app = Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(Served { handle, stats });
    Ok(tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned());
        if let Err(e) = server.await {
            tracing::warn!(error = %e, "the metrics endpoint stopped");
        }
    }))
}

async fn metrics_page(State(s): State<Served>) -> String {
    refresh(&s.stats);
    s.handle.render()
}

async fn ready(State(s): State<Served>) -> (StatusCode, String) {
    let reasons = unready_reasons(&s.stats);
    if reasons.is_empty() {
        (StatusCode::OK, "ready\n".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", reasons.join("; ")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_are_unique_and_prometheus_shaped() {
        let mut names: Vec<_> = METRICS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METRICS.len(), "a metric is listed twice");
        for m in METRICS {
            assert!(m.name.starts_with("sluice_"), "{}", m.name);
            assert!(
                m.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                m.name
            );
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "counters, and only counters, end in _total: {}",
                m.name
            );
        }
    }

    #[test]
    fn readiness_needs_both_ends() {
        let stats = Stats::default();
        assert_eq!(
            unready_reasons(&stats),
            vec!["source not connected", "target not reachable"]
        );
        stats.source_up.store(true, Ordering::Relaxed);
        assert_eq!(unready_reasons(&stats), vec!["target not reachable"]);
        stats.target_up.store(true, Ordering::Relaxed);
        assert!(unready_reasons(&stats).is_empty());
    }
}
