//! The hand-made reports that `/metrics` renders in the `metrics` bench of `benches/hot_paths.rs` and in
//! `examples/render_metrics.rs` (which includes this file by path): servers that differ only in name and addresses.

use std::time::{Duration, SystemTime};

use matrix_federation_exporter::report::{
    AddressReport, CertFacts, CertReport, DiscoveryReport, Fingerprint, KeysReport, Method, Phase,
    ServerReport, Step, TlsFacts, VerifyKey, VersionReport, WellKnownOutcome, WellKnownReport,
};

/// Server number `i` (`s{i}.example.org`): healthy, dual-stack, with one signing key and a version, so that every
/// per-address family renders.
pub fn dual_stack_report(i: usize) -> ServerReport {
    let name = format!("s{i}.example.org");
    let leaf = CertFacts {
        subject: format!("CN={name}").into(),
        issuer: "C=US, O=Let's Encrypt, CN=R11".into(),
        dns_names: vec![name.clone()],
        ip_addresses: Vec::new(),
        serial: "04:d2:3a:9f:11:22:33:44:55:66:77:88:99:aa:bb:cc".to_owned(),
        fingerprint_sha256: Fingerprint([0xab; 32]),
        not_before: 1_760_000_000,
        not_after: 1_767_776_000,
    };
    let intermediate = CertFacts {
        subject: "C=US, O=Let's Encrypt, CN=R11".into(),
        issuer: "C=US, O=Internet Security Research Group, CN=ISRG Root X1".into(),
        dns_names: Vec::new(),
        serial: "8a:7d:3e:13:d6:2f:30:ef:23:86:bd:29:07:6b:34:f8".to_owned(),
        fingerprint_sha256: Fingerprint([0xcd; 32]),
        not_after: 1_899_000_000,
        ..leaf.clone()
    };
    let address = |a: String| AddressReport {
        address: a.parse().expect("a valid socket address"),
        target_host: name.as_str().into(),
        phases: [
            (Phase::Connect, Duration::from_micros(12_345)),
            (Phase::TlsHandshake, Duration::from_micros(30_123)),
            (Phase::Keys, Duration::from_micros(15_432)),
            (Phase::Version, Duration::from_micros(14_321)),
        ]
        .into_iter()
        .collect(),
        tls: Some(TlsFacts {
            version: "TLSv1_3",
            cipher: "TLS13_AES_128_GCM_SHA256",
        }),
        certificate: Some(CertReport {
            verified_not_after: None,
            chain: vec![leaf.clone().into(), intermediate.clone().into()],
            failures: Vec::new(),
        }),
        keys: Some(KeysReport {
            server_name: name.as_str().into(),
            valid_until_ts: Some(1_767_000_000_123),
            verify_keys: vec![VerifyKey {
                key_id: "ed25519:a_AbCd".into(),
                key: "Noi6WqcDj0QmPxCNQqgezwTlBKrfqehY1u2FyWP9uYw".into(),
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
        per_address: Vec::new(),
        outcome: WellKnownOutcome::NotFound,
        cache_ttl: Some(Duration::from_secs(3600)),
        hops: matrix_federation_exporter::report::Hops::default(),
        error: None,
    };
    discovery.steps = [
        (Step::WellKnown, Duration::from_micros(40_123)),
        (Step::Srv, Duration::from_micros(3_456)),
        (Step::AddressLookup, Duration::from_micros(2_345)),
    ]
    .into_iter()
    .collect();
    ServerReport {
        history: matrix_federation_exporter::report::History::default(),
        key_history: matrix_federation_exporter::report::KeyHistory::default(),
        local_certs: matrix_federation_exporter::report::LocalCertsReport::default(),
        server_name: name.as_str().into(),
        started_at: SystemTime::now(),
        finished_at: SystemTime::now(),
        duration: Duration::from_micros(80_123),
        discovery,
        addresses: vec![
            address(format!("10.{a}.{b}.1:8448")),
            address(format!("[fd00::{a:x}:{b:x}]:8448")),
        ],
        failures: Vec::new(),
        client: None,
        support: None,
    }
}
