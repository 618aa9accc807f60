use sluice_core::{ChangeLogReader, ChangeLogWriter, Classify, ErrorClass, LogPosition};
use sluice_log_local::{LogError, LogReader};

use crate::common::{offset, open, read_all, records, segments};

fn first_offset(path: &std::path::Path) -> u64 {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("segment name")
}

#[tokio::test]
async fn release_deletes_whole_segments_before_the_position_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut log = open(tmp.path(), 2048).await;
    log.append(&records(100)).await.expect("appends");
    let before = segments(tmp.path());
    assert!(before.len() >= 4, "{before:?}");
    let firsts: Vec<u64> = before.iter().map(|p| first_offset(p)).collect();
    // a position inside the third segment
    let pos = firsts[2] + 1;
    let mut reader = log.reader();
    reader
        .release(&LogPosition::single("0", pos))
        .await
        .expect("releases");
    let after = segments(tmp.path());
    assert_eq!(
        after,
        before[2..],
        "segments 0 and 1 go, the one holding {pos} stays"
    );

    let stats = log
        .stats(&LogPosition::single("0", pos))
        .await
        .expect("stats");
    assert_eq!(stats.oldest_offset, firsts[2]);
    assert_eq!(stats.next_offset, 100);
    assert_eq!(stats.records_after, 100 - pos);
    assert_eq!(stats.segments, after.len());

    let err = reader
        .seek(&LogPosition::single("0", firsts[2] - 1))
        .await
        .expect_err("released");
    assert_eq!(
        err.to_string(),
        format!(
            "change log position {} is no longer retained (oldest is {})",
            firsts[2] - 1,
            firsts[2]
        )
    );
    assert_eq!(err.class(), ErrorClass::Fatal);

    // from the start means from the oldest retained
    let mut other = LogReader::open(tmp.path()).await.expect("opens");
    let got = read_all(&mut other).await;
    assert_eq!(offset(&got[0]), firsts[2] + 1);

    // releasing everything keeps the active segment, and appends continue
    reader
        .release(&LogPosition::single("0", 100))
        .await
        .expect("releases");
    assert_eq!(segments(tmp.path()), before[before.len() - 1..]);
    log.append(&records(1)).await.expect("appends");
    let err = reader
        .release(&LogPosition::single("0", 500))
        .await
        .expect_err("beyond the end");
    assert!(matches!(err, LogError::BeyondEnd { .. }), "{err}");
}

#[tokio::test]
async fn stats_count_what_is_after_a_position() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut log = open(tmp.path(), 1 << 20).await;
    log.append(&records(10)).await.expect("appends");
    let whole = log.stats(&LogPosition::default()).await.expect("stats");
    assert_eq!(
        (whole.oldest_offset, whole.next_offset, whole.records_after),
        (0, 10, 10)
    );
    assert_eq!(whole.bytes_after + 22, whole.total_bytes);
    let end = log
        .stats(&LogPosition::single("0", 10))
        .await
        .expect("stats");
    assert_eq!((end.records_after, end.bytes_after), (0, 0));
    let reader = LogReader::open(tmp.path()).await.expect("opens");
    let half = reader
        .stats(&LogPosition::single("0", 5))
        .await
        .expect("stats");
    assert_eq!((half.next_offset, half.records_after), (10, 5));
    assert!(half.bytes_after > 0 && half.bytes_after < whole.bytes_after);
}
