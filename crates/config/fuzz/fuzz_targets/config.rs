//! Feeds arbitrary bytes, as UTF-8 text, to the configuration parser: `Config::from_toml` with
//! an empty environment, then `validate`, and to the pure helpers that see the same text
//! (table patterns, byte sizes, URL redaction). Parsing may refuse the input; it must never
//! panic, and every refusal must name at least one field.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use secrecy::ExposeSecret;
use sluice_config::{Config, parse_byte_size, parse_table_pattern, redact_url};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Config::from_toml(&text, &BTreeMap::new()) {
        Ok(config) => {
            if let Err(e) = config.validate() {
                assert!(!e.problems().is_empty(), "a refusal names a field");
            }
            // Debug output redacts the URL; it must not panic on any URL.
            let _ = format!("{config:?}");
            let _ = redact_url(config.source.url.expose_secret());
        }
        Err(e) => {
            let problems = e.problems();
            assert!(!problems.is_empty(), "a refusal names a field");
            assert!(problems.iter().all(|p| !p.path.is_empty()), "{problems:?}");
        }
    }
    let _ = parse_table_pattern(&text);
    let _ = parse_byte_size(&text);
    let _ = redact_url(&text);
});
