//! The listener under abuse: connection floods, silent and slow clients, idle keep-alive connections, and a file
//! descriptor limit that the flood would exhaust. Everything on loopback; every loop that sends traffic is
//! bounded in count, and every wait has a bound.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use matrix_federation_exporter::config::WebLimits;
use matrix_federation_exporter::serve::listener;
use support::binary::Log;
use support::ca::{TestCa, Validity};
use support::dns::{FakeDns, Zone};
use support::https::{Behaviour, FakeServer, PortAnchor};
use support::keys;
use tokio::sync::{oneshot, watch};

/// How long a test client waits for any answer: far above what the behaviour needs.
const CLIENT_BOUND: Duration = Duration::from_secs(10);

/// A GET over a fresh connection, answered in full (`Connection: close`).
fn http_request(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(CLIENT_BOUND))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Whether the server has closed `stream` (EOF or reset), without waiting.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    }
}

/// Polls (bounded) until at least `want` of `streams` are closed by the server; returns how many are.
fn wait_until_closed(streams: &mut [TcpStream], want: usize) -> usize {
    let mut closed = vec![false; streams.len()];
    for _ in 0..100 {
        for (stream, done) in streams.iter_mut().zip(closed.iter_mut()) {
            if !*done {
                *done = closed_by_server(stream);
            }
        }
        let n = closed.iter().filter(|c| **c).count();
        if n >= want {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    closed.iter().filter(|c| **c).count()
}

/// The value of the one series whose line starts with `prefix`.
fn series(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The real binary under a 512-descriptor limit (soft and hard, so it cannot raise it): a flood of idle
/// connections larger than the limit must not stop a fresh scrape, scheduled probes (which need descriptors for
/// DNS and connections) or a reload. Before the connection cap and its descriptor reserve, the flood took every
/// descriptor: `/metrics` timed out, every probe failed with `dns_error`, and reloads failed.
#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one run of the real binary: flood, scrape, reload and probes, in order"
)]
fn a_connection_flood_under_a_low_descriptor_limit_leaves_scrapes_probes_and_reloads_working() {
    const FLOOD: usize = 700;
    // The flood's sockets live in this process: make room for them here.
    let limit = rlimit::increase_nofile_limit(4096).unwrap();
    assert!(
        limit >= 1024,
        "this test needs 1,024 descriptors, the limit is {limit}"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut anchor = PortAnchor::new();
    let ca = TestCa::new("flood");
    let dir = std::env::temp_dir().join(format!("mfe-flood-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let root = ca.write_root_pem(&dir);
    // A named server found through SRV, so every probe needs DNS sockets and a TCP connection.
    let _server = runtime.block_on(FakeServer::start(
        anchor.bind([127, 0, 0, 2]),
        Behaviour::Https {
            leaf: ca.leaf(&["flood.test"], Validity::Valid),
            routes: keys::matrix_routes("flood.test"),
        },
    ));
    let dns = runtime.block_on(FakeDns::start(
        Zone::new()
            .srv(
                "_matrix-fed._tcp.flood.test",
                10,
                0,
                anchor.port,
                "host.test",
            )
            .a("host.test", Ipv4Addr::new(127, 0, 0, 2)),
    ));
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "servers: [flood.test]\nprobe:\n  interval: 1s\ndns:\n  nameservers: [\"{}\"]\n\
             tls:\n  trust_store: webpki\n  ca_files: [{}]\n\
             # Long enough that only the connection cap can close the flood during the test.\n\
             web:\n  header_read_timeout: 5m\n",
            dns.addr,
            root.display()
        ),
    )
    .unwrap();
    let listen = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut child = Command::new("bash")
        .args(["-c", r#"ulimit -n 512 && exec "$0" "$@""#])
        .arg(env!("CARGO_BIN_EXE_matrix-federation-exporter"))
        .args([
            "--config.file",
            config.to_str().unwrap(),
            "--web.listen-address",
            &listen.to_string(),
            "--probe.allow-private-addresses",
            "--log.level",
            "debug",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = Log::capture(&mut child);
    log.wait_for("federation ok", Duration::from_secs(30), "never federated");
    let cap_line = log
        .lines
        .iter()
        .find(|l| l.contains("web.max_connections lowered"))
        .cloned()
        .unwrap_or_else(|| panic!("the cap was not lowered; log:\n{}", log.lines.join("\n")));
    eprintln!("{cap_line}");

    // The flood: idle connections, more than the descriptor limit.
    let mut flood: Vec<TcpStream> = (0..FLOOD)
        .map(|_| TcpStream::connect(listen).unwrap())
        .collect();

    // A fresh scrape is answered, with the probe's result in it.
    let metrics = http_request(listen, "GET", "/metrics").expect("the scrape during the flood");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert_eq!(
        series(
            &metrics,
            r#"matrix_federation_probe_success{server_name="flood.test"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    let probes_before = series(
        &metrics,
        r#"matrix_federation_exporter_probes_total{result="success"}"#,
    )
    .unwrap();

    // The mechanism: the cap held, by closing the flood's oldest connections.
    let cap: usize = cap_line
        .split("cap=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no cap in {cap_line:?}"));
    assert!(cap < 512, "the cap is below the descriptor limit: {cap}");
    let closed = wait_until_closed(&mut flood, FLOOD - cap);
    assert!(
        closed >= FLOOD - cap,
        "{closed} of {FLOOD} flood connections closed, the cap is {cap}"
    );

    // A reload needs descriptors too (the config file, the new resolver).
    let reload = http_request(listen, "POST", "/-/reload").expect("the reload during the flood");
    assert!(reload.starts_with("HTTP/1.1 200"), "{reload}");

    // Scheduled probes go on succeeding while the flood's survivors stay open.
    let mut probes_after = probes_before;
    for _ in 0..100 {
        let metrics = http_request(listen, "GET", "/metrics").unwrap();
        probes_after = series(
            &metrics,
            r#"matrix_federation_exporter_probes_total{result="success"}"#,
        )
        .unwrap();
        if probes_after >= probes_before + 2.0 {
            assert_eq!(
                series(
                    &metrics,
                    r#"matrix_federation_exporter_probes_total{result="failure"}"#
                ),
                Some(0.0),
                "{metrics}"
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        probes_after >= probes_before + 2.0,
        "scheduled probes stopped succeeding: {probes_before} → {probes_after}"
    );
    drop(flood);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let lines = log.drain();
    assert!(
        !lines.iter().any(|l| l.contains("federation failing")),
        "{}",
        lines.join("\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Serves `router` on 127.0.0.1 with `limits` until the sender is dropped.
async fn serve(router: Router, limits: WebLimits) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let (_limits_tx, limits_rx) = watch::channel(limits);
    tokio::spawn(async move {
        listener::serve(listener, router, None, limits_rx, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (addr, stop)
}

/// Reads until the server closes the connection (bounded); returns what arrived.
async fn read_to_close(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt as _;
    let mut out = Vec::new();
    tokio::time::timeout(CLIENT_BOUND, stream.read_to_end(&mut out))
        .await
        .expect("the server closed the connection")
        .unwrap_or_default();
    out
}

#[tokio::test]
async fn silent_slow_and_idle_connections_are_closed_but_a_slow_answer_is_not() {
    use tokio::io::AsyncWriteExt as _;
    let limits = WebLimits {
        max_connections: 16,
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
    };
    let router = Router::new().route("/", get(|| async { "ok\n" })).route(
        "/slow",
        get(|| async {
            // Longer than both timeouts: a request in progress is never cut.
            tokio::time::sleep(Duration::from_millis(900)).await;
            "slow but whole\n"
        }),
    );
    let (addr, _stop) = serve(router, limits).await;

    // Connects and sends nothing.
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Sends half a request head and stalls.
    let mut slowloris = tokio::net::TcpStream::connect(addr).await.unwrap();
    slowloris
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(read_to_close(&mut silent).await.is_empty());
    let answer = read_to_close(&mut slowloris).await;
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // A keep-alive connection: answered, then closed once idle; a slow answer arrives whole.
    let mut keep_alive = tokio::net::TcpStream::connect(addr).await.unwrap();
    keep_alive
        .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = String::from_utf8(read_to_close(&mut keep_alive).await).unwrap();
    assert!(answer.contains("slow but whole"), "{answer}");
    assert_eq!(
        answer.matches("HTTP/1.1 200").count(),
        2,
        "both requests answered before the idle close: {answer}"
    );
}

#[tokio::test]
async fn at_the_cap_busy_connections_are_kept_and_a_new_one_is_closed_at_once() {
    use tokio::io::AsyncWriteExt as _;
    let (release, released) = watch::channel(false);
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel::<()>();
    let router = Router::new().route(
        "/hold",
        get(move || {
            let mut released = released.clone();
            let _ = arrived_tx.send(());
            async move {
                let _ = released.wait_for(|r| *r).await;
                "released\n"
            }
        }),
    );
    let limits = WebLimits {
        max_connections: 2,
        header_read_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
    };
    let (addr, _stop) = serve(router, limits).await;
    let request = b"GET /hold HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        busy.push(s);
    }
    // Both requests are in their handler.
    for _ in 0..2 {
        tokio::time::timeout(CLIENT_BOUND, arrived.recv())
            .await
            .expect("the request reached its handler");
    }
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(
        read_to_close(&mut third).await.is_empty(),
        "no room: closed without an answer"
    );
    release.send_replace(true);
    for mut s in busy {
        let answer = String::from_utf8(read_to_close(&mut s).await).unwrap();
        assert!(answer.contains("released"), "{answer}");
    }
    // Room again.
    let mut fourth = tokio::net::TcpStream::connect(addr).await.unwrap();
    fourth.write_all(request).await.unwrap();
    let answer = String::from_utf8(read_to_close(&mut fourth).await).unwrap();
    assert!(answer.contains("released"), "{answer}");
}
