//! `ServerName::parse` on arbitrary text: never panics, rejects long input by its length, and whatever it
//! accepts prints back exactly as written and parses to the same name again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use matrix_federation_exporter::config::server_name::{Host, ServerName, ServerNameError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ServerName::parse(text) {
        Ok(name) => {
            assert!(text.len() <= 255 + 8, "accepted {} bytes", text.len());
            assert_eq!(name.to_string(), text);
            assert_eq!(ServerName::parse(&name.to_string()).as_ref(), Ok(&name));
            let hostname = name.hostname();
            assert!(!hostname.is_empty());
            if let Host::Dns(dns) = name.host() {
                assert!(
                    dns.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                );
            }
            assert_ne!(name.port(), Some(0));
        }
        Err(ServerNameError::TooLong(n)) => assert!(n > 255),
        Err(_) => assert!(text.len() <= 255 + 8, "long input not rejected as too long"),
    }
});
