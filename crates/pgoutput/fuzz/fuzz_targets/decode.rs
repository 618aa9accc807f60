//! Feeds arbitrary bytes to every decoder: as a replication frame, as a pgoutput message inside
//! and outside a streamed block, and as a sequence of messages through `MessageDecoder`.
//! Decoding may fail; it must never panic, hang or allocate without bound.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_pgoutput::{
    Frame, MessageDecoder, decode_frame, decode_message, decode_streamed_message,
};

fuzz_target!(|data: &[u8]| {
    let buf = Bytes::copy_from_slice(data);
    if let Ok(Frame::XLogData(x)) = decode_frame(buf.clone()) {
        let _ = decode_message(x.data);
    }
    let _ = decode_message(buf.clone());
    let _ = decode_streamed_message(buf.clone());
    // the first byte splits the rest into messages for a stateful decoder
    if let Some((&n, rest)) = data.split_first() {
        let mut dec = MessageDecoder::new();
        let chunk = usize::from(n).max(1);
        for part in rest.chunks(chunk) {
            let _ = dec.decode(Bytes::copy_from_slice(part));
        }
    }
});
