//! The shared change-log conformance suite (`sluice_testkit::log_conformance`) against local
//! logs in temporary directories, once with readers in the writer's process (woken by its
//! appends, what `sluice sync` uses) and once with readers as another process opens them
//! (polling, what `--stage load` uses).

use std::cmp::Ordering;
use std::path::PathBuf;

use sluice_core::LogPosition;
use sluice_log_local::{LocalLog, LogOptions, LogReader, MIN_SEGMENT_BYTES, PARTITION};
use sluice_testkit::log_conformance::{self as suite, LogCapabilities, LogHarness};

use crate::common::segments;

/// Which kind of reader the harness hands out.
#[derive(Debug, Clone, Copy)]
enum Readers {
    InProcess,
    OtherProcess,
}

struct LocalHarness {
    readers: Readers,
    /// The current log: its temporary directory (removed on drop) and the log directory in
    /// it, which the writer creates.
    log: Option<(tempfile::TempDir, PathBuf)>,
}

impl LocalHarness {
    fn new(readers: Readers) -> Self {
        LocalHarness { readers, log: None }
    }

    fn dir(&self) -> PathBuf {
        self.log.as_ref().expect("fresh() was called").1.clone()
    }
}

fn offset(position: &LogPosition) -> Option<u64> {
    match position.partitions.get(PARTITION) {
        Some(offset) if position.partitions.len() == 1 => offset.parse().ok(),
        _ => None,
    }
}

impl LogHarness for LocalHarness {
    type Writer = LocalLog;
    type Reader = LogReader;

    fn capabilities(&self) -> LogCapabilities {
        LogCapabilities {
            torn_tail: true,
            // With the smallest segments, the suite's forty records fill several.
            release_frees: true,
        }
    }

    async fn fresh(&mut self) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("log");
        self.log = Some((tmp, dir));
    }

    async fn writer(&mut self) -> LocalLog {
        LocalLog::open(LogOptions::new(self.dir()).segment_bytes(MIN_SEGMENT_BYTES))
            .await
            .expect("log opens")
    }

    async fn reader(&mut self, writer: &LocalLog) -> LogReader {
        match self.readers {
            Readers::InProcess => writer.reader(),
            Readers::OtherProcess => LogReader::open(self.dir()).await.expect("reader opens"),
        }
    }

    fn order(&self, a: &LogPosition, b: &LogPosition) -> Option<Ordering> {
        Some(offset(a)?.cmp(&offset(b)?))
    }

    /// Cuts the last segment in the middle of its last record.
    async fn tear_tail(&mut self) {
        let dir = self.dir();
        let reader = LogReader::open(&dir).await.expect("reader opens");
        let end = reader
            .stats(&LogPosition::default())
            .await
            .expect("stats")
            .next_offset;
        let last = end.checked_sub(1).expect("a record to tear");
        let last_bytes = reader
            .stats(&LogPosition::single(PARTITION, last))
            .await
            .expect("stats")
            .bytes_after;
        let segment = segments(&dir).pop().expect("a segment");
        let len = std::fs::metadata(&segment).expect("stat").len();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&segment)
            .expect("opens");
        file.set_len(len - last_bytes / 2).expect("truncates");
    }
}

// One test per case and kind of reader, so that a failure names both.

#[tokio::test]
async fn ordering_in_process() {
    suite::ordering(&mut LocalHarness::new(Readers::InProcess)).await;
}

#[tokio::test]
async fn ordering_other_process() {
    suite::ordering(&mut LocalHarness::new(Readers::OtherProcess)).await;
}

#[tokio::test]
async fn durable_across_reopen_in_process() {
    suite::durable_across_reopen(&mut LocalHarness::new(Readers::InProcess)).await;
}

#[tokio::test]
async fn durable_across_reopen_other_process() {
    suite::durable_across_reopen(&mut LocalHarness::new(Readers::OtherProcess)).await;
}

#[tokio::test]
async fn release_in_process() {
    suite::release(&mut LocalHarness::new(Readers::InProcess)).await;
}

#[tokio::test]
async fn release_other_process() {
    suite::release(&mut LocalHarness::new(Readers::OtherProcess)).await;
}

#[tokio::test]
async fn torn_tail_in_process() {
    suite::torn_tail(&mut LocalHarness::new(Readers::InProcess)).await;
}

#[tokio::test]
async fn torn_tail_other_process() {
    suite::torn_tail(&mut LocalHarness::new(Readers::OtherProcess)).await;
}

#[tokio::test]
async fn seek_to_the_end_in_process() {
    suite::seek_to_the_end(&mut LocalHarness::new(Readers::InProcess)).await;
}

#[tokio::test]
async fn seek_to_the_end_other_process() {
    suite::seek_to_the_end(&mut LocalHarness::new(Readers::OtherProcess)).await;
}

#[tokio::test]
async fn two_readers_in_process() {
    suite::two_readers(&mut LocalHarness::new(Readers::InProcess)).await;
}

#[tokio::test]
async fn two_readers_other_process() {
    suite::two_readers(&mut LocalHarness::new(Readers::OtherProcess)).await;
}

#[tokio::test]
async fn empty_log_in_process() {
    suite::empty_log(&mut LocalHarness::new(Readers::InProcess)).await;
}

#[tokio::test]
async fn empty_log_other_process() {
    suite::empty_log(&mut LocalHarness::new(Readers::OtherProcess)).await;
}

/// The tests above, by case: a case added to the suite fails here until it is listed.
const LISTED: &[&str] = &[
    "ordering",
    "durable_across_reopen",
    "release",
    "torn_tail",
    "seek_to_the_end",
    "two_readers",
    "empty_log",
];

#[test]
fn every_case_is_listed() {
    assert_eq!(LISTED, suite::CASES);
}
