//! The report API (`/api/report`, `/api/federation-ok`): the federation tester's JSON and its HTTP behaviour,
//! end to end against the hermetic world, plus a golden file of the JSON for a hand-built report.
//!
//! Update the golden file with `UPDATE_GOLDEN=1 cargo test --test api`.

mod support;

use std::collections::BTreeSet;

use matrix_federation_exporter::config::targets::{Labels, Target};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt as _;
use http::{HeaderMap, Method};
use matrix_federation_exporter::config::DEFAULT_MAX_CONCURRENT_PROBES;
use matrix_federation_exporter::config::server_name::ServerName;
use matrix_federation_exporter::config::{ApiConfig, Config, ProbeConfig, TargetPattern};
use matrix_federation_exporter::probe::Prober;
use matrix_federation_exporter::render::metrics::{self, ExporterMetrics};
use matrix_federation_exporter::render::tester::{self, EXTENSION_KEY};
use matrix_federation_exporter::report::{
    AddressReport, CertFacts, CertReport, ClientOutcome, ClientReport, ClientResult,
    DiscoveryReport, Failure, Fingerprint, KeysReport, Method as Discovery, OldVerifyKey, Phase,
    Reason, ServerReport, SrvInfo, Stage, Step, TargetReport, TlsFacts, WellKnownAddress,
    WellKnownOutcome, WellKnownReport,
};
use matrix_federation_exporter::schedule::store::Store;
use matrix_federation_exporter::serve::daemon::Exporter;
use matrix_federation_exporter::serve::limiter::Limiter;
use matrix_federation_exporter::serve::routes::{
    AllowedTargets, AppState, MAX_API_PROBES, ProbeEndpoint, router,
};
use serde_json::{Value, json};
use support::reports::{at, ms, one_key, sock, synapse};
use support::{TIMEOUTS, Validity, World, Zone};
use tokio::sync::Notify;

// ---- the world ----

/// good.test (healthy), bad.test (expired certificate), other.test and denied.test (healthy, not configured),
/// each on its own loopback address at the federation port; nothing answers `.well-known`.
async fn start_world() -> World {
    let mut world = World::new(
        "api",
        Zone::new()
            .a("good.test", "127.0.0.2".parse().unwrap())
            .a("bad.test", "127.0.0.3".parse().unwrap())
            .a("other.test", "127.0.0.4".parse().unwrap())
            .a("denied.test", "127.0.0.5".parse().unwrap()),
        TIMEOUTS,
    )
    .await;
    for (ip, name, validity) in [
        ([127, 0, 0, 2], "good.test", Validity::Valid),
        ([127, 0, 0, 3], "bad.test", Validity::Expired),
        ([127, 0, 0, 4], "other.test", Validity::Valid),
        ([127, 0, 0, 5], "denied.test", Validity::Valid),
    ] {
        world.homeserver(ip, name, validity).await;
    }
    world
}

/// A running exporter for good.test and bad.test, after its first probe round.
async fn start_exporter(world: &World, probe_unconfigured: bool) -> Exporter {
    let config = Config {
        servers: vec![
            ServerName::parse("good.test").unwrap(),
            ServerName::parse("bad.test").unwrap(),
        ],
        api: ApiConfig { probe_unconfigured },
        ..Config::default()
    };
    world.exporter(&config).await
}

struct Reply {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn content_type(&self) -> &str {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .map_or("", |v| v.to_str().unwrap())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn assert_cors(&self) {
        for (name, value) in [
            ("access-control-allow-origin", "*"),
            (
                "access-control-allow-methods",
                "GET, POST, PUT, DELETE, OPTIONS",
            ),
            (
                "access-control-allow-headers",
                "Origin, X-Requested-With, Content-Type, Accept",
            ),
        ] {
            assert_eq!(
                self.headers.get(name).map(|v| v.to_str().unwrap()),
                Some(value),
                "{name} on a {} answer",
                self.status
            );
        }
    }
}

async fn request(router: &axum::Router, method: Method, uri: &str) -> Reply {
    let answer = support::router::request(router, method, uri, &[]).await;
    Reply {
        status: answer.status.as_u16(),
        headers: answer.headers,
        body: answer.body,
    }
}

async fn get(router: &axum::Router, uri: &str) -> Reply {
    request(router, Method::GET, uri).await
}

// ---- end to end ----

#[tokio::test]
async fn report_of_a_healthy_server_is_the_testers_json_from_the_store() {
    let world = start_world().await;
    let exporter = start_exporter(&world, false).await;
    let connections = world.servers[0].connections();

    let reply = get(&exporter.router, "/api/report?server_name=good.test").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.content_type(), "application/json");
    reply.assert_cors();
    // Indented by two spaces, in the tester's field order.
    assert!(
        reply
            .body
            .starts_with("{\n  \"WellKnownResult\": {\n    \"m.server\": \"\","),
        "{}",
        reply.body
    );
    // The stored report was fresh: no new probe.
    assert_eq!(world.servers[0].connections(), connections);

    let json = reply.json();
    let addr = world.fed_addr(2);
    assert_eq!(json["FederationOK"], true);
    assert!(json.get("Error").is_none());
    assert_eq!(json["ConnectionErrors"], json!({}));
    assert_eq!(json["DNSResult"]["SRVSkipped"], false);
    assert_eq!(json["DNSResult"]["SRVRecords"], Value::Null);
    assert_eq!(json["DNSResult"]["Addrs"], json!([addr]));
    assert_eq!(
        json["DNSResult"]["Hosts"],
        json!({"good.test": {"CName": "good.test.", "Addrs": ["127.0.0.2"], "Error": null}})
    );
    assert_eq!(json["WellKnownResult"]["m.server"], "");
    // Nothing listens on 443: Go's innermost error, as upstream shows it.
    assert_eq!(json["WellKnownResult"]["result"], "connection refused");

    let reports = json["ConnectionReports"].as_object().unwrap();
    assert_eq!(reports.keys().collect::<Vec<_>>(), [&addr]);
    let conn = &reports[&addr];
    let checks = &conn["Checks"];
    for check in [
        "AllChecksOK",
        "MatchingServerName",
        "FutureValidUntilTS",
        "HasEd25519Key",
        "AllEd25519ChecksOK",
        "ValidCertificates",
    ] {
        assert_eq!(checks[check], true, "{check}: {checks}");
    }
    assert_eq!(
        checks["Ed25519Checks"],
        json!({"ed25519:fake": {"ValidEd25519": true, "MatchingSignature": true}})
    );
    assert_eq!(
        conn["Ed25519VerifyKeys"]["ed25519:fake"],
        conn["Keys"]["verify_keys"]["ed25519:fake"]["key"]
    );
    assert_eq!(conn["Keys"]["server_name"], "good.test");
    assert_eq!(conn["Errors"], json!([]));
    assert_eq!(conn["Info"], json!({}));
    assert_eq!(conn["Cipher"]["Version"], "TLS 1.3");
    assert!(
        conn["Cipher"]["CipherSuite"]
            .as_str()
            .unwrap()
            .starts_with("TLS_"),
        "{conn}"
    );
    let certs = conn["Certificates"].as_array().unwrap();
    assert_eq!(certs[0]["SubjectCommonName"], "good.test");
    assert_eq!(certs[0]["DNSNames"], json!(["good.test"]));
    let fingerprint = certs[0]["SHA256Fingerprint"].as_str().unwrap();
    assert_eq!(fingerprint.len(), 43, "unpadded base64 of 32 bytes");
    assert_eq!(
        json["Version"],
        json!({"name": "FakeServer", "version": "1.0.0"})
    );

    let ours = &json[EXTENSION_KEY];
    assert_eq!(ours["method"], "default_port");
    assert_eq!(ours["tls_name"], "good.test");
    assert_eq!(ours["host_header"], "good.test");
    assert_eq!(ours["failures"], json!([]));
    assert_eq!(ours["addresses"][0]["address"], addr);
    assert!(
        ours["addresses"][0]["certificate"]["not_after"]
            .as_i64()
            .unwrap()
            > 1_700_000_000
    );
    assert!(
        ours["addresses"][0]["phases"]["tls_handshake"]
            .as_f64()
            .unwrap()
            > 0.0
    );

    let ok = get(&exporter.router, "/api/federation-ok?server_name=good.test").await;
    assert_eq!((ok.status, ok.body.as_str()), (200, "GOOD"));
    assert!(ok.content_type().starts_with("text/plain"));
    ok.assert_cors();
}

#[tokio::test]
async fn report_of_a_server_with_an_expired_certificate_is_bad() {
    let world = start_world().await;
    let exporter = start_exporter(&world, false).await;

    let json = get(&exporter.router, "/api/report?server_name=bad.test")
        .await
        .json();
    assert_eq!(json["FederationOK"], false);
    let conn = &json["ConnectionReports"][world.fed_addr(3)];
    assert_eq!(conn["Checks"]["ValidCertificates"], false);
    assert_eq!(conn["Checks"]["AllChecksOK"], false);
    // The key checks themselves pass; the tester still shows the keys.
    assert_eq!(conn["Checks"]["MatchingServerName"], true);
    assert!(conn["Ed25519VerifyKeys"].is_object());
    assert!(!conn["Errors"].as_array().unwrap().is_empty(), "{conn}");
    let failures = json[EXTENSION_KEY]["failures"].as_array().unwrap();
    assert!(
        failures
            .iter()
            .any(|f| f["reason"] == "cert_expired" && f["address"] == world.fed_addr(3)),
        "{failures:?}"
    );

    let ok = get(&exporter.router, "/api/federation-ok?server_name=bad.test").await;
    assert_eq!((ok.status, ok.body.as_str()), (200, "BAD"));
}

/// Issue 13, as a new user tries it: fed-tester-ui's code path (`res.json()` on every answer, then the fields it
/// reads) and a `jq '.FederationOK'` script, for a good, a bad, an invalid and a refused name.
#[tokio::test]
async fn the_testers_ui_and_a_jq_script_read_every_answer() {
    use support::tester_shape::{assert_upstream_shape, jq_federation_ok, read_like_fed_tester_ui};
    let world = start_world().await;
    let exporter = start_exporter(&world, false).await;
    let bad_addr = world.fed_addr(3);
    for (name, status, ok, tldr) in [
        ("good.test", 200, true, None),
        (
            "bad.test",
            200,
            false,
            Some(format!(
                "WARN: Could not find a valid certificate for {bad_addr}."
            )),
        ),
        ("https%3A%2F%2Fgood.test", 200, false, None),
        ("other.test", 403, false, None),
    ] {
        let reply = get(&exporter.router, &format!("/api/report?server_name={name}")).await;
        assert_eq!(reply.status, status, "{name}: {}", reply.body);
        let json = assert_upstream_shape(&reply.body);
        let shown =
            read_like_fed_tester_ui(&json).unwrap_or_else(|e| panic!("{name}: {e}\n{json:#}"));
        if let Some(line) = tldr {
            assert!(shown.contains(&line), "{name}: {shown:?}");
        }
        assert_eq!(jq_federation_ok(&reply.body), [json!(ok)], "{name}");
        let verdict = get(
            &exporter.router,
            &format!("/api/federation-ok?server_name={name}"),
        )
        .await;
        if status == 200 {
            assert_eq!(verdict.body, if ok { "GOOD" } else { "BAD" }, "{name}");
        }
    }
}

#[tokio::test]
async fn bad_requests_answer_like_the_tester() {
    let world = start_world().await;
    let exporter = start_exporter(&world, false).await;
    for path in ["/api/report", "/api/federation-ok"] {
        let cases = [
            (
                Method::GET,
                String::new(),
                400,
                "Missing server_name parameter\n",
            ),
            (
                Method::GET,
                "?server_name=".to_owned(),
                400,
                "Missing server_name parameter\n",
            ),
            (
                Method::GET,
                "?other=good.test".to_owned(),
                400,
                "Missing server_name parameter\n",
            ),
            (Method::OPTIONS, String::new(), 200, ""),
            (
                Method::OPTIONS,
                "?server_name=good.test".to_owned(),
                200,
                "",
            ),
            (
                Method::POST,
                "?server_name=good.test".to_owned(),
                405,
                "Unsupported method\n",
            ),
            (Method::DELETE, String::new(), 405, "Unsupported method\n"),
            (Method::HEAD, String::new(), 405, ""),
        ];
        for (method, query, status, body) in cases {
            let reply = request(&exporter.router, method.clone(), &format!("{path}{query}")).await;
            assert_eq!(
                (reply.status, reply.body.as_str()),
                (status, body),
                "{method} {path}{query}"
            );
            reply.assert_cors();
        }

        // An invalid name is an answer, as upstream: 200, and `Error` set (the report) or `BAD`.
        let invalid = get(
            &exporter.router,
            &format!("{path}?server_name=https%3A%2F%2Fgood.test"),
        )
        .await;
        assert_eq!(invalid.status, 200);
        if path == "/api/report" {
            let json = invalid.json();
            assert_eq!(json["Error"], "Invalid server name 'https://good.test'");
            assert_eq!(json["FederationOK"], false);
            assert!(
                json[EXTENSION_KEY]["error"]
                    .as_str()
                    .unwrap()
                    .starts_with("Invalid server name \"https://good.test\": "),
                "{json}"
            );
        } else {
            assert_eq!(invalid.body, "BAD");
        }
        invalid.assert_cors();

        // Not configured, and probing unconfigured names is off by default: refused without a probe, the
        // report route in JSON (so `res.json()` does not throw), the verdict route in text.
        let before = world.servers[2].connections();
        let refused = get(&exporter.router, &format!("{path}?server_name=other.test")).await;
        assert_eq!(refused.status, 403, "{}", refused.body);
        assert!(refused.body.contains("other.test"));
        if path == "/api/report" {
            assert_eq!(refused.content_type(), "application/json");
            assert_eq!(refused.json()["FederationOK"], false);
        } else {
            assert!(refused.content_type().starts_with("text/plain"));
        }
        refused.assert_cors();
        assert_eq!(world.servers[2].connections(), before);
        // Server names are case-sensitive: a differently cased name is not the configured one.
        assert_eq!(
            get(&exporter.router, &format!("{path}?server_name=GOOD.test"))
                .await
                .status,
            403
        );
    }
}

#[tokio::test]
async fn unconfigured_names_are_probed_when_allowed_and_not_stored() {
    let world = start_world().await;
    let exporter = start_exporter(&world, true).await;

    let before = world.servers[2].connections();
    let reply = get(&exporter.router, "/api/report?server_name=other.test").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(world.servers[2].connections() > before, "probed on demand");
    let json = reply.json();
    assert_eq!(json["FederationOK"], true, "{json}");
    assert_eq!(
        json["ConnectionReports"][world.fed_addr(4)]["Checks"]["AllChecksOK"],
        true
    );

    let ok = get(
        &exporter.router,
        "/api/federation-ok?server_name=other.test",
    )
    .await;
    assert_eq!((ok.status, ok.body.as_str()), (200, "GOOD"));

    // A name that does not resolve is probed too, and reported as failing.
    let missing = get(&exporter.router, "/api/report?server_name=missing.test")
        .await
        .json();
    assert_eq!(missing["FederationOK"], false);
    assert_eq!(missing["DNSResult"]["Addrs"], Value::Null);
    assert!(
        missing["DNSResult"]["Hosts"]["missing.test"]["Error"]["Message"].is_string(),
        "{missing}"
    );

    // On-demand reports of unconfigured names never reach /metrics.
    let metrics = get(&exporter.router, "/metrics").await.body;
    assert!(metrics.contains(r#"server_name="good.test""#));
    assert!(!metrics.contains("other.test"));
    assert!(!metrics.contains("missing.test"));
}

/// Issue 11: `probe.allowed_targets` governs every probe run on request, the API's as well as `/probe`'s; a
/// configured server's fresh report is still served without a probe.
#[tokio::test]
async fn the_api_probes_only_names_that_probe_allowed_targets_allows() {
    let world = start_world().await;
    let config = Config {
        servers: vec![
            ServerName::parse("good.test").unwrap(),
            ServerName::parse("bad.test").unwrap(),
        ],
        api: ApiConfig {
            probe_unconfigured: true,
        },
        probe: ProbeConfig {
            allowed_targets: vec![TargetPattern::new(r"other\.test").unwrap()],
            ..ProbeConfig::default()
        },
        ..Config::default()
    };
    let exporter = world.exporter(&config).await;

    // An allowed name is probed on demand.
    let before = world.servers[2].connections();
    let reply = get(&exporter.router, "/api/report?server_name=other.test").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["FederationOK"], true);
    assert!(world.servers[2].connections() > before, "probed on demand");

    // A name the list does not allow: 403 on both routes, and no probe reaches its server.
    let before = world.servers[3].connections();
    let why = "denied.test has no fresh report, and probing it is not allowed: it matches no pattern in \
               probe.allowed_targets";
    for path in ["/api/report", "/api/federation-ok"] {
        let refused = get(&exporter.router, &format!("{path}?server_name=denied.test")).await;
        assert_eq!(refused.status, 403, "{path}");
        if path == "/api/report" {
            let json = refused.json();
            assert_eq!(
                (&json["Error"], &json[EXTENSION_KEY]["error"]),
                (&json!(why), &json!(why))
            );
        } else {
            assert_eq!(refused.body, format!("{why}\n"));
            assert!(refused.content_type().starts_with("text/plain"));
        }
        refused.assert_cors();
    }
    assert_eq!(world.servers[3].connections(), before, "no probe");

    // Configured servers with a fresh report are served from the store, though the list does not name them.
    let before = world.servers[0].connections();
    let reply = get(&exporter.router, "/api/report?server_name=good.test").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["FederationOK"], true);
    let ok = get(&exporter.router, "/api/federation-ok?server_name=bad.test").await;
    assert_eq!((ok.status, ok.body.as_str()), (200, "BAD"));
    assert_eq!(
        world.servers[0].connections(),
        before,
        "served from the store"
    );
}

// ---- freshness and the probe cap, with a scripted prober ----

fn empty_report(name: &str, finished_at: SystemTime) -> ServerReport {
    ServerReport {
        history: matrix_federation_exporter::report::History::default(),
        key_history: matrix_federation_exporter::report::KeyHistory::default(),
        local_certs: matrix_federation_exporter::report::LocalCertsReport::default(),
        server_name: name.into(),
        started_at: finished_at,
        finished_at,
        duration: Duration::ZERO,
        discovery: DiscoveryReport::empty(name),
        addresses: Vec::new(),
        failures: Vec::new(),
        client: None,
        support: None,
    }
}

/// The state of an exporter whose one configured server is `a.test`.
fn state(store: Arc<Store>, prober: Prober, probe_unconfigured: bool, permits: usize) -> AppState {
    store.configure(&[Target {
        name: ServerName::parse("a.test").unwrap(),
        labels: Labels::new(),
    }]);
    AppState {
        scrapes: matrix_federation_exporter::serve::scrape::SharedScrapes::default(),
        registry: metrics::registry(store.clone(), &ExporterMetrics::new()),
        store,
        ready: tokio::sync::watch::channel(true).1,
        prober,
        probe_deadline: Duration::from_secs(30),
        interval: Duration::from_secs(60),
        probe_unconfigured,
        allowed_targets: AllowedTargets::default(),
        api_probes: Limiter::new(permits),
        exporter: ExporterMetrics::new(),
        probe: ProbeEndpoint::new(
            &ProbeConfig::default(),
            Duration::from_secs(30),
            Limiter::new(DEFAULT_MAX_CONCURRENT_PROBES),
        ),
    }
}

/// A prober that counts its calls and reports "now".
fn counting_prober(calls: Arc<AtomicUsize>) -> Prober {
    Arc::new(move |name: ServerName| {
        calls.fetch_add(1, Ordering::SeqCst);
        futures_util::future::ready(empty_report(name.as_str(), SystemTime::now())).boxed()
    })
}

#[tokio::test]
async fn a_fresh_stored_report_is_served_and_a_stale_one_is_replaced() {
    let calls = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(Store::new());
    let app = router(Arc::new(state(
        store.clone(),
        counting_prober(calls.clone()),
        false,
        MAX_API_PROBES,
    )));

    // Nothing stored yet: probe now, and store the result.
    assert_eq!(
        get(&app, "/api/federation-ok?server_name=a.test")
            .await
            .body,
        "BAD"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let first = store.get("a.test").expect("stored");

    // Fresh: served from the store.
    get(&app, "/api/report?server_name=a.test").await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Older than the interval: probed again and replaced.
    store.insert(empty_report(
        "a.test",
        SystemTime::now() - Duration::from_secs(61),
    ));
    get(&app, "/api/report?server_name=a.test").await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(store.get("a.test").unwrap().finished_at >= first.finished_at);
}

/// Issue 11: a configured server whose report went stale is probed again on request only when
/// `probe.allowed_targets` allows it; while fresh, its report is served whatever the list says.
#[tokio::test]
async fn a_stale_report_is_not_probed_again_for_a_name_the_allowlist_refuses() {
    let calls = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(Store::new());
    let app = router(Arc::new(AppState {
        scrapes: matrix_federation_exporter::serve::scrape::SharedScrapes::default(),
        allowed_targets: AllowedTargets::new(&[TargetPattern::new(r"b\.test").unwrap()]),
        ..state(
            store.clone(),
            counting_prober(calls.clone()),
            false,
            MAX_API_PROBES,
        )
    }));

    store.insert(empty_report("a.test", SystemTime::now()));
    let fresh = get(&app, "/api/federation-ok?server_name=a.test").await;
    assert_eq!((fresh.status, fresh.body.as_str()), (200, "BAD"));

    store.insert(empty_report(
        "a.test",
        SystemTime::now() - Duration::from_secs(61),
    ));
    let why = "a.test has no fresh report, and probing it is not allowed: it matches no pattern in \
               probe.allowed_targets";
    let refused = get(&app, "/api/federation-ok?server_name=a.test").await;
    assert_eq!(
        (refused.status, refused.body.as_str()),
        (403, format!("{why}\n").as_str())
    );
    let refused = get(&app, "/api/report?server_name=a.test").await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["Error"], why);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "never probed");
}

#[tokio::test]
async fn probes_over_the_cap_get_503_not_a_queue() {
    let release = Arc::new(Notify::new());
    let started = Arc::new(Notify::new());
    let prober: Prober = {
        let (release, started) = (release.clone(), started.clone());
        Arc::new(move |name: ServerName| {
            let (release, started) = (release.clone(), started.clone());
            async move {
                started.notify_one();
                release.notified().await;
                empty_report(name.as_str(), SystemTime::now())
            }
            .boxed()
        })
    };
    let app = router(Arc::new(state(Arc::new(Store::new()), prober, true, 1)));

    let first = tokio::spawn({
        let app = app.clone();
        async move { get(&app, "/api/report?server_name=slow.test").await }
    });
    started.notified().await;
    let busy = get(&app, "/api/federation-ok?server_name=other.test").await;
    assert_eq!(
        (busy.status, busy.body.as_str()),
        (503, "too many probes in flight\n")
    );
    busy.assert_cors();
    let busy = get(&app, "/api/report?server_name=other.test").await;
    assert_eq!(busy.status, 503);
    assert_eq!(busy.json()["Error"], "too many probes in flight");
    busy.assert_cors();

    release.notify_one();
    let first = first.await.unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["FederationOK"], false);
    // The permit is back.
    let (started2, release2) = (started.clone(), release.clone());
    let second = tokio::spawn({
        let app = app.clone();
        async move { get(&app, "/api/federation-ok?server_name=other.test").await }
    });
    started2.notified().await;
    release2.notify_one();
    assert_eq!(second.await.unwrap().body, "BAD");
}

// ---- golden file ----

const T0: u64 = 1_700_000_000;

/// A deterministic report: `.well-known` delegates to matrix.example.org, whose `_matrix-fed` SRV record has
/// two targets. The IPv4 address is healthy (keys and version present); the IPv6 one has an expired
/// certificate and answers 404 for the key document.
#[expect(
    clippy::too_many_lines,
    reason = "the golden report fills every field the tester JSON renders"
)]
fn golden_report() -> ServerReport {
    // As served: not in canonical key order, with spaces and a number written `1.0e3` (issue 13 point 6: `Keys`
    // echoes it, compacted as Go's `json.RawMessage` is, in its own order and number forms).
    let raw_keys = r#"{"server_name": "example.org", "valid_until_ts": 1700086400000, "verify_keys": {"ed25519:a_AbCd": {"key": "l8Hft5qXKn1vfHrg3p4+W8gELQVo8N13JkluMfmn2sQ"}}, "old_verify_keys": {"ed25519:old": {"expired_ts": 1690000000000, "key": "T2xkS2V5T2xkS2V5T2xkS2V5T2xkS2V5T2xkS2V5T2s"}}, "signatures": {"example.org": {"ed25519:a_AbCd": "c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dQ"}}, "x_note": "a \"quoted\" value", "x_weight": 1.0e3}"#;
    let intermediate = CertFacts {
        subject: "C=US, O=Let's Encrypt, CN=R11".into(),
        issuer: "C=US, O=Internet Security Research Group, CN=ISRG Root X1".into(),
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
        serial: "8a:7d:3e:13:d6:2f:30:ef:23:86:bd:29:07:6b:34:f8".to_owned(),
        fingerprint_sha256: Fingerprint::from_hex(
            "591ead729f8c4a37b0a1e0ea66b1dd9e7e6a6e4b1b0e9c7b6c9ac5d6c8a3e9f1",
        )
        .unwrap(),
        not_before: 1_709_683_200,
        not_after: 1_867_449_599,
    };
    let leaf = |not_after: i64| CertFacts {
        subject: "CN=matrix.example.org".into(),
        issuer: "C=US, O=Let's Encrypt, CN=R11".into(),
        dns_names: vec!["matrix.example.org".to_owned()],
        ip_addresses: Vec::new(),
        serial: "04:a1:b2:c3".to_owned(),
        fingerprint_sha256: Fingerprint::from_hex(
            "af430aa49dd0d0de1cf5ada6da6f3259babd7c9a509b427cc506fcbfb630de71",
        )
        .unwrap(),
        not_before: not_after - 90 * 86_400,
        not_after,
    };
    let tls = TlsFacts {
        version: "TLSv1_3",
        cipher: "TLS13_AES_128_GCM_SHA256",
    };
    ServerReport {
        history: matrix_federation_exporter::report::History::default(),
        key_history: golden_key_history(),
        local_certs: matrix_federation_exporter::report::LocalCertsReport::default(),
        server_name: "example.org".into(),
        started_at: at(T0, 0),
        finished_at: at(T0, 250),
        duration: ms(250),
        discovery: DiscoveryReport {
            method: Discovery::SrvMatrixFed,
            well_known: WellKnownReport {
                // The IPv6 address serves no well-known: a split brain (a warning, not a failure).
                per_address: vec![
                    WellKnownAddress {
                        address: "[2001:db8::1]:443".parse().unwrap(),
                        outcome: WellKnownOutcome::NotFound,
                        m_server: None,
                        error: Some(
                            "HTTP 404 from https://example.org/.well-known/matrix/server".into(),
                        ),
                        followed: false,
                    },
                    WellKnownAddress {
                        address: "192.0.2.1:443".parse().unwrap(),
                        outcome: WellKnownOutcome::Delegated,
                        m_server: Some("matrix.example.org".into()),
                        error: None,
                        followed: true,
                    },
                ],
                outcome: WellKnownOutcome::Delegated,
                cache_ttl: Some(Duration::from_secs(86_400)),
                hops: [(
                    "https://example.org/.well-known/matrix/server".to_owned(),
                    200,
                )]
                .into_iter()
                .collect(),
                error: None,
            },
            delegated_server: Some("matrix.example.org".into()),
            tls_name: "matrix.example.org".into(),
            host_header: "matrix.example.org".into(),
            targets: vec![
                TargetReport {
                    host: "fed1.example.org".into(),
                    port: 8448,
                    srv: Some(SrvInfo {
                        priority: 10,
                        weight: 5,
                    }),
                    addresses: vec!["192.0.2.10".parse().unwrap()],
                    via_cname: false,
                },
                TargetReport {
                    host: "fed2.example.org".into(),
                    port: 8448,
                    srv: Some(SrvInfo {
                        priority: 20,
                        weight: 0,
                    }),
                    addresses: vec!["2001:db8::20".parse().unwrap()],
                    via_cname: true,
                },
            ],
            steps: [
                (Step::WellKnown, ms(40)),
                (Step::Srv, ms(5)),
                (Step::AddressLookup, ms(3)),
            ]
            .into_iter()
            .collect(),
            truncated: false,
            refused: Vec::new(),
            shadowed_srv: Some(Box::new(
                matrix_federation_exporter::report::ShadowedSrvReport {
                    records: vec![matrix_federation_exporter::report::ShadowedSrv {
                        record: matrix_federation_exporter::report::SrvRecordName::MatrixFed,
                        target: "old.example.org:8448".into(),
                        priority: 10,
                        weight: 0,
                        elsewhere: true,
                    }],
                    duration: ms(4),
                    errors: Vec::new(),
                },
            )),
        },
        addresses: vec![
            AddressReport {
                address: sock("192.0.2.10:8448"),
                target_host: "fed1.example.org".into(),
                phases: [
                    (Phase::Connect, ms(12)),
                    (Phase::TlsHandshake, ms(30)),
                    (Phase::Keys, ms(20)),
                    (Phase::Version, ms(8)),
                ]
                .into_iter()
                .collect(),
                tls: Some(tls.clone()),
                certificate: Some(CertReport {
                    verified_not_after: None,
                    chain: vec![leaf(1_707_000_000).into(), intermediate.clone().into()],
                    failures: Vec::new(),
                }),
                keys: Some(KeysReport {
                    old_verify_keys: vec![OldVerifyKey {
                        key_id: "ed25519:old".to_owned(),
                        key: "T2xkS2V5T2xkS2V5T2xkS2V5T2xkS2V5T2xkS2V5T2s".to_owned(),
                        expired_ts: Some(1_690_000_000_000),
                    }],
                    warnings: vec![
                        "valid_until_ts is 1 day away; the spec caps key validity at 7 days"
                            .to_owned(),
                    ],
                    raw: raw_keys.as_bytes().to_vec().into(),
                    ..one_key(
                        "example.org",
                        1_700_086_400_000,
                        "l8Hft5qXKn1vfHrg3p4+W8gELQVo8N13JkluMfmn2sQ",
                    )
                }),
                version: Some(synapse("1.120.0")),
                failures: Vec::new(),
            },
            AddressReport {
                address: sock("[2001:db8::20]:8448"),
                target_host: "fed2.example.org".into(),
                phases: [
                    (Phase::Connect, ms(15)),
                    (Phase::TlsHandshake, ms(35)),
                    (Phase::Keys, ms(9)),
                    (Phase::Version, ms(7)),
                ]
                .into_iter()
                .collect(),
                tls: Some(TlsFacts {
                    version: "TLSv1_2",
                    cipher: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                }),
                certificate: Some(CertReport {
                    verified_not_after: None,
                    chain: vec![leaf(1_699_000_000).into(), intermediate.into()],
                    failures: vec![Failure::new(
                        Stage::Certificate,
                        Reason::CertExpired,
                        "certificate expired at 2023-11-03T08:26:40Z",
                    )],
                }),
                keys: None,
                version: None,
                failures: vec![
                    Failure::new(
                        Stage::Certificate,
                        Reason::CertExpired,
                        "certificate expired at 2023-11-03T08:26:40Z",
                    ),
                    Failure::new(
                        Stage::Keys,
                        Reason::HttpStatus,
                        "GET /_matrix/key/v2/server answered HTTP 404",
                    ),
                    Failure::new(
                        Stage::Version,
                        Reason::HttpStatus,
                        "GET /_matrix/federation/v1/version answered HTTP 404",
                    ),
                ],
            },
        ],
        failures: Vec::new(),
        // The well-known (no CORS header) names a base URL whose versions answer is not the spec's format.
        client: Some(ClientReport {
            outcome: ClientOutcome::FailError,
            result: ClientResult::VersionsInvalid,
            base_url: Some("https://matrix.example.org".to_owned()),
            identity_server: Some("https://vector.im".to_owned().into()),
            hops: [(
                "https://example.org/.well-known/matrix/client".to_owned(),
                200,
            )]
            .into_iter()
            .collect(),
            cors: Some(false),
            versions: 0,
            latest: None,
            well_known_duration: Duration::from_millis(12).into(),
            versions_duration: Some(Duration::from_millis(25).into()),
            failures: vec![Failure::new(
                Stage::Client,
                Reason::ClientVersionsInvalid,
                "https://matrix.example.org/_matrix/client/versions: no \"versions\" array",
            )],
        }),
        support: Some(matrix_federation_exporter::report::SupportReport {
            result: matrix_federation_exporter::report::SupportResult::Ok,
            contacts: vec![matrix_federation_exporter::report::SupportContact {
                role: "m.role.admin".to_owned(),
                email_address: Some("admin@example.org".to_owned()),
                matrix_id: Some("@admin:example.org".to_owned()),
            }],
            role_counts: [1, 0, 0],
            support_page: Some("https://example.org/help".to_owned().into()),
            hops: [(
                "https://example.org/.well-known/matrix/support".to_owned(),
                200,
            )]
            .into_iter()
            .collect(),
            error: None,
            duration: ms(6).into(),
        }),
    }
}

/// A scheduled server's key history an hour after `ed25519:old` was dropped and `ed25519:new` added.
fn golden_key_history() -> matrix_federation_exporter::report::KeyHistory {
    use matrix_federation_exporter::report::key_history::ObservedKeys;
    let before = ObservedKeys {
        verify: vec![("ed25519:old".into(), "b2xkIGtleQ".into())],
        old: Vec::new(),
    };
    let after = ObservedKeys {
        verify: vec![("ed25519:new".into(), "bmV3IGtleQ".into())],
        old: Vec::new(),
    };
    matrix_federation_exporter::report::KeyHistory::default()
        .observe(Some(&before), T0 - 7200)
        .observe(Some(&after), T0 - 3600)
}

/// The golden server as a destination of a homeserver `home` that has been failing it for an hour.
fn golden_destination() -> matrix_federation_exporter::report::homeserver::Destination {
    matrix_federation_exporter::report::homeserver::Destination {
        server_name: "example.org".into(),
        retry_last_ts: 1_699_996_400_000,
        retry_interval: 1_200_000,
        failure_ts: Some(1_699_996_400_000),
    }
}

fn golden_listed_by(
    destination: &matrix_federation_exporter::report::homeserver::Destination,
) -> tester::ListedBy<'_> {
    tester::ListedBy {
        homeserver: "home",
        destination,
    }
}

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/report.json")
}

#[test]
fn golden_report_json() {
    let report = golden_report();
    let destination = golden_destination();
    let listed_by = [golden_listed_by(&destination)];
    let rendered = tester::tester_report_pretty_with(&report, &listed_by) + "\n";
    // Upstream's shapes, and the key document as served (compacted, its order, `1.0e3` kept).
    support::tester_shape::assert_upstream_shape(&rendered);
    assert!(
        rendered.contains(
            r#""Keys": {"server_name":"example.org","valid_until_ts":1700086400000,"verify_keys":"#
        ),
        "{rendered}"
    );
    assert!(
        rendered.contains(r#""x_note":"a \"quoted\" value","x_weight":1.0e3}"#),
        "{rendered}"
    );
    // The ordered rendering and the value are the same document.
    assert_eq!(
        serde_json::from_str::<Value>(&rendered).unwrap(),
        tester::tester_report_with(&report, &listed_by)
    );
    let path = golden_path();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &rendered).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    if expected != rendered {
        let diff: Vec<String> = expected
            .lines()
            .zip(rendered.lines())
            .enumerate()
            .filter(|(_, (e, r))| e != r)
            .take(20)
            .map(|(i, (e, r))| format!("{:4} - {e}\n{:4} + {r}", i + 1, i + 1))
            .collect();
        panic!(
            "{} differs (UPDATE_GOLDEN=1 accepts the new output; {} vs {} lines):\n{}",
            path.display(),
            expected.lines().count(),
            rendered.lines().count(),
            diff.join("\n")
        );
    }
}

fn keys_of(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn set<'a>(keys: &[&'a str]) -> BTreeSet<&'a str> {
    keys.iter().copied().collect()
}

#[test]
fn golden_file_has_exactly_the_testers_keys_plus_ours() {
    // While `golden_report_json` rewrites the file, check what it writes.
    let text = if std::env::var_os("UPDATE_GOLDEN").is_some() {
        tester::tester_report_pretty_with(
            &golden_report(),
            &[golden_listed_by(&golden_destination())],
        )
    } else {
        std::fs::read_to_string(golden_path()).unwrap()
    };
    let json: Value = serde_json::from_str(&text).unwrap();
    // `Error` is omitempty in the tester and absent here (discovery ran).
    assert_eq!(
        keys_of(&json),
        set(&[
            "WellKnownResult",
            "DNSResult",
            "ConnectionReports",
            "ConnectionErrors",
            "Version",
            "FederationOK",
            EXTENSION_KEY,
        ])
    );
    assert_eq!(
        keys_of(&json["WellKnownResult"]),
        set(&["m.server", "CacheExpiresAt"])
    );
    assert_eq!(
        keys_of(&json["DNSResult"]),
        set(&[
            "SRVSkipped",
            "SRVCName",
            "SRVRecords",
            "SRVError",
            "Hosts",
            "Addrs"
        ])
    );
    for record in json["DNSResult"]["SRVRecords"].as_array().unwrap() {
        assert_eq!(
            keys_of(record),
            set(&["Target", "Port", "Priority", "Weight"])
        );
    }
    for host in json["DNSResult"]["Hosts"].as_object().unwrap().values() {
        assert_eq!(keys_of(host), set(&["CName", "Addrs", "Error"]));
    }
    let reports = json["ConnectionReports"].as_object().unwrap();
    assert_eq!(
        reports.keys().map(String::as_str).collect::<Vec<_>>(),
        ["192.0.2.10:8448"]
    );
    for conn in reports.values() {
        assert_eq!(
            keys_of(conn),
            set(&[
                "Certificates",
                "Cipher",
                "Checks",
                "Errors",
                "Ed25519VerifyKeys",
                "Info",
                "Keys",
            ])
        );
        assert_eq!(
            keys_of(&conn["Checks"]),
            set(&[
                "AllChecksOK",
                "MatchingServerName",
                "FutureValidUntilTS",
                "HasEd25519Key",
                "AllEd25519ChecksOK",
                "Ed25519Checks",
                "ValidCertificates",
            ])
        );
        assert_eq!(keys_of(&conn["Cipher"]), set(&["Version", "CipherSuite"]));
        for cert in conn["Certificates"].as_array().unwrap() {
            assert_eq!(
                keys_of(cert),
                set(&[
                    "SubjectCommonName",
                    "IssuerCommonName",
                    "SHA256Fingerprint",
                    "DNSNames"
                ])
            );
        }
    }
    // The IPv6 address's key fetch failed: a connection error, in brackets as the tester writes it.
    assert_eq!(
        json["ConnectionErrors"],
        json!({"[2001:db8::20]:8448": {"Message": "GET /_matrix/key/v2/server answered HTTP 404"}})
    );
    assert_eq!(keys_of(&json["Version"]), set(&["name", "version"]));
    assert_eq!(json["FederationOK"], false);
    // The sample fingerprint of the reference, from our hex.
    assert_eq!(
        reports["192.0.2.10:8448"]["Certificates"][0]["SHA256Fingerprint"],
        "r0MKpJ3Q0N4c9a2m2m8yWbq9fJpQm0J8xQb8v7Yw3nE"
    );
}
