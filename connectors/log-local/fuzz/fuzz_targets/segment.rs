//! Feeds arbitrary bytes to the segment scanner that recovery runs on the last segment, both
//! as they come and behind a valid header (so the fuzzer reaches the record frames at once).
//! Scanning may report corruption; it must never panic or hang, and what it reports must be
//! consistent with the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_log_local::{HEADER_LEN, Tail, encode_header, scan_segment};

fn check(bytes: &[u8]) {
    match scan_segment(bytes) {
        Ok(scan) => {
            let valid = scan.valid_len as usize;
            assert!(valid >= HEADER_LEN && valid <= bytes.len());
            if let Some(r) = &scan.last_payload {
                assert!(r.end == valid && r.start < r.end);
            }
            match scan.tail {
                Tail::Clean => assert_eq!(valid, bytes.len()),
                Tail::Torn { at, bytes: cut, .. } => {
                    assert_eq!(at, scan.valid_len);
                    assert_eq!(at + cut, bytes.len() as u64);
                    // the valid prefix alone scans clean, to the same records
                    let prefix = scan_segment(&bytes[..valid]).expect("valid prefix scans");
                    assert_eq!(prefix.tail, Tail::Clean);
                    assert_eq!(prefix.records, scan.records);
                }
            }
        }
        Err(c) => assert!(c.at <= bytes.len() as u64),
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some((&first, rest)) = data.split_first() {
        let mut seg = encode_header(u64::from(first)).to_vec();
        seg.extend_from_slice(rest);
        check(&seg);
    }
});
