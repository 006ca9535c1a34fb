//! Configuration: the raw YAML shape (serde) becomes a typed, validated [`Config`] in one place.
//!
//! This module owns defaults and validation. It does no network I/O; building resolvers and TLS roots from a
//! `Config` happens in `env.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::server_name::ServerName;

/// Default probe interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Default jitter: each round starts `interval ± jitter` after the previous one.
pub const DEFAULT_JITTER: Duration = Duration::from_secs(6);
/// Default number of server probes in flight at once.
pub const DEFAULT_CONCURRENCY: usize = 64;

/// The validated configuration. Built only by `Config::load` / `Config::from_yaml` (and by tests).
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Server names to probe, in config order, without duplicates.
    pub servers: Vec<ServerName>,
    pub probe: ProbeConfig,
    pub dns: DnsConfig,
    pub tls: TlsConfig,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ProbeConfig {
    pub interval: Duration,
    /// Less than `interval`.
    pub jitter: Duration,
    /// At least 1.
    pub concurrency: usize,
    pub timeouts: Timeouts,
}

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
