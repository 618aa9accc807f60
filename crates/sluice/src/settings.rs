//! The configuration resolved into what the stages take: connector settings parsed by kind,
//! the source URL parsed, table patterns split. Everything here is checked before any I/O, so
//! a bad configuration exits with code 2 and a message naming the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::ExposeSecret;
use sluice_config::{Config, ConfigError, Problem};
use sluice_loader::BatchLimits;
use sluice_postgres::{CaptureOptions, SnapshotOptions, SourceConfig, TablePattern};

use crate::registry::{self, LogKind, TargetKind};

/// The directory, inside capture's state directory, where transactions streamed before their
/// commit wait for it.
const SPILL_DIR: &str = "spill";

/// `[wal] absorb_backlog` is at least this many change-log segments: the change log's size on
/// disk counts whole segments, and the one being written is never removed.
const ABSORB_SEGMENTS: u64 = 4;

/// Everything a command needs, resolved from the file and the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub pipeline: String,
    pub source: SourceConfig,
    pub capture: CaptureOptions,
    pub log: LogKind,
    /// Capture's state (snapshot chunk ledger, spill files, the monitor's state files):
    /// `[capture] state_dir`, by default the local change log's directory.
    pub state_dir: PathBuf,
    pub target: TargetKind,
    pub limits: BatchLimits,
    pub wal: WalPolicy,
    /// Where `/metrics`, `/healthz` and `/readyz` are served; none when unset.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// How the source's WAL is protected (`[wal]`).
#[derive(Debug, Clone, Copy)]
pub struct WalPolicy {
    pub warn_retained: u64,
    pub check_interval: Duration,
    /// Unapplied change-log bytes capture may accumulate while the target is down; 0 = off.
    pub absorb_backlog: u64,
}

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read configuration file \"{path}\"")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("configuration file \"{path}\": {source}")]
    Invalid { path: String, source: ConfigError },
}

impl Settings {
    /// Reads, interpolates, overrides and validates the configuration at `path`.
    pub fn load(path: &Path) -> Result<Settings, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let vars: BTreeMap<String, String> = std::env::vars().collect();
        Settings::from_text(&text, &vars).map_err(|source| SettingsError::Invalid {
            path: path.display().to_string(),
            source,
        })
    }

    /// Resolves configuration text. Pure.
    pub fn from_text(text: &str, vars: &BTreeMap<String, String>) -> Result<Settings, ConfigError> {
        let config = Config::from_toml(text, vars)?;
        config.validate()?;
        let source = SourceConfig::parse(config.source.url.expose_secret())
            .map_err(|e| ConfigError::Invalid(vec![Problem::new("source.url", e.to_string())]))?;
        let tables = config
            .source
            .tables
            .iter()
            .map(|t| {
                let (schema, table) = sluice_config::parse_table_pattern(t)
                    .expect("validate() accepted every table pattern");
                TablePattern { schema, table }
            })
            .collect();
        let log = registry::log(&config.log)?;
        let LogKind::Local(log_options) = &log;
        let absorb = config.wal.absorb_backlog.0;
        let least = log_options.segment_bytes.saturating_mul(ABSORB_SEGMENTS);
        if absorb > 0 && absorb < least {
            return Err(ConfigError::Invalid(vec![Problem::new(
                "wal.absorb_backlog",
                format!(
                    "must be 0 (off) or at least {ABSORB_SEGMENTS} change-log segments ({least} bytes with log.segment_bytes = {}): the backlog is measured in whole segments on disk",
                    log_options.segment_bytes
                ),
            )]));
        }
        // Default: the local change log's directory, where these files lived before the
        // option existed, so nothing moves for existing pipelines.
        let state_dir = config
            .capture
            .state_dir
            .clone()
            .unwrap_or_else(|| log_options.dir.clone());
        let target = registry::target(&config.target)?;
        target
            .check_batch_bytes(config.load.max_batch_bytes.0)
            .map_err(|problem| ConfigError::Invalid(vec![problem]))?;
        Ok(Settings {
            pipeline: config.pipeline.clone(),
            source,
            capture: CaptureOptions {
                tables,
                slot: config.source.slot.clone(),
                publication: config.source.publication.clone(),
                snapshot: SnapshotOptions {
                    workers: config.source.snapshot_workers,
                    chunk_rows: config.source.snapshot_chunk_rows,
                    ledger: Some(sluice_postgres::ledger_path(&state_dir)),
                },
                spill: Some(state_dir.join(SPILL_DIR)),
            },
            log,
            state_dir,
            target,
            limits: BatchLimits {
                flush_interval: Duration::from_millis(config.load.flush_interval_ms),
                max_bytes: usize::try_from(config.load.max_batch_bytes.0).unwrap_or(usize::MAX),
                max_rows: usize::try_from(config.load.max_batch_rows).unwrap_or(usize::MAX),
            },
            wal: WalPolicy {
                warn_retained: config.wal.warn_retained.0,
                check_interval: Duration::from_millis(config.wal.check_interval_ms),
                absorb_backlog: config.wal.absorb_backlog.0,
            },
            // validate() checked that it parses.
            metrics_listen: config
                .metrics
                .listen
                .as_deref()
                .and_then(|l| l.parse().ok()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[source]\nurl = \"postgres://sluice@localhost/shop\"\ntables = [\"public.t\"]\n\
                        [log]\npath = \"/data/log\"\n[target]\npath = \"/data/wh.duckdb\"\n";

    #[test]
    fn capture_state_stays_in_the_log_directory_unless_state_dir_says_otherwise() {
        let vars = BTreeMap::new();
        let s = Settings::from_text(BASE, &vars).expect("valid");
        assert_eq!(s.state_dir, Path::new("/data/log"));
        assert_eq!(
            s.capture.snapshot.ledger.as_deref(),
            Some(Path::new("/data/log/snapshot-ledger"))
        );
        assert_eq!(
            s.capture.spill.as_deref(),
            Some(Path::new("/data/log/spill"))
        );

        let text = format!("{BASE}[capture]\nstate_dir = \"/var/lib/sluice\"\n");
        let s = Settings::from_text(&text, &vars).expect("valid");
        assert_eq!(s.state_dir, Path::new("/var/lib/sluice"));
        assert_eq!(
            s.capture.snapshot.ledger.as_deref(),
            Some(Path::new("/var/lib/sluice/snapshot-ledger"))
        );
        assert_eq!(
            s.capture.spill.as_deref(),
            Some(Path::new("/var/lib/sluice/spill"))
        );
    }
}
