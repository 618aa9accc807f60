//! Local directory change log for Sluice: checksummed, fsynced, segmented append-only files.
//!
//! The default change log between capture and loader. One directory, one partition (`"0"`),
//! offsets are record numbers from 0, never reused; the position after a record is
//! `LogPosition::single("0", offset + 1)`.
//!
//! ```text
//! DIR/
//!   LOCK                          exclusive flock held by the one writer
//!   00000000000000000000.seg      segment: header, then framed records
//!   00000000000000001742.seg      the next segment starts at offset 1742
//! ```
//!
//! Segment header: `SLUICELG | version u16 | first offset u64 | crc32c u32`, all little
//! endian. Record frame: `length u32 | crc32c u32 over offset+payload | offset u64 | payload`,
//! payload = [`sluice_core::encode_record`]. Details and recovery rules in [`scan_segment`].
//!
//! - [`LocalLog`] is the writer ([`sluice_core::ChangeLogWriter`]): `append` returns once the
//!   records are fsynced (one fsync per append: group commit). Opening recovers a torn tail.
//! - [`LogReader`] is a reader ([`sluice_core::ChangeLogReader`]), in the writer's process
//!   ([`LocalLog::reader`], woken on every append) or in another ([`LogReader::open`],
//!   polling). `release` deletes whole segments before a position.

mod config;
mod error;
mod log;
mod reader;
mod segment;

pub use config::{DEFAULT_SEGMENT_BYTES, LogOptions, MIN_SEGMENT_BYTES};
pub use error::{LogError, Result};
pub use log::{LOCK_FILE, LocalLog};
pub use reader::{LogReader, LogStats, PARTITION, POLL_INTERVAL};
pub use segment::{
    Corruption, FRAME_HEADER_LEN, HEADER_LEN, SEGMENT_FORMAT_VERSION, SEGMENT_MAGIC, SegmentScan,
    Tail, decode_header, encode_header, scan_segment, segment_file_name,
};
