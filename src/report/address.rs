//! Plain data: what one `ip:port` showed (the TLS handshake, the certificate chain and its facts, the key
//! document, the server version), built by `probe/mod.rs` and `probe/connect/`; nothing here does I/O.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::{AddressClass, Failure, Family, Phase, SharedStr, Timings};

/// Everything learned about one `ip:port`.
#[derive(Clone, Debug)]
pub struct AddressReport {
    pub address: SocketAddr,
    /// The host this address was resolved from (an SRV target, the delegated name or the server name).
    pub target_host: SharedStr,
    /// Latency of each phase that ran.
    pub phases: Timings<Phase>,
    /// Negotiated TLS parameters, when the handshake completed.
    pub tls: Option<TlsFacts>,
    /// The presented chain and its verdict, when the handshake completed.
    pub certificate: Option<CertReport>,
    /// The key document, when `GET /_matrix/key/v2/server` answered JSON (the check may be off).
    pub keys: Option<KeysReport>,
    /// The server software, when `GET /_matrix/federation/v1/version` answered (the check may be off).
    pub version: Option<VersionReport>,
    /// Every failure of this address; empty when it passed.
    pub failures: Vec<Failure>,
}

impl AddressReport {
    /// The report of `address` before anything was checked.
    #[must_use]
    pub fn new(address: SocketAddr, target_host: SharedStr) -> Self {
        Self {
            address,
            target_host,
            phases: Timings::default(),
            tls: None,
            certificate: None,
            keys: None,
            version: None,
            failures: Vec::new(),
        }
    }

    #[must_use]
    pub fn success(&self) -> bool {
        self.failures.is_empty()
    }

    #[must_use]
    pub fn family(&self) -> Family {
        Family::of(self.address.ip())
    }

    /// The range the address falls in (see `report/address_class.rs`).
    #[must_use]
    pub fn class(&self) -> AddressClass {
        AddressClass::of(self.address.ip())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFacts {
    /// For example `TLSv1_3` (rustls's name; `unknown` for a value rustls has none for, which it never
    /// negotiates).
    pub version: &'static str,
    /// For example `TLS13_AES_256_GCM_SHA384` (rustls's name, or `unknown`).
    pub cipher: &'static str,
}

/// The certificate chain a server presented and how a federating peer would judge it.
#[derive(Clone, Debug)]
pub struct CertReport {
    /// The presented chain, leaf first. Certificates that did not parse are left out (and make it invalid).
    /// Shared: reports of servers with the same intermediate hold one copy of its facts.
    pub chain: Vec<Arc<CertFacts>>,
    /// Chain, name and validity-window failures (stage `certificate`); empty when the certificate is valid.
    pub failures: Vec<Failure>,
    /// The earliest `notAfter` on the path the verifier built (the leaf and the intermediates it used; a trust
    /// anchor carries none), when the chain verifies; `None` otherwise.
    pub verified_not_after: Option<i64>,
}

impl CertReport {
    #[must_use]
    pub fn valid(&self) -> bool {
        self.failures.is_empty() && !self.chain.is_empty()
    }

    /// The earliest `notAfter` on the verified path when the chain verifies, else in the presented chain: an
    /// extra certificate the server still sends but no verifier uses (an expired cross-sign) does not count.
    #[must_use]
    pub fn chain_not_after(&self) -> Option<i64> {
        self.verified_not_after
            .or_else(|| self.presented_not_after())
    }

    /// The earliest `notAfter` in the presented chain, whether or not the verifier used each certificate.
    #[must_use]
    pub fn presented_not_after(&self) -> Option<i64> {
        self.chain.iter().map(|c| c.not_after).min()
    }
}

/// A `/_matrix/key/v2/server` document as one address served it, and how each key was judged (see `probe/checks/keys.rs`).
/// Its failures (stage `keys`) are in the address's `failures`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeysReport {
    /// The document's `server_name` (empty when missing). Shared with the report's own server name when equal
    /// (`schedule/compact.rs`), as it nearly always is.
    pub server_name: SharedStr,
    /// `valid_until_ts` in milliseconds since the epoch.
    pub valid_until_ts: Option<i64>,
    /// Every entry of `verify_keys`, with its checks.
    pub verify_keys: Vec<VerifyKey>,
    /// Every entry of `old_verify_keys`.
    pub old_verify_keys: Vec<OldVerifyKey>,
    /// Things that work today but deserve a look (`valid_until_ts` under 1 h or over 7 days away).
    pub warnings: Vec<String>,
    /// The document as served, byte for byte (the federation tester echoes it as `Keys`). Its own allocation
    /// of exactly its length (a Synapse document with one key is about 300 bytes); addresses of one server that
    /// served the same document share one copy (`probe_server`).
    pub raw: bytes::Bytes,
}

/// One current signing key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyKey {
    /// For example `ed25519:a_AbCd`. Shared with the key history (`report/key_history.rs`), which keeps every
    /// key for 7 days: one copy per key, not one per report.
    pub key_id: SharedStr,
    /// Unpadded base64, as served (shared like `key_id`).
    pub key: SharedStr,
    /// An `ed25519` key that decodes to 32 bytes.
    pub valid_ed25519: bool,
    /// The server's signature by this key over the canonical document verifies.
    pub matching_signature: bool,
}

/// One former signing key (valid for events older than `expired_ts`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OldVerifyKey {
    pub key_id: String,
    pub key: String,
    pub expired_ts: Option<i64>,
}

/// `GET /_matrix/federation/v1/version`: `{"server": {"name": ..., "version": ...}}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionReport {
    pub name: Option<String>,
    pub version: Option<String>,
}

/// Facts read from one X.509 certificate (see `probe/connect/cert.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFacts {
    pub subject: SharedStr,
    pub issuer: SharedStr,
    /// DNS names and IP addresses from the subjectAltName extension.
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    /// Hex, colon separated.
    pub serial: String,
    /// The SHA-256 of the DER (shown as lower-case hex).
    pub fingerprint_sha256: Fingerprint,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

/// The SHA-256 of a certificate's DER, kept as its 32 bytes; `Display` writes 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Reads 64 hex digits (either case); `None` for anything else.
    #[must_use]
    pub fn from_hex(hex: &str) -> Option<Self> {
        let digits = hex.as_bytes();
        if digits.len() != 64 {
            return None;
        }
        let mut bytes = [0; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks(2)) {
            let text = std::str::from_utf8(pair).ok()?;
            *byte = u8::from_str_radix(text, 16).ok()?;
        }
        Some(Self(bytes))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}
