//! The change-log conformance suite: one set of cases every [`ChangeLogWriter`] /
//! [`ChangeLogReader`] pair runs through the same code path.
//!
//! Each case appends [`LogRecord`]s the suite builds itself (see [`records`]), reads them back
//! through readers as a loader does (`seek`, `read`, `release`) and compares records and
//! positions with what it appended and read before. A log plugs in through a [`LogHarness`]:
//! it makes fresh logs, opens their writer (again, after the suite dropped it), opens readers,
//! orders its own positions, and declares in [`LogCapabilities`] what only some logs do (a
//! torn tail after a crash, storage freed by `release`). Every case is a `pub async fn`
//! taking the harness, so a log's test file lists them one `#[tokio::test]` each and a failure
//! names the case; [`CASES`] lists their names so a test file can check it lists all.
//!
//! What the suite relies on is the contract in `sluice_core::log` and nothing else: positions
//! are opaque (compared only through [`LogHarness::order`] and by equality), a record's
//! position is the one just after it, `seek` to such a position resumes with the next record,
//! `read` honours its byte budget and is free to return fewer records than are available.
//! "Nothing more to read" is checked by a `read` that waits [`QUIET`]; "records arrive" by
//! reads that wait up to [`ARRIVAL`], a bound on liveness, never a timing.

use std::cmp::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sluice_core::{
    Change, ChangeLogReader, ChangeLogWriter, Column, LastAppended, LogPosition, LogRecord, Lsn,
    Op, ReadRecord, RelationSchema, ReplicaIdentity, TableId, Transaction, TxnKind, Value,
};

/// How long a read waits when the case expects nothing: long enough for a reader that polls
/// (the local log's reader in another process polls every 50 ms) to look at least once.
pub const QUIET: Duration = Duration::from_millis(200);

/// How long a read may wait for records the case has appended before the case fails. A bound
/// that only a hung log reaches, not a latency target.
pub const ARRIVAL: Duration = Duration::from_secs(30);

/// What a log declares about itself; the cases that depend on it check the declared
/// behaviour (and skip what a log declares it cannot do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogCapabilities {
    /// A crash in the middle of an append can leave part of a record at the end of the log,
    /// which opening the writer again drops. [`LogHarness::tear_tail`] makes one. `false` for
    /// a log whose service stores each record whole (Kinesis): [`torn_tail`] then checks
    /// nothing.
    pub torn_tail: bool,
    /// `release` frees storage: once the suite has released all but the last ten of forty
    /// records, a reader from the start of what is retained no longer sees the first two. A
    /// log that frees in units (segment files) must be configured with units small enough
    /// for that.
    pub release_frees: bool,
}

/// How the suite reaches one change-log implementation.
///
/// The suite holds at most one writer of a log at a time and drops it before it calls
/// [`LogHarness::writer`] again or [`LogHarness::tear_tail`].
// The suite runs inside one test task and never needs the futures to be `Send`.
#[allow(async_fn_in_trait)]
pub trait LogHarness {
    type Writer: ChangeLogWriter;
    type Reader: ChangeLogReader;

    /// What this log declares about itself.
    fn capabilities(&self) -> LogCapabilities;

    /// Makes a new, empty log (a new directory, a new stream). Earlier logs are abandoned.
    async fn fresh(&mut self);

    /// Opens the writer of the current log, as capture does at start: the first time, or
    /// again after the suite dropped the previous writer (durability across reopen,
    /// recovery of a torn tail).
    async fn writer(&mut self) -> Self::Writer;

    /// A new reader of the current log, positioned at the start of what is retained, while
    /// `writer` is open. A log whose readers are independent of the writer ignores it.
    async fn reader(&mut self, writer: &Self::Writer) -> Self::Reader;

    /// How two positions this log issued compare: `Less` when `a` is before `b`. Offsets are
    /// opaque to everyone but the log, so only the log's own test can say; `None` when they
    /// are not comparable.
    fn order(&self, a: &LogPosition, b: &LogPosition) -> Option<Ordering>;

    /// Damages the current log as a crash in the middle of appending its last record would:
    /// part of that record's bytes remain at the end. Called only when
    /// [`LogCapabilities::torn_tail`] is declared, with no writer open.
    async fn tear_tail(&mut self);
}

/// The name of every case, in the order of this module.
pub const CASES: &[&str] = &[
    "ordering",
    "durable_across_reopen",
    "release",
    "torn_tail",
    "seek_to_the_end",
    "two_readers",
    "empty_log",
];

// ---------------------------------------------------------------------------------------------
// Records

/// Commit LSN of record 0; every later record commits 0x100 further on.
const BASE_LSN: u64 = 0x1_0000_0000;

/// `public.<name> (id int8 key, note text)`, the relation of the suite's records.
pub fn relation(name: &str) -> Arc<RelationSchema> {
    Arc::new(RelationSchema {
        table: TableId::new("public", name),
        oid: 16384,
        version: 1,
        replica_identity: ReplicaIdentity::Default,
        columns: vec![
            Column {
                name: "id".into(),
                type_oid: 20,
                type_modifier: -1,
                key: true,
                nullable: false,
            },
            Column {
                name: "note".into(),
                type_oid: 25,
                type_modifier: -1,
                key: false,
                nullable: true,
            },
        ],
    })
}

/// Record `i` of the sequence every case appends from: an initial snapshot (begin, two
/// chunks, end) as records 0 to 3, then committed stream transactions of one to five changes
/// over two tables, every record distinct and in commit order.
pub fn record(i: u64) -> LogRecord {
    let lsn = Lsn(BASE_LSN + i * 0x100);
    let tables = [relation("orders"), relation("order \"lines\"")];
    match i {
        0 => {
            return LogRecord::SnapshotBegin {
                consistent_point: Lsn(BASE_LSN),
                relations: tables.to_vec(),
            };
        }
        3 => {
            return LogRecord::SnapshotEnd {
                consistent_point: Lsn(BASE_LSN),
            };
        }
        _ => {}
    }
    let kind = if i < 3 {
        TxnKind::Snapshot
    } else {
        TxnKind::Stream
    };
    let changes = (0..i % 5 + 1)
        .map(|c| {
            let id = Value::Text((i * 10 + c).to_string());
            let note = Value::Text(format!("record {i} change {c}: {}", "x".repeat(c as usize)));
            Change {
                relation: tables[(c % 2) as usize].clone(),
                op: if kind == TxnKind::Snapshot || c % 2 == 0 {
                    Op::Insert
                } else {
                    Op::Update
                },
                new: Some(vec![id, note]),
                old: None,
            }
        })
        .collect();
    LogRecord::Transaction(Transaction {
        kind,
        xid: u32::try_from(1000 + i).expect("case record numbers are small"),
        commit_lsn: lsn,
        end_lsn: Lsn(lsn.0 + 0x40),
        commit_ts: 1_704_067_200_000_000 + i as i64,
        changes,
    })
}

/// Records `range` of the sequence ([`record`]).
pub fn records(range: std::ops::Range<u64>) -> Vec<LogRecord> {
    range.map(record).collect()
}

// ---------------------------------------------------------------------------------------------
// Reading

/// A budget no case reaches: `read` returns whatever it has.
const ALL: usize = usize::MAX;

/// Checks the byte budget of one `read`: at least one record, and every record but the last
/// was taken while the total stayed below `max_bytes`.
fn check_budget(got: &[ReadRecord], max_bytes: usize) {
    assert!(
        !got.is_empty(),
        "a read returned no records before its wait ran out"
    );
    let before_last: usize = got[..got.len() - 1].iter().map(|r| r.record.size()).sum();
    assert!(
        before_last < max_bytes,
        "a read went on after its records reached the budget of {max_bytes} bytes \
         ({} records, {before_last} bytes before the last)",
        got.len()
    );
}

/// Reads exactly `n` records, with `max_bytes` per `read`, each waiting up to [`ARRIVAL`].
async fn read_exactly<R: ChangeLogReader>(
    reader: &mut R,
    n: usize,
    max_bytes: usize,
) -> Vec<ReadRecord> {
    let mut out = Vec::new();
    while out.len() < n {
        let got = reader
            .read(max_bytes, ARRIVAL)
            .await
            .expect("read of appended records");
        assert!(
            !got.is_empty(),
            "read {} of {n} expected records, then nothing arrived in {ARRIVAL:?}",
            out.len()
        );
        check_budget(&got, max_bytes);
        out.extend(got);
    }
    assert_eq!(
        out.len(),
        n,
        "a read returned more records than were appended"
    );
    out
}

/// Checks that a read waiting [`QUIET`] returns nothing, and no error.
async fn assert_nothing_more<R: ChangeLogReader>(reader: &mut R, what: &str) {
    let got = reader
        .read(ALL, QUIET)
        .await
        .unwrap_or_else(|e| panic!("{what}: a read with nothing to return failed: {e}"));
    assert!(
        got.is_empty(),
        "{what}: expected nothing more, read {} records, the first with position {:?}",
        got.len(),
        got[0].position
    );
}

fn just_records(got: &[ReadRecord]) -> Vec<LogRecord> {
    got.iter().map(|r| r.record.clone()).collect()
}

fn positions(got: &[ReadRecord]) -> Vec<LogPosition> {
    got.iter().map(|r| r.position.clone()).collect()
}

/// Checks that every position comes after the one before it (and after `after`, when given).
fn assert_increasing<H: LogHarness>(h: &H, after: Option<&LogPosition>, got: &[ReadRecord]) {
    let mut prev = after.cloned();
    for (n, r) in got.iter().enumerate() {
        if let Some(p) = &prev {
            assert_eq!(
                h.order(p, &r.position),
                Some(Ordering::Less),
                "position of record {n} read ({:?}) does not come after the one before it ({:?})",
                r.position,
                p
            );
        }
        prev = Some(r.position.clone());
    }
}

async fn append<W: ChangeLogWriter>(writer: &mut W, records: &[LogRecord]) {
    writer.append(records).await.expect("append");
}

async fn seek<R: ChangeLogReader>(reader: &mut R, position: &LogPosition) {
    reader
        .seek(position)
        .await
        .unwrap_or_else(|e| panic!("seek to {position:?}: {e}"));
}

// ---------------------------------------------------------------------------------------------
// The cases

/// Records come back in append order, whole and unchanged, each with a position after the
/// one before it, across appends of different sizes and reads of different budgets; a read
/// with a budget of one byte returns exactly one record; seeking to any returned position
/// resumes with the record after it, carrying the same position as the first time.
pub async fn ordering<H: LogHarness>(h: &mut H) {
    h.fresh().await;
    let mut writer = h.writer().await;
    let mut reader = h.reader(&writer).await;
    let all = records(0..40);
    for range in [0..1, 1..6, 6..26] {
        append(&mut writer, &all[range]).await;
    }

    // One byte: one record per read, whatever its size.
    let mut got = Vec::new();
    for _ in 0..3 {
        let one = reader.read(1, ARRIVAL).await.expect("read");
        assert_eq!(one.len(), 1, "a read with a budget of 1 byte");
        got.extend(one);
    }
    // About three records' worth (sizes are in-memory estimates, so the reader's copies may
    // differ a little from these): the records taken before the last stay below it.
    let budget: usize = all[3..6].iter().map(LogRecord::size).sum();
    let some = reader.read(budget, ARRIVAL).await.expect("read");
    check_budget(&some, budget);
    got.extend(some);
    got.extend(read_exactly(&mut reader, 26 - got.len(), ALL).await);
    assert_nothing_more(&mut reader, "after the first appends").await;

    // Appends after the reader reached the end, in two batches.
    append(&mut writer, &all[26..29]).await;
    append(&mut writer, &all[29..40]).await;
    got.extend(read_exactly(&mut reader, 14, 1 << 10).await);
    assert_nothing_more(&mut reader, "after every append").await;

    assert_eq!(just_records(&got), all, "records in append order");
    assert_increasing(h, None, &got);

    for i in [0usize, 1, 5, 25, 26, 38] {
        seek(&mut reader, &got[i].position).await;
        let next = reader.read(1, ARRIVAL).await.expect("read after seek");
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].record, all[i + 1], "the record after record {i}");
        assert_eq!(
            next[0].position,
            got[i + 1].position,
            "the position after record {}",
            i + 1
        );
    }
    seek(&mut reader, &LogPosition::default()).await;
    let again = read_exactly(&mut reader, 40, ALL).await;
    assert_eq!(again, got, "from the start, the same records and positions");
}

/// What `append` returned for is read back after the writer is dropped and the log opened
/// again, with the same positions; the reopened writer knows the last record
/// (`last_appended`); positions issued before the reopen still seek; appends continue after
/// the old records, and a reader opened before the reopen reads them too.
pub async fn durable_across_reopen<H: LogHarness>(h: &mut H) {
    h.fresh().await;
    let all = records(0..20);
    let mut writer = h.writer().await;
    let mut early = h.reader(&writer).await;
    append(&mut writer, &all[..5]).await;
    append(&mut writer, &all[5..12]).await;
    assert_eq!(writer.last_appended(), Some(LastAppended::of(&all[11])));
    let before = read_exactly(&mut early, 12, ALL).await;
    drop(writer);

    let mut writer = h.writer().await;
    assert_eq!(
        writer.last_appended(),
        Some(LastAppended::of(&all[11])),
        "the reopened writer knows the last record"
    );
    let mut reader = h.reader(&writer).await;
    let after = read_exactly(&mut reader, 12, ALL).await;
    assert_eq!(just_records(&after), all[..12], "records after the reopen");
    assert_eq!(
        positions(&after),
        positions(&before),
        "positions after the reopen"
    );
    assert_nothing_more(&mut reader, "after the reopen").await;
    seek(&mut reader, &before[4].position).await;
    let resumed = read_exactly(&mut reader, 7, ALL).await;
    assert_eq!(
        resumed,
        after[5..],
        "seeking to a position issued before the reopen"
    );

    append(&mut writer, &all[12..15]).await;
    for (name, r) in [
        ("new reader", &mut reader),
        ("reader from before", &mut early),
    ] {
        let got = read_exactly(r, 3, ALL).await;
        assert_eq!(just_records(&got), all[12..15], "{name}");
        assert_increasing(h, Some(&before[11].position), &got);
        assert_nothing_more(r, name).await;
    }
    drop(writer);

    let mut writer = h.writer().await;
    assert_eq!(writer.last_appended(), Some(LastAppended::of(&all[14])));
    append(&mut writer, &all[15..]).await;
    let mut reader = h.reader(&writer).await;
    let got = read_exactly(&mut reader, 20, ALL).await;
    assert_eq!(just_records(&got), all, "after two reopens");
    assert_eq!(positions(&got[..12]), positions(&before));
    assert_increasing(h, None, &got);
}

/// Releasing up to a record's position keeps everything after it readable (by the reader
/// that released, after a seek, and by a new reader from the start of what is retained,
/// which reads a contiguous run ending with the last record). Seeking to an earlier position
/// either resumes with exactly the next record or fails (in `seek` or the next `read`),
/// never skips. A log that declares [`LogCapabilities::release_frees`] has freed the first
/// records, and seeking to before what it retains fails. Appends continue after a release.
pub async fn release<H: LogHarness>(h: &mut H) {
    h.fresh().await;
    let all = records(0..42);
    let mut writer = h.writer().await;
    let mut reader = h.reader(&writer).await;
    for start in (0..40).step_by(10) {
        append(&mut writer, &all[start..start + 10]).await;
    }
    let got = read_exactly(&mut reader, 40, ALL).await;
    assert_eq!(just_records(&got), all[..40]);
    reader
        .release(&got[29].position)
        .await
        .expect("release up to record 29");

    // The reader that released: everything after the released position.
    seek(&mut reader, &got[29].position).await;
    let rest = read_exactly(&mut reader, 10, ALL).await;
    assert_eq!(rest, got[30..], "records after the released position");
    assert_nothing_more(&mut reader, "after the released records").await;

    // A new reader from the start of what is retained.
    let mut fresh = h.reader(&writer).await;
    let mut retained: Vec<ReadRecord> = Vec::new();
    while retained.last().map(|r| &r.position) != Some(&got[39].position) {
        assert!(
            retained.len() < 40,
            "a reader from the start read past the last record"
        );
        let batch = fresh.read(ALL, ARRIVAL).await.expect("read after release");
        assert!(
            !batch.is_empty(),
            "a reader from the start stopped before the last record"
        );
        retained.extend(batch);
    }
    let first = 40 - retained.len();
    assert!(
        first <= 30,
        "records after the released position were freed"
    );
    assert_eq!(
        retained,
        got[first..],
        "what is retained is a contiguous run"
    );
    assert_nothing_more(&mut fresh, "a reader from the start").await;

    // Seeking before the released position: the next record exactly, or an error.
    let mut other = h.reader(&writer).await;
    for i in 0..29 {
        let next = match other.seek(&got[i].position).await {
            Ok(()) => other.read(1, ARRIVAL).await,
            Err(e) => Err(e),
        };
        match next {
            Ok(next) => {
                assert!(
                    i + 1 >= first,
                    "seek to record {i}'s position succeeded, but record {} is no longer \
                     retained (a reader from the start begins at record {first})",
                    i + 1
                );
                assert_eq!(next.len(), 1);
                assert_eq!(next[0], got[i + 1], "the record after record {i}");
            }
            Err(e) => assert!(
                i + 1 < first || !h.capabilities().release_frees,
                "seek to record {i}'s position failed although record {} is retained: {e}",
                i + 1
            ),
        }
    }
    if h.capabilities().release_frees {
        assert!(
            first >= 2,
            "the log declares that release frees storage, but a reader from the start still \
             begins at record {first}"
        );
        let freed = match other.seek(&got[first - 2].position).await {
            Ok(()) => other.read(ALL, ARRIVAL).await.map(|r| r.len()),
            Err(e) => Err(e),
        };
        assert!(
            freed.is_err(),
            "seek to a released and freed position gave {freed:?} instead of an error"
        );
    }

    append(&mut writer, &all[40..]).await;
    let tail = read_exactly(&mut reader, 2, ALL).await;
    assert_eq!(just_records(&tail), all[40..], "appends after a release");
    assert_increasing(h, Some(&got[39].position), &tail);
}

/// A crash in the middle of appending the last record leaves part of it at the end; the
/// reopened writer drops it, says the record before it was the last, readers read up to it
/// and no error, and appends continue after it. Checks nothing when the log declares no
/// [`LogCapabilities::torn_tail`].
pub async fn torn_tail<H: LogHarness>(h: &mut H) {
    if !h.capabilities().torn_tail {
        return;
    }
    h.fresh().await;
    let all = records(0..9);
    let mut writer = h.writer().await;
    append(&mut writer, &all[..3]).await;
    append(&mut writer, &all[3..6]).await;
    let mut reader = h.reader(&writer).await;
    let before = read_exactly(&mut reader, 6, ALL).await;
    drop(reader);
    drop(writer);
    h.tear_tail().await;

    let mut writer = h.writer().await;
    assert_eq!(
        writer.last_appended(),
        Some(LastAppended::of(&all[4])),
        "the torn record is not the last one"
    );
    let mut reader = h.reader(&writer).await;
    let kept = read_exactly(&mut reader, 5, ALL).await;
    assert_eq!(kept, before[..5], "records before the torn one");
    assert_nothing_more(&mut reader, "the torn record").await;

    append(&mut writer, &all[6..9]).await;
    let got = read_exactly(&mut reader, 3, ALL).await;
    assert_eq!(
        just_records(&got),
        all[6..9],
        "appends after the torn record"
    );
    assert_increasing(h, Some(&before[4].position), &got);
    assert_nothing_more(&mut reader, "after the new appends").await;
    drop(writer);

    let writer = h.writer().await;
    assert_eq!(writer.last_appended(), Some(LastAppended::of(&all[8])));
    let mut reader = h.reader(&writer).await;
    let again = read_exactly(&mut reader, 8, ALL).await;
    assert_eq!(again[..5], before[..5]);
    assert_eq!(again[5..], got, "after another reopen");
}

/// A reader at the end, by reading or by seeking to the last record's position, reads
/// nothing (and no error) until records are appended, then exactly those; a read waiting
/// when they are appended returns them.
pub async fn seek_to_the_end<H: LogHarness>(h: &mut H) {
    h.fresh().await;
    let all = records(0..9);
    let mut writer = h.writer().await;
    append(&mut writer, &all[..5]).await;
    let mut reading = h.reader(&writer).await;
    let got = read_exactly(&mut reading, 5, ALL).await;
    assert_nothing_more(&mut reading, "after reading everything").await;
    let mut seeking = h.reader(&writer).await;
    seek(&mut seeking, &got[4].position).await;
    assert_nothing_more(&mut seeking, "after seeking to the end").await;
    assert_nothing_more(&mut seeking, "after seeking to the end, again").await;

    append(&mut writer, &all[5..7]).await;
    let mut new = Vec::new();
    for (name, r) in [("reading", &mut reading), ("seeking", &mut seeking)] {
        let got2 = read_exactly(r, 2, ALL).await;
        assert_eq!(just_records(&got2), all[5..7], "{name}: the new records");
        assert_nothing_more(r, name).await;
        new.push(got2);
    }
    assert_eq!(new[0], new[1], "both readers see the same positions");
    assert_increasing(h, Some(&got[4].position), &new[0]);

    // A read waiting at the end when records arrive.
    seek(&mut seeking, &new[0][1].position).await;
    let (waited, ()) = tokio::join!(seeking.read(ALL, ARRIVAL), async {
        tokio::time::sleep(QUIET).await;
        append(&mut writer, &all[7..9]).await;
    });
    let mut waited = waited.expect("a read waiting at the end");
    check_budget(&waited, ALL);
    if waited.len() < 2 {
        waited.extend(read_exactly(&mut seeking, 2 - waited.len(), ALL).await);
    }
    assert_eq!(
        just_records(&waited),
        all[7..9],
        "records appended during a read"
    );
    assert_nothing_more(&mut seeking, "after the records appended during a read").await;
}

/// Two readers of one log read the same records with the same positions, each from its own
/// position: reading, seeking and reaching the end with one does not move the other.
pub async fn two_readers<H: LogHarness>(h: &mut H) {
    h.fresh().await;
    let all = records(0..12);
    let mut writer = h.writer().await;
    let mut a = h.reader(&writer).await;
    let mut b = h.reader(&writer).await;
    append(&mut writer, &all[..10]).await;

    let a_first = read_exactly(&mut a, 3, 1).await;
    let b_all = read_exactly(&mut b, 10, ALL).await;
    assert_eq!(just_records(&b_all), all[..10], "reader b from the start");
    assert_eq!(a_first, b_all[..3], "reader a's first records");
    assert_nothing_more(&mut b, "reader b at the end").await;
    let a_rest = read_exactly(&mut a, 7, ALL).await;
    assert_eq!(a_rest, b_all[3..], "reader a goes on where it stopped");

    seek(&mut b, &b_all[1].position).await;
    assert_nothing_more(&mut a, "reader a at the end, after b moved back").await;
    let b_again = read_exactly(&mut b, 8, ALL).await;
    assert_eq!(b_again, b_all[2..], "reader b after its seek");

    append(&mut writer, &all[10..]).await;
    let a_new = read_exactly(&mut a, 2, ALL).await;
    let b_new = read_exactly(&mut b, 2, ALL).await;
    assert_eq!(just_records(&a_new), all[10..]);
    assert_eq!(a_new, b_new, "both readers read the new records alike");
    assert_increasing(h, Some(&b_all[9].position), &a_new);
}

/// An empty log reads nothing and no error, from a new reader, after a seek to the start
/// and after an empty append; its writer knows no last record, also after a reopen; the
/// first records appended are then read from the start.
pub async fn empty_log<H: LogHarness>(h: &mut H) {
    h.fresh().await;
    let mut writer = h.writer().await;
    assert_eq!(writer.last_appended(), None);
    let mut reader = h.reader(&writer).await;
    assert_nothing_more(&mut reader, "a new reader of an empty log").await;
    seek(&mut reader, &LogPosition::default()).await;
    assert_nothing_more(&mut reader, "after a seek to the start").await;
    append(&mut writer, &[]).await;
    assert_eq!(writer.last_appended(), None, "after an empty append");
    assert_nothing_more(&mut reader, "after an empty append").await;
    drop(writer);

    let mut writer = h.writer().await;
    assert_eq!(writer.last_appended(), None, "after a reopen");
    let mut other = h.reader(&writer).await;
    assert_nothing_more(&mut other, "a reader after a reopen").await;

    let all = records(0..2);
    append(&mut writer, &all).await;
    for (name, r) in [("first reader", &mut reader), ("second reader", &mut other)] {
        let got = read_exactly(r, 2, ALL).await;
        assert_eq!(just_records(&got), all, "{name}");
        assert_increasing(h, None, &got);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_distinct_and_in_commit_order() {
        let all = records(0..50);
        for (i, a) in all.iter().enumerate() {
            assert_eq!(all.iter().filter(|b| *b == a).count(), 1, "record {i}");
        }
        let commits: Vec<u64> = all[4..]
            .iter()
            .map(|r| match r {
                LogRecord::Transaction(t) => t.commit_lsn.0,
                other => panic!("a stream transaction, not {other:?}"),
            })
            .collect();
        assert!(commits.windows(2).all(|w| w[0] < w[1]), "{commits:?}");
        assert!(matches!(all[0], LogRecord::SnapshotBegin { .. }));
        assert!(matches!(all[3], LogRecord::SnapshotEnd { .. }));
    }

    #[test]
    fn budget_check_allows_one_record_over() {
        let one = ReadRecord {
            record: record(5),
            position: LogPosition::single("0", 6),
        };
        // Sizes count string capacity: take them from the copies checked.
        let two = [one.clone(), one.clone()];
        let size = two[0].record.size();
        check_budget(&two[..1], 1);
        check_budget(&two, size + 1);
        let over = std::panic::catch_unwind(|| check_budget(&two, size));
        assert!(
            over.is_err(),
            "a second record after the budget was reached"
        );
        let none = std::panic::catch_unwind(|| check_budget(&[], 1));
        assert!(none.is_err(), "a read that returned nothing");
    }
}
