//! The benchmark world: N Matrix server names served from loopback by this process (or by several: see "Parts"),
//! until it is killed (or `--max-seconds` pass). `bench/compare` starts it; the exporter and `blackbox_exporter`
//! then probe it.
//!
//! `cargo run --release --example bench_world -- --servers 2000 --out /tmp/world.json`
//!
//! It reuses the hermetic test world (`tests/support`): fake DNS (hickory-server), the test CA (rcgen), fake
//! HTTPS homeservers with signed key documents, and the port anchors. Of the names:
//! - 80 % are direct: `dN.bench.test` has an A record, its homeserver listens on the federation port, and
//!   nothing listens on the well-known port (the lookup is refused at once, as for a homeserver host without
//!   a web server; but see `--healthy-client` below);
//! - 10 % are delegated by `.well-known`: `wN.bench.test` serves `{"m.server": …}` on the well-known port,
//!   naming `hN.bench.test` (with the federation port for even N, bare for odd N, which then goes through the
//!   SRV lookups to the default port), and a client well-known naming `https://wN.bench.test`, whose
//!   `/_matrix/client/versions` it answers too (client discovery over the well-known's connection), and a
//!   support document (`/.well-known/matrix/support`). `wN.bench.test` has two addresses, both serving the same
//!   files, so the well-known is asked of every address (one handshake each). So the same tenth of the names
//!   serves a client well-known and a support document, and has two addresses (issue 19's "a tenth of its
//!   names");
//! - 10 % are delegated by SRV: `_matrix-fed._tcp.sN.bench.test` points at `tN.bench.test` on a third port,
//!   and `sN.bench.test` itself has no address record (unless `--healthy-client`).
//!
//! With `--healthy-client`, the direct and SRV names are also healthy for client discovery, as a typical real
//! server is (without it, a direct name's client discovery fails on the refused port 443 and an SRV name's on its
//! missing A record, and each such name carries about 3 more series in the observer profile): the name has an
//! HTTPS listener on the well-known port with a certificate for the name, answering 404 to
//! `/.well-known/matrix/server`, `/.well-known/matrix/client` and `/.well-known/matrix/support` (none is served:
//! the server well-known's 404 sends discovery on to SRV and the A record, the client's is the spec's `IGNORE`,
//! after which a client tries `https://<name>`, and the support document is optional) and 200
//! `{"versions":["r0.6.1","v1.11"]}` to `/_matrix/client/versions`. A direct name's listener is on its
//! federation endpoint's address (another port) and uses the same certificate; an SRV name `sN` gets an A record
//! of its own, on an address of its own (the same certificate as its SRV target, which is also for `sN`).
//! This is what `tests/observer.rs` calls a healthy direct server (`direct.test`, `srv.test`).
//!
//! Every federation endpoint has its own certificate from the test CA (valid for the name it must present and
//! for its own IP address, so `blackbox_exporter` can verify it when probing `ip:port`) and its own ed25519 key
//! and signed key document naming the server. Every homeserver has its own loopback address `127.b.x.y` (b from
//! 20, 62,500 hosts per b: 12 addresses per 10 names, 13 with `--healthy-client`, so 200,000 names reach
//! 127.23.x.y, or 127.24.x.y); the three ports are held on `127.0.0.1` and `::1` by port anchors, so no other
//! process can take them there.
//!
//! The world file (`--out`, JSON) tells the probers what they need: the DNS address, the ports, the CA root,
//! the names, and for each name the `ip:port` of its federation endpoint (blackbox's target).
//!
//! ## Parts: past one process's descriptors
//!
//! Every listener is a descriptor ([`LISTENERS_PER_10`] per 10 names: 12, or 21 with `--healthy-client`, which
//! adds one for each direct and each SRV name), and a process may hold no more than its `RLIMIT_NOFILE`
//! (20,000 on the machine of BENCHMARKS.md, a hard limit even root cannot raise there). So the world may run as
//! several processes: `--part i/n` serves the names of the i-th of n equal slices (in name order). Every part
//! computes the same plan (names, kinds, addresses); part 0 anchors the ports, prints them at once on stdout as
//! one JSON line (`{"event":"ports",…}`), serves the fake DNS for ALL names and its own slice; parts 1..n are
//! given those ports (`--ports WK,FED,SRV`) and serve only their slices, each with its own CA (the world file
//! names its root; probers trust the bundle of all parts' roots). Each part writes its own world file, with its
//! slice's names and targets; `bench/compare` starts the parts, concatenates their files in part order into one
//! world file (`ca_file`: the bundle), and stops them all. Only loopback addresses are bound.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;

use support::{Behaviour, FakeDns, FakeServer, PortAnchor, Reply, Routes, TestCa, Validity, Zone};

/// Names live under this zone (the fake DNS serves only `test.`).
const ZONE: &str = "bench.test";

/// What every homeserver of the world answers to `GET /_matrix/client/versions`.
const CLIENT_VERSIONS: &str = r#"{"versions":["r0.6.1","v1.11"]}"#;

struct Args {
    servers: usize,
    out: PathBuf,
    max_seconds: u64,
    /// (i, n): this process serves the i-th of n slices of the names.
    part: (usize, usize),
    /// The world's ports (well-known, federation, SRV) for parts 1..n, as part 0 printed them.
    ports: Option<[u16; 3]>,
    /// Direct and SRV names also healthy for client discovery (see the module doc).
    healthy_client: bool,
}

const USAGE: &str = "usage: bench_world [--servers N] [--out FILE] [--max-seconds S] [--healthy-client] \
                     [--part I/N --ports WK,FED,SRV]";

fn args() -> Args {
    let mut args = Args {
        servers: 2000,
        out: PathBuf::from("bench-world.json"),
        max_seconds: 3600,
        part: (0, 1),
        ports: None,
        healthy_client: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--servers" => args.servers = value().parse().expect("--servers N"),
            "--out" => args.out = PathBuf::from(value()),
            "--max-seconds" => args.max_seconds = value().parse().expect("--max-seconds S"),
            "--healthy-client" => args.healthy_client = true,
            "--part" => {
                let text = value();
                let (i, n) = text.split_once('/').expect("--part I/N");
                args.part = (
                    i.parse().expect("--part I/N"),
                    n.parse().expect("--part I/N"),
                );
            }
            "--ports" => {
                let ports: Vec<u16> = value()
                    .split(',')
                    .map(|p| p.parse().expect("--ports WK,FED,SRV"))
                    .collect();
                args.ports = Some(ports.try_into().expect("--ports WK,FED,SRV: three ports"));
            }
            other => panic!("unknown argument {other}; {USAGE}"),
        }
    }
    assert!(
        (1..=MAX_SERVERS).contains(&args.servers),
        "--servers must be 1..={MAX_SERVERS}"
    );
    let (i, n) = args.part;
    assert!(
        n >= 1 && i < n && n <= args.servers,
        "--part I/N: 0 <= I < N <= servers"
    );
    assert!(
        (i == 0) == args.ports.is_none(),
        "part 0 chooses the ports; every other part needs --ports (part 0 prints them); {USAGE}"
    );
    args
}

/// The most names the world serves (each has its own loopback address and listening sockets).
const MAX_SERVERS: usize = 200_000;

/// Listening sockets per 10 names (8 direct, 1 delegating with two fronts and a back end, 1 by SRV), without and
/// with `--healthy-client` (a well-known listener for each direct and each SRV name). `bench/compare` sizes the
/// parts by these.
const LISTENERS_PER_10: [usize; 2] = [12, 21];

/// The k-th homeserver address: 127.b.x.y with b from 20 (62,500 hosts per b), never 127.0.0.1 (the anchors'
/// address) nor a .0 or .255 host.
fn ip(k: usize) -> IpAddr {
    let (block, rest) = (k / 62_500, k % 62_500);
    let (hi, lo) = (rest / 250, rest % 250 + 1);
    let block = u8::try_from(20 + block).expect("fewer than 14 million addresses");
    let hi = u8::try_from(hi).expect("hi < 250");
    let lo = u8::try_from(lo).expect("lo < 251");
    IpAddr::V4(Ipv4Addr::new(127, block, hi, lo))
}

/// What one name is and where its federation endpoint listens.
enum Kind {
    Direct,
    WellKnown { host: String, explicit_port: bool },
    Srv { target: String },
}

#[tokio::main]
#[expect(
    clippy::too_many_lines,
    reason = "the world's CA, DNS and servers are set up in order, in one place"
)]
async fn main() {
    let args = args();
    let started = Instant::now();
    let (part, parts) = args.part;
    // One CA per process (its key never leaves it); the root file's name says which part it is.
    let ca = TestCa::new(&if parts == 1 {
        "bench".to_owned()
    } else {
        format!("bench-part{part}")
    });
    let dir = args
        .out
        .parent()
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    let ca_path = std::fs::canonicalize(ca.write_root_pem(&dir)).expect("CA path");

    // Part 0: each anchor holds its port on 127.0.0.1 and ::1 (the homeservers of every part bind 127.b.x.y on
    // the same port), and the other parts are told the ports at once.
    let anchors = args
        .ports
        .is_none()
        .then(|| [PortAnchor::new(), PortAnchor::new(), PortAnchor::new()]);
    let [wk_port, fed_port, srv_port] = match (&anchors, args.ports) {
        (Some([wk, fed, srv]), _) => [wk.port, fed.port, srv.port],
        (None, Some(ports)) => ports,
        (None, None) => unreachable!("args() requires --ports without anchors"),
    };
    if anchors.is_some() {
        println!(
            "{}",
            json!({ "event": "ports", "well_known": wk_port, "federation": fed_port, "srv": srv_port })
        );
        std::io::stdout().flush().expect("stdout");
    }
    // This part's slice of the names: [first, end).
    let first = args.servers * part / parts;
    let end = args.servers * (part + 1) / parts;

    // Every part walks the whole plan (names, kinds, addresses: cheap), so that the addresses agree; part 0
    // puts every name in the zone, and each part starts the servers of its own slice only.
    let serves_dns = part == 0;
    // One small zone per name: one zone of 100,000 names would answer every NXDOMAIN and NODATA (SRV lookups of
    // direct names, AAAA of every name) by scanning all its records.
    let mut zone = Zone::new().zone_per_name();
    let healthy = args.healthy_client;
    let per_10 = LISTENERS_PER_10[usize::from(healthy)];
    let mut servers: Vec<FakeServer> = Vec::with_capacity((end - first) * per_10 / 10 + 1);
    let mut names = Vec::with_capacity(end - first);
    let mut targets = Vec::with_capacity(end - first);
    let mut next_ip = 0usize;
    let mut take_ip = || {
        let a = ip(next_ip);
        next_ip += 1;
        a
    };
    let (mut direct, mut delegated, mut by_srv) = (0usize, 0usize, 0usize);
    for i in 0..args.servers {
        let mine = (first..end).contains(&i);
        let kind = match i % 10 {
            8 => Kind::WellKnown {
                host: format!("h{i}.{ZONE}"),
                explicit_port: (i / 10) % 2 == 0,
            },
            9 => Kind::Srv {
                target: format!("t{i}.{ZONE}"),
            },
            _ => Kind::Direct,
        };
        let name = match kind {
            Kind::Direct => format!("d{i}.{ZONE}"),
            Kind::WellKnown { .. } => format!("w{i}.{ZONE}"),
            Kind::Srv { .. } => format!("s{i}.{ZONE}"),
        };
        // (the name the certificate must hold, the endpoint's address and port, and with `--healthy-client` the
        // address of the name's own well-known listener, which presents the endpoint's certificate)
        let (tls_name, endpoint, site) = match &kind {
            Kind::Direct => {
                let a = take_ip();
                if serves_dns {
                    zone = zone.a(&name, v4(a));
                }
                if !mine {
                    continue;
                }
                direct += 1;
                (
                    name.clone(),
                    SocketAddr::new(a, fed_port),
                    healthy.then_some(a),
                )
            }
            Kind::WellKnown {
                host,
                explicit_port,
            } => {
                let (front, second, back) = (take_ip(), take_ip(), take_ip());
                if serves_dns {
                    zone = zone
                        .a(&name, v4(front))
                        .a(&name, v4(second))
                        .a(host, v4(back));
                    // Some delegating names keep a stale SRV record of their own (shadowed by the well-known).
                    if (i / 10) % 3 == 0 {
                        zone = zone.srv(
                            &format!("_matrix-fed._tcp.{name}"),
                            10,
                            5,
                            srv_port,
                            &format!("old.{ZONE}"),
                        );
                    }
                }
                if !mine {
                    continue;
                }
                delegated += 1;
                let m_server = if *explicit_port {
                    format!("{host}:{fed_port}")
                } else {
                    host.clone()
                };
                // The well-known fronts (two addresses of the name): a certificate for the server name, the
                // delegation, and client discovery naming the front itself, so a probe's client step rides the
                // well-known's connection (the common case: no extra handshake).
                let leaf = ca.leaf(&[&name], Validity::Valid);
                let body = json!({ "m.server": m_server }).to_string();
                let client = json!({ "m.homeserver": { "base_url": format!("https://{name}") } })
                    .to_string();
                // Every well-known front also says whom to contact.
                let support_body = json!({ "contacts": [{
                    "role": "m.role.admin",
                    "matrix_id": format!("@admin:{name}"),
                }] })
                .to_string();
                for at in [front, second] {
                    servers.push(
                        FakeServer::start(
                            SocketAddr::new(at, wk_port),
                            Behaviour::Https {
                                leaf: leaf.clone(),
                                routes: Routes::new()
                                    .well_known_json(&body)
                                    .route(
                                        "/.well-known/matrix/support",
                                        support::Reply::json(200, support_body.clone()),
                                    )
                                    .route(
                                        "/.well-known/matrix/client",
                                        Reply::json(200, client.clone()),
                                    )
                                    .route(
                                        "/_matrix/client/versions",
                                        Reply::json(200, CLIENT_VERSIONS),
                                    ),
                            },
                        )
                        .await,
                    );
                }
                (host.clone(), SocketAddr::new(back, fed_port), None)
            }
            Kind::Srv { target } => {
                let a = take_ip();
                // With `--healthy-client`, the name itself has an address (taken in every part, so that the
                // plans agree).
                let site = healthy.then(&mut take_ip);
                if serves_dns {
                    zone = zone
                        .srv(&format!("_matrix-fed._tcp.{name}"), 10, 5, srv_port, target)
                        .a(target, v4(a));
                    if let Some(site) = site {
                        zone = zone.a(&name, v4(site));
                    }
                }
                if !mine {
                    continue;
                }
                by_srv += 1;
                (name.clone(), SocketAddr::new(a, srv_port), site)
            }
        };
        // The federation endpoint: a certificate for the spec's TLS name (plus its own IP, for blackbox) and a
        // key document signed by a fresh key, naming the server.
        let ip_text = endpoint.ip().to_string();
        let leaf = ca.leaf(&[&tls_name, &ip_text], Validity::Valid);
        if let Some(site) = site {
            // `--healthy-client`: the name's port 443, for client discovery (the TLS name of a direct or SRV name
            // is the name itself, so the endpoint's certificate is valid here too).
            servers.push(
                FakeServer::start(
                    SocketAddr::new(site, wk_port),
                    Behaviour::Https {
                        leaf: leaf.clone(),
                        routes: Routes::new().route(
                            "/_matrix/client/versions",
                            Reply::json(200, CLIENT_VERSIONS),
                        ),
                    },
                )
                .await,
            );
        }
        servers.push(
            FakeServer::start(
                endpoint,
                Behaviour::Https {
                    leaf,
                    routes: support::matrix_routes(&name),
                },
            )
            .await,
        );
        targets
            .push(json!({ "name": name, "address": endpoint.to_string(), "tls_name": tls_name }));
        names.push(name);
    }
    let dns = if serves_dns {
        Some(FakeDns::start(zone).await)
    } else {
        None
    };
    let dns_addr = dns.as_ref().map(|d| d.addr.to_string());

    let world = json!({
        "servers": args.servers,
        "part": part,
        "parts": parts,
        "direct": direct,
        "well_known": delegated,
        "srv": by_srv,
        "healthy_client": healthy,
        "listeners": servers.len(),
        "dns": dns_addr,
        "well_known_port": wk_port,
        "federation_port": fed_port,
        "srv_port": srv_port,
        "ca_file": ca_path,
        "names": names,
        "targets": targets,
        "pid": std::process::id(),
    });
    let tmp = args.out.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&world).expect("world JSON"))
        .expect("write the world file");
    std::fs::rename(&tmp, &args.out).expect("publish the world file");
    eprintln!(
        "bench_world: part {part}/{parts}: names {first}..{end} of {} ({direct} direct, {delegated} well-known, \
         {by_srv} SRV{}) on {} listeners, DNS {}, ready after {:.1} s; world file {}",
        args.servers,
        if healthy {
            "; healthy client discovery"
        } else {
            ""
        },
        servers.len(),
        dns_addr.as_deref().unwrap_or("in part 0"),
        started.elapsed().as_secs_f64(),
        args.out.display()
    );

    // Serve until killed, but never longer than --max-seconds.
    tokio::time::sleep(Duration::from_secs(args.max_seconds)).await;
    eprintln!("bench_world: --max-seconds reached, exiting");
    drop((servers, dns, anchors));
}

fn v4(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(_) => unreachable!("the world uses IPv4 loopback addresses"),
    }
}
