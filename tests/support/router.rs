//! Requests to an exporter's router in process (no socket), as the HTTP tests send them, and the one reading of
//! `/metrics` text they share.

use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

/// One whole answer: its status, its headers and its body as text.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    /// The value of header `name`, or "" when it is missing.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("an ASCII header value"))
            .unwrap_or_default()
    }
}

/// Sends `request` to `router` and reads the whole answer.
pub async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the body")
        .to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).expect("a UTF-8 body"),
    }
}

/// `method uri` with `headers` and no body.
pub async fn request(
    router: &Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    send(
        router,
        builder.body(Body::empty()).expect("the request builds"),
    )
    .await
}

/// `GET uri`.
pub async fn get(router: &Router, uri: &str) -> Answer {
    request(router, Method::GET, uri, &[]).await
}

/// The body of `GET uri`, which must answer 200.
pub async fn get_ok(router: &Router, uri: &str) -> String {
    let answer = get(router, uri).await;
    assert_eq!(answer.status, StatusCode::OK, "{uri}: {}", answer.body);
    answer.body
}

/// The value of the one sample of `metrics` whose line starts with `prefix` (name and labels).
pub fn sample(metrics: &str, prefix: &str) -> f64 {
    let lines: Vec<&str> = metrics.lines().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one sample starting with {prefix}\n{metrics}"
    );
    lines[0]
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a number at the end of {}", lines[0]))
}
