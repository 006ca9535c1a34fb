//! The one orchestrator: `probe_server(env, name) -> ServerReport`.
//!
//! Discovery first, then every endpoint concurrently: TCP connect, TLS handshake with the spec's name (SNI,
//! or none for IP literals), and the certificate verdict. Every step runs under its own timeout from config
//! and is timed. The result is plain data; nothing here knows about metrics or HTTP routes.

use std::io;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use futures_util::future::join_all;
use tokio::net::TcpStream;

use crate::discovery::{self, Endpoint};
use crate::env::ProbeEnv;
use crate::report::{AddressReport, Failure, Phase, Reason, ServerReport, Stage};
use crate::server_name::ServerName;

/// Probes one server name once: discovery, then every address.
pub async fn probe_server(env: &ProbeEnv, name: &ServerName) -> ServerReport {
    let started_at = SystemTime::now();
    let start = Instant::now();
    let discovery = discovery::discover(env, name).await;
    let tls_name = discovery.report.tls_name.as_str();
    let addresses = join_all(
        discovery
            .endpoints
            .iter()
            .map(|ep| probe_address(env, ep, tls_name)),
    )
    .await;
    let report = ServerReport {
        server_name: name.as_str().to_owned(),
        started_at,
        finished_at: SystemTime::now(),
        duration: start.elapsed(),
        discovery: discovery.report,
        addresses,
        failures: discovery.failures,
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

/// Connect, handshake and judge one `ip:port`.
async fn probe_address(env: &ProbeEnv, endpoint: &Endpoint, tls_name: &str) -> AddressReport {
    let mut report = AddressReport {
        address: endpoint.address,
        target_host: endpoint.target_host.clone(),
        phases: Vec::new(),
        tls: None,
        certificate: None,
        keys: None,
        version: None,
        failures: Vec::new(),
    };

    let start = Instant::now();
    let connected =
        tokio::time::timeout(env.timeouts.connect, TcpStream::connect(endpoint.address)).await;
    report.phases.push((Phase::Connect, start.elapsed()));
    let tcp = match connected {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => {
            report.failures.push(connect_failure(endpoint.address, &e));
            return report;
        }
        Err(_) => {
            report.failures.push(Failure::new(
                Stage::Connect,
                Reason::ConnectionTimeout,
                format!(
                    "TCP connect to {} did not finish within {}",
                    endpoint.address,
                    humantime::format_duration(env.timeouts.connect)
                ),
            ));
            return report;
        }
    };

    let start = Instant::now();
    let handshake = env
        .tls
        .handshake(tcp, tls_name, env.timeouts.tls_handshake)
        .await;
    report.phases.push((Phase::TlsHandshake, start.elapsed()));
    let handshake = match handshake {
        Ok(h) => h,
        Err(f) => {
            report.failures.push(f);
            return report;
        }
    };
    report.tls = Some(handshake.facts);
    // "The certificate must be valid for ..." the server name or the delegated name, never the SRV target.
    let verdict = env.tls.judge(&handshake.chain, tls_name, SystemTime::now());
    report.failures.extend(verdict.failures.iter().cloned());
    report.certificate = Some(verdict);
    report
}

/// Classifies a failed TCP connect once.
fn connect_failure(address: SocketAddr, e: &io::Error) -> Failure {
    let reason = match e.kind() {
        io::ErrorKind::ConnectionRefused => Reason::ConnectionRefused,
        io::ErrorKind::TimedOut => Reason::ConnectionTimeout,
        _ => Reason::Unreachable,
    };
    Failure::new(
        Stage::Connect,
        reason,
        format!("TCP connect to {address}: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_errors_are_classified_once() {
        let addr: SocketAddr = "192.0.2.1:8448".parse().unwrap();
        let cases = [
            (io::ErrorKind::ConnectionRefused, Reason::ConnectionRefused),
            (io::ErrorKind::TimedOut, Reason::ConnectionTimeout),
            (io::ErrorKind::NetworkUnreachable, Reason::Unreachable),
            (io::ErrorKind::HostUnreachable, Reason::Unreachable),
            (io::ErrorKind::AddrNotAvailable, Reason::Unreachable),
        ];
        for (kind, want) in cases {
            let f = connect_failure(addr, &io::Error::from(kind));
            assert_eq!((f.stage, f.reason), (Stage::Connect, want), "{kind:?}");
            assert!(f.message.contains("192.0.2.1:8448"));
        }
    }
}
