//! DNS questions to one name server, on the wire: queries built and answers read with hickory-proto, sent over
//! UDP (a fresh socket per exchange, so the port is the kernel's random pick; the questions a probe asks together
//! share it, each with its own ID), and again over TCP for an answer that comes back truncated. The caller
//! (`dns.rs`) gives the exchange its deadline, tries the next name server and follows CNAMEs; this module only
//! asks once and checks each answer belongs to its question.
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

/// An answer to one question of [`ask_all`]: `None` when none came before the deadline.
pub(super) type Asked = Option<Result<Message, WireError>>;

/// Asks `server` every question of `questions` (names absolute) at once: over one UDP socket, each question with
/// its own ID, and again over TCP for each whose UDP answer has the TC bit. The answers are in question order.
/// Nothing is waited on past `deadline`; questions without an answer by then are `None`.
///
/// One socket for the questions a probe asks together (the server name's AAAA, A and two SRV records) costs
/// one socket, bind, connect and close instead of one each: about half of a probe's syscalls were these
/// (BENCHMARKS.md, "Fifth session"). The port is still the kernel's random pick, and lives only as long as
/// the exchange.
pub(super) async fn ask_all(
    server: SocketAddr,
    questions: &[(&Name, RecordType)],
    deadline: tokio::time::Instant,
) -> Vec<Asked> {
    let mut asked: Vec<Question<'_>> = Vec::with_capacity(questions.len());
    for &(name, rtype) in questions {
        // Distinct IDs, so each answer finds its question (at most a handful of questions: few redraws).
        let mut id: u16 = rand::random();
        while asked.iter().any(|q| q.id == id) {
            id = rand::random();
        }
        asked.push(Question { id, name, rtype });
    }
    let mut out: Vec<Asked> = asked.iter().map(|_| None).collect();
    let mut queries = Vec::with_capacity(asked.len());
    for (q, slot) in asked.iter().zip(out.iter_mut()) {
        match encode(q) {
            Ok(query) => queries.push(query),
            Err(e) => {
                *slot = Some(Err(e));
                queries.push(Vec::new());
            }
        }
    }
    // Answers that came stay in `out` when the deadline cuts the exchange short.
    let udp = tokio::time::timeout_at(deadline, udp(server, &queries, &asked, &mut out)).await;
    if let Ok(Err(e)) = udp {
        // The socket failed (refused, unreachable): every question still waiting has that answer.
        for slot in out.iter_mut().filter(|s| s.is_none()) {
            *slot = Some(Err(WireError::Io(std::io::Error::new(
                e.kind(),
                e.to_string(),
            ))));
        }
    }
    for ((slot, query), q) in out.iter_mut().zip(&queries).zip(&asked) {
        if !matches!(slot, Some(Ok(answer)) if answer.metadata.truncation) {
            continue;
        }
        *slot = match tokio::time::timeout_at(deadline, tcp(server, query, q)).await {
            Err(_) => None,
            Ok(Err(e)) => Some(Err(e)),
            // A whole DNS message (64 KiB) could not hold the answer: what came is not all there is.
            Ok(Ok(answer)) if answer.metadata.truncation => Some(Err(WireError::Malformed(
                "the answer was truncated over TCP too (more records than one DNS message holds)"
                    .to_owned(),
            ))),
            Ok(Ok(answer)) => Some(Ok(answer)),
        };
    }
    out
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

/// Sends every query not already answered in `out` and reads datagrams into `out` until each has its answer.
/// Not bounded in time here: the caller's deadline is.
async fn udp(
    server: SocketAddr,
    queries: &[Vec<u8>],
    asked: &[Question<'_>],
    out: &mut [Asked],
) -> std::io::Result<()> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    // Connected: the kernel drops datagrams from any other address.
    socket.connect(server).await?;
    for (query, slot) in queries.iter().zip(out.iter()) {
        if slot.is_none() {
            socket.send(query).await?;
        }
    }
    let mut buf = vec![0u8; UDP_BUFFER];
    let mut ignored = 0;
    while out.iter().any(Option::is_none) {
        let n = socket.recv(&mut buf).await?;
        let bytes = &buf[..n];
        let ours = asked
            .iter()
            .zip(out.iter())
            .position(|(q, slot)| slot.is_none() && id_of(bytes) == Some(q.id));
        let answer = ours.and_then(|i| match belongs(bytes, &asked[i]) {
            Ok(None) => None,
            Ok(Some(answer)) => Some((i, Ok(answer))),
            Err(e) => Some((i, Err(e))),
        });
        if let Some((i, answer)) = answer {
            out[i] = Some(answer);
            continue;
        }
        ignored += 1;
        if ignored == MAX_IGNORED {
            for slot in out.iter_mut().filter(|s| s.is_none()) {
                *slot = Some(Err(WireError::Malformed(format!(
                    "{MAX_IGNORED} datagrams that answer no question of ours"
                ))));
            }
        }
    }
    Ok(())
}

/// The ID a datagram carries (its first two bytes).
fn id_of(bytes: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]))
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
    if id_of(bytes) != Some(q.id) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::rr::rdata::A;
    use hickory_resolver::proto::rr::{RData, Record};

    /// The answer to `query` with one A record `ip`.
    fn answer_to(query: &[u8], ip: [u8; 4]) -> Vec<u8> {
        let q = Message::from_vec(query).unwrap();
        let mut m = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
        m.add_query(q.queries[0].clone());
        m.add_answer(Record::from_rdata(
            q.queries[0].name().clone(),
            60,
            RData::A(A(ip.into())),
        ));
        m.to_vec().unwrap()
    }

    /// The first two datagrams `server` receives, and where they came from (one socket: one address).
    async fn two_queries(server: &UdpSocket) -> (Vec<Vec<u8>>, SocketAddr) {
        let mut buf = [0u8; 512];
        let mut got = Vec::new();
        let mut from = Vec::new();
        for _ in 0..2 {
            let (n, peer) = server.recv_from(&mut buf).await.unwrap();
            got.push(buf[..n].to_vec());
            from.push(peer);
        }
        assert_eq!(from[0], from[1], "both questions from one socket");
        (got, from[0])
    }

    /// Questions asked together share one socket: the answers come back in any order, between stray datagrams,
    /// and each finds its question by ID and question.
    #[tokio::test]
    async fn questions_asked_together_share_one_socket_and_find_their_answers() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let serve = tokio::spawn(async move {
            let (got, peer) = two_queries(&server).await;
            // A datagram with another ID, one with the first question's ID that is a query, not a response,
            // then the answers in reverse order.
            let ids = [id_of(&got[0]).unwrap(), id_of(&got[1]).unwrap()];
            let mut stray_id = ids[0].wrapping_add(1);
            while ids.contains(&stray_id) {
                stray_id = stray_id.wrapping_add(1);
            }
            let mut stray = answer_to(&got[0], [10, 0, 0, 9]);
            stray[..2].copy_from_slice(&stray_id.to_be_bytes());
            server.send_to(&stray, peer).await.unwrap();
            server.send_to(&got[0], peer).await.unwrap();
            server
                .send_to(&answer_to(&got[1], [127, 0, 0, 2]), peer)
                .await
                .unwrap();
            server
                .send_to(&answer_to(&got[0], [127, 0, 0, 1]), peer)
                .await
                .unwrap();
        });
        let one = Name::from_ascii("one.test.").unwrap();
        let two = Name::from_ascii("two.test.").unwrap();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let answers = ask_all(
            addr,
            &[(&one, RecordType::A), (&two, RecordType::A)],
            deadline,
        )
        .await;
        serve.await.unwrap();
        let ips: Vec<(Name, RData)> = answers
            .into_iter()
            .map(|a| {
                let m = a.expect("answered").expect("an answer");
                (m.answers[0].name.clone(), m.answers[0].data.clone())
            })
            .collect();
        assert_eq!(
            ips,
            [
                (one, RData::A(A([127, 0, 0, 1].into()))),
                (two, RData::A(A([127, 0, 0, 2].into()))),
            ]
        );
    }

    /// A question nobody answers is `None` at the deadline; the answered one is kept.
    #[tokio::test]
    async fn the_deadline_keeps_the_answers_that_came() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let serve = tokio::spawn(async move {
            let (got, peer) = two_queries(&server).await;
            // Only the question for "one.test" is answered.
            let first = Message::from_vec(&got[0]).unwrap();
            let answered = if first.queries[0].name().to_ascii() == "one.test." {
                &got[0]
            } else {
                &got[1]
            };
            server
                .send_to(&answer_to(answered, [127, 0, 0, 1]), peer)
                .await
                .unwrap();
            // Held open (not dropped) until the client gave up, so no ICMP error ends the wait early.
            server
        });
        let one = Name::from_ascii("one.test.").unwrap();
        let two = Name::from_ascii("two.test.").unwrap();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(300);
        let answers = ask_all(
            addr,
            &[(&one, RecordType::A), (&two, RecordType::A)],
            deadline,
        )
        .await;
        drop(serve.await.unwrap());
        assert!(matches!(&answers[0], Some(Ok(m)) if m.answers.len() == 1));
        assert!(answers[1].is_none(), "{:?}", answers[1]);
    }
}
