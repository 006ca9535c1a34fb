//! Reading a homeserver's federation destinations from Synapse's admin API
//! (`GET /_synapse/admin/v1/federation/destinations`), page by page, within bounds: `max_destinations`, a cap on
//! pages, a size cap on every answer and the HTTP timeout on every request.
//!
//! The connection is our own (`probe::connect::open`): the certificate is judged against our roots like any
//! server's, and an invalid one ends the refresh before the token is sent. The token is read from its file on
//! every refresh, sent only in the `Authorization` header (marked sensitive) to the configured URL, and appears
//! in no error, log or `Debug` output. This module neither schedules refreshes nor keeps the list
//! (`serve/homeservers.rs` and `schedule/homeservers.rs` do).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use serde::Deserialize;

use crate::config::homeservers::{SynapseAdmin, read_token};
use crate::config::server_name::ServerName;
use crate::probe::connect::http_client::{GetError, HttpConn};
use crate::probe::env::ProbeEnv;
use crate::report::homeserver::Destination;

/// The admin API's path, under the client-server base URL.
const DESTINATIONS_PATH: &str = "/_synapse/admin/v1/federation/destinations";
/// Destinations asked for per page.
pub const PAGE_SIZE: usize = 500;
/// Most bytes of one page's answer. A page of [`PAGE_SIZE`] destinations with 255-byte names and every field
/// is under 200 KiB; five times that leaves room for fields Synapse may add.
pub const MAX_PAGE_BYTES: usize = 1024 * 1024;
/// Invalid destinations named in the log per refresh (the rest are counted).
const MAX_LOGGED_INVALID: usize = 10;

/// A complete destination list.
#[derive(Debug, Default)]
pub struct Fetched {
    /// Sorted by name, without duplicates, without the skipped ones.
    pub destinations: Vec<Destination>,
    /// Destinations the API listed (up to `max_destinations`).
    pub listed: usize,
    /// Left out: failing for longer than `skip_failing_longer_than`.
    pub skipped_failing: usize,
    /// Left out: not a valid server name.
    pub skipped_invalid: usize,
    /// The API listed more than `max_destinations`; the list stops there.
    pub truncated: bool,
    /// Pages read.
    pub pages: usize,
    /// How long the refresh took.
    pub duration: Duration,
}

/// Why a refresh got no complete list. A closed set; the text never holds the token.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("access token: {0}")]
    Token(String),
    #[error("cannot resolve {host}: {why}")]
    Resolve { host: String, why: String },
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("the certificate of {host} is not valid: {why}")]
    Certificate { host: String, why: String },
    #[error("the admin API refused the token (HTTP {0}); is it a server admin's access token?")]
    Refused(u16),
    #[error("page {page}: the admin API answered HTTP {status}")]
    Status { page: usize, status: u16 },
    #[error("page {page}: {source}")]
    Get { page: usize, source: GetError },
    #[error("page {page}: not a destinations answer: {why}")]
    Invalid { page: usize, why: String },
    #[error("still a next_token after {0} pages")]
    TooManyPages(usize),
}

/// Reads every destination `admin` lists, as of `now` (for `skip_failing_longer_than`).
pub async fn fetch(
    env: &ProbeEnv,
    admin: &SynapseAdmin,
    now: SystemTime,
) -> Result<Fetched, AdminError> {
    let started = std::time::Instant::now();
    let token = read_token(&admin.access_token_file).map_err(AdminError::Token)?;
    let mut authorization = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| AdminError::Token("cannot go in a header".to_owned()))?;
    authorization.set_sensitive(true);
    drop(token);
    let mut conn = connect(env, &admin.url).await?;
    let host_header = host_header(&admin.url);
    let base = format!(
        "{}{DESTINATIONS_PATH}",
        admin.url.path().trim_end_matches('/')
    );
    let now_ms = i64::try_from(
        now.duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX);
    let skip_ms = i64::try_from(admin.skip_failing_longer_than.as_millis()).unwrap_or(i64::MAX);
    let mut list = List {
        out: Fetched::default(),
        max: admin.max_destinations,
        failing_since_before: now_ms.saturating_sub(skip_ms),
    };
    let max_pages = admin.max_destinations.div_ceil(PAGE_SIZE) + 1;
    let mut from = String::from("0");
    loop {
        let page = list.out.pages + 1;
        if page > max_pages {
            return Err(AdminError::TooManyPages(max_pages));
        }
        let target = format!(
            "{base}?from={}&limit={PAGE_SIZE}",
            url::form_urlencoded::byte_serialize(from.as_bytes()).collect::<String>()
        );
        let response = conn
            .get_authorized(
                &target,
                &host_header,
                &authorization,
                MAX_PAGE_BYTES,
                env.timeouts.http,
            )
            .await
            .map_err(|source| AdminError::Get { page, source })?;
        match response.status {
            200 => {}
            401 | 403 => return Err(AdminError::Refused(response.status)),
            status => return Err(AdminError::Status { page, status }),
        }
        let parsed: Page =
            serde_json::from_slice(&response.body).map_err(|e| AdminError::Invalid {
                page,
                why: e.to_string(),
            })?;
        drop(response);
        list.out.pages = page;
        let next = parsed.next_token.as_ref().and_then(token_text);
        list.add(parsed.destinations);
        match next {
            Some(token) if !list.out.truncated => from = token,
            _ => break,
        }
    }
    let mut out = list.out;
    out.destinations
        .sort_by(|a, b| a.server_name.cmp(&b.server_name));
    out.destinations
        .dedup_by(|a, b| a.server_name == b.server_name);
    out.destinations.shrink_to_fit();
    out.duration = started.elapsed();
    Ok(out)
}

/// One page of the answer. Unknown fields are ignored (Synapse adds some over time).
#[derive(Deserialize)]
struct Page {
    destinations: Vec<RawDestination>,
    /// A string in Synapse; a number is accepted too.
    next_token: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawDestination {
    destination: String,
    retry_last_ts: Option<i64>,
    retry_interval: Option<i64>,
    failure_ts: Option<i64>,
}

/// The list being read.
struct List {
    out: Fetched,
    max: usize,
    /// Destinations whose `failure_ts` is before this (Unix ms) are skipped.
    failing_since_before: i64,
}

impl List {
    fn add(&mut self, page: Vec<RawDestination>) {
        for raw in page {
            if self.out.listed == self.max {
                self.out.truncated = true;
                return;
            }
            self.out.listed += 1;
            let name = match ServerName::parse(&raw.destination) {
                Ok(name) => name,
                Err(e) => {
                    self.out.skipped_invalid += 1;
                    if self.out.skipped_invalid <= MAX_LOGGED_INVALID {
                        tracing::info!(destination = %raw.destination.escape_debug(), "skipping a destination that is not a valid server name: {e}");
                    }
                    continue;
                }
            };
            if raw
                .failure_ts
                .is_some_and(|t| t < self.failing_since_before)
            {
                self.out.skipped_failing += 1;
                continue;
            }
            self.out.destinations.push(Destination {
                server_name: name.shared_str(),
                retry_last_ts: raw.retry_last_ts.unwrap_or(0),
                retry_interval: raw.retry_interval.unwrap_or(0),
                failure_ts: raw.failure_ts,
            });
        }
    }
}

fn token_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The URL's host as a TLS name or a DNS name (an IPv6 literal without brackets).
fn bare_host(url: &url::Url) -> String {
    match url.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(host) => host.to_string(),
        None => String::new(),
    }
}

/// `host[:port]` as the URL writes it (the port only when it is not the scheme's default).
fn host_header(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// An HTTP/1.1 connection to the URL's host: TLS judged against our roots for `https`, plain TCP for a loopback
/// `http` URL (the config allows no other).
async fn connect(env: &ProbeEnv, url: &url::Url) -> Result<HttpConn, AdminError> {
    let host = bare_host(url);
    let port = url.port_or_known_default().unwrap_or(443);
    let ips: Vec<IpAddr> = if let Ok(ip) = host.parse::<IpAddr>() {
        vec![ip]
    } else if host.eq_ignore_ascii_case("localhost") {
        // The resolver asks DNS only (no /etc/hosts); `localhost` is loopback by definition (RFC 6761).
        vec![
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ]
    } else {
        let found = env.dns.host(&host).await;
        if found.ips.is_empty() {
            let why = found
                .failures
                .first()
                .map_or_else(|| "no A or AAAA record".to_owned(), |f| format!("{f:?}"));
            return Err(AdminError::Resolve { host, why });
        }
        found.ips
    };
    let addresses: Vec<SocketAddr> = ips
        .into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect();
    if url.scheme() == "http" {
        let tcp = connect_plain(&addresses, env.timeouts.connect).await?;
        return HttpConn::handshake(tcp, env.timeouts.http)
            .await
            .map_err(|e| AdminError::Connect(e.to_string()));
    }
    let opened = crate::probe::connect::open(env, addresses, &host).await;
    let judged = opened
        .result
        .map_err(|e| AdminError::Connect(e.into_failure().message))?;
    if !judged.certificate.valid() {
        let why = judged
            .certificate
            .failures
            .iter()
            .map(|f| f.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(AdminError::Certificate { host, why });
    }
    HttpConn::handshake(judged.stream, env.timeouts.http)
        .await
        .map_err(|e| AdminError::Connect(e.to_string()))
}

async fn connect_plain(
    addresses: &[SocketAddr],
    timeout: Duration,
) -> Result<tokio::net::TcpStream, AdminError> {
    let mut last = String::from("no address");
    for &address in addresses {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await {
            Ok(Ok(tcp)) => return Ok(tcp),
            Ok(Err(e)) => last = format!("TCP connect to {address}: {e}"),
            Err(_) => {
                last = format!(
                    "TCP connect to {address} did not finish within {}",
                    humantime::format_duration(timeout)
                );
            }
        }
    }
    Err(AdminError::Connect(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(name: &str, failure_ts: Option<i64>) -> RawDestination {
        RawDestination {
            destination: name.to_owned(),
            retry_last_ts: Some(5),
            retry_interval: None,
            failure_ts,
        }
    }

    #[test]
    fn a_page_is_bounded_skips_invalid_and_long_failing() {
        let mut list = List {
            out: Fetched::default(),
            max: 3,
            failing_since_before: 1_000,
        };
        list.add(vec![
            raw("ok.example", None),
            raw("not a name", None),
            raw("old.example", Some(999)),
            raw("recent.example", Some(1_000)),
        ]);
        assert_eq!(list.out.listed, 3);
        assert!(list.out.truncated);
        assert_eq!((list.out.skipped_invalid, list.out.skipped_failing), (1, 1));
        let names: Vec<&str> = list
            .out
            .destinations
            .iter()
            .map(|d| &*d.server_name)
            .collect();
        assert_eq!(names, ["ok.example"]);
        assert_eq!(list.out.destinations[0].retry_last_ts, 5);
    }

    #[test]
    fn host_header_and_tls_name() {
        let u = url::Url::parse("https://[::1]:8448/base/").unwrap();
        assert_eq!(
            (bare_host(&u), host_header(&u)),
            ("::1".to_owned(), "[::1]:8448".to_owned())
        );
        let u = url::Url::parse("https://matrix.example.org").unwrap();
        assert_eq!(host_header(&u), "matrix.example.org");
    }
}
