//! The tester's per-address answer: `ConnectionReports` (certificates, cipher, `Checks` read off our key
//! verdicts, the certificate error, the key document as served) and `ConnectionErrors`, with Go's names for what
//! Go prints.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::{Message, go_words};
use crate::report::{AddressReport, CertReport, Failure, KeysReport, Reason, ServerReport, Stage};

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ConnectionReport {
    certificates: Vec<CertSummary>,
    cipher: Cipher,
    checks: Checks,
    errors: Vec<Message>,
    ed25519_verify_keys: Option<BTreeMap<String, String>>,
    info: BTreeMap<String, Value>,
    /// The key document as served (Go's `*json.RawMessage`): key order, number forms and escapes unchanged.
    keys: Option<Box<RawValue>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CertSummary {
    subject_common_name: String,
    issuer_common_name: String,
    #[serde(rename = "SHA256Fingerprint")]
    sha256_fingerprint: String,
    #[serde(rename = "DNSNames")]
    dns_names: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Cipher {
    version: String,
    cipher_suite: String,
}

// The field names and their bools are the tester's schema (gomatrixserverlib `KeyChecks`).
#[allow(clippy::struct_excessive_bools, clippy::struct_field_names)]
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Checks {
    #[serde(rename = "AllChecksOK")]
    all_checks_ok: bool,
    matching_server_name: bool,
    #[serde(rename = "FutureValidUntilTS")]
    future_valid_until_ts: bool,
    has_ed25519_key: bool,
    #[serde(rename = "AllEd25519ChecksOK")]
    all_ed25519_checks_ok: Option<bool>,
    ed25519_checks: BTreeMap<String, Ed25519Check>,
    valid_certificates: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Ed25519Check {
    valid_ed25519: bool,
    matching_signature: bool,
}

/// The tester's `ConnectionErrors` entry: the address never completed the TLS handshake, or its key document
/// could not be fetched (the tester fetches keys and judges the certificate in one request).
pub(super) fn connection_error(a: &AddressReport) -> Option<Message> {
    let before_keys = a.tls.is_none();
    let keys_fetch_failed = a.keys.is_none() && a.failures.iter().any(|f| f.stage == Stage::Keys);
    if !before_keys && !keys_fetch_failed {
        return None;
    }
    let wanted = |f: &&Failure| {
        matches!(f.stage, Stage::Connect | Stage::Tls)
            || (keys_fetch_failed && f.stage == Stage::Keys)
    };
    Some(
        Message::joined(a.failures.iter().filter(wanted).map(|f| f.message.as_str()))
            .unwrap_or_else(|| Message {
                message: "the TLS handshake did not complete".to_owned(),
            }),
    )
}

pub(super) fn connection_report(r: &ServerReport, a: &AddressReport) -> ConnectionReport {
    let valid_certificates = a.certificate.as_ref().is_some_and(CertReport::valid);
    // Upstream's `Errors` holds one thing: the certificate verification error. Key failures show in `Checks`
    // and in the extension key.
    let mut errors: Vec<&Failure> = a
        .failures
        .iter()
        .filter(|f| f.stage == Stage::Certificate)
        .collect();
    for f in a.certificate.iter().flat_map(|c| &c.failures) {
        if !errors.contains(&f) {
            errors.push(f);
        }
    }
    let (checks, ed25519_verify_keys) = match &a.keys {
        Some(keys) => key_checks(&r.server_name, keys, a, valid_certificates),
        // The key check is off (or produced nothing): only the certificate is judged.
        None => (
            Checks {
                all_checks_ok: valid_certificates
                    && !a.failures.iter().any(|f| f.stage == Stage::Keys),
                matching_server_name: false,
                future_valid_until_ts: false,
                has_ed25519_key: false,
                all_ed25519_checks_ok: None,
                ed25519_checks: BTreeMap::new(),
                valid_certificates,
            },
            None,
        ),
    };
    let tls = a.tls.as_ref();
    ConnectionReport {
        certificates: a
            .certificate
            .iter()
            .flat_map(|c| &c.chain)
            .map(|c| CertSummary {
                subject_common_name: common_name(&c.subject),
                issuer_common_name: common_name(&c.issuer),
                sha256_fingerprint: base64_unpadded(&c.fingerprint_sha256.0),
                dns_names: (!c.dns_names.is_empty()).then(|| c.dns_names.clone()),
            })
            .collect(),
        cipher: Cipher {
            version: tls.map(|t| go_tls_version(t.version)).unwrap_or_default(),
            cipher_suite: tls
                .map(|t| go_words::cipher_suite(t.cipher))
                .unwrap_or_default(),
        },
        checks,
        errors: errors
            .into_iter()
            .map(|f| Message {
                message: f.message.clone(),
            })
            .collect(),
        ed25519_verify_keys,
        info: BTreeMap::new(),
        keys: a.keys.as_ref().and_then(|k| go_words::raw_json(&k.raw)),
    }
}

/// gomatrixserverlib's `CheckKeys`, read off our verdicts: the server name compared exactly, expiry as our
/// key check judged it, and per `ed25519:` key its length and signature.
fn key_checks(
    server_name: &str,
    keys: &KeysReport,
    a: &AddressReport,
    valid_certificates: bool,
) -> (Checks, Option<BTreeMap<String, String>>) {
    let matching_server_name = keys.server_name == server_name;
    let future_valid_until_ts = keys.valid_until_ts.is_some()
        && !a.failures.iter().any(|f| f.reason == Reason::KeysExpired);
    let ed25519: Vec<_> = keys
        .verify_keys
        .iter()
        .filter(|k| k.key_id.starts_with("ed25519:"))
        .collect();
    let ed25519_checks: BTreeMap<String, Ed25519Check> = ed25519
        .iter()
        .map(|k| {
            (
                k.key_id.to_string(),
                Ed25519Check {
                    valid_ed25519: k.valid_ed25519,
                    matching_signature: k.matching_signature,
                },
            )
        })
        .collect();
    let has_ed25519_key = !ed25519.is_empty();
    let all_ed25519_checks_ok = has_ed25519_key.then(|| {
        ed25519
            .iter()
            .all(|k| k.valid_ed25519 && k.matching_signature)
    });
    let keys_ok =
        matching_server_name && future_valid_until_ts && all_ed25519_checks_ok == Some(true);
    let verify_keys = keys_ok.then(|| {
        ed25519
            .iter()
            .map(|k| (k.key_id.to_string(), k.key.to_string()))
            .collect()
    });
    let checks = Checks {
        all_checks_ok: keys_ok && valid_certificates,
        matching_server_name,
        future_valid_until_ts,
        has_ed25519_key,
        all_ed25519_checks_ok,
        ed25519_checks,
        valid_certificates,
    };
    (checks, verify_keys)
}

// ---- field conversions ----

/// The TLS version as Go's `tls.VersionName` prints it (`TLS 1.3`); rustls's name for anything else.
#[must_use]
pub fn go_tls_version(rustls_name: &str) -> String {
    match rustls_name {
        "TLSv1_3" => "TLS 1.3",
        "TLSv1_2" => "TLS 1.2",
        "TLSv1_1" => "TLS 1.1",
        "TLSv1_0" => "TLS 1.0",
        "SSLv3" => "SSLv3",
        other => other,
    }
    .to_owned()
}

/// The last `CN=` value of a distinguished name as x509-parser prints it (`C=US, O=Org, CN=R11`), as Go's
/// `pkix.Name.CommonName` keeps the last one; "" when there is none.
#[must_use]
pub fn common_name(dn: &str) -> String {
    dn.split(", ")
        .flat_map(|rdn| rdn.split(" + "))
        .filter_map(|attr| attr.strip_prefix("CN="))
        .last()
        .unwrap_or_default()
        .to_owned()
}

/// Standard base64 without padding, as Go's `base64.RawStdEncoding` writes fingerprints.
pub(super) fn base64_unpadded(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}
