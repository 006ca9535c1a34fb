//! Test PKI: per-test root + intermediate CAs, leaves with chosen validity windows, self-signed leaves.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;

/// The validity window of a leaf, relative to the real current time.
#[derive(Clone, Copy, Debug)]
pub enum Validity {
    /// From 1 day ago to 90 days from now.
    Valid,
    /// From 91 days ago to yesterday.
    Expired,
    /// From 10 days from now to 100 days from now.
    NotYetValid,
    /// From 30 days ago to now + the duration.
    ExpiresIn(Duration),
}

impl Validity {
    fn window(self) -> (OffsetDateTime, OffsetDateTime) {
        let now = OffsetDateTime::now_utc();
        let days = time::Duration::days;
        match self {
            Self::Valid => (now - days(1), now + days(90)),
            Self::Expired => (now - days(91), now - days(1)),
            Self::NotYetValid => (now + days(10), now + days(100)),
            Self::ExpiresIn(d) => (
                now - days(30),
                now + time::Duration::try_from(d).expect("ExpiresIn duration fits time::Duration"),
            ),
        }
    }
}

/// A certificate chain (leaf first) and the leaf's private key.
pub struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Leaf {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl std::fmt::Debug for Leaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leaf")
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl Leaf {
    /// A rustls server config (ring provider, safe default versions, ALPN `http/1.1`) serving this chain.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_single_cert(self.chain.clone(), self.key.clone_key())
        .expect("leaf key matches leaf certificate");
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    }
}

/// A root CA and an intermediate CA signed by it. Every instance has distinct distinguished names.
pub struct TestCa {
    root: CertificateDer<'static>,
    root_pem: String,
    intermediate: CertificateDer<'static>,
    /// The intermediate's name and key cross-signed by a retired root nobody trusts, expired yesterday.
    expired_cross_sign: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    label: String,
}

/// Makes DNs unique within the process even when two CAs share a label.
static CA_SERIAL: AtomicUsize = AtomicUsize::new(0);

impl TestCa {
    pub fn new(label: &str) -> Self {
        let n = CA_SERIAL.fetch_add(1, Ordering::Relaxed);
        let now = OffsetDateTime::now_utc();

        let root_key = KeyPair::generate().expect("generate root key");
        let root_params = ca_params(&format!("MFE Test Root CA {label} #{n}"), label, now, None);
        let root = root_params
            .self_signed(&root_key)
            .expect("self-sign root CA");
        let root_issuer = Issuer::new(root_params, root_key);

        let int_key = KeyPair::generate().expect("generate intermediate key");
        let int_params = ca_params(
            &format!("MFE Test Intermediate CA {label} #{n}"),
            label,
            now,
            Some(0),
        );
        let intermediate = int_params
            .signed_by(&int_key, &root_issuer)
            .expect("sign intermediate CA");

        // A cross-sign of the same intermediate (same name, same key) by a retired root, expired: servers
        // still send such certificates after a CA's old root is gone (blackbox_exporter #340).
        let old_key = KeyPair::generate().expect("generate retired root key");
        let old_params = ca_params(
            &format!("MFE Retired Root CA {label} #{n}"),
            label,
            now,
            None,
        );
        let old_issuer = Issuer::new(old_params, old_key);
        let mut cross_params = int_params.clone();
        cross_params.not_before = now - time::Duration::days(3650);
        cross_params.not_after = now - time::Duration::days(1);
        let expired_cross_sign = cross_params
            .signed_by(&int_key, &old_issuer)
            .expect("cross-sign intermediate CA");

        Self {
            root: root.der().clone(),
            root_pem: root.pem(),
            intermediate: intermediate.der().clone(),
            expired_cross_sign: expired_cross_sign.der().clone(),
            issuer: Issuer::new(int_params, int_key),
            label: label.to_owned(),
        }
    }

    pub fn root_der(&self) -> CertificateDer<'static> {
        self.root.clone()
    }

    pub fn root_pem(&self) -> String {
        self.root_pem.clone()
    }

    pub fn intermediate_der(&self) -> CertificateDer<'static> {
        self.intermediate.clone()
    }

    /// A root store holding only this CA's root.
    pub fn root_store(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.root_der())
            .expect("test root is a valid trust anchor");
        roots
    }

    /// Writes the root as PEM to `dir/<label>-root.pem` and returns that path.
    pub fn write_root_pem(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("{}-root.pem", self.label));
        std::fs::write(&path, &self.root_pem).expect("write root PEM");
        path
    }

    /// A leaf issued by the intermediate; chain = [leaf, intermediate].
    pub fn leaf(&self, names: &[&str], validity: Validity) -> Leaf {
        let mut leaf = self.leaf_without_intermediate(names, validity);
        leaf.chain.push(self.intermediate.clone());
        leaf
    }

    /// A leaf issued by the intermediate; chain = [leaf, intermediate, the intermediate's expired cross-sign by
    /// a retired root]: the chain verifies through the intermediate, the extra certificate is never used.
    pub fn leaf_with_expired_cross_sign(&self, names: &[&str], validity: Validity) -> Leaf {
        let mut leaf = self.leaf(names, validity);
        leaf.chain.push(self.expired_cross_sign.clone());
        leaf
    }

    /// A leaf issued by the intermediate; chain = [leaf] only (the "incomplete chain" case).
    pub fn leaf_without_intermediate(&self, names: &[&str], validity: Validity) -> Leaf {
        let key = KeyPair::generate().expect("generate leaf key");
        let cert = leaf_params(names, validity)
            .signed_by(&key, &self.issuer)
            .expect("sign leaf");
        Leaf {
            chain: vec![cert.der().clone()],
            key: private_key(&key),
        }
    }
}

/// A self-signed (non-CA) leaf; chain = [leaf].
pub fn self_signed(names: &[&str], validity: Validity) -> Leaf {
    let key = KeyPair::generate().expect("generate self-signed key");
    let cert = leaf_params(names, validity)
        .self_signed(&key)
        .expect("self-sign leaf");
    Leaf {
        chain: vec![cert.der().clone()],
        key: private_key(&key),
    }
}

fn ca_params(
    cn: &str,
    label: &str,
    now: OffsetDateTime,
    path_len: Option<u8>,
) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::OrganizationName,
        format!("matrix-federation-exporter tests ({label})"),
    );
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(path_len.map_or(
        BasicConstraints::Unconstrained,
        BasicConstraints::Constrained,
    ));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = now - time::Duration::days(365);
    p.not_after = now + time::Duration::days(3650);
    p
}

fn leaf_params(names: &[&str], validity: Validity) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName((*n).try_into().expect("DNS name is IA5")),
        })
        .collect();
    let mut dn = DistinguishedName::new();
    if let Some(first) = names.first() {
        dn.push(DnType::CommonName, *first);
    }
    p.distinguished_name = dn;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    (p.not_before, p.not_after) = validity.window();
    p
}

fn private_key(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
}
