//! Hostile servers for the adversarial tests: raw TCP and TLS servers that misbehave on purpose, and a DNS
//! "server" on a raw UDP socket that answers every query with something broken.
//!
//! Every server listens on loopback only (through a [`Bind`] that follows the port rule of `https.rs`), counts
//! what it managed to send, and stops (all its connections too) when dropped. Every loop that sends is
//! bounded: by [`MAX_STREAM`] bytes per connection, by the size of what it means to send, or by the client going
//! away. The counters let a test prove that the client stopped early: a server told to stream 1 GiB that could
//! write only a few hundred KiB before the client hung up proves the client read at most that much.
//!
//! The certificate chains here ([`looping_chain`], [`deep_chain`]) are built with rcgen like the test CA's.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::dns::udp_and_tcp_on_one_port;
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::ca::Leaf;
use super::https::{Bind, accept_each};

/// The most any endless writer sends on one connection (1 GiB): the loops end even if a client never stops.
pub const MAX_STREAM: u64 = 1 << 30;
/// The largest request head (or TLS first flight from the client) an evil server reads before answering.
const MAX_REQUEST: usize = 64 * 1024;
/// A huge body is written this much at a time.
const PIECE: usize = 64 * 1024;

/// How an [`EvilServer`] treats each accepted connection.
#[derive(Clone, Debug)]
pub enum Evil {
    /// A real TLS server for `leaf`, whose handshake bytes (its whole first flight) are sent one byte every
    /// `every`: a slowloris on the handshake.
    SlowTls { leaf: Leaf, every: Duration },
    /// TLS, then for every request: `HTTP/1.1 200 OK` and `X-a: b` header lines without end, in batches as
    /// fast as the client reads, or one line every `every` when set.
    EndlessHeaders { leaf: Leaf, every: Option<Duration> },
    /// TLS, then a 200 with a body of `bytes` bytes (`{"m.server":"aaaa...`), announced by `content-length` or
    /// sent chunked, written as fast as the client reads.
    HugeBody {
        leaf: Leaf,
        bytes: u64,
        chunked: bool,
    },
    /// Plain TCP: `prefix`, then pseudo-random bytes without end, as fast as the client reads.
    Garbage { prefix: Vec<u8> },
}

/// What the server did, over all its connections.
#[derive(Debug, Default)]
struct Counters {
    connections: AtomicUsize,
    /// Bytes handed to the connection: TCP payload for plain servers, TLS plaintext (plus the handshake
    /// bytes of [`Evil::SlowTls`]) for TLS servers.
    written: AtomicU64,
    /// Connection handlers that ended (the client went away, or everything was sent).
    finished: AtomicUsize,
    /// Connection handlers that sent everything they meant to (an endless one never should).
    completed: AtomicUsize,
    changed: Notify,
}

/// A hostile server on one loopback address. Stops, with all of its connections, when dropped.
pub struct EvilServer {
    pub addr: SocketAddr,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl EvilServer {
    pub async fn start(bind: impl Into<Bind>, evil: Evil) -> Self {
        let bind = bind.into();
        if let Bind::Addr(addr) = &bind {
            assert!(addr.ip().is_loopback(), "evil servers stay on loopback");
        }
        let listener = bind.listen("evil server").await;
        let addr = listener.local_addr().expect("evil server local addr");
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(accept_loop(listener, evil, counters.clone()));
        Self {
            addr,
            counters,
            task,
        }
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.counters.connections.load(Ordering::SeqCst)
    }

    /// Bytes the server managed to hand to its connections so far (see [`Counters::written`]).
    pub fn written(&self) -> u64 {
        self.counters.written.load(Ordering::SeqCst)
    }

    /// Connection handlers that sent everything they meant to.
    pub fn completed(&self) -> usize {
        self.counters.completed.load(Ordering::SeqCst)
    }

    /// Waits until every accepted connection has ended (the client hung up), at most `limit`. True if so.
    pub async fn all_finished(&self, limit: Duration) -> bool {
        let c = &self.counters;
        let wait = async {
            loop {
                let changed = c.changed.notified();
                if c.finished.load(Ordering::SeqCst) >= c.connections.load(Ordering::SeqCst) {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

impl Drop for EvilServer {
    fn drop(&mut self) {
        // The accept task owns the JoinSet of connection tasks, so aborting it ends them all.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, evil: Evil, counters: Arc<Counters>) {
    let tls = match &evil {
        Evil::SlowTls { leaf, .. }
        | Evil::EndlessHeaders { leaf, .. }
        | Evil::HugeBody { leaf, .. } => Some(leaf.server_config()),
        Evil::Garbage { .. } => None,
    };
    accept_each(listener, |tcp| {
        counters.connections.fetch_add(1, Ordering::SeqCst);
        let (evil, tls, counters) = (evil.clone(), tls.clone(), counters.clone());
        async move {
            let done = serve(tcp, evil, tls, &counters).await;
            if done.is_ok() {
                counters.completed.fetch_add(1, Ordering::SeqCst);
            }
            counters.finished.fetch_add(1, Ordering::SeqCst);
            counters.changed.notify_waiters();
        }
    })
    .await;
}

/// Serves one connection; `Ok` when everything meant to be sent was sent, `Err` when the client went away.
async fn serve(
    tcp: TcpStream,
    evil: Evil,
    tls: Option<Arc<rustls::ServerConfig>>,
    counters: &Counters,
) -> io::Result<()> {
    match evil {
        Evil::SlowTls { every, .. } => {
            slow_handshake(tcp, tls.expect("TLS config"), every, counters).await
        }
        Evil::Garbage { prefix } => garbage(tcp, &prefix, counters).await,
        Evil::EndlessHeaders { every, .. } => {
            let mut tls = accept_tls(tcp, tls.expect("TLS config")).await?;
            read_request_head(&mut tls).await?;
            endless_headers(&mut tls, every, counters).await
        }
        Evil::HugeBody { bytes, chunked, .. } => {
            let mut tls = accept_tls(tcp, tls.expect("TLS config")).await?;
            read_request_head(&mut tls).await?;
            huge_body(&mut tls, bytes, chunked, counters).await
        }
    }
}

async fn accept_tls(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
) -> io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    // Bounded: a client that never finishes its handshake is not what these servers test.
    tokio::time::timeout(
        Duration::from_secs(30),
        TlsAcceptor::from(config).accept(tcp),
    )
    .await
    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}

/// Reads until the end of one request head (`\r\n\r\n`), at most [`MAX_REQUEST`] bytes.
async fn read_request_head<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST {
            return Err(io::Error::other("request head too large"));
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(())
}

/// Writes `data` and counts it once it is accepted.
async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    data: &[u8],
    counters: &Counters,
) -> io::Result<()> {
    stream.write_all(data).await?;
    stream.flush().await?;
    counters
        .written
        .fetch_add(data.len() as u64, Ordering::SeqCst);
    Ok(())
}

/// A real rustls server handshake whose first flight leaves one byte every `every`.
async fn slow_handshake(
    mut tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    every: Duration,
    counters: &Counters,
) -> io::Result<()> {
    let mut conn = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
    let mut buf = [0u8; 4096];
    let mut read = 0;
    // Read the ClientHello until the server has its first flight ready.
    while !conn.wants_write() {
        let n = tcp.read(&mut buf).await?;
        read += n;
        if n == 0 || read > MAX_REQUEST {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        conn.read_tls(&mut &buf[..n])?;
        conn.process_new_packets().map_err(io::Error::other)?;
    }
    let mut flight = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut flight)?;
    }
    // Bounded by the flight's size (a few KiB), and ends as soon as the client is gone.
    for byte in flight {
        send(&mut tcp, &[byte], counters).await?;
        tokio::time::sleep(every).await;
    }
    Ok(())
}

async fn endless_headers<S: AsyncWrite + Unpin>(
    stream: &mut S,
    every: Option<Duration>,
    counters: &Counters,
) -> io::Result<()> {
    send(stream, b"HTTP/1.1 200 OK\r\n", counters).await?;
    let batch = match every {
        Some(_) => b"X-a: b\r\n".to_vec(),
        None => b"X-a: b\r\n".repeat(1024),
    };
    let mut sent = 0u64;
    while sent < MAX_STREAM {
        send(stream, &batch, counters).await?;
        sent += batch.len() as u64;
        if let Some(every) = every {
            tokio::time::sleep(every).await;
        }
    }
    Ok(())
}

async fn huge_body<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: u64,
    chunked: bool,
    counters: &Counters,
) -> io::Result<()> {
    let framing = if chunked {
        "transfer-encoding: chunked".to_owned()
    } else {
        format!("content-length: {bytes}")
    };
    let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{framing}\r\n\r\n");
    send(stream, head.as_bytes(), counters).await?;
    let mut piece = vec![b'a'; PIECE];
    let start = br#"{"m.server":""#;
    piece[..start.len()].copy_from_slice(start);
    let mut sent = 0u64;
    let bytes = bytes.min(MAX_STREAM);
    while sent < bytes {
        let n = usize::try_from((bytes - sent).min(PIECE as u64)).expect("a piece fits usize");
        if chunked {
            let mut chunk = format!("{n:x}\r\n").into_bytes();
            chunk.extend_from_slice(&piece[..n]);
            chunk.extend_from_slice(b"\r\n");
            send(stream, &chunk, counters).await?;
        } else {
            send(stream, &piece[..n], counters).await?;
        }
        sent += n as u64;
        // Only the first piece opens the JSON string.
        piece[..start.len()].fill(b'a');
    }
    if chunked {
        send(stream, b"0\r\n\r\n", counters).await?;
    }
    Ok(())
}

async fn garbage(mut tcp: TcpStream, prefix: &[u8], counters: &Counters) -> io::Result<()> {
    send(&mut tcp, prefix, counters).await?;
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut sent = 0u64;
    while sent < MAX_STREAM {
        rng.fill(&mut chunk);
        send(&mut tcp, &chunk, counters).await?;
        sent += chunk.len() as u64;
    }
    Ok(())
}

/// A tiny deterministic PRNG for garbage bytes (no dependency, the same garbage every run).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// What an [`EvilDns`] answers to every query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsEvil {
    /// Random bytes whose first two (the message ID) never match the query's: the resolver must ignore them.
    Garbage,
    /// The query's ID and a response header claiming one question and 65,535 answers, then random bytes: it
    /// matches the query but does not parse.
    Malformed,
    /// The question echoed with the TC (truncated) bit set and no answers, so the resolver retries over TCP,
    /// where the connection is accepted and closed at once without a word.
    Truncated,
}

/// A "name server" on 127.0.0.1 (UDP, and TCP on the same port) that answers every query badly. Stops on drop.
pub struct EvilDns {
    pub addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    tcp_connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

/// The most datagrams one [`EvilDns`] answers (the loop is bounded even if a client never stops asking).
const MAX_DNS_ANSWERS: usize = 10_000;

impl EvilDns {
    pub async fn start(evil: DnsEvil) -> Self {
        // Also holds the TCP port, so no other server of a parallel test can answer there.
        let (udp, tcp, addr) = udp_and_tcp_on_one_port().await;
        let queries = Arc::new(AtomicUsize::new(0));
        let tcp_connections = Arc::new(AtomicUsize::new(0));
        let (q, t) = (queries.clone(), tcp_connections.clone());
        let task = tokio::spawn(async move {
            let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
            let mut buf = [0u8; 1500];
            while q.load(Ordering::SeqCst) < MAX_DNS_ANSWERS {
                tokio::select! {
                    r = udp.recv_from(&mut buf) => {
                        let Ok((n, from)) = r else { break };
                        q.fetch_add(1, Ordering::SeqCst);
                        let answer = dns_answer(evil, &buf[..n], &mut rng);
                        // Only ever to the loopback client that asked.
                        if from.ip().is_loopback() {
                            let _ = udp.send_to(&answer, from).await;
                        }
                    }
                    r = tcp.accept() => match r {
                        // Accept and close at once: "the TCP retry gets nothing".
                        Ok((stream, _)) => { t.fetch_add(1, Ordering::SeqCst); drop(stream); }
                        Err(_) => break,
                    },
                }
            }
        });
        Self {
            addr,
            queries,
            tcp_connections,
            task,
        }
    }

    /// UDP queries received so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }

    /// TCP connections accepted (and closed) so far.
    pub fn tcp_connections(&self) -> usize {
        self.tcp_connections.load(Ordering::SeqCst)
    }
}

impl Drop for EvilDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn dns_answer(evil: DnsEvil, query: &[u8], rng: &mut XorShift) -> Vec<u8> {
    let id = [
        query.first().copied().unwrap_or(0),
        query.get(1).copied().unwrap_or(0),
    ];
    match evil {
        DnsEvil::Garbage => {
            let len = 12 + usize::try_from(rng.next() % 500).expect("small");
            let mut out = vec![0u8; len];
            rng.fill(&mut out);
            out[0] = !id[0];
            out[1] = id[1];
            out
        }
        DnsEvil::Malformed => {
            // ID, flags (QR, opcode 0, RD, RA, NOERROR), QDCOUNT 1, ANCOUNT 65535, NSCOUNT 0, ARCOUNT 0.
            let mut out = vec![id[0], id[1], 0x81, 0x80, 0, 1, 0xff, 0xff, 0, 0, 0, 0];
            let mut junk = vec![0u8; 64];
            rng.fill(&mut junk);
            out.extend_from_slice(&junk);
            out
        }
        DnsEvil::Truncated => {
            // The query's header with QR and TC set (and RA), the question echoed, no records (EDNS dropped).
            let mut out = query.to_vec();
            if out.len() < 12 {
                return out;
            }
            out[2] |= 0x82;
            out[3] = 0x80;
            // ANCOUNT, NSCOUNT, ARCOUNT = 0; cut the additional section (the EDNS OPT record).
            out[6..12].fill(0);
            let question_end = question_end(&out).unwrap_or(out.len());
            out.truncate(question_end);
            out
        }
    }
}

/// The end of the first question of a DNS message (uncompressed name, then type and class).
fn question_end(msg: &[u8]) -> Option<usize> {
    let mut i = 12;
    loop {
        let len = usize::from(*msg.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        i += len;
    }
    let end = i + 4;
    (end <= msg.len()).then_some(end)
}

/// A name server on 127.0.0.1 (UDP, and TCP on the same port) that answers every SRV query with `records`
/// SRV records (`10 0 <port> t<i>.<the queried name minus its first two labels>`), and every other query with
/// NOERROR and no records. Over UDP the answer is only the question with the TC bit set, so the resolver
/// retries over TCP; there the answer carries as many records as fit in one DNS message (64 KiB), with the
/// TC bit set if that is fewer than `records`, as an authoritative server does. Built by hand so that a
/// flood of records costs nothing to set up. Stops on drop.
pub struct SrvFloodDns {
    pub addr: SocketAddr,
    answered: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

/// The largest DNS message over TCP (its length prefix is 16 bits).
const MAX_DNS_MESSAGE: usize = 65_535;

impl SrvFloodDns {
    pub async fn start(records: usize, port: u16) -> Self {
        let (udp, tcp, addr) = udp_and_tcp_on_one_port().await;
        let answered = Arc::new(AtomicUsize::new(0));
        let count = answered.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            let mut buf = [0u8; 1500];
            while count.load(Ordering::SeqCst) < MAX_DNS_ANSWERS {
                tokio::select! {
                    r = udp.recv_from(&mut buf) => {
                        let Ok((n, from)) = r else { break };
                        count.fetch_add(1, Ordering::SeqCst);
                        if let Some(answer) = srv_flood_answer(&buf[..n], records, port, true)
                            && from.ip().is_loopback()
                        {
                            let _ = udp.send_to(&answer, from).await;
                        }
                    }
                    r = tcp.accept() => {
                        let Ok((stream, _)) = r else { break };
                        let count = count.clone();
                        while conns.try_join_next().is_some() {}
                        conns.spawn(async move {
                            let serve = serve_srv_flood_tcp(stream, records, port, &count);
                            let _ = tokio::time::timeout(Duration::from_secs(30), serve).await;
                        });
                    }
                }
            }
        });
        Self {
            addr,
            answered,
            task,
        }
    }

    /// Queries answered so far (UDP and TCP).
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }
}

impl Drop for SrvFloodDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A few length-prefixed queries on one TCP connection, each answered in full.
async fn serve_srv_flood_tcp(
    mut stream: TcpStream,
    records: usize,
    port: u16,
    count: &AtomicUsize,
) -> io::Result<()> {
    for _ in 0..16 {
        let len = usize::from(stream.read_u16().await?);
        let mut query = vec![0u8; len];
        stream.read_exact(&mut query).await?;
        count.fetch_add(1, Ordering::SeqCst);
        let Some(answer) = srv_flood_answer(&query, records, port, false) else {
            return Ok(());
        };
        let len = u16::try_from(answer.len()).expect("answers fit one DNS message");
        stream.write_u16(len).await?;
        stream.write_all(&answer).await?;
    }
    Ok(())
}

/// The answer to `query`: see [`SrvFloodDns`]. None for a query that is not one question.
fn srv_flood_answer(query: &[u8], records: usize, port: u16, udp: bool) -> Option<Vec<u8>> {
    let end = question_end(query)?;
    let qtype = u16::from_be_bytes([query[end - 4], query[end - 3]]);
    let mut out = query[..end].to_vec();
    // QR, opcode 0, AA, RD copied; RA; NOERROR. One question, no records yet.
    out[2] = 0x84 | (query[2] & 0x01);
    out[3] = 0x80;
    out[6..12].fill(0);
    if qtype != 33 {
        return Some(out);
    }
    if udp {
        out[2] |= 0x02;
        return Some(out);
    }
    // The targets' parent: the queried name after its first two labels (`_matrix-fed._tcp.`).
    let mut parent = 12;
    for _ in 0..2 {
        parent += 1 + usize::from(*query.get(parent)?);
    }
    let parent = u16::try_from(parent).ok()?;
    let mut sent = 0usize;
    for i in 0..records {
        let label = format!("t{i}");
        let label_len = u8::try_from(label.len()).expect("short label");
        let rdlength = 6 + 1 + label.len() + 2;
        if out.len() + 12 + rdlength > MAX_DNS_MESSAGE {
            // What does not fit is left out, and the answer says so.
            out[2] |= 0x02;
            break;
        }
        // Owner: a pointer to the question's name. SRV, IN, TTL 300.
        out.extend_from_slice(&[0xc0, 0x0c, 0, 33, 0, 1, 0, 0, 0x01, 0x2c]);
        out.extend_from_slice(&u16::try_from(rdlength).expect("short rdata").to_be_bytes());
        out.extend_from_slice(&[0, 10, 0, 0]);
        out.extend_from_slice(&port.to_be_bytes());
        out.push(label_len);
        out.extend_from_slice(label.as_bytes());
        out.extend_from_slice(&(0xc000 | parent).to_be_bytes());
        sent += 1;
    }
    out[6..8].copy_from_slice(&u16::try_from(sent).expect("fits one message").to_be_bytes());
    Some(out)
}

/// A leaf for `names` presented with `n - 1` further CA certificates that all share the leaf issuer's name, each
/// self-issued with its own key: every one of them is a candidate issuer of the leaf and of each other, so a
/// naive path builder explores up to (n-1)^depth paths. Nothing here is trusted.
pub fn looping_chain(names: &[&str], n: usize) -> Leaf {
    assert!(n >= 2);
    let name = "MFE Evil Loop CA";
    let mut cas = Vec::with_capacity(n - 1);
    let mut issuer = None;
    for _ in 0..n - 1 {
        let key = KeyPair::generate().expect("generate CA key");
        let params = ca_params(name);
        let cert = params.self_signed(&key).expect("self-sign loop CA");
        cas.push(cert.der().clone());
        issuer = Some(Issuer::new(params, key));
    }
    let issuer = issuer.expect("at least one CA");
    let key = KeyPair::generate().expect("generate leaf key");
    let leaf = leaf_params(names)
        .signed_by(&key, &issuer)
        .expect("sign leaf");
    let mut chain = vec![leaf.der().clone()];
    chain.extend(cas);
    Leaf {
        chain,
        key: private_key(&key),
    }
}

/// A real chain of `n` certificates: a root, `n - 2` CAs each signed by the one above, and a leaf for `names`,
/// presented leaf first without the root. Returns the chain and the root to trust. The chain is far deeper
/// than any verifier allows (webpki stops after 6 intermediates).
pub fn deep_chain(names: &[&str], n: usize) -> (Leaf, CertificateDer<'static>) {
    assert!(n >= 3);
    let root_key = KeyPair::generate().expect("generate root key");
    let root_params = ca_params("MFE Deep Root");
    let root = root_params.self_signed(&root_key).expect("self-sign root");
    let mut issuer = Issuer::new(root_params, root_key);
    let mut cas = Vec::with_capacity(n - 2);
    for i in 0..n - 2 {
        let key = KeyPair::generate().expect("generate CA key");
        let params = ca_params(&format!("MFE Deep CA {i}"));
        let cert = params.signed_by(&key, &issuer).expect("sign deep CA");
        cas.push(cert.der().clone());
        issuer = Issuer::new(params, key);
    }
    let key = KeyPair::generate().expect("generate leaf key");
    let leaf = leaf_params(names)
        .signed_by(&key, &issuer)
        .expect("sign leaf");
    let mut chain = vec![leaf.der().clone()];
    chain.extend(cas.into_iter().rev());
    (
        Leaf {
            chain,
            key: private_key(&key),
        },
        root.der().clone(),
    )
}

fn ca_params(cn: &str) -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::OrganizationName,
        "matrix-federation-exporter evil tests",
    );
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = now - time::Duration::days(1);
    p.not_after = now + time::Duration::days(30);
    p
}

fn leaf_params(names: &[&str]) -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    let mut p = CertificateParams::default();
    p.subject_alt_names = names
        .iter()
        .map(|n| SanType::DnsName((*n).try_into().expect("DNS name is IA5")))
        .collect();
    let mut dn = DistinguishedName::new();
    if let Some(first) = names.first() {
        dn.push(DnType::CommonName, *first);
    }
    p.distinguished_name = dn;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    p.not_before = now - time::Duration::days(1);
    p.not_after = now + time::Duration::days(30);
    p
}

fn private_key(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
}
