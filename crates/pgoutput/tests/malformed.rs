//! Truncated, extended and garbage input: always an error, never a panic.

use bytes::{Bytes, BytesMut};
use sluice_pgoutput::{
    DecodeError, MessageDecoder, decode_frame, decode_message, decode_streamed_message,
};

use crate::fixtures::{V1_BINARY, V1_TEXT, V2_STREAM, frames, messages, unhex};

fn all_messages() -> Vec<(bool, Bytes)> {
    let mut out: Vec<(bool, Bytes)> = messages(V1_TEXT)
        .into_iter()
        .chain(messages(V1_BINARY))
        .map(|(_, b)| (false, b))
        .collect();
    let mut dec = MessageDecoder::new();
    for (_, b) in messages(V2_STREAM) {
        let in_stream = dec.in_stream();
        dec.decode(b.clone()).expect("fixture decodes");
        out.push((in_stream, b));
    }
    out
}

fn decode(in_stream: bool, b: Bytes) -> Result<sluice_pgoutput::Message, DecodeError> {
    if in_stream {
        decode_streamed_message(b)
    } else {
        decode_message(b)
    }
}

#[test]
fn every_truncation_of_every_message_is_an_error() {
    for (in_stream, msg) in all_messages() {
        for len in 0..msg.len() {
            let err = decode(in_stream, msg.slice(..len))
                .expect_err("a strict prefix of a message must not decode");
            assert!(
                matches!(
                    err,
                    DecodeError::Truncated { .. } | DecodeError::UnterminatedString { .. }
                ),
                "{err}"
            );
            if let DecodeError::Truncated { offset, left, .. } = err {
                assert_eq!(offset + left, len);
            }
        }
    }
}

#[test]
fn trailing_bytes_are_an_error() {
    for (in_stream, msg) in all_messages() {
        let mut longer = BytesMut::from(&msg[..]);
        longer.extend_from_slice(&[0; 16]);
        // Stream Abort accepts an optional 16-byte abort position (protocol 4)
        if msg[0] == b'A' {
            longer.extend_from_slice(&[0]);
        }
        let end = if msg[0] == b'A' {
            msg.len() + 16
        } else {
            msg.len()
        };
        let err = decode(in_stream, longer.freeze()).expect_err("extra bytes must not decode");
        assert!(
            matches!(err, DecodeError::TrailingBytes { offset, count: 1.., .. } if offset == end),
            "{err}"
        );
    }
}

#[test]
fn truncated_frames_are_errors() {
    for f in frames() {
        let min = if f[0] == b'w' { 25 } else { f.len() };
        for len in 0..min {
            assert!(
                decode_frame(f.slice(..len)).is_err(),
                "prefix {len} of {f:02x?}"
            );
        }
    }
}

#[test]
fn errors_name_the_message_field_and_offset() {
    let relation = &messages(V1_TEXT)[2].1;
    assert_eq!(relation[0], b'R');
    // tag, rel_id, "public\0", "items\0": the replica identity is at offset 18
    let err = decode_message(relation.slice(..18)).expect_err("truncated");
    assert_eq!(
        err.to_string(),
        "truncated Relation message: needed 1 bytes at offset 18, 0 left"
    );
    let err = decode_message(relation.slice(..20)).expect_err("truncated");
    assert_eq!(
        err.to_string(),
        "truncated Relation message: needed 2 bytes at offset 19, 1 left"
    );
    assert_eq!(
        decode_message(Bytes::from_static(b"z")),
        Err(DecodeError::UnknownMessageTag { tag: b'z' })
    );
    assert_eq!(
        decode_message(Bytes::from_static(b"z"))
            .expect_err("unknown")
            .to_string(),
        "unknown message tag 0x7a"
    );

    // replica identity byte ('d' at offset 18) replaced
    let mut bad = BytesMut::from(&relation[..]);
    bad[18] = b'x';
    assert_eq!(
        decode_message(bad.freeze()),
        Err(DecodeError::UnknownReplicaIdentity {
            what: "Relation message",
            value: b'x',
            offset: 18
        })
    );

    // Delete with an 'N' marker where 'K' or 'O' must be
    let delete = unhex("44000040094e00077400000001336e6e6e6e6e6e");
    let err = decode_message(delete).expect_err("bad marker");
    assert_eq!(
        err.to_string(),
        "unexpected tuple marker 0x4e in Delete message at offset 5, expected 'K' or 'O'"
    );

    // Update whose old tuple is not followed by 'N'
    let update = unhex("55000040094b000174000000013278");
    assert!(matches!(
        decode_message(update),
        Err(DecodeError::UnexpectedTupleMarker {
            found: b'x',
            offset: 14,
            ..
        })
    ));

    // negative counts
    let truncate = unhex("54ffffffff0000004015");
    assert!(matches!(
        decode_message(truncate),
        Err(DecodeError::NegativeLength {
            value: -1,
            offset: 1,
            ..
        })
    ));

    // invalid utf-8 in an origin name
    let origin = unhex("4f000000001234abcdff00");
    assert_eq!(
        decode_message(origin),
        Err(DecodeError::InvalidUtf8 {
            what: "Origin message",
            offset: 9
        })
    );
    assert!(
        DecodeError::UnknownMessageTag { tag: 0 }.is_definite(),
        "malformed input is never retried"
    );
}

#[test]
fn huge_counts_do_not_allocate_or_panic() {
    // claims 2^31-1 relations, 32767 columns, a 2 GiB value: all fail fast on length
    for hex in [
        "547fffffff00",
        "52000040097075626c6963006900647fff",
        "49000040094e0001747fffffff",
        "4d010000000001945920736c75696365007fffffff",
    ] {
        assert!(
            matches!(
                decode_message(unhex(hex)),
                Err(DecodeError::Truncated { .. })
            ),
            "{hex}"
        );
    }
}

#[test]
fn byte_flips_never_panic() {
    // a cheap deterministic sweep; the fuzz target does this properly
    for (in_stream, msg) in all_messages().into_iter().take(80) {
        for i in 0..msg.len().min(64) {
            for v in [0x00, 0x01, 0x7f, 0x80, 0xff, b'n', b't', b'u'] {
                let mut m = BytesMut::from(&msg[..]);
                m[i] = v;
                let _ = decode(in_stream, m.freeze());
            }
        }
    }
}
