//! Key-document verification on arbitrary bytes: no panic, and every outcome is classified (not JSON, or a
//! report with stage-`keys` failures).
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use matrix_federation_exporter::probe::checks::keys::check_key_document;
use matrix_federation_exporter::report::{Reason, Stage};

fuzz_target!(|data: &[u8]| {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let (report, failures) = check_key_document(data, "example.org", now);
    assert!(failures.iter().all(|f| f.stage == Stage::Keys));
    match report {
        None => {
            assert_eq!(failures.len(), 1);
            assert_eq!(failures[0].reason, Reason::NotJson);
        }
        Some(report) => {
            assert!(failures.iter().all(|f| f.reason != Reason::NotJson));
            assert_eq!(report.raw.as_ref(), data);
            if failures.is_empty() {
                assert_eq!(report.server_name, "example.org");
                assert!(
                    report
                        .verify_keys
                        .iter()
                        .any(|k| k.valid_ed25519 && k.matching_signature)
                );
            }
        }
    }
});
