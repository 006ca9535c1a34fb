//! Criterion benches of the pure hot paths of one probe and one scrape:
//! - canonical JSON and the ed25519 check of a signed key document (`keys::check_key_document`);
//! - certificate facts from a presented chain (`cert::facts`) and the whole post-handshake verdict
//!   (`TlsClient::judge`: chain to the root, name, validity window);
//! - rendering `/metrics` for 10,000 servers (`metrics::encode` over a store of hand-built reports).
//!
//! `cargo bench --bench hot_paths` (add `-- --quick` for a short run). The end-to-end figures, against
//! `blackbox_exporter`, come from `bench/compare` (see BENCHMARKS.md).

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use matrix_federation_exporter::metrics::{self, ExporterMetrics, Format};
use matrix_federation_exporter::report::{
    AddressReport, CertFacts, CertReport, DiscoveryReport, Fingerprint, KeysReport, Method, Phase,
    ServerReport, Step, TlsFacts, VerifyKey, VersionReport, WellKnownOutcome, WellKnownReport,
};
use matrix_federation_exporter::store::Store;
use matrix_federation_exporter::tls::TlsClient;
use matrix_federation_exporter::{cert, keys};

use support::{SigningKey, TestCa, Validity};

fn key_document(c: &mut Criterion) {
    let name = "example.org";
    let key = SigningKey::from_seed("ed25519:a_bench", &[7; 32]);
    let document = support::key_document(name, &[&key], support::now_ms() + 24 * 3600 * 1000);
    let value: serde_json::Value = serde_json::from_str(&document).expect("the document is JSON");
    let now = SystemTime::now();
    let (report, failures) = keys::check_key_document(document.as_bytes(), name, now);
    assert!(
        report.is_some() && failures.is_empty(),
        "the bench document verifies: {failures:?}"
    );

    let mut group = c.benchmark_group("keys");
    group.bench_function("canonical_json", |b| {
        b.iter(|| keys::canonical_json(black_box(&value)));
    });
    group.bench_function("check_key_document", |b| {
        b.iter(|| keys::check_key_document(black_box(document.as_bytes()), name, now));
    });
    group.finish();
}

fn certificate(c: &mut Criterion) {
    let ca = TestCa::new("bench");
    let leaf = ca.leaf(&["example.org"], Validity::Valid);
    let chain = leaf.chain;
    let client = TlsClient::new(ca.root_store());
    let now = SystemTime::now();
    assert!(
        client.judge(&chain, "example.org", now).valid(),
        "the bench chain is valid"
    );

    let mut group = c.benchmark_group("certificate");
    group.bench_function("facts_leaf", |b| {
        b.iter(|| cert::facts(black_box(&chain[0])));
    });
    group.bench_function("judge_chain", |b| {
        b.iter(|| client.judge(black_box(&chain), "example.org", now));
    });
    group.finish();
}

/// A healthy dual-stack server with one signing key and a version: every per-address family renders.
fn report(i: usize) -> ServerReport {
    let name = format!("s{i}.example.org");
    let leaf = CertFacts {
        subject: format!("CN={name}"),
        issuer: "C=US, O=Let's Encrypt, CN=R11".to_owned(),
        dns_names: vec![name.clone()],
        ip_addresses: Vec::new(),
        serial: "04:d2:3a:9f:11:22:33:44:55:66:77:88:99:aa:bb:cc".to_owned(),
        fingerprint_sha256: Fingerprint([0xab; 32]),
        not_before: 1_760_000_000,
        not_after: 1_767_776_000,
    };
    let intermediate = CertFacts {
        subject: "C=US, O=Let's Encrypt, CN=R11".to_owned(),
        issuer: "C=US, O=Internet Security Research Group, CN=ISRG Root X1".to_owned(),
        dns_names: Vec::new(),
        serial: "8a:7d:3e:13:d6:2f:30:ef:23:86:bd:29:07:6b:34:f8".to_owned(),
        fingerprint_sha256: Fingerprint([0xcd; 32]),
        not_after: 1_899_000_000,
        ..leaf.clone()
    };
    let address = |a: String| AddressReport {
        address: a.parse().expect("a valid socket address"),
        target_host: name.clone().into(),
        phases: vec![
            (Phase::Connect, Duration::from_micros(12_345)),
            (Phase::TlsHandshake, Duration::from_micros(30_123)),
            (Phase::Keys, Duration::from_micros(15_432)),
            (Phase::Version, Duration::from_micros(14_321)),
        ],
        tls: Some(TlsFacts {
            version: "TLSv1_3".into(),
            cipher: "TLS13_AES_128_GCM_SHA256".into(),
        }),
        certificate: Some(CertReport {
            chain: vec![leaf.clone().into(), intermediate.clone().into()],
            failures: Vec::new(),
        }),
        keys: Some(KeysReport {
            server_name: name.clone(),
            valid_until_ts: Some(1_767_000_000_123),
            verify_keys: vec![VerifyKey {
                key_id: "ed25519:a_AbCd".to_owned(),
                key: "Noi6WqcDj0QmPxCNQqgezwTlBKrfqehY1u2FyWP9uYw".to_owned(),
                valid_ed25519: true,
                matching_signature: true,
            }],
            ..KeysReport::default()
        }),
        version: Some(VersionReport {
            name: Some("Synapse".to_owned()),
            version: Some("1.140.0".to_owned()),
        }),
        failures: Vec::new(),
    };
    let (a, b) = ((i >> 8) & 0xff, i & 0xff);
    let mut discovery = DiscoveryReport::empty(&name);
    discovery.method = Method::DefaultPort;
    discovery.well_known = WellKnownReport {
        outcome: WellKnownOutcome::NotFound,
        cache_ttl: Some(Duration::from_secs(3600)),
        hops: Vec::new(),
        error: None,
    };
    discovery.steps = vec![
        (Step::WellKnown, Duration::from_micros(40_123)),
        (Step::Srv, Duration::from_micros(3_456)),
        (Step::AddressLookup, Duration::from_micros(2_345)),
    ];
    ServerReport {
        server_name: name.clone().into(),
        started_at: SystemTime::now(),
        finished_at: SystemTime::now(),
        duration: Duration::from_micros(80_123),
        discovery,
        addresses: vec![
            address(format!("10.{a}.{b}.1:8448")),
            address(format!("[fd00::{a:x}:{b:x}]:8448")),
        ],
        failures: Vec::new(),
    }
}

fn render(c: &mut Criterion) {
    let mut group = c.benchmark_group("metrics");
    group.sample_size(10);
    for n in [2_000, 10_000] {
        let store = Arc::new(Store::new());
        for i in 0..n {
            store.insert(report(i));
        }
        let registry = metrics::registry(store, &ExporterMetrics::new());
        group.bench_function(format!("encode_{n}_servers"), |b| {
            b.iter_batched(
                || (),
                |()| metrics::encode(&registry, Format::Text004),
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, key_document, certificate, render);
criterion_main!(benches);
