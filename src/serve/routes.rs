//! HTTP routes: `/metrics` (content-negotiated), the HTML status page (`/`, `/server/{name}`; see `render/html.rs`),
//! the `/-/healthy` and `/-/ready` lifecycle endpoints, and the federation tester's API (`/api/report`,
//! `/api/federation-ok`).
//!
//! Most handlers only read shared state (the registry, the store, the readiness flag). The API handlers may
//! also run one probe through [`AppState::prober`] when the stored report is stale or absent; at most
//! [`MAX_API_PROBES`] of those run at once. `GET /probe?target=NAME` (the `blackbox_exporter` multi-target
//! convention) always runs one fresh probe through the same prober, under the limits of [`ProbeEndpoint`], and
//! renders that report alone. Both kinds of probe run on request only for names that [`AllowedTargets`] allows.
//! Binding the listener and shutdown belong to the daemon.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{ACCEPT, CONTENT_ENCODING, CONTENT_TYPE, HeaderName, HeaderValue};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::config::server_name::ServerName;
use crate::config::{ProbeConfig, Profile, TargetPattern};
use crate::probe::{Prober, run_within};
use crate::render::html;
use crate::render::metrics::{self, ExporterMetrics, Format};
use crate::render::tester;
use crate::report::ServerReport;
use crate::schedule::store::Store;
use crate::serve::limiter::{Full, Limiter};
use crate::serve::scrape::{self, SharedScrapes};
use crate::serve::streaming;

/// Most on-demand probes the API runs at once; a request over the cap gets 503 (no queue).
pub const MAX_API_PROBES: usize = 8;

/// What the handlers share.
pub struct AppState {
    /// Built once at startup by [`metrics::registry`].
    pub registry: Registry,
    /// The latest reports (the landing page lists them; the API serves them while fresh).
    pub store: Arc<Store>,
    /// Turns true once the first probe round has finished.
    pub ready: watch::Receiver<bool>,
    /// Probes one server now (the API, when the stored report is stale or the name is not configured; `/probe`).
    /// Each handler cuts the probe it runs: the API at [`AppState::probe_deadline`], `/probe` at its timeout.
    pub prober: Prober,
    /// The probe deadline of the environment the prober uses (`ProbeEnv::probe_deadline`).
    pub probe_deadline: Duration,
    /// The probe interval: a stored report younger than this is fresh.
    pub interval: Duration,
    /// Whether the API may probe a name that is not configured (`api.probe_unconfigured`).
    pub probe_unconfigured: bool,
    /// The names `/probe` and the API may probe on request (`probe.allowed_targets`).
    pub allowed_targets: AllowedTargets,
    /// Permits for on-demand API probes ([`MAX_API_PROBES`] in production): one limiter for the exporter's life,
    /// shared by every build of the routes.
    pub api_probes: Limiter,
    /// The exporter's own metrics (`/metrics` records its render time here).
    pub exporter: ExporterMetrics,
    /// `GET /probe`: its timeout cap and permits.
    pub probe: ProbeEndpoint,
    /// The gzip `/metrics` renders running now, which a concurrent gzip scrape joins.
    pub scrapes: SharedScrapes,
}

/// Subtracted from the scrape timeout Prometheus sends (`X-Prometheus-Scrape-Timeout-Seconds`), so that the
/// answer arrives before Prometheus gives up (`blackbox_exporter`'s default `--timeout-offset`).
pub const PROBE_TIMEOUT_MARGIN: Duration = Duration::from_millis(500);

/// The limits of `GET /probe`: the `probe.max_timeout` config key, and the permits that enforce
/// `probe.max_concurrent_probes`. A reload builds new routes, and with them a new `ProbeEndpoint`, over the same
/// permits (the daemon resizes them in place).
#[derive(Debug)]
pub struct ProbeEndpoint {
    max_timeout: Duration,
    permits: Limiter,
    /// The profile `/probe` answers render (`metrics.profile`).
    profile: Profile,
}

impl ProbeEndpoint {
    /// The timeout cap of `config` and the shared `permits`; `deadline` is the probe deadline of the environment
    /// the prober uses, which caps `probe.max_timeout` and is the timeout cap when that is not set.
    #[must_use]
    pub fn new(config: &ProbeConfig, deadline: Duration, permits: Limiter) -> Self {
        Self {
            max_timeout: config.max_timeout.map_or(deadline, |t| t.min(deadline)),
            permits,
            profile: Profile::Full,
        }
    }

    /// The same endpoint, answering in `profile` (`metrics.profile`; full by default).
    #[must_use]
    pub fn with_profile(self, profile: Profile) -> Self {
        Self { profile, ..self }
    }

    /// The timeout cap in force (`probe.max_timeout`, at most the probe deadline).
    #[must_use]
    pub fn max_timeout(&self) -> Duration {
        self.max_timeout
    }
}

/// `probe.allowed_targets`: the server names that a probe run on request may probe, whether `GET /probe` or an
/// on-demand probe of the report API asks for it. Scheduled probes of the configured servers do not ask, and a
/// configured server's fresh report is served without a probe. The list belongs to one configuration: a reload
/// builds new routes, and with them a new list.
#[derive(Clone, Debug, Default)]
pub struct AllowedTargets(Vec<TargetPattern>);

impl AllowedTargets {
    /// The patterns of `probe.allowed_targets`; an empty list allows every name.
    #[must_use]
    pub fn new(patterns: &[TargetPattern]) -> Self {
        Self(patterns.to_vec())
    }

    /// Whether a probe run on request may probe `name`: it matches one pattern in full (port included), or the
    /// list is empty. The one check of `/probe` and the report API.
    #[must_use]
    pub fn allows(&self, name: &ServerName) -> bool {
        self.0.is_empty() || self.0.iter().any(|p| p.is_match(name.as_str()))
    }
}

/// How long `/probe` lets one probe run: the scrape timeout minus [`PROBE_TIMEOUT_MARGIN`] (but at least half
/// the scrape timeout, for scrape timeouts under a second), capped at `max`; `max` without a scrape timeout.
#[must_use]
pub fn probe_timeout(scrape_timeout: Option<Duration>, max: Duration) -> Duration {
    match scrape_timeout {
        Some(t) if !t.is_zero() => t.saturating_sub(PROBE_TIMEOUT_MARGIN).max(t / 2).min(max),
        _ => max,
    }
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("registry", &self.registry)
            .field("store", &self.store)
            .field("ready", &self.ready)
            .field("probe_deadline", &self.probe_deadline)
            .field("interval", &self.interval)
            .field("probe_unconfigured", &self.probe_unconfigured)
            .field("allowed_targets", &self.allowed_targets)
            .field("api_probes", &self.api_probes)
            .field("exporter", &self.exporter)
            .field("probe", &self.probe)
            .finish_non_exhaustive()
    }
}

/// The exporter's routes. Unknown paths answer 404.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(status_index))
        .route("/server/{name}", get(status_server))
        .route("/homeserver/{name}", get(status_homeserver))
        .route("/runbook", get(runbook))
        .route("/metrics", get(metrics_handler))
        .route("/probe", get(probe_handler))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        // Every method reaches these handlers: the tester answers OPTIONS with 200 and others with 405.
        .route("/api/report", any(api_report))
        .route("/api/federation-ok", any(api_federation_ok))
        .with_state(state)
}

/// `GET /?sort=worst|name|expiry`.
async fn status_index(State(state): State<Arc<AppState>>, RawQuery(query): RawQuery) -> Response {
    let sort = html::Sort::from_query(query.as_deref());
    let reports = state.store.snapshot();
    let configured = state.store.configured();
    let page = html::index_page(
        &reports,
        configured.iter().map(|name| &**name),
        sort,
        SystemTime::now(),
    );
    let page = html::with_homeservers(page, &state.store.homeservers.snapshot());
    html_page(StatusCode::OK, page)
}

/// `GET /server/{name}`: the whole report of one server; 404 for a name neither configured nor probed.
async fn status_server(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    let report = state.store.get(&name);
    if report.is_none() && !state.store.is_configured(&name) {
        return html_page(StatusCode::NOT_FOUND, html::not_found_page(&name));
    }
    html_page(
        StatusCode::OK,
        html::server_page_with_notaries(
            &name,
            report.as_deref(),
            &state.store.notaries(),
            SystemTime::now(),
        ),
    )
}

/// `GET /homeserver/{name}?verdict=`: a configured homeserver's destinations, Synapse's view beside ours; 404
/// for a name not configured.
async fn status_homeserver(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(view) = state.store.homeservers.get(&name) else {
        return html_page(StatusCode::NOT_FOUND, html::not_found_page(&name));
    };
    let filter = html::VerdictFilter::from_query(query.as_deref());
    let reports = state.store.snapshot();
    html_page(
        StatusCode::OK,
        html::homeserver_page(&view, &reports, filter, SystemTime::now()),
    )
}

/// `GET /runbook`: the alerts' runbook (docs/runbook.md, built in), where their `runbook_url` points by default.
async fn runbook() -> Response {
    html_page(StatusCode::OK, html::runbook_page())
}

/// An HTML page with the status page's headers: a `Content-Security-Policy` that lets it load nothing from
/// elsewhere and run no script.
fn html_page(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                HeaderName::from_static("content-security-policy"),
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; \
                 form-action 'none'; frame-ancestors 'none'",
            ),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn metrics_handler(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let format = Format::from_accept(headers.get(ACCEPT).and_then(|v| v.to_str().ok()));
    // Rendering 10,000 servers is CPU-bound work on tens of MB of text: keep it off the async workers that run
    // probes, and stream it in chunks as it is written, so the whole plain text never sits in memory.
    if scrape::accepts_gzip(&headers) {
        let (render, start) = state.scrapes.join(format);
        // Subscribed before the render starts, so that the render sees a reader.
        let chunks = render.clone().stream();
        if start {
            let writer = render.writer();
            drop(render);
            drop(tokio::task::spawn_blocking(move || {
                render_into(&state, format, writer, scrape::GzipWriter::finish);
            }));
        }
        return (
            [
                (CONTENT_TYPE, format.content_type()),
                (CONTENT_ENCODING, "gzip"),
            ],
            Body::from_stream(chunks),
        )
            .into_response();
    }
    let (writer, chunks) = streaming::channel();
    drop(tokio::task::spawn_blocking(move || {
        render_into(&state, format, writer, streaming::ChunkWriter::finish);
    }));
    (
        [(CONTENT_TYPE, format.content_type())],
        Body::from_stream(chunks),
    )
        .into_response()
}

/// Renders the registry into `writer` (on a blocking thread) and records how long it took; the next scrape
/// shows it, since this one's body is already on its way.
fn render_into<W: fmt::Write>(
    state: &AppState,
    format: Format,
    mut writer: W,
    finish: impl FnOnce(W) -> fmt::Result,
) {
    let started = Instant::now();
    let written =
        metrics::encode_into(&state.registry, format, &mut writer).and_then(|()| finish(writer));
    state.exporter.set_scrape_duration(started.elapsed());
    if written.is_err() {
        tracing::debug!("the /metrics client went away before the end of the answer");
    }
}

/// `GET /probe?target=NAME`: one fresh probe of NAME, rendered alone, with no exporter metrics and nothing
/// stored. 400 for a missing or invalid name (or scrape-timeout header), 403 for a name that
/// `probe.allowed_targets` does not allow, 503 when `probe.max_concurrent_probes` probes are already running.
/// A probe cut at its timeout still answers 200, with `probe_success` 0 and a `timeout` failure.
async fn probe_handler(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let format = Format::from_accept(headers.get(ACCEPT).and_then(|v| v.to_str().ok()));
    let name = match server_name_param(query.as_deref(), "target", "target") {
        Ok(name) => name,
        Err(message) => return text_error(StatusCode::BAD_REQUEST, &message),
    };
    let endpoint = &state.probe;
    if !state.allowed_targets.allows(&name) {
        return text_error(
            StatusCode::FORBIDDEN,
            &format!(
                "Target {name} is not allowed: it matches no pattern in probe.allowed_targets"
            ),
        );
    }
    let scrape_timeout = match headers.get(SCRAPE_TIMEOUT_HEADER) {
        None => None,
        Some(value) => match parse_seconds(value) {
            Some(timeout) => Some(timeout),
            None => {
                return text_error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "Invalid {SCRAPE_TIMEOUT_HEADER} header {value:?}: expected a number of seconds"
                    ),
                );
            }
        },
    };
    let timeout = probe_timeout(scrape_timeout, endpoint.max_timeout);
    let _permit = match endpoint.permits.try_acquire() {
        Ok(permit) => permit,
        Err(Full { cap }) => {
            tracing::debug!(server_name = %name, "/probe refused: too many probes in flight");
            return text_error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!(
                    "Too many /probe requests in flight (probe.max_concurrent_probes is {cap}); try again later"
                ),
            );
        }
    };
    tracing::debug!(server_name = %name, timeout = ?timeout, "probing for /probe");
    let report = run_within(&name, timeout, (state.prober)(name.clone()))
        .await
        .unwrap_or_else(|cut| {
            tracing::debug!(server_name = %name, "/probe cut at its timeout");
            cut
        });
    let body = metrics::encode_reports_profiled(&[Arc::new(report)], format, endpoint.profile);
    ([(CONTENT_TYPE, format.content_type())], body).into_response()
}

/// Sent by Prometheus with every scrape: the scrape timeout in seconds.
const SCRAPE_TIMEOUT_HEADER: &str = "x-prometheus-scrape-timeout-seconds";

/// A non-negative, finite number of seconds.
fn parse_seconds(value: &HeaderValue) -> Option<Duration> {
    let seconds: f64 = value.to_str().ok()?.trim().parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

async fn healthy() -> &'static str {
    "OK"
}

async fn ready(State(state): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    if *state.ready.borrow() {
        (StatusCode::OK, "OK")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: first probe round running",
        )
    }
}

/// `GET /api/report?server_name=NAME`: the tester's JSON report.
async fn api_report(
    State(state): State<Arc<AppState>>,
    method: Method,
    RawQuery(query): RawQuery,
) -> Response {
    with_cors(
        api(
            &state,
            &method,
            query.as_deref(),
            |report| {
                let notaries = state.store.notaries();
                // The homeservers whose admin API lists this server, with what Synapse says of it.
                let views = state.store.homeservers.snapshot();
                let listed_by: Vec<tester::ListedBy<'_>> = views
                    .iter()
                    .filter_map(|v| {
                        v.destination(report.server_name.as_str())
                            .map(|destination| tester::ListedBy {
                                homeserver: &v.name,
                                destination,
                            })
                    })
                    .collect();
                json_answer(
                    StatusCode::OK,
                    tester::tester_report_pretty_with_views(report, &listed_by, &notaries),
                )
            },
            // Every answer about a name is JSON in the tester's shape, so `res.json()` never throws.
            |refusal| {
                json_answer(
                    refusal.status,
                    tester::tester_error_pretty(&refusal.tester_text, &refusal.message),
                )
            },
        )
        .await,
    )
}

fn json_answer(status: StatusCode, body: String) -> Response {
    (status, [(CONTENT_TYPE, "application/json")], body).into_response()
}

/// `GET /api/federation-ok?server_name=NAME`: `GOOD` when the tester's `FederationOK` would be true, else `BAD`.
async fn api_federation_ok(
    State(state): State<Arc<AppState>>,
    method: Method,
    RawQuery(query): RawQuery,
) -> Response {
    let verdict = |ok: bool| {
        (
            [(CONTENT_TYPE, TEXT_PLAIN)],
            if ok { "GOOD" } else { "BAD" },
        )
    };
    with_cors(
        api(
            &state,
            &method,
            query.as_deref(),
            |report| verdict(report.success()).into_response(),
            // An invalid name does not federate (upstream: 200 and `BAD`); a refusal keeps its status.
            |refusal| match refusal.status {
                StatusCode::OK => verdict(false).into_response(),
                status => text_error(status, &refusal.message),
            },
        )
        .await,
    )
}

/// Why the API gives no report for a name: the status to answer with, upstream's text for it where upstream
/// has one (else ours), and our words.
struct Refusal {
    status: StatusCode,
    tester_text: String,
    message: String,
}

impl Refusal {
    fn ours(status: StatusCode, message: String) -> Self {
        Self {
            status,
            tester_text: message.clone(),
            message,
        }
    }
}

/// The tester's request handling, shared by both API routes: OPTIONS, 405, 400 for a missing name (as
/// upstream, plain text), then a report, or a refusal: an invalid name (200, as upstream), a name the
/// exporter will not probe (403) or a busy exporter (503).
async fn api(
    state: &AppState,
    method: &Method,
    query: Option<&str>,
    render: impl FnOnce(&ServerReport) -> Response,
    refuse: impl FnOnce(Refusal) -> Response,
) -> Response {
    if method == Method::OPTIONS {
        return StatusCode::OK.into_response();
    }
    if method != Method::GET {
        return text_error(StatusCode::METHOD_NOT_ALLOWED, "Unsupported method");
    }
    let raw = query_param(query, "server_name");
    if raw.is_empty() {
        return text_error(StatusCode::BAD_REQUEST, "Missing server_name parameter");
    }
    let name = match ServerName::parse(&raw) {
        Ok(name) => name,
        Err(e) => {
            return refuse(Refusal {
                status: StatusCode::OK,
                // gomatrixserverlib's text (matrix-federation-tester `Report`).
                tester_text: format!("Invalid server name '{raw}'"),
                message: format!("Invalid server name {raw:?}: {e}"),
            });
        }
    };
    match current_report(state, name).await {
        Ok(report) => render(&report),
        Err(refusal) => refuse(refusal),
    }
}

/// The value of query parameter `key`, "" when absent.
fn query_param(query: Option<&str>, key: &str) -> String {
    query
        .and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_default()
}

/// The server name in query parameter `key`, or the text of the 400 answer: "Missing KEY parameter" or
/// "Invalid WHAT "...": reason".
fn server_name_param(query: Option<&str>, key: &str, what: &str) -> Result<ServerName, String> {
    let raw = query_param(query, key);
    if raw.is_empty() {
        return Err(format!("Missing {key} parameter"));
    }
    ServerName::parse(&raw).map_err(|e| format!("Invalid {what} {raw:?}: {e}"))
}

/// The stored report of a configured server while it is fresh; otherwise a new probe (stored for configured
/// servers only). Unconfigured names are probed only when `api.probe_unconfigured` is on, and any name only when
/// `probe.allowed_targets` allows it (403 otherwise).
async fn current_report(state: &AppState, name: ServerName) -> Result<Arc<ServerReport>, Refusal> {
    let configured = state.store.is_configured(name.as_str());
    if configured {
        if let Some(stored) = state.store.get(name.as_str())
            && is_fresh(&stored, state.interval)
        {
            return Ok(stored);
        }
    } else if !state.probe_unconfigured {
        return Err(Refusal::ours(
            StatusCode::FORBIDDEN,
            format!(
                "{name} is not a configured server name, and probing unconfigured names is off \
                 (api.probe_unconfigured)"
            ),
        ));
    }
    if !state.allowed_targets.allows(&name) {
        return Err(Refusal::ours(
            StatusCode::FORBIDDEN,
            format!(
                "{name} has no fresh report, and probing it is not allowed: it matches no pattern in \
                 probe.allowed_targets"
            ),
        ));
    }
    let Ok(_permit) = state.api_probes.try_acquire() else {
        return Err(Refusal::ours(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many probes in flight".to_owned(),
        ));
    };
    tracing::debug!(server_name = %name, configured, "probing on demand for the API");
    let report = run_within(&name, state.probe_deadline, (state.prober)(name.clone()))
        .await
        .unwrap_or_else(|cut| cut);
    let report = Arc::new(report);
    if configured {
        // A scheduled probe may have finished meanwhile; keep whichever is newer.
        let newer_stored = state
            .store
            .get(&report.server_name)
            .is_some_and(|s| s.finished_at > report.finished_at);
        if !newer_stored {
            state.store.insert(ServerReport::clone(&report));
            // The stored one carries the server's recent history.
            if let Some(stored) = state.store.get(&report.server_name) {
                return Ok(stored);
            }
        }
    }
    Ok(report)
}

/// Younger than one probe interval (a report from the future counts as fresh).
fn is_fresh(report: &ServerReport, interval: Duration) -> bool {
    SystemTime::now()
        .duration_since(report.finished_at)
        .map_or(true, |age| age < interval)
}

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// A plain-text error as Go's `http.Error` writes it (the message and a newline, `nosniff`).
fn text_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [
            (CONTENT_TYPE, TEXT_PLAIN),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
        ],
        format!("{message}\n"),
    )
        .into_response()
}

/// The tester's unrestricted CORS headers, so browser apps (fed-tester-ui) can call the API.
fn with_cors(mut response: Response) -> Response {
    let headers = response.headers_mut();
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
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}
