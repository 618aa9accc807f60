use std::time::Duration;

use sluice_core::{ChangeLogReader, ChangeLogWriter, Classify, ErrorClass, LogPosition};
use sluice_log_local::{LogError, LogReader};
use tokio::time::Instant;

use crate::common::{offset, open, read_all, records, segments};

const LONG: Duration = Duration::from_secs(30);

#[tokio::test]
async fn in_process_reader_wakes_on_append() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut log = open(tmp.path(), 1 << 20).await;
    let mut reader = log.reader();
    let all = records(3);
    let started = Instant::now();
    let (got, ()) = tokio::join!(reader.read(1 << 20, LONG), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        log.append(&all).await.expect("appends");
    });
    let got = got.expect("reads");
    assert!(started.elapsed() < LONG, "woke before the wait ran out");
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].record, all[2]);
}

#[tokio::test]
async fn read_returns_empty_after_wait() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = open(tmp.path(), 1 << 20).await;
    let mut reader = log.reader();
    let got = reader
        .read(1024, Duration::from_millis(30))
        .await
        .expect("reads");
    assert!(got.is_empty());
}

#[tokio::test]
async fn reader_in_another_process_polls_for_appends() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut log = open(tmp.path(), 2048).await;
    let mut reader = LogReader::open(tmp.path()).await.expect("opens");
    let all = records(40);
    let mut got = Vec::new();
    let ((), ()) = tokio::join!(
        async {
            for chunk in all.chunks(8) {
                log.append(chunk).await.expect("appends");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        },
        async {
            while got.len() < all.len() {
                got.extend(reader.read(1 << 20, LONG).await.expect("reads"));
            }
        }
    );
    assert_eq!(got.into_iter().map(|r| r.record).collect::<Vec<_>>(), all);
}

#[tokio::test]
async fn reader_in_another_process_waits_for_an_incomplete_record() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let all = records(3);
    {
        let mut log = open(tmp.path(), 1 << 20).await;
        log.append(&all).await.expect("appends");
    }
    let seg = segments(tmp.path()).remove(0);
    let full = std::fs::read(&seg).expect("reads");
    let mut reader = LogReader::open(tmp.path()).await.expect("opens");
    let stats = reader
        .stats(&LogPosition::single("0", 2))
        .await
        .expect("stats");
    assert_eq!((stats.records_after, stats.next_offset), (1, 3));
    let third_start = full.len() - stats.bytes_after as usize;
    // the writer is half-way through writing the third record, then a bit more
    for cut in [third_start + 3, third_start + 20, full.len() - 1] {
        std::fs::write(&seg, &full[..cut]).expect("writes");
        let got = reader
            .read(1 << 20, Duration::from_millis(60))
            .await
            .expect("an incomplete record is not an error");
        let want = if cut == third_start + 3 { 2 } else { 0 };
        assert_eq!(got.len(), want, "cut {cut}");
    }
    std::fs::write(&seg, &full).expect("writes");
    let got = reader.read(1 << 20, LONG).await.expect("reads");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].record, all[2]);
    assert_eq!(offset(&got[0]), 3);
}

#[tokio::test]
async fn seek_positions_the_next_read() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut log = open(tmp.path(), 2048).await;
    let all = records(60);
    log.append(&all).await.expect("appends");
    for mut reader in [
        log.reader(),
        LogReader::open(tmp.path()).await.expect("opens"),
    ] {
        for at in [0u64, 1, 17, 33, 59] {
            reader
                .seek(&LogPosition::single("0", at))
                .await
                .expect("seeks");
            let got = reader.read(1, Duration::ZERO).await.expect("reads");
            assert_eq!(got.len(), 1, "one record when max_bytes is tiny");
            assert_eq!(got[0].record, all[at as usize]);
            assert_eq!(offset(&got[0]), at + 1);
        }
        reader
            .seek(&LogPosition::single("0", 60))
            .await
            .expect("the end is a valid position");
        assert!(read_all(&mut reader).await.is_empty());
        let err = reader
            .seek(&LogPosition::single("0", 61))
            .await
            .expect_err("beyond the end");
        assert!(
            matches!(err, LogError::BeyondEnd { requested: 61, .. }),
            "{err}"
        );
        assert_eq!(err.class(), ErrorClass::Fatal);
        reader
            .seek(&LogPosition::default())
            .await
            .expect("from the start");
        let got = read_all(&mut reader).await;
        assert_eq!(got.len(), 60);
        assert!(
            reader
                .seek(&LogPosition::single("shard-1", 3))
                .await
                .is_err()
        );
    }
}

#[tokio::test]
async fn read_stops_at_max_bytes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut log = open(tmp.path(), 1 << 20).await;
    let all = records(50);
    log.append(&all).await.expect("appends");
    let mut reader = log.reader();
    // The budget counts in-memory sizes: just over five records' worth returns six.
    let budget = all[..5].iter().map(|r| r.size()).sum::<usize>() + 1;
    let first = reader.read(budget, Duration::ZERO).await.expect("reads");
    assert_eq!(first.len(), 6);
    let rest = read_all(&mut reader).await;
    assert_eq!(first.len() + rest.len(), 50);
    assert_eq!(offset(&rest[0]), offset(first.last().expect("some")) + 1);
}

#[tokio::test]
async fn dropped_read_loses_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut log = open(tmp.path(), 1 << 20).await;
    let all = records(30);
    log.append(&all).await.expect("appends");
    let mut reader = log.reader();
    // start reads and drop most of them part-way (while the blocking task runs)
    let mut got = Vec::new();
    let mut dropped = 0;
    for _ in 0..20 {
        // polled once (its blocking task starts), then dropped
        tokio::select! {
            biased;
            records = reader.read(100, Duration::ZERO) => got.extend(records.expect("reads")),
            () = std::future::ready(()) => dropped += 1,
        }
    }
    got.extend(read_all(&mut reader).await);
    assert!(dropped > 0, "some reads were dropped");
    let offsets: Vec<u64> = got.iter().map(offset).collect();
    assert_eq!(offsets, (1..=30).collect::<Vec<_>>());
}

#[tokio::test]
async fn reader_in_another_process_leaves_a_torn_tail_to_the_writer() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let all = records(3);
    {
        let mut log = open(tmp.path(), 1 << 20).await;
        log.append(&all).await.expect("appends");
    }
    let seg = segments(tmp.path()).remove(0);
    let full = std::fs::read(&seg).expect("reads");
    let mut torn = full.clone();
    *torn.last_mut().expect("non-empty") ^= 0xff;
    torn.extend_from_slice(&[0; 64]);
    std::fs::write(&seg, &torn).expect("writes");
    let mut reader = LogReader::open(tmp.path()).await.expect("opens");
    let got = read_all(&mut reader).await;
    assert_eq!(
        got.len(),
        2,
        "the damaged last record is not returned, and not an error"
    );
    // the writer reopens, cuts the tail and appends again
    let mut log = open(tmp.path(), 1 << 20).await;
    log.append(&all[2..]).await.expect("appends");
    let got = reader.read(1 << 20, LONG).await.expect("reads");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].record, all[2]);
    assert_eq!(offset(&got[0]), 3);
}
