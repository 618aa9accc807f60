//! Feeds arbitrary bytes to the change-log record decoder (the payload of every record read
//! back from disk). Decoding may fail; it must never panic or allocate without bound, and a
//! record it accepts must encode back to a record that decodes to the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_core::{decode_record, encode_record};

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = decode_record(data) {
        let mut again = Vec::new();
        encode_record(&record, &mut again);
        let decoded = decode_record(&again).expect("a re-encoded record decodes");
        assert_eq!(decoded, record);
    }
});
