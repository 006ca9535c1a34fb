//! A [`ServerReport`] shaped as the matrix-federation-tester's `/api/report` JSON, so tester UIs and scripts
//! that read `FederationOK` work unchanged.
//!
//! The tester's schema (matrix-org/matrix-federation-tester, `main.go` `ServerReport`) is kept field for field:
//! the same keys, the same nesting, `null` where Go marshals a nil pointer, slice or map. Where our data is
//! richer than the schema, the extra facts live under one additional top-level key,
//! [`EXTENSION_KEY`], and nowhere else. This module only reshapes data: it does no I/O and judges nothing
//! (every verdict comes from the report).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use crate::report::{
    AddressReport, CertReport, Failure, Method, Reason, RefusedAddress, ServerReport, Stage,
    WellKnownOutcome,
};

mod connection;
mod extension;
mod go_words;

#[cfg(test)]
use connection::base64_unpadded;
use connection::{ConnectionReport, connection_error, connection_report};
pub use connection::{common_name, go_tls_version};
use extension::{Extension, extension};

/// The one top-level key the tester does not have; it holds what the tester's schema cannot express.
pub const EXTENSION_KEY: &str = "MatrixFederationExporter";

/// A configured homeserver whose admin API lists the server as a federation destination, with what it says.
#[derive(Clone, Copy, Debug)]
pub struct ListedBy<'a> {
    pub homeserver: &'a str,
    pub destination: &'a crate::report::homeserver::Destination,
}

/// [`tester_report`] with the homeservers that list the server (under our extension key, `homeservers`).
#[must_use]
pub fn tester_report_with(report: &ServerReport, listed_by: &[ListedBy<'_>]) -> Value {
    // Invariant: as in `tester_report`.
    serde_json::to_value(TesterReport::from_report(report).listed_by(report, listed_by))
        .expect("the tester report serializes to JSON")
}

/// [`tester_report_pretty`] with the homeservers that list the server (under our extension key, `homeservers`).
#[must_use]
pub fn tester_report_pretty_with(report: &ServerReport, listed_by: &[ListedBy<'_>]) -> String {
    tester_report_pretty_with_views(report, listed_by, &[])
}

/// [`tester_report_pretty`] with the views of others under our extension key: the homeservers that list the
/// server (`homeservers`) and what the configured notaries serve for it (`notaries`; absent when none has a view).
#[must_use]
pub fn tester_report_pretty_with_views(
    report: &ServerReport,
    listed_by: &[ListedBy<'_>],
    notaries: &[std::sync::Arc<crate::report::notary::NotaryReport>],
) -> String {
    let mut tester = TesterReport::from_report(report).listed_by(report, listed_by);
    if let Ours::Report(extension) = &mut tester.extension {
        extension.notaries = extension::notaries(report.server_name.as_str(), notaries);
    }
    // Invariant: as in `tester_report`.
    serde_json::to_string_pretty(&tester).expect("the tester report serializes to JSON")
}

/// The report as a JSON value. `serde_json` sorts object keys; use [`tester_report_pretty`] for the tester's
/// field order.
#[must_use]
pub fn tester_report(report: &ServerReport) -> Value {
    // Invariant: every field is a string, number, bool, null, sequence or string-keyed map.
    serde_json::to_value(TesterReport::from_report(report))
        .expect("the tester report serializes to JSON")
}

/// The report as the tester prints it: fields in Go struct order, indented by two spaces, no final newline.
#[must_use]
pub fn tester_report_pretty(report: &ServerReport) -> String {
    // Invariant: as in `tester_report`.
    serde_json::to_string_pretty(&TesterReport::from_report(report))
        .expect("the tester report serializes to JSON")
}

/// [`tester_report_pretty`] with what the configured notaries serve for the server in the extension key
/// (`MatrixFederationExporter.notaries`; absent when no notary has a view of it).
#[must_use]
pub fn tester_report_pretty_with_notaries(
    report: &ServerReport,
    notaries: &[std::sync::Arc<crate::report::notary::NotaryReport>],
) -> String {
    tester_report_pretty_with_views(report, &[], notaries)
}

/// The report on one line (fields in Go struct order), for JSON Lines.
#[must_use]
pub fn tester_report_line(report: &ServerReport) -> String {
    // Invariant: as in `tester_report`.
    serde_json::to_string(&TesterReport::from_report(report))
        .expect("the tester report serializes to JSON")
}

/// The tester's answer when there is no report: `Error` is `tester_text`, `FederationOK` false, and every other
/// field as upstream leaves it when it stops before discovery (empty maps, `null` slices), except `Version`,
/// which carries the error too (never `{}`). Our words go to the extension key.
#[must_use]
pub fn tester_error_pretty(tester_text: &str, message: &str) -> String {
    // Invariant: as in `tester_report`.
    serde_json::to_string_pretty(&error_report(tester_text, message))
        .expect("the tester report serializes to JSON")
}

/// [`tester_error_pretty`] on one line, for JSON Lines.
#[must_use]
pub fn tester_error_line(tester_text: &str, message: &str) -> String {
    // Invariant: as in `tester_report`.
    serde_json::to_string(&error_report(tester_text, message))
        .expect("the tester report serializes to JSON")
}

fn error_report(tester_text: &str, message: &str) -> TesterReport {
    TesterReport {
        error: Some(tester_text.to_owned()),
        well_known_result: WellKnownResult {
            m_server: String::new(),
            result: None,
            cache_expires_at: 0,
        },
        dns_result: DnsResult {
            srv_skipped: false,
            srv_cname: String::new(),
            srv_records: None,
            srv_error: None,
            hosts: None,
            addrs: None,
        },
        connection_reports: BTreeMap::new(),
        connection_errors: BTreeMap::new(),
        version: VersionResult {
            name: None,
            version: None,
            error: Some(tester_text.to_owned()),
        },
        federation_ok: false,
        extension: Ours::Refused {
            error: message.to_owned(),
        },
    }
}

// ---- the tester's schema (Go field order) ----

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TesterReport {
    /// Set only when discovery did not run at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    well_known_result: WellKnownResult,
    #[serde(rename = "DNSResult")]
    dns_result: DnsResult,
    connection_reports: BTreeMap<String, ConnectionReport>,
    connection_errors: BTreeMap<String, Message>,
    version: VersionResult,
    #[serde(rename = "FederationOK")]
    federation_ok: bool,
    #[serde(rename = "MatrixFederationExporter")]
    extension: Ours,
}

/// What our extension key holds: the report's extra facts, or why there is no report.
#[derive(Serialize)]
#[serde(untagged)]
enum Ours {
    Report(Box<Extension>),
    Refused { error: String },
}

#[derive(Serialize)]
struct WellKnownResult {
    #[serde(rename = "m.server")]
    m_server: String,
    #[serde(rename = "result", skip_serializing_if = "Option::is_none")]
    result: Option<String>,
    #[serde(rename = "CacheExpiresAt")]
    cache_expires_at: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DnsResult {
    #[serde(rename = "SRVSkipped")]
    srv_skipped: bool,
    #[serde(rename = "SRVCName")]
    srv_cname: String,
    #[serde(rename = "SRVRecords")]
    srv_records: Option<Vec<SrvRecord>>,
    #[serde(rename = "SRVError")]
    srv_error: Option<Message>,
    /// `null` only when discovery did not run.
    hosts: Option<BTreeMap<String, HostResult>>,
    /// `null` when there is no address (a Go nil slice).
    addrs: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SrvRecord {
    target: String,
    port: u16,
    priority: u16,
    weight: u16,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct HostResult {
    #[serde(rename = "CName")]
    cname: String,
    /// `null` when there is none (Go's `net.LookupHost` gives nil with its error).
    addrs: Option<Vec<String>>,
    error: Option<Message>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Message {
    message: String,
}

impl Message {
    /// Several messages become one, in order.
    fn joined<'a>(messages: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let message = messages.into_iter().collect::<Vec<_>>().join("; ");
        (!message.is_empty()).then_some(Self { message })
    }
}

#[derive(Serialize)]
struct VersionResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

// ---- building ----

impl TesterReport {
    fn from_report(r: &ServerReport) -> Self {
        let d = &r.discovery;
        // Discovery that never ran (the probe was cut before it, or no step was taken) is the tester's
        // top-level `Error`; every other server-level failure belongs to a host or to the SRV lookup.
        let discovery_ran =
            d.method != Method::None || !d.steps.is_empty() || !d.targets.is_empty();
        let error = (!discovery_ran).then(|| {
            Message::joined(r.failures.iter().map(|f| f.message.as_str()))
                .map_or_else(|| "discovery did not run".to_owned(), |m| m.message)
        });
        let mut connection_reports = BTreeMap::new();
        let mut connection_errors = BTreeMap::new();
        // When every address is refused, each one is a connection a default-configured peer will not make.
        for refused in refused_errors(r) {
            connection_errors.insert(
                refused.address.to_string(),
                Message {
                    message: format!(
                        "not contacted: default-configured peers refuse this address ({})",
                        refused.class()
                    ),
                },
            );
        }
        for a in &r.addresses {
            let key = a.address.to_string();
            match connection_error(a) {
                Some(message) => {
                    connection_errors.insert(key, message);
                }
                None => {
                    connection_reports.insert(key, connection_report(r, a));
                }
            }
        }
        Self {
            well_known_result: well_known_result(r),
            dns_result: dns_result(r, discovery_ran),
            connection_reports,
            connection_errors,
            version: version_result(r),
            federation_ok: r.success(),
            extension: Ours::Report(Box::new(extension(r))),
            error,
        }
    }
}

impl TesterReport {
    /// Adds the homeservers that list the server to our extension.
    fn listed_by(mut self, r: &ServerReport, listed_by: &[ListedBy<'_>]) -> Self {
        if let Ours::Report(ext) = &mut self.extension {
            ext.set_homeservers(r, listed_by);
        }
        self
    }
}

fn well_known_result(r: &ServerReport) -> WellKnownResult {
    let wk = &r.discovery.well_known;
    let result = (wk.outcome != WellKnownOutcome::Delegated).then(|| {
        let message = wk.error_text().unwrap_or_default();
        go_words::well_known_result(wk.outcome, &message, invalid_m_server(&message))
    });
    WellKnownResult {
        m_server: r
            .discovery
            .delegated_server
            .as_deref()
            .unwrap_or_default()
            .to_owned(),
        result,
        // Upstream sets it only for a delegation (0 for an error).
        cache_expires_at: wk
            .cache_ttl
            .filter(|_| wk.outcome == WellKnownOutcome::Delegated)
            .map_or(0, |ttl| unix_seconds(r.finished_at + ttl) as i64),
    }
}

/// The `m.server` value our well-known judge refused, from its message (`"m.server" "value": why`).
fn invalid_m_server(message: &str) -> &str {
    message
        .strip_prefix("\"m.server\" \"")
        .and_then(|rest| rest.split_once("\": "))
        .map_or("", |(value, _)| value)
}

fn dns_result(r: &ServerReport, discovery_ran: bool) -> DnsResult {
    let d = &r.discovery;
    let srv_records: Vec<SrvRecord> = d
        .targets
        .iter()
        .filter_map(|t| {
            t.srv.map(|s| SrvRecord {
                target: go_words::fqdn(&t.host),
                port: t.port,
                priority: s.priority,
                weight: s.weight,
            })
        })
        .collect();
    let mut hosts: BTreeMap<String, HostResult> = BTreeMap::new();
    for t in &d.targets {
        // Upstream keys `Hosts` by the SRV target as `net.LookupSRV` returns it (fully qualified), else by the
        // name as given; `CName` is `net.LookupCNAME`'s answer, fully qualified. An IP literal has none.
        let is_ip = t.host.parse::<std::net::IpAddr>().is_ok() || t.host.starts_with('[');
        let key = if t.srv.is_some() {
            go_words::fqdn(&t.host)
        } else {
            t.host.to_string()
        };
        let host = hosts.entry(key).or_insert_with(|| HostResult {
            cname: if is_ip {
                String::new()
            } else {
                go_words::fqdn(&t.host)
            },
            addrs: None,
            error: None,
        });
        for ip in &t.addresses {
            let ip = ip.to_string();
            let addrs = host.addrs.get_or_insert_with(Vec::new);
            if !addrs.contains(&ip) {
                addrs.push(ip);
            }
        }
    }
    // DNS failures name the host they are about ("A matrix.example.org.: ...", "x does not exist"); the
    // rest (SRV lookups, invalid SRV targets) are the SRV error.
    let mut srv_errors = Vec::new();
    if discovery_ran {
        // `address_not_public` is told per address, in `ConnectionErrors`.
        let about_hosts =
            |f: &&Failure| is_discovery_stage(f.stage) && f.reason != Reason::AddressNotPublic;
        for f in r.failures.iter().filter(about_hosts) {
            match hosts
                .iter_mut()
                .find(|(name, _)| mentions_host(&f.message, name))
            {
                Some((_, host)) if f.stage == Stage::Dns => {
                    let message = match host.error.take() {
                        Some(m) => format!("{}; {}", m.message, f.message),
                        None => f.message.clone(),
                    };
                    host.error = Some(Message { message });
                }
                _ => srv_errors.push(f.message.as_str()),
            }
        }
    }
    DnsResult {
        srv_skipped: matches!(d.method, Method::IpLiteral | Method::ExplicitPort),
        srv_cname: srv_cname(r),
        srv_records: (!srv_records.is_empty()).then_some(srv_records),
        srv_error: Message::joined(srv_errors),
        hosts: discovery_ran.then_some(hosts),
        addrs: Some(
            r.addresses
                .iter()
                .map(|a| a.address)
                .chain(refused_errors(r).map(|a| a.address))
                .map(|a| a.to_string())
                .collect::<Vec<_>>(),
        )
        .filter(|addrs| !addrs.is_empty()),
    }
}

/// The refused addresses that are connection errors: all of them when nothing else was probed (the
/// `address_not_public` failure); none when some address was probed (then they are only warnings).
fn refused_errors(r: &ServerReport) -> impl Iterator<Item = &RefusedAddress> {
    let all_refused = r
        .failures
        .iter()
        .any(|f| f.reason == Reason::AddressNotPublic);
    r.discovery.refused.iter().filter(move |_| all_refused)
}

/// The name of the SRV record the targets came from, fully qualified as `net.LookupSRV` gives it; "" when no
/// SRV record was used.
fn srv_cname(r: &ServerReport) -> String {
    let service = match r.discovery.method {
        Method::SrvMatrixFed => "_matrix-fed._tcp",
        Method::SrvMatrix => "_matrix._tcp",
        _ => return String::new(),
    };
    // The SRV lookup is of the delegated name when the well-known delegated (a name without a port then).
    let name = r
        .discovery
        .delegated_server
        .as_deref()
        .unwrap_or(&r.server_name);
    go_words::fqdn(&format!("{service}.{name}"))
}

/// Upstream's `Version`: the software of a server that answered over verified TLS (its fetch verifies the
/// certificate), else an error; never empty. Ours is the first address whose certificate is valid and that
/// answered; the error is the first reason none did.
fn version_result(r: &ServerReport) -> VersionResult {
    let verified = |a: &&AddressReport| a.certificate.as_ref().is_some_and(CertReport::valid);
    if let Some(v) = r
        .addresses
        .iter()
        .filter(verified)
        .find_map(|a| a.version.as_ref())
    {
        return VersionResult {
            name: v.name.clone().or_else(|| Some(String::new())),
            version: v.version.clone().or_else(|| Some(String::new())),
            error: None,
        };
    }
    let per_address = |stage: Stage| {
        r.addresses
            .iter()
            .flat_map(|a| &a.failures)
            .find(|f| f.stage == stage)
            .map(|f| f.message.clone())
    };
    let error = per_address(Stage::Version)
        .or_else(|| per_address(Stage::Certificate))
        .or_else(|| {
            r.addresses
                .iter()
                .flat_map(|a| a.certificate.iter().flat_map(|c| &c.failures))
                .next()
                .map(|f| f.message.clone())
        })
        .or_else(|| r.all_failures().next().map(|(_, f)| f.message.clone()))
        .unwrap_or_else(|| "no address answered the version request".to_owned());
    VersionResult {
        name: None,
        version: None,
        error: Some(error),
    }
}

// ---- field conversions ----

/// Whether a failure message names `host` as one of its words (`A host.: ...`, `host does not exist`).
fn mentions_host(message: &str, host: &str) -> bool {
    message.split_whitespace().any(|word| {
        word.trim_matches(|c: char| matches!(c, '"' | '\'' | ':' | ',' | '(' | ')'))
            .trim_end_matches('.')
            .eq_ignore_ascii_case(host.trim_end_matches('.'))
    })
}

fn is_discovery_stage(stage: Stage) -> bool {
    matches!(stage, Stage::Discovery | Stage::Dns)
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::report::{
        AddressReport, CertFacts, DiscoveryReport, KeysReport, TlsFacts, VerifyKey, WellKnownReport,
    };
    use std::time::Duration;

    #[test]
    fn fingerprints_are_unpadded_standard_base64() {
        // SHA-256 of the empty string.
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let fingerprint = crate::report::Fingerprint::from_hex(empty).unwrap();
        assert_eq!(fingerprint.to_string(), empty);
        assert_eq!(
            base64_unpadded(&fingerprint.0),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
        );
        // Every tail length: 1 and 2 leftover bytes.
        assert_eq!(base64_unpadded(&[0xe3, 0xb0, 0xc4]), "47DE");
        assert_eq!(base64_unpadded(&[0xff]), "/w");
        assert_eq!(base64_unpadded(&[0xfb, 0xff]), "+/8");
        assert_eq!(base64_unpadded(&[]), "");
        assert!(crate::report::Fingerprint::from_hex("abc").is_none());
        assert!(crate::report::Fingerprint::from_hex(&"zz".repeat(32)).is_none());
    }

    #[test]
    fn tls_versions_are_named_as_go_prints_them() {
        assert_eq!(go_tls_version("TLSv1_3"), "TLS 1.3");
        assert_eq!(go_tls_version("TLSv1_2"), "TLS 1.2");
        assert_eq!(go_tls_version("TLSv1_0"), "TLS 1.0");
        assert_eq!(go_tls_version("DTLSv1_2"), "DTLSv1_2");
    }

    #[test]
    fn common_name_is_the_last_cn() {
        assert_eq!(common_name("C=US, O=Let's Encrypt, CN=R11"), "R11");
        assert_eq!(common_name("CN=a.example + O=x"), "a.example");
        assert_eq!(common_name("CN=first, CN=second"), "second");
        assert_eq!(common_name("O=no cn"), "");
        assert_eq!(common_name(""), "");
    }

    #[test]
    fn host_mentions_are_whole_words() {
        assert!(mentions_host(
            "A matrix.example.org.: SERVFAIL",
            "matrix.example.org"
        ));
        assert!(mentions_host("x.test does not exist (NXDOMAIN)", "x.test"));
        assert!(!mentions_host("A b.x.test.: SERVFAIL", "x.test"));
    }

    fn report_with(address: AddressReport) -> ServerReport {
        ServerReport {
            history: crate::report::History::default(),
            key_history: crate::report::KeyHistory::default(),
            local_certs: crate::report::LocalCertsReport::default(),
            server_name: "example.org".into(),
            started_at: UNIX_EPOCH,
            finished_at: UNIX_EPOCH + Duration::from_secs(100),
            duration: Duration::from_secs(1),
            discovery: DiscoveryReport {
                method: Method::DefaultPort,
                well_known: WellKnownReport {
                    per_address: Vec::new(),
                    outcome: WellKnownOutcome::NotFound,
                    cache_ttl: Some(Duration::from_secs(3600)),
                    hops: crate::report::Hops::default(),
                    error: Some("HTTP 404".to_owned()),
                },
                ..DiscoveryReport::empty("example.org")
            },
            addresses: vec![address],
            failures: Vec::new(),
            client: None,
            support: None,
        }
    }

    fn address(keys: Option<KeysReport>) -> AddressReport {
        AddressReport {
            address: "[2001:db8::1]:8448".parse::<SocketAddr>().unwrap(),
            target_host: "example.org".into(),
            phases: crate::report::Timings::default(),
            tls: Some(TlsFacts {
                version: "TLSv1_3",
                cipher: "TLS13_AES_128_GCM_SHA256",
            }),
            certificate: Some(CertReport {
                verified_not_after: None,
                chain: vec![std::sync::Arc::new(CertFacts {
                    subject: "CN=example.org".into(),
                    issuer: "CN=CA".into(),
                    dns_names: Vec::new(),
                    ip_addresses: Vec::new(),
                    serial: "01".to_owned(),
                    fingerprint_sha256: crate::report::Fingerprint([0x00; 32]),
                    not_before: 0,
                    not_after: 1,
                })],
                failures: Vec::new(),
            }),
            keys,
            version: None,
            failures: Vec::new(),
        }
    }

    #[test]
    fn all_ed25519_checks_ok_is_null_without_an_ed25519_key() {
        let keys = KeysReport {
            server_name: "example.org".into(),
            valid_until_ts: Some(1),
            verify_keys: vec![VerifyKey {
                key_id: "curve25519:x".into(),
                key: "abc".into(),
                valid_ed25519: false,
                matching_signature: false,
            }],
            raw: bytes::Bytes::from_static(b"{\"server_name\":\"example.org\"}"),
            ..KeysReport::default()
        };
        let json = tester_report(&report_with(address(Some(keys))));
        let conn = &json["ConnectionReports"]["[2001:db8::1]:8448"];
        let checks = &conn["Checks"];
        assert_eq!(checks["AllEd25519ChecksOK"], Value::Null);
        assert!(
            checks
                .as_object()
                .unwrap()
                .contains_key("AllEd25519ChecksOK")
        );
        assert_eq!(checks["HasEd25519Key"], false);
        assert_eq!(checks["AllChecksOK"], false);
        assert_eq!(checks["Ed25519Checks"], serde_json::json!({}));
        assert_eq!(conn["Ed25519VerifyKeys"], Value::Null);
        assert_eq!(conn["Keys"]["server_name"], "example.org");
        assert_eq!(conn["Cipher"]["Version"], "TLS 1.3");
        assert_eq!(conn["Certificates"][0]["DNSNames"], Value::Null);
        assert_eq!(
            conn["Certificates"][0]["SHA256Fingerprint"],
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        );
    }

    #[test]
    fn one_bad_signature_fails_all_ed25519_checks_and_hides_verify_keys() {
        let key = |id: &str, ok: bool| VerifyKey {
            key_id: id.into(),
            key: "k".into(),
            valid_ed25519: true,
            matching_signature: ok,
        };
        let keys = KeysReport {
            server_name: "example.org".into(),
            valid_until_ts: Some(1),
            verify_keys: vec![key("ed25519:a", true), key("ed25519:b", false)],
            ..KeysReport::default()
        };
        let json = tester_report(&report_with(address(Some(keys))));
        let conn = &json["ConnectionReports"]["[2001:db8::1]:8448"];
        assert_eq!(conn["Checks"]["AllEd25519ChecksOK"], false);
        assert_eq!(conn["Checks"]["HasEd25519Key"], true);
        assert_eq!(
            conn["Checks"]["Ed25519Checks"]["ed25519:b"]["MatchingSignature"],
            false
        );
        assert_eq!(conn["Ed25519VerifyKeys"], Value::Null);
        // An unparseable raw document is `null`, not an error.
        assert_eq!(conn["Keys"], Value::Null);
    }

    #[test]
    fn well_known_and_dns_fields() {
        let json = tester_report(&report_with(address(None)));
        assert_eq!(
            json["WellKnownResult"],
            serde_json::json!({"m.server": "", "result": "No .well-known found", "CacheExpiresAt": 0})
        );
        assert_eq!(json["DNSResult"]["SRVSkipped"], false);
        assert_eq!(json["DNSResult"]["SRVRecords"], Value::Null);
        assert_eq!(
            json["DNSResult"]["Addrs"],
            serde_json::json!(["[2001:db8::1]:8448"])
        );
        assert!(json.get("Error").is_none());
        // No address answered the version request: an error, never `{}`.
        assert_eq!(
            json["Version"],
            serde_json::json!({"error": "no address answered the version request"})
        );
    }

    #[test]
    fn dns_failures_go_to_their_host_and_the_rest_to_the_srv_error() {
        let mut r = report_with(address(None));
        r.discovery.targets = vec![crate::report::TargetReport {
            host: "gone.example.org".into(),
            port: 8448,
            srv: Some(crate::report::SrvInfo {
                priority: 1,
                weight: 2,
            }),
            addresses: Vec::new(),
            via_cname: false,
        }];
        r.failures = vec![
            Failure::new(
                Stage::Discovery,
                Reason::SrvTargetInvalid,
                "SRV target is \".\": the service is declared unavailable",
            ),
            Failure::new(
                Stage::Dns,
                Reason::DnsNxdomain,
                "gone.example.org does not exist (NXDOMAIN)",
            ),
        ];
        let json = tester_report(&r);
        let dns = &json["DNSResult"];
        assert_eq!(
            dns["Hosts"]["gone.example.org."],
            serde_json::json!({"CName": "gone.example.org.", "Addrs": null, "Error": {"Message": "gone.example.org does not exist (NXDOMAIN)"}})
        );
        assert_eq!(
            dns["SRVError"]["Message"],
            "SRV target is \".\": the service is declared unavailable"
        );
        assert_eq!(
            dns["SRVRecords"],
            serde_json::json!([{"Target": "gone.example.org.", "Port": 8448, "Priority": 1, "Weight": 2}])
        );
        assert_eq!(json["FederationOK"], false);
    }

    #[test]
    fn an_address_without_a_handshake_is_a_connection_error() {
        let mut a = address(None);
        a.tls = None;
        a.certificate = None;
        a.failures = vec![Failure::new(
            Stage::Connect,
            Reason::ConnectionRefused,
            "connection refused",
        )];
        let json = tester_report(&report_with(a));
        assert_eq!(json["ConnectionReports"], serde_json::json!({}));
        assert_eq!(
            json["ConnectionErrors"],
            serde_json::json!({"[2001:db8::1]:8448": {"Message": "connection refused"}})
        );
        assert_eq!(
            json[EXTENSION_KEY]["failures"][0]["reason"],
            "connection_refused"
        );
    }

    #[test]
    fn refused_addresses_are_connection_errors_only_when_nothing_else_was_probed() {
        let refused = crate::report::RefusedAddress {
            address: "10.0.0.5:8448".parse().unwrap(),
            target_host: "example.org".into(),
        };
        let mut all = report_with(address(None));
        all.addresses.clear();
        all.discovery.refused = vec![refused.clone()];
        all.failures = vec![Failure::new(
            Stage::Discovery,
            Reason::AddressNotPublic,
            "unreachable for default-configured peers",
        )];
        let json = tester_report(&all);
        assert_eq!(json["FederationOK"], false);
        assert_eq!(
            json["ConnectionErrors"],
            serde_json::json!({"10.0.0.5:8448": {"Message": "not contacted: default-configured peers refuse this address (private)"}})
        );
        assert_eq!(
            json["DNSResult"]["Addrs"],
            serde_json::json!(["10.0.0.5:8448"])
        );
        assert_eq!(json["DNSResult"]["SRVError"], Value::Null);
        let ext = &json[EXTENSION_KEY];
        assert_eq!(
            ext["refused_addresses"],
            serde_json::json!([{"address": "10.0.0.5:8448", "family": "ipv4", "class": "private", "target_host": "example.org"}])
        );
        assert_eq!(ext["warnings"], serde_json::json!([]));
        assert_eq!(ext["failures"][0]["reason"], "address_not_public");

        let mut mixed = report_with(address(None));
        mixed.discovery.refused = vec![refused];
        let json = tester_report(&mixed);
        assert_eq!(json["ConnectionErrors"], serde_json::json!({}));
        assert_eq!(
            json["DNSResult"]["Addrs"],
            serde_json::json!(["[2001:db8::1]:8448"])
        );
        let ext = &json[EXTENSION_KEY];
        assert_eq!(ext["warnings"][0]["warning"], "address_not_public");
        assert_eq!(ext["warnings"][0]["address"], "10.0.0.5:8448");
        assert_eq!(ext["addresses"][0]["class"], "documentation");
        assert_eq!(ext["refused_addresses"][0]["class"], "private");
    }

    #[test]
    fn a_probe_cut_before_discovery_is_the_top_level_error() {
        let r = ServerReport::timed_out("example.org", UNIX_EPOCH, Duration::from_secs(5));
        let json = tester_report(&r);
        assert_eq!(json["Error"], "the probe did not finish within 5s");
        assert_eq!(json["FederationOK"], false);
        assert_eq!(json["DNSResult"]["SRVError"], Value::Null);
    }
}
