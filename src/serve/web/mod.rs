//! `--web.config.file`: TLS and HTTP basic auth for the listener, in the Prometheus exporter-toolkit format, so
//! the file written for a Go exporter works here too.
//!
//! Supported keys (see the README, "Securing the listener"):
//!
//! - `tls_server_config`: `cert_file` + `key_file` (or inline `cert` + `key`), `client_auth_type`
//!   (`NoClientCert`, `VerifyClientCertIfGiven`, `RequireAndVerifyClientCert`) with `client_ca_file` (or inline
//!   `client_ca`), `min_version` / `max_version` (`TLS12`, `TLS13`) and `prefer_server_cipher_suites`.
//!   `cipher_suites`, `curve_preferences`, `client_allowed_sans` and the client auth types that skip verification
//!   are refused with an error naming the key.
//! - `basic_auth_users`: user name → bcrypt hash.
//! - `http_server_config`: `headers` (the exporter-toolkit set) and `http2` (accepted; we serve HTTP/1.1 only,
//!   which every client falls back to through ALPN).
//! - `rate_limit`: `interval` and `burst`, a token bucket over all requests (429 when empty).
//!
//! The file is validated once at startup: every error is one line naming the file, the key and the reason, and
//! the process exits 2. A file that enables neither TLS nor basic auth is refused: the flag must never quietly
//! leave the listener as open as it was without it. Certificate and key files are re-read when they change
//! (checked at most once a second, on a new connection), so certificate rotation needs no restart; a broken
//! new pair is logged and the previous one stays in use.
//!
//! This file owns the file as a whole (reading it, its YAML shape, what it must enable), [`WebConfig`], and the
//! order of the checks in front of every route. TLS is in `tls.rs`, basic auth in `auth.rs` (with its bcrypt pool
//! in `auth_pool.rs`), the rate limit and extra headers in `limits.rs`. It does not accept connections
//! (`serve/listener.rs` does).

mod auth;
mod auth_pool;
mod limits;
mod tls;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use serde::{Deserialize, Deserializer};

use crate::config::error::{ConfigError, Place};
use crate::serve::web::auth::BasicAuth;
pub use crate::serve::web::auth::{AUTH_CACHE_SIZE, BCRYPT_QUEUE, BCRYPT_WORKERS};
use crate::serve::web::limits::RateLimiter;

/// A validated web config: what the listener needs, built once at startup.
#[derive(Clone)]
pub struct WebConfig {
    tls: Option<Arc<rustls::ServerConfig>>,
    guard: Arc<Guard>,
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("basic_auth_users", &self.basic_auth_users())
            .field("headers", &self.guard.headers.len())
            .field("rate_limit", &self.guard.rate_limit.is_some())
            .finish()
    }
}

impl WebConfig {
    /// Reads and validates a web config file: parses it, loads and matches the certificate and key, checks every
    /// bcrypt hash. Relative paths are resolved against the file's directory (as exporter-toolkit does).
    pub fn load(path: &Path) -> Result<WebConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::cannot_read(&e).in_file(path))?;
        let base = path.parent().unwrap_or(Path::new(""));
        parse(&text, base).map_err(|e| e.in_file(path))
    }

    /// Parses and validates YAML text; relative paths are resolved against `base`.
    pub fn from_yaml(text: &str, base: &Path) -> Result<WebConfig, ConfigError> {
        parse(text, base)
    }

    /// Whether the listener speaks TLS.
    #[must_use]
    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    /// The rustls server config, when TLS is configured.
    #[must_use]
    pub fn tls_server_config(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.tls.clone()
    }

    /// How many users may log in with basic auth (0: basic auth is off).
    #[must_use]
    pub fn basic_auth_users(&self) -> usize {
        self.guard.auth.as_ref().map_or(0, BasicAuth::users)
    }

    /// Logs what the config turns on (and warns when passwords would cross the network in clear text).
    pub fn log_in_force(&self) {
        let users = self.basic_auth_users();
        tracing::info!(
            tls = self.tls_enabled(),
            basic_auth_users = users,
            "web config in force"
        );
        if users > 0 && !self.tls_enabled() {
            tracing::warn!(
                "basic auth without tls_server_config: passwords cross the network in clear text"
            );
        }
    }

    /// `router` behind the rate limit, basic auth and extra headers of this config, for every route and the
    /// fallback alike.
    pub fn protect(&self, router: Router) -> Router {
        router.layer(middleware::from_fn_with_state(self.guard.clone(), guard))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The file: its YAML shape and what it must enable

/// The web config file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    /// Present but empty is refused rather than read as "no TLS".
    #[serde(default, deserialize_with = "section")]
    tls_server_config: Section<tls::RawTls>,
    #[serde(default)]
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
    #[serde(default)]
    rate_limit: Option<limits::RawRateLimit>,
}

/// `http_server_config` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// A mapping key that may be absent, present with an empty (null) value, or set.
#[derive(Debug, Default)]
enum Section<T> {
    #[default]
    Absent,
    Empty,
    Set(T),
}

fn section<'de, D, T>(d: D) -> Result<Section<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(match Option::<T>::deserialize(d)? {
        None => Section::Empty,
        Some(value) => Section::Set(value),
    })
}

/// `None` for a missing or empty string (exporter-toolkit treats `""` as unset).
fn set(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

fn parse(text: &str, base: &Path) -> Result<WebConfig, ConfigError> {
    let is_blank = text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    });
    let raw: RawWebConfig = if is_blank {
        RawWebConfig::default()
    } else {
        serde_saphyr::from_str(text).map_err(|e| ConfigError::yaml(&e))?
    };

    let tls = match raw.tls_server_config {
        Section::Absent => None,
        Section::Empty => {
            return Err(ConfigError::at(
                "tls_server_config",
                "is empty; set cert_file and key_file, or remove the key",
            ));
        }
        Section::Set(tls) => Some(tls::server_config(tls, base)?),
    };

    let users = raw.basic_auth_users.unwrap_or_default();
    let auth = if users.is_empty() {
        None
    } else {
        Some(BasicAuth::new(users)?)
    };

    if tls.is_none() && auth.is_none() {
        return Err(ConfigError::new(
            Place::None,
            "enables neither tls_server_config nor basic_auth_users; the listener would be as open as without \
             --web.config.file (drop the flag to serve plain HTTP)",
        ));
    }

    let http = raw.http_server_config.unwrap_or_default();
    // `http2` is accepted either way: we serve HTTP/1.1 only and advertise it with ALPN, so an HTTP/2-capable
    // client (Prometheus included) simply falls back, as it does for a Go exporter with `http2: false`.
    let _ = http.http2;
    let headers = limits::extra_headers(http.headers.unwrap_or_default())?;

    let rate_limit = match raw.rate_limit {
        None => None,
        Some(r) => RateLimiter::from_raw(r)?,
    };

    Ok(WebConfig {
        tls,
        guard: Arc::new(Guard {
            auth,
            headers,
            rate_limit,
        }),
    })
}

// ---------------------------------------------------------------------------------------------------------------
// In front of every route

/// What runs in front of every route.
struct Guard {
    auth: Option<BasicAuth>,
    headers: Vec<(HeaderName, HeaderValue)>,
    rate_limit: Option<RateLimiter>,
}

/// The rate limit first (a refused request costs no bcrypt run and gets no extra headers), then basic auth, then
/// the extra headers on every other answer, the route's and auth's refusals alike.
async fn guard(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    if let Some(limiter) = &guard.rate_limit
        && !limiter.allow()
    {
        return (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n").into_response();
    }
    let refusal = match &guard.auth {
        Some(auth) => auth.refusal(request.headers().get(AUTHORIZATION)).await,
        None => None,
    };
    let mut response = match refusal {
        Some(response) => response,
        None => next.run(request).await,
    };
    for (name, value) in &guard.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
    use base64::Engine as _;

    use crate::serve::web::auth_pool::{AuthPool, Stats};

    fn test_app() -> Router {
        Router::new().route(
            "/metrics",
            axum::routing::get(|| async { "some_metric 1\n" }),
        )
    }

    fn basic(user: &str, password: &str) -> String {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {token}")
    }

    fn pool(web: &WebConfig) -> &AuthPool {
        web.guard.auth.as_ref().unwrap().pool()
    }

    /// Status, headers and body of `GET /metrics` with `authorization`.
    async fn get(
        router: Router,
        authorization: String,
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        use tower::ServiceExt as _;
        let request = Request::get("/metrics")
            .header(AUTHORIZATION, authorization)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, 1024).await.unwrap();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    /// The rate limit runs before basic auth: past the burst, a flood of wrong passwords (known and unknown users)
    /// gets 429 and costs no bcrypt run.
    #[tokio::test]
    async fn the_rate_limit_refuses_before_bcrypt_runs() {
        let web = WebConfig::from_yaml(
            &format!(
                "basic_auth_users:\n  alice: '{}'\nrate_limit:\n  interval: 1h\n  burst: 3\n",
                bcrypt::hash("pw", 4).unwrap()
            ),
            Path::new(""),
        )
        .unwrap();
        let router = web.protect(test_app());
        let mut statuses = Vec::new();
        for i in 0..20 {
            let user = if i % 2 == 0 { "alice" } else { "mallory" };
            let (status, _, _) = get(router.clone(), basic(user, &format!("wrong{i}"))).await;
            statuses.push(status.as_u16());
        }
        assert_eq!(statuses[..3], [401; 3]);
        assert_eq!(statuses[3..], [429; 17]);
        // Only the three let through ran bcrypt, and the pool refused none: the 429s are the rate limit's.
        assert_eq!(
            pool(&web).stats(),
            Stats {
                started: 3,
                refused: 0
            }
        );
    }

    /// With every worker busy and the queue full, a wrong password and an unknown user are refused alike (429,
    /// `Retry-After: 1`, the configured headers, no bcrypt run): the answer under load reveals no user names.
    #[tokio::test]
    async fn under_load_unknown_users_and_wrong_passwords_are_refused_alike() {
        let web = WebConfig::from_yaml(
            &format!(
                "basic_auth_users:\n  alice: '{}'\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n",
                bcrypt::hash("pw", 4).unwrap()
            ),
            Path::new(""),
        )
        .unwrap();
        let router = web.protect(test_app());
        let busy: Vec<_> = (0..BCRYPT_WORKERS).map(|_| pool(&web).occupy()).collect();
        let attempts = [basic("alice", "wrong"), basic("mallory", "pw")]
            .map(|authorization| tokio::spawn(get(router.clone(), authorization)));
        for _ in 0..1000 {
            if pool(&web).waiting() == attempts.len() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(pool(&web).waiting(), attempts.len(), "both attempts queued");
        // Newer attempts fill the queue and push both out.
        let newer: Vec<_> = (0..BCRYPT_QUEUE).map(|_| pool(&web).occupy()).collect();

        let mut answers = Vec::new();
        for attempt in attempts {
            answers.push(attempt.await.unwrap());
        }
        let (status, headers, body) = &answers[0];
        assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[RETRY_AFTER], "1");
        assert_eq!(headers["x-frame-options"], "deny");
        assert!(!headers.contains_key(WWW_AUTHENTICATE));
        assert_eq!(body, "Too Many Requests\n");
        assert_eq!(
            answers[0], answers[1],
            "the unknown user's answer is the same"
        );
        assert_eq!(
            pool(&web).stats(),
            Stats {
                started: 0,
                refused: 2
            }
        );
        drop((busy, newer));
    }
}
