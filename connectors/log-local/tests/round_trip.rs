use sluice_core::{ChangeLogWriter, LastAppended, LogPosition};
use sluice_log_local::{LocalLog, LogOptions, LogReader};

use crate::common::{offset, open, read_all, records, segments, transaction};

#[tokio::test]
async fn records_of_every_kind_round_trip_across_segments() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    let mut log = open(&dir, 4096).await;
    let all = records(300);
    let mut i = 0;
    for batch in [1usize, 7, 50, 2, 90, 150] {
        log.append(&all[i..i + batch]).await.expect("appends");
        i += batch;
    }
    assert_eq!(i, all.len());
    assert_eq!(log.next_offset(), 300);
    assert!(segments(&dir).len() > 5, "small cap rotates");
    let mut reader = log.reader();
    let got = read_all(&mut reader).await;
    assert_eq!(got.len(), all.len());
    for (n, (r, want)) in got.iter().zip(&all).enumerate() {
        assert_eq!(&r.record, want, "record {n}");
        assert_eq!(r.position, LogPosition::single("0", n + 1));
    }
    // and from another process's point of view
    let mut other = LogReader::open(&dir).await.expect("reader opens");
    let again = read_all(&mut other).await;
    assert_eq!(again, got);
}

#[tokio::test]
async fn segment_holds_at_most_the_cap_unless_one_record_is_larger() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut log = open(tmp.path(), 1024).await;
    let big = transaction(1, 200);
    log.append(&[transaction(0, 1), big.clone(), transaction(2, 1)])
        .await
        .expect("appends");
    let segs = segments(tmp.path());
    assert_eq!(segs.len(), 3, "the large record sits alone: {segs:?}");
    let sizes: Vec<u64> = segs
        .iter()
        .map(|p| std::fs::metadata(p).expect("stat").len())
        .collect();
    assert!(
        sizes[0] <= 1024 && sizes[2] <= 1024 && sizes[1] > 1024,
        "{sizes:?}"
    );
    let got = read_all(&mut log.reader()).await;
    assert_eq!(got[1].record, big);
}

#[tokio::test]
async fn reopen_continues_offsets_and_knows_the_last_record() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let all = records(25);
    {
        let mut log = open(tmp.path(), 2048).await;
        assert_eq!(log.last_appended(), None);
        log.append(&all[..20]).await.expect("appends");
        assert_eq!(log.last_appended(), Some(LastAppended::of(&all[19])));
    }
    let mut log = open(tmp.path(), 2048).await;
    assert_eq!(log.next_offset(), 20);
    assert_eq!(log.last_appended(), Some(LastAppended::of(&all[19])));
    log.append(&all[20..]).await.expect("appends");
    log.append(&[]).await.expect("empty append is a no-op");
    assert_eq!(log.next_offset(), 25);
    let got = read_all(&mut log.reader()).await;
    assert_eq!(
        got.iter().map(offset).collect::<Vec<_>>(),
        (1..=25).collect::<Vec<_>>()
    );
    assert_eq!(got.into_iter().map(|r| r.record).collect::<Vec<_>>(), all);
}

#[tokio::test]
async fn creates_a_missing_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("a/b/log");
    let log = LocalLog::open(LogOptions::new(&dir)).await.expect("opens");
    assert_eq!(log.next_offset(), 0);
    assert_eq!(segments(&dir).len(), 1);
}
