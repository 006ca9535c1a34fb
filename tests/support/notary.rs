//! A fake key notary on loopback: HTTPS with the test CA, its own ed25519 key and key document, and
//! `POST /_matrix/key/v2/query` answered from a scripted cache of origin-signed key documents, each countersigned
//! with the notary's key (or not, or forged). It records every query body and the most queries it saw at once.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::ca::Leaf;
use super::https::{Bind, accept_each};
use super::keys::{SigningKey, key_document, now_ms, sign_json};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// How the notary answers a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// From its cache, after `delay`.
    Cached { delay: Duration },
    /// Never.
    Hang,
    /// This status with an error body.
    Status(u16),
    /// 200 with this many bytes of a JSON string.
    Big(usize),
}

/// How the notary countersigns what it serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Countersign {
    Valid,
    /// No notary signature at all.
    Missing,
    /// Signed under the notary's key id, by another key.
    Forged,
}

struct Shared {
    name: String,
    key: SigningKey,
    forger: SigningKey,
    key_document: String,
    cache: Mutex<HashMap<String, Vec<Value>>>,
    answer: Mutex<Answer>,
    countersign: Mutex<Countersign>,
    queries: Mutex<Vec<Value>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// A fake notary for `name`; stops on drop.
pub struct FakeNotary {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FakeNotary {
    /// Serves `name` (its key document signed by a new `ed25519:notary` key) on `bind`, with `leaf`'s chain.
    pub async fn start(bind: impl Into<Bind>, leaf: &Leaf, name: &str) -> Self {
        let listener = bind.into().listen("fake notary").await;
        let key = SigningKey::generate("ed25519:notary");
        let key_document = key_document(name, &[&key], now_ms() + DAY_MS);
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            key,
            forger: SigningKey::generate("ed25519:notary"),
            key_document,
            cache: Mutex::new(HashMap::new()),
            answer: Mutex::new(Answer::Cached {
                delay: Duration::ZERO,
            }),
            countersign: Mutex::new(Countersign::Valid),
            queries: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let acceptor = TlsAcceptor::from(leaf.server_config());
        let task = tokio::spawn({
            let shared = shared.clone();
            accept_each(listener, move |tcp| {
                let (acceptor, shared) = (acceptor.clone(), shared.clone());
                async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |req| respond(req, shared.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                }
            })
        });
        Self { shared, task }
    }

    /// Caches `document` (an origin-signed key document, as served) for its `server_name`, beside any others.
    pub fn cache(&self, document: &str) {
        let value: Value = serde_json::from_str(document).expect("a JSON key document");
        let server = value["server_name"]
            .as_str()
            .expect("a server_name")
            .to_owned();
        self.shared
            .cache
            .lock()
            .unwrap()
            .entry(server)
            .or_default()
            .push(value);
    }

    pub fn set_answer(&self, answer: Answer) {
        *self.shared.answer.lock().unwrap() = answer;
    }

    pub fn set_countersign(&self, countersign: Countersign) {
        *self.shared.countersign.lock().unwrap() = countersign;
    }

    /// Every query body received, in order.
    pub fn queries(&self) -> Vec<Value> {
        self.shared.queries.lock().unwrap().clone()
    }

    /// The most queries that were being answered at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for FakeNotary {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = Full<Bytes>;

fn reply(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

async fn respond(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Body>, Infallible> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/_matrix/key/v2/server") => Ok(reply(200, shared.key_document.clone())),
        (&Method::POST, "/_matrix/key/v2/query") => {
            let Ok(body) = Limited::new(req.into_body(), 1 << 20).collect().await else {
                return Ok(reply(400, "{}"));
            };
            let Ok(query) = serde_json::from_slice::<Value>(&body.to_bytes()) else {
                return Ok(reply(400, r#"{"errcode":"M_NOT_JSON"}"#));
            };
            shared.queries.lock().unwrap().push(query.clone());
            let _in_flight = InFlight::enter(&shared);
            let answer = *shared.answer.lock().unwrap();
            let response = match answer {
                Answer::Cached { delay } => {
                    tokio::time::sleep(delay).await;
                    reply(200, answer_from_cache(&shared, &query).to_string())
                }
                Answer::Hang => std::future::pending().await,
                Answer::Status(status) => reply(status, r#"{"errcode":"M_UNKNOWN"}"#),
                Answer::Big(bytes) => reply(200, format!("\"{}\"", "a".repeat(bytes))),
            };
            Ok(response)
        }
        _ => Ok(reply(404, r#"{"errcode":"M_UNRECOGNIZED"}"#)),
    }
}

fn answer_from_cache(shared: &Shared, query: &Value) -> Value {
    let cache = shared.cache.lock().unwrap();
    let countersign = *shared.countersign.lock().unwrap();
    let mut out = Vec::new();
    let asked = query["server_keys"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for server in asked.keys() {
        for document in cache.get(server).into_iter().flatten() {
            let mut document = document.clone();
            match countersign {
                Countersign::Valid => sign_json(&mut document, &shared.name, &shared.key),
                Countersign::Missing => {}
                Countersign::Forged => sign_json(&mut document, &shared.name, &shared.forger),
            }
            out.push(document);
        }
    }
    json!({ "server_keys": out })
}

/// Counts one query being answered, until dropped (also when the client gives up first).
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}
