//! Bad input through the `sluice` binary: source prerequisites that are missing (replication
//! slots exhausted, a listed table that does not exist, a database not in UTF8), and a damaged
//! change log. Damage in the middle of the log (a flipped byte, a record cut short before
//! other records) stops `sluice sync` with exit 1 and an error naming the segment file and the
//! byte; a torn or zero-filled tail, which a crash during an append leaves, is cut and the
//! sync goes on.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Command;

use sluice_testkit::{PgCluster, TestDatabase};
use sluice_tests::{Kind, Pipeline, assert_same, sluice_bin};

/// Bytes of a segment header and of a record frame's header (`connectors/log-local`).
const SEGMENT_HEADER: usize = 22;
const FRAME_HEADER: usize = 16;

const COLUMNS: &[(&str, Kind)] = &[("id", Kind::Plain), ("v", Kind::Plain)];

fn run_with(config: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(sluice_bin())
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .expect("run sluice");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn check_reports_exhausted_replication_slots() {
    let cluster = PgCluster::builder()
        .conf("max_replication_slots = 1")
        .start()
        .expect("cluster");
    let db = cluster.fresh_database().await.expect("database");
    db.execute("CREATE TABLE t (id int PRIMARY KEY)")
        .await
        .expect("schema");
    // Not in the same transaction as the writes before it.
    db.execute("SELECT pg_create_logical_replication_slot('someone_elses', 'pgoutput')")
        .await
        .expect("the only slot");
    let pipeline = Pipeline::new(&db, &["public.t"], "");
    let (code, out) = run_with(&pipeline.config, &["check"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("does not exist and all 1 slots (max_replication_slots) are in use"),
        "{out}"
    );
    assert!(
        out.contains("Drop an unused slot or raise max_replication_slots"),
        "{out}"
    );
    // Once the slot is free, the same configuration passes.
    db.execute("SELECT pg_drop_replication_slot('someone_elses')")
        .await
        .expect("drop slot");
    let (code, out) = run_with(&pipeline.config, &["check"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("will be created (0 of 1 slots in use)"),
        "{out}"
    );
}

#[tokio::test]
async fn a_missing_table_is_named_by_check_and_sync() {
    let db = PgCluster::shared()
        .fresh_database()
        .await
        .expect("database");
    db.execute("CREATE TABLE present (id int PRIMARY KEY)")
        .await
        .expect("schema");
    let pipeline = Pipeline::new(&db, &["public.present", "public.absent"], "");
    let (code, out) = run_with(&pipeline.config, &["check"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("table \"public\".\"absent\" does not exist at the source"),
        "{out}"
    );
    assert!(out.contains("remove it from source.tables"), "{out}");

    // sync stops at once (a missing table is not retried) and creates nothing.
    let (code, out) = run_with(&pipeline.config, &["sync", "--until-caught-up"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("table \"public\".\"absent\" does not exist at the source"),
        "{out}"
    );
    let slots = db
        .query("SELECT count(*) FROM pg_replication_slots", &[])
        .await
        .expect("slots");
    assert_eq!(slots[0].get::<_, i64>(0), 0, "no slot was created");
}

#[tokio::test]
async fn check_refuses_a_publication_that_leaves_out_changes() {
    let db = PgCluster::shared()
        .fresh_database()
        .await
        .expect("database");
    db.execute(
        "CREATE TABLE t (id int PRIMARY KEY);
         CREATE PUBLICATION sluice_pub FOR TABLE t WITH (publish = 'insert, update');",
    )
    .await
    .expect("schema");
    let pipeline = Pipeline::new(&db, &["public.t"], "");
    let hint =
        "ALTER PUBLICATION \"sluice_pub\" SET (publish = 'insert, update, delete, truncate')";
    let (code, out) = run_with(&pipeline.config, &["check"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("publication \"sluice_pub\": does not publish delete, truncate")
            && out.contains(hint),
        "{out}"
    );
    // Truncates alone left out: a warning, check passes.
    db.execute("ALTER PUBLICATION sluice_pub SET (publish = 'insert, update, delete')")
        .await
        .expect("alter");
    let (code, out) = run_with(&pipeline.config, &["check"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning publication \"sluice_pub\": does not publish truncate"),
        "{out}"
    );
    db.execute(hint).await.expect("alter");
    let (code, out) = run_with(&pipeline.config, &["check"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("does not publish"), "{out}");
}

#[tokio::test]
async fn check_refuses_a_database_not_in_utf8() {
    let cluster = PgCluster::shared();
    let db = cluster.fresh_database().await.expect("database");
    let name = format!("{}_ascii", db.name());
    // CREATE DATABASE cannot run in a transaction block, which a multi-statement batch is.
    cluster
        .psql(
            "postgres",
            &format!(
                "CREATE DATABASE \"{name}\" ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
            ),
        )
        .expect("create database");
    cluster
        .psql(&name, "CREATE TABLE t (id int PRIMARY KEY)")
        .expect("schema");
    let pipeline = Pipeline::new(&db, &["public.t"], "");
    let text = std::fs::read_to_string(&pipeline.config).expect("config");
    std::fs::write(
        &pipeline.config,
        text.replace(&db.url(), &cluster.url(&name)),
    )
    .expect("write config");
    let (code, out) = run_with(&pipeline.config, &["check"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("server_encoding is \"SQL_ASCII\", Sluice needs UTF8"),
        "{out}"
    );
    // What check says is what sync would stop on.
    let (code, out) = run_with(&pipeline.config, &["sync", "--until-caught-up"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("server_encoding is \"SQL_ASCII\""), "{out}");
}

/// A pipeline whose change log holds a snapshot and `TRANSACTIONS` streamed transactions that
/// nothing has loaded yet (`sync --stage capture`), so the loader needs every record.
struct Captured {
    db: TestDatabase,
    pipeline: Pipeline,
}

const TRANSACTIONS: i32 = 40;

impl Captured {
    /// `segment_bytes`: the change log's segment cap (`None`: the default, one segment).
    async fn new(segment_bytes: Option<u64>) -> Captured {
        let db = PgCluster::shared()
            .fresh_database()
            .await
            .expect("database");
        db.execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text);
             INSERT INTO t SELECT g, 'snapshot ' || g FROM generate_series(1, 20) g;",
        )
        .await
        .expect("schema");
        let pipeline = Pipeline::new(&db, &["public.t"], "");
        if let Some(bytes) = segment_bytes {
            let text = std::fs::read_to_string(&pipeline.config).expect("config");
            let text = text.replacen(
                "kind = \"local\"\n",
                &format!("kind = \"local\"\nsegment_bytes = {bytes}\n"),
                1,
            );
            std::fs::write(&pipeline.config, text).expect("write config");
        }
        let captured = Captured { db, pipeline };
        // The snapshot first, so that the transactions below are streamed, a record each.
        let (code, out) = captured.sluice(&["sync", "--stage", "capture", "--until-caught-up"]);
        assert_eq!(code, 0, "snapshot: {out}");
        captured.capture().await;
        captured
    }

    /// Commits `TRANSACTIONS` small transactions at the source and captures them.
    async fn capture(&self) {
        let client = self.db.client().await.expect("client");
        let base: i32 = client
            .query_one("SELECT coalesce(max(id), 0) FROM t", &[])
            .await
            .expect("max id")
            .get(0);
        for i in 1..=TRANSACTIONS {
            let id = base + i;
            client
                .batch_execute(&format!(
                    "BEGIN; INSERT INTO t VALUES ({id}, 'streamed {id}');
                     UPDATE t SET v = v || ' touched' WHERE id = {touched}; COMMIT;",
                    touched = id % 20 + 1
                ))
                .await
                .expect("transaction");
        }
        let (code, out) = self.sluice(&["sync", "--stage", "capture", "--until-caught-up"]);
        assert_eq!(code, 0, "capture: {out}");
    }

    fn sluice(&self, args: &[&str]) -> (i32, String) {
        run_with(&self.pipeline.config, args)
    }

    fn log_dir(&self) -> PathBuf {
        self.pipeline.dir.path().join("log")
    }

    /// The segment files, by first offset.
    fn segments(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(self.log_dir())
            .expect("log dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        out.sort();
        out
    }

    /// Loads everything and checks the target equals the source, row by row and by `verify`.
    async fn assert_loads_everything(&self) {
        let (code, out) = self.sluice(&["sync", "--until-caught-up"]);
        assert_eq!(code, 0, "sync: {out}");
        let (code, out) = self.sluice(&["verify"]);
        assert_eq!(code, 0, "verify: {out}");
        assert_same(&self.db, &self.pipeline.warehouse(), "t", COLUMNS).await;
    }
}

/// The byte ranges of the whole record frames of a segment file (header, then
/// `length u32 LE | crc u32 | offset u64 | payload`), up to the first incomplete one.
fn frames(bytes: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut pos = SEGMENT_HEADER;
    while let Some(h) = bytes.get(pos..pos + FRAME_HEADER) {
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let end = pos + FRAME_HEADER + len;
        if len == 0 || end > bytes.len() {
            break;
        }
        out.push(pos..end);
        pos = end;
    }
    out
}

/// The file name of a path, for matching in messages.
fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

/// Asserts that `sluice sync --until-caught-up` (capture and load in one process) and
/// `sluice sync --stage load --until-caught-up` (a reader in another process than the writer)
/// both stop with exit 1 on the damage, naming the segment and the byte, and load nothing past
/// it.
async fn assert_sync_stops_at(c: &Captured, segment: &Path, at: usize, what: &str) {
    let name = file_name(segment);
    for args in [
        &["sync", "--until-caught-up"][..],
        &["sync", "--stage", "load", "--until-caught-up"],
    ] {
        let (code, out) = c.sluice(args);
        assert_eq!(code, 1, "{args:?} must fail on the damaged log: {out}");
        assert!(
            out.contains("corrupt change log segment")
                && out.contains(&name)
                && out.contains(&format!("at byte {at}:"))
                && out.contains(what),
            "{args:?}: expected segment {name}, byte {at} and {what:?} in:\n{out}"
        );
    }
    // Nothing was skipped to get past it: the target does not hold the last transaction.
    let last =
        c.db.query("SELECT max(id) FROM t", &[])
            .await
            .expect("max id")[0]
            .get::<_, Option<i32>>(0);
    if c.pipeline.warehouse.exists() {
        let wh = c.pipeline.warehouse();
        let loaded: i64 = wh
            .query_row(
                "SELECT count(*) FROM raw.t WHERE id = ?",
                duckdb::params![last.expect("rows")],
                |r| r.get(0),
            )
            .unwrap_or(0);
        assert_eq!(loaded, 0, "a record after the damage was loaded");
    }
}

#[tokio::test]
async fn a_flipped_byte_mid_segment_stops_sync_naming_segment_and_byte() {
    let c = Captured::new(None).await;
    let segments = c.segments();
    assert_eq!(segments.len(), 1, "{segments:?}");
    let segment = &segments[0];
    let mut bytes = std::fs::read(segment).expect("read segment");
    let frames = frames(&bytes);
    assert!(
        frames.len() as i32 > TRANSACTIONS,
        "{} frames",
        frames.len()
    );
    // A byte in the payload of a record in the middle: valid records follow it.
    let victim = frames[frames.len() / 2].clone();
    let flip = victim.start + FRAME_HEADER + (victim.len() - FRAME_HEADER) / 2;
    bytes[flip] ^= 0x40;
    std::fs::write(segment, &bytes).expect("write segment");

    assert_sync_stops_at(&c, segment, victim.start, "record checksum mismatch").await;
    // Still there on the next attempt: nothing was cut or skipped.
    assert_eq!(std::fs::read(segment).expect("read"), bytes);
    let (code, out) = c.sluice(&["sync", "--until-caught-up"]);
    assert_eq!(code, 1, "{out}");
}

#[tokio::test]
async fn a_flipped_length_mid_segment_stops_sync_naming_segment_and_byte() {
    let c = Captured::new(None).await;
    let segment = c.segments().remove(0);
    let mut bytes = std::fs::read(&segment).expect("read segment");
    let frames = frames(&bytes);
    // The high byte of a middle record's length: the record now claims to run far past the
    // end of the file, as an append in progress would, but valid records follow it.
    let victim = frames[frames.len() / 2].clone();
    bytes[victim.start + 3] ^= 0x10;
    std::fs::write(&segment, &bytes).expect("write segment");

    assert_sync_stops_at(&c, &segment, victim.start, "a valid record follows").await;
}

#[tokio::test]
async fn a_record_cut_short_before_other_records_is_corruption() {
    let c = Captured::new(None).await;
    let segment = c.segments().remove(0);
    let bytes = std::fs::read(&segment).expect("read segment");
    let frames = frames(&bytes);
    // Remove the second half of a record in the middle: the records after it move up, so
    // the cut record's length now runs into the next one.
    let victim = frames[frames.len() / 2].clone();
    let cut = victim.start + FRAME_HEADER + (victim.len() - FRAME_HEADER) / 2;
    let mut damaged = bytes[..cut].to_vec();
    damaged.extend_from_slice(&bytes[victim.end..]);
    std::fs::write(&segment, &damaged).expect("write segment");

    assert_sync_stops_at(&c, &segment, victim.start, "a valid record follows").await;
    assert_eq!(
        std::fs::read(&segment).expect("read"),
        damaged,
        "the damaged segment was left as it was"
    );
}

#[tokio::test]
async fn a_finished_segment_truncated_mid_record_is_corruption() {
    // Small segments: the log spans many files, and the damaged one is not the last.
    let c = Captured::new(Some(1024)).await;
    let segments = c.segments();
    assert!(segments.len() >= 4, "{segments:?}");
    let segment = &segments[1];
    let bytes = std::fs::read(segment).expect("read segment");
    let frames = frames(&bytes);
    assert!(
        frames.len() >= 2,
        "{} frames in {}",
        frames.len(),
        segment.display()
    );
    let victim = frames[frames.len() - 1].clone();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(segment)
        .expect("open segment");
    file.set_len((victim.start + FRAME_HEADER + 3) as u64)
        .expect("truncate");
    drop(file);

    assert_sync_stops_at(&c, segment, victim.start, "incomplete record").await;
}

#[tokio::test]
async fn torn_and_zero_filled_tails_are_cut_and_sync_goes_on() {
    let c = Captured::new(None).await;
    let segment = c.segments().remove(0);
    let clean = std::fs::read(&segment).expect("read segment");
    let frames = frames(&clean);
    let last = frames.last().expect("a record").clone();

    // A torn append: the first part of a record, as a crash during write leaves it.
    let mut torn = clean.clone();
    torn.extend_from_slice(&clean[last.start..last.start + (last.len() / 2)]);
    std::fs::write(&segment, &torn).expect("write segment");
    let (code, out) = c.sluice(&["sync", "--until-caught-up"]);
    assert_eq!(code, 0, "a torn tail is recovered: {out}");
    assert!(
        out.contains("cutting torn tail of change log segment"),
        "the cut is logged: {out}"
    );
    assert_eq!(
        std::fs::read(&segment).expect("read"),
        clean,
        "exactly the torn bytes were cut"
    );
    c.assert_loads_everything().await;

    // More changes captured, then the tail zero-filled, as a file system that extended the
    // file but never wrote the data leaves it after a crash.
    c.capture().await;
    let segment = c.segments().pop().expect("segment");
    let clean = std::fs::read(&segment).expect("read segment");
    let mut zeroed = clean.clone();
    zeroed.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&segment, &zeroed).expect("write segment");
    let (code, out) = c.sluice(&["sync", "--until-caught-up"]);
    assert_eq!(code, 0, "a zero-filled tail is recovered: {out}");
    assert!(out.contains("zero-filled tail"), "{out}");
    assert_eq!(std::fs::read(&segment).expect("read"), clean);
    c.assert_loads_everything().await;
}
