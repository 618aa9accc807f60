//! Segment files: the on-disk format, and a sans-IO scanner used by recovery.
//!
//! ## Format (version 1)
//!
//! A log directory holds segment files named after the offset of their first record, twenty
//! decimal digits: `00000000000000000042.seg`. Offsets are record numbers, contiguous across
//! segments: a segment's first offset is the previous segment's last offset plus one.
//!
//! ```text
//! header (22 bytes)
//! +----------+-------------+--------------+--------------------------+
//! | SLUICELG | version u16 | first offset | crc32c of the 18 bytes   |
//! | 8 bytes  | LE          | u64 LE       | before it, u32 LE        |
//! +----------+-------------+--------------+--------------------------+
//! then records, back to back
//! +------------+----------------------------+-----------+-------------------------+
//! | length u32 | crc32c u32 LE over         | offset    | payload: `length` bytes |
//! | LE, >= 1   | offset bytes + payload     | u64 LE    | (`encode_record`)       |
//! +------------+----------------------------+-----------+-------------------------+
//! ```
//!
//! Invariants the scanner checks: the header's magic, version, checksum; every record's
//! checksum; offsets that start at the header's first offset and grow by one.
//!
//! A crash can leave the *last* segment with a torn tail: a partial record, a record whose
//! checksum fails, or a zero-filled stretch, with no valid record after it. That tail was never
//! acknowledged (append returns only after fsync) and is cut on open. A bad record that is
//! followed by a valid one cannot come from a torn append: it is corruption, reported with
//! its byte position and never skipped.

use std::fs::{self, File};
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::error::{LogError, Result};

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"SLUICELG";
/// Version of the segment format written by this build.
pub const SEGMENT_FORMAT_VERSION: u16 = 1;
/// Bytes of the segment header.
pub const HEADER_LEN: usize = 22;
/// Bytes of a record frame before its payload.
pub const FRAME_HEADER_LEN: usize = 16;
/// File name suffix of segment files.
const SEGMENT_SUFFIX: &str = ".seg";

/// A position in a segment that is damaged, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// Byte position in the segment file.
    pub at: u64,
    /// What is wrong, lowercase.
    pub what: String,
}

impl Corruption {
    fn new(at: usize, what: impl Into<String>) -> Self {
        Corruption {
            at: at as u64,
            what: what.into(),
        }
    }

    pub(crate) fn in_segment(self, segment: &Path) -> LogError {
        LogError::Corrupt {
            segment: segment.to_owned(),
            at: self.at,
            what: self.what,
        }
    }
}

/// What follows the valid records of a scanned segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// The valid records end exactly at the end of the input.
    Clean,
    /// Bytes from `at` to the end are a torn append (nothing valid follows).
    Torn {
        at: u64,
        bytes: u64,
        reason: &'static str,
    },
}

/// The result of scanning a whole segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentScan {
    /// The first offset, from the header.
    pub first_offset: u64,
    /// Number of valid records.
    pub records: u64,
    /// Bytes of the header and the valid records.
    pub valid_len: u64,
    /// Byte range of the last valid record's payload.
    pub last_payload: Option<Range<usize>>,
    pub tail: Tail,
}

impl SegmentScan {
    /// The offset the next record appended after this segment's records gets.
    pub fn next_offset(&self) -> u64 {
        self.first_offset + self.records
    }
}

/// The file name of the segment whose first record has `first_offset`.
pub fn segment_file_name(first_offset: u64) -> String {
    format!("{first_offset:020}{SEGMENT_SUFFIX}")
}

/// The first offset named by a segment file name, or `None` if the name is not one.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The header of a segment starting at `first_offset`.
pub fn encode_header(first_offset: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..10].copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
    h[10..18].copy_from_slice(&first_offset.to_le_bytes());
    let crc = crc32c::crc32c(&h[..18]);
    h[18..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Reads a segment header from the start of `bytes`; returns the first offset.
pub fn decode_header(bytes: &[u8]) -> Result<u64, Corruption> {
    let h = bytes.get(..HEADER_LEN).ok_or_else(|| {
        Corruption::new(
            0,
            format!(
                "segment header is incomplete ({} of {HEADER_LEN} bytes)",
                bytes.len()
            ),
        )
    })?;
    if h[..8] != SEGMENT_MAGIC {
        return Err(Corruption::new(0, "not a change log segment (bad magic)"));
    }
    let stored = u32::from_le_bytes([h[18], h[19], h[20], h[21]]);
    if crc32c::crc32c(&h[..18]) != stored {
        return Err(Corruption::new(0, "segment header checksum mismatch"));
    }
    let version = u16::from_le_bytes([h[8], h[9]]);
    if version != SEGMENT_FORMAT_VERSION {
        return Err(Corruption::new(
            8,
            format!(
                "segment format version {version} is not supported (this build reads version {SEGMENT_FORMAT_VERSION})"
            ),
        ));
    }
    Ok(u64_at(h, 10))
}

/// The checksum stored in a frame: crc32c over the offset bytes and the payload.
pub(crate) fn frame_crc(offset: u64, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&offset.to_le_bytes()), payload)
}

/// Fills in the 16-byte frame header at the start of `frame` (whose payload follows it).
pub(crate) fn seal_frame(frame: &mut [u8], offset: u64) {
    let (header, payload) = frame.split_at_mut(FRAME_HEADER_LEN);
    // Callers check the payload length against u32::MAX before framing.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    header[..4].copy_from_slice(&len.to_le_bytes());
    header[4..8].copy_from_slice(&frame_crc(offset, payload).to_le_bytes());
    header[8..16].copy_from_slice(&offset.to_le_bytes());
}

/// One frame parsed from the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// A whole record with a good checksum, `len` bytes including the frame header.
    Complete {
        offset: u64,
        payload: &'a [u8],
        len: usize,
    },
    /// The buffer ends inside the frame.
    Incomplete,
    /// The frame is damaged (zero length or checksum mismatch).
    Bad(&'static str),
}

/// The frame header fields: payload length, stored checksum, offset.
pub(crate) fn frame_header(h: &[u8; FRAME_HEADER_LEN]) -> (u32, u32, u64) {
    (
        u32::from_le_bytes([h[0], h[1], h[2], h[3]]),
        u32::from_le_bytes([h[4], h[5], h[6], h[7]]),
        u64_at(h, 8),
    )
}

pub(crate) fn parse_frame(buf: &[u8]) -> Frame<'_> {
    let Some(h) = buf.first_chunk::<FRAME_HEADER_LEN>() else {
        return Frame::Incomplete;
    };
    let (len, crc, offset) = frame_header(h);
    if len == 0 {
        return Frame::Bad("record length is zero");
    }
    // u32 + 16 fits every usize this crate builds for (64-bit).
    let total = FRAME_HEADER_LEN.saturating_add(len as usize);
    let Some(payload) = buf.get(FRAME_HEADER_LEN..total) else {
        return Frame::Incomplete;
    };
    if frame_crc(offset, payload) != crc {
        return Frame::Bad("record checksum mismatch");
    }
    Frame::Complete {
        offset,
        payload,
        len: total,
    }
}

/// The position of a valid frame that starts after `from` in `buf`, with an offset that could
/// follow `expected`. Used to tell a torn tail (nothing valid after the damage) from
/// corruption (a valid record after it).
pub(crate) fn find_valid_frame(buf: &[u8], from: usize, expected: u64) -> Option<usize> {
    // A frame takes at least FRAME_HEADER_LEN + 1 bytes, which bounds how many records the
    // rest of the buffer can hold, and so which offsets are plausible.
    let room = (buf.len().saturating_sub(from) / (FRAME_HEADER_LEN + 1)) as u64;
    let last_start = buf.len().checked_sub(FRAME_HEADER_LEN + 1)?;
    (from..=last_start).find(|&q| {
        let offset = u64_at(buf, q + 8);
        offset >= expected
            && offset - expected <= room
            && matches!(parse_frame(&buf[q..]), Frame::Complete { .. })
    })
}

/// Scans a whole segment file held in memory: checks the header and every record, and
/// classifies whatever follows the last valid record (see the module docs).
pub fn scan_segment(bytes: &[u8]) -> Result<SegmentScan, Corruption> {
    let first_offset = decode_header(bytes)?;
    let mut pos = HEADER_LEN;
    let mut next = first_offset;
    let mut records = 0u64;
    let mut last_payload = None;
    let tail = loop {
        if pos == bytes.len() {
            break Tail::Clean;
        }
        let rest = &bytes[pos..];
        let reason = match parse_frame(rest) {
            Frame::Complete {
                offset,
                payload: _,
                len,
            } => {
                if offset != next {
                    return Err(Corruption::new(
                        pos,
                        format!("record offset {offset} where {next} was expected"),
                    ));
                }
                last_payload = Some(pos + FRAME_HEADER_LEN..pos + len);
                pos += len;
                records += 1;
                next = next
                    .checked_add(1)
                    .ok_or_else(|| Corruption::new(pos, "record offset overflows"))?;
                continue;
            }
            Frame::Incomplete => "incomplete record",
            Frame::Bad(what) => what,
        };
        if let Some(at) = find_valid_frame(bytes, pos + 1, next) {
            return Err(Corruption::new(
                pos,
                format!("{reason}, and a valid record follows at byte {at}"),
            ));
        }
        let reason = if rest.iter().all(|&b| b == 0) {
            "zero-filled tail"
        } else {
            reason
        };
        break Tail::Torn {
            at: pos as u64,
            bytes: rest.len() as u64,
            reason,
        };
    };
    Ok(SegmentScan {
        first_offset,
        records,
        valid_len: pos as u64,
        last_payload,
        tail,
    })
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

/// A segment file found in the log directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentFile {
    pub first_offset: u64,
    pub path: PathBuf,
}

/// The segment files of `dir`, by first offset. Other files (the lock) are ignored.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<SegmentFile>> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(LogError::io("list change log directory", dir))?;
    for entry in entries {
        let entry = entry.map_err(LogError::io("list change log directory", dir))?;
        let name = entry.file_name();
        if let Some(first_offset) = name.to_str().and_then(parse_segment_file_name) {
            out.push(SegmentFile {
                first_offset,
                path: entry.path(),
            });
        }
    }
    out.sort_by_key(|s| s.first_offset);
    Ok(out)
}

/// Reads a whole segment file.
pub(crate) fn read_segment(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(LogError::io("read change log segment", path))
}

/// Reads and checks the header of the segment at `path` against its file name.
pub(crate) fn check_header(segment: &SegmentFile) -> Result<()> {
    let mut h = [0u8; HEADER_LEN];
    let mut file = File::open(&segment.path)
        .map_err(LogError::io("open change log segment", &segment.path))?;
    let got = read_full(&mut file, &mut h)
        .map_err(LogError::io("read change log segment", &segment.path))?;
    let first = decode_header(&h[..got]).map_err(|c| c.in_segment(&segment.path))?;
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

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub(crate) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Fsyncs a directory so that file creations and deletions in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(LogError::io("fsync change log directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(first: u64, payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = encode_header(first).to_vec();
        for (i, p) in payloads.iter().enumerate() {
            let start = out.len();
            out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
            out.extend_from_slice(p);
            seal_frame(&mut out[start..], first + i as u64);
        }
        out
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(segment_file_name(42), "00000000000000000042.seg");
        assert_eq!(
            parse_segment_file_name("00000000000000000042.seg"),
            Some(42)
        );
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        for bad in [
            "42.seg",
            "LOCK",
            "0000000000000000004x.seg",
            "00000000000000000042.seg.tmp",
            "99999999999999999999.seg",
        ] {
            assert_eq!(parse_segment_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn clean_segment() {
        let bytes = segment(7, &[b"a", b"bb", b"ccc"]);
        let scan = scan_segment(&bytes).expect("valid");
        assert_eq!(scan.first_offset, 7);
        assert_eq!(scan.records, 3);
        assert_eq!(scan.next_offset(), 10);
        assert_eq!(scan.valid_len, bytes.len() as u64);
        assert_eq!(scan.tail, Tail::Clean);
        assert_eq!(&bytes[scan.last_payload.expect("has records")], b"ccc");
    }

    #[test]
    fn empty_segment() {
        let scan = scan_segment(&encode_header(5)).expect("valid");
        assert_eq!(
            (scan.records, scan.last_payload, scan.tail),
            (0, None, Tail::Clean)
        );
    }

    #[test]
    fn torn_tails() {
        let bytes = segment(0, &[b"one", b"two", b"three"]);
        let two_end = bytes.len() - (FRAME_HEADER_LEN + 5);
        for cut in two_end + 1..bytes.len() {
            let scan = scan_segment(&bytes[..cut]).expect("torn, not corrupt");
            assert_eq!(scan.records, 2, "cut at {cut}");
            assert_eq!(scan.valid_len, two_end as u64);
            assert!(matches!(scan.tail, Tail::Torn { .. }));
        }
        let mut zeros = bytes.clone();
        zeros.extend_from_slice(&[0; 100]);
        let scan = scan_segment(&zeros).expect("zero tail is torn");
        assert_eq!(
            scan.tail,
            Tail::Torn {
                at: bytes.len() as u64,
                bytes: 100,
                reason: "zero-filled tail"
            }
        );
        let mut flipped = bytes.clone();
        *flipped.last_mut().expect("non-empty") ^= 1;
        let scan = scan_segment(&flipped).expect("bad last record is torn");
        assert_eq!(scan.records, 2);
    }

    #[test]
    fn corruption_before_a_valid_record() {
        let bytes = segment(0, &[b"one", b"two", b"three"]);
        let second = HEADER_LEN + FRAME_HEADER_LEN + 3;
        // payload byte, checksum byte, and length byte of the second record
        for at in [second + FRAME_HEADER_LEN, second + 5, second] {
            let mut b = bytes.clone();
            b[at] ^= 0x40;
            let err = scan_segment(&b).expect_err("corrupt");
            assert_eq!(err.at, second as u64, "flip at {at}: {err:?}");
        }
    }

    #[test]
    fn offsets_must_be_contiguous() {
        let mut bytes = segment(0, &[b"one"]);
        let start = bytes.len();
        bytes.extend_from_slice(&[0; FRAME_HEADER_LEN]);
        bytes.extend_from_slice(b"two");
        seal_frame(&mut bytes[start..], 5);
        let err = scan_segment(&bytes).expect_err("gap");
        assert_eq!(
            err,
            Corruption::new(start, "record offset 5 where 1 was expected")
        );
    }

    #[test]
    fn bad_headers() {
        assert!(scan_segment(b"").is_err());
        assert!(scan_segment(&encode_header(1)[..21]).is_err());
        let mut h = encode_header(1);
        h[12] ^= 1;
        assert_eq!(
            scan_segment(&h).expect_err("crc").what,
            "segment header checksum mismatch"
        );
        let mut h = encode_header(1);
        h[0] = b'X';
        assert!(scan_segment(&h).is_err());
    }
}
