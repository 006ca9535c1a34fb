//! TLS: one rustls client (ring provider) that records the presented chain, and a judge that rules on it as a
//! federating peer would.
//!
//! The handshake itself accepts any chain but still makes the server prove it holds the leaf's key (the
//! handshake signature is verified). After the handshake, [`TlsClient::judge`] decides chain trust, name
//! and validity window separately, so expiry is known even for an untrusted certificate and every problem
//! gets its own closed [`Reason`]. Session resumption is off: a resumed handshake presents no certificate.
//! This module opens no sockets; callers hand it a connected `TcpStream`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, SignatureVerificationAlgorithm, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::TrustStore;
use crate::probe::connect::signatures::{Remembered, remembered};
use crate::report::{CertFacts, CertReport, Failure, Reason, Stage, TlsFacts};

/// The client side of every TLS connection a probe makes. Built once per config.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    roots: Arc<RootCertStore>,
    /// The provider's algorithms, each checking chain signatures through one memo (see `signatures.rs`). The
    /// handshake signature never goes through them.
    chain_algorithms: Arc<[Remembered]>,
    /// Intermediate certificates' facts, kept once however many servers present them.
    shared: Arc<crate::probe::connect::cert::SharedFacts>,
}

/// What a completed handshake yields: the stream for HTTP, the negotiated parameters and the chain.
pub struct Handshake {
    pub stream: TlsStream<TcpStream>,
    pub facts: TlsFacts,
    pub chain: Vec<CertificateDer<'static>>,
}

impl TlsClient {
    /// A client that trusts `roots`.
    #[must_use]
    pub fn new(roots: RootCertStore) -> Self {
        let mut provider = rustls::crypto::ring::default_provider();
        // AES-128-GCM with SHA-256 offered first, as Go's crypto/tls and browsers order them (rustls offers
        // AES-256-GCM with SHA-384 first). Every suite rustls offers stays offered, and the certificate is judged
        // the same whichever is agreed; but SHA-384 runs in software here while SHA-256 has CPU instructions, and
        // a TLS 1.3 handshake hashes its transcript and derives its keys a few dozen times (3 % of a probe's CPU
        // went to SHA-512 blocks).
        provider.cipher_suites.sort_by_key(|suite| {
            !matches!(
                suite.suite(),
                rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
                    | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                    | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
            )
        });
        let provider = Arc::new(provider);
        let algorithms = provider.signature_verification_algorithms;
        let verifier = Arc::new(RecordingVerifier { algorithms });
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| {
                b.dangerous()
                    .with_custom_certificate_verifier(verifier)
                    .with_no_client_auth()
            })
            // Invariant: the ring provider supports the safe default protocol versions.
            .expect("ring supports TLS 1.2 and 1.3");
        // Every probe must see the certificate: no session IDs, no tickets.
        config.resumption = Resumption::disabled();
        // The follow-up GETs speak HTTP/1.1 over this very connection.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            connector: TlsConnector::from(Arc::new(config)),
            roots: Arc::new(roots),
            chain_algorithms: remembered(algorithms.all).into(),
            shared: Arc::default(),
        }
    }

    /// Runs the TLS handshake on `tcp` for `name` under `timeout`. `name` is a DNS name (sent as SNI) or an IP
    /// address (no SNI, as the spec requires: "SNI is not supported and should not be sent").
    pub async fn handshake(
        &self,
        tcp: TcpStream,
        name: &str,
        timeout: Duration,
    ) -> Result<Handshake, Failure> {
        let server_name = tls_name(name)?;
        let stream =
            match tokio::time::timeout(timeout, self.connector.connect(server_name, tcp)).await {
                Err(_) => {
                    return Err(Failure::new(
                        Stage::Tls,
                        Reason::TlsTimeout,
                        format!(
                            "TLS handshake did not finish within {}",
                            humantime::format_duration(timeout)
                        ),
                    ));
                }
                Ok(Err(e)) => {
                    let cause = e
                        .get_ref()
                        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                        .map_or_else(|| e.to_string(), ToString::to_string);
                    return Err(Failure::new(
                        Stage::Tls,
                        Reason::TlsHandshakeFailed,
                        format!("TLS handshake failed: {cause}"),
                    ));
                }
                Ok(Ok(stream)) => stream,
            };
        let (_, conn) = stream.get_ref();
        // The names are static: rustls negotiates only versions and suites it knows (and names).
        let facts = TlsFacts {
            version: conn
                .protocol_version()
                .map_or("", |v| v.as_str().unwrap_or("unknown")),
            cipher: conn
                .negotiated_cipher_suite()
                .map_or("", |s| s.suite().as_str().unwrap_or("unknown")),
        };
        let chain = conn
            .peer_certificates()
            .map(<[CertificateDer<'_>]>::to_vec)
            .unwrap_or_default();
        Ok(Handshake {
            stream,
            facts,
            chain,
        })
    }

    /// Judges a presented chain for `name` at `now`: chain trust, name and validity window, each separately.
    #[must_use]
    pub fn judge(&self, chain: &[CertificateDer<'_>], name: &str, now: SystemTime) -> CertReport {
        let mut failures = Vec::new();
        let mut facts: Vec<Arc<CertFacts>> = Vec::with_capacity(chain.len());
        let mut leaf_not_after = None;
        for (i, der) in chain.iter().enumerate() {
            // The leaf is the server's own; the rest are shared by every server of the same CA.
            let parsed = if i == 0 {
                crate::probe::connect::cert::facts(der).map(Arc::new)
            } else {
                self.shared.facts(der)
            };
            match parsed {
                Ok(f) => {
                    if i == 0 {
                        leaf_not_after = Some(f.not_after);
                    }
                    facts.push(f);
                }
                Err(e) => failures.push(cert_failure(
                    Reason::CertInvalid,
                    format!("certificate {i} of the chain: {e}"),
                )),
            }
        }
        share_issuer_names(&mut facts);
        let Some(leaf_der) = chain.first() else {
            failures.push(cert_failure(
                Reason::CertInvalid,
                "the server presented no certificate",
            ));
            return CertReport {
                chain: facts,
                failures,
                verified_not_after: None,
            };
        };
        let leaf = match ParsedCertificate::try_from(leaf_der) {
            Ok(leaf) => leaf,
            Err(e) => {
                failures.push(cert_failure(
                    Reason::CertInvalid,
                    format!("the leaf certificate is unusable: {e}"),
                ));
                return CertReport {
                    chain: facts,
                    failures,
                    verified_not_after: None,
                };
            }
        };

        // Chain and validity window. webpki checks the leaf's window before building the path, so an expired
        // leaf hides trust problems; judge the trust again at an instant inside the leaf's window to get both.
        let at = |t: SystemTime| {
            UnixTime::since_unix_epoch(t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default())
        };
        let verify = |t: UnixTime| {
            verify_server_cert_signed_by_trust_anchor(
                &leaf,
                &self.roots,
                &chain[1..],
                t,
                &self.chain_algorithms(),
            )
        };
        // The path webpki builds is what a verifier trusts: its earliest `notAfter` is the chain's expiry, so
        // an extra certificate the server still sends (an expired cross-sign) raises no false alarm.
        let mut verified_not_after = None;
        match self.verified_path_not_after(leaf_der, &chain[1..], at(now), leaf_not_after) {
            Ok(not_after) => verified_not_after = not_after,
            // The same verification through rustls, for its verdict (failures only: one path build on success).
            Err(()) => match verify(at(now)) {
                Ok(()) => {}
                Err(e) => {
                    let reason = classify(&e);
                    failures.push(cert_failure(reason, format!("{e}")));
                    if matches!(reason, Reason::CertExpired | Reason::CertNotYetValid)
                        && let Some(inside) =
                            facts.first().map(|f| f.not_before / 2 + f.not_after / 2)
                        && let Err(e) = verify(UnixTime::since_unix_epoch(Duration::from_secs(
                            inside.max(0) as u64,
                        )))
                    {
                        let trust = classify(&e);
                        if !matches!(trust, Reason::CertExpired | Reason::CertNotYetValid) {
                            failures.push(cert_failure(trust, format!("{e}")));
                        }
                    }
                }
            },
        }

        // Name: the server name or the delegated name, never an SRV target.
        match tls_name(name) {
            Ok(server_name) => {
                if let Err(e) = verify_server_name(&leaf, &server_name) {
                    failures.push(cert_failure(classify(&e), format!("{e}")));
                }
            }
            Err(f) => failures.push(f),
        }
        CertReport {
            chain: facts,
            failures,
            verified_not_after,
        }
    }

    /// The algorithms chain signatures are checked with, through the memo.
    fn chain_algorithms(&self) -> Vec<&dyn SignatureVerificationAlgorithm> {
        self.chain_algorithms
            .iter()
            .map(|a| a as &dyn SignatureVerificationAlgorithm)
            .collect()
    }

    /// Builds the path from `leaf` through `intermediates` to a trust anchor at `now`, as rustls does, and
    /// returns the earliest `notAfter` on it: the leaf and the intermediates the path uses. A trust anchor has
    /// no `notAfter` (the store holds a name and a key; webpki does not check a root's validity window), so it
    /// does not count. `Ok(None)` when the path verified but a certificate on it has no parsed facts.
    fn verified_path_not_after(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        leaf_not_after: Option<i64>,
    ) -> Result<Option<i64>, ()> {
        let end_entity = webpki::EndEntityCert::try_from(leaf).map_err(|_| ())?;
        let path = end_entity
            .verify_for_usage(
                &self.chain_algorithms(),
                &self.roots.roots,
                intermediates,
                now,
                webpki::KeyUsage::server_auth(),
                None,
                None,
            )
            .map_err(|_| ())?;
        let Some(mut earliest) = leaf_not_after else {
            return Ok(None);
        };
        for cert in path.intermediate_certificates() {
            // Already parsed for the chain: a lookup in the shared map.
            match self.shared.facts(&cert.der()) {
                Ok(f) => earliest = earliest.min(f.not_after),
                Err(_) => return Ok(None),
            }
        }
        Ok(Some(earliest))
    }
}

/// Loads the trust roots: the system store (else webpki-roots when it is empty) or webpki-roots, plus
/// `ca_files`. Errors name the file.
pub fn load_roots(store: TrustStore, ca_files: &[PathBuf]) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    if store == TrustStore::System {
        let native = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            tracing::warn!(
                errors = native.errors.len(),
                "the system trust store is empty; using the webpki roots"
            );
        }
    }
    if roots.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    for path in ca_files {
        add_pem_file(&mut roots, path)?;
    }
    Ok(roots)
}

fn add_pem_file(roots: &mut RootCertStore, path: &Path) -> anyhow::Result<()> {
    let mut added = 0;
    for cert in CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
    {
        let cert = cert.map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| anyhow::anyhow!("{}: not a usable CA certificate: {e}", path.display()))?;
        added += 1;
    }
    anyhow::ensure!(added > 0, "{}: no PEM certificate found", path.display());
    Ok(())
}

/// The rustls name for `name`: an IP address (no SNI) or a DNS name.
fn tls_name(name: &str) -> Result<ServerName<'static>, Failure> {
    ServerName::try_from(name.to_owned()).map_err(|e| {
        Failure::new(
            Stage::Tls,
            Reason::TlsHandshakeFailed,
            format!("{name:?} cannot be used as a TLS name: {e}"),
        )
    })
}

fn cert_failure(reason: Reason, message: impl Into<String>) -> Failure {
    Failure::new(Stage::Certificate, reason, message)
}

/// Maps a webpki verdict onto the closed certificate reasons (the `*Context` variants included).
fn classify(e: &rustls::Error) -> Reason {
    match e {
        rustls::Error::InvalidCertificate(ce) => match ce {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                Reason::CertExpired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                Reason::CertNotYetValid
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                Reason::CertHostnameMismatch
            }
            // A chain that ends at no trusted root, or at an impostor root with the same name.
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                Reason::CertUnknownIssuer
            }
            _ => Reason::CertInvalid,
        },
        _ => Reason::CertInvalid,
    }
}

/// Accepts any chain during the handshake (it is judged afterwards) but verifies the handshake signatures,
/// so the server must hold the key of the certificate it presents.
#[derive(Debug)]
struct RecordingVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Each certificate names the next one of the chain as its issuer: a certificate not shared with other reports
/// (the leaf) points at the next one's own copy of that name, so a stored report does not hold it twice.
fn share_issuer_names(chain: &mut [Arc<CertFacts>]) {
    for i in 1..chain.len() {
        let (children, parents) = chain.split_at_mut(i);
        let parent = &parents[0];
        if let Some(child) = Arc::get_mut(&mut children[i - 1])
            && child.issuer == parent.subject
        {
            child.issuer = parent.subject.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> TlsClient {
        TlsClient::new(RootCertStore::empty())
    }

    fn reasons(report: &CertReport) -> Vec<Reason> {
        report.failures.iter().map(|f| f.reason).collect()
    }

    #[test]
    fn no_certificate_is_invalid() {
        let report = client().judge(&[], "example.org", SystemTime::now());
        assert_eq!(reasons(&report), [Reason::CertInvalid]);
        assert!(!report.valid());
    }

    #[test]
    fn garbage_der_is_invalid_not_a_panic() {
        let junk = CertificateDer::from(b"\x30\x03\x02\x01\x00 definitely not x509".to_vec());
        let report = client().judge(&[junk], "example.org", SystemTime::now());
        assert!(
            reasons(&report).iter().all(|r| *r == Reason::CertInvalid),
            "{report:?}"
        );
        assert!(!report.failures.is_empty());
        assert!(report.chain.is_empty());
    }

    #[test]
    fn webpki_verdicts_map_to_closed_reasons() {
        use rustls::Error::InvalidCertificate as I;
        let cases = [
            (I(CertificateError::Expired), Reason::CertExpired),
            (I(CertificateError::NotValidYet), Reason::CertNotYetValid),
            (
                I(CertificateError::NotValidForName),
                Reason::CertHostnameMismatch,
            ),
            (
                I(CertificateError::UnknownIssuer),
                Reason::CertUnknownIssuer,
            ),
            (I(CertificateError::BadSignature), Reason::CertUnknownIssuer),
            (I(CertificateError::InvalidPurpose), Reason::CertInvalid),
            (I(CertificateError::BadEncoding), Reason::CertInvalid),
            (rustls::Error::General("x".into()), Reason::CertInvalid),
        ];
        for (error, want) in cases {
            assert_eq!(classify(&error), want, "{error:?}");
        }
    }

    /// A CA whose intermediate is also cross-signed by a retired root and expired; returns the trusting
    /// client, the chain [leaf, intermediate, expired cross-sign] and the leaf's `notAfter`.
    fn chain_with_expired_cross_sign() -> (TlsClient, Vec<CertificateDer<'static>>, i64) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let now = time::OffsetDateTime::now_utc();
        let days = time::Duration::days;
        let ca = |cn: &str, from, until| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            (p.not_before, p.not_after) = (from, until);
            p
        };
        let (root_key, old_key, int_key, leaf_key) = (
            KeyPair::generate().unwrap(),
            KeyPair::generate().unwrap(),
            KeyPair::generate().unwrap(),
            KeyPair::generate().unwrap(),
        );
        let root_params = ca("root", now - days(10), now + days(3650));
        let root = root_params.self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(root_params, root_key);
        let old_issuer = Issuer::new(ca("retired", now - days(900), now + days(10)), old_key);
        let int_params = ca("intermediate", now - days(10), now + days(3650));
        let intermediate = int_params.signed_by(&int_key, &root_issuer).unwrap();
        let mut cross_params = int_params.clone();
        (cross_params.not_before, cross_params.not_after) = (now - days(800), now - days(1));
        let cross = cross_params.signed_by(&int_key, &old_issuer).unwrap();
        let int_issuer = Issuer::new(int_params, int_key);
        let mut leaf_params = CertificateParams::new(vec!["example.org".to_owned()]).unwrap();
        (leaf_params.not_before, leaf_params.not_after) = (now - days(1), now + days(60));
        let leaf = leaf_params.signed_by(&leaf_key, &int_issuer).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(root.der().clone()).unwrap();
        let chain = vec![
            leaf.der().clone(),
            intermediate.der().clone(),
            cross.der().clone(),
        ];
        (
            TlsClient::new(roots),
            chain,
            leaf_params.not_after.unix_timestamp(),
        )
    }

    #[test]
    fn chain_expiry_is_the_verified_paths_not_an_extra_certificates() {
        let (client, chain, leaf_not_after) = chain_with_expired_cross_sign();
        let report = client.judge(&chain, "example.org", SystemTime::now());
        assert!(report.valid(), "{report:?}");
        assert_eq!(report.verified_not_after, Some(leaf_not_after));
        assert_eq!(report.chain_not_after(), Some(leaf_not_after));
        assert!(report.presented_not_after() < Some(leaf_not_after));
        // The leaf's issuer is the intermediate's own copy of its subject.
        let [leaf, intermediate, ..] = report.chain.as_slice() else {
            panic!("a chain of three: {report:?}");
        };
        assert!(crate::report::SharedStr::ptr_eq(
            &leaf.issuer,
            &intermediate.subject
        ));
        // Untrusted: no verified path, so the presented chain's earliest counts (the expired extra one).
        let untrusted = client_with_no_roots_judges(&chain);
        assert_eq!(untrusted.verified_not_after, None);
        assert_eq!(untrusted.chain_not_after(), untrusted.presented_not_after());
        assert!(!untrusted.valid());
    }

    /// The chain signatures that verified are remembered, and a signature over other bytes is still refused:
    /// the intermediate's or the leaf's, each with its last byte (in its signature) changed, fails after the
    /// good chain was judged.
    #[test]
    fn remembered_signatures_do_not_pass_a_tampered_chain() {
        let (client, chain, _) = chain_with_expired_cross_sign();
        let good = &chain[..2];
        for _ in 0..2 {
            assert!(client.judge(good, "example.org", SystemTime::now()).valid());
        }
        let memo = crate::probe::connect::signatures::memo_of(&client.chain_algorithms);
        assert!(memo.is_some_and(|m| !m.is_empty()));
        for tampered in [0, 1] {
            let mut chain = good.to_vec();
            let mut der = chain[tampered].to_vec();
            if let Some(last) = der.last_mut() {
                *last ^= 1;
            }
            chain[tampered] = CertificateDer::from(der);
            let report = client.judge(&chain, "example.org", SystemTime::now());
            assert!(!report.valid(), "certificate {tampered}: {report:?}");
            assert!(
                reasons(&report).contains(&Reason::CertUnknownIssuer),
                "certificate {tampered}: {report:?}"
            );
        }
        assert!(client.judge(good, "example.org", SystemTime::now()).valid());
    }

    fn client_with_no_roots_judges(chain: &[CertificateDer<'_>]) -> CertReport {
        client().judge(chain, "example.org", SystemTime::now())
    }

    #[test]
    fn names_that_are_not_tls_names_fail_cleanly() {
        let f = tls_name("bad name").unwrap_err();
        assert_eq!(
            (f.stage, f.reason),
            (Stage::Tls, Reason::TlsHandshakeFailed)
        );
        assert!(tls_name("::1").is_ok());
        assert!(tls_name("example.org").is_ok());
    }
}
