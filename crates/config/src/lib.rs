//! Sluice configuration.
//!
//! One TOML file (`sluice.toml`) with the sections `[source]`, `[capture]`, `[log]`, `[target]`,
//! `[load]`, `[wal]` and `[metrics]`. Precedence: defaults < file < environment (`SLUICE__SECTION__KEY=value`) < CLI
//! flags. String values may contain `${VAR}` (replaced by the environment variable, an error
//! when unset) and `$${` for a literal `${`. Loading has two phases: [`Config::from_toml`] and
//! [`Config::validate`] are pure and name the field path of every problem; connecting and
//! checking prerequisites happen later, in `sluice check` and `sluice sync`.
//!
//! `[log]` and `[target]` are chosen by `kind`; their other keys belong to the connector of that
//! kind, which parses them (see [`Section`]), so this crate depends on no connector.

mod env;
mod error;
mod size;

use std::collections::BTreeMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub use env::{apply_env_overrides, interpolate};
pub use error::{ConfigError, Problem};
pub use size::{ByteSize, parse_byte_size};

/// Default replication slot name.
pub const DEFAULT_SLOT: &str = "sluice";
/// Default publication name.
pub const DEFAULT_PUBLICATION: &str = "sluice";
/// Default pipeline name, the key of the checkpoint row in the target.
pub const DEFAULT_PIPELINE: &str = "default";
/// A micro-batch closes after this long even when small: one second keeps the warehouse
/// within seconds of the source while amortising the per-transaction cost of the target.
pub const DEFAULT_FLUSH_INTERVAL_MS: u64 = 1_000;
/// A micro-batch closes at this many bytes: large enough for efficient MERGEs (larger ones
/// loaded no faster in the benchmark), small enough to bound the loader's memory, which holds
/// one batch being applied and the next being read.
pub const DEFAULT_MAX_BATCH_BYTES: u64 = 16 * 1024 * 1024;
/// A micro-batch closes at this many changes.
pub const DEFAULT_MAX_BATCH_ROWS: u64 = 500_000;
/// Smallest accepted batch budget: below this, per-batch overhead dominates.
pub const MIN_MAX_BATCH_BYTES: u64 = 1024 * 1024;

/// Connections copying the initial snapshot at once by default: four keep a laptop's or a
/// small server's cores and disk busy (the copy is bound by the server's scan and the change
/// log's fsync) while taking only four of the source's `max_connections`.
pub const DEFAULT_SNAPSHOT_WORKERS: usize = 4;
/// Most snapshot workers accepted: each holds a source connection and a 4 MiB buffer.
pub const MAX_SNAPSHOT_WORKERS: usize = 64;
/// Rows per snapshot chunk by default: about 10 to 50 MiB at usual row sizes, so a crash
/// copies little again and workers share big tables evenly, while the per-chunk cost (one
/// range query, one ledger write) stays negligible.
pub const DEFAULT_SNAPSHOT_CHUNK_ROWS: u64 = 100_000;

/// Warn when the slot retains more WAL than this by default.
pub const DEFAULT_WAL_WARN_RETAINED: u64 = 1024 * 1024 * 1024;
/// How often the slot's retained WAL is checked by default.
pub const DEFAULT_WAL_CHECK_INTERVAL_MS: u64 = 10_000;

/// The whole configuration.
#[derive(Debug)]
pub struct Config {
    pub pipeline: String,
    pub source: SourceSection,
    pub capture: CaptureSection,
    pub log: Section,
    pub target: Section,
    pub load: LoadSection,
    pub wal: WalSection,
    pub metrics: MetricsSection,
}

/// `[wal]`: protecting the source from WAL retained by the slot.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalSection {
    /// Warn (log, metric, `sluice status`) when the slot retains more WAL than this.
    #[serde(default = "default_wal_warn_retained")]
    pub warn_retained: ByteSize,
    /// How often the slot is checked while syncing.
    #[serde(default = "default_wal_check_interval_ms")]
    pub check_interval_ms: u64,
    /// While the target is down, keep capturing into the change log (so the slot keeps
    /// advancing and the source does not retain WAL) until this much is waiting there to be
    /// loaded; the loader retries the target without giving up. `0` (the default): after about
    /// ten minutes of failed retries the pipeline stops, and the slot retains WAL from then on.
    #[serde(default)]
    pub absorb_backlog: ByteSize,
}

impl Default for WalSection {
    fn default() -> Self {
        WalSection {
            warn_retained: default_wal_warn_retained(),
            check_interval_ms: DEFAULT_WAL_CHECK_INTERVAL_MS,
            absorb_backlog: ByteSize(0),
        }
    }
}

fn default_wal_warn_retained() -> ByteSize {
    ByteSize(DEFAULT_WAL_WARN_RETAINED)
}
fn default_wal_check_interval_ms() -> u64 {
    DEFAULT_WAL_CHECK_INTERVAL_MS
}

/// `[capture]`: capture's own state.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureSection {
    /// Directory for capture's state: the initial snapshot's chunk ledger, the spill files of
    /// transactions streamed before their commit, and the `sync-state.json` that `sluice
    /// status` reads. Unset (the default): the local change log's directory (`[log] path`),
    /// where these files have always been; a change log without a directory needs it set.
    pub state_dir: Option<std::path::PathBuf>,
}

/// `[metrics]`: the HTTP endpoint with `/metrics`, `/healthz` and `/readyz`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// `host:port` to listen on; no endpoint when unset.
    pub listen: Option<String>,
}

/// `[source]`: the PostgreSQL database to capture.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    /// Connection URL; may hold a password, so it is a secret.
    pub url: SecretString,
    /// `schema.table` or `schema.*` patterns.
    pub tables: Vec<String>,
    #[serde(default = "default_slot")]
    pub slot: String,
    #[serde(default = "default_publication")]
    pub publication: String,
    /// Connections copying the initial snapshot's chunks at once.
    #[serde(default = "default_snapshot_workers")]
    pub snapshot_workers: usize,
    /// Rows per chunk of the initial snapshot, about: the unit of parallel copy and of resume
    /// after a crash.
    #[serde(default = "default_snapshot_chunk_rows")]
    pub snapshot_chunk_rows: u64,
}

impl fmt::Debug for SourceSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceSection")
            .field("url", &redact_url(self.url.expose_secret()))
            .field("tables", &self.tables)
            .field("slot", &self.slot)
            .field("publication", &self.publication)
            .field("snapshot_workers", &self.snapshot_workers)
            .field("snapshot_chunk_rows", &self.snapshot_chunk_rows)
            .finish()
    }
}

fn default_slot() -> String {
    DEFAULT_SLOT.to_owned()
}
fn default_publication() -> String {
    DEFAULT_PUBLICATION.to_owned()
}
fn default_snapshot_workers() -> usize {
    DEFAULT_SNAPSHOT_WORKERS
}
fn default_snapshot_chunk_rows() -> u64 {
    DEFAULT_SNAPSHOT_CHUNK_ROWS
}

/// `[load]`: when micro-batches close.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSection {
    #[serde(default = "default_flush_interval_ms")]
    pub flush_interval_ms: u64,
    #[serde(default = "default_max_batch_bytes")]
    pub max_batch_bytes: ByteSize,
    #[serde(default = "default_max_batch_rows")]
    pub max_batch_rows: u64,
}

impl Default for LoadSection {
    fn default() -> Self {
        LoadSection {
            flush_interval_ms: DEFAULT_FLUSH_INTERVAL_MS,
            max_batch_bytes: ByteSize(DEFAULT_MAX_BATCH_BYTES),
            max_batch_rows: DEFAULT_MAX_BATCH_ROWS,
        }
    }
}

fn default_flush_interval_ms() -> u64 {
    DEFAULT_FLUSH_INTERVAL_MS
}
fn default_max_batch_bytes() -> ByteSize {
    ByteSize(DEFAULT_MAX_BATCH_BYTES)
}
fn default_max_batch_rows() -> u64 {
    DEFAULT_MAX_BATCH_ROWS
}

/// A connector section (`[log]` or `[target]`): its `kind` and the rest of its keys, which the
/// connector of that kind deserializes with [`Section::parse`].
#[derive(Debug, Clone)]
pub struct Section {
    /// The section's name, for error paths (`"target"`).
    pub name: &'static str,
    pub kind: String,
    pub rest: toml::Table,
}

impl Section {
    /// Deserializes the keys other than `kind` into a connector's config type, naming the
    /// section in errors.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        T::deserialize(toml::Value::Table(self.rest.clone()))
            .map_err(|e| ConfigError::Invalid(vec![field_problem(self.name, &e)]))
    }
}

impl Config {
    /// Parses a configuration file's text: interpolates `${VAR}` from `vars`, applies
    /// `SLUICE__SECTION__KEY` overrides from `vars`, and fills defaults. Pure: the caller
    /// passes the environment.
    pub fn from_toml(text: &str, vars: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    message: e.message().to_owned(),
                    line: e.span().map(|s| line_of(text, s.start)),
                })?;
        apply_env_overrides(&mut table, vars)?;
        interpolate(&mut table, vars)?;

        let mut problems = Vec::new();
        let pipeline = match table.remove("pipeline") {
            None => DEFAULT_PIPELINE.to_owned(),
            Some(toml::Value::String(s)) => s,
            Some(_) => {
                problems.push(Problem::new("pipeline", "must be a string"));
                String::new()
            }
        };
        let source = take_section(&mut table, "source", &mut problems)
            .and_then(|t| parse_or_note::<SourceSection>("source", t, &mut problems));
        let capture = optional_section::<CaptureSection>(&mut table, "capture", &mut problems);
        let log = take_connector(&mut table, "log", Some("local"), &mut problems);
        let target = take_connector(&mut table, "target", Some("duckdb"), &mut problems);
        let load = optional_section::<LoadSection>(&mut table, "load", &mut problems);
        let wal = optional_section::<WalSection>(&mut table, "wal", &mut problems);
        let metrics = optional_section::<MetricsSection>(&mut table, "metrics", &mut problems);
        for key in table.keys() {
            problems.push(Problem::new(
                key_name(key),
                "unknown section; expected one of pipeline, source, capture, log, target, load, wal, metrics",
            ));
        }
        match (source, capture, log, target, load, wal, metrics) {
            (
                Some(source),
                Some(capture),
                Some(log),
                Some(target),
                Some(load),
                Some(wal),
                Some(metrics),
            ) if problems.is_empty() => Ok(Config {
                pipeline,
                source,
                capture,
                log,
                target,
                load,
                wal,
                metrics,
            }),
            _ => Err(ConfigError::Invalid(problems)),
        }
    }

    /// Checks values that parse but make no sense. Pure.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Vec::new();
        if self.pipeline.is_empty() {
            p.push(Problem::new("pipeline", "must not be empty"));
        }
        let url = self.source.url.expose_secret();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            p.push(Problem::new(
                "source.url",
                "must be a postgres:// or postgresql:// URL",
            ));
        }
        if self.source.tables.is_empty() {
            p.push(Problem::new(
                "source.tables",
                "must list at least one table (\"schema.table\" or \"schema.*\")",
            ));
        }
        for (i, t) in self.source.tables.iter().enumerate() {
            if let Err(why) = parse_table_pattern(t) {
                p.push(Problem::new(format!("source.tables[{i}]"), why));
            }
        }
        for (field, name) in [
            ("source.slot", &self.source.slot),
            ("source.publication", &self.source.publication),
        ] {
            if name.is_empty() || name.len() > 63 {
                p.push(Problem::new(field, "must be 1 to 63 bytes long"));
            }
        }
        if !self
            .source
            .slot
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            p.push(Problem::new(
                "source.slot",
                "may contain only lower-case letters, digits and underscores (PostgreSQL's rule for slot names)",
            ));
        }
        if !(1..=MAX_SNAPSHOT_WORKERS).contains(&self.source.snapshot_workers) {
            p.push(Problem::new(
                "source.snapshot_workers",
                format!("must be 1 to {MAX_SNAPSHOT_WORKERS}"),
            ));
        }
        if self.source.snapshot_chunk_rows == 0 {
            p.push(Problem::new(
                "source.snapshot_chunk_rows",
                "must be at least 1",
            ));
        }
        if self
            .capture
            .state_dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            p.push(Problem::new(
                "capture.state_dir",
                "must not be empty (leave it out for the change log's directory)",
            ));
        }
        if self.load.flush_interval_ms == 0 {
            p.push(Problem::new("load.flush_interval_ms", "must be at least 1"));
        }
        if self.load.max_batch_bytes.0 < MIN_MAX_BATCH_BYTES {
            p.push(Problem::new(
                "load.max_batch_bytes",
                "must be at least 1 MiB",
            ));
        }
        if self.load.max_batch_rows == 0 {
            p.push(Problem::new("load.max_batch_rows", "must be at least 1"));
        }
        if self.wal.check_interval_ms < 100 {
            p.push(Problem::new(
                "wal.check_interval_ms",
                "must be at least 100",
            ));
        }
        if let Some(listen) = &self.metrics.listen
            && listen.parse::<std::net::SocketAddr>().is_err()
        {
            p.push(Problem::new(
                "metrics.listen",
                format!("\"{listen}\" is not an address like 127.0.0.1:9187"),
            ));
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(p))
        }
    }
}

/// Splits `schema.table` / `schema.*` into its parts (`None` table for `*`). A part may be
/// double-quoted to hold dots or upper case: `"My Schema"."Order.Items"`.
pub fn parse_table_pattern(pattern: &str) -> Result<(String, Option<String>), String> {
    let parts = split_qualified(pattern).ok_or_else(|| not_a_table_pattern(pattern))?;
    match parts.as_slice() {
        [(schema, _), (table, quoted)] if !schema.is_empty() && !table.is_empty() => {
            let table = (table != "*" || *quoted).then(|| table.clone());
            Ok((schema.clone(), table))
        }
        _ => Err(not_a_table_pattern(pattern)),
    }
}

/// The error for a table pattern that does not parse, with how to write names that hold a
/// dot or a double quote.
fn not_a_table_pattern(pattern: &str) -> String {
    format!(
        "{pattern:?} is not of the form schema.table or schema.*; write a name that holds a dot, \
         a double quote or upper case in double quotes, with inner double quotes doubled, as in \
         SQL: public.\"we\"\"ird.name\""
    )
}

/// Splits a dotted name into parts, honouring double quotes (`""` inside quotes is a quote).
fn split_qualified(s: &str) -> Option<Vec<(String, bool)>> {
    let mut parts = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut part = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    '"' => break,
                    c => part.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                if c == '"' {
                    return None;
                }
                part.push(c);
                chars.next();
            }
        }
        parts.push((part, quoted));
        match chars.next() {
            None => return Some(parts),
            Some('.') => continue,
            Some(_) => return None,
        }
    }
}

/// A key from the file as a field path names it: bare keys as they are, any other (empty, or
/// holding dots, spaces or quotes) quoted the way TOML writes it, so that `"" = 1` is reported
/// as `"": ...` rather than as a field with no name.
pub(crate) fn key_name(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        toml::Value::String(key.to_owned()).to_string()
    }
}

/// A URL with its password replaced by `****`, for messages and `--json` output.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let redacted = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:****"),
        None => userinfo.to_owned(),
    };
    format!("{}{}{}", &url[..scheme_end + 3], redacted, &rest[at..])
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn take_section(
    table: &mut toml::Table,
    name: &str,
    problems: &mut Vec<Problem>,
) -> Option<toml::Table> {
    match table.remove(name) {
        Some(toml::Value::Table(t)) => Some(t),
        Some(_) => {
            problems.push(Problem::new(name, format!("must be a table ([{name}])")));
            None
        }
        None => {
            problems.push(Problem::new(name, format!("missing section [{name}]")));
            None
        }
    }
}

fn take_connector(
    table: &mut toml::Table,
    name: &'static str,
    default_kind: Option<&str>,
    problems: &mut Vec<Problem>,
) -> Option<Section> {
    let mut rest = match table.remove(name) {
        Some(toml::Value::Table(t)) => t,
        Some(_) => {
            problems.push(Problem::new(name, format!("must be a table ([{name}])")));
            return None;
        }
        None if default_kind.is_some() => toml::Table::new(),
        None => {
            problems.push(Problem::new(name, format!("missing section [{name}]")));
            return None;
        }
    };
    let kind = match rest.remove("kind") {
        Some(toml::Value::String(k)) => k,
        None => match default_kind {
            Some(k) => k.to_owned(),
            None => {
                problems.push(Problem::new(format!("{name}.kind"), "missing"));
                return None;
            }
        },
        Some(_) => {
            problems.push(Problem::new(format!("{name}.kind"), "must be a string"));
            return None;
        }
    };
    Some(Section { name, kind, rest })
}

/// A section that may be left out (defaults apply).
fn optional_section<T: serde::de::DeserializeOwned + Default>(
    table: &mut toml::Table,
    name: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    match table.remove(name) {
        None => Some(T::default()),
        Some(toml::Value::Table(t)) => parse_or_note::<T>(name, t, problems),
        Some(_) => {
            problems.push(Problem::new(name, format!("must be a table ([{name}])")));
            None
        }
    }
}

fn parse_or_note<T: serde::de::DeserializeOwned>(
    name: &str,
    t: toml::Table,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    match T::deserialize(toml::Value::Table(t)) {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(field_problem(name, &e));
            None
        }
    }
}

/// A deserialization error of section `section` as a problem naming the field it is about.
/// `toml` records the keys it was inside when a value failed (its `Display` ends with
/// ``in `key.path` ``, which `message()` leaves out); unknown and missing fields are named by
/// serde's own message.
fn field_problem(section: &str, e: &toml::de::Error) -> Problem {
    let message = e.message().trim();
    let shown = e.to_string();
    let keys = shown
        .strip_prefix(e.message())
        .and_then(|rest| rest.trim().strip_prefix("in `"))
        .and_then(|rest| rest.strip_suffix('`'))
        .filter(|keys| !keys.is_empty())
        .or_else(|| backquoted_after(message, "unknown field `"))
        .or_else(|| backquoted_after(message, "missing field `"));
    match keys {
        Some(keys) => Problem::new(format!("{section}.{keys}"), message),
        None => Problem::new(section, message),
    }
}

/// The text between `prefix` (which ends with a backquote) and the next backquote.
fn backquoted_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?;
    rest.find('`')
        .map(|end| &rest[..end])
        .filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests;
