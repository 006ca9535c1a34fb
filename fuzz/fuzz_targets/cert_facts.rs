//! X.509 facts of arbitrary DER: a parse error or facts, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use matrix_federation_exporter::probe::connect::cert::facts;

fuzz_target!(|data: &[u8]| {
    match facts(data) {
        Ok(f) => {
            let hex = f.fingerprint_sha256.to_string();
            assert_eq!(hex.len(), 64);
            assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        Err(message) => assert!(!message.is_empty()),
    }
});
