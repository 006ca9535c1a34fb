//! `--web.config.file`: every bad web config gets its one-line message; basic auth guards every route, and a flood
//! of wrong passwords does not hold up a correct login; TLS serves with the configured certificate (and a rotated
//! one), refuses plain HTTP, and survives stalled handshakes; client certificates when asked for; and the real
//! binary, secured, scrapes and stops on SIGTERM.

mod support;

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use matrix_federation_exporter::config::WebLimits;
use matrix_federation_exporter::serve::listener;
use matrix_federation_exporter::serve::web::{self, WebConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use support::binary::Log;
use support::{Leaf, TestCa, Validity};
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "mfe-webconfig-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

fn chain_pem(chain: &[CertificateDer<'_>]) -> String {
    chain.iter().map(|c| pem("CERTIFICATE", c)).collect()
}

fn key_pem(key: &PrivateKeyDer<'_>) -> String {
    pem("PRIVATE KEY", key.secret_der())
}

/// Writes `leaf` as `server.crt` and `server.key` in `dir`.
fn write_leaf(dir: &TempDir, leaf: &Leaf) {
    dir.write("server.crt", &chain_pem(&leaf.chain));
    dir.write("server.key", &key_pem(&leaf.key));
}

/// A cost-4 bcrypt hash (fast to verify in tests; production hashes use cost 10 or more).
fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}

fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

fn app() -> Router {
    Router::new()
        .route("/metrics", get(|| async { "some_metric 1\n" }))
        .route("/-/healthy", get(|| async { "Healthy\n" }))
}

/// `127.0.0.1` as a rustls server name.
fn loopback() -> ServerName<'static> {
    ServerName::IpAddress(std::net::IpAddr::from(Ipv4Addr::LOCALHOST).into())
}

fn client_config(roots: rustls::RootCertStore, client: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match client {
        Some(leaf) => builder
            .with_client_auth_cert(leaf.chain.clone(), leaf.key.clone_key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    // Every request is a full handshake: a resumed session would show the certificate of the first one.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
    peer_leaf: CertificateDer<'static>,
}

/// One HTTPS GET over a fresh TLS connection.
async fn https_get(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    path: &str,
    authorization: Option<&str>,
) -> Result<Reply, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(loopback(), tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let peer_leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(conn);
    let mut request = Request::get(path).header(header::HOST, addr.to_string());
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    let response = sender
        .send_request(
            request
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap(),
        )
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        peer_leaf,
    })
}

/// Serves `app()` with `web` on 127.0.0.1:0 until the returned sender is dropped or fired.
async fn start(web: WebConfig) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    start_with(web, WebLimits::default()).await
}

/// [`start`] with the listener's limits.
async fn start_with(
    web: WebConfig,
    limits: WebLimits,
) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let limits = tokio::sync::watch::channel(limits).1;
        listener::serve(listener, app(), Some(web), limits, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (addr, stop, task)
}

async fn oneshot_get(
    router: &Router,
    path: &str,
    authorization: Option<&str>,
) -> (u16, http::HeaderMap) {
    let headers: Vec<(&str, &str)> = authorization
        .map(|v| ("authorization", v))
        .into_iter()
        .collect();
    let answer = support::router::request(router, http::Method::GET, path, &headers).await;
    (answer.status.as_u16(), answer.headers)
}

// ---------------------------------------------------------------------------------------------------------------
// Bad configs

#[test]
fn bad_web_configs_get_one_line_naming_file_key_and_reason() {
    let dir = TempDir::new("bad");
    let ca = TestCa::new("webconfig-bad");
    let leaf = ca.leaf(&["127.0.0.1"], Validity::Valid);
    let other = ca.leaf(&["127.0.0.1"], Validity::Valid);
    write_leaf(&dir, &leaf);
    dir.write("other.key", &key_pem(&other.key));
    dir.write("empty.pem", "# nothing here\n");
    let ca_pem = dir.write("clients-ca.pem", &ca.root_pem());
    let good_hash = hash("pw");
    let _ = ca_pem;

    let tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    let cases: Vec<(&str, String, String)> = vec![
        ("blank file", String::new(), "enables neither tls_server_config nor basic_auth_users; the listener would be as open as without --web.config.file (drop the flag to serve plain HTTP)".into()),
        ("only headers", "http_server_config:\n  headers:\n    X-Frame-Options: deny\n".into(), "enables neither tls_server_config nor basic_auth_users; the listener would be as open as without --web.config.file (drop the flag to serve plain HTTP)".into()),
        ("empty basic_auth_users only", "basic_auth_users: {}\n".into(), "enables neither tls_server_config nor basic_auth_users; the listener would be as open as without --web.config.file (drop the flag to serve plain HTTP)".into()),
        ("empty tls_server_config", "tls_server_config:\n".into(), "tls_server_config: is empty; set cert_file and key_file, or remove the key".into()),
        ("unknown top-level key", "tls_config:\n  cert_file: x\n".into(), "line 1 column 1: unknown field `tls_config`, expected one of tls_server_config, http_server_config, basic_auth_users, rate_limit".into()),
        ("unknown tls key", format!("{tls}  certfile: x\n"), "line 4 column 3: unknown field `certfile`, expected one of cert, key, cert_file, key_file, client_auth_type, client_ca_file, client_ca, min_version, max_version, prefer_server_cipher_suites, cipher_suites, curve_preferences, client_allowed_sans".into()),
        ("missing key_file", "tls_server_config:\n  cert_file: server.crt\n".into(), "tls_server_config.key_file: missing (or give `key` inline)".into()),
        ("missing cert_file", "tls_server_config:\n  key_file: server.key\n".into(), "tls_server_config.cert_file: missing (or give `cert` inline)".into()),
        ("unreadable cert_file", "tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n".into(), format!("tls_server_config.cert_file: cannot read {:?}: No such file or directory (os error 2)", dir.0.join("nope.crt").display().to_string())),
        ("no certificate in cert_file", "tls_server_config:\n  cert_file: empty.pem\n  key_file: server.key\n".into(), "tls_server_config.cert_file: contains no PEM CERTIFICATE block".into()),
        ("no key in key_file", "tls_server_config:\n  cert_file: server.crt\n  key_file: server.crt\n".into(), "tls_server_config.key_file: contains no PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)".into()),
        ("key does not match", "tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n".into(), "tls_server_config.key_file: does not match the certificate in cert_file".into()),
        ("cert and cert_file", format!("{tls}  cert: inline\n"), "tls_server_config.cert: give either cert_file or cert, not both".into()),
        ("cipher_suites", format!("{tls}  cipher_suites: [TLS_AES_128_GCM_SHA256]\n"), "tls_server_config.cipher_suites: is not supported by matrix-federation-exporter (rustls picks safe defaults); remove it".into()),
        ("curve_preferences", format!("{tls}  curve_preferences: [X25519]\n"), "tls_server_config.curve_preferences: is not supported by matrix-federation-exporter (rustls picks safe defaults); remove it".into()),
        ("client_allowed_sans", format!("{tls}  client_allowed_sans: [a.example]\n"), "tls_server_config.client_allowed_sans: is not supported by matrix-federation-exporter (rustls picks safe defaults); remove it".into()),
        ("unverified client certs", format!("{tls}  client_auth_type: RequireAnyClientCert\n  client_ca_file: clients-ca.pem\n"), "tls_server_config.client_auth_type: \"RequireAnyClientCert\" accepts client certificates without verifying them and is not supported; use RequireAndVerifyClientCert (or VerifyClientCertIfGiven) with client_ca_file".into()),
        ("unknown client_auth_type", format!("{tls}  client_auth_type: Always\n"), "tls_server_config.client_auth_type: unknown value \"Always\"; expected NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert".into()),
        ("client CA without client auth", format!("{tls}  client_ca_file: clients-ca.pem\n"), "tls_server_config.client_ca_file: is set but client_auth_type is NoClientCert; set client_auth_type: RequireAndVerifyClientCert".into()),
        ("client auth without CA", format!("{tls}  client_auth_type: RequireAndVerifyClientCert\n"), "tls_server_config.client_ca_file: missing: client_auth_type RequireAndVerifyClientCert needs the CA that issues client certificates".into()),
        ("TLS 1.1", format!("{tls}  min_version: TLS11\n"), "tls_server_config.min_version: TLS11 is not supported (rustls speaks TLS12 and TLS13 only)".into()),
        ("unknown version", format!("{tls}  max_version: SSL3\n"), "tls_server_config.max_version: unknown TLS version \"SSL3\"; expected TLS12 or TLS13".into()),
        ("min above max", format!("{tls}  min_version: TLS13\n  max_version: TLS12\n"), "tls_server_config.min_version: is greater than max_version".into()),
        ("plaintext password", "basic_auth_users:\n  alice: change-me\n".into(), "basic_auth_users.alice: not a bcrypt hash (the hash format is malformed; expected 60 ASCII bytes); generate one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`".into()),
        ("not bcrypt", format!("basic_auth_users:\n  alice: \"$1${}\"\n", &good_hash[3..]), "basic_auth_users.alice: not a bcrypt hash (the hash prefix is not a bcrypt prefix); generate one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`".into()),
        ("cost too high", format!("basic_auth_users:\n  alice: \"{}\"\n", good_hash.replacen("$04$", "$32$", 1)), "basic_auth_users.alice: bcrypt cost 32 is outside 4 to 31".into()),
        ("colon in user name", format!("basic_auth_users:\n  \"a:b\": \"{good_hash}\"\n"), "basic_auth_users.a:b: a user name cannot contain ':' (basic auth splits user and password at the first ':')".into()),
        ("password hash not a string", "basic_auth_users:\n  alice: [1]\n".into(), "line 2 column 10: expected string scalar".into()),
        ("unknown header", format!("{tls}http_server_config:\n  headers:\n    Server: mine\n"), "http_server_config.headers.Server: this header cannot be configured; expected one of Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options, X-XSS-Protection, Content-Security-Policy".into()),
        ("bad header value", format!("{tls}http_server_config:\n  headers:\n    X-Frame-Options: allow\n"), "http_server_config.headers.X-Frame-Options: invalid value \"allow\"; expected one of deny, sameorigin".into()),
        ("unknown http key", format!("{tls}http_server_config:\n  http3: true\n"), "line 5 column 3: unknown field `http3`, expected one of http2, headers".into()),
        ("rate limit without burst", format!("{tls}rate_limit:\n  interval: 1s\n"), "rate_limit.burst: must be at least 1 when rate_limit.interval is set (0 would refuse every request)".into()),
        ("bad rate limit interval", format!("{tls}rate_limit:\n  interval: soon\n  burst: 5\n"), "rate_limit.interval: invalid duration \"soon\": expected number at 0".into()),
    ];
    let mut failures = Vec::new();
    for (what, text, expected) in &cases {
        let path = dir.write("web.yml", text);
        let expected = format!("{}: {expected}", path.display());
        match WebConfig::load(&path) {
            Ok(_) => failures.push(format!("{what}: accepted")),
            Err(e) if e.to_string() == expected => {
                assert!(!e.to_string().contains('\n'), "{what}: one line");
            }
            Err(e) => failures.push(format!("{what}:\n  got      {e}\n  expected {expected}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The hash is a secret: no message quotes it.
    let path = dir.write(
        "web.yml",
        &format!("basic_auth_users:\n  alice: \"{good_hash}x\"\n"),
    );
    let e = WebConfig::load(&path).unwrap_err().to_string();
    assert!(!e.contains(&good_hash[7..]), "{e}");

    // A missing file names the file.
    let missing = dir.0.join("missing.yml");
    assert_eq!(
        WebConfig::load(&missing).unwrap_err().to_string(),
        format!(
            "{}: cannot read: No such file or directory (os error 2)",
            missing.display()
        )
    );
}

#[test]
fn good_web_configs_load() {
    let dir = TempDir::new("good");
    let ca = TestCa::new("webconfig-good");
    let leaf = ca.leaf(&["127.0.0.1"], Validity::Valid);
    write_leaf(&dir, &leaf);
    dir.write("clients-ca.pem", &ca.root_pem());
    let h = hash("pw");
    let inline = format!(
        "tls_server_config:\n  cert: |\n{}  key: |\n{}",
        indent(&chain_pem(&leaf.chain)),
        indent(&key_pem(&leaf.key))
    );
    for text in [
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n".to_owned(),
        format!("basic_auth_users:\n  alice: '{h}'\n  bob: '{h}'\n"),
        // What a Go exporter's file typically holds, with keys we accept as they are.
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: NoClientCert\n  \
             min_version: TLS12\n  max_version: TLS13\n  prefer_server_cipher_suites: true\n  cert: ''\n\
             http_server_config:\n  http2: true\n  headers:\n    X-Frame-Options: deny\n    \
             Strict-Transport-Security: max-age=31536000\n\
             basic_auth_users:\n  alice: '{h}'\nrate_limit:\n  interval: 1s\n  burst: 20\n"
        ),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: clients-ca.pem\n".to_owned(),
        inline,
    ] {
        let path = dir.write("web.yml", &text);
        if let Err(e) = WebConfig::load(&path) {
            panic!("{text}\n→ {e}");
        }
    }
    let web = WebConfig::load(&dir.write(
        "web.yml",
        &format!("basic_auth_users:\n  alice: '{h}'\n  bob: '{h}'\n"),
    ))
    .unwrap();
    assert!(!web.tls_enabled());
    assert_eq!(web.basic_auth_users(), 2);
}

fn indent(text: &str) -> String {
    text.lines().flat_map(|l| ["    ", l, "\n"]).collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Basic auth

#[tokio::test]
async fn basic_auth_guards_every_route() {
    let web = WebConfig::from_yaml(
        &format!(
            "basic_auth_users:\n  alice: '{}'\n  bob: '{}'\nhttp_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n",
            hash("s3cret"),
            hash("other")
        ),
        Path::new(""),
    )
    .unwrap();
    let router = web.protect(app());

    for path in ["/metrics", "/-/healthy", "/no-such-page"] {
        for authorization in [
            None,
            Some(basic("alice", "wrong")),
            Some(basic("alice", "other")),
            Some(basic("mallory", "s3cret")),
            Some(basic("alice", "")),
            Some("Bearer s3cret".to_owned()),
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("alice")
            )),
        ] {
            let (status, headers) = oneshot_get(&router, path, authorization.as_deref()).await;
            assert_eq!(status, 401, "{path} {authorization:?}");
            assert_eq!(headers[header::WWW_AUTHENTICATE], "Basic", "{path}");
            assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        }
    }
    for _ in 0..2 {
        // The second round is answered from the cache.
        let (status, headers) =
            oneshot_get(&router, "/metrics", Some(&basic("alice", "s3cret"))).await;
        assert_eq!(status, 200);
        assert!(!headers.contains_key(header::WWW_AUTHENTICATE));
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(
            oneshot_get(&router, "/-/healthy", Some(&basic("bob", "other")))
                .await
                .0,
            200
        );
        assert_eq!(
            oneshot_get(&router, "/no-such-page", Some(&basic("bob", "other")))
                .await
                .0,
            404
        );
        // A cached success for alice does not let bob in with her password.
        assert_eq!(
            oneshot_get(&router, "/metrics", Some(&basic("bob", "s3cret")))
                .await
                .0,
            401
        );
    }
}

#[tokio::test]
async fn rate_limit_answers_429() {
    let web = WebConfig::from_yaml(
        &format!(
            "basic_auth_users:\n  alice: '{}'\nrate_limit:\n  interval: 1h\n  burst: 2\n",
            hash("pw")
        ),
        Path::new(""),
    )
    .unwrap();
    let router = web.protect(app());
    let ok = basic("alice", "pw");
    assert_eq!(oneshot_get(&router, "/metrics", Some(&ok)).await.0, 200);
    assert_eq!(oneshot_get(&router, "/metrics", None).await.0, 401);
    assert_eq!(oneshot_get(&router, "/metrics", Some(&ok)).await.0, 429);
}

/// Issue 11: a flood of wrong passwords (200 connections at once, bcrypt cost 10) used to queue up behind one
/// mutex, and a correct first login sent during it waited for every one of them (15 s). Now the flood overflows
/// the bounded wait queue and gets 429 at once, and the correct login, the newest attempt, runs next: only the
/// check already running when it arrived finishes before it (plus, at worst, a flood request the server read
/// after it), never the queued backlog.
#[tokio::test]
async fn a_correct_login_during_a_wrong_password_flood_is_served_next() {
    const FLOOD: usize = 200;
    let web = WebConfig::from_yaml(
        &format!(
            "basic_auth_users:\n  alice: '{}'\n",
            bcrypt::hash("s3cret", 10).unwrap()
        ),
        Path::new(""),
    )
    .unwrap();
    let (addr, stop, _task) = start(web).await;

    // Every flood request is written in full before the correct login is sent; known and unknown users alike.
    let mut flood: Vec<Pending> = futures_util::future::join_all((0..FLOOD).map(|i| {
        let user = if i % 2 == 0 { "alice" } else { "mallory" };
        Pending::send(addr, basic(user, &format!("wrong{i}")))
    }))
    .await;
    // Answers the server wrote before the login was sent (on loopback they are already here).
    let answered_before: Vec<bool> = flood.iter_mut().map(Pending::read_available).collect();

    let started = std::time::Instant::now();
    let login = Pending::send(addr, basic("alice", "s3cret"))
        .await
        .finish()
        .await;
    let took = started.elapsed();
    // Flood checks that ended while the login was pending: each ran bcrypt (401) ahead of it.
    let mut ahead = 0;
    for (pending, before) in flood.iter_mut().zip(&answered_before) {
        if pending.read_available() && !before && pending.status() == Some(401) {
            ahead += 1;
        }
    }

    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for pending in flood {
        let (status, retry_after) = pending.finish().await;
        *statuses.entry(status).or_default() += 1;
        if status == 429 {
            assert_eq!(retry_after.as_deref(), Some("1"), "429 carries Retry-After");
        }
    }
    eprintln!(
        "correct login during a flood of {FLOOD}: {} after {took:?}; {} flood answers before it was sent, {ahead} \
         flood checks ended while it was pending; flood answers by status: {statuses:?}",
        login.0,
        answered_before.iter().filter(|a| **a).count(),
    );
    assert_eq!(login.0, 200, "the correct login is served");
    assert_eq!(
        statuses.keys().copied().collect::<Vec<_>>(),
        [401, 429],
        "the flood is refused, some after bcrypt and the rest at once past the bound"
    );
    // A login queued behind the backlog would have waited for a whole queue of checks first.
    assert!(
        ahead < web::BCRYPT_QUEUE,
        "{ahead} flood checks ran before the correct login"
    );
    stop.send(()).unwrap();
}

/// A plain-HTTP `GET /metrics` written in full, and what has come back of its answer.
struct Pending {
    stream: TcpStream,
    received: Vec<u8>,
}

impl Pending {
    async fn send(addr: SocketAddr, authorization: String) -> Self {
        use tokio::io::AsyncWriteExt as _;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {authorization}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        Self {
            stream,
            received: Vec::new(),
        }
    }

    /// Reads what has arrived, without waiting; whether any of the answer is here.
    fn read_available(&mut self) -> bool {
        let mut buf = [0; 1024];
        loop {
            match self.stream.try_read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        !self.received.is_empty()
    }

    /// The status, once its line has arrived.
    fn status(&self) -> Option<u16> {
        let text = std::str::from_utf8(&self.received).ok()?;
        text.split(' ').nth(1)?.parse().ok()
    }

    /// The status and `Retry-After` of the whole answer (the server closes the connection after it).
    async fn finish(mut self) -> (u16, Option<String>) {
        use tokio::io::AsyncReadExt as _;
        self.stream.read_to_end(&mut self.received).await.unwrap();
        let text = String::from_utf8_lossy(&self.received);
        let status = self
            .status()
            .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
        let retry_after = text.lines().take_while(|l| !l.is_empty()).find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("retry-after")
                .then(|| value.trim().to_owned())
        });
        (status, retry_after)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// TLS

#[tokio::test]
async fn tls_serves_with_auth_and_refuses_plain_http() {
    let dir = TempDir::new("tls");
    let ca = TestCa::new("webconfig-tls");
    let leaf = ca.leaf(&["127.0.0.1"], Validity::Valid);
    write_leaf(&dir, &leaf);
    let path = dir.write(
        "web.yml",
        &format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  prometheus: '{}'\n",
            hash("scrape")
        ),
    );
    let web = WebConfig::load(&path).unwrap();
    assert!(web.tls_enabled());
    let (addr, stop, task) = start(web).await;
    let client = client_config(ca.root_store(), None);

    let reply = https_get(
        addr,
        client.clone(),
        "/metrics",
        Some(&basic("prometheus", "scrape")),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "some_metric 1\n");
    assert_eq!(reply.peer_leaf, leaf.chain[0]);

    let reply = https_get(addr, client.clone(), "/metrics", None)
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.headers[header::WWW_AUTHENTICATE], "Basic");

    // A client that does not trust the test CA fails the handshake.
    let stranger = client_config(TestCa::new("webconfig-stranger").root_store(), None);
    let err = https_get(addr, stranger, "/metrics", None)
        .await
        .err()
        .unwrap();
    assert!(err.starts_with("TLS: "), "{err}");

    // Plain HTTP on the TLS port gets no metrics, only a 400 that says why.
    let plain = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
    .await
    .unwrap();
    assert!(plain.starts_with("HTTP/1.0 400 Bad Request\r\n"), "{plain}");
    assert!(
        plain.ends_with("Client sent an HTTP request to an HTTPS server.\n"),
        "{plain}"
    );
    assert!(!plain.contains("some_metric"));

    // Garbage and stalled handshakes neither stop the accept loop nor hold up other clients.
    let mut garbage = TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut garbage, &[0x16, 0x03, 0x01, 0xff, 0xff, 0, 0, 0])
        .await
        .unwrap();
    let stalled: Vec<TcpStream> =
        futures_util::future::join_all((0..20).map(|_| TcpStream::connect(addr)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        https_get(
            addr,
            client.clone(),
            "/-/healthy",
            Some(&basic("prometheus", "scrape")),
        ),
    )
    .await
    .expect("not held up by stalled handshakes")
    .unwrap();
    assert_eq!(reply.status, StatusCode::OK);

    stop.send(()).unwrap();
    drop(stalled);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}

/// Issue 11: 256 handshake slots of 10 s each let 300 silent sockets delay every scrape by 7 s. Silent sockets now
/// hold no handshake slot: each connection shakes hands in its own task, a client that sends its hello at once is
/// served at once, and at the connection cap the longest-waiting silent sockets are closed to make room.
#[tokio::test]
async fn silent_sockets_do_not_delay_a_tls_scrape() {
    const SILENT: usize = 300;
    const CAP: usize = 64;
    let dir = TempDir::new("tls-flood");
    let ca = TestCa::new("webconfig-tls-flood");
    let leaf = ca.leaf(&["127.0.0.1"], Validity::Valid);
    write_leaf(&dir, &leaf);
    let path = dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    );
    let limits = WebLimits {
        max_connections: CAP,
        // Long: only the cap may close the silent sockets while the test runs.
        header_read_timeout: Duration::from_secs(300),
        ..WebLimits::default()
    };
    let (addr, stop, task) = start_with(WebConfig::load(&path).unwrap(), limits).await;
    let mut silent = Vec::with_capacity(SILENT);
    for _ in 0..SILENT {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    let client = client_config(ca.root_store(), None);
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        https_get(addr, client, "/metrics", None),
    )
    .await
    .expect("the scrape is not queued behind silent sockets")
    .unwrap();
    assert_eq!(reply.status, StatusCode::OK);

    // The mechanism: the oldest silent sockets were closed, the cap held.
    let mut closed = 0;
    for mut socket in silent {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_secs(5), socket.read(&mut byte)).await
        {
            closed += 1;
        }
        if closed >= SILENT - CAP {
            break;
        }
    }
    assert!(closed >= SILENT - CAP, "{closed} silent sockets closed");
    drop(stop);
    task.await.unwrap();
}

/// A silent socket on the TLS listener is closed after `web.header_read_timeout`, handshake included.
#[tokio::test]
async fn a_silent_tls_socket_is_closed_after_the_header_read_timeout() {
    let dir = TempDir::new("tls-silent");
    let ca = TestCa::new("webconfig-tls-silent");
    write_leaf(&dir, &ca.leaf(&["127.0.0.1"], Validity::Valid));
    let path = dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    );
    let limits = WebLimits {
        header_read_timeout: Duration::from_millis(200),
        ..WebLimits::default()
    };
    let (addr, _stop, _task) = start_with(WebConfig::load(&path).unwrap(), limits).await;
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut rest))
        .await
        .expect("the server closed the silent socket");
    assert!(read.is_ok_and(|n| n == 0), "{rest:?}");
}

#[tokio::test]
async fn rotated_certificates_are_picked_up_and_a_broken_pair_is_not() {
    let dir = TempDir::new("rotate");
    let ca = TestCa::new("webconfig-rotate");
    let first = ca.leaf(&["127.0.0.1"], Validity::Valid);
    write_leaf(&dir, &first);
    let path = dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    );
    let (addr, stop, _task) = start(WebConfig::load(&path).unwrap()).await;
    let client = client_config(ca.root_store(), None);
    assert_eq!(
        https_get(addr, client.clone(), "/metrics", None)
            .await
            .unwrap()
            .peer_leaf,
        first.chain[0]
    );

    // A new pair (written the way cert-manager's volume does it: whole new files).
    let second = ca.leaf(&["127.0.0.1"], Validity::Valid);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    write_leaf(&dir, &second);
    let mut served = None;
    for _ in 0..30 {
        let leaf = https_get(addr, client.clone(), "/metrics", None)
            .await
            .unwrap()
            .peer_leaf;
        if leaf == second.chain[0] {
            served = Some(leaf);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(served.is_some(), "the rotated certificate is served");

    // A key that does not match: logged, and the previous pair stays in use.
    let third = ca.leaf(&["127.0.0.1"], Validity::Valid);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    dir.write("server.crt", &chain_pem(&third.chain));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..3 {
        let reply = https_get(addr, client.clone(), "/metrics", None)
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.peer_leaf, second.chain[0]);
    }
    stop.send(()).unwrap();
}

#[tokio::test]
async fn client_certificates_are_required_when_configured() {
    let dir = TempDir::new("mtls");
    let ca = TestCa::new("webconfig-mtls");
    write_leaf(&dir, &ca.leaf(&["127.0.0.1"], Validity::Valid));
    let (client_ca_pem, client_leaf) = client_ca_and_leaf();
    dir.write("clients-ca.pem", &client_ca_pem);
    let path = dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: clients-ca.pem\n",
    );
    let (addr, stop, _task) = start(WebConfig::load(&path).unwrap()).await;

    let with_cert = client_config(ca.root_store(), Some(&client_leaf));
    let reply = https_get(addr, with_cert, "/metrics", None).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);

    // TLS 1.3 reports a missing client certificate after the client's handshake completes: on the request.
    let without = client_config(ca.root_store(), None);
    assert!(https_get(addr, without, "/metrics", None).await.is_err());

    // A client certificate from another CA is refused too.
    let (_, stranger) = client_ca_and_leaf();
    let other = client_config(ca.root_store(), Some(&stranger));
    assert!(https_get(addr, other, "/metrics", None).await.is_err());
    stop.send(()).unwrap();
}

/// A client CA (PEM) and a client-auth leaf it issued.
fn client_ca_and_leaf() -> (String, Leaf) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("MFE test client CA #{n}"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "prometheus");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    (
        ca_cert.pem(),
        Leaf {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        },
    )
}

// ---------------------------------------------------------------------------------------------------------------
// The real binary

/// The exporter process, killed if the test fails before stopping it (a leaked child would also keep the test
/// harness's output pipe open).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn the_binary_serves_tls_with_basic_auth_and_stops_on_sigterm() {
    let dir = TempDir::new("binary");
    let ca = TestCa::new("webconfig-binary");
    write_leaf(&dir, &ca.leaf(&["127.0.0.1"], Validity::Valid));
    let web = dir.write(
        "web.yml",
        &format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  prometheus: '{}'\n",
            hash("scrape")
        ),
    );
    let config = dir.write("config.yml", "servers: []\n");
    let listen = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_matrix-federation-exporter"))
            .args(["--config.file", config.to_str().unwrap()])
            .args(["--web.listen-address", &listen.to_string()])
            .args(["--web.config.file", web.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );

    let mut log = Log::capture(&mut child.0);
    // Wait (bounded) until the port accepts connections.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(listen).is_err() {
        let exited = child.0.try_wait().unwrap();
        assert!(
            exited.is_none() && std::time::Instant::now() <= deadline,
            "not listening ({exited:?}); log:\n{}",
            log.drain().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = client_config(ca.root_store(), None);
    let reply = runtime
        .block_on(https_get(
            listen,
            client.clone(),
            "/metrics",
            Some(&basic("prometheus", "scrape")),
        ))
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(
        reply.body.contains("matrix_federation_exporter_"),
        "{}",
        reply.body
    );
    let reply = runtime
        .block_on(https_get(listen, client, "/metrics", None))
        .unwrap();
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.0.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "clean exit on SIGTERM");
}

#[test]
fn the_binary_refuses_a_bad_web_config_with_exit_code_2() {
    let dir = TempDir::new("binary-bad");
    let web = dir.write("web.yml", "tls_server_config:\n  cert_file: server.crt\n");
    let output = Command::new(env!("CARGO_BIN_EXE_matrix-federation-exporter"))
        .args(["--web.listen-address", "127.0.0.1:0", "--check-config"])
        .args(["--web.config.file", web.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr,
        format!(
            "error: {}: tls_server_config.key_file: missing (or give `key` inline)\n",
            web.display()
        )
    );
}

#[tokio::test]
async fn the_example_web_config_loads_and_its_hash_is_change_me() {
    let dir = TempDir::new("example");
    let ca = TestCa::new("webconfig-example");
    write_leaf(&dir, &ca.leaf(&["127.0.0.1"], Validity::Valid));
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/web-config.yml"),
    )
    .unwrap();
    let web = WebConfig::load(&dir.write("web-config.yml", &example)).unwrap();
    assert!(web.tls_enabled());
    assert_eq!(web.basic_auth_users(), 1);
    let router = web.protect(app());
    let (status, headers) =
        oneshot_get(&router, "/metrics", Some(&basic("prometheus", "change-me"))).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-frame-options"], "deny");
    assert_eq!(
        oneshot_get(&router, "/metrics", Some(&basic("prometheus", "change-it")))
            .await
            .0,
        401
    );

    // htpasswd writes `$2y$`: the same hash with that prefix works too.
    let hash_2y = example
        .lines()
        .find_map(|l| l.trim().strip_prefix("prometheus: $2b$"))
        .map(|rest| format!("$2y${rest}"))
        .unwrap();
    let web = WebConfig::from_yaml(
        &format!("basic_auth_users:\n  prometheus: '{hash_2y}'\n"),
        Path::new(""),
    )
    .unwrap();
    let router = web.protect(app());
    assert_eq!(
        oneshot_get(&router, "/metrics", Some(&basic("prometheus", "change-me")))
            .await
            .0,
        200
    );
}
