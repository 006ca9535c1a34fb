//! Fake homeservers on loopback: TLS + HTTP/1.1 with scripted replies, silent and non-TLS servers, and the
//! port anchor that lets many fake servers share one port number on different loopback addresses.
//!
//! Port rule: the prober maps the spec ports (443, 8448) to ONE test port each, so every fake server of a test
//! listens on the same port `P` on different loopback IPs. A [`PortAnchor`] holds `127.0.0.1:P` and `[::1]:P`
//! so no other process (tests run in parallel processes) can take `P` there; servers then bind `127.0.0.X:P`
//! (X ≥ 2) freely, and take the anchor's held listeners to serve on `127.0.0.1:P` / `[::1]:P`.
//!
//! Tests must never bind `127.0.0.X:0` for X ≠ 1: the kernel could hand out another test's `P` on that address.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::LazyConfigAcceptor;

use super::ca::Leaf;

/// Holds `127.0.0.1:P` and `[::1]:P` for one port number `P`. See the module docs for the rule.
pub struct PortAnchor {
    pub port: u16,
    v4: Option<std::net::TcpListener>,
    v6: Option<std::net::TcpListener>,
}

impl Default for PortAnchor {
    fn default() -> Self {
        Self::new()
    }
}

impl PortAnchor {
    /// Binds `127.0.0.1:0` → `P`, then `[::1]:P` (retrying with a new `P` up to 50 times if `[::1]:P` is taken).
    /// On a host without IPv6 loopback, only the v4 side is held ([`PortAnchor::take_v6`] gives None).
    pub fn new() -> Self {
        for _ in 0..50 {
            let v4 =
                std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
            let port = v4.local_addr().expect("anchor local addr").port();
            match std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, port)) {
                Ok(v6) => {
                    return Self {
                        port,
                        v4: Some(v4),
                        v6: Some(v6),
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {}
                Err(_) => {
                    return Self {
                        port,
                        v4: Some(v4),
                        v6: None,
                    };
                }
            }
        }
        panic!("no port P with both 127.0.0.1:P and [::1]:P free after 50 tries");
    }

    /// The held `127.0.0.1:P` listener (once).
    pub fn take_v4(&mut self) -> Option<std::net::TcpListener> {
        self.v4.take()
    }

    /// The held `[::1]:P` listener (once; None without IPv6 loopback).
    pub fn take_v6(&mut self) -> Option<std::net::TcpListener> {
        self.v6.take()
    }

    /// `ip:P`.
    pub fn addr(&self, ip: impl Into<IpAddr>) -> SocketAddr {
        SocketAddr::new(ip.into(), self.port)
    }

    /// Where a server on `ip:P` should listen: the held listener for `127.0.0.1` / `::1`, else the address.
    pub fn bind(&mut self, ip: impl Into<IpAddr>) -> Bind {
        let ip = ip.into();
        if ip == IpAddr::V4(Ipv4Addr::LOCALHOST) {
            Bind::Listener(self.take_v4().expect("127.0.0.1 listener not yet taken"))
        } else if ip == IpAddr::V6(Ipv6Addr::LOCALHOST) {
            Bind::Listener(
                self.take_v6()
                    .expect("[::1] listener available and not yet taken"),
            )
        } else {
            Bind::Addr(self.addr(ip))
        }
    }
}

/// Where a [`FakeServer`] listens: an address to bind, or an already bound listener (from a [`PortAnchor`]).
#[derive(Debug)]
pub enum Bind {
    Addr(SocketAddr),
    Listener(std::net::TcpListener),
}

impl Bind {
    /// The listener to accept on: the address bound (following the port rule), or the held listener handed to
    /// tokio. `what` names the server in a failure.
    pub async fn listen(self, what: &str) -> TcpListener {
        match self {
            Bind::Addr(addr) => {
                assert!(
                    addr.port() != 0 || addr.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST),
                    "never bind {addr}: ephemeral ports only on 127.0.0.1 (see the port rule)"
                );
                TcpListener::bind(addr)
                    .await
                    .unwrap_or_else(|e| panic!("bind {what} on {addr}: {e}"))
            }
            Bind::Listener(l) => {
                l.set_nonblocking(true).expect("set listener non-blocking");
                TcpListener::from_std(l).expect("register listener with tokio")
            }
        }
    }
}

impl From<SocketAddr> for Bind {
    fn from(addr: SocketAddr) -> Self {
        Self::Addr(addr)
    }
}

impl From<std::net::TcpListener> for Bind {
    fn from(listener: std::net::TcpListener) -> Self {
        Self::Listener(listener)
    }
}

/// What one HTTP request gets.
#[derive(Clone, Debug)]
pub enum Reply {
    /// `content-type: application/json` unless `headers` sets one.
    Json {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Exactly these headers (plus hyper's content-length) and body.
    Raw {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// 301, 302, 307 or 308 with a `Location` header and an empty body.
    Redirect { status: u16, location: String },
    /// Never answers (the connection stays open until the client gives up or the server is dropped).
    Hang,
    /// 200, `content-type: application/json`, `bytes` × `a`, chunked (no content-length), streamed in 16 KiB
    /// chunks.
    Big { bytes: usize },
}

impl Reply {
    /// A JSON reply with no extra headers.
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self::Json {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }
}

/// Replies by request target. A target with a query string matches an exact `path?query` route first, then a
/// route for its path. Anything else → 404 `M_UNRECOGNIZED`.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    map: HashMap<String, Reply>,
}

pub const WELL_KNOWN_SERVER: &str = "/.well-known/matrix/server";

impl Routes {
    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn route(mut self, path: &str, reply: Reply) -> Self {
        self.map.insert(path.to_owned(), reply);
        self
    }

    /// `GET /.well-known/matrix/server` → 200 with this JSON body.
    #[must_use]
    pub fn well_known_json(self, body: &str) -> Self {
        self.route(WELL_KNOWN_SERVER, Reply::json(200, body))
    }

    fn find(&self, target: &str, path: &str) -> Option<Reply> {
        self.map.get(target).or_else(|| self.map.get(path)).cloned()
    }
}

/// How a [`FakeServer`] treats each accepted connection.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// TLS with `leaf`'s chain, then HTTP/1.1 keep-alive answering from `routes`.
    Https { leaf: Leaf, routes: Routes },
    /// Accepts TCP and never reads or writes.
    SilentTcp,
    /// Writes `HTTP/1.1 400 Bad Request\r\n\r\nnot tls` and closes (not TLS at all).
    Garbage,
}

#[derive(Default)]
struct Seen {
    connections: usize,
    sni: Vec<Option<String>>,
    requests: Vec<(String, String)>,
}

struct Shared {
    seen: Mutex<Seen>,
    routes: Mutex<Routes>,
}

/// A fake server on one address; records what clients did. Stops (all connections too) on drop.
pub struct FakeServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FakeServer {
    pub async fn start(bind: impl Into<Bind>, behaviour: Behaviour) -> Self {
        let listener = bind.into().listen("fake server").await;
        let addr = listener.local_addr().expect("fake server local addr");
        let (kind, routes) = match behaviour {
            Behaviour::Https { leaf, routes } => (Kind::Https(leaf.server_config()), routes),
            Behaviour::SilentTcp => (Kind::Silent, Routes::new()),
            Behaviour::Garbage => (Kind::Garbage, Routes::new()),
        };
        let shared = Arc::new(Shared {
            seen: Mutex::new(Seen::default()),
            routes: Mutex::new(routes),
        });
        let task = tokio::spawn(accept_loop(listener, kind, shared.clone()));
        Self { addr, shared, task }
    }

    /// The SNI of each TLS `ClientHello`, in arrival order (None: the client sent no SNI).
    pub fn sni_seen(&self) -> Vec<Option<String>> {
        self.seen().sni.clone()
    }

    /// (request target, Host header or "" when absent) of each HTTP request, in arrival order.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.seen().requests.clone()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.seen().connections
    }

    /// Adds or replaces one route; later requests see it.
    pub fn set_route(&self, path: &str, reply: Reply) {
        self.shared
            .routes
            .lock()
            .expect("routes lock")
            .map
            .insert(path.to_owned(), reply);
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.shared.seen.lock().expect("seen lock")
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        // The accept task owns the JoinSet of connection tasks, so aborting it ends them all.
        self.task.abort();
    }
}

#[derive(Clone)]
enum Kind {
    Https(Arc<rustls::ServerConfig>),
    Silent,
    Garbage,
}

/// Accepts connections until the listener fails, skipping ones aborted or reset before they were accepted, and
/// runs the task `serve` makes for each; then waits for the connections already accepted. The connection tasks
/// live in a `JoinSet` this future owns, so aborting its task ends them all.
pub async fn accept_each<F>(listener: TcpListener, mut serve: impl FnMut(TcpStream) -> F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let mut conns = JoinSet::new();
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                ) =>
            {
                continue;
            }
            Err(_) => break,
        };
        while conns.try_join_next().is_some() {}
        conns.spawn(serve(tcp));
    }
    // The listener failed: keep serving the connections already accepted.
    while conns.join_next().await.is_some() {}
}

async fn accept_loop(listener: TcpListener, kind: Kind, shared: Arc<Shared>) {
    accept_each(listener, |tcp| {
        shared.seen.lock().expect("seen lock").connections += 1;
        let (kind, shared) = (kind.clone(), shared.clone());
        async move {
            match kind {
                Kind::Https(cfg) => serve_https(tcp, cfg, shared).await,
                Kind::Garbage => serve_garbage(tcp).await,
                Kind::Silent => {
                    let _held = tcp;
                    std::future::pending::<()>().await;
                }
            }
        }
    })
    .await;
}

async fn serve_garbage(mut tcp: TcpStream) {
    if tcp
        .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\nnot tls")
        .await
        .is_err()
    {
        return;
    }
    let _ = tcp.shutdown().await;
    // Drain until the client closes (bounded), so closing never turns into a RST that hides our bytes.
    let mut buf = [0u8; 4096];
    let drain = async {
        let mut total = 0usize;
        while total < 64 * 1024 {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), drain).await;
}

async fn serve_https(tcp: TcpStream, config: Arc<rustls::ServerConfig>, shared: Arc<Shared>) {
    let Ok(start) = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp).await else {
        return;
    };
    let sni = start.client_hello().server_name().map(str::to_owned);
    shared.seen.lock().expect("seen lock").sni.push(sni);
    let Ok(tls) = start.into_stream(config).await else {
        return;
    };
    let service = service_fn(move |req| respond(req, shared.clone()));
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

type ReplyBody = BoxBody<Bytes, Infallible>;

async fn respond(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<ReplyBody>, Infallible> {
    let path = req.uri().path().to_owned();
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |pq| pq.as_str().to_owned());
    let host = req
        .headers()
        .get(header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        .unwrap_or_default();
    shared
        .seen
        .lock()
        .expect("seen lock")
        .requests
        .push((target.clone(), host));
    let reply = shared
        .routes
        .lock()
        .expect("routes lock")
        .find(&target, &path);
    let reply = reply.unwrap_or_else(|| {
        Reply::json(
            404,
            r#"{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}"#,
        )
    });
    Ok(match reply {
        Reply::Json {
            status,
            headers,
            body,
        } => {
            let mut resp = build(status, &headers, full(body.into_bytes()));
            resp.headers_mut()
                .entry(header::CONTENT_TYPE)
                .or_insert(HeaderValue::from_static("application/json"));
            resp
        }
        Reply::Raw {
            status,
            headers,
            body,
        } => build(status, &headers, full(body)),
        Reply::Redirect { status, location } => build(
            status,
            &[("location".to_owned(), location)],
            full(Vec::new()),
        ),
        Reply::Hang => return std::future::pending().await,
        Reply::Big { bytes } => build(
            200,
            &[("content-type".to_owned(), "application/json".to_owned())],
            BigBody { left: bytes }.boxed(),
        ),
    })
}

fn full(body: Vec<u8>) -> ReplyBody {
    Full::new(Bytes::from(body)).boxed()
}

fn build(status: u16, headers: &[(String, String)], body: ReplyBody) -> Response<ReplyBody> {
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(status).expect("valid test status code");
    for (name, value) in headers {
        resp.headers_mut().append(
            header::HeaderName::try_from(name.as_str()).expect("valid test header name"),
            HeaderValue::try_from(value.as_str()).expect("valid test header value"),
        );
    }
    resp
}

const CHUNK: usize = 16 * 1024;
static AAAA: [u8; CHUNK] = [b'a'; CHUNK];

/// `left` bytes of `a`, produced a chunk at a time (no size hint, so hyper sends it chunked).
struct BigBody {
    left: usize,
}

impl Body for BigBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(CHUNK);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&AAAA[..n])))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }
}
