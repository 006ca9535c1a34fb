//! A real Synapse as a target source: Synapse (client and federation on one loopback TLS listener, an admin
//! user this test registers with the shared secret) federates with servers of the test world named by IP literal
//! (`127.0.0.N:PORT`, certificates with an IP SAN from the test CA): one it cannot reach because of its own
//! `ip_range_blacklist` while the exporter can (`us`), one where nothing listens (`them`), and a healthy one. A
//! device-key query for a remote user records a failure at once. The exporter then lists those destinations with
//! Synapse's real retry state and the right verdict.
//!
//! Hermetic as `tests/synapse.rs`: loopback only, under `tests/synapse/no_egress.py`.

mod support;

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::Duration;

use matrix_federation_exporter::config::Config;
use matrix_federation_exporter::report::Verdict;
use ring::hmac;
use rustls::pki_types::ServerName as TlsName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use support::synapse::{
    EXTRA_CONFIG, SERVER_NAME, SigningSeed, Synapse, TempDir, synapse_python, tls_connector,
    yaml_string,
};
use support::{TIMEOUTS, TestCa, Validity, World, Zone, matrix_routes};

const SHARED_SECRET: &str = "mfe-test-registration-secret";

/// One HTTP/1.1 request to Synapse over a fresh TLS connection (`Connection: close`), bounded; (status, body).
async fn request(
    ca: &TestCa,
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    let exchange = async {
        let tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap();
        let name = TlsName::try_from(SERVER_NAME).unwrap();
        let mut tls = tls_connector(ca).connect(name, tcp).await.unwrap();
        let body = body.map(ToString::to_string).unwrap_or_default();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {SERVER_NAME}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.write_all(body.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        let _ = tls.read_to_end(&mut raw).await;
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .expect("Synapse answers within 30 s");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
    (status, json)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Registers a server admin with the shared secret (`POST /_synapse/admin/v1/register`, as
/// `register_new_matrix_user --admin` does), then logs in; the access token.
async fn admin_token(ca: &TestCa, port: u16) -> String {
    let (status, nonce) = request(ca, port, "GET", "/_synapse/admin/v1/register", None, None).await;
    assert_eq!(status, 200, "{nonce}");
    let nonce = nonce["nonce"].as_str().unwrap().to_owned();
    let (user, password) = ("mfe_admin", "mfe-admin-password");
    let key = hmac::Key::new(
        hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        SHARED_SECRET.as_bytes(),
    );
    let message = format!("{nonce}\0{user}\0{password}\0admin");
    let mut mac = String::new();
    for b in hmac::sign(&key, message.as_bytes()).as_ref() {
        let _ = write!(mac, "{b:02x}");
    }
    let body = serde_json::json!({
        "nonce": nonce, "username": user, "password": password, "admin": true, "mac": mac,
    });
    let (status, answer) = request(
        ca,
        port,
        "POST",
        "/_synapse/admin/v1/register",
        None,
        Some(&body),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let login = serde_json::json!({
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
    });
    let (status, answer) = request(
        ca,
        port,
        "POST",
        "/_matrix/client/v3/login",
        None,
        Some(&login),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    answer["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::too_many_lines,
    reason = "one run against a real Synapse, from setup to verdict"
)]
async fn a_real_synapse_lists_its_destinations_with_the_right_verdict() {
    let python = synapse_python();
    let dir = TempDir::new();
    let zone = Zone::new().a(SERVER_NAME, Ipv4Addr::LOCALHOST);
    let mut world = World::new("synapse-destinations", zone, TIMEOUTS).await;
    let port = world.fed.port;
    let healthy = format!("127.0.0.2:{port}");
    let broken = format!("127.0.0.3:{port}");
    let blocked = format!("127.0.0.4:{port}");
    for (ip, name) in [([127, 0, 0, 2], &healthy), ([127, 0, 0, 4], &blocked)] {
        let behaviour = world.https(
            &format!("127.0.0.{}", ip[3]),
            Validity::Valid,
            matrix_routes(name),
        );
        world.serve_federation(ip, behaviour).await;
    }
    // Nothing listens at 127.0.0.3.

    let ca_file = world.ca.write_root_pem(&dir.0);
    std::fs::write(
        dir.0.join(EXTRA_CONFIG),
        format!(
            r#"
# tests/synapse_destinations.rs: client and federation on the one listener, federation to the test world.
listeners:
  - port: {{PORT}}
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: true
    x_forwarded: false
    resources:
      - names: [client, federation]
        compress: false
registration_shared_secret: "{SHARED_SECRET}"
federation_domain_whitelist: null
federation_verify_certificates: true
federation_custom_ca_list: [{ca}]
ip_range_blacklist: ["127.0.0.4/32"]
ip_range_whitelist: []
"#,
            ca = yaml_string(&ca_file)
        ),
    )
    .unwrap();
    let leaf = world.ca.leaf(&[SERVER_NAME], Validity::Valid);
    let mut synapse =
        Synapse::start(&python, &dir.0, &leaf, &SigningSeed::generate(), &world.ca).await;
    let token = admin_token(&world.ca, synapse.port).await;

    for name in [&healthy, &broken, &blocked] {
        let query = serde_json::json!({"device_keys": {format!("@u:{name}"): []}});
        let (status, answer) = request(
            &world.ca,
            synapse.port,
            "POST",
            "/_matrix/client/v3/keys/query",
            Some(&token),
            Some(&query),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
    }

    let token_file = dir.0.join("admin-token");
    std::fs::write(&token_file, &token).unwrap();
    let yaml = format!(
        "homeservers:\n  - name: synapse\n    synapse_admin:\n      url: https://{SERVER_NAME}:{}\n      access_token_file: {}\n      refresh: 1s\n",
        synapse.port,
        yaml_string(&token_file)
    );
    let config = Config::from_yaml(&yaml).unwrap();
    let exporter = world.exporter(&config).await;
    let mut reports = exporter.reports();
    let want = [(&broken, Verdict::Them), (&blocked, Verdict::Us)];
    let mut last = String::new();
    let mut done = false;
    for _ in 0..300 {
        let views = exporter.homeservers();
        let view = &views[0];
        last = format!("{view:?}");
        done = view.up
            && want.iter().all(|(name, _)| {
                view.destination(name)
                    .is_some_and(|d| d.failure_ts.is_some())
                    && exporter.report(name).is_some()
            });
        if done {
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), reports.changed()).await;
    }
    assert!(
        done,
        "the destinations never showed up: {last}\n{}",
        synapse.logs()
    );
    let view = exporter.homeservers()[0].clone();
    for (name, verdict) in want {
        let d = view.destination(name).unwrap();
        assert!(d.retry_interval > 0, "{d:?}");
        assert!(d.retry_last_ts > 0, "{d:?}");
        let report = exporter.report(name).unwrap();
        assert_eq!(d.verdict(report.success()), verdict, "{name}: {report:?}");
    }
    // The healthy one: Synapse records nothing for a success without an earlier failure; if it lists it, it
    // is not failing, and it is ok to us too.
    if let Some(d) = view.destination(&healthy) {
        assert_eq!(d.failure_ts, None, "{d:?}");
    }
    synapse.assert_alive_and_no_egress();
}
