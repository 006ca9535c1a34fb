//! TLS for the listener (`tls_server_config`): the rustls server config built from the exporter-toolkit keys
//! (versions, client certificates), where each PEM comes from (a file or inline text), and the certificate
//! reloader that re-reads changed files.
//!
//! It does not accept connections or run handshakes (`serve/listener.rs` does) and reads no other part of the
//! web config.

use std::fmt;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::SupportedProtocolVersion;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::config::error::ConfigError;
use crate::serve::web::set;

/// How often, at most, the certificate and key files are checked for changes.
const CERT_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// The section every key here is in, for errors.
const KEY: &str = "tls_server_config";

/// `tls_server_config` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    cert: Option<String>,
    key: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    client_ca: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    prefer_server_cipher_suites: Option<bool>,
    // exporter-toolkit keys this exporter does not implement: named in an error instead of ignored.
    cipher_suites: Option<IgnoredAny>,
    curve_preferences: Option<IgnoredAny>,
    client_allowed_sans: Option<IgnoredAny>,
}

/// The rustls server config for `tls_server_config`; relative paths are resolved against `base`. The checks run
/// in a fixed order (unsupported keys, certificate and key, versions, client certificates), so a file with
/// several mistakes always reports the same one.
pub(super) fn server_config(
    raw: RawTls,
    base: &Path,
) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    refuse_unimplemented(&raw)?;
    let cert = pem_source(set(raw.cert_file), set(raw.cert), "cert_file", "cert", base)?
        .ok_or_else(|| {
            ConfigError::at(
                format!("{KEY}.cert_file"),
                "missing (or give `cert` inline)",
            )
        })?;
    let key =
        pem_source(set(raw.key_file), set(raw.key), "key_file", "key", base)?.ok_or_else(|| {
            ConfigError::at(format!("{KEY}.key_file"), "missing (or give `key` inline)")
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certified = load_certified_key(&cert, &key, &provider)?;

    let versions = protocol_versions(
        set(raw.min_version).as_deref(),
        set(raw.max_version).as_deref(),
    )?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| ConfigError::at(format!("{KEY}.min_version"), e.to_string()))?;

    let client_ca = pem_source(
        set(raw.client_ca_file),
        set(raw.client_ca),
        "client_ca_file",
        "client_ca",
        base,
    )?;
    let client_auth = ClientAuth::parse(set(raw.client_auth_type).as_deref())?;
    let builder = match client_verifier(client_auth, client_ca, &provider)? {
        None => builder.with_no_client_auth(),
        Some(verifier) => builder.with_client_cert_verifier(verifier),
    };

    let mut config =
        builder.with_cert_resolver(Arc::new(CertReloader::new(cert, key, provider, certified)));
    // Go ignores this field since 1.18; rustls honours it. exporter-toolkit's default is true.
    config.ignore_client_order = raw.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Refuses, naming the key, the exporter-toolkit keys this exporter does not implement.
fn refuse_unimplemented(raw: &RawTls) -> Result<(), ConfigError> {
    for (name, value) in [
        ("cipher_suites", raw.cipher_suites.is_some()),
        ("curve_preferences", raw.curve_preferences.is_some()),
        ("client_allowed_sans", raw.client_allowed_sans.is_some()),
    ] {
        if value {
            return Err(ConfigError::at(
                format!("{KEY}.{name}"),
                "is not supported by matrix-federation-exporter (rustls picks safe defaults); remove it",
            ));
        }
    }
    Ok(())
}

/// The versions from `min_version` (default TLS12) to `max_version` (default TLS13).
fn protocol_versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Vec<&'static SupportedProtocolVersion>, ConfigError> {
    let min = tls_version("min_version", min, &rustls::version::TLS12)?;
    let max = tls_version("max_version", max, &rustls::version::TLS13)?;
    let versions: Vec<&'static SupportedProtocolVersion> =
        [&rustls::version::TLS12, &rustls::version::TLS13]
            .into_iter()
            .filter(|v| rank(v) >= rank(min) && rank(v) <= rank(max))
            .collect();
    if versions.is_empty() {
        return Err(ConfigError::at(
            format!("{KEY}.min_version"),
            "is greater than max_version",
        ));
    }
    Ok(versions)
}

/// `client_auth_type`: whether a client must, may or need not present a certificate. The Go values that accept a
/// certificate without verifying it are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientAuth {
    /// `NoClientCert` (the default).
    None,
    /// `VerifyClientCertIfGiven`.
    IfGiven,
    /// `RequireAndVerifyClientCert`.
    Required,
}

impl ClientAuth {
    fn parse(value: Option<&str>) -> Result<Self, ConfigError> {
        let key = || format!("{KEY}.client_auth_type");
        match value.unwrap_or("NoClientCert") {
            "NoClientCert" => Ok(Self::None),
            "VerifyClientCertIfGiven" => Ok(Self::IfGiven),
            "RequireAndVerifyClientCert" => Ok(Self::Required),
            unverified @ ("RequestClientCert" | "RequireAnyClientCert" | "RequireClientCert") => {
                Err(ConfigError::at(
                    key(),
                    format!(
                        "{unverified:?} accepts client certificates without verifying them and is not supported; use \
                         RequireAndVerifyClientCert (or VerifyClientCertIfGiven) with client_ca_file"
                    ),
                ))
            }
            other => Err(ConfigError::at(
                key(),
                format!(
                    "unknown value {other:?}; expected NoClientCert, VerifyClientCertIfGiven or \
                     RequireAndVerifyClientCert"
                ),
            )),
        }
    }

    /// The value as written in the file.
    fn name(self) -> &'static str {
        match self {
            Self::None => "NoClientCert",
            Self::IfGiven => "VerifyClientCertIfGiven",
            Self::Required => "RequireAndVerifyClientCert",
        }
    }
}

/// The verifier of client certificates for `client_auth`, trusting the CA in `client_ca`; `None` when clients
/// present none. The two keys must agree: a CA without verification, or verification without a CA, is refused.
fn client_verifier(
    client_auth: ClientAuth,
    client_ca: Option<PemSource>,
    provider: &Arc<CryptoProvider>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, ConfigError> {
    let source = match (client_auth, client_ca) {
        (ClientAuth::None, None) => return Ok(None),
        (ClientAuth::None, Some(source)) => {
            return Err(ConfigError::at(
                source.key_path(),
                "is set but client_auth_type is NoClientCert; set client_auth_type: RequireAndVerifyClientCert",
            ));
        }
        (_, None) => {
            return Err(ConfigError::at(
                format!("{KEY}.client_ca_file"),
                format!(
                    "missing: client_auth_type {} needs the CA that issues client certificates",
                    client_auth.name()
                ),
            ));
        }
        (_, Some(source)) => source,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certificates(&source)? {
        roots.add(cert).map_err(|e| {
            ConfigError::at(
                source.key_path(),
                format!("not a usable CA certificate: {e}"),
            )
        })?;
    }
    let mut verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    if client_auth == ClientAuth::IfGiven {
        verifier = verifier.allow_unauthenticated();
    }
    let verifier = verifier
        .build()
        .map_err(|e| ConfigError::at(source.key_path(), e.to_string()))?;
    Ok(Some(verifier))
}

/// Orders versions (TLS12 < TLS13).
fn rank(v: &SupportedProtocolVersion) -> u16 {
    u16::from(v.version)
}

/// `min_version` or `max_version` (`name`): TLS12 or TLS13, `default` when unset.
fn tls_version(
    name: &str,
    value: Option<&str>,
    default: &'static SupportedProtocolVersion,
) -> Result<&'static SupportedProtocolVersion, ConfigError> {
    match value {
        None => Ok(default),
        Some("TLS12") => Ok(&rustls::version::TLS12),
        Some("TLS13") => Ok(&rustls::version::TLS13),
        Some(v @ ("TLS10" | "TLS11")) => Err(ConfigError::at(
            format!("{KEY}.{name}"),
            format!("{v} is not supported (rustls speaks TLS12 and TLS13 only)"),
        )),
        Some(other) => Err(ConfigError::at(
            format!("{KEY}.{name}"),
            format!("unknown TLS version {other:?}; expected TLS12 or TLS13"),
        )),
    }
}

/// Where a PEM comes from: a file (re-read on change) or inline text. `key` is the config key, for errors.
#[derive(Clone, Debug)]
struct PemSource {
    key: &'static str,
    path: Option<PathBuf>,
    inline: Option<String>,
}

/// The PEM given by `file_key` (a path, relative to `base`) or by `inline_key` (the text); not both.
fn pem_source(
    file: Option<String>,
    inline: Option<String>,
    file_key: &'static str,
    inline_key: &'static str,
    base: &Path,
) -> Result<Option<PemSource>, ConfigError> {
    match (file, inline) {
        (Some(_), Some(_)) => Err(ConfigError::at(
            format!("{KEY}.{inline_key}"),
            format!("give either {file_key} or {inline_key}, not both"),
        )),
        (Some(file), None) => Ok(Some(PemSource {
            key: file_key,
            path: Some(base.join(file)),
            inline: None,
        })),
        (None, Some(text)) => Ok(Some(PemSource {
            key: inline_key,
            path: None,
            inline: Some(text),
        })),
        (None, None) => Ok(None),
    }
}

impl PemSource {
    fn key_path(&self) -> String {
        format!("{KEY}.{}", self.key)
    }

    fn bytes(&self) -> Result<Vec<u8>, ConfigError> {
        match (&self.path, &self.inline) {
            (Some(path), _) => std::fs::read(path).map_err(|e| {
                ConfigError::at(
                    self.key_path(),
                    format!("cannot read {:?}: {e}", path.display().to_string()),
                )
            }),
            (None, Some(text)) => Ok(text.as_bytes().to_vec()),
            (None, None) => Ok(Vec::new()),
        }
    }

    /// What changes when the file is replaced (in place, by rename, or by a Kubernetes symlink swap).
    fn stamp(&self) -> Option<(SystemTime, u64, u64)> {
        let meta = std::fs::metadata(self.path.as_ref()?).ok()?;
        Some((meta.modified().ok()?, meta.len(), meta.ino()))
    }
}

/// Every certificate in `source`; at least one.
fn read_certificates(source: &PemSource) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bytes = source.bytes()?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::at(source.key_path(), format!("invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(ConfigError::at(
            source.key_path(),
            "contains no PEM CERTIFICATE block",
        ));
    }
    Ok(certs)
}

/// The certificate chain and private key, parsed and checked to belong together.
fn load_certified_key(
    cert: &PemSource,
    key: &PemSource,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, ConfigError> {
    let chain = read_certificates(cert)?;
    let key_bytes = key.bytes()?;
    let private = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => ConfigError::at(
            key.key_path(),
            "contains no PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)",
        ),
        other => ConfigError::at(key.key_path(), format!("invalid PEM: {other}")),
    })?;
    let certified = CertifiedKey::from_der(chain, private, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => ConfigError::at(
            key.key_path(),
            format!("does not match the certificate in {}", cert.key),
        ),
        rustls::Error::InvalidCertificate(reason) => {
            ConfigError::at(cert.key_path(), format!("unusable certificate: {reason:?}"))
        }
        other => ConfigError::at(key.key_path(), format!("unusable private key: {other}")),
    })?;
    Ok(Arc::new(certified))
}

/// Serves the configured certificate, re-reading the files when they change.
struct CertReloader {
    cert: PemSource,
    key: PemSource,
    provider: Arc<CryptoProvider>,
    state: Mutex<ReloadState>,
}

struct ReloadState {
    current: Arc<CertifiedKey>,
    stamps: [Option<(SystemTime, u64, u64)>; 2],
    checked: Instant,
}

impl fmt::Debug for CertReloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertReloader")
            .field("cert", &self.cert.path)
            .field("key", &self.key.path)
            .finish_non_exhaustive()
    }
}

impl CertReloader {
    fn new(
        cert: PemSource,
        key: PemSource,
        provider: Arc<CryptoProvider>,
        current: Arc<CertifiedKey>,
    ) -> Self {
        let stamps = [cert.stamp(), key.stamp()];
        Self {
            cert,
            key,
            provider,
            state: Mutex::new(ReloadState {
                current,
                stamps,
                checked: Instant::now(),
            }),
        }
    }

    fn current(&self) -> Arc<CertifiedKey> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if (self.cert.path.is_some() || self.key.path.is_some())
            && state.checked.elapsed() >= CERT_CHECK_INTERVAL
        {
            state.checked = Instant::now();
            let stamps = [self.cert.stamp(), self.key.stamp()];
            if stamps != state.stamps {
                state.stamps = stamps;
                match load_certified_key(&self.cert, &self.key, &self.provider) {
                    Ok(certified) => {
                        tracing::info!("web config: reloaded the TLS certificate and key");
                        state.current = certified;
                    }
                    Err(e) => tracing::error!(
                        error = %e,
                        "web config: cannot reload the TLS certificate and key; still serving the previous ones"
                    ),
                }
            }
        }
        state.current.clone()
    }
}

impl ResolvesServerCert for CertReloader {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}
