//! Client discovery: what a user's client does to find the homeserver of `@alice:<server_name>`.
//!
//! Client-server API, "Server Discovery", "Well-known URIs" (spec v1.20), step by step:
//! 1. "Extract the server name from the user's Matrix ID by splitting the Matrix ID at the first colon."
//! 2. "Extract the hostname from the server name as described by the grammar."
//! 3. "Make a GET request to `https://hostname/.well-known/matrix/client`." (v1.20: "30x redirects SHOULD be
//!    followed, however redirection loops should be avoided.")
//!    - a. "If the returned status code is 404, then `IGNORE`."
//!    - b. "If the returned status code is not 200, or the response body is empty, then `FAIL_PROMPT`."
//!    - c. "Parse the response body as a JSON object": "If the content cannot be parsed, then `FAIL_PROMPT`."
//!    - d. "Extract the `base_url` value from the `m.homeserver` property. This value is to be used as the base
//!      URL of the homeserver. If this value is not provided, then `FAIL_PROMPT`."
//!    - e. "Validate the homeserver base URL: Parse it as a URL. If it is not a URL, then `FAIL_ERROR`. Clients
//!      SHOULD validate that the URL points to a valid homeserver before accepting it by connecting to the
//!      `/_matrix/client/versions` endpoint, ensuring that it does not return an error, and parsing and
//!      validating that the data conforms with the expected response format. If any step in the validation
//!      fails, then `FAIL_ERROR`. [...] It is important to note that the `base_url` value might include a
//!      trailing `/`. Consumers should be prepared to handle both cases."
//!    - f. "If the `m.identity_server` property is present, extract the `base_url` value for use as the base URL
//!      of the identity server. Validation for this URL is done as in the step above, but using
//!      `/_matrix/identity/v2` as the endpoint to connect to. If the `m.identity_server` property is present,
//!      but does not have a `base_url` value, then `FAIL_PROMPT`."
//!
//! The well-knowns "can be reached via HTTPS on the server name's hostname as domain", and "Servers hosting the
//! `.well-known` JSON file SHOULD offer CORS headers" (`Access-Control-Allow-Origin: *`): without them web
//! clients cannot read the file (the warning `client_well_known_no_cors`, judged on the final 200 answer; the
//! v1.20 sentence "Servers SHOULD also ensure that each 30x redirect, if any, offers such CORS headers" is not
//! checked).
//!
//! Where this differs from clients, on purpose:
//! - A server name with a port: the spec fetches from the *hostname* (port 443), and so does this module;
//!   matrix-js-sdk's `AutoDiscovery.findClientConfig(domain)` puts the whole domain, port included, in the URL.
//!   After a 404, the fallback base URL is `https://<server_name>` as written (port included), as Element does.
//! - An IP literal: the hostname is the address (`https://[2001:db8::1]/...`), judged against it, as for the
//!   server well-known.
//! - A failed fetch (DNS, connection, TLS, timeout) is `FAIL_PROMPT`, as in matrix-js-sdk's
//!   `fetchWellKnownObject` ("For any other failure the `action` will be `FAIL_PROMPT`").
//! - The identity server's `base_url` is checked as a URL, but `/_matrix/identity/v2` is not asked: identity
//!   servers are third parties (often `vector.im`), every probed server would add a handshake there, and
//!   logging in does not need one.
//! - An `http://` base URL is `FAIL_ERROR` (`insecure_base_url`): matrix-js-sdk accepts it, but the exporter
//!   sends nothing over plain HTTP and browsers refuse it from an HTTPS web client.
//! - Bodies are capped at 50 KiB (the server well-known's cap) and 64 KiB (versions); more is `FAIL_PROMPT`
//!   (`well_known_too_large`), or `FAIL_ERROR` (`versions_invalid`) for the versions answer.
//!
//! Cost: the well-known rides the server well-known's kept connection to the same origin (`kept`), and
//! `/versions` rides it too when the base URL is that origin; otherwise one more handshake.

use std::time::{Duration, Instant};

use url::Url;

use crate::config::server_name::{Host, ServerName};
use crate::probe::discovery::dns::Known;
use crate::probe::discovery::fetch::{self, FetchError, FetchErrorKind, Fetched, Kept};
use crate::probe::env::ProbeEnv;
use crate::report::{ClientOutcome, ClientReport, ClientResult, Failure, Hops, Reason, Stage};

/// The client well-known's body cap: the server well-known's (Synapse's `WELL_KNOWN_MAX_SIZE`).
pub const MAX_WELL_KNOWN_BODY: usize = crate::probe::discovery::well_known::MAX_BODY;
/// The versions answer's body cap (Synapse's is about 2 KiB with its unstable features).
pub const MAX_VERSIONS_BODY: usize = 64 * 1024;
/// The longest `base_url` followed; longer is `invalid_base_url` (it also becomes a label value).
pub const MAX_BASE_URL: usize = 2048;

/// Walks client discovery for `name` once. The well-known fetch runs under `timeouts.well_known` (redirects
/// included, each request under `timeouts.http`), and so does the versions request. `kept` is the server
/// well-known's open connection to `https://<hostname>`, used when a request goes to that origin.
/// `known` holds the addresses discovery already resolved, so the same hostname is not asked again.
pub async fn discover_client(
    env: &ProbeEnv,
    name: &ServerName,
    known: &mut Known,
    kept: &mut Option<Kept>,
) -> ClientReport {
    let mut report = ClientReport {
        outcome: ClientOutcome::FailPrompt,
        result: ClientResult::WellKnownUnreachable,
        base_url: None,
        identity_server: None,
        hops: Hops::default(),
        cors: None,
        versions: 0,
        latest: None,
        well_known_duration: Duration::ZERO.into(),
        versions_duration: None,
        failures: Vec::new(),
    };
    let start = Instant::now();
    let found = well_known(env, name, known, kept, &mut report).await;
    report.well_known_duration = start.elapsed().into();
    let base = match found {
        Ok(Some(base)) => {
            report.outcome = ClientOutcome::Success;
            base
        }
        Ok(None) => {
            // "If the returned status code is 404, then IGNORE": a client then tries the server name itself.
            report.outcome = ClientOutcome::Ignore;
            let Some(base) = fallback_base(name) else {
                let stop = Stop::new(ClientResult::InvalidBaseUrl, "no fallback URL");
                return finish(report, stop);
            };
            base
        }
        Err(stop) => {
            report.outcome = outcome_of(stop.result);
            return finish(report, stop);
        }
    };
    report.base_url = Some(base.as_str().trim_end_matches('/').to_owned());
    let start = Instant::now();
    let checked = versions(env, &base, known, kept, &mut report).await;
    report.versions_duration = Some(start.elapsed().into());
    match checked {
        Ok(()) if report.outcome == ClientOutcome::Ignore => {
            report.result = ClientResult::NotFound;
            report
        }
        Ok(()) => {
            report.result = ClientResult::Ok;
            report
        }
        Err(stop) => {
            if report.outcome == ClientOutcome::Success {
                // "If any step in the validation fails, then FAIL_ERROR."
                report.outcome = ClientOutcome::FailError;
            }
            finish(report, stop)
        }
    }
}

/// Why discovery stopped: the closed result, the closed reason of its failure, and words for humans.
struct Stop {
    result: ClientResult,
    reason: Reason,
    message: String,
}

impl Stop {
    fn new(result: ClientResult, message: impl Into<String>) -> Self {
        Self {
            result,
            reason: reason_of(result),
            message: message.into(),
        }
    }
}

type Step<T> = Result<T, Stop>;

/// The spec's outcome when the well-known step decides.
fn outcome_of(result: ClientResult) -> ClientOutcome {
    match result {
        ClientResult::InvalidBaseUrl
        | ClientResult::InsecureBaseUrl
        | ClientResult::InvalidIdentityServerUrl => ClientOutcome::FailError,
        _ => ClientOutcome::FailPrompt,
    }
}

/// Records a result that is not `ok`: its words and its failure (stage `client`).
fn finish(mut report: ClientReport, stop: Stop) -> ClientReport {
    report.result = stop.result;
    report.failures = vec![Failure::new(Stage::Client, stop.reason, stop.message)];
    report
}

/// Step 3: the well-known, judged. `Ok(None)` is the 404 (`IGNORE`); `Ok(Some(url))` the base URL to check.
async fn well_known(
    env: &ProbeEnv,
    name: &ServerName,
    known: &mut Known,
    kept: &mut Option<Kept>,
    report: &mut ClientReport,
) -> Step<Option<Url>> {
    // "Extract the hostname from the server name": no port, IPv6 in brackets.
    let host = match name.host() {
        Host::Dns(h) => h,
        Host::Ip(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        Host::Ip(ip) => ip.to_string(),
    };
    let url = Url::parse(&format!("https://{host}/.well-known/matrix/client")).map_err(|e| {
        Stop::new(
            ClientResult::WellKnownUnreachable,
            format!("cannot form the client well-known URL: {e}"),
        )
    })?;
    let limit = env.timeouts.well_known;
    let fetching =
        fetch::get_following(env, url, MAX_WELL_KNOWN_BODY, known, &mut report.hops, kept);
    let Fetched { url, response } = tokio::time::timeout(limit, fetching)
        .await
        .map_err(|_| {
            Stop::new(
                ClientResult::WellKnownUnreachable,
                format!(
                    "the client well-known: no answer within {}",
                    humantime::format_duration(limit)
                ),
            )
        })?
        .map_err(|e| well_known_error(&e))?;
    match response.status {
        // "If the returned status code is 404, then IGNORE."
        404 => return Ok(None),
        200 => {}
        status => {
            return Err(Stop::new(
                ClientResult::WellKnownHttpStatus,
                format!("HTTP {status} from {url}"),
            ));
        }
    }
    report.cors = Some(
        response
            .headers
            .get_all(http::header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .iter()
            .any(|v| v.as_bytes().trim_ascii() == b"*"),
    );
    if response.body.iter().all(u8::is_ascii_whitespace) {
        return Err(Stop::new(
            ClientResult::WellKnownEmpty,
            format!("empty body from {url}"),
        ));
    }
    judge(&response.body, report).map(Some)
}

/// Steps 3c to 3f on a 200 body: the homeserver base URL, and the identity server's URL checked.
fn judge(body: &[u8], report: &mut ClientReport) -> Step<Url> {
    // serde_json refuses nesting deeper than 128 levels, so hostile bodies cannot exhaust the stack.
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        Stop::new(
            ClientResult::WellKnownNotJson,
            format!("the client well-known is not JSON ({e})"),
        )
    })?;
    let Some(object) = value.as_object() else {
        return Err(Stop::new(
            ClientResult::WellKnownNotJson,
            "the client well-known is JSON but not an object".to_owned(),
        ));
    };
    let base_url = object
        .get("m.homeserver")
        .and_then(|h| h.get("base_url"))
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Stop::new(
                ClientResult::NoBaseUrl,
                "no string \"m.homeserver\": {\"base_url\": ...}",
            )
        })?;
    let base = parse_base_url(base_url)?;
    if let Some(is) = object.get("m.identity_server") {
        let Some(is_url) = is.get("base_url").and_then(serde_json::Value::as_str) else {
            return Err(Stop::new(
                ClientResult::IdentityServerNoBaseUrl,
                "\"m.identity_server\" has no string \"base_url\"".to_owned(),
            ));
        };
        let parsed = Url::parse(is_url).ok().filter(|u| {
            matches!(u.scheme(), "https" | "http")
                && u.host().is_some()
                && is_url.len() <= MAX_BASE_URL
        });
        if parsed.is_none() {
            return Err(Stop::new(
                ClientResult::InvalidIdentityServerUrl,
                format!(
                    "\"m.identity_server\" base_url {:?} is not an HTTP(S) URL",
                    clip(is_url)
                ),
            ));
        }
        report.identity_server = Some(is_url.trim_end_matches('/').to_owned().into());
    }
    Ok(base)
}

/// "Parse it as a URL. If it is not a URL, then `FAIL_ERROR`." As matrix-js-sdk's `sanitizeWellKnownUrl`, a URL
/// needs a host and an HTTP(S) scheme; only HTTPS is followed.
fn parse_base_url(text: &str) -> Step<Url> {
    let invalid = || {
        Stop::new(
            ClientResult::InvalidBaseUrl,
            format!("m.homeserver base_url {:?} is not a URL", clip(text)),
        )
    };
    if text.len() > MAX_BASE_URL {
        return Err(invalid());
    }
    let url = Url::parse(text).map_err(|_| invalid())?;
    if url.host().is_none() || !matches!(url.scheme(), "https" | "http") {
        return Err(invalid());
    }
    if url.scheme() == "http" {
        return Err(Stop::new(
            ClientResult::InsecureBaseUrl,
            format!("m.homeserver base_url {text:?} is plain HTTP"),
        ));
    }
    Ok(url)
}

/// After a 404, the base URL clients try: `https://<server_name>`.
fn fallback_base(name: &ServerName) -> Option<Url> {
    Url::parse(&format!("https://{}", name.as_str())).ok()
}

/// Step 3e: `GET <base_url>/_matrix/client/versions`, 200 with `{"versions": [strings]}`.
async fn versions(
    env: &ProbeEnv,
    base: &Url,
    known: &mut Known,
    kept: &mut Option<Kept>,
    report: &mut ClientReport,
) -> Step<()> {
    // "the base_url value might include a trailing /": both give one URL.
    let text = format!(
        "{}/_matrix/client/versions",
        base.as_str().trim_end_matches('/')
    );
    let url =
        Url::parse(&text).map_err(|e| Stop::new(ClientResult::InvalidBaseUrl, e.to_string()))?;
    let limit = env.timeouts.well_known;
    let mut hops = Hops::default();
    let fetching = fetch::get_following(env, url, MAX_VERSIONS_BODY, known, &mut hops, kept);
    let Fetched { url, response } = tokio::time::timeout(limit, fetching)
        .await
        .map_err(|_| {
            Stop::new(
                ClientResult::VersionsUnreachable,
                format!(
                    "{text}: no answer within {}",
                    humantime::format_duration(limit)
                ),
            )
        })?
        .map_err(|e| versions_error(&e))?;
    if response.status != 200 {
        return Err(Stop::new(
            ClientResult::VersionsHttpStatus,
            format!("HTTP {} from {url}", response.status),
        ));
    }
    let invalid = |why: &str| Stop::new(ClientResult::VersionsInvalid, format!("{url}: {why}"));
    let value: serde_json::Value =
        serde_json::from_slice(&response.body).map_err(|_| invalid("not JSON"))?;
    let list = value
        .get("versions")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| invalid("no \"versions\" array"))?;
    if list.is_empty() || !list.iter().all(serde_json::Value::is_string) {
        return Err(invalid("\"versions\" is not a non-empty list of strings"));
    }
    report.versions = u32::try_from(list.len()).unwrap_or(u32::MAX);
    report.latest =
        latest(list.iter().filter_map(serde_json::Value::as_str)).map(|v| clip(v).into());
    Ok(())
}

/// The highest spec version: `vX.Y` (spec v1.1 on) above every `rX.Y.Z` (the older client-server releases),
/// compared as numbers. Anything else is not a spec version.
#[must_use]
pub fn latest<'a>(versions: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    versions
        .into_iter()
        .filter_map(|v| version_key(v).map(|k| (k, v)))
        .max_by_key(|(k, _)| *k)
        .map(|(_, v)| v)
}

fn version_key(v: &str) -> Option<(u8, u32, u32, u32)> {
    let (era, rest) = match v.as_bytes().first()? {
        b'v' => (1, &v[1..]),
        b'r' => (0, &v[1..]),
        _ => return None,
    };
    let mut parts = rest.split('.').map(str::parse::<u32>);
    let a = parts.next()?.ok()?;
    let b = parts.next()?.ok()?;
    let c = match parts.next() {
        Some(p) => p.ok()?,
        None => 0,
    };
    parts.next().is_none().then_some((era, a, b, c))
}

fn well_known_error(e: &FetchError) -> Stop {
    let result = match e.kind {
        FetchErrorKind::TlsError => ClientResult::WellKnownTlsError,
        FetchErrorKind::TooLarge => ClientResult::WellKnownTooLarge,
        _ => ClientResult::WellKnownUnreachable,
    };
    fetch_stop(result, e, "the client well-known")
}

fn versions_error(e: &FetchError) -> Stop {
    let result = match e.kind {
        FetchErrorKind::TlsError => ClientResult::VersionsTlsError,
        FetchErrorKind::TooLarge => ClientResult::VersionsInvalid,
        _ => ClientResult::VersionsUnreachable,
    };
    fetch_stop(result, e, "/_matrix/client/versions")
}

/// A fetch error as a stop, its reason from the fetch's kind; a TLS failure keeps its own reason, so
/// `cert_expired` stays `cert_expired`.
fn fetch_stop(result: ClientResult, e: &FetchError, what: &str) -> Stop {
    let reason = match e.kind {
        FetchErrorKind::DnsError => Reason::DnsError,
        FetchErrorKind::AddressNotPublic => Reason::AddressNotPublic,
        FetchErrorKind::ConnectionFailed => Reason::Unreachable,
        FetchErrorKind::Timeout => Reason::Timeout,
        FetchErrorKind::TooLarge => Reason::NotJson,
        FetchErrorKind::HttpError | FetchErrorKind::RedirectLoop => Reason::HttpStatus,
        FetchErrorKind::TlsError => e.tls_reason.unwrap_or(Reason::TlsHandshakeFailed),
    };
    Stop {
        result,
        reason,
        message: format!("{what}: {}", e.message),
    }
}

/// The closed reason of a stop that is not a fetch error.
fn reason_of(result: ClientResult) -> Reason {
    match result {
        // Not a stop; these two never reach here.
        ClientResult::Ok
        | ClientResult::NotFound
        | ClientResult::WellKnownHttpStatus
        | ClientResult::VersionsHttpStatus => Reason::HttpStatus,
        ClientResult::WellKnownTlsError | ClientResult::VersionsTlsError => {
            Reason::TlsHandshakeFailed
        }
        ClientResult::WellKnownUnreachable | ClientResult::VersionsUnreachable => Reason::Timeout,
        ClientResult::WellKnownEmpty
        | ClientResult::WellKnownNotJson
        | ClientResult::WellKnownTooLarge => Reason::NotJson,
        ClientResult::NoBaseUrl
        | ClientResult::IdentityServerNoBaseUrl
        | ClientResult::InvalidBaseUrl
        | ClientResult::InsecureBaseUrl
        | ClientResult::InvalidIdentityServerUrl => Reason::ClientWellKnownInvalid,
        ClientResult::VersionsInvalid => Reason::ClientVersionsInvalid,
    }
}

/// At most 256 bytes of a served string, cut on a character boundary (for messages and the latest version).
fn clip(s: &str) -> &str {
    let mut end = s.len().min(256);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_orders_v_above_r_and_numbers_as_numbers() {
        assert_eq!(latest(["r0.6.1", "v1.2", "v1.11", "v1.9"]), Some("v1.11"));
        assert_eq!(latest(["r0.5.0", "r0.6.1"]), Some("r0.6.1"));
        assert_eq!(latest(["x", "v1", "v1.2.3.4"]), None);
    }

    #[test]
    fn base_urls_are_judged_as_the_spec_says() {
        assert!(parse_base_url("https://matrix.example.org/").is_ok());
        assert_eq!(
            parse_base_url("not a url").unwrap_err().result,
            ClientResult::InvalidBaseUrl
        );
        assert_eq!(
            parse_base_url("ftp://x.org").unwrap_err().result,
            ClientResult::InvalidBaseUrl
        );
        assert_eq!(
            parse_base_url("http://x.org").unwrap_err().result,
            ClientResult::InsecureBaseUrl
        );
        let long = format!("https://x.org/{}", "a".repeat(MAX_BASE_URL));
        assert_eq!(
            parse_base_url(&long).unwrap_err().result,
            ClientResult::InvalidBaseUrl
        );
    }
}
