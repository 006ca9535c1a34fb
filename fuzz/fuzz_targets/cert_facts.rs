//! X.509 facts of arbitrary DER: a parse error or facts, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use matrix_federation_exporter::probe::connect::cert::facts;

fuzz_target!(|data: &[u8]| {
    match facts(data) {
        Ok(f) => {
            assert_eq!(f.fingerprint_sha256.len(), 64);
            assert!(f.fingerprint_sha256.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        Err(message) => assert!(!message.is_empty()),
    }
});
