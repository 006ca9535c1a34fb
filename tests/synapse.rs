//! Interop with a real Synapse: the exporter probes a Synapse homeserver (the version pinned in
//! `tests/synapse/requirements.txt`) exactly as a federating peer would, and must find it healthy. Its key facts
//! over two stored probes show no change; restarted with a new key under the same key id, it shows `replaced`.
//!
//! Hermetic: Synapse listens with TLS on 127.0.0.1 only, with a certificate from a per-test CA; names resolve
//! through the in-process fake DNS; Synapse's config turns every outbound feature off, and it runs under
//! `tests/synapse/no_egress.py`, which refuses and records any network operation not aimed at loopback (the
//! test fails if there is one). The package index is needed only once, to build the venv (`tests/synapse/setup.sh`).
//!
//! The Synapse python is `$MFE_SYNAPSE_PYTHON`; when unset, the test runs `tests/synapse/setup.sh` itself
//! (reusing the venv when it is already built). A missing Synapse fails the test: it is never skipped.

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use matrix_federation_exporter::config::server_name::ServerName;
use matrix_federation_exporter::config::targets::{Labels, Target};
use matrix_federation_exporter::probe::checks::keys::check_key_document;
use matrix_federation_exporter::probe::env::{Ports, ProbeEnv};
use matrix_federation_exporter::probe::probe_server;
use matrix_federation_exporter::report::{
    CertReport, ClientOutcome, ClientResult, KeysReport, Method, Phase, Reason, ServerReport,
    Stage, WellKnownOutcome,
};
use matrix_federation_exporter::report::{KeyChangeKind, Warning};
use matrix_federation_exporter::schedule::store::Store;

use support::synapse::{
    KEY_ID, SERVER_NAME, SigningSeed, Synapse, TempDir, pinned_version, synapse_python,
};
use support::{FakeDns, TIMEOUTS, TestCa, Validity, Zone};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::too_many_lines,
    reason = "one run against a real Synapse, from setup to verdict"
)]
async fn exporter_judges_a_real_synapse_healthy() {
    let test_start = Instant::now();
    let python = synapse_python();
    let pin = pinned_version();
    let dir = TempDir::new();
    let ca = TestCa::new("synapse");
    let leaf = ca.leaf(&[SERVER_NAME], Validity::Valid);
    let signing = SigningSeed::generate();

    let started = Instant::now();
    let mut synapse = Synapse::start(&python, &dir.0, &leaf, &signing, &ca).await;
    eprintln!(
        "synapse {pin} serving on 127.0.0.1:{} after {:.1} s ({} readiness polls)",
        synapse.port,
        started.elapsed().as_secs_f64(),
        synapse.polls
    );

    let dns = FakeDns::start(Zone::new().a(SERVER_NAME, Ipv4Addr::LOCALHOST)).await;
    // Synapse's port stands in for both spec ports: its federation listener answers
    // `/.well-known/matrix/server` with 404 (no delegation), and 8448 is where federation then connects.
    let ports = Ports {
        well_known: synapse.port,
        federation: synapse.port,
    };
    let env = ProbeEnv::new(&[dns.addr], ca.root_store(), ports, TIMEOUTS).expect("probe env");
    let synapse_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, synapse.port));

    // 1. The bare server name, as federation resolves it: well-known (404), no SRV, A record, port "8448".
    let report = probe(&env, SERVER_NAME).await;
    let why = || format!("{report:#?}\n{}", synapse.logs());
    assert!(
        report.success(),
        "the probe of {SERVER_NAME} failed:\n{}",
        why()
    );
    assert_eq!(report.discovery.method, Method::DefaultPort, "{}", why());
    assert_eq!(
        report.discovery.well_known.outcome,
        WellKnownOutcome::NotFound,
        "{}",
        why()
    );
    assert_eq!(report.addresses.len(), 1, "{}", why());
    let address = &report.addresses[0];
    assert_eq!(address.address, synapse_addr, "{}", why());
    assert!(
        address.certificate.as_ref().is_some_and(CertReport::valid),
        "{}",
        why()
    );
    assert!(address.tls.is_some(), "{}", why());
    eprintln!("negotiated with Synapse: {:?}", address.tls);
    for phase in [
        Phase::Connect,
        Phase::TlsHandshake,
        Phase::Keys,
        Phase::Version,
    ] {
        assert!(
            address.phases.get(phase).is_some(),
            "phase {phase} missing: {}",
            why()
        );
    }
    let keys = address.keys.as_ref().expect("a keys report");
    assert_keys_healthy(keys, &signing);
    let version = address.version.as_ref().expect("a version report");
    assert_eq!(version.name.as_deref(), Some("Synapse"), "{version:?}");
    assert_eq!(
        version.version.as_deref(),
        Some(pin.as_str()),
        "{version:?}"
    );

    // Client discovery, as a user's client walks it: Synapse serves `/.well-known/matrix/client` (with
    // `public_baseurl` and `serve_client_wellknown`) with CORS, naming itself, and answers versions there; both
    // ride the server well-known's connection (same origin).
    let client = report.client.as_ref().expect("client discovery ran");
    assert_eq!(
        (client.outcome, client.result),
        (ClientOutcome::Success, ClientResult::Ok),
        "{client:#?}\n{}",
        synapse.logs()
    );
    assert_eq!(
        client.base_url.as_deref(),
        Some(format!("https://{SERVER_NAME}:{}", synapse.port).as_str()),
        "{client:#?}"
    );
    assert_eq!(client.cors, Some(true), "{client:#?}");
    assert!(
        client
            .latest
            .as_deref()
            .is_some_and(|v| v.starts_with("v1.")),
        "{client:#?}"
    );
    assert!(report.warnings().is_empty(), "{:?}", report.warnings());

    // 2. The same server through `_matrix-fed._tcp` SRV: the certificate and the key document are still judged
    //    against the server name, never the SRV target.
    dns.set_zone(
        Zone::new()
            .a("federation.synapse.test", Ipv4Addr::LOCALHOST)
            .srv(
                "_matrix-fed._tcp.synapse.test",
                10,
                5,
                synapse.port,
                "federation.synapse.test",
            ),
    );
    let srv_report = probe(&env, SERVER_NAME).await;
    assert!(
        srv_report.success(),
        "the SRV probe failed:\n{srv_report:#?}\n{}",
        synapse.logs()
    );
    assert_eq!(srv_report.discovery.method, Method::SrvMatrixFed);
    assert_eq!(srv_report.addresses[0].address, synapse_addr);
    assert_keys_healthy(
        srv_report.addresses[0].keys.as_ref().expect("keys"),
        &signing,
    );

    // 2b. Key facts over two probes, stored as the scheduler stores them: an unchanged Synapse makes no key-change
    //     row and no signing-key warning; its key is remembered as served.
    let store = Store::new();
    store.configure(&[Target {
        name: ServerName::parse(SERVER_NAME).unwrap(),
        labels: Labels::new(),
    }]);
    store.insert(report.clone());
    store.insert(srv_report.clone());
    let stored = store.get(SERVER_NAME).expect("stored");
    assert_eq!(stored.key_history.changes(), [], "{stored:#?}");
    let seen: Vec<(&str, bool)> = stored
        .key_history
        .seen()
        .iter()
        .map(|k| (k.key_id.as_str(), k.current))
        .collect();
    assert_eq!(seen, [(KEY_ID, true)], "{stored:#?}");
    assert_eq!(
        stored.key_history.seen()[0].key.as_str(),
        signing.public_base64()
    );
    assert!(stored.warnings().is_empty(), "{:?}", stored.warnings());

    // 3. `synapse.test:<port>` is another server name: Synapse's key document (for `synapse.test`) must not
    //    pass for it, and that must be the only thing wrong.
    dns.set_zone(Zone::new().a(SERVER_NAME, Ipv4Addr::LOCALHOST));
    let explicit = format!("{SERVER_NAME}:{}", synapse.port);
    let port_report = probe(&env, &explicit).await;
    assert_eq!(port_report.discovery.method, Method::ExplicitPort);
    assert_eq!(
        reasons(&port_report),
        [(Stage::Keys, Reason::KeysServerNameMismatch)],
        "{port_report:#?}"
    );

    // 4. The raw document as Synapse served it passes the key check on its own; one flipped signature bit,
    //    or one changed signed field, does not.
    let now = SystemTime::now();
    let raw = std::str::from_utf8(&keys.raw).expect("Synapse serves UTF-8");
    let (again, failures) = check_key_document(raw.as_bytes(), SERVER_NAME, now);
    assert!(failures.is_empty(), "{failures:#?}\n{raw}");
    assert_eq!(again.as_ref(), Some(keys));

    let signature = keys_signature(raw, KEY_ID);
    let mut bytes = STANDARD_NO_PAD
        .decode(&signature)
        .expect("Synapse signs in unpadded base64");
    assert_eq!(bytes.len(), 64, "an ed25519 signature");
    bytes[17] ^= 0x08;
    let flipped = STANDARD_NO_PAD.encode(&bytes);
    let tampered = replace_once(raw, &format!("\"{signature}\""), &format!("\"{flipped}\""));
    let (report, failures) = check_key_document(tampered.as_bytes(), SERVER_NAME, now);
    assert_eq!(
        failures.iter().map(|f| f.reason).collect::<Vec<_>>(),
        [Reason::KeysBadSignature],
        "{failures:#?}"
    );
    let report = report.expect("a tampered document still parses");
    assert!(
        report
            .verify_keys
            .iter()
            .all(|k| k.valid_ed25519 && !k.matching_signature),
        "{report:#?}"
    );

    let until = keys.valid_until_ts.expect("valid_until_ts");
    let tampered = replace_once(
        raw,
        &format!("\"valid_until_ts\":{until}"),
        &format!("\"valid_until_ts\":{}", until + 1),
    );
    let (_, failures) = check_key_document(tampered.as_bytes(), SERVER_NAME, now);
    assert_eq!(
        failures.iter().map(|f| f.reason).collect::<Vec<_>>(),
        [Reason::KeysBadSignature],
        "{failures:#?}"
    );

    // 5. Synapse is still up, and never tried to reach anything but loopback.
    synapse.assert_alive_and_no_egress();

    // 6. Synapse rebuilt with a new signing key under the same key id: the stored key history says `replaced`,
    //    with its warning, on the next probe.
    drop(synapse);
    let rebuilt = SigningSeed::generate();
    let mut synapse = Synapse::start(&python, &dir.0, &leaf, &rebuilt, &ca).await;
    let ports = Ports {
        well_known: synapse.port,
        federation: synapse.port,
    };
    let env = ProbeEnv::new(&[dns.addr], ca.root_store(), ports, TIMEOUTS).expect("probe env");
    let after = probe(&env, SERVER_NAME).await;
    assert!(after.success(), "{after:#?}\n{}", synapse.logs());
    store.insert(after);
    let stored = store.get(SERVER_NAME).expect("stored");
    let rows: Vec<(&str, KeyChangeKind)> = stored
        .key_history
        .changes()
        .iter()
        .map(|c| (c.key_id.as_str(), c.change))
        .collect();
    assert_eq!(rows, [(KEY_ID, KeyChangeKind::Replaced)], "{stored:#?}");
    let warnings: Vec<Warning> = stored.warnings().iter().map(|w| w.warning).collect();
    assert_eq!(warnings, [Warning::SigningKeyReplaced]);
    synapse.assert_alive_and_no_egress();
    eprintln!(
        "synapse interop test done in {:.1} s",
        test_start.elapsed().as_secs_f64()
    );
}

async fn probe(env: &ProbeEnv, name: &str) -> ServerReport {
    let name = ServerName::parse(name).expect("a valid server name");
    probe_server(env, &name).await
}

fn reasons(report: &ServerReport) -> Vec<(Stage, Reason)> {
    report
        .all_failures()
        .map(|(_, f)| (f.stage, f.reason))
        .collect()
}

/// The key document is Synapse's: for `synapse.test`, with exactly the key the test gave it, correctly signed,
/// and valid for a while yet.
fn assert_keys_healthy(keys: &KeysReport, signing: &SigningSeed) {
    assert_eq!(keys.server_name, SERVER_NAME, "{keys:#?}");
    assert!(
        keys.verify_keys
            .iter()
            .any(|k| k.valid_ed25519 && k.matching_signature),
        "{keys:#?}"
    );
    let ours = keys
        .verify_keys
        .iter()
        .find(|k| k.key_id == KEY_ID)
        .unwrap_or_else(|| panic!("no {KEY_ID} in {keys:#?}"));
    assert_eq!(ours.key, signing.public_base64(), "{keys:#?}");
    assert!(ours.valid_ed25519 && ours.matching_signature, "{keys:#?}");
    let now_ms = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits i64");
    assert!(
        keys.valid_until_ts.is_some_and(|ts| ts > now_ms),
        "valid_until_ts not in the future: {keys:#?}"
    );
    // Synapse's default `key_refresh_interval` (1 day) is within the spec's advice (1 hour to 7 days).
    assert!(keys.warnings.is_empty(), "{keys:#?}");
}

/// `signatures["synapse.test"][key_id]` of a served key document.
fn keys_signature(raw: &str, key_id: &str) -> String {
    let doc: serde_json::Value = serde_json::from_str(raw).expect("the key document is JSON");
    doc["signatures"][SERVER_NAME][key_id]
        .as_str()
        .unwrap_or_else(|| panic!("no signature by {key_id} in {raw}"))
        .to_owned()
}

/// `haystack` with the one occurrence of `from` replaced (panics unless there is exactly one).
fn replace_once(haystack: &str, from: &str, to: &str) -> String {
    assert_eq!(
        haystack.matches(from).count(),
        1,
        "expected {from} exactly once in {haystack}"
    );
    haystack.replacen(from, to, 1)
}
