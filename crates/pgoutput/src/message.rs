//! pgoutput logical replication messages (protocol version 1, and the streaming messages of
//! version 2).
//!
//! Each message is the `data` of one XLogData frame, or one row of
//! `pg_logical_slot_peek_binary_changes`. Integers are big-endian; `String` is NUL-terminated;
//! LSNs are `Int64`; timestamps are `Int64` microseconds since 2000-01-01 UTC; OIDs and xids
//! are `Int32` read as unsigned. `[xid]` is an `Int32` transaction id present only inside a
//! streamed block (between Stream Start and Stream Stop, protocol 2).
//!
//! ```text
//! Begin         'B'  Int64 final_lsn  Int64 commit_ts  Int32 xid
//! Commit        'C'  Int8 flags  Int64 commit_lsn  Int64 end_lsn  Int64 commit_ts
//! Origin        'O'  Int64 commit_lsn  String name
//! Relation      'R'  [xid] Int32 rel_id  String namespace  String name  Int8 replica_identity
//!                    Int16 ncols, per column: Int8 flags (1 = key)  String name
//!                    Int32 type_oid  Int32 type_modifier
//! Type          'Y'  [xid] Int32 type_oid  String namespace  String name
//! Insert        'I'  [xid] Int32 rel_id  'N' TupleData
//! Update        'U'  [xid] Int32 rel_id  [('K' | 'O') TupleData]  'N' TupleData
//! Delete        'D'  [xid] Int32 rel_id  ('K' | 'O') TupleData
//! Truncate      'T'  [xid] Int32 nrels  Int8 options (1 = cascade, 2 = restart identity)
//!                    Int32 rel_id * nrels
//! Message       'M'  [xid] Int8 flags (1 = transactional)  Int64 lsn  String prefix
//!                    Int32 len  Byte[len] content
//! Stream Start  'S'  Int32 xid  Int8 first_segment
//! Stream Stop   'E'
//! Stream Commit 'c'  Int32 xid  Int8 flags  Int64 commit_lsn  Int64 end_lsn  Int64 commit_ts
//! Stream Abort  'A'  Int32 xid  Int32 subxid  [Int64 abort_lsn  Int64 abort_ts] (protocol 4)
//! ```
//!
//! `K` carries the old replica-identity key columns (the others are NULL), `O` the whole old
//! row (`REPLICA IDENTITY FULL`). An Update without an old tuple did not change the key. Names
//! are decoded as UTF-8 (the database encoding must be UTF-8) into owned strings: Relation,
//! Type and Origin messages are rare, so that costs nothing on the hot path. Column values and
//! message content are zero-copy slices. A message must be consumed exactly: trailing bytes
//! are an error. Two-phase commit messages (protocol 3) are not supported and are reported as
//! unknown tags.

use bytes::Bytes;
use sluice_core::Lsn;

use crate::error::{DecodeError, Result};
use crate::reader::Reader;
use crate::tuple::Tuple;

/// One decoded pgoutput message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Begin(Begin),
    Commit(Commit),
    Origin(Origin),
    Relation(Relation),
    Type(TypeMessage),
    Insert(Insert),
    Update(Update),
    Delete(Delete),
    Truncate(Truncate),
    Message(LogicalMessage),
    StreamStart(StreamStart),
    StreamStop,
    StreamCommit(StreamCommit),
    StreamAbort(StreamAbort),
}

/// `'B'`: start of a (non-streamed) transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Begin {
    /// LSN of the commit record: the transaction's ordering key.
    pub final_lsn: Lsn,
    /// Commit time, microseconds since 2000-01-01 UTC.
    pub commit_ts: i64,
    pub xid: u32,
}

/// `'C'`: end of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// Unused by PostgreSQL so far (0).
    pub flags: u8,
    /// LSN of the commit record (equals the Begin's `final_lsn`).
    pub commit_lsn: Lsn,
    /// End of the commit record: the position to confirm as flushed once the transaction is
    /// durable.
    pub end_lsn: Lsn,
    pub commit_ts: i64,
}

/// `'O'`: the transaction was replicated from another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Commit LSN on the origin server.
    pub commit_lsn: Lsn,
    pub name: String,
}

/// Replica identity of a relation (`pg_class.relreplident`): what an old tuple carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaIdentity {
    /// `'d'`: the primary key.
    Default,
    /// `'n'`: nothing (updates and deletes cannot be published).
    Nothing,
    /// `'f'`: every column.
    Full,
    /// `'i'`: the columns of a chosen unique index.
    Index,
}

/// `'R'`: the schema of a table, sent before its first change in a session and after every
/// change of its definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// Present inside a streamed block.
    pub xid: Option<u32>,
    /// The table's OID, which later messages refer to.
    pub rel_id: u32,
    /// Schema name (empty for `pg_catalog`).
    pub namespace: String,
    pub name: String,
    pub replica_identity: ReplicaIdentity,
    pub columns: Vec<RelationColumn>,
}

/// One column of a [`Relation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Part of the replica identity (flag bit 1).
    pub is_key: bool,
    pub name: String,
    pub type_oid: u32,
    /// `atttypmod`: -1 when the type has no modifier.
    pub type_modifier: i32,
}

/// `'Y'`: a non-built-in data type used by a following Relation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeMessage {
    pub xid: Option<u32>,
    pub type_oid: u32,
    /// Schema name (empty for `pg_catalog`).
    pub namespace: String,
    pub name: String,
}

/// `'I'`: a row was inserted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insert {
    pub xid: Option<u32>,
    pub rel_id: u32,
    pub new: Tuple,
}

/// What an old tuple in an Update or Delete holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldKind {
    /// `'K'`: the replica-identity key columns only; other columns are NULL.
    Key,
    /// `'O'`: the whole old row (`REPLICA IDENTITY FULL`).
    Full,
}

/// `'U'`: a row was updated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub xid: Option<u32>,
    pub rel_id: u32,
    /// The old row, sent when the key changed (`Key`) or the identity is full (`Full`).
    pub old: Option<(OldKind, Tuple)>,
    /// The new row; TOASTed columns that did not change are [`TupleValue::UnchangedToast`].
    ///
    /// [`TupleValue::UnchangedToast`]: crate::TupleValue::UnchangedToast
    pub new: Tuple,
}

/// `'D'`: a row was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    pub xid: Option<u32>,
    pub rel_id: u32,
    pub old_kind: OldKind,
    pub old: Tuple,
}

/// `'T'`: tables were truncated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncate {
    pub xid: Option<u32>,
    /// `TRUNCATE ... CASCADE`.
    pub cascade: bool,
    /// `TRUNCATE ... RESTART IDENTITY`.
    pub restart_identity: bool,
    pub rel_ids: Vec<u32>,
}

/// `'M'`: a message from `pg_logical_emit_message` (sent with the `messages` option).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalMessage {
    pub xid: Option<u32>,
    /// Part of a transaction (between Begin and Commit), or sent immediately.
    pub transactional: bool,
    pub lsn: Lsn,
    pub prefix: String,
    /// Zero-copy slice of the received buffer.
    pub content: Bytes,
}

/// `'S'`: a chunk of an in-progress transaction follows (protocol 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStart {
    pub xid: u32,
    /// The first chunk of this transaction.
    pub first_segment: bool,
}

/// `'c'`: a streamed transaction committed (protocol 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamCommit {
    pub xid: u32,
    pub flags: u8,
    pub commit_lsn: Lsn,
    pub end_lsn: Lsn,
    pub commit_ts: i64,
}

/// `'A'`: a streamed transaction (`subxid == xid`) or one of its subtransactions aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamAbort {
    pub xid: u32,
    pub subxid: u32,
    /// `(abort_lsn, abort_ts)`, sent by protocol 4 with parallel streaming only.
    pub abort_position: Option<(Lsn, i64)>,
}

/// Decodes a message received outside a streamed block: every message of protocol 1, and
/// Stream Start, Commit and Abort.
pub fn decode_message(buf: Bytes) -> Result<Message> {
    decode(buf, false)
}

/// Decodes a message received inside a streamed block (after Stream Start, up to and
/// including Stream Stop), where Relation, Type, Insert, Update, Delete, Truncate and Message
/// carry the xid of the streamed transaction.
pub fn decode_streamed_message(buf: Bytes) -> Result<Message> {
    decode(buf, true)
}

/// Decodes a sequence of messages, tracking whether it is inside a streamed block.
///
/// The state changes only on a successfully decoded Stream Start (enters) or Stream Stop
/// (leaves), so a caller who needs nothing more can feed every message through one decoder.
#[derive(Debug, Clone, Default)]
pub struct MessageDecoder {
    in_stream: bool,
}

impl MessageDecoder {
    /// A decoder outside any streamed block.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the last Stream Start has not been closed by a Stream Stop yet.
    pub fn in_stream(&self) -> bool {
        self.in_stream
    }

    /// Decodes the next message of the sequence.
    pub fn decode(&mut self, buf: Bytes) -> Result<Message> {
        let msg = decode(buf, self.in_stream)?;
        match msg {
            Message::StreamStart(_) => self.in_stream = true,
            Message::StreamStop => self.in_stream = false,
            _ => {}
        }
        Ok(msg)
    }
}

fn decode(buf: Bytes, in_stream: bool) -> Result<Message> {
    let Some(&tag) = buf.first() else {
        return Err(DecodeError::Truncated {
            what: "pgoutput message",
            needed: 1,
            offset: 0,
            left: 0,
        });
    };
    let what = match tag {
        b'B' => "Begin message",
        b'C' => "Commit message",
        b'O' => "Origin message",
        b'R' => "Relation message",
        b'Y' => "Type message",
        b'I' => "Insert message",
        b'U' => "Update message",
        b'D' => "Delete message",
        b'T' => "Truncate message",
        b'M' => "Message message",
        b'S' => "Stream Start message",
        b'E' => "Stream Stop message",
        b'c' => "Stream Commit message",
        b'A' => "Stream Abort message",
        tag => return Err(DecodeError::UnknownMessageTag { tag }),
    };
    let mut r = Reader::new(buf, 1, what);
    let xid = |r: &mut Reader| -> Result<Option<u32>> {
        if in_stream {
            r.u32().map(Some)
        } else {
            Ok(None)
        }
    };
    let msg = match tag {
        b'B' => Message::Begin(Begin {
            final_lsn: Lsn(r.u64()?),
            commit_ts: r.i64()?,
            xid: r.u32()?,
        }),
        b'C' => Message::Commit(Commit {
            flags: r.u8()?,
            commit_lsn: Lsn(r.u64()?),
            end_lsn: Lsn(r.u64()?),
            commit_ts: r.i64()?,
        }),
        b'O' => Message::Origin(Origin {
            commit_lsn: Lsn(r.u64()?),
            name: r.string()?,
        }),
        b'R' => {
            let xid = xid(&mut r)?;
            Message::Relation(decode_relation(&mut r, xid)?)
        }
        b'Y' => Message::Type(TypeMessage {
            xid: xid(&mut r)?,
            type_oid: r.u32()?,
            namespace: r.string()?,
            name: r.string()?,
        }),
        b'I' => {
            let xid = xid(&mut r)?;
            let rel_id = r.u32()?;
            expect_marker(&mut r, b'N', "'N'")?;
            Message::Insert(Insert {
                xid,
                rel_id,
                new: Tuple::decode(&mut r)?,
            })
        }
        b'U' => {
            let xid = xid(&mut r)?;
            let rel_id = r.u32()?;
            let offset = r.offset();
            let old = match r.u8()? {
                b'N' => None,
                marker => {
                    let kind = old_kind(&r, marker, offset, "'K', 'O' or 'N'")?;
                    let old = Tuple::decode(&mut r)?;
                    expect_marker(&mut r, b'N', "'N'")?;
                    Some((kind, old))
                }
            };
            Message::Update(Update {
                xid,
                rel_id,
                old,
                new: Tuple::decode(&mut r)?,
            })
        }
        b'D' => {
            let xid = xid(&mut r)?;
            let rel_id = r.u32()?;
            let offset = r.offset();
            let marker = r.u8()?;
            let old_kind = old_kind(&r, marker, offset, "'K' or 'O'")?;
            Message::Delete(Delete {
                xid,
                rel_id,
                old_kind,
                old: Tuple::decode(&mut r)?,
            })
        }
        b'T' => {
            let xid = xid(&mut r)?;
            let n = r.count32("relation count")?;
            let options = r.u8()?;
            let mut rel_ids = Vec::with_capacity(n.min(r.remaining() / 4));
            for _ in 0..n {
                rel_ids.push(r.u32()?);
            }
            Message::Truncate(Truncate {
                xid,
                cascade: options & 1 != 0,
                restart_identity: options & 2 != 0,
                rel_ids,
            })
        }
        b'M' => {
            let xid = xid(&mut r)?;
            let transactional = r.u8()? & 1 != 0;
            let lsn = Lsn(r.u64()?);
            let prefix = r.string()?;
            let len = r.count32("content length")?;
            Message::Message(LogicalMessage {
                xid,
                transactional,
                lsn,
                prefix,
                content: r.bytes(len)?,
            })
        }
        b'S' => Message::StreamStart(StreamStart {
            xid: r.u32()?,
            first_segment: r.u8()? != 0,
        }),
        b'E' => Message::StreamStop,
        b'c' => Message::StreamCommit(StreamCommit {
            xid: r.u32()?,
            flags: r.u8()?,
            commit_lsn: Lsn(r.u64()?),
            end_lsn: Lsn(r.u64()?),
            commit_ts: r.i64()?,
        }),
        // only the tags matched above reach here
        _ => {
            let xid = r.u32()?;
            let subxid = r.u32()?;
            let abort_position = if r.remaining() == 0 {
                None
            } else {
                Some((Lsn(r.u64()?), r.i64()?))
            };
            Message::StreamAbort(StreamAbort {
                xid,
                subxid,
                abort_position,
            })
        }
    };
    r.finish()?;
    Ok(msg)
}

fn decode_relation(r: &mut Reader, xid: Option<u32>) -> Result<Relation> {
    let rel_id = r.u32()?;
    let namespace = r.string()?;
    let name = r.string()?;
    let offset = r.offset();
    let replica_identity = match r.u8()? {
        b'd' => ReplicaIdentity::Default,
        b'n' => ReplicaIdentity::Nothing,
        b'f' => ReplicaIdentity::Full,
        b'i' => ReplicaIdentity::Index,
        value => {
            return Err(DecodeError::UnknownReplicaIdentity {
                what: r.what(),
                value,
                offset,
            });
        }
    };
    let n = r.count16("column count")?;
    // flags, an empty name's NUL, type OID and modifier: at least 10 bytes per column
    let mut columns = Vec::with_capacity(n.min(r.remaining() / 10));
    for _ in 0..n {
        columns.push(RelationColumn {
            is_key: r.u8()? & 1 != 0,
            name: r.string()?,
            type_oid: r.u32()?,
            type_modifier: r.i32()?,
        });
    }
    Ok(Relation {
        xid,
        rel_id,
        namespace,
        name,
        replica_identity,
        columns,
    })
}

fn expect_marker(r: &mut Reader, want: u8, expected: &'static str) -> Result<()> {
    let offset = r.offset();
    match r.u8()? {
        found if found == want => Ok(()),
        found => Err(DecodeError::UnexpectedTupleMarker {
            what: r.what(),
            found,
            expected,
            offset,
        }),
    }
}

fn old_kind(r: &Reader, marker: u8, offset: usize, expected: &'static str) -> Result<OldKind> {
    match marker {
        b'K' => Ok(OldKind::Key),
        b'O' => Ok(OldKind::Full),
        found => Err(DecodeError::UnexpectedTupleMarker {
            what: r.what(),
            found,
            expected,
            offset,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_option_bits() {
        // the fixtures only hold options 0 and 3; check each bit on its own
        for (options, cascade, restart_identity) in [
            (0u8, false, false),
            (1, true, false),
            (2, false, true),
            (3, true, true),
        ] {
            let buf = Bytes::from(vec![b'T', 0, 0, 0, 1, options, 0, 0, 0x40, 0x15]);
            assert_eq!(
                decode_message(buf),
                Ok(Message::Truncate(Truncate {
                    xid: None,
                    cascade,
                    restart_identity,
                    rel_ids: vec![0x4015],
                }))
            );
        }
    }

    #[test]
    fn stream_abort_with_abort_position() {
        let mut buf = vec![b'A', 0, 0, 0, 7, 0, 0, 0, 8];
        buf.extend_from_slice(&0x10_u64.to_be_bytes());
        buf.extend_from_slice(&(-5_i64).to_be_bytes());
        assert_eq!(
            decode_message(Bytes::from(buf)),
            Ok(Message::StreamAbort(StreamAbort {
                xid: 7,
                subxid: 8,
                abort_position: Some((Lsn(0x10), -5)),
            }))
        );
    }
}
