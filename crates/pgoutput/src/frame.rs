//! Frames of the streaming replication sub-protocol.
//!
//! After `START_REPLICATION ... LOGICAL`, the server and client exchange CopyData messages in
//! copy-both mode. This module decodes and encodes their *payloads* (the bytes after the
//! CopyData header); reading the CopyData envelope is the transport's job. All integers are
//! big-endian; LSNs are `Int64`; times are `Int64` microseconds since 2000-01-01 UTC
//! (see [`crate::time`]).
//!
//! Server to client:
//!
//! ```text
//! XLogData          'w'  Int64 wal_start  Int64 wal_end  Int64 send_time  Byte[n] data
//! PrimaryKeepalive  'k'  Int64 wal_end    Int64 send_time  Byte1 reply_requested
//! ```
//!
//! `data` of an XLogData frame is one pgoutput message (decode it with
//! [`crate::decode_message`]); it runs to the end of the payload. `wal_start` is `0/0` for
//! messages that have no WAL position of their own (Relation and Type messages).
//!
//! Client to server:
//!
//! ```text
//! StandbyStatusUpdate 'r'  Int64 write  Int64 flush  Int64 apply  Int64 client_time
//!                          Byte1 reply_requested
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use sluice_core::Lsn;

use crate::error::{DecodeError, Result};
use crate::reader::Reader;

/// One server-to-client CopyData payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `'w'`: a chunk of the logical stream.
    XLogData(XLogData),
    /// `'k'`: the server's position, and maybe a request for a status update.
    PrimaryKeepalive(PrimaryKeepalive),
}

/// `'w'` frame: one pgoutput message and the WAL positions around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XLogData {
    /// Start of the WAL data in this message (`0/0` when the message has no position).
    pub wal_start: Lsn,
    /// Current end of WAL on the server.
    pub wal_end: Lsn,
    /// Server clock at transmission, microseconds since 2000-01-01 UTC.
    pub send_time: i64,
    /// The pgoutput message, a zero-copy slice of the frame.
    pub data: Bytes,
}

/// `'k'` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrimaryKeepalive {
    /// Current end of WAL on the server.
    pub wal_end: Lsn,
    /// Server clock at transmission, microseconds since 2000-01-01 UTC.
    pub send_time: i64,
    /// The server asks for a status update as soon as possible (to avoid a timeout).
    pub reply_requested: bool,
}

/// `'r'` frame sent by the client: how far it has written, flushed and applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusUpdate {
    /// Last WAL position received and written by the client.
    pub write: Lsn,
    /// Last WAL position durably stored: the server may recycle WAL and advance the slot to here.
    pub flush: Lsn,
    /// Last WAL position applied.
    pub apply: Lsn,
    /// Client clock at transmission, microseconds since 2000-01-01 UTC.
    pub client_time: i64,
    /// Ask the server to answer with a keepalive right away.
    pub reply_requested: bool,
}

/// Length of an encoded [`StatusUpdate`], tag included.
pub const STATUS_UPDATE_LEN: usize = 1 + 8 * 4 + 1;

/// Decodes one CopyData payload received in a replication stream.
pub fn decode_frame(buf: Bytes) -> Result<Frame> {
    let Some(&tag) = buf.first() else {
        return Err(DecodeError::Truncated {
            what: "replication frame",
            needed: 1,
            offset: 0,
            left: 0,
        });
    };
    match tag {
        b'w' => {
            let mut r = Reader::new(buf, 1, "XLogData frame");
            let wal_start = Lsn(r.u64()?);
            let wal_end = Lsn(r.u64()?);
            let send_time = r.i64()?;
            let data = r.rest();
            Ok(Frame::XLogData(XLogData {
                wal_start,
                wal_end,
                send_time,
                data,
            }))
        }
        b'k' => {
            let mut r = Reader::new(buf, 1, "PrimaryKeepalive frame");
            let wal_end = Lsn(r.u64()?);
            let send_time = r.i64()?;
            let reply_requested = r.u8()? != 0;
            r.finish()?;
            Ok(Frame::PrimaryKeepalive(PrimaryKeepalive {
                wal_end,
                send_time,
                reply_requested,
            }))
        }
        tag => Err(DecodeError::UnknownFrameTag { tag }),
    }
}

/// Appends the CopyData payload of a standby status update to `out`
/// ([`STATUS_UPDATE_LEN`] bytes).
pub fn encode_status_update(update: &StatusUpdate, out: &mut BytesMut) {
    out.reserve(STATUS_UPDATE_LEN);
    out.put_u8(b'r');
    out.put_u64(update.write.0);
    out.put_u64(update.flush.0);
    out.put_u64(update.apply.0);
    out.put_i64(update.client_time);
    out.put_u8(u8::from(update.reply_requested));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_update_layout() {
        let mut out = BytesMut::from(&b"x"[..]);
        encode_status_update(
            &StatusUpdate {
                write: Lsn(0x0102_0304_0506_0708),
                flush: Lsn(0x10),
                apply: Lsn(0x20),
                client_time: -2,
                reply_requested: true,
            },
            &mut out,
        );
        let mut want = vec![b'x', b'r', 1, 2, 3, 4, 5, 6, 7, 8];
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0x10]);
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0x20]);
        want.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
        want.push(1);
        assert_eq!(&out[..], &want[..]);
        assert_eq!(out.len() - 1, STATUS_UPDATE_LEN);
    }

    #[test]
    fn keepalive_must_be_exact() {
        let mut k = vec![b'k'];
        k.extend_from_slice(&[0; 16]);
        k.push(1);
        assert_eq!(
            decode_frame(Bytes::from(k.clone())),
            Ok(Frame::PrimaryKeepalive(PrimaryKeepalive {
                wal_end: Lsn(0),
                send_time: 0,
                reply_requested: true
            }))
        );
        k.push(0);
        assert_eq!(
            decode_frame(Bytes::from(k)),
            Err(DecodeError::TrailingBytes {
                what: "PrimaryKeepalive frame",
                count: 1,
                offset: 18
            })
        );
    }

    #[test]
    fn empty_and_unknown_frames() {
        assert!(matches!(
            decode_frame(Bytes::new()),
            Err(DecodeError::Truncated { needed: 1, .. })
        ));
        assert_eq!(
            decode_frame(Bytes::from_static(b"h")),
            Err(DecodeError::UnknownFrameTag { tag: b'h' })
        );
        assert_eq!(
            decode_frame(Bytes::from_static(b"w\0\0")),
            Err(DecodeError::Truncated {
                what: "XLogData frame",
                needed: 8,
                offset: 1,
                left: 2
            })
        );
    }
}
