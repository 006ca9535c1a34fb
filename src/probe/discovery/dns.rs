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
use std::time::{Duration, Instant};

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

/// An SRV answer: the records (at most [`MAX_RECORDS`]) and whether more came.
pub type SrvLookup = Lookup<(Vec<SrvRecord>, bool)>;

/// One question's outcome inside a lookup: `None` while still open.
type Slot = Option<Result<Answer<Vec<RData>>, Failed>>;

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

/// The answers one probe already got: A/AAAA by host, and SRV by name. The well-known fetch resolves the server
/// name, and the default-port step ("an IP address is resolved using CNAME, AAAA or A records") needs the same
/// answer: asking once saves two of the six queries of a server without delegation. As a caching resolver
/// would, a probe asks each question once; nothing outlives the probe. At most one host entry per well-known
/// hop, and the two SRV names of the server name (see [`Dns::server_name_once`]).
#[derive(Clone, Debug, Default)]
pub struct Known {
    hosts: Vec<(String, HostAddresses)>,
    srv: Vec<(String, SrvLookup)>,
    /// How long the exchange that answered the SRV names took (they were asked with the server name's
    /// addresses).
    srv_took: Duration,
}

impl Known {
    /// The answer already got for `host` (DNS names compare without regard to case).
    #[must_use]
    pub fn get(&self, host: &str) -> Option<&HostAddresses> {
        self.hosts
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(host))
            .map(|(_, found)| found)
    }

    /// The SRV answer already got for `name`, and how long the exchange that got it took.
    #[must_use]
    pub fn srv(&self, name: &str) -> Option<(&SrvLookup, Duration)> {
        self.srv
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, found)| (found, self.srv_took))
    }
}

/// The two SRV names of `hostname`, in the spec's order: `_matrix-fed._tcp`, then the deprecated `_matrix._tcp`.
#[must_use]
pub fn srv_names(hostname: &str) -> [String; 2] {
    [
        format!("_matrix-fed._tcp.{hostname}"),
        format!("_matrix._tcp.{hostname}"),
    ]
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
    pub async fn srv(&self, name: &str) -> SrvLookup {
        Ok(self
            .lookup(name, RecordType::SRV)
            .await?
            .map(|records| srv_records(&records)))
    }

    /// [`Dns::srv`], answered from `known` when this probe already asked (with the time that exchange took).
    pub async fn srv_once(&self, name: &str, known: &Known) -> (SrvLookup, Option<Duration>) {
        match known.srv(name) {
            Some((found, took)) => (found.clone(), Some(took)),
            None => (self.srv(name).await, None),
        }
    }

    /// AAAA and A of `host` at once ("resolve the hostname to an IP address using CNAME, AAAA or A records"), in
    /// one exchange.
    pub async fn host(&self, host: &str) -> HostAddresses {
        let [v6, v4] = self
            .lookup_all([(host, RecordType::AAAA), (host, RecordType::A)])
            .await;
        host_addresses(v6, v4)
    }

    /// [`Dns::host`], answered from `known` when this probe already asked, and remembered there otherwise.
    pub async fn host_once(&self, host: &str, known: &mut Known) -> HostAddresses {
        if let Some(found) = known.get(host) {
            return found.clone();
        }
        let found = self.host(host).await;
        known.hosts.push((host.to_owned(), found.clone()));
        found
    }

    /// The server name's addresses, as [`Dns::host_once`], asked in one exchange with its two SRV names, which
    /// are remembered in `known` for the SRV steps (4 and 5, or the shadowed records after a delegation). Every
    /// probe of a DNS name without a port asks these four questions; asking them at once costs one socket
    /// and one round trip instead of four and three. The spec's order of the steps is unchanged: the SRV
    /// answers are read only where the spec reads them.
    pub async fn server_name_once(&self, hostname: &str, known: &mut Known) -> HostAddresses {
        if let Some(found) = known.get(hostname) {
            return found.clone();
        }
        let start = Instant::now();
        let [fed, legacy] = srv_names(hostname);
        let [v6, v4, fed_answer, legacy_answer] = self
            .lookup_all([
                (hostname, RecordType::AAAA),
                (hostname, RecordType::A),
                (&fed, RecordType::SRV),
                (&legacy, RecordType::SRV),
            ])
            .await;
        let found = host_addresses(v6, v4);
        known.hosts.push((hostname.to_owned(), found.clone()));
        known.srv_took = start.elapsed();
        for (name, answer) in [(fed, fed_answer), (legacy, legacy_answer)] {
            known
                .srv
                .push((name, answer.map(|a| a.map(|records| srv_records(&records)))));
        }
        found
    }

    async fn lookup(&self, name: &str, rtype: RecordType) -> Lookup<Vec<RData>> {
        let [found] = self.lookup_all([(name, rtype)]).await;
        found
    }

    /// Each question's records (following CNAMEs), asked together: one exchange per name server and CNAME hop.
    async fn lookup_all<const N: usize>(
        &self,
        questions: [(&str, RecordType); N],
    ) -> [Lookup<Vec<RData>>; N] {
        let names = questions.map(|(name, _)| {
            Name::from_ascii(fqdn(name)).map_err(|e| DnsFailure {
                reason: Reason::DnsError,
                message: format!("{name:?} is not a valid DNS name: {e}"),
            })
        });
        let asks: Vec<(Name, RecordType)> = names
            .iter()
            .zip(&questions)
            .filter_map(|(name, (_, rtype))| Some((name.as_ref().ok()?.clone(), *rtype)))
            .collect();
        let mut out: Vec<Slot> = asks.iter().map(|_| None).collect();
        // Each exchange is bounded by `timeout`; this outer bound covers several name servers or CNAME hops
        // asked one after another. Answers already complete stay in `out` when it cuts the rest short.
        let outer = self.timeout.saturating_mul(2);
        let _ = tokio::time::timeout(outer, self.follow_all(&asks, &mut out)).await;
        let mut answers = out.into_iter();
        let mut i = 0;
        names.map(|name| {
            let (text, rtype) = questions[i];
            i += 1;
            name?;
            let answer = answers.next().flatten().unwrap_or(Err(Failed::Timeout));
            answer.map_err(|failed| DnsFailure {
                reason: match failed {
                    Failed::Timeout => Reason::DnsTimeout,
                    Failed::Error(_) => Reason::DnsError,
                },
                // Which resolver failed is the first question when every server fails at once.
                message: format!("{rtype} {text}: {failed} (asked {})", self.asked),
            })
        })
    }

    /// For each question, the records of its type and the CNAMEs that led there, following CNAMEs whose targets
    /// the answer does not include, at most [`MAX_CNAME_HOPS`] times. The questions still open are asked
    /// together at each hop. Fills `out` (one slot per question) as answers complete.
    async fn follow_all(&self, asks: &[(Name, RecordType)], out: &mut [Slot]) {
        let mut chains: Vec<(Name, Vec<RData>)> = asks
            .iter()
            .map(|(name, _)| (name.clone(), Vec::new()))
            .collect();
        for _ in 0..MAX_CNAME_HOPS {
            let open: Vec<usize> = (0..asks.len()).filter(|&i| out[i].is_none()).collect();
            if open.is_empty() {
                return;
            }
            let questions: Vec<(&Name, RecordType)> =
                open.iter().map(|&i| (&chains[i].0, asks[i].1)).collect();
            let answers = self.ask_servers(&questions).await;
            for (&i, answer) in open.iter().zip(answers) {
                let rtype = asks[i].1;
                let (current, records) = &mut chains[i];
                out[i] = match answer {
                    Err(failed) => Some(Err(failed)),
                    Ok(answer) if answer.metadata.response_code == ResponseCode::NXDomain => {
                        Some(Ok(Answer::NxDomain))
                    }
                    Ok(answer) => match chain(&answer, current.clone(), rtype, records) {
                        Next::Done => {
                            let wanted = records.iter().any(|r| r.record_type() == rtype);
                            Some(Ok(if wanted {
                                Answer::Found(std::mem::take(records))
                            } else {
                                Answer::NoData
                            }))
                        }
                        Next::Ask(target) => {
                            *current = target;
                            None
                        }
                    },
                };
            }
        }
        for slot in out.iter_mut().filter(|s| s.is_none()) {
            *slot = Some(Err(Failed::Error(format!(
                "more than {MAX_CNAME_HOPS} CNAMEs in a row"
            ))));
        }
    }

    /// The questions to each name server in turn, each until one answers it NOERROR or NXDOMAIN; the questions a
    /// server left open go to the next one together. One result per question, in order.
    async fn ask_servers(&self, questions: &[(&Name, RecordType)]) -> Vec<Result<Message, Failed>> {
        let mut results: Vec<Result<Message, Failed>> = questions
            .iter()
            .map(|_| Err(Failed::Error("no name server to ask".to_owned())))
            .collect();
        let mut open: Vec<usize> = (0..questions.len()).collect();
        for server in self.servers.iter() {
            if open.is_empty() {
                break;
            }
            let asking: Vec<(&Name, RecordType)> = open.iter().map(|&i| questions[i]).collect();
            let deadline = tokio::time::Instant::now() + self.timeout;
            let answers = dns_wire::ask_all(*server, &asking, deadline).await;
            let mut still = Vec::new();
            for (&i, answer) in open.iter().zip(answers) {
                results[i] = match answer {
                    None => Err(Failed::Timeout),
                    Some(Err(e)) => Err(Failed::Error(format!("{server}: {e}"))),
                    Some(Ok(answer)) => match answer.metadata.response_code {
                        ResponseCode::NoError | ResponseCode::NXDomain => Ok(answer),
                        code => Err(Failed::Error(format!(
                            "{server} answered {}",
                            code.to_str()
                        ))),
                    },
                };
                if results[i].is_err() {
                    still.push(i);
                }
            }
            open = still;
        }
        results
    }
}

/// SRV records in answer order, at most [`MAX_RECORDS`] (and whether more came).
fn srv_records(records: &[RData]) -> (Vec<SrvRecord>, bool) {
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
}

/// The addresses in an A or AAAA answer, at most [`MAX_RECORDS`].
fn addresses(records: &[RData]) -> Addresses {
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
}

/// Both families of one host from its AAAA and A answers (IPv6 first).
fn host_addresses(v6: Lookup<Vec<RData>>, v4: Lookup<Vec<RData>>) -> HostAddresses {
    let mut out = HostAddresses {
        nxdomain: true,
        ..HostAddresses::default()
    };
    for result in [v6, v4] {
        match result.map(|found| found.map(|records| addresses(&records))) {
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
