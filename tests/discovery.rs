//! Scenario tests: one small table row per discovery path and per failure reason, each run against its own
//! hermetic world (fake DNS, test CA, fake homeservers on loopback) through the real probe.
//!
//! A scenario is data: DNS records, servers (address, certificate, behaviour) and the expected report.
//! `{wk}`, `{fed}`, `{x1}` and `{x2}` in names and addresses stand for the world's ports (443 and 8448 are
//! remapped to `{wk}` and `{fed}` through `ProbeEnv::ports`). Every test also checks, for every federation
//! server that was reached, that the SNI sent was the spec's certificate name (none for IP literals), never
//! an SRV target.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use matrix_federation_exporter::config::server_name::ServerName;
use matrix_federation_exporter::config::{Checks, Timeouts};
use matrix_federation_exporter::probe::env::{Ports, ProbeEnv};
use matrix_federation_exporter::probe::probe_server;
use matrix_federation_exporter::render::explain;
use matrix_federation_exporter::report::{
    AddressClass, Method, Reason, ServerReport, SharedStr, SupportResult, Warning, WellKnownOutcome,
};
use support::{
    Behaviour, FakeDns, FakeServer, Leaf, PortAnchor, Reply, Routes, SilentDns, TIMEOUTS, TestCa,
    Validity, Zone, keys,
};

/// The world's ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum P {
    Wk,
    Fed,
    X1,
    X2,
}

enum Rec {
    A(&'static str, &'static str),
    Aaaa(&'static str, &'static str),
    Cname(&'static str, &'static str),
    Srv(&'static str, u16, u16, P, &'static str),
    ServFail(&'static str),
    Txt(&'static str),
}

#[derive(Clone, Copy)]
enum Cert {
    /// Issued by the world's trusted CA, with the intermediate.
    Good(&'static [&'static str], Validity),
    /// Issued by the trusted CA but sent without its intermediate.
    NoIntermediate(&'static [&'static str]),
    /// Issued by the trusted CA, sent with its intermediate and an expired cross-sign of it nobody needs.
    ExpiredExtra(&'static [&'static str]),
    SelfSigned(&'static [&'static str]),
    /// Issued by a CA nobody trusts.
    Untrusted(&'static [&'static str]),
}

enum Serve {
    /// A healthy homeserver for the probed server name: TLS, a signed key document, a version.
    Matrix(Cert),
    /// A homeserver whose keys or version answer is wrong in one way.
    Broken(Cert, Broken),
    /// A well-known server: TLS and one reply for `/.well-known/matrix/server`.
    WellKnown(Cert, WkReply),
    /// Accepts TCP and never says anything.
    Silent,
    /// Answers in plain text, not TLS.
    Garbage,
}

#[derive(Clone, Copy)]
enum Broken {
    /// The key document names another server.
    KeysOtherServer,
    /// One byte of the signature is changed.
    KeysBadSignature,
    /// Only a non-ed25519 key.
    KeysNoEd25519,
    /// `valid_until_ts` an hour ago.
    KeysExpired,
    /// 404 for the keys.
    KeysNotFound,
    /// The keys request never gets an answer.
    KeysHang,
    /// The version answer is an HTML page (a proxy sends /_matrix elsewhere).
    VersionHtml,
}

enum WkReply {
    Json(&'static str),
    Status(u16),
    Redirect(&'static str),
    Big(usize),
    Hang,
}

struct Srv(&'static str, P, Serve);

struct Want {
    method: Method,
    well_known: WellKnownOutcome,
    delegated: Option<&'static str>,
    tls_name: &'static str,
    host_header: &'static str,
    /// Every probed address with the reasons it failed for (empty: it passed), in any order.
    addresses: &'static [(&'static str, &'static [Reason])],
    server_failures: &'static [Reason],
}

struct Scenario {
    server_name: &'static str,
    zone: &'static [Rec],
    servers: &'static [Srv],
    want: Want,
}

const OK: &[Reason] = &[];
const VALID: Validity = Validity::Valid;

/// A running world: its ports, DNS and servers live as long as this value.
struct World {
    ports: [(P, u16); 4],
    ca: TestCa,
    dns: FakeDns,
    servers: Vec<(P, FakeServer)>,
    _anchors: Vec<PortAnchor>,
}

impl World {
    /// `server_name` (with port placeholders) is the name the homeservers' key documents carry.
    async fn start(server_name: &str, zone: &[Rec], servers: &[Srv]) -> World {
        let mut anchors: Vec<PortAnchor> = (0..4).map(|_| PortAnchor::new()).collect();
        let ports = [
            (P::Wk, anchors[0].port),
            (P::Fed, anchors[1].port),
            (P::X1, anchors[2].port),
            (P::X2, anchors[3].port),
        ];
        let port = |p: P| ports.iter().find(|(q, _)| *q == p).unwrap().1;
        let mut z = Zone::new();
        for rec in zone {
            z = match *rec {
                Rec::A(n, ip) => z.a(n, ip.parse().unwrap()),
                Rec::Aaaa(n, ip) => z.aaaa(n, ip.parse().unwrap()),
                Rec::Cname(n, t) => z.cname(n, t),
                Rec::Srv(n, prio, weight, p, t) => z.srv(n, prio, weight, port(p), t),
                Rec::ServFail(n) => z.servfail(n),
                Rec::Txt(n) => z.txt(n, "no addresses here"),
            };
        }
        let dns = FakeDns::start(z).await;
        let server_name = subst(server_name, &ports);
        let ca = TestCa::new("scenario");
        let mut started = Vec::new();
        for Srv(ip, p, serve) in servers {
            let ip: IpAddr = ip.parse().unwrap();
            let anchor = &mut anchors[ports.iter().position(|(q, _)| q == p).unwrap()];
            let behaviour = match serve {
                Serve::Matrix(cert) => Behaviour::Https {
                    leaf: leaf(&ca, *cert),
                    routes: keys::matrix_routes(&server_name),
                },
                Serve::Broken(cert, broken) => Behaviour::Https {
                    leaf: leaf(&ca, *cert),
                    routes: broken_routes(&server_name, *broken),
                },
                Serve::WellKnown(cert, reply) => {
                    let reply = match reply {
                        WkReply::Json(body) => Reply::json(200, subst(body, &ports)),
                        WkReply::Status(s) => Reply::json(*s, "{}"),
                        WkReply::Redirect(to) => Reply::Redirect {
                            status: 302,
                            location: subst(to, &ports),
                        },
                        WkReply::Big(n) => Reply::Big { bytes: *n },
                        WkReply::Hang => Reply::Hang,
                    };
                    Behaviour::Https {
                        leaf: leaf(&ca, *cert),
                        routes: Routes::new().route("/.well-known/matrix/server", reply),
                    }
                }
                Serve::Silent => Behaviour::SilentTcp,
                Serve::Garbage => Behaviour::Garbage,
            };
            started.push((*p, FakeServer::start(anchor.bind(ip), behaviour).await));
        }
        // Nothing else listens on [::1]:P, so a connection there is refused, not parked in a backlog. Releasing
        // it is safe: the anchor keeps 127.0.0.1:P, so no other test's anchor can pick P.
        for anchor in &mut anchors {
            drop(anchor.take_v6());
        }
        World {
            ports,
            ca,
            dns,
            servers: started,
            _anchors: anchors,
        }
    }

    fn env(&self, timeouts: Timeouts) -> ProbeEnv {
        self.env_with_dns(self.dns.addr, timeouts)
    }

    fn env_with_dns(&self, dns: SocketAddr, timeouts: Timeouts) -> ProbeEnv {
        let ports = Ports {
            well_known: self.port(P::Wk),
            federation: self.port(P::Fed),
        };
        ProbeEnv::new(&[dns], self.ca.root_store(), ports, timeouts).unwrap()
    }

    fn port(&self, p: P) -> u16 {
        self.ports.iter().find(|(q, _)| *q == p).unwrap().1
    }

    /// The SNI values federation servers (not well-known servers) saw.
    fn federation_sni(&self) -> Vec<Option<String>> {
        self.servers
            .iter()
            .filter(|(p, _)| *p != P::Wk)
            .flat_map(|(_, s)| s.sni_seen())
            .collect()
    }
}

fn broken_routes(server_name: &str, broken: Broken) -> Routes {
    const KEYS: &str = "/_matrix/key/v2/server";
    let key = keys::SigningKey::generate("ed25519:k1");
    let day = keys::now_ms() + 86_400_000;
    let good = keys::key_document(server_name, &[&key], day);
    let keys_reply = match broken {
        Broken::KeysOtherServer => {
            Reply::json(200, keys::key_document("someone-else.test", &[&key], day))
        }
        Broken::KeysBadSignature => {
            let mut doc: serde_json::Value = serde_json::from_str(&good).unwrap();
            let sig = doc["signatures"][server_name]["ed25519:k1"]
                .as_str()
                .unwrap()
                .to_owned();
            // Change one character of the base64 signature (A<->B keeps it valid base64).
            let first = if sig.starts_with('A') { "B" } else { "A" };
            doc["signatures"][server_name]["ed25519:k1"] = format!("{first}{}", &sig[1..]).into();
            Reply::json(200, doc.to_string())
        }
        Broken::KeysNoEd25519 => {
            let mut doc = serde_json::json!({
                "server_name": server_name,
                "verify_keys": {"curve25519:x": {"key": "AAAA"}},
                "old_verify_keys": {},
                "valid_until_ts": day,
            });
            keys::sign_json(&mut doc, server_name, &key);
            Reply::json(200, doc.to_string())
        }
        Broken::KeysExpired => Reply::json(
            200,
            keys::key_document(server_name, &[&key], keys::now_ms() - 3_600_000),
        ),
        Broken::KeysNotFound => Reply::json(
            404,
            r#"{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}"#,
        ),
        Broken::KeysHang => Reply::Hang,
        Broken::VersionHtml => Reply::json(200, good),
    };
    let routes = keys::matrix_routes_with_keys(String::new()).route(KEYS, keys_reply);
    if let Broken::VersionHtml = broken {
        let html = Reply::Raw {
            status: 200,
            headers: vec![("content-type".into(), "text/html".into())],
            body: b"<!doctype html><html><body>Welcome to nginx!</body></html>".to_vec(),
        };
        return routes.route("/_matrix/federation/v1/version", html);
    }
    routes
}

fn leaf(ca: &TestCa, cert: Cert) -> Leaf {
    match cert {
        Cert::Good(names, validity) => ca.leaf(names, validity),
        Cert::NoIntermediate(names) => ca.leaf_without_intermediate(names, VALID),
        Cert::ExpiredExtra(names) => ca.leaf_with_expired_cross_sign(names, VALID),
        Cert::SelfSigned(names) => support::self_signed(names, VALID),
        Cert::Untrusted(names) => TestCa::new("nobody trusts this one").leaf(names, VALID),
    }
}

fn subst(text: &str, ports: &[(P, u16); 4]) -> String {
    let mut out = text.to_owned();
    for (p, port) in ports {
        let key = match p {
            P::Wk => "{wk}",
            P::Fed => "{fed}",
            P::X1 => "{x1}",
            P::X2 => "{x2}",
        };
        out = out.replace(key, &port.to_string());
    }
    out
}

async fn run(s: &Scenario) -> ServerReport {
    let world = World::start(s.server_name, s.zone, s.servers).await;
    let name = ServerName::parse(&subst(s.server_name, &world.ports)).unwrap();
    let report = probe_server(&world.env(TIMEOUTS), &name).await;
    check(&world, s, &report);
    report
}

fn check(world: &World, s: &Scenario, report: &ServerReport) {
    let w = &s.want;
    let d = &report.discovery;
    let context = format!("{report:#?}");
    assert_eq!(d.method, w.method, "method\n{context}");
    assert_eq!(
        d.well_known.outcome, w.well_known,
        "well-known outcome\n{context}"
    );
    assert_eq!(
        d.delegated_server.as_deref(),
        w.delegated.map(|x| subst(x, &world.ports)).as_deref(),
        "delegated"
    );
    assert_eq!(d.tls_name, w.tls_name, "TLS name\n{context}");
    assert_eq!(
        d.host_header,
        subst(w.host_header, &world.ports),
        "Host header\n{context}"
    );
    let mut got: Vec<(String, Vec<Reason>)> = report
        .addresses
        .iter()
        .map(|a| {
            (
                a.address.to_string(),
                a.failures.iter().map(|f| f.reason).collect(),
            )
        })
        .collect();
    let mut want: Vec<(String, Vec<Reason>)> = w
        .addresses
        .iter()
        .map(|(a, r)| (subst(a, &world.ports), r.to_vec()))
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "addresses and their failures\n{context}");
    let server_failures: Vec<Reason> = report.failures.iter().map(|f| f.reason).collect();
    assert_eq!(
        server_failures, w.server_failures,
        "server-level failures\n{context}"
    );
    let should_pass = !w.addresses.is_empty()
        && w.server_failures.is_empty()
        && w.addresses.iter().all(|(_, r)| r.is_empty());
    assert_eq!(report.success(), should_pass, "probe success\n{context}");
    let tester = upstream_shape(report);
    assert_eq!(tester["FederationOK"], should_pass, "{tester:#}");
    // "SNI should be sent for the certificate which is expected, unless that certificate is expected to be an
    // IP address in which case SNI is not supported and should not be sent."
    let expected_sni = if w.tls_name.parse::<IpAddr>().is_ok() {
        None
    } else {
        Some(w.tls_name.to_owned())
    };
    for sni in world.federation_sni() {
        assert_eq!(
            sni, expected_sni,
            "SNI sent to a federation server\n{context}"
        );
    }
    // Every address that completed a handshake has a chain with expiry facts, valid or not.
    for a in &report.addresses {
        if a.tls.is_some() {
            let cert = a
                .certificate
                .as_ref()
                .expect("certificate verdict after a handshake");
            assert!(
                !cert.chain.is_empty() && cert.chain[0].not_after > 0,
                "{context}"
            );
        }
    }
}

/// Issue 13: every path and failure of the world reads, in the report API, as upstream's Go types and as
/// fed-tester-ui reads them.
fn upstream_shape(report: &ServerReport) -> serde_json::Value {
    let tester = support::tester_shape::assert_upstream_shape(
        &matrix_federation_exporter::render::tester::tester_report_pretty(report),
    );
    support::tester_shape::read_like_fed_tester_ui(&tester)
        .unwrap_or_else(|e| panic!("{e}\n{tester:#}"));
    tester
}

macro_rules! scenarios {
    ($($name:ident: $s:expr;)+) => {
        $(
            #[tokio::test]
            async fn $name() {
                static S: Scenario = $s;
                run(&S).await;
            }
        )+
    };
}

scenarios! {
    // Step 6: no well-known (nothing on 443), no SRV: the name itself on 8448.
    direct_on_default_port: Scenario {
        server_name: "direct.test",
        zone: &[Rec::A("direct.test", "127.0.0.2")],
        servers: &[Srv("127.0.0.2", P::Fed, Serve::Matrix(Cert::Good(&["direct.test"], VALID)))],
        want: Want {
            method: Method::DefaultPort, well_known: WellKnownOutcome::ConnectionFailed, delegated: None,
            tls_name: "direct.test", host_header: "direct.test",
            addresses: &[("127.0.0.2:{fed}", OK)], server_failures: &[],
        },
    };

    // Step 2: an explicit port skips well-known and SRV (the SRV record here must be ignored).
    explicit_port: Scenario {
        server_name: "explicit.test:{x1}",
        zone: &[
            Rec::A("explicit.test", "127.0.0.2"),
            Rec::Srv("_matrix-fed._tcp.explicit.test", 10, 0, P::X2, "elsewhere.test"),
        ],
        servers: &[Srv("127.0.0.2", P::X1, Serve::Matrix(Cert::Good(&["explicit.test"], VALID)))],
        want: Want {
            method: Method::ExplicitPort, well_known: WellKnownOutcome::Skipped, delegated: None,
            tls_name: "explicit.test", host_header: "explicit.test:{x1}",
            addresses: &[("127.0.0.2:{x1}", OK)], server_failures: &[],
        },
    };

    // Step 1: an IPv4 literal with a port; the certificate must carry the IP; no SNI is sent.
    ipv4_literal_with_port: Scenario {
        server_name: "127.0.0.3:{x1}",
        zone: &[],
        servers: &[Srv("127.0.0.3", P::X1, Serve::Matrix(Cert::Good(&["127.0.0.3"], VALID)))],
        want: Want {
            method: Method::IpLiteral, well_known: WellKnownOutcome::Skipped, delegated: None,
            tls_name: "127.0.0.3", host_header: "127.0.0.3:{x1}",
            addresses: &[("127.0.0.3:{x1}", OK)], server_failures: &[],
        },
    };

    // Step 1 without a port: 8448.
    ipv4_literal_default_port: Scenario {
        server_name: "127.0.0.4",
        zone: &[],
        servers: &[Srv("127.0.0.4", P::Fed, Serve::Matrix(Cert::Good(&["127.0.0.4"], VALID)))],
        want: Want {
            method: Method::IpLiteral, well_known: WellKnownOutcome::Skipped, delegated: None,
            tls_name: "127.0.0.4", host_header: "127.0.0.4",
            addresses: &[("127.0.0.4:{fed}", OK)], server_failures: &[],
        },
    };

    // Step 1 with a bracketed IPv6 literal and no port: the certificate name has no brackets, the Host header
    // keeps them.
    ipv6_literal_default_port: Scenario {
        server_name: "[::1]",
        zone: &[],
        servers: &[Srv("::1", P::Fed, Serve::Matrix(Cert::Good(&["::1"], VALID)))],
        want: Want {
            method: Method::IpLiteral, well_known: WellKnownOutcome::Skipped, delegated: None,
            tls_name: "::1", host_header: "[::1]",
            addresses: &[("[::1]:{fed}", OK)], server_failures: &[],
        },
    };

    // Step 1 with a bracketed IPv6 literal.
    ipv6_literal: Scenario {
        server_name: "[::1]:{x1}",
        zone: &[],
        servers: &[Srv("::1", P::X1, Serve::Matrix(Cert::Good(&["::1"], VALID)))],
        want: Want {
            method: Method::IpLiteral, well_known: WellKnownOutcome::Skipped, delegated: None,
            tls_name: "::1", host_header: "[::1]:{x1}",
            addresses: &[("[::1]:{x1}", OK)], server_failures: &[],
        },
    };

    // An IP literal whose certificate names only a DNS name fails: the IP itself must be in the certificate.
    ip_literal_without_ip_san: Scenario {
        server_name: "127.0.0.5:{x1}",
        zone: &[],
        servers: &[Srv("127.0.0.5", P::X1, Serve::Matrix(Cert::Good(&["ip.test"], VALID)))],
        want: Want {
            method: Method::IpLiteral, well_known: WellKnownOutcome::Skipped, delegated: None,
            tls_name: "127.0.0.5", host_header: "127.0.0.5:{x1}",
            addresses: &[("127.0.0.5:{x1}", &[Reason::CertHostnameMismatch])], server_failures: &[],
        },
    };

    // Step 4: `_matrix-fed._tcp` to a target whose certificate names the server name: passes.
    srv_matrix_fed: Scenario {
        server_name: "srv.test",
        zone: &[
            Rec::Srv("_matrix-fed._tcp.srv.test", 10, 0, P::X1, "target.srv.test"),
            Rec::A("target.srv.test", "127.0.0.2"),
        ],
        servers: &[Srv("127.0.0.2", P::X1, Serve::Matrix(Cert::Good(&["srv.test"], VALID)))],
        want: Want {
            method: Method::SrvMatrixFed, well_known: WellKnownOutcome::DnsError, delegated: None,
            tls_name: "srv.test", host_header: "srv.test",
            addresses: &[("127.0.0.2:{x1}", OK)], server_failures: &[],
        },
    };

    // The classic MSC1711 breakage: the SRV target's certificate names only the target.
    srv_target_certificate_lacks_server_name: Scenario {
        server_name: "srvbad.test",
        zone: &[
            Rec::Srv("_matrix-fed._tcp.srvbad.test", 10, 0, P::X1, "matrix.srvbad.test"),
            Rec::A("matrix.srvbad.test", "127.0.0.2"),
        ],
        servers: &[Srv("127.0.0.2", P::X1, Serve::Matrix(Cert::Good(&["matrix.srvbad.test"], VALID)))],
        want: Want {
            method: Method::SrvMatrixFed, well_known: WellKnownOutcome::DnsError, delegated: None,
            tls_name: "srvbad.test", host_header: "srvbad.test",
            addresses: &[("127.0.0.2:{x1}", &[Reason::CertHostnameMismatch])], server_failures: &[],
        },
    };

    // Step 5: only the deprecated `_matrix._tcp` record exists.
    srv_matrix_deprecated_only: Scenario {
        server_name: "old.test",
        zone: &[
            Rec::Srv("_matrix._tcp.old.test", 10, 0, P::X1, "host.old.test"),
            Rec::A("host.old.test", "127.0.0.2"),
        ],
        servers: &[Srv("127.0.0.2", P::X1, Serve::Matrix(Cert::Good(&["old.test"], VALID)))],
        want: Want {
            method: Method::SrvMatrix, well_known: WellKnownOutcome::DnsError, delegated: None,
            tls_name: "old.test", host_header: "old.test",
            addresses: &[("127.0.0.2:{x1}", OK)], server_failures: &[],
        },
    };

    // `_matrix-fed` wins over `_matrix` when both exist.
    srv_matrix_fed_preferred_over_deprecated: Scenario {
        server_name: "both.test",
        zone: &[
            Rec::Srv("_matrix-fed._tcp.both.test", 10, 0, P::X1, "new.both.test"),
            Rec::Srv("_matrix._tcp.both.test", 10, 0, P::X2, "old.both.test"),
            Rec::A("new.both.test", "127.0.0.2"),
            Rec::A("old.both.test", "127.0.0.3"),
        ],
        servers: &[Srv("127.0.0.2", P::X1, Serve::Matrix(Cert::Good(&["both.test"], VALID)))],
        want: Want {
            method: Method::SrvMatrixFed, well_known: WellKnownOutcome::DnsError, delegated: None,
            tls_name: "both.test", host_header: "both.test",
            addresses: &[("127.0.0.2:{x1}", OK)], server_failures: &[],
        },
    };

    // Several SRV records with priorities and weights: every target and address is probed.
    srv_several_targets_all_probed: Scenario {
        server_name: "multi.test",
        zone: &[
            Rec::Srv("_matrix-fed._tcp.multi.test", 10, 60, P::X1, "a.multi.test"),
            Rec::Srv("_matrix-fed._tcp.multi.test", 10, 40, P::X1, "b.multi.test"),
            Rec::Srv("_matrix-fed._tcp.multi.test", 20, 0, P::X2, "backup.multi.test"),
            Rec::A("a.multi.test", "127.0.0.2"),
            Rec::A("b.multi.test", "127.0.0.3"),
            Rec::A("backup.multi.test", "127.0.0.4"),
        ],
        servers: &[
            Srv("127.0.0.2", P::X1, Serve::Matrix(Cert::Good(&["multi.test"], VALID))),
            Srv("127.0.0.3", P::X1, Serve::Matrix(Cert::Good(&["multi.test"], VALID))),
        ],
        want: Want {
            method: Method::SrvMatrixFed, well_known: WellKnownOutcome::DnsError, delegated: None,
            tls_name: "multi.test", host_header: "multi.test",
            // The dead backup target is a real fault even though the preferred targets work.
            addresses: &[
                ("127.0.0.2:{x1}", OK),
                ("127.0.0.3:{x1}", OK),
                ("127.0.0.4:{x2}", &[Reason::ConnectionRefused]),
            ],
            server_failures: &[],
        },
    };

    // An SRV target of "." declares the service unavailable.
    srv_target_dot: Scenario {
        server_name: "dot.test",
        zone: &[Rec::Srv("_matrix-fed._tcp.dot.test", 0, 0, P::X1, ".")],
        servers: &[],
        want: Want {
            method: Method::SrvMatrixFed, well_known: WellKnownOutcome::DnsError, delegated: None,
            tls_name: "dot.test", host_header: "dot.test",
            addresses: &[], server_failures: &[Reason::SrvTargetInvalid],
        },
    };

    // SERVFAIL on `_matrix-fed._tcp` fails discovery: the spec falls through only when a record is not found.
    srv_servfail: Scenario {
        server_name: "servfail.test",
        zone: &[Rec::ServFail("_matrix-fed._tcp.servfail.test"), Rec::A("servfail.test", "127.0.0.2")],
        servers: &[Srv("127.0.0.2", P::Fed, Serve::Matrix(Cert::Good(&["servfail.test"], VALID)))],
        want: Want {
            method: Method::None, well_known: WellKnownOutcome::ConnectionFailed, delegated: None,
            tls_name: "servfail.test", host_header: "servfail.test",
            addresses: &[], server_failures: &[Reason::DnsError],
        },
    };

    // Step 3.2: well-known delegates to `host:port`.
    well_known_to_host_and_port: Scenario {
        server_name: "wk1.test",
        zone: &[Rec::A("wk1.test", "127.0.0.2"), Rec::A("deleg1.test", "127.0.0.3")],
        servers: &[
            Srv("127.0.0.2", P::Wk, Serve::WellKnown(Cert::Good(&["wk1.test"], VALID), WkReply::Json(r#"{"m.server":"deleg1.test:{x1}"}"#))),
            Srv("127.0.0.3", P::X1, Serve::Matrix(Cert::Good(&["deleg1.test"], VALID))),
        ],
        want: Want {
            method: Method::ExplicitPort, well_known: WellKnownOutcome::Delegated, delegated: Some("deleg1.test:{x1}"),
            tls_name: "deleg1.test", host_header: "deleg1.test:{x1}",
            addresses: &[("127.0.0.3:{x1}", OK)], server_failures: &[],
        },
    };

    // Step 3.3: the delegated host has its own `_matrix-fed` SRV; the certificate must name the delegated
    // host, not the SRV target.
    well_known_to_host_with_srv: Scenario {
        server_name: "wk2.test",
        zone: &[
            Rec::A("wk2.test", "127.0.0.2"),
            Rec::Srv("_matrix-fed._tcp.deleg2.test", 10, 0, P::X1, "t.deleg2.test"),
            Rec::A("t.deleg2.test", "127.0.0.3"),
        ],
        servers: &[
            Srv("127.0.0.2", P::Wk, Serve::WellKnown(Cert::Good(&["wk2.test"], VALID), WkReply::Json(r#"{"m.server":"deleg2.test"}"#))),
            Srv("127.0.0.3", P::X1, Serve::Matrix(Cert::Good(&["deleg2.test"], VALID))),
        ],
        want: Want {
            method: Method::SrvMatrixFed, well_known: WellKnownOutcome::Delegated, delegated: Some("deleg2.test"),
            tls_name: "deleg2.test", host_header: "deleg2.test",
            addresses: &[("127.0.0.3:{x1}", OK)], server_failures: &[],
        },
    };

    // Step 3.5: the delegated host has neither port nor SRV: its addresses on 8448.
    well_known_to_host_without_srv: Scenario {
        server_name: "wk3.test",
        zone: &[Rec::A("wk3.test", "127.0.0.2"), Rec::A("deleg3.test", "127.0.0.3")],
        servers: &[
            Srv("127.0.0.2", P::Wk, Serve::WellKnown(Cert::Good(&["wk3.test"], VALID), WkReply::Json(r#"{"m.server":"deleg3.test"}"#))),
            Srv("127.0.0.3", P::Fed, Serve::Matrix(Cert::Good(&["deleg3.test"], VALID))),
        ],
        want: Want {
            method: Method::DefaultPort, well_known: WellKnownOutcome::Delegated, delegated: Some("deleg3.test"),
            tls_name: "deleg3.test", host_header: "deleg3.test",
            addresses: &[("127.0.0.3:{fed}", OK)], server_failures: &[],
        },
    };

    // Step 3.1: well-known delegates to an IP literal with a port.
    well_known_to_ip_literal: Scenario {
        server_name: "wkip.test",
        zone: &[Rec::A("wkip.test", "127.0.0.2")],
        servers: &[
            Srv("127.0.0.2", P::Wk, Serve::WellKnown(Cert::Good(&["wkip.test"], VALID), WkReply::Json(r#"{"m.server":"127.0.0.3:{x1}"}"#))),
            Srv("127.0.0.3", P::X1, Serve::Matrix(Cert::Good(&["127.0.0.3"], VALID))),
        ],
        want: Want {
            method: Method::IpLiteral, well_known: WellKnownOutcome::Delegated, delegated: Some("127.0.0.3:{x1}"),
            tls_name: "127.0.0.3", host_header: "127.0.0.3:{x1}",
            addresses: &[("127.0.0.3:{x1}", OK)], server_failures: &[],
        },
    };

    // A redirect to another host that serves the document: followed.
    well_known_redirect_followed: Scenario {
        server_name: "wkr.test",
        zone: &[Rec::A("wkr.test", "127.0.0.2"), Rec::A("www.wkr.test", "127.0.0.3"), Rec::A("deleg.wkr.test", "127.0.0.4")],
        servers: &[
            Srv("127.0.0.2", P::Wk, Serve::WellKnown(Cert::Good(&["wkr.test"], VALID), WkReply::Redirect("https://www.wkr.test/.well-known/matrix/server"))),
            Srv("127.0.0.3", P::Wk, Serve::WellKnown(Cert::Good(&["www.wkr.test"], VALID), WkReply::Json(r#"{"m.server":"deleg.wkr.test:{x1}"}"#))),
            Srv("127.0.0.4", P::X1, Serve::Matrix(Cert::Good(&["deleg.wkr.test"], VALID))),
        ],
        want: Want {
            method: Method::ExplicitPort, well_known: WellKnownOutcome::Delegated, delegated: Some("deleg.wkr.test:{x1}"),
            tls_name: "deleg.wkr.test", host_header: "deleg.wkr.test:{x1}",
            addresses: &[("127.0.0.4:{x1}", OK)], server_failures: &[],
        },
    };

    // A redirect loop is detected; discovery falls through to SRV and 8448, which work.
    well_known_redirect_loop_falls_back: Scenario {
        server_name: "loop.test",
        zone: &[Rec::A("loop.test", "127.0.0.2")],
        servers: &[
            Srv("127.0.0.2", P::Wk, Serve::WellKnown(Cert::Good(&["loop.test"], VALID), WkReply::Redirect("/.well-known/matrix/server"))),
            Srv("127.0.0.2", P::Fed, Serve::Matrix(Cert::Good(&["loop.test"], VALID))),
        ],
        want: Want {
            method: Method::DefaultPort, well_known: WellKnownOutcome::RedirectLoop, delegated: None,
            tls_name: "loop.test", host_header: "loop.test",
            addresses: &[("127.0.0.2:{fed}", OK)], server_failures: &[],
        },
    };

    well_known_not_found_falls_back: Scenario {
        server_name: "nf.test",
        zone: &[Rec::A("nf.test", "127.0.0.2")],
        servers: &[
            Srv("127.0.0.2", P::Wk, Serve::WellKnown(Cert::Good(&["nf.test"], VALID), WkReply::Status(404))),
            Srv("127.0.0.2", P::Fed, Serve::Matrix(Cert::Good(&["nf.test"], VALID))),
        ],
        want: Want {
            method: Method::DefaultPort, well_known: WellKnownOutcome::NotFound, delegated: None,
            tls_name: "nf.test", host_header: "nf.test",
            addresses: &[("127.0.0.2:{fed}", OK)], server_failures: &[],
        },
    };

    well_known_server_error: Scenario {
        server_name: "err.test",
        zone: &[Rec::A("err.test", "127.0.0.2")],
        servers: &[
            Srv("127.0.0.2", P::Wk, Serve::WellKnown(Cert::Good(&["err.test"], VALID), WkReply::Status(500))),
            Srv("127.0.0.2", P::Fed, Serve::Matrix(Cert::Good(&["err.test"], VALID))),
        ],
        want: Want {
            method: Method::DefaultPort, well_known: WellKnownOutcome::HttpError, delegated: None,
            tls_name: "err.test", host_header: "err.test",
            addresses: &[("127.0.0.2:{fed}", OK)], server_failures: &[],
        },
    };

    well_known_invalid_json_falls_back: Scenario {
        server_name: "html.test",
        zone: &[Rec::A("html.test", "127.0.0.2")],
        servers: &[
            Srv("127.0.0.2", P::Wk, Serve::WellKnown(Cert::Good(&["html.test"], VALID), WkReply::Json("<html>Welcome!</html>"))),
            Srv("127.0.0.2", P::Fed, Serve::Matrix(Cert::Good(&["html.test"], VALID))),
        ],
        want: Want {
            method: Method::DefaultPort, well_known: WellKnownOutcome::InvalidJson, delegated: None,
            tls_name: "html.test", host_header: "html.test",
            addresses: &[("127.0.0.2:{fed}", OK)], server_failures: &[],
        },
    };

    well_known_invalid_server_name: Scenario {
        server_name: "badname.test",
        zone: &[Rec::A("badname.test", "127.0.0.2")],
        servers: &[
            Srv("127.0.0.2", P::Wk, Serve::WellKnown(Cert::Good(&["badname.test"], VALID), WkReply::Json(r#"{"m.server":"https://matrix.badname.test:443"}"#))),
            Srv("127.0.0.2", P::Fed, Serve::Matrix(Cert::Good(&["badname.test"], VALID))),
        ],
        want: Want {
            method: Method::DefaultPort, well_known: WellKnownOutcome::InvalidServerName, delegated: None,
            tls_name: "badname.test", host_header: "badname.test",
            addresses: &[("127.0.0.2:{fed}", OK)], server_failures: &[],
        },
    };

    // A body over 50 KiB is refused after reading at most the cap.
    well_known_too_large: Scenario {
        server_name: "big.test",
        zone: &[Rec::A("big.test", "127.0.0.2")],
        servers: &[
            Srv("127.0.0.2", P::Wk, Serve::WellKnown(Cert::Good(&["big.test"], VALID), WkReply::Big(10 * 1024 * 1024))),
            Srv("127.0.0.2", P::Fed, Serve::Matrix(Cert::Good(&["big.test"], VALID))),
        ],
        want: Want {
            method: Method::DefaultPort, well_known: WellKnownOutcome::TooLarge, delegated: None,
            tls_name: "big.test", host_header: "big.test",
            addresses: &[("127.0.0.2:{fed}", OK)], server_failures: &[],
        },
    };

    // A well-known server that never answers: cut at the well-known timeout, and the fallback still works.
    well_known_hang_falls_back: Scenario {
        server_name: "hang.test",
        zone: &[Rec::A("hang.test", "127.0.0.2")],
        servers: &[
            Srv("127.0.0.2", P::Wk, Serve::WellKnown(Cert::Good(&["hang.test"], VALID), WkReply::Hang)),
            Srv("127.0.0.2", P::Fed, Serve::Matrix(Cert::Good(&["hang.test"], VALID))),
        ],
        want: Want {
            method: Method::DefaultPort, well_known: WellKnownOutcome::Timeout, delegated: None,
            tls_name: "hang.test", host_header: "hang.test",
            addresses: &[("127.0.0.2:{fed}", OK)], server_failures: &[],
        },
    };

    // Well-known over a certificate for another name is a TLS error, not a delegation.
    well_known_bad_certificate: Scenario {
        server_name: "wktls.test",
        zone: &[Rec::A("wktls.test", "127.0.0.2")],
        servers: &[
            Srv("127.0.0.2", P::Wk, Serve::WellKnown(Cert::Good(&["other.test"], VALID), WkReply::Json(r#"{"m.server":"evil.test:1"}"#))),
            Srv("127.0.0.2", P::Fed, Serve::Matrix(Cert::Good(&["wktls.test"], VALID))),
        ],
        want: Want {
            method: Method::DefaultPort, well_known: WellKnownOutcome::TlsError, delegated: None,
            tls_name: "wktls.test", host_header: "wktls.test",
            addresses: &[("127.0.0.2:{fed}", OK)], server_failures: &[],
        },
    };

    // A name that is a CNAME: followed; the certificate is checked against the server name.
    name_is_a_cname: Scenario {
        server_name: "alias.test",
        zone: &[Rec::Cname("alias.test", "real.test"), Rec::A("real.test", "127.0.0.2")],
        servers: &[Srv("127.0.0.2", P::Fed, Serve::Matrix(Cert::Good(&["alias.test"], VALID)))],
        want: Want {
            method: Method::DefaultPort, well_known: WellKnownOutcome::ConnectionFailed, delegated: None,
            tls_name: "alias.test", host_header: "alias.test",
            addresses: &[("127.0.0.2:{fed}", OK)], server_failures: &[],
        },
    };

    // Dual stack where only IPv6 is broken: per-address results differ and the probe fails.
    dual_stack_ipv6_broken: Scenario {
        server_name: "dual.test",
        zone: &[Rec::A("dual.test", "127.0.0.2"), Rec::Aaaa("dual.test", "::1")],
        servers: &[Srv("127.0.0.2", P::Fed, Serve::Matrix(Cert::Good(&["dual.test"], VALID)))],
        want: Want {
            method: Method::DefaultPort, well_known: WellKnownOutcome::ConnectionFailed, delegated: None,
            tls_name: "dual.test", host_header: "dual.test",
            addresses: &[("127.0.0.2:{fed}", OK), ("[::1]:{fed}", &[Reason::ConnectionRefused])],
            server_failures: &[],
        },
    };

    dual_stack_both_work: Scenario {
        server_name: "dual2.test",
        zone: &[Rec::A("dual2.test", "127.0.0.2"), Rec::Aaaa("dual2.test", "::1")],
        servers: &[
            Srv("127.0.0.2", P::Fed, Serve::Matrix(Cert::Good(&["dual2.test"], VALID))),
            Srv("::1", P::Fed, Serve::Matrix(Cert::Good(&["dual2.test"], VALID))),
        ],
        want: Want {
            method: Method::DefaultPort, well_known: WellKnownOutcome::ConnectionFailed, delegated: None,
            tls_name: "dual2.test", host_header: "dual2.test",
            addresses: &[("127.0.0.2:{fed}", OK), ("[::1]:{fed}", OK)],
            server_failures: &[],
        },
    };

    cert_expired: Scenario {
        server_name: "expired.test:{x1}",
        zone: &[Rec::A("expired.test", "127.0.0.2")],
        servers: &[Srv("127.0.0.2", P::X1, Serve::Matrix(Cert::Good(&["expired.test"], Validity::Expired)))],
        want: Want {
            method: Method::ExplicitPort, well_known: WellKnownOutcome::Skipped, delegated: None,
            tls_name: "expired.test", host_header: "expired.test:{x1}",
            addresses: &[("127.0.0.2:{x1}", &[Reason::CertExpired])], server_failures: &[],
        },
    };

    cert_not_yet_valid: Scenario {
        server_name: "future.test:{x1}",
        zone: &[Rec::A("future.test", "127.0.0.2")],
        servers: &[Srv("127.0.0.2", P::X1, Serve::Matrix(Cert::Good(&["future.test"], Validity::NotYetValid)))],
        want: Want {
            method: Method::ExplicitPort, well_known: WellKnownOutcome::Skipped, delegated: None,
            tls_name: "future.test", host_header: "future.test:{x1}",
            addresses: &[("127.0.0.2:{x1}", &[Reason::CertNotYetValid])], server_failures: &[],
        },
    };

    // Expiring in 5 days is still valid; the expiry is exported for alerting (checked below).
    cert_expiring_in_five_days: Scenario {
        server_name: "soon.test:{x1}",
        zone: &[Rec::A("soon.test", "127.0.0.2")],
        servers: &[Srv("127.0.0.2", P::X1, Serve::Matrix(Cert::Good(&["soon.test"], Validity::ExpiresIn(Duration::from_secs(5 * 86_400)))))],
        want: Want {
            method: Method::ExplicitPort, well_known: WellKnownOutcome::Skipped, delegated: None,
            tls_name: "soon.test", host_header: "soon.test:{x1}",
            addresses: &[("127.0.0.2:{x1}", OK)], server_failures: &[],
        },
    };

    cert_self_signed: Scenario {
        server_name: "self.test:{x1}",
        zone: &[Rec::A("self.test", "127.0.0.2")],
        servers: &[Srv("127.0.0.2", P::X1, Serve::Matrix(Cert::SelfSigned(&["self.test"])))],
        want: Want {
            method: Method::ExplicitPort, well_known: WellKnownOutcome::Skipped, delegated: None,
            tls_name: "self.test", host_header: "self.test:{x1}",
            addresses: &[("127.0.0.2:{x1}", &[Reason::CertUnknownIssuer])], server_failures: &[],
        },
    };

    cert_untrusted_ca: Scenario {
        server_name: "private.test:{x1}",
        zone: &[Rec::A("private.test", "127.0.0.2")],
        servers: &[Srv("127.0.0.2", P::X1, Serve::Matrix(Cert::Untrusted(&["private.test"])))],
        want: Want {
            method: Method::ExplicitPort, well_known: WellKnownOutcome::Skipped, delegated: None,
            tls_name: "private.test", host_header: "private.test:{x1}",
            addresses: &[("127.0.0.2:{x1}", &[Reason::CertUnknownIssuer])], server_failures: &[],
        },
    };

    // A leaf sent without its intermediate (cert.pem instead of fullchain.pem): no AIA chasing, as peers do.
    cert_incomplete_chain: Scenario {
        server_name: "chain.test:{x1}",
        zone: &[Rec::A("chain.test", "127.0.0.2")],
        servers: &[Srv("127.0.0.2", P::X1, Serve::Matrix(Cert::NoIntermediate(&["chain.test"])))],
        want: Want {
            method: Method::ExplicitPort, well_known: WellKnownOutcome::Skipped, delegated: None,
            tls_name: "chain.test", host_header: "chain.test:{x1}",
            addresses: &[("127.0.0.2:{x1}", &[Reason::CertUnknownIssuer])], server_failures: &[],
        },
    };

    cert_wrong_host: Scenario {
        server_name: "right.test:{x1}",
        zone: &[Rec::A("right.test", "127.0.0.2")],
        servers: &[Srv("127.0.0.2", P::X1, Serve::Matrix(Cert::Good(&["wrong.test"], VALID)))],
        want: Want {
            method: Method::ExplicitPort, well_known: WellKnownOutcome::Skipped, delegated: None,
            tls_name: "right.test", host_header: "right.test:{x1}",
            addresses: &[("127.0.0.2:{x1}", &[Reason::CertHostnameMismatch])], server_failures: &[],
        },
    };

    // Expired and for the wrong name and from a stranger: every problem is reported, not just the first.
    cert_everything_wrong: Scenario {
        server_name: "mess.test:{x1}",
        zone: &[Rec::A("mess.test", "127.0.0.2")],
        servers: &[Srv("127.0.0.2", P::X1, Serve::Matrix(Cert::Good(&["other.test"], Validity::Expired)))],
        want: Want {
            method: Method::ExplicitPort, well_known: WellKnownOutcome::Skipped, delegated: None,
            tls_name: "mess.test", host_header: "mess.test:{x1}",
            addresses: &[("127.0.0.2:{x1}", &[Reason::CertExpired, Reason::CertHostnameMismatch])],
            server_failures: &[],
        },
    };

    connection_refused: Scenario {
        server_name: "refused.test:{x1}",
        zone: &[Rec::A("refused.test", "127.0.0.2")],
        servers: &[],
        want: Want {
            method: Method::ExplicitPort, well_known: WellKnownOutcome::Skipped, delegated: None,
            tls_name: "refused.test", host_header: "refused.test:{x1}",
            addresses: &[("127.0.0.2:{x1}", &[Reason::ConnectionRefused])], server_failures: &[],
        },
    };

    // A TLS server that accepts the connection and never answers the ClientHello.
    tls_server_never_answers: Scenario {
        server_name: "silent.test:{x1}",
        zone: &[Rec::A("silent.test", "127.0.0.2")],
        servers: &[Srv("127.0.0.2", P::X1, Serve::Silent)],
        want: Want {
            method: Method::ExplicitPort, well_known: WellKnownOutcome::Skipped, delegated: None,
            tls_name: "silent.test", host_header: "silent.test:{x1}",
            addresses: &[("127.0.0.2:{x1}", &[Reason::TlsTimeout])], server_failures: &[],
        },
    };

    not_tls_at_all: Scenario {
        server_name: "plain.test:{x1}",
        zone: &[Rec::A("plain.test", "127.0.0.2")],
        servers: &[Srv("127.0.0.2", P::X1, Serve::Garbage)],
        want: Want {
            method: Method::ExplicitPort, well_known: WellKnownOutcome::Skipped, delegated: None,
            tls_name: "plain.test", host_header: "plain.test:{x1}",
            addresses: &[("127.0.0.2:{x1}", &[Reason::TlsHandshakeFailed])], server_failures: &[],
        },
    };

    nxdomain: Scenario {
        server_name: "nowhere.test",
        zone: &[],
        servers: &[],
        want: Want {
            method: Method::DefaultPort, well_known: WellKnownOutcome::DnsError, delegated: None,
            tls_name: "nowhere.test", host_header: "nowhere.test",
            addresses: &[], server_failures: &[Reason::DnsNxdomain],
        },
    };

    // The name exists (it has a TXT record) but has no A or AAAA record.
    no_address_records: Scenario {
        server_name: "empty.test",
        zone: &[Rec::Txt("empty.test")],
        servers: &[],
        want: Want {
            method: Method::DefaultPort, well_known: WellKnownOutcome::DnsError, delegated: None,
            tls_name: "empty.test", host_header: "empty.test",
            addresses: &[], server_failures: &[Reason::DnsNoRecords],
        },
    };

    // An SRV target that does not resolve is a server-level DNS failure; the other target is still probed.
    srv_target_nxdomain: Scenario {
        server_name: "half.test",
        zone: &[
            Rec::Srv("_matrix-fed._tcp.half.test", 10, 0, P::X1, "gone.half.test"),
            Rec::Srv("_matrix-fed._tcp.half.test", 20, 0, P::X1, "here.half.test"),
            Rec::A("here.half.test", "127.0.0.2"),
        ],
        servers: &[Srv("127.0.0.2", P::X1, Serve::Matrix(Cert::Good(&["half.test"], VALID)))],
        want: Want {
            method: Method::SrvMatrixFed, well_known: WellKnownOutcome::DnsError, delegated: None,
            tls_name: "half.test", host_header: "half.test",
            addresses: &[("127.0.0.2:{x1}", OK)], server_failures: &[Reason::DnsNxdomain],
        },
    };

    // The key document names another server: peers reject it ("Expected a response for server ...").
    keys_server_name_mismatch: Scenario {
        server_name: "keys1.test:{x1}",
        zone: &[Rec::A("keys1.test", "127.0.0.2")],
        servers: &[Srv("127.0.0.2", P::X1, Serve::Broken(Cert::Good(&["keys1.test"], VALID), Broken::KeysOtherServer))],
        want: Want {
            method: Method::ExplicitPort, well_known: WellKnownOutcome::Skipped, delegated: None,
            tls_name: "keys1.test", host_header: "keys1.test:{x1}",
            addresses: &[("127.0.0.2:{x1}", &[Reason::KeysServerNameMismatch])],
            server_failures: &[],
        },
    };

    keys_bad_signature: Scenario {
        server_name: "keys2.test:{x1}",
        zone: &[Rec::A("keys2.test", "127.0.0.2")],
        servers: &[Srv("127.0.0.2", P::X1, Serve::Broken(Cert::Good(&["keys2.test"], VALID), Broken::KeysBadSignature))],
        want: Want {
            method: Method::ExplicitPort, well_known: WellKnownOutcome::Skipped, delegated: None,
            tls_name: "keys2.test", host_header: "keys2.test:{x1}",
            addresses: &[("127.0.0.2:{x1}", &[Reason::KeysBadSignature])], server_failures: &[],
        },
    };

    keys_no_ed25519_key: Scenario {
        server_name: "keys3.test:{x1}",
        zone: &[Rec::A("keys3.test", "127.0.0.2")],
        servers: &[Srv("127.0.0.2", P::X1, Serve::Broken(Cert::Good(&["keys3.test"], VALID), Broken::KeysNoEd25519))],
        want: Want {
            method: Method::ExplicitPort, well_known: WellKnownOutcome::Skipped, delegated: None,
            tls_name: "keys3.test", host_header: "keys3.test:{x1}",
            addresses: &[("127.0.0.2:{x1}", &[Reason::KeysNoEd25519Key])], server_failures: &[],
        },
    };

    keys_expired: Scenario {
        server_name: "keys4.test:{x1}",
        zone: &[Rec::A("keys4.test", "127.0.0.2")],
        servers: &[Srv("127.0.0.2", P::X1, Serve::Broken(Cert::Good(&["keys4.test"], VALID), Broken::KeysExpired))],
        want: Want {
            method: Method::ExplicitPort, well_known: WellKnownOutcome::Skipped, delegated: None,
            tls_name: "keys4.test", host_header: "keys4.test:{x1}",
            addresses: &[("127.0.0.2:{x1}", &[Reason::KeysExpired])], server_failures: &[],
        },
    };

    keys_not_found: Scenario {
        server_name: "keys5.test:{x1}",
        zone: &[Rec::A("keys5.test", "127.0.0.2")],
        servers: &[Srv("127.0.0.2", P::X1, Serve::Broken(Cert::Good(&["keys5.test"], VALID), Broken::KeysNotFound))],
        want: Want {
            method: Method::ExplicitPort, well_known: WellKnownOutcome::Skipped, delegated: None,
            tls_name: "keys5.test", host_header: "keys5.test:{x1}",
            addresses: &[("127.0.0.2:{x1}", &[Reason::HttpStatus])], server_failures: &[],
        },
    };

    // A keys request that never gets an answer is cut at the HTTP timeout.
    keys_hang: Scenario {
        server_name: "keys6.test:{x1}",
        zone: &[Rec::A("keys6.test", "127.0.0.2")],
        servers: &[Srv("127.0.0.2", P::X1, Serve::Broken(Cert::Good(&["keys6.test"], VALID), Broken::KeysHang))],
        want: Want {
            method: Method::ExplicitPort, well_known: WellKnownOutcome::Skipped, delegated: None,
            tls_name: "keys6.test", host_header: "keys6.test:{x1}",
            // The version request is not sent on a connection whose previous request never finished.
            addresses: &[("127.0.0.2:{x1}", &[Reason::Timeout])],
            server_failures: &[],
        },
    };

    // An HTML page where JSON belongs: a proxy routes /_matrix to the wrong backend.
    version_html: Scenario {
        server_name: "ver.test:{x1}",
        zone: &[Rec::A("ver.test", "127.0.0.2")],
        servers: &[Srv("127.0.0.2", P::X1, Serve::Broken(Cert::Good(&["ver.test"], VALID), Broken::VersionHtml))],
        want: Want {
            method: Method::ExplicitPort, well_known: WellKnownOutcome::Skipped, delegated: None,
            tls_name: "ver.test", host_header: "ver.test:{x1}",
            addresses: &[("127.0.0.2:{x1}", &[Reason::NotJson])], server_failures: &[],
        },
    };

}

/// Runs `s` in the public-federation view (the config's default, `probe.allow_private_addresses: false`), where
/// the loopback world is an address range peers refuse: nothing may be contacted, neither `.well-known` nor any
/// federation server.
async fn run_public(s: &Scenario) -> ServerReport {
    let world = World::start(s.server_name, s.zone, s.servers).await;
    let name = ServerName::parse(&subst(s.server_name, &world.ports)).unwrap();
    let mut env = world.env(TIMEOUTS);
    env.allow_private_addresses = false;
    let report = probe_server(&env, &name).await;
    check(&world, s, &report);
    for (p, server) in &world.servers {
        assert_eq!(
            server.connections(),
            0,
            "the public view connected to a refused {p:?} server\n{report:#?}"
        );
    }
    assert!(!report.discovery.refused.is_empty(), "{report:#?}");
    for r in &report.discovery.refused {
        assert_eq!(r.class(), AddressClass::Loopback, "{report:#?}");
    }
    // Every address is refused: a failure, not warnings.
    assert!(report.warnings().is_empty(), "{report:#?}");
    report
}

macro_rules! public_scenarios {
    ($($name:ident: $s:expr;)+) => {
        $(
            #[tokio::test]
            async fn $name() {
                static S: Scenario = $s;
                run_public(&S).await;
            }
        )+
    };
}

public_scenarios! {
    // A name on loopback only: its well-known is not fetched and its address is not probed; peers refuse both.
    public_view_refuses_a_loopback_only_server: Scenario {
        server_name: "private.test",
        zone: &[Rec::A("private.test", "127.0.0.2"), Rec::Aaaa("private.test", "::1")],
        servers: &[
            Srv("127.0.0.2", P::Wk, Serve::WellKnown(Cert::Good(&["private.test"], VALID), WkReply::Json(r#"{"m.server":"private.test:{x1}"}"#))),
            Srv("127.0.0.2", P::Fed, Serve::Matrix(Cert::Good(&["private.test"], VALID))),
        ],
        want: Want {
            method: Method::DefaultPort, well_known: WellKnownOutcome::AddressNotPublic, delegated: None,
            tls_name: "private.test", host_header: "private.test",
            addresses: &[], server_failures: &[Reason::AddressNotPublic],
        },
    };

    // An IP literal in a refused range.
    public_view_refuses_a_loopback_ip_literal: Scenario {
        server_name: "127.0.0.2:{x1}",
        zone: &[],
        servers: &[Srv("127.0.0.2", P::X1, Serve::Matrix(Cert::Good(&["127.0.0.2"], VALID)))],
        want: Want {
            method: Method::IpLiteral, well_known: WellKnownOutcome::Skipped, delegated: None,
            tls_name: "127.0.0.2", host_header: "127.0.0.2:{x1}",
            addresses: &[], server_failures: &[Reason::AddressNotPublic],
        },
    };

    // Every SRV target resolves to loopback.
    public_view_refuses_loopback_srv_targets: Scenario {
        server_name: "srvpriv.test",
        zone: &[
            Rec::Srv("_matrix-fed._tcp.srvpriv.test", 10, 0, P::X1, "t1.srvpriv.test"),
            Rec::Srv("_matrix-fed._tcp.srvpriv.test", 20, 0, P::X2, "t2.srvpriv.test"),
            Rec::A("t1.srvpriv.test", "127.0.0.3"),
            Rec::A("t2.srvpriv.test", "127.0.0.4"),
        ],
        servers: &[
            Srv("127.0.0.3", P::X1, Serve::Matrix(Cert::Good(&["srvpriv.test"], VALID))),
            Srv("127.0.0.4", P::X2, Serve::Matrix(Cert::Good(&["srvpriv.test"], VALID))),
        ],
        want: Want {
            method: Method::SrvMatrixFed, well_known: WellKnownOutcome::DnsError, delegated: None,
            tls_name: "srvpriv.test", host_header: "srvpriv.test",
            addresses: &[], server_failures: &[Reason::AddressNotPublic],
        },
    };
}

/// The failure names every refused address with its class.
#[tokio::test]
async fn the_address_not_public_failure_names_each_address() {
    static S: Scenario = Scenario {
        server_name: "named.test:{x1}",
        zone: &[
            Rec::A("named.test", "127.0.0.2"),
            Rec::Aaaa("named.test", "::1"),
        ],
        servers: &[],
        want: Want {
            method: Method::ExplicitPort,
            well_known: WellKnownOutcome::Skipped,
            delegated: None,
            tls_name: "named.test",
            host_header: "named.test:{x1}",
            addresses: &[],
            server_failures: &[Reason::AddressNotPublic],
        },
    };
    let report = run_public(&S).await;
    let message = &report.failures[0].message;
    assert!(message.contains("(loopback)"), "{message}");
    assert!(message.contains("[::1]:"), "{message}");
    let refused: Vec<String> = report
        .discovery
        .refused
        .iter()
        .map(|r| r.address.ip().to_string())
        .collect();
    assert_eq!(
        refused,
        ["::1", "127.0.0.2"],
        "IPv6 first, as discovery orders them"
    );
}

/// An SRV target that is a CNAME is followed (most resolvers do) and warned about: "The target of an SRV record
/// may not be a CNAME".
#[tokio::test]
async fn an_srv_target_that_is_a_cname_is_a_warning() {
    static S: Scenario = Scenario {
        server_name: "srvcname.test",
        zone: &[
            Rec::Srv(
                "_matrix-fed._tcp.srvcname.test",
                10,
                0,
                P::X1,
                "alias.srvcname.test",
            ),
            Rec::Cname("alias.srvcname.test", "real.srvcname.test"),
            Rec::A("real.srvcname.test", "127.0.0.3"),
        ],
        servers: &[Srv(
            "127.0.0.3",
            P::X1,
            Serve::Matrix(Cert::Good(&["srvcname.test"], VALID)),
        )],
        want: Want {
            method: Method::SrvMatrixFed,
            well_known: WellKnownOutcome::DnsError,
            delegated: None,
            tls_name: "srvcname.test",
            host_header: "srvcname.test",
            addresses: &[("127.0.0.3:{x1}", OK)],
            server_failures: &[],
        },
    };
    let report = run(&S).await;
    assert!(report.success(), "a warning does not fail the probe");
    let warnings = report.warnings();
    let got: Vec<_> = warnings.iter().map(|w| (w.warning, w.address)).collect();
    assert_eq!(got, [(Warning::SrvTargetCname, None)], "{report:#?}");
    let message = explain::warning_message(&warnings[0]);
    assert!(message.contains("alias.srvcname.test"), "{message}");
    // The server name itself may be a CNAME: only SRV targets are warned about.
    assert!(
        run(&NAME_IS_A_CNAME).await.warnings().is_empty(),
        "a CNAME that is not an SRV target"
    );
}

static NAME_IS_A_CNAME: Scenario = Scenario {
    server_name: "alias2.test",
    zone: &[
        Rec::Cname("alias2.test", "real2.test"),
        Rec::A("real2.test", "127.0.0.2"),
    ],
    servers: &[Srv(
        "127.0.0.2",
        P::Fed,
        Serve::Matrix(Cert::Good(&["alias2.test"], VALID)),
    )],
    want: Want {
        method: Method::DefaultPort,
        well_known: WellKnownOutcome::ConnectionFailed,
        delegated: None,
        tls_name: "alias2.test",
        host_header: "alias2.test",
        addresses: &[("127.0.0.2:{fed}", OK)],
        server_failures: &[],
    },
};

/// A DNS server that never answers: SRV lookups time out, which fails discovery.
#[tokio::test]
async fn dns_timeout() {
    let world = World::start("quiet.test", &[], &[]).await;
    let silent = SilentDns::start().await;
    let timeouts = Timeouts {
        dns: Duration::from_millis(300),
        ..TIMEOUTS
    };
    let env = world.env_with_dns(silent.addr, timeouts);
    let report = probe_server(&env, &ServerName::parse("quiet.test").unwrap()).await;
    upstream_shape(&report);
    assert_eq!(report.discovery.method, Method::None, "{report:#?}");
    assert_eq!(
        report.discovery.well_known.outcome,
        WellKnownOutcome::DnsError,
        "{report:#?}"
    );
    let reasons: Vec<Reason> = report.failures.iter().map(|f| f.reason).collect();
    assert_eq!(reasons, [Reason::DnsTimeout], "{report:#?}");
    // Which resolver failed is the first thing to know when every server fails at once (issue 14).
    let asked = format!("(asked {})", silent.addr);
    assert!(
        report.failures[0].message.ends_with(&asked),
        "{:?} does not end with {asked}",
        report.failures[0].message
    );
    assert!(!report.success());
}

/// A valid certificate that expires in 5 days.
static SOON: Scenario = Scenario {
    server_name: "soon.test:{x1}",
    zone: &[Rec::A("soon.test", "127.0.0.2")],
    servers: &[Srv(
        "127.0.0.2",
        P::X1,
        Serve::Matrix(Cert::Good(
            &["soon.test"],
            Validity::ExpiresIn(Duration::from_secs(5 * 86_400)),
        )),
    )],
    want: Want {
        method: Method::ExplicitPort,
        well_known: WellKnownOutcome::Skipped,
        delegated: None,
        tls_name: "soon.test",
        host_header: "soon.test:{x1}",
        addresses: &[("127.0.0.2:{x1}", OK)],
        server_failures: &[],
    },
};

/// Expiry facts are exported for an invalid certificate too, and the chain's earliest expiry is the leaf's
/// or the intermediate's, whichever comes first.
#[tokio::test]
async fn expiry_is_known_for_invalid_and_expiring_certificates() {
    let report = run(&Scenario {
        server_name: "expired.test:{x1}",
        zone: &[Rec::A("expired.test", "127.0.0.2")],
        servers: &[Srv(
            "127.0.0.2",
            P::X1,
            Serve::Matrix(Cert::Untrusted(&["other.test"])),
        )],
        want: Want {
            method: Method::ExplicitPort,
            well_known: WellKnownOutcome::Skipped,
            delegated: None,
            tls_name: "expired.test",
            host_header: "expired.test:{x1}",
            addresses: &[(
                "127.0.0.2:{x1}",
                &[Reason::CertUnknownIssuer, Reason::CertHostnameMismatch],
            )],
            server_failures: &[],
        },
    })
    .await;
    let cert = report.addresses[0].certificate.as_ref().unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let now = i64::try_from(now).unwrap();
    assert!(!cert.valid());
    assert_eq!(cert.chain.len(), 2);
    assert!(cert.chain[0].not_after > now + 80 * 86_400);
    assert_eq!(cert.chain[0].dns_names, ["other.test"]);
    assert_eq!(
        cert.chain_not_after(),
        Some(cert.chain.iter().map(|c| c.not_after).min().unwrap())
    );

    let report = run(&SOON).await;
    let cert = report.addresses[0].certificate.as_ref().unwrap();
    let left = cert.chain[0].not_after - now;
    assert!((4 * 86_400..=5 * 86_400 + 60).contains(&left), "{left}");
    assert_eq!(cert.chain_not_after(), Some(cert.chain[0].not_after));
    let tls = report.addresses[0].tls.as_ref().unwrap();
    assert!(tls.version.starts_with("TLSv1_"), "{tls:?}");
    assert!(!tls.cipher.is_empty());
}

/// An extra expired certificate the server still sends (a cross-sign of its intermediate by a retired root) is
/// not on the path the verifier builds: the chain's expiry is the verified path's (the leaf's here), not the
/// extra certificate's (`blackbox_exporter` #340), and the certificate is valid.
#[tokio::test]
async fn chain_expiry_comes_from_the_verified_path() {
    let report = run(&Scenario {
        server_name: "cross.test:{x1}",
        zone: &[Rec::A("cross.test", "127.0.0.2")],
        servers: &[Srv(
            "127.0.0.2",
            P::X1,
            Serve::Matrix(Cert::ExpiredExtra(&["cross.test"])),
        )],
        want: Want {
            method: Method::ExplicitPort,
            well_known: WellKnownOutcome::Skipped,
            delegated: None,
            tls_name: "cross.test",
            host_header: "cross.test:{x1}",
            addresses: &[("127.0.0.2:{x1}", OK)],
            server_failures: &[],
        },
    })
    .await;
    let cert = report.addresses[0].certificate.as_ref().unwrap();
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    assert!(cert.valid(), "{cert:?}");
    assert_eq!(cert.chain.len(), 3);
    assert!(
        cert.presented_not_after().unwrap() < now,
        "the extra one is expired"
    );
    assert_eq!(cert.verified_not_after, Some(cert.chain[0].not_after));
    assert_eq!(cert.chain_not_after(), Some(cert.chain[0].not_after));
}

/// The well-known request carries the spec's `Host` header and SNI, and every phase is timed.
#[tokio::test]
async fn requests_and_timings_are_recorded() {
    static S: Scenario = Scenario {
        server_name: "wk9.test",
        zone: &[
            Rec::A("wk9.test", "127.0.0.2"),
            Rec::A("deleg9.test", "127.0.0.3"),
        ],
        servers: &[
            Srv(
                "127.0.0.2",
                P::Wk,
                Serve::WellKnown(
                    Cert::Good(&["wk9.test"], VALID),
                    WkReply::Json(r#"{"m.server":"deleg9.test:{x1}"}"#),
                ),
            ),
            Srv(
                "127.0.0.3",
                P::X1,
                Serve::Matrix(Cert::Good(&["deleg9.test"], VALID)),
            ),
        ],
        want: Want {
            method: Method::ExplicitPort,
            well_known: WellKnownOutcome::Delegated,
            delegated: Some("deleg9.test:{x1}"),
            tls_name: "deleg9.test",
            host_header: "deleg9.test:{x1}",
            addresses: &[("127.0.0.3:{x1}", OK)],
            server_failures: &[],
        },
    };
    let world = World::start(S.server_name, S.zone, S.servers).await;
    // Discovery's own requests only: client discovery (tests/client.rs) would add its own to the same server.
    let mut env = world.env(TIMEOUTS);
    env.checks.client = false;
    let report = probe_server(&env, &ServerName::parse("wk9.test").unwrap()).await;
    check(&world, &S, &report);
    let wk = &world.servers[0].1;
    assert_eq!(wk.sni_seen(), [Some("wk9.test".to_owned())]);
    // The support well-known rides the server well-known's connection (one SNI: one connection).
    assert_eq!(
        wk.requests(),
        [
            (
                "/.well-known/matrix/server".to_owned(),
                "wk9.test".to_owned()
            ),
            (
                "/.well-known/matrix/support".to_owned(),
                "wk9.test".to_owned()
            )
        ]
    );
    assert_eq!(wk.connections(), 1);
    let d = &report.discovery;
    assert_eq!(
        d.well_known.cache_ttl,
        Some(Duration::from_secs(86_400)),
        "no cache headers: 24 h"
    );
    let steps: Vec<_> = d.steps.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(steps, ["well_known", "address_lookup"]);
    let phases: Vec<_> = report.addresses[0]
        .phases
        .iter()
        .map(|(p, _)| p.as_str())
        .collect();
    assert_eq!(phases, ["connect", "tls_handshake", "keys", "version"]);
    // One connection per address carries the handshake and both GETs, with the spec's Host header.
    let fed = &world.servers[1].1;
    let host = format!("deleg9.test:{}", world.port(P::X1));
    assert_eq!(fed.connections(), 1);
    assert_eq!(
        fed.requests(),
        [
            ("/_matrix/key/v2/server".to_owned(), host.clone()),
            ("/_matrix/federation/v1/version".to_owned(), host),
        ]
    );
    let a = &report.addresses[0];
    assert_eq!(a.keys.as_ref().unwrap().server_name, "wk9.test");
    assert_eq!(
        a.version.as_ref().unwrap().name.as_deref(),
        Some("FakeServer")
    );
    assert!(report.duration > Duration::ZERO);
}

/// The questions asked together go on to the next name server alone: when the first name server fails only the
/// `_matrix-fed._tcp` question (SERVFAIL), the second is asked that one question, and its answer (no record) lets
/// discovery fall through to the default port. With the first name server alone the same probe fails
/// (`srv_servfail`).
#[tokio::test]
async fn a_question_one_name_server_failed_goes_to_the_next_alone() {
    static S: Scenario = Scenario {
        server_name: "fallthrough.test",
        zone: &[
            Rec::ServFail("_matrix-fed._tcp.fallthrough.test"),
            Rec::A("fallthrough.test", "127.0.0.2"),
        ],
        servers: &[Srv(
            "127.0.0.2",
            P::Fed,
            Serve::Matrix(Cert::Good(&["fallthrough.test"], VALID)),
        )],
        want: Want {
            method: Method::DefaultPort,
            well_known: WellKnownOutcome::ConnectionFailed,
            delegated: None,
            tls_name: "fallthrough.test",
            host_header: "fallthrough.test",
            addresses: &[("127.0.0.2:{fed}", OK)],
            server_failures: &[],
        },
    };
    let world = World::start(S.server_name, S.zone, S.servers).await;
    let second =
        FakeDns::start(support::Zone::new().a("fallthrough.test", "127.0.0.2".parse().unwrap()))
            .await;
    let ports = world.env(TIMEOUTS).ports;
    let mut env = ProbeEnv::new(
        &[world.dns.addr, second.addr],
        world.ca.root_store(),
        ports,
        TIMEOUTS,
    )
    .unwrap();
    env.checks.client = false;
    env.checks.support = false;
    let report = probe_server(&env, &ServerName::parse(S.server_name).unwrap()).await;
    check(&world, &S, &report);
    assert_eq!(second.queries(), 1, "only the failed question: {report:#?}");
}

/// The well-known fetch and the default-port step both need the server name's addresses: a probe asks for them
/// once. A server without delegation costs four queries: AAAA and A of the name, and the two SRV names, all
/// asked at once over one socket.
#[tokio::test]
async fn the_server_name_is_resolved_once_per_probe() {
    static S: Scenario = Scenario {
        server_name: "once.test",
        zone: &[Rec::A("once.test", "127.0.0.2")],
        servers: &[Srv(
            "127.0.0.2",
            P::Fed,
            Serve::Matrix(Cert::Good(&["once.test"], VALID)),
        )],
        want: Want {
            method: Method::DefaultPort,
            well_known: WellKnownOutcome::ConnectionFailed,
            delegated: None,
            tls_name: "once.test",
            host_header: "once.test",
            addresses: &[("127.0.0.2:{fed}", OK)],
            server_failures: &[],
        },
    };
    let world = World::start(S.server_name, S.zone, S.servers).await;
    let before = world.dns.queries();
    // Discovery's own queries only: client discovery asks again when the well-known left no open connection.
    let mut env = world.env(TIMEOUTS);
    env.checks.client = false;
    let report = probe_server(&env, &ServerName::parse("once.test").unwrap()).await;
    check(&world, &S, &report);
    assert_eq!(world.dns.queries() - before, 4);
    let sources = world.dns.sources();
    let asked = &sources[sources.len() - 4..];
    assert!(
        asked.iter().all(|s| *s == asked[0]),
        "one socket for the four questions: {asked:?}"
    );
    // The report holds the name once, however many fields carry it.
    let d = &report.discovery;
    for same in [
        &d.tls_name,
        &d.host_header,
        &d.targets[0].host,
        &report.addresses[0].target_host,
    ] {
        assert!(SharedStr::ptr_eq(&report.server_name, same), "{same}");
    }
}

/// A listener whose accept queue is full: the kernel drops further SYNs, so the TCP connect hangs until the
/// connect timeout.
#[tokio::test]
async fn connection_timeout() {
    let world = World::start("full.test", &[Rec::A("full.test", "127.0.0.2")], &[]).await;
    let addr = SocketAddr::new("127.0.0.2".parse().unwrap(), world.port(P::X1));
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(addr).unwrap();
    let _listener = socket.listen(0).unwrap();
    // Fill the accept queue (bounded: a handful of attempts, each cut short).
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(s);
        }
    }
    assert!(
        !fillers.is_empty(),
        "the queue accepts at least one connection"
    );
    let env = world.env(Timeouts {
        connect: Duration::from_millis(500),
        ..TIMEOUTS
    });
    let name = ServerName::parse(&format!("full.test:{}", world.port(P::X1))).unwrap();
    let report = probe_server(&env, &name).await;
    upstream_shape(&report);
    let reasons: Vec<Reason> = report.addresses[0]
        .failures
        .iter()
        .map(|f| f.reason)
        .collect();
    assert_eq!(reasons, [Reason::ConnectionTimeout], "{report:#?}");
}

/// With the keys and version checks off, the probe stops after the certificate and sends no request.
#[tokio::test]
async fn matrix_checks_can_be_switched_off() {
    static S: Scenario = Scenario {
        server_name: "nochecks.test:{x1}",
        zone: &[Rec::A("nochecks.test", "127.0.0.2")],
        // A server that would fail both checks: the probe must not notice.
        servers: &[Srv(
            "127.0.0.2",
            P::X1,
            Serve::Broken(Cert::Good(&["nochecks.test"], VALID), Broken::KeysNotFound),
        )],
        want: Want {
            method: Method::ExplicitPort,
            well_known: WellKnownOutcome::Skipped,
            delegated: None,
            tls_name: "nochecks.test",
            host_header: "nochecks.test:{x1}",
            addresses: &[("127.0.0.2:{x1}", OK)],
            server_failures: &[],
        },
    };
    let world = World::start(S.server_name, S.zone, S.servers).await;
    let mut env = world.env(TIMEOUTS);
    env.checks = Checks {
        keys: false,
        version: false,
        client: false,
        support: false,
    };
    let name = ServerName::parse(&subst(S.server_name, &world.ports)).unwrap();
    let report = probe_server(&env, &name).await;
    check(&world, &S, &report);
    assert!(world.servers[0].1.requests().is_empty());
    let a = &report.addresses[0];
    assert!(a.keys.is_none() && a.version.is_none());
    let phases: Vec<_> = a.phases.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(phases, ["connect", "tls_handshake"]);
}

// The well-known from every address (DESIGN.md "Next" point 1): split.test has two addresses on the well-known
// port; each scenario below serves a different pair of answers. The delegated homeservers listen on X1/X2.

const SPLIT: &str = "split.test";
const SPLIT_CERT: Cert = Cert::Good(&["split.test"], VALID);
const TO_DELEG1: WkReply = WkReply::Json(r#"{"m.server":"deleg1.test:{x1}"}"#);

/// Runs a split.test scenario and checks, beyond `check`, that every well-known server was asked with SNI and
/// `Host` = the server name, and returns the report's (address, outcome, m.server, followed) per address.
async fn run_split(
    servers: &'static [Srv],
    want: Want,
) -> (
    ServerReport,
    Vec<(String, WellKnownOutcome, Option<String>, bool)>,
) {
    let scenario = &Scenario {
        server_name: SPLIT,
        zone: &[
            Rec::A("split.test", "127.0.0.2"),
            Rec::A("split.test", "127.0.0.3"),
            Rec::A("deleg1.test", "127.0.0.4"),
            Rec::A("deleg2.test", "127.0.0.5"),
        ],
        servers,
        want,
    };
    let world = World::start(scenario.server_name, scenario.zone, scenario.servers).await;
    let name = ServerName::parse(SPLIT).unwrap();
    let report = probe_server(&world.env(TIMEOUTS), &name).await;
    check(&world, scenario, &report);
    for (p, server) in &world.servers {
        if *p == P::Wk {
            assert!(
                server
                    .sni_seen()
                    .iter()
                    .all(|s| s.as_deref() == Some(SPLIT)),
                "{:?}",
                server.sni_seen()
            );
            // Each address is asked the server well-known once (the followed one also serves the client and
            // support well-knowns on the same connection).
            let requests = server.requests();
            assert_eq!(
                requests
                    .iter()
                    .filter(|(path, _)| path == "/.well-known/matrix/server")
                    .count(),
                1,
                "{requests:?}"
            );
            assert!(
                requests.iter().all(|(_, host)| host == SPLIT),
                "{requests:?}"
            );
        }
    }
    let per = report
        .discovery
        .well_known
        .per_address
        .iter()
        .map(|a| {
            (
                a.address.ip().to_string(),
                a.outcome,
                a.m_server.as_ref().map(|m| {
                    subst(m, &world.ports).replace(&world.port(P::X1).to_string(), "{x1}")
                }),
                a.followed,
            )
        })
        .collect();
    (report, per)
}

fn inconsistent_warnings(report: &ServerReport) -> usize {
    report
        .warnings()
        .iter()
        .filter(|w| w.warning == Warning::WellKnownInconsistent && w.address.is_none())
        .count()
}

const DELEG1_OK: Want = Want {
    method: Method::ExplicitPort,
    well_known: WellKnownOutcome::Delegated,
    delegated: Some("deleg1.test:{x1}"),
    tls_name: "deleg1.test",
    host_header: "deleg1.test:{x1}",
    addresses: &[("127.0.0.4:{x1}", OK)],
    server_failures: &[],
};

/// Both addresses delegate to the same name: consistent, no warning.
#[tokio::test]
async fn well_known_from_every_address_consistent() {
    static SERVERS: &[Srv] = &[
        Srv("127.0.0.2", P::Wk, Serve::WellKnown(SPLIT_CERT, TO_DELEG1)),
        Srv("127.0.0.3", P::Wk, Serve::WellKnown(SPLIT_CERT, TO_DELEG1)),
        Srv(
            "127.0.0.4",
            P::X1,
            Serve::Matrix(Cert::Good(&["deleg1.test"], VALID)),
        ),
    ];
    let (report, per) = run_split(SERVERS, DELEG1_OK).await;
    let d = Some("deleg1.test:{x1}".to_owned());
    assert_eq!(
        per,
        [
            (
                "127.0.0.2".into(),
                WellKnownOutcome::Delegated,
                d.clone(),
                true
            ),
            ("127.0.0.3".into(), WellKnownOutcome::Delegated, d, false),
        ]
    );
    assert_eq!(report.discovery.well_known.consistent(), Some(true));
    assert_eq!(inconsistent_warnings(&report), 0);
}

/// The first address answers 404, the second delegates: discovery follows the delegating one (a peer whose
/// resolver picks it finds the server), and the names' addresses are inconsistent.
#[tokio::test]
async fn well_known_from_every_address_follows_the_delegating_one() {
    static SERVERS: &[Srv] = &[
        Srv(
            "127.0.0.2",
            P::Wk,
            Serve::WellKnown(SPLIT_CERT, WkReply::Status(404)),
        ),
        Srv("127.0.0.3", P::Wk, Serve::WellKnown(SPLIT_CERT, TO_DELEG1)),
        Srv(
            "127.0.0.4",
            P::X1,
            Serve::Matrix(Cert::Good(&["deleg1.test"], VALID)),
        ),
    ];
    let (report, per) = run_split(SERVERS, DELEG1_OK).await;
    assert_eq!(
        per,
        [
            ("127.0.0.2".into(), WellKnownOutcome::NotFound, None, false),
            (
                "127.0.0.3".into(),
                WellKnownOutcome::Delegated,
                Some("deleg1.test:{x1}".to_owned()),
                true
            ),
        ]
    );
    assert_eq!(report.discovery.well_known.consistent(), Some(false));
    assert_eq!(inconsistent_warnings(&report), 1);
    // A warning, not a failure: the probe passed (checked by `check`).
    assert!(report.success());
}

/// Both delegate, to different names: discovery follows the first address; inconsistent.
#[tokio::test]
async fn well_known_from_every_address_different_m_server() {
    static SERVERS: &[Srv] = &[
        Srv("127.0.0.2", P::Wk, Serve::WellKnown(SPLIT_CERT, TO_DELEG1)),
        Srv(
            "127.0.0.3",
            P::Wk,
            Serve::WellKnown(
                SPLIT_CERT,
                WkReply::Json(r#"{"m.server":"deleg2.test:{x2}"}"#),
            ),
        ),
        Srv(
            "127.0.0.4",
            P::X1,
            Serve::Matrix(Cert::Good(&["deleg1.test"], VALID)),
        ),
    ];
    let (report, per) = run_split(SERVERS, DELEG1_OK).await;
    assert_eq!(per.len(), 2);
    assert!(per[0].3 && !per[1].3, "{per:?}");
    assert_eq!(per[0].2.as_deref(), Some("deleg1.test:{x1}"));
    assert!(per[1].2.as_deref().unwrap().starts_with("deleg2.test:"));
    assert_eq!(report.discovery.well_known.consistent(), Some(false));
    assert_eq!(inconsistent_warnings(&report), 1);
}

/// Nothing listens on the second address: it is recorded as `connection_failed`; inconsistent.
#[tokio::test]
async fn well_known_from_every_address_one_unreachable() {
    static SERVERS: &[Srv] = &[
        Srv("127.0.0.2", P::Wk, Serve::WellKnown(SPLIT_CERT, TO_DELEG1)),
        Srv(
            "127.0.0.4",
            P::X1,
            Serve::Matrix(Cert::Good(&["deleg1.test"], VALID)),
        ),
    ];
    let (report, per) = run_split(SERVERS, DELEG1_OK).await;
    assert_eq!(per.len(), 2);
    assert_eq!(per[0].1, WellKnownOutcome::Delegated);
    assert!(per[0].3);
    assert_eq!(
        (per[1].1, per[1].2.clone(), per[1].3),
        (WellKnownOutcome::ConnectionFailed, None, false)
    );
    assert_eq!(report.discovery.well_known.consistent(), Some(false));
    assert_eq!(inconsistent_warnings(&report), 1);
}

/// A name with a single address: it is recorded, and consistency is not judged.
#[tokio::test]
async fn well_known_from_a_single_address_is_not_judged() {
    static S: Scenario = Scenario {
        server_name: "one.test",
        zone: &[
            Rec::A("one.test", "127.0.0.2"),
            Rec::A("deleg1.test", "127.0.0.4"),
        ],
        servers: &[
            Srv(
                "127.0.0.2",
                P::Wk,
                Serve::WellKnown(Cert::Good(&["one.test"], VALID), TO_DELEG1),
            ),
            Srv(
                "127.0.0.4",
                P::X1,
                Serve::Matrix(Cert::Good(&["deleg1.test"], VALID)),
            ),
        ],
        want: DELEG1_OK,
    };
    let report = run(&S).await;
    let per = &report.discovery.well_known.per_address;
    assert_eq!(per.len(), 1);
    assert_eq!(per[0].address.ip().to_string(), "127.0.0.2");
    assert!(per[0].followed);
    assert_eq!(report.discovery.well_known.consistent(), None);
    assert_eq!(inconsistent_warnings(&report), 0);
}

/// A delegating well-known whose server name keeps a `_matrix-fed._tcp` record that points elsewhere.
static SHADOWED_ELSEWHERE: Scenario = Scenario {
    server_name: "sh1.test",
    zone: &[
        Rec::A("sh1.test", "127.0.0.2"),
        Rec::A("deleg1.test", "127.0.0.3"),
        Rec::Srv("_matrix-fed._tcp.sh1.test", 10, 5, P::X2, "old.sh1.test."),
    ],
    servers: &[
        Srv(
            "127.0.0.2",
            P::Wk,
            Serve::WellKnown(
                Cert::Good(&["sh1.test"], VALID),
                WkReply::Json(r#"{"m.server":"deleg1.test"}"#),
            ),
        ),
        Srv(
            "127.0.0.3",
            P::Fed,
            Serve::Matrix(Cert::Good(&["deleg1.test"], VALID)),
        ),
    ],
    want: Want {
        method: Method::DefaultPort,
        well_known: WellKnownOutcome::Delegated,
        delegated: Some("deleg1.test"),
        tls_name: "deleg1.test",
        host_header: "deleg1.test",
        addresses: &[("127.0.0.3:{fed}", OK)],
        server_failures: &[],
    },
};

/// A delegating well-known whose server name keeps a `_matrix-fed._tcp` record that agrees with it.
static SHADOWED_AGREES: Scenario = Scenario {
    server_name: "sh2.test",
    zone: &[
        Rec::A("sh2.test", "127.0.0.2"),
        Rec::A("deleg2.test", "127.0.0.3"),
        Rec::Srv("_matrix-fed._tcp.sh2.test", 10, 0, P::Fed, "Deleg2.test"),
    ],
    servers: &[
        Srv(
            "127.0.0.2",
            P::Wk,
            Serve::WellKnown(
                Cert::Good(&["sh2.test"], VALID),
                WkReply::Json(r#"{"m.server":"deleg2.test"}"#),
            ),
        ),
        Srv(
            "127.0.0.3",
            P::Fed,
            Serve::Matrix(Cert::Good(&["deleg2.test"], VALID)),
        ),
    ],
    want: Want {
        method: Method::DefaultPort,
        well_known: WellKnownOutcome::Delegated,
        delegated: Some("deleg2.test"),
        tls_name: "deleg2.test",
        host_header: "deleg2.test",
        addresses: &[("127.0.0.3:{fed}", OK)],
        server_failures: &[],
    },
};

/// A delegation with an explicit port, and a deprecated `_matrix._tcp` record of the server name.
static SHADOWED_LEGACY: Scenario = Scenario {
    server_name: "sh3.test",
    zone: &[
        Rec::A("sh3.test", "127.0.0.2"),
        Rec::A("deleg3.test", "127.0.0.3"),
        Rec::Srv("_matrix._tcp.sh3.test", 0, 0, P::Fed, "sh3.test"),
    ],
    servers: &[
        Srv(
            "127.0.0.2",
            P::Wk,
            Serve::WellKnown(
                Cert::Good(&["sh3.test"], VALID),
                WkReply::Json(r#"{"m.server":"deleg3.test:{x1}"}"#),
            ),
        ),
        Srv(
            "127.0.0.3",
            P::X1,
            Serve::Matrix(Cert::Good(&["deleg3.test"], VALID)),
        ),
    ],
    want: Want {
        method: Method::ExplicitPort,
        well_known: WellKnownOutcome::Delegated,
        delegated: Some("deleg3.test:{x1}"),
        tls_name: "deleg3.test",
        host_header: "deleg3.test:{x1}",
        addresses: &[("127.0.0.3:{x1}", OK)],
        server_failures: &[],
    },
};

/// A delegation to the server's own hostname without a port: step 3.3 reads the server name's records itself.
static DELEGATED_TO_ITSELF: Scenario = Scenario {
    server_name: "sh4.test",
    zone: &[
        Rec::A("sh4.test", "127.0.0.2"),
        Rec::A("fed4.test", "127.0.0.3"),
        Rec::Srv("_matrix-fed._tcp.sh4.test", 0, 0, P::X1, "fed4.test"),
    ],
    servers: &[
        Srv(
            "127.0.0.2",
            P::Wk,
            Serve::WellKnown(
                Cert::Good(&["sh4.test"], VALID),
                WkReply::Json(r#"{"m.server":"sh4.test"}"#),
            ),
        ),
        Srv(
            "127.0.0.3",
            P::X1,
            Serve::Matrix(Cert::Good(&["sh4.test"], VALID)),
        ),
    ],
    want: Want {
        method: Method::SrvMatrixFed,
        well_known: WellKnownOutcome::Delegated,
        delegated: Some("sh4.test"),
        tls_name: "sh4.test",
        host_header: "sh4.test",
        addresses: &[("127.0.0.3:{x1}", OK)],
        server_failures: &[],
    },
};

/// The shadowed records of a report: `(srv_record, srv_target, elsewhere)`.
fn shadowed(report: &ServerReport) -> Option<Vec<(&'static str, String, bool)>> {
    let s = report.discovery.shadowed_srv.as_ref()?;
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    Some(
        s.records
            .iter()
            .map(|r| (r.record.as_str(), r.target.to_string(), r.elsewhere))
            .collect(),
    )
}

fn warning_labels(report: &ServerReport) -> Vec<(Warning, Option<SocketAddr>)> {
    report.warning_labels().collect()
}

/// After a delegating well-known, the server name's own SRV records are looked up (no handshake to their
/// targets) and a record that points where the delegation does not lead is the warning `srv_shadowed_elsewhere`.
#[tokio::test]
async fn a_shadowed_srv_record_that_points_elsewhere_is_a_warning() {
    let world = World::start(
        SHADOWED_ELSEWHERE.server_name,
        SHADOWED_ELSEWHERE.zone,
        SHADOWED_ELSEWHERE.servers,
    )
    .await;
    let report = probe_server(
        &world.env(TIMEOUTS),
        &ServerName::parse("sh1.test").unwrap(),
    )
    .await;
    check(&world, &SHADOWED_ELSEWHERE, &report);
    let target = format!("old.sh1.test:{}", world.port(P::X2));
    assert_eq!(
        shadowed(&report).unwrap(),
        [("_matrix-fed._tcp", target.clone(), true)]
    );
    assert!(report.success(), "a warning does not fail the probe");
    assert_eq!(
        warning_labels(&report),
        [(Warning::SrvShadowedElsewhere, None)]
    );
    let warnings = report.warnings();
    let message = explain::warning_message(&warnings[0]);
    assert!(message.contains(&target), "{message}");
    let steps = explain::discovery_steps(&report);
    let last = steps.last().unwrap();
    assert!(
        last.line
            .starts_with("SRV records of sh1.test itself: 1 record"),
        "{last:?}"
    );
    assert!(
        last.more[0].contains("not where the delegation leads"),
        "{last:?}"
    );
}

#[tokio::test]
async fn a_shadowed_srv_record_that_agrees_is_reported_without_a_warning() {
    let report = run(&SHADOWED_AGREES).await;
    // Names compare without case (the zone writes "Deleg2.test").
    let rows = shadowed(&report).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "_matrix-fed._tcp");
    assert!(
        rows[0].1.eq_ignore_ascii_case(&format!(
            "deleg2.test:{}",
            report.addresses[0].address.port()
        )),
        "{rows:?}"
    );
    assert!(!rows[0].2, "{rows:?}");
    assert!(warning_labels(&report).is_empty(), "{report:#?}");
}

#[tokio::test]
async fn a_shadowed_deprecated_matrix_record_is_looked_up_too() {
    let world = World::start(
        SHADOWED_LEGACY.server_name,
        SHADOWED_LEGACY.zone,
        SHADOWED_LEGACY.servers,
    )
    .await;
    let report = probe_server(
        &world.env(TIMEOUTS),
        &ServerName::parse("sh3.test").unwrap(),
    )
    .await;
    check(&world, &SHADOWED_LEGACY, &report);
    let target = format!("sh3.test:{}", world.port(P::Fed));
    assert_eq!(shadowed(&report).unwrap(), [("_matrix._tcp", target, true)]);
    assert_eq!(
        warning_labels(&report),
        [(Warning::SrvShadowedElsewhere, None)]
    );
}

#[tokio::test]
async fn a_delegation_to_the_own_hostname_without_a_port_shadows_nothing() {
    let report = run(&DELEGATED_TO_ITSELF).await;
    assert_eq!(
        shadowed(&report),
        None,
        "not looked up: step 3.3 reads them"
    );
    assert!(warning_labels(&report).is_empty(), "{report:#?}");
    // Without a delegation nothing is shadowed either.
    assert_eq!(shadowed(&run(&NAME_IS_A_CNAME).await), None);
}

/// A server name with a port, whose hostname's port 443 serves no server well-known (404) and whatever
/// `/.well-known/matrix/support` the test sets: the support document is fetched there even so.
static SUPPORT: Scenario = Scenario {
    server_name: "sup.test:{fed}",
    zone: &[Rec::A("sup.test", "127.0.0.2")],
    servers: &[
        Srv(
            "127.0.0.2",
            P::Wk,
            Serve::WellKnown(Cert::Good(&["sup.test"], VALID), WkReply::Status(404)),
        ),
        Srv(
            "127.0.0.2",
            P::Fed,
            Serve::Matrix(Cert::Good(&["sup.test"], VALID)),
        ),
    ],
    want: Want {
        method: Method::ExplicitPort,
        well_known: WellKnownOutcome::Skipped,
        delegated: None,
        tls_name: "sup.test",
        host_header: "sup.test:{fed}",
        addresses: &[("127.0.0.2:{fed}", OK)],
        server_failures: &[],
    },
};

/// Probes [`SUPPORT`] with `routes` added to its port-443 server.
async fn run_support(routes: &[(&str, Reply)]) -> ServerReport {
    let world = World::start(SUPPORT.server_name, SUPPORT.zone, SUPPORT.servers).await;
    for (path, reply) in routes {
        world.servers[0].1.set_route(path, reply.clone());
    }
    let name = ServerName::parse(&subst(SUPPORT.server_name, &world.ports)).unwrap();
    let report = probe_server(&world.env(TIMEOUTS), &name).await;
    check(&world, &SUPPORT, &report);
    report
}

const SUPPORT_PATH: &str = "/.well-known/matrix/support";

/// A support case: its name, the routes added, the result, and whether it is the warning `support_invalid`.
type SupportCase = (
    &'static str,
    Vec<(&'static str, Reply)>,
    SupportResult,
    bool,
);
const GOOD_SUPPORT: &str = r#"{"contacts":[{"role":"m.role.admin","matrix_id":"@admin:sup.test","email_address":"admin@sup.test"},{"role":"m.role.dpo","email_address":"dpo@sup.test"}],"support_page":"https://sup.test/help"}"#;

/// Every `result` of the support well-known, redirects and an oversized body: the result, and whether it is the
/// warning `support_invalid`. None of them fails the probe.
#[tokio::test]
async fn the_support_well_known_has_a_result_for_every_answer() {
    let redirect = |to: &str| Reply::Redirect {
        status: 302,
        location: to.to_owned(),
    };
    let html = Reply::Raw {
        status: 200,
        headers: vec![("content-type".to_owned(), "text/html".to_owned())],
        body: b"<html>hello</html>".to_vec(),
    };
    let cases: Vec<SupportCase> = vec![
        (
            "ok",
            vec![(SUPPORT_PATH, Reply::json(200, GOOD_SUPPORT))],
            SupportResult::Ok,
            false,
        ),
        ("404", vec![], SupportResult::NotFound, false),
        (
            "no contact and no page",
            vec![(SUPPORT_PATH, Reply::json(200, r#"{"contacts":[]}"#))],
            SupportResult::Invalid,
            true,
        ),
        (
            "HTML",
            vec![(SUPPORT_PATH, html)],
            SupportResult::InvalidJson,
            true,
        ),
        (
            "60 KiB",
            vec![(SUPPORT_PATH, Reply::Big { bytes: 60 * 1024 })],
            SupportResult::TooLarge,
            true,
        ),
        (
            "500",
            vec![(SUPPORT_PATH, Reply::json(500, "{}"))],
            SupportResult::Error,
            false,
        ),
        (
            "redirected",
            vec![
                (SUPPORT_PATH, redirect("/moved/support")),
                ("/moved/support", Reply::json(200, GOOD_SUPPORT)),
            ],
            SupportResult::Ok,
            false,
        ),
        (
            "redirect loop",
            vec![
                (SUPPORT_PATH, redirect("/a")),
                ("/a", redirect(SUPPORT_PATH)),
            ],
            SupportResult::Error,
            false,
        ),
    ];
    for (case, routes, want, warned) in cases {
        let report = run_support(&routes).await;
        let support = report.support.as_ref().expect("support fetched");
        assert_eq!(support.result, want, "{case}: {support:?}");
        assert!(
            report.success(),
            "{case}: the support document never fails a probe"
        );
        let warnings: Vec<Warning> = report.warning_labels().map(|(w, _)| w).collect();
        let want_warnings: &[Warning] = if warned {
            &[Warning::SupportInvalid]
        } else {
            &[]
        };
        assert_eq!(warnings, want_warnings, "{case}");
        assert!(
            support.hops.first().is_some_and(
                |(url, _)| url.starts_with("https://sup.test/.well-known/matrix/support")
            ),
            "{case}: port 443 of the hostname, not the server name's port: {:?}",
            support.hops
        );
        if want == SupportResult::Ok {
            assert_eq!(support.role_counts, [1, 0, 1], "{case}");
            assert_eq!(
                support.support_page.as_deref(),
                Some("https://sup.test/help")
            );
            assert_eq!(
                support.contacts[0].matrix_id.as_deref(),
                Some("@admin:sup.test")
            );
        } else {
            assert!(support.contacts.is_empty(), "{case}");
        }
        if case == "redirected" {
            assert_eq!(support.hops.len(), 2, "{:?}", support.hops);
        }
    }
}
