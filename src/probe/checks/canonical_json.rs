//! Canonical JSON, the encoding that Matrix signatures are made over: the spec appendix "Signing JSON →
//! Canonical JSON", written here rather than taken from a crate (see `shared/reference/rust-crates.md` §8).
//! Pure: no I/O.

use serde_json::Value;

/// Arrays and objects nested deeper than this cannot be canonicalised (`serde_json`'s parser stops at 128, so a
/// parsed document never reaches it; it only guards hand-built values against stack exhaustion).
pub const MAX_CANONICAL_DEPTH: usize = 256;
/// The spec decides: "Numbers in the JSON must be integers in the range `[-(2**53)+1, (2**53)-1]`".
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// Why a value has no Canonical JSON encoding.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// A number with a fractional part (Canonical JSON has no floats).
    #[error("the number {0} is not an integer (Canonical JSON permits no fractions or floats)")]
    NotAnInteger(String),
    /// An integer outside `[-(2**53)+1, (2**53)-1]`.
    #[error(
        "the number {0} is outside the range [-(2**53)+1, (2**53)-1] that Canonical JSON permits"
    )]
    OutOfRange(String),
    /// Arrays and objects nested more than [`MAX_CANONICAL_DEPTH`] deep.
    #[error("the value is nested more than {0} levels deep")]
    TooDeep(usize),
}

/// Encodes `value` as Canonical JSON.
///
/// The spec decides (appendix "Canonical JSON"): "We define this encoding for a value to be the shortest UTF-8
/// JSON encoding with dictionary keys lexicographically sorted by Unicode codepoint. Numbers in the JSON must be
/// integers in the range `[-(2**53)+1, (2**53)-1]`, represented without exponents or decimal places, and
/// negative zero `-0` MUST NOT appear." and "Float values are not permitted by this encoding."
///
/// * Keys are sorted here, explicitly, by code point (Rust's `str` order is UTF-8 byte order, which is code
///   point order), so the result does not depend on `serde_json`'s `preserve_order` feature.
/// * `serde_json` parses `-0` and `1e10` as floats, yet the spec's own example expects `{"a":-0,"b":1e10}` to
///   become `{"a":0,"b":10000000000}`. So whole-valued floats in range are written as integers (ruma rejects
///   this example; we follow it); fractional ones are [`CanonicalError::NotAnInteger`], and anything beyond
///   ±(2^53−1) is [`CanonicalError::OutOfRange`]. Without its `float_roundtrip` feature, `serde_json` may parse
///   a whole number written with a fraction or exponent and close to 2^53 (`9007199254740991.0`) one unit off;
///   no homeserver writes numbers that way.
/// * Strings follow the grammar: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, lower-case `\u00XX` for the other
///   control characters below U+0020, everything else raw UTF-8 (`/` and U+007F included).
pub fn canonical_json(value: &Value) -> Result<String, CanonicalError> {
    let mut out = String::new();
    write_canonical(value, &mut out, 0)?;
    Ok(out)
}

fn write_canonical(value: &Value, out: &mut String, depth: usize) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => out.push_str(&canonical_integer(number)?.to_string()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            if depth >= MAX_CANONICAL_DEPTH {
                return Err(CanonicalError::TooDeep(MAX_CANONICAL_DEPTH));
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out, depth + 1)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            if depth >= MAX_CANONICAL_DEPTH {
                return Err(CanonicalError::TooDeep(MAX_CANONICAL_DEPTH));
            }
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_canonical(item, out, depth + 1)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// The integer a JSON number stands for, if Canonical JSON can represent it.
fn canonical_integer(number: &serde_json::Number) -> Result<i64, CanonicalError> {
    let out_of_range = || CanonicalError::OutOfRange(number.to_string());
    if let Some(i) = number.as_i64() {
        return if i.unsigned_abs() <= MAX_SAFE_INTEGER.unsigned_abs() {
            Ok(i)
        } else {
            Err(out_of_range())
        };
    }
    if number.is_u64() {
        // Larger than i64::MAX.
        return Err(out_of_range());
    }
    let Some(f) = number.as_f64() else {
        return Err(CanonicalError::NotAnInteger(number.to_string()));
    };
    if !f.is_finite() {
        return Err(out_of_range());
    }
    if f.fract() != 0.0 {
        return Err(CanonicalError::NotAnInteger(number.to_string()));
    }
    if f.abs() > MAX_SAFE_INTEGER as f64 {
        return Err(out_of_range());
    }
    // Whole and within ±(2^53−1), so exact; `-0.0 as i64` is 0.
    Ok(f as i64)
}

/// A JSON string per the Canonical JSON grammar (which is also exactly what `serde_json` writes).
fn write_string(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let b = u32::from(c) as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[b >> 4]));
                out.push(char::from(HEX[b & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, json};

    fn canon(text: &str) -> Result<String, CanonicalError> {
        canonical_json(&serde_json::from_str(text).expect("test JSON parses"))
    }

    #[test]
    fn spec_canonical_examples() {
        let cases: &[(&str, &str)] = &[
            ("{}", "{}"),
            (
                "{\n    \"one\": 1,\n    \"two\": \"Two\"\n}",
                r#"{"one":1,"two":"Two"}"#,
            ),
            (
                "{\n    \"b\": \"2\",\n    \"a\": \"1\"\n}",
                r#"{"a":"1","b":"2"}"#,
            ),
            (r#"{"b":"2","a":"1"}"#, r#"{"a":"1","b":"2"}"#),
            (
                r#"{
                    "auth": {
                        "success": true,
                        "mxid": "@john.doe:example.com",
                        "profile": {
                            "display_name": "John Doe",
                            "three_pids": [
                                {"medium": "email", "address": "john.doe@example.org"},
                                {"medium": "msisdn", "address": "123456789"}
                            ]
                        }
                    }
                }"#,
                r#"{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}"#,
            ),
            ("{\n    \"a\": \"日本語\"\n}", r#"{"a":"日本語"}"#),
            ("{\n    \"本\": 2,\n    \"日\": 1\n}", r#"{"日":1,"本":2}"#),
            ("{\n    \"a\": \"\\u65E5\"\n}", r#"{"a":"日"}"#),
            ("{\n    \"a\": null\n}", r#"{"a":null}"#),
            (
                "{\n    \"a\": -0,\n    \"b\": 1e10\n}",
                r#"{"a":0,"b":10000000000}"#,
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(canon(input).as_deref(), Ok(*expected), "input {input}");
        }
    }

    #[test]
    fn keys_sort_by_code_point_not_utf16() {
        // U+FF5E < U+1F600 by code point; UTF-16 order (surrogate D83D < FF5E) would put the emoji first.
        assert_eq!(
            canon(r#"{"😀":1,"～":2,"b":3,"B":4,"":5,"é":6}"#).as_deref(),
            Ok(r#"{"":5,"B":4,"b":3,"é":6,"～":2,"😀":1}"#)
        );
    }

    #[test]
    fn sorting_does_not_depend_on_map_order() {
        let mut map = Map::new();
        map.insert("z".to_owned(), json!(1));
        map.insert(
            "a".to_owned(),
            json!({"y": [3, {"d": 1, "c": 2}], "x": false}),
        );
        assert_eq!(
            canonical_json(&Value::Object(map)).as_deref(),
            Ok(r#"{"a":{"x":false,"y":[3,{"c":2,"d":1}]},"z":1}"#)
        );
    }

    #[test]
    fn strings_escape_per_the_grammar() {
        assert_eq!(
            canon(
                r#"{"a":"\u0000\u0001\b\t\n\u000b\f\r\u000e\u001f \"\\\/\u007f\u00e9\ud83d\ude00"}"#
            )
            .as_deref(),
            Ok("{\"a\":\"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u000e\\u001f \\\"\\\\/\u{7f}é😀\"}")
        );
        // The same as serde_json's own escaping, for every ASCII character and a few others.
        for c in (0u8..=0x7f)
            .map(char::from)
            .chain(['é', '日', '😀', '\u{2028}'])
        {
            let s = c.to_string();
            let mut ours = String::new();
            write_string(&s, &mut ours);
            assert_eq!(ours, serde_json::to_string(&s).expect("string"), "{c:?}");
        }
    }

    #[test]
    fn numbers_in_range_are_integers() {
        assert_eq!(
            canon("[0,-1,9007199254740991,-9007199254740991,1.0,-2e3,123.000,1e15]").as_deref(),
            Ok("[0,-1,9007199254740991,-9007199254740991,1,-2000,123,1000000000000000]")
        );
        assert_eq!(canon("-0.0").as_deref(), Ok("0"));
    }

    #[test]
    fn fractions_and_out_of_range_numbers_are_errors() {
        assert!(matches!(canon("1.5"), Err(CanonicalError::NotAnInteger(_))));
        assert!(matches!(
            canon(r#"{"a":[0.1]}"#),
            Err(CanonicalError::NotAnInteger(_))
        ));
        assert!(matches!(
            canon("1e-3"),
            Err(CanonicalError::NotAnInteger(_))
        ));
        for n in [
            "9007199254740992",
            "-9007199254740992",
            "18446744073709551615",
            "-9223372036854775808",
            "1e16",
            "1e300",
        ] {
            assert!(
                matches!(canon(n), Err(CanonicalError::OutOfRange(_))),
                "{n}"
            );
        }
    }

    #[test]
    fn deep_hand_built_values_are_an_error_not_a_crash() {
        let mut value = json!(1);
        for _ in 0..=MAX_CANONICAL_DEPTH {
            value = json!([value]);
        }
        assert_eq!(
            canonical_json(&value),
            Err(CanonicalError::TooDeep(MAX_CANONICAL_DEPTH))
        );
        // serde_json's parser stops at 128 levels, well within the limit.
        let deepest = format!("{}{}", "[".repeat(127), "]".repeat(127));
        assert!(canon(&deepest).is_ok());
    }

    // ---- Signing: the spec appendix "Cryptographic Test Vectors → JSON Signing" ----
}
