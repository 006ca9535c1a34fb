//! The status page (`/`, `/server/{name}`): rows, order, escaping and the detail page from hand-built reports
//! through the router; then the real thing, the exporter probing the hermetic world and serving its pages on
//! loopback to headless Chromium, whose DOM must hold the expected rows, with screenshots saved as CI artefacts.
//!
//! Chromium is Debian's `chromium` on PATH (`MFE_CHROMIUM` overrides the binary). When it is missing the test runs
//! `tests/tools/install-chromium.sh` and fails loudly if it is still missing: the browser test never skips.
//! Screenshots and DOM dumps go to `$CI_ARTIFACTS_DIR` (default `target/ci-artifacts`) as `status-*`.

mod support;

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{StatusCode, header};
use futures_util::FutureExt as _;
use matrix_federation_exporter::config::server_name::ServerName;
use matrix_federation_exporter::config::targets::{Labels, Target};
use matrix_federation_exporter::config::{Config, DEFAULT_MAX_CONCURRENT_PROBES, ProbeConfig};
use matrix_federation_exporter::render::html::{self, Sort};
use matrix_federation_exporter::render::metrics::{self, ExporterMetrics};
use matrix_federation_exporter::report::{
    AddressReport, CertFacts, CertReport, DiscoveryReport, Failure, Method, Phase, Reason,
    ServerReport, Stage, Step, SupportContact, SupportReport, SupportResult, TargetReport,
    TlsFacts, WellKnownAddress, WellKnownOutcome, WellKnownReport,
};
use matrix_federation_exporter::schedule::store::Store;
use matrix_federation_exporter::serve::daemon;
use matrix_federation_exporter::serve::limiter::Limiter;
use matrix_federation_exporter::serve::routes::{
    AllowedTargets, AppState, MAX_API_PROBES, ProbeEndpoint, router,
};
use support::world::delegated_and_expired_zone;
use support::{TIMEOUTS, Validity, World, reports};

const DAY: i64 = 86_400;
const NASTY_NAME: &str = "evil<script>alert(1)</script>'\".test";
const NASTY_SUBJECT: &str = "CN=<script>alert('subject')</script>";
const NASTY_MESSAGE: &str = "TLS alert <img src=x onerror=alert(2)> & more";

// ---- fixtures ----

fn now() -> SystemTime {
    SystemTime::now()
}

fn unix_now() -> i64 {
    i64::try_from(now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

fn cert(subject: &str, names: &[&str], not_after: i64) -> CertFacts {
    CertFacts {
        serial: "01:02".to_owned(),
        ..reports::cert(
            subject,
            "CN=Test Intermediate CA",
            names,
            not_after - 90 * DAY,
            not_after,
        )
    }
}

fn address(addr: &str, host: &str, leaf: Option<CertFacts>) -> AddressReport {
    AddressReport {
        address: addr.parse().unwrap(),
        target_host: host.into(),
        phases: [
            (Phase::Connect, Duration::from_millis(3)),
            (Phase::TlsHandshake, Duration::from_millis(12)),
        ]
        .into_iter()
        .collect(),
        tls: Some(TlsFacts {
            version: "TLSv1_3",
            cipher: "TLS13_AES_256_GCM_SHA384",
        }),
        certificate: leaf.map(|leaf| CertReport {
            verified_not_after: None,
            chain: vec![leaf.into()],
            failures: Vec::new(),
        }),
        keys: Some(reports::one_key(
            host,
            (unix_now() + DAY) * 1000,
            &"x".repeat(43),
        )),
        version: Some(reports::synapse("1.140.0")),
        failures: Vec::new(),
    }
}

/// A server whose only address passes, its certificate expiring in `days` days, reached by `.well-known`
/// delegation to `matrix.<name>`.
fn healthy(name: &str, days: i64, probed_secs_ago: u64) -> ServerReport {
    let delegated = format!("matrix.{name}");
    let finished_at = now() - Duration::from_secs(probed_secs_ago);
    ServerReport {
        history: matrix_federation_exporter::report::History::default(),
        key_history: matrix_federation_exporter::report::KeyHistory::default(),
        local_certs: matrix_federation_exporter::report::LocalCertsReport::default(),
        server_name: name.into(),
        started_at: finished_at - Duration::from_millis(80),
        finished_at,
        duration: Duration::from_millis(80),
        discovery: DiscoveryReport {
            method: Method::DefaultPort,
            well_known: WellKnownReport {
                per_address: Vec::new(),
                outcome: WellKnownOutcome::Delegated,
                cache_ttl: Some(Duration::from_secs(86_400)),
                hops: [(format!("https://{name}/.well-known/matrix/server"), 200)]
                    .into_iter()
                    .collect(),
                error: None,
            },
            delegated_server: Some(delegated.as_str().into()),
            tls_name: delegated.clone().into(),
            host_header: delegated.clone().into(),
            targets: vec![TargetReport {
                host: delegated.clone().into(),
                port: 8448,
                srv: None,
                addresses: vec!["198.51.100.7".parse().unwrap()],
                via_cname: false,
            }],
            steps: [
                (Step::WellKnown, Duration::from_millis(40)),
                (Step::Srv, Duration::from_millis(2)),
                (Step::AddressLookup, Duration::from_millis(1)),
            ]
            .into_iter()
            .collect(),
            truncated: false,
            refused: Vec::new(),
            shadowed_srv: None,
        },
        addresses: vec![address(
            "198.51.100.7:8448",
            &delegated,
            Some(cert(
                &format!("CN={delegated}"),
                &[&delegated],
                // An hour off the whole day, so "N days" reads the same for the whole test.
                unix_now() + days * DAY + if days < 0 { -3_600 } else { 3_600 },
            )),
        )],
        failures: Vec::new(),
        client: None,
        support: None,
    }
}

/// `broken.test`: its certificate expired 3 days ago, and its IPv6 address refuses connections.
fn broken() -> ServerReport {
    let mut r = healthy("broken.test", -3, 30);
    let expired = Failure::new(
        Stage::Certificate,
        Reason::CertExpired,
        "certificate expired: verification time is after notAfter",
    );
    let v4 = &mut r.addresses[0];
    v4.certificate
        .as_mut()
        .unwrap()
        .failures
        .push(expired.clone());
    v4.failures.push(expired);
    let mut v6 = address("[2001:db8::7]:8448", "matrix.broken.test", None);
    v6.phases = matrix_federation_exporter::report::Timings::default();
    v6.tls = None;
    v6.keys = None;
    v6.version = None;
    v6.failures.push(Failure::new(
        Stage::Connect,
        Reason::ConnectionRefused,
        "TCP connect to [2001:db8::7]:8448: Connection refused (os error 111)",
    ));
    r.addresses.push(v6);
    r
}

/// A certificate subject and an error message that would each inject markup if not escaped. (A configured
/// server name cannot hold markup: names are checked against the spec grammar. `nasty_named` tests the pages
/// with one anyway.)
fn nasty() -> ServerReport {
    let mut r = healthy("nasty.test", 40, 5);
    let a = &mut r.addresses[0];
    let leaf = &mut a.certificate.as_mut().unwrap().chain[0];
    std::sync::Arc::make_mut(leaf).subject = NASTY_SUBJECT.into();
    a.failures.push(Failure::new(
        Stage::Tls,
        Reason::TlsHandshakeFailed,
        NASTY_MESSAGE,
    ));
    // A support document is foreign text too: its contacts and page are shown, escaped.
    r.support = Some(SupportReport {
        result: SupportResult::Ok,
        contacts: vec![SupportContact {
            role: "m.role.admin".to_owned(),
            email_address: Some(NASTY_CONTACT.to_owned()),
            matrix_id: Some("@admin:nasty.test".to_owned()),
        }],
        role_counts: [1, 0, 0],
        support_page: Some("https://nasty.test/<b>help</b>".into()),
        hops: matrix_federation_exporter::report::Hops::default(),
        error: None,
        duration: Duration::from_millis(5).into(),
    });
    r
}

/// A contact that would inject markup if not escaped.
const NASTY_CONTACT: &str = "<script>alert('contact')</script>@nasty.test";

/// A DNS failure: no addresses at all, one server-level failure.
fn nxdomain() -> ServerReport {
    let mut r = healthy("gone.test", 0, 90);
    r.discovery = DiscoveryReport::empty("gone.test");
    r.discovery.method = Method::DefaultPort;
    r.discovery.well_known.outcome = WellKnownOutcome::DnsError;
    r.addresses.clear();
    r.failures.push(Failure::new(
        Stage::Dns,
        Reason::DnsNxdomain,
        "gone.test: NXDOMAIN",
    ));
    r
}

fn state(store: Arc<Store>) -> AppState {
    let (_tx, ready) = tokio::sync::watch::channel(true);
    let exporter = ExporterMetrics::new();
    AppState {
        scrapes: matrix_federation_exporter::serve::scrape::SharedScrapes::default(),
        registry: metrics::registry(Arc::clone(&store), &exporter),
        store,
        ready,
        // The status pages never probe.
        prober: Arc::new(|name: ServerName| {
            let now = SystemTime::now();
            futures_util::future::ready(ServerReport::timed_out(name.as_str(), now, Duration::ZERO))
                .boxed()
        }),
        probe_deadline: Duration::from_secs(10),
        interval: Duration::from_secs(60),
        probe_unconfigured: false,
        allowed_targets: AllowedTargets::default(),
        api_probes: Limiter::new(MAX_API_PROBES),
        exporter,
        probe: ProbeEndpoint::new(
            &ProbeConfig::default(),
            Duration::from_secs(10),
            Limiter::new(DEFAULT_MAX_CONCURRENT_PROBES),
        ),
    }
}

/// The router over a store of `reports`, with `configured` as the configured names.
fn app(reports: Vec<ServerReport>, configured: &[&str]) -> axum::Router {
    let store = Arc::new(Store::new());
    let targets: Vec<Target> = configured
        .iter()
        .map(|name| Target {
            name: ServerName::parse(name).unwrap(),
            labels: Labels::new(),
        })
        .collect();
    store.configure(&targets);
    for r in reports {
        store.insert(r);
    }
    router(Arc::new(state(store)))
}

fn standard_app() -> axum::Router {
    app(
        vec![
            healthy("a-healthy.test", 80, 12),
            healthy("z-soon.test", 5, 7_200),
            broken(),
            nasty(),
            nxdomain(),
        ],
        &[
            "a-healthy.test",
            "z-soon.test",
            "broken.test",
            "nasty.test",
            "gone.test",
            "pending.test",
        ],
    )
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let answer = support::router::get(app, uri).await;
    (answer.status, answer.headers, answer.body)
}

/// The value of attribute `name` in the opening tag `tag` (the text from `<` to `>`), with `&quot;`, `&#39;`,
/// `&lt;`, `&gt;` and `&amp;` decoded.
fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = start + tag[start..].find('"')?;
    Some(
        tag[start..end]
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// The `(data-server, data-status)` of every server row, in document order. Works on the page as served and on
/// the DOM as Chromium serialises it.
fn rows(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("<tr ") {
        let tag_end = i + rest[i..].find('>').expect("tag closes");
        let tag = &rest[i..tag_end];
        if let (Some(server), Some(status)) = (attr(tag, "data-server"), attr(tag, "data-status")) {
            out.push((server, status));
        }
        rest = &rest[tag_end..];
    }
    out
}

/// The HTML of the row of `server` (from its `<tr` to its `</tr>`).
fn row_html<'a>(html: &'a str, server: &str) -> &'a str {
    let key = format!("data-server=\"{server}\"");
    let at = html
        .find(&key)
        .unwrap_or_else(|| panic!("no row for {server}:\n{html}"));
    let start = html[..at].rfind("<tr").expect("the row's tag opens");
    let end = start + html[start..].find("</tr>").expect("row closes");
    &html[start..end]
}

fn names(rows: &[(String, String)]) -> Vec<&str> {
    rows.iter().map(|(n, _)| n.as_str()).collect()
}

// ---- the pages, through the router ----

#[tokio::test]
async fn index_lists_every_server_worst_first() {
    let app = standard_app();
    let (status, headers, body) = get(&app, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(body.starts_with("<!DOCTYPE html>"), "{body}");
    assert!(
        body.contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
    );
    assert!(body.contains("@media (max-width:600px)"), "a phone layout");
    assert!(!body.contains("<script"), "no script, and nothing injected");
    assert!(
        !body.contains("src=\"http") && !body.contains("href=\"http"),
        "no external assets"
    );
    assert!(body.contains("<a href=\"/metrics\">"));

    let rows = rows(&body);
    // Failing first, the soonest certificate expiry first (broken's expired, nasty's in 40 days, gone has none);
    // then not yet probed; then healthy ones, the soonest expiry first.
    assert_eq!(
        rows,
        [
            ("broken.test", "failing"),
            ("nasty.test", "failing"),
            ("gone.test", "failing"),
            ("pending.test", "pending"),
            ("z-soon.test", "ok"),
            ("a-healthy.test", "ok"),
        ]
        .map(|(n, s)| (n.to_owned(), s.to_owned()))
    );
    assert!(body.contains(">2 ok</span>"), "{body}");
    assert!(body.contains(">3 failing</span>"), "{body}");
    assert!(body.contains(">1 not yet probed</span>"), "{body}");

    let broken = row_html(&body, "broken.test");
    assert!(broken.contains("class=\"row status-failing\""), "{broken}");
    assert!(
        broken.contains("<a href=\"/server/broken.test\">broken.test</a>"),
        "{broken}"
    );
    assert!(
        broken.contains(".well-known → matrix.broken.test"),
        "{broken}"
    );
    assert!(broken.contains("default port"), "{broken}");
    assert!(
        broken.contains(">0/2</span> ok"),
        "addresses ok/total: {broken}"
    );
    assert!(broken.contains("expired 3 days ago"), "{broken}");
    // The first failure in words, from check::hint, and where it is.
    assert!(
        broken.contains(">the certificate has expired</span>"),
        "{broken}"
    );
    assert!(
        broken.contains("renew it, reload the web server"),
        "{broken}"
    );
    assert!(
        broken.contains("<code>certificate/cert_expired</code> on 198.51.100.7:8448"),
        "{broken}"
    );
    assert!(broken.contains("+1 more"), "{broken}");
    assert!(broken.contains(">30 s ago</time>"), "{broken}");
    assert!(
        broken.contains("title=\"20"),
        "absolute time in the title: {broken}"
    );

    let soon = row_html(&body, "z-soon.test");
    assert!(soon.contains("class=\"days warn\""), "{soon}");
    assert!(soon.contains(">5 days</span>"), "{soon}");
    assert!(soon.contains(">2 h ago</time>"), "{soon}");
    let healthy = row_html(&body, "a-healthy.test");
    assert!(healthy.contains(">80 days</span>"), "{healthy}");
    assert!(healthy.contains(">1/1</span> ok"), "{healthy}");
    let gone = row_html(&body, "gone.test");
    assert!(gone.contains("the name does not exist in DNS"), "{gone}");
    assert!(
        gone.contains("<code>dns/dns_nxdomain</code> on the server"),
        "{gone}"
    );
    let pending = row_html(&body, "pending.test");
    assert!(pending.contains("waiting for the first probe"), "{pending}");
}

#[tokio::test]
async fn index_sorts_by_name_and_by_expiry() {
    let app = standard_app();
    let (_, _, body) = get(&app, "/?sort=name").await;
    assert_eq!(
        names(&rows(&body)),
        [
            "a-healthy.test",
            "broken.test",
            "gone.test",
            "nasty.test",
            "pending.test",
            "z-soon.test"
        ]
    );
    assert!(body.contains("aria-sort=\"ascending\" class=\"sorted\"><a href=\"/?sort=name\""));

    let (_, _, body) = get(&app, "/?sort=expiry").await;
    assert_eq!(
        names(&rows(&body)),
        [
            "broken.test",
            "z-soon.test",
            "nasty.test",
            "a-healthy.test",
            // No certificate: last, failing before pending.
            "gone.test",
            "pending.test",
        ]
    );

    // An unknown order is the default one.
    let (status, _, bogus) = get(&app, "/?sort=%3Cscript%3E").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&rows(&bogus))[0], "broken.test");
    assert!(!bogus.contains("<script>"));
}

#[tokio::test]
async fn untrusted_text_is_escaped() {
    let app = standard_app();
    let (_, _, index) = get(&app, "/").await;
    assert!(!index.contains("<script>"), "{index}");
    assert!(!index.contains("<img"), "{index}");
    // The raw message is in a title attribute, escaped.
    assert!(
        index.contains("TLS alert &lt;img src=x onerror=alert(2)&gt; &amp; more"),
        "{index}"
    );

    let (status, _, detail) = get(&app, "/server/nasty.test").await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert!(!detail.contains("<script>"), "{detail}");
    assert!(!detail.contains("<img"), "{detail}");
    assert!(
        detail.contains("CN=&lt;script&gt;alert(&#39;subject&#39;)&lt;/script&gt;"),
        "{detail}"
    );
    assert!(
        detail.contains("TLS alert &lt;img src=x onerror=alert(2)&gt; &amp; more"),
        "{detail}"
    );
    // Whom to contact, escaped: the contact, and the support page as text, not a link.
    assert!(detail.contains("Whom to contact"), "{detail}");
    assert!(
        detail.contains(
            "m.role.admin: @admin:nasty.test, &lt;script&gt;alert(&#39;contact&#39;)&lt;/script&gt;@nasty.test"
        ),
        "{detail}"
    );
    assert!(
        detail.contains("support page: https://nasty.test/&lt;b&gt;help&lt;/b&gt;"),
        "{detail}"
    );
    assert!(!detail.contains("<b>help"), "{detail}");

    // A name with markup (which the store never holds: names are checked) is escaped by both pages too.
    let mut named = nasty();
    named.server_name = NASTY_NAME.into();
    let now = SystemTime::now();
    let index = html::index_page(&[Arc::new(named.clone())], [], Sort::Worst, now);
    assert!(!index.contains("<script>"), "{index}");
    assert!(
        index.contains("evil&lt;script&gt;alert(1)&lt;/script&gt;&#39;&quot;.test"),
        "{index}"
    );
    // The link to the detail page is percent-encoded.
    let href = "/server/evil%3Cscript%3Ealert%281%29%3C%2Fscript%3E%27%22.test";
    assert!(index.contains(&format!("<a href=\"{href}\">")), "{index}");
    let detail = html::server_page(NASTY_NAME, Some(&named), now);
    assert!(!detail.contains("<script>"), "{detail}");
    assert!(detail.contains("<title>evil&lt;script&gt;"), "{detail}");

    // A 404 for a name with markup does not reflect it raw either.
    let (status, _, missing) = get(&app, "/server/%3Cb%3Ex%3C%2Fb%3E").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        missing.contains("&lt;b&gt;x&lt;/b&gt;") && !missing.contains("<b>x"),
        "{missing}"
    );
}

#[tokio::test]
async fn detail_page_shows_the_whole_report() {
    let app = standard_app();
    let (status, headers, body) = get(&app, "/server/broken.test").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert!(body.contains("<meta name=\"viewport\""));
    assert!(body.contains("<a href=\"/\">← all servers</a>"));
    assert!(body.contains("data-status=\"failing\""), "{body}");
    assert!(body.contains(">federation fails</span>"), "{body}");
    // Every failure, with its fix in check's words.
    assert!(body.contains("What is wrong (2)"), "{body}");
    assert!(body.contains("data-reason=\"cert_expired\""), "{body}");
    assert!(
        body.contains("data-reason=\"connection_refused\""),
        "{body}"
    );
    assert!(
        body.contains("<strong>Fix:</strong> renew it, reload the web server"),
        "{body}"
    );
    assert!(
        body.contains("nothing listens on [2001:db8::7]:8448</span>"),
        "the IPv6 hint: {body}"
    );
    assert!(body.contains("open the port for IPv6"), "{body}");
    // Discovery.
    assert!(
        body.contains("<code>default_port</code> (default port)"),
        "{body}"
    );
    assert!(
        body.contains(
            "<code>delegated</code> <span class=\"muted\">(peers cache this for 1day)</span>"
        ),
        "{body}"
    );
    assert!(
        body.contains("https://broken.test/.well-known/matrix/server</code> → HTTP 200"),
        "{body}"
    );
    assert!(
        body.contains("<dt>Certificate must name</dt><dd><code>matrix.broken.test</code>"),
        "{body}"
    );
    // Addresses: certificate, keys, version.
    assert!(body.contains("id=\"addr-198-51-100-7-8448\""), "{body}");
    assert!(
        body.contains("data-address=\"[2001:db8::7]:8448\""),
        "{body}"
    );
    assert!(
        body.contains("<span class=\"subject\">CN=matrix.broken.test</span>"),
        "{body}"
    );
    assert!(body.contains("✘ cert_expired"), "{body}");
    assert!(
        body.contains("<code>ed25519:a_AbCd</code> <span class=\"ok\">✔ signature verifies"),
        "{body}"
    );
    assert!(
        body.contains("<dt>Version</dt><dd>Synapse 1.140.0</dd>"),
        "{body}"
    );
    assert!(
        body.contains("TLSv1_3 · TLS13_AES_256_GCM_SHA384"),
        "{body}"
    );
    assert!(
        body.contains(
            "<dt>Steps</dt><dd>well_known 40 ms · srv 2.0 ms · address_lookup 1.0 ms</dd>"
        ),
        "{body}"
    );
    assert!(
        body.contains("<dt>Timings</dt><dd>connect 3.0 ms · tls_handshake 12 ms</dd>"),
        "{body}"
    );
    // check's plain-text report, whole.
    assert!(
        body.contains("<pre>broken.test: ✘ federation fails\n"),
        "{body}"
    );
    assert!(
        body.contains("        fix: the certificate has expired: renew it"),
        "{body}"
    );

    let (status, _, ok) = get(&app, "/server/a-healthy.test").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ok.contains(">federation works</span>"), "{ok}");
    assert!(!ok.contains("What is wrong"), "{ok}");

    let (status, _, gone) = get(&app, "/server/gone.test").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        gone.contains(
            "<code>dns/dns_nxdomain</code> on the server: <span class=\"what\">the name does not exist in DNS"
        ),
        "{gone}"
    );
    assert!(
        gone.contains("None: discovery found nothing to connect to."),
        "{gone}"
    );
}

/// A server whose addresses answer the well-known differently: a marker on the index row, and the
/// per-address table (with the fix) on the detail page.
#[tokio::test]
async fn an_inconsistent_well_known_is_marked_and_detailed() {
    let mut split = healthy("split.test", 60, 10);
    split.discovery.well_known.per_address = vec![
        WellKnownAddress {
            address: "[2001:db8::1]:443".parse().unwrap(),
            outcome: WellKnownOutcome::NotFound,
            m_server: None,
            error: Some("HTTP 404".into()),
            followed: false,
        },
        WellKnownAddress {
            address: "192.0.2.1:443".parse().unwrap(),
            outcome: WellKnownOutcome::Delegated,
            m_server: Some("matrix.split.test".into()),
            error: None,
            followed: true,
        },
    ];
    let consistent = healthy("same.test", 60, 10);
    let app = app(vec![split, consistent], &["split.test", "same.test"]);
    let (_, _, index) = get(&app, "/").await;
    assert!(
        row_html(&index, "split.test").contains("⚠ .well-known differs by address"),
        "{index}"
    );
    assert!(
        !row_html(&index, "same.test").contains("differs by address"),
        "{index}"
    );
    let (status, _, body) = get(&app, "/server/split.test").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(".well-known from every address"), "{body}");
    assert!(body.contains("<td>[2001:db8::1]:443</td>"), "{body}");
    assert!(body.contains("<code>not_found</code>: HTTP 404"), "{body}");
    assert!(body.contains("<code>matrix.split.test</code>"), "{body}");
    assert!(
        body.contains("Make every address serve the same file"),
        "{body}"
    );
    assert!(
        body.contains("well_known_inconsistent"),
        "the warning: {body}"
    );
    let (_, _, same) = get(&app, "/server/same.test").await;
    assert!(!same.contains(".well-known from every address"), "{same}");
}

#[tokio::test]
async fn pending_and_unknown_servers() {
    let app = standard_app();
    let (status, _, pending) = get(&app, "/server/pending.test").await;
    assert_eq!(status, StatusCode::OK);
    assert!(pending.contains(">not yet probed</span>"), "{pending}");
    assert!(
        pending.contains("first probe has not finished yet"),
        "{pending}"
    );

    let (status, headers, missing) = get(&app, "/server/nope.test").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert!(missing.contains("id=\"not-found\""), "{missing}");
    assert!(missing.contains("<code>nope.test</code>"), "{missing}");
    assert!(missing.contains("<a href=\"/\">"), "{missing}");

    // Nothing configured, nothing probed.
    let (status, _, empty) = get(&app_empty(), "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(rows(&empty).is_empty());
    assert!(empty.contains("no probe has finished yet"), "{empty}");
}

fn app_empty() -> axum::Router {
    app(Vec::new(), &[])
}

#[tokio::test]
async fn ip_literal_names_round_trip_through_the_link() {
    let mut r = healthy("x", 30, 1);
    r.server_name = "[2001:db8::1]:8448".into();
    let app = app(vec![r], &["[2001:db8::1]:8448"]);
    let (_, _, index) = get(&app, "/").await;
    let href = "/server/%5B2001%3Adb8%3A%3A1%5D%3A8448";
    assert!(
        index.contains(&format!("<a href=\"{href}\">[2001:db8::1]:8448</a>")),
        "{index}"
    );
    let (status, _, detail) = get(&app, href).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert!(
        detail.contains("<span class=\"name\">[2001:db8::1]:8448</span>"),
        "{detail}"
    );
}

// ---- the real browser ----

/// Where screenshots and DOM dumps go: `$CI_ARTIFACTS_DIR`, else `target/ci-artifacts`.
fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("CI_ARTIFACTS_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ci-artifacts"),
            PathBuf::from,
        );
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Headless Chromium, run once per page: `--dump-dom` or `--screenshot`, each in a new empty profile.
struct Chromium {
    bin: PathBuf,
}

/// A Chromium started in its own process group; dropping it kills the whole group (browser, zygote, renderers).
struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Each Chromium run gets at most this long.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(90);

impl Chromium {
    /// `$MFE_CHROMIUM`, else `chromium` on PATH; when missing, runs `tests/tools/install-chromium.sh` once and
    /// looks again. Panics when there is still none: a missing browser fails the test, it never skips it.
    fn find() -> Self {
        if let Some(bin) = std::env::var_os("MFE_CHROMIUM").filter(|b| !b.is_empty()) {
            return Self {
                bin: PathBuf::from(bin),
            };
        }
        if let Some(bin) = on_path("chromium") {
            return Self { bin };
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/install-chromium.sh");
        eprintln!("chromium is not on PATH; running {}", script.display());
        let status = Command::new("bash").arg(&script).status();
        match on_path("chromium") {
            Some(bin) => Self { bin },
            None => panic!(
                "headless Chromium is required for the status-page test, and `chromium` is not on PATH even \
                 after {} ({status:?}). Install Debian's chromium package (apt-get install chromium), or set \
                 MFE_CHROMIUM to a Chromium binary.",
                script.display()
            ),
        }
    }

    /// Runs Chromium headless on `url` with `extra` flags and returns its stdout. Panics when it fails, or has
    /// not finished within [`CHROMIUM_TIMEOUT`] (then it is killed).
    fn run(&self, url: &str, extra: &[String]) -> String {
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "Chromium only ever loads pages from loopback: {url}"
        );
        let profile = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "chromium-profile-{}-{}",
            std::process::id(),
            PROFILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).unwrap();
        let mut command = Command::new(&self.bin);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-default-apps",
                "--disable-breakpad",
                "--disable-dev-shm-usage",
                "--no-default-browser-check",
                "--no-proxy-server",
                // Belt and braces: no host name resolves, so nothing but the loopback IP can be reached.
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let started = Instant::now();
        let mut browser = Browser(
            command
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", self.bin.display())),
        );
        let reader = |mut pipe: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut out = Vec::new();
                let _ = pipe.read_to_end(&mut out);
                out
            })
        };
        let stdout = reader(Box::new(browser.0.stdout.take().unwrap()));
        let stderr = reader(Box::new(browser.0.stderr.take().unwrap()));
        let status = loop {
            if let Some(status) = browser.0.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > CHROMIUM_TIMEOUT {
                drop(browser);
                let err = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
                panic!("Chromium did not finish {url} within {CHROMIUM_TIMEOUT:?}; stderr:\n{err}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // Kills any helper process still holding the pipes, so the readers finish.
        drop(browser);
        let out = String::from_utf8_lossy(&stdout.join().unwrap()).into_owned();
        let err = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
        eprintln!(
            "chromium {} {url}: {status} in {:.1?}",
            extra.join(" "),
            started.elapsed()
        );
        assert!(
            status.success(),
            "Chromium failed on {url}: {status}; stderr:\n{err}"
        );
        let _ = std::fs::remove_dir_all(&profile);
        out
    }

    fn dump_dom(&self, url: &str) -> String {
        let dom = self.run(url, &["--dump-dom".to_owned()]);
        assert!(
            !dom.trim().is_empty(),
            "Chromium dumped an empty DOM for {url}"
        );
        dom
    }

    /// Saves a `width`×`height` screenshot of `url` to `path` and checks it is a PNG of that size with content.
    fn screenshot(&self, url: &str, path: &Path, (width, height): (u32, u32)) {
        let _ = std::fs::remove_file(path);
        self.run(
            url,
            &[
                format!("--screenshot={}", path.display()),
                format!("--window-size={width},{height}"),
            ],
        );
        let png = std::fs::read(path)
            .unwrap_or_else(|e| panic!("Chromium wrote no screenshot {}: {e}", path.display()));
        assert_eq!(
            &png[..8],
            b"\x89PNG\r\n\x1a\n",
            "{} is a PNG",
            path.display()
        );
        let dim = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
        assert_eq!(
            (dim(16), dim(20)),
            (width, height),
            "{} size",
            path.display()
        );
        // A blank page compresses to a few kilobytes; text, pills and borders take far more.
        assert!(
            png.len() > 12_000,
            "{} is only {} bytes: is the page blank?",
            path.display(),
            png.len()
        );
    }
}

static PROFILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The exporter probes a hermetic world — one delegated healthy server, one whose certificate expires in five
/// days, one with an expired certificate, one where nothing listens — and serves its pages on loopback to
/// headless Chromium. The DOM must hold one row per server in worst-first order with the right status and the
/// failure in words; the detail page must show the failures with their fixes. Screenshots at desktop and phone
/// sizes land in the CI artefacts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::too_many_lines,
    reason = "one browser session over every page and viewport"
)]
async fn status_page_renders_in_headless_chromium() {
    let started = Instant::now();
    let chromium = Chromium::find();

    let mut world = World::new(
        "status",
        delegated_and_expired_zone()
            .a("soon.test", "127.0.0.5".parse().unwrap())
            // Nothing listens on 127.0.0.6: connection refused.
            .a("down.test", "127.0.0.6".parse().unwrap()),
        TIMEOUTS,
    )
    .await;
    world.serve_delegated_and_expired().await;
    let soon = Validity::ExpiresIn(Duration::from_secs(5 * 86_400 + 3_600));
    world.homeserver([127, 0, 0, 5], "soon.test", soon).await;
    world.refuse_ipv6();

    let config = Config {
        servers: ["good.test", "bad.test", "soon.test", "down.test"]
            .map(|n| ServerName::parse(n).unwrap())
            .to_vec(),
        ..Config::default()
    };
    let mut exporter = daemon::start(&config, world.env.clone());
    tokio::time::timeout(Duration::from_secs(60), exporter.ready.wait_for(|r| *r))
        .await
        .expect("the first probe round finishes within 60 s")
        .unwrap();
    let probed = started.elapsed();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, exporter.router.clone()).into_future());
    let base = format!("http://{addr}");

    let chromium = Arc::new(chromium);
    let run = |f: Box<dyn FnOnce(&Chromium) -> String + Send>| {
        let chromium = Arc::clone(&chromium);
        async move {
            tokio::task::spawn_blocking(move || f(&chromium))
                .await
                .unwrap()
        }
    };
    let dir = artifacts_dir();

    // The list, as the browser parsed it.
    let url = format!("{base}/");
    let dom = run(Box::new(move |c| c.dump_dom(&url))).await;
    std::fs::write(dir.join("status-index.dom.html"), &dom).unwrap();
    assert!(
        dom.contains("<title>2 failing · Matrix federation status</title>"),
        "{dom}"
    );
    assert_eq!(
        rows(&dom),
        [
            ("bad.test", "failing"),
            ("down.test", "failing"),
            ("soon.test", "ok"),
            ("good.test", "ok"),
        ]
        .map(|(n, s)| (n.to_owned(), s.to_owned())),
        "one row per server, worst first:\n{dom}"
    );
    let bad = row_html(&dom, "bad.test");
    assert!(bad.contains("class=\"row status-failing\""), "{bad}");
    assert!(bad.contains("the certificate has expired"), "{bad}");
    assert!(bad.contains("certificate/cert_expired"), "{bad}");
    assert!(bad.contains("expired 1 day ago"), "{bad}");
    assert!(bad.contains(">0/1</span> ok"), "{bad}");
    let down = row_html(&dom, "down.test");
    assert!(
        down.contains(&format!("nothing listens on 127.0.0.6:{}", world.fed.port)),
        "{down}"
    );
    assert!(down.contains(".well-known connection failed"), "{down}");
    assert!(down.contains(">0/1</span> ok"), "{down}");
    let soon = row_html(&dom, "soon.test");
    assert!(soon.contains("class=\"row status-ok\""), "{soon}");
    assert!(soon.contains("class=\"days warn\""), "{soon}");
    assert!(soon.contains(">5 days</span>"), "{soon}");
    let good = row_html(&dom, "good.test");
    assert!(good.contains("class=\"row status-ok\""), "{good}");
    assert!(good.contains(".well-known → deleg.test"), "{good}");
    assert!(good.contains(">1/1</span> ok"), "{good}");
    // Valid for 90 days from its issue, in whole seconds: 89 days, or 90 within the second it was issued.
    assert!(
        good.contains(">89 days</span>") || good.contains(">90 days</span>"),
        "{good}"
    );
    assert!(
        good.contains(" s ago</time>") || good.contains("just now</time>"),
        "{good}"
    );
    assert!(
        dom.contains(">2 ok</span>") && dom.contains(">2 failing</span>"),
        "{dom}"
    );

    // The detail page of the failing server.
    let url = format!("{base}/server/bad.test");
    let detail = run(Box::new(move |c| c.dump_dom(&url))).await;
    std::fs::write(dir.join("status-server.dom.html"), &detail).unwrap();
    assert!(detail.contains("data-status=\"failing\""), "{detail}");
    assert!(detail.contains("data-reason=\"cert_expired\""), "{detail}");
    assert!(
        detail.contains("<strong>Fix:</strong> renew it"),
        "{detail}"
    );
    assert!(
        detail.contains(&format!("data-address=\"127.0.0.4:{}\"", world.fed.port)),
        "{detail}"
    );
    assert!(
        detail.contains("<span class=\"subject\">CN=bad.test</span>"),
        "{detail}"
    );
    assert!(
        detail.contains("bad.test: ✘ federation fails"),
        "check's text: {detail}"
    );

    // And a 404 for a name that is not there.
    let url = format!("{base}/server/nope.test");
    let missing = run(Box::new(move |c| c.dump_dom(&url))).await;
    assert!(missing.contains("id=\"not-found\""), "{missing}");

    // Screenshots, desktop and phone, for the CI artefacts (and for a human to look at).
    for (page, path) in [("index", "/"), ("server", "/server/bad.test")] {
        for (device, size) in [("desktop", (1280, 900)), ("phone", (390, 844))] {
            let url = format!("{base}{path}");
            let file = dir.join(format!("status-{page}-{device}.png"));
            run(Box::new(move |c| {
                c.screenshot(&url, &file, size);
                String::new()
            }))
            .await;
        }
    }
    server.abort();
    eprintln!(
        "status page browser test: first probe round {probed:.1?}, whole test {:.1?}; artefacts in {}",
        started.elapsed(),
        dir.display()
    );
}
