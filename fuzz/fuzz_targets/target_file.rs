//! A Prometheus `file_sd` target file (first byte: even = JSON, odd = YAML; the rest is the file's text): a
//! one-line error or valid, distinct server names with valid label names.
#![no_main]

use std::collections::HashSet;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use matrix_federation_exporter::config::targets::{RESERVED_LABELS, parse_file};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let path = Path::new(if kind % 2 == 0 {
        "targets.json"
    } else {
        "targets.yml"
    });
    match parse_file(path, text) {
        Ok(targets) => {
            let mut seen = HashSet::new();
            for t in &targets {
                assert!(
                    seen.insert(t.name.as_str().to_owned()),
                    "duplicate {}",
                    t.name
                );
                for name in t.labels.keys() {
                    assert!(!name.starts_with("__") && !RESERVED_LABELS.contains(&name.as_str()));
                }
            }
        }
        Err(e) => assert!(
            !e.to_string().contains(['\n', '\r']),
            "multi-line error: {e:?}"
        ),
    }
});
