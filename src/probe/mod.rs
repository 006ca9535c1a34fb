//! The one orchestrator: `probe_server(env, name) -> ServerReport`.
//!
//! Discovery first, then every endpoint concurrently: TCP connect, TLS handshake with the spec's name (SNI,
//! or none for IP literals), the certificate verdict, and then, on that same connection (HTTP/1.1
//! keep-alive, so one handshake per address), `GET /_matrix/key/v2/server` and
//! `GET /_matrix/federation/v1/version` with the spec's `Host` header. Every step runs under its own timeout
//! from config and is timed. The result is plain data; nothing here knows about metrics or HTTP routes.
//!
//! Whoever runs a probe (the scheduler, `GET /probe`, the report API, the `check` command) cuts it at its deadline
//! with [`run_within`], the one place where a probe that outlives its deadline becomes a `timeout` report.

pub mod checks;
pub mod client;
pub mod connect;
pub mod discovery;
pub mod env;
pub mod homeserver;
pub mod local_certs;
pub mod notary;
pub mod support;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::{BoxFuture, join_all};

use crate::config::server_name::ServerName;
use crate::probe::checks::keys;
use crate::probe::connect::http_client::{GetError, HttpConn, Response};
use crate::probe::discovery::{Endpoint, fetch};
use crate::probe::env::ProbeEnv;
use crate::report::{AddressReport, Failure, Phase, Reason, ServerReport, Stage, VersionReport};

/// The largest key document read (Synapse's are a few KiB, even with many old keys).
pub const MAX_KEYS_BODY: usize = 256 * 1024;
/// The largest version answer read.
pub const MAX_VERSION_BODY: usize = 64 * 1024;

/// Runs one probe of one server name: the daemon's is [`probe_server`] through its environment, counted in
/// `probes_in_flight`; tests script their own. The scheduler, `GET /probe` and the report API all take this one
/// type, and each cuts what it runs with [`run_within`] (a prober sets no deadline of its own).
pub type Prober = Arc<dyn Fn(ServerName) -> BoxFuture<'static, ServerReport> + Send + Sync>;

/// What every address of one server is checked against.
struct Expect<'a> {
    /// The server name the key document must name (never the delegated name).
    server_name: &'a str,
    /// The name the certificate must be valid for.
    tls_name: &'a str,
    /// The `Host` header of federation requests.
    host_header: &'a str,
}

/// Probes one server name once: discovery, then every address.
pub async fn probe_server(env: &ProbeEnv, name: &ServerName) -> ServerReport {
    let started_at = SystemTime::now();
    let start = Instant::now();
    // Boxed: discovery's state lives on the heap only while it runs, not through the address checks that follow
    // (64 probes in flight each carry their future).
    let mut discovery = Box::pin(discovery::discover(env, name)).await;
    // The certificate the well-known's port 443 served, for `local_certificates` (read before the connection goes).
    let well_known_served = discovery
        .kept
        .as_ref()
        .filter(|_| env.local_certs.covers_server(name.as_str()))
        .and_then(fetch::Kept::served)
        .map(|(host, address, leaf)| (host.to_owned(), address, leaf.clone()));
    // The client and support well-knowns live on the server name's port 443, like the server well-known: they
    // take its connection (one after the other: one HTTP/1.1 connection) and run beside the address checks.
    // Without them the connection closes before the checks start.
    let mut kept = discovery.kept.take();
    let known = &mut discovery.known;
    let side = async {
        let client = if env.checks.client {
            Some(client::discover_client(env, name, known, &mut kept).await)
        } else {
            None
        };
        let support = if env.checks.support {
            Some(support::lookup(env, name, known, &mut kept).await)
        } else {
            None
        };
        drop(kept.take());
        (client, support)
    };
    let expect = Expect {
        server_name: name.as_str(),
        tls_name: &discovery.report.tls_name,
        host_header: &discovery.report.host_header,
    };
    let addresses = join_all(
        discovery
            .endpoints
            .iter()
            .map(|ep| probe_address(env, ep, &expect)),
    );
    let (mut addresses, (client, support)) =
        futures_util::future::join(addresses, Box::pin(side)).await;
    share_key_documents(&mut addresses);
    let local_certs = local_certs_report(
        env,
        name.as_str(),
        &discovery.report.tls_name,
        &addresses,
        well_known_served.as_ref(),
    );
    let report = ServerReport {
        local_certs,
        history: crate::report::History::default(),
        key_history: crate::report::KeyHistory::default(),
        server_name: name.shared_str().into(),
        started_at,
        finished_at: SystemTime::now(),
        duration: start.elapsed(),
        discovery: discovery.report,
        addresses,
        failures: discovery.failures,
        client,
        support,
    };
    tracing::debug!(
        server_name = %report.server_name,
        success = report.success(),
        method = %report.discovery.method,
        addresses = report.addresses.len(),
        duration_ms = report.duration.as_millis(),
        "probe finished"
    );
    report
}

/// The `local_certificates` files of `server_name` (read only if they changed) and every served certificate they
/// renew: each federation address's (judged for `tls_name`) and the well-known's port 443 (judged for its host).
fn local_certs_report(
    env: &ProbeEnv,
    server_name: &str,
    tls_name: &str,
    addresses: &[AddressReport],
    well_known: Option<&(String, std::net::SocketAddr, Arc<crate::report::CertFacts>)>,
) -> crate::report::LocalCertsReport {
    if !env.local_certs.covers_server(server_name) {
        return crate::report::LocalCertsReport::default();
    }
    let files = env.local_certs.files_of(server_name);
    let federation = addresses.iter().filter_map(|a| {
        let leaf = a.certificate.as_ref()?.chain.first()?;
        Some(local_certs::Served {
            address: a.address,
            name: tls_name,
            well_known: false,
            leaf,
        })
    });
    let served: Vec<_> = federation
        .chain(well_known.map(|(host, address, leaf)| local_certs::Served {
            address: *address,
            name: host,
            well_known: true,
            leaf,
        }))
        .collect();
    let not_reloaded = local_certs::judge(&files, &served, SystemTime::now());
    crate::report::LocalCertsReport {
        files: files.into_iter().map(|f| f.file).collect(),
        not_reloaded: not_reloaded.into(),
    }
}

/// Runs `probe`, one probe of `name`, for at most `deadline`: the one place where a probe is cut. A probe still
/// running then is dropped with all it holds (its sockets, its `probes_in_flight` count), and `Err` carries the
/// report of the cut ([`ServerReport::timed_out`]), so that the caller can log it; either way there is a report.
///
/// Each probe is cut once, by whoever runs it: the scheduler at the schedule's deadline, `GET /probe` at its
/// scrape timeout, the report API and the `check` command at [`ProbeEnv::probe_deadline`].
pub async fn run_within<F>(
    name: &ServerName,
    deadline: Duration,
    probe: F,
) -> Result<ServerReport, ServerReport>
where
    F: Future<Output = ServerReport>,
{
    let started_at = SystemTime::now();
    tokio::time::timeout(deadline, probe)
        .await
        .map_err(|_| ServerReport::timed_out(name.as_str(), started_at, deadline))
}

/// Connect, handshake, judge, then the Matrix checks on the same connection, for one `ip:port`.
/// Addresses of one server usually serve the same key document: they keep one copy of its bytes between them
/// (the report keeps each document as served, for the tester's `Keys`).
fn share_key_documents(addresses: &mut [AddressReport]) {
    for i in 1..addresses.len() {
        let (earlier, rest) = addresses.split_at_mut(i);
        let Some(keys) = rest[0].keys.as_mut() else {
            continue;
        };
        if let Some(same) = earlier
            .iter()
            .filter_map(|a| a.keys.as_ref())
            .find(|k| k.raw == keys.raw)
        {
            keys.raw = same.raw.clone();
        }
    }
}

async fn probe_address(env: &ProbeEnv, endpoint: &Endpoint, expect: &Expect<'_>) -> AddressReport {
    let mut report = AddressReport::new(endpoint.address, endpoint.target_host.clone());

    // "The certificate must be valid for ..." the server name or the delegated name, never the SRV target.
    // Each stage's future is boxed: it lives on the heap only while that stage runs, so 64 probes in flight
    // carry the state of the stage they are in, not the largest of all of them.
    let opened = Box::pin(connect::open(env, [endpoint.address], expect.tls_name)).await;
    report.phases.extend(opened.phases());
    let judged = match opened.result {
        Ok(judged) => judged,
        Err(e) => {
            report.failures.push(e.into_failure());
            return report;
        }
    };
    report.tls = Some(judged.tls);
    report
        .failures
        .extend(judged.certificate.failures.iter().cloned());
    report.certificate = Some(judged.certificate);
    if env.checks.keys || env.checks.version {
        // The checks run even when the certificate is invalid: a peer would stop here, but the operator
        // learns more from seeing the rest too.
        match Box::pin(HttpConn::handshake(judged.stream, env.timeouts.http)).await {
            Ok(mut conn) => Box::pin(matrix_checks(env, &mut conn, expect, &mut report)).await,
            Err(e) => {
                let stage = if env.checks.keys {
                    Stage::Keys
                } else {
                    Stage::Version
                };
                report.failures.push(get_failure(stage, &e));
            }
        }
    }
    report
}

/// `GET /_matrix/key/v2/server` and `GET /_matrix/federation/v1/version` on the judged connection.
async fn matrix_checks(
    env: &ProbeEnv,
    conn: &mut HttpConn,
    expect: &Expect<'_>,
    report: &mut AddressReport,
) {
    if env.checks.keys {
        let response = timed_get(env, conn, expect, report, Phase::Keys).await;
        // A request that timed out or broke leaves no connection to send the next one on; neither does a body cut
        // at the cap (the unread rest closes the connection, and the version check would fail for our cap).
        let broken = matches!(
            response,
            Err(GetError::Timeout(_) | GetError::Http(_) | GetError::TooLarge(_))
        );
        match ok_response(Stage::Keys, response) {
            Ok(body) => {
                let (keys, failures) =
                    keys::check_key_document(&body.body, expect.server_name, SystemTime::now());
                report.keys = keys;
                report.failures.extend(failures);
            }
            Err(f) => report.failures.push(f),
        }
        if broken {
            return;
        }
    }
    if env.checks.version {
        let response = timed_get(env, conn, expect, report, Phase::Version).await;
        match ok_response(Stage::Version, response).and_then(|r| parse_version(&r.body)) {
            Ok(version) => report.version = Some(version),
            Err(f) => report.failures.push(f),
        }
    }
}

/// The GET of a Matrix check (`phase` is `Keys` or `Version`) with its path and body cap, its time recorded as
/// that phase.
async fn timed_get(
    env: &ProbeEnv,
    conn: &mut HttpConn,
    expect: &Expect<'_>,
    report: &mut AddressReport,
    phase: Phase,
) -> Result<Response, GetError> {
    let (path, cap) = match phase {
        Phase::Keys => ("/_matrix/key/v2/server", MAX_KEYS_BODY),
        _ => ("/_matrix/federation/v1/version", MAX_VERSION_BODY),
    };
    let start = Instant::now();
    let response = conn
        .get(path, expect.host_header, cap, env.timeouts.http)
        .await;
    report.phases.record(phase, start.elapsed());
    response
}

/// A 200 answer, or the failure that any other outcome is.
fn ok_response(stage: Stage, response: Result<Response, GetError>) -> Result<Response, Failure> {
    let response = response.map_err(|e| get_failure(stage, &e))?;
    if response.status == 200 {
        return Ok(response);
    }
    let html = looks_like_html(&response.body);
    Err(Failure::new(
        stage,
        Reason::HttpStatus,
        format!(
            "HTTP {}{}",
            response.status,
            if html {
                " with an HTML page: a proxy may be routing /_matrix elsewhere"
            } else {
                ""
            }
        ),
    ))
}

/// `{"server": {"name": "...", "version": "..."}}`; both fields are optional in the spec.
fn parse_version(body: &[u8]) -> Result<VersionReport, Failure> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        let hint = if looks_like_html(body) {
            "an HTML page: a proxy may be routing /_matrix elsewhere"
        } else {
            "not JSON"
        };
        Failure::new(
            Stage::Version,
            Reason::NotJson,
            format!("the version answer is {hint} ({e})"),
        )
    })?;
    let server = value.get("server");
    let field = |k: &str| {
        server
            .and_then(|s| s.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    Ok(VersionReport {
        name: field("name"),
        version: field("version"),
    })
}

fn looks_like_html(body: &[u8]) -> bool {
    body.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'<')
}

/// Classifies an HTTP request that gave no usable answer.
fn get_failure(stage: Stage, e: &GetError) -> Failure {
    let reason = match e {
        GetError::Timeout(_) => Reason::Timeout,
        // A body past the cap is not a document a homeserver serves.
        GetError::TooLarge(_) => Reason::NotJson,
        GetError::Http(_) => Reason::HttpStatus,
    };
    Failure::new(stage, reason, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::KeysReport;

    fn address(addr: &str, raw: &'static [u8]) -> AddressReport {
        AddressReport {
            address: addr.parse().unwrap(),
            target_host: "example.org".into(),
            phases: crate::report::Timings::default(),
            tls: None,
            certificate: None,
            keys: Some(KeysReport {
                raw: bytes::Bytes::copy_from_slice(raw),
                ..KeysReport::default()
            }),
            version: None,
            failures: Vec::new(),
        }
    }

    #[test]
    fn addresses_that_served_the_same_document_share_its_bytes() {
        let mut addresses = [
            address("192.0.2.1:8448", b"{\"a\":1}"),
            address("[2001:db8::1]:8448", b"{\"a\":1}"),
            address("192.0.2.2:8448", b"{\"a\":2}"),
        ];
        let raw = |a: &AddressReport| a.keys.as_ref().unwrap().raw.clone();
        assert_ne!(raw(&addresses[0]).as_ptr(), raw(&addresses[1]).as_ptr());
        share_key_documents(&mut addresses);
        assert_eq!(raw(&addresses[0]).as_ptr(), raw(&addresses[1]).as_ptr());
        assert_eq!(raw(&addresses[1]), &b"{\"a\":1}"[..]);
        assert_eq!(raw(&addresses[2]), &b"{\"a\":2}"[..]);
    }
}
