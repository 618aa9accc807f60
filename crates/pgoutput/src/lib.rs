//! Sans-IO decoder for PostgreSQL's pgoutput logical replication protocol.
//!
//! Two layers, both pure functions over [`bytes::Bytes`]:
//!
//! - [`decode_frame`] reads the payload of a CopyData message of a `START_REPLICATION`
//!   copy-both stream: XLogData (`'w'`) or a primary keepalive (`'k'`).
//!   [`encode_status_update`] writes the standby status update (`'r'`) the client sends back.
//! - [`decode_message`] reads one pgoutput message (the `data` of an XLogData frame): protocol
//!   version 1 in full, plus the streaming messages of version 2 ([`MessageDecoder`] tracks
//!   streamed blocks).
//!
//! The field-by-field layouts are in the `frame`, `message` and `tuple` module docs; in short
//! (big-endian integers, NUL-terminated strings, LSNs as `Int64`, times as `Int64`
//! microseconds since 2000-01-01 UTC, see [`time`]):
//!
//! ```text
//! frames:   'w' wal_start wal_end send_time data | 'k' wal_end send_time reply_requested
//!           'r' write flush apply client_time reply_requested   (client to server)
//! Begin 'B' | Commit 'C' | Origin 'O' | Relation 'R' | Type 'Y' | Insert 'I' | Update 'U'
//! Delete 'D' | Truncate 'T' | Message 'M' | Stream Start 'S' | Stream Stop 'E'
//! Stream Commit 'c' | Stream Abort 'A'
//! TupleData: Int16 ncols, per column 'n' | 'u' | 't' Int32 len Byte[len] | 'b' Int32 len Byte[len]
//! ```
//!
//! Invariants: no input makes a decoder panic or allocate more than the input could describe;
//! every read is length-checked; malformed input yields a [`DecodeError`] naming the message,
//! the field and the byte offset. Column values and logical message content are zero-copy
//! slices of the input buffer.

mod error;
mod frame;
mod message;
mod reader;
pub mod time;
mod tuple;

pub use error::{DecodeError, Result};
pub use frame::{
    Frame, PrimaryKeepalive, STATUS_UPDATE_LEN, StatusUpdate, XLogData, decode_frame,
    encode_status_update,
};
pub use message::{
    Begin, Commit, Delete, Insert, LogicalMessage, Message, MessageDecoder, OldKind, Origin,
    Relation, RelationColumn, ReplicaIdentity, StreamAbort, StreamCommit, StreamStart, Truncate,
    TypeMessage, Update, decode_message, decode_streamed_message,
};
pub use tuple::{Tuple, TupleValue};
