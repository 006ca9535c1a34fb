//! Client discovery end to end, one scenario per outcome and result: `c.test` (127.0.0.2) serves
//! `/.well-known/matrix/client` on the world's port 443, `hs.c.test` (127.0.0.3) is the homeserver base URL
//! the well-known names, `dead.c.test` (127.0.0.9) has nothing listening. Each scenario asserts the spec's
//! outcome, the result (which step and why), the base URL, the failure's closed reason and the CORS warning.

mod support;

use matrix_federation_exporter::config::server_name::ServerName;
use matrix_federation_exporter::probe::client::discover_client;
use matrix_federation_exporter::probe::probe_server;
use matrix_federation_exporter::report::{
    ClientOutcome, ClientReport, ClientResult, Reason, Stage, Warning,
};
use support::https::Reply;
use support::{Routes, TIMEOUTS, Validity, World, Zone};

const WELL_KNOWN: &str = "/.well-known/matrix/client";
const VERSIONS: &str = "/_matrix/client/versions";
const GOOD_VERSIONS: &str = r#"{"versions":["r0.6.1","v1.2","v1.11"],"unstable_features":{}}"#;

fn zone() -> Zone {
    Zone::new()
        .a("c.test", "127.0.0.2".parse().unwrap())
        .a("hs.c.test", "127.0.0.3".parse().unwrap())
        .a("dead.c.test", "127.0.0.9".parse().unwrap())
}

/// A 200 JSON reply with `Access-Control-Allow-Origin: *`, as the spec asks.
fn with_cors(body: &str) -> Reply {
    Reply::Json {
        status: 200,
        headers: vec![("access-control-allow-origin".into(), "*".into())],
        body: body.into(),
    }
}

fn base(url: &str) -> Reply {
    with_cors(&format!(r#"{{"m.homeserver":{{"base_url":"{url}"}}}}"#))
}

/// A world where `c.test` answers `well_known` routes and `hs.c.test` answers versions with `hs` (when given),
/// both with valid certificates.
async fn world(label: &str, well_known: Routes, hs: Option<Routes>) -> World {
    let mut w = World::new(label, zone(), TIMEOUTS).await;
    let c = w.https("c.test", Validity::Valid, well_known);
    w.serve_well_known([127, 0, 0, 2], c).await;
    if let Some(routes) = hs {
        let hs = w.https("hs.c.test", Validity::Valid, routes);
        w.serve_well_known([127, 0, 0, 3], hs).await;
    }
    w
}

async fn discover(w: &World, name: &str) -> ClientReport {
    let name = ServerName::parse(name).unwrap();
    discover_client(
        &w.env,
        &name,
        &mut matrix_federation_exporter::probe::discovery::dns::Known::default(),
        &mut None,
    )
    .await
}

fn versions_ok() -> Routes {
    Routes::new().route(VERSIONS, Reply::json(200, GOOD_VERSIONS))
}

/// Asserts outcome, result, the failure's reason (`None`: no failure) and `client_success`.
#[track_caller]
fn expect(c: &ClientReport, outcome: ClientOutcome, result: ClientResult, reason: Option<Reason>) {
    assert_eq!((c.outcome, c.result), (outcome, result), "{c:#?}");
    let reasons: Vec<_> = c.failures.iter().map(|f| (f.stage, f.reason)).collect();
    assert_eq!(
        reasons,
        reason
            .map(|r| (Stage::Client, r))
            .into_iter()
            .collect::<Vec<_>>()
    );
    assert_eq!(c.success(), reason.is_none());
}

#[tokio::test]
async fn success_with_a_trailing_slash_and_cors() {
    let w = world(
        "client ok",
        Routes::new().route(WELL_KNOWN, base("https://hs.c.test/")),
        Some(versions_ok()),
    )
    .await;
    let c = discover(&w, "c.test").await;
    expect(&c, ClientOutcome::Success, ClientResult::Ok, None);
    assert_eq!(c.base_url.as_deref(), Some("https://hs.c.test"));
    assert_eq!(c.latest.as_deref(), Some("v1.11"));
    assert_eq!(c.cors, Some(true));
    assert_eq!(w.servers[1].requests()[0].0, VERSIONS, "one slash, not two");
}

#[tokio::test]
async fn not_found_is_ignore_and_the_server_name_itself_is_checked() {
    let routes = Routes::new().route(VERSIONS, Reply::json(200, GOOD_VERSIONS));
    let w = world("client ignore", routes, None).await;
    let c = discover(&w, "c.test").await;
    expect(&c, ClientOutcome::Ignore, ClientResult::NotFound, None);
    assert_eq!(c.base_url.as_deref(), Some("https://c.test"));
    assert_eq!(c.cors, None, "no 200, nothing to judge");
    // The fallback rides the well-known's connection (same origin).
    assert_eq!(w.servers[0].connections(), 1);
}

#[tokio::test]
async fn not_found_with_a_broken_fallback_fails_under_ignore() {
    let w = world("client ignore broken", Routes::new(), None).await;
    let c = discover(&w, "c.test").await;
    expect(
        &c,
        ClientOutcome::Ignore,
        ClientResult::VersionsHttpStatus,
        Some(Reason::HttpStatus),
    );
}

#[tokio::test]
async fn fail_prompt_causes() {
    let big = Reply::Big { bytes: 60 * 1024 };
    let cases: [(&str, Reply, ClientResult, Reason); 6] = [
        (
            "500",
            Reply::json(500, "{}"),
            ClientResult::WellKnownHttpStatus,
            Reason::HttpStatus,
        ),
        (
            "empty",
            with_cors(" \n"),
            ClientResult::WellKnownEmpty,
            Reason::NotJson,
        ),
        (
            "html",
            with_cors("<html>hi</html>"),
            ClientResult::WellKnownNotJson,
            Reason::NotJson,
        ),
        (
            "no base",
            with_cors(r#"{"m.homeserver":{}}"#),
            ClientResult::NoBaseUrl,
            Reason::ClientWellKnownInvalid,
        ),
        (
            "identity without base",
            with_cors(
                r#"{"m.homeserver":{"base_url":"https://hs.c.test"},"m.identity_server":{}}"#,
            ),
            ClientResult::IdentityServerNoBaseUrl,
            Reason::ClientWellKnownInvalid,
        ),
        (
            "oversized",
            big,
            ClientResult::WellKnownTooLarge,
            Reason::NotJson,
        ),
    ];
    for (label, reply, result, reason) in cases {
        let w = world(
            label,
            Routes::new().route(WELL_KNOWN, reply),
            Some(versions_ok()),
        )
        .await;
        let c = discover(&w, "c.test").await;
        expect(&c, ClientOutcome::FailPrompt, result, Some(reason));
        assert_eq!(c.base_url, None, "{label}");
    }
}

#[tokio::test]
async fn fail_prompt_when_the_well_known_cannot_be_fetched() {
    // Nothing listens for dead.c.test: no HTTP answer at all.
    let w = World::new("client unreachable", zone(), TIMEOUTS).await;
    let c = discover(&w, "dead.c.test").await;
    expect(
        &c,
        ClientOutcome::FailPrompt,
        ClientResult::WellKnownUnreachable,
        Some(Reason::Unreachable),
    );

    // An expired certificate on the well-known's host.
    let mut w = World::new("client wk expired", zone(), TIMEOUTS).await;
    let routes = Routes::new().route(WELL_KNOWN, base("https://hs.c.test"));
    let c_test = w.https("c.test", Validity::Expired, routes);
    w.serve_well_known([127, 0, 0, 2], c_test).await;
    let c = discover(&w, "c.test").await;
    expect(
        &c,
        ClientOutcome::FailPrompt,
        ClientResult::WellKnownTlsError,
        Some(Reason::CertExpired),
    );

    // A redirect loop.
    let routes = Routes::new()
        .route(
            WELL_KNOWN,
            Reply::Redirect {
                status: 302,
                location: "/a".into(),
            },
        )
        .route(
            "/a",
            Reply::Redirect {
                status: 302,
                location: WELL_KNOWN.into(),
            },
        );
    let w = world("client loop", routes, None).await;
    let c = discover(&w, "c.test").await;
    expect(
        &c,
        ClientOutcome::FailPrompt,
        ClientResult::WellKnownUnreachable,
        Some(Reason::HttpStatus),
    );
}

#[tokio::test]
async fn fail_error_causes_in_the_well_known() {
    let cases: [(&str, &str, ClientResult); 3] = [
        (
            "not a url",
            r#"{"m.homeserver":{"base_url":"hs.c.test"}}"#,
            ClientResult::InvalidBaseUrl,
        ),
        (
            "plain http",
            r#"{"m.homeserver":{"base_url":"http://hs.c.test"}}"#,
            ClientResult::InsecureBaseUrl,
        ),
        (
            "identity not a url",
            r#"{"m.homeserver":{"base_url":"https://hs.c.test"},"m.identity_server":{"base_url":"vector"}}"#,
            ClientResult::InvalidIdentityServerUrl,
        ),
    ];
    for (label, body, result) in cases {
        let w = world(
            label,
            Routes::new().route(WELL_KNOWN, with_cors(body)),
            Some(versions_ok()),
        )
        .await;
        let c = discover(&w, "c.test").await;
        expect(
            &c,
            ClientOutcome::FailError,
            result,
            Some(Reason::ClientWellKnownInvalid),
        );
        assert!(
            w.servers[1].requests().is_empty(),
            "{label}: versions not asked"
        );
    }
}

#[tokio::test]
async fn fail_error_causes_at_versions() {
    let cases: [(&str, Reply, ClientResult, Reason); 3] = [
        (
            "versions 404",
            Reply::json(404, "{}"),
            ClientResult::VersionsHttpStatus,
            Reason::HttpStatus,
        ),
        (
            "versions not json",
            Reply::json(200, "<html/>"),
            ClientResult::VersionsInvalid,
            Reason::ClientVersionsInvalid,
        ),
        (
            "versions wrong shape",
            Reply::json(200, r#"{"versions":"v1.11"}"#),
            ClientResult::VersionsInvalid,
            Reason::ClientVersionsInvalid,
        ),
    ];
    for (label, reply, result, reason) in cases {
        let well_known = Routes::new().route(WELL_KNOWN, base("https://hs.c.test"));
        let w = world(
            label,
            well_known,
            Some(Routes::new().route(VERSIONS, reply)),
        )
        .await;
        let c = discover(&w, "c.test").await;
        expect(&c, ClientOutcome::FailError, result, Some(reason));
        assert_eq!(c.base_url.as_deref(), Some("https://hs.c.test"), "{label}");
    }

    // Nothing listens at the base URL.
    let w = world(
        "versions dead",
        Routes::new().route(WELL_KNOWN, base("https://dead.c.test")),
        None,
    )
    .await;
    let c = discover(&w, "c.test").await;
    expect(
        &c,
        ClientOutcome::FailError,
        ClientResult::VersionsUnreachable,
        Some(Reason::Unreachable),
    );

    // The base URL's certificate is for another name.
    let mut w = world(
        "versions wrong cert",
        Routes::new().route(WELL_KNOWN, base("https://hs.c.test")),
        None,
    )
    .await;
    let hs = w.https(
        "other.test",
        Validity::Valid,
        Routes::new().route(VERSIONS, Reply::json(200, GOOD_VERSIONS)),
    );
    w.serve_well_known([127, 0, 0, 3], hs).await;
    let c = discover(&w, "c.test").await;
    expect(
        &c,
        ClientOutcome::FailError,
        ClientResult::VersionsTlsError,
        Some(Reason::CertHostnameMismatch),
    );
}

#[tokio::test]
async fn redirects_are_followed_and_a_missing_cors_header_is_a_warning() {
    let routes = Routes::new().route(
        WELL_KNOWN,
        Reply::Redirect {
            status: 301,
            location: "https://hs.c.test/wk".into(),
        },
    );
    let hs = Routes::new()
        .route(
            "/wk",
            Reply::json(200, r#"{"m.homeserver":{"base_url":"https://hs.c.test"}}"#),
        )
        .route(VERSIONS, Reply::json(200, GOOD_VERSIONS));
    let w = world("client redirect", routes, Some(hs)).await;
    let c = discover(&w, "c.test").await;
    expect(&c, ClientOutcome::Success, ClientResult::Ok, None);
    let statuses: Vec<u16> = c.hops.iter().map(|(_, s)| s).collect();
    assert_eq!(statuses, [301, 200]);
    assert_eq!(c.cors, Some(false));
}

#[tokio::test]
async fn a_server_name_with_a_port_asks_the_hostname_and_falls_back_to_the_name_as_written() {
    let routes = Routes::new().route(VERSIONS, Reply::json(200, GOOD_VERSIONS));
    let w = world("client port", routes, None).await;
    let c = discover(&w, "c.test:8448").await;
    // The well-known is asked at https://c.test (port 443); after its 404 clients try https://c.test:8448.
    assert_eq!(
        c.hops.first().unwrap().0,
        "https://c.test/.well-known/matrix/client"
    );
    assert_eq!(c.base_url.as_deref(), Some("https://c.test:8448"));
    expect(
        &c,
        ClientOutcome::Ignore,
        ClientResult::VersionsUnreachable,
        Some(Reason::Unreachable),
    );
}

#[tokio::test]
async fn an_ip_literal_is_its_own_hostname_and_its_certificate_must_name_the_address() {
    let mut w = World::new("client ip", zone(), TIMEOUTS).await;
    let routes = Routes::new().route(VERSIONS, Reply::json(200, GOOD_VERSIONS));
    let ip = w.https("127.0.0.2", Validity::Valid, routes);
    w.serve_well_known([127, 0, 0, 2], ip).await;
    let c = discover(&w, "127.0.0.2").await;
    assert_eq!(
        c.hops.first().unwrap().0,
        "https://127.0.0.2/.well-known/matrix/client"
    );
    expect(&c, ClientOutcome::Ignore, ClientResult::NotFound, None);
    assert_eq!(c.base_url.as_deref(), Some("https://127.0.0.2"));
    assert_eq!(
        w.servers[0].connections(),
        1,
        "the fallback rides the same connection"
    );
}

/// Through `probe_server`: the client well-known rides the server well-known's connection, a broken client
/// discovery does not change `probe_success`, and the missing CORS header is a server warning.
#[tokio::test]
async fn probe_server_runs_it_on_the_kept_connection_without_changing_probe_success() {
    let routes = Routes::new().route(
        WELL_KNOWN,
        Reply::json(200, r#"{"m.homeserver":{"base_url":"https://c.test"}}"#),
    );
    let mut w = world("client probe", routes, None).await;
    w.homeserver([127, 0, 0, 2], "c.test", Validity::Valid)
        .await;
    let name = ServerName::parse("c.test").unwrap();
    let report = probe_server(&w.env, &name).await;
    assert!(
        report.success(),
        "{:#?}",
        report.all_failures().collect::<Vec<_>>()
    );
    let c = report.client.as_ref().expect("client discovery ran");
    expect(
        c,
        ClientOutcome::FailError,
        ClientResult::VersionsHttpStatus,
        Some(Reason::HttpStatus),
    );
    let paths: Vec<String> = w.servers[0]
        .requests()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    // The support well-known follows client discovery on the same connection.
    assert_eq!(
        paths,
        [
            "/.well-known/matrix/server",
            WELL_KNOWN,
            VERSIONS,
            "/.well-known/matrix/support"
        ]
    );
    assert_eq!(w.servers[0].connections(), 1, "one handshake for all four");
    let warnings: Vec<_> = report.warnings().into_iter().map(|w| w.warning).collect();
    assert_eq!(warnings, [Warning::ClientWellKnownNoCors]);

    let mut env = w.env.clone();
    env.checks.client = false;
    let report = probe_server(&env, &name).await;
    assert!(report.client.is_none());
}

#[tokio::test]
async fn an_origin_that_refused_the_server_well_known_is_not_asked_again_in_the_same_probe() {
    // Nothing listens on dead.c.test's port 443: the server well-known's connection is refused, and the client and
    // support well-knowns (same origin, moments later) are told so instead of connecting again.
    let w = World::new("client refused origin", zone(), TIMEOUTS).await;
    let name = ServerName::parse("dead.c.test").unwrap();
    let report = probe_server(&w.env, &name).await;
    assert_eq!(
        report.discovery.well_known.outcome,
        matrix_federation_exporter::report::WellKnownOutcome::ConnectionFailed
    );
    let c = report.client.as_ref().expect("client discovery ran");
    expect(
        c,
        ClientOutcome::FailPrompt,
        ClientResult::WellKnownUnreachable,
        Some(Reason::Unreachable),
    );
    assert!(
        c.failures[0].message.contains("not asked again"),
        "{:?}",
        c.failures
    );
    let support = report.support.as_ref().expect("the support well-known ran");
    assert!(
        support
            .error
            .as_deref()
            .is_some_and(|e| e.contains("not asked again")),
        "{support:?}"
    );
}
