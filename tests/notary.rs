//! The notaries' view against a fake notary (`tests/support/notary.rs`): every closed result, both signatures,
//! failed requests, batching, and the daemon's rounds (metrics, one request in flight across reloads).

// Gauges compared here hold 0 or 1, which f64 represents exactly.
#![allow(clippy::float_cmp)]

mod support;

use std::time::{Duration, SystemTime};

use matrix_federation_exporter::config::Config;
use matrix_federation_exporter::config::notary::NotaryConfig;
use matrix_federation_exporter::config::server_name::ServerName;
use matrix_federation_exporter::probe::notary::{Asked, query};
use matrix_federation_exporter::report::notary::NotaryReport;
use matrix_federation_exporter::report::{NotaryResult, VerifyKey};
use serde_json::Value;
use support::notary::{Answer, Countersign, FakeNotary};
use support::{SigningKey, TIMEOUTS, Validity, World, Zone, key_document, now_ms, sign_json};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
const NOTARY: &str = "notary.test";

/// A world whose DNS has `notary.test` at 127.0.0.9, and the fake notary there on the federation port.
async fn notary_world(label: &str) -> (World, FakeNotary) {
    let zone = Zone::new().a(NOTARY, "127.0.0.9".parse().unwrap());
    let mut world = World::new(label, zone, TIMEOUTS).await;
    let leaf = world.ca.leaf(&[NOTARY], Validity::Valid);
    let notary = FakeNotary::start(world.fed.bind([127, 0, 0, 9]), &leaf, NOTARY).await;
    world.refuse_ipv6();
    (world, notary)
}

fn notary_config(batch_size: usize) -> NotaryConfig {
    NotaryConfig {
        server_name: ServerName::parse(NOTARY).unwrap(),
        interval: Duration::from_secs(3600),
        batch_size,
    }
}

/// What a probe found for a server signing with `key`.
fn direct(name: &str, key: &SigningKey) -> Asked {
    Asked {
        server_name: name.to_owned(),
        direct: vec![VerifyKey {
            key_id: key.key_id.clone().into(),
            key: key.public_base64().into(),
            valid_ed25519: true,
            matching_signature: true,
        }],
    }
}

fn results(report: &NotaryReport) -> Vec<(&str, NotaryResult)> {
    report
        .servers
        .iter()
        .map(|v| (v.server_name.as_str(), v.result))
        .collect()
}

#[tokio::test]
async fn match_stale_no_keys_and_a_forged_origin_signature() {
    let (world, notary) = notary_world("notary-results").await;
    let a = SigningKey::generate("ed25519:a");
    let (b_old, b_new) = (
        SigningKey::generate("ed25519:b1"),
        SigningKey::generate("ed25519:b2"),
    );
    let d = SigningKey::generate("ed25519:d");
    let until = now_ms() + DAY_MS;
    notary.cache(&key_document("a.test", &[&a], until));
    notary.cache(&key_document("b.test", &[&b_old], until));
    // d.test's document as a forger made it: d's verify key, signed by another key under d's key id.
    let forger = SigningKey::generate("ed25519:d");
    let mut forged: Value = serde_json::from_str(&key_document("d.test", &[&d], until)).unwrap();
    forged.as_object_mut().unwrap().remove("signatures");
    sign_json(&mut forged, "d.test", &forger);
    notary.cache(&forged.to_string());

    let asked = vec![
        direct("a.test", &a),
        direct("b.test", &b_new),
        direct("c.test", &SigningKey::generate("ed25519:c")),
        direct("d.test", &d),
    ];
    let now = SystemTime::now();
    let report = query(&world.env, &notary_config(100), asked, now).await;
    assert!(report.up, "{}", report.message);
    assert_eq!(
        results(&report),
        [
            ("a.test", NotaryResult::Match),
            ("b.test", NotaryResult::Stale),
            ("c.test", NotaryResult::NoKeys),
            ("d.test", NotaryResult::BadSignature),
        ]
    );
    let a_view = report.view("a.test").unwrap();
    assert_eq!(a_view.valid_until_ts, Some(until));
    assert_eq!(a_view.keys, [("ed25519:a".to_owned(), a.public_base64())]);
    let b_view = report.view("b.test").unwrap();
    assert_eq!(
        b_view.keys,
        [("ed25519:b1".to_owned(), b_old.public_base64())]
    );
    assert!(b_view.message.contains("ed25519:b2"), "{}", b_view.message);
    assert!(
        report.view("d.test").unwrap().message.contains("origin"),
        "{:?}",
        report.view("d.test")
    );

    // One POST, asking for the key ids each server served directly, valid at least until now.
    let queries = notary.queries();
    assert_eq!(queries.len(), 1);
    let now_ms = i64::try_from(
        now.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    assert_eq!(
        queries[0]["server_keys"]["b.test"]["ed25519:b2"]["minimum_valid_until_ts"],
        now_ms
    );
    assert_eq!(queries[0]["server_keys"].as_object().unwrap().len(), 4);
}

#[tokio::test]
async fn a_missing_or_forged_notary_signature_is_a_bad_signature() {
    let (world, notary) = notary_world("notary-countersign").await;
    let a = SigningKey::generate("ed25519:a");
    notary.cache(&key_document("a.test", &[&a], now_ms() + DAY_MS));
    for (countersign, want) in [
        (Countersign::Valid, NotaryResult::Match),
        (Countersign::Missing, NotaryResult::BadSignature),
        (Countersign::Forged, NotaryResult::BadSignature),
    ] {
        notary.set_countersign(countersign);
        let report = query(
            &world.env,
            &notary_config(10),
            vec![direct("a.test", &a)],
            SystemTime::now(),
        )
        .await;
        assert!(report.up, "{}", report.message);
        let view = report.view("a.test").unwrap();
        assert_eq!(view.result, want, "{countersign:?}: {}", view.message);
        if want == NotaryResult::BadSignature {
            assert!(view.message.contains("notary"), "{}", view.message);
            assert!(view.keys.is_empty());
        }
    }
}

#[tokio::test]
async fn a_hang_an_error_or_an_oversized_answer_is_request_failed() {
    let (world, notary) = notary_world("notary-failed").await;
    let a = SigningKey::generate("ed25519:a");
    notary.cache(&key_document("a.test", &[&a], now_ms() + DAY_MS));
    for answer in [Answer::Hang, Answer::Status(500), Answer::Big(2 << 20)] {
        notary.set_answer(answer);
        let asked = vec![direct("a.test", &a), direct("b.test", &a)];
        let report = query(&world.env, &notary_config(10), asked, SystemTime::now()).await;
        // The notary itself answered its key document: it is up, its answer is what failed.
        assert!(report.up, "{answer:?}: {}", report.message);
        assert_eq!(
            results(&report),
            [
                ("a.test", NotaryResult::RequestFailed),
                ("b.test", NotaryResult::RequestFailed),
            ],
            "{answer:?}"
        );
    }
}

#[tokio::test]
async fn batches_hold_at_most_batch_size_names() {
    let (world, notary) = notary_world("notary-batches").await;
    let key = SigningKey::generate("ed25519:k");
    let names: Vec<String> = (0..5).map(|i| format!("s{i}.test")).collect();
    for name in &names {
        notary.cache(&key_document(name, &[&key], now_ms() + DAY_MS));
    }
    let asked = names.iter().map(|n| direct(n, &key)).collect();
    let report = query(&world.env, &notary_config(2), asked, SystemTime::now()).await;
    assert_eq!(report.requests, 3);
    let sizes: Vec<usize> = notary
        .queries()
        .iter()
        .map(|q| q["server_keys"].as_object().unwrap().len())
        .collect();
    assert_eq!(sizes, [2, 2, 1]);
    assert!(
        report
            .servers
            .iter()
            .all(|v| v.result == NotaryResult::Match)
    );
    assert_eq!(notary.max_in_flight(), 1);
}

#[tokio::test]
async fn a_notary_that_cannot_be_reached_is_down() {
    // Nothing listens at 127.0.0.10; the notary's name resolves there.
    let zone = Zone::new().a(NOTARY, "127.0.0.10".parse().unwrap());
    let mut world = World::new("notary-down", zone, TIMEOUTS).await;
    world.refuse_ipv6();
    let a = SigningKey::generate("ed25519:a");
    let report = query(
        &world.env,
        &notary_config(10),
        vec![direct("a.test", &a)],
        SystemTime::now(),
    )
    .await;
    assert!(!report.up);
    assert!(report.message.contains(NOTARY), "{}", report.message);
    assert_eq!(report.requests, 0);
    assert_eq!(results(&report), [("a.test", NotaryResult::RequestFailed)]);
}

/// The daemon asks the notary about every probed server and exports the result.
#[tokio::test]
async fn the_exporter_exports_the_notary_view() {
    let (mut world, notary) = notary_world("notary-daemon").await;
    world
        .homeserver([127, 0, 0, 2], "127.0.0.2", Validity::Valid)
        .await;
    let name = world.fed_addr(2);
    let config = Config {
        servers: vec![ServerName::parse(&name).unwrap()],
        notaries: vec![notary_config(100)],
        ..Config::default()
    };
    let exporter = world.exporter(&config).await;
    let mut rounds = 0;
    while exporter.notaries().is_empty() {
        rounds += 1;
        assert!(rounds < 400, "no notary round");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let report = exporter.notaries()[0].clone();
    assert!(report.up, "{}", report.message);
    // The notary has nothing cached for it.
    assert_eq!(results(&report), [(name.as_str(), NotaryResult::NoKeys)]);
    let query = &notary.queries()[0]["server_keys"][&name];
    assert_eq!(query.as_object().unwrap().len(), 1, "{query}");

    let metrics = get(&exporter.router, "/metrics").await;
    for line in [
        format!("matrix_federation_notary_up{{notary=\"{NOTARY}\"}} 1.0"),
        format!(
            "matrix_federation_notary_keys_match{{server_name=\"{name}\",notary=\"{NOTARY}\"}} 0.0"
        ),
        format!(
            "matrix_federation_notary_result_info{{server_name=\"{name}\",notary=\"{NOTARY}\",result=\"no_keys\"}} 1"
        ),
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }
    // No keys: no validity.
    assert!(!metrics.contains("matrix_federation_notary_valid_until_timestamp_seconds{"));

    // The server's status page has the notary's row.
    let page = get(&exporter.router, &format!("/server/{name}")).await;
    assert!(page.contains("<section id=\"notaries\">"), "{page}");
    assert!(
        page.contains("<tr data-result=\"no_keys\"><td><code>notary.test</code></td>"),
        "{page}"
    );
}

async fn get(router: &axum::Router, path: &str) -> String {
    support::router::get(router, path).await.body
}

/// `check NAME` with a notary in the config prints the notary's view of NAME.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_prints_the_notary_view() {
    let mut anchor = support::PortAnchor::new();
    drop(anchor.take_v6());
    let port = anchor.port;
    let ca = support::TestCa::new("notary-check");
    let dir = std::env::temp_dir().join(format!("mfe-notary-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let root = ca.write_root_pem(&dir);
    let (good, notary_name) = (format!("good.test:{port}"), format!("{NOTARY}:{port}"));
    let key = SigningKey::generate("ed25519:good");
    let document = key_document(&good, &[&key], now_ms() + DAY_MS);
    let _good = support::FakeServer::start(
        anchor.bind([127, 0, 0, 2]),
        support::Behaviour::Https {
            leaf: ca.leaf(&["good.test"], Validity::Valid),
            routes: support::matrix_routes_with_keys(document.clone()),
        },
    )
    .await;
    let notary = FakeNotary::start(
        anchor.bind([127, 0, 0, 9]),
        &ca.leaf(&[NOTARY], Validity::Valid),
        &notary_name,
    )
    .await;
    notary.cache(&document);
    let dns = support::FakeDns::start(
        Zone::new()
            .a("good.test", "127.0.0.2".parse().unwrap())
            .a(NOTARY, "127.0.0.9".parse().unwrap()),
    )
    .await;
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "dns:\n  nameservers: [\"{}\"]\ntls:\n  trust_store: webpki\nprobe:\n  allow_private_addresses: true\n\
             notaries:\n  - server_name: \"{notary_name}\"\n    batch_size: 10\n",
            dns.addr
        ),
    )
    .unwrap();
    let args = (good.clone(), config, root);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_matrix-federation-exporter"))
            .arg("check")
            .arg(&args.0)
            .arg("--config.file")
            .arg(&args.1)
            .arg("--ca-file")
            .arg(&args.2)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("Notary {notary_name} (POST /_matrix/key/v2/query, 1 request):\n  {good}: match, its copy valid until ")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("keys ed25519:good {}", key.public_base64())),
        "{stdout}"
    );
    assert_eq!(notary.queries().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reloads while a round is in flight do not cut it or start another beside it: one request in flight per
/// notary, and the rounds go on.
#[tokio::test]
async fn reloads_keep_one_request_in_flight() {
    use matrix_federation_exporter::config::Source;
    use matrix_federation_exporter::probe::env::ProbeEnv;
    use matrix_federation_exporter::serve::daemon;

    let (mut world, notary) = notary_world("notary-reload").await;
    notary.set_answer(Answer::Cached {
        delay: Duration::from_millis(300),
    });
    world
        .homeserver([127, 0, 0, 2], "127.0.0.2", Validity::Valid)
        .await;
    let dir = std::env::temp_dir().join(format!("mfe-notary-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "servers: [\"{}\"]\nnotaries:\n  - server_name: {NOTARY}\n    interval: 1s\n",
            world.fed_addr(2)
        ),
    )
    .unwrap();
    let env = world.env.clone();
    let make_env: daemon::MakeEnv = Box::new(move |_| Ok::<ProbeEnv, anyhow::Error>(env.clone()));
    let source = Source {
        file: Some(config),
        ..Source::default()
    };
    let exporter = daemon::start_reloadable(source, make_env).unwrap();
    let mut polls = 0;
    while notary.queries().len() < 4 {
        exporter.reload().await.unwrap();
        polls += 1;
        assert!(polls < 200, "only {} queries", notary.queries().len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(notary.max_in_flight(), 1);
    assert!(exporter.notaries()[0].up);
    drop(exporter);
    let _ = std::fs::remove_dir_all(&dir);
}

/// With `--shard i/n`, a replica asks the notary only about its own servers.
#[tokio::test]
async fn a_shard_asks_only_about_its_servers() {
    use matrix_federation_exporter::config::shard::{Shard, shard_of};

    let (mut world, notary) = notary_world("notary-shard").await;
    // Two servers in different shards of two.
    let port = world.fed.port;
    let shard_of_octet = |octet: u8| shard_of(&format!("127.0.0.{octet}:{port}"), 2);
    let other = (3..=60)
        .find(|&o| shard_of_octet(o) != shard_of_octet(2))
        .expect("some name in the other shard");
    let (mine, theirs) = (world.fed_addr(2), world.fed_addr(other));
    for octet in [2, other] {
        let ip = format!("127.0.0.{octet}");
        world
            .homeserver([127, 0, 0, octet], &ip, Validity::Valid)
            .await;
    }
    let config = Config {
        servers: vec![
            ServerName::parse(&mine).unwrap(),
            ServerName::parse(&theirs).unwrap(),
        ],
        notaries: vec![notary_config(100)],
        shard: Some(Shard::new(shard_of_octet(2), 2).unwrap()),
        ..Config::default()
    };
    let exporter = world.exporter(&config).await;
    let mut rounds = 0;
    while exporter.notaries().is_empty() {
        rounds += 1;
        assert!(rounds < 400, "no notary round");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let asked: Vec<String> = notary.queries()[0]["server_keys"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(asked, std::slice::from_ref(&mine));
    assert_eq!(
        results(&exporter.notaries()[0]),
        [(mine.as_str(), NotaryResult::NoKeys)]
    );
}
