//! Fake DNS: an in-process authoritative hickory-server for the `test.` zone, and a server that never answers.
//!
//! Names outside the zone answer REFUSED (hickory-server's catalog has no zone for them); names in the zone
//! answer NXDOMAIN when absent, NOERROR/NODATA when they exist with other types, SERVFAIL when marked so.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Header, HeaderCounts, Metadata, ResponseCode};
use hickory_server::proto::rr::{LowerName, Name};
use hickory_server::proto::serialize::txt::Parser;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, MessageResponseBuilder, ZoneType};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

const ORIGIN: &str = "test.";

/// Records for the `test.` zone. Names are given without a trailing dot and must end in `.test`.
#[derive(Clone, Debug)]
pub struct Zone {
    lines: Vec<String>,
    servfail: HashSet<String>,
    ttl: u32,
    /// Serve each name as its own small zone (see [`Zone::zone_per_name`]).
    split: bool,
}

impl Default for Zone {
    fn default() -> Self {
        Self::new()
    }
}

impl Zone {
    /// An empty zone (SOA only); records get TTL 300 unless [`Zone::ttl`] says otherwise.
    pub fn new() -> Self {
        Self {
            lines: Vec::new(),
            servfail: HashSet::new(),
            ttl: 300,
            split: false,
        }
    }

    /// TTL for the records added after this call.
    #[must_use]
    pub fn ttl(mut self, ttl: u32) -> Self {
        self.ttl = ttl;
        self
    }

    #[must_use]
    pub fn a(self, name: &str, ip: Ipv4Addr) -> Self {
        self.record(name, "A", &ip.to_string())
    }

    #[must_use]
    pub fn aaaa(self, name: &str, ip: Ipv6Addr) -> Self {
        self.record(name, "AAAA", &ip.to_string())
    }

    /// `target` may be outside the zone (it is then not followed).
    #[must_use]
    pub fn cname(self, name: &str, target: &str) -> Self {
        self.record(name, "CNAME", &absolute(target))
    }

    /// `target` may be `"."` ("service decidedly not available").
    #[must_use]
    pub fn srv(self, name: &str, priority: u16, weight: u16, port: u16, target: &str) -> Self {
        self.record(
            name,
            "SRV",
            &format!("{priority} {weight} {port} {}", absolute(target)),
        )
    }

    /// Makes `name` exist (so A/AAAA queries answer NODATA rather than NXDOMAIN).
    #[must_use]
    pub fn txt(self, name: &str, text: &str) -> Self {
        assert!(
            !text.contains(['"', '\\']),
            "keep TXT test data free of quotes"
        );
        self.record(name, "TXT", &format!("\"{text}\""))
    }

    /// Every query for exactly this name answers SERVFAIL.
    #[must_use]
    pub fn servfail(mut self, name: &str) -> Self {
        self.servfail.insert(in_zone(name));
        self
    }

    /// Serves every name (with the `_service._proto` names under it) as its own zone, each with its own SOA,
    /// inside `test.`. For zones of a hundred thousand names (the benchmark world): hickory-server 0.26's
    /// in-memory zone answers a name it lacks, or a type the name lacks, by scanning every record of the zone
    /// (`InMemoryZoneHandler::lookup`, to tell NXDOMAIN from NODATA), so one big zone costs O(records) per
    /// negative answer. The answers are the same (NXDOMAIN, NODATA, records), except that a negative answer
    /// carries the small zone's SOA and a CNAME is not chased into another name's zone.
    #[must_use]
    pub fn zone_per_name(mut self) -> Self {
        self.split = true;
        self
    }

    fn record(mut self, name: &str, rtype: &str, rdata: &str) -> Self {
        self.lines
            .push(format!("{} {} IN {rtype} {rdata}", in_zone(name), self.ttl));
        self
    }

    fn text(&self) -> String {
        let mut text = zone_head(ORIGIN);
        for line in &self.lines {
            writeln!(text, "{line}").expect("write to String");
        }
        text
    }

    fn build(self) -> (Arc<Catalog>, Arc<HashSet<LowerName>>) {
        let mut catalog = Catalog::new();
        if self.split {
            // Owner name → its zone: the name without its leading `_service._proto` labels; `test.` itself
            // answers for every name outside them.
            let mut zones: std::collections::BTreeMap<&str, String> =
                std::collections::BTreeMap::from([(ORIGIN, zone_head(ORIGIN))]);
            for line in &self.lines {
                let owner = line
                    .split(' ')
                    .next()
                    .expect("a record line starts with its owner");
                let mut apex = owner;
                while apex.starts_with('_') {
                    apex = apex.split_once('.').map_or(apex, |(_, rest)| rest);
                }
                let text = zones.entry(apex).or_insert_with(|| zone_head(apex));
                writeln!(text, "{line}").expect("write to String");
            }
            for (apex, text) in zones {
                add_zone(&mut catalog, apex, text);
            }
        } else {
            add_zone(&mut catalog, ORIGIN, self.text());
        }
        let servfail = self
            .servfail
            .into_iter()
            .map(|n| LowerName::from(Name::from_ascii(&n).expect("SERVFAIL name parses")))
            .collect();
        (Arc::new(catalog), Arc::new(servfail))
    }
}

/// The start of a zone's text: its `$ORIGIN` and SOA record.
fn zone_head(origin: &str) -> String {
    format!("$ORIGIN {origin}\n@ 300 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 300\n")
}

/// Parses one zone's text (with its `$ORIGIN` and SOA) into `catalog`.
fn add_zone(catalog: &mut Catalog, origin: &str, text: String) {
    let origin = Name::from_ascii(origin).expect("origin parses");
    let (_, records) = Parser::new(text, None, Some(origin.clone()))
        .parse()
        .expect("test zone parses");
    let handler = InMemoryZoneHandler::<TokioRuntimeProvider>::new(
        origin.clone(),
        records,
        ZoneType::Primary,
        AxfrPolicy::Deny,
    )
    .expect("test zone loads");
    catalog.upsert(LowerName::from(&origin), vec![Arc::new(handler)]);
}

/// `name` as an absolute name inside `test.`; panics (test setup error) otherwise.
fn in_zone(name: &str) -> String {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    assert!(
        name.rsplit('.').next() == Some("test"),
        "fake DNS only serves names under test.: {name}"
    );
    format!("{name}.")
}

fn absolute(target: &str) -> String {
    if target == "." {
        ".".to_owned()
    } else {
        format!("{}.", target.trim_end_matches('.'))
    }
}

/// The current zone: swapped whole by [`FakeDns::set_zone`].
struct State {
    catalog: Arc<Catalog>,
    servfail: Arc<HashSet<LowerName>>,
}

struct Shared {
    state: RwLock<State>,
    queries: AtomicUsize,
    /// Where each query came from, in order of arrival (the first [`MAX_SOURCES`]).
    sources: std::sync::Mutex<Vec<SocketAddr>>,
}

/// The most query sources a [`FakeDns`] remembers.
const MAX_SOURCES: usize = 10_000;

/// The catalog plus the SERVFAIL list and the query counter.
struct Handler(Arc<Shared>);

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        self.0.queries.fetch_add(1, Ordering::Relaxed);
        {
            let mut sources = self.0.sources.lock().expect("dns sources lock");
            if sources.len() < MAX_SOURCES {
                sources.push(request.src());
            }
        }
        let (catalog, servfail) = {
            let state = self.0.state.read().expect("dns state lock");
            (state.catalog.clone(), state.servfail.clone())
        };
        let fail = request
            .queries
            .queries()
            .iter()
            .any(|q| servfail.contains(q.name()));
        if !fail {
            return catalog
                .handle_request::<R, T>(request, response_handle)
                .await;
        }
        let response = MessageResponseBuilder::new(&request.queries, None)
            .error_msg(&request.metadata, ResponseCode::ServFail);
        // If the client went away, report what we meant to send.
        response_handle
            .send_response(response)
            .await
            .unwrap_or_else(|_| {
                let mut metadata = Metadata::response_from_request(&request.metadata);
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            })
    }
}

/// A UDP socket and a TCP listener on the same free port of 127.0.0.1. The port the kernel picks for UDP may be
/// taken for TCP (by a listener or a connection of a test running in parallel): then another port is tried, a
/// bounded number of times.
pub async fn udp_and_tcp_on_one_port() -> (UdpSocket, TcpListener, SocketAddr) {
    const ATTEMPTS: usize = 50;
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let udp = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind fake DNS UDP");
        let addr = udp.local_addr().expect("UDP local addr");
        match TcpListener::bind(addr).await {
            Ok(tcp) => return (udp, tcp, addr),
            Err(e) => last = Some(e),
        }
    }
    panic!("no port of 127.0.0.1 was free for both UDP and TCP in {ATTEMPTS} tries: {last:?}");
}

/// An authoritative server for the `test.` zone on 127.0.0.1 (UDP and TCP, same port). Stops on drop.
pub struct FakeDns {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: Server<Handler>,
}

impl FakeDns {
    pub async fn start(zone: Zone) -> Self {
        let (catalog, servfail) = zone.build();
        let shared = Arc::new(Shared {
            state: RwLock::new(State { catalog, servfail }),
            queries: AtomicUsize::new(0),
            sources: std::sync::Mutex::new(Vec::new()),
        });
        let (udp, tcp, addr) = udp_and_tcp_on_one_port().await;
        let mut server = Server::new(Handler(shared.clone()));
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 64);
        Self {
            addr,
            shared,
            server,
        }
    }

    /// Replaces the whole zone (records and SERVFAIL names); the next query sees the new data.
    pub fn set_zone(&self, zone: Zone) {
        let (catalog, servfail) = zone.build();
        *self.shared.state.write().expect("dns state lock") = State { catalog, servfail };
    }

    /// Queries received so far (UDP and TCP, any name).
    pub fn queries(&self) -> usize {
        self.shared.queries.load(Ordering::Relaxed)
    }

    /// The address each query came from, in order of arrival (the client's socket: one per exchange).
    pub fn sources(&self) -> Vec<SocketAddr> {
        self.shared
            .sources
            .lock()
            .expect("dns sources lock")
            .clone()
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        // Cancelling stops the accept loops; dropping `server` (its JoinSet) then aborts every task.
        self.server.shutdown_token().cancel();
    }
}

/// A "name server" on 127.0.0.1 (UDP and TCP, same port) that reads queries and never answers.
pub struct SilentDns {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl SilentDns {
    pub async fn start() -> Self {
        let (udp, tcp, addr) = udp_and_tcp_on_one_port().await;
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            let mut buf = [0u8; 1500];
            loop {
                tokio::select! {
                    r = udp.recv_from(&mut buf) => { if r.is_err() { break; } }
                    r = tcp.accept() => match r {
                        Ok((stream, _)) => held.push(stream),
                        Err(_) => break,
                    },
                }
            }
        });
        Self { addr, task }
    }
}

impl Drop for SilentDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A hickory resolver asking only `ns` (UDP, TCP on truncation): no cache, one attempt, no hosts file.
pub fn resolver(ns: SocketAddr, timeout: Duration) -> TokioResolver {
    let mut udp = ConnectionConfig::udp();
    udp.port = ns.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = ns.port();
    let server = NameServerConfig::new(ns.ip(), true, vec![udp, tcp]);
    let mut opts = ResolverOpts::default();
    opts.cache_size = 0;
    opts.attempts = 0;
    opts.timeout = timeout;
    opts.use_hosts_file = ResolveHosts::Never;
    hickory_resolver::Resolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![server]),
        TokioRuntimeProvider::default(),
    )
    .with_options(opts)
    .build()
    .expect("build test resolver")
}
