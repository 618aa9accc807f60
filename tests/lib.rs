//! Helpers of the end-to-end tests: run the real `sluice` binary against a throwaway
//! PostgreSQL and compare the DuckDB warehouse with the source, value by value.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use sluice_testkit::TestDatabase;

/// The `sluice` binary built next to this test binary.
pub fn sluice_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/e2e-<hash> -> target/<profile>/sluice
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("sluice"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p sluice, or run the workspace's tests)",
        bin.display()
    );
    bin
}

/// A pipeline under test: a config file in a temp dir pointing at `db`.
pub struct Pipeline {
    pub dir: tempfile_dir::Dir,
    pub config: PathBuf,
    pub warehouse: PathBuf,
}

impl Pipeline {
    /// Writes a config capturing `tables` of `db` into a DuckDB file in a fresh temp dir.
    pub fn new(db: &TestDatabase, tables: &[&str], extra: &str) -> Pipeline {
        let dir = tempfile_dir::Dir::new();
        let warehouse = dir.path().join("warehouse.duckdb");
        let config = dir.path().join("sluice.toml");
        let tables = tables
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let text = format!(
            "[source]\nurl = \"{url}\"\ntables = [{tables}]\nslot = \"s_{slot}\"\npublication = \"sluice_pub\"\n\n\
             [log]\nkind = \"local\"\npath = \"{log}\"\n\n\
             [target]\nkind = \"duckdb\"\npath = \"{wh}\"\nschema = \"raw\"\n\n\
             [load]\nflush_interval_ms = 200\n{extra}\n",
            url = db.url(),
            slot = db.name(),
            log = dir.path().join("log").display(),
            wh = warehouse.display(),
        );
        std::fs::write(&config, text).expect("write config");
        Pipeline {
            dir,
            config,
            warehouse,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(sluice_bin());
        c.args(args)
            .arg("-c")
            .arg(&self.config)
            .env("SLUICE_LOG", "info,sluice=debug");
        c
    }

    /// Runs `sluice sync --until-caught-up` and returns its output; panics on failure.
    pub fn sync_until_caught_up(&self) -> Output {
        let out = self
            .command(&["sync", "--until-caught-up"])
            .output()
            .expect("run sluice");
        assert!(
            out.status.success(),
            "sluice sync failed ({:?}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Starts `sluice sync` in the background, logging to `log`.
    pub fn spawn_sync(&self, log: &Path) -> Child {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        self.command(&["sync"])
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn sluice")
    }

    /// Opens the warehouse read-only.
    pub fn warehouse(&self) -> duckdb::Connection {
        let config = duckdb::Config::default()
            .access_mode(duckdb::AccessMode::ReadOnly)
            .expect("read-only config");
        duckdb::Connection::open_with_flags(&self.warehouse, config).expect("open warehouse")
    }
}

/// How a column is compared: each side renders it to the same canonical text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Integers, text, numeric, date, uuid: the text forms agree.
    Plain,
    Bool,
    /// timestamp / timestamptz: microseconds since the epoch.
    Timestamp,
    /// bytea: upper-case hex.
    Bytes,
    /// json/jsonb: PostgreSQL's jsonb text on both sides.
    Json,
    /// Arrays: as JSON arrays.
    Array,
    /// float4/float8: the number, printed the same way on both sides.
    Float,
}

/// Applies the Rust-side part of canonicalisation (floats print differently per engine).
fn canonical(columns: &[(&str, Kind)], mut row: Vec<Option<String>>) -> Vec<Option<String>> {
    for ((_, kind), value) in columns.iter().zip(row.iter_mut()) {
        if *kind == Kind::Float
            && let Some(v) = value
            && let Ok(f) = v.parse::<f64>()
        {
            *v = format!("{f:?}");
        }
    }
    row
}

fn pg_expr(column: &str, kind: Kind) -> String {
    let c = format!("\"{}\"", column.replace('"', "\"\""));
    match kind {
        Kind::Plain => format!("{c}::text"),
        Kind::Bool => format!("CASE WHEN {c} THEN 'true' WHEN NOT {c} THEN 'false' END"),
        Kind::Timestamp => format!("(extract(epoch FROM {c}) * 1000000)::bigint::text"),
        Kind::Bytes => format!("upper(encode({c}, 'hex'))"),
        Kind::Json => format!("{c}::jsonb::text"),
        Kind::Array => format!("array_to_json({c})::text"),
        Kind::Float => format!("{c}::text"),
    }
}

fn duck_expr(column: &str, kind: Kind) -> String {
    let c = format!("\"{}\"", column.replace('"', "\"\""));
    match kind {
        Kind::Plain => format!("CAST({c} AS VARCHAR)"),
        Kind::Bool => format!("CAST({c} AS VARCHAR)"),
        Kind::Timestamp => format!("CAST(epoch_us({c}) AS VARCHAR)"),
        Kind::Bytes => format!("upper(hex({c}))"),
        // Stored as the source's jsonb text; fall back to the column text.
        Kind::Json => format!("CAST({c} AS VARCHAR)"),
        Kind::Array => format!("CAST(to_json({c}) AS VARCHAR)"),
        Kind::Float => format!("CAST({c} AS VARCHAR)"),
    }
}

/// The rows of `table` at the source, canonical, in no particular order.
pub async fn source_rows(
    db: &TestDatabase,
    table: &str,
    columns: &[(&str, Kind)],
) -> Vec<Vec<Option<String>>> {
    let select = columns
        .iter()
        .map(|(c, k)| pg_expr(c, *k))
        .collect::<Vec<_>>()
        .join(", ");
    let client = db.client().await.expect("connect");
    client
        .batch_execute("SET TimeZone = 'UTC'")
        .await
        .expect("set tz");
    let sql = format!("SELECT {select} FROM public.\"{table}\"");
    client
        .query(&sql, &[])
        .await
        .expect("query source")
        .iter()
        .map(|r| canonical(columns, (0..columns.len()).map(|i| r.get(i)).collect()))
        .collect()
}

/// The live (not soft-deleted) rows of `table` in the warehouse, canonical, in no particular
/// order.
pub fn target_rows(
    wh: &duckdb::Connection,
    table: &str,
    columns: &[(&str, Kind)],
) -> Vec<Vec<Option<String>>> {
    let select = columns
        .iter()
        .map(|(c, k)| duck_expr(c, *k))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("SELECT {select} FROM raw.\"{table}\" WHERE NOT _sluice_deleted");
    let mut stmt = wh.prepare(&sql).expect("prepare");
    let rows = stmt
        .query_map([], |r| {
            (0..columns.len())
                .map(|i| r.get::<_, Option<String>>(i))
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("query target");
    rows.map(|r| canonical(columns, r.expect("row"))).collect()
}

/// Asserts the source and the warehouse hold the same live rows, value by value.
pub async fn assert_same(
    db: &TestDatabase,
    wh: &duckdb::Connection,
    table: &str,
    columns: &[(&str, Kind)],
) {
    let mut source = source_rows(db, table, columns).await;
    let mut target = target_rows(wh, table, columns);
    source.sort();
    target.sort();
    if source != target {
        let missing: Vec<_> = source
            .iter()
            .filter(|r| !target.contains(r))
            .take(5)
            .collect();
        let extra: Vec<_> = target
            .iter()
            .filter(|r| !source.contains(r))
            .take(5)
            .collect();
        panic!(
            "table {table}: source has {} rows, target {}; missing in target (first 5): {missing:?}; extra in target (first 5): {extra:?}",
            source.len(),
            target.len()
        );
    }
}

/// A temporary directory removed on drop (kept when `SLUICE_KEEP_TEST_DIRS` is set, for
/// debugging a failure).
pub mod tempfile_dir {
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Dir {
            let base = std::env::temp_dir();
            let unique = format!(
                "sluice-e2e-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            );
            let path = base.join(unique);
            std::fs::create_dir_all(&path).expect("create temp dir");
            Dir(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Default for Dir {
        fn default() -> Self {
            Dir::new()
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            if std::env::var_os("SLUICE_KEEP_TEST_DIRS").is_none() {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }
}

/// Where one writer's ledger transactions put their rows, so several writers (and the rows a
/// test preloads) never collide.
#[derive(Debug, Clone, Copy)]
pub struct LedgerRanges {
    /// New ids start here (`inserts` of them per transaction).
    pub insert_base: i64,
    pub inserts: i64,
    /// Ids moved by a key change start here, and move by `move_by`.
    pub moved_base: i64,
    pub move_by: i64,
}

/// The `n`th transaction of a writer on `ledger (id, account, amount, note)` and
/// `audit (seq, note)`: inserts, an update of many rows, a delete, a primary-key change, and a
/// delete and re-insert of one key, in one transaction.
pub fn ledger_transaction(n: i64, r: LedgerRanges) -> String {
    let base = r.insert_base + n * 10;
    format!(
        "BEGIN;
         INSERT INTO ledger SELECT g, g % 100, g, 'new' FROM generate_series({base}, {base} + {last}) g;
         UPDATE ledger SET amount = amount + 1, note = 'touched {n}' WHERE id % 997 = {m};
         DELETE FROM ledger WHERE id = {del};
         UPDATE ledger SET id = id + {move_by} WHERE id = {moved};
         DELETE FROM ledger WHERE id = {base} + 3;
         INSERT INTO ledger VALUES ({base} + 3, 1, 1, 'reinserted');
         INSERT INTO audit (note) VALUES ('tx {n}');
         COMMIT;",
        last = r.inserts - 1,
        m = n % 997,
        del = n * 7,
        move_by = r.move_by,
        moved = r.moved_base + n,
    )
}

/// Commits a stream of transactions on one connection, 5 ms apart, until stopped (at most
/// 20,000, in case a test forgets to stop it).
pub struct Writer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<i64>,
}

impl Writer {
    /// Starts writing on `db`; `transaction(n)` gives the statements of the `n`th (from 1).
    pub async fn start(db: &TestDatabase, transaction: fn(i64) -> String) -> Writer {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let client = db.client().await.expect("client");
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut n: i64 = 0;
            while !flag.load(Ordering::Relaxed) && n < 20_000 {
                n += 1;
                client
                    .batch_execute(&transaction(n))
                    .await
                    .expect("writer transaction");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            n
        });
        Writer { stop, task }
    }

    /// Stops the writer; returns how many transactions it committed.
    pub async fn stop(self) -> i64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let n = self.task.await.expect("writer");
        assert!(n > 0, "the writer committed nothing");
        n
    }
}
