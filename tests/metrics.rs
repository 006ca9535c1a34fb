//! `/metrics` rendering and the HTTP routes, from hand-built reports: a snapshot of the exposition, agreement
//! with METRICS.md, vanishing series, a strict 0.0.4 line check, and the routes.
//!
//! Update the snapshot with `UPDATE_SNAPSHOTS=1 cargo test --test metrics`.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use matrix_federation_exporter::report::NotaryResult;
use matrix_federation_exporter::report::notary::{NotaryReport, NotaryView};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use futures_util::FutureExt as _;
use matrix_federation_exporter::config::server_name::ServerName;
use matrix_federation_exporter::config::targets::{Labels, Target};
use matrix_federation_exporter::config::{DEFAULT_MAX_CONCURRENT_PROBES, ProbeConfig, Profile};
use matrix_federation_exporter::render::metrics::{self, ExporterMetrics, Format};
use matrix_federation_exporter::report::homeserver::Destination;
use matrix_federation_exporter::report::{
    AddressClass, AddressReport, CertReport, ClientOutcome, ClientReport, ClientResult,
    DiscoveryReport, Failure, Family, KeysReport, LocalCertFile, LocalCertsReport, Method,
    NotReloaded, Phase, Reason, RefusedAddress, ServerReport, SrvInfo, Stage, Step, TargetReport,
    TlsFacts, Verdict, Warning, WellKnownAddress, WellKnownOutcome, WellKnownReport,
};
use matrix_federation_exporter::report::{ContactRole, SrvRecordName, SupportResult};
use matrix_federation_exporter::report::{KeyChangeKind, VerifyKey};
use matrix_federation_exporter::schedule::homeservers::Refreshed;
use matrix_federation_exporter::schedule::store::Store;
use matrix_federation_exporter::serve::limiter::Limiter;
use matrix_federation_exporter::serve::routes::{
    AllowedTargets, AppState, MAX_API_PROBES, ProbeEndpoint, router,
};
use support::reports::{at, cert, ms, one_key, sock, synapse};
use tower::ServiceExt as _;

const T0: u64 = 1_700_000_000;
const T0_SIGNED: i64 = 1_700_000_000;
const DAY: i64 = 86_400;
/// A subject that needs escaping in the exposition formats.
const NASTY_SUBJECT: &str = "CN=evil \"quoted\" back\\slash\nsecond line";

// ---- fixtures ----

fn wk_address(
    address: &str,
    outcome: WellKnownOutcome,
    m_server: Option<&str>,
    followed: bool,
) -> WellKnownAddress {
    WellKnownAddress {
        address: sock(address),
        outcome,
        m_server: m_server.map(Into::into),
        error: (outcome != WellKnownOutcome::Delegated).then(|| format!("{outcome}").into()),
        followed,
    }
}

/// `example.org` delegates via `.well-known` to `matrix.example.org:443`, which has an IPv4 and an IPv6 address;
/// both pass.
#[expect(
    clippy::too_many_lines,
    reason = "one fixture report with every section filled"
)]
fn healthy() -> ServerReport {
    let t0 = T0_SIGNED;
    let leaf = cert(
        "CN=matrix.example.org",
        "CN=Test Intermediate CA",
        &["matrix.example.org", "example.org"],
        t0 - 30 * DAY,
        t0 + 60 * DAY,
    );
    let intermediate = cert(
        "CN=Test Intermediate CA",
        "CN=Test Root CA",
        &[],
        t0 - 300 * DAY,
        t0 + 45 * DAY,
    );
    let address = |a: &str| AddressReport {
        address: sock(a),
        target_host: "matrix.example.org".into(),
        phases: [
            (Phase::Connect, ms(12)),
            (Phase::TlsHandshake, ms(34)),
            (Phase::Keys, ms(8)),
            (Phase::Version, ms(3)),
        ]
        .into_iter()
        .collect(),
        tls: Some(TlsFacts {
            version: "TLSv1_3",
            cipher: "TLS13_AES_256_GCM_SHA384",
        }),
        certificate: Some(CertReport {
            verified_not_after: None,
            chain: vec![leaf.clone().into(), intermediate.clone().into()],
            failures: Vec::new(),
        }),
        keys: Some(one_key(
            "example.org",
            (T0_SIGNED + DAY) * 1000,
            "VGhpcyBpcyBub3QgYSByZWFsIGtleSwganVzdCBhIHRlc3Q",
        )),
        version: Some(synapse("1.140.0")),
        failures: Vec::new(),
    };
    ServerReport {
        history: matrix_federation_exporter::report::History::default(),
        key_history: matrix_federation_exporter::report::KeyHistory::default(),
        local_certs: LocalCertsReport {
            files: vec![LocalCertFile {
                cert_file: "/etc/letsencrypt/live/matrix.example.org/fullchain.pem".into(),
                leaf: Ok(leaf.clone().into()),
                modified: Some(t0 - 30 * DAY),
            }]
            .into(),
            not_reloaded: Vec::new().into(),
        },
        server_name: "example.org".into(),
        started_at: at(T0, 0),
        finished_at: at(T0, 250),
        duration: ms(250),
        discovery: DiscoveryReport {
            method: Method::ExplicitPort,
            well_known: WellKnownReport {
                per_address: vec![
                    wk_address(
                        "192.0.2.10:443",
                        WellKnownOutcome::Delegated,
                        Some("matrix.example.org:443"),
                        true,
                    ),
                    wk_address(
                        "[2001:db8::10]:443",
                        WellKnownOutcome::Delegated,
                        Some("matrix.example.org:443"),
                        false,
                    ),
                ],
                outcome: WellKnownOutcome::Delegated,
                cache_ttl: Some(Duration::from_secs(86_400)),
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
                addresses: vec![
                    "192.0.2.10".parse().expect("ip"),
                    "2001:db8::10".parse().expect("ip"),
                ],
                via_cname: false,
            }],
            steps: [(Step::WellKnown, ms(120)), (Step::AddressLookup, ms(15))]
                .into_iter()
                .collect(),
            truncated: false,
            refused: Vec::new(),
            shadowed_srv: Some(Box::new(faq2::shadowed(&[
                (SrvRecordName::MatrixFed, "matrix.example.org:443", false),
                (SrvRecordName::Matrix, "old.example.org:8448", true),
            ]))),
        },
        addresses: vec![address("192.0.2.10:443"), address("[2001:db8::10]:443")],
        failures: Vec::new(),
        client: Some(client_ok()),
        support: Some(faq2::support(
            SupportResult::Ok,
            &[("m.role.admin", 2), ("m.role.security", 1)],
        )),
    }
}

/// Client discovery that works: the well-known names `https://matrix.example.org`, which answers versions.
fn client_ok() -> ClientReport {
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
        latest: Some("v1.11".into()),
        well_known_duration: ms(20).into(),
        versions_duration: Some(ms(30).into()),
        failures: Vec::new(),
    }
}

/// Client discovery that fails: a well-known without CORS names a base URL whose versions answer 404.
fn client_failing() -> ClientReport {
    let message = "HTTP 404 from https://matrix.broken.test/_matrix/client/versions";
    ClientReport {
        outcome: ClientOutcome::FailError,
        result: ClientResult::VersionsHttpStatus,
        base_url: Some("https://matrix.broken.test".to_owned()),
        hops: [(
            "https://broken.test/.well-known/matrix/client".to_owned(),
            200,
        )]
        .into_iter()
        .collect(),
        cors: Some(false),
        versions: 0,
        latest: None,
        failures: vec![Failure::new(Stage::Client, Reason::HttpStatus, message)],
        ..client_ok()
    }
}

/// `broken.test` has three `_matrix-fed` SRV targets: two do not exist (one server-level DNS failure, reported
/// twice), the third (a CNAME) has an IPv4 address with an expired certificate for the wrong name, an IPv6 address
/// that refuses connections, and a private address the public-federation view refused.
#[expect(
    clippy::too_many_lines,
    reason = "a fixture with every kind of failure the exposition renders"
)]
fn failing() -> ServerReport {
    let t0 = T0_SIGNED;
    let mut leaf = cert(
        NASTY_SUBJECT,
        "CN=Self",
        &["other.test"],
        t0 - 400 * DAY,
        t0 - 10 * DAY,
    );
    leaf.ip_addresses = vec!["198.51.100.7".parse().expect("ip")];
    let cert_failures = vec![
        Failure::new(
            Stage::Certificate,
            Reason::CertExpired,
            "certificate expired 10 days ago",
        ),
        Failure::new(
            Stage::Certificate,
            Reason::CertHostnameMismatch,
            "not valid for broken.test",
        ),
    ];
    let srv_target = |host: &str, addresses: Vec<std::net::IpAddr>| TargetReport {
        host: host.into(),
        port: 8448,
        srv: Some(SrvInfo {
            priority: 10,
            weight: 5,
        }),
        addresses,
        via_cname: false,
    };
    ServerReport {
        history: matrix_federation_exporter::report::History::default(),
        key_history: matrix_federation_exporter::report::KeyHistory::default(),
        local_certs: LocalCertsReport {
            files: vec![LocalCertFile {
                cert_file: "/etc/letsencrypt/live/broken.test/fullchain.pem".into(),
                leaf: Err("permission denied".to_owned()),
                modified: None,
            }]
            .into(),
            not_reloaded: vec![NotReloaded {
                address: sock("198.51.100.7:8448"),
                name: "broken.test".into(),
                well_known: false,
                cert_file: "/srv/certs/broken.test.pem".into(),
                served: leaf.clone().into(),
                on_disk: leaf.clone().into(),
            }]
            .into(),
        },
        server_name: "broken.test".into(),
        started_at: at(T0 + 5, 0),
        finished_at: at(T0 + 7, 500),
        duration: ms(2500),
        discovery: DiscoveryReport {
            method: Method::SrvMatrixFed,
            well_known: WellKnownReport {
                // Split brain: the IPv6 address times out where the IPv4 one answers 404.
                per_address: vec![
                    wk_address("198.51.100.1:443", WellKnownOutcome::NotFound, None, true),
                    wk_address("[2001:db8::1]:443", WellKnownOutcome::Timeout, None, false),
                ],
                outcome: WellKnownOutcome::NotFound,
                cache_ttl: None,
                hops: [(
                    "https://broken.test/.well-known/matrix/server".to_owned(),
                    404,
                )]
                .into_iter()
                .collect(),
                error: Some("HTTP 404".to_owned()),
            },
            delegated_server: None,
            tls_name: "broken.test".into(),
            host_header: "broken.test".into(),
            targets: vec![
                srv_target("a.broken.test", Vec::new()),
                srv_target("b.broken.test", Vec::new()),
                TargetReport {
                    via_cname: true,
                    ..srv_target(
                        "c.broken.test",
                        vec![
                            "198.51.100.7".parse().expect("ip"),
                            "2001:db8::7".parse().expect("ip"),
                            "10.0.0.7".parse().expect("ip"),
                        ],
                    )
                },
            ],
            steps: [
                (Step::WellKnown, ms(50)),
                (Step::Srv, ms(8)),
                (Step::AddressLookup, ms(3)),
                (Step::AddressLookup, ms(4)),
                (Step::AddressLookup, ms(5)),
            ]
            .into_iter()
            .collect(),
            truncated: false,
            refused: vec![RefusedAddress {
                address: sock("10.0.0.7:8448"),
                target_host: "c.broken.test".into(),
            }],
            shadowed_srv: None,
        },
        addresses: vec![
            AddressReport {
                address: sock("198.51.100.7:8448"),
                target_host: "c.broken.test".into(),
                phases: [(Phase::Connect, ms(20)), (Phase::TlsHandshake, ms(40))]
                    .into_iter()
                    .collect(),
                tls: Some(TlsFacts {
                    version: "TLSv1_2",
                    cipher: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                }),
                certificate: Some(CertReport {
                    verified_not_after: None,
                    chain: vec![leaf.into()],
                    failures: cert_failures.clone(),
                }),
                keys: Some(KeysReport {
                    server_name: "broken.test".into(),
                    valid_until_ts: Some((T0_SIGNED - DAY) * 1000),
                    ..KeysReport::default()
                }),
                version: None,
                failures: cert_failures
                    .into_iter()
                    .chain([Failure::new(
                        Stage::Keys,
                        Reason::KeysExpired,
                        "valid_until_ts is in the past",
                    )])
                    .collect(),
            },
            AddressReport {
                address: sock("[2001:db8::7]:8448"),
                target_host: "c.broken.test".into(),
                phases: [(Phase::Connect, ms(1))].into_iter().collect(),
                tls: None,
                certificate: None,
                keys: None,
                version: None,
                failures: vec![Failure::new(
                    Stage::Connect,
                    Reason::ConnectionRefused,
                    "connection refused",
                )],
            },
        ],
        failures: vec![
            Failure::new(Stage::Dns, Reason::DnsNxdomain, "a.broken.test: NXDOMAIN"),
            Failure::new(Stage::Dns, Reason::DnsNxdomain, "b.broken.test: NXDOMAIN"),
        ],
        client: Some(client_failing()),
        support: Some(faq2::support(SupportResult::Invalid, &[])),
    }
}

fn exporter() -> ExporterMetrics {
    let exporter = ExporterMetrics::new();
    exporter.record_probe(true);
    exporter.record_probe(false);
    exporter.config_loaded(true, at(T0 - 60, 0));
    exporter
}

/// A store after `reports`; `example.org` is stored after an earlier probe (an hour before) that served other
/// keys, so its key history has a `replaced` and a `dropped` row.
fn store_with(reports: impl IntoIterator<Item = ServerReport>) -> Arc<Store> {
    let store = Arc::new(Store::new());
    let mut views = Vec::new();
    for r in reports {
        if r.server_name == "example.org" {
            store.insert(with_earlier_keys(&r));
        }
        // The notary's view of each server: the healthy one's keys match, the others' it has none of.
        let matched = r.success();
        views.push(NotaryView {
            server_name: r.server_name.as_str().to_owned(),
            result: if matched {
                NotaryResult::Match
            } else {
                NotaryResult::NoKeys
            },
            valid_until_ts: matched.then_some(1_767_225_600_000),
            keys: Vec::new(),
            message: String::new(),
        });
        store.insert(r);
    }
    store.set_notary(NotaryReport {
        notary: "notary.example".to_owned(),
        started_at: std::time::UNIX_EPOCH,
        duration: std::time::Duration::ZERO,
        up: true,
        message: String::new(),
        requests: 1,
        servers: views,
    });
    store
}

/// `report` an hour earlier, when its key `ed25519:a_AbCd` had another public key and `ed25519:gone` was served
/// too (it is gone from the later report, without an `old_verify_keys` entry).
fn with_earlier_keys(report: &ServerReport) -> ServerReport {
    let mut earlier = report.clone();
    earlier.finished_at -= std::time::Duration::from_secs(3600);
    for keys in earlier.addresses.iter_mut().filter_map(|a| a.keys.as_mut()) {
        let first = &mut keys.verify_keys[0];
        first.key = "T2xkIGtleSB0aGF0IHdhcyByZXBsYWNlZCB1bmRlciBpdHMgaWQ".into();
        let gone = VerifyKey {
            key_id: "ed25519:gone".into(),
            key: "R29uZSB3aXRob3V0IGFuIG9sZF92ZXJpZnlfa2V5cyBlbnRyeQ".into(),
            ..first.clone()
        };
        keys.verify_keys.push(gone);
    }
    earlier
}

/// [`store_with`], and the homeserver of [`add_homeserver`].
fn store_with_homeserver(reports: impl IntoIterator<Item = ServerReport>) -> Arc<Store> {
    let store = store_with(reports);
    add_homeserver(&store);
    store
}

/// A homeserver `home` that lists example.org (not failing: `ok`), broken.test (failing: `them`) and
/// unprobed.test (not probed yet: no verdict).
fn add_homeserver(store: &Store) {
    let destination = |name: &str, failure_ts: Option<i64>| Destination {
        server_name: Arc::from(name),
        retry_last_ts: failure_ts.unwrap_or(0),
        retry_interval: if failure_ts.is_some() { 1_200_000 } else { 0 },
        failure_ts,
    };
    store.homeservers.configure(&["home".to_owned()]);
    store.homeservers.update(
        "home",
        Refreshed::Good {
            destinations: vec![
                destination("broken.test", Some(T0_SIGNED * 1000 - 3_600_000)),
                destination("example.org", None),
                destination("unprobed.test", None),
            ],
            listed: 4,
            skipped_failing: 1,
            skipped_invalid: 0,
            truncated: false,
        },
        at(T0, 0),
    );
}

fn render(store: &Arc<Store>, format: Format) -> String {
    metrics::encode(&metrics::registry(Arc::clone(store), &exporter()), format)
}

// ---- tests ----

#[test]
fn openmetrics_snapshot() {
    let text = render(
        &store_with_homeserver([healthy(), failing()]),
        Format::OpenMetrics,
    );
    assert_snapshot("metrics.txt", &without_build_identity(&text));
}

/// `text` with the build identity (which changes with every release and build) written as placeholders; everything
/// else in a snapshot is fixed.
fn without_build_identity(text: &str) -> String {
    text.replace(
        &format!(
            "version=\"{}\",revision=\"{}\"",
            metrics::VERSION,
            metrics::REVISION
        ),
        "version=\"VERSION\",revision=\"REVISION\"",
    )
}

fn render_observer(store: &Arc<Store>, format: Format) -> String {
    let registry = metrics::profiled_registry(Arc::clone(store), &exporter(), Profile::Observer);
    metrics::encode(&registry, format)
}

/// The observer profile of the same fixtures: the aggregates, one `address_success` per address, every failure
/// and warning, and of the detail families only the rows that show a fault (METRICS.md, "Profiles").
#[test]
fn observer_openmetrics_snapshot() {
    let text = render_observer(
        &store_with_homeserver([healthy(), failing()]),
        Format::OpenMetrics,
    );
    assert_snapshot("metrics-observer.txt", &without_build_identity(&text));
}

/// METRICS.md's "Profiles" table is the observer set: every family the observer profile renders is listed
/// there (and in the metric table), every family listed with "every row" is rendered by the fixtures whenever
/// the full profile renders it, and no family listed as dropped is rendered.
#[test]
fn metrics_md_lists_the_observer_set() {
    let doc = std::fs::read_to_string(repo_path("METRICS.md")).expect("METRICS.md exists");
    let documented = documented_metrics(&doc);
    let profiles = doc
        .split("\n## Profiles\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a Profiles section in METRICS.md");
    let mut listed: BTreeMap<String, String> = BTreeMap::new();
    for line in profiles.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !["every row", "fault rows", "same as full"].contains(&cells[1]) {
            continue;
        }
        for name in backticked(cells[2]) {
            listed.insert(name.to_owned(), cells[1].to_owned());
        }
    }
    assert!(listed.len() > 15, "Profiles table not found: {listed:?}");
    let dropped: BTreeSet<String> = profiles
        .split("renders none of:")
        .nth(1)
        .expect("the list of dropped families")
        .split(" (all ")
        .next()
        .map(|p| {
            backticked(p)
                .map(|n| format!("matrix_federation_{n}"))
                .collect()
        })
        .unwrap_or_default();
    let is_listed = |name: &str| {
        listed.contains_key(name)
            || listed.keys().any(|l| {
                l.strip_suffix('*')
                    .is_some_and(|prefix| name.starts_with(prefix))
            })
    };
    let store = store_with_homeserver([healthy(), failing()]);
    let observer = rendered_metrics(
        &render_observer(&store, Format::Text004),
        &render_observer(&store, Format::OpenMetrics),
    );
    let full = rendered_metrics(
        &render(&store, Format::Text004),
        &render(&store, Format::OpenMetrics),
    );
    for name in observer.keys() {
        assert!(
            is_listed(name),
            "{name} is rendered in the observer profile but not in METRICS.md's Profiles table"
        );
        assert!(
            !dropped.contains(name),
            "{name} is rendered in the observer profile but listed as dropped"
        );
    }
    for (name, kind) in &listed {
        if name.ends_with('*') {
            continue;
        }
        assert!(
            documented.contains_key(name),
            "{name} is in the Profiles table but not in the metric table"
        );
        if kind == "every row" && full.contains_key(name) {
            assert!(
                observer.contains_key(name),
                "{name}: every row is kept, yet the observer profile does not render it"
            );
        }
    }
    for desc in metrics::RENDERED {
        assert!(
            is_listed(desc.name) || dropped.contains(desc.name),
            "{} is neither in the Profiles table nor listed as dropped",
            desc.name
        );
    }
}

#[test]
fn text_004_passes_the_strict_line_check() {
    let text = render(&store_with([healthy(), failing()]), Format::Text004);
    let samples = parse_004(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let subject = samples
        .iter()
        .find(|s| {
            s.name == "matrix_federation_cert_info" && s.label("server_name") == Some("broken.test")
        })
        .and_then(|s| s.label("subject"));
    assert_eq!(
        subject,
        Some(NASTY_SUBJECT),
        "escaped label value round-trips"
    );
    assert!(!text.contains("# EOF"));
}

#[test]
fn openmetrics_escapes_label_values() {
    let text = render(&store_with([failing()]), Format::OpenMetrics);
    assert!(
        text.contains(r#"subject="CN=evil \"quoted\" back\\slash\nsecond line""#),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn failure_info_has_one_row_per_distinct_failure() {
    let samples =
        parse_004(&render(&store_with([failing()]), Format::Text004)).expect("valid exposition");
    let rows: Vec<_> = samples
        .iter()
        .filter(|s| s.name == "matrix_federation_failure_info")
        .map(|s| {
            (
                s.label("address").unwrap_or("?"),
                s.label("stage").unwrap_or("?"),
                s.label("reason").unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("", "dns", "dns_nxdomain"),
            ("198.51.100.7:8448", "certificate", "cert_expired"),
            ("198.51.100.7:8448", "certificate", "cert_hostname_mismatch"),
            ("198.51.100.7:8448", "keys", "keys_expired"),
            ("[2001:db8::7]:8448", "connect", "connection_refused"),
            // Client discovery's failure: exported, but not part of probe_success.
            ("", "client", "http_status"),
        ]
    );
}

/// A configured server without extra labels.
fn target(name: &str) -> Target {
    Target {
        name: ServerName::parse(name).unwrap(),
        labels: Labels::new(),
    }
}

#[test]
fn removed_servers_and_addresses_leave_no_series() {
    let store = store_with([healthy(), failing()]);
    assert!(render(&store, Format::Text004).contains("server_name=\"broken.test\""));

    store.configure(&[target("example.org")]);
    let after = render(&store, Format::Text004);
    assert!(!after.contains("broken.test"), "{after}");
    assert_eq!(after, render(&store_with([healthy()]), Format::Text004));

    // A newer report with fewer addresses drops the vanished address's series.
    let mut v4_only = healthy();
    v4_only.addresses.truncate(1);
    v4_only.discovery.well_known.per_address.truncate(1);
    store.insert(v4_only);
    let after = render(&store, Format::Text004);
    assert!(after.contains("192.0.2.10:443"));
    assert!(!after.contains("2001:db8::10"), "{after}");

    store.configure(&[]);
    let empty = render(&store, Format::Text004);
    assert!(!empty.contains("server_name="), "{empty}");
    assert!(empty.contains("matrix_federation_exporter_build_info"));
}

#[test]
fn metrics_md_matches_the_rendered_output() {
    let doc = std::fs::read_to_string(repo_path("METRICS.md")).expect("METRICS.md exists");
    let documented = documented_metrics(&doc);
    assert!(!documented.is_empty(), "no metric rows found in METRICS.md");

    let store = store_with_homeserver([healthy(), failing()]);
    let rendered = rendered_metrics(
        &render(&store, Format::Text004),
        &render(&store, Format::OpenMetrics),
    );

    for (name, (kind, labels)) in &rendered {
        let doc_row = documented
            .get(name)
            .unwrap_or_else(|| panic!("{name} is rendered but not in METRICS.md"));
        assert!(
            !doc_row.later,
            "{name} is rendered but METRICS.md says {LATER}"
        );
        assert_eq!(&doc_row.kind, kind, "type of {name}");
        assert_eq!(&doc_row.labels, labels, "labels of {name}");
    }
    for (name, row) in &documented {
        assert!(
            row.later || rendered.contains_key(name),
            "{name} is documented but not rendered (mark it {LATER} if a later issue adds it)"
        );
        assert!(
            !(row.later && rendered.contains_key(name)),
            "{name} is marked {LATER} but rendered"
        );
    }
    for desc in metrics::RENDERED {
        assert!(
            rendered.contains_key(desc.name),
            "fixtures do not exercise {}",
            desc.name
        );
    }

    let values = documented_label_values(&doc);
    let expect = |label: &str, all: Vec<&'static str>| {
        let want: BTreeSet<&str> = all.into_iter().collect();
        let got: BTreeSet<&str> = values
            .get(label)
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(got, want, "values of `{label}` in METRICS.md");
    };
    expect("method", Method::ALL.iter().map(|v| v.as_str()).collect());
    expect(
        "well_known",
        WellKnownOutcome::ALL.iter().map(|v| v.as_str()).collect(),
    );
    expect("step", Step::ALL.iter().map(|v| v.as_str()).collect());
    expect("phase", Phase::ALL.iter().map(|v| v.as_str()).collect());
    expect("family", Family::ALL.iter().map(|v| v.as_str()).collect());
    expect("stage", Stage::ALL.iter().map(|v| v.as_str()).collect());
    expect("reason", Reason::ALL.iter().map(|v| v.as_str()).collect());
    expect(
        "class",
        AddressClass::ALL.iter().map(|v| v.as_str()).collect(),
    );
    expect("warning", Warning::ALL.iter().map(|v| v.as_str()).collect());
    expect(
        "outcome",
        ClientOutcome::ALL.iter().map(|v| v.as_str()).collect(),
    );
    let mut results = vec!["ok", "failed", "success", "failure"];
    results.extend(ClientResult::ALL.iter().map(|v| v.as_str()));
    // `support_info` has its own `result` values (METRICS.md defines them for that metric alone).
    results.extend(SupportResult::ALL.iter().map(|v| v.as_str()));
    results.extend(NotaryResult::ALL.iter().map(|v| v.as_str()));
    expect("result", results);
    expect(
        "change",
        KeyChangeKind::ALL.iter().map(|v| v.as_str()).collect(),
    );
    expect(
        "srv_record",
        SrvRecordName::ALL.iter().map(|v| v.as_str()).collect(),
    );
    expect(
        "contact_role",
        ContactRole::ALL.iter().map(|v| v.as_str()).collect(),
    );
    let results = values.get("result").cloned().unwrap_or_default();
    for v in SupportResult::ALL {
        assert!(
            results.iter().any(|r| r == v.as_str()),
            "result {v} in METRICS.md"
        );
    }
    expect("verdict", Verdict::ALL.iter().map(|v| v.as_str()).collect());
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one row per closed value, in one table"
)]
fn address_classes_and_warnings_have_their_rows() {
    let samples = parse_004(&render(
        &store_with([healthy(), failing()]),
        Format::Text004,
    ))
    .expect("valid exposition");
    let rows = |name: &str, labels: &[&str]| -> Vec<Vec<String>> {
        samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| {
                labels
                    .iter()
                    .map(|l| s.label(l).unwrap_or("?").to_owned())
                    .collect()
            })
            .collect()
    };
    let own = |rows: &[&[&str]]| -> Vec<Vec<String>> {
        rows.iter()
            .map(|r| r.iter().map(|&v| v.to_owned()).collect())
            .collect()
    };
    // Servers in name order; every probed address, then every refused one, with its range.
    assert_eq!(
        rows(
            "matrix_federation_address_info",
            &["server_name", "address", "family", "class"]
        ),
        own(&[
            &["broken.test", "198.51.100.7:8448", "ipv4", "documentation"],
            &["broken.test", "[2001:db8::7]:8448", "ipv6", "documentation"],
            &["broken.test", "10.0.0.7:8448", "ipv4", "private"],
            &["example.org", "192.0.2.10:443", "ipv4", "documentation"],
            &["example.org", "[2001:db8::10]:443", "ipv6", "documentation"],
        ])
    );
    // A refused address with others probed is a warning, not a failure; so is an SRV target that is a CNAME.
    assert_eq!(
        rows(
            "matrix_federation_warning_info",
            &["server_name", "address", "warning"]
        ),
        own(&[
            &["broken.test", "", "srv_target_cname"],
            &["broken.test", "10.0.0.7:8448", "address_not_public"],
            &["broken.test", "", "client_well_known_no_cors"],
            &["broken.test", "", "well_known_inconsistent"],
            &["broken.test", "", "support_invalid"],
            &["broken.test", "", "local_cert_unreadable"],
            &["broken.test", "198.51.100.7:8448", "cert_not_reloaded"],
            &["example.org", "", "signing_key_replaced"],
            &["example.org", "", "signing_key_dropped"],
            &["example.org", "", "srv_shadowed_elsewhere"],
        ])
    );
    // The well-known of every address: one row each, and whether they agree (absent for one address).
    assert_eq!(
        rows(
            "matrix_federation_well_known_address_info",
            &["server_name", "address", "family", "well_known", "m_server"]
        ),
        own(&[
            &["broken.test", "198.51.100.1:443", "ipv4", "not_found", ""],
            &["broken.test", "[2001:db8::1]:443", "ipv6", "timeout", ""],
            &[
                "example.org",
                "192.0.2.10:443",
                "ipv4",
                "delegated",
                "matrix.example.org:443"
            ],
            &[
                "example.org",
                "[2001:db8::10]:443",
                "ipv6",
                "delegated",
                "matrix.example.org:443"
            ],
        ])
    );
    assert_eq!(
        rows("matrix_federation_well_known_consistent", &["server_name"]),
        own(&[&["broken.test"], &["example.org"]])
    );
    // Shadowed records, the support result, and contact counts (0 included) only where the result is ok.
    assert_eq!(
        rows(
            "matrix_federation_shadowed_srv_info",
            &["server_name", "srv_record", "srv_target"]
        ),
        own(&[
            &["example.org", "_matrix-fed._tcp", "matrix.example.org:443"],
            &["example.org", "_matrix._tcp", "old.example.org:8448"],
        ])
    );
    assert_eq!(
        rows("matrix_federation_support_info", &["server_name", "result"]),
        own(&[&["broken.test", "invalid"], &["example.org", "ok"]])
    );
    assert_eq!(
        rows(
            "matrix_federation_support_contacts",
            &["server_name", "contact_role"]
        ),
        own(&[
            &["example.org", "m.role.admin"],
            &["example.org", "m.role.security"],
            &["example.org", "other"],
        ])
    );
    let text = render(&store_with([healthy(), failing()]), Format::Text004);
    for (series, want) in [
        (
            "matrix_federation_support_contacts{server_name=\"example.org\",contact_role=\"m.role.admin\"} ",
            2.0,
        ),
        (
            "matrix_federation_support_contacts{server_name=\"example.org\",contact_role=\"other\"} ",
            0.0,
        ),
    ] {
        let value = text.lines().find_map(|l| l.strip_prefix(series));
        assert_eq!(
            value.and_then(|v| v.parse::<f64>().ok()),
            Some(want),
            "{series}"
        );
    }
    // A refused address has no per-address check series.
    assert!(
        !samples
            .iter()
            .any(|s| s.name == "matrix_federation_address_success"
                && s.label("address") == Some("10.0.0.7:8448"))
    );
}

#[test]
fn renders_ten_thousand_servers() {
    // Speed is measured by `cargo run --release --example render_metrics`, not asserted here.
    let store = Arc::new(Store::new());
    for i in 0..10_000 {
        let mut r = healthy();
        r.server_name = format!("s{i}.example.org").into();
        store.insert(r);
    }
    let registry = metrics::registry(Arc::clone(&store), &exporter());
    let text = metrics::encode(&registry, Format::OpenMetrics);
    assert_eq!(
        text.matches("matrix_federation_probe_success{").count(),
        10_000
    );
    assert!(text.ends_with("# EOF\n"));
}

// ---- routes ----

fn app() -> (axum::Router, tokio::sync::watch::Sender<bool>) {
    let mut odd = healthy();
    odd.server_name = "evil<b>&.test".into();
    let store = store_with([healthy(), failing(), odd]);
    let (tx, ready) = tokio::sync::watch::channel(false);
    let state = AppState {
        scrapes: matrix_federation_exporter::serve::scrape::SharedScrapes::default(),
        registry: metrics::registry(Arc::clone(&store), &exporter()),
        store,
        ready,
        // The API is tested in tests/api.rs; here a probe finds nothing.
        prober: Arc::new(|name: ServerName| {
            let now = SystemTime::now();
            futures_util::future::ready(ServerReport {
                history: matrix_federation_exporter::report::History::default(),
                key_history: matrix_federation_exporter::report::KeyHistory::default(),
                local_certs: matrix_federation_exporter::report::LocalCertsReport::default(),
                server_name: name.as_str().into(),
                started_at: now,
                finished_at: now,
                duration: Duration::ZERO,
                discovery: DiscoveryReport::empty(&name.hostname()),
                addresses: Vec::new(),
                failures: Vec::new(),
                client: None,
                support: None,
            })
            .boxed()
        }),
        probe_deadline: Duration::from_secs(30),
        interval: Duration::from_secs(60),
        probe_unconfigured: false,
        allowed_targets: AllowedTargets::default(),
        api_probes: Limiter::new(MAX_API_PROBES),
        exporter: exporter(),
        probe: ProbeEndpoint::new(
            &ProbeConfig::default(),
            Duration::from_secs(30),
            Limiter::new(DEFAULT_MAX_CONCURRENT_PROBES),
        ),
    };
    (router(Arc::new(state)), tx)
}

async fn get(app: &axum::Router, uri: &str, accept: Option<&str>) -> (StatusCode, String, String) {
    let accept: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
    let answer = support::router::request(app, http::Method::GET, uri, &accept).await;
    let content_type = answer.header("content-type").to_owned();
    (answer.status, content_type, answer.body)
}

/// Every line of an exposition but the exporter's own scrape-duration series (which each render updates).
fn without_scrape_duration(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.starts_with("matrix_federation_exporter_scrape_duration"))
        .collect()
}

#[tokio::test]
async fn metrics_route_compresses_when_asked_and_two_scrapes_read_the_same_text() {
    use std::io::Read as _;

    let (app, _tx) = app();
    let (_, _, plain) = get(&app, "/metrics", None).await;
    let gzip_get = || async {
        let request = Request::builder()
            .uri("/metrics")
            .header(header::ACCEPT_ENCODING, "gzip, deflate")
            .body(Body::empty())
            .expect("request builds");
        let response = app.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response
                .headers()
                .get(header::CONTENT_ENCODING)
                .map(|v| v.to_str().unwrap()),
            Some("gzip")
        );
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body reads");
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .expect("a whole gzip stream");
        (body.len(), text)
    };
    let ((zipped_a, a), (_, b)) = tokio::join!(gzip_get(), gzip_get());
    assert_eq!(without_scrape_duration(&a), without_scrape_duration(&plain));
    assert_eq!(without_scrape_duration(&b), without_scrape_duration(&plain));
    assert!(
        zipped_a < plain.len(),
        "{zipped_a} bytes compressed, {} plain",
        plain.len()
    );
    // `q=0` refuses gzip: the plain text.
    let refused = support::router::request(
        &app,
        http::Method::GET,
        "/metrics",
        &[("accept-encoding", "gzip;q=0")],
    )
    .await;
    assert!(refused.headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(
        without_scrape_duration(&refused.body),
        without_scrape_duration(&plain)
    );
}

#[tokio::test]
async fn metrics_route_negotiates_the_format() {
    let (app, _tx) = app();

    let (status, content_type, body) = get(&app, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(!body.contains("# EOF"));
    parse_004(&body).unwrap_or_else(|e| panic!("{e}"));

    let accept =
        "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
    let (status, content_type, body) = get(&app, "/metrics", Some(accept)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(body.ends_with("# EOF\n"));
    assert!(body.contains("matrix_federation_probe_success{server_name=\"broken.test\"} 0.0\n"));
}

#[tokio::test]
async fn landing_page_lists_servers_escaped() {
    let (app, _tx) = app();
    let (status, content_type, body) = get(&app, "/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(body.contains("<a href=\"/metrics\">"));
    // One row per server with its status (the status page itself is tested in tests/status.rs).
    assert!(
        body.contains("data-server=\"example.org\" data-status=\"ok\""),
        "{body}"
    );
    assert!(
        body.contains("data-server=\"broken.test\" data-status=\"failing\""),
        "{body}"
    );
    // The first failure in the row, every failure on the server's page.
    assert!(body.contains("<code>dns/dns_nxdomain</code>"), "{body}");
    assert!(body.contains("+5 more"), "{body}");
    let (status, _, detail) = get(&app, "/server/broken.test", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(detail.contains("certificate/cert_expired"), "{detail}");
    assert!(body.contains("evil&lt;b&gt;&amp;.test"), "{body}");
    assert!(!body.contains("evil<b>"), "{body}");
}

#[tokio::test]
async fn lifecycle_routes() {
    let (app, tx) = app();
    assert_eq!(get(&app, "/-/healthy", None).await.0, StatusCode::OK);
    assert_eq!(get(&app, "/-/healthy", None).await.2, "OK");

    let (status, _, body) = get(&app, "/-/ready", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "not ready: first probe round running");
    tx.send(true).expect("receiver alive");
    assert_eq!(get(&app, "/-/ready", None).await.0, StatusCode::OK);

    assert_eq!(
        get(&app, "/no/such/path", None).await.0,
        StatusCode::NOT_FOUND
    );
}

// ---- snapshot helper ----

fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Compares `actual` with `tests/snapshots/<name>`; with `UPDATE_SNAPSHOTS=1`, rewrites the file instead.
fn assert_snapshot(name: &str, actual: &str) {
    let path = repo_path("tests/snapshots").join(name);
    if std::env::var("UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("snapshot dir")).expect("create snapshot dir");
        std::fs::write(&path, actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_SNAPSHOTS=1 to create it)",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs (- expected, + actual; UPDATE_SNAPSHOTS=1 accepts the new output):\n{}",
        path.display(),
        line_diff(&expected, actual)
    );
}

/// A line diff (longest common subsequence), showing only changed lines with their line numbers.
fn line_diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "{:>4} - {}", i + 1, a[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "{:>4} + {}", j + 1, b[j]);
            j += 1;
        }
    }
    out
}

// ---- METRICS.md parsing ----

/// Marks a documented metric that no code renders yet.
const LATER: &str = "(added by a later issue)";

struct DocRow {
    kind: String,
    labels: BTreeSet<String>,
    later: bool,
}

fn backticked(cell: &str) -> impl Iterator<Item = &str> {
    cell.split('`').skip(1).step_by(2)
}

/// Rows `| `name` | type | `label`, … | meaning |` of the metric table.
fn documented_metrics(doc: &str) -> BTreeMap<String, DocRow> {
    let mut rows = BTreeMap::new();
    for line in doc
        .lines()
        .filter(|l| l.starts_with("| `matrix_federation_"))
    {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        assert!(
            cells.len() >= 5,
            "metric row needs name, type, labels, meaning: {line}"
        );
        let name = backticked(cells[1])
            .next()
            .expect("backticked name")
            .to_owned();
        let row = DocRow {
            kind: cells[2].to_owned(),
            labels: backticked(cells[3]).map(str::to_owned).collect(),
            later: line.contains(LATER),
        };
        assert!(
            rows.insert(name.clone(), row).is_none(),
            "{name} documented twice"
        );
    }
    rows
}

/// The first backticked cell of each table row under a heading like ``### `reason` ``.
fn documented_label_values(doc: &str) -> BTreeMap<String, Vec<String>> {
    let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        if line.starts_with('#') {
            current = line
                .strip_prefix("### ")
                .and_then(|h| backticked(h).next())
                .map(str::to_owned);
        } else if let (Some(label), Some(cell)) = (&current, line.strip_prefix("| `"))
            && let Some(value) = cell.split('`').next()
        {
            values
                .entry(label.clone())
                .or_default()
                .push(value.to_owned());
        }
    }
    values
}

/// Sample name -> (`OpenMetrics` type, label names seen on any sample).
fn rendered_metrics(
    text_004: &str,
    openmetrics: &str,
) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut kinds = BTreeMap::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (family, kind) = rest.split_once(' ').expect("TYPE line has a type");
            let sample_name = match kind {
                "info" => format!("{family}_info"),
                "counter" => format!("{family}_total"),
                _ => family.to_owned(),
            };
            kinds.insert(sample_name, kind.to_owned());
        }
    }
    let mut rendered: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for sample in parse_004(text_004).expect("valid exposition") {
        let kind = kinds
            .get(&sample.name)
            .unwrap_or_else(|| panic!("no OpenMetrics TYPE for {}", sample.name));
        let entry = rendered
            .entry(sample.name.clone())
            .or_insert_with(|| (kind.clone(), BTreeSet::new()));
        entry.1.extend(sample.labels.into_iter().map(|(k, _)| k));
    }
    rendered
}

// ---- strict 0.0.4 parser ----

struct Sample {
    name: String,
    labels: Vec<(String, String)>,
}

impl Sample {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the Prometheus 0.0.4 text format strictly: `# HELP`/`# TYPE` comments, then samples
/// `name{label="escaped",…} value` whose name was typed first; no duplicate series. Label values come back
/// unescaped.
fn parse_004(text: &str) -> Result<Vec<Sample>, String> {
    let body = text
        .strip_suffix('\n')
        .ok_or("output must end with a newline")?;
    let mut typed = HashSet::new();
    let mut series = HashSet::new();
    let mut samples = Vec::new();
    for (n, line) in body.split('\n').enumerate() {
        let err = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest
                .split_once(' ')
                .ok_or_else(|| err("HELP without text"))?;
            check_name(name, true).map_err(|e| err(&e))?;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| err("TYPE without type"))?;
            check_name(name, true).map_err(|e| err(&e))?;
            if !matches!(
                kind,
                "counter" | "gauge" | "histogram" | "summary" | "untyped"
            ) {
                return Err(err("unknown type"));
            }
            if !typed.insert(name.to_owned()) {
                return Err(err("family typed twice"));
            }
        } else if line.starts_with('#') || line.is_empty() {
            return Err(err("unexpected comment or empty line"));
        } else {
            let (sample, rest) = parse_sample(line).map_err(|e| err(&e))?;
            let value = rest
                .strip_prefix(' ')
                .ok_or_else(|| err("no space before value"))?;
            if value.parse::<f64>().is_err() && !matches!(value, "+Inf" | "-Inf" | "NaN") {
                return Err(err("bad value"));
            }
            if !typed.contains(&sample.name) {
                return Err(err("sample before its TYPE"));
            }
            let mut key: Vec<_> = sample.labels.clone();
            key.sort();
            if !series.insert((sample.name.clone(), key)) {
                return Err(err("duplicate series"));
            }
            samples.push(sample);
        }
    }
    Ok(samples)
}

fn check_name(name: &str, metric: bool) -> Result<(), String> {
    let ok_first = |c: char| c.is_ascii_alphabetic() || c == '_' || (metric && c == ':');
    let ok_rest = |c: char| ok_first(c) || c.is_ascii_digit();
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if ok_first(c) && chars.all(ok_rest) => Ok(()),
        _ => Err(format!("invalid name {name:?}")),
    }
}

/// Parses `name` or `name{…}` and returns the sample and the rest of the line.
fn parse_sample(line: &str) -> Result<(Sample, &str), String> {
    let end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..end];
    check_name(name, true)?;
    let mut sample = Sample {
        name: name.to_owned(),
        labels: Vec::new(),
    };
    let Some(mut rest) = line[end..].strip_prefix('{') else {
        return Ok((sample, &line[end..]));
    };
    loop {
        let (key, after) = rest.split_once("=\"").ok_or("label without =\"")?;
        check_name(key, false)?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let close = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, '\n') => return Err("raw newline in label value".to_owned()),
                (_, c) => value.push(c),
            }
        };
        if sample.label(key).is_some() {
            return Err(format!("label {key} repeated"));
        }
        sample.labels.push((key.to_owned(), value));
        rest = &after[close + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if let Some(r) = rest.strip_prefix('}') {
            return Ok((sample, r));
        } else {
            return Err("expected , or } after label".to_owned());
        }
    }
}

#[test]
fn strict_parser_rejects_bad_lines() {
    let typed = "# TYPE m gauge\n";
    assert!(parse_004(&format!("{typed}m{{a=\"x\"}} 1\n")).is_ok());
    for bad in [
        "m{a=\"x\"} 1",                 // no trailing newline
        "m{a=\"x\"}  1\n",              // bad value
        "m{a=\"x\\q\"} 1\n",            // bad escape
        "m{a=\"x\"\"} 1\n",             // stray quote
        "m{a=\"x\",a=\"y\"} 1\n",       // repeated label
        "m{a=\"x\"} 1\nm{a=\"x\"} 2\n", // duplicate series
        "m{1a=\"x\"} 1\n",              // bad label name
    ] {
        assert!(
            parse_004(&format!("{typed}{bad}")).is_err(),
            "accepted {bad:?}"
        );
    }
    assert!(parse_004("m 1\n").is_err(), "sample before TYPE");
}

/// Shadowed SRV records and support documents for the fixtures.
mod faq2 {
    use std::time::Duration;

    use matrix_federation_exporter::report::{
        ShadowedSrv, ShadowedSrvReport, SrvRecordName, SupportContact, SupportReport, SupportResult,
    };

    pub fn shadowed(records: &[(SrvRecordName, &str, bool)]) -> ShadowedSrvReport {
        ShadowedSrvReport {
            records: records
                .iter()
                .map(|&(record, target, elsewhere)| ShadowedSrv {
                    record,
                    target: target.into(),
                    priority: 10,
                    weight: 0,
                    elsewhere,
                })
                .collect(),
            duration: Duration::from_millis(4),
            errors: Vec::new(),
        }
    }

    /// A support report with `result`, and `n` contacts of each `(role, n)`.
    pub fn support(result: SupportResult, roles: &[(&str, u32)]) -> SupportReport {
        let mut role_counts = [0; 3];
        let mut contacts = Vec::new();
        for &(role, n) in roles {
            let i = super::ContactRole::ALL
                .iter()
                .position(|r| *r == super::ContactRole::of(role))
                .unwrap();
            role_counts[i] += n;
            for k in 0..n {
                contacts.push(SupportContact {
                    role: role.to_owned(),
                    email_address: Some(format!("contact{k}@example.org")),
                    matrix_id: None,
                });
            }
        }
        SupportReport {
            result,
            contacts,
            role_counts,
            support_page: None,
            hops: [(
                "https://example.org/.well-known/matrix/support".to_owned(),
                200,
            )]
            .into_iter()
            .collect(),
            error: None,
            duration: Duration::from_millis(6).into(),
        }
    }
}
