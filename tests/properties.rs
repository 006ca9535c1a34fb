//! Property tests (proptest) of every parser and encoder that reads what servers send: server names, the
//! well-known body and its cache lifetime, Canonical JSON, key documents, certificate facts, target files and
//! the config, and the Prometheus exposition of `*_info` labels (checked by `promtool`, never skipped).
//!
//! Case counts are bounded so the whole file runs in a few seconds; `PROPTEST_CASES` overrides them all for a
//! longer local run. Regression tests for what the fuzz targets (fuzz/, docs/fuzzing.md) found are at the end,
//! each named after its bug.

#[path = "support/promtool.rs"]
mod promtool;

use promtool::promtool;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, NO_PAD_INDIFFERENT, STANDARD_NO_PAD};
use http::{HeaderMap, HeaderValue, header};
use matrix_federation_exporter::config::Config;
use matrix_federation_exporter::config::server_name::{Host, ServerName, ServerNameError};
use matrix_federation_exporter::config::targets::{self, Labels, Target};
use matrix_federation_exporter::probe::checks::keys::{
    CanonicalError, MAX_SAFE_INTEGER, canonical_json, check_key_document,
};
use matrix_federation_exporter::probe::connect::cert;
use matrix_federation_exporter::probe::discovery::well_known::{
    DEFAULT_CACHE, MAX_CACHE, MIN_CACHE, cache_ttl, judge_body,
};
use matrix_federation_exporter::render::metrics::{self, ExporterMetrics, Format};
use matrix_federation_exporter::report::{
    AddressReport, CertFacts, CertReport, DiscoveryReport, Failure, Fingerprint, KeysReport,
    Method, Phase, Reason, ServerReport, Stage, Step, TargetReport, TlsFacts, VerifyKey,
    VersionReport, WellKnownOutcome, WellKnownReport,
};
use matrix_federation_exporter::schedule::store::Store;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use ring::signature::Ed25519KeyPair;
use serde_json::{Map, Value, json};

/// The config of every `proptest!` block: `cases` unless `PROPTEST_CASES` says otherwise, and no regression
/// files (what a run finds becomes a named test below).
fn cases(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const NOW_SECS: u64 = 1_700_000_000;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

/// Strings that stress an encoder: quotes, backslashes, newlines and other controls, escapes already written
/// out, exposition syntax, any unicode, and arbitrary bytes taken through `from_utf8_lossy` as the code does.
fn nasty() -> BoxedStrategy<String> {
    let pieces = prop::sample::select(vec![
        "\"",
        "\\",
        "\n",
        "\r",
        "\t",
        "\0",
        "\\n",
        "\\\"",
        "\\\\",
        "\"}",
        "\"} 1\nfake_metric 1\n",
        "# EOF",
        "\n# EOF\n",
        "# TYPE x counter\n",
        "é",
        "日本語",
        "\u{2028}",
        "\u{feff}",
        "\u{7f}",
        "\u{fffd}",
        "\u{10ffff}",
        "💥",
        "=",
        ",",
        "{",
        "}",
        " ",
        "CN=x",
    ]);
    prop_oneof![
        any::<String>(),
        vec(pieces, 0..12).prop_map(|p| p.concat()),
        vec(any::<u8>(), 0..64).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
    .boxed()
}

// ---- server names ----

/// A host of the grammar and what it must parse to: a DNS name (not shaped like an IPv4 address), an IPv4
/// literal, or a bracketed IPv6 literal.
fn valid_host() -> impl Strategy<Value = (String, Host)> {
    prop_oneof![
        "[a-zA-Z0-9.-]{1,255}"
            .prop_filter("not IPv4-shaped", |s| !ipv4_shaped(s))
            .prop_map(|s| (s.clone(), Host::Dns(s))),
        any::<u32>().prop_map(|n| {
            let ip = Ipv4Addr::from(n);
            (ip.to_string(), Host::Ip(IpAddr::V4(ip)))
        }),
        any::<u128>().prop_map(|n| {
            let ip = Ipv6Addr::from(n);
            (format!("[{ip}]"), Host::Ip(IpAddr::V6(ip)))
        }),
    ]
}

fn ipv4_shaped(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Whatever `parse` accepted must print back as written and parse to the same name.
fn assert_round_trip(text: &str, name: &ServerName) {
    assert_eq!(name.to_string(), text);
    assert_eq!(name.as_str(), text);
    assert_eq!(ServerName::parse(&name.to_string()).as_ref(), Ok(name));
    assert!(!name.hostname().is_empty());
    assert_ne!(name.port(), Some(0));
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn valid_server_names_round_trip((host_text, host) in valid_host(), port in prop::option::of(1u16..)) {
        let text = match port {
            Some(p) => format!("{host_text}:{p}"),
            None => host_text,
        };
        let name = ServerName::parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        prop_assert_eq!(name.host(), host);
        prop_assert_eq!(name.port(), port);
        assert_round_trip(&text, &name);
    }

    #[test]
    fn ipv4_shaped_names_are_addresses_or_rejected(text in "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}") {
        let octets: Vec<u32> = text.split('.').map(|p| p.parse().unwrap()).collect();
        match ServerName::parse(&text) {
            Ok(name) => {
                prop_assert!(octets.iter().all(|&o| o <= 255));
                prop_assert!(matches!(name.host(), Host::Ip(IpAddr::V4(_))));
                assert_round_trip(&text, &name);
            }
            Err(e) => {
                prop_assert!(octets.iter().any(|&o| o > 255));
                prop_assert_eq!(e, ServerNameError::BadIpv4(text.clone()));
            }
        }
    }

    #[test]
    fn any_string_is_a_server_name_or_an_error(
        text in prop_oneof![any::<String>(), "[\\[\\]0-9a-fA-F:.x -]{0,70}", ".{0,300}"],
    ) {
        match ServerName::parse(&text) {
            Ok(name) => assert_round_trip(&text, &name),
            Err(ServerNameError::TooLong(n)) => prop_assert!(n > 255),
            Err(e) => {
                prop_assert!(text.len() <= 255 + 8, "{} bytes rejected as {e:?}", text.len());
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn long_strings_are_rejected_by_length(unit in ".{1,8}", len in 264usize..20_000) {
        let text: String = unit.chars().cycle().take(len).collect();
        prop_assume!(text.len() > 263);
        prop_assert_eq!(ServerName::parse(&text), Err(ServerNameError::TooLong(text.len())));
    }
}

/// A 16 MiB name is rejected by its length alone: no scan of its bytes (best of five, so a descheduled thread
/// on a shared machine does not fail the test).
#[test]
fn huge_server_names_are_rejected_cheaply() {
    for text in [
        "a".repeat(16 << 20),
        "[".repeat(16 << 20),
        ":".repeat(16 << 20),
    ] {
        let best = (0..5)
            .map(|_| {
                let start = Instant::now();
                let result = ServerName::parse(&text);
                let took = start.elapsed();
                assert_eq!(result, Err(ServerNameError::TooLong(text.len())));
                took
            })
            .min()
            .unwrap();
        assert!(best < Duration::from_millis(2), "took {best:?}");
    }
}

// ---- the well-known body and its cache lifetime ----

fn assert_classified_body(body: &[u8]) -> Result<(), TestCaseError> {
    match judge_body(body) {
        Ok(name) => {
            let value: Value = serde_json::from_slice(body).expect("a delegating body is JSON");
            prop_assert_eq!(value["m.server"].as_str(), Some(name.as_str()));
        }
        Err((outcome, message)) => {
            prop_assert!(
                matches!(
                    outcome,
                    WellKnownOutcome::InvalidJson | WellKnownOutcome::InvalidServerName
                ),
                "{outcome:?}"
            );
            prop_assert!(!message.is_empty());
        }
    }
    Ok(())
}

fn assert_ttl_in_bounds(ttl: Duration) -> Result<(), TestCaseError> {
    prop_assert!(
        ttl == DEFAULT_CACHE || (MIN_CACHE..=MAX_CACHE).contains(&ttl),
        "{ttl:?}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn any_bytes_are_a_classified_well_known_body(body in vec(any::<u8>(), 0..512)) {
        assert_classified_body(&body)?;
    }

    #[test]
    fn any_json_is_a_classified_well_known_body(value in json_value()) {
        assert_classified_body(&serde_json::to_vec(&value).unwrap())?;
    }

    #[test]
    fn m_server_delegates_exactly_when_it_is_a_server_name(
        m_server in prop_oneof![nasty(), valid_host().prop_map(|(h, _)| h), "[a-z0-9.:\\[\\]-]{0,30}"],
        extra in btree_map("[a-z.]{1,10}", json_leaf(), 0..4),
    ) {
        let mut doc: Map<String, Value> = extra.into_iter().collect();
        doc.insert("m.server".to_owned(), Value::String(m_server.clone()));
        let body = serde_json::to_vec(&doc).unwrap();
        match (judge_body(&body), ServerName::parse(&m_server)) {
            (Ok(got), Ok(want)) => prop_assert_eq!(got, want),
            (Err((outcome, _)), Err(_)) => prop_assert_eq!(outcome, WellKnownOutcome::InvalidServerName),
            (got, want) => prop_assert!(false, "{m_server:?}: judged {got:?}, but the grammar says {want:?}"),
        }
    }

    #[test]
    fn m_server_that_is_not_a_string_is_invalid_json(value in json_value()) {
        prop_assume!(!value.is_string());
        let body = serde_json::to_vec(&json!({ "m.server": value })).unwrap();
        prop_assert_eq!(judge_body(&body).map_err(|e| e.0), Err(WellKnownOutcome::InvalidJson));
    }

    #[test]
    fn cache_lifetime_is_clamped_whatever_the_headers(
        cache_control in prop::option::of("[ -~]{0,60}"),
        expires in prop::option::of("[ -~]{0,40}"),
        max_age in prop::option::of(any::<u64>()),
    ) {
        let mut headers = HeaderMap::new();
        for value in cache_control.iter().chain(&max_age.map(|s| format!("public, max-age={s}"))) {
            headers.append(header::CACHE_CONTROL, HeaderValue::from_str(value).unwrap());
        }
        if let Some(expires) = &expires {
            headers.append(header::EXPIRES, HeaderValue::from_str(expires).unwrap());
        }
        assert_ttl_in_bounds(cache_ttl(&headers, now()))?;
    }

    #[test]
    fn max_age_alone_is_clamped(secs in any::<u64>()) {
        let mut headers = HeaderMap::new();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_str(&format!("max-age={secs}")).unwrap());
        prop_assert_eq!(cache_ttl(&headers, now()), Duration::from_secs(secs).clamp(MIN_CACHE, MAX_CACHE));
    }
}

// ---- Canonical JSON ----

fn safe_integer() -> impl Strategy<Value = i64> {
    prop_oneof![
        -MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER,
        prop::sample::select(vec![
            0,
            -1,
            MAX_SAFE_INTEGER,
            -MAX_SAFE_INTEGER,
            i64::from(i32::MAX),
            i64::from(u32::MAX),
        ]),
    ]
}

fn json_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        safe_integer().prop_map(Value::from),
        nasty().prop_map(Value::String),
    ]
    .boxed()
}

/// JSON values that have a Canonical JSON form: integers in the safe range, any strings and keys.
fn json_value() -> BoxedStrategy<Value> {
    json_leaf()
        .prop_recursive(5, 96, 8, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..8).prop_map(Value::Array),
                btree_map(prop_oneof![nasty(), "[a-z_.]{0,8}"], inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

proptest! {
    #![proptest_config(cases(384))]

    #[test]
    fn canonical_json_is_idempotent_and_keeps_the_value(value in json_value()) {
        let text = canonical_json(&value).expect("integers and strings have a canonical form");
        let parsed: Value = serde_json::from_str(&text).expect("canonical JSON is JSON");
        prop_assert_eq!(&parsed, &value);
        prop_assert_eq!(canonical_json(&parsed), Ok(text.clone()));
        // The shortest encoding with keys sorted by code point: what serde_json writes for a sorted map.
        prop_assert_eq!(&serde_json::to_string(&value).unwrap(), &text);
        // Any pretty-printed or reordered spelling of the same value has the same canonical form.
        let pretty: Value = serde_json::from_str(&serde_json::to_string_pretty(&value).unwrap()).unwrap();
        prop_assert_eq!(canonical_json(&pretty), Ok(text.clone()));
    }

    #[test]
    fn whole_floats_are_integers_and_fractions_are_refused(n in -MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER) {
        let whole = serde_json::Number::from_f64(n as f64).unwrap();
        prop_assert_eq!(canonical_json(&Value::Number(whole)), Ok(n.to_string()));
        if n.unsigned_abs() < 1 << 52 {
            let fraction = serde_json::Number::from_f64(n as f64 + 0.5).unwrap();
            let doc = json!([{ "a": fraction }]);
            prop_assert!(matches!(canonical_json(&doc), Err(CanonicalError::NotAnInteger(_))));
        }
    }

    #[test]
    fn integers_beyond_the_safe_range_are_refused(
        n in prop_oneof![(MAX_SAFE_INTEGER + 1)..=i64::MAX, i64::MIN..=(-MAX_SAFE_INTEGER - 1)],
        big in (i64::MAX as u64 + 1)..=u64::MAX,
    ) {
        prop_assert!(matches!(canonical_json(&json!(n)), Err(CanonicalError::OutOfRange(_))));
        let doc = json!({ "x": [big] });
        prop_assert!(matches!(canonical_json(&doc), Err(CanonicalError::OutOfRange(_))));
        let parsed: Value = serde_json::from_str(&format!("{n}.0")).unwrap();
        prop_assert!(matches!(canonical_json(&parsed), Err(CanonicalError::OutOfRange(_))));
    }
}

/// The examples of the spec appendix "Canonical JSON", input and expected encoding.
#[test]
fn canonical_json_spec_vectors() {
    let vectors: &[(&str, &str)] = &[
        ("{}", "{}"),
        (r#"{"one": 1, "two": "Two"}"#, r#"{"one":1,"two":"Two"}"#),
        (r#"{"b": "2", "a": "1"}"#, r#"{"a":"1","b":"2"}"#),
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
        (r#"{"a": "日本語"}"#, r#"{"a":"日本語"}"#),
        (r#"{"本": 2, "日": 1}"#, r#"{"日":1,"本":2}"#),
        (r#"{"a": "\u65E5"}"#, r#"{"a":"日"}"#),
        (r#"{"a": null}"#, r#"{"a":null}"#),
        (r#"{"a": -0, "b": 1e10}"#, r#"{"a":0,"b":10000000000}"#),
    ];
    for (input, want) in vectors {
        let value: Value = serde_json::from_str(input).unwrap();
        assert_eq!(canonical_json(&value).as_deref(), Ok(*want), "{input}");
    }
}

// ---- key documents ----

/// Standard base64 as the exporter decodes it: padding optional, non-zero trailing bits accepted.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    NO_PAD_INDIFFERENT.with_decode_allow_trailing_bits(true),
);

/// What `check_key_document` returns must be classified: no report only for a body that is not a JSON object
/// (one `not_json` failure); otherwise a report of the body and failures of stage `keys`, none `not_json`.
fn assert_classified_keys(body: &[u8], expected: &str) -> Result<(), TestCaseError> {
    let (report, failures) = check_key_document(body, expected, now());
    prop_assert!(
        failures.iter().all(|f| f.stage == Stage::Keys),
        "{failures:?}"
    );
    prop_assert!(failures.iter().all(|f| !f.message.is_empty()));
    match report {
        None => {
            prop_assert_eq!(failures.len(), 1);
            prop_assert_eq!(failures[0].reason, Reason::NotJson);
        }
        Some(report) => {
            prop_assert!(failures.iter().all(|f| f.reason != Reason::NotJson));
            prop_assert_eq!(report.raw.as_ref(), body);
            if failures.is_empty() {
                prop_assert_eq!(&report.server_name, expected);
                prop_assert!(
                    report
                        .verify_keys
                        .iter()
                        .any(|k| k.valid_ed25519 && k.matching_signature)
                );
            }
        }
    }
    Ok(())
}

/// A key document's fields, each absent, well-typed with arbitrary content, or any JSON value.
fn key_document_shaped() -> impl Strategy<Value = Value> {
    let key_id = prop_oneof![
        "ed25519:[a-zA-Z0-9_]{0,6}",
        "[a-z0-9]{0,8}:[a-z]{0,3}",
        nasty()
    ];
    let key_value = prop_oneof![
        "[A-Za-z0-9+/]{0,50}={0,2}".prop_map(Value::String),
        any::<[u8; 32]>().prop_map(|k| Value::String(STANDARD_NO_PAD.encode(k))),
        json_leaf(),
    ];
    let verify_keys = prop_oneof![
        btree_map(
            key_id.clone(),
            key_value.clone().prop_map(|k| json!({ "key": k })),
            0..4
        )
        .prop_map(|m| Value::Object(m.into_iter().collect())),
        json_value(),
    ];
    let signatures = prop_oneof![
        btree_map(
            prop_oneof![Just("example.org".to_owned()), nasty()],
            btree_map(key_id.clone(), key_value.clone(), 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            0..3
        )
        .prop_map(|m| Value::Object(m.into_iter().collect())),
        json_value(),
    ];
    let server_name = prop_oneof![
        Just(json!("example.org")),
        Just(json!("Example.ORG")),
        nasty().prop_map(Value::String),
        json_value(),
    ];
    let valid_until = prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        Just(json!(NOW_SECS * 1000 + 3_600_000 * 24)),
        json_value(),
    ];
    let old_verify_keys = prop_oneof![
        btree_map(
            key_id,
            (key_value, prop::option::of(any::<i64>()))
                .prop_map(|(k, ts)| json!({ "key": k, "expired_ts": ts })),
            0..3
        )
        .prop_map(|m| Value::Object(m.into_iter().collect())),
        json_value(),
    ];
    (
        prop::option::of(server_name),
        prop::option::of(verify_keys),
        prop::option::of(signatures),
        prop::option::of(valid_until),
        prop::option::of(old_verify_keys),
        prop::option::of(json_value()),
    )
        .prop_map(
            |(server_name, verify_keys, signatures, valid_until, old, unsigned)| {
                let mut doc = Map::new();
                let fields = [
                    ("server_name", server_name),
                    ("verify_keys", verify_keys),
                    ("signatures", signatures),
                    ("valid_until_ts", valid_until),
                    ("old_verify_keys", old),
                    ("unsigned", unsigned),
                ];
                for (key, value) in fields {
                    if let Some(value) = value {
                        doc.insert(key.to_owned(), value);
                    }
                }
                Value::Object(doc)
            },
        )
}

/// A document for `example.org`, valid for a day, with one verify key per seed, signed by every key as the
/// spec says (Canonical JSON of the document without `signatures` and `unsigned`). Keys are `ed25519:k<i>`.
fn signed_key_document(seeds: &[[u8; 32]]) -> Vec<u8> {
    let pairs: Vec<Ed25519KeyPair> = seeds
        .iter()
        .map(|s| Ed25519KeyPair::from_seed_unchecked(s).unwrap())
        .collect();
    let verify_keys: Map<String, Value> = pairs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            use ring::signature::KeyPair as _;
            (
                format!("ed25519:k{i}"),
                json!({ "key": STANDARD_NO_PAD.encode(p.public_key()) }),
            )
        })
        .collect();
    let mut doc = json!({
        "server_name": "example.org",
        "verify_keys": verify_keys,
        "old_verify_keys": {},
        "valid_until_ts": NOW_SECS * 1000 + 24 * 3_600_000,
    });
    let message = canonical_json(&doc).unwrap();
    let signatures: Map<String, Value> = pairs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                format!("ed25519:k{i}"),
                json!(STANDARD_NO_PAD.encode(p.sign(message.as_bytes()))),
            )
        })
        .collect();
    doc["signatures"] = json!({ "example.org": signatures });
    canonical_json(&doc).unwrap().into_bytes()
}

/// The offsets of the last characters of the signatures in `body`. The last character of an unpadded base64
/// string carries bits that the lenient decoder ignores, and a signature is not part of what it signs, so a
/// change there may leave the document valid. A key's last character is different: the key's text is part of
/// the signed Canonical JSON, so any change to it breaks the signature even when it decodes to the same bytes.
fn signature_last_chars(body: &[u8]) -> Vec<usize> {
    let text = std::str::from_utf8(body).unwrap();
    let doc: Value = serde_json::from_str(text).unwrap();
    doc["signatures"]["example.org"]
        .as_object()
        .unwrap()
        .values()
        .map(|sig| {
            let s = sig.as_str().unwrap();
            text.find(&format!("\"{s}\"")).unwrap() + s.len()
        })
        .collect()
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn any_bytes_are_a_classified_key_document(body in vec(any::<u8>(), 0..512)) {
        assert_classified_keys(&body, "example.org")?;
    }

    #[test]
    fn any_json_is_a_classified_key_document(value in json_value(), expected in prop_oneof![Just("example.org".to_owned()), nasty()]) {
        assert_classified_keys(&serde_json::to_vec(&value).unwrap(), &expected)?;
    }

    #[test]
    fn key_document_shaped_json_is_classified(doc in key_document_shaped()) {
        assert_classified_keys(&serde_json::to_vec(&doc).unwrap(), "example.org")?;
    }

    #[test]
    fn signed_key_document_with_one_mutated_byte_fails(
        seeds in vec(any::<[u8; 32]>(), 1..4),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let body = signed_key_document(&seeds);
        let (report, failures) = check_key_document(&body, "example.org", now());
        prop_assert!(failures.is_empty(), "{failures:?}");
        prop_assert!(report.unwrap().verify_keys.iter().all(|k| k.valid_ed25519 && k.matching_signature));

        let at = at.index(body.len());
        let mut mutated = body.clone();
        mutated[at] ^= flip;
        let (_, failures) = check_key_document(&mutated, "example.org", now());
        // The one exception: the last character of an unpadded base64 signature carries bits the decoder
        // ignores (as Synapse's and Go's do), so a change there may decode to the same signature.
        let same_bytes = signature_last_chars(&body).contains(&at)
            && std::str::from_utf8(&mutated).ok().is_some_and(|m| {
                let end = at + 1;
                let start = body[..end].iter().rposition(|&b| b == b'"').unwrap() + 1;
                LENIENT_BASE64.decode(&m[start..end]).ok() == LENIENT_BASE64.decode(&body[start..end]).ok()
            });
        if same_bytes {
            prop_assert!(failures.is_empty(), "{failures:?}");
        } else {
            prop_assert!(
                !failures.is_empty(),
                "byte {at} changed from {:?} to {:?} and the document still passes",
                char::from(body[at]),
                char::from(mutated[at])
            );
        }
    }
}

/// Found by CI (the property above, seed of its run): a key's last base64 character changed to one that
/// decodes to the same 32 bytes. The key text is part of the signed Canonical JSON, so the signature no
/// longer verifies and the document must fail, as it does in Synapse, which verifies over the text it got.
#[test]
fn key_text_change_that_decodes_to_the_same_key_breaks_the_signature() {
    let body = signed_key_document(&[[7; 32]]);
    let text = std::str::from_utf8(&body).unwrap();
    let doc: Value = serde_json::from_str(text).unwrap();
    let key = doc["verify_keys"]["ed25519:k0"]["key"].as_str().unwrap();
    let last = text.find(&format!("\"{key}\"")).unwrap() + key.len();
    let same = (1u8..=255)
        .map(|flip| {
            let mut m = body.clone();
            m[last] ^= flip;
            m
        })
        .find(|m| {
            m[last].is_ascii_alphanumeric()
                && LENIENT_BASE64.decode(&m[last + 1 - key.len()..=last]).ok()
                    == LENIENT_BASE64.decode(key).ok()
        })
        .expect("a 43-character key has ignored trailing bits");
    let (_, failures) = check_key_document(&same, "example.org", now());
    assert!(
        failures
            .iter()
            .any(|f| f.reason == Reason::KeysBadSignature),
        "{failures:?}"
    );
}

// ---- certificate facts ----

/// A few real certificates (rcgen): ed25519, ECDSA P-256 and P-384 keys, with nasty subjects and SANs.
fn real_certificates() -> &'static [Vec<u8>] {
    static CERTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CERTS.get_or_init(|| {
        let algorithms: [&'static rcgen::SignatureAlgorithm; 3] = [
            &rcgen::PKCS_ED25519,
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
        ];
        algorithms
            .iter()
            .enumerate()
            .map(|(i, alg)| {
                let key = rcgen::KeyPair::generate_for(alg).unwrap();
                let cn = format!("matrix \"{i}\" \\ example\nsecond line 日本 💥");
                certificate_der(&key, &cn, "Issuer \"CA\"\r\n\t\u{0}").unwrap()
            })
            .collect()
    })
}

/// A self-signed certificate with `cn` as subject CN and `org` as subject O, for `matrix.example.org` and
/// 192.0.2.1; `None` when rcgen refuses the names.
fn certificate_der(key: &rcgen::KeyPair, cn: &str, org: &str) -> Option<Vec<u8>> {
    let mut params = rcgen::CertificateParams::new(vec!["matrix.example.org".to_owned()]).ok()?;
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("192.0.2.1".parse().unwrap()));
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, org);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x00, 0x8f, 0x22, 0x01]));
    Some(params.self_signed(key).ok()?.der().to_vec())
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// One way of damaging a certificate.
#[derive(Clone, Debug)]
enum Mutation {
    Flip {
        at: prop::sample::Index,
        mask: u8,
    },
    Truncate(prop::sample::Index),
    Insert {
        at: prop::sample::Index,
        bytes: Vec<u8>,
    },
    Remove {
        at: prop::sample::Index,
        len: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        1 => (any::<prop::sample::Index>(), vec(any::<u8>(), 1..16)).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => (any::<prop::sample::Index>(), 1usize..16).prop_map(|(at, len)| Mutation::Remove { at, len }),
    ]
}

fn mutate(der: &mut Vec<u8>, m: &Mutation) {
    if der.is_empty() {
        return;
    }
    match m {
        Mutation::Flip { at, mask } => {
            let i = at.index(der.len());
            der[i] ^= mask;
        }
        Mutation::Truncate(at) => der.truncate(at.index(der.len())),
        Mutation::Insert { at, bytes } => {
            let i = at.index(der.len());
            der.splice(i..i, bytes.iter().copied());
        }
        Mutation::Remove { at, len } => {
            let i = at.index(der.len());
            der.drain(i..(i + len).min(der.len()));
        }
    }
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn arbitrary_bytes_are_not_a_certificate(der in vec(any::<u8>(), 0..2048)) {
        let result = cert::facts(&der);
        prop_assert!(result.as_ref().is_err_and(|e| !e.is_empty()), "{result:?}");
    }

    #[test]
    fn der_shaped_garbage_is_not_a_certificate(len in any::<u16>(), body in vec(any::<u8>(), 0..1024)) {
        let mut der = vec![0x30, 0x82];
        der.extend_from_slice(&len.to_be_bytes());
        der.extend_from_slice(&body);
        // Almost surely an error; what matters is that it returns.
        let _ = cert::facts(&der);
    }

    #[test]
    fn mutated_real_certificates_parse_or_fail_cleanly(
        which in any::<prop::sample::Index>(),
        mutations in vec(mutation(), 1..6),
    ) {
        let certs = real_certificates();
        let mut der = certs[which.index(certs.len())].clone();
        for m in &mutations {
            mutate(&mut der, m);
        }
        match cert::facts(&der) {
            Ok(facts) => prop_assert_eq!(facts.fingerprint_sha256.to_string(), sha256_hex(&der)),
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }
}

#[test]
fn real_certificates_with_nasty_names_parse() {
    for der in real_certificates() {
        let facts = cert::facts(der).unwrap();
        assert!(facts.subject.contains("matrix"), "{}", facts.subject);
        assert_eq!(facts.dns_names, ["matrix.example.org"]);
        assert_eq!(facts.ip_addresses, ["192.0.2.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(facts.fingerprint_sha256.to_string(), sha256_hex(der));
    }
}

// ---- target files and the config ----

/// `json` with every character that YAML 1.2 does not allow raw (outside `c-printable`: DEL, C1 controls but
/// NEL, U+FFFE, U+FFFF) written as a `\uXXXX` escape, which JSON and YAML double-quoted strings both read.
fn yaml_printable(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        let n = u32::from(c);
        if n == 0x7f || ((0x80..=0x9f).contains(&n) && n != 0x85) || n == 0xfffe || n == 0xffff {
            let _ = write!(out, "\\u{n:04x}");
        } else {
            out.push(c);
        }
    }
    out
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn any_text_is_a_target_file_or_a_one_line_error(
        text in prop_oneof![any::<String>(), nasty(), "[-\\[\\]{}:,\" \n\ta-z0-9.#&*!|>]{0,120}"],
        json in any::<bool>(),
    ) {
        let path = Path::new(if json { "t.json" } else { "t.yml" });
        match targets::parse_file(path, &text) {
            Ok(found) => {
                let names: HashSet<&str> = found.iter().map(|t| t.name.as_str()).collect();
                prop_assert_eq!(names.len(), found.len());
            }
            Err(e) => prop_assert!(!e.to_string().contains(['\n', '\r']), "{e:?}"),
        }
    }

    #[test]
    fn target_file_groups_round_trip(
        groups in vec((vec(valid_host().prop_map(|(h, _)| h), 0..4), btree_map("[a-z][a-z0-9_]{0,6}", nasty(), 0..3)), 0..4),
        json in any::<bool>(),
    ) {
        let doc: Vec<Value> = groups
            .iter()
            .map(|(targets, labels)| json!({ "targets": targets, "labels": labels }))
            .collect();
        // JSON is YAML (once the characters YAML forbids raw are escaped), so one text serves both readers.
        let text = yaml_printable(&serde_json::to_string_pretty(&doc).unwrap());
        let path = Path::new(if json { "t.json" } else { "t.yml" });
        let all: Vec<&String> = groups.iter().flat_map(|(t, _)| t).collect();
        let distinct: HashSet<&String> = all.iter().copied().collect();
        let reserved = groups.iter().any(|(_, labels)| {
            labels.keys().any(|k| targets::RESERVED_LABELS.contains(&k.as_str()))
        });
        match targets::parse_file(path, &text) {
            Ok(found) => {
                prop_assert_eq!(found.len(), all.len());
                for (t, want) in found.iter().zip(&all) {
                    prop_assert_eq!(t.name.as_str(), want.as_str());
                }
                let want_labels: Vec<&BTreeMap<String, String>> = groups
                    .iter()
                    .flat_map(|(t, labels)| t.iter().map(move |_| labels))
                    .collect();
                for (t, want) in found.iter().zip(want_labels) {
                    prop_assert_eq!(&t.labels, want);
                }
            }
            Err(e) => prop_assert!(
                distinct.len() < all.len() || reserved,
                "{e}\n{text}"
            ),
        }
    }

    #[test]
    fn unknown_keys_in_target_files_give_one_line_errors(key in nasty(), json in any::<bool>()) {
        prop_assume!(key != "targets" && key != "labels");
        let text = yaml_printable(&serde_json::to_string(&json!([{ "targets": [], key: [] }])).unwrap());
        let path = Path::new(if json { "t.json" } else { "t.yml" });
        let error = targets::parse_file(path, &text).expect_err("unknown key").to_string();
        prop_assert!(!error.contains(['\n', '\r']), "{error:?}");
    }

    #[test]
    fn any_text_is_a_config_or_a_one_line_error(
        text in prop_oneof![any::<String>(), nasty(), "[-\\[\\]{}:,\" \n\ta-z0-9.#&*!|>]{0,120}"],
    ) {
        match Config::from_yaml(&text) {
            Ok(_) => {}
            Err(e) => prop_assert!(!e.to_string().contains(['\n', '\r']), "{e:?}"),
        }
    }
}

// ---- the Prometheus exposition of `*_info` labels ----

/// The strings of one generated report.
#[derive(Clone, Debug)]
struct Nasty {
    subject: String,
    issuer: String,
    serial: String,
    san: String,
    version_name: String,
    version: String,
    key_id: String,
    key: String,
    delegated: String,
    tls_name: String,
    host_header: String,
    label: String,
}

fn nasty_report_strings() -> impl Strategy<Value = Nasty> {
    vec(nasty(), 12).prop_map(|s| {
        let mut s = s.into_iter();
        let mut next = || s.next().unwrap();
        Nasty {
            subject: next(),
            issuer: next(),
            serial: next(),
            san: next(),
            version_name: next(),
            version: next(),
            key_id: next(),
            key: next(),
            delegated: next(),
            tls_name: next(),
            host_header: next(),
            label: next(),
        }
    })
}

/// Server `i`'s report: one address with a certificate whose facts are `cert`, and every other identity label
/// from `s`.
fn nasty_report(i: usize, s: &Nasty, cert: CertFacts) -> ServerReport {
    let address = AddressReport {
        address: SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0xC000_0200 + i as u32)), 8448),
        target_host: s.tls_name.as_str().into(),
        phases: [(Phase::Connect, Duration::from_millis(3))]
            .into_iter()
            .collect(),
        // rustls's static names: no server writes them.
        tls: Some(TlsFacts {
            version: "TLSv1_3",
            cipher: "TLS13_AES_128_GCM_SHA256",
        }),
        certificate: Some(CertReport {
            verified_not_after: None,
            chain: vec![cert.into()],
            failures: vec![Failure::new(
                Stage::Certificate,
                Reason::CertExpired,
                s.subject.clone(),
            )],
        }),
        keys: Some(KeysReport {
            server_name: s.delegated.clone().into(),
            valid_until_ts: Some(1_700_000_000_000),
            verify_keys: vec![VerifyKey {
                key_id: s.key_id.clone().into(),
                key: s.key.clone().into(),
                valid_ed25519: true,
                matching_signature: false,
            }],
            raw: s.version.clone().into(),
            ..KeysReport::default()
        }),
        version: Some(VersionReport {
            name: Some(s.version_name.clone()),
            version: Some(s.version.clone()),
        }),
        failures: vec![Failure::new(
            Stage::Keys,
            Reason::KeysBadSignature,
            s.key.clone(),
        )],
    };
    let name = server_name(i);
    // Built from `empty` so that fields added to the report later need no change here.
    let mut discovery = DiscoveryReport::empty(&s.tls_name);
    discovery.method = Method::SrvMatrixFed;
    discovery.well_known = WellKnownReport {
        per_address: Vec::new(),
        outcome: WellKnownOutcome::Delegated,
        cache_ttl: Some(Duration::from_secs(3600)),
        hops: [(s.delegated.clone(), 200)].into_iter().collect(),
        error: Some(s.subject.clone()),
    };
    discovery.delegated_server = Some(s.delegated.as_str().into());
    discovery.host_header = s.host_header.clone().into();
    discovery.targets = vec![TargetReport {
        host: s.tls_name.as_str().into(),
        port: 8448,
        srv: None,
        addresses: vec![address.address.ip()],
        via_cname: false,
    }];
    discovery.steps = [(Step::WellKnown, Duration::from_millis(20))]
        .into_iter()
        .collect();
    ServerReport {
        history: matrix_federation_exporter::report::History::default(),
        key_history: matrix_federation_exporter::report::KeyHistory::default(),
        local_certs: matrix_federation_exporter::report::LocalCertsReport::default(),
        server_name: name.as_str().into(),
        started_at: now(),
        finished_at: now() + Duration::from_millis(250),
        duration: Duration::from_millis(250),
        discovery,
        addresses: vec![address],
        failures: Vec::new(),
        client: None,
        support: None,
    }
}

fn server_name(i: usize) -> String {
    format!("s{i}.example.org")
}

fn nasty_facts(s: &Nasty, i: usize) -> CertFacts {
    CertFacts {
        subject: s.subject.clone().into(),
        issuer: s.issuer.clone().into(),
        dns_names: vec![s.san.clone(), "matrix.example.org".to_owned()],
        ip_addresses: vec![IpAddr::V6(Ipv6Addr::from(i as u128))],
        serial: s.serial.clone(),
        fingerprint_sha256: Fingerprint([0x00; 32]),
        not_before: 1_600_000_000,
        not_after: 1_800_000_000,
    }
}

/// One sample line of the text formats: the metric name, the label pairs (unescaped), the value.
type Sample = (String, Vec<(String, String)>, String);

/// Parses a sample line of the 0.0.4 or `OpenMetrics` text format, undoing the label value escapes (`\\`,
/// `\"`, `\n`). Fails on anything malformed, such as an unescaped quote or newline.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or_else(|| format!("no value: {line:?}"))?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = after;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest.find('=').ok_or_else(|| format!("no '=': {line:?}"))?;
            let label = rest[..eq].to_owned();
            let mut chars = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or_else(|| format!("unquoted value: {line:?}"))?
                .char_indices();
            let body_start = eq + 2;
            let mut value = String::new();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => return Err(format!("bad escape {other:?}: {line:?}")),
                    },
                    Some((j, '"')) => break body_start + j + 1,
                    Some((_, '\n')) => return Err(format!("raw newline: {line:?}")),
                    Some((_, c)) => value.push(c),
                    None => return Err(format!("unterminated value: {line:?}")),
                }
            };
            labels.push((label, value));
            rest = &rest[end..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    let value = rest
        .strip_prefix(' ')
        .ok_or_else(|| format!("no space before the value: {line:?}"))?;
    if value.is_empty() || value.contains(' ') {
        return Err(format!("bad value {value:?}: {line:?}"));
    }
    Ok((name, labels, value.to_owned()))
}

fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| parse_sample(l).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn label<'a>(sample: &'a Sample, name: &str) -> &'a str {
    sample
        .1
        .iter()
        .find(|(k, _)| k == name)
        .map_or_else(|| panic!("no {name} in {sample:?}"), |(_, v)| v.as_str())
}

/// `promtool check metrics` on 0.0.4 text: the classic parser (`expfmt`) and its lint.
fn promtool_check_metrics(text: &str) {
    use std::io::Write as _;
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `promtool check metrics` does not read `OpenMetrics` (its `expfmt` parser refuses `# TYPE … info`), so the
/// `OpenMetrics` text goes through Prometheus' own `OpenMetrics` parser, the one a scrape uses, by backfilling
/// it into a TSDB block (`promtool tsdb create-blocks-from openmetrics`). Backfill wants a timestamp on every
/// sample, which is the only change made to the text: ` <unix seconds>` appended to each sample line.
fn promtool_parse_openmetrics(text: &str, dir: &Path) {
    assert!(text.ends_with("# EOF\n"), "no # EOF at the end");
    let mut stamped = String::with_capacity(text.len() * 2);
    for line in text.lines() {
        stamped.push_str(line);
        if !line.starts_with('#') {
            let _ = write!(stamped, " {NOW_SECS}");
        }
        stamped.push('\n');
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let input = dir.join("metrics.om");
    std::fs::write(&input, &stamped).unwrap();
    let out = Command::new(promtool())
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(dir.join("blocks"))
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool tsdb create-blocks-from openmetrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Reports whose certificate subject, issuer, serial and SAN, server name and version, TLS facts, key ids,
/// discovery names and target-file label values are quotes, backslashes, newlines, controls, any unicode and
/// lossy-decoded bytes render text that Prometheus parses, in both formats; and no string breaks out of its
/// label: each `*_info` family has exactly one sample per report, whose labels read back as the strings given.
/// One batch of generated reports, one promtool run per format.
#[test]
#[expect(
    clippy::too_many_lines,
    reason = "a property and the exposition checks it makes, in one place"
)]
fn info_labels_with_any_text_render_parseable_exposition() {
    const BATCH: usize = 160;
    let mut runner = TestRunner::new(RunnerConfig {
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let strategy = nasty_report_strings();
    let mut strings: Vec<Nasty> = (0..BATCH)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect();
    // The fixed worst cases, whatever the generator picked.
    strings[0] = Nasty {
        subject: "CN=evil \"quoted\" back\\slash\nsecond line".to_owned(),
        issuer: "\\\"\n\\n\\\\\"".to_owned(),
        serial: "\"} 1\nfake_metric{a=\"b\"} 1\n# EOF\n".to_owned(),
        san: String::from_utf8_lossy(b"\xff\xfe\x00binary\x80").into_owned(),
        version_name: "\r\n\t\0\u{7f}\u{2028}\u{feff}".to_owned(),
        version: "1.0 \"rc\"\n".to_owned(),
        ..strings[0].clone()
    };

    let mut reports: Vec<ServerReport> = strings
        .iter()
        .enumerate()
        .map(|(i, s)| nasty_report(i, s, nasty_facts(s, i)))
        .collect();
    // The real code path too: certificates (rcgen) whose names hold the nasty strings, read by `cert::facts`.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    for (i, s) in strings.iter().enumerate().take(16) {
        if let Some(der) = certificate_der(&key, &s.subject, &s.issuer) {
            let facts = cert::facts(&der).expect("an rcgen certificate parses");
            let r = &mut reports[i];
            r.addresses[0].certificate.as_mut().unwrap().chain = vec![facts.into()];
        }
    }

    let store = Arc::new(Store::new());
    let targets: Vec<Target> = strings
        .iter()
        .enumerate()
        .map(|(i, s)| Target {
            name: ServerName::parse(&server_name(i)).unwrap(),
            labels: Labels::from([
                ("team".to_owned(), s.label.clone()),
                ("env".to_owned(), s.host_header.clone()),
            ]),
        })
        .collect();
    store.configure(&targets);
    let want_subjects: Vec<(String, String)> = reports
        .iter()
        .map(|r| {
            let leaf = &r.addresses[0].certificate.as_ref().unwrap().chain[0];
            (r.server_name.to_string(), leaf.subject.to_string())
        })
        .collect();
    for r in reports {
        store.insert(r);
    }
    let registry = metrics::registry(store, &ExporterMetrics::new());

    for format in [Format::Text004, Format::OpenMetrics] {
        let text = metrics::encode(&registry, format);
        let samples = samples(&text);
        let family =
            |name: &str| -> Vec<&Sample> { samples.iter().filter(|s| s.0 == name).collect() };

        let cert_info = family("matrix_federation_cert_info");
        assert_eq!(cert_info.len(), BATCH, "{format:?}: cert_info samples");
        let mut got: Vec<(String, String)> = cert_info
            .iter()
            .map(|s| {
                (
                    label(s, "server_name").to_owned(),
                    label(s, "subject").to_owned(),
                )
            })
            .collect();
        got.sort();
        let mut want = want_subjects.clone();
        want.sort();
        assert_eq!(got, want, "{format:?}: cert_info subjects");

        let versions = family("matrix_federation_server_version_info");
        assert_eq!(versions.len(), BATCH);
        for s in &versions {
            let i: usize = label(s, "server_name")[1..]
                .split('.')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(label(s, "name"), strings[i].version_name);
            assert_eq!(label(s, "version"), strings[i].version);
            assert_eq!(label(s, "team"), strings[i].label);
            assert_eq!(label(s, "env"), strings[i].host_header);
        }
        for name in [
            "matrix_federation_tls_info",
            "matrix_federation_signing_key_info",
            "matrix_federation_discovery_info",
            "matrix_federation_probe_success",
        ] {
            assert_eq!(family(name).len(), BATCH, "{format:?}: {name}");
        }
        assert!(
            samples.iter().all(|s| !s.0.starts_with("fake_metric")),
            "{format:?}: a label value broke out of its line"
        );

        match format {
            Format::Text004 => promtool_check_metrics(&text),
            Format::OpenMetrics => promtool_parse_openmetrics(
                &text,
                &Path::new(env!("CARGO_TARGET_TMPDIR")).join("properties-openmetrics"),
            ),
        }
    }
}

// ---- regressions found by fuzzing (fuzz/, docs/fuzzing.md) ----

/// fuzz `target_file`, 2026-11-30: a JSON target file whose group has an unknown key holding a line break
/// (`"t\nx"`) gave a two-line error, because `serde_json` quotes the key as it is. Target-file errors are one line
/// (the reload log, `check-config`); the key's control characters are now escaped.
#[test]
fn target_file_json_error_with_line_break_in_key_is_one_line() {
    // The fuzzer's input (its first byte chose JSON), then the smallest such file.
    let found =
        r#"[{"targets\\\\\\}\\\nu"l\\\\\\\\\\\\\\\\\\\\\ta\\\\t\\\\\\\\~a\\s\\\\\\]\\\\\\\}\"#;
    for text in [
        found,
        "[{\"t\\nx\": []}]",
        "[{\"t\\u2028\\r\\u001b[31mx\": []}]",
    ] {
        let error = targets::parse_file(Path::new("t.json"), text)
            .expect_err("not a file_sd list")
            .to_string();
        assert!(
            !error.contains(['\n', '\r', '\u{1b}', '\u{2028}']),
            "{error:?}"
        );
        assert!(
            error.starts_with("t.json: not a file_sd JSON list: "),
            "{error}"
        );
    }
    let error = targets::parse_file(Path::new("t.json"), "[{\"t\\nx\": []}]")
        .unwrap_err()
        .to_string();
    assert!(error.contains("unknown field `t\\nx`"), "{error}");
}
