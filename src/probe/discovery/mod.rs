//! The spec's server-name resolution: which addresses to connect to, which `Host` header to send, and which
//! name the certificate must be valid for.
//!
//! Matrix spec v1.19, server-server API, "Resolving server names", steps 1 to 6 (with 3.1 to 3.5). Each path
//! is a [`Method`]; the quoted sentences live on its variants. Unlike Synapse, which stops at the first
//! address that connects, discovery keeps **every** SRV target and every A and AAAA address, because a peer
//! may pick any of them. This module decides and resolves; it does not connect to federation endpoints.
//!
//! In the public-federation view (`ProbeEnv::allow_private_addresses` false, the default of the config),
//! addresses that default-configured peers refuse (Synapse's `ip_range_blacklist`, see `report/address_class.rs`) are
//! not endpoints: they go to `DiscoveryReport::refused`, and when nothing else is left that is the
//! `address_not_public` failure.

pub mod dns;
mod dns_wire;
pub mod fetch;
pub mod shadowed;
pub mod well_known;

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use futures_util::future::join_all;

use crate::config::server_name::{Host, ServerName};
use crate::probe::discovery::dns::{Answer, DnsFailure, Known, SrvRecord};
use crate::probe::env::ProbeEnv;
use crate::report::address_class;
use crate::report::{
    DiscoveryReport, Failure, Method, Reason, RefusedAddress, SharedStr, SrvInfo, Stage, Step,
    TargetReport,
};

/// Most SRV targets a probe follows, and most addresses it probes; more are reported as truncated.
pub const MAX_TARGETS: usize = 32;
pub const MAX_ADDRESSES: usize = 32;

/// What discovery found: the report, server-level failures, and the endpoints to probe.
pub struct Discovery {
    pub report: DiscoveryReport,
    pub failures: Vec<Failure>,
    pub endpoints: Vec<Endpoint>,
    /// The connection the server well-known was fetched over (`https://<hostname>`, port 443), when still open:
    /// later requests to that origin (the client and support well-knowns) can ride it.
    pub kept: Option<fetch::Kept>,
    /// The addresses discovery looked up, so that a later fetch to the same host (the support well-known) does
    /// not ask again.
    pub known: Known,
}

/// One `ip:port` to probe, with the host it was resolved from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub address: SocketAddr,
    pub target_host: SharedStr,
}

/// Runs the spec algorithm for `name`.
pub async fn discover(env: &ProbeEnv, name: &ServerName) -> Discovery {
    let mut d = Discovery {
        report: DiscoveryReport::empty(""),
        failures: Vec::new(),
        endpoints: Vec::new(),
        kept: None,
        known: Known::default(),
    };
    (d.report.tls_name, d.report.host_header) = tls_name_and_host_header(name);
    let mut known = Known::default();
    let targets = match (name.host(), name.port()) {
        // Step 1 / step 2: IP literals and explicit ports skip well-known and SRV.
        (Host::Ip(_), _) | (Host::Dns(_), Some(_)) => direct(env, name, &mut d),
        // Step 3: "If the hostname is not an IP literal, a regular HTTPS request is made to
        // https://<hostname>/.well-known/matrix/server".
        (Host::Dns(hostname), None) => {
            let wk = well_known::lookup(env, &hostname, &mut known).await;
            d.report.steps.record(Step::WellKnown, wk.duration);
            d.report.well_known = wk.report;
            d.kept = wk.kept;
            match wk.delegated {
                Some(delegated) => {
                    d.report.delegated_server = Some(delegated.as_str().into());
                    // Steps 3.1 to 3.5 apply to the delegated name; the Host header and the certificate name
                    // follow it ("Host header ... containing the IP address", "<delegated_hostname>:<port>",
                    // "<delegated_hostname>").
                    (d.report.tls_name, d.report.host_header) =
                        tls_name_and_host_header(&delegated);
                    let follow = async {
                        let targets = match (delegated.host(), delegated.port()) {
                            (Host::Ip(_), _) | (Host::Dns(_), Some(_)) => {
                                direct(env, &delegated, &mut d)
                            }
                            (Host::Dns(h), None) => srv_steps(env, &h, &mut d, &known).await,
                        };
                        resolve_targets(env, targets, &mut d, &known).await;
                    };
                    // The server name's own SRV records, which the delegation shadows, are looked up while the
                    // delegated name resolves (DESIGN.md, "What the certificates FAQ warns about", point 8).
                    if shadowed::shadows(&hostname, &delegated) {
                        let ((), mut found) = futures_util::future::join(
                            follow,
                            shadowed::lookup(env, &hostname, &known),
                        )
                        .await;
                        shadowed::judge(&mut found, &d.report.targets);
                        d.report.shadowed_srv = Some(Box::new(found));
                    } else {
                        follow.await;
                    }
                    d.known = known;
                    return d;
                }
                // "If the response is invalid ... skip to step 4."
                None => srv_steps(env, &hostname, &mut d, &known).await,
            }
        }
    };
    resolve_targets(env, targets, &mut d, &known).await;
    d.known = known;
    d
}

/// The name the certificate must hold (the hostname: no port, no brackets) and the `Host` header (the name as
/// written). They share one string when they are the same text, as for a DNS name without a port.
fn tls_name_and_host_header(name: &ServerName) -> (SharedStr, SharedStr) {
    let host_header = SharedStr::from(name.shared_str());
    let hostname = name.hostname();
    let tls_name = if hostname == host_header.as_str() {
        host_header.clone()
    } else {
        hostname.into()
    };
    (tls_name, host_header)
}

/// `host` as text, sharing the report's certificate name or `Host` header when it is the same name (as it is
/// unless an SRV record names another host).
fn shared_name(report: &DiscoveryReport, host: &Host) -> SharedStr {
    let text = match host {
        Host::Dns(h) => h.clone(),
        Host::Ip(ip) => ip.to_string(),
    };
    [&report.tls_name, &report.host_header]
        .into_iter()
        .find(|known| known.as_str() == text)
        .map_or_else(|| text.into(), Clone::clone)
}

/// A host to resolve (or an IP to use as is), the port, and the SRV record it came from.
struct Target {
    host: Host,
    port: u16,
    srv: Option<SrvInfo>,
}

/// Steps 1, 2, 3.1 and 3.2: an IP literal, or a DNS name with an explicit port.
fn direct(env: &ProbeEnv, name: &ServerName, d: &mut Discovery) -> Vec<Target> {
    d.report.method = match name.host() {
        Host::Ip(_) => Method::IpLiteral,
        Host::Dns(_) => Method::ExplicitPort,
    };
    // "... together with the given port number, or 8448 if no port is given."
    let port = name.port().unwrap_or(env.ports.federation);
    vec![Target {
        host: name.host(),
        port,
        srv: None,
    }]
}

/// Steps 3.3 to 3.5 (for a delegated name) and 4 to 6 (for the server name): `_matrix-fed._tcp`, then the
/// deprecated `_matrix._tcp`, then the name itself on 8448.
async fn srv_steps(
    env: &ProbeEnv,
    hostname: &str,
    d: &mut Discovery,
    known: &Known,
) -> Vec<Target> {
    let start = Instant::now();
    let (result, asked_before) = srv_lookup(env, hostname, known).await;
    // Answers the server name's address lookup already brought count the time of that exchange.
    d.report
        .steps
        .record(Step::Srv, asked_before.unwrap_or_else(|| start.elapsed()));
    match result {
        Ok(Some((method, records, truncated))) => {
            d.report.method = method;
            d.report.truncated |= truncated;
            srv_targets(records, d)
        }
        Ok(None) => {
            // "If no SRV record is found, an IP address is resolved using CNAME, AAAA or A records. Requests
            // are made to the resolved IP address and a port of 8448".
            d.report.method = Method::DefaultPort;
            vec![Target {
                host: Host::Dns(hostname.to_owned()),
                port: env.ports.federation,
                srv: None,
            }]
        }
        Err(f) => {
            // A SERVFAIL or timeout is not "not found": the spec falls through only when the record was not
            // found, so federation lookup fails (as in Synapse's `SrvResolver`).
            d.report.method = Method::None;
            d.failures
                .push(Failure::new(Stage::Dns, f.reason, f.message));
            Vec::new()
        }
    }
}

type SrvFound = Option<(Method, Vec<SrvRecord>, bool)>;

/// The SRV answer of steps 4 and 5 (or 3.3 and 3.4), and when both came from the server name's first exchange
/// (`known`), how long that took.
async fn srv_lookup(
    env: &ProbeEnv,
    hostname: &str,
    known: &Known,
) -> (Result<SrvFound, DnsFailure>, Option<std::time::Duration>) {
    let [fed, legacy] = dns::srv_names(hostname);
    // "If the /.well-known request resulted in an error response, a server is found by resolving an SRV
    // record for _matrix-fed._tcp.<hostname>."
    let (answer, mut took) = env.dns.srv_once(&fed, known).await;
    match answer {
        Err(f) => return (Err(f), took),
        Ok(Answer::Found((records, truncated))) => {
            return (Ok(Some((Method::SrvMatrixFed, records, truncated))), took);
        }
        Ok(_) => {}
    }
    // "[Deprecated] If the /.well-known request resulted in an error response, and a _matrix-fed._tcp.<hostname>
    // SRV record was not found, a server is found by resolving a _matrix._tcp.<hostname> SRV record."
    let (answer, legacy_took) = env.dns.srv_once(&legacy, known).await;
    took = took.and(legacy_took);
    let found = match answer {
        Err(f) => Err(f),
        Ok(Answer::Found((records, truncated))) => {
            Ok(Some((Method::SrvMatrix, records, truncated)))
        }
        Ok(_) => Ok(None),
    };
    (found, took)
}

/// Every SRV target, ordered by priority and then by weight (heaviest first), duplicates removed. A target
/// of `.` ("service decidedly not available", RFC 2782) or an invalid host name is a failure.
fn srv_targets(mut records: Vec<SrvRecord>, d: &mut Discovery) -> Vec<Target> {
    records.sort_by_key(|r| (r.priority, std::cmp::Reverse(r.weight)));
    let mut targets: Vec<Target> = Vec::new();
    for r in records {
        if r.target == "." {
            d.failures.push(Failure::new(
                Stage::Discovery,
                Reason::SrvTargetInvalid,
                "SRV target is \".\": the service is declared unavailable",
            ));
            continue;
        }
        let host = match ServerName::parse(&r.target) {
            Ok(n) if n.port().is_none() => n.host(),
            _ => {
                d.failures.push(Failure::new(
                    Stage::Discovery,
                    Reason::SrvTargetInvalid,
                    format!("SRV target {:?} is not a host name", r.target),
                ));
                continue;
            }
        };
        if targets.iter().any(|t| t.host == host && t.port == r.port) {
            continue;
        }
        if targets.len() == MAX_TARGETS {
            d.report.truncated = true;
            break;
        }
        targets.push(Target {
            host,
            port: r.port,
            srv: Some(SrvInfo {
                priority: r.priority,
                weight: r.weight,
            }),
        });
    }
    targets
}

/// Resolves every target's A and AAAA records concurrently ("resolve the hostname to an IP address using
/// CNAME, AAAA or A records") and lists the endpoints.
async fn resolve_targets(env: &ProbeEnv, targets: Vec<Target>, d: &mut Discovery, known: &Known) {
    let start = Instant::now();
    let any_dns = targets.iter().any(|t| matches!(t.host, Host::Dns(_)));
    let resolved = join_all(targets.iter().map(|t| resolve_one(env, t, known))).await;
    if any_dns {
        d.report.steps.record(Step::AddressLookup, start.elapsed());
    }
    for (
        target,
        Resolved {
            ips,
            via_cname,
            truncated,
            failures,
        },
    ) in targets.into_iter().zip(resolved)
    {
        d.failures.extend(failures);
        d.report.truncated |= truncated;
        let host = shared_name(&d.report, &target.host);
        for ip in &ips {
            let address = SocketAddr::new(*ip, target.port);
            if !env.allow_private_addresses && address_class::refused_by_default(*ip) {
                // A default-configured peer never connects here, so the public view does not either.
                if d.report.refused.len() == MAX_ADDRESSES {
                    d.report.truncated = true;
                } else {
                    d.report.refused.push(RefusedAddress {
                        address,
                        target_host: host.clone(),
                    });
                }
                continue;
            }
            if d.endpoints.len() == MAX_ADDRESSES {
                d.report.truncated = true;
                break;
            }
            d.endpoints.push(Endpoint {
                address,
                target_host: host.clone(),
            });
        }
        d.report.targets.push(TargetReport {
            host,
            port: target.port,
            srv: target.srv,
            addresses: ips,
            via_cname,
        });
    }
    if d.endpoints.is_empty() && !d.report.refused.is_empty() {
        d.failures.push(not_public(&d.report.refused));
    }
}

/// The `address_not_public` failure: every address discovery found is one peers refuse.
fn not_public(refused: &[RefusedAddress]) -> Failure {
    let list = refused
        .iter()
        .map(|r| format!("{} ({})", r.address, r.class()))
        .collect::<Vec<_>>()
        .join(", ");
    Failure::new(
        Stage::Discovery,
        Reason::AddressNotPublic,
        format!(
            "unreachable for default-configured peers: every address is in a range Synapse refuses \
             (ip_range_blacklist): {list}"
        ),
    )
}

/// The A and AAAA answers of one target, with its failures classified.
#[derive(Default)]
struct Resolved {
    /// IPv6 first.
    ips: Vec<IpAddr>,
    via_cname: bool,
    truncated: bool,
    failures: Vec<Failure>,
}

async fn resolve_one(env: &ProbeEnv, target: &Target, known: &Known) -> Resolved {
    let host = match &target.host {
        Host::Ip(ip) => {
            return Resolved {
                ips: vec![*ip],
                ..Resolved::default()
            };
        }
        Host::Dns(h) => h,
    };
    // The server name was resolved already when the well-known fetch asked for it.
    let found = match known.get(host) {
        Some(found) => found.clone(),
        None => env.dns.host(host).await,
    };
    let mut failures: Vec<Failure> = found
        .failures
        .into_iter()
        .map(|f| Failure::new(Stage::Dns, f.reason, f.message))
        .collect();
    if found.ips.is_empty() && failures.is_empty() {
        failures.push(if found.nxdomain {
            Failure::new(
                Stage::Dns,
                Reason::DnsNxdomain,
                format!("{host} does not exist (NXDOMAIN)"),
            )
        } else {
            Failure::new(
                Stage::Dns,
                Reason::DnsNoRecords,
                format!("{host} has no A or AAAA record"),
            )
        });
    }
    Resolved {
        ips: found.ips,
        via_cname: found.via_cname,
        truncated: found.truncated,
        failures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Timeouts;
    use crate::probe::env::Ports;
    use crate::report::{AddressClass, ServerReport, Warning};

    /// An environment whose resolver is never asked: every target below is an IP literal.
    fn env(allow_private_addresses: bool) -> ProbeEnv {
        let unused_dns: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut env = ProbeEnv::new(
            &[unused_dns],
            rustls::RootCertStore::empty(),
            Ports::default(),
            Timeouts::default(),
        )
        .unwrap();
        env.allow_private_addresses = allow_private_addresses;
        env
    }

    /// Runs the address step on IP-literal targets only: no DNS, no connection.
    async fn resolve(env: &ProbeEnv, ips: &[&str]) -> Discovery {
        let mut d = Discovery {
            report: DiscoveryReport::empty("mixed.example"),
            failures: Vec::new(),
            endpoints: Vec::new(),
            kept: None,
            known: Known::default(),
        };
        let targets = ips
            .iter()
            .map(|ip| Target {
                host: Host::Ip(ip.parse().unwrap()),
                port: 8448,
                srv: None,
            })
            .collect();
        resolve_targets(env, targets, &mut d, &Known::default()).await;
        d
    }

    fn endpoints(d: &Discovery) -> Vec<String> {
        d.endpoints.iter().map(|e| e.address.to_string()).collect()
    }

    fn refused(d: &Discovery) -> Vec<(String, AddressClass)> {
        d.report
            .refused
            .iter()
            .map(|r| (r.address.to_string(), r.class()))
            .collect()
    }

    const MIXED: &[&str] = &["10.0.0.5", "8.8.8.8", "fd00::5", "2001:4860::1"];

    #[tokio::test]
    async fn the_public_view_leaves_refused_addresses_unprobed() {
        let d = resolve(&env(false), MIXED).await;
        assert_eq!(endpoints(&d), ["8.8.8.8:8448", "[2001:4860::1]:8448"]);
        assert_eq!(
            refused(&d),
            [
                ("10.0.0.5:8448".to_owned(), AddressClass::Private),
                ("[fd00::5]:8448".to_owned(), AddressClass::Private),
            ]
        );
        assert!(d.failures.is_empty(), "{:?}", d.failures);

        // Warnings need a probed address; a report without one has none.
        let report = ServerReport {
            addresses: Vec::new(),
            discovery: d.report,
            ..ServerReport::timed_out(
                "mixed.example",
                std::time::UNIX_EPOCH,
                std::time::Duration::ZERO,
            )
        };
        assert!(
            report.warnings().is_empty(),
            "no address probed: no warning"
        );
    }

    #[tokio::test]
    async fn mixed_addresses_give_one_warning_per_refused_address() {
        let d = resolve(&env(false), MIXED).await;
        let probed = d
            .endpoints
            .iter()
            .map(|e| crate::report::AddressReport::new(e.address, e.target_host.clone()))
            .collect();
        let report = ServerReport {
            history: crate::report::History::default(),
            key_history: crate::report::KeyHistory::default(),
            local_certs: crate::report::LocalCertsReport::default(),
            server_name: "mixed.example".into(),
            started_at: std::time::UNIX_EPOCH,
            finished_at: std::time::UNIX_EPOCH,
            duration: std::time::Duration::ZERO,
            discovery: d.report,
            addresses: probed,
            failures: d.failures,
            client: None,
            support: None,
        };
        assert!(report.success(), "a warning does not fail the probe");
        let warnings = report.warnings();
        let got: Vec<_> = warnings
            .iter()
            .map(|w| (w.warning, w.address.map(|a| a.to_string())))
            .collect();
        assert_eq!(
            got,
            [
                (Warning::AddressNotPublic, Some("10.0.0.5:8448".to_owned())),
                (Warning::AddressNotPublic, Some("[fd00::5]:8448".to_owned())),
            ]
        );
        let message = crate::render::explain::warning_message(&warnings[0]);
        assert!(message.contains("is not public (private)"), "{message}");
    }

    #[tokio::test]
    async fn only_refused_addresses_fail_discovery() {
        let d = resolve(
            &env(false),
            &["127.0.0.1", "::1", "100.64.1.1", "::ffff:192.168.1.1"],
        )
        .await;
        assert!(d.endpoints.is_empty());
        assert_eq!(d.report.refused.len(), 4);
        let reasons: Vec<_> = d.failures.iter().map(|f| (f.stage, f.reason)).collect();
        assert_eq!(reasons, [(Stage::Discovery, Reason::AddressNotPublic)]);
        let message = &d.failures[0].message;
        for part in [
            "127.0.0.1:8448 (loopback)",
            "[::1]:8448 (loopback)",
            "100.64.1.1:8448 (cgnat)",
            "[::ffff:192.168.1.1]:8448 (private)",
        ] {
            assert!(message.contains(part), "{part}: {message}");
        }
    }

    #[tokio::test]
    async fn allowing_private_addresses_probes_everything() {
        let d = resolve(&env(true), MIXED).await;
        assert_eq!(endpoints(&d).len(), MIXED.len());
        assert!(d.report.refused.is_empty() && d.failures.is_empty());
        let d = resolve(&env(true), &["127.0.0.1"]).await;
        assert_eq!(endpoints(&d), ["127.0.0.1:8448"]);
        assert!(d.failures.is_empty());
    }

    #[tokio::test]
    async fn refused_addresses_are_capped_too() {
        let many: Vec<String> = (0..40).map(|i| format!("10.0.0.{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let d = resolve(&env(false), &many).await;
        assert_eq!(d.report.refused.len(), MAX_ADDRESSES);
        assert!(d.report.truncated);
    }
}
