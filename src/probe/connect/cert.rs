//! Pure X.509 facts: validity window, subject, issuer, SANs, serial and fingerprint of one DER certificate.
//!
//! This module only reads certificates; judging them (chain, name, window) happens in `probe/connect/tls.rs`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::report::{CertFacts, Fingerprint};

/// The facts of the intermediate certificates that stored reports hold, shared: thousands of servers present
/// the same few intermediates (a public CA's), so each is kept once rather than once per address. Keyed by
/// the SHA-256 of the DER; an entry lives while some report holds it, and dead entries are swept whenever
/// the map has doubled since the last sweep, so its size stays within twice the live certificates.
#[derive(Debug, Default)]
pub struct SharedFacts {
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    by_digest: HashMap<[u8; 32], Weak<CertFacts>>,
    sweep_at: usize,
}

impl SharedFacts {
    /// The facts of `der`, shared with every other holder of the same certificate.
    pub fn facts(&self, der: &[u8]) -> Result<Arc<CertFacts>, String> {
        let digest = sha256(der);
        if let Some(known) = self.lock().by_digest.get(&digest).and_then(Weak::upgrade) {
            return Ok(known);
        }
        // Parsed outside the lock; two probes that race here keep one copy each, which is harmless.
        let fresh = Arc::new(facts_of(der, &digest)?);
        let mut seen = self.lock();
        if seen.by_digest.len() >= seen.sweep_at {
            seen.by_digest.retain(|_, facts| facts.strong_count() > 0);
            seen.sweep_at = (seen.by_digest.len() * 2).max(64);
        }
        seen.by_digest.insert(digest, Arc::downgrade(&fresh));
        Ok(fresh)
    }

    /// How many certificates are held (live or not yet swept).
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().by_digest.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // The map is valid after any panic (an insert either happened or not), so poisoning is ignored.
    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reads the facts of one DER-encoded certificate, or says why it does not parse.
pub fn facts(der: &[u8]) -> Result<CertFacts, String> {
    facts_of(der, &sha256(der))
}

fn facts_of(der: &[u8], digest: &[u8; 32]) -> Result<CertFacts, String> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("certificate does not parse: {e}"))?;
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns_names.push((*d).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        ip_addresses.push(ip);
                    }
                }
                _ => {}
            }
        }
    }
    // Kept as long as a report holds them: no spare capacity (names are formatted piece by piece).
    dns_names.shrink_to_fit();
    ip_addresses.shrink_to_fit();
    let trimmed = |mut s: String| {
        s.shrink_to_fit();
        s
    };
    let validity = cert.validity();
    Ok(CertFacts {
        subject: cert.subject().to_string().into(),
        issuer: cert.issuer().to_string().into(),
        dns_names,
        ip_addresses,
        serial: trimmed(cert.raw_serial_as_string()),
        fingerprint_sha256: Fingerprint(*digest),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
    })
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn sha256(der: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for input in [
            &b""[..],
            b"\x30",
            b"\x30\x82\xff\xff",
            b"not a certificate at all",
        ] {
            assert!(facts(input).is_err(), "{input:?}");
        }
    }

    #[test]
    fn shared_facts_are_kept_once_and_dead_ones_are_swept() {
        let ders: Vec<Vec<u8>> = (0..100)
            .map(|i| {
                let c = rcgen::generate_simple_self_signed(vec![format!("n{i}.test")]).unwrap();
                c.cert.der().to_vec()
            })
            .collect();
        let shared = SharedFacts::default();
        let a = shared.facts(&ders[0]).unwrap();
        let b = shared.facts(&ders[0]).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "one copy per certificate");
        assert_eq!(*a, facts(&ders[0]).unwrap());
        // Held ones stay; the others are swept, so the map never holds more than twice the live ones (or 64).
        let held: Vec<_> = ders[..10]
            .iter()
            .map(|d| shared.facts(d).unwrap())
            .collect();
        for der in &ders[10..] {
            drop(shared.facts(der).unwrap());
            assert!(shared.len() <= 64, "{}", shared.len());
        }
        for (der, facts) in ders[..10].iter().zip(&held) {
            assert!(Arc::ptr_eq(&shared.facts(der).unwrap(), facts));
        }
        assert!(shared.facts(b"garbage").is_err());
    }

    #[test]
    fn sha256_is_lower_hex() {
        assert_eq!(
            Fingerprint(sha256(b"")).to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
