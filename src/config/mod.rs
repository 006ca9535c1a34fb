//! Configuration: the typed, validated [`Config`] and its parts with their defaults, and [`Source`], where a
//! config comes from (the file plus the command line).
//!
//! It does not read YAML or judge values (`config/raw.rs` is the one gate from the raw YAML shape to a `Config`),
//! does not shape errors (`config/error.rs`), and does no network I/O: building resolvers and TLS roots from a
//! `Config` happens in `probe/env.rs`.

pub mod error;
pub mod homeservers;
pub mod notary;
mod raw;
pub mod server_name;
pub mod shard;
pub mod targets;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::config::error::ConfigError;
use crate::config::server_name::ServerName;
use crate::config::shard::Shard;

/// Default probe interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Default jitter: each round starts `interval ± jitter` after the previous one. When `probe.jitter` is not set, the
/// jitter is this or a tenth of the interval, whichever is smaller.
pub const DEFAULT_JITTER: Duration = Duration::from_secs(6);
/// Default number of server probes in flight at once.
pub const DEFAULT_CONCURRENCY: usize = 64;
/// Upper bound on `probe.concurrency`: far above any sensible value, low enough to catch typos.
pub const MAX_CONCURRENCY: usize = 100_000;
/// Default `probe.max_concurrent_probes`: most `GET /probe` requests probing at once.
pub const DEFAULT_MAX_CONCURRENT_PROBES: usize = 16;
/// Default `web.max_connections`: most client connections the listener keeps open at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Upper bound on `web.max_connections`.
pub const MAX_CONNECTIONS: usize = 1_000_000;
/// Default `web.header_read_timeout`: how long a client may take to send a request head.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `web.idle_timeout`: how long a keep-alive connection may sit idle between requests.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Port used for a `dns.nameservers` entry written without one.
pub const DEFAULT_NAMESERVER_PORT: u16 = 53;
/// Default `local_certificates[].reload_grace`: how long a renewed file may wait for the reload.
pub const DEFAULT_RELOAD_GRACE: Duration = Duration::from_secs(3600);
/// Most file globs one `local_certificates` entry may list.
pub const MAX_LOCAL_CERT_FILES: usize = 16;

/// The validated configuration. Built only by `Config::load` / `Config::from_yaml` (and by tests).
///
/// `Config::default()` has no servers and every other setting at its default.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Config {
    /// Server names to probe, in config order, without duplicates.
    pub servers: Vec<ServerName>,
    pub probe: ProbeConfig,
    pub dns: DnsConfig,
    pub tls: TlsConfig,
    pub api: ApiConfig,
    /// The listener's connection limits (`web.*`).
    pub web: WebLimits,
    /// Globs of Prometheus `file_sd` files with more servers (see `config/targets.rs`), relative to the config file.
    pub target_files: Vec<String>,
    /// Homeservers whose admin API lists more servers to probe (`homeservers`; see `config/homeservers.rs`).
    pub homeservers: Vec<homeservers::Homeserver>,
    /// Probe only the servers in this shard (`--shard i/n`; not a config-file key). `None` probes them all.
    pub shard: Option<Shard>,
    /// The certificate files the server serves, as the ACME client leaves them (DESIGN.md point 7); an entry whose
    /// server is not probed by this replica is never consulted.
    pub local_certificates: Vec<LocalCertificates>,
    /// Key notaries to check (`notaries:`); none by default.
    pub notaries: Vec<notary::NotaryConfig>,
    /// What `/metrics` and `/probe` render (`metrics.*`).
    pub metrics: MetricsConfig,
}

/// `metrics.*`: what `/metrics` and `/probe` render.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MetricsConfig {
    /// `metrics.profile` (`--metrics.profile` wins over it).
    pub profile: Profile,
}

/// The profile of series (`metrics.profile`, `--metrics.profile`): which families `/metrics` and `/probe`
/// render. METRICS.md, "Profiles", lists both sets family by family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Profile {
    /// Every series (the default): per address, per certificate, per key, per discovery step.
    #[default]
    Full,
    /// What the shipped alert rules, the overview dashboard and the runbook need: per-server aggregates, one
    /// `address_success` per address, and every failure and warning; for exporters that watch many servers.
    Observer,
}

impl Profile {
    /// Every profile, in the order the docs list them.
    pub const ALL: &'static [Profile] = &[Profile::Full, Profile::Observer];

    /// The value written in the config file, on the command line and in the `profile` label.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Profile::Full => "full",
            Profile::Observer => "observer",
        }
    }

    /// The profile named `text` exactly (`full`, `observer`).
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|p| p.as_str() == text)
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Profile {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
            .ok_or_else(|| format!("{text:?} is not a profile: write full or observer"))
    }
}

/// One `local_certificates` entry: where the certificates of `server_name` lie on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalCertificates {
    pub server_name: ServerName,
    /// PEM file globs, resolved against the config file's directory (at most [`MAX_LOCAL_CERT_FILES`]).
    pub files: Vec<String>,
    /// How long after a file changed the served certificate may still be the old one (default 1 h).
    pub reload_grace: Duration,
}

/// The report API (`/api/report`, `/api/federation-ok`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ApiConfig {
    /// Whether the API may probe a server name that is not configured (off by default, so the endpoint cannot
    /// be used to make the exporter contact arbitrary hosts).
    pub probe_unconfigured: bool,
}

/// The listener's connection limits (`web.max_connections`, `web.header_read_timeout`, `web.idle_timeout`):
/// what keeps `/metrics` answering when clients open many connections or send nothing. A reload applies them to
/// new connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WebLimits {
    /// Most client connections open at once (at least 1). At the cap, a new connection closes the connection
    /// that has waited longest without a request in progress; when every connection is busy, the new one is
    /// closed at once.
    pub max_connections: usize,
    /// How long a client may take to send a request head, counted from its first byte, or from the
    /// connection's start for a new connection (which includes the TLS handshake).
    pub header_read_timeout: Duration,
    /// How long a connection that has answered a request may wait for the next one.
    pub idle_timeout: Duration,
}

impl Default for WebLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// Which Matrix-level checks run (all on by default): two on every address, two once per server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "one switch per `probe.checks` key, as the config names them"
)]
pub struct Checks {
    /// `GET /_matrix/key/v2/server` and its signatures.
    pub keys: bool,
    /// `GET /_matrix/federation/v1/version`.
    pub version: bool,
    /// Client discovery once per server: `GET /.well-known/matrix/client`, then `/_matrix/client/versions`.
    pub client: bool,
    /// `GET https://<hostname>/.well-known/matrix/support` once per probe (not per address).
    pub support: bool,
}

impl Default for Checks {
    fn default() -> Self {
        Self {
            keys: true,
            version: true,
            client: true,
            support: true,
        }
    }
}

impl Config {
    /// Reads and validates a config file. Relative `tls.ca_files` are resolved against the file's directory.
    /// Errors name the file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::cannot_read(&e).in_file(path))?;
        let base = path.parent().unwrap_or(Path::new(""));
        raw::parse(&text, base).map_err(|e| e.in_file(path))
    }

    /// Parses and validates YAML text. Relative `tls.ca_files` are resolved against the current directory.
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        raw::parse(text, Path::new(""))
    }
}

/// Where the configuration comes from: the config file and what the command line adds. Loading it again is a
/// reload (SIGHUP, `POST /-/reload`), so the command line keeps applying.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Source {
    pub file: Option<PathBuf>,
    /// `--target` names, added to `servers` (duplicates of it are ignored).
    pub targets: Vec<ServerName>,
    /// `--ca-file` PEMs, added to `tls.ca_files`.
    pub ca_files: Vec<PathBuf>,
    /// `--shard i/n`.
    pub shard: Option<Shard>,
    /// `--probe.allow-private-addresses`: sets `probe.allow_private_addresses` whatever the file says.
    pub allow_private_addresses: bool,
    /// `--metrics.profile`: sets `metrics.profile` whatever the file says.
    pub profile: Option<Profile>,
}

impl Source {
    /// Reads the file (or the defaults) and applies the command line. Errors name the file or the flag.
    pub fn load(&self) -> anyhow::Result<Config> {
        use anyhow::Context as _;
        let mut config = match &self.file {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        for path in &self.ca_files {
            check_ca_file(path)
                .with_context(|| format!("--ca-file {:?}", path.display().to_string()))?;
            if !config.tls.ca_files.contains(path) {
                config.tls.ca_files.push(path.clone());
            }
        }
        // A set of the names listed so far: `--target` lists of 100,000 names merge in linear time.
        let mut listed: std::collections::HashSet<ServerName> =
            config.servers.iter().cloned().collect();
        for name in &self.targets {
            if listed.insert(name.clone()) {
                config.servers.push(name.clone());
            }
        }
        config.shard = self.shard;
        if self.allow_private_addresses {
            config.probe.allow_private_addresses = true;
        }
        if let Some(profile) = self.profile {
            config.metrics.profile = profile;
        }
        Ok(config)
    }
}

/// Why a CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("cannot read: {0}")]
    Read(std::io::Error),
    #[error("invalid PEM: {0}")]
    Pem(String),
    #[error("contains no PEM CERTIFICATE block")]
    NoCertificate,
}

/// Checks that `path` is readable and holds at least one well-formed PEM `CERTIFICATE`. The certificates are not
/// parsed further here; `probe/env.rs` loads them into the trust store.
pub fn check_ca_file(path: &Path) -> Result<(), CaFileError> {
    let bytes = std::fs::read(path).map_err(CaFileError::Read)?;
    let mut found = 0usize;
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        cert.map_err(|e| CaFileError::Pem(pem_error_text(&e)))?;
        found += 1;
    }
    if found == 0 {
        return Err(CaFileError::NoCertificate);
    }
    Ok(())
}

fn pem_error_text(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    match e {
        Error::MissingSectionEnd { end_marker } => {
            format!(
                "missing \"-----END {}-----\"",
                String::from_utf8_lossy(end_marker).trim()
            )
        }
        Error::IllegalSectionStart { line } => {
            format!("malformed line {:?}", String::from_utf8_lossy(line).trim())
        }
        other => other.to_string(),
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ProbeConfig {
    pub interval: Duration,
    /// Less than `interval`.
    pub jitter: Duration,
    /// At least 1.
    pub concurrency: usize,
    pub timeouts: Timeouts,
    pub checks: Checks,
    /// `GET /probe`: the longest one probe may take, whatever the scrape timeout says. `None` means the probe
    /// deadline (`ProbeEnv::probe_deadline`), which also cuts any longer value.
    pub max_timeout: Option<Duration>,
    /// `GET /probe`: most probes running at once (at least 1); a request over the cap gets 503. A reload resizes
    /// the one limiter in place (`serve/daemon.rs`).
    pub max_concurrent_probes: usize,
    /// The server names that probes run on request (`GET /probe`, the report API's on-demand probes) may probe,
    /// each pattern matching a whole name. Empty allows every name. Scheduled probes are not limited by it.
    pub allowed_targets: Vec<TargetPattern>,
    /// Probe addresses in the ranges default-configured peers refuse (loopback, private, link-local, CGNAT,
    /// documentation, reserved, multicast, unspecified; see `report/address_class.rs`) as if they were public, for a
    /// private federation. Off (the default): such addresses are not probed, and a server with nothing else
    /// fails with `address_not_public`.
    pub allow_private_addresses: bool,
}

/// A `probe.allowed_targets` entry: a regular expression (`regex-lite` syntax) that must match the whole server
/// name, port included. Two patterns are equal when their text is.
#[derive(Clone, Debug)]
pub struct TargetPattern {
    pattern: String,
    regex: regex_lite::Regex,
}

impl TargetPattern {
    /// Compiles `pattern`, anchored at both ends.
    pub fn new(pattern: &str) -> Result<Self, regex_lite::Error> {
        let regex = regex_lite::Regex::new(&format!(r"\A(?:{pattern})\z"))?;
        Ok(Self {
            pattern: pattern.to_owned(),
            regex,
        })
    }

    /// The pattern as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the pattern matches all of `name`.
    #[must_use]
    pub fn is_match(&self, name: &str) -> bool {
        self.regex.is_match(name)
    }
}

impl PartialEq for TargetPattern {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for TargetPattern {}

/// Per-stage timeouts. Every network await in a probe runs under one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// One DNS query (one attempt, no retries).
    pub dns: Duration,
    /// One TCP connect.
    pub connect: Duration,
    /// One TLS handshake.
    pub tls_handshake: Duration,
    /// The whole `.well-known` lookup, redirects included.
    pub well_known: Duration,
    /// One HTTP request on an established connection (headers and body).
    pub http: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            dns: Duration::from_secs(5),
            connect: Duration::from_secs(5),
            tls_handshake: Duration::from_secs(10),
            well_known: Duration::from_secs(10),
            http: Duration::from_secs(10),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DnsConfig {
    /// Empty means the system's `/etc/resolv.conf`.
    pub nameservers: Vec<SocketAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TlsConfig {
    pub trust_store: TrustStore,
    /// Extra PEM files of trusted CAs, added to the store.
    pub ca_files: Vec<PathBuf>,
}

/// Which roots a federating peer is assumed to trust.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TrustStore {
    /// The operating system's store (as Synapse uses; honours `SSL_CERT_FILE`), else the webpki roots.
    #[default]
    System,
    /// Mozilla's roots compiled into the binary.
    Webpki,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            interval: DEFAULT_INTERVAL,
            jitter: DEFAULT_JITTER,
            concurrency: DEFAULT_CONCURRENCY,
            timeouts: Timeouts::default(),
            checks: Checks::default(),
            max_timeout: None,
            max_concurrent_probes: DEFAULT_MAX_CONCURRENT_PROBES,
            allowed_targets: Vec::new(),
            allow_private_addresses: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_yaml_is_the_default_config() {
        for text in ["", "# nothing\n", "{}", "servers: []\n"] {
            assert_eq!(
                Config::from_yaml(text).unwrap(),
                Config::default(),
                "{text:?}"
            );
        }
        let d = Config::default();
        assert!(d.servers.is_empty());
        assert_eq!(d.probe.interval, DEFAULT_INTERVAL);
        assert_eq!(d.probe.jitter, DEFAULT_JITTER);
        assert_eq!(d.probe.concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(d.probe.timeouts, Timeouts::default());
        assert!(d.dns.nameservers.is_empty());
        assert_eq!(d.tls.trust_store, TrustStore::System);
        assert!(d.tls.ca_files.is_empty());
    }

    #[test]
    fn allow_private_addresses_comes_from_the_file_or_the_flag() {
        assert!(!Config::default().probe.allow_private_addresses);
        let on = Config::from_yaml("probe:\n  allow_private_addresses: true\n").unwrap();
        assert!(on.probe.allow_private_addresses);
        let dir = std::env::temp_dir().join(format!("mfe-config-private-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("config.yml");
        std::fs::write(&file, "probe:\n  allow_private_addresses: false\n").unwrap();
        let mut source = Source {
            file: Some(file),
            ..Source::default()
        };
        assert!(!source.load().unwrap().probe.allow_private_addresses);
        // The flag wins over the file, and keeps applying on every load (a reload reads the source again).
        source.allow_private_addresses = true;
        assert!(source.load().unwrap().probe.allow_private_addresses);
        assert!(source.load().unwrap().probe.allow_private_addresses);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn errors_without_a_file_have_no_file_prefix() {
        let e = Config::from_yaml("probe:\n  interval: 0s\n").unwrap_err();
        assert_eq!(e.to_string(), "probe.interval: must be greater than 0");
        assert!(e.file().is_none());
    }
}
