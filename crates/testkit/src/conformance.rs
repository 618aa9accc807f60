//! The destination conformance suite: one set of cases every [`Destination`] runs through the
//! same code path.
//!
//! Each case builds [`LogRecord`]s, folds them into batches with [`BatchBuilder`] (checkpoints
//! included), hands them to `Destination::open` and `Destination::apply` exactly as the loader
//! does, and compares what the target then holds with values the suite computes itself. A
//! destination plugs in through a [`Harness`]: it makes fresh targets, builds destinations on
//! them, and reads tables back in the canonical text form below. Every case is a `pub async fn`
//! taking the harness, so a destination's test file lists them one `#[tokio::test]` each and a
//! failure names the case; [`CASES`] lists their names so a test file can check it lists all.
//!
//! ## Canonical form
//!
//! [`Harness::rows`] returns every requested column as `Option<String>` (`None` for SQL NULL)
//! in this form, per the column's [`PgType`]. [`canonical`] turns PostgreSQL's text output into
//! it, which is how the suite computes expected values (and how a target that prints values as
//! PostgreSQL does can produce them).
//!
//! | type | canonical text |
//! |---|---|
//! | `bool` | `true` / `false` |
//! | `int2`, `int4`, `int8` | decimal integer (`-32768`) |
//! | `float4`, `float8` | the value parsed into `f32` / `f64` and printed by Rust's `Debug` (`NaN`, `inf`, `-inf`, `-0.0`, `1.0`, `0.1`, `1e-45`); the suite normalises whatever Rust can parse, so `nan` or `-0.0` from the target also do |
//! | `numeric(p,s)` | exact decimal text as PostgreSQL prints it for the column's type: `s` digits after the point (`1.50`), `NaN` |
//! | `numeric` | the exact decimal text as sent, `NaN`, `Infinity`, `-Infinity` |
//! | `text`, `varchar`, `char(n)` | the text as sent, byte for byte (`char(n)` keeps its padding) |
//! | `bytea` | lower-case hex of the bytes, no prefix (`00ff00`; empty for no bytes) |
//! | `uuid` | lower-case, hyphenated |
//! | `json`, `jsonb` | JSON text; the suite parses it and prints it compactly with object keys sorted, so spacing and key order are free (numbers go through `f64`: `2.50` and `2.5` compare equal) |
//! | `date` | days since 1970-01-01 in the proleptic Gregorian calendar (`-1` for 1969-12-31), or `infinity` / `-infinity` |
//! | `timestamp` | microseconds since 1970-01-01 00:00:00, read as if UTC, or `infinity` / `-infinity` |
//! | `timestamptz` | microseconds since 1970-01-01 00:00:00 UTC, or `infinity` / `-infinity` |
//! | arrays | a JSON array (nested for more dimensions) whose elements are the element type's canonical text as JSON strings, `null` for NULL elements (`["1","2",null]`); the suite re-normalises elements, so JSON spacing is free |
//! | anything else | the text as sent |
//!
//! The metadata columns are read with their own types: `_sluice_deleted` as `bool`,
//! `_sluice_lsn` as `int8` (the commit LSN as a signed 64-bit number), `_sluice_commit_ts` as
//! `timestamptz`.
//!
//! ## What the suite assumes of the target
//!
//! Target table = the source table's name in the target schema the harness was asked for
//! (the source schema is not part of the name). Tombstones of soft deletes are compared on key,
//! `_sluice_deleted` and `_sluice_lsn` only: what a tombstone holds in other columns is not part
//! of the contract. Values a target cannot hold exactly are declared in [`Supports`]; for those
//! the matching case checks that `apply` refuses them instead of storing something else.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use sluice_core::pg_type::oid;
use sluice_core::{
    Batch, BatchBuilder, Change, Checkpoint, DeleteMode, Destination, LogPosition, LogRecord, Lsn,
    Op, PgType, RelationSchema, TableId, Transaction, TxnKind, Value, meta,
};

/// The pipeline name every case opens the destination with.
pub const PIPELINE: &str = "conformance";

/// Values a target can hold exactly. A `false` flag turns the matching case into a check that
/// `apply` fails (honest failure) instead of a round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Supports {
    /// `float4` / `float8` `NaN`, `Infinity`, `-Infinity` and `-0`.
    pub float_special: bool,
    /// `NaN` in a `numeric(p,s)` column with `p <= 38`. (PostgreSQL refuses infinities in a
    /// column with a precision, so the source never sends them there.)
    pub numeric_special_in_decimal: bool,
    /// `infinity` and `-infinity` in `date`, `timestamp` and `timestamptz` columns.
    pub infinite_datetimes: bool,
    /// Dates and timestamps before the year 1 (`0044-03-15 BC`).
    pub bc_datetimes: bool,
    /// Quotes (`"` and `'`) inside schema, table and column names. Without (a stand-in that
    /// cannot run them), the hostile names hold `_` where they held a quote.
    pub quotes_in_names: bool,
}

impl Supports {
    /// Everything PostgreSQL itself holds.
    pub const ALL: Supports = Supports {
        float_special: true,
        numeric_special_in_decimal: true,
        infinite_datetimes: true,
        bc_datetimes: true,
        quotes_in_names: true,
    };
}

/// How the suite reaches one destination implementation.
///
/// The suite drops every destination it built before it calls [`Harness::rows`] or
/// [`Harness::columns`], so a target that allows one writer at a time (a DuckDB file) can be
/// read directly.
// The suite runs inside one test task and never needs the futures to be `Send`.
#[allow(async_fn_in_trait)]
pub trait Harness {
    type Dest: Destination;

    /// Values this target holds exactly.
    fn supports(&self) -> Supports;

    /// Makes a new, empty target (a new file, a new database) whose target schema is
    /// `schema` and whose destinations delete in `deletes` mode. Earlier targets are abandoned.
    async fn fresh(&mut self, schema: &str, deletes: DeleteMode);

    /// A new destination on the current target, not yet opened (the suite calls `open`), as a
    /// loader would build after a restart.
    async fn destination(&mut self) -> Self::Dest;

    /// The rows of the target table `table` (in the current target schema), each requested
    /// column in the canonical form of the module docs, in any order. `columns` are names of
    /// the target table's columns with the PostgreSQL type the values came from.
    async fn rows(&mut self, table: &str, columns: &[(&str, PgType)]) -> Vec<Vec<Option<String>>>;

    /// The column names of the target table `table`, in any order; empty when the table does
    /// not exist.
    async fn columns(&mut self, table: &str) -> Vec<String>;
}

/// The name of every case, in the order of this module.
/// Defines one `#[tokio::test]` per conformance case, each running the case against the
/// harness the expression builds, plus a test that every case of [`CASES`] is among them.
/// A destination's `tests/conformance.rs` defines its [`Harness`] and calls
/// `sluice_testkit::conformance_tests!(MyHarness::default());`.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::conformance_tests!(@cases $harness;
            insert, keyless_append, update, delete_soft, delete_hard, truncate_soft,
            truncate_hard, key_change, insert_delete_reinsert, duplicate_delivery,
            replay_after_crash, older_change_does_not_overwrite, empty_batch, added_column,
            unchanged_toast, unchanged_toast_key_change, nulls_everywhere, edge_values,
            float_special_values, numeric_special_values, infinite_datetimes,
            hostile_identifiers, parts_commit_with_their_end, discard_leaves_nothing,
            refused_value_parks_its_table, checkpoint_round_trip);
    };
    (@cases $harness:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                $crate::conformance::$case(&mut $harness).await;
            }
        )*

        #[test]
        fn every_case_is_listed() {
            assert_eq!(&[$(stringify!($case)),*], $crate::conformance::CASES);
        }
    };
}

pub const CASES: &[&str] = &[
    "insert",
    "keyless_append",
    "update",
    "delete_soft",
    "delete_hard",
    "truncate_soft",
    "truncate_hard",
    "key_change",
    "insert_delete_reinsert",
    "duplicate_delivery",
    "replay_after_crash",
    "older_change_does_not_overwrite",
    "empty_batch",
    "added_column",
    "unchanged_toast",
    "unchanged_toast_key_change",
    "nulls_everywhere",
    "edge_values",
    "float_special_values",
    "numeric_special_values",
    "infinite_datetimes",
    "hostile_identifiers",
    "parts_commit_with_their_end",
    "discard_leaves_nothing",
    "refused_value_parks_its_table",
    "checkpoint_round_trip",
];

// ---------------------------------------------------------------------------------------------
// Building records

/// The target schema of cases that do not test identifiers.
const SCHEMA: &str = "conformance";

use crate::records::Col;

fn relation(name: &str, version: u32, columns: &[Col<'_>]) -> Arc<RelationSchema> {
    crate::records::relation("public", name, version, columns)
}

/// `atttypmod` of `numeric(p, s)`.
fn numeric_mod(p: i32, s: i32) -> i32 {
    ((p << 16) | s) + 4
}

fn vals(items: &[Option<&str>]) -> Vec<Value> {
    items
        .iter()
        .map(|v| v.map_or(Value::Null, Value::from))
        .collect()
}

fn ins(r: &Arc<RelationSchema>, new: &[Option<&str>]) -> Change {
    Change {
        relation: r.clone(),
        op: Op::Insert,
        new: Some(vals(new)),
        old: None,
    }
}

fn upd(r: &Arc<RelationSchema>, new: Vec<Value>) -> Change {
    Change {
        relation: r.clone(),
        op: Op::Update,
        new: Some(new),
        old: None,
    }
}

/// An update that changes the key: `old` is the old identity (key columns, others NULL).
fn upd_key(r: &Arc<RelationSchema>, old: &[Option<&str>], new: &[Option<&str>]) -> Change {
    Change {
        relation: r.clone(),
        op: Op::Update,
        new: Some(vals(new)),
        old: Some(vals(old)),
    }
}

/// A delete whose old image is the key only (the rest NULL), as `REPLICA IDENTITY DEFAULT`
/// sends it.
fn del(r: &Arc<RelationSchema>, key: &[Option<&str>]) -> Change {
    let mut old = vals(key);
    old.resize(r.columns.len(), Value::Null);
    Change {
        relation: r.clone(),
        op: Op::Delete,
        new: None,
        old: Some(old),
    }
}

fn truncate(r: &Arc<RelationSchema>) -> Change {
    Change {
        relation: r.clone(),
        op: Op::Truncate,
        new: None,
        old: None,
    }
}

/// Commit time of the transaction at `commit`: `commit` microseconds after
/// 2024-01-01 00:00:00 UTC plus a sub-second part, so microseconds matter.
fn commit_ts(commit: u64) -> i64 {
    1_704_067_200_000_000 + (commit % 1_000_000_000) as i64 * 1_000 + 123_456
}

/// A committed source transaction at commit LSN `commit` (end LSN `commit + 1`).
fn txn(commit: u64, changes: Vec<Change>) -> LogRecord {
    LogRecord::Transaction(Transaction {
        kind: TxnKind::Stream,
        xid: commit as u32,
        commit_lsn: Lsn(commit),
        end_lsn: Lsn(commit + 1),
        commit_ts: commit_ts(commit),
        changes,
    })
}

/// The batch of `records` as a loader that starts after `after` builds it, with the position
/// `offset` (records consumed so far).
fn build(after: &Checkpoint, records: &[LogRecord], offset: usize) -> (Batch, Checkpoint) {
    let mut b = BatchBuilder::after(after);
    for r in records {
        b.push(r.clone());
    }
    b.finish(LogPosition::single("0", offset))
}

// ---------------------------------------------------------------------------------------------
// The target under test

/// One target of a case: a harness with at most one live destination, opened for
/// [`PIPELINE`] the way a loader opens it.
struct Target<'h, H: Harness> {
    h: &'h mut H,
    dest: Option<H::Dest>,
    /// The checkpoint of the last successful apply (default before any).
    last: Checkpoint,
    /// Records applied so far (the next batch's offset starts here).
    offset: usize,
}

impl<'h, H: Harness> Target<'h, H> {
    async fn fresh(h: &'h mut H, schema: &str, deletes: DeleteMode) -> Self {
        h.fresh(schema, deletes).await;
        Target {
            h,
            dest: None,
            last: Checkpoint::default(),
            offset: 0,
        }
    }

    /// Drops the destination and opens a new one; returns what `open` returned.
    async fn reopen(&mut self) -> Option<Checkpoint> {
        self.dest = None;
        let mut d = self.h.destination().await;
        let cp = d
            .open(PIPELINE)
            .await
            .unwrap_or_else(|e| panic!("open failed: {}", chain(&e)));
        self.dest = Some(d);
        cp
    }

    async fn try_apply(
        &mut self,
        batch: Batch,
        cp: &Checkpoint,
    ) -> Result<(), <H::Dest as Destination>::Error> {
        if self.dest.is_none() {
            self.reopen().await;
        }
        let dest = self.dest.as_mut().expect("a destination was just opened");
        dest.apply(batch, cp).await
    }

    async fn apply_batch(&mut self, batch: Batch, cp: &Checkpoint) {
        if let Err(e) = self.try_apply(batch, cp).await {
            panic!("apply failed: {}", chain(&e));
        }
        self.last = cp.clone();
    }

    /// Applies `records` as a part of a large transaction (`apply_part`), in the target
    /// transaction the next `apply` commits.
    async fn apply_part(&mut self, records: &[LogRecord]) {
        if self.dest.is_none() {
            self.reopen().await;
        }
        self.offset += records.len();
        let (batch, _) = build(&self.last, records, self.offset);
        let dest = self.dest.as_mut().expect("a destination was just opened");
        if let Err(e) = dest.apply_part(batch).await {
            panic!("apply_part failed: {}", chain(&e));
        }
    }

    /// Rolls back the parts applied since the last `apply`.
    async fn discard(&mut self) {
        let dest = self
            .dest
            .as_mut()
            .expect("parts were applied on a destination");
        if let Err(e) = dest.discard().await {
            panic!("discard failed: {}", chain(&e));
        }
    }

    /// Builds one batch of `records` after the last checkpoint, applies it and returns the
    /// checkpoint stored with it.
    async fn apply(&mut self, records: &[LogRecord]) -> Checkpoint {
        self.offset += records.len();
        let (batch, cp) = build(&self.last, records, self.offset);
        self.apply_batch(batch, &cp).await;
        cp
    }

    /// Rows of `table` with the columns of `spec`, sorted. Closes the destination first.
    async fn rows(&mut self, spec: &Spec) -> Vec<Vec<Option<String>>> {
        self.dest = None;
        let columns: Vec<(&str, PgType)> = spec
            .columns
            .iter()
            .map(|(n, t)| (n.as_str(), t.clone()))
            .collect();
        let rows = self.h.rows(&spec.table, &columns).await;
        let mut rows: Vec<_> = rows
            .into_iter()
            .map(|row| {
                assert_eq!(
                    row.len(),
                    columns.len(),
                    "harness returned a row of {} columns for {} requested",
                    row.len(),
                    columns.len()
                );
                let row: Vec<Option<String>> = row
                    .into_iter()
                    .zip(&columns)
                    .map(|(v, (_, t))| v.map(|v| normalise(t, &v)))
                    .collect();
                spec.mask(row)
            })
            .collect();
        rows.sort();
        rows
    }

    async fn columns(&mut self, table: &str) -> Vec<String> {
        self.dest = None;
        let mut c = self.h.columns(table).await;
        c.sort();
        c
    }
}

/// The error and its sources, for panic messages.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let _ = write!(s, ": {inner}");
        source = inner.source();
    }
    s
}

/// What a case reads back from a table: the relation's columns, then `_sluice_deleted` and
/// (optionally) `_sluice_lsn`.
struct Spec {
    table: String,
    columns: Vec<(String, PgType)>,
    /// Positions of the key columns.
    keys: Vec<usize>,
    /// Position of `_sluice_deleted`.
    deleted: usize,
}

impl Spec {
    fn new(r: &RelationSchema, with_lsn: bool) -> Spec {
        let mut columns: Vec<(String, PgType)> = r
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.pg_type()))
            .collect();
        let deleted = columns.len();
        columns.push((meta::DELETED.into(), PgType::Bool));
        if with_lsn {
            columns.push((meta::LSN.into(), PgType::Int8));
        }
        Spec {
            table: r.table.name.clone(),
            columns,
            keys: r.key_positions(),
            deleted,
        }
    }

    /// Tombstones: only key, `_sluice_deleted` and `_sluice_lsn` are compared.
    fn mask(&self, mut row: Vec<Option<String>>) -> Vec<Option<String>> {
        if row.get(self.deleted).and_then(|v| v.as_deref()) == Some("true") {
            for (i, v) in row.iter_mut().enumerate().take(self.deleted) {
                if !self.keys.contains(&i) {
                    *v = None;
                }
            }
        }
        row
    }

    /// An expected row: source values (PostgreSQL text) of the relation's columns, whether it
    /// is a tombstone, and the commit LSN that wrote it (used when the spec reads `_sluice_lsn`).
    fn row(&self, values: &[Option<&str>], deleted: bool, lsn: u64) -> Vec<Option<String>> {
        let mut row: Vec<Option<String>> = values
            .iter()
            .zip(&self.columns)
            .map(|(v, (_, t))| v.map(|v| canonical(t, v)))
            .collect();
        row.resize(self.deleted, None);
        row.push(Some(deleted.to_string()));
        if self.columns.len() > self.deleted + 1 {
            row.push(Some((lsn as i64).to_string()));
        }
        self.mask(row)
    }

    fn rows(&self, rows: &[(&[Option<&str>], bool, u64)]) -> Vec<Vec<Option<String>>> {
        let mut out: Vec<_> = rows
            .iter()
            .map(|(v, deleted, lsn)| self.row(v, *deleted, *lsn))
            .collect();
        out.sort();
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Canonical values

/// The canonical form (module docs) of `text`, a value of type `ty` in PostgreSQL's text
/// output format.
///
/// # Panics
///
/// When `text` is not valid PostgreSQL output for `ty`: the suite's own inputs are.
pub fn canonical(ty: &PgType, text: &str) -> String {
    match ty {
        PgType::Bool => match text {
            "t" | "true" => "true".into(),
            "f" | "false" => "false".into(),
            _ => panic!("not a PostgreSQL boolean: {text:?}"),
        },
        PgType::Int2 | PgType::Int4 | PgType::Int8 => text
            .trim()
            .parse::<i64>()
            .unwrap_or_else(|_| panic!("not an integer: {text:?}"))
            .to_string(),
        PgType::Float4 => float4_text(parse_float(text)),
        PgType::Float8 => float8_text(parse_float(text)),
        PgType::Bytea => text
            .strip_prefix("\\x")
            .unwrap_or_else(|| panic!("not bytea hex output: {text:?}"))
            .to_ascii_lowercase(),
        PgType::Uuid => text.to_ascii_lowercase(),
        PgType::Json | PgType::Jsonb => json_text(text),
        PgType::Date => match text {
            "infinity" | "-infinity" => text.into(),
            _ => parse_date(text).to_string(),
        },
        PgType::Timestamp | PgType::TimestampTz => match text {
            "infinity" | "-infinity" => text.into(),
            _ => parse_timestamp(text).to_string(),
        },
        PgType::Array(inner) => {
            let (array, rest) = parse_array(text);
            assert!(rest.is_empty(), "trailing text after array {text:?}");
            array_json(&array, inner).to_string()
        }
        _ => text.into(),
    }
}

/// A `float4` in canonical form.
pub fn float4_text(v: f32) -> String {
    format!("{v:?}")
}

/// A `float8` in canonical form.
pub fn float8_text(v: f64) -> String {
    format!("{v:?}")
}

/// A float in PostgreSQL's spelling (`Infinity`) or anything Rust parses (`inf`, `nan`).
fn parse_float<F: std::str::FromStr>(text: &str) -> F {
    let text = match text {
        "Infinity" => "inf",
        "-Infinity" => "-inf",
        _ => text,
    };
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a float: {text:?}"))
}

/// The harness's text for a column of type `ty`, with the freedoms of the module docs removed
/// (float spelling, JSON spacing and key order).
fn normalise(ty: &PgType, text: &str) -> String {
    match ty {
        PgType::Float4 => float4_text(parse_float(text)),
        PgType::Float8 => float8_text(parse_float(text)),
        PgType::Json | PgType::Jsonb => json_text(text),
        PgType::Array(inner) => {
            let v: serde_json::Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("array {text:?} is not JSON: {e}"));
            normalise_array(&v, inner).to_string()
        }
        _ => text.into(),
    }
}

fn normalise_array(v: &serde_json::Value, inner: &PgType) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        J::Array(items) => J::Array(items.iter().map(|i| normalise_array(i, inner)).collect()),
        J::Null => J::Null,
        J::String(s) => J::String(normalise(inner, s)),
        other => panic!("array element {other} is not a JSON string or null"),
    }
}

/// JSON text printed compactly with object keys sorted.
fn json_text(text: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON: {text:?}: {e}"));
    let mut out = String::new();
    write_sorted(&v, &mut out);
    out
}

fn write_sorted(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value as J;
    match v {
        J::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sorted(item, out);
            }
            out.push(']');
        }
        J::Object(map) => {
            let sorted: BTreeMap<&String, &serde_json::Value> = map.iter().collect();
            out.push('{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&J::String(k.clone()).to_string());
                out.push(':');
                write_sorted(v, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Days from 1970-01-01 to the proleptic Gregorian date `y-m-d` (astronomical year numbering).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` with an optional ` BC` suffix, as days since the epoch.
fn parse_date(text: &str) -> i64 {
    let (body, bc) = match text.strip_suffix(" BC") {
        Some(b) => (b, true),
        None => (text, false),
    };
    let bad = || panic!("not a PostgreSQL date: {text:?}");
    let mut parts = body.splitn(3, '-');
    let mut next = || -> i64 {
        parts
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(bad)
    };
    let (y, m, d) = (next(), next(), next());
    // 1 BC is year 0, 2 BC is year -1.
    let y = if bc { 1 - y } else { y };
    days_from_civil(y, m, d)
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][±HH[:MM[:SS]]][ BC]` as microseconds since the epoch
/// (the offset, when present, subtracted).
fn parse_timestamp(text: &str) -> i64 {
    let bad = || -> ! { panic!("not a PostgreSQL timestamp: {text:?}") };
    let (body, bc) = match text.strip_suffix(" BC") {
        Some(b) => (b, true),
        None => (text, false),
    };
    let (date, time) = body.split_once(' ').unwrap_or_else(|| bad());
    let days = parse_date(&format!("{date}{}", if bc { " BC" } else { "" }));
    let (clock, offset) = match time.find(['+', '-']) {
        Some(i) => (&time[..i], Some(&time[i..])),
        None => (time, None),
    };
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let hms: Vec<i64> = hms
        .split(':')
        .map(|p| p.parse().unwrap_or_else(|_| bad()))
        .collect();
    let [h, mi, s] = hms[..] else { bad() };
    if frac.len() > 6 {
        bad();
    }
    let micros: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().unwrap_or_else(|_| bad())
    };
    let offset_s = offset.map_or(0, |o| {
        let sign = if o.starts_with('-') { -1 } else { 1 };
        let parts: Vec<i64> = o[1..]
            .split(':')
            .map(|p| p.parse().unwrap_or_else(|_| bad()))
            .collect();
        let secs = parts.first().copied().unwrap_or(0) * 3600
            + parts.get(1).copied().unwrap_or(0) * 60
            + parts.get(2).copied().unwrap_or(0);
        sign * secs
    });
    ((days * 86_400 + h * 3_600 + mi * 60 + s - offset_s) * 1_000_000) + micros
}

/// A parsed PostgreSQL array literal.
#[derive(Debug)]
enum ArrayItem {
    Null,
    Text(String),
    Array(Vec<ArrayItem>),
}

/// Parses `{...}` at the start of `text`; returns the items and the rest of the text.
fn parse_array(text: &str) -> (Vec<ArrayItem>, &str) {
    let bad = || -> ! { panic!("not a PostgreSQL array: {text:?}") };
    let mut rest = text.strip_prefix('{').unwrap_or_else(|| bad());
    let mut items = Vec::new();
    if let Some(r) = rest.strip_prefix('}') {
        return (items, r);
    }
    loop {
        if rest.starts_with('{') {
            let (inner, r) = parse_array(rest);
            items.push(ArrayItem::Array(inner));
            rest = r;
        } else if let Some(r) = rest.strip_prefix('"') {
            let mut s = String::new();
            let mut chars = r.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => s.push(chars.next().unwrap_or_else(|| bad()).1),
                    Some((i, '"')) => break i,
                    Some((_, c)) => s.push(c),
                    None => bad(),
                }
            };
            items.push(ArrayItem::Text(s));
            rest = &r[end + 1..];
        } else {
            let end = rest.find([',', '}']).unwrap_or_else(|| bad());
            let word = &rest[..end];
            items.push(if word == "NULL" {
                ArrayItem::Null
            } else {
                ArrayItem::Text(word.into())
            });
            rest = &rest[end..];
        }
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if let Some(r) = rest.strip_prefix('}') {
            return (items, r);
        } else {
            bad();
        }
    }
}

fn array_json(items: &[ArrayItem], inner: &PgType) -> serde_json::Value {
    use serde_json::Value as J;
    J::Array(
        items
            .iter()
            .map(|i| match i {
                ArrayItem::Null => J::Null,
                ArrayItem::Text(t) => J::String(canonical(inner, t)),
                ArrayItem::Array(a) => array_json(a, inner),
            })
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------------
// The cases

/// The table most cases use: `items (id int4 key, name text, qty int8, price numeric(12,2))`.
fn items(version: u32) -> Arc<RelationSchema> {
    relation(
        "items",
        version,
        &[
            ("id", oid::INT4, -1, true),
            ("name", oid::TEXT, -1, false),
            ("qty", oid::INT8, -1, false),
            ("price", oid::NUMERIC, numeric_mod(12, 2), false),
        ],
    )
}

type Image<'a> = [Option<&'a str>; 4];

const A1: Image<'static> = [Some("1"), Some("apple"), Some("10"), Some("1.50")];
const B2: Image<'static> = [Some("2"), Some("bread"), Some("20"), Some("2.25")];
const C3: Image<'static> = [Some("3"), Some("cheese"), None, Some("13.00")];

/// Inserted rows: commit LSN, commit time, position and values all land.
pub async fn insert<H: Harness>(h: &mut H) {
    let r = items(1);
    let mut t = Target::fresh(h, SCHEMA, DeleteMode::Soft).await;
    t.apply(&[txn(10, vec![ins(&r, &A1), ins(&r, &B2)])]).await;
    t.apply(&[txn(20, vec![ins(&r, &C3)]), txn(30, vec![])])
        .await;
    let spec = Spec::new(&r, true);
    assert_eq!(
        t.rows(&spec).await,
        spec.rows(&[(&A1, false, 10), (&B2, false, 10), (&C3, false, 20)]),
    );
    let ts = Spec {
        table: "items".into(),
        columns: vec![
            ("id".into(), PgType::Int4),
            (meta::COMMIT_TS.into(), PgType::TimestampTz),
        ],
        keys: vec![0],
        deleted: 2,
    };
    assert_eq!(
        t.rows(&ts).await,
        vec![
            vec![Some("1".into()), Some(commit_ts(10).to_string())],
            vec![Some("2".into()), Some(commit_ts(10).to_string())],
            vec![Some("3".into()), Some(commit_ts(20).to_string())],
        ],
        "_sluice_commit_ts holds the source commit time"
    );
}

/// A table without a key is loaded append-only: identical rows are all kept.
pub async fn keyless_append<H: Harness>(h: &mut H) {
    let r = relation(
        "events",
        1,
        &[("kind", oid::TEXT, -1, false), ("n", oid::INT4, -1, false)],
    );
    let mut t = Target::fresh(h, SCHEMA, DeleteMode::Soft).await;
    let e = [Some("click"), Some("1")];
    t.apply(&[txn(10, vec![ins(&r, &e), ins(&r, &e)])]).await;
    t.apply(&[txn(20, vec![ins(&r, &e)])]).await;
    let spec = Spec::new(&r, true);
    assert_eq!(
        t.rows(&spec).await,
        spec.rows(&[(&e, false, 10), (&e, false, 10), (&e, false, 20)])
    );
}

/// Updates overwrite, across batches and within one (the last change per key wins).
pub async fn update<H: Harness>(h: &mut H) {
    let r = items(1);
    let mut t = Target::fresh(h, SCHEMA, DeleteMode::Soft).await;
    t.apply(&[txn(10, vec![ins(&r, &A1), ins(&r, &B2)])]).await;
    let a1b = [Some("1"), Some("apple v2"), Some("11"), Some("1.50")];
    let a1c = [Some("1"), Some("apple v3"), Some("12"), Some("1.75")];
    let b2n = [Some("2"), None, Some("20"), None];
    let c3b = [Some("3"), Some("cheese v2"), Some("30"), Some("13.00")];
    t.apply(&[
        txn(20, vec![upd(&r, vals(&a1b)), upd(&r, vals(&b2n))]),
        txn(30, vec![upd(&r, vals(&a1c))]),
        txn(40, vec![ins(&r, &C3)]),
        txn(50, vec![upd(&r, vals(&c3b))]),
    ])
    .await;
    let spec = Spec::new(&r, true);
    assert_eq!(
        t.rows(&spec).await,
        spec.rows(&[(&a1c, false, 30), (&b2n, false, 20), (&c3b, false, 50)])
    );
}

async fn delete<H: Harness>(h: &mut H, mode: DeleteMode) {
    let r = items(1);
    let mut t = Target::fresh(h, SCHEMA, mode).await;
    t.apply(&[txn(10, vec![ins(&r, &A1), ins(&r, &B2), ins(&r, &C3)])])
        .await;
    t.apply(&[txn(20, vec![del(&r, &[Some("2")])])]).await;
    let d4 = [Some("4"), Some("dates"), Some("4"), Some("4.00")];
    t.apply(&[
        txn(30, vec![ins(&r, &d4)]),
        txn(40, vec![del(&r, &[Some("4")])]),
        // A key the target never held.
        txn(50, vec![del(&r, &[Some("9")])]),
    ])
    .await;
    let spec = Spec::new(&r, true);
    let expected = match mode {
        DeleteMode::Soft => spec.rows(&[
            (&A1, false, 10),
            (&B2, true, 20),
            (&C3, false, 10),
            (&d4, true, 40),
            (&[Some("9")], true, 50),
        ]),
        DeleteMode::Hard => spec.rows(&[(&A1, false, 10), (&C3, false, 10)]),
    };
    assert_eq!(t.rows(&spec).await, expected);
}

/// Soft deletes leave a tombstone (`_sluice_deleted`, the delete's position), also for a row
/// inserted in the same batch and for a key the target never held.
pub async fn delete_soft<H: Harness>(h: &mut H) {
    delete(h, DeleteMode::Soft).await;
}

/// Hard deletes remove the row, also one inserted earlier in the same batch.
pub async fn delete_hard<H: Harness>(h: &mut H) {
    delete(h, DeleteMode::Hard).await;
}

async fn truncate_case<H: Harness>(h: &mut H, mode: DeleteMode) {
    let r = items(1);
    let mut t = Target::fresh(h, SCHEMA, mode).await;
    t.apply(&[txn(10, vec![ins(&r, &A1), ins(&r, &B2)])]).await;
    let a1b = [Some("1"), Some("apple again"), Some("1"), Some("0.99")];
    // Rows written in the truncating transaction after the TRUNCATE, and later, stay.
    t.apply(&[
        txn(20, vec![truncate(&r), ins(&r, &C3)]),
        txn(30, vec![ins(&r, &a1b)]),
    ])
    .await;
    let spec = Spec::new(&r, false);
    let expected = match mode {
        DeleteMode::Soft => spec.rows(&[(&a1b, false, 0), (&B2, true, 0), (&C3, false, 0)]),
        DeleteMode::Hard => spec.rows(&[(&a1b, false, 0), (&C3, false, 0)]),
    };
    assert_eq!(t.rows(&spec).await, expected, "after the first truncate");

    // A batch whose last word on the table is a TRUNCATE: rows inserted before it in the same
    // batch never show.
    let e5 = [Some("5"), Some("eggs"), Some("5"), Some("5.00")];
    t.apply(&[txn(40, vec![ins(&r, &e5)]), txn(50, vec![truncate(&r)])])
        .await;
    let expected = match mode {
        DeleteMode::Soft => spec.rows(&[(&a1b, true, 0), (&B2, true, 0), (&C3, true, 0)]),
        DeleteMode::Hard => vec![],
    };
    assert_eq!(t.rows(&spec).await, expected, "after the second truncate");
}

/// TRUNCATE with soft deletes marks every older row deleted; rows written after it stay.
pub async fn truncate_soft<H: Harness>(h: &mut H) {
    truncate_case(h, DeleteMode::Soft).await;
}

/// TRUNCATE with hard deletes removes every older row; rows written after it stay.
pub async fn truncate_hard<H: Harness>(h: &mut H) {
    truncate_case(h, DeleteMode::Hard).await;
}

/// An update that changes the primary key deletes (or tombstones) the old key and writes the
/// new one, across batches and within one.
pub async fn key_change<H: Harness>(h: &mut H) {
    for mode in [DeleteMode::Soft, DeleteMode::Hard] {
        let r = items(1);
        let mut t = Target::fresh(h, SCHEMA, mode).await;
        t.apply(&[txn(10, vec![ins(&r, &A1), ins(&r, &B2)])]).await;
        let moved = [Some("7"), Some("apple"), Some("10"), Some("1.50")];
        t.apply(&[txn(20, vec![upd_key(&r, &[Some("1")], &moved)])])
            .await;
        // Within one batch: insert 5, then move it to 6.
        let e5 = [Some("5"), Some("eggs"), Some("5"), Some("5.00")];
        let e6 = [Some("6"), Some("eggs"), Some("6"), Some("5.00")];
        t.apply(&[
            txn(30, vec![ins(&r, &e5)]),
            txn(40, vec![upd_key(&r, &[Some("5")], &e6)]),
        ])
        .await;
        let spec = Spec::new(&r, true);
        let expected = match mode {
            DeleteMode::Soft => spec.rows(&[
                (&A1, true, 20),
                (&B2, false, 10),
                (&moved, false, 20),
                (&e5, true, 40),
                (&e6, false, 40),
            ]),
            DeleteMode::Hard => {
                spec.rows(&[(&B2, false, 10), (&moved, false, 20), (&e6, false, 40)])
            }
        };
        assert_eq!(t.rows(&spec).await, expected, "{mode:?} deletes");
    }
}

/// Insert, delete and insert again of one key in one transaction: the row is there with the
/// last values; insert then delete in one transaction leaves nothing (or a tombstone).
pub async fn insert_delete_reinsert<H: Harness>(h: &mut H) {
    for mode in [DeleteMode::Soft, DeleteMode::Hard] {
        let r = items(1);
        let mut t = Target::fresh(h, SCHEMA, mode).await;
        t.apply(&[txn(10, vec![ins(&r, &B2)])]).await;
        let a1b = [Some("1"), Some("apple again"), Some("2"), Some("2.00")];
        let b2b = [Some("2"), Some("bread again"), None, Some("3.00")];
        t.apply(&[txn(
            20,
            vec![
                ins(&r, &A1),
                del(&r, &[Some("1")]),
                ins(&r, &a1b),
                // A key the target holds: delete and reinsert.
                del(&r, &[Some("2")]),
                ins(&r, &b2b),
                // Insert and delete.
                ins(&r, &C3),
                del(&r, &[Some("3")]),
            ],
        )])
        .await;
        let spec = Spec::new(&r, true);
        let mut expected = vec![(&a1b[..], false, 20), (&b2b[..], false, 20)];
        if mode == DeleteMode::Soft {
            expected.push((&C3[..], true, 20));
        }
        assert_eq!(
            t.rows(&spec).await,
            spec.rows(&expected),
            "{mode:?} deletes"
        );
    }
}

/// Batches delivered again, after newer ones, change nothing.
pub async fn duplicate_delivery<H: Harness>(h: &mut H) {
    for mode in [DeleteMode::Soft, DeleteMode::Hard] {
        let r = items(1);
        let a1b = [Some("1"), Some("apple v2"), Some("11"), Some("1.60")];
        let c3b = [Some("3"), Some("cheese v2"), Some("3"), Some("3.00")];
        let mut second = vec![upd(&r, vals(&a1b))];
        // A hard delete leaves nothing to guard: the loader never hands a destination an
        // insert older than a hard delete (it skips what its checkpoint covers).
        if mode == DeleteMode::Soft {
            second.push(del(&r, &[Some("2")]));
        }
        let log = [
            txn(10, vec![ins(&r, &A1), ins(&r, &B2)]),
            txn(20, second),
            txn(30, vec![ins(&r, &C3)]),
            txn(40, vec![upd(&r, vals(&c3b))]),
        ];
        let mut t = Target::fresh(h, SCHEMA, mode).await;
        for record in &log {
            t.apply(std::slice::from_ref(record)).await;
        }
        let spec = Spec::new(&r, true);
        let before = t.rows(&spec).await;
        let again: [&[LogRecord]; 4] = [&log[..1], &log[1..2], &log[2..3], &log[..]];
        for (i, records) in again.into_iter().enumerate() {
            // A new batch of the same records, as a log re-delivers them.
            let (batch, cp) = build(&Checkpoint::default(), records, 99);
            t.apply_batch(batch, &cp).await;
            assert_eq!(
                t.rows(&spec).await,
                before,
                "{mode:?} deletes: re-delivery {i} changed the table"
            );
        }
    }
}

/// After a crash the loader reads the log again from an older position: replaying the whole
/// log, any prefix of it, or everything after an older checkpoint leaves the tables as they
/// are and the checkpoint where the replay puts it.
pub async fn replay_after_crash<H: Harness>(h: &mut H) {
    for mode in [DeleteMode::Soft, DeleteMode::Hard] {
        let r = items(1);
        let a1b = [Some("1"), Some("apple v2"), Some("11"), Some("1.60")];
        let b7 = [Some("7"), Some("bread"), Some("20"), Some("2.25")];
        let c3b = [Some("3"), Some("cheese v2"), Some("3"), Some("3.00")];
        let log = [
            txn(10, vec![ins(&r, &A1), ins(&r, &B2)]),
            txn(20, vec![upd(&r, vals(&a1b))]),
            txn(30, vec![ins(&r, &C3)]),
            txn(40, vec![upd_key(&r, &[Some("2")], &b7)]),
            txn(50, vec![upd(&r, vals(&c3b)), del(&r, &[Some("1")])]),
            txn(60, vec![ins(&r, &A1)]),
        ];
        let mut t = Target::fresh(h, SCHEMA, mode).await;
        let mut checkpoints = vec![Checkpoint::default()];
        for pair in log.chunks(2) {
            checkpoints.push(t.apply(pair).await);
        }
        let last = checkpoints
            .last()
            .cloned()
            .expect("three batches were applied");
        let spec = Spec::new(&r, true);
        let before = t.rows(&spec).await;

        // The whole log again, in one batch, from the start.
        let (batch, cp) = build(&Checkpoint::default(), &log, log.len());
        assert_eq!(cp, last, "the replayed batch ends where the log does");
        t.apply_batch(batch, &cp).await;
        assert_eq!(t.rows(&spec).await, before, "{mode:?}: whole-log replay");
        assert_eq!(t.reopen().await, Some(last.clone()));

        // Everything after each older checkpoint, in one batch.
        for older in &checkpoints {
            let (batch, cp) = build(older, &log, log.len());
            t.apply_batch(batch, &cp).await;
            assert_eq!(
                t.rows(&spec).await,
                before,
                "{mode:?}: replay after checkpoint {older:?}"
            );
            assert_eq!(t.reopen().await, Some(last.clone()));
        }

        // Prefixes: with soft deletes every prefix is older than what the target holds. (Hard
        // deletes keep no tombstone, so a prefix could bring back a deleted row: the loader
        // never replays below its checkpoint, as the case above shows.)
        if mode == DeleteMode::Soft {
            for n in 1..log.len() {
                let (batch, cp) = build(&Checkpoint::default(), &log[..n], n);
                t.apply_batch(batch, &cp).await;
                assert_eq!(
                    t.rows(&spec).await,
                    before,
                    "{mode:?}: replay of the first {n} records"
                );
            }
        }
    }
}

/// A change older than what the row holds is not applied, whichever way the LSNs compare as
/// 32-bit numbers.
pub async fn older_change_does_not_overwrite<H: Harness>(h: &mut H) {
    let r = items(1);
    let mut t = Target::fresh(h, SCHEMA, DeleteMode::Soft).await;
    let high = 0x1_0000_0010;
    let d4 = [Some("4"), Some("dates"), Some("4"), Some("4.00")];
    t.apply(&[
        txn(high, vec![ins(&r, &A1), ins(&r, &B2), ins(&r, &d4)]),
        txn(high + 10, vec![del(&r, &[Some("2")])]),
    ])
    .await;
    let a1old = [Some("1"), Some("stale"), Some("0"), Some("0.00")];
    let b2old = [Some("2"), Some("stale"), Some("0"), Some("0.00")];
    let d4old = [Some("4"), Some("stale"), Some("0"), Some("0.00")];
    // Older than `high`, though larger than it in its low 32 bits or as an i32.
    for older in [0xFFFF_FFFF, 0x8000_0001, high - 1] {
        let (batch, cp) = build(
            &Checkpoint::default(),
            &[txn(
                older,
                vec![
                    upd(&r, vals(&a1old)),
                    upd(&r, vals(&b2old)),
                    del(&r, &[Some("4")]),
                ],
            )],
            1,
        );
        t.apply_batch(batch, &cp).await;
    }
    // An older delete does not delete, an older update does not undelete.
    let (batch, cp) = build(
        &Checkpoint::default(),
        &[txn(
            0x10,
            vec![upd(&r, vals(&d4old)), del(&r, &[Some("1")])],
        )],
        1,
    );
    t.apply_batch(batch, &cp).await;
    let spec = Spec::new(&r, true);
    assert_eq!(
        t.rows(&spec).await,
        spec.rows(&[
            (&A1, false, high),
            (&B2, true, high + 10),
            (&d4, false, high)
        ])
    );
}

/// A batch without rows still stores its checkpoint, on a fresh target and after data.
pub async fn empty_batch<H: Harness>(h: &mut H) {
    let r = items(1);
    let mut t = Target::fresh(h, SCHEMA, DeleteMode::Soft).await;
    assert_eq!(t.reopen().await, None, "a fresh target has no checkpoint");
    let (batch, cp) = BatchBuilder::default().finish(LogPosition::single("0", 3));
    assert_eq!(batch.rows(), 0);
    t.apply_batch(batch, &cp).await;
    assert_eq!(t.reopen().await, Some(cp));

    let first = t.apply(&[txn(10, vec![ins(&r, &A1)])]).await;
    let spec = Spec::new(&r, true);
    let before = t.rows(&spec).await;
    // Records that hold no rows: a transaction of another kind of change only.
    let (batch, cp) = build(&first, &[txn(20, vec![])], 7);
    assert_eq!(batch.rows(), 0);
    assert_ne!(cp, first);
    t.apply_batch(batch, &cp).await;
    assert_eq!(t.rows(&spec).await, before);
    assert_eq!(t.reopen().await, Some(cp.clone()));

    let (batch, next) = BatchBuilder::after(&cp).finish(LogPosition::single("0", 8));
    t.apply_batch(batch, &next).await;
    assert_eq!(t.reopen().await, Some(next));
}

/// A relation with one more column mid-stream: the column is added, older rows hold NULL in
/// it, newer rows their value; rows of both versions in one batch land.
pub async fn added_column<H: Harness>(h: &mut H) {
    let v1 = relation(
        "growing",
        1,
        &[("id", oid::INT4, -1, true), ("a", oid::TEXT, -1, false)],
    );
    let v2 = relation(
        "growing",
        2,
        &[
            ("id", oid::INT4, -1, true),
            ("a", oid::TEXT, -1, false),
            ("b", oid::TIMESTAMPTZ, -1, false),
        ],
    );
    let mut t = Target::fresh(h, SCHEMA, DeleteMode::Soft).await;
    t.apply(&[txn(
        10,
        vec![
            ins(&v1, &[Some("1"), Some("x")]),
            ins(&v1, &[Some("2"), Some("y")]),
        ],
    )])
    .await;
    let ts = "2024-05-06 07:08:09.000123+00";
    t.apply(&[
        txn(20, vec![ins(&v2, &[Some("3"), Some("z"), Some(ts)])]),
        txn(30, vec![upd(&v2, vals(&[Some("1"), Some("x2"), Some(ts)]))]),
    ])
    .await;
    // Old and new relation in one batch.
    t.apply(&[
        txn(40, vec![ins(&v1, &[Some("4"), Some("w")])]),
        txn(50, vec![ins(&v2, &[Some("5"), Some("v"), Some(ts)])]),
    ])
    .await;
    let columns = t.columns("growing").await;
    for c in ["id", "a", "b", meta::LSN, meta::DELETED, meta::COMMIT_TS] {
        assert!(
            columns.iter().any(|n| n == c),
            "column {c:?} missing from {columns:?}"
        );
    }
    let spec = Spec::new(&v2, true);
    assert_eq!(
        t.rows(&spec).await,
        spec.rows(&[
            (&[Some("1"), Some("x2"), Some(ts)], false, 30),
            (&[Some("2"), Some("y"), None], false, 10),
            (&[Some("3"), Some("z"), Some(ts)], false, 20),
            (&[Some("4"), Some("w"), None], false, 40),
            (&[Some("5"), Some("v"), Some(ts)], false, 50),
        ])
    );
}

/// An unchanged TOAST value keeps what the target holds, also when the row was written
/// earlier in the same batch; it is never written as NULL.
pub async fn unchanged_toast<H: Harness>(h: &mut H) {
    let r = relation(
        "docs",
        1,
        &[
            ("id", oid::INT4, -1, true),
            ("title", oid::TEXT, -1, false),
            ("body", oid::TEXT, -1, false),
            ("meta", oid::JSONB, -1, false),
        ],
    );
    let big = "lorem ipsum ".repeat(1000);
    let big2 = "dolor sit amet ".repeat(1000);
    let u = Value::Unchanged;
    let tx = |s: &str| Value::from(s);
    let mut t = Target::fresh(h, SCHEMA, DeleteMode::Soft).await;
    t.apply(&[txn(
        10,
        vec![
            ins(
                &r,
                &[Some("1"), Some("one"), Some(&big), Some("{\"k\": 1}")],
            ),
            ins(
                &r,
                &[Some("3"), Some("three"), Some(&big), Some("{\"k\": 3}")],
            ),
        ],
    )])
    .await;
    t.apply(&[
        // Across batches.
        txn(
            20,
            vec![upd(&r, vec![tx("1"), tx("one v2"), u.clone(), u.clone()])],
        ),
        // Within the batch: inserted, then updated without the large values.
        txn(
            30,
            vec![ins(
                &r,
                &[Some("2"), Some("two"), Some(&big2), Some("[1, 2]")],
            )],
        ),
        txn(
            40,
            vec![upd(&r, vec![tx("2"), tx("two v2"), u.clone(), u.clone()])],
        ),
        // Within the batch: the large value changed, then an update leaves it unchanged.
        txn(
            50,
            vec![upd(&r, vec![tx("3"), tx("three v2"), tx(&big2), u.clone()])],
        ),
        txn(
            60,
            vec![upd(&r, vec![tx("3"), tx("three v3"), u.clone(), u.clone()])],
        ),
    ])
    .await;
    let spec = Spec::new(&r, true);
    assert_eq!(
        t.rows(&spec).await,
        spec.rows(&[
            (
                &[Some("1"), Some("one v2"), Some(&big), Some("{\"k\": 1}")],
                false,
                20
            ),
            (
                &[Some("2"), Some("two v2"), Some(&big2), Some("[1, 2]")],
                false,
                40
            ),
            (
                &[Some("3"), Some("three v3"), Some(&big2), Some("{\"k\": 3}")],
                false,
                60
            ),
        ])
    );
}

/// A key change of a row loaded by an earlier batch, whose large values arrive unchanged
/// (`REPLICA IDENTITY DEFAULT`): the new key takes them from the target's row of the old key,
/// also after a later update of the new key or a second key change in the same batch, while
/// the old key is deleted in the same batch.
pub async fn unchanged_toast_key_change<H: Harness>(h: &mut H) {
    let r = relation(
        "moved_docs",
        1,
        &[
            ("id", oid::INT4, -1, true),
            ("title", oid::TEXT, -1, false),
            ("body", oid::TEXT, -1, false),
            ("meta", oid::JSONB, -1, false),
            ("data", oid::BYTEA, -1, false),
        ],
    );
    let big = "lorem ipsum ".repeat(1000);
    let big2 = "dolor sit amet ".repeat(1000);
    let u = Value::Unchanged;
    let tx = |s: &str| Value::from(s);
    let moved = |old: &str, new: Vec<Value>| Change {
        relation: r.clone(),
        op: Op::Update,
        new: Some(new),
        old: Some(vec![tx(old)]),
    };
    for mode in [DeleteMode::Soft, DeleteMode::Hard] {
        let mut t = Target::fresh(h, SCHEMA, mode).await;
        let one = [
            Some("1"),
            Some("one"),
            Some(big.as_str()),
            Some("{\"k\": 1}"),
            Some("\\x00ff10"),
        ];
        let two = [
            Some("2"),
            Some("two"),
            Some(big2.as_str()),
            Some("[1, 2]"),
            None,
        ];
        t.apply(&[txn(10, vec![ins(&r, &one), ins(&r, &two)])])
            .await;
        t.apply(&[
            txn(
                20,
                vec![moved(
                    "1",
                    vec![tx("7"), tx("seven"), u.clone(), u.clone(), u.clone()],
                )],
            ),
            // Moved, updated again, then moved again: still the target's row 2.
            txn(
                30,
                vec![moved(
                    "2",
                    vec![tx("8"), tx("eight"), u.clone(), tx("{}"), u.clone()],
                )],
            ),
            txn(
                40,
                vec![upd(
                    &r,
                    vec![tx("8"), tx("eight v2"), u.clone(), u.clone(), u.clone()],
                )],
            ),
            txn(
                50,
                vec![moved(
                    "8",
                    vec![tx("9"), tx("nine"), u.clone(), u.clone(), tx("\\x01")],
                )],
            ),
        ])
        .await;
        let seven = [
            Some("7"),
            Some("seven"),
            Some(big.as_str()),
            Some("{\"k\": 1}"),
            Some("\\x00ff10"),
        ];
        let eight = [Some("8"), None, None, None, None];
        let nine = [
            Some("9"),
            Some("nine"),
            Some(big2.as_str()),
            Some("{}"),
            Some("\\x01"),
        ];
        let spec = Spec::new(&r, true);
        let expected = match mode {
            DeleteMode::Soft => spec.rows(&[
                (&one, true, 20),
                (&two, true, 30),
                (&seven, false, 20),
                (&eight, true, 50),
                (&nine, false, 50),
            ]),
            DeleteMode::Hard => spec.rows(&[(&seven, false, 20), (&nine, false, 50)]),
        };
        assert_eq!(t.rows(&spec).await, expected, "{mode:?} deletes");
    }
}

/// One mapped type: column name, type OID, type modifier, values (PostgreSQL text).
type TypeCase = (&'static str, u32, i32, &'static [Option<&'static str>]);

/// Every mapped type with its edge values (values every target here holds exactly).
fn type_cases() -> Vec<TypeCase> {
    vec![
        ("b", oid::BOOL, -1, &[Some("t"), Some("f")]),
        (
            "i2",
            oid::INT2,
            -1,
            &[Some("-32768"), Some("32767"), Some("0")],
        ),
        (
            "i4",
            oid::INT4,
            -1,
            &[Some("-2147483648"), Some("2147483647")],
        ),
        (
            "i8",
            oid::INT8,
            -1,
            &[Some("-9223372036854775808"), Some("9223372036854775807")],
        ),
        (
            "f4",
            oid::FLOAT4,
            -1,
            &[
                Some("3.4028235e+38"),
                Some("-1.1754944e-38"),
                Some("1e-45"),
                Some("0.1"),
            ],
        ),
        (
            "f8",
            oid::FLOAT8,
            -1,
            &[
                Some("1.7976931348623157e+308"),
                Some("5e-324"),
                Some("-2.2250738585072014e-308"),
                Some("0.1"),
            ],
        ),
        (
            "n38",
            oid::NUMERIC,
            numeric_mod(38, 10),
            &[
                Some("9999999999999999999999999999.9999999999"),
                Some("-9999999999999999999999999999.9999999999"),
                Some("0.0000000001"),
                Some("0.0000000000"),
            ],
        ),
        (
            "n52",
            oid::NUMERIC,
            numeric_mod(5, 2),
            &[Some("-999.99"), Some("1.50")],
        ),
        (
            "n",
            oid::NUMERIC,
            -1,
            &[
                Some("123456789012345678901234567890.123456789012345678901234567890"),
                Some("-0.000000000000000000000000000000000000000001"),
                Some("NaN"),
                Some("Infinity"),
                Some("-Infinity"),
                Some("42"),
            ],
        ),
        (
            "txt",
            oid::TEXT,
            -1,
            &[
                Some("it's \"quoted\" ünï 表 😀"),
                Some("back\\slash\nnew line\ttab\r"),
                Some(""),
                Some("NULL"),
            ],
        ),
        ("vc", oid::VARCHAR, 14, &[Some(" y "), Some("ten chars!")]),
        ("ch", oid::BPCHAR, 9, &[Some("ab   "), Some("     ")]),
        (
            "by",
            oid::BYTEA,
            -1,
            &[
                Some("\\x"),
                Some("\\x00ff00"),
                Some("\\x00"),
                Some("\\xdeadbeef"),
            ],
        ),
        (
            "u",
            oid::UUID,
            -1,
            &[
                Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
                Some("00000000-0000-0000-0000-000000000000"),
                Some("ffffffff-ffff-ffff-ffff-ffffffffffff"),
            ],
        ),
        (
            "j",
            oid::JSON,
            -1,
            &[
                Some("{\"a\": [1, 2.5, {\"b\": null}], \"c\": \"x\\\"y\\\\z\"}"),
                Some("[]"),
                Some("\"s\""),
                Some("{\"nested\": {\"deeper\": {\"deepest\": [true, false]}}}"),
            ],
        ),
        (
            "jb",
            oid::JSONB,
            -1,
            &[
                Some("{\"a\": [1, 2.5, {\"b\": null}], \"bb\": {\"ü\": \"表\"}}"),
                Some("[]"),
                Some("null"),
            ],
        ),
        (
            "d",
            oid::DATE,
            -1,
            &[
                Some("2024-02-29"),
                Some("1970-01-01"),
                Some("1969-12-31"),
                Some("0044-03-15 BC"),
                Some("9999-12-31"),
            ],
        ),
        (
            "ts",
            oid::TIMESTAMP,
            -1,
            &[
                Some("2024-01-02 03:04:05.123456"),
                Some("1969-12-31 23:59:59.999999"),
                Some("0044-03-15 12:00:00.000001 BC"),
                Some("2262-04-11 23:47:16.854776"),
            ],
        ),
        (
            "tstz",
            oid::TIMESTAMPTZ,
            -1,
            &[
                Some("2024-01-02 03:04:05.123456+05:30"),
                Some("1900-01-01 00:00:00+05:53:28"),
                Some("2000-01-01 00:00:00.000001+00"),
                Some("1969-12-31 23:59:59.999999-01"),
            ],
        ),
        (
            "ai",
            oid::INT4_ARRAY,
            -1,
            &[Some("{1,2,NULL}"), Some("{}"), Some("{NULL}")],
        ),
        (
            "am",
            oid::INT8_ARRAY,
            -1,
            &[
                Some("{{1,2},{3,NULL}}"),
                Some("{}"),
                Some("{{-9223372036854775808}}"),
            ],
        ),
        (
            "at",
            oid::TEXT_ARRAY,
            -1,
            &[
                Some("{\"a b\",\"c\\\"d\",NULL,\"NULL\",\"e\\\\f\",\"\",\"{x}\",\"g,h\"}"),
                Some("{ünï,表}"),
            ],
        ),
        (
            "ab",
            oid::BYTEA_ARRAY,
            -1,
            &[Some("{\"\\\\x00ff\",NULL,\"\\\\x\"}"), Some("{}")],
        ),
        (
            "an",
            oid::NUMERIC_ARRAY,
            numeric_mod(5, 2),
            &[Some("{1.50,-999.99,NULL}"), Some("{}")],
        ),
        (
            "af",
            oid::FLOAT8_ARRAY,
            -1,
            &[Some("{0.1,NULL,-2.5e-300}"), Some("{}")],
        ),
        ("abo", oid::BOOL_ARRAY, -1, &[Some("{t,f,NULL}")]),
        (
            "au",
            oid::UUID_ARRAY,
            -1,
            &[Some("{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}")],
        ),
        (
            "ad",
            oid::DATE_ARRAY,
            -1,
            &[Some("{2024-01-01,NULL,\"0044-03-15 BC\"}")],
        ),
        (
            "atz",
            oid::TIMESTAMPTZ_ARRAY,
            -1,
            &[Some("{\"2024-01-02 03:04:05.5+01\",NULL}")],
        ),
        (
            "ajb",
            oid::JSONB_ARRAY,
            -1,
            &[Some("{\"{\\\"a\\\": 1}\",NULL,\"[1, 2]\"}")],
        ),
    ]
}

/// A table with the given type cases as columns after an `id` key; one row per value index
/// (columns with fewer values are NULL in later rows). Returns the relation and the rows.
fn type_table(name: &str, cases: &[TypeCase]) -> (Arc<RelationSchema>, Vec<Vec<Option<String>>>) {
    let mut columns: Vec<Col<'_>> = vec![("id", oid::INT4, -1, true)];
    columns.extend(cases.iter().map(|c| (c.0, c.1, c.2, false)));
    let r = relation(name, 1, &columns);
    let n = cases.iter().map(|c| c.3.len()).max().unwrap_or(0);
    let rows = (0..n)
        .map(|i| {
            let mut row = vec![Some((i + 1).to_string())];
            row.extend(
                cases
                    .iter()
                    .map(|c| c.3.get(i).copied().flatten().map(String::from)),
            );
            row
        })
        .collect();
    (r, rows)
}

/// Loads `cases` and reads them back; the values arrive by insert in one batch and by update
/// in a second.
async fn round_trip<H: Harness>(t: &mut Target<'_, H>, name: &str, cases: &[TypeCase]) {
    let (r, rows) = type_table(name, cases);
    let refs: Vec<Vec<Option<&str>>> = rows
        .iter()
        .map(|row| row.iter().map(|v| v.as_deref()).collect())
        .collect();
    // First as inserts with every value NULL, then as updates with the values, so both the
    // insert and the update path carry them: insert the real values under ids offset by 100.
    let shifted: Vec<Vec<Option<String>>> = rows
        .iter()
        .map(|row| {
            let mut row = row.clone();
            let id: i64 = row[0].as_deref().and_then(|s| s.parse().ok()).unwrap_or(0);
            row[0] = Some((id + 100).to_string());
            row
        })
        .collect();
    let shifted_refs: Vec<Vec<Option<&str>>> = shifted
        .iter()
        .map(|row| row.iter().map(|v| v.as_deref()).collect())
        .collect();
    let nulls: Vec<Vec<Option<&str>>> = refs
        .iter()
        .map(|row| {
            let mut n = vec![None; row.len()];
            n[0] = row[0];
            n
        })
        .collect();
    let mut inserts: Vec<Change> = nulls.iter().map(|row| ins(&r, row)).collect();
    inserts.extend(shifted_refs.iter().map(|row| ins(&r, row)));
    t.apply(&[txn(10, inserts)]).await;
    t.apply(&[txn(20, refs.iter().map(|row| upd(&r, vals(row))).collect())])
        .await;

    let spec = Spec::new(&r, false);
    let mut expected: Vec<(&[Option<&str>], bool, u64)> =
        refs.iter().map(|row| (&row[..], false, 0)).collect();
    expected.extend(shifted_refs.iter().map(|row| (&row[..], false, 0)));
    let got = t.rows(&spec).await;
    let want = spec.rows(&expected);
    if got != want {
        let mut diffs = Vec::new();
        for (g, w) in got.iter().zip(&want) {
            for ((c, _), (gv, wv)) in spec.columns.iter().zip(g.iter().zip(w)) {
                if gv != wv {
                    diffs.push(format!(
                        "row id {:?} column {c:?}: expected {wv:?}, got {gv:?}",
                        w[0]
                    ));
                }
            }
        }
        panic!(
            "{name}: {} rows read, {} expected; differences:\n{}",
            got.len(),
            want.len(),
            diffs.join("\n")
        );
    }
}

/// Loads cases a target does not hold exactly and expects `apply` to refuse them.
async fn refused<H: Harness>(t: &mut Target<'_, H>, name: &str, cases: &[TypeCase]) {
    for case in cases {
        let (r, rows) = type_table(&format!("{name}_{}", case.0), std::slice::from_ref(case));
        let changes = rows
            .iter()
            .map(|row| ins(&r, &row.iter().map(|v| v.as_deref()).collect::<Vec<_>>()))
            .collect();
        let (batch, cp) = build(&Checkpoint::default(), &[txn(10, changes)], 1);
        let result = t.try_apply(batch, &cp).await;
        assert!(
            result.is_err(),
            "column {:?}: the harness says the target cannot hold {:?}, but apply accepted them",
            case.0,
            case.3
        );
        t.dest = None;
    }
}

/// Every column NULL: on insert, and on an update of a row that held values.
pub async fn nulls_everywhere<H: Harness>(h: &mut H) {
    let cases = type_cases();
    let mut columns: Vec<Col<'_>> = vec![("id", oid::INT4, -1, true)];
    columns.extend(cases.iter().map(|c| (c.0, c.1, c.2, false)));
    let r = relation("nulls", 1, &columns);
    let full: Vec<Option<&str>> = std::iter::once(Some("2"))
        .chain(cases.iter().map(|c| c.3[0]))
        .collect();
    let mut none: Vec<Option<&str>> = vec![None; columns.len()];
    none[0] = Some("1");
    let mut t = Target::fresh(h, SCHEMA, DeleteMode::Soft).await;
    t.apply(&[txn(10, vec![ins(&r, &none), ins(&r, &full)])])
        .await;
    let spec = Spec::new(&r, true);
    assert_eq!(
        t.rows(&spec).await,
        spec.rows(&[(&none, false, 10), (&full, false, 10)])
    );
    let mut none2 = none.clone();
    none2[0] = Some("2");
    t.apply(&[txn(20, vec![upd(&r, vals(&none2))])]).await;
    assert_eq!(
        t.rows(&spec).await,
        spec.rows(&[(&none, false, 10), (&none2, false, 20)])
    );
}

/// Every mapped type's edge values round-trip (see [`canonical`] for the comparison).
pub async fn edge_values<H: Harness>(h: &mut H) {
    let bc = h.supports().bc_datetimes;
    let mut t = Target::fresh(h, SCHEMA, DeleteMode::Soft).await;
    if bc {
        round_trip(&mut t, "types", &type_cases()).await;
        return;
    }
    // BC values apart: refused, the rest round-trips.
    let mut kept = Vec::new();
    let mut before_year_one = Vec::new();
    for (name, oid, typmod, values) in type_cases() {
        let scalar = [oid::DATE, oid::TIMESTAMP, oid::TIMESTAMPTZ].contains(&oid);
        let (bc, ad): (Vec<_>, Vec<_>) = values
            .iter()
            .partition(|v| scalar && v.is_some_and(|v| v.contains(" BC")));
        let leak = |v: Vec<&Option<&'static str>>| -> &'static [Option<&'static str>] {
            Box::leak(
                v.into_iter()
                    .copied()
                    .collect::<Vec<_>>()
                    .into_boxed_slice(),
            )
        };
        if !bc.is_empty() {
            before_year_one.push((name, oid, typmod, leak(bc)));
        }
        kept.push((name, oid, typmod, leak(ad)));
    }
    round_trip(&mut t, "types", &kept).await;
    refused(&mut t, "bc", &before_year_one).await;
}

fn float_special_cases() -> Vec<TypeCase> {
    vec![
        (
            "f4",
            oid::FLOAT4,
            -1,
            &[Some("NaN"), Some("Infinity"), Some("-Infinity"), Some("-0")],
        ),
        (
            "f8",
            oid::FLOAT8,
            -1,
            &[Some("NaN"), Some("Infinity"), Some("-Infinity"), Some("-0")],
        ),
        (
            "af",
            oid::FLOAT8_ARRAY,
            -1,
            &[Some("{NaN,-Infinity,-0,NULL}")],
        ),
    ]
}

/// Float `NaN`, `±Infinity` and `-0` round-trip, or are refused by targets without them.
pub async fn float_special_values<H: Harness>(h: &mut H) {
    let supported = h.supports().float_special;
    let mut t = Target::fresh(h, SCHEMA, DeleteMode::Soft).await;
    if supported {
        round_trip(&mut t, "floats", &float_special_cases()).await;
    } else {
        refused(&mut t, "floats", &float_special_cases()).await;
    }
}

fn numeric_special_cases() -> Vec<TypeCase> {
    vec![(
        "n38",
        oid::NUMERIC,
        numeric_mod(38, 10),
        &[Some("NaN"), Some("1.0000000000")],
    )]
}

/// Numeric `NaN` in a `numeric(38,10)` column round-trips, or is refused by targets whose
/// decimal type lacks it.
pub async fn numeric_special_values<H: Harness>(h: &mut H) {
    let supported = h.supports().numeric_special_in_decimal;
    let mut t = Target::fresh(h, SCHEMA, DeleteMode::Soft).await;
    if supported {
        round_trip(&mut t, "numerics", &numeric_special_cases()).await;
    } else {
        refused(&mut t, "numerics", &numeric_special_cases()).await;
    }
}

fn infinite_datetime_cases() -> Vec<TypeCase> {
    vec![
        ("d", oid::DATE, -1, &[Some("infinity"), Some("-infinity")]),
        (
            "ts",
            oid::TIMESTAMP,
            -1,
            &[Some("infinity"), Some("-infinity")],
        ),
        (
            "tstz",
            oid::TIMESTAMPTZ,
            -1,
            &[Some("infinity"), Some("-infinity")],
        ),
    ]
}

/// `infinity` and `-infinity` dates and timestamps round-trip, or are refused.
pub async fn infinite_datetimes<H: Harness>(h: &mut H) {
    let supported = h.supports().infinite_datetimes;
    let mut t = Target::fresh(h, SCHEMA, DeleteMode::Soft).await;
    if supported {
        round_trip(&mut t, "infinities", &infinite_datetime_cases()).await;
    } else {
        refused(&mut t, "infinities", &infinite_datetime_cases()).await;
    }
}

/// Schema, table and column names with quotes, spaces, unicode, reserved words, 63 bytes and
/// an injection attempt: every statement the destination runs (create, insert, update, delete,
/// truncate, added column) quotes them.
pub async fn hostile_identifiers<H: Harness>(h: &mut H) {
    let quotes = h.supports().quotes_in_names;
    let name = |n: &str| {
        if quotes {
            n.to_owned()
        } else {
            n.replace(['"', '\''], "_")
        }
    };
    let long_table = "t".repeat(63);
    // 63 bytes of two-byte characters and one ASCII one.
    let long_unicode = format!("{}x", "é".repeat(31));
    let my_table = name("my \"table\"");
    let its = name("it's");
    let tables = [
        "select",
        my_table.as_str(),
        "ünï cødé 表",
        long_table.as_str(),
        its.as_str(),
        "a.b",
        long_unicode.as_str(),
    ];
    let key = "; DROP TABLE x; --";
    let quoted_col = name("a \"quoted\" col");
    let quoted_col = quoted_col.as_str();
    let long_col = "c".repeat(63);
    let weird = name("we\"ird s");
    let x = name("ünï-表 'x'");
    for schema in [weird.as_str(), "select", x.as_str()] {
        for mode in [DeleteMode::Soft, DeleteMode::Hard] {
            let mut t = Target::fresh(h, schema, mode).await;
            // Each table's changes come after the previous table's: the loader skips
            // transactions its checkpoint already covers.
            for (n, table) in (1u64..).zip(tables) {
                let at = |lsn: u64| n * 100 + lsn;
                let v1 = relation(
                    table,
                    1,
                    &[
                        (key, oid::INT4, -1, true),
                        ("select", oid::TEXT, -1, false),
                        (quoted_col, oid::INT8, -1, false),
                        ("ünï", oid::INT4_ARRAY, -1, false),
                    ],
                );
                let v2 = relation(
                    table,
                    2,
                    &[
                        (key, oid::INT4, -1, true),
                        ("select", oid::TEXT, -1, false),
                        (quoted_col, oid::INT8, -1, false),
                        ("ünï", oid::INT4_ARRAY, -1, false),
                        (&long_col, oid::BYTEA, -1, false),
                    ],
                );
                t.apply(&[txn(
                    at(10),
                    vec![
                        ins(
                            &v1,
                            &[Some("1"), Some("a'b\"c"), Some("1"), Some("{1,NULL}")],
                        ),
                        ins(&v1, &[Some("2"), Some("x"), Some("2"), None]),
                    ],
                )])
                .await;
                t.apply(&[
                    txn(
                        at(20),
                        vec![
                            upd(
                                &v2,
                                vals(&[
                                    Some("1"),
                                    Some("b"),
                                    Some("3"),
                                    Some("{2}"),
                                    Some("\\x00"),
                                ]),
                            ),
                            del(&v2, &[Some("2")]),
                            ins(&v2, &[Some("3"), Some("'); --"), None, None, Some("\\x")]),
                        ],
                    ),
                    txn(at(30), vec![truncate(&v2)]),
                    txn(
                        at(40),
                        vec![ins(&v2, &[Some("4"), Some("after"), Some("4"), None, None])],
                    ),
                ])
                .await;
                let columns = t.columns(table).await;
                for c in [key, "select", quoted_col, "ünï", long_col.as_str()] {
                    assert!(
                        columns.iter().any(|n| n == c),
                        "{schema:?}.{table:?}: column {c:?} missing from {columns:?}"
                    );
                }
                let spec = Spec::new(&v2, false);
                let mut expected: Vec<(&[Option<&str>], bool, u64)> =
                    vec![(&[Some("4"), Some("after"), Some("4"), None, None], false, 0)];
                // Row 3 was inserted and truncated in one batch: it never reaches the target.
                let gone: [(&[Option<&str>], bool, u64); 2] =
                    [(&[Some("1")], true, 0), (&[Some("2")], true, 0)];
                if mode == DeleteMode::Soft {
                    expected.extend(gone);
                }
                assert_eq!(
                    t.rows(&spec).await,
                    spec.rows(&expected),
                    "{schema:?}.{table:?}, {mode:?} deletes"
                );
            }
            assert!(t.reopen().await.is_some(), "{schema:?}: checkpoint stored");
        }
    }
}

/// Parts of a large source transaction (`apply_part`) commit with the `apply` that ends it:
/// after a crash before that (the destination dropped) nothing of them remains, and rows of a
/// later part at the same position win over the earlier part's.
pub async fn parts_commit_with_their_end<H: Harness>(h: &mut H) {
    let r = items(1);
    let mut t = Target::fresh(h, SCHEMA, DeleteMode::Soft).await;
    let first = t.apply(&[txn(10, vec![ins(&r, &A1)])]).await;
    t.apply_part(&[txn(50, vec![ins(&r, &B2)])]).await;
    assert_eq!(
        t.reopen().await,
        Some(first.clone()),
        "a crash keeps the checkpoint"
    );
    let spec = Spec::new(&r, true);
    assert_eq!(
        t.rows(&spec).await,
        spec.rows(&[(&A1, false, 10)]),
        "nothing of a part without its end remains"
    );
    let b2v: Image<'static> = [Some("2"), Some("bread v2"), Some("21"), Some("2.50")];
    t.apply_part(&[txn(50, vec![ins(&r, &B2), ins(&r, &C3)])])
        .await;
    let end = t.apply(&[txn(50, vec![upd(&r, vals(&b2v))])]).await;
    assert_eq!(t.reopen().await, Some(end));
    assert_eq!(
        t.rows(&spec).await,
        spec.rows(&[(&A1, false, 10), (&b2v, false, 50), (&C3, false, 50)]),
        "the parts commit with their end, the later row at the same position wins"
    );
}

/// `discard` rolls back the parts applied since the last `apply`: the next batch commits
/// without them.
pub async fn discard_leaves_nothing<H: Harness>(h: &mut H) {
    let r = items(1);
    let mut t = Target::fresh(h, SCHEMA, DeleteMode::Soft).await;
    t.apply(&[txn(10, vec![ins(&r, &A1)])]).await;
    t.apply_part(&[txn(50, vec![ins(&r, &B2)])]).await;
    t.discard().await;
    let next = t.apply(&[txn(60, vec![ins(&r, &C3)])]).await;
    assert_eq!(t.reopen().await, Some(next));
    let spec = Spec::new(&r, true);
    assert_eq!(
        t.rows(&spec).await,
        spec.rows(&[(&A1, false, 10), (&C3, false, 60)]),
        "the discarded part left nothing"
    );
}

/// A value the target refuses (a date that is not one) fails the batch with a definite error
/// that names the column and parks its table alone; the batch leaves nothing behind.
pub async fn refused_value_parks_its_table<H: Harness>(h: &mut H)
where
    <H::Dest as Destination>::Error: sluice_core::Classify,
{
    use sluice_core::{Classify as _, ErrorClass};
    let r = items(1);
    let dated = relation(
        "dated",
        1,
        &[("id", oid::INT4, -1, true), ("day", oid::DATE, -1, false)],
    );
    let mut t = Target::fresh(h, SCHEMA, DeleteMode::Soft).await;
    let first = t
        .apply(&[txn(
            10,
            vec![ins(&r, &A1), ins(&dated, &[Some("1"), Some("2024-01-01")])],
        )])
        .await;
    let (batch, cp) = build(
        &first,
        &[txn(
            20,
            vec![ins(&r, &B2), ins(&dated, &[Some("2"), Some("2024-13-45")])],
        )],
        t.offset + 1,
    );
    let err = t
        .try_apply(batch, &cp)
        .await
        .expect_err("the value is refused");
    let message = chain(&err);
    assert_eq!(err.class(), ErrorClass::Definite, "{message}");
    assert_eq!(
        err.wedged_table(),
        Some(&TableId::new("public", "dated")),
        "the error parks the table of the value alone: {message}"
    );
    assert!(
        message.contains("\"day\""),
        "the error names the column: {message}"
    );
    assert!(
        !message.contains("2024-13-45"),
        "the error never quotes the value: {message}"
    );
    assert_eq!(t.reopen().await, Some(first), "the checkpoint is as it was");
    let spec = Spec::new(&r, true);
    assert_eq!(
        t.rows(&spec).await,
        spec.rows(&[(&A1, false, 10)]),
        "the other table's rows of the failed batch are not applied"
    );
}

/// The checkpoint stored with a batch is what a new destination's `open` returns: LSNs above
/// 2^31 and 2^32, several partitions, offsets and names with quotes.
pub async fn checkpoint_round_trip<H: Harness>(h: &mut H) {
    let r = items(1);
    let mut t = Target::fresh(h, SCHEMA, DeleteMode::Soft).await;
    assert_eq!(t.reopen().await, None, "a fresh target has no checkpoint");
    let high = 0x16_B374_D848;
    let (batch, mut cp) = build(
        &Checkpoint::default(),
        &[
            txn(0x8000_0001, vec![ins(&r, &A1)]),
            txn(high, vec![ins(&r, &B2)]),
        ],
        41,
    );
    assert_eq!(cp.applied_lsn, Lsn(high + 1));
    cp.position
        .partitions
        .insert("shard-\"2\" 'x'".into(), "4957'1\\n".into());
    cp.position.partitions.insert(
        "shardId-000000000001".into(),
        "49590338271490256608559692538361571095921575989136588898".into(),
    );
    t.apply_batch(batch, &cp).await;
    assert_eq!(t.reopen().await, Some(cp.clone()));
    let spec = Spec::new(&r, true);
    assert_eq!(
        t.rows(&spec).await,
        spec.rows(&[(&A1, false, 0x8000_0001), (&B2, false, high)])
    );

    // The next batch replaces it; a third destination sees the newer one.
    let (batch, next) = build(
        &cp,
        &[txn(high + 0x1_0000_0000, vec![upd(&r, vals(&C3))])],
        42,
    );
    t.apply_batch(batch, &next).await;
    assert_eq!(t.reopen().await, Some(next.clone()));
    assert_eq!(t.reopen().await, Some(next));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        let c = |ty: PgType, text: &str| canonical(&ty, text);
        assert_eq!(c(PgType::Bool, "t"), "true");
        assert_eq!(c(PgType::Float4, "-0"), "-0.0");
        assert_eq!(c(PgType::Float8, "Infinity"), "inf");
        assert_eq!(c(PgType::Float8, "NaN"), "NaN");
        assert_eq!(c(PgType::Bytea, "\\x00FF"), "00ff");
        assert_eq!(c(PgType::Bytea, "\\x"), "");
        assert_eq!(c(PgType::Date, "1970-01-02"), "1");
        assert_eq!(c(PgType::Date, "1969-12-31"), "-1");
        assert_eq!(c(PgType::Date, "2000-03-01"), "11017");
        // 1 BC is year 0, a leap year: 0001-01-01 minus 366 days.
        assert_eq!(parse_date("0001-01-01 BC"), parse_date("0001-01-01") - 366);
        assert_eq!(c(PgType::Timestamp, "1970-01-01 00:00:01.5"), "1500000");
        assert_eq!(c(PgType::TimestampTz, "1970-01-01 01:00:00+01"), "0");
        assert_eq!(
            c(PgType::TimestampTz, "1970-01-01 05:53:28.000001+05:53:28"),
            "1"
        );
        assert_eq!(c(PgType::TimestampTz, "-infinity"), "-infinity");
        assert_eq!(
            c(PgType::Json, "{\"b\": [1, 2.50], \"a\": null}"),
            "{\"a\":null,\"b\":[1,2.5]}"
        );
        assert_eq!(
            c(
                PgType::Array(Box::new(PgType::Text)),
                "{\"a b\",\"c\\\"d\",NULL,\"NULL\",\"e\\\\f\",\"\",\"{x}\",\"g,h\"}"
            ),
            r#"["a b","c\"d",null,"NULL","e\\f","","{x}","g,h"]"#
        );
        assert_eq!(
            c(PgType::Array(Box::new(PgType::Int8)), "{{1,2},{3,NULL}}"),
            r#"[["1","2"],["3",null]]"#
        );
        assert_eq!(
            c(
                PgType::Array(Box::new(PgType::Bytea)),
                "{\"\\\\x00ff\",NULL}"
            ),
            r#"["00ff",null]"#
        );
        assert_eq!(c(PgType::Array(Box::new(PgType::Int4)), "{}"), "[]");
    }

    #[test]
    fn harness_text_is_normalised() {
        assert_eq!(normalise(&PgType::Float8, "-0.0"), "-0.0");
        assert_eq!(normalise(&PgType::Float4, "nan"), "NaN");
        assert_eq!(normalise(&PgType::Float8, "-inf"), "-inf");
        assert_eq!(
            normalise(
                &PgType::Array(Box::new(PgType::Jsonb)),
                r#"["{\"a\": 1}", null]"#
            ),
            r#"["{\"a\":1}",null]"#
        );
    }
}
