//! HTTP routes: `/metrics` (content-negotiated), a small HTML landing page, the `/-/healthy` and `/-/ready`
//! lifecycle endpoints, and the federation tester's API (`/api/report`, `/api/federation-ok`).
//!
//! Most handlers only read shared state (the registry, the store, the readiness flag). The API handlers may
//! also run one probe through [`AppState::prober`] when the stored report is stale or absent; at most
//! [`MAX_API_PROBES`] of those run at once. Binding the listener and shutdown belong to the daemon.

use std::collections::HashSet;
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use futures_util::future::BoxFuture;
use prometheus_client::registry::Registry;
use tokio::sync::{Semaphore, watch};

use crate::metrics::{self, Format};
use crate::report::ServerReport;
use crate::server_name::ServerName;
use crate::store::Store;
use crate::tester;

/// Runs one probe of one server name (the daemon's is `probe_server` under the probe deadline).
pub type Prober = Arc<dyn Fn(ServerName) -> BoxFuture<'static, ServerReport> + Send + Sync>;

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
    /// Probes one server now (the API, when the stored report is stale or the name is not configured).
    pub prober: Prober,
    /// The configured server names, exactly as written.
    pub servers: Arc<HashSet<String>>,
    /// The probe interval: a stored report younger than this is fresh.
    pub interval: Duration,
    /// Whether the API may probe a name that is not configured (`api.probe_unconfigured`).
    pub probe_unconfigured: bool,
    /// Permits for on-demand API probes ([`MAX_API_PROBES`] in production).
    pub api_probes: Semaphore,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("registry", &self.registry)
            .field("store", &self.store)
            .field("ready", &self.ready)
            .field("servers", &self.servers)
            .field("interval", &self.interval)
            .field("probe_unconfigured", &self.probe_unconfigured)
            .field("api_probes", &self.api_probes)
            .finish_non_exhaustive()
    }
}

/// The exporter's routes. Unknown paths answer 404.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics_handler))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        // Every method reaches these handlers: the tester answers OPTIONS with 200 and others with 405.
        .route("/api/report", any(api_report))
        .route("/api/federation-ok", any(api_federation_ok))
        .with_state(state)
}

async fn metrics_handler(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let format = Format::from_accept(headers.get(ACCEPT).and_then(|v| v.to_str().ok()));
    // Rendering 10,000 servers takes a CPU-bound ~0.2 s; keep it off the async workers that run probes.
    match tokio::task::spawn_blocking(move || metrics::encode(&state.registry, format)).await {
        Ok(body) => ([(CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(err) => {
            tracing::error!("rendering /metrics failed: {err}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
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

async fn index(State(state): State<Arc<AppState>>) -> Html<String> {
    Html(landing_page(&state.store))
}

/// `GET /api/report?server_name=NAME`: the tester's JSON report.
async fn api_report(
    State(state): State<Arc<AppState>>,
    method: Method,
    RawQuery(query): RawQuery,
) -> Response {
    with_cors(
        api(&state, &method, query.as_deref(), |report| {
            (
                [(CONTENT_TYPE, "application/json")],
                tester::tester_report_pretty(report),
            )
                .into_response()
        })
        .await,
    )
}

/// `GET /api/federation-ok?server_name=NAME`: `GOOD` when the tester's `FederationOK` would be true, else `BAD`.
async fn api_federation_ok(
    State(state): State<Arc<AppState>>,
    method: Method,
    RawQuery(query): RawQuery,
) -> Response {
    with_cors(
        api(&state, &method, query.as_deref(), |report| {
            let verdict = if report.success() { "GOOD" } else { "BAD" };
            ([(CONTENT_TYPE, TEXT_PLAIN)], verdict).into_response()
        })
        .await,
    )
}

/// The tester's request handling, shared by both API routes: OPTIONS, 405, 400, then a report.
async fn api(
    state: &AppState,
    method: &Method,
    query: Option<&str>,
    render: impl FnOnce(&ServerReport) -> Response,
) -> Response {
    if method == Method::OPTIONS {
        return StatusCode::OK.into_response();
    }
    if method != Method::GET {
        return text_error(StatusCode::METHOD_NOT_ALLOWED, "Unsupported method");
    }
    let raw = query
        .and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "server_name")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_default();
    if raw.is_empty() {
        return text_error(StatusCode::BAD_REQUEST, "Missing server_name parameter");
    }
    let name = match ServerName::parse(&raw) {
        Ok(name) => name,
        Err(e) => {
            return text_error(
                StatusCode::BAD_REQUEST,
                &format!("Invalid server name {raw:?}: {e}"),
            );
        }
    };
    match current_report(state, name).await {
        Ok(report) => render(&report),
        Err(response) => response,
    }
}

/// The stored report of a configured server while it is fresh; otherwise a new probe (stored for configured
/// servers only). Unconfigured names are probed only when `api.probe_unconfigured` is on.
async fn current_report(state: &AppState, name: ServerName) -> Result<Arc<ServerReport>, Response> {
    let configured = state.servers.contains(name.as_str());
    if configured {
        if let Some(stored) = state.store.get(name.as_str())
            && is_fresh(&stored, state.interval)
        {
            return Ok(stored);
        }
    } else if !state.probe_unconfigured {
        return Err(text_error(
            StatusCode::FORBIDDEN,
            &format!(
                "{name} is not a configured server name, and probing unconfigured names is off \
                 (api.probe_unconfigured)"
            ),
        ));
    }
    let Ok(_permit) = state.api_probes.try_acquire() else {
        return Err(text_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many probes in flight",
        ));
    };
    tracing::debug!(server_name = %name, configured, "probing on demand for the API");
    let report = Arc::new((state.prober)(name).await);
    if configured {
        // A scheduled probe may have finished meanwhile; keep whichever is newer.
        let newer_stored = state
            .store
            .get(&report.server_name)
            .is_some_and(|s| s.finished_at > report.finished_at);
        if !newer_stored {
            state.store.insert(ServerReport::clone(&report));
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

// ---- helpers ----

fn landing_page(store: &Store) -> String {
    let reports = store.snapshot();
    let mut page = String::with_capacity(1024 + 128 * reports.len());
    page.push_str(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">",
        "<title>Matrix Federation Exporter</title></head>\n<body>\n<h1>Matrix Federation Exporter</h1>\n",
        "<p><a href=\"/metrics\">Metrics</a></p>\n",
    ));
    if reports.is_empty() {
        page.push_str("<p>No probe has finished yet.</p>\n");
    } else {
        page.push_str("<table>\n<tr><th>server</th><th>status</th><th>failures</th></tr>\n");
        for r in &reports {
            let status = if r.success() { "ok" } else { "failing" };
            page.push_str("<tr><td>");
            push_escaped(&mut page, &r.server_name);
            // Stage and reason are closed label values: no escaping needed.
            let _ = write!(page, "</td><td>{status}</td><td>");
            for (i, (_, f)) in r.all_failures().enumerate() {
                let sep = if i == 0 { "" } else { ", " };
                let _ = write!(page, "{sep}{}/{}", f.stage.as_str(), f.reason.as_str());
            }
            page.push_str("</td></tr>\n");
        }
        page.push_str("</table>\n");
    }
    page.push_str("</body>\n</html>\n");
    page
}

fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        let mut out = String::new();
        push_escaped(&mut out, "<a href='x'>&\"</a>");
        assert_eq!(out, "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;");
    }

    #[test]
    fn empty_store_page() {
        let page = landing_page(&Store::new());
        assert!(page.contains("<a href=\"/metrics\">"));
        assert!(page.contains("No probe has finished yet."));
    }
}
