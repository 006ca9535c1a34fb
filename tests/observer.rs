//! The observer profile (`metrics.profile: observer`) end to end: the exporter probes a world with every kind of
//! server (direct, delegated by `.well-known`, found by SRV, two IPv4 addresses, dual-stack, with client
//! discovery, with a support document, and failing ones), and the test counts the series `/metrics` renders per
//! server against the budget of issue 19: at most 8 for a healthy single-address server, and at most 3 more per
//! further address. Failures and warnings must still be there, and `/probe` answers in the same profile.

mod support;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use matrix_federation_exporter::config::server_name::ServerName;
use matrix_federation_exporter::config::{Config, MetricsConfig, ProbeConfig, Profile};
use matrix_federation_exporter::probe::env::{Ports, ProbeEnv};
use matrix_federation_exporter::serve::daemon::{self, Exporter};
use support::{
    Behaviour, FakeDns, FakeServer, PortAnchor, Reply, Routes, TIMEOUTS, TestCa, Validity, keys,
};

/// The budget: series of a healthy server with one address, and per further address.
const SINGLE_ADDRESS_BUDGET: usize = 8;
const PER_FURTHER_ADDRESS: usize = 3;

/// Every kind of server, healthy unless its name says otherwise, with how many addresses it has.
const HEALTHY: &[(&str, usize)] = &[
    ("direct.test", 1),
    ("deleg.test", 1),
    ("srv.test", 1),
    ("client.test", 1),
    ("support.test", 1),
    ("multi.test", 2),
    ("dual.test", 2),
];
const FAILING: &[&str] = &["expired.test", "wrongname.test", "badsupport.test"];

/// The world and the exporter over it, in `profile`, after the first probe round.
struct Setup {
    exporter: Exporter,
    _servers: Vec<FakeServer>,
    _dns: FakeDns,
    _anchors: (PortAnchor, PortAnchor),
}

#[expect(
    clippy::too_many_lines,
    reason = "the world of every kind of server, set up in one place"
)]
async fn start(profile: Profile) -> Setup {
    let (mut wk, mut fed) = (PortAnchor::new(), PortAnchor::new());
    let ca = TestCa::new("observer");
    let ip = |last: u8| Ipv4Addr::new(127, 0, 0, last);
    let zone = support::Zone::new()
        .a("direct.test", ip(2))
        .a("deleg.test", ip(3))
        .a("host.deleg.test", ip(4))
        .srv(
            "_matrix-fed._tcp.srv.test",
            10,
            0,
            fed.port,
            "target.srv.test",
        )
        .a("srv.test", ip(5))
        .a("target.srv.test", ip(5))
        .a("client.test", ip(6))
        .a("support.test", ip(7))
        .a("multi.test", ip(8))
        .a("multi.test", ip(9))
        .a("dual.test", ip(10))
        .aaaa("dual.test", Ipv6Addr::LOCALHOST)
        .a("expired.test", ip(11))
        .a("wrongname.test", ip(12))
        .a("badsupport.test", ip(13));
    let dns = FakeDns::start(zone).await;
    let https = |leaf, routes| Behaviour::Https { leaf, routes };
    let valid = |name: &str| ca.leaf(&[name], Validity::Valid);
    // One key document served by both addresses of a multi-address server: the same homeserver behind both.
    let same = |name: &str| keys::matrix_routes(name);
    let multi_routes = same("multi.test");
    let dual_routes = same("dual.test");
    // Port 443 of a server name: `routes`, plus what a client following the spec's client discovery needs
    // (`/_matrix/client/versions` at https://NAME; no client well-known is IGNORE, and clients use that URL).
    let site = |name: &str, routes: Routes| {
        https(
            valid(name),
            routes.route(
                "/_matrix/client/versions",
                Reply::json(200, r#"{"versions":["v1.11"]}"#),
            ),
        )
    };
    let well_known = site;
    let plan = vec![
        (wk.bind(ip(2)), site("direct.test", Routes::new())),
        (fed.bind(ip(2)), https(valid("direct.test"), same("direct.test"))),
        (
            wk.bind(ip(3)),
            well_known(
                "deleg.test",
                Routes::new().well_known_json(r#"{"m.server":"host.deleg.test"}"#),
            ),
        ),
        (wk.bind(ip(5)), site("srv.test", Routes::new())),
        (fed.bind(ip(4)), https(valid("host.deleg.test"), same("deleg.test"))),
        (fed.bind(ip(5)), https(valid("srv.test"), same("srv.test"))),
        (
            wk.bind(ip(6)),
            well_known(
                "client.test",
                Routes::new().route(
                    "/.well-known/matrix/client",
                    // With CORS, as the spec asks (else the warning `client_well_known_no_cors`).
                    Reply::Json {
                        status: 200,
                        headers: vec![("access-control-allow-origin".into(), "*".into())],
                        body: r#"{"m.homeserver":{"base_url":"https://client.test"}}"#.into(),
                    },
                ),
            ),
        ),
        (fed.bind(ip(6)), https(valid("client.test"), same("client.test"))),
        (
            wk.bind(ip(7)),
            well_known(
                "support.test",
                Routes::new().route(
                    "/.well-known/matrix/support",
                    Reply::json(
                        200,
                        r#"{"contacts":[{"role":"m.role.admin","email_address":"admin@support.test"}]}"#,
                    ),
                ),
            ),
        ),
        (fed.bind(ip(7)), https(valid("support.test"), same("support.test"))),
        (wk.bind(ip(8)), site("multi.test", Routes::new())),
        (wk.bind(ip(9)), site("multi.test", Routes::new())),
        (wk.bind(ip(10)), site("dual.test", Routes::new())),
        (wk.bind(Ipv6Addr::LOCALHOST), site("dual.test", Routes::new())),
        (wk.bind(ip(11)), site("expired.test", Routes::new())),
        (wk.bind(ip(12)), site("wrongname.test", Routes::new())),
        (fed.bind(ip(8)), https(valid("multi.test"), multi_routes.clone())),
        (fed.bind(ip(9)), https(valid("multi.test"), multi_routes)),
        (fed.bind(ip(10)), https(valid("dual.test"), dual_routes.clone())),
        (fed.bind(Ipv6Addr::LOCALHOST), https(valid("dual.test"), dual_routes)),
        (
            fed.bind(ip(11)),
            https(
                ca.leaf(&["expired.test"], Validity::Expired),
                same("expired.test"),
            ),
        ),
        (fed.bind(ip(12)), https(valid("other.test"), same("wrongname.test"))),
        (
            wk.bind(ip(13)),
            well_known(
                "badsupport.test",
                Routes::new().route("/.well-known/matrix/support", Reply::json(200, "[not json")),
            ),
        ),
        (fed.bind(ip(13)), https(valid("badsupport.test"), same("badsupport.test"))),
    ];
    let mut servers = Vec::new();
    for (bind, behaviour) in plan {
        servers.push(FakeServer::start(bind, behaviour).await);
    }
    let ports = Ports {
        well_known: wk.port,
        federation: fed.port,
    };
    let env = ProbeEnv::new(&[dns.addr], ca.root_store(), ports, TIMEOUTS).expect("probe env");
    let names = HEALTHY
        .iter()
        .map(|(n, _)| *n)
        .chain(FAILING.iter().copied());
    let config = Config {
        servers: names.map(|n| ServerName::parse(n).unwrap()).collect(),
        probe: ProbeConfig {
            timeouts: TIMEOUTS,
            ..ProbeConfig::default()
        },
        metrics: MetricsConfig { profile },
        ..Config::default()
    };
    let mut exporter = daemon::start(&config, env);
    exporter.ready.wait_for(|r| *r).await.expect("first round");
    Setup {
        exporter,
        _servers: servers,
        _dns: dns,
        _anchors: (wk, fed),
    }
}

async fn get(exporter: &Exporter, path: &str) -> String {
    support::router::get_ok(&exporter.router, path).await
}

/// The sample lines of `metrics` per `server_name`.
fn per_server(metrics: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        if let Some(rest) = line.split("server_name=\"").nth(1) {
            let name = rest.split('"').next().unwrap().to_owned();
            out.entry(name).or_default().push(line.to_owned());
        }
    }
    out
}

#[tokio::test]
#[expect(
    clippy::too_many_lines,
    reason = "one run over every kind of server: the budget, the faults kept, the families dropped, /probe"
)]
async fn observer_series_per_server_stay_within_the_budget() {
    let setup = start(Profile::Observer).await;
    let metrics = get(&setup.exporter, "/metrics").await;
    assert!(
        metrics.contains("matrix_federation_exporter_metrics_profile_info{profile=\"observer\"} 1"),
        "{metrics}"
    );
    let servers = per_server(&metrics);
    let mut counted = Vec::new();
    for &(name, addresses) in HEALTHY {
        let lines = servers
            .get(name)
            .unwrap_or_else(|| panic!("no series for {name}"));
        // Healthy: the probe passed and there is no failure or warning.
        assert!(
            lines.contains(&format!(
                "matrix_federation_probe_success{{server_name=\"{name}\"}} 1.0"
            )),
            "{name} is not healthy: {lines:#?}"
        );
        assert!(
            !lines
                .iter()
                .any(|l| l.contains("_failure_info") || l.contains("_warning_info")),
            "{name} has a failure or warning: {lines:#?}"
        );
        // Every address's keys verify and agree (the two addresses of multi.test and dual.test serve one
        // homeserver's keys), so no signing_key_info row.
        assert!(
            lines.contains(&format!(
                "matrix_federation_keys_valid_all{{server_name=\"{name}\"}} 1.0"
            )),
            "{name}: {lines:#?}"
        );
        assert!(
            !lines
                .iter()
                .any(|l| l.starts_with("matrix_federation_signing_key_info{")),
            "{lines:#?}"
        );
        let successes = lines
            .iter()
            .filter(|l| l.starts_with("matrix_federation_address_success{"))
            .count();
        assert_eq!(successes, addresses, "addresses of {name}: {lines:#?}");
        let budget = SINGLE_ADDRESS_BUDGET + PER_FURTHER_ADDRESS * (addresses - 1);
        assert!(
            lines.len() <= budget,
            "{name} ({addresses} addresses) has {} series in the observer profile, over {budget}: {lines:#?}",
            lines.len()
        );
        counted.push(format!(
            "{name}: {} series, {addresses} address(es)",
            lines.len()
        ));
    }
    // The counts, for the report (`cargo test --test observer -- --nocapture`).
    println!(
        "observer series per healthy server:\n{}",
        counted.join("\n")
    );

    // The failing servers keep their failures and warnings, and the series the alerts read.
    let expired = &servers["expired.test"];
    assert!(
        expired
            .iter()
            .any(|l| l.contains("stage=\"certificate\"") && l.contains("reason=\"cert_expired\"")),
        "{expired:#?}"
    );
    assert!(
        expired
            .iter()
            .any(|l| l
                .starts_with("matrix_federation_cert_chain_earliest_not_after_timestamp_seconds{")),
        "{expired:#?}"
    );
    let wrong = &servers["wrongname.test"];
    assert!(
        wrong
            .iter()
            .any(|l| l.contains("reason=\"cert_hostname_mismatch\"")),
        "{wrong:#?}"
    );
    // The rejected certificate's identity stays (MatrixFederationCertificateInvalid's description).
    assert!(
        wrong
            .iter()
            .any(|l| l.starts_with("matrix_federation_cert_info{")),
        "{wrong:#?}"
    );
    let bad_support = &servers["badsupport.test"];
    assert!(
        bad_support
            .iter()
            .any(|l| l.contains("warning=\"support_invalid\"")),
        "{bad_support:#?}"
    );
    assert!(
        bad_support
            .iter()
            .any(|l| l.starts_with("matrix_federation_support_info{")),
        "{bad_support:#?}"
    );

    // Families the observer profile drops are gone.
    for dropped in [
        "matrix_federation_connection_duration_seconds",
        "matrix_federation_tls_info",
        "matrix_federation_cert_not_before_timestamp_seconds",
        "matrix_federation_resolution_duration_seconds",
        "matrix_federation_addresses{",
        "matrix_federation_address_info",
        "matrix_federation_server_version_info",
    ] {
        assert!(
            !metrics.contains(dropped),
            "{dropped} in the observer profile"
        );
    }

    // `/probe` answers in the same profile.
    let probe = get(&setup.exporter, "/probe?target=direct.test").await;
    let lines = &per_server(&probe)["direct.test"];
    assert!(lines.len() <= SINGLE_ADDRESS_BUDGET, "{lines:#?}");
    assert!(!probe.contains("matrix_federation_tls_info"), "{probe}");
}

#[tokio::test]
async fn the_full_profile_renders_every_series_and_the_aggregates() {
    let setup = start(Profile::Full).await;
    let metrics = get(&setup.exporter, "/metrics").await;
    assert!(
        metrics.contains("matrix_federation_exporter_metrics_profile_info{profile=\"full\"} 1")
    );
    let servers = per_server(&metrics);
    // A healthy single-address server has its detail series and the aggregates too (the leaf's only here).
    let direct = &servers["direct.test"];
    assert!(direct.len() > 20, "{direct:#?}");
    for family in [
        "matrix_federation_tls_info{",
        "matrix_federation_cert_earliest_not_after_timestamp_seconds{",
        "matrix_federation_cert_chain_earliest_not_after_timestamp_seconds{",
        "matrix_federation_keys_valid_all{",
        "matrix_federation_keys_valid_until_earliest_timestamp_seconds{",
    ] {
        assert!(
            direct.iter().any(|l| l.starts_with(family)),
            "{family}: {direct:#?}"
        );
    }
    let probe = get(&setup.exporter, "/probe?target=direct.test").await;
    assert!(probe.contains("matrix_federation_tls_info"), "{probe}");
}
