//! The crate's one error type.
//!
//! Every variant describes malformed input: which frame or message was being decoded, which
//! field, and the byte offset from the start of the buffer handed to the decoder (offset 0 is
//! the tag byte). Re-reading the same bytes gives the same error, so every decode error is
//! *definite*: the runtime must not retry it, it must stop the stream and surface the error.

use thiserror::Error;

/// Result of a decode.
pub type Result<T, E = DecodeError> = std::result::Result<T, E>;

/// Malformed replication frame or pgoutput message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before a field did.
    #[error("truncated {what}: needed {needed} bytes at offset {offset}, {left} left")]
    Truncated {
        what: &'static str,
        needed: usize,
        offset: usize,
        left: usize,
    },
    /// The first byte of a CopyData payload is neither `w` nor `k`.
    #[error("unknown replication frame tag 0x{tag:02x}")]
    UnknownFrameTag { tag: u8 },
    /// The first byte of a pgoutput message is not a known message type.
    #[error("unknown message tag 0x{tag:02x}")]
    UnknownMessageTag { tag: u8 },
    /// A NUL-terminated string has no terminator before the end of the input.
    #[error("unterminated string in {what} at offset {offset}")]
    UnterminatedString { what: &'static str, offset: usize },
    /// A name or prefix is not valid UTF-8.
    #[error("invalid utf-8 in {what} at offset {offset}")]
    InvalidUtf8 { what: &'static str, offset: usize },
    /// A count or length on the wire is negative.
    #[error("negative {field} {value} in {what} at offset {offset}")]
    NegativeLength {
        what: &'static str,
        field: &'static str,
        value: i64,
        offset: usize,
    },
    /// The replica identity byte of a Relation message is not `d`, `n`, `f` or `i`.
    #[error("unknown replica identity 0x{value:02x} in {what} at offset {offset}")]
    UnknownReplicaIdentity {
        what: &'static str,
        value: u8,
        offset: usize,
    },
    /// A tuple marker (`N`, `K`, `O`) is not the one the message type allows here.
    #[error(
        "unexpected tuple marker 0x{found:02x} in {what} at offset {offset}, expected {expected}"
    )]
    UnexpectedTupleMarker {
        what: &'static str,
        found: u8,
        expected: &'static str,
        offset: usize,
    },
    /// A tuple column kind is not `n`, `u`, `t` or `b`.
    #[error("unknown tuple column kind 0x{kind:02x} in {what} at offset {offset}")]
    UnknownColumnKind {
        what: &'static str,
        kind: u8,
        offset: usize,
    },
    /// Bytes remain after the last field of a fixed-layout frame or message.
    #[error("{count} trailing bytes after {what} at offset {offset}")]
    TrailingBytes {
        what: &'static str,
        count: usize,
        offset: usize,
    },
}

impl DecodeError {
    /// Whether retrying cannot help. Always `true`: the same bytes decode the same way, so a
    /// decode error is *definite* in the house error classes (park and surface, never retry).
    pub fn is_definite(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_and_name_the_offset() {
        let e = DecodeError::Truncated {
            what: "Relation message",
            needed: 4,
            offset: 17,
            left: 2,
        };
        assert_eq!(
            e.to_string(),
            "truncated Relation message: needed 4 bytes at offset 17, 2 left"
        );
        assert_eq!(
            DecodeError::UnknownMessageTag { tag: b'z' }.to_string(),
            "unknown message tag 0x7a"
        );
        assert!(e.is_definite());
    }
}
