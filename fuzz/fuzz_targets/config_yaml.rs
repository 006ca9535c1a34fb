//! The config file parser and validator on arbitrary text: a config or a one-line error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use matrix_federation_exporter::config::Config;
use matrix_federation_exporter::config::server_name::ServerName;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_yaml(text) {
        Ok(config) => {
            let mut names: Vec<&str> = config.servers.iter().map(ServerName::as_str).collect();
            let n = names.len();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), n, "duplicate servers accepted");
        }
        Err(e) => assert!(
            !e.to_string().contains(['\n', '\r']),
            "multi-line error: {e:?}"
        ),
    }
});
