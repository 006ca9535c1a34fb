//! Hand-built reports for the unit tests of the `check` text and the explanation table: an SRV path whose
//! certificate names the wrong host, and a delegated server that passes everything. Test code only; it renders
//! nothing and checks nothing itself.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::report::{
    AddressReport, CertFacts, CertReport, ClientOutcome, ClientReport, ClientResult,
    DiscoveryReport, Failure, KeysReport, Method, Phase, Reason, ServerReport, SrvInfo, Stage,
    Step, TargetReport, TlsFacts, VerifyKey, VersionReport, WellKnownOutcome, WellKnownReport,
};

/// 2025-06-01 00:00:00Z.
pub(crate) const NOW: i64 = 1_748_736_000;
pub(crate) const DAY: i64 = 86_400;

pub(crate) fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW as u64)
}

pub(crate) fn leaf(names: &[&str], not_after: i64) -> CertFacts {
    CertFacts {
        subject: format!("CN={}", names.first().unwrap_or(&"")).into(),
        issuer: "CN=Test Intermediate".into(),
        dns_names: names.iter().map(|&n| n.to_owned()).collect(),
        ip_addresses: Vec::new(),
        serial: "01".to_owned(),
        fingerprint_sha256: crate::report::Fingerprint([0xab; 32]),
        not_before: NOW - 60 * DAY,
        not_after,
    }
}

pub(crate) fn address(addr: &str, host: &str) -> AddressReport {
    AddressReport {
        address: addr.parse().unwrap(),
        target_host: host.into(),
        phases: [(Phase::Connect, Duration::from_micros(1_500))]
            .into_iter()
            .collect(),
        tls: None,
        certificate: None,
        keys: None,
        version: None,
        failures: Vec::new(),
    }
}

/// `example.org` → no well-known → SRV → `matrix.example.com`, whose certificate names only itself; its
/// IPv6 address refuses connections.
pub(crate) fn srv_mismatch() -> ServerReport {
    let mut v4 = address("203.0.113.5:8448", "matrix.example.com");
    v4.phases
        .record(Phase::TlsHandshake, Duration::from_millis(23));
    v4.tls = Some(TlsFacts {
        version: "TLSv1_3",
        cipher: "TLS13_AES_256_GCM_SHA384",
    });
    let mismatch = Failure::new(
        Stage::Certificate,
        Reason::CertHostnameMismatch,
        "certificate not valid for name \"example.org\"",
    );
    v4.certificate = Some(CertReport {
        verified_not_after: None,
        chain: vec![leaf(&["matrix.example.com"], NOW + 30 * DAY + 3_600).into()],
        failures: vec![mismatch.clone()],
    });
    v4.failures.push(mismatch);
    let mut v6 = address("[2001:db8::5]:8448", "matrix.example.com");
    v6.failures.push(Failure::new(
        Stage::Connect,
        Reason::ConnectionRefused,
        "TCP connect to [2001:db8::5]:8448: Connection refused (os error 111)",
    ));
    ServerReport {
        history: crate::report::History::default(),
        key_history: crate::report::KeyHistory::default(),
        local_certs: crate::report::LocalCertsReport::default(),
        server_name: "example.org".into(),
        started_at: now(),
        finished_at: now(),
        duration: Duration::from_millis(140),
        discovery: DiscoveryReport {
            method: Method::SrvMatrixFed,
            well_known: WellKnownReport {
                per_address: Vec::new(),
                outcome: WellKnownOutcome::NotFound,
                cache_ttl: None,
                hops: [(
                    "https://example.org/.well-known/matrix/server".to_owned(),
                    404,
                )]
                .into_iter()
                .collect(),
                error: Some(
                    "HTTP 404 from https://example.org/.well-known/matrix/server".to_owned(),
                ),
            },
            delegated_server: None,
            tls_name: "example.org".into(),
            host_header: "example.org".into(),
            targets: vec![TargetReport {
                host: "matrix.example.com".into(),
                port: 8448,
                srv: Some(SrvInfo {
                    priority: 10,
                    weight: 5,
                }),
                addresses: vec![
                    "203.0.113.5".parse().unwrap(),
                    "2001:db8::5".parse().unwrap(),
                ],
                via_cname: false,
            }],
            steps: [
                (Step::WellKnown, Duration::from_millis(40)),
                (Step::Srv, Duration::from_millis(3)),
                (Step::AddressLookup, Duration::from_millis(2)),
            ]
            .into_iter()
            .collect(),
            truncated: false,
            refused: Vec::new(),
            shadowed_srv: None,
        },
        addresses: vec![v4, v6],
        failures: Vec::new(),
        client: None,
        support: None,
    }
}

/// `example.org` delegates to `matrix.example.org:443`, which passes everything.
pub(crate) fn delegated_ok() -> ServerReport {
    let mut a = address("198.51.100.7:443", "matrix.example.org");
    a.phases.extend([
        (Phase::TlsHandshake, Duration::from_millis(12)),
        (Phase::Keys, Duration::from_millis(4)),
        (Phase::Version, Duration::from_millis(3)),
    ]);
    a.tls = Some(TlsFacts {
        version: "TLSv1_3",
        cipher: "TLS13_AES_128_GCM_SHA256",
    });
    a.certificate = Some(CertReport {
        verified_not_after: None,
        chain: vec![
            leaf(&["matrix.example.org"], NOW + 62 * DAY).into(),
            leaf(&[], NOW + 20 * DAY).into(),
        ],
        failures: Vec::new(),
    });
    a.keys = Some(KeysReport {
        server_name: "example.org".into(),
        valid_until_ts: Some((NOW + 3 * DAY) * 1000),
        verify_keys: vec![VerifyKey {
            key_id: "ed25519:a_AbCd".into(),
            key: "x".repeat(43).into(),
            valid_ed25519: true,
            matching_signature: true,
        }],
        old_verify_keys: Vec::new(),
        warnings: Vec::new(),
        raw: bytes::Bytes::new(),
    });
    a.version = Some(VersionReport {
        name: Some("Synapse".to_owned()),
        version: Some("1.120.0".to_owned()),
    });
    ServerReport {
        history: crate::report::History::default(),
        key_history: crate::report::KeyHistory::default(),
        local_certs: crate::report::LocalCertsReport::default(),
        server_name: "example.org".into(),
        started_at: now(),
        finished_at: now(),
        duration: Duration::from_millis(80),
        discovery: DiscoveryReport {
            method: Method::ExplicitPort,
            well_known: WellKnownReport {
                per_address: Vec::new(),
                outcome: WellKnownOutcome::Delegated,
                cache_ttl: Some(Duration::from_secs(24 * 3_600)),
                hops: [(
                    "https://example.org/.well-known/matrix/server".to_owned(),
                    200,
                )]
                .into_iter()
                .collect(),
                error: None,
            },
            delegated_server: Some("matrix.example.org:443".into()),
            tls_name: "matrix.example.org".into(),
            host_header: "matrix.example.org:443".into(),
            targets: vec![TargetReport {
                host: "matrix.example.org".into(),
                port: 443,
                srv: None,
                addresses: vec!["198.51.100.7".parse().unwrap()],
                via_cname: true,
            }],
            steps: [
                (Step::WellKnown, Duration::from_millis(50)),
                (Step::AddressLookup, Duration::from_millis(2)),
            ]
            .into_iter()
            .collect(),
            truncated: false,
            refused: Vec::new(),
            shadowed_srv: None,
        },
        addresses: vec![a],
        failures: Vec::new(),
        client: None,
        support: None,
    }
}

/// The leaf certificate of `a`, to change in a test.
pub(crate) fn leaf_mut(a: &mut AddressReport) -> &mut CertFacts {
    std::sync::Arc::make_mut(&mut a.certificate.as_mut().unwrap().chain[0])
}

/// A client discovery that works: the well-known names `https://matrix.example.org`, which answers versions.
pub(crate) fn client_ok() -> ClientReport {
    ClientReport {
        outcome: ClientOutcome::Success,
        result: ClientResult::Ok,
        base_url: Some("https://matrix.example.org".to_owned()),
        identity_server: None,
        hops: [(
            "https://example.org/.well-known/matrix/client".to_owned(),
            200,
        )]
        .into_iter()
        .collect(),
        cors: Some(true),
        versions: 2,
        latest: Some("v1.11".to_owned().into()),
        well_known_duration: Duration::from_millis(20).into(),
        versions_duration: Some(Duration::from_millis(30).into()),
        failures: Vec::new(),
    }
}

/// A client discovery that fails: the well-known (without CORS) names a base URL whose versions answer 404.
pub(crate) fn client_failing() -> ClientReport {
    let message = "HTTP 404 from https://matrix.example.org/_matrix/client/versions";
    ClientReport {
        outcome: ClientOutcome::FailError,
        result: ClientResult::VersionsHttpStatus,
        cors: Some(false),
        versions: 0,
        latest: None,
        identity_server: Some("https://id.example.org".to_owned().into()),
        failures: vec![Failure::new(Stage::Client, Reason::HttpStatus, message)],
        ..client_ok()
    }
}
