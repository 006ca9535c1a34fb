//! `GET /probe?target=NAME` (the `blackbox_exporter` multi-target convention), end to end against the hermetic
//! world: one target's metrics and nothing else, nothing stored, the allowlist, the scrape-timeout header, the
//! concurrency cap, bad requests; and the config keys behind them.

// Values compared here are small integers and short decimal durations, which print and parse back exactly.
#![allow(clippy::float_cmp)]

mod support;

use std::time::Duration;

use http::{HeaderMap, Method};
use matrix_federation_exporter::config::{Config, TargetPattern, Timeouts};
use matrix_federation_exporter::serve::daemon::Exporter;
use matrix_federation_exporter::serve::routes::probe_timeout;
use support::{Behaviour, TIMEOUTS, Validity, World, Zone};

// ---- the world ----

/// good.test (healthy, configured), other.test (healthy, not configured) and hang.test (accepts TCP at the
/// federation port and never answers the TLS handshake), each on its own loopback address; nothing answers
/// `.well-known`.
async fn start_world() -> World {
    // A handshake timeout far above the /probe timeouts used below, so that a cut is always /probe's own.
    let timeouts = Timeouts {
        tls_handshake: Duration::from_secs(20),
        ..TIMEOUTS
    };
    let mut world = World::new(
        "probe-endpoint",
        Zone::new()
            .a("good.test", "127.0.0.2".parse().unwrap())
            .a("other.test", "127.0.0.4".parse().unwrap())
            .a("hang.test", "127.0.0.5".parse().unwrap()),
        timeouts,
    )
    .await;
    for (ip, name) in [
        ([127, 0, 0, 2], "good.test"),
        ([127, 0, 0, 4], "other.test"),
    ] {
        world.homeserver(ip, name, Validity::Valid).await;
    }
    world
        .serve_federation([127, 0, 0, 5], Behaviour::SilentTcp)
        .await;
    world
}

/// A running exporter for good.test with the `probe:` settings of `probe_yaml`, after its first round.
async fn start_exporter(world: &World, probe_yaml: &str) -> Exporter {
    let mut config = Config::from_yaml(&format!("servers: [good.test]\n{probe_yaml}")).unwrap();
    config.probe.timeouts = world.env.timeouts;
    world.exporter(&config).await
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: String,
}

async fn request(
    router: &axum::Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let answer = support::router::request(router, method, uri, headers).await;
    Reply {
        status: answer.status.as_u16(),
        headers: answer.headers,
        body: answer.body,
    }
}

async fn get(router: &axum::Router, uri: &str) -> Reply {
    request(router, Method::GET, uri, &[]).await
}

/// The value of the one sample whose line starts with `prefix` (name and labels).
fn value(metrics: &str, prefix: &str) -> f64 {
    support::router::sample(metrics, prefix)
}

/// Polls `/metrics` until `probes_in_flight` is `want` (a few seconds at most).
async fn wait_for_in_flight(router: &axum::Router, want: f64) {
    for _ in 0..200 {
        let metrics = get(router, "/metrics").await.body;
        if value(&metrics, "matrix_federation_exporter_probes_in_flight ") == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("probes_in_flight never became {want}");
}

// ---- /probe ----

#[tokio::test]
async fn probe_returns_only_that_targets_metrics_and_stores_nothing() {
    let world = start_world().await;
    let exporter = start_exporter(&world, "").await;
    let router = &exporter.router;

    let reply = get(router, "/probe?target=other.test").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.headers[http::header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = &reply.body;
    assert_eq!(
        value(
            text,
            "matrix_federation_probe_success{server_name=\"other.test\"}"
        ),
        1.0
    );
    assert!(text.contains(
        "matrix_federation_address_success{server_name=\"other.test\",address=\"127.0.0.4:"
    ));
    assert!(
        text.contains(
            "matrix_federation_cert_not_after_timestamp_seconds{server_name=\"other.test\""
        )
    );
    assert!(
        !text.contains("matrix_federation_exporter_"),
        "no self-metrics on /probe\n{text}"
    );
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            line.contains("server_name=\"other.test\""),
            "another target's sample: {line}"
        );
    }

    // Content negotiation as on /metrics.
    let reply = request(
        router,
        Method::GET,
        "/probe?target=other.test",
        &[("accept", "application/openmetrics-text;version=1.0.0")],
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.headers[http::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(reply.body.ends_with("# EOF\n"), "{}", reply.body);
    assert!(!reply.body.contains("matrix_federation_exporter_"));

    // The probed target is not stored, and /probe probes are not in probes_total (scheduled probes only).
    let metrics = get(router, "/metrics").await.body;
    assert!(!metrics.contains("other.test"), "{metrics}");
    assert!(metrics.contains("matrix_federation_probe_success{server_name=\"good.test\"} 1"));
    assert_eq!(
        value(
            &metrics,
            "matrix_federation_exporter_probes_total{result=\"success\"}"
        ),
        1.0
    );
    assert_eq!(value(&metrics, "matrix_federation_exporter_servers "), 1.0);
    assert_eq!(
        value(&metrics, "matrix_federation_exporter_probes_in_flight "),
        0.0
    );
    // The render of the /metrics answer above took some time; the next answer shows it.
    let again = get(router, "/metrics").await.body;
    assert!(
        value(
            &again,
            "matrix_federation_exporter_scrape_duration_seconds "
        ) > 0.0
    );

    // A configured server can be probed too: a fresh probe, and /metrics keeps the scheduled one.
    let reply = get(router, "/probe?target=good.test").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        value(
            &reply.body,
            "matrix_federation_probe_success{server_name=\"good.test\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn allowlist_refuses_other_names_with_403() {
    let world = start_world().await;
    let exporter = start_exporter(
        &world,
        "probe:\n  allowed_targets: ['.*\\.example\\.org', 'other\\.test']\n",
    )
    .await;
    let router = &exporter.router;

    let reply = get(router, "/probe?target=other.test").await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // Configured or not, a name must match a pattern in full (port included).
    for target in [
        "good.test",
        "other.test:8448",
        "xother.test",
        "other.test.example",
    ] {
        let reply = get(router, &format!("/probe?target={target}")).await;
        assert_eq!(reply.status, 403, "{target}: {}", reply.body);
        assert_eq!(
            reply.body,
            format!(
                "Target {target} is not allowed: it matches no pattern in probe.allowed_targets\n"
            )
        );
    }
}

#[tokio::test]
async fn scrape_timeout_header_cuts_the_probe_and_still_answers_200() {
    let world = start_world().await;
    let exporter = start_exporter(&world, "").await;
    let router = &exporter.router;

    let reply = request(
        router,
        Method::GET,
        "/probe?target=hang.test",
        &[("x-prometheus-scrape-timeout-seconds", "1.5")],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let text = &reply.body;
    assert_eq!(
        value(
            text,
            "matrix_federation_probe_success{server_name=\"hang.test\"}"
        ),
        0.0
    );
    assert!(
        text.contains(
            "matrix_federation_failure_info{server_name=\"hang.test\",address=\"\",stage=\"discovery\",reason=\"timeout\"} 1"
        ),
        "{text}"
    );
    // The timeout was the header's 1.5 s minus the 0.5 s margin.
    assert_eq!(
        value(
            text,
            "matrix_federation_probe_duration_seconds{server_name=\"hang.test\"}"
        ),
        1.0
    );

    // A header that is not a number of seconds is a bad request.
    for bad in ["soon", "-1", "NaN"] {
        let reply = request(
            router,
            Method::GET,
            "/probe?target=hang.test",
            &[("x-prometheus-scrape-timeout-seconds", bad)],
        )
        .await;
        assert_eq!(reply.status, 400, "{bad}");
        assert!(
            reply
                .body
                .starts_with("Invalid x-prometheus-scrape-timeout-seconds header"),
            "{}",
            reply.body
        );
    }
}

#[tokio::test]
async fn probe_max_timeout_caps_the_header() {
    let world = start_world().await;
    let exporter = start_exporter(&world, "probe:\n  max_timeout: 700ms\n").await;
    let reply = request(
        &exporter.router,
        Method::GET,
        "/probe?target=hang.test",
        &[("x-prometheus-scrape-timeout-seconds", "10")],
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        value(
            &reply.body,
            "matrix_federation_probe_duration_seconds{server_name=\"hang.test\"}"
        ),
        0.7
    );
}

#[tokio::test]
async fn over_the_concurrency_cap_answers_503_at_once() {
    let world = start_world().await;
    let exporter = start_exporter(&world, "probe:\n  max_concurrent_probes: 1\n").await;
    let router = exporter.router.clone();
    wait_for_in_flight(&router, 0.0).await;

    // hang.test holds the only permit (no header: its timeout is the probe deadline, far away).
    let holder = {
        let router = router.clone();
        tokio::spawn(async move { get(&router, "/probe?target=hang.test").await })
    };
    wait_for_in_flight(&router, 1.0).await;

    let reply = get(&router, "/probe?target=other.test").await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(
        reply.body,
        "Too many /probe requests in flight (probe.max_concurrent_probes is 1); try again later\n"
    );

    // A scrape that gives up (the request is dropped) ends its probe and frees the permit.
    holder.abort();
    assert!(holder.await.unwrap_err().is_cancelled());
    wait_for_in_flight(&router, 0.0).await;
    let reply = get(&router, "/probe?target=other.test").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn bad_requests_get_400_or_405() {
    let world = start_world().await;
    let exporter = start_exporter(&world, "").await;
    let router = &exporter.router;

    for (uri, message) in [
        ("/probe", "Missing target parameter\n"),
        ("/probe?target=", "Missing target parameter\n"),
        ("/probe?module=x", "Missing target parameter\n"),
    ] {
        let reply = get(router, uri).await;
        assert_eq!((reply.status, reply.body.as_str()), (400, message), "{uri}");
    }
    for target in [
        "https%3A%2F%2Fexample.org",
        "exa%20mple.org",
        "example.org%3A99999",
    ] {
        let reply = get(router, &format!("/probe?target={target}")).await;
        assert_eq!(reply.status, 400, "{target}");
        assert!(
            reply.body.starts_with("Invalid target \""),
            "{}",
            reply.body
        );
        // The reason from the server-name grammar follows.
        assert!(reply.body.contains("\": "), "{}", reply.body);
    }
    let reply = request(router, Method::POST, "/probe?target=other.test", &[]).await;
    assert_eq!(reply.status, 405);
}

// ---- the timeout rule ----

#[test]
fn timeout_is_the_header_minus_the_margin_capped_by_the_config() {
    let s = Duration::from_secs_f64;
    let cap = s(30.0);
    assert_eq!(probe_timeout(None, cap), cap, "no header: the cap");
    assert_eq!(
        probe_timeout(Some(Duration::ZERO), cap),
        cap,
        "0 means no timeout given"
    );
    assert_eq!(probe_timeout(Some(s(10.0)), cap), s(9.5));
    assert_eq!(probe_timeout(Some(s(1.5)), cap), s(1.0));
    assert_eq!(probe_timeout(Some(s(120.0)), cap), cap);
    // Under a second, half the scrape timeout rather than nothing.
    assert_eq!(probe_timeout(Some(s(0.6)), cap), s(0.3));
}

// ---- config ----

#[test]
fn probe_endpoint_config_keys() {
    let d = Config::default().probe;
    assert_eq!(d.max_timeout, None);
    assert_eq!(d.max_concurrent_probes, 16);
    assert!(d.allowed_targets.is_empty());

    let c = Config::from_yaml(
        "probe:\n  max_timeout: 20s\n  max_concurrent_probes: 4\n  allowed_targets: ['.*\\.org', 'a\\.test']\n",
    )
    .unwrap();
    assert_eq!(c.probe.max_timeout, Some(Duration::from_secs(20)));
    assert_eq!(c.probe.max_concurrent_probes, 4);
    let patterns: Vec<&str> = c
        .probe
        .allowed_targets
        .iter()
        .map(TargetPattern::as_str)
        .collect();
    assert_eq!(patterns, [".*\\.org", "a\\.test"]);
    // Full match: anchored at both ends.
    let org = &c.probe.allowed_targets[0];
    assert!(org.is_match("matrix.org"));
    assert!(!org.is_match("matrix.org.evil.test"));
    assert!(!org.is_match("matrix.org:8448"));
    // Patterns compare by their text (so an unchanged config compares equal on reload).
    assert_eq!(
        c,
        Config::from_yaml(
            "probe:\n  max_timeout: 20s\n  max_concurrent_probes: 4\n  allowed_targets: ['.*\\.org', 'a\\.test']\n",
        )
        .unwrap()
    );
    assert_ne!(c, Config::default());
}

#[test]
fn bad_probe_endpoint_config_names_the_key() {
    for (yaml, key) in [
        (
            "probe:\n  allowed_targets: ['ok\\.test', '(unclosed']\n",
            "probe.allowed_targets[1]: invalid regular expression \"(unclosed\": ",
        ),
        (
            "probe:\n  max_timeout: 0s\n",
            "probe.max_timeout: must be greater than 0",
        ),
        (
            "probe:\n  max_concurrent_probes: 0\n",
            "probe.max_concurrent_probes: 0 is not between 1 and 100000",
        ),
    ] {
        let error = Config::from_yaml(yaml).unwrap_err().to_string();
        assert!(error.starts_with(key), "{yaml:?}: {error}");
        assert!(!error.contains('\n'), "one line: {error}");
    }
}
