//! The reading half: [`LogReader`].
//!
//! A reader keeps one segment file open behind a buffered reader and walks it sequentially,
//! checking every record's checksum and offset. It reads only what is durable:
//!
//! - **In process** ([`crate::LocalLog::reader`]): the writer publishes its durable end offset
//!   on a watch channel; the reader stops there and wakes up as soon as it moves. Everything
//!   before that end was fsynced, so a damaged or missing record there is corruption.
//! - **Another process** ([`LogReader::open`]): the reader polls every [`POLL_INTERVAL`]. An
//!   incomplete or damaged record at the end of the last segment with nothing valid after it
//!   is an append in progress (read again later) or a torn tail the writer will cut when it
//!   reopens. A damaged or incomplete record in a finished segment, or one followed by a valid
//!   record (whatever its length field claims), is corruption.
//!
//! File work runs on the blocking pool, on a cursor behind a mutex. Records the blocking task
//! has read are parked in the cursor before the async side takes them, so dropping a `read`
//! future loses nothing: the next `read` returns them.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sluice_core::{ChangeLogReader, LogPosition, ReadRecord, decode_record};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::{LogError, Result};
use crate::log::{Durable, release_segments};
use crate::segment::{
    FRAME_HEADER_LEN, HEADER_LEN, SegmentFile, decode_header, find_valid_frame, frame_crc,
    frame_header, list_segments, read_full, segment_file_name,
};

/// How often a reader in another process than the writer looks for new records. Short enough
/// that a loader's latency is dominated by its flush interval (a second by default), long
/// enough that an idle reader costs nothing noticeable.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The only partition of a local log.
pub const PARTITION: &str = "0";

/// Read buffer size: a few typical transaction records per system call.
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// Depth and retention of a log, for status output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogStats {
    /// The oldest retained record's offset (equal to `next_offset` when nothing is retained).
    pub oldest_offset: u64,
    /// The offset the next appended record gets.
    pub next_offset: u64,
    /// Records after the position asked about.
    pub records_after: u64,
    /// Bytes of those records on disk (frames included).
    pub bytes_after: u64,
    /// Segment files in the directory.
    pub segments: usize,
    /// Bytes of all segment files.
    pub total_bytes: u64,
}

/// A reader of a local change log.
#[derive(Debug)]
pub struct LogReader {
    dir: PathBuf,
    cursor: Arc<Mutex<Cursor>>,
    /// The writer's durable end, when the writer is in this process and still open.
    durable: Option<watch::Receiver<Durable>>,
}

impl LogReader {
    pub(crate) fn in_process(dir: PathBuf, durable: watch::Receiver<Durable>) -> Self {
        LogReader {
            cursor: Arc::new(Mutex::new(Cursor::new(dir.clone()))),
            dir,
            durable: Some(durable),
        }
    }

    /// A reader of the log in `dir`, written by another process (or not at all), positioned at
    /// the oldest retained record. It takes no lock: any number of readers may exist.
    pub async fn open(dir: impl Into<PathBuf>) -> Result<LogReader> {
        let dir = dir.into();
        let probe = dir.clone();
        tokio::task::spawn_blocking(move || list_segments(&probe))
            .await
            .map_err(LogError::Task)??;
        Ok(LogReader {
            cursor: Arc::new(Mutex::new(Cursor::new(dir.clone()))),
            dir,
            durable: None,
        })
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Depth of the log after `after` and the oldest retained offset, for status output.
    pub async fn stats(&self, after: &LogPosition) -> Result<LogStats> {
        let after = parse_position(after)?;
        let dir = self.dir.clone();
        let end = self.limit();
        tokio::task::spawn_blocking(move || dir_stats(&dir, after, end))
            .await
            .map_err(LogError::Task)?
    }

    /// The writer's durable end, if the writer is in this process and still open.
    fn limit(&self) -> Option<u64> {
        let rx = self.durable.as_ref()?;
        rx.has_changed().ok()?;
        Some(rx.borrow().next)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Cursor) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let cursor = Arc::clone(&self.cursor);
        tokio::task::spawn_blocking(move || f(&mut lock(&cursor)))
            .await
            .map_err(LogError::Task)?
    }
}

fn lock(cursor: &Mutex<Cursor>) -> MutexGuard<'_, Cursor> {
    cursor.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ChangeLogReader for LogReader {
    type Error = LogError;

    async fn seek(&mut self, position: &LogPosition) -> Result<()> {
        let target = parse_position(position)?;
        let limit = self.limit();
        self.blocking(move |c| c.seek(target, limit)).await
    }

    async fn read(&mut self, max_bytes: usize, wait: Duration) -> Result<Vec<ReadRecord>> {
        let deadline = Instant::now() + wait;
        loop {
            // Mark the current durable end as seen before reading up to it, so an append that
            // lands after the read wakes the wait below.
            let limit = match &mut self.durable {
                Some(rx) if rx.has_changed().is_ok() => Some(rx.borrow_and_update().next),
                _ => None,
            };
            self.blocking(move |c| c.fill(max_bytes, limit)).await?;
            let out = lock(&self.cursor).drain(max_bytes);
            if !out.is_empty() || Instant::now() >= deadline {
                return Ok(out);
            }
            match &mut self.durable {
                Some(rx) if limit.is_some() => {
                    match tokio::time::timeout_at(deadline, rx.changed()).await {
                        Ok(Ok(())) | Err(_) => {}
                        // The writer is gone: another process may write now; poll.
                        Ok(Err(_)) => self.durable = None,
                    }
                }
                _ => tokio::time::sleep_until(deadline.min(Instant::now() + POLL_INTERVAL)).await,
            }
        }
    }

    async fn release(&mut self, position: &LogPosition) -> Result<()> {
        let Some(target) = parse_position(position)? else {
            return Ok(());
        };
        if let Some(end) = self.limit()
            && target > end
        {
            return Err(LogError::BeyondEnd {
                requested: target,
                end,
            });
        }
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || release_segments(&dir, target))
            .await
            .map_err(LogError::Task)??;
        Ok(())
    }
}

/// The offset in a position issued by this log; `None` for "from the start of what is
/// retained".
pub(crate) fn parse_position(position: &LogPosition) -> Result<Option<u64>> {
    let bad = |reason: String| LogError::BadPosition {
        position: format!("{:?}", position.partitions),
        reason,
    };
    if let Some(other) = position.partitions.keys().find(|k| *k != PARTITION) {
        return Err(bad(format!(
            "it names partition {other:?}, a local log has only partition \"{PARTITION}\""
        )));
    }
    position
        .partitions
        .get(PARTITION)
        .map(|s| {
            s.parse::<u64>()
                .map_err(|_| bad(format!("offset {s:?} is not a record number")))
        })
        .transpose()
}

struct OpenSegment {
    path: PathBuf,
    /// Offset of the segment's first record.
    first: u64,
    reader: BufReader<File>,
    /// Byte position of the next frame.
    pos: u64,
    /// File length as last seen; refreshed when a frame seems to run past it.
    file_len: u64,
}

impl std::fmt::Debug for OpenSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenSegment")
            .field("path", &self.path)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl OpenSegment {
    fn open(path: &Path) -> Result<Option<(OpenSegment, u64)>> {
        let file = File::open(path).map_err(LogError::io("open change log segment", path))?;
        let file_len = file
            .metadata()
            .map_err(LogError::io("stat change log segment", path))?
            .len();
        let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
        let mut h = [0u8; HEADER_LEN];
        let got = read_full(&mut reader, &mut h)
            .map_err(LogError::io("read change log segment", path))?;
        if got < HEADER_LEN {
            // A segment being created by the writer in another process.
            return Ok(None);
        }
        let first = decode_header(&h).map_err(|c| c.in_segment(path))?;
        Ok(Some((
            OpenSegment {
                path: path.to_owned(),
                first,
                reader,
                pos: HEADER_LEN as u64,
                file_len,
            },
            first,
        )))
    }

    fn io(&self, action: &'static str) -> impl FnOnce(std::io::Error) -> LogError {
        LogError::io(action, &self.path)
    }

    fn rewind(&mut self) -> Result<()> {
        let pos = self.pos;
        self.reader
            .seek(SeekFrom::Start(pos))
            .map(drop)
            .map_err(self.io("seek in change log segment"))
    }

    /// Whether a frame of `len` payload bytes at the current position lies within the file.
    fn fits(&mut self, len: u32) -> Result<bool> {
        let end = self.pos + FRAME_HEADER_LEN as u64 + u64::from(len);
        if end > self.file_len {
            self.file_len = self
                .reader
                .get_ref()
                .metadata()
                .map_err(self.io("stat change log segment"))?
                .len();
        }
        Ok(end <= self.file_len)
    }

    /// Skips frames from `at` up to offset `target` without checking payloads. Returns the
    /// offset reached: `target`, or less when the segment ends first.
    fn skip_to(&mut self, mut at: u64, target: u64) -> Result<u64> {
        while at < target {
            let mut h = [0u8; FRAME_HEADER_LEN];
            let got =
                read_full(&mut self.reader, &mut h).map_err(self.io("read change log segment"))?;
            if got < FRAME_HEADER_LEN {
                self.rewind()?;
                break;
            }
            let (len, _, offset) = frame_header(&h);
            if len == 0 || !self.fits(len)? {
                self.rewind()?;
                break;
            }
            if offset != at {
                return Err(LogError::Corrupt {
                    segment: self.path.clone(),
                    at: self.pos,
                    what: format!("record offset {offset} where {at} was expected"),
                });
            }
            self.reader
                .seek_relative(i64::from(len))
                .map_err(self.io("seek in change log segment"))?;
            self.pos += FRAME_HEADER_LEN as u64 + u64::from(len);
            at += 1;
        }
        Ok(at)
    }
}

/// What the reader found at its position.
enum Step {
    Record(u64),
    End,
    Incomplete,
    Bad(&'static str),
}

#[derive(Debug)]
struct Cursor {
    dir: PathBuf,
    /// Offset of the next record to read; `None` until resolved to the oldest retained one.
    next: Option<u64>,
    segment: Option<OpenSegment>,
    /// Records read but not yet returned, with their sizes.
    pending: VecDeque<(ReadRecord, usize)>,
    pending_bytes: usize,
    payload: Vec<u8>,
}

impl Cursor {
    fn new(dir: PathBuf) -> Self {
        Cursor {
            dir,
            next: None,
            segment: None,
            pending: VecDeque::new(),
            pending_bytes: 0,
            payload: Vec::new(),
        }
    }

    fn seek(&mut self, target: Option<u64>, limit: Option<u64>) -> Result<()> {
        self.pending.clear();
        self.pending_bytes = 0;
        self.segment = None;
        self.next = None;
        let Some(target) = target else {
            return Ok(());
        };
        if let Some(end) = limit
            && target > end
        {
            return Err(LogError::BeyondEnd {
                requested: target,
                end,
            });
        }
        if !self.open_segment_for(target)? {
            let segments = list_segments(&self.dir)?;
            // An empty directory: only the very start is a valid position.
            if !(segments.is_empty() && target == 0) {
                return Err(LogError::BeyondEnd {
                    requested: target,
                    end: segments.first().map_or(0, |s| s.first_offset),
                });
            }
        }
        self.next = Some(target);
        Ok(())
    }

    /// Opens the segment holding offset `next` and positions it there. `Ok(false)` when
    /// there is no segment yet (empty directory, or one being created).
    fn open_segment_for(&mut self, next: u64) -> Result<bool> {
        self.segment = None;
        let segments = list_segments(&self.dir)?;
        let Some(oldest) = segments.first() else {
            return Ok(false);
        };
        let Some(segment) = segments.iter().rev().find(|s| s.first_offset <= next) else {
            return Err(LogError::NotRetained {
                requested: next,
                oldest: oldest.first_offset,
            });
        };
        let Some((mut open, first)) = OpenSegment::open(&segment.path)? else {
            return Ok(false);
        };
        check_first(segment, first)?;
        let reached = open.skip_to(first, next)?;
        if reached != next {
            return Err(LogError::BeyondEnd {
                requested: next,
                end: reached,
            });
        }
        self.segment = Some(open);
        Ok(true)
    }

    /// Reads records into `pending` until it holds `max_bytes` (at least one record), or no
    /// more are available below `limit` (the writer's durable end, when known).
    fn fill(&mut self, max_bytes: usize, limit: Option<u64>) -> Result<()> {
        while self.pending.is_empty() || self.pending_bytes < max_bytes {
            match self.read_one(limit) {
                Ok(Some((record, size))) => {
                    self.pending_bytes += size;
                    self.pending.push_back((record, size));
                }
                Ok(None) => break,
                Err(e) => {
                    // The cursor stays before the failing record: reopen there next time, so
                    // the records read so far are returned first and the error comes after.
                    self.segment = None;
                    if self.pending.is_empty() {
                        return Err(e);
                    }
                    break;
                }
            }
        }
        Ok(())
    }

    fn drain(&mut self, max_bytes: usize) -> Vec<ReadRecord> {
        let mut out = Vec::new();
        let mut bytes = 0;
        while out.is_empty() || bytes < max_bytes {
            let Some((record, size)) = self.pending.pop_front() else {
                break;
            };
            bytes += size;
            self.pending_bytes -= size;
            out.push(record);
        }
        out
    }

    fn read_one(&mut self, limit: Option<u64>) -> Result<Option<(ReadRecord, usize)>> {
        let mut retried = false;
        loop {
            let next = match self.next {
                Some(n) => n,
                None => match list_segments(&self.dir)?.first() {
                    Some(s) => *self.next.insert(s.first_offset),
                    None => return Ok(None),
                },
            };
            // Below the writer's durable end every record must be there and intact.
            let durable = match limit {
                Some(end) if next >= end => return Ok(None),
                Some(_) => true,
                None => false,
            };
            if self.segment.is_none() && !self.open_segment_for(next)? {
                if durable {
                    return Err(LogError::Corrupt {
                        segment: self.dir.join(segment_file_name(next)),
                        at: 0,
                        what: format!("missing segment for durable record {next}"),
                    });
                }
                return Ok(None);
            }
            let step = self.step(next)?;
            let Some(seg) = self.segment.as_mut() else {
                return Ok(None);
            };
            let reason = match step {
                Step::Record(len) => {
                    let record =
                        decode_record(&self.payload).map_err(|source| LogError::Decode {
                            segment: seg.path.clone(),
                            offset: next,
                            source,
                        })?;
                    // The offset is stored in the frame; u64::MAX cannot be followed.
                    let after = next.checked_add(1).ok_or_else(|| LogError::Corrupt {
                        segment: seg.path.clone(),
                        at: seg.pos,
                        what: "record offset overflows".into(),
                    })?;
                    seg.pos += FRAME_HEADER_LEN as u64 + len;
                    self.next = Some(after);
                    // Budgets count memory, as the loader does ([`LogRecord::size`]).
                    let size = record.size();
                    return Ok(Some((
                        ReadRecord {
                            record,
                            position: LogPosition::single(PARTITION, after),
                        },
                        size,
                    )));
                }
                Step::End => {
                    // One listing decides: the writer creates the next segment (named after
                    // `next`) before it writes to it, and never leaves a gap.
                    let later = list_segments(&self.dir)?
                        .into_iter()
                        .find(|s| s.first_offset > seg.first);
                    let what = match later {
                        Some(s) if s.first_offset == next => {
                            self.segment = None;
                            continue;
                        }
                        Some(s) => format!(
                            "segment ends before record {next} but the next segment starts at {}",
                            s.first_offset
                        ),
                        None if durable => format!("segment ends before durable record {next}"),
                        None => return Ok(None),
                    };
                    return Err(LogError::Corrupt {
                        segment: seg.path.clone(),
                        at: seg.pos,
                        what,
                    });
                }
                Step::Incomplete => "incomplete record",
                Step::Bad(what) => what,
            };
            seg.rewind()?;
            let (path, at) = (seg.path.clone(), seg.pos);
            let corrupt = move |what: String| LogError::Corrupt {
                segment: path,
                at,
                what,
            };
            if durable {
                return Err(corrupt(reason.to_owned()));
            }
            let first = seg.first;
            if list_segments(&self.dir)?
                .iter()
                .any(|s| s.first_offset > first)
            {
                // The writer has moved on, so this segment is finished. What looked like an
                // append in progress may have completed meanwhile: look once more.
                if !retried {
                    retried = true;
                    continue;
                }
                return Err(corrupt(format!("{reason} in a finished segment")));
            }
            // A reader sees an append in progress as a prefix of its bytes, so a valid record
            // after the damage means it is not one: a flipped checksum or payload byte, or a
            // length that claims to run past the end of the file (which looks like a record
            // still being written) where the next record in fact starts.
            let mut rest = Vec::new();
            seg.reader
                .read_to_end(&mut rest)
                .map_err(seg.io("read change log segment"))?;
            let found = find_valid_frame(&rest, 1, next);
            seg.rewind()?;
            if let Some(q) = found {
                return Err(corrupt(format!(
                    "{reason}, and a valid record follows at byte {}",
                    seg.pos + q as u64
                )));
            }
            // An append in progress, or a torn tail the writer cuts when it reopens.
            return Ok(None);
        }
    }

    /// Reads the frame at the current position of the open segment; on `Record` the payload
    /// is in `self.payload`.
    fn step(&mut self, next: u64) -> Result<Step> {
        let Some(seg) = self.segment.as_mut() else {
            return Ok(Step::End);
        };
        let mut h = [0u8; FRAME_HEADER_LEN];
        let got = read_full(&mut seg.reader, &mut h).map_err(seg.io("read change log segment"))?;
        if got == 0 {
            return Ok(Step::End);
        }
        if got < FRAME_HEADER_LEN {
            return Ok(Step::Incomplete);
        }
        let (len, crc, offset) = frame_header(&h);
        if len == 0 {
            return Ok(Step::Bad("record length is zero"));
        }
        // The length is checked against the file before it sizes the buffer.
        if !seg.fits(len)? {
            return Ok(Step::Incomplete);
        }
        self.payload.clear();
        self.payload.resize(len as usize, 0);
        seg.reader
            .read_exact(&mut self.payload)
            .map_err(seg.io("read change log segment"))?;
        if frame_crc(offset, &self.payload) != crc {
            return Ok(Step::Bad("record checksum mismatch"));
        }
        if offset != next {
            return Err(LogError::Corrupt {
                segment: seg.path.clone(),
                at: seg.pos,
                what: format!("record offset {offset} where {next} was expected"),
            });
        }
        Ok(Step::Record(u64::from(len)))
    }
}

fn check_first(segment: &SegmentFile, first: u64) -> Result<()> {
    if first != segment.first_offset {
        return Err(LogError::Corrupt {
            segment: segment.path.clone(),
            at: 10,
            what: format!(
                "header says the first offset is {first} but the file name says {}",
                segment.first_offset
            ),
        });
    }
    Ok(())
}

/// Walks frame headers of `segment` up to offset `target` (or its end); returns the offset
/// reached and its byte position.
fn walk(segment: &SegmentFile, target: u64) -> Result<(u64, u64)> {
    match OpenSegment::open(&segment.path)? {
        Some((mut open, first)) => {
            check_first(segment, first)?;
            let reached = open.skip_to(first, target)?;
            Ok((reached, open.pos))
        }
        None => Ok((segment.first_offset, HEADER_LEN as u64)),
    }
}

pub(crate) fn dir_stats(dir: &Path, after: Option<u64>, end: Option<u64>) -> Result<LogStats> {
    let segments = list_segments(dir)?;
    let mut lens = Vec::with_capacity(segments.len());
    for s in &segments {
        let len = std::fs::metadata(&s.path)
            .map_err(LogError::io("stat change log segment", &s.path))?
            .len();
        lens.push(len.max(HEADER_LEN as u64));
    }
    let (Some(first), Some(last)) = (segments.first(), segments.last()) else {
        let next = end.unwrap_or(0);
        return Ok(LogStats {
            oldest_offset: next,
            next_offset: next,
            records_after: 0,
            bytes_after: 0,
            segments: 0,
            total_bytes: 0,
        });
    };
    let next_offset = match end {
        Some(end) => end,
        None => walk(last, u64::MAX)?.0,
    };
    let from = after.unwrap_or(first.first_offset).max(first.first_offset);
    let total_bytes: u64 = lens.iter().sum();
    let mut bytes_after = 0;
    if from < next_offset {
        let i = segments
            .iter()
            .rposition(|s| s.first_offset <= from)
            .unwrap_or(0);
        let (_, pos) = walk(&segments[i], from)?;
        bytes_after = lens[i].saturating_sub(pos)
            + lens[i + 1..]
                .iter()
                .map(|l| l - HEADER_LEN as u64)
                .sum::<u64>();
    }
    Ok(LogStats {
        oldest_offset: first.first_offset,
        next_offset,
        records_after: next_offset.saturating_sub(from),
        bytes_after,
        segments: segments.len(),
        total_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions() {
        assert_eq!(
            parse_position(&LogPosition::default()).expect("empty"),
            None
        );
        assert_eq!(
            parse_position(&LogPosition::single("0", 42)).expect("valid"),
            Some(42)
        );
        assert!(parse_position(&LogPosition::single("1", 42)).is_err());
        assert!(parse_position(&LogPosition::single("0", "x")).is_err());
        assert!(parse_position(&LogPosition::single("0", -1)).is_err());
    }
}
