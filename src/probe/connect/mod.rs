//! Reaching one address: TCP, the TLS handshake and its judge, the certificate's facts, and HTTP/1.1 on the
//! judged connection.
//!
//! [`open`] is the one sequence that the federation probe and the `.well-known` fetch both go through: TCP
//! connect, the TLS handshake for the name the certificate must be valid for, then the verdict on the chain
//! presented. Each network step runs under its timeout from config and is timed. The callers keep their own
//! reporting: the probe records phases and failures on its address report, the well-known fetch turns any
//! problem into a well-known outcome. Both then speak HTTP/1.1 on [`Judged::stream`] with
//! [`http_client::HttpConn`].

pub mod cert;
pub mod http_client;
pub mod signatures;
pub mod tls;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::probe::env::ProbeEnv;
use crate::report::{CertReport, Failure, Phase, Reason, Stage, TlsFacts};

/// TCP to the first of `addresses` that answers (each try within `timeouts.connect`), the TLS handshake for
/// `tls_name` (within `timeouts.tls_handshake`; an IP literal sends no SNI), then the verdict on the presented
/// chain for `tls_name` as of now. A bad verdict still yields the connection: the caller decides what it means.
pub async fn open(
    env: &ProbeEnv,
    addresses: impl IntoIterator<Item = SocketAddr>,
    tls_name: &str,
) -> Opened {
    let start = Instant::now();
    let tcp = connect_first(addresses, env.timeouts.connect).await;
    let connect = start.elapsed();
    let tcp = match tcp {
        Ok(tcp) => tcp,
        Err(e) => {
            return Opened {
                connect,
                tls_handshake: None,
                result: Err(e),
            };
        }
    };
    let start = Instant::now();
    let handshake = env
        .tls
        .handshake(tcp, tls_name, env.timeouts.tls_handshake)
        .await;
    let tls_handshake = Some(start.elapsed());
    let result = handshake.map_err(OpenError::Tls).map(|handshake| Judged {
        certificate: env.tls.judge(&handshake.chain, tls_name, SystemTime::now()),
        tls: handshake.facts,
        stream: handshake.stream,
    });
    Opened {
        connect,
        tls_handshake,
        result,
    }
}

/// What [`open`] yields: how long each network step took, and the judged connection or why there is none.
pub struct Opened {
    /// The TCP connect (every address tried, in turn).
    pub connect: Duration,
    /// The TLS handshake; `None` when no TCP connection was made.
    pub tls_handshake: Option<Duration>,
    pub result: Result<Judged, OpenError>,
}

impl Opened {
    /// The phases that ran, in order, with their durations.
    pub fn phases(&self) -> impl Iterator<Item = (Phase, Duration)> + use<> {
        std::iter::once((Phase::Connect, self.connect))
            .chain(self.tls_handshake.map(|d| (Phase::TlsHandshake, d)))
    }
}

/// A TLS connection and the verdict on the certificate it presented.
pub struct Judged {
    /// For HTTP/1.1 ([`http_client::HttpConn::handshake`]).
    pub stream: TlsStream<TcpStream>,
    /// The negotiated protocol version and cipher suite.
    pub tls: TlsFacts,
    /// Chain trust, name and validity window, judged separately ([`tls::TlsClient::judge`]).
    pub certificate: CertReport,
}

/// Why [`open`] made no connection.
#[derive(Debug)]
pub enum OpenError {
    /// There was no address to connect to.
    NoAddress,
    /// TCP connect to the last address tried failed.
    Connect(SocketAddr, io::Error),
    /// TCP connect to the last address tried did not finish within the connect timeout (given).
    ConnectTimeout(SocketAddr, Duration),
    /// The TLS handshake failed or timed out, as [`tls::TlsClient::handshake`] classified it.
    Tls(Failure),
}

impl OpenError {
    /// Classifies the error once, as a probe reports it: a `connect` failure (refused, timeout, unreachable) or
    /// the `tls` failure.
    #[must_use]
    pub fn into_failure(self) -> Failure {
        match self {
            Self::NoAddress => Failure::new(
                Stage::Connect,
                Reason::Unreachable,
                "no address to connect to",
            ),
            Self::Connect(address, e) => connect_failure(address, &e),
            Self::ConnectTimeout(address, timeout) => Failure::new(
                Stage::Connect,
                Reason::ConnectionTimeout,
                format!(
                    "TCP connect to {address} did not finish within {}",
                    humantime::format_duration(timeout)
                ),
            ),
            Self::Tls(f) => f,
        }
    }
}

/// The first TCP connection that `addresses`, tried in order, each within `timeout`, give; else the error of the
/// last one tried.
async fn connect_first(
    addresses: impl IntoIterator<Item = SocketAddr>,
    timeout: Duration,
) -> Result<TcpStream, OpenError> {
    let mut last = OpenError::NoAddress;
    for address in addresses {
        match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
            Ok(Ok(tcp)) => return Ok(tcp),
            Ok(Err(e)) => last = OpenError::Connect(address, e),
            Err(_) => last = OpenError::ConnectTimeout(address, timeout),
        }
    }
    Err(last)
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
