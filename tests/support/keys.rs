//! The test world's signing side: ed25519 keys, signed `/_matrix/key/v2/server` documents, and the routes of a
//! healthy fake homeserver.
//!
//! Signing follows the spec appendix "Signing JSON → Signing Details": remove `signatures` and `unsigned`,
//! encode as Canonical JSON (the exporter's own `keys::canonical_json`), sign with ed25519, put the unpadded
//! base64 signature under `signatures[<server name>][<key id>]`, and put `unsigned` back.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use matrix_federation_exporter::probe::checks::keys::canonical_json;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::{Map, Value, json};

use super::{Reply, Routes};

/// `GET /_matrix/key/v2/server`.
pub const KEY_SERVER_PATH: &str = "/_matrix/key/v2/server";
/// `GET /_matrix/federation/v1/version`.
pub const VERSION_PATH: &str = "/_matrix/federation/v1/version";
/// What the fake homeserver answers on [`VERSION_PATH`].
pub const VERSION_BODY: &str = r#"{"server":{"name":"FakeServer","version":"1.0.0"}}"#;

/// One ed25519 signing key with its key id (`ed25519:<version>`).
#[derive(Debug)]
pub struct SigningKey {
    pub key_id: String,
    pair: Ed25519KeyPair,
}

impl SigningKey {
    /// A fresh random key, for example `SigningKey::generate("ed25519:a1")`.
    pub fn generate(key_id: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("generate an ed25519 key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("parse the generated key");
        Self {
            key_id: key_id.to_owned(),
            pair,
        }
    }

    /// The key from a 32-byte seed (deterministic; the spec's test vectors use a seed).
    pub fn from_seed(key_id: &str, seed: &[u8; 32]) -> Self {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).expect("a 32-byte seed");
        Self {
            key_id: key_id.to_owned(),
            pair,
        }
    }

    /// The public key, unpadded standard base64 (as served in `verify_keys`).
    pub fn public_base64(&self) -> String {
        STANDARD_NO_PAD.encode(self.pair.public_key().as_ref())
    }

    /// The ed25519 signature of `message`, unpadded standard base64.
    pub fn sign(&self, message: &[u8]) -> String {
        STANDARD_NO_PAD.encode(self.pair.sign(message).as_ref())
    }
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since.as_millis()).expect("milliseconds fit in i64")
}

/// A signed `/_matrix/key/v2/server` document: `server_name`, `verify_keys` of `keys`, empty
/// `old_verify_keys`, `valid_until_ts`, signed by every key under `signatures[server_name]`.
pub fn key_document(server_name: &str, keys: &[&SigningKey], valid_until_ts: i64) -> String {
    let verify_keys: Map<String, Value> = keys
        .iter()
        .map(|key| (key.key_id.clone(), json!({ "key": key.public_base64() })))
        .collect();
    let mut document = json!({
        "server_name": server_name,
        "verify_keys": verify_keys,
        "old_verify_keys": {},
        "valid_until_ts": valid_until_ts,
    });
    for key in keys {
        sign_json(&mut document, server_name, key);
    }
    serde_json::to_string(&document).expect("a key document serialises")
}

/// Signs `value` (an object) in place with `key` for `server_name`: adds `signatures[server_name][key_id]`,
/// keeping any signatures already there. Panics if `value` is not an object or has no Canonical JSON form.
pub fn sign_json(value: &mut Value, server_name: &str, key: &SigningKey) {
    let object = value
        .as_object_mut()
        .expect("sign_json signs a JSON object");
    let signatures = object.remove("signatures");
    let unsigned = object.remove("unsigned");
    let canonical = canonical_json(&Value::Object(object.clone()))
        .expect("the signed object has a Canonical JSON form");
    let signature = key.sign(canonical.as_bytes());

    let mut signatures = match signatures {
        Some(Value::Object(signatures)) => signatures,
        _ => Map::new(),
    };
    let by_server = signatures
        .entry(server_name)
        .or_insert_with(|| Value::Object(Map::new()));
    if !by_server.is_object() {
        *by_server = Value::Object(Map::new());
    }
    by_server
        .as_object_mut()
        .expect("made an object above")
        .insert(key.key_id.clone(), Value::String(signature));
    object.insert("signatures".to_owned(), Value::Object(signatures));
    if let Some(unsigned) = unsigned {
        object.insert("unsigned".to_owned(), unsigned);
    }
}

/// The routes of a healthy fake homeserver for `server_name`: [`KEY_SERVER_PATH`] → a key document signed by a
/// new key (`ed25519:fake`) valid for one day; [`VERSION_PATH`] → [`VERSION_BODY`].
pub fn matrix_routes(server_name: &str) -> Routes {
    let key = SigningKey::generate("ed25519:fake");
    let day_ms = 24 * 60 * 60 * 1000;
    matrix_routes_with_keys(key_document(server_name, &[&key], now_ms() + day_ms))
}

/// The same routes, with `key_document` as the body of [`KEY_SERVER_PATH`].
pub fn matrix_routes_with_keys(key_document: String) -> Routes {
    Routes::new()
        .route(KEY_SERVER_PATH, Reply::json(200, key_document))
        .route(VERSION_PATH, Reply::json(200, VERSION_BODY))
}
