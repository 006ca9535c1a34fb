//! The `.well-known/matrix/server` body judge and the cache lifetime from response headers, on arbitrary bytes:
//! every body is delegated or classified (invalid JSON, invalid server name), and every lifetime is clamped.
#![no_main]

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use matrix_federation_exporter::report::WellKnownOutcome;
use matrix_federation_exporter::probe::discovery::well_known::{
    DEFAULT_CACHE, MAX_CACHE, MIN_CACHE, cache_ttl, judge_body,
};

fuzz_target!(|data: &[u8]| {
    match judge_body(data) {
        Ok(name) => {
            // Delegated only when the body is a JSON object whose "m.server" is exactly that name.
            let value: serde_json::Value =
                serde_json::from_slice(data).expect("delegated body is JSON");
            assert_eq!(value["m.server"].as_str(), Some(name.as_str()));
        }
        Err((outcome, message)) => {
            assert!(
                matches!(
                    outcome,
                    WellKnownOutcome::InvalidJson | WellKnownOutcome::InvalidServerName
                ),
                "{outcome:?}"
            );
            assert!(!message.is_empty());
        }
    }

    // The same bytes as Cache-Control and as Expires.
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for name in [header::CACHE_CONTROL, header::EXPIRES] {
            let mut headers = HeaderMap::new();
            headers.insert(name, value.clone());
            let ttl = cache_ttl(&headers, now);
            assert!(
                ttl == DEFAULT_CACHE || (MIN_CACHE..=MAX_CACHE).contains(&ttl),
                "{ttl:?}"
            );
        }
    }
});
