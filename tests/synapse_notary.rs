//! A real Synapse as a key notary: for a server whose keys it can fetch the exporter says `match`, for one its
//! `ip_range_blacklist` keeps it from reaching `no_keys`, and for one whose key was replaced after Synapse cached
//! it `stale`. The servers are fake homeservers of the test world with IP-literal names (Synapse resolves names
//! with the system resolver) and certificates from the test CA, which Synapse trusts through
//! `federation_custom_ca_list`. Synapse still runs under `no_egress.py` (loopback only).

mod support;

use std::net::Ipv4Addr;
use std::time::{Instant, SystemTime};

use matrix_federation_exporter::config::notary::NotaryConfig;
use matrix_federation_exporter::config::server_name::ServerName;
use matrix_federation_exporter::probe::env::{Ports, ProbeEnv};
use matrix_federation_exporter::probe::notary::{Asked, direct_keys, query};
use matrix_federation_exporter::probe::probe_server;
use matrix_federation_exporter::report::NotaryResult;
use support::keys::KEY_SERVER_PATH;
use support::synapse::{
    SERVER_NAME, SigningSeed, Synapse, TempDir, pinned_version, synapse_python, yaml_string,
};
use support::{
    FakeDns, FakeServer, PortAnchor, Reply, SigningKey, TIMEOUTS, TestCa, Validity, Zone,
    key_document, matrix_routes_with_keys, now_ms,
};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// A fake homeserver for the IP-literal name `127.0.0.{octet}:{port}`, signing with `key`.
async fn homeserver(
    ca: &TestCa,
    fed: &mut PortAnchor,
    octet: u8,
    key: &SigningKey,
) -> (String, FakeServer) {
    let ip = format!("127.0.0.{octet}");
    let name = format!("{ip}:{}", fed.port);
    let leaf = ca.leaf(&[ip.as_str()], Validity::Valid);
    let routes = matrix_routes_with_keys(key_document(&name, &[key], now_ms() + DAY_MS));
    let server = FakeServer::start(
        fed.bind([127, 0, 0, octet]),
        support::Behaviour::Https { leaf, routes },
    )
    .await;
    (name, server)
}

/// What the exporter's own probe of `name` found: the keys it served directly.
async fn asked(env: &ProbeEnv, name: &str) -> Asked {
    let report = probe_server(env, &ServerName::parse(name).unwrap()).await;
    let direct = direct_keys(&report);
    assert!(
        !direct.is_empty(),
        "the probe of {name} found no keys: {report:#?}"
    );
    Asked {
        server_name: name.to_owned(),
        direct,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::too_many_lines,
    reason = "one run against a real Synapse, from setup to the stale key"
)]
async fn a_real_synapse_notary_serves_match_no_keys_and_stale() {
    let python = synapse_python();
    let pin = pinned_version();
    let dir = TempDir::new();
    let ca = TestCa::new("synapse-notary");
    let mut fed = PortAnchor::new();
    let (a, b, c) = (
        SigningKey::generate("ed25519:a"),
        SigningKey::generate("ed25519:b"),
        SigningKey::generate("ed25519:c"),
    );
    let (good, _good) = homeserver(&ca, &mut fed, 2, &a).await;
    let (blocked, _blocked) = homeserver(&ca, &mut fed, 3, &b).await;
    let (rotating, rotating_server) = homeserver(&ca, &mut fed, 4, &c).await;

    let root = ca.write_root_pem(&dir.0);
    let edit = |config: String| {
        config
            // Synapse may fetch keys from the test world's servers...
            .replace("federation_domain_whitelist: []", "")
            // ...over certificates from the test CA...
            .replace(
                "trusted_key_servers: []",
                &format!(
                    "trusted_key_servers: []\nfederation_custom_ca_list: [{}]",
                    yaml_string(&root)
                ),
            )
            // ...except from 127.0.0.3, which only the exporter reaches.
            .replace(
                r#"ip_range_blacklist: ["0.0.0.0/0", "::/0"]"#,
                r#"ip_range_blacklist: ["127.0.0.3/32"]"#,
            )
    };
    let leaf = ca.leaf(&[SERVER_NAME], Validity::Valid);
    let started = Instant::now();
    let mut synapse =
        Synapse::start_edited(&python, &dir.0, &leaf, &SigningSeed::generate(), &ca, &edit).await;
    eprintln!(
        "synapse {pin} serving on 127.0.0.1:{} after {:.1} s",
        synapse.port,
        started.elapsed().as_secs_f64()
    );

    // The notary is `synapse.test`: its well-known (Synapse answers 404), no SRV, its A record, and "8448" is
    // Synapse's port. The fake homeservers' names carry their own port.
    let dns = FakeDns::start(Zone::new().a(SERVER_NAME, Ipv4Addr::LOCALHOST)).await;
    let ports = Ports {
        well_known: synapse.port,
        federation: synapse.port,
    };
    let env = ProbeEnv::new(&[dns.addr], ca.root_store(), ports, TIMEOUTS).expect("probe env");
    let notary = NotaryConfig {
        server_name: ServerName::parse(SERVER_NAME).unwrap(),
        interval: std::time::Duration::from_secs(3600),
        batch_size: 100,
    };

    // 1. Synapse fetches what it is asked for and can reach, and caches it.
    let servers = vec![
        asked(&env, &good).await,
        asked(&env, &blocked).await,
        asked(&env, &rotating).await,
    ];
    let report = query(&env, &notary, servers, SystemTime::now()).await;
    let why = |r: &matrix_federation_exporter::report::notary::NotaryReport| {
        format!("{r:#?}\n{}", synapse.logs())
    };
    assert!(report.up, "{}", why(&report));
    let result = |r: &matrix_federation_exporter::report::notary::NotaryReport, name: &str| {
        r.view(name).map(|v| v.result)
    };
    assert_eq!(
        result(&report, &good),
        Some(NotaryResult::Match),
        "{}",
        why(&report)
    );
    assert_eq!(
        result(&report, &blocked),
        Some(NotaryResult::NoKeys),
        "{}",
        why(&report)
    );
    assert_eq!(
        result(&report, &rotating),
        Some(NotaryResult::Match),
        "{}",
        why(&report)
    );

    // 2. The rotating server replaces its key under the same key id; Synapse's cached copy is valid for a day,
    //    so with minimum_valid_until_ts = now it keeps serving the old key.
    let replaced = SigningKey::generate("ed25519:c");
    rotating_server.set_route(
        KEY_SERVER_PATH,
        Reply::json(
            200,
            key_document(&rotating, &[&replaced], now_ms() + DAY_MS),
        ),
    );
    let servers = vec![asked(&env, &good).await, asked(&env, &rotating).await];
    assert_eq!(servers[1].direct[0].key, replaced.public_base64());
    let report = query(&env, &notary, servers, SystemTime::now()).await;
    assert!(report.up, "{}", why(&report));
    assert_eq!(
        result(&report, &good),
        Some(NotaryResult::Match),
        "{}",
        why(&report)
    );
    assert_eq!(
        result(&report, &rotating),
        Some(NotaryResult::Stale),
        "{}",
        why(&report)
    );
    let view = report.view(&rotating).unwrap();
    assert_eq!(view.keys, [("ed25519:c".to_owned(), c.public_base64())]);

    synapse.assert_alive_and_no_egress();
}
