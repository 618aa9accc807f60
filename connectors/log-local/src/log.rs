//! The writing half: [`LocalLog`], opened once per directory by the one writer.
//!
//! Invariants:
//! - A directory lock (`DIR/LOCK`, an exclusive `flock`) admits one writer at a time.
//! - Only the last segment (the active one) is ever written, and only appended to. Records
//!   reach it in one `write` per segment per append and are `fsync`ed (`sync_data`) before
//!   `append` returns; the durable end offset is published to in-process readers only after
//!   that, so a reader never sees a record that a crash could take back.
//! - Rotation happens before a record that would push the active segment past the size cap,
//!   unless the segment holds no record yet (a large record gets a segment of its own). The
//!   finished segment is already fsynced; the new one is created with its header, fsynced,
//!   and then the directory is fsynced.
//! - All file work runs on the blocking pool. The writer's state lives behind a mutex that
//!   the blocking task holds for the whole append, so an append future dropped mid-way still
//!   finishes (or fails) as a unit before the next one starts, and the next one first cuts
//!   whatever a failed append left behind the last durable byte.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use sluice_core::{
    ChangeLogWriter, LastAppended, LogPosition, LogRecord, decode_record, encode_record,
};
use tokio::sync::watch;

use crate::config::LogOptions;
use crate::error::{LogError, Result};
use crate::reader::{LogReader, LogStats, dir_stats, parse_position};
use crate::segment::{
    FRAME_HEADER_LEN, HEADER_LEN, SegmentFile, Tail, check_header, encode_header, list_segments,
    read_segment, scan_segment, seal_frame, segment_file_name, sync_dir,
};

/// Name of the lock file in the log directory.
pub const LOCK_FILE: &str = "LOCK";

/// What the writer has made durable, shared with in-process readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Durable {
    /// The offset the next record will get: every record before it is durable.
    pub next: u64,
    pub last: Option<LastAppended>,
}

/// The local directory change log, writing half. See the crate docs for the format.
#[derive(Debug)]
pub struct LocalLog {
    dir: PathBuf,
    state: Arc<Mutex<Active>>,
    durable: watch::Receiver<Durable>,
}

/// The active segment and the writer's counters, owned by whichever blocking task appends.
#[derive(Debug)]
struct Active {
    dir: PathBuf,
    segment_bytes: u64,
    file: File,
    path: PathBuf,
    /// Durable length of the active segment in bytes.
    len: u64,
    /// Set while a write is in flight; if still set at the next append, the bytes after `len`
    /// are the remains of a failed append and are cut first.
    dirty: bool,
    durable: watch::Sender<Durable>,
    /// Held for the lifetime of the writer: dropping it releases the directory lock.
    _lock: File,
}

impl LocalLog {
    /// Opens (creating when missing) the log in `options.dir`, takes the directory lock and
    /// recovers the last segment: a torn tail is cut with a warning, corruption is an error.
    pub async fn open(options: LogOptions) -> Result<LocalLog> {
        options.validate()?;
        let dir = options.dir.clone();
        let (active, durable) = tokio::task::spawn_blocking(move || open_blocking(options))
            .await
            .map_err(LogError::Task)??;
        Ok(LocalLog {
            dir,
            state: Arc::new(Mutex::new(active)),
            durable,
        })
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The offset the next appended record will get.
    pub fn next_offset(&self) -> u64 {
        self.durable.borrow().next
    }

    /// A reader of this log, positioned at the oldest retained record, that wakes up as soon
    /// as an append of this writer is durable.
    pub fn reader(&self) -> LogReader {
        LogReader::in_process(self.dir.clone(), self.durable.clone())
    }

    /// Checks every segment of the log in `dir` end to end: headers, every record's checksum
    /// and offset, and that each segment starts where the previous one ended. Opening a log
    /// scans only the last segment (the others are checked as readers reach them); this reads
    /// everything, for an operator's `verify`. Returns the number of records checked. A torn
    /// tail of the last segment is not an error (the writer cuts it when it opens).
    pub async fn verify(dir: impl Into<PathBuf>) -> Result<u64> {
        let dir = dir.into();
        tokio::task::spawn_blocking(move || verify_blocking(&dir))
            .await
            .map_err(LogError::Task)?
    }

    /// Depth of the log after `after` (records and bytes not yet consumed) and the oldest
    /// retained offset, for status output.
    pub async fn stats(&self, after: &LogPosition) -> Result<LogStats> {
        let after = parse_position(after)?;
        let dir = self.dir.clone();
        let end = self.next_offset();
        tokio::task::spawn_blocking(move || dir_stats(&dir, after, Some(end)))
            .await
            .map_err(LogError::Task)?
    }
}

impl ChangeLogWriter for LocalLog {
    type Error = LogError;

    async fn append(&mut self, records: &[LogRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        // Encode on this thread (the records are borrowed); frame headers are filled in by
        // the blocking task, which owns the offsets.
        let mut buf = Vec::new();
        let mut frames = Vec::with_capacity(records.len());
        for record in records {
            let start = buf.len();
            buf.extend_from_slice(&[0; FRAME_HEADER_LEN]);
            encode_record(record, &mut buf);
            let len = buf.len() - start - FRAME_HEADER_LEN;
            if u32::try_from(len).is_err() {
                return Err(LogError::RecordTooLarge { len, max: u32::MAX });
            }
            frames.push(Frame {
                start,
                end: buf.len(),
                last: LastAppended::of(record),
            });
        }
        let state = Arc::clone(&self.state);
        tokio::task::spawn_blocking(move || {
            let mut active = state.lock().unwrap_or_else(PoisonError::into_inner);
            active.append(&mut buf, &frames)
        })
        .await
        .map_err(LogError::Task)?
    }

    fn last_appended(&self) -> Option<LastAppended> {
        self.durable.borrow().last
    }
}

/// One encoded record in the append buffer: `buf[start..end]`, frame header included.
struct Frame {
    start: usize,
    end: usize,
    last: LastAppended,
}

impl Active {
    fn append(&mut self, buf: &mut [u8], frames: &[Frame]) -> Result<()> {
        if self.dirty {
            self.file
                .set_len(self.len)
                .and_then(|()| self.file.sync_data())
                .map_err(LogError::io(
                    "cut failed append from change log segment",
                    &self.path,
                ))?;
            self.dirty = false;
        }
        let mut next = self.durable.borrow().next;
        let mut chunk_start = frames.first().map_or(0, |f| f.start);
        let mut chunk_last = None;
        for frame in frames {
            let chunk_len = (frame.start - chunk_start) as u64;
            let frame_len = (frame.end - frame.start) as u64;
            let holds_records = self.len + chunk_len > HEADER_LEN as u64;
            if holds_records && self.len + chunk_len + frame_len > self.segment_bytes {
                self.write_durably(&buf[chunk_start..frame.start], next, chunk_last)?;
                self.rotate(next)?;
                chunk_start = frame.start;
            }
            seal_frame(&mut buf[frame.start..frame.end], next);
            next = next.checked_add(1).ok_or_else(|| LogError::Corrupt {
                segment: self.path.clone(),
                at: self.len,
                what: "record offsets are exhausted".into(),
            })?;
            chunk_last = Some(frame.last);
        }
        let end = frames.last().map_or(chunk_start, |f| f.end);
        self.write_durably(&buf[chunk_start..end], next, chunk_last)
    }

    /// Writes `bytes` (whole frames, the last of which has offset `next - 1`) at the end of
    /// the active segment, fsyncs, and publishes the new durable end.
    fn write_durably(&mut self, bytes: &[u8], next: u64, last: Option<LastAppended>) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.dirty = true;
        (&self.file)
            .write_all(bytes)
            .map_err(LogError::io("write change log segment", &self.path))?;
        self.file
            .sync_data()
            .map_err(LogError::io("fsync change log segment", &self.path))?;
        self.dirty = false;
        self.len += bytes.len() as u64;
        self.durable.send_replace(Durable { next, last });
        Ok(())
    }

    /// Starts a new segment whose first record will be `first_offset`.
    fn rotate(&mut self, first_offset: u64) -> Result<()> {
        let path = self.dir.join(segment_file_name(first_offset));
        let file = create_segment(&path, first_offset)?;
        sync_dir(&self.dir)?;
        tracing::debug!(segment = %path.display(), offset = first_offset, "change log segment started");
        self.file = file;
        self.path = path;
        self.len = HEADER_LEN as u64;
        Ok(())
    }
}

/// Creates a segment file holding just its header, fsynced, open for appending.
fn create_segment(path: &Path, first_offset: u64) -> Result<File> {
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(path)
        .map_err(LogError::io("create change log segment", path))?;
    // A crash here, in a rotation, leaves the new segment empty after a complete one: the
    // interrupted rotation that `open` repairs.
    #[cfg(feature = "failpoints")]
    fail::fail_point!("log-segment-rotation", first_offset > 0, |_| {
        eprintln!("failpoint log-segment-rotation: aborting the process");
        std::process::abort()
    });
    file.write_all(&encode_header(first_offset))
        .and_then(|()| file.sync_all())
        .map_err(LogError::io("write change log segment header", path))?;
    Ok(file)
}

fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(LogError::io("open change log lock file", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(LogError::InUse {
            dir: dir.to_owned(),
        }),
        Err(TryLockError::Error(e)) => Err(LogError::io("lock change log lock file", &path)(e)),
    }
}

fn open_blocking(options: LogOptions) -> Result<(Active, watch::Receiver<Durable>)> {
    let dir = options.dir;
    fs::create_dir_all(&dir).map_err(LogError::io("create change log directory", &dir))?;
    let lock = lock_dir(&dir)?;
    let mut segments = list_segments(&dir)?;
    let Some(last) = segments.pop() else {
        let path = dir.join(segment_file_name(0));
        let file = create_segment(&path, 0)?;
        sync_dir(&dir)?;
        tracing::debug!(dir = %dir.display(), "change log created");
        let (tx, rx) = watch::channel(Durable {
            next: 0,
            last: None,
        });
        return Ok((
            Active {
                dir,
                segment_bytes: options.segment_bytes,
                file,
                path,
                len: HEADER_LEN as u64,
                dirty: false,
                durable: tx,
                _lock: lock,
            },
            rx,
        ));
    };
    for segment in &segments {
        check_header(segment)?;
    }

    let bytes = read_segment(&last.path)?;
    let bytes = if is_blank(&bytes) {
        // A crash between creating a segment and syncing its header: nothing was ever
        // appended to it, so it is rewritten from its name.
        tracing::warn!(
            segment = %last.path.display(),
            bytes = bytes.len(),
            "change log segment has no header, rewriting it (interrupted rotation)"
        );
        let header = encode_header(last.first_offset);
        fs::write(&last.path, header)
            .and_then(|()| File::open(&last.path)?.sync_all())
            .map_err(LogError::io(
                "rewrite change log segment header",
                &last.path,
            ))?;
        header.to_vec()
    } else {
        bytes
    };
    let scan = scan_segment(&bytes).map_err(|c| c.in_segment(&last.path))?;
    if scan.first_offset != last.first_offset {
        return Err(LogError::Corrupt {
            segment: last.path.clone(),
            at: 10,
            what: format!(
                "header says the first offset is {} but the file name says {}",
                scan.first_offset, last.first_offset
            ),
        });
    }
    if let Tail::Torn {
        at,
        bytes: cut,
        reason,
    } = scan.tail
    {
        tracing::warn!(
            segment = %last.path.display(),
            byte = at,
            bytes = cut,
            reason,
            "cutting torn tail of change log segment (an append interrupted by a crash)"
        );
        OpenOptions::new()
            .write(true)
            .open(&last.path)
            .and_then(|f| {
                f.set_len(at)?;
                f.sync_all()
            })
            .map_err(LogError::io(
                "cut torn tail of change log segment",
                &last.path,
            ))?;
    }

    let last_record = match &scan.last_payload {
        Some(range) => Some(decode_last(
            &last.path,
            scan.next_offset() - 1,
            &bytes[range.clone()],
        )?),
        None => match segments.last() {
            // The active segment is empty: the last record is the previous segment's last.
            Some(prev) => {
                let prev_bytes = read_segment(&prev.path)?;
                let prev_scan = scan_segment(&prev_bytes).map_err(|c| c.in_segment(&prev.path))?;
                if let Tail::Torn { at, reason, .. } = prev_scan.tail {
                    return Err(LogError::Corrupt {
                        segment: prev.path.clone(),
                        at,
                        what: format!("{reason} in a finished segment"),
                    });
                }
                if prev_scan.next_offset() != last.first_offset {
                    return Err(LogError::Corrupt {
                        segment: last.path.clone(),
                        at: 10,
                        what: format!(
                            "segment starts at offset {} but the previous one ends before {}",
                            last.first_offset,
                            prev_scan.next_offset()
                        ),
                    });
                }
                match &prev_scan.last_payload {
                    Some(range) => Some(decode_last(
                        &prev.path,
                        last.first_offset - 1,
                        &prev_bytes[range.clone()],
                    )?),
                    None => None,
                }
            }
            None => None,
        },
    };
    let next = scan.next_offset();
    let file = OpenOptions::new()
        .append(true)
        .open(&last.path)
        .map_err(LogError::io("open change log segment", &last.path))?;
    tracing::debug!(dir = %dir.display(), next_offset = next, "change log opened");
    let (tx, rx) = watch::channel(Durable {
        next,
        last: last_record,
    });
    Ok((
        Active {
            dir,
            segment_bytes: options.segment_bytes,
            file,
            path: last.path,
            len: scan.valid_len,
            dirty: false,
            durable: tx,
            _lock: lock,
        },
        rx,
    ))
}

/// A segment file that holds no header and nothing else: shorter than a header, or a header's
/// worth of zeros. Anything longer had a synced header once and is judged by the scanner.
fn is_blank(bytes: &[u8]) -> bool {
    bytes.len() < HEADER_LEN || (bytes.len() == HEADER_LEN && bytes.iter().all(|&b| b == 0))
}

fn decode_last(segment: &Path, offset: u64, payload: &[u8]) -> Result<LastAppended> {
    decode_record(payload)
        .map(|r| LastAppended::of(&r))
        .map_err(|source| LogError::Decode {
            segment: segment.to_owned(),
            offset,
            source,
        })
}

/// Removes segment files entirely before `position` (never the newest), fsyncs the directory.
pub(crate) fn release_segments(dir: &Path, position: u64) -> Result<usize> {
    let segments: Vec<SegmentFile> = list_segments(dir)?;
    let mut removed = 0;
    for pair in segments.windows(2) {
        // every record of pair[0] is before pair[1].first_offset
        if pair[1].first_offset > position {
            break;
        }
        fs::remove_file(&pair[0].path)
            .map_err(LogError::io("remove change log segment", &pair[0].path))?;
        tracing::debug!(segment = %pair[0].path.display(), position, "change log segment released");
        removed += 1;
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

fn verify_blocking(dir: &Path) -> Result<u64> {
    let segments = list_segments(dir)?;
    let mut records = 0;
    let mut expected: Option<u64> = None;
    for (i, segment) in segments.iter().enumerate() {
        let bytes = read_segment(&segment.path)?;
        let scan = scan_segment(&bytes).map_err(|c| c.in_segment(&segment.path))?;
        if scan.first_offset != segment.first_offset {
            return Err(LogError::Corrupt {
                segment: segment.path.clone(),
                at: 10,
                what: format!(
                    "header says the first offset is {} but the file name says {}",
                    scan.first_offset, segment.first_offset
                ),
            });
        }
        if let Some(expected) = expected
            && expected != scan.first_offset
        {
            return Err(LogError::Corrupt {
                segment: segment.path.clone(),
                at: 10,
                what: format!(
                    "segment starts at offset {} but the previous one ends before {expected}",
                    scan.first_offset
                ),
            });
        }
        if let Tail::Torn { at, reason, .. } = scan.tail
            && i + 1 < segments.len()
        {
            return Err(LogError::Corrupt {
                segment: segment.path.clone(),
                at,
                what: format!("{reason} in a finished segment"),
            });
        }
        records += scan.records;
        expected = Some(scan.next_offset());
    }
    Ok(records)
}
