//! Canonical JSON of any JSON text: never panics, is idempotent, parses back, and (for documents without
//! floats) is exactly the compact, key-sorted serialization.
#![no_main]

use libfuzzer_sys::fuzz_target;
use matrix_federation_exporter::probe::checks::keys::{CanonicalError, canonical_json};
use serde_json::Value;

fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    match canonical_json(&value) {
        Ok(text) => {
            let again: Value = serde_json::from_str(&text).expect("canonical JSON parses");
            assert_eq!(canonical_json(&again).as_deref(), Ok(text.as_str()));
            if !has_float(&value) {
                // serde_json without `preserve_order` keeps objects sorted by key.
                assert_eq!(again, value);
                assert_eq!(serde_json::to_string(&value).unwrap(), text);
            }
        }
        Err(CanonicalError::NotAnInteger(_) | CanonicalError::OutOfRange(_)) => {}
        Err(CanonicalError::TooDeep(_)) => panic!("a parsed document cannot be too deep"),
    }
});
