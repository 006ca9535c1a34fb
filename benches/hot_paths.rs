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
use std::time::SystemTime;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use matrix_federation_exporter::probe::checks::keys;
use matrix_federation_exporter::probe::connect::cert;
use matrix_federation_exporter::probe::connect::tls::TlsClient;
use matrix_federation_exporter::render::metrics::{self, ExporterMetrics, Format};
use matrix_federation_exporter::schedule::store::Store;

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

fn render(c: &mut Criterion) {
    let mut group = c.benchmark_group("metrics");
    group.sample_size(10);
    for n in [2_000, 10_000] {
        let store = Arc::new(Store::new());
        for i in 0..n {
            store.insert(support::metrics_fixture::dual_stack_report(i));
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
