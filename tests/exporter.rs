//! End to end: the whole exporter (scheduler, probes, store, collector, routes) against the hermetic world,
//! and the real binary started the way the README says, stopped with SIGTERM.

// Gauges compared here hold small integers (0, 1, 2), which f64 represents exactly.
#![allow(clippy::float_cmp)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use matrix_federation_exporter::config::Config;
use matrix_federation_exporter::config::server_name::ServerName;
use matrix_federation_exporter::serve::daemon;
use support::binary::Log;
use support::{
    Behaviour, FakeDns, FakeServer, PortAnchor, TIMEOUTS, TestCa, Validity, World, Zone, keys,
    world::delegated_and_expired_zone,
};

async fn get(router: &axum::Router, path: &str) -> (u16, String) {
    let answer = support::router::get(router, path).await;
    (answer.status.as_u16(), answer.body)
}

/// The value of the one series whose line starts with `prefix` (name and labels).
fn value(metrics: &str, prefix: &str) -> f64 {
    support::router::sample(metrics, prefix)
}

#[tokio::test]
#[expect(
    clippy::too_many_lines,
    reason = "one end-to-end run over every kind of server, asserting the whole contract"
)]
async fn probes_every_configured_server_and_renders_the_metric_contract() {
    let mut world = World::new(
        "e2e",
        delegated_and_expired_zone()
            .aaaa("bad.test", "::1".parse().unwrap())
            .a("split.test", "127.0.0.5".parse().unwrap())
            .a("split.test", "127.0.0.6".parse().unwrap()),
        TIMEOUTS,
    )
    .await;
    world.serve_delegated_and_expired().await;
    // Two addresses of one server that serve different signing keys (split brain).
    world
        .homeserver([127, 0, 0, 5], "split.test", Validity::Valid)
        .await;
    world
        .homeserver([127, 0, 0, 6], "split.test", Validity::Valid)
        .await;
    // Nothing listens on [::1] for these ports, so bad.test's IPv6 address is refused.
    world.refuse_ipv6();

    let config = Config {
        servers: vec![
            ServerName::parse("good.test").unwrap(),
            ServerName::parse("bad.test").unwrap(),
            ServerName::parse("split.test").unwrap(),
        ],
        ..Config::default()
    };
    let mut exporter = daemon::start(&config, world.env.clone());
    assert_eq!(get(&exporter.router, "/-/ready").await.0, 503);
    exporter.ready.wait_for(|r| *r).await.unwrap();
    assert_eq!(get(&exporter.router, "/-/ready").await.0, 200);
    assert_eq!(get(&exporter.router, "/-/healthy").await.0, 200);

    let (status, m) = get(&exporter.router, "/metrics").await;
    assert_eq!(status, 200);
    let fed_port = world.fed.port;
    assert_eq!(
        value(
            &m,
            r#"matrix_federation_probe_success{server_name="good.test"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            r#"matrix_federation_probe_success{server_name="bad.test"}"#
        ),
        0.0
    );
    assert_eq!(
        value(
            &m,
            r#"matrix_federation_discovery_info{server_name="good.test",method="default_port",well_known="delegated",delegated_server="deleg.test",tls_name="deleg.test",host_header="deleg.test"}"#
        ),
        1.0
    );
    let good_addr =
        format!(r#"server_name="good.test",address="127.0.0.3:{fed_port}",family="ipv4""#);
    assert_eq!(
        value(
            &m,
            &format!("matrix_federation_address_success{{{good_addr}}}")
        ),
        1.0
    );
    assert_eq!(
        value(&m, &format!("matrix_federation_cert_valid{{{good_addr}}}")),
        1.0
    );
    let bad_v4 = format!(r#"server_name="bad.test",address="127.0.0.4:{fed_port}",family="ipv4""#);
    assert_eq!(
        value(&m, &format!("matrix_federation_cert_valid{{{bad_v4}}}")),
        0.0
    );
    assert!(
        value(
            &m,
            &format!("matrix_federation_cert_not_after_timestamp_seconds{{{bad_v4}}}")
        ) > 1.7e9
    );
    assert_eq!(
        value(
            &m,
            &format!(
                r#"matrix_federation_failure_info{{server_name="bad.test",address="[::1]:{fed_port}",stage="connect",reason="connection_refused"}}"#
            )
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            &format!(
                r#"matrix_federation_failure_info{{server_name="bad.test",address="127.0.0.4:{fed_port}",stage="certificate",reason="cert_expired"}}"#
            )
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            r#"matrix_federation_addresses{server_name="bad.test",result="failed"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            &m,
            r#"matrix_federation_exporter_probes_total{result="success"}"#
        ),
        2.0
    );
    assert_eq!(
        value(
            &m,
            r#"matrix_federation_exporter_probes_total{result="failure"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "matrix_federation_exporter_config_last_reload_successful"
        ),
        1.0
    );

    // Keys and version, per address.
    assert_eq!(
        value(&m, &format!("matrix_federation_keys_valid{{{good_addr}}}")),
        1.0
    );
    assert!(
        value(
            &m,
            &format!("matrix_federation_keys_valid_until_timestamp_seconds{{{good_addr}}}")
        ) > 1.7e9
    );
    assert_eq!(
        m.lines()
            .filter(|l| l.starts_with(&format!(
                r#"matrix_federation_server_version_info{{{good_addr},name="FakeServer""#
            )))
            .count(),
        1,
        "{m}"
    );
    // Split brain: the two addresses of split.test serve different keys, and both are visible.
    let split_keys: std::collections::HashSet<&str> = m
        .lines()
        .filter(|l| l.starts_with(r#"matrix_federation_signing_key_info{server_name="split.test""#))
        .filter_map(|l| l.split(r#"key=""#).nth(1))
        .collect();
    assert_eq!(split_keys.len(), 2, "{m}");

    // Every metric family /metrics prints is documented.
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/METRICS.md")).unwrap();
    for line in m.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split(' ').nth(2).unwrap();
        assert!(
            docs.contains(&format!("`{name}")),
            "{name} is not in METRICS.md"
        );
    }

    // The landing page lists the servers.
    let (status, page) = get(&exporter.router, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("good.test") && page.contains("bad.test") && page.contains("/metrics"));
}

/// `cargo run -- --config.file ...` for real: the binary probes, serves /metrics, and exits 0 on SIGTERM.
#[test]
fn the_binary_serves_metrics_and_stops_on_sigterm() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut anchor = PortAnchor::new();
    let ca = TestCa::new("binary");
    let dir = std::env::temp_dir().join(format!("mfe-binary-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let root = ca.write_root_pem(&dir);
    let name = format!("127.0.0.2:{}", anchor.port);
    let _server = runtime.block_on(FakeServer::start(
        anchor.bind([127, 0, 0, 2]),
        Behaviour::Https {
            leaf: ca.leaf(&["127.0.0.2"], Validity::Valid),
            routes: keys::matrix_routes(&name),
        },
    ));
    let dns = runtime.block_on(FakeDns::start(Zone::new()));
    // An IP literal with a port needs no DNS; the fake DNS keeps the resolver off the system's servers.
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "servers: [\"127.0.0.2:{}\"]\ndns:\n  nameservers: [\"{}\"]\ntls:\n  trust_store: webpki\n  ca_files: [{}]\n",
            anchor.port,
            dns.addr,
            root.display()
        ),
    )
    .unwrap();
    let listen = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_matrix-federation-exporter"))
        .args([
            "--config.file",
            config.to_str().unwrap(),
            "--web.listen-address",
            &listen.to_string(),
            // The world is on loopback, which the public-federation view refuses.
            "--probe.allow-private-addresses",
        ])
        .args(["--log.level", "debug"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Wait (bounded) for the log line of the first finished probe: "federation ok" is logged once the first
    // report is stored, so /metrics serves it from then on.
    let mut log = Log::capture(&mut child);
    log.wait_for(
        "federation ok",
        Duration::from_secs(30),
        "the server never federated",
    );
    let success = format!(
        r#"matrix_federation_probe_success{{server_name="127.0.0.2:{}"}} 1"#,
        anchor.port
    );
    let metrics = http_get(listen, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains(&success), "{metrics}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "clean exit on SIGTERM");
    let _ = std::fs::remove_dir_all(&dir);
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}
