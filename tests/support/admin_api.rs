//! A fake Synapse admin API on `127.0.0.1` (HTTPS with a test-CA certificate for the IP):
//! `GET /_synapse/admin/v1/federation/destinations?from=N&limit=M` paginated as Synapse does (`next_token` while
//! more remain), answering only the expected bearer token (401 otherwise, as Synapse's `M_UNKNOWN_TOKEN`).
//! Its mode can be changed while it runs: serve the list, answer a status, hang, or answer a huge body.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::ca::{TestCa, Validity};
use super::https::accept_each;

/// One destination row, as Synapse's admin API lists it (times in ms).
#[derive(Clone, Debug)]
pub struct Row {
    pub destination: String,
    pub retry_last_ts: i64,
    pub retry_interval: i64,
    pub failure_ts: Option<i64>,
}

impl Row {
    /// A destination Synapse is not failing.
    pub fn healthy(name: &str) -> Self {
        Self {
            destination: name.to_owned(),
            retry_last_ts: 0,
            retry_interval: 0,
            failure_ts: None,
        }
    }

    /// A destination Synapse has been failing since `since_ms`, backing off `interval_ms`.
    pub fn failing(name: &str, since_ms: i64, interval_ms: i64) -> Self {
        Self {
            destination: name.to_owned(),
            retry_last_ts: since_ms,
            retry_interval: interval_ms,
            failure_ts: Some(since_ms),
        }
    }
}

/// What the fake answers.
#[derive(Clone, Debug)]
pub enum Mode {
    /// The list, paginated.
    Serve(Vec<Row>),
    /// This status with a Matrix error body.
    Status(u16),
    /// Never answers.
    Hang,
    /// 200 with this many bytes of a never-ending JSON string, streamed.
    Big(usize),
}

struct Shared {
    token: String,
    mode: Mutex<Mode>,
    /// Request targets, in order, and whether each carried the right token.
    requests: Mutex<Vec<(String, bool)>>,
}

pub struct FakeAdminApi {
    /// `https://127.0.0.1:PORT`
    pub url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FakeAdminApi {
    /// Starts on `127.0.0.1` (any port) with a certificate for `127.0.0.1` from `ca`.
    pub async fn start(ca: &TestCa, token: &str, mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind admin API");
        let addr = listener.local_addr().expect("admin API addr");
        let config = ca.leaf(&["127.0.0.1"], Validity::Valid).server_config();
        Self::serve(
            listener,
            Some(config),
            format!("https://{addr}"),
            token,
            mode,
        )
    }

    /// Starts on `127.0.0.1` (any port) in plain HTTP, as a homeserver's loopback-only listener.
    pub async fn start_plain(token: &str, mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind admin API");
        let addr = listener.local_addr().expect("admin API addr");
        Self::serve(listener, None, format!("http://{addr}"), token, mode)
    }

    fn serve(
        listener: TcpListener,
        config: Option<Arc<rustls::ServerConfig>>,
        url: String,
        token: &str,
        mode: Mode,
    ) -> Self {
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            mode: Mutex::new(mode),
            requests: Mutex::new(Vec::new()),
        });
        let acceptor = config.map(TlsAcceptor::from);
        let s = shared.clone();
        let task = tokio::spawn(accept_each(listener, move |tcp| {
            let (acceptor, shared) = (acceptor.clone(), s.clone());
            async move {
                let service = service_fn(move |req| respond(req, shared.clone()));
                let http = hyper::server::conn::http1::Builder::new();
                match acceptor {
                    Some(acceptor) => {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let _ = http.serve_connection(TokioIo::new(tls), service).await;
                    }
                    None => {
                        let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                    }
                }
            }
        }));
        Self { url, shared, task }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().expect("mode lock") = mode;
    }

    /// (request target, whether it carried the right bearer token) of every request so far.
    pub fn requests(&self) -> Vec<(String, bool)> {
        self.shared.requests.lock().expect("requests lock").clone()
    }
}

impl Drop for FakeAdminApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type ReplyBody = BoxBody<Bytes, Infallible>;

fn reply(status: u16, body: String) -> Response<ReplyBody> {
    let mut resp = Response::new(Full::new(Bytes::from(body)).boxed());
    *resp.status_mut() = StatusCode::from_u16(status).expect("status");
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

async fn respond(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<ReplyBody>, Infallible> {
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(String::new, |pq| pq.as_str().to_owned());
    let authorized = req
        .headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == format!("Bearer {}", shared.token).as_bytes());
    shared
        .requests
        .lock()
        .expect("requests lock")
        .push((target, authorized));
    if req.uri().path() != "/_synapse/admin/v1/federation/destinations" {
        return Ok(reply(404, r#"{"errcode":"M_UNRECOGNIZED"}"#.to_owned()));
    }
    if !authorized {
        return Ok(reply(
            401,
            r#"{"errcode":"M_UNKNOWN_TOKEN","error":"Invalid access token passed."}"#.to_owned(),
        ));
    }
    let mode = shared.mode.lock().expect("mode lock").clone();
    Ok(match mode {
        Mode::Status(status) => reply(
            status,
            r#"{"errcode":"M_UNKNOWN","error":"oops"}"#.to_owned(),
        ),
        Mode::Hang => std::future::pending().await,
        Mode::Big(bytes) => {
            let chunk = Bytes::from(vec![b'a'; 64 * 1024]);
            let head = Bytes::from_static(br#"{"destinations":[{"destination":""#);
            let count = bytes / chunk.len() + 1;
            let frames = std::iter::once(head)
                .chain(std::iter::repeat_n(chunk, count))
                .map(|b| Ok::<_, Infallible>(Frame::data(b)));
            let body = StreamBody::new(futures_util::stream::iter(frames)).boxed();
            let mut resp = Response::new(body);
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            resp
        }
        Mode::Serve(rows) => {
            let query: HashMap<String, String> = req
                .uri()
                .query()
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .into_owned()
                        .collect()
                })
                .unwrap_or_default();
            let from: usize = query.get("from").and_then(|f| f.parse().ok()).unwrap_or(0);
            let limit: usize = query
                .get("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(100);
            let end = (from + limit).min(rows.len());
            let page: Vec<serde_json::Value> = rows[from.min(end)..end]
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "destination": r.destination,
                        "retry_last_ts": r.retry_last_ts,
                        "retry_interval": r.retry_interval,
                        "failure_ts": r.failure_ts,
                        "last_successful_stream_ordering": null,
                    })
                })
                .collect();
            let mut body = serde_json::json!({"destinations": page, "total": rows.len()});
            if end < rows.len() {
                body["next_token"] = serde_json::Value::String(end.to_string());
            }
            reply(200, body.to_string())
        }
    })
}
