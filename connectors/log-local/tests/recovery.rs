use std::fs::OpenOptions;
use std::io::Write;

use sluice_core::{
    ChangeLogReader, ChangeLogWriter, Classify, ErrorClass, LastAppended, LogPosition,
};
use sluice_log_local::{LocalLog, LogError, LogOptions, LogReader, segment_file_name};

use crate::common::{open, read_all, records, segments, transaction};

/// Byte positions where each record's frame starts in a one-segment log.
async fn frame_starts(dir: &std::path::Path, n: u64) -> Vec<usize> {
    let reader = LogReader::open(dir).await.expect("opens");
    let len = std::fs::metadata(&segments(dir)[0]).expect("stat").len();
    let mut out = Vec::new();
    for i in 0..n {
        let s = reader
            .stats(&LogPosition::single("0", i))
            .await
            .expect("stats");
        out.push((len - s.bytes_after) as usize);
    }
    out
}

#[tokio::test]
async fn torn_tail_at_every_byte_of_the_last_record_is_cut() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let all = records(5);
    {
        let mut log = open(tmp.path(), 1 << 20).await;
        log.append(&all).await.expect("appends");
    }
    let seg = segments(tmp.path()).remove(0);
    let full = std::fs::read(&seg).expect("reads");
    let last_start = frame_starts(tmp.path(), 5).await[4];
    let extra = transaction(99, 2);
    for cut in last_start..full.len() {
        std::fs::write(&seg, &full[..cut]).expect("writes");
        let mut log = open(tmp.path(), 1 << 20).await;
        assert_eq!(log.next_offset(), 4, "cut at {cut}");
        assert_eq!(log.last_appended(), Some(LastAppended::of(&all[3])));
        assert_eq!(
            std::fs::metadata(&seg).expect("stat").len(),
            last_start as u64,
            "torn tail cut at {cut}"
        );
        log.append(std::slice::from_ref(&extra))
            .await
            .expect("appends");
        drop(log);
        let log = open(tmp.path(), 1 << 20).await;
        let got: Vec<_> = read_all(&mut log.reader())
            .await
            .into_iter()
            .map(|r| r.record)
            .collect();
        assert_eq!(got[..4], all[..4]);
        assert_eq!(got[4], extra, "cut at {cut}");
        assert_eq!(got.len(), 5);
    }
}

#[tokio::test]
async fn zero_filled_tail_is_cut() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let all = records(3);
    {
        let mut log = open(tmp.path(), 1 << 20).await;
        log.append(&all).await.expect("appends");
    }
    let seg = segments(tmp.path()).remove(0);
    let len = std::fs::metadata(&seg).expect("stat").len();
    OpenOptions::new()
        .append(true)
        .open(&seg)
        .and_then(|mut f| f.write_all(&[0; 4096]))
        .expect("appends zeros");
    let mut log = open(tmp.path(), 1 << 20).await;
    assert_eq!(std::fs::metadata(&seg).expect("stat").len(), len);
    assert_eq!(log.next_offset(), 3);
    log.append(&records(1)).await.expect("appends");
    assert_eq!(read_all(&mut log.reader()).await.len(), 4);
}

#[tokio::test]
async fn flipped_byte_in_a_record_before_the_last_is_corruption() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let mut log = open(tmp.path(), 1 << 20).await;
        log.append(&records(5)).await.expect("appends");
    }
    let starts = frame_starts(tmp.path(), 5).await;
    let seg = segments(tmp.path()).remove(0);
    let full = std::fs::read(&seg).expect("reads");
    // a payload byte, a checksum byte and a length byte of record 2
    for at in [starts[2] + 20, starts[2] + 5, starts[2] + 1] {
        let mut bytes = full.clone();
        bytes[at] ^= 0x10;
        std::fs::write(&seg, &bytes).expect("writes");
        let err = LocalLog::open(LogOptions::new(tmp.path()))
            .await
            .expect_err("corrupt");
        assert_eq!(err.class(), ErrorClass::Fatal);
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "corrupt change log segment \"{}\" at byte {}: ",
                seg.display(),
                starts[2]
            )),
            "flip at {at}: {msg}"
        );
        assert_eq!(
            std::fs::read(&seg).expect("reads"),
            bytes,
            "nothing was cut"
        );
        // A reader in another process reaches the same verdict: a length that runs past the
        // end of the file is no append in progress when a valid record follows it.
        let mut other = LogReader::open(tmp.path()).await.expect("opens");
        let err = loop {
            match other.read(1, std::time::Duration::ZERO).await {
                Ok(got) => assert!(!got.is_empty(), "flip at {at}: stopped before the damage"),
                Err(e) => break e,
            }
        };
        assert!(
            err.to_string().starts_with(&format!(
                "corrupt change log segment \"{}\" at byte {}: ",
                seg.display(),
                starts[2]
            )),
            "flip at {at}: {err}"
        );
    }
}

#[tokio::test]
async fn flipped_byte_in_a_finished_segment_is_corruption_for_readers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut log = open(tmp.path(), 2048).await;
    log.append(&records(60)).await.expect("appends");
    let segs = segments(tmp.path());
    assert!(segs.len() >= 3);
    let mut bytes = std::fs::read(&segs[1]).expect("reads");
    let at = bytes.len() - 3;
    bytes[at] ^= 0x01;
    std::fs::write(&segs[1], &bytes).expect("writes");
    let err = {
        let mut reader = log.reader();
        reader
            .read(usize::MAX, std::time::Duration::ZERO)
            .await
            .expect("first segment is fine");
        loop {
            match reader.read(1, std::time::Duration::ZERO).await {
                Ok(got) => assert!(!got.is_empty(), "stopped before the damage"),
                Err(e) => break e,
            }
        }
    };
    assert!(
        matches!(&err, LogError::Corrupt { segment, .. } if *segment == segs[1]),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Fatal);
    drop(log);
    // a reader in another process, and reopening the writer
    let mut other = LogReader::open(tmp.path()).await.expect("opens");
    let err = loop {
        match other.read(1 << 20, std::time::Duration::ZERO).await {
            Ok(got) => assert!(!got.is_empty(), "stopped before the damage"),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(&err, LogError::Corrupt { segment, .. } if *segment == segs[1]),
        "{err}"
    );
    let err = LocalLog::verify(tmp.path())
        .await
        .expect_err("verify scans every segment");
    assert!(
        matches!(&err, LogError::Corrupt { segment, .. } if *segment == segs[1]),
        "{err}"
    );
}

#[tokio::test]
async fn undecodable_payload_is_an_error_naming_the_record() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let mut log = open(tmp.path(), 1 << 20).await;
        log.append(&records(2)).await.expect("appends");
    }
    // a well-framed record whose payload is not a record
    let seg = segments(tmp.path()).remove(0);
    let payload = [1u8, 0xff, 0xff];
    let mut frame = Vec::new();
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&2u64.to_le_bytes()), &payload);
    frame.extend_from_slice(&crc.to_le_bytes());
    frame.extend_from_slice(&2u64.to_le_bytes());
    frame.extend_from_slice(&payload);
    OpenOptions::new()
        .append(true)
        .open(&seg)
        .and_then(|mut f| f.write_all(&frame))
        .expect("appends");
    let err = LocalLog::open(LogOptions::new(tmp.path()))
        .await
        .expect_err("the last record cannot be decoded");
    assert!(matches!(err, LogError::Decode { offset: 2, .. }), "{err}");
    let mut reader = LogReader::open(tmp.path()).await.expect("opens");
    assert_eq!(
        reader
            .read(1 << 20, std::time::Duration::ZERO)
            .await
            .expect("reads")
            .len(),
        2
    );
    let err = reader
        .read(1 << 20, std::time::Duration::ZERO)
        .await
        .expect_err("bad payload");
    assert_eq!(err.class(), ErrorClass::Fatal);
    assert_eq!(
        err.to_string(),
        format!(
            "change log record 2 in segment \"{}\" cannot be decoded",
            seg.display()
        )
    );
}

#[tokio::test]
async fn second_writer_fails_fast() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let first = open(tmp.path(), 1 << 20).await;
    let err = LocalLog::open(LogOptions::new(tmp.path()))
        .await
        .expect_err("locked");
    assert_eq!(
        err.to_string(),
        format!(
            "change log \"{}\" is in use by another process",
            tmp.path().display()
        )
    );
    assert_eq!(err.class(), ErrorClass::Fatal);
    drop(first);
    open(tmp.path(), 1 << 20).await;
}

#[tokio::test]
async fn bad_header_is_corruption() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let mut log = open(tmp.path(), 1 << 20).await;
        log.append(&records(2)).await.expect("appends");
    }
    let seg = segments(tmp.path()).remove(0);
    let mut bytes = std::fs::read(&seg).expect("reads");
    bytes[3] ^= 0x20;
    std::fs::write(&seg, &bytes).expect("writes");
    let err = LocalLog::open(LogOptions::new(tmp.path()))
        .await
        .expect_err("bad magic");
    assert!(
        err.to_string()
            .contains("at byte 0: not a change log segment"),
        "{err}"
    );
}

#[tokio::test]
async fn segment_named_for_another_offset_is_corruption() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let mut log = open(tmp.path(), 1 << 20).await;
        log.append(&records(2)).await.expect("appends");
    }
    let seg = segments(tmp.path()).remove(0);
    std::fs::rename(&seg, tmp.path().join(segment_file_name(7))).expect("renames");
    let err = LocalLog::open(LogOptions::new(tmp.path()))
        .await
        .expect_err("mismatch");
    assert!(err.to_string().contains("file name says 7"), "{err}");
}

#[tokio::test]
async fn interrupted_rotation_is_recovered() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let all = records(4);
    {
        let mut log = open(tmp.path(), 1 << 20).await;
        log.append(&all).await.expect("appends");
    }
    // the next segment was created but its header never reached the disk
    std::fs::write(tmp.path().join(segment_file_name(4)), [0u8; 7]).expect("writes");
    let mut log = open(tmp.path(), 1 << 20).await;
    assert_eq!(log.next_offset(), 4);
    assert_eq!(log.last_appended(), Some(LastAppended::of(&all[3])));
    log.append(&records(2)).await.expect("appends");
    assert_eq!(read_all(&mut log.reader()).await.len(), 6);
    assert_eq!(segments(tmp.path()).len(), 2);
}

#[tokio::test]
async fn gap_between_segments_is_corruption_for_readers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let mut log = open(tmp.path(), 2048).await;
        log.append(&records(60)).await.expect("appends");
    }
    let segs = segments(tmp.path());
    assert!(segs.len() >= 3);
    assert_eq!(LocalLog::verify(tmp.path()).await.expect("intact"), 60);
    std::fs::remove_file(&segs[1]).expect("removes");
    assert!(LocalLog::verify(tmp.path()).await.is_err(), "gap");
    let mut reader = LogReader::open(tmp.path()).await.expect("opens");
    let err = loop {
        match reader.read(1 << 20, std::time::Duration::ZERO).await {
            Ok(got) => assert!(!got.is_empty(), "stopped at the gap without an error"),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(&err, LogError::Corrupt { segment, what, .. } if *segment == segs[0] && what.contains("next segment starts at")),
        "{err}"
    );
}
