//! Self-tests of the hermetic test world (tests/support): CA verdicts, fake DNS answers, fake HTTPS servers.

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RData;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use support::dns::resolver;
use support::https::WELL_KNOWN_SERVER;
use support::{
    Behaviour, FakeDns, FakeServer, Leaf, PortAnchor, Reply, Routes, SilentDns, TestCa, Validity,
    Zone, self_signed,
};

/// Upper bound for any single network step in these tests (they normally take milliseconds).
const STEP: Duration = Duration::from_secs(5);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

// ---------------------------------------------------------------- CA

fn verify(ca: &TestCa, chain: &[CertificateDer<'static>], name: &str) -> Result<(), rustls::Error> {
    let verifier =
        WebPkiServerVerifier::builder_with_provider(Arc::new(ca.root_store()), provider())
            .build()
            .expect("build verifier");
    let name = ServerName::try_from(name.to_owned()).expect("valid server name");
    verifier
        .verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now())
        .map(|_| ())
}

fn cert_error(r: Result<(), rustls::Error>) -> CertificateError {
    match r {
        Err(rustls::Error::InvalidCertificate(e)) => e,
        other => panic!("expected a certificate error, got {other:?}"),
    }
}

#[test]
fn ca_leaf_with_intermediate_verifies() {
    let ca = TestCa::new("world-ok");
    let leaf = ca.leaf(&["example.test", "127.0.0.2"], Validity::Valid);
    assert_eq!(leaf.chain.len(), 2);
    verify(&ca, &leaf.chain, "example.test").expect("DNS SAN verifies");
    verify(&ca, &leaf.chain, "127.0.0.2").expect("IP SAN verifies");
    assert!(matches!(
        cert_error(verify(&ca, &leaf.chain, "other.test")),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
    ));
    let soon = ca.leaf(
        &["soon.test"],
        Validity::ExpiresIn(Duration::from_secs(3600)),
    );
    verify(&ca, &soon.chain, "soon.test").expect("expires in an hour: still valid");
    let (_, x509) = x509_parser::parse_x509_certificate(&soon.chain[0]).expect("parse leaf");
    let left =
        x509.validity().not_after.timestamp() - time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        (3500..=3600).contains(&left),
        "not_after ≈ now + 1h, got {left}s"
    );
    assert_eq!(
        x509.subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok()),
        Some("soon.test")
    );
}

#[test]
fn ca_missing_intermediate_is_unknown_issuer() {
    let ca = TestCa::new("world-incomplete");
    let leaf = ca.leaf_without_intermediate(&["example.test"], Validity::Valid);
    assert_eq!(leaf.chain.len(), 1);
    assert_eq!(
        cert_error(verify(&ca, &leaf.chain, "example.test")),
        CertificateError::UnknownIssuer
    );
}

#[test]
fn ca_validity_windows() {
    let ca = TestCa::new("world-validity");
    let expired = ca.leaf(&["example.test"], Validity::Expired);
    assert!(matches!(
        cert_error(verify(&ca, &expired.chain, "example.test")),
        CertificateError::Expired | CertificateError::ExpiredContext { .. }
    ));
    let future = ca.leaf(&["example.test"], Validity::NotYetValid);
    assert!(matches!(
        cert_error(verify(&ca, &future.chain, "example.test")),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. }
    ));
}

#[test]
fn ca_other_ca_and_self_signed_are_unknown_issuer() {
    let ca = TestCa::new("world-a");
    let other = TestCa::new("world-a"); // same label on purpose: DNs must still differ
    let leaf = other.leaf(&["example.test"], Validity::Valid);
    assert_eq!(
        cert_error(verify(&ca, &leaf.chain, "example.test")),
        CertificateError::UnknownIssuer
    );
    let selfie = self_signed(&["example.test"], Validity::Valid);
    assert_eq!(
        cert_error(verify(&ca, &selfie.chain, "example.test")),
        CertificateError::UnknownIssuer
    );
}

#[test]
fn ca_root_pem_round_trips() {
    let ca = TestCa::new("world-pem");
    let dir = std::env::temp_dir().join(format!("mfe-world-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let path = ca.write_root_pem(&dir);
    let certs: Vec<_> = CertificateDer::pem_file_iter(&path)
        .expect("open PEM")
        .collect::<Result<_, _>>()
        .expect("parse PEM");
    std::fs::remove_dir_all(&dir).expect("remove temp dir");
    assert_eq!(certs, vec![ca.root_der()]);
    assert!(ca.root_pem().starts_with("-----BEGIN CERTIFICATE-----"));
}

// ---------------------------------------------------------------- DNS

fn zone() -> Zone {
    Zone::new()
        .a("example.test", Ipv4Addr::new(127, 0, 0, 2))
        .aaaa("example.test", Ipv6Addr::LOCALHOST)
        .srv(
            "_matrix-fed._tcp.example.test",
            10,
            5,
            8448,
            "host.example.test",
        )
        .srv(
            "_matrix-fed._tcp.example.test",
            20,
            0,
            8449,
            "backup.example.test",
        )
        .srv("_matrix-fed._tcp.dot.test", 0, 0, 0, ".")
        .cname("alias.example.test", "example.test")
        .cname("alias2.example.test", "alias.example.test")
        .txt("textonly.test", "exists")
        .ttl(60)
        .a("short.test", Ipv4Addr::new(127, 0, 0, 5))
        .servfail("broken.test")
}

fn a_records(lookup: &hickory_resolver::lookup::Lookup) -> Vec<Ipv4Addr> {
    lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn dns_a_aaaa_srv() {
    let dns = FakeDns::start(zone()).await;
    let r = resolver(dns.addr, STEP);

    let a = r.ipv4_lookup("example.test.").await.expect("A");
    assert_eq!(a_records(&a), vec![Ipv4Addr::new(127, 0, 0, 2)]);
    assert!(a.answers().iter().all(|rec| rec.ttl == 300));

    let short = r.ipv4_lookup("short.test.").await.expect("A with ttl 60");
    assert_eq!(short.answers()[0].ttl, 60);

    let aaaa = r.ipv6_lookup("example.test.").await.expect("AAAA");
    let v6: Vec<Ipv6Addr> = aaaa
        .answers()
        .iter()
        .filter_map(|rec| match &rec.data {
            RData::AAAA(a) => Some(a.0),
            _ => None,
        })
        .collect();
    assert_eq!(v6, vec![Ipv6Addr::LOCALHOST]);

    let srv = r
        .srv_lookup("_matrix-fed._tcp.example.test.")
        .await
        .expect("SRV");
    let mut got: Vec<(u16, u16, u16, String)> = srv
        .answers()
        .iter()
        .filter_map(|rec| match &rec.data {
            RData::SRV(s) => Some((s.priority, s.weight, s.port, s.target.to_string())),
            _ => None,
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (10, 5, 8448, "host.example.test.".to_owned()),
            (20, 0, 8449, "backup.example.test.".to_owned()),
        ]
    );

    let dot = r
        .srv_lookup("_matrix-fed._tcp.dot.test.")
        .await
        .expect("SRV to .");
    match &dot.answers()[0].data {
        RData::SRV(s) => assert!(s.target.is_root(), "target is the root name"),
        other => panic!("expected SRV, got {other:?}"),
    }
    assert!(dns.queries() >= 5);
}

#[tokio::test]
async fn dns_cname_is_followed_in_zone() {
    let dns = FakeDns::start(zone()).await;
    let r = resolver(dns.addr, STEP);
    for name in ["alias.example.test.", "alias2.example.test."] {
        let before = dns.queries();
        let a = r.ipv4_lookup(name).await.expect("A through CNAME");
        assert_eq!(
            dns.queries() - before,
            1,
            "the server sends the whole chain: {name}"
        );
        assert_eq!(a_records(&a), vec![Ipv4Addr::new(127, 0, 0, 2)], "{name}");
        assert!(
            a.answers()
                .iter()
                .any(|rec| matches!(rec.data, RData::CNAME(_))),
            "CNAME kept in answers for {name}"
        );
    }
}

#[tokio::test]
async fn dns_nxdomain_nodata_servfail() {
    let dns = FakeDns::start(zone()).await;
    let r = resolver(dns.addr, STEP);

    let nx = r.ipv4_lookup("missing.test.").await.expect_err("NXDOMAIN");
    assert!(
        matches!(&nx, NetError::Dns(DnsError::NoRecordsFound(n)) if n.response_code == ResponseCode::NXDomain),
        "{nx:?}"
    );

    for (name, why) in [
        ("textonly.test.", "TXT only"),
        ("_matrix-fed._tcp.example.test.", "SRV only"),
    ] {
        let nodata = r.ipv4_lookup(name).await.expect_err(why);
        assert!(
            matches!(&nodata, NetError::Dns(DnsError::NoRecordsFound(n)) if n.response_code == ResponseCode::NoError),
            "{why}: {nodata:?}"
        );
    }

    let sf = r.ipv4_lookup("broken.test.").await.expect_err("SERVFAIL");
    assert!(
        matches!(
            &sf,
            NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail))
        ),
        "{sf:?}"
    );
    let sf_srv = r
        .srv_lookup("broken.test.")
        .await
        .expect_err("SERVFAIL for SRV too");
    assert!(
        matches!(
            &sf_srv,
            NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail))
        ),
        "{sf_srv:?}"
    );
}

/// `Zone::zone_per_name` (the benchmark world's 100,000-name zone) answers as one zone does: records, NODATA
/// for a type a name lacks, NXDOMAIN for a name that does not exist (inside a name's small zone or outside all).
#[tokio::test]
async fn dns_zone_per_name_answers_as_one_zone() {
    let build = || {
        Zone::new()
            .a("d1.bench.test", Ipv4Addr::new(127, 20, 0, 1))
            .a("w2.bench.test", Ipv4Addr::new(127, 20, 0, 2))
            .a("w2.bench.test", Ipv4Addr::new(127, 20, 0, 3))
            .srv(
                "_matrix-fed._tcp.w2.bench.test",
                10,
                5,
                8448,
                "old.bench.test",
            )
            .srv(
                "_matrix-fed._tcp.s3.bench.test",
                10,
                5,
                8448,
                "t3.bench.test",
            )
            .a("t3.bench.test", Ipv4Addr::new(127, 20, 0, 4))
    };
    for (zone, what) in [
        (build(), "one zone"),
        (build().zone_per_name(), "zone per name"),
    ] {
        let dns = FakeDns::start(zone).await;
        let r = resolver(dns.addr, STEP);
        let two = r.ipv4_lookup("w2.bench.test.").await.expect("A");
        assert_eq!(a_records(&two).len(), 2, "{what}");
        let srv = r
            .srv_lookup("_matrix-fed._tcp.s3.bench.test.")
            .await
            .expect("SRV");
        assert_eq!(srv.answers().len(), 1, "{what}");
        let t3 = r
            .ipv4_lookup("t3.bench.test.")
            .await
            .expect("A of the target");
        assert_eq!(a_records(&t3), vec![Ipv4Addr::new(127, 20, 0, 4)], "{what}");
        for (name, code) in [
            ("d1.bench.test.", ResponseCode::NoError),
            ("_matrix-fed._tcp.d1.bench.test.", ResponseCode::NXDomain),
            ("old.bench.test.", ResponseCode::NXDomain),
        ] {
            let err = r.ipv6_lookup(name).await.expect_err("no AAAA");
            assert!(
                matches!(&err, NetError::Dns(DnsError::NoRecordsFound(n)) if n.response_code == code),
                "{what}: {name}: {err:?}"
            );
        }
    }
}

#[tokio::test]
async fn dns_set_zone_is_seen_at_once() {
    let dns = FakeDns::start(zone()).await;
    let r = resolver(dns.addr, STEP);
    let before = r.ipv4_lookup("example.test.").await.expect("A");
    assert_eq!(a_records(&before), vec![Ipv4Addr::new(127, 0, 0, 2)]);
    dns.set_zone(Zone::new().a("example.test", Ipv4Addr::new(127, 0, 0, 9)));
    let after = r
        .ipv4_lookup("example.test.")
        .await
        .expect("A after change");
    assert_eq!(a_records(&after), vec![Ipv4Addr::new(127, 0, 0, 9)]);
}

#[tokio::test]
async fn dns_silent_server_times_out() {
    let silent = SilentDns::start().await;
    let r = resolver(silent.addr, Duration::from_millis(200));
    let err = tokio::time::timeout(STEP, r.ipv4_lookup("example.test."))
        .await
        .expect("resolver gives up on its own")
        .expect_err("no answer");
    assert!(matches!(err, NetError::Timeout), "{err:?}");
}

// ---------------------------------------------------------------- HTTPS

fn client_config(ca: &TestCa) -> Arc<ClientConfig> {
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports default versions")
        .with_root_certificates(ca.root_store())
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

async fn tls(
    addr: SocketAddr,
    name: &str,
    cfg: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = tokio::time::timeout(STEP, TcpStream::connect(addr))
        .await
        .expect("connect in time")?;
    let name = ServerName::try_from(name.to_owned()).expect("valid server name");
    TlsConnector::from(cfg).connect(name, tcp).await
}

async fn http(stream: TlsStream<TcpStream>) -> SendRequest<Empty<Bytes>> {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(conn);
    sender
}

async fn get(
    sender: &mut SendRequest<Empty<Bytes>>,
    path: &str,
    host: &str,
) -> (StatusCode, http::HeaderMap, Bytes) {
    let req = Request::get(path)
        .header(header::HOST, host)
        .body(Empty::new())
        .expect("build request");
    let resp = tokio::time::timeout(STEP, sender.send_request(req))
        .await
        .expect("response in time")
        .expect("response");
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(STEP, body.collect())
        .await
        .expect("body in time")
        .expect("body")
        .to_bytes();
    (parts.status, parts.headers, body)
}

const WELL_KNOWN: &str = r#"{"m.server":"x.test:8448"}"#;

fn https(leaf: Leaf) -> Behaviour {
    Behaviour::Https {
        leaf,
        routes: Routes::new().well_known_json(WELL_KNOWN),
    }
}

#[tokio::test]
async fn https_keep_alive_sni_and_host_are_recorded() {
    let ca = TestCa::new("world-https");
    let mut anchor = PortAnchor::new();
    let server = FakeServer::start(
        anchor.bind(Ipv4Addr::new(127, 0, 0, 2)),
        https(ca.leaf(&["example.test"], Validity::Valid)),
    )
    .await;
    assert_eq!(server.addr, anchor.addr(Ipv4Addr::new(127, 0, 0, 2)));

    let stream = tls(server.addr, "example.test", client_config(&ca))
        .await
        .expect("TLS handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut sender = http(stream).await;
    for host in ["example.test", "example.test:8448"] {
        let (status, headers, body) = get(&mut sender, WELL_KNOWN_SERVER, host).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(body, WELL_KNOWN);
    }
    let (status, _, body) = get(&mut sender, "/_matrix/key/v2/server", "example.test").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.starts_with(br#"{"errcode":"M_UNRECOGNIZED""#));

    assert_eq!(server.connections(), 1, "one keep-alive connection");
    assert_eq!(server.sni_seen(), vec![Some("example.test".to_owned())]);
    assert_eq!(
        server.requests(),
        vec![
            (WELL_KNOWN_SERVER.to_owned(), "example.test".to_owned()),
            (WELL_KNOWN_SERVER.to_owned(), "example.test:8448".to_owned()),
            (
                "/_matrix/key/v2/server".to_owned(),
                "example.test".to_owned()
            ),
        ]
    );
}

#[tokio::test]
async fn https_anchor_listeners_serve_v4_and_v6_loopback_and_ip_literals_send_no_sni() {
    let ca = TestCa::new("world-anchor");
    let mut anchor = PortAnchor::new();
    let leaf = ca.leaf(&["127.0.0.1", "::1"], Validity::Valid);
    let v4 = FakeServer::start(anchor.bind(Ipv4Addr::LOCALHOST), https(leaf.clone())).await;
    let v6 = FakeServer::start(anchor.bind(Ipv6Addr::LOCALHOST), https(leaf)).await;
    assert_eq!(
        v4.addr,
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), anchor.port)
    );
    assert_eq!(
        v6.addr,
        SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), anchor.port)
    );

    for (server, name) in [(&v4, "127.0.0.1"), (&v6, "::1")] {
        let stream = tls(server.addr, name, client_config(&ca))
            .await
            .expect("TLS to IP literal");
        let mut sender = http(stream).await;
        let (status, _, body) = get(&mut sender, WELL_KNOWN_SERVER, name).await;
        assert_eq!((status, &body[..]), (StatusCode::OK, WELL_KNOWN.as_bytes()));
        assert_eq!(server.sni_seen(), vec![None], "no SNI for an IP literal");
    }
}

#[tokio::test]
async fn https_replies() {
    let ca = TestCa::new("world-replies");
    let mut anchor = PortAnchor::new();
    let routes = Routes::new()
        .route(
            "/redirect",
            Reply::Redirect {
                status: 308,
                location: "https://elsewhere.test/x".into(),
            },
        )
        .route(
            "/typed",
            Reply::Json {
                status: 200,
                headers: vec![
                    ("Content-Type".into(), "text/plain".into()),
                    ("x-extra".into(), "1".into()),
                ],
                body: "{}".into(),
            },
        )
        .route(
            "/raw",
            Reply::Raw {
                status: 500,
                headers: vec![],
                body: b"oops".to_vec(),
            },
        )
        .route("/big", Reply::Big { bytes: 100_000 })
        .route("/q?x=1", Reply::json(200, "query"))
        .route("/hang", Reply::Hang);
    let leaf = ca.leaf(&["example.test"], Validity::Valid);
    let server = FakeServer::start(
        anchor.bind(Ipv4Addr::new(127, 0, 0, 3)),
        Behaviour::Https { leaf, routes },
    )
    .await;
    let mut s = http(
        tls(server.addr, "example.test", client_config(&ca))
            .await
            .expect("TLS"),
    )
    .await;

    let (status, headers, body) = get(&mut s, "/redirect", "example.test").await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(headers[header::LOCATION], "https://elsewhere.test/x");
    assert!(body.is_empty());

    let (_, headers, _) = get(&mut s, "/typed", "example.test").await;
    assert_eq!(headers[header::CONTENT_TYPE], "text/plain");
    assert_eq!(headers["x-extra"], "1");

    let (status, headers, body) = get(&mut s, "/raw", "example.test").await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::INTERNAL_SERVER_ERROR, &b"oops"[..])
    );
    assert!(headers.get(header::CONTENT_TYPE).is_none());

    let (status, headers, body) = get(&mut s, "/big", "example.test").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers.get(header::CONTENT_LENGTH).is_none(),
        "Big is chunked"
    );
    assert_eq!(body.len(), 100_000);
    assert!(body.iter().all(|&b| b == b'a'));

    let (_, _, body) = get(&mut s, "/q?x=1", "example.test").await;
    assert_eq!(body, "query");

    let req = Request::get("/hang")
        .header(header::HOST, "example.test")
        .body(Empty::new())
        .expect("request");
    let hung = tokio::time::timeout(Duration::from_millis(200), s.send_request(req)).await;
    assert!(hung.is_err(), "Hang never answers");
    assert_eq!(
        server.requests().last().map(|(p, _)| p.as_str()),
        Some("/hang")
    );
}

#[tokio::test]
async fn https_silent_and_garbage_servers_fail_the_handshake() {
    let ca = TestCa::new("world-bad");
    let mut anchor = PortAnchor::new();
    let silent = FakeServer::start(
        anchor.bind(Ipv4Addr::new(127, 0, 0, 4)),
        Behaviour::SilentTcp,
    )
    .await;
    let garbage =
        FakeServer::start(anchor.bind(Ipv4Addr::new(127, 0, 0, 5)), Behaviour::Garbage).await;

    let timed_out = tokio::time::timeout(
        Duration::from_millis(200),
        tls(silent.addr, "example.test", client_config(&ca)),
    )
    .await;
    assert!(
        timed_out.is_err(),
        "silent server: handshake never completes"
    );
    assert_eq!(silent.connections(), 1);

    let err = tokio::time::timeout(STEP, tls(garbage.addr, "example.test", client_config(&ca)))
        .await
        .expect("garbage fails fast")
        .expect_err("garbage is not TLS");
    let cause = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    assert!(
        matches!(cause, Some(rustls::Error::InvalidMessage(_))),
        "{err:?}"
    );
    assert_eq!(garbage.connections(), 1);
}

#[tokio::test]
async fn https_wrong_ca_is_rejected_but_sni_recorded() {
    let ca = TestCa::new("world-wrong-ca");
    let other = TestCa::new("world-wrong-ca-other");
    let mut anchor = PortAnchor::new();
    let server = FakeServer::start(
        anchor.bind(Ipv4Addr::new(127, 0, 0, 6)),
        https(other.leaf(&["example.test"], Validity::Valid)),
    )
    .await;
    let err = tls(server.addr, "example.test", client_config(&ca))
        .await
        .expect_err("untrusted CA");
    let cause = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    assert!(
        matches!(
            cause,
            Some(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ),
        "{err:?}"
    );
    assert_eq!(server.sni_seen(), vec![Some("example.test".to_owned())]);
}

#[tokio::test]
async fn dns_out_of_zone_is_refused_and_dangling_cname_is_nxdomain() {
    let dns = FakeDns::start(
        zone()
            .cname("ext.test", "example.org")
            .cname("dangling.test", "nowhere.test"),
    )
    .await;
    let r = resolver(dns.addr, STEP);
    for name in ["example.org.", "ext.test."] {
        let err = r
            .ipv4_lookup(name)
            .await
            .expect_err("outside the test zone");
        assert!(
            matches!(
                &err,
                NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused))
            ),
            "{name}: {err:?}"
        );
    }
    let before = dns.queries();
    let err = r
        .ipv4_lookup("dangling.test.")
        .await
        .expect_err("dangling CNAME");
    assert!(
        matches!(&err, NetError::Dns(DnsError::NoRecordsFound(n))
            if n.response_code == ResponseCode::NXDomain && n.query.name().to_string() == "nowhere.test."),
        "{err:?}"
    );
    assert_eq!(
        dns.queries() - before,
        2,
        "the resolver re-asks for the CNAME target"
    );
}
