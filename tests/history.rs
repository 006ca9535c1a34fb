//! Each scheduled server's recent history: a server whose `.well-known` delegation moves to another host (so its
//! certificate, and its signing keys, change too) between two probes shows both changes on `/server/NAME` and in
//! the report API's extension key. End to end against the hermetic world.

mod support;

use std::time::{Duration, Instant};

use matrix_federation_exporter::config::server_name::ServerName;
use matrix_federation_exporter::config::{Config, ProbeConfig};
use matrix_federation_exporter::render::tester::EXTENSION_KEY;
use serde_json::Value;
use support::https::WELL_KNOWN_SERVER;
use support::{Reply, Routes, TIMEOUTS, Validity, World, Zone, matrix_routes};

const NAME: &str = "moving.test";
const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_changed_certificate_and_delegation_show_on_the_page_and_in_the_api() {
    // moving.test (127.0.0.2) delegates to one.test (127.0.0.3), later to two.test (127.0.0.4): each host has
    // its own certificate and its own signing key.
    let mut world = World::new(
        "history",
        Zone::new()
            .a(NAME, "127.0.0.2".parse().unwrap())
            .a("one.test", "127.0.0.3".parse().unwrap())
            .a("two.test", "127.0.0.4".parse().unwrap()),
        TIMEOUTS,
    )
    .await;
    let delegate = |to: &str| Routes::new().well_known_json(&format!(r#"{{"m.server":"{to}"}}"#));
    let well_known = world.https(NAME, Validity::Valid, delegate("one.test"));
    world.serve_well_known([127, 0, 0, 2], well_known).await;
    for (ip, host) in [([127, 0, 0, 3], "one.test"), ([127, 0, 0, 4], "two.test")] {
        let behaviour = world.https(host, Validity::Valid, matrix_routes(NAME));
        world.serve_federation(ip, behaviour).await;
    }
    let config = Config {
        servers: vec![ServerName::parse(NAME).unwrap()],
        probe: ProbeConfig {
            interval: Duration::from_secs(3),
            jitter: Duration::from_millis(100),
            timeouts: TIMEOUTS,
            ..ProbeConfig::default()
        },
        ..Config::default()
    };
    let exporter = world.exporter(&config).await;

    let history = |report: &Value| report[EXTENSION_KEY]["history"].clone();
    let first = get(&exporter.router, &format!("/api/report?server_name={NAME}")).await;
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(
        history(&first)[0]["changed"],
        serde_json::json!(["first_probe"]),
        "{first:#}"
    );
    assert_eq!(history(&first)[0]["delegated_server"], "one.test");

    world.servers[0].set_route(
        WELL_KNOWN_SERVER,
        Reply::json(200, r#"{"m.server":"two.test"}"#),
    );
    let deadline = Instant::now() + WAIT;
    let report = loop {
        let body = get(&exporter.router, &format!("/api/report?server_name={NAME}")).await;
        let report: Value = serde_json::from_str(&body).unwrap();
        if history(&report)[0]["delegated_server"] == "two.test" {
            break report;
        }
        assert!(Instant::now() < deadline, "no change seen: {report:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let h = history(&report);
    let changed: Vec<&str> = h[0]["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(changed, ["delegation", "certificate", "key_set"], "{h:#}");
    assert_eq!(h[1]["delegated_server"], "one.test", "{h:#}");
    assert_eq!(h.as_array().unwrap().len(), 2, "{h:#}");
    let fingerprint = |i: usize| h[i]["certificate"].as_str().unwrap().to_owned();
    assert_ne!(fingerprint(0), fingerprint(1));
    assert_eq!(fingerprint(0).len(), 16);
    let page = get(&exporter.router, &format!("/server/{NAME}")).await;
    assert!(page.contains(r#"<section id="history">"#), "{page}");
    assert!(
        page.contains(r#"data-changed="delegation certificate key_set""#),
        "{page}"
    );
    assert!(page.contains(r#"data-changed="first_probe""#), "{page}");
    for words in ["two.test (default_port)", "one.test (default_port)"] {
        assert!(page.contains(words), "{words} not on the page: {page}");
    }
    for i in 0..2 {
        assert!(
            page.contains(&format!("{}…", fingerprint(i))),
            "{} not on the page",
            fingerprint(i)
        );
    }
    let metrics = get(&exporter.router, "/metrics").await;
    assert!(
        metrics.contains(&format!("fingerprint_sha256=\"{}", fingerprint(0))),
        "the history's certificate is a prefix of the cert_info fingerprint: {metrics}"
    );
}

async fn get(router: &axum::Router, uri: &str) -> String {
    support::router::get_ok(router, uri).await
}
