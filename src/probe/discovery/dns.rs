//! DNS: the only user of hickory. SRV, A and AAAA lookups with the answer classes discovery needs.
//!
//! NXDOMAIN and NODATA are answers ([`Answer::NxDomain`], [`Answer::NoData`]), not failures: the spec falls
//! through on them. SERVFAIL, malformed answers and timeouts are failures ([`DnsFailure`]), classified once
//! here into the closed [`Reason`] set. Nothing is cached (a monitor must see a change at once) and each
//! question goes to each name server at most once, in order, until one answers; CNAMEs are followed as a stub
//! resolver does. The wire exchange is `dns_wire.rs` (hickory-proto's messages). This module knows nothing
//! about Matrix.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::NameServerConfig;
use hickory_resolver::proto::op::{Message, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};

use super::dns_wire;
use crate::report::Reason;

/// Most records of one type a probe keeps from one answer; the rest are dropped and reported as truncated.
pub const MAX_RECORDS: usize = 32;

/// The name servers and timeout, built once from config (and again on reload), shared by all probes.
#[derive(Clone)]
pub struct Dns {
    /// Asked in this order; the next only when one gives no answer (timeout, SERVFAIL, REFUSED, garbage).
    servers: Arc<[SocketAddr]>,
    timeout: Duration,
    /// The nameservers asked, for failure messages ("127.0.0.53:53"; the system's from `/etc/resolv.conf`).
    asked: Arc<str>,
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
    /// Name servers `nameservers` (UDP, then TCP on truncation), or the system's from `/etc/resolv.conf` when
    /// the list is empty.
    pub fn new(nameservers: &[SocketAddr], timeout: Duration) -> Result<Self, String> {
        let (servers, asked) = if nameservers.is_empty() {
            let (config, _) = hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| format!("cannot read /etc/resolv.conf: {e}"))?;
            let servers = system_servers(config.name_servers());
            if servers.is_empty() {
                return Err("/etc/resolv.conf names no name server".to_owned());
            }
            let asked = format!("{} (/etc/resolv.conf)", join(&servers));
            (servers, asked)
        } else {
            (nameservers.to_vec(), join(nameservers))
        };
        Ok(Self {
            servers: servers.into(),
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
        // Each exchange is bounded by `timeout`; this outer bound covers several name servers or CNAME hops
        // asked one after another.
        let outer = self.timeout.saturating_mul(2);
        let result = tokio::time::timeout(outer, self.follow(fqdn, rtype))
            .await
            .unwrap_or(Err(Failed::Timeout));
        result.map_err(|failed| DnsFailure {
            reason: match failed {
                Failed::Timeout => Reason::DnsTimeout,
                Failed::Error(_) => Reason::DnsError,
            },
            // Which resolver failed is the first question when every server fails at once.
            message: format!("{rtype} {name}: {failed} (asked {})", self.asked),
        })
    }

    /// The records of `rtype` for `name` and the CNAMEs that led there, following CNAMEs whose targets the
    /// answer does not include, at most [`MAX_CNAME_HOPS`] times.
    async fn follow(&self, name: Name, rtype: RecordType) -> Result<Answer<Vec<RData>>, Failed> {
        let mut records = Vec::new();
        let mut current = name;
        for _ in 0..MAX_CNAME_HOPS {
            let answer = self.ask_servers(&current, rtype).await?;
            if answer.metadata.response_code == ResponseCode::NXDomain {
                return Ok(Answer::NxDomain);
            }
            match chain(&answer, current, rtype, &mut records) {
                Next::Done => {
                    let wanted = records.iter().any(|r| r.record_type() == rtype);
                    return Ok(if wanted {
                        Answer::Found(records)
                    } else {
                        Answer::NoData
                    });
                }
                Next::Ask(target) => current = target,
            }
        }
        Err(Failed::Error(format!(
            "more than {MAX_CNAME_HOPS} CNAMEs in a row"
        )))
    }

    /// One question to each name server in turn, until one answers NOERROR or NXDOMAIN.
    async fn ask_servers(&self, name: &Name, rtype: RecordType) -> Result<Message, Failed> {
        let mut last = Failed::Error("no name server to ask".to_owned());
        for server in self.servers.iter() {
            let asked =
                tokio::time::timeout(self.timeout, dns_wire::ask(*server, name, rtype)).await;
            last = match asked {
                Err(_) => Failed::Timeout,
                Ok(Err(e)) => Failed::Error(format!("{server}: {e}")),
                Ok(Ok(answer)) => match answer.metadata.response_code {
                    ResponseCode::NoError | ResponseCode::NXDomain => return Ok(answer),
                    code => Failed::Error(format!("{server} answered {}", code.to_str())),
                },
            };
        }
        Err(last)
    }
}

/// The most CNAME hops followed with new questions (hickory's resolver stops at 8 too).
const MAX_CNAME_HOPS: usize = 8;

/// A lookup that gave no answer: the last name server's reason.
enum Failed {
    Timeout,
    Error(String),
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::Timeout => f.write_str("request timed out"),
            Failed::Error(e) => f.write_str(e),
        }
    }
}

enum Next {
    Done,
    Ask(Name),
}

/// Walks the answer section from `name`: CNAMEs (kept, so callers can tell an answer went through one) lead to
/// their target, and the records of `rtype` owned by the last name are kept. Records owned by any other name
/// are ignored, as a resolver ignores what it did not ask about. `Ask` when the chain ends in a CNAME whose
/// target the answer does not cover.
fn chain(answer: &Message, mut name: Name, rtype: RecordType, records: &mut Vec<RData>) -> Next {
    let mut followed = false;
    // Each answer record moves the chain at most one step; the bound keeps a CNAME loop finite.
    for _ in 0..=answer.answers.len() {
        let cname = answer.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(target) if r.name == name && rtype != RecordType::CNAME => {
                Some(target.0.clone())
            }
            _ => None,
        });
        match cname {
            Some(target) => {
                records.push(RData::CNAME(hickory_resolver::proto::rr::rdata::CNAME(
                    target.clone(),
                )));
                name = target;
                followed = true;
            }
            None => break,
        }
    }
    let before = records.len();
    records.extend(
        answer
            .answers
            .iter()
            .filter(|r| r.name == name && r.record_type() == rtype)
            .map(|r| r.data.clone()),
    );
    if followed && records.len() == before {
        Next::Ask(name)
    } else {
        Next::Done
    }
}

/// The system's name servers as `ip:port` (the UDP connection's port), without repeats.
fn system_servers(servers: &[NameServerConfig]) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for ns in servers {
        let port = ns.connections.first().map_or(53, |c| c.port);
        let addr = SocketAddr::new(ns.ip, port);
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

fn join(servers: &[SocketAddr]) -> String {
    servers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
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

    fn answer(records: &[(&str, RData)]) -> Message {
        use hickory_resolver::proto::op::{MessageType, OpCode};
        use hickory_resolver::proto::rr::Record;
        let mut msg = Message::new(1, MessageType::Response, OpCode::Query);
        for (name, data) in records {
            msg.add_answer(Record::from_rdata(
                Name::from_ascii(name).unwrap(),
                60,
                data.clone(),
            ));
        }
        msg
    }

    fn cname(target: &str) -> RData {
        RData::CNAME(hickory_resolver::proto::rr::rdata::CNAME(
            Name::from_ascii(target).unwrap(),
        ))
    }

    fn a(ip: [u8; 4]) -> RData {
        RData::A(hickory_resolver::proto::rr::rdata::A(ip.into()))
    }

    #[test]
    fn cname_chains_are_followed_and_foreign_records_ignored() {
        let name = || Name::from_ascii("www.x.test.").unwrap();
        // The chain inside one answer, plus a record for a name nobody asked about.
        let msg = answer(&[
            ("www.x.test.", cname("host.x.test.")),
            ("host.x.test.", a([127, 0, 0, 2])),
            ("evil.test.", a([10, 0, 0, 1])),
        ]);
        let mut records = Vec::new();
        assert!(matches!(
            chain(&msg, name(), RecordType::A, &mut records),
            Next::Done
        ));
        assert_eq!(records, [cname("host.x.test."), a([127, 0, 0, 2])]);

        // A CNAME whose target the answer does not cover: ask again for the target.
        let msg = answer(&[("www.x.test.", cname("elsewhere.test."))]);
        let mut records = Vec::new();
        match chain(&msg, name(), RecordType::A, &mut records) {
            Next::Ask(next) => assert_eq!(next, Name::from_ascii("elsewhere.test.").unwrap()),
            Next::Done => panic!("the CNAME target must be asked"),
        }

        // A loop inside one answer ends (and is asked again, bounded by MAX_CNAME_HOPS in `follow`).
        let msg = answer(&[
            ("www.x.test.", cname("b.x.test.")),
            ("b.x.test.", cname("www.x.test.")),
        ]);
        let mut records = Vec::new();
        assert!(matches!(
            chain(&msg, name(), RecordType::A, &mut records),
            Next::Ask(_)
        ));
        assert!(records.len() <= 3);

        // Only records of another name: NODATA for ours.
        let msg = answer(&[("other.test.", a([127, 0, 0, 3]))]);
        let mut records = Vec::new();
        assert!(matches!(
            chain(&msg, name(), RecordType::A, &mut records),
            Next::Done
        ));
        assert!(records.is_empty());
    }
}
