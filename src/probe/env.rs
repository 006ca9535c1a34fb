//! The probe environment: everything a probe needs from the outside world, built once from config.
//!
//! `ProbeEnv` is the one seam between probes and the world. Production fills it from [`Config`]; tests point
//! the resolver at an in-process DNS server, trust a test CA, and remap the spec ports 443 and 8448 to
//! loopback test ports.

use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;

use crate::config::{Checks, Config, Timeouts};
use crate::probe::connect::tls::{self, TlsClient};
use crate::probe::discovery::dns::Dns;
use crate::probe::local_certs::LocalCerts;

/// The two ports the spec fixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    /// `.well-known/matrix/server` is fetched over HTTPS on this port (443: "a regular HTTPS request").
    pub well_known: u16,
    /// The default federation port when neither the server name nor SRV gives one (8448).
    pub federation: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Self {
            well_known: 443,
            federation: 8448,
        }
    }
}

/// Resolver, TLS client, ports and timeouts: shared by every probe (cheap to clone).
#[derive(Clone)]
pub struct ProbeEnv {
    pub dns: Dns,
    pub tls: TlsClient,
    pub ports: Ports,
    pub timeouts: Timeouts,
    /// Which Matrix-level checks run on every address.
    pub checks: Checks,
    /// Whether addresses that default-configured peers refuse (loopback, private, link-local, CGNAT, ...; see
    /// `report/address_class.rs`) are probed like public ones (`probe.allow_private_addresses`). When false, the public
    /// federation view: discovery and `.well-known` leave them out, and a server with nothing else fails with
    /// `address_not_public`.
    pub allow_private_addresses: bool,
    /// The `local_certificates` files and what was last read from them (see `probe/local_certs.rs`).
    pub local_certs: Arc<LocalCerts>,
}

impl ProbeEnv {
    /// Builds the resolver and the trust roots from `config` (reads CA files and `/etc/resolv.conf`).
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let roots = tls::load_roots(config.tls.trust_store, &config.tls.ca_files)?;
        let mut env = Self::new(
            &config.dns.nameservers,
            roots,
            Ports::default(),
            config.probe.timeouts,
        )?;
        env.checks = config.probe.checks;
        env.allow_private_addresses = config.probe.allow_private_addresses;
        env.local_certs = Arc::new(LocalCerts::new(config.local_certificates.clone()));
        Ok(env)
    }

    /// An environment with explicit parts and every check on (tests and benchmarks use this with loopback
    /// fakes). Private addresses are allowed: the hermetic test world lives on `127.0.0.0/8` and `::1`, which the
    /// public-federation view would refuse. [`ProbeEnv::from_config`] follows the config instead (default: not
    /// allowed); set `allow_private_addresses` to false to test the public view.
    pub fn new(
        nameservers: &[std::net::SocketAddr],
        roots: RootCertStore,
        ports: Ports,
        timeouts: Timeouts,
    ) -> anyhow::Result<Self> {
        let dns = Dns::new(nameservers, timeouts.dns)
            .map_err(|e| anyhow::anyhow!("cannot build the DNS resolver: {e}"))?;
        Ok(Self {
            dns,
            tls: TlsClient::new(roots),
            ports,
            timeouts,
            checks: Checks::default(),
            allow_private_addresses: true,
            local_certs: Arc::default(),
        })
    }

    /// The longest a probe of one server can take: discovery steps plus one address's phases (addresses are
    /// probed concurrently). Used to cut a probe that somehow outlives all of its own timeouts.
    #[must_use]
    pub fn probe_deadline(&self) -> Duration {
        let t = &self.timeouts;
        // SRV twice, then A and AAAA (concurrently), each bounded at twice the DNS timeout.
        let discovery = t.well_known + t.dns * 2 * 3;
        let address = t.connect + t.tls_handshake + t.http * 2;
        // Client discovery, then the support well-known, run beside the address checks: the client well-known
        // and versions requests and the support request each run under `well_known`.
        let client = if self.checks.client {
            t.well_known * 2
        } else {
            Duration::ZERO
        };
        let support = if self.checks.support {
            t.well_known
        } else {
            Duration::ZERO
        };
        discovery + address.max(client + support) + Duration::from_secs(1)
    }
}
