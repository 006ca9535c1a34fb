//! One HTTPS `GET` the way the spec's well-known fetches ask for it: resolve the URL's host, keep to the
//! addresses default-configured peers reach, connect with the usual certificate validation, follow redirects
//! without looping, and read a bounded body. The server well-known (`well_known.rs`), the client well-known and
//! the support well-known all go through here, so they follow the same rules.
//!
//! Spec v1.19, "Resolving server names", step 3: "30x redirects should be followed, however redirection loops
//! should be avoided." Client-server API, "Server Discovery" (v1.20): clients follow 30x redirects the same way.
//!
//! A caller may keep the connection of the first hop ([`Kept`]) for a later `GET` to the same origin: the
//! client and support well-knowns live on the server name's port 443, like the server well-known, so they can
//! ride the connection the server well-known opened instead of paying for another handshake.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use url::Url;

use crate::probe::connect::http_client::{GetError, HttpConn, Response};
use crate::probe::connect::{self, OpenError};
use crate::probe::discovery::dns::Known;
use crate::probe::env::ProbeEnv;
use crate::report::{Hops, Reason};

/// Redirects followed before giving up (a loop is detected earlier).
pub const MAX_REDIRECTS: usize = 10;

/// The final answer, and the URL that gave it.
pub struct Fetched {
    pub url: Url,
    pub response: Response,
}

/// Why a fetch gave no final answer. A final answer with any status (404, 500) is not an error here.
#[derive(Debug)]
pub struct FetchError {
    pub kind: FetchErrorKind,
    /// The closed reason when the TLS handshake or the certificate failed (`cert_expired`, ...), else `None`.
    pub tls_reason: Option<Reason>,
    /// Words for humans (logs, reports); never a label.
    pub message: String,
    /// True when no request went out (the origin refused the connection moments ago, see [`Kept::refused`]):
    /// such a URL is not a hop, since nothing was fetched.
    pub not_sent: bool,
}

/// The closed kinds of [`FetchError`]; each caller maps them onto its own closed outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchErrorKind {
    /// The URL could not be formed, or its host did not resolve.
    DnsError,
    /// Every address of the host is in a range default-configured peers refuse.
    AddressNotPublic,
    ConnectionFailed,
    /// The TLS handshake failed, or the certificate is not valid for the host.
    TlsError,
    Timeout,
    TooLarge,
    /// A protocol error, a redirect without a usable `Location`, or a redirect away from HTTPS.
    HttpError,
    RedirectLoop,
}

impl FetchError {
    fn new(kind: FetchErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            tls_reason: None,
            message: message.into(),
            not_sent: false,
        }
    }

    fn tls(reason: Reason, message: String) -> Self {
        Self {
            kind: FetchErrorKind::TlsError,
            tls_reason: Some(reason),
            message,
            not_sent: false,
        }
    }
}

/// An open HTTP/1.1 connection to one origin (`https://host:port`), its certificate judged valid for `host`.
pub struct Kept {
    host: String,
    port: u16,
    conn: KeptConn,
    /// The address connected to and the leaf it served (for `local_certificates`).
    served: Option<(SocketAddr, std::sync::Arc<crate::report::CertFacts>)>,
}

/// The open connection, or why every address of the origin refused one moments ago (see [`Kept::refused`]).
enum KeptConn {
    Open(HttpConn),
    Refused(String),
}

impl Kept {
    /// An origin whose every address refused the connection (or let it time out) within this probe: a later
    /// fetch from it fails at once with the same words instead of connecting again. A peer's or a client's
    /// retry moments later would meet the same refusal; the probe saves the connects (and, for a silent
    /// origin, the connect timeouts).
    #[must_use]
    pub fn refused(host: &str, port: u16, why: String) -> Self {
        Self {
            host: host.to_owned(),
            port,
            conn: KeptConn::Refused(why),
            served: None,
        }
    }

    /// The host the certificate was judged for, the address connected to, and the leaf it served.
    #[must_use]
    pub fn served(&self) -> Option<(&str, SocketAddr, &std::sync::Arc<crate::report::CertFacts>)> {
        self.served
            .as_ref()
            .map(|(address, leaf)| (self.host.as_str(), *address, leaf))
    }
}

/// `GET url`, following redirects, reading at most `max_body` bytes. `hops` receives every URL asked and its
/// status (0: no answer). When `kept` holds a connection to a hop's origin, that hop goes over it; when `kept` is
/// empty, the first hop's connection is left in it for the caller's next fetch. The caller sets the overall
/// timeout; each request also runs under `timeouts.http`.
pub async fn get_following(
    env: &ProbeEnv,
    url: Url,
    max_body: usize,
    known: &mut Known,
    hops: &mut Hops,
    kept: &mut Option<Kept>,
) -> Result<Fetched, FetchError> {
    get_following_via(env, url, None, max_body, known, hops, kept).await
}

/// [`get_following`] with the first hop's connection pinned to `first_hop` (SNI and `Host` stay the URL's
/// host): the well-known as that one address serves it. Redirect hops resolve their hosts as usual.
pub async fn get_following_via(
    env: &ProbeEnv,
    mut url: Url,
    first_hop: Option<IpAddr>,
    max_body: usize,
    known: &mut Known,
    hops: &mut Hops,
    kept: &mut Option<Kept>,
) -> Result<Fetched, FetchError> {
    let mut seen = HashSet::new();
    let mut pin = first_hop;
    loop {
        if !seen.insert(url.to_string()) {
            return Err(FetchError::new(
                FetchErrorKind::RedirectLoop,
                format!("redirect loop back to {url}"),
            ));
        }
        if seen.len() > MAX_REDIRECTS + 1 {
            return Err(FetchError::new(
                FetchErrorKind::RedirectLoop,
                format!("more than {MAX_REDIRECTS} redirects"),
            ));
        }
        let response = get_once(env, &url, pin.take(), max_body, known, kept)
            .await
            .inspect_err(|e| {
                if !e.not_sent {
                    hops.push(url.as_str(), 0);
                }
            })?;
        hops.push(url.as_str(), response.status);
        if !matches!(response.status, 301 | 302 | 303 | 307 | 308) {
            return Ok(Fetched { url, response });
        }
        let location = response
            .headers
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                FetchError::new(
                    FetchErrorKind::HttpError,
                    format!("HTTP {} without a Location", response.status),
                )
            })?;
        let next = url.join(location).map_err(|e| {
            FetchError::new(
                FetchErrorKind::HttpError,
                format!("bad redirect Location {location:?}: {e}"),
            )
        })?;
        if next.scheme() != "https" {
            // The spec's well-knowns are HTTPS only; Synapse fetches nothing over plain HTTP.
            return Err(FetchError::new(
                FetchErrorKind::HttpError,
                format!("redirect to non-HTTPS URL {next}"),
            ));
        }
        url = next;
    }
}

/// One GET of `url`: over the kept connection when it is to this origin, else resolve the host, connect to the
/// first address that answers, TLS with the usual validation, then HTTP.
async fn get_once(
    env: &ProbeEnv,
    url: &Url,
    pin: Option<IpAddr>,
    max_body: usize,
    known: &mut Known,
    kept: &mut Option<Kept>,
) -> Result<Response, FetchError> {
    let (host, ip_literal) = match url.host() {
        Some(url::Host::Domain(d)) => (d.to_owned(), None),
        Some(url::Host::Ipv4(ip)) => (ip.to_string(), Some(IpAddr::V4(ip))),
        Some(url::Host::Ipv6(ip)) => (ip.to_string(), Some(IpAddr::V6(ip))),
        None => {
            return Err(FetchError::new(
                FetchErrorKind::HttpError,
                format!("{url} has no host"),
            ));
        }
    };
    let port = url.port().unwrap_or(env.ports.well_known);
    let host_header = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or(&host)),
        None => url.host_str().unwrap_or(&host).to_owned(),
    };
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    // A pinned hop asks that one address, so a connection kept to another address of the host does not do.
    if let Some(k) = kept
        .as_mut()
        .filter(|k| pin.is_none() && k.host == host && k.port == port)
    {
        let conn = match &mut k.conn {
            KeptConn::Open(conn) => conn,
            KeptConn::Refused(why) => {
                return Err(FetchError {
                    not_sent: true,
                    ..FetchError::new(
                        FetchErrorKind::ConnectionFailed,
                        format!("{why} (refused moments ago; not asked again)"),
                    )
                });
            }
        };
        match conn
            .get(&path, &host_header, max_body, env.timeouts.http)
            .await
        {
            Ok(response) => return Ok(response),
            // The server closed the kept connection (no keep-alive): ask again on a new one.
            Err(GetError::Http(_)) => *kept = None,
            Err(e) => return Err(get_error(&e)),
        }
    }
    let ips = match ip_literal.or(pin) {
        Some(ip) => vec![ip],
        None => resolve(env, &host, known).await?,
    };
    let ips = public_only(env, &host, ips)?;
    let addresses = ips.into_iter().map(|ip| SocketAddr::new(ip, port));
    let judged = connect::open(env, addresses, &host)
        .await
        .result
        .map_err(open_error)?;
    if let Some(f) = judged.certificate.failures.first() {
        return Err(FetchError::tls(
            f.reason,
            format!("{}: {}", f.reason, f.message),
        ));
    }
    let served = judged
        .stream
        .get_ref()
        .0
        .peer_addr()
        .ok()
        .zip(judged.certificate.chain.first().cloned());
    let mut conn = HttpConn::handshake(judged.stream, env.timeouts.http)
        .await
        .map_err(|e| get_error(&e))?;
    let response = conn
        .get(&path, &host_header, max_body, env.timeouts.http)
        .await
        .map_err(|e| get_error(&e))?;
    if kept.is_none() {
        *kept = Some(Kept {
            host,
            port,
            conn: KeptConn::Open(conn),
            served,
        });
    }
    Ok(response)
}

/// Why no connection was made, in a fetch's words.
fn open_error(e: OpenError) -> FetchError {
    match e {
        OpenError::NoAddress => {
            FetchError::new(FetchErrorKind::ConnectionFailed, "no address to connect to")
        }
        OpenError::Connect(addr, e) => {
            FetchError::new(FetchErrorKind::ConnectionFailed, format!("{addr}: {e}"))
        }
        OpenError::ConnectTimeout(addr, _) => FetchError::new(
            FetchErrorKind::ConnectionFailed,
            format!("{addr}: connect timed out"),
        ),
        OpenError::Tls(f) => FetchError::tls(f.reason, f.message),
    }
}

fn get_error(e: &GetError) -> FetchError {
    let kind = match e {
        GetError::Timeout(_) => FetchErrorKind::Timeout,
        GetError::TooLarge(_) => FetchErrorKind::TooLarge,
        GetError::Http(_) => FetchErrorKind::HttpError,
    };
    FetchError::new(kind, e.to_string())
}

/// In the public-federation view, the addresses a default-configured peer would connect to (Synapse wraps its
/// well-known agent in the same `ip_range_blacklist` as federation); an error when none is left.
fn public_only(env: &ProbeEnv, host: &str, ips: Vec<IpAddr>) -> Result<Vec<IpAddr>, FetchError> {
    if env.allow_private_addresses {
        return Ok(ips);
    }
    let (public, refused): (Vec<IpAddr>, Vec<IpAddr>) = ips
        .into_iter()
        .partition(|ip| !crate::report::address_class::refused_by_default(*ip));
    if public.is_empty() {
        let list = refused
            .iter()
            .map(|ip| format!("{ip} ({})", crate::report::address_class::classify(*ip)))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(FetchError::new(
            FetchErrorKind::AddressNotPublic,
            format!("{host}: every address is in a range default-configured peers refuse: {list}"),
        ));
    }
    Ok(public)
}

/// A and AAAA of `host`; an error only when neither gives an address.
async fn resolve(env: &ProbeEnv, host: &str, known: &mut Known) -> Result<Vec<IpAddr>, FetchError> {
    let found = env.dns.host_once(host, known).await;
    if found.ips.is_empty() {
        let why = if !found.failures.is_empty() {
            found
                .failures
                .iter()
                .map(|f| f.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        } else if found.nxdomain {
            "NXDOMAIN".to_owned()
        } else {
            "no A or AAAA record".to_owned()
        };
        return Err(FetchError::new(
            FetchErrorKind::DnsError,
            format!("{host}: {why}"),
        ));
    }
    Ok(found.ips)
}
