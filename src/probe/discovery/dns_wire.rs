//! One DNS question to one name server, on the wire: a query built and an answer read with hickory-proto, sent
//! over UDP (a fresh socket per question, so the port is the kernel's random pick), and again over TCP when the
//! answer comes back truncated. The caller (`dns.rs`) bounds the whole exchange by its timeout, tries the next
//! name server and follows CNAMEs; this module only asks once and checks the answer belongs to the question.
//!
//! hickory-resolver did this before, through its name-server pool, retry stream, shared-lookup and caching
//! layers, with the cache turned off and one attempt: a quarter of the exporter's CPU per probe went there
//! (BENCHMARKS.md, "Issues 15 and 18: the cost budgets"). Asking directly does the same exchange with the same
//! checks and no more.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use hickory_resolver::proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_resolver::proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};

/// The EDNS payload size advertised (the DNS flag day 2020 value, hickory's default too).
const EDNS_PAYLOAD: u16 = 1232;
/// Room for one UDP answer: more than advertised, so a server that ignores EDNS still parses (a datagram cut by
/// this buffer fails to parse and is a malformed answer).
const UDP_BUFFER: usize = 4096;
/// Datagrams that do not belong to the question (another ID, not an answer, another question) are ignored, as
/// a resolver must; after this many the server is treated as broken rather than waited on.
const MAX_IGNORED: usize = 64;

/// Why one exchange gave no answer.
#[derive(Debug)]
pub(super) enum WireError {
    /// A socket operation failed (refused, unreachable, closed early).
    Io(std::io::Error),
    /// The answer has the question's ID but does not parse, or the TCP answer is still truncated.
    Malformed(String),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Io(e) => write!(f, "{e}"),
            WireError::Malformed(what) => f.write_str(what),
        }
    }
}

impl From<std::io::Error> for WireError {
    fn from(e: std::io::Error) -> Self {
        WireError::Io(e)
    }
}

/// Asks `server` for `rtype` records of `name` (absolute): over UDP, and over TCP when the UDP answer has the TC
/// bit. Not bounded in time here: the caller wraps it in its timeout.
pub(super) async fn ask(
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
) -> Result<Message, WireError> {
    let question = Question {
        id: rand::random(),
        name,
        rtype,
    };
    let query = encode(&question)?;
    let answer = udp(server, &query, &question).await?;
    if !answer.metadata.truncation {
        return Ok(answer);
    }
    let answer = tcp(server, &query, &question).await?;
    if answer.metadata.truncation {
        // A whole DNS message (64 KiB) could not hold the answer: what came is not all there is.
        return Err(WireError::Malformed(
            "the answer was truncated over TCP too (more records than one DNS message holds)"
                .to_owned(),
        ));
    }
    Ok(answer)
}

/// What one exchange asks: the answer must carry this ID and this question.
struct Question<'a> {
    id: u16,
    name: &'a Name,
    rtype: RecordType,
}

fn encode(q: &Question<'_>) -> Result<Vec<u8>, WireError> {
    let mut msg = Message::new(q.id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(q.name.clone(), q.rtype));
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    msg.set_edns(edns);
    msg.to_vec()
        .map_err(|e| WireError::Malformed(format!("cannot encode the query: {e}")))
}

async fn udp(server: SocketAddr, query: &[u8], q: &Question<'_>) -> Result<Message, WireError> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    // Connected: the kernel drops datagrams from any other address.
    socket.connect(server).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; UDP_BUFFER];
    for _ in 0..MAX_IGNORED {
        let n = socket.recv(&mut buf).await?;
        if let Some(answer) = belongs(&buf[..n], q)? {
            return Ok(answer);
        }
    }
    Err(WireError::Malformed(format!(
        "{MAX_IGNORED} datagrams that answer no question of ours"
    )))
}

async fn tcp(server: SocketAddr, query: &[u8], q: &Question<'_>) -> Result<Message, WireError> {
    let mut stream = TcpStream::connect(server).await?;
    let len = u16::try_from(query.len())
        .map_err(|_| WireError::Malformed("the query is longer than a DNS message".to_owned()))?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    // One answer on this connection: its two-byte length bounds what is read (at most 64 KiB).
    let len = stream.read_u16().await?;
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await?;
    belongs(&buf, q)?.ok_or_else(|| {
        WireError::Malformed("the TCP answer is not an answer to the question asked".to_owned())
    })
}

/// The answer in `bytes` when it answers our question; `None` when it belongs to another (a different ID, not a
/// response, another question: ignored, as a resolver ignores stray datagrams); an error when it carries our
/// ID but does not parse.
fn belongs(bytes: &[u8], q: &Question<'_>) -> Result<Option<Message>, WireError> {
    if bytes.len() < 2 || u16::from_be_bytes([bytes[0], bytes[1]]) != q.id {
        return Ok(None);
    }
    let msg = Message::from_vec(bytes)
        .map_err(|e| WireError::Malformed(format!("a malformed answer: {e}")))?;
    if msg.metadata.message_type != MessageType::Response {
        return Ok(None);
    }
    // A truncated answer may come without its question; any question it has must be ours (names compare
    // without regard to case).
    let ours = if msg.queries.is_empty() {
        msg.metadata.truncation
    } else {
        msg.queries
            .iter()
            .all(|asked| asked.name() == q.name && asked.query_type() == q.rtype)
    };
    Ok(ours.then_some(msg))
}
