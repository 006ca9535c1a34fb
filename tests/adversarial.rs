//! Adversarial servers: each hostile peer of issue 7 gets the real probe, with short timeouts, and each test
//! proves the bound: the probe ends (an outer, generous timeout fails the test if it does not), the outcome is a
//! classified reason, what the exporter keeps stays small, and nothing panics (not even in a task the probe
//! spawned: `#[tokio::test]` runs them on the test's own thread, where a panic hook counts them).
//!
//! Memory is checked where it would grow: a server told to stream 1 GiB (or 10 MB, or endless header lines)
//! counts what it managed to write before the client hung up, which must stay far below what it offered; and
//! the report itself (what the store keeps) stays small. No assertion depends on wall-clock time.

mod support;

use std::cell::Cell;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Once;
use std::time::{Duration, SystemTime};

use matrix_federation_exporter::config::Timeouts;
use matrix_federation_exporter::config::server_name::ServerName;
use matrix_federation_exporter::probe::discovery::dns::MAX_RECORDS;
use matrix_federation_exporter::probe::discovery::well_known::{MAX_BODY, MAX_REDIRECTS};
use matrix_federation_exporter::probe::discovery::{MAX_ADDRESSES, MAX_TARGETS};
use matrix_federation_exporter::probe::env::{Ports, ProbeEnv};
use matrix_federation_exporter::probe::{MAX_KEYS_BODY, probe_server};
use matrix_federation_exporter::render::tester::{tester_report, tester_report_pretty};
use matrix_federation_exporter::render::text;
use matrix_federation_exporter::report::{
    AddressReport, Method, Reason, ServerReport, Stage, WellKnownOutcome,
};
use rustls::RootCertStore;
use support::evil::{self, DnsEvil, Evil, EvilDns, EvilServer, SrvFloodDns};
use support::https::WELL_KNOWN_SERVER;
use support::{Behaviour, FakeDns, FakeServer, PortAnchor, Reply, Routes, TestCa, Validity, Zone};

/// Short timeouts: every hostile server here is cut by one of these.
const SHORT: Timeouts = Timeouts {
    dns: Duration::from_secs(1),
    connect: Duration::from_secs(1),
    tls_handshake: Duration::from_secs(1),
    well_known: Duration::from_secs(2),
    http: Duration::from_secs(1),
};

/// The most a server may have written when the client stops reading early: what the client accepts (at most
/// a few hundred KiB), plus what the kernel buffers on loopback (the sender's buffer grows up to `tcp_wmem`'s
/// maximum, 4 MiB by default; the receiver's stays near its default since the client stops reading), plus
/// rustls' 64 KiB, plus 8 MiB of slack. Some 12 MiB: far below the 1 GiB the servers offer.
fn buffered() -> u64 {
    let wmem_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse::<u64>().ok())
        .unwrap_or(4 << 20);
    wmem_max + (8 << 20)
}

/// What the exporter keeps of one probe (its report, as the store holds it) stays this small in every case but
/// those with many addresses or long certificate chains (`CAPPED_REPORT`).
const SMALL_REPORT: usize = 32 * 1024;
/// A report of `MAX_ADDRESSES` addresses, or of a chain whose facts are all kept (bounded by the TLS certificate
/// message, at most 64 KiB of DER): larger, still bounded by the caps rather than by what the server sent.
const CAPPED_REPORT: usize = 256 * 1024;

const SERVER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// One test's world: a fake DNS zone, a test CA, and the two spec ports (443 → `wk`, 8448 → `fed`).
struct World {
    ca: TestCa,
    dns: FakeDns,
    wk: PortAnchor,
    fed: PortAnchor,
}

impl World {
    async fn start(zone: Zone) -> World {
        World {
            ca: TestCa::new("adversarial"),
            dns: FakeDns::start(zone).await,
            wk: PortAnchor::new(),
            fed: PortAnchor::new(),
        }
    }

    fn env(&self) -> ProbeEnv {
        self.env_with(self.dns.addr, self.ca.root_store(), SHORT)
    }

    fn env_with(&self, dns: SocketAddr, roots: RootCertStore, timeouts: Timeouts) -> ProbeEnv {
        let ports = Ports {
            well_known: self.wk.port,
            federation: self.fed.port,
        };
        ProbeEnv::new(&[dns], roots, ports, timeouts).unwrap()
    }

    /// `host:<fed>`: a server name with an explicit port (no well-known, no SRV).
    fn on_fed(&self, host: &str) -> String {
        format!("{host}:{}", self.fed.port)
    }
}

/// Probes `name` under an outer timeout far beyond the probe's own deadline: if that one expires, the probe
/// did not end on its own and the test fails.
async fn probe(env: &ProbeEnv, name: &str) -> ServerReport {
    watch_panics();
    let name = ServerName::parse(name).unwrap();
    let limit = env.probe_deadline() + Duration::from_secs(30);
    let report = tokio::time::timeout(limit, probe_server(env, &name))
        .await
        .unwrap_or_else(|_| panic!("the probe of {name} did not end within {limit:?}"));
    assert_eq!(
        PANICS.with(Cell::get),
        0,
        "a task of the probe panicked\n{report:#?}"
    );
    assert!(!report.success(), "a hostile server passed\n{report:#?}");
    upstream_shape(&report);
    report
}

/// Issue 13: what a hostile server makes of the report API still reads as upstream's Go types.
fn upstream_shape(report: &ServerReport) {
    let json = support::tester_shape::assert_upstream_shape(&tester_report_pretty(report));
    support::tester_shape::read_like_fed_tester_ui(&json)
        .unwrap_or_else(|e| panic!("{e}\n{json:#}"));
}

thread_local! {
    /// Panics on this thread (the test's, which also runs every task the probe spawns).
    static PANICS: Cell<usize> = const { Cell::new(0) };
}

/// Counts every panic on its thread, then reports it as usual.
fn watch_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            previous(info);
        }));
    });
}

/// The one address of `report`.
fn only_address(report: &ServerReport) -> &AddressReport {
    assert_eq!(report.addresses.len(), 1, "{report:#?}");
    &report.addresses[0]
}

fn reasons(address: &AddressReport) -> Vec<(Stage, Reason)> {
    address
        .failures
        .iter()
        .map(|f| (f.stage, f.reason))
        .collect()
}

/// What the store would keep of this report stays under `limit` bytes (its debug form is a generous measure).
fn assert_small(report: &ServerReport, limit: usize) {
    let size = format!("{report:?}").len();
    assert!(size < limit, "the report is {size} bytes\n{report:#?}");
    for (_, f) in report.all_failures() {
        assert!(
            f.message.len() < 1024,
            "a failure message of {} bytes: {f}",
            f.message.len()
        );
    }
}

/// The server saw every one of its connections closed by the client (bounded wait; the client hangs up when
/// its timeout fires or its cap is reached, so this is not a timing assertion).
async fn client_hung_up(server: &EvilServer) {
    assert!(
        server.all_finished(Duration::from_secs(30)).await,
        "the client kept a connection open to {}",
        server.addr
    );
}

// ---- TLS ----

/// A slowloris TLS server: its real handshake, one byte a second. The handshake timeout cuts it.
#[tokio::test]
async fn slowloris_tls_handshake_times_out() {
    let mut world = World::start(Zone::new().a("slow.test", SERVER_IP)).await;
    let leaf = world.ca.leaf(&["slow.test"], Validity::Valid);
    let every = Duration::from_secs(1);
    let server = EvilServer::start(world.fed.bind(SERVER_IP), Evil::SlowTls { leaf, every }).await;
    let report = probe(&world.env(), &world.on_fed("slow.test")).await;
    let a = only_address(&report);
    assert_eq!(
        reasons(a),
        [(Stage::Tls, Reason::TlsTimeout)],
        "{report:#?}"
    );
    assert!(a.tls.is_none() && a.certificate.is_none());
    client_hung_up(&server).await;
    assert!(server.written() >= 1, "the server did start its handshake");
    assert_eq!(server.completed(), 0, "the handshake never completed");
    assert_small(&report, SMALL_REPORT);
}

/// Random bytes instead of a `ServerHello`, without end: the first record header is refused.
#[tokio::test]
async fn garbage_instead_of_tls_fails_the_handshake() {
    let mut world = World::start(Zone::new().a("noise.test", SERVER_IP)).await;
    let server = EvilServer::start(
        world.fed.bind(SERVER_IP),
        Evil::Garbage { prefix: Vec::new() },
    )
    .await;
    let report = probe(&world.env(), &world.on_fed("noise.test")).await;
    let a = only_address(&report);
    assert_eq!(
        reasons(a),
        [(Stage::Tls, Reason::TlsHandshakeFailed)],
        "{report:#?}"
    );
    client_hung_up(&server).await;
    assert!(
        server.written() < buffered(),
        "{} bytes of garbage",
        server.written()
    );
    assert_small(&report, SMALL_REPORT);
}

/// A handshake record header announcing the largest record length (64 KiB), then garbage: the client must not
/// wait for (or allocate) the announced record.
#[tokio::test]
async fn an_oversized_tls_record_fails_the_handshake() {
    let mut world = World::start(Zone::new().a("record.test", SERVER_IP)).await;
    let prefix = vec![0x16, 0x03, 0x03, 0xff, 0xff];
    let server = EvilServer::start(world.fed.bind(SERVER_IP), Evil::Garbage { prefix }).await;
    let report = probe(&world.env(), &world.on_fed("record.test")).await;
    let a = only_address(&report);
    assert_eq!(
        reasons(a),
        [(Stage::Tls, Reason::TlsHandshakeFailed)],
        "{report:#?}"
    );
    client_hung_up(&server).await;
    assert!(server.written() < buffered());
    assert_small(&report, SMALL_REPORT);
}

/// 100 certificates: the leaf and 99 untrusted CAs that all share its issuer's name (each a candidate issuer of
/// every other). Path building gives up within webpki's budget: a classified certificate failure, and the
/// Matrix checks still run on the connection.
#[tokio::test]
async fn a_chain_of_100_look_alike_cas_is_a_classified_certificate_failure() {
    let mut world = World::start(Zone::new().a("loop.test", SERVER_IP)).await;
    let leaf = evil::looping_chain(&["loop.test"], 100);
    assert_eq!(leaf.chain.len(), 100);
    let name = world.on_fed("loop.test");
    let routes = support::matrix_routes(&name);
    let _server =
        FakeServer::start(world.fed.bind(SERVER_IP), Behaviour::Https { leaf, routes }).await;
    let report = probe(&world.env(), &name).await;
    let a = only_address(&report);
    let cert = a
        .certificate
        .as_ref()
        .expect("a verdict after the handshake");
    assert_eq!(cert.chain.len(), 100, "every certificate's facts are read");
    assert_eq!(
        reasons(a),
        [(Stage::Certificate, Reason::CertInvalid)],
        "{report:#?}"
    );
    assert!(
        a.failures[0]
            .message
            .contains("MaximumPathBuildCallsExceeded"),
        "webpki's path-building budget stopped it\n{report:#?}"
    );
    assert!(a.keys.is_some() && a.version.is_some(), "{report:#?}");
    assert_small(&report, CAPPED_REPORT);
}

/// 100 certificates that really chain to a trusted root, 98 CAs deep: far deeper than a verifier follows.
#[tokio::test]
async fn a_100_deep_chain_to_a_trusted_root_is_a_classified_certificate_failure() {
    let mut world = World::start(Zone::new().a("deep.test", SERVER_IP)).await;
    let (leaf, root) = evil::deep_chain(&["deep.test"], 100);
    assert_eq!(leaf.chain.len(), 99, "leaf and 98 CAs, the root not sent");
    let name = world.on_fed("deep.test");
    let routes = support::matrix_routes(&name);
    let _server =
        FakeServer::start(world.fed.bind(SERVER_IP), Behaviour::Https { leaf, routes }).await;
    let mut roots = RootCertStore::empty();
    roots.add(root).unwrap();
    let env = world.env_with(world.dns.addr, roots, SHORT);
    let report = probe(&env, &name).await;
    let a = only_address(&report);
    assert_eq!(a.certificate.as_ref().unwrap().chain.len(), 99);
    assert_eq!(
        reasons(a),
        [(Stage::Certificate, Reason::CertInvalid)],
        "{report:#?}"
    );
    assert!(
        a.failures[0].message.contains("MaximumPathDepthExceeded"),
        "{report:#?}"
    );
    assert_small(&report, CAPPED_REPORT);
}

// ---- HTTP on a federation address ----

/// A 10 MB key document (and a 1 GiB one): the probe reads at most `MAX_KEYS_BODY` of it, calls it not JSON,
/// and sends no further request on that connection.
#[tokio::test]
async fn a_10_mb_key_document_is_capped() {
    for (bytes, chunked) in [(10_000_000, false), (10_000_000, true), (1 << 30, true)] {
        let mut world = World::start(Zone::new().a("fat.test", SERVER_IP)).await;
        let leaf = world.ca.leaf(&["fat.test"], Validity::Valid);
        let server = EvilServer::start(
            world.fed.bind(SERVER_IP),
            Evil::HugeBody {
                leaf,
                bytes,
                chunked,
            },
        )
        .await;
        let report = probe(&world.env(), &world.on_fed("fat.test")).await;
        let a = only_address(&report);
        assert_eq!(
            reasons(a),
            [(Stage::Keys, Reason::NotJson)],
            "{bytes} bytes, chunked: {chunked}\n{report:#?}"
        );
        assert!(
            a.failures[0]
                .message
                .contains(&format!("larger than {MAX_KEYS_BODY} bytes")),
            "{report:#?}"
        );
        assert!(a.keys.is_none() && a.version.is_none());
        client_hung_up(&server).await;
        assert_eq!(server.connections(), 1);
        assert_eq!(server.completed(), 0, "the client stopped reading early");
        assert!(
            server.written() < buffered().min(bytes),
            "{bytes} bytes, chunked: {chunked}: the server wrote {} bytes",
            server.written()
        );
        assert_small(&report, SMALL_REPORT);
    }
}

/// A response head that never ends (`X-a: b` forever): hyper's header limits stop it at once, and a
/// slow trickle of header lines is cut by the HTTP timeout.
#[tokio::test]
async fn endless_response_headers_are_cut() {
    for every in [None, Some(Duration::from_millis(50))] {
        let mut world = World::start(Zone::new().a("heady.test", SERVER_IP)).await;
        let leaf = world.ca.leaf(&["heady.test"], Validity::Valid);
        let server = EvilServer::start(
            world.fed.bind(SERVER_IP),
            Evil::EndlessHeaders { leaf, every },
        )
        .await;
        let report = probe(&world.env(), &world.on_fed("heady.test")).await;
        let a = only_address(&report);
        let want = if every.is_some() {
            Reason::Timeout
        } else {
            Reason::HttpStatus
        };
        assert_eq!(
            reasons(a),
            [(Stage::Keys, want)],
            "every: {every:?}\n{report:#?}"
        );
        client_hung_up(&server).await;
        assert!(
            server.written() < buffered(),
            "every {every:?}: the server wrote {} bytes of headers",
            server.written()
        );
        eprintln!(
            "endless headers (every {every:?}): the server wrote {} bytes",
            server.written()
        );
        assert_small(&report, SMALL_REPORT);
    }
}

/// JSON nested 100,000 levels deep as the key document (200 KB, under the cap) and nearly 32,000 deep as the
/// version answer: `serde_json`'s depth limit refuses both, no stack overflow.
#[tokio::test]
async fn deeply_nested_matrix_answers_are_not_json() {
    let mut world = World::start(Zone::new().a("nest.test", SERVER_IP)).await;
    let leaf = world.ca.leaf(&["nest.test"], Validity::Valid);
    let routes = Routes::new()
        .route(
            support::keys::KEY_SERVER_PATH,
            Reply::json(200, nested(100_000)),
        )
        .route(
            support::keys::VERSION_PATH,
            Reply::json(200, nested(32_000)),
        );
    let _server =
        FakeServer::start(world.fed.bind(SERVER_IP), Behaviour::Https { leaf, routes }).await;
    let report = probe(&world.env(), &world.on_fed("nest.test")).await;
    let a = only_address(&report);
    assert_eq!(
        reasons(a),
        [
            (Stage::Keys, Reason::NotJson),
            (Stage::Version, Reason::NotJson)
        ],
        "{report:#?}"
    );
    assert!(
        a.failures[0].message.contains("recursion limit"),
        "{report:#?}"
    );
    assert_small(&report, SMALL_REPORT);
}

/// `[[[[...]]]]`, `depth` levels.
fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

// ---- .well-known ----

/// A world where `name` (no port) has its well-known on `SERVER_IP:<wk>` served by `serve`, and a healthy
/// homeserver on `SERVER_IP:<fed>`, which discovery reaches once it falls through to step 6.
async fn well_known_world(name: &str) -> (World, FakeServer) {
    let mut world = World::start(Zone::new().a(name, SERVER_IP)).await;
    let homeserver = FakeServer::start(
        world.fed.bind(SERVER_IP),
        Behaviour::Https {
            leaf: world.ca.leaf(&[name], Validity::Valid),
            routes: support::matrix_routes(name),
        },
    )
    .await;
    (world, homeserver)
}

/// Discovery fell through to step 6 and the healthy homeserver passed.
fn fell_through(report: &ServerReport, outcome: WellKnownOutcome) {
    let d = &report.discovery;
    assert_eq!(d.well_known.outcome, outcome, "{report:#?}");
    assert_eq!(d.method, Method::DefaultPort, "{report:#?}");
    assert!(d.delegated_server.is_none());
    assert!(report.failures.is_empty(), "{report:#?}");
    assert!(
        only_address(report).success(),
        "the homeserver itself is healthy\n{report:#?}"
    );
}

/// More than 10 distinct redirects (30 in a row, never a loop): the lookup stops after 10 and falls through.
#[tokio::test]
async fn more_than_10_distinct_redirects_are_a_redirect_loop() {
    let (mut world, _homeserver) = well_known_world("hops.test").await;
    let mut routes = Routes::new().route(
        WELL_KNOWN_SERVER,
        Reply::Redirect {
            status: 302,
            location: "/hop/1".into(),
        },
    );
    for i in 1..30 {
        routes = routes.route(
            &format!("/hop/{i}"),
            Reply::Redirect {
                status: 307,
                location: format!("/hop/{}", i + 1),
            },
        );
    }
    let leaf = world.ca.leaf(&["hops.test"], Validity::Valid);
    let wk = FakeServer::start(world.wk.bind(SERVER_IP), Behaviour::Https { leaf, routes }).await;
    let mut env = world.env_with(
        world.dns.addr,
        world.ca.root_store(),
        Timeouts {
            // Eleven TLS connections, one after another, on a loaded test machine.
            well_known: Duration::from_secs(10),
            ..SHORT
        },
    );
    // The server well-known's requests only (client discovery would ask this server too; tests/client.rs).
    env.checks.client = false;
    let report = probe_ok(&env, "hops.test").await;
    fell_through(&report, WellKnownOutcome::RedirectLoop);
    let hops = &report.discovery.well_known.hops;
    assert_eq!(hops.len(), MAX_REDIRECTS + 1, "{report:#?}");
    // The support well-known asks the same origin once more, after the server well-known gave up.
    let server_hops = wk
        .requests()
        .into_iter()
        .filter(|(path, _)| path != "/.well-known/matrix/support")
        .count();
    assert_eq!(server_hops, MAX_REDIRECTS + 1);
    assert!(
        report
            .discovery
            .well_known
            .error
            .as_deref()
            .is_some_and(|e| e.contains("more than 10 redirects")),
        "{report:#?}"
    );
    assert_small(&report, SMALL_REPORT);
}

/// A 1 GiB well-known body, with a content-length and chunked: at most 50 KiB is read, then `too_large`.
#[tokio::test]
async fn a_1_gib_well_known_body_is_too_large() {
    for chunked in [false, true] {
        let (mut world, _homeserver) = well_known_world("huge.test").await;
        let leaf = world.ca.leaf(&["huge.test"], Validity::Valid);
        let bytes = 1 << 30;
        let server = EvilServer::start(
            world.wk.bind(SERVER_IP),
            Evil::HugeBody {
                leaf,
                bytes,
                chunked,
            },
        )
        .await;
        let report = probe_ok(&world.env(), "huge.test").await;
        fell_through(&report, WellKnownOutcome::TooLarge);
        assert!(
            report
                .discovery
                .well_known
                .error
                .as_deref()
                .is_some_and(|e| e.contains(&format!("larger than {MAX_BODY} bytes"))),
            "{report:#?}"
        );
        client_hung_up(&server).await;
        assert_eq!(server.completed(), 0);
        assert!(
            server.written() < buffered(),
            "chunked: {chunked}: the server wrote {} bytes",
            server.written()
        );
        eprintln!(
            "1 GiB well-known (chunked: {chunked}): the server wrote {} bytes",
            server.written()
        );
        assert_small(&report, SMALL_REPORT);
    }
}

/// Endless headers on the well-known: an HTTP error, and discovery falls through.
#[tokio::test]
async fn endless_well_known_headers_are_an_http_error() {
    let (mut world, _homeserver) = well_known_world("hdr.test").await;
    let leaf = world.ca.leaf(&["hdr.test"], Validity::Valid);
    let server = EvilServer::start(
        world.wk.bind(SERVER_IP),
        Evil::EndlessHeaders { leaf, every: None },
    )
    .await;
    let report = probe_ok(&world.env(), "hdr.test").await;
    fell_through(&report, WellKnownOutcome::HttpError);
    client_hung_up(&server).await;
    assert!(server.written() < buffered());
    assert_small(&report, SMALL_REPORT);
}

/// A well-known JSON nested 100,000 levels deep is 200 KB, over the 50 KiB cap: `too_large`. Nested as deep as
/// fits under the cap (25,000 levels), it is read whole and refused as `invalid_json`, with no stack overflow.
#[tokio::test]
async fn a_deeply_nested_well_known_is_refused() {
    for (depth, outcome) in [
        (100_000, WellKnownOutcome::TooLarge),
        (25_000, WellKnownOutcome::InvalidJson),
    ] {
        let (mut world, _homeserver) = well_known_world("deepwk.test").await;
        let leaf = world.ca.leaf(&["deepwk.test"], Validity::Valid);
        let body = nested(depth);
        assert_eq!(body.len() > MAX_BODY, outcome == WellKnownOutcome::TooLarge);
        let routes = Routes::new().route(WELL_KNOWN_SERVER, Reply::json(200, body));
        let _wk =
            FakeServer::start(world.wk.bind(SERVER_IP), Behaviour::Https { leaf, routes }).await;
        let report = probe_ok(&world.env(), "deepwk.test").await;
        fell_through(&report, outcome);
        assert_small(&report, SMALL_REPORT);
    }
}

/// A well-known server whose TLS handshake comes one byte every 100 ms is cut by the handshake timeout.
#[tokio::test]
async fn a_slowloris_well_known_handshake_is_a_tls_error() {
    let (mut world, _homeserver) = well_known_world("drip.test").await;
    let leaf = world.ca.leaf(&["drip.test"], Validity::Valid);
    let server = EvilServer::start(
        world.wk.bind(SERVER_IP),
        Evil::SlowTls {
            leaf,
            every: Duration::from_millis(100),
        },
    )
    .await;
    let report = probe_ok(&world.env(), "drip.test").await;
    fell_through(&report, WellKnownOutcome::TlsError);
    client_hung_up(&server).await;
    assert_small(&report, SMALL_REPORT);
}

/// Like [`probe`], for worlds where discovery falls through to a healthy homeserver (the probe may pass).
async fn probe_ok(env: &ProbeEnv, name: &str) -> ServerReport {
    watch_panics();
    let name = ServerName::parse(name).unwrap();
    let limit = env.probe_deadline() + Duration::from_secs(30);
    let report = tokio::time::timeout(limit, probe_server(env, &name))
        .await
        .unwrap_or_else(|_| panic!("the probe of {name} did not end within {limit:?}"));
    assert_eq!(PANICS.with(Cell::get), 0, "a task of the probe panicked");
    upstream_shape(&report);
    report
}

// ---- DNS ----

/// A zone where `name`'s `_matrix-fed._tcp` SRV has `n` records, each a different target that resolves to
/// `SERVER_IP` when `with_addresses`.
fn srv_zone(name: &str, n: usize, port: u16, with_addresses: bool) -> Zone {
    let mut zone = Zone::new().a(name, SERVER_IP);
    for i in 0..n {
        let target = format!("t{i}.{name}");
        zone = zone.srv(&format!("_matrix-fed._tcp.{name}"), 10, 0, port, &target);
        if with_addresses {
            zone = zone.a(&target, SERVER_IP);
        }
    }
    zone
}

/// 10,000 SRV records cannot fit in one DNS message (64 KiB, even over TCP): the name server sends the ~2,500
/// that fit with the TC bit set, as an authoritative server does, and the resolver refuses the incomplete
/// answer. A classified DNS failure, and nothing probed. (A hand-built name server: loading 10,000 records for
/// one name into the fake zone takes minutes.)
#[tokio::test]
async fn ten_thousand_srv_records_are_a_dns_error() {
    let world = World::start(Zone::new()).await;
    let flood = SrvFloodDns::start(10_000, world.fed.port).await;
    let env = world.env_with(flood.addr, world.ca.root_store(), SHORT);
    let report = probe(&env, "many.test").await;
    let d = &report.discovery;
    assert_eq!(d.method, Method::None, "{report:#?}");
    let got: Vec<(Stage, Reason)> = report
        .failures
        .iter()
        .map(|f| (f.stage, f.reason))
        .collect();
    assert_eq!(got, [(Stage::Dns, Reason::DnsError)], "{report:#?}");
    assert!(
        report.failures[0].message.contains("truncated"),
        "{report:#?}"
    );
    assert!(report.addresses.is_empty() && d.targets.is_empty());
    assert!(flood.answered() > 0);
    assert_small(&report, SMALL_REPORT);
}

/// As many SRV records as fit in one DNS message (about 2,500, each a different target, none of which resolves):
/// the answer is accepted, at most `MAX_RECORDS` records are kept and `MAX_TARGETS` followed, and the
/// truncation is reported.
#[tokio::test]
async fn a_full_dns_message_of_srv_records_is_capped() {
    let world = World::start(Zone::new()).await;
    let flood = SrvFloodDns::start(2_000, world.fed.port).await;
    let env = world.env_with(flood.addr, world.ca.root_store(), SHORT);
    let report = probe(&env, "many.test").await;
    let d = &report.discovery;
    assert_eq!(d.method, Method::SrvMatrixFed, "{report:#?}");
    assert!(d.truncated, "{report:#?}");
    assert_eq!(d.targets.len(), MAX_TARGETS.min(MAX_RECORDS), "{report:#?}");
    assert!(report.addresses.is_empty());
    assert!(
        report
            .failures
            .iter()
            .all(|f| f.reason == Reason::DnsNoRecords),
        "{report:#?}"
    );
    assert_small(&report, CAPPED_REPORT);
}

/// 1,000 SRV records (as many as fit in a DNS message many times over), each a different target: discovery
/// follows at most `MAX_TARGETS` of them, probes at most `MAX_ADDRESSES` addresses, and says so (`truncated`, in
/// the report JSON and in `check`'s output).
#[tokio::test]
async fn a_thousand_srv_records_are_capped_and_reported_truncated() {
    let mut world = World::start(Zone::new()).await;
    world
        .dns
        .set_zone(srv_zone("many.test", 1_000, world.fed.port, true));
    let _homeserver = FakeServer::start(
        world.fed.bind(SERVER_IP),
        Behaviour::Https {
            leaf: world.ca.leaf(&["many.test"], Validity::Valid),
            routes: support::matrix_routes("many.test"),
        },
    )
    .await;
    let report = probe_ok(&world.env(), "many.test").await;
    let d = &report.discovery;
    assert_eq!(d.method, Method::SrvMatrixFed, "{report:#?}");
    assert!(d.truncated, "the truncation is reported\n{report:#?}");
    assert!(!d.targets.is_empty() && d.targets.len() <= MAX_TARGETS.min(MAX_RECORDS));
    assert!(!report.addresses.is_empty() && report.addresses.len() <= MAX_ADDRESSES);
    assert!(
        report.success(),
        "every probed target is healthy\n{report:#?}"
    );
    assert_eq!(
        tester_report(&report)["MatrixFederationExporter"]["truncated"],
        serde_json::Value::Bool(true)
    );
    let text = text::render(&report, SystemTime::now(), false);
    assert!(
        text.contains("more targets or addresses than a probe follows"),
        "{text}"
    );
    assert_small(&report, CAPPED_REPORT);
}

/// A zone where `name` has `n` A records, all loopback addresses other than 127.0.0.1 where nothing listens.
fn wide_zone(name: &str, n: u32) -> Zone {
    let mut zone = Zone::new();
    for i in 0..n {
        let [_, _, hi, lo] = (0x7f00_0000 + 256 + i).to_be_bytes();
        zone = zone.a(name, Ipv4Addr::new(127, 0, hi, lo));
    }
    zone
}

/// One name with 1,000 A records: at most `MAX_RECORDS` addresses are kept and probed (each refused), and the
/// truncation is reported. With 10,000, the answer does not fit in a DNS message: a DNS error.
#[tokio::test]
async fn thousands_of_addresses_are_capped_or_refused() {
    for (n, truncated) in [(1_000, true), (10_000, false)] {
        let world = World::start(wide_zone("wide.test", n)).await;
        let report = probe(&world.env(), &world.on_fed("wide.test")).await;
        let d = &report.discovery;
        assert_eq!(d.truncated, truncated, "{n}\n{report:#?}");
        if truncated {
            assert_eq!(report.addresses.len(), MAX_ADDRESSES.min(MAX_RECORDS));
            assert!(report.failures.is_empty(), "{report:#?}");
            for a in &report.addresses {
                assert_eq!(
                    reasons(a),
                    [(Stage::Connect, Reason::ConnectionRefused)],
                    "{report:#?}"
                );
            }
        } else {
            assert!(report.addresses.is_empty());
            let got: Vec<Reason> = report.failures.iter().map(|f| f.reason).collect();
            assert_eq!(got, [Reason::DnsError], "{report:#?}");
        }
        assert_small(&report, CAPPED_REPORT);
    }
}

/// A name server answering every query badly: garbage (ignored, so the query times out), a malformed answer
/// with the right ID, and a truncated answer whose TCP retry is closed at once.
#[tokio::test]
async fn a_broken_name_server_is_a_dns_failure() {
    for (evil, want) in [
        (DnsEvil::Garbage, Reason::DnsTimeout),
        (DnsEvil::Malformed, Reason::DnsError),
        (DnsEvil::Truncated, Reason::DnsError),
    ] {
        let world = World::start(Zone::new()).await;
        let dns = EvilDns::start(evil).await;
        let env = world.env_with(dns.addr, world.ca.root_store(), SHORT);
        let report = probe(&env, "victim.test").await;
        let d = &report.discovery;
        assert_eq!(
            d.well_known.outcome,
            WellKnownOutcome::DnsError,
            "{evil:?}\n{report:#?}"
        );
        assert_eq!(d.method, Method::None, "{evil:?}\n{report:#?}");
        let got: Vec<(Stage, Reason)> = report
            .failures
            .iter()
            .map(|f| (f.stage, f.reason))
            .collect();
        assert_eq!(got, [(Stage::Dns, want)], "{evil:?}\n{report:#?}");
        assert!(dns.queries() > 0);
        if evil == DnsEvil::Truncated {
            assert!(dns.tcp_connections() > 0, "the resolver retried over TCP");
        }
        assert_small(&report, SMALL_REPORT);
    }
}
