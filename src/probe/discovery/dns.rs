//! DNS: the only user of hickory. SRV, A and AAAA lookups with the answer classes discovery needs.
//!
//! NXDOMAIN and NODATA are answers ([`Answer::NxDomain`], [`Answer::NoData`]), not failures: the spec falls
//! through on them. SERVFAIL, malformed answers and timeouts are failures ([`DnsFailure`]), classified once
//! here into the closed [`Reason`] set. The resolver caches nothing (a monitor must see a change at once) and
//! tries each query exactly once. This module knows nothing about Matrix.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};

use crate::report::Reason;

/// Most records of one type a probe keeps from one answer; the rest are dropped and reported as truncated.
pub const MAX_RECORDS: usize = 32;

/// A resolver built once from config (and again on reload), shared by all probes.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
    timeout: Duration,
    /// The nameservers asked, for failure messages ("127.0.0.53:53"; the system's from `/etc/resolv.conf`).
    asked: std::sync::Arc<str>,
}

/// A lookup that completed: records, or one of the two "not found" answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer<T> {
    Found(T),
    /// NXDOMAIN: the name does not exist.
    NxDomain,
    /// NOERROR with no records of this type (NODATA).
    NoData,
}

/// A lookup that did not complete: `Reason::DnsError` or `Reason::DnsTimeout`, with the resolver's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsFailure {
    pub reason: Reason,
    pub message: String,
}

/// One SRV record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// The target host without its trailing dot; `"."` for "service decidedly not available".
    pub target: String,
}

/// Addresses of one family for one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addresses {
    pub ips: Vec<IpAddr>,
    /// True when the answer went through a CNAME.
    pub via_cname: bool,
    /// True when more than [`MAX_RECORDS`] addresses were returned.
    pub truncated: bool,
}

pub type Lookup<T> = Result<Answer<T>, DnsFailure>;

/// Both families of one host, looked up concurrently.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostAddresses {
    /// IPv6 first, then IPv4.
    pub ips: Vec<IpAddr>,
    pub via_cname: bool,
    pub truncated: bool,
    /// Lookups that did not complete. A family that fails is a fault even when the other one works.
    pub failures: Vec<DnsFailure>,
    /// True when every family that completed answered NXDOMAIN (else they answered NODATA or had records).
    pub nxdomain: bool,
}

/// The A/AAAA answers one probe already got, by host. The well-known fetch resolves the server name, and the
/// default-port step ("an IP address is resolved using CNAME, AAAA or A records") needs the same answer:
/// asking once saves two of the six queries of a server without delegation. As a caching resolver would, a
/// probe asks each host once; nothing outlives the probe. At most one entry per well-known hop.
#[derive(Clone, Debug, Default)]
pub struct Known(Vec<(String, HostAddresses)>);

impl Known {
    /// The answer already got for `host` (DNS names compare without regard to case).
    #[must_use]
    pub fn get(&self, host: &str) -> Option<&HostAddresses> {
        self.0
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(host))
            .map(|(_, found)| found)
    }
}

impl Dns {
    /// A resolver that asks `nameservers` (UDP, then TCP on truncation), or the system's `/etc/resolv.conf`
    /// when the list is empty.
    pub fn new(nameservers: &[SocketAddr], timeout: Duration) -> Result<Self, NetError> {
        let mut opts = ResolverOpts::default();
        // A monitor must see a changed record on the very next probe: no cache (hickory's cache is disabled
        // completely at capacity 0).
        opts.cache_size = 0;
        // `attempts` counts retries: 0 means each query is sent once, so a timeout is one timeout.
        opts.attempts = 0;
        opts.timeout = timeout;
        // What the internet sees, not this machine's /etc/hosts.
        opts.use_hosts_file = ResolveHosts::Never;
        let asked = if nameservers.is_empty() {
            let system = hickory_resolver::system_conf::read_system_conf()
                .map(|(config, _)| describe(config.name_servers()))
                .unwrap_or_default();
            format!("{system} (/etc/resolv.conf)")
        } else {
            nameservers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let resolver = if nameservers.is_empty() {
            let mut builder = TokioResolver::builder_tokio()?;
            *builder.options_mut() = opts;
            builder.build()?
        } else {
            let servers = nameservers
                .iter()
                .map(|sa| {
                    let mut ns = NameServerConfig::udp_and_tcp(sa.ip());
                    for conn in &mut ns.connections {
                        conn.port = sa.port();
                    }
                    ns
                })
                .collect();
            Resolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
            .with_options(opts)
            .build()?
        };
        Ok(Self {
            resolver,
            timeout,
            asked: asked.trim().into(),
        })
    }

    /// SRV records of `name` (for example `_matrix-fed._tcp.example.org`), in answer order.
    pub async fn srv(&self, name: &str) -> Lookup<(Vec<SrvRecord>, bool)> {
        let lookup = self.lookup(name, RecordType::SRV).await?;
        Ok(lookup.map(|records| {
            let mut srvs: Vec<SrvRecord> = records
                .iter()
                .filter_map(|rdata| match rdata {
                    RData::SRV(s) => Some(SrvRecord {
                        priority: s.priority,
                        weight: s.weight,
                        port: s.port,
                        target: strip_root(&s.target.to_ascii()),
                    }),
                    _ => None,
                })
                .collect();
            let truncated = srvs.len() > MAX_RECORDS;
            srvs.truncate(MAX_RECORDS);
            (srvs, truncated)
        }))
    }

    /// A (IPv4) or AAAA (IPv6) addresses of `host`, following CNAMEs.
    pub async fn addresses(&self, host: &str, ipv6: bool) -> Lookup<Addresses> {
        let rtype = if ipv6 {
            RecordType::AAAA
        } else {
            RecordType::A
        };
        let lookup = self.lookup(host, rtype).await?;
        Ok(lookup.map(|records| {
            let via_cname = records.iter().any(|r| matches!(r, RData::CNAME(_)));
            let mut ips: Vec<IpAddr> = records
                .iter()
                .filter_map(|r| match r {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                })
                .collect();
            ips.dedup();
            let truncated = ips.len() > MAX_RECORDS;
            ips.truncate(MAX_RECORDS);
            Addresses {
                ips,
                via_cname,
                truncated,
            }
        }))
    }

    /// AAAA and A of `host` at once ("resolve the hostname to an IP address using CNAME, AAAA or A records").
    pub async fn host(&self, host: &str) -> HostAddresses {
        let (v6, v4) = tokio::join!(self.addresses(host, true), self.addresses(host, false));
        let mut out = HostAddresses {
            nxdomain: true,
            ..HostAddresses::default()
        };
        for result in [v6, v4] {
            match result {
                Ok(Answer::Found(a)) => {
                    out.ips.extend(a.ips);
                    out.via_cname |= a.via_cname;
                    out.truncated |= a.truncated;
                    out.nxdomain = false;
                }
                Ok(Answer::NoData) => out.nxdomain = false,
                Ok(Answer::NxDomain) => {}
                Err(f) => out.failures.push(f),
            }
        }
        out
    }

    /// [`Dns::host`], answered from `known` when this probe already asked, and remembered there otherwise.
    pub async fn host_once(&self, host: &str, known: &mut Known) -> HostAddresses {
        if let Some(found) = known.get(host) {
            return found.clone();
        }
        let found = self.host(host).await;
        known.0.push((host.to_owned(), found.clone()));
        found
    }

    async fn lookup(&self, name: &str, rtype: RecordType) -> Lookup<Vec<RData>> {
        let fqdn = Name::from_ascii(fqdn(name)).map_err(|e| DnsFailure {
            reason: Reason::DnsError,
            message: format!("{name:?} is not a valid DNS name: {e}"),
        })?;
        // The resolver bounds each attempt by `timeout`; this outer bound covers the case of several
        // nameservers tried one after another.
        let outer = self.timeout.saturating_mul(2);
        let result = match tokio::time::timeout(outer, self.resolver.lookup(fqdn, rtype)).await {
            Ok(result) => result,
            Err(_) => Err(NetError::Timeout),
        };
        match result {
            Ok(lookup) => {
                let records: Vec<RData> = lookup.answers().iter().map(|r| r.data.clone()).collect();
                let wanted = records.iter().any(|r| r.record_type() == rtype);
                Ok(if wanted {
                    Answer::Found(records)
                } else {
                    Answer::NoData
                })
            }
            Err(e) => classify(name, rtype, &e).map_err(|mut failure| {
                // Which resolver failed is the first question when every server fails at once.
                failure.message = format!("{} (asked {})", failure.message, self.asked);
                failure
            }),
        }
    }
}

/// Maps hickory's errors onto answers and closed failure reasons, once.
fn classify(name: &str, rtype: RecordType, e: &NetError) -> Lookup<Vec<RData>> {
    let reason = match e {
        NetError::Dns(DnsError::NoRecordsFound(nr))
            if nr.response_code == ResponseCode::NXDomain =>
        {
            return Ok(Answer::NxDomain);
        }
        NetError::Dns(DnsError::NoRecordsFound(_)) => return Ok(Answer::NoData),
        NetError::Timeout => Reason::DnsTimeout,
        _ => Reason::DnsError,
    };
    Err(DnsFailure {
        reason,
        message: format!("{rtype} {name}: {e}"),
    })
}

/// The nameservers of a resolver config as `ip:port`, comma-separated.
fn describe(servers: &[NameServerConfig]) -> String {
    let mut out: Vec<String> = Vec::new();
    for ns in servers {
        let port = ns.connections.first().map_or(53, |c| c.port);
        let addr = SocketAddr::new(ns.ip, port).to_string();
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    out.join(", ")
}

/// `name` as a fully qualified name (one trailing dot), so no search list is applied.
fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

fn strip_root(name: &str) -> String {
    if name == "." {
        ".".to_owned()
    } else {
        name.trim_end_matches('.').to_owned()
    }
}

impl<T> Answer<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Answer<U> {
        match self {
            Answer::Found(t) => Answer::Found(f(t)),
            Answer::NxDomain => Answer::NxDomain,
            Answer::NoData => Answer::NoData,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_fully_qualified_once() {
        assert_eq!(fqdn("example.org"), "example.org.");
        assert_eq!(fqdn("example.org."), "example.org.");
        assert_eq!(strip_root("target.example.org."), "target.example.org");
        assert_eq!(strip_root("."), ".");
    }
}
