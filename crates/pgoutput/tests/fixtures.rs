//! Loading the hex fixtures: one message per line, `<lsn> <hex>` (messages) or `<hex>` (frames).

use bytes::Bytes;
use sluice_core::Lsn;
use sluice_pgoutput::{Message, decode_message};

pub const V1_TEXT: &str = include_str!("fixtures/v1_text.hex");
pub const V1_BINARY: &str = include_str!("fixtures/v1_binary.hex");
pub const V2_STREAM: &str = include_str!("fixtures/v2_stream.hex");
pub const FRAMES: &str = include_str!("fixtures/frames.hex");

pub fn unhex(s: &str) -> Bytes {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    let v: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("fixture is valid hex"))
        .collect();
    Bytes::from(v)
}

/// `(lsn, message bytes)` per line of a message fixture.
pub fn messages(fixture: &str) -> Vec<(Lsn, Bytes)> {
    fixture
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (lsn, hex) = l.split_once(' ').expect("line is `<lsn> <hex>`");
            (lsn.parse().expect("valid lsn"), unhex(hex))
        })
        .collect()
}

/// Frame payloads, one per line.
pub fn frames() -> Vec<Bytes> {
    FRAMES
        .lines()
        .filter(|l| !l.is_empty())
        .map(unhex)
        .collect()
}

/// Every message of a protocol-1 fixture, decoded, with its row LSN.
pub fn decoded_v1(fixture: &str) -> Vec<(Lsn, Message)> {
    messages(fixture)
        .into_iter()
        .map(|(lsn, b)| {
            let m = decode_message(b.clone())
                .unwrap_or_else(|e| panic!("message at {lsn} ({b:02x?}) failed: {e}"));
            (lsn, m)
        })
        .collect()
}

pub fn text(s: &str) -> sluice_pgoutput::TupleValue {
    sluice_pgoutput::TupleValue::Text(Bytes::copy_from_slice(s.as_bytes()))
}
