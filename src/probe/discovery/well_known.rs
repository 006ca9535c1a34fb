//! `GET https://<hostname>/.well-known/matrix/server`: redirects, size cap, JSON, `m.server`, cache lifetime.
//!
//! Spec v1.19, "Resolving server names", step 3: "If the hostname is not an IP literal, a regular HTTPS
//! request is made to `https://<hostname>/.well-known/matrix/server`, expecting the schema defined later in
//! this section. 30x redirects should be followed, however redirection loops should be avoided. Responses
//! (successful or otherwise) to the `/.well-known` endpoint should be cached by the requesting server. [...]
//! If the response is invalid (bad JSON, missing properties, non-200 response, etc), skip to step 4."
//!
//! Every outcome is a [`WellKnownOutcome`]; none of them is a probe failure, because discovery falls through.
//! The request goes over the same resolver and TLS client as the probe, with normal certificate validation.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::join_all;
use http::HeaderMap;
use url::Url;

use crate::config::server_name::ServerName;
use crate::probe::discovery::MAX_ADDRESSES;
use crate::probe::discovery::dns::Known;
use crate::probe::discovery::fetch::{self, FetchErrorKind, Fetched, Kept};
use crate::probe::env::ProbeEnv;
use crate::report::{Hops, WellKnownAddress, WellKnownOutcome, WellKnownReport};

/// Synapse and gomatrixserverlib refuse bodies over 50 KiB (`WELL_KNOWN_MAX_SIZE`); the spec sets no limit.
pub const MAX_BODY: usize = 50 * 1024;
pub use crate::probe::discovery::fetch::MAX_REDIRECTS;
/// Spec: "use a sensible default when absent: recommended default 24 hours".
pub const DEFAULT_CACHE: Duration = Duration::from_secs(24 * 3600);
/// Spec: "Servers should impose a maximum cache time: 48 hours recommended". Synapse also floors at 5 min.
pub const MAX_CACHE: Duration = Duration::from_secs(48 * 3600);
pub const MIN_CACHE: Duration = Duration::from_secs(5 * 60);
/// Spec: "Errors are recommended to be cached for up to an hour" (Synapse `WELL_KNOWN_INVALID_CACHE_PERIOD`).
pub const ERROR_CACHE: Duration = Duration::from_secs(3600);

/// The lookup's report, the delegated server name when it succeeded, and how long it took.
pub struct WellKnown {
    pub report: WellKnownReport,
    pub delegated: Option<ServerName>,
    pub duration: Duration,
    /// The connection to `https://<hostname>` (port 443) the fetch opened, when it is still open, for the next
    /// request to the same origin (the client and support well-knowns).
    pub kept: Option<Kept>,
}

/// Fetches and judges the well-known document of `hostname` from every address it resolves to, concurrently,
/// all within `timeouts.well_known`; discovery follows one answer (see [`followed`]) and the report records
/// every address's.
///
/// A peer asks whichever address its resolver hands it, so addresses that answer differently (an IPv6 vhost
/// without the file, one load-balancer node with an old one) send peers to different places.
pub async fn lookup(env: &ProbeEnv, hostname: &str, known: &mut Known) -> WellKnown {
    let start = Instant::now();
    let limit = env.timeouts.well_known;
    let deadline = tokio::time::Instant::now() + limit;
    // The same answer the fetch would get (and `Known` keeps it for the default-port step), asked together with
    // the name's SRV records, which `Known` keeps for the SRV steps.
    let ips =
        match tokio::time::timeout_at(deadline, env.dns.server_name_once(hostname, known)).await {
            Ok(found) => addresses_to_ask(env, found.ips),
            Err(_) => Vec::new(),
        };
    let mut asked = if ips.is_empty() {
        // No address to ask: one fetch as before, which says why (DNS error, private addresses, timeout).
        vec![ask(env, hostname, None, known.clone(), deadline, limit).await]
    } else {
        join_all(
            ips.iter()
                .map(|ip| ask(env, hostname, Some(*ip), known.clone(), deadline, limit)),
        )
        .await
    };
    let index = followed(asked.iter().map(|a| a.result.is_ok()));
    let per_address = if ips.is_empty() {
        Vec::new()
    } else {
        ips.iter()
            .zip(&asked)
            .enumerate()
            .map(|(i, (ip, a))| WellKnownAddress {
                address: SocketAddr::new(*ip, env.ports.well_known),
                outcome: a
                    .result
                    .as_ref()
                    .map_or_else(|b| b.outcome, |_| WellKnownOutcome::Delegated),
                m_server: a.result.as_ref().ok().map(|(name, _)| name.as_str().into()),
                // The followed answer's words are the report's own `error`: kept once.
                error: a
                    .result
                    .as_ref()
                    .err()
                    .filter(|_| i != index)
                    .map(|b| b.message.as_str().into()),
                followed: i == index,
            })
            .collect()
    };
    // Every address refused the connection to `https://<hostname>` itself (or let it time out): the client and
    // support well-knowns, on that same origin moments later, would meet the same, so they are told instead of
    // connecting again (`Kept::refused`).
    let refused_everywhere = !per_address.is_empty()
        && asked.iter().all(|a| {
            a.hops.len() == 1
                && a.result
                    .as_ref()
                    .is_err_and(|b| b.outcome == WellKnownOutcome::ConnectionFailed)
        });
    let chosen = asked.swap_remove(index);
    let kept = match (chosen.kept, &chosen.result) {
        (None, Err(bad)) if refused_everywhere => Some(Kept::refused(
            hostname,
            env.ports.well_known,
            bad.message.clone(),
        )),
        (kept, _) => kept,
    };
    *known = chosen.known;
    let (report, delegated) = match chosen.result {
        Ok((name, ttl)) => (
            WellKnownReport {
                outcome: WellKnownOutcome::Delegated,
                cache_ttl: Some(ttl),
                hops: chosen.hops,
                error: None,
                per_address,
            },
            Some(name),
        ),
        Err(bad) => (
            WellKnownReport {
                outcome: bad.outcome,
                cache_ttl: Some(ERROR_CACHE),
                hops: chosen.hops,
                error: Some(bad.message),
                per_address,
            },
            None,
        ),
    };
    WellKnown {
        report,
        delegated,
        duration: start.elapsed(),
        kept,
    }
}

/// The answer discovery follows, by index: "the first address, in resolver order, that gave a valid
/// delegation; else the first answer" (DESIGN.md). `answers` yields whether each address delegated.
#[must_use]
pub fn followed(mut answers: impl Iterator<Item = bool>) -> usize {
    answers.position(|delegated| delegated).unwrap_or(0)
}

/// The addresses to ask: those a default-configured peer would connect to (Synapse's well-known agent uses
/// the federation `ip_range_blacklist`), in resolver order, at most [`MAX_ADDRESSES`].
fn addresses_to_ask(env: &ProbeEnv, mut ips: Vec<IpAddr>) -> Vec<IpAddr> {
    if !env.allow_private_addresses {
        ips.retain(|ip| !crate::report::address_class::refused_by_default(*ip));
    }
    ips.truncate(MAX_ADDRESSES);
    ips
}

/// One address's fetch and everything it leaves behind.
struct Asked {
    result: Result<(ServerName, Duration), Bad>,
    hops: Hops,
    known: Known,
    kept: Option<Kept>,
}

/// The well-known as `ip` serves it (any address when `None`), within `limit` and by `deadline`.
async fn ask(
    env: &ProbeEnv,
    hostname: &str,
    ip: Option<IpAddr>,
    mut known: Known,
    deadline: tokio::time::Instant,
    limit: Duration,
) -> Asked {
    let mut hops = Hops::default();
    let mut kept = None;
    let fetching = fetch(env, hostname, ip, &mut hops, &mut known, &mut kept);
    let result = match tokio::time::timeout_at(deadline, fetching).await {
        Ok(result) => result,
        Err(_) => Err(Bad::new(
            WellKnownOutcome::Timeout,
            format!("no answer within {}", humantime::format_duration(limit)),
        )),
    };
    Asked {
        result,
        hops,
        known,
        kept,
    }
}

/// A well-known outcome other than `delegated`, with words for humans.
struct Bad {
    outcome: WellKnownOutcome,
    message: String,
}

impl Bad {
    fn new(outcome: WellKnownOutcome, message: impl Into<String>) -> Self {
        Self {
            outcome,
            message: message.into(),
        }
    }
}

async fn fetch(
    env: &ProbeEnv,
    hostname: &str,
    ip: Option<IpAddr>,
    hops: &mut Hops,
    known: &mut Known,
    kept: &mut Option<Kept>,
) -> Result<(ServerName, Duration), Bad> {
    let url =
        Url::parse(&format!("https://{hostname}/.well-known/matrix/server")).map_err(|e| {
            Bad::new(
                WellKnownOutcome::DnsError,
                format!("cannot form the well-known URL: {e}"),
            )
        })?;
    let Fetched { url, response } =
        fetch::get_following_via(env, url, ip, MAX_BODY, known, hops, kept)
            .await
            .map_err(|e| Bad::new(outcome_of(e.kind), e.message))?;
    match response.status {
        200 => {}
        404 => {
            return Err(Bad::new(
                WellKnownOutcome::NotFound,
                format!("HTTP 404 from {url}"),
            ));
        }
        status => {
            return Err(Bad::new(
                WellKnownOutcome::HttpError,
                format!("HTTP {status} from {url}"),
            ));
        }
    }
    let name = parse_body(&response.body)?;
    Ok((name, cache_ttl(&response.headers, SystemTime::now())))
}

/// A fetch error in the well-known report's words.
fn outcome_of(kind: FetchErrorKind) -> WellKnownOutcome {
    match kind {
        FetchErrorKind::DnsError => WellKnownOutcome::DnsError,
        FetchErrorKind::AddressNotPublic => WellKnownOutcome::AddressNotPublic,
        FetchErrorKind::ConnectionFailed => WellKnownOutcome::ConnectionFailed,
        FetchErrorKind::TlsError => WellKnownOutcome::TlsError,
        FetchErrorKind::Timeout => WellKnownOutcome::Timeout,
        FetchErrorKind::TooLarge => WellKnownOutcome::TooLarge,
        FetchErrorKind::HttpError => WellKnownOutcome::HttpError,
        FetchErrorKind::RedirectLoop => WellKnownOutcome::RedirectLoop,
    }
}

/// `parse_body` for tests and fuzzing: the delegated server name, or the outcome and the words for humans.
pub fn judge_body(body: &[u8]) -> Result<ServerName, (WellKnownOutcome, String)> {
    parse_body(body).map_err(|bad| (bad.outcome, bad.message))
}

/// Judges a 200 body: JSON whatever the Content-Type ("servers parsing the response should assume that the
/// body is JSON regardless of type"), with a string `m.server` in the server-name grammar.
fn parse_body(body: &[u8]) -> Result<ServerName, Bad> {
    // serde_json refuses nesting deeper than 128 levels, so hostile bodies cannot exhaust the stack.
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        Bad::new(
            WellKnownOutcome::InvalidJson,
            format!("body is not JSON: {e}"),
        )
    })?;
    let m_server = value
        .get("m.server")
        .ok_or_else(|| Bad::new(WellKnownOutcome::InvalidJson, "no \"m.server\" property"))?
        .as_str()
        .ok_or_else(|| {
            Bad::new(
                WellKnownOutcome::InvalidJson,
                "\"m.server\" is not a string",
            )
        })?;
    ServerName::parse(m_server).map_err(|e| {
        Bad::new(
            WellKnownOutcome::InvalidServerName,
            format!("\"m.server\" {m_server:?}: {e}"),
        )
    })
}

/// The cache lifetime a homeserver gives this answer: `Cache-Control: no-store` means none, else `max-age`,
/// else `Expires`, else 24 h; then clamped to [5 min, 48 h] as Synapse does (`_cache_period_from_headers`).
#[must_use]
pub fn cache_ttl(headers: &HeaderMap, now: SystemTime) -> Duration {
    let mut from_headers = None;
    for value in headers.get_all(http::header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',').map(str::trim) {
            if directive.eq_ignore_ascii_case("no-store") {
                from_headers = Some(Duration::ZERO);
            } else if let Some(secs) = directive
                .split_once('=')
                .filter(|(k, _)| k.trim().eq_ignore_ascii_case("max-age"))
                .and_then(|(_, v)| v.trim().trim_matches('"').parse::<u64>().ok())
            {
                from_headers = from_headers.or(Some(Duration::from_secs(secs)));
            }
        }
    }
    if from_headers.is_none()
        && let Some(expires) = headers.get(http::header::EXPIRES)
    {
        // An unparseable or past Expires means "already stale" (Synapse: 0), which the floor turns into 5 min.
        from_headers = Some(
            expires
                .to_str()
                .ok()
                .and_then(|v| httpdate::parse_http_date(v).ok())
                .and_then(|t| t.duration_since(now).ok())
                .unwrap_or(Duration::ZERO),
        );
    }
    from_headers.map_or(DEFAULT_CACHE, |d| d.clamp(MIN_CACHE, MAX_CACHE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_follows_the_first_delegating_address_else_the_first() {
        assert_eq!(followed([false, true, true].into_iter()), 1);
        assert_eq!(followed([true, false].into_iter()), 0);
        assert_eq!(followed([false, false].into_iter()), 0);
        assert_eq!(followed(std::iter::empty()), 0);
    }
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn cache_ttl_follows_headers_and_clamps() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let in_2h = httpdate::fmt_http_date(now + Duration::from_secs(7200));
        let cases: &[(&[(&str, &str)], u64)] = &[
            (&[], 86_400),
            (&[("cache-control", "max-age=3600")], 3600),
            (&[("cache-control", "public, max-age=600")], 600),
            (&[("cache-control", "max-age=10")], 300),
            (&[("cache-control", "max-age=999999999")], 172_800),
            (&[("cache-control", "no-store")], 300),
            (&[("cache-control", "no-cache")], 86_400),
            (&[("expires", &in_2h)], 7200),
            (&[("expires", "yesterday-ish")], 300),
            (
                &[("cache-control", "max-age=900"), ("expires", &in_2h)],
                900,
            ),
        ];
        for (pairs, want) in cases {
            assert_eq!(
                cache_ttl(&headers(pairs), now),
                Duration::from_secs(*want),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn bodies_are_judged() {
        let outcome = |body: &[u8]| parse_body(body).err().map(|b| b.outcome);
        assert_eq!(outcome(br#"{"m.server":"matrix.example.org:443"}"#), None);
        assert_eq!(
            outcome(b"<html>hello</html>"),
            Some(WellKnownOutcome::InvalidJson)
        );
        assert_eq!(
            outcome(b"\xff\xfe\x00binary"),
            Some(WellKnownOutcome::InvalidJson)
        );
        assert_eq!(
            outcome(br#"{"m.server":42}"#),
            Some(WellKnownOutcome::InvalidJson)
        );
        assert_eq!(
            outcome(br#"{"m.homeserver":"x"}"#),
            Some(WellKnownOutcome::InvalidJson)
        );
        assert_eq!(
            outcome(br#"["m.server"]"#),
            Some(WellKnownOutcome::InvalidJson)
        );
        assert_eq!(
            outcome(br#"{"m.server":"https://matrix.example.org"}"#),
            Some(WellKnownOutcome::InvalidServerName)
        );
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            outcome(deep.as_bytes()),
            Some(WellKnownOutcome::InvalidJson)
        );
    }
}
