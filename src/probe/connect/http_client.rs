//! HTTP/1.1 GETs (and the notary query's POST) over a connection the caller already made and judged, with a bounded body and a timeout.
//!
//! The prober owns the socket and the TLS handshake (so every request goes to the address that was judged,
//! with the exact `Host` header the spec asks for); this module only speaks HTTP on top. It resolves no names
//! and follows no redirects.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;

/// An HTTP/1.1 connection (keep-alive) on an established stream.
pub struct HttpConn {
    sender: SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
}

/// One complete response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why a GET gave no usable response.
#[derive(Debug, thiserror::Error)]
pub enum GetError {
    #[error("no complete answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    Http(String),
}

impl HttpConn {
    /// Starts HTTP/1.1 on `stream`. The connection closes when this value is dropped.
    pub async fn handshake<S>(stream: S, timeout: Duration) -> Result<Self, GetError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = tokio::time::timeout(timeout, http1::handshake(TokioIo::new(stream)))
            .await
            .map_err(|_| GetError::Timeout(timeout))?
            .map_err(|e| GetError::Http(e.to_string()))?;
        let driver = tokio::spawn(async move {
            // The connection's own errors surface through the request that hit them.
            let _ = conn.await;
        });
        Ok(Self { sender, driver })
    }

    /// `GET path` with `Host: host`, reading at most `max_body` bytes of body, all within `timeout`.
    pub async fn get(
        &mut self,
        path: &str,
        host: &str,
        max_body: usize,
        timeout: Duration,
    ) -> Result<Response, GetError> {
        tokio::time::timeout(timeout, self.send(Request::get(path), host, None, max_body))
            .await
            .map_err(|_| GetError::Timeout(timeout))?
    }

    /// [`HttpConn::get`] with an `Authorization` header (marked sensitive; never in an error).
    pub async fn get_authorized(
        &mut self,
        path: &str,
        host: &str,
        authorization: &header::HeaderValue,
        max_body: usize,
        timeout: Duration,
    ) -> Result<Response, GetError> {
        let request = Request::get(path).header(header::AUTHORIZATION, authorization.clone());
        tokio::time::timeout(timeout, self.send(request, host, None, max_body))
            .await
            .map_err(|_| GetError::Timeout(timeout))?
    }

    /// `POST path` with `Host: host` and the JSON `body`, reading at most `max_body` bytes of answer, all within
    /// `timeout` (the notary query, `POST /_matrix/key/v2/query`).
    pub async fn post_json(
        &mut self,
        path: &str,
        host: &str,
        body: Bytes,
        max_body: usize,
        timeout: Duration,
    ) -> Result<Response, GetError> {
        let send = self.send(Request::post(path), host, Some(body), max_body);
        tokio::time::timeout(timeout, send)
            .await
            .map_err(|_| GetError::Timeout(timeout))?
    }

    async fn send(
        &mut self,
        request: http::request::Builder,
        host: &str,
        json: Option<Bytes>,
        max_body: usize,
    ) -> Result<Response, GetError> {
        let request = match &json {
            Some(_) => request.header(header::CONTENT_TYPE, "application/json"),
            None => request,
        };
        let request = request
            .header(header::HOST, host)
            .header(
                header::USER_AGENT,
                concat!("matrix-federation-exporter/", env!("CARGO_PKG_VERSION")),
            )
            .header(header::ACCEPT, "application/json")
            .body(Full::new(json.unwrap_or_default()))
            .map_err(|e| GetError::Http(format!("cannot build the request: {e}")))?;
        self.sender
            .ready()
            .await
            .map_err(|e| GetError::Http(e.to_string()))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| GetError::Http(e.to_string()))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, max_body).collect().await.map_err(|e| {
            if e.downcast_ref::<LengthLimitError>().is_some() {
                GetError::TooLarge(max_body)
            } else {
                GetError::Http(e.to_string())
            }
        })?;
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: body.to_bytes(),
        })
    }
}

impl Drop for HttpConn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}
