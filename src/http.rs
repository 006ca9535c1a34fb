//! HTTP routes: `/metrics` (content-negotiated), a small HTML landing page, and the `/-/healthy` and `/-/ready`
//! lifecycle endpoints.
//!
//! Handlers only read shared state (the registry, the store, the readiness flag); they never probe and never
//! change configuration. Binding the listener and shutdown belong to the daemon.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::metrics::{self, Format};
use crate::store::Store;

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// Built once at startup by [`metrics::registry`].
    pub registry: Registry,
    /// The latest reports (the landing page lists them).
    pub store: Arc<Store>,
    /// Turns true once the first probe round has finished.
    pub ready: watch::Receiver<bool>,
}

/// The exporter's routes. Unknown paths answer 404.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics_handler))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
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
