//! Sans-IO decoder for PostgreSQL's pgoutput logical replication protocol.
//!
//! Two layers, both pure functions over [`bytes::Bytes`]:
//!
//! - [`decode_frame`] reads the payload of a CopyData message of a `START_REPLICATION`
//!   copy-both stream: XLogData (`'w'`) or a primary keepalive (`'k'`).
//!   [`encode_status_update`] writes the standby status update (`'r'`) the client sends back.
//!   Wire formats in [`frame`](crate::Frame).
//! - [`decode_message`] reads one pgoutput message (the `data` of an XLogData frame): protocol
//!   version 1 in full, plus the streaming messages of version 2 ([`MessageDecoder`] tracks
//!   streamed blocks). Wire formats in the `message` and `tuple` module docs, repeated here:
//!
//! ```text
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
