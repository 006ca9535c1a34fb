//! The HTTP listener: accepts TCP connections (and, with a web config's `tls_server_config`, the TLS handshake)
//! and serves the routes over HTTP/1.1 on each, under the limits that keep the exporter answering whatever its
//! clients do (`web.*` in the config file; README, "Securing the listener"):
//!
//! - At most `web.max_connections` connections are open at once. At the cap, a new connection closes the one
//!   that has waited longest without a request in progress, so idle or silent sockets can never lock a fresh
//!   scrape out; when every open connection is busy, the new one is closed at once.
//! - A new connection must deliver its first request head (the TLS handshake included) within
//!   `web.header_read_timeout`, and every later request head must arrive within that time of its first byte. A
//!   connection that has answered a request and waits for the next is closed after `web.idle_timeout`.
//! - The cap in force never exceeds the process's file-descriptor limit less a reserve that probes and reloads
//!   keep ([`connection_cap`]); [`raise_descriptor_limit`] lifts the soft limit to the hard one at start.
//!
//! Every connection runs in its own task, TLS handshake included, so a slow client never holds up another, and
//! no number of silent sockets queues a client that sends its TLS hello at once. A request in progress is
//! never cut by these limits; its handlers bound their own work.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::config::WebLimits;
use crate::serve::web::WebConfig;

/// The least connections the descriptor reserve leaves the listener, however low the limit.
const MIN_CONNECTIONS: usize = 16;
/// How often, at most, reaching `web.max_connections` is logged at warning level.
const CAP_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting, lets each open request finish
/// and closes idle connections. With a web config, behind its TLS, basic auth, headers and rate limit. `limits`
/// is read for each new connection, so a reload applies to the connections that follow it.
pub async fn serve<F>(
    listener: TcpListener,
    router: Router,
    web: Option<WebConfig>,
    limits: watch::Receiver<WebLimits>,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let (router, acceptor) = match web {
        Some(web) => {
            web.log_in_force();
            let acceptor = web.tls_server_config().map(TlsAcceptor::from);
            (web.protect(router), acceptor)
        }
        None => (router, None),
    };
    let open = Arc::new(Connections::default());
    let (stop_tx, stop) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let limits = *limits.borrow();
                    let Some(slot) = open.admit(limits.max_connections) else {
                        tracing::debug!(%peer, "connection closed at once: every open connection is busy (web.max_connections)");
                        continue;
                    };
                    let connection = Connection {
                        peer,
                        slot,
                        limits,
                        acceptor: acceptor.clone(),
                        router: router.clone(),
                        stop: stop.clone(),
                        open: open.clone(),
                    };
                    tasks.spawn(connection.run(stream));
                }
                Err(e) => accept_error(e).await,
            },
            Some(joined) = tasks.join_next() => {
                if let Err(e) = joined {
                    tracing::error!("connection task failed: {e}");
                }
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, as Go programs do since Go 1.19, and returns the soft limit
/// now in force (`None` when it cannot be read).
pub fn raise_descriptor_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(e) => {
            tracing::warn!("cannot raise the file-descriptor limit: {e}");
            descriptor_limit()
        }
    }
}

/// The soft `RLIMIT_NOFILE` in force.
#[must_use]
pub fn descriptor_limit() -> Option<u64> {
    rlimit::getrlimit(rlimit::Resource::NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// The connection cap in force: `max_connections`, lowered so that `reserve` descriptors stay free for probes,
/// reloads and the process itself below the descriptor limit `nofile`. However low the limit, the listener keeps
/// a quarter of it (and at least `MIN_CONNECTIONS`), so the exporter still answers.
#[must_use]
pub fn connection_cap(max_connections: usize, reserve: usize, nofile: Option<u64>) -> usize {
    let Some(nofile) = nofile else {
        return max_connections;
    };
    let nofile = usize::try_from(nofile).unwrap_or(usize::MAX);
    let available = nofile
        .saturating_sub(reserve)
        .max(nofile / 4)
        .max(MIN_CONNECTIONS);
    max_connections.min(available)
}

// ---------------------------------------------------------------------------------------------------------------
// The open connections

/// Every open connection, for the cap and for choosing which idle one to close.
#[derive(Default)]
struct Connections {
    registry: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    slots: HashMap<u64, Arc<Slot>>,
    last_warning: Option<Instant>,
}

impl Connections {
    /// A slot for a new connection. At the cap, closes the connections that have waited longest without a
    /// request in progress until there is room; `None` when every open connection is busy.
    fn admit(&self, cap: usize) -> Option<Arc<Slot>> {
        let mut registry = self.lock();
        while registry.slots.len() >= cap {
            let (_, id) = registry
                .slots
                .values()
                .filter_map(|slot| slot.idle_since().map(|since| (since, slot.id)))
                .min()?;
            if let Some(evicted) = registry.slots.remove(&id) {
                evicted.close.notify_one();
            }
            let now = Instant::now();
            if registry
                .last_warning
                .is_none_or(|at| now.duration_since(at) >= CAP_WARNING_INTERVAL)
            {
                registry.last_warning = Some(now);
                tracing::warn!(
                    cap,
                    "web.max_connections reached: closing the connections idle the longest to make room"
                );
            }
        }
        let id = registry.next_id;
        registry.next_id += 1;
        let slot = Arc::new(Slot::new(id));
        registry.slots.insert(id, slot.clone());
        Some(slot)
    }

    fn remove(&self, id: u64) {
        self.lock().slots.remove(&id);
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the listener knows of one connection: whether a request is in progress, and since when it waits.
struct Slot {
    id: u64,
    state: Mutex<SlotState>,
    /// Wakes the connection's watchdog when its state changes.
    changed: Notify,
    /// Closes the connection (it was chosen to make room at the cap).
    close: Notify,
}

#[derive(Clone, Copy)]
struct SlotState {
    /// Requests in progress: from the complete head to the last byte of the answer.
    in_flight: usize,
    /// Whether the connection has answered a request.
    answered: bool,
    /// When the current wait began: the connection's start, or the end of its last answer.
    since: Instant,
    /// The first byte of the next request head, when one has arrived.
    first_byte: Option<Instant>,
}

/// Why the watchdog closed a connection.
#[derive(Clone, Copy, Debug)]
enum Expired {
    HeaderRead,
    Idle,
}

impl Expired {
    fn key(self) -> &'static str {
        match self {
            Expired::HeaderRead => "web.header_read_timeout",
            Expired::Idle => "web.idle_timeout",
        }
    }
}

impl Slot {
    fn new(id: u64) -> Self {
        Self {
            id,
            state: Mutex::new(SlotState {
                in_flight: 0,
                answered: false,
                since: Instant::now(),
                first_byte: None,
            }),
            changed: Notify::new(),
            close: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the connection began to wait, if no request is in progress.
    fn idle_since(&self) -> Option<Instant> {
        let state = self.lock();
        (state.in_flight == 0).then_some(state.since)
    }

    /// Bytes arrived from the client: between requests, they start the clock of the next request head.
    fn on_read(&self) {
        let mut state = self.lock();
        if state.in_flight == 0 && state.first_byte.is_none() {
            state.first_byte = Some(Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }

    /// A request head is complete; the connection is busy until the returned guard is dropped with the answer.
    fn begin(self: &Arc<Self>) -> Busy {
        let mut state = self.lock();
        state.in_flight += 1;
        state.first_byte = None;
        Busy(self.clone())
    }

    /// When the connection must be closed, and why; `None` while a request is in progress.
    fn deadline(&self, limits: &WebLimits) -> Option<(Instant, Expired)> {
        let state = self.lock();
        if state.in_flight > 0 {
            None
        } else if let Some(first) = state.first_byte {
            Some((first + limits.header_read_timeout, Expired::HeaderRead))
        } else if state.answered {
            Some((state.since + limits.idle_timeout, Expired::Idle))
        } else {
            Some((
                state.since + limits.header_read_timeout,
                Expired::HeaderRead,
            ))
        }
    }

    /// Completes when the connection has waited too long (never while a request is in progress).
    async fn watchdog(&self, limits: WebLimits) -> Expired {
        loop {
            match self.deadline(&limits) {
                None => self.changed.notified().await,
                Some((deadline, why)) => {
                    if Instant::now() >= deadline {
                        return why;
                    }
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => {}
                        () = self.changed.notified() => {}
                    }
                }
            }
        }
    }
}

/// A request in progress on a connection; dropping it (with the answer's body) makes the connection idle.
struct Busy(Arc<Slot>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 {
            state.answered = true;
            state.since = Instant::now();
            state.first_byte = None;
        }
        drop(state);
        self.0.changed.notify_one();
    }
}

/// An answer's body that keeps its connection busy until it is sent (or dropped).
struct BusyBody {
    inner: Body,
    _busy: Busy,
}

impl http_body::Body for BusyBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The client's socket, telling its slot when bytes arrive.
struct Watched {
    tcp: TcpStream,
    slot: Arc<Slot>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.slot.on_read();
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

// ---------------------------------------------------------------------------------------------------------------
// One connection

/// One accepted connection and what it needs to be served.
struct Connection {
    peer: SocketAddr,
    slot: Arc<Slot>,
    limits: WebLimits,
    acceptor: Option<TlsAcceptor>,
    router: Router,
    stop: watch::Receiver<bool>,
    open: Arc<Connections>,
}

impl Connection {
    /// Serves the connection until the client closes it, a limit closes it, or shutdown finishes it.
    async fn run(self, tcp: TcpStream) {
        let Connection {
            peer,
            slot,
            limits,
            acceptor,
            router,
            stop,
            open,
        } = self;
        let serve = async {
            match acceptor {
                None => {
                    let io = Watched {
                        tcp,
                        slot: slot.clone(),
                    };
                    http(io, router, &slot, stop).await;
                }
                Some(acceptor) => {
                    // Shutdown does not wait for a handshake: the client has sent no request yet.
                    let mut stopping = stop.clone();
                    let shaken = tokio::select! {
                        shaken = handshake(&acceptor, tcp, &slot) => shaken,
                        _ = stopping.wait_for(|stop| *stop) => Err("shutting down".to_owned()),
                    };
                    match shaken {
                        Ok(tls) => http(tls, router, &slot, stop).await,
                        Err(error) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                    }
                }
            }
        };
        tokio::select! {
            () = serve => {}
            why = slot.watchdog(limits) => {
                tracing::debug!(%peer, "connection closed: {} passed", why.key());
            }
            () = slot.close.notified() => {
                tracing::debug!(%peer, "connection closed to make room (web.max_connections)");
            }
        }
        open.remove(slot.id);
    }
}

/// Serves HTTP/1.1 requests on `io` until the client closes the connection; once `stop` turns true, finishes
/// the request in progress and closes.
async fn http<I>(io: I, router: Router, slot: &Arc<Slot>, mut stop: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let slot = slot.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let busy = slot.begin();
        let router = router.clone();
        async move {
            let Ok(response) = router.oneshot(request.map(Body::new)).await;
            Ok::<_, Infallible>(response.map(|inner| Body::new(BusyBody { inner, _busy: busy })))
        }
    });
    let mut connection = pin!(
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service)
    );
    let mut stopping = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!("connection ended: {e}");
                }
                return;
            }
            _ = stop.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The TLS handshake on one connection. A client speaking plain HTTP gets a 400 that says so, as from Go.
async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    slot: &Arc<Slot>,
) -> Result<tokio_rustls::server::TlsStream<Watched>, String> {
    let mut first = [0u8; 1];
    match tcp.peek(&mut first).await {
        Ok(0) => return Err("closed before the handshake".to_owned()),
        Ok(_) if first[0].is_ascii_uppercase() => {
            let mut tcp = tcp;
            let _ = tcp
                .write_all(
                    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n\
                      Client sent an HTTP request to an HTTPS server.\n",
                )
                .await;
            let _ = tcp.shutdown().await;
            return Err("plain HTTP request on the TLS listener".to_owned());
        }
        Ok(_) => {}
        Err(e) => return Err(e.to_string()),
    }
    let io = Watched {
        tcp,
        slot: slot.clone(),
    };
    acceptor.accept(io).await.map_err(|e| e.to_string())
}

/// As axum's own listener does: per-connection errors are skipped, others (such as running out of file
/// descriptors) are logged and retried after a pause.
async fn accept_error(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!("accept error: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_keeps_a_reserve_below_the_descriptor_limit() {
        // Plenty of descriptors: the configured cap.
        assert_eq!(connection_cap(512, 768, Some(1_048_576)), 512);
        // 1,024 descriptors and a reserve of 768: 256 connections.
        assert_eq!(connection_cap(512, 768, Some(1024)), 256);
        // A limit below the reserve still leaves a quarter of it, and never less than the floor.
        assert_eq!(connection_cap(512, 768, Some(256)), 64);
        assert_eq!(connection_cap(512, 768, Some(20)), MIN_CONNECTIONS);
        // A small configured cap stays; an unknown limit changes nothing.
        assert_eq!(connection_cap(8, 768, Some(1024)), 8);
        assert_eq!(connection_cap(512, 768, None), 512);
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_longest_idle_connection_makes_room() {
        let open = Connections::default();
        let first = open.admit(2).unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        let second = open.admit(2).unwrap();
        let _busy = second.begin();
        // The third closes the first: the second is busy.
        let third = open.admit(2).unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(1), first.close.notified())
                .await
                .is_ok(),
            "the idle connection was told to close"
        );
        // Now the second is busy and the third idle: a fourth closes the third.
        let _fourth = open.admit(2).unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(1), third.close.notified())
                .await
                .is_ok()
        );
        assert_eq!(open.lock().slots.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn when_every_connection_is_busy_a_new_one_is_refused() {
        let open = Connections::default();
        let a = open.admit(1).unwrap();
        let busy = a.begin();
        assert!(open.admit(1).is_none());
        drop(busy);
        assert!(open.admit(1).is_some(), "an answered connection makes room");
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_applies_the_header_and_idle_timeouts() {
        let limits = WebLimits {
            max_connections: 4,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(100),
        };
        // A new connection that sends nothing: the header-read timeout from its start.
        let silent = Arc::new(Slot::new(0));
        let started = Instant::now();
        assert!(matches!(silent.watchdog(limits).await, Expired::HeaderRead));
        assert_eq!(started.elapsed(), limits.header_read_timeout);

        // After an answer: the idle timeout; a first byte then starts the header-read clock.
        let slot = Arc::new(Slot::new(1));
        drop(slot.begin());
        let answered = Instant::now();
        tokio::time::advance(Duration::from_secs(50)).await;
        slot.on_read();
        assert!(matches!(slot.watchdog(limits).await, Expired::HeaderRead));
        assert_eq!(answered.elapsed(), Duration::from_secs(60));

        let idle = Arc::new(Slot::new(2));
        drop(idle.begin());
        let answered = Instant::now();
        assert!(matches!(idle.watchdog(limits).await, Expired::Idle));
        assert_eq!(answered.elapsed(), limits.idle_timeout);

        // A request in progress is never cut.
        let busy = Arc::new(Slot::new(3));
        let guard = busy.begin();
        assert!(
            tokio::time::timeout(Duration::from_secs(1000), busy.watchdog(limits))
                .await
                .is_err()
        );
        drop(guard);
    }
}
