//! `GET /_matrix/key/v2/server`: judging the key document a server publishes, and the Canonical JSON its
//! signatures are made over.
//!
//! Pure (no I/O, no clock: the caller passes `now`); the Canonical JSON it verifies signatures over is
//! [`canonical_json`](super::canonical_json).
//!
//! * [`check_key_document`]: the checks the federation tester makes on a key response
//!   (gomatrixserverlib `CheckKeys`): the document is for the right server, has an ed25519 key, is signed by
//!   **every** ed25519 verify key, and `valid_until_ts` is in the future. It adds the spec's advice on
//!   `valid_until_ts` (under an hour, over 7 days) as warnings.
//!
//! The spec decides (Server-Server API, "Retrieving server keys", `GET /_matrix/key/v2/server`):
//! "`verify_keys`: Public keys of the homeserver for verifying digital signatures." "`signatures`: Digital
//! signatures for this object signed using the `verify_keys`." "`valid_until_ts`: POSIX timestamp in
//! milliseconds when the list of valid keys should be refreshed. [...] Servers MUST use the lesser of this
//! field and 7 days into the future when determining if a key is valid." "Originating servers should avoid
//! returning responses that expire in less than an hour to avoid repeated requests for a certificate that
//! is about to expire."
//!
//! Synapse is more lenient than the tester here: it accepts a key response signed by *at least one* of its
//! verify keys. We follow the tester (every ed25519 key must sign), so a failure here may not yet break
//! federation with Synapse peers; it does mean the server publishes a key it does not sign with.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, NO_PAD_INDIFFERENT};
use ring::signature::{ED25519, UnparsedPublicKey};
use serde_json::{Map, Value};

pub use super::canonical_json::{
    CanonicalError, MAX_CANONICAL_DEPTH, MAX_SAFE_INTEGER, canonical_json,
};
use crate::report::{Failure, KeysReport, OldVerifyKey, Reason, Stage, VerifyKey};

/// `verify_keys` entries checked per document; more are ignored with a warning (bounds the work per probe).
pub const MAX_VERIFY_KEYS: usize = 64;
/// `old_verify_keys` entries read per document; more are ignored with a warning.
pub const MAX_OLD_VERIFY_KEYS: usize = 64;

const HOUR_MS: i64 = 3_600_000;
const SEVEN_DAYS_MS: i64 = 7 * 24 * HOUR_MS;
/// How much of a served string a failure message or warning quotes.
const QUOTE_CHARS: usize = 80;

/// Standard base64 that accepts input with or without `=` padding and with non-zero trailing bits, like the
/// decoders of Synapse (Python `base64`) and gomatrixserverlib (Go `RawStdEncoding`). The spec decides: "When
/// decoding Base64, implementations SHOULD accept input with or without padding characters wherever possible,
/// to ensure maximum interoperability." (The spec's own test seed has non-zero trailing bits.)
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    NO_PAD_INDIFFERENT.with_decode_allow_trailing_bits(true),
);

/// Judges a `/_matrix/key/v2/server` response body served for `expected_server_name`, at `now`.
///
/// Returns no report only when the body is not a JSON object (one [`Reason::NotJson`] failure). Otherwise the
/// report is always filled as far as the document allows, and the failures (all [`Stage::Keys`]) say what is
/// wrong:
///
/// * [`Reason::KeysServerNameMismatch`]: `server_name` is missing, not a string, or not exactly
///   `expected_server_name` (the spec decides: "Server names must be treated case-sensitively").
/// * [`Reason::KeysNoEd25519Key`]: no `verify_keys` entry `ed25519:*` whose `key` decodes to 32 bytes.
/// * [`Reason::KeysBadSignature`]: some ed25519 verify key has no valid signature under
///   `signatures[<server_name>][<key id>]` over the Canonical JSON of the document without `signatures` and
///   `unsigned`, or the document has no Canonical JSON form (a float, say). One failure names every such key.
/// * [`Reason::KeysExpired`]: `valid_until_ts` is missing, not an integer, or not after `now`.
///
/// Warnings: `valid_until_ts` under an hour or more than 7 days away, malformed `old_verify_keys` entries, and
/// entries beyond [`MAX_VERIFY_KEYS`] / [`MAX_OLD_VERIFY_KEYS`].
#[must_use]
pub fn check_key_document(
    body: &[u8],
    expected_server_name: &str,
    now: SystemTime,
) -> (Option<KeysReport>, Vec<Failure>) {
    let doc = match parse_object(body) {
        Ok(doc) => doc,
        Err(message) => return (None, vec![fail(Reason::NotJson, message)]),
    };
    let mut report = KeysReport {
        raw: bytes::Bytes::copy_from_slice(body),
        ..KeysReport::default()
    };
    let mut failures = Vec::new();

    check_server_name(&doc, expected_server_name, &mut report, &mut failures);

    let keys = read_verify_keys(&doc, &mut report);
    if report.verify_keys.iter().any(|k| k.valid_ed25519) {
        // The spec decides (Checking for a Signature, step 1): "Checks if the `signatures` member of the
        // object contains an entry with the name of the entity." The entity is the document's own
        // `server_name` (as in gomatrixserverlib); without one, the name we asked for.
        let entity = doc
            .get("server_name")
            .and_then(Value::as_str)
            .unwrap_or(expected_server_name);
        check_signatures(&doc, entity, &keys, &mut report, &mut failures);
    } else {
        failures.push(fail(Reason::KeysNoEd25519Key, keys.no_ed25519_message()));
    }

    check_valid_until(&doc, unix_ms(now), &mut report, &mut failures);
    read_old_verify_keys(&doc, &mut report);

    (Some(report), failures)
}

fn fail(reason: Reason, message: impl Into<String>) -> Failure {
    Failure::new(Stage::Keys, reason, message)
}

/// The body as a JSON object, or a message saying why it is not one.
fn parse_object(body: &[u8]) -> Result<Map<String, Value>, String> {
    let trimmed = body.trim_ascii_start();
    if trimmed.is_empty() {
        return Err("the key response body is empty, not a JSON object".to_owned());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(format!(
            "the key response is JSON {}, not a JSON object",
            json_type(&other)
        )),
        Err(e) if trimmed.starts_with(b"<") => Err(format!(
            "the key response is not JSON but HTML: a proxy may route /_matrix elsewhere ({e})"
        )),
        Err(e) => Err(format!("the key response is not JSON: {e}")),
    }
}

/// `server_name`: the spec decides "`server_name`: DNS name of the homeserver." and "Server names must be
/// treated case-sensitively".
fn check_server_name(
    doc: &Map<String, Value>,
    expected: &str,
    report: &mut KeysReport,
    failures: &mut Vec<Failure>,
) {
    let message = match doc.get("server_name") {
        Some(Value::String(name)) => {
            report.server_name = name.as_str().into();
            if name == expected {
                return;
            }
            if name.eq_ignore_ascii_case(expected) {
                format!(
                    "the key document is for server_name {}, not {}: they differ in case, and server names \
                     are case-sensitive",
                    quote(name),
                    quote(expected)
                )
            } else {
                format!(
                    "the key document is for server_name {}, not {}: this address serves another server's \
                     keys (a proxy or virtual host may route to the wrong homeserver)",
                    quote(name),
                    quote(expected)
                )
            }
        }
        Some(other) => format!(
            "the key document's server_name is {}, not a string (expected {})",
            json_type(other),
            quote(expected)
        ),
        None => format!(
            "the key document has no server_name (expected {})",
            quote(expected)
        ),
    };
    failures.push(fail(Reason::KeysServerNameMismatch, message));
}

/// What reading `verify_keys` found, beyond the report entries.
#[derive(Default)]
struct VerifyKeys {
    /// Why `verify_keys` itself is unusable (missing, not an object), if it is.
    missing: Option<String>,
    /// The decoded public key of each report entry that is a valid ed25519 key (same index as the report).
    public: Vec<Option<[u8; 32]>>,
    /// `(key id, problem)` of each `ed25519:*` entry that is not a valid key.
    bad_ed25519: Vec<(String, String)>,
    /// Key ids of entries with other algorithms.
    other: Vec<String>,
}

impl VerifyKeys {
    fn no_ed25519_message(&self) -> String {
        if let Some(missing) = &self.missing {
            return format!("{missing}, so it has no ed25519 key");
        }
        if !self.bad_ed25519.is_empty() {
            return format!(
                "no ed25519 verify key is usable: {}",
                describe_problems(&self.bad_ed25519)
            );
        }
        if self.other.is_empty() {
            "verify_keys is empty: the document has no ed25519 key".to_owned()
        } else {
            format!(
                "verify_keys has no ed25519 key, only {}",
                self.other
                    .iter()
                    .map(|id| quote(id))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }
}

/// `verify_keys`: the spec decides "Public keys of the homeserver for verifying digital signatures. The object's
/// key is the algorithm and version combined (`ed25519` being the algorithm and `abc123` being the version in
/// the example below). Together, this forms the Key ID. The version must have characters matching the regular
/// expression `[a-zA-Z0-9_]`." with entries `{"key": "<unpadded base64>"}`.
fn read_verify_keys(doc: &Map<String, Value>, report: &mut KeysReport) -> VerifyKeys {
    let mut keys = VerifyKeys::default();
    let map = match doc.get("verify_keys") {
        Some(Value::Object(map)) => map,
        Some(other) => {
            keys.missing = Some(format!(
                "verify_keys is {}, not an object",
                json_type(other)
            ));
            return keys;
        }
        None => {
            keys.missing = Some("the key document has no verify_keys".to_owned());
            return keys;
        }
    };
    if map.len() > MAX_VERIFY_KEYS {
        report.warnings.push(format!(
            "verify_keys has {} entries: only the first {MAX_VERIFY_KEYS} were checked",
            map.len()
        ));
    }
    for (key_id, entry) in map.iter().take(MAX_VERIFY_KEYS) {
        let key = entry.get("key").and_then(Value::as_str);
        let is_ed25519 = key_id
            .split_once(':')
            .is_some_and(|(alg, _)| alg == "ed25519");
        let decoded = match (is_ed25519, key) {
            (false, _) => {
                keys.other.push(key_id.clone());
                None
            }
            (true, None) => {
                let problem = if entry.is_object() {
                    "has no string \"key\"".to_owned()
                } else {
                    format!("is {}, not an object with a \"key\"", json_type(entry))
                };
                keys.bad_ed25519.push((key_id.clone(), problem));
                None
            }
            (true, Some(key)) => match decode_ed25519_key(key) {
                Ok(public) => Some(public),
                Err(problem) => {
                    keys.bad_ed25519.push((key_id.clone(), problem));
                    None
                }
            },
        };
        report.verify_keys.push(VerifyKey {
            key_id: key_id.as_str().into(),
            key: key.unwrap_or_default().into(),
            valid_ed25519: decoded.is_some(),
            matching_signature: false,
        });
        keys.public.push(decoded);
    }
    keys
}

fn decode_ed25519_key(key: &str) -> Result<[u8; 32], String> {
    let bytes = BASE64
        .decode(key)
        .map_err(|e| format!("key is not base64 ({e})"))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("key decodes to {} bytes, not 32", bytes.len()))
}

/// Verifies the document's signature by every valid ed25519 verify key.
///
/// The spec decides (Checking for a Signature): "1. Checks if the `signatures` member of the object contains an
/// entry with the name of the entity. If the entry is missing then the check fails. [...] 4. Decodes the base64
/// encoded signature bytes. If base64 decoding fails then the check fails. 5. Removes the `signatures` and
/// `unsigned` members of the object. 6. Encodes the remainder of the JSON object using the Canonical JSON
/// encoding. 7. Checks the signature bytes against the encoded object using the verification key. If this fails
/// then the check fails." Like gomatrixserverlib `CheckKeys`, every ed25519 verify key must pass, and an
/// ed25519 entry that is not a valid key fails too (no signature can verify against it).
fn check_signatures(
    doc: &Map<String, Value>,
    entity: &str,
    keys: &VerifyKeys,
    report: &mut KeysReport,
    failures: &mut Vec<Failure>,
) {
    let mut unsigned_doc = doc.clone();
    unsigned_doc.remove("signatures");
    unsigned_doc.remove("unsigned");
    let canonical = match canonical_json(&Value::Object(unsigned_doc)) {
        Ok(canonical) => canonical,
        Err(e) => {
            failures.push(fail(
                Reason::KeysBadSignature,
                format!(
                    "the key document cannot be verified: it has no Canonical JSON form because {e}"
                ),
            ));
            return;
        }
    };

    let by_entity = match doc.get("signatures") {
        Some(Value::Object(signatures)) => match signatures.get(entity) {
            Some(Value::Object(by_entity)) => Ok(by_entity),
            Some(other) => Err(format!(
                "signatures[{}] is {}, not an object",
                quote(entity),
                json_type(other)
            )),
            None if signatures.is_empty() => Err("signatures is empty".to_owned()),
            None => Err(format!(
                "signatures has no entry for {} (only for {})",
                quote(entity),
                signatures
                    .keys()
                    .take(8)
                    .map(|name| quote(name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        },
        Some(other) => Err(format!("signatures is {}, not an object", json_type(other))),
        None => Err("the key document has no signatures".to_owned()),
    };

    let mut problems = keys.bad_ed25519.clone();
    match by_entity {
        Ok(by_entity) => {
            for (entry, public) in report.verify_keys.iter_mut().zip(&keys.public) {
                let Some(public) = public else { continue };
                match verify_signature(by_entity, &entry.key_id, public, canonical.as_bytes()) {
                    Ok(()) => entry.matching_signature = true,
                    Err(problem) => problems.push((entry.key_id.to_string(), problem)),
                }
            }
            if !problems.is_empty() {
                failures.push(fail(
                    Reason::KeysBadSignature,
                    format!(
                        "ed25519 verify keys without a valid signature by {}: {}",
                        quote(entity),
                        describe_problems(&problems)
                    ),
                ));
            }
        }
        Err(why) => failures.push(fail(
            Reason::KeysBadSignature,
            format!("the key document is not signed by {}: {why}", quote(entity)),
        )),
    }
}

/// Checks `signatures[entity][key_id]` (already looked up as `by_entity`) against `canonical`.
fn verify_signature(
    by_entity: &Map<String, Value>,
    key_id: &str,
    public: &[u8; 32],
    canonical: &[u8],
) -> Result<(), String> {
    let signature = match by_entity.get(key_id) {
        Some(Value::String(signature)) => signature,
        Some(other) => {
            return Err(format!(
                "the signature is {}, not a string",
                json_type(other)
            ));
        }
        None => return Err("no signature by this key".to_owned()),
    };
    let signature = BASE64
        .decode(signature)
        .map_err(|e| format!("the signature is not base64 ({e})"))?;
    if signature.len() != 64 {
        return Err(format!(
            "the signature decodes to {} bytes, not 64",
            signature.len()
        ));
    }
    UnparsedPublicKey::new(&ED25519, public)
        .verify(canonical, &signature)
        .map_err(|_| {
            "the signature does not verify over the Canonical JSON of the document (without signatures and \
             unsigned)"
                .to_owned()
        })
}

/// `valid_until_ts`: the spec decides "POSIX timestamp in milliseconds when the list of valid keys should be
/// refreshed. This field MUST be ignored in room versions 1, 2, 3, and 4. Keys used beyond this timestamp MUST
/// be considered invalid, depending on the room version specification. Servers MUST use the lesser of this
/// field and 7 days into the future when determining if a key is valid." and "Originating servers should avoid
/// returning responses that expire in less than an hour".
fn check_valid_until(
    doc: &Map<String, Value>,
    now_ms: i64,
    report: &mut KeysReport,
    failures: &mut Vec<Failure>,
) {
    let ts = match doc.get("valid_until_ts") {
        None => {
            failures.push(fail(
                Reason::KeysExpired,
                "the key document is missing valid_until_ts: peers cannot tell until when its keys are valid",
            ));
            return;
        }
        Some(value) => {
            let Some(ts) = value.as_i64() else {
                failures.push(fail(
                    Reason::KeysExpired,
                    format!(
                        "valid_until_ts is {}, not an integer of milliseconds since the epoch",
                        json_type(value)
                    ),
                ));
                return;
            };
            ts
        }
    };
    report.valid_until_ts = Some(ts);
    let left = ts.saturating_sub(now_ms);
    if left <= 0 {
        failures.push(fail(
            Reason::KeysExpired,
            format!(
                "valid_until_ts {} is {} in the past: keys used beyond this timestamp must be considered \
                 invalid",
                describe_ts(ts),
                describe_ms(left.saturating_neg())
            ),
        ));
    } else if left < HOUR_MS {
        report.warnings.push(format!(
            "valid_until_ts {} expires in under an hour ({}): originating servers should avoid returning \
             responses that expire in less than an hour",
            describe_ts(ts),
            describe_ms(left)
        ));
    } else if left > SEVEN_DAYS_MS {
        report.warnings.push(format!(
            "valid_until_ts {} is more than 7 days ahead ({}): peers use the lesser of this and 7 days",
            describe_ts(ts),
            describe_ms(left)
        ));
    }
}

/// `old_verify_keys`: the spec decides "The public keys that the server used to use and when it stopped using
/// them." with entries `{"expired_ts": <ms>, "key": "<unpadded base64>"}`. Optional, and informational here:
/// malformed entries are skipped (or kept without `expired_ts`) with a warning, never a failure.
fn read_old_verify_keys(doc: &Map<String, Value>, report: &mut KeysReport) {
    let map = match doc.get("old_verify_keys") {
        None => return,
        Some(Value::Object(map)) => map,
        Some(other) => {
            report.warnings.push(format!(
                "old_verify_keys is {}, not an object: ignored",
                json_type(other)
            ));
            return;
        }
    };
    if map.len() > MAX_OLD_VERIFY_KEYS {
        report.warnings.push(format!(
            "old_verify_keys has {} entries: only the first {MAX_OLD_VERIFY_KEYS} were read",
            map.len()
        ));
    }
    for (key_id, entry) in map.iter().take(MAX_OLD_VERIFY_KEYS) {
        let Some(key) = entry.get("key").and_then(Value::as_str) else {
            let problem = if entry.is_object() {
                "has no string \"key\"".to_owned()
            } else {
                format!("is {}, not an object", json_type(entry))
            };
            report.warnings.push(format!(
                "old_verify_keys entry {} {problem}: skipped",
                quote(key_id)
            ));
            continue;
        };
        let expired_ts = entry.get("expired_ts").and_then(Value::as_i64);
        if expired_ts.is_none() {
            report.warnings.push(format!(
                "old_verify_keys entry {} has no integer expired_ts",
                quote(key_id)
            ));
        }
        report.old_verify_keys.push(OldVerifyKey {
            key_id: key_id.clone(),
            key: key.to_owned(),
            expired_ts,
        });
    }
}

/// Milliseconds since the epoch (negative before it, saturating).
fn unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// `1652262000000 (2022-05-11T09:40:00Z)`; the date only for years 1970 to 9999.
fn describe_ts(ms: i64) -> String {
    const LAST_MS_OF_9999: i64 = 253_402_300_799_999;
    if (0..=LAST_MS_OF_9999).contains(&ms) {
        let at = UNIX_EPOCH + Duration::from_millis(ms as u64);
        format!("{ms} ({})", humantime::format_rfc3339_seconds(at))
    } else {
        ms.to_string()
    }
}

/// A non-negative span in milliseconds, to whole seconds (`1h 2m 3s`; `0s` below a second).
fn describe_ms(ms: i64) -> String {
    let secs = u64::try_from(ms / 1000).unwrap_or(0);
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

/// `"ed25519:a" (why), "ed25519:b" (why)`.
fn describe_problems(problems: &[(String, String)]) -> String {
    problems
        .iter()
        .map(|(key_id, problem)| format!("{} ({problem})", quote(key_id)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A served string for a message: Debug-quoted (control characters escaped), cut at [`QUOTE_CHARS`].
fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_CHARS) {
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
        None => format!("{s:?}"),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a floating-point number",
        Value::Number(n) if n.is_u64() && n.as_i64().is_none() => "a number too large",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks that `object` carries a valid signature by `entity` (a notary, say) made with one of `keys` (the
/// entity's verify keys, as its own key document gave them): used for a notary's answer, which the notary signs
/// beside the origin.
///
/// The spec decides (Querying Keys Through Another Server): "Each returned key will be signed by the notary
/// server in addition to the originating homeserver." Like Synapse's `PerspectivesKeyFetcher`, one valid
/// signature by a known key of the entity suffices; a signature by one of its known keys that does not verify
/// fails the check (so a forged signature is never outweighed by another). Steps 1 to 7 of "Checking for a
/// Signature" apply as in [`check_key_document`].
pub fn check_signed_by(
    object: &Map<String, Value>,
    entity: &str,
    keys: &[VerifyKey],
) -> Result<(), String> {
    let Some(Value::Object(by_entity)) = object.get("signatures").and_then(|s| s.get(entity))
    else {
        return Err(format!("not signed by {}", quote(entity)));
    };
    let mut unsigned = object.clone();
    unsigned.remove("signatures");
    unsigned.remove("unsigned");
    let canonical = canonical_json(&Value::Object(unsigned))
        .map_err(|e| format!("no Canonical JSON form: {e}"))?;
    let mut verified = false;
    for key in keys.iter().filter(|k| k.valid_ed25519) {
        if !by_entity.contains_key(key.key_id.as_str()) {
            continue;
        }
        let public = decode_ed25519_key(&key.key)?;
        verify_signature(by_entity, &key.key_id, &public, canonical.as_bytes()).map_err(
            |problem| {
                format!(
                    "signature by {} {}: {problem}",
                    quote(entity),
                    quote(&key.key_id)
                )
            },
        )?;
        verified = true;
    }
    if verified {
        Ok(())
    } else {
        Err(format!(
            "no signature by {} with a key it serves (signed with {})",
            quote(entity),
            by_entity
                .keys()
                .take(8)
                .map(|k| quote(k))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair as _};
    use serde_json::json;

    const SEED: &str = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
    /// 2025-01-01T00:00:00Z.
    const NOW_MS: i64 = 1_735_689_600_000;
    const DAY_MS: i64 = 24 * HOUR_MS;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(NOW_MS as u64)
    }

    /// The spec's test signing key ("Cryptographic Test Vectors": seed, key id `ed25519:1`).
    fn spec_key() -> Ed25519KeyPair {
        let seed = BASE64.decode(SEED).expect("seed is base64");
        Ed25519KeyPair::from_seed_unchecked(&seed).expect("32-byte seed")
    }

    fn seeded_key(byte: u8) -> Ed25519KeyPair {
        Ed25519KeyPair::from_seed_unchecked(&[byte; 32]).expect("32-byte seed")
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
    }

    /// The spec's `sign_json`: signs `value` without `signatures`/`unsigned`, adds the signature.
    fn sign(value: &mut Value, entity: &str, key_id: &str, key: &Ed25519KeyPair) {
        let object = value.as_object_mut().expect("an object");
        let signatures = object.remove("signatures");
        let unsigned = object.remove("unsigned");
        let canonical = canonical_json(&Value::Object(object.clone())).expect("canonical");
        let signature = b64(key.sign(canonical.as_bytes()).as_ref());
        let mut signatures = signatures.unwrap_or_else(|| json!({}));
        signatures
            .as_object_mut()
            .expect("signatures object")
            .entry(entity)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("entity object")
            .insert(key_id.to_owned(), Value::String(signature));
        object.insert("signatures".to_owned(), signatures);
        if let Some(unsigned) = unsigned {
            object.insert("unsigned".to_owned(), unsigned);
        }
    }

    /// An unsigned key document for `example.org` with `keys`, valid for a day.
    fn unsigned_doc(keys: &[(&str, &Ed25519KeyPair)]) -> Value {
        let verify_keys: Map<String, Value> = keys
            .iter()
            .map(|(id, key)| {
                (
                    (*id).to_owned(),
                    json!({ "key": b64(key.public_key().as_ref()) }),
                )
            })
            .collect();
        json!({
            "server_name": "example.org",
            "verify_keys": verify_keys,
            "old_verify_keys": {},
            "valid_until_ts": NOW_MS + DAY_MS,
        })
    }

    /// A good document signed by each of `keys`.
    fn signed_doc(keys: &[(&str, &Ed25519KeyPair)]) -> Value {
        let mut doc = unsigned_doc(keys);
        for (id, key) in keys {
            sign(&mut doc, "example.org", id, key);
        }
        doc
    }

    fn check(doc: &Value) -> (KeysReport, Vec<Failure>) {
        let body = serde_json::to_vec(doc).expect("serialises");
        let (report, failures) = check_key_document(&body, "example.org", now());
        assert!(failures.iter().all(|f| f.stage == Stage::Keys));
        (report.expect("a JSON object gives a report"), failures)
    }

    fn reasons(failures: &[Failure]) -> Vec<Reason> {
        failures.iter().map(|f| f.reason).collect()
    }

    // ---- Canonical JSON: every example of the spec appendix "Canonical JSON → Examples" ----

    #[test]
    fn spec_signing_vectors() {
        let key = spec_key();
        let cases = [
            (
                json!({}),
                "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ",
            ),
            (
                json!({"one": 1, "two": "Two"}),
                "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw",
            ),
        ];
        for (mut value, expected) in cases {
            sign(&mut value, "domain", "ed25519:1", &key);
            assert_eq!(value["signatures"]["domain"]["ed25519:1"], json!(expected));

            // And the checking side verifies the spec's signed object.
            let mut object = value.as_object().expect("object").clone();
            let signatures = object.remove("signatures").expect("signed");
            let canonical = canonical_json(&Value::Object(object)).expect("canonical");
            let public: [u8; 32] = key.public_key().as_ref().try_into().expect("32 bytes");
            let by_entity = signatures["domain"].as_object().expect("entity");
            assert_eq!(
                verify_signature(by_entity, "ed25519:1", &public, canonical.as_bytes()),
                Ok(())
            );
            // Another key id, another key, other bytes: each fails.
            assert!(
                verify_signature(by_entity, "ed25519:2", &public, canonical.as_bytes()).is_err()
            );
            let other: [u8; 32] = seeded_key(7).public_key().as_ref().try_into().expect("32");
            assert!(
                verify_signature(by_entity, "ed25519:1", &other, canonical.as_bytes()).is_err()
            );
            assert!(verify_signature(by_entity, "ed25519:1", &public, b"{\"x\":1}").is_err());
        }
    }

    #[test]
    fn spec_signed_vector_passes_as_a_key_document() {
        // The spec's key, in a key document for "domain", checked end to end.
        let key = spec_key();
        let mut doc = json!({
            "server_name": "domain",
            "verify_keys": {"ed25519:1": {"key": b64(key.public_key().as_ref())}},
            "valid_until_ts": NOW_MS + DAY_MS,
            "unsigned": {"age_ts": 1},
        });
        sign(&mut doc, "domain", "ed25519:1", &key);
        // `unsigned` is not covered: changing it keeps the signature valid.
        doc["unsigned"] = json!({"anything": [1, 2.5]});
        let body = serde_json::to_vec(&doc).expect("serialises");
        let (report, failures) = check_key_document(&body, "domain", now());
        assert_eq!(failures, vec![]);
        let report = report.expect("report");
        assert!(report.verify_keys[0].valid_ed25519 && report.verify_keys[0].matching_signature);
    }

    // ---- check_key_document ----

    #[test]
    fn a_good_document_passes_and_is_reported() {
        let (a, b) = (seeded_key(1), seeded_key(2));
        let mut doc = signed_doc(&[("ed25519:a", &a), ("ed25519:b", &b)]);
        doc["old_verify_keys"] =
            json!({"ed25519:old": {"key": "b2xk", "expired_ts": 1_532_645_052_628_i64}});
        sign(&mut doc, "example.org", "ed25519:a", &a);
        sign(&mut doc, "example.org", "ed25519:b", &b);
        let (report, failures) = check(&doc);
        assert_eq!(failures, vec![]);
        assert_eq!(report.server_name, "example.org");
        assert_eq!(report.valid_until_ts, Some(NOW_MS + DAY_MS));
        assert_eq!(
            report.verify_keys,
            vec![
                VerifyKey {
                    key_id: "ed25519:a".into(),
                    key: b64(a.public_key().as_ref()).into(),
                    valid_ed25519: true,
                    matching_signature: true,
                },
                VerifyKey {
                    key_id: "ed25519:b".into(),
                    key: b64(b.public_key().as_ref()).into(),
                    valid_ed25519: true,
                    matching_signature: true,
                },
            ]
        );
        assert_eq!(
            report.old_verify_keys,
            vec![OldVerifyKey {
                key_id: "ed25519:old".into(),
                key: "b2xk".into(),
                expired_ts: Some(1_532_645_052_628),
            }]
        );
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        assert_eq!(
            report.raw,
            serde_json::to_string(&doc).expect("json").as_bytes()
        );
    }

    #[test]
    fn padded_keys_and_signatures_are_accepted() {
        let key = seeded_key(3);
        let mut doc = unsigned_doc(&[("ed25519:p", &key)]);
        let padded = base64::engine::general_purpose::STANDARD.encode(key.public_key().as_ref());
        assert!(padded.ends_with('='));
        doc["verify_keys"]["ed25519:p"]["key"] = json!(padded);
        sign(&mut doc, "example.org", "ed25519:p", &key);
        let sig = doc["signatures"]["example.org"]["ed25519:p"]
            .as_str()
            .expect("sig")
            .to_owned();
        doc["signatures"]["example.org"]["ed25519:p"] = json!(format!("{sig}=="));
        let (report, failures) = check(&doc);
        assert_eq!(failures, vec![]);
        assert!(report.verify_keys[0].matching_signature);
    }

    #[test]
    fn server_name_mismatch() {
        let key = seeded_key(1);
        for (name, needle) in [
            (json!("Example.org"), "differ in case"),
            (json!("other.org"), "another server's keys"),
            (json!(42), "not a string"),
        ] {
            let mut doc = unsigned_doc(&[("ed25519:a", &key)]);
            doc["server_name"] = name.clone();
            // Signed for whatever it claims to be (or, without a string name, for the expected one).
            let entity = name.as_str().unwrap_or("example.org").to_owned();
            sign(&mut doc, &entity, "ed25519:a", &key);
            let (report, failures) = check(&doc);
            assert_eq!(
                reasons(&failures),
                vec![Reason::KeysServerNameMismatch],
                "{name}"
            );
            assert!(
                failures[0].message.contains(needle),
                "{}",
                failures[0].message
            );
            assert!(report.verify_keys[0].matching_signature, "{name}");
        }
        let mut doc = unsigned_doc(&[("ed25519:a", &key)]);
        doc.as_object_mut().expect("object").remove("server_name");
        sign(&mut doc, "example.org", "ed25519:a", &key);
        let (report, failures) = check(&doc);
        assert_eq!(reasons(&failures), vec![Reason::KeysServerNameMismatch]);
        assert!(failures[0].message.contains("no server_name"));
        assert_eq!(report.server_name, "");
    }

    #[test]
    fn no_usable_ed25519_key() {
        let key = seeded_key(1);
        let cases = [
            (json!(null), "no verify_keys"),
            (json!([]), "not an object"),
            (json!({}), "verify_keys is empty"),
            (
                json!({"curve25519:x": {"key": b64(&[0; 32])}}),
                "only \"curve25519:x\"",
            ),
            (
                json!({"ed25519:short": {"key": b64(&[0; 31])}}),
                "31 bytes, not 32",
            ),
            (json!({"ed25519:bad": {"key": "!!!"}}), "not base64"),
            (json!({"ed25519:nokey": {}}), "no string \"key\""),
            (
                json!({"ed25519:str": "abc"}),
                "not an object with a \"key\"",
            ),
        ];
        for (verify_keys, needle) in cases {
            let mut doc = unsigned_doc(&[]);
            if verify_keys.is_null() {
                doc.as_object_mut().expect("object").remove("verify_keys");
            } else {
                doc["verify_keys"] = verify_keys.clone();
            }
            sign(&mut doc, "example.org", "ed25519:a", &key);
            let (report, failures) = check(&doc);
            assert_eq!(
                reasons(&failures),
                vec![Reason::KeysNoEd25519Key],
                "{verify_keys}"
            );
            assert!(
                failures[0].message.contains(needle),
                "{}",
                failures[0].message
            );
            assert!(report.verify_keys.iter().all(|k| !k.valid_ed25519));
        }
    }

    #[test]
    fn every_ed25519_key_must_sign() {
        let (a, b) = (seeded_key(1), seeded_key(2));
        // Only `a` signs: `b` is named.
        let mut doc = unsigned_doc(&[("ed25519:a", &a), ("ed25519:b", &b)]);
        sign(&mut doc, "example.org", "ed25519:a", &a);
        let (report, failures) = check(&doc);
        assert_eq!(reasons(&failures), vec![Reason::KeysBadSignature]);
        assert!(
            failures[0]
                .message
                .contains("\"ed25519:b\" (no signature by this key)")
        );
        assert!(!failures[0].message.contains("\"ed25519:a\""));
        assert!(report.verify_keys[0].matching_signature);
        assert!(!report.verify_keys[1].matching_signature);

        // A non-ed25519 key need not sign; a broken ed25519 key next to a good one is named.
        let mut doc = unsigned_doc(&[("ed25519:a", &a)]);
        doc["verify_keys"]["curve25519:c"] = json!({"key": b64(&[1; 32])});
        doc["verify_keys"]["ed25519:short"] = json!({"key": b64(&[1; 16])});
        sign(&mut doc, "example.org", "ed25519:a", &a);
        let (report, failures) = check(&doc);
        assert_eq!(reasons(&failures), vec![Reason::KeysBadSignature]);
        assert!(
            failures[0]
                .message
                .contains("\"ed25519:short\" (key decodes to 16 bytes")
        );
        assert_eq!(report.verify_keys.len(), 3);
    }

    #[test]
    fn bad_signatures() {
        let (a, b) = (seeded_key(1), seeded_key(2));
        let good = signed_doc(&[("ed25519:a", &a)]);
        let set_sig = |sig: Value| {
            let mut doc = good.clone();
            doc["signatures"]["example.org"]["ed25519:a"] = sig;
            doc
        };
        let mut tampered = good.clone();
        tampered["valid_until_ts"] = json!(NOW_MS + DAY_MS + 1);
        let mut wrong_key = unsigned_doc(&[("ed25519:a", &a)]);
        sign(&mut wrong_key, "example.org", "ed25519:a", &b);
        let mut other_entity = unsigned_doc(&[("ed25519:a", &a)]);
        sign(&mut other_entity, "other.org", "ed25519:a", &a);
        let mut no_signatures = good.clone();
        no_signatures
            .as_object_mut()
            .expect("object")
            .remove("signatures");
        let mut float = unsigned_doc(&[("ed25519:a", &a)]);
        float["extra"] = json!(1.5);
        let mut huge = unsigned_doc(&[("ed25519:a", &a)]);
        huge["extra"] = json!(u64::MAX);

        let cases = [
            (tampered, "does not verify"),
            (wrong_key, "does not verify"),
            (set_sig(json!(b64(&[0; 64]))), "does not verify"),
            (set_sig(json!(b64(&[0; 63]))), "63 bytes, not 64"),
            (set_sig(json!("*not base64*")), "not base64"),
            (set_sig(json!(7)), "is a number, not a string"),
            (
                other_entity,
                "has no entry for \"example.org\" (only for \"other.org\")",
            ),
            (no_signatures, "has no signatures"),
            (float, "1.5 is not an integer"),
            (huge, "outside the range"),
        ];
        for (doc, needle) in cases {
            let (report, failures) = check(&doc);
            assert_eq!(reasons(&failures), vec![Reason::KeysBadSignature], "{doc}");
            assert!(
                failures[0].message.contains(needle),
                "{}",
                failures[0].message
            );
            assert!(!report.verify_keys[0].matching_signature);
            assert!(report.verify_keys[0].valid_ed25519);
        }
    }

    #[test]
    fn valid_until_ts() {
        let key = seeded_key(1);
        let at = |ts: Value| {
            let mut doc = unsigned_doc(&[("ed25519:a", &key)]);
            if ts.is_null() {
                doc.as_object_mut()
                    .expect("object")
                    .remove("valid_until_ts");
            } else {
                doc["valid_until_ts"] = ts;
            }
            sign(&mut doc, "example.org", "ed25519:a", &key);
            check(&doc)
        };
        for (ts, needle) in [
            (json!(null), "missing valid_until_ts"),
            (json!("1735689600000"), "is a string, not an integer"),
            (json!(1.5e12), "is a floating-point number, not an integer"),
            (json!(NOW_MS), "0s in the past"),
            (json!(NOW_MS - HOUR_MS), "1h in the past"),
            (json!(0), "in the past"),
            (json!(-MAX_SAFE_INTEGER), "in the past"),
        ] {
            let (report, failures) = at(ts.clone());
            assert_eq!(reasons(&failures), vec![Reason::KeysExpired], "{ts}");
            assert!(
                failures[0].message.contains(needle),
                "{}",
                failures[0].message
            );
            assert_eq!(report.valid_until_ts, ts.as_i64());
        }
        assert!(
            at(json!(NOW_MS - HOUR_MS)).1[0]
                .message
                .contains("2024-12-31T23:00:00Z")
        );

        let (report, failures) = at(json!(NOW_MS + HOUR_MS - 1000));
        assert_eq!(failures, vec![]);
        assert_eq!(report.warnings.len(), 1);
        assert!(report.warnings[0].contains("expires in under an hour (59m 59s)"));
        assert!(
            report.warnings[0]
                .contains("should avoid returning responses that expire in less than an hour")
        );

        for ts in [
            NOW_MS + HOUR_MS,
            NOW_MS + 12 * HOUR_MS,
            NOW_MS + SEVEN_DAYS_MS,
        ] {
            let (report, failures) = at(json!(ts));
            assert_eq!((failures, report.warnings), (vec![], vec![]), "{ts}");
        }

        for ts in [NOW_MS + SEVEN_DAYS_MS + 1000, MAX_SAFE_INTEGER] {
            let (report, failures) = at(json!(ts));
            assert_eq!(failures, vec![]);
            assert_eq!(report.warnings.len(), 1);
            assert!(report.warnings[0].contains("more than 7 days ahead"));
            assert!(report.warnings[0].contains("peers use the lesser of this and 7 days"));
        }
    }

    #[test]
    fn old_verify_keys_are_read_and_malformed_entries_warned() {
        let key = seeded_key(1);
        let mut doc = unsigned_doc(&[("ed25519:a", &key)]);
        doc["old_verify_keys"] = json!({
            "ed25519:good": {"key": "Zm9v", "expired_ts": 5},
            "ed25519:no_ts": {"key": "Zm9v"},
            "ed25519:no_key": {"expired_ts": 5},
            "ed25519:not_object": [1],
        });
        sign(&mut doc, "example.org", "ed25519:a", &key);
        let (report, failures) = check(&doc);
        assert_eq!(failures, vec![]);
        assert_eq!(
            report.old_verify_keys,
            vec![
                OldVerifyKey {
                    key_id: "ed25519:good".into(),
                    key: "Zm9v".into(),
                    expired_ts: Some(5)
                },
                OldVerifyKey {
                    key_id: "ed25519:no_ts".into(),
                    key: "Zm9v".into(),
                    expired_ts: None
                },
            ]
        );
        assert_eq!(report.warnings.len(), 3, "{:?}", report.warnings);
        assert!(
            report
                .warnings
                .iter()
                .any(|w| w.contains("\"ed25519:no_key\" has no string \"key\": skipped"))
        );
        assert!(
            report
                .warnings
                .iter()
                .any(|w| w.contains("\"ed25519:not_object\" is an array"))
        );
        assert!(
            report
                .warnings
                .iter()
                .any(|w| w.contains("\"ed25519:no_ts\" has no integer expired_ts"))
        );

        doc["old_verify_keys"] = json!("nope");
        sign(&mut doc, "example.org", "ed25519:a", &key);
        let (report, failures) = check(&doc);
        assert_eq!(failures, vec![]);
        assert_eq!(
            report.warnings,
            vec!["old_verify_keys is a string, not an object: ignored"]
        );
    }

    #[test]
    fn work_is_bounded() {
        let key = seeded_key(1);
        let mut doc = unsigned_doc(&[]);
        let public = b64(key.public_key().as_ref());
        for i in 0..100 {
            doc["verify_keys"][format!("ed25519:k{i:03}")] = json!({ "key": public });
            doc["old_verify_keys"][format!("ed25519:o{i:03}")] =
                json!({"key": public, "expired_ts": i});
        }
        for i in 0..100 {
            sign(&mut doc, "example.org", &format!("ed25519:k{i:03}"), &key);
        }
        let (report, failures) = check(&doc);
        assert_eq!(failures, vec![]);
        assert_eq!(report.verify_keys.len(), MAX_VERIFY_KEYS);
        assert!(report.verify_keys.iter().all(|k| k.matching_signature));
        assert_eq!(report.old_verify_keys.len(), MAX_OLD_VERIFY_KEYS);
        assert_eq!(
            report.warnings,
            vec![
                "verify_keys has 100 entries: only the first 64 were checked",
                "old_verify_keys has 100 entries: only the first 64 were read",
            ]
        );
    }

    #[test]
    fn several_failures_at_once() {
        let doc = json!({"server_name": "Example.ORG", "verify_keys": {}, "valid_until_ts": 1});
        let (report, failures) = check(&doc);
        assert_eq!(
            reasons(&failures),
            vec![
                Reason::KeysServerNameMismatch,
                Reason::KeysNoEd25519Key,
                Reason::KeysExpired
            ]
        );
        assert_eq!(report.server_name, "Example.ORG");
    }

    #[test]
    fn garbage_bodies_are_not_json() {
        let binary: Vec<u8> = (0..=255).collect();
        let deep = "[".repeat(100_000);
        let deep_objects = "{\"a\":".repeat(100_000);
        let cases: Vec<(&[u8], &str)> = vec![
            (b"", "empty"),
            (b"  \n", "empty"),
            (&binary, "not JSON"),
            (b"\xff\xfe{}", "not JSON"),
            (
                b"<!DOCTYPE html><html><body>Welcome to nginx!</body></html>",
                "HTML: a proxy may route /_matrix elsewhere",
            ),
            (b"\n  <html>", "HTML"),
            (deep.as_bytes(), "not JSON"),
            (deep_objects.as_bytes(), "not JSON"),
            (b"[]", "JSON an array, not a JSON object"),
            (b"\"text\"", "JSON a string, not a JSON object"),
            (b"null", "JSON null, not a JSON object"),
            (b"{} trailing", "not JSON"),
            (b"{\"server_name\": \"example.org\"", "not JSON"),
        ];
        for (body, needle) in cases {
            let (report, failures) = check_key_document(body, "example.org", now());
            assert!(report.is_none());
            assert_eq!(reasons(&failures), vec![Reason::NotJson]);
            assert_eq!(failures[0].stage, Stage::Keys);
            assert!(
                failures[0].message.contains(needle),
                "{}",
                failures[0].message
            );
        }
    }

    #[test]
    fn hostile_strings_are_quoted_and_cut() {
        let long = format!("evil\n\u{1b}[31m{}", "x".repeat(10_000));
        let doc = json!({
            "server_name": long,
            "verify_keys": {long.clone(): {"key": "AAAA"}},
            "valid_until_ts": NOW_MS + DAY_MS,
        });
        let (_, failures) = check(&doc);
        assert_eq!(
            reasons(&failures),
            vec![Reason::KeysServerNameMismatch, Reason::KeysNoEd25519Key]
        );
        for f in &failures {
            assert!(f.message.len() < 400, "{}", f.message);
            assert!(!f.message.contains('\n') && !f.message.contains('\u{1b}'));
        }
    }

    #[test]
    fn odd_shapes_do_not_panic() {
        for body in [
            r#"{"server_name":"example.org","verify_keys":{"ed25519:a":{"key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},"signatures":{"example.org":"x"},"valid_until_ts":-1}"#,
            r#"{"server_name":"example.org","verify_keys":{"ed25519:a":{"key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},"signatures":[],"valid_until_ts":18446744073709551615}"#,
            r#"{"server_name":"example.org","verify_keys":{"ed25519:a":{"key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},"signatures":{},"valid_until_ts":{}}"#,
            r#"{"server_name":"","verify_keys":{"ed25519":{"key":7},":":null,"":{}},"old_verify_keys":[],"valid_until_ts":null}"#,
        ] {
            let (report, failures) = check_key_document(body.as_bytes(), "example.org", now());
            assert!(report.is_some());
            assert!(!failures.is_empty());
        }
        // A clock before the epoch does not panic either.
        let before = UNIX_EPOCH - Duration::from_secs(10);
        let (report, _) = check_key_document(br#"{"valid_until_ts":0}"#, "example.org", before);
        assert!(report.expect("report").warnings[0].contains("under an hour (10s)"));
    }
}
