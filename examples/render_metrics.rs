//! Measures how long `/metrics` takes to render N dual-stack servers (release build):
//! `cargo run --release --example render_metrics -- 2000 10000`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use matrix_federation_exporter::metrics::{self, ExporterMetrics, Format};
use matrix_federation_exporter::report::{
    AddressReport, CertFacts, CertReport, DiscoveryReport, Fingerprint, Method, Phase,
    ServerReport, Step, TlsFacts, WellKnownOutcome, WellKnownReport,
};
use matrix_federation_exporter::store::Store;

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
    let address = |a: String| AddressReport {
        address: a.parse().expect("a valid socket address"),
        target_host: name.clone().into(),
        phases: vec![
            (Phase::Connect, Duration::from_millis(12)),
            (Phase::TlsHandshake, Duration::from_millis(30)),
        ],
        tls: Some(TlsFacts {
            version: "TLSv1_3".into(),
            cipher: "TLS13_AES_128_GCM_SHA256".into(),
        }),
        certificate: Some(CertReport {
            chain: vec![leaf.clone().into(), leaf.clone().into()],
            failures: Vec::new(),
        }),
        keys: None,
        version: None,
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
        (Step::WellKnown, Duration::from_millis(40)),
        (Step::Srv, Duration::from_millis(3)),
    ];
    ServerReport {
        server_name: name.clone().into(),
        started_at: SystemTime::now(),
        finished_at: SystemTime::now(),
        duration: Duration::from_millis(80),
        discovery,
        addresses: vec![
            address(format!("10.{a}.{b}.1:8448")),
            address(format!("[fd00::{a:x}:{b:x}]:8448")),
        ],
        failures: Vec::new(),
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![2_000, 10_000]
    } else {
        sizes
    };
    for n in sizes {
        let store = Arc::new(Store::new());
        for i in 0..n {
            store.insert(report(i));
        }
        let registry = metrics::registry(store, &ExporterMetrics::new());
        for format in [Format::Text004, Format::OpenMetrics] {
            let _warm = metrics::encode(&registry, format);
            let runs = 5;
            let start = Instant::now();
            let mut bytes = 0;
            for _ in 0..runs {
                bytes = metrics::encode(&registry, format).len();
            }
            let each = start.elapsed() / runs;
            println!("{n:>6} servers, {format:?}: {each:?} per render, {bytes} bytes");
        }
    }
}
