//! `--web.config.file`: TLS and HTTP basic auth for the listener, in the Prometheus exporter-toolkit format, so
//! the file written for a Go exporter works here too.
//!
//! Supported keys (see the README, "Securing the listener"):
//!
//! - `tls_server_config`: `cert_file` + `key_file` (or inline `cert` + `key`), `client_auth_type`
//!   (`NoClientCert`, `VerifyClientCertIfGiven`, `RequireAndVerifyClientCert`) with `client_ca_file` (or inline
//!   `client_ca`), `min_version` / `max_version` (`TLS12`, `TLS13`) and `prefer_server_cipher_suites`.
//!   `cipher_suites`, `curve_preferences`, `client_allowed_sans` and the client auth types that skip verification
//!   are refused with an error naming the key.
//! - `basic_auth_users`: user name → bcrypt hash.
//! - `http_server_config`: `headers` (the exporter-toolkit set) and `http2` (accepted; we serve HTTP/1.1 only,
//!   which every client falls back to through ALPN).
//! - `rate_limit`: `interval` and `burst`, a token bucket over all requests (429 when empty).
//!
//! The file is validated once at startup: every error is one line naming the file, the key and the reason, and
//! the process exits 2. A file that enables neither TLS nor basic auth is refused: the flag must never quietly
//! leave the listener as open as it was without it. Certificate and key files are re-read when they change
//! (checked at most once a second, on a new connection), so certificate rotation needs no restart; a broken
//! new pair is logged and the previous one stays in use.

mod auth_pool;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use base64::Engine as _;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

use crate::config::error::{ConfigError, Place};
use crate::serve::web::auth_pool::{AuthPool, Busy};

/// Successful basic-auth verifications remembered, so bcrypt runs once per (user, password) and not per scrape.
pub const AUTH_CACHE_SIZE: usize = 100;
/// bcrypt checks that run at once (each on a blocking thread), so wrong passwords cannot eat every core.
pub const BCRYPT_WORKERS: usize = 1;
/// Uncached login attempts that may wait for a bcrypt worker; past this, the longest-waiting one is refused with
/// 429 (see `auth_pool` for why the oldest).
pub const BCRYPT_QUEUE: usize = 8;
/// bcrypt uses only the first 72 bytes of a password; longer ones are refused, as Go's bcrypt does.
const MAX_PASSWORD_BYTES: usize = 72;
/// How often, at most, the certificate and key files are checked for changes.
const CERT_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Headers `http_server_config.headers` may set, with their allowed values (empty: any value).
const EXTRA_HEADERS: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// A validated web config: what the listener needs, built once at startup.
#[derive(Clone)]
pub struct WebConfig {
    tls: Option<Arc<rustls::ServerConfig>>,
    guard: Arc<Guard>,
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("basic_auth_users", &self.basic_auth_users())
            .field("headers", &self.guard.headers.len())
            .field("rate_limit", &self.guard.rate_limit.is_some())
            .finish()
    }
}

impl WebConfig {
    /// Reads and validates a web config file: parses it, loads and matches the certificate and key, checks every
    /// bcrypt hash. Relative paths are resolved against the file's directory (as exporter-toolkit does).
    pub fn load(path: &Path) -> Result<WebConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::cannot_read(&e).in_file(path))?;
        let base = path.parent().unwrap_or(Path::new(""));
        parse(&text, base).map_err(|e| e.in_file(path))
    }

    /// Parses and validates YAML text; relative paths are resolved against `base`.
    pub fn from_yaml(text: &str, base: &Path) -> Result<WebConfig, ConfigError> {
        parse(text, base)
    }

    /// Whether the listener speaks TLS.
    #[must_use]
    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    /// The rustls server config, when TLS is configured.
    #[must_use]
    pub fn tls_server_config(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.tls.clone()
    }

    /// How many users may log in with basic auth (0: basic auth is off).
    #[must_use]
    pub fn basic_auth_users(&self) -> usize {
        self.guard.auth.as_ref().map_or(0, |a| a.users.len())
    }

    /// Logs what the config turns on (and warns when passwords would cross the network in clear text).
    pub fn log_in_force(&self) {
        let users = self.basic_auth_users();
        tracing::info!(
            tls = self.tls_enabled(),
            basic_auth_users = users,
            "web config in force"
        );
        if users > 0 && !self.tls_enabled() {
            tracing::warn!(
                "basic auth without tls_server_config: passwords cross the network in clear text"
            );
        }
    }

    /// `router` behind the rate limit, basic auth and extra headers of this config, for every route and the
    /// fallback alike.
    pub fn protect(&self, router: Router) -> Router {
        router.layer(middleware::from_fn_with_state(self.guard.clone(), guard))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The raw YAML shape

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    /// Present but empty is refused rather than read as "no TLS".
    #[serde(default, deserialize_with = "section")]
    tls_server_config: Section<RawTls>,
    #[serde(default)]
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
    #[serde(default)]
    rate_limit: Option<RawRateLimit>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    interval: Option<String>,
    burst: Option<u32>,
}

/// A mapping key that may be absent, present with an empty (null) value, or set.
#[derive(Debug, Default)]
enum Section<T> {
    #[default]
    Absent,
    Empty,
    Set(T),
}

fn section<'de, D, T>(d: D) -> Result<Section<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(match Option::<T>::deserialize(d)? {
        None => Section::Empty,
        Some(value) => Section::Set(value),
    })
}

/// `None` for a missing or empty string (exporter-toolkit treats `""` as unset).
fn set(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

fn parse(text: &str, base: &Path) -> Result<WebConfig, ConfigError> {
    let is_blank = text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    });
    let raw: RawWebConfig = if is_blank {
        RawWebConfig::default()
    } else {
        serde_saphyr::from_str(text).map_err(|e| ConfigError::yaml(&e))?
    };

    let tls = match raw.tls_server_config {
        Section::Absent => None,
        Section::Empty => {
            return Err(ConfigError::at(
                "tls_server_config",
                "is empty; set cert_file and key_file, or remove the key",
            ));
        }
        Section::Set(tls) => Some(tls_config(tls, base)?),
    };

    let users = raw.basic_auth_users.unwrap_or_default();
    let auth = if users.is_empty() {
        None
    } else {
        Some(BasicAuth::new(users)?)
    };

    if tls.is_none() && auth.is_none() {
        return Err(ConfigError::new(
            Place::None,
            "enables neither tls_server_config nor basic_auth_users; the listener would be as open as without \
             --web.config.file (drop the flag to serve plain HTTP)",
        ));
    }

    let http = raw.http_server_config.unwrap_or_default();
    // `http2` is accepted either way: we serve HTTP/1.1 only and advertise it with ALPN, so an HTTP/2-capable
    // client (Prometheus included) simply falls back, as it does for a Go exporter with `http2: false`.
    let _ = http.http2;
    let headers = extra_headers(http.headers.unwrap_or_default())?;

    let rate_limit = match raw.rate_limit {
        None => None,
        Some(r) => RateLimiter::from_raw(r)?,
    };

    Ok(WebConfig {
        tls,
        guard: Arc::new(Guard {
            auth,
            headers,
            rate_limit,
        }),
    })
}

// ---------------------------------------------------------------------------------------------------------------
// TLS

fn tls_config(raw: RawTls, base: &Path) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    const KEY: &str = "tls_server_config";
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

    let min = tls_version(
        "min_version",
        set(raw.min_version).as_deref(),
        &rustls::version::TLS12,
    )?;
    let max = tls_version(
        "max_version",
        set(raw.max_version).as_deref(),
        &rustls::version::TLS13,
    )?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
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
    let auth_type = set(raw.client_auth_type).unwrap_or_else(|| "NoClientCert".to_owned());
    let verify = match auth_type.as_str() {
        "NoClientCert" => None,
        "VerifyClientCertIfGiven" => Some(true),
        "RequireAndVerifyClientCert" => Some(false),
        "RequestClientCert" | "RequireAnyClientCert" | "RequireClientCert" => {
            return Err(ConfigError::at(
                format!("{KEY}.client_auth_type"),
                format!(
                    "{auth_type:?} accepts client certificates without verifying them and is not supported; use \
                     RequireAndVerifyClientCert (or VerifyClientCertIfGiven) with client_ca_file"
                ),
            ));
        }
        other => {
            return Err(ConfigError::at(
                format!("{KEY}.client_auth_type"),
                format!(
                    "unknown value {other:?}; expected NoClientCert, VerifyClientCertIfGiven or \
                     RequireAndVerifyClientCert"
                ),
            ));
        }
    };
    let builder = match (verify, client_ca) {
        (None, None) => builder.with_no_client_auth(),
        (None, Some(source)) => {
            return Err(ConfigError::at(
                format!("{KEY}.{}", source.key),
                "is set but client_auth_type is NoClientCert; set client_auth_type: RequireAndVerifyClientCert",
            ));
        }
        (Some(_), None) => {
            return Err(ConfigError::at(
                format!("{KEY}.client_ca_file"),
                format!(
                    "missing: client_auth_type {auth_type} needs the CA that issues client certificates"
                ),
            ));
        }
        (Some(optional), Some(source)) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certificates(&source)? {
                roots.add(cert).map_err(|e| {
                    ConfigError::at(
                        format!("{KEY}.{}", source.key),
                        format!("not a usable CA certificate: {e}"),
                    )
                })?;
            }
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            if optional {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .map_err(|e| ConfigError::at(format!("{KEY}.{}", source.key), e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };

    let mut config =
        builder.with_cert_resolver(Arc::new(CertReloader::new(cert, key, provider, certified)));
    // Go ignores this field since 1.18; rustls honours it. exporter-toolkit's default is true.
    config.ignore_client_order = raw.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn rank(v: &rustls::SupportedProtocolVersion) -> u16 {
    u16::from(v.version)
}

fn tls_version(
    name: &str,
    value: Option<&str>,
    default: &'static rustls::SupportedProtocolVersion,
) -> Result<&'static rustls::SupportedProtocolVersion, ConfigError> {
    match value {
        None => Ok(default),
        Some("TLS12") => Ok(&rustls::version::TLS12),
        Some("TLS13") => Ok(&rustls::version::TLS13),
        Some(v @ ("TLS10" | "TLS11")) => Err(ConfigError::at(
            format!("tls_server_config.{name}"),
            format!("{v} is not supported (rustls speaks TLS12 and TLS13 only)"),
        )),
        Some(other) => Err(ConfigError::at(
            format!("tls_server_config.{name}"),
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

fn pem_source(
    file: Option<String>,
    inline: Option<String>,
    file_key: &'static str,
    inline_key: &'static str,
    base: &Path,
) -> Result<Option<PemSource>, ConfigError> {
    match (file, inline) {
        (Some(_), Some(_)) => Err(ConfigError::at(
            format!("tls_server_config.{inline_key}"),
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
        format!("tls_server_config.{}", self.key)
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

// ---------------------------------------------------------------------------------------------------------------
// Basic auth, headers, rate limit

/// What runs in front of every route.
struct Guard {
    auth: Option<BasicAuth>,
    headers: Vec<(HeaderName, HeaderValue)>,
    rate_limit: Option<RateLimiter>,
}

async fn guard(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    if let Some(limiter) = &guard.rate_limit
        && !limiter.allow()
    {
        return (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n").into_response();
    }
    let verdict = match &guard.auth {
        Some(auth) => auth.check(request.headers().get(AUTHORIZATION)).await,
        None => Ok(true),
    };
    let mut response = match verdict {
        Ok(true) => next.run(request).await,
        Ok(false) => {
            let mut response = (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response();
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
            response
        }
        // Too many uncached attempts at once: this one was not checked (the same for any user name).
        Err(Busy) => {
            let mut response =
                (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n").into_response();
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    };
    for (name, value) in &guard.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

/// `basic_auth_users`, checked with bcrypt. Successful checks are cached under (user, SHA-256 of the password),
/// in a map of at most [`AUTH_CACHE_SIZE`] entries, so a scrape every 15 s does not cost a bcrypt run each time.
/// Failures are not cached. Uncached attempts go through a bounded pool: [`BCRYPT_WORKERS`] bcrypt runs at once,
/// [`BCRYPT_QUEUE`] waiting, and past that the longest-waiting attempt is refused (429), so a flood of wrong
/// passwords neither eats every core nor makes a real login wait behind it (issue 11).
struct BasicAuth {
    users: HashMap<String, String>,
    /// The hash compared against for an unknown user, so that timing does not reveal which users exist: the
    /// configured hash with the highest cost (the result is discarded). Unknown users also go through the pool
    /// like anyone else, so they are refused the same way under load.
    decoy: String,
    cache: Mutex<HashSet<(String, [u8; 32])>>,
    pool: AuthPool,
}

impl BasicAuth {
    fn new(users: BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut decoy: Option<(u32, String)> = None;
        for (user, hash) in &users {
            let key = || format!("basic_auth_users.{user}");
            if user.contains(':') {
                return Err(ConfigError::at(
                    key(),
                    "a user name cannot contain ':' (basic auth splits user and password at the first ':')",
                ));
            }
            // The hash is a secret: errors never quote it.
            let parts: bcrypt::HashParts = hash.parse().map_err(|e| {
                ConfigError::at(
                    key(),
                    format!(
                        "not a bcrypt hash ({}); generate one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`",
                        bcrypt_reason(&e)
                    ),
                )
            })?;
            let cost = parts.get_cost();
            if !(4..=31).contains(&cost) {
                return Err(ConfigError::at(
                    key(),
                    format!("bcrypt cost {cost} is outside 4 to 31"),
                ));
            }
            if decoy.as_ref().is_none_or(|(c, _)| cost > *c) {
                decoy = Some((cost, hash.clone()));
            }
        }
        Ok(Self {
            decoy: decoy.map(|(_, h)| h).unwrap_or_default(),
            users: users.into_iter().collect(),
            cache: Mutex::new(HashSet::new()),
            pool: AuthPool::new(BCRYPT_WORKERS, BCRYPT_QUEUE),
        })
    }

    /// Whether `authorization` holds the right `Basic` credentials of a configured user; [`Busy`] when the
    /// attempt needed bcrypt and the pool refused it.
    async fn check(&self, authorization: Option<&HeaderValue>) -> Result<bool, Busy> {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return Ok(false);
        };
        let digest: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, &password)
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes");
        let cache_key = (user, digest);
        if self.cache_lock().contains(&cache_key) {
            return Ok(true);
        }
        let (hash, known) = match self.users.get(&cache_key.0) {
            Some(hash) => (hash.clone(), true),
            None => (self.decoy.clone(), false),
        };
        let long = password.len() > MAX_PASSWORD_BYTES;
        let matches = self
            .pool
            .verify(move || {
                // Constant-time comparison of the recomputed hash inside the crate.
                let matches = bcrypt::verify(&password, &hash).unwrap_or(false);
                matches && !long
            })
            .await?;
        let ok = known && matches;
        if ok {
            self.remember(cache_key);
        }
        Ok(ok)
    }

    /// Caches a success, evicting an arbitrary entry when the cache is full.
    fn remember(&self, key: (String, [u8; 32])) {
        let mut cache = self.cache_lock();
        if cache.len() >= AUTH_CACHE_SIZE
            && !cache.contains(&key)
            && let Some(evict) = cache.iter().next().cloned()
        {
            // HashSet order is randomised per process, so this is not always the same victim.
            cache.remove(&evict);
        }
        cache.insert(key);
    }

    fn cache_lock(&self) -> std::sync::MutexGuard<'_, HashSet<(String, [u8; 32])>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn bcrypt_reason(e: &bcrypt::BcryptError) -> String {
    match e {
        bcrypt::BcryptError::InvalidHash(reason) => (*reason).to_owned(),
        other => other.to_string(),
    }
}

/// `Basic base64(user:password)` → (user, password). The scheme is case-insensitive (RFC 7617).
fn parse_basic(value: &HeaderValue) -> Option<(String, Vec<u8>)> {
    let value = value.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

fn extra_headers(
    raw: BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, ConfigError> {
    let mut headers = Vec::new();
    for (name, value) in raw {
        let key = || format!("http_server_config.headers.{name}");
        let Some((_, allowed)) = EXTRA_HEADERS.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = EXTRA_HEADERS.iter().map(|(n, _)| *n).collect();
            return Err(ConfigError::at(
                key(),
                format!(
                    "this header cannot be configured; expected one of {}",
                    names.join(", ")
                ),
            ));
        };
        if value.is_empty() {
            continue;
        }
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            return Err(ConfigError::at(
                key(),
                format!(
                    "invalid value {value:?}; expected one of {}",
                    allowed.join(", ")
                ),
            ));
        }
        let header_value = HeaderValue::from_str(&value)
            .map_err(|_| ConfigError::at(key(), format!("invalid header value {value:?}")))?;
        headers.push((
            HeaderName::from_bytes(name.as_bytes()).expect("listed header names are valid"),
            header_value,
        ));
    }
    Ok(headers)
}

/// A token bucket over all requests: one token every `interval`, at most `burst` saved up.
struct RateLimiter {
    interval: Duration,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    fn from_raw(raw: RawRateLimit) -> Result<Option<Self>, ConfigError> {
        let interval = match set(raw.interval) {
            None => Duration::ZERO,
            Some(text) => humantime::parse_duration(&text).map_err(|e| {
                ConfigError::at(
                    "rate_limit.interval",
                    format!("invalid duration {text:?}: {e}"),
                )
            })?,
        };
        if interval.is_zero() {
            return Ok(None);
        }
        let burst = raw.burst.unwrap_or(0);
        if burst == 0 {
            return Err(ConfigError::at(
                "rate_limit.burst",
                "must be at least 1 when rate_limit.interval is set (0 would refuse every request)",
            ));
        }
        Ok(Some(Self {
            interval,
            burst: f64::from(burst),
            state: Mutex::new((f64::from(burst), Instant::now())),
        }))
    }

    fn allow(&self) -> bool {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, last) = &mut *state;
        let now = Instant::now();
        let refill = now.duration_since(*last).as_secs_f64() / self.interval.as_secs_f64();
        *tokens = (*tokens + refill).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::web::auth_pool::Stats;

    #[test]
    fn basic_credentials_parse() {
        let header = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(
            parse_basic(&header("Basic YWxpY2U6czNjcjN0OndpdGg6Y29sb25z")),
            Some(("alice".to_owned(), b"s3cr3t:with:colons".to_vec()))
        );
        assert_eq!(
            parse_basic(&header("basic YWxpY2U6")),
            Some(("alice".to_owned(), Vec::new()))
        );
        for bad in [
            "Bearer YWxpY2U6eA==",
            "Basic",
            "Basic !!!",
            "Basic YWxpY2U=",
        ] {
            assert_eq!(parse_basic(&header(bad)), None, "{bad}");
        }
    }

    #[test]
    fn rate_limiter_refills() {
        let limiter = RateLimiter::from_raw(RawRateLimit {
            interval: Some("1h".to_owned()),
            burst: Some(2),
        })
        .unwrap()
        .unwrap();
        assert!(limiter.allow());
        assert!(limiter.allow());
        assert!(!limiter.allow());
        let disabled = RateLimiter::from_raw(RawRateLimit {
            interval: Some("0".to_owned()),
            burst: None,
        })
        .unwrap();
        assert!(disabled.is_none());
    }

    #[tokio::test]
    async fn the_auth_cache_is_bounded() {
        let hash = bcrypt::hash_with_salt("pw", 4, [7; 16])
            .unwrap()
            .to_string();
        let auth = BasicAuth::new(BTreeMap::from([("u".to_owned(), hash)])).unwrap();
        let header = |pw: &str| {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("u:{pw}"));
            HeaderValue::from_str(&format!("Basic {token}")).unwrap()
        };
        assert_eq!(auth.check(Some(&header("pw"))).await, Ok(true));
        assert_eq!(auth.check(Some(&header("wrong"))).await, Ok(false));
        assert_eq!(auth.cache_lock().len(), 1, "only successes are cached");
        assert_eq!(auth.check(Some(&header("pw"))).await, Ok(true));
        assert_eq!(
            auth.pool.stats().started,
            2,
            "a cached success runs no bcrypt"
        );
        for i in 0..(AUTH_CACHE_SIZE * 2) {
            auth.remember((format!("user{i}"), [0; 32]));
            assert!(auth.cache_lock().len() <= AUTH_CACHE_SIZE);
        }
        assert_eq!(auth.cache_lock().len(), AUTH_CACHE_SIZE);
        assert_eq!(auth.check(Some(&header("pw"))).await, Ok(true));
        assert!(auth.cache_lock().len() <= AUTH_CACHE_SIZE);
    }

    fn test_app() -> Router {
        Router::new().route(
            "/metrics",
            axum::routing::get(|| async { "some_metric 1\n" }),
        )
    }

    fn basic(user: &str, password: &str) -> String {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {token}")
    }

    fn pool(web: &WebConfig) -> &AuthPool {
        &web.guard.auth.as_ref().unwrap().pool
    }

    /// Status, headers and body of `GET /metrics` with `authorization`.
    async fn get(
        router: Router,
        authorization: String,
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        use tower::ServiceExt as _;
        let request = Request::get("/metrics")
            .header(AUTHORIZATION, authorization)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, 1024).await.unwrap();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    /// The rate limit runs before basic auth: past the burst, a flood of wrong passwords (known and unknown users)
    /// gets 429 and costs no bcrypt run.
    #[tokio::test]
    async fn the_rate_limit_refuses_before_bcrypt_runs() {
        let web = WebConfig::from_yaml(
            &format!(
                "basic_auth_users:\n  alice: '{}'\nrate_limit:\n  interval: 1h\n  burst: 3\n",
                bcrypt::hash("pw", 4).unwrap()
            ),
            Path::new(""),
        )
        .unwrap();
        let router = web.protect(test_app());
        let mut statuses = Vec::new();
        for i in 0..20 {
            let user = if i % 2 == 0 { "alice" } else { "mallory" };
            let (status, _, _) = get(router.clone(), basic(user, &format!("wrong{i}"))).await;
            statuses.push(status.as_u16());
        }
        assert_eq!(statuses[..3], [401; 3]);
        assert_eq!(statuses[3..], [429; 17]);
        // Only the three let through ran bcrypt, and the pool refused none: the 429s are the rate limit's.
        assert_eq!(
            pool(&web).stats(),
            Stats {
                started: 3,
                refused: 0
            }
        );
    }

    /// With every worker busy and the queue full, a wrong password and an unknown user are refused alike (429,
    /// `Retry-After: 1`, the configured headers, no bcrypt run): the answer under load reveals no user names.
    #[tokio::test]
    async fn under_load_unknown_users_and_wrong_passwords_are_refused_alike() {
        let web = WebConfig::from_yaml(
            &format!(
                "basic_auth_users:\n  alice: '{}'\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n",
                bcrypt::hash("pw", 4).unwrap()
            ),
            Path::new(""),
        )
        .unwrap();
        let router = web.protect(test_app());
        let busy: Vec<_> = (0..BCRYPT_WORKERS).map(|_| pool(&web).occupy()).collect();
        let attempts = [basic("alice", "wrong"), basic("mallory", "pw")]
            .map(|authorization| tokio::spawn(get(router.clone(), authorization)));
        for _ in 0..1000 {
            if pool(&web).waiting() == attempts.len() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(pool(&web).waiting(), attempts.len(), "both attempts queued");
        // Newer attempts fill the queue and push both out.
        let newer: Vec<_> = (0..BCRYPT_QUEUE).map(|_| pool(&web).occupy()).collect();

        let mut answers = Vec::new();
        for attempt in attempts {
            answers.push(attempt.await.unwrap());
        }
        let (status, headers, body) = &answers[0];
        assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[RETRY_AFTER], "1");
        assert_eq!(headers["x-frame-options"], "deny");
        assert!(!headers.contains_key(WWW_AUTHENTICATE));
        assert_eq!(body, "Too Many Requests\n");
        assert_eq!(
            answers[0], answers[1],
            "the unknown user's answer is the same"
        );
        assert_eq!(
            pool(&web).stats(),
            Stats {
                started: 0,
                refused: 2
            }
        );
        drop((busy, newer));
    }
}
