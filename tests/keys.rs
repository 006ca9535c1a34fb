//! The test world's signer (`tests/support/keys.rs`) against the exporter's key check (`src/keys.rs`): what the
//! fake homeservers serve must pass, and a one-byte change to a signature must fail. No network.

mod support;

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use matrix_federation_exporter::probe::checks::keys::{canonical_json, check_key_document};
use matrix_federation_exporter::report::{Reason, Stage};
use serde_json::{Value, json};
use support::keys::{SigningKey, VERSION_BODY, key_document, matrix_routes, now_ms, sign_json};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

#[test]
fn signed_key_document_passes() {
    let (a, b) = (
        SigningKey::generate("ed25519:a1"),
        SigningKey::generate("ed25519:b_2"),
    );
    let valid_until = now_ms() + DAY_MS;
    let body = key_document("example.test", &[&a, &b], valid_until);
    let (report, failures) = check_key_document(body.as_bytes(), "example.test", SystemTime::now());
    assert_eq!(failures, vec![]);
    let report = report.expect("a report");
    assert_eq!(report.server_name, "example.test");
    assert_eq!(report.valid_until_ts, Some(valid_until));
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert!(report.old_verify_keys.is_empty());
    let mut ids: Vec<_> = report
        .verify_keys
        .iter()
        .map(|k| {
            (
                k.key_id.as_str(),
                k.key.as_str(),
                k.valid_ed25519,
                k.matching_signature,
            )
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        vec![
            ("ed25519:a1", a.public_base64().as_str(), true, true),
            ("ed25519:b_2", b.public_base64().as_str(), true, true),
        ]
    );
    assert_eq!(report.raw, body);
}

#[test]
fn one_changed_signature_byte_fails() {
    let key = SigningKey::generate("ed25519:a1");
    let body = key_document("example.test", &[&key], now_ms() + DAY_MS);
    let mut doc: Value = serde_json::from_str(&body).expect("JSON");
    let signature = doc["signatures"]["example.test"]["ed25519:a1"]
        .as_str()
        .expect("signed");
    let mut bytes = STANDARD_NO_PAD.decode(signature).expect("base64");
    assert_eq!(bytes.len(), 64);
    bytes[17] ^= 0x01;
    doc["signatures"]["example.test"]["ed25519:a1"] = json!(STANDARD_NO_PAD.encode(&bytes));
    let body = doc.to_string();

    let (report, failures) = check_key_document(body.as_bytes(), "example.test", SystemTime::now());
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(
        (failures[0].stage, failures[0].reason),
        (Stage::Keys, Reason::KeysBadSignature)
    );
    assert!(
        failures[0].message.contains("\"ed25519:a1\""),
        "{}",
        failures[0].message
    );
    let report = report.expect("a report");
    assert!(report.verify_keys[0].valid_ed25519);
    assert!(!report.verify_keys[0].matching_signature);
}

#[test]
fn a_key_that_signs_something_else_fails() {
    // Signed by the right key id, but over another document.
    let key = SigningKey::generate("ed25519:a1");
    let body = key_document("example.test", &[&key], now_ms() + DAY_MS);
    let mut doc: Value = serde_json::from_str(&body).expect("JSON");
    doc["signatures"]["example.test"]["ed25519:a1"] = json!(key.sign(b"{}"));
    let (_, failures) = check_key_document(
        doc.to_string().as_bytes(),
        "example.test",
        SystemTime::now(),
    );
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].reason, Reason::KeysBadSignature);
}

#[test]
fn sign_json_keeps_other_signatures_and_unsigned() {
    let (origin, notary) = (
        SigningKey::generate("ed25519:o"),
        SigningKey::generate("ed25519:n"),
    );
    let mut doc: Value =
        serde_json::from_str(&key_document("example.test", &[&origin], now_ms() + DAY_MS))
            .expect("JSON");
    doc["unsigned"] = json!({"age_ts": 5});
    sign_json(&mut doc, "notary.test", &notary);
    assert!(doc["signatures"]["example.test"]["ed25519:o"].is_string());
    assert!(doc["signatures"]["notary.test"]["ed25519:n"].is_string());
    assert_eq!(doc["unsigned"], json!({"age_ts": 5}));

    // The notary signed the same canonical bytes the origin did.
    let mut unsigned = doc.as_object().expect("object").clone();
    unsigned.remove("signatures");
    unsigned.remove("unsigned");
    let canonical = canonical_json(&Value::Object(unsigned)).expect("canonical");
    assert_eq!(
        doc["signatures"]["notary.test"]["ed25519:n"],
        json!(notary.sign(canonical.as_bytes()))
    );

    // Extra signatures by other servers do not disturb the check.
    let (_, failures) = check_key_document(
        doc.to_string().as_bytes(),
        "example.test",
        SystemTime::now(),
    );
    assert_eq!(failures, vec![]);
}

#[test]
fn spec_test_vector_through_the_signer() {
    // Spec appendix "Cryptographic Test Vectors": seed, server "domain", key "ed25519:1", `{}`.
    let seed = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::general_purpose::NO_PAD.with_decode_allow_trailing_bits(true),
    )
    .decode("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1")
    .expect("seed");
    let key = SigningKey::from_seed("ed25519:1", &seed.try_into().expect("32 bytes"));
    let mut value = json!({});
    sign_json(&mut value, "domain", &key);
    assert_eq!(
        value,
        json!({"signatures": {"domain": {"ed25519:1":
            "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"}}})
    );
}

#[test]
fn matrix_routes_builds() {
    // The routes are opaque; building them must not panic, and the version body is what the docs promise.
    let _routes = matrix_routes("example.test");
    let version: Value = serde_json::from_str(VERSION_BODY).expect("JSON");
    assert_eq!(
        version,
        json!({"server": {"name": "FakeServer", "version": "1.0.0"}})
    );
}
