//! Pieces of the hand-built reports of the rendering tests (`/metrics`, the report API, the status pages), where
//! they are built the same way. Each test keeps its own values; these only spell them out.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use matrix_federation_exporter::report::{
    CertFacts, Fingerprint, KeysReport, VerifyKey, VersionReport,
};

/// `secs` seconds and `millis` milliseconds after the epoch.
pub fn at(secs: u64, millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
}

pub fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

pub fn sock(s: &str) -> SocketAddr {
    s.parse().expect("fixture address parses")
}

/// A certificate with no IP addresses, serial `01:02:03:04` and a fingerprint of `0xab` bytes.
pub fn cert(
    subject: &str,
    issuer: &str,
    dns_names: &[&str],
    not_before: i64,
    not_after: i64,
) -> CertFacts {
    CertFacts {
        subject: subject.into(),
        issuer: issuer.into(),
        dns_names: dns_names.iter().map(|&n| n.to_owned()).collect(),
        ip_addresses: Vec::new(),
        serial: "01:02:03:04".to_owned(),
        fingerprint_sha256: Fingerprint([0xab; 32]),
        not_before,
        not_after,
    }
}

/// A key document of `server_name` with one good key, `ed25519:a_AbCd` = `key` (valid, and the document's
/// signature by it matches), and nothing else.
pub fn one_key(server_name: &str, valid_until_ts: i64, key: &str) -> KeysReport {
    KeysReport {
        server_name: server_name.into(),
        valid_until_ts: Some(valid_until_ts),
        verify_keys: vec![VerifyKey {
            key_id: "ed25519:a_AbCd".into(),
            key: key.into(),
            valid_ed25519: true,
            matching_signature: true,
        }],
        old_verify_keys: Vec::new(),
        warnings: Vec::new(),
        raw: bytes::Bytes::new(),
    }
}

/// `{"server": {"name": "Synapse", "version": version}}`.
pub fn synapse(version: &str) -> VersionReport {
    VersionReport {
        name: Some("Synapse".to_owned()),
        version: Some(version.to_owned()),
    }
}
