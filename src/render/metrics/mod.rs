//! Rendering: the exporter's own metrics, and a scrape-time collector that turns the store's latest reports into
//! the metric contract of DESIGN.md. Every metric name and help text lives here, and only here.
//!
//! This module does no I/O and keeps no per-server state: each scrape renders the current snapshot afresh, so a
//! server or address that vanished from the store leaves no stale series. Label values come from the report's
//! closed enums (`as_str()`), names, addresses and `*_info` identity labels; error text never becomes a label.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::config::Profile;
use crate::report::Labels;
use crate::report::ServerReport;
use crate::schedule::store::Store;

mod aggregates;
mod family;
mod homeservers;
mod notary;
mod reports;

pub use homeservers::HomeserversCollector;
use reports::ReportsCollector;
pub use reports::StoreCollector;

/// A metric family: the name as it appears on samples (the contract name), its help text and its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Desc {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricType,
}

const fn gauge(name: &'static str, help: &'static str) -> Desc {
    Desc {
        name,
        help,
        kind: MetricType::Gauge,
    }
}

const fn info(name: &'static str, help: &'static str) -> Desc {
    Desc {
        name,
        help,
        kind: MetricType::Info,
    }
}

// The exporter's own metrics.
pub const BUILD_INFO: Desc = info(
    "matrix_federation_exporter_build_info",
    "Version and git revision of the running exporter; always 1.",
);
pub const PROBES_TOTAL: Desc = Desc {
    name: "matrix_federation_exporter_probes_total",
    help: "Server probes finished since start, by result.",
    kind: MetricType::Counter,
};
pub const CONFIG_RELOAD_SUCCESSFUL: Desc = gauge(
    "matrix_federation_exporter_config_last_reload_successful",
    "1 if the last configuration load succeeded, else 0.",
);
pub const CONFIG_RELOAD_SUCCESS_TIMESTAMP: Desc = gauge(
    "matrix_federation_exporter_config_last_reload_success_timestamp_seconds",
    "When the configuration was last loaded successfully, in Unix seconds.",
);
pub const PROBE_INTERVAL: Desc = gauge(
    "matrix_federation_exporter_probe_interval_seconds",
    "The configured probe interval, in seconds (for staleness alerts).",
);
pub const PROBES_IN_FLIGHT: Desc = gauge(
    "matrix_federation_exporter_probes_in_flight",
    "Server probes running now: scheduled, /probe and report API.",
);
pub const SERVERS: Desc = gauge(
    "matrix_federation_exporter_servers",
    "Server names this exporter probes on its schedule (after sharding).",
);
pub const SCRAPE_DURATION: Desc = gauge(
    "matrix_federation_exporter_scrape_duration_seconds",
    "How long rendering the previous /metrics answer took, in seconds.",
);
pub const METRICS_PROFILE: Desc = info(
    "matrix_federation_exporter_metrics_profile_info",
    "The profile of series /metrics and /probe render (metrics.profile: full or observer); always 1.",
);

// Per server.
pub const PROBE_SUCCESS: Desc = gauge(
    "matrix_federation_probe_success",
    "1 if discovery found at least one address and every address passed every enabled check, else 0.",
);
pub const PROBE_DURATION: Desc = gauge(
    "matrix_federation_probe_duration_seconds",
    "Wall time of the last probe, in seconds.",
);
pub const PROBE_TIMESTAMP: Desc = gauge(
    "matrix_federation_probe_timestamp_seconds",
    "When the last probe finished, in Unix seconds.",
);
pub const DISCOVERY_INFO: Desc = info(
    "matrix_federation_discovery_info",
    "How the server name was resolved: spec step, well-known outcome, delegated name, TLS name, Host header; always 1.",
);
pub const WELL_KNOWN_CACHE_TTL: Desc = gauge(
    "matrix_federation_well_known_cache_ttl_seconds",
    "Effective cache lifetime of the well-known answer, in seconds.",
);
pub const RESOLUTION_DURATION: Desc = gauge(
    "matrix_federation_resolution_duration_seconds",
    "Time spent in each discovery step of the last probe, in seconds.",
);
pub const ADDRESSES: Desc = gauge(
    "matrix_federation_addresses",
    "Resolved addresses that passed (ok) or failed their checks.",
);

// Per address.
pub const ADDRESS_INFO: Desc = info(
    "matrix_federation_address_info",
    "One series per resolved address, probed or refused, with the range it falls in; always 1.",
);
pub const ADDRESS_SUCCESS: Desc = gauge(
    "matrix_federation_address_success",
    "1 if this address passed every enabled check (connect, TLS, certificate, keys, version), else 0.",
);
pub const CONNECTION_DURATION: Desc = gauge(
    "matrix_federation_connection_duration_seconds",
    "Latency of each connection phase, in seconds.",
);
pub const CERT_VALID: Desc = gauge(
    "matrix_federation_cert_valid",
    "1 if the presented chain, the name and the validity window all pass, else 0.",
);
pub const CERT_NOT_AFTER: Desc = gauge(
    "matrix_federation_cert_not_after_timestamp_seconds",
    "Leaf certificate notAfter in Unix seconds, also when the certificate is invalid.",
);
pub const CERT_NOT_BEFORE: Desc = gauge(
    "matrix_federation_cert_not_before_timestamp_seconds",
    "Leaf certificate notBefore in Unix seconds.",
);
pub const CERT_CHAIN_NOT_AFTER: Desc = gauge(
    "matrix_federation_cert_chain_not_after_timestamp_seconds",
    "Earliest notAfter in the presented chain, in Unix seconds.",
);
pub const CERT_INFO: Desc = info(
    "matrix_federation_cert_info",
    "Identity of the leaf certificate; always 1.",
);
pub const TLS_INFO: Desc = info(
    "matrix_federation_tls_info",
    "Negotiated TLS version and cipher suite; always 1.",
);
pub const KEYS_VALID: Desc = gauge(
    "matrix_federation_keys_valid",
    "1 if every signing-key check passed for the key document this address served, else 0.",
);
pub const KEYS_VALID_UNTIL: Desc = gauge(
    "matrix_federation_keys_valid_until_timestamp_seconds",
    "valid_until_ts of the key document this address served, in Unix seconds.",
);
pub const SIGNING_KEY_INFO: Desc = info(
    "matrix_federation_signing_key_info",
    "One series per current verify key this address served; always 1.",
);
pub const SERVER_VERSION_INFO: Desc = info(
    "matrix_federation_server_version_info",
    "Server software name and version this address reported; always 1.",
);
pub const FAILURE_INFO: Desc = info(
    "matrix_federation_failure_info",
    "One series per current failure with its stage and reason (address empty for server-level); absent when healthy.",
);
pub const WARNING_INFO: Desc = info(
    "matrix_federation_warning_info",
    "One series per current warning (address empty when it is about no address); warnings never fail a probe.",
);
pub const CLIENT_SUCCESS: Desc = gauge(
    "matrix_federation_client_success",
    "1 if a client following the spec's client discovery ends with a working homeserver URL; does not change probe_success.",
);
pub const CLIENT_DISCOVERY_INFO: Desc = info(
    "matrix_federation_client_discovery_info",
    "Client discovery: the spec's outcome, which step decided and why, and the homeserver base URL clients end with.",
);
pub const CLIENT_VERSIONS_INFO: Desc = info(
    "matrix_federation_client_versions_info",
    "The highest spec version /_matrix/client/versions advertises at the client base URL.",
);
pub const WELL_KNOWN_ADDRESS_INFO: Desc = info(
    "matrix_federation_well_known_address_info",
    "The well-known as each address of the server name served it: outcome and m.server; always 1.",
);
pub const WELL_KNOWN_CONSISTENT: Desc = gauge(
    "matrix_federation_well_known_consistent",
    "1 if every address of the server name gave the same well-known answer, else 0; absent for a single address.",
);
pub const SIGNING_KEY_CHANGE: Desc = gauge(
    "matrix_federation_signing_key_change_timestamp_seconds",
    "When the exporter saw this change of a scheduled server's verify keys, in Unix seconds; each row lives 7 days (not in /probe answers).",
);
pub const SHADOWED_SRV_INFO: Desc = info(
    "matrix_federation_shadowed_srv_info",
    "One series per SRV record of the server name itself that a delegating well-known shadows; always 1.",
);
pub const SUPPORT_INFO: Desc = info(
    "matrix_federation_support_info",
    "Result of GET /.well-known/matrix/support on the server name's hostname; always 1.",
);
pub const SUPPORT_CONTACTS: Desc = gauge(
    "matrix_federation_support_contacts",
    "Contacts the support well-known lists, per role; only when result is ok.",
);
pub const LOCAL_CERT_NOT_AFTER: Desc = gauge(
    "matrix_federation_local_cert_not_after_timestamp_seconds",
    "notAfter of the leaf in each local_certificates file, in Unix seconds; absent while the file is unreadable.",
);

// Per server, aggregated over its addresses (both profiles; METRICS.md, "Profiles").
pub const CERT_EARLIEST_NOT_AFTER: Desc = gauge(
    "matrix_federation_cert_earliest_not_after_timestamp_seconds",
    "Earliest leaf certificate notAfter over the server's addresses, in Unix seconds (full profile); absent when no handshake got a certificate.",
);
pub const CERT_CHAIN_EARLIEST_NOT_AFTER: Desc = gauge(
    "matrix_federation_cert_chain_earliest_not_after_timestamp_seconds",
    "Earliest notAfter in any chain the server's addresses presented, in Unix seconds; absent when no handshake got a certificate.",
);
pub const KEYS_VALID_ALL: Desc = gauge(
    "matrix_federation_keys_valid_all",
    "1 if every address's key document passed every signing-key check and every address serves the same verify keys, else 0.",
);
pub const KEYS_VALID_UNTIL_EARLIEST: Desc = gauge(
    "matrix_federation_keys_valid_until_earliest_timestamp_seconds",
    "Earliest valid_until_ts of the key documents the server's addresses served, in Unix seconds.",
);

// Per homeserver (`homeservers:`) and per destination it lists.
pub const HOMESERVER_UP: Desc = gauge(
    "matrix_federation_homeserver_up",
    "1 if the last refresh of the homeserver's admin API answered and accepted the token, else 0 (the last good list stays).",
);
pub const HOMESERVER_DESTINATIONS: Desc = gauge(
    "matrix_federation_homeserver_destinations",
    "How many federation destinations the homeserver's admin API listed in its last good answer.",
);
pub const HOMESERVER_DESTINATION_RETRY_INTERVAL: Desc = gauge(
    "matrix_federation_homeserver_destination_retry_interval_seconds",
    "The homeserver's current backoff for this destination, in seconds (0: not backing off).",
);
pub const HOMESERVER_DESTINATION_FAILURE_TIMESTAMP: Desc = gauge(
    "matrix_federation_homeserver_destination_failure_timestamp_seconds",
    "When the homeserver's current run of failures to this destination began, in Unix seconds; absent when not failing.",
);
pub const HOMESERVER_DESTINATION_RETRY_LAST_TIMESTAMP: Desc = gauge(
    "matrix_federation_homeserver_destination_retry_last_timestamp_seconds",
    "When the homeserver last retried this destination, in Unix seconds (0: never had to).",
);
pub const DESTINATION_VERDICT: Desc = gauge(
    "matrix_federation_destination_verdict",
    "The homeserver's view of a destination joined with our latest probe of it (ok, them, us, unseen_fault); always 1.",
);

// Per server and notary (`notaries:`).
pub const NOTARY_KEYS_MATCH: Desc = gauge(
    "matrix_federation_notary_keys_match",
    "1 when the notary returns, correctly signed, the verify keys the server serves directly now, else 0.",
);
pub const NOTARY_RESULT_INFO: Desc = info(
    "matrix_federation_notary_result_info",
    "What the notary serves for the server against its direct keys (match, stale, no_keys, bad_signature, request_failed); always 1.",
);
pub const NOTARY_VALID_UNTIL: Desc = gauge(
    "matrix_federation_notary_valid_until_timestamp_seconds",
    "Latest valid_until_ts of the correctly signed keys the notary returned for the server, in Unix seconds.",
);
pub const NOTARY_UP: Desc = gauge(
    "matrix_federation_notary_up",
    "1 if the last round reached the notary and verified its own key document, else 0.",
);

/// Every family this module renders, in output order.
pub const RENDERED: &[&Desc] = &[
    &BUILD_INFO,
    &PROBES_TOTAL,
    &CONFIG_RELOAD_SUCCESSFUL,
    &CONFIG_RELOAD_SUCCESS_TIMESTAMP,
    &PROBE_INTERVAL,
    &PROBES_IN_FLIGHT,
    &SERVERS,
    &SCRAPE_DURATION,
    &METRICS_PROFILE,
    &PROBE_SUCCESS,
    &PROBE_DURATION,
    &PROBE_TIMESTAMP,
    &DISCOVERY_INFO,
    &WELL_KNOWN_CACHE_TTL,
    &RESOLUTION_DURATION,
    &ADDRESSES,
    &ADDRESS_INFO,
    &ADDRESS_SUCCESS,
    &CONNECTION_DURATION,
    &CERT_VALID,
    &CERT_NOT_AFTER,
    &CERT_NOT_BEFORE,
    &CERT_CHAIN_NOT_AFTER,
    &CERT_INFO,
    &TLS_INFO,
    &KEYS_VALID,
    &KEYS_VALID_UNTIL,
    &SIGNING_KEY_INFO,
    &SERVER_VERSION_INFO,
    &FAILURE_INFO,
    &WARNING_INFO,
    &CLIENT_SUCCESS,
    &CLIENT_DISCOVERY_INFO,
    &CLIENT_VERSIONS_INFO,
    &WELL_KNOWN_ADDRESS_INFO,
    &WELL_KNOWN_CONSISTENT,
    &SIGNING_KEY_CHANGE,
    &SHADOWED_SRV_INFO,
    &SUPPORT_INFO,
    &SUPPORT_CONTACTS,
    &LOCAL_CERT_NOT_AFTER,
    &CERT_EARLIEST_NOT_AFTER,
    &CERT_CHAIN_EARLIEST_NOT_AFTER,
    &KEYS_VALID_ALL,
    &KEYS_VALID_UNTIL_EARLIEST,
    &HOMESERVER_UP,
    &HOMESERVER_DESTINATIONS,
    &HOMESERVER_DESTINATION_RETRY_INTERVAL,
    &HOMESERVER_DESTINATION_FAILURE_TIMESTAMP,
    &HOMESERVER_DESTINATION_RETRY_LAST_TIMESTAMP,
    &DESTINATION_VERDICT,
    &NOTARY_UP,
    &NOTARY_KEYS_MATCH,
    &NOTARY_RESULT_INFO,
    &NOTARY_VALID_UNTIL,
];

/// The exporter version (`version` label of `build_info`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision baked in at build time via `MFE_GIT_REVISION`, else `unknown`.
pub const REVISION: &str = match option_env!("MFE_GIT_REVISION") {
    Some(revision) => revision,
    None => "unknown",
};

/// Builds the registry served on `/metrics` in the full profile (see [`profiled_registry`]).
#[must_use]
pub fn registry(store: Arc<Store>, exporter: &ExporterMetrics) -> Registry {
    profiled_registry(store, exporter, Profile::Full)
}

/// Builds the registry served on `/metrics`, at startup and at every reload: the exporter's own metrics, the
/// active `profile`, plus the collectors that render `store` in that profile at every scrape. The homeserver
/// and notary series are the same in both profiles.
#[must_use]
pub fn profiled_registry(
    store: Arc<Store>,
    exporter: &ExporterMetrics,
    profile: Profile,
) -> Registry {
    let mut registry = Registry::default();
    exporter.register(&mut registry);
    add(
        &mut registry,
        &METRICS_PROFILE,
        Info::new([("profile", profile.as_str())]),
    );
    registry.register_collector(Box::new(StoreCollector {
        store: store.clone(),
        profile,
    }));
    registry.register_collector(Box::new(HomeserversCollector {
        store: store.clone(),
    }));
    registry.register_collector(Box::new(notary::NotaryCollector { store }));
    registry
}

/// The exposition formats `/metrics` speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `OpenMetrics` 1.0 text (ends with `# EOF`).
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4.
    Text004,
}

impl Format {
    /// `OpenMetrics` when the `Accept` header lists `application/openmetrics-text` (with a non-zero `q`), else the
    /// 0.0.4 text format, which every scraper understands.
    #[must_use]
    pub fn from_accept(accept: Option<&str>) -> Self {
        let wants_openmetrics = accept.is_some_and(|accept| {
            accept.split(',').any(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next().unwrap_or_default();
                media.eq_ignore_ascii_case("application/openmetrics-text")
                    && !parts.any(|p| {
                        p.strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()) == Some(0.0)
                    })
            })
        });
        if wants_openmetrics {
            Self::OpenMetrics
        } else {
            Self::Text004
        }
    }

    #[must_use]
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Self::Text004 => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// Renders `registry` in `format`.
#[must_use]
pub fn encode(registry: &Registry, format: Format) -> String {
    let mut out = String::with_capacity(64 * 1024);
    // Invariant: writing to a String cannot fail, and neither the encoders nor our collector create errors of
    // their own (they only forward the writer's).
    encode_into(registry, format, &mut out).expect("encoding metrics into a String cannot fail");
    out
}

/// Renders `registry` in `format` into `out` as it goes (`/metrics` streams it in chunks, so the whole text
/// never sits in memory). Fails only when `out` does.
pub fn encode_into(registry: &Registry, format: Format, out: &mut impl fmt::Write) -> fmt::Result {
    match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(out, registry),
        Format::Text004 => prometheus_client::encoding::prometheus_text::encode(out, registry),
    }
}

/// Renders the per-server families of `reports` alone, in `format`, in the full profile (see
/// [`encode_reports_profiled`]).
#[must_use]
pub fn encode_reports_only(reports: &[Arc<ServerReport>], format: Format) -> String {
    encode_reports_profiled(reports, format, Profile::Full)
}

/// Renders the per-server families of `reports` alone, in `format` and `profile`: no exporter metrics, no store
/// (`/probe`).
#[must_use]
pub fn encode_reports_profiled(
    reports: &[Arc<ServerReport>],
    format: Format,
    profile: Profile,
) -> String {
    let mut registry = Registry::default();
    let none = Arc::new(Labels::new());
    registry.register_collector(Box::new(ReportsCollector {
        reports: reports.iter().map(|r| (r.clone(), none.clone())).collect(),
        profile,
    }));
    encode(&registry, format)
}

/// The exporter's own metrics. Cloning shares the underlying values.
#[derive(Clone, Debug, Default)]
pub struct ExporterMetrics {
    probes: ProbeCounters,
    reload_successful: Gauge<f64, AtomicU64>,
    reload_success_timestamp: Gauge<f64, AtomicU64>,
    probe_interval: Gauge<f64, AtomicU64>,
    probes_in_flight: Gauge,
    servers: Gauge,
    scrape_duration: Gauge<f64, AtomicU64>,
}

impl ExporterMetrics {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one finished server probe.
    pub fn record_probe(&self, success: bool) {
        let counter = if success {
            &self.probes.success
        } else {
            &self.probes.failure
        };
        counter.inc();
    }

    /// Records a configuration load (startup or reload) that finished at `at`.
    pub fn config_loaded(&self, ok: bool, at: SystemTime) {
        self.reload_successful.set(if ok { 1.0 } else { 0.0 });
        if ok {
            self.reload_success_timestamp.set(unix_seconds(at));
        }
    }

    /// Records the probe interval in force.
    pub fn set_probe_interval(&self, interval: std::time::Duration) {
        self.probe_interval.set(interval.as_secs_f64());
    }

    /// Counts one probe as in flight until the returned guard is dropped (also when the probe is cancelled).
    #[must_use = "the probe counts as in flight only while the guard lives"]
    pub fn probe_started(&self) -> ProbeInFlight {
        self.probes_in_flight.inc();
        ProbeInFlight(self.probes_in_flight.clone())
    }

    /// Records how many servers are probed on the schedule (at start and at every reload).
    pub fn set_servers(&self, count: usize) {
        self.servers.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Records how long rendering a `/metrics` answer took (shown by the next scrape).
    pub fn set_scrape_duration(&self, took: Duration) {
        self.scrape_duration.set(took.as_secs_f64());
    }

    /// Registers these metrics (and `build_info`) with `registry`.
    pub fn register(&self, registry: &mut Registry) {
        add(
            registry,
            &BUILD_INFO,
            Info::new([("version", VERSION), ("revision", REVISION)]),
        );
        add(registry, &PROBES_TOTAL, self.probes.clone());
        add(
            registry,
            &CONFIG_RELOAD_SUCCESSFUL,
            self.reload_successful.clone(),
        );
        add(
            registry,
            &CONFIG_RELOAD_SUCCESS_TIMESTAMP,
            self.reload_success_timestamp.clone(),
        );
        add(registry, &PROBE_INTERVAL, self.probe_interval.clone());
        add(registry, &PROBES_IN_FLIGHT, self.probes_in_flight.clone());
        add(registry, &SERVERS, self.servers.clone());
        add(registry, &SCRAPE_DURATION, self.scrape_duration.clone());
    }
}

/// Registers `metric` under its descriptor's name and help.
fn add(registry: &mut Registry, desc: &Desc, metric: impl prometheus_client::registry::Metric) {
    registry.register(family_name(desc), registry_help(desc), metric);
}

/// One probe in flight ([`ExporterMetrics::probe_started`]); dropping it ends the count.
#[derive(Debug)]
pub struct ProbeInFlight(Gauge);

impl Drop for ProbeInFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `probes_total{result}`: both rows exist from the start (so `rate()` sees the first failure) and render in a
/// fixed order (a `Family` would render in hash order).
#[derive(Clone, Debug, Default)]
struct ProbeCounters {
    success: Counter,
    failure: Counter,
}

impl EncodeMetric for ProbeCounters {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        for (result, counter) in [("success", &self.success), ("failure", &self.failure)] {
            counter.encode(encoder.encode_family(&[("result", result)])?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH).map_or_else(
        |before| -before.duration().as_secs_f64(),
        |after| after.as_secs_f64(),
    )
}

/// The name to register: the encoder itself appends `_info` to info and `_total` to counter families.
fn family_name(desc: &Desc) -> &'static str {
    let suffix = match desc.kind {
        MetricType::Info => "_info",
        MetricType::Counter => "_total",
        _ => return desc.name,
    };
    desc.name.strip_suffix(suffix).unwrap_or(desc.name)
}

/// The registry appends a full stop to help texts registered with it; collectors write theirs verbatim.
fn registry_help(desc: &Desc) -> &'static str {
    desc.help.strip_suffix('.').unwrap_or(desc.help)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_negotiation() {
        let prometheus = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,\
                          application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.1";
        assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(
            Format::from_accept(Some("Application/OpenMetrics-Text")),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::from_accept(Some("text/plain;version=0.0.4")),
            Format::Text004
        );
        assert_eq!(
            Format::from_accept(Some("application/openmetrics-text;q=0")),
            Format::Text004
        );
        assert_eq!(Format::from_accept(Some("*/*")), Format::Text004);
        assert_eq!(Format::from_accept(None), Format::Text004);
    }

    #[test]
    fn names_are_unique_prefixed_and_strip_to_family_names() {
        let mut names: Vec<_> = RENDERED.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RENDERED.len());
        for d in RENDERED {
            assert!(d.name.starts_with("matrix_federation_"), "{}", d.name);
            assert!(d.help.ends_with('.'), "{}", d.name);
            assert!(!d.help.contains(['"', '\\', '\n']), "{}", d.name);
        }
        assert_eq!(
            family_name(&PROBES_TOTAL),
            "matrix_federation_exporter_probes"
        );
        assert_eq!(family_name(&CERT_INFO), "matrix_federation_cert");
        assert_eq!(
            family_name(&PROBE_SUCCESS),
            "matrix_federation_probe_success"
        );
    }

    #[test]
    fn exporter_metrics_render() {
        let exporter = ExporterMetrics::new();
        exporter.record_probe(true);
        exporter.record_probe(false);
        exporter.record_probe(false);
        exporter.config_loaded(true, UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        exporter.config_loaded(false, UNIX_EPOCH + Duration::from_secs(1_700_000_100));
        let text = encode(
            &registry(Arc::new(Store::new()), &exporter),
            Format::Text004,
        );
        assert!(
            text.contains("matrix_federation_exporter_probes_total{result=\"success\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("matrix_federation_exporter_probes_total{result=\"failure\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("matrix_federation_exporter_config_last_reload_successful 0.0\n"),
            "{text}"
        );
        assert!(
            text.contains("matrix_federation_exporter_config_last_reload_success_timestamp_seconds 1700000000.0\n"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "matrix_federation_exporter_build_info{{version=\"{VERSION}\""
            )),
            "{text}"
        );
        // An empty store renders no per-server families at all.
        assert!(!text.contains("matrix_federation_probe_success"), "{text}");
    }

    #[test]
    fn in_flight_guard_servers_and_scrape_duration() {
        let exporter = ExporterMetrics::new();
        let render = || {
            encode(
                &registry(Arc::new(Store::new()), &exporter),
                Format::Text004,
            )
        };
        let first = exporter.probe_started();
        let second = exporter.probe_started();
        exporter.set_servers(3);
        exporter.set_scrape_duration(Duration::from_millis(250));
        let text = render();
        assert!(
            text.contains("matrix_federation_exporter_probes_in_flight 2\n"),
            "{text}"
        );
        assert!(
            text.contains("matrix_federation_exporter_servers 3\n"),
            "{text}"
        );
        assert!(
            text.contains("matrix_federation_exporter_scrape_duration_seconds 0.25\n"),
            "{text}"
        );
        drop((first, second));
        assert!(render().contains("matrix_federation_exporter_probes_in_flight 0\n"));
    }

    #[test]
    fn reports_only_renders_no_exporter_metrics() {
        let now = SystemTime::now();
        let report = Arc::new(ServerReport::timed_out(
            "a.test",
            now,
            Duration::from_secs(2),
        ));
        let text = encode_reports_only(&[report], Format::OpenMetrics);
        assert!(
            text.contains("matrix_federation_probe_success{server_name=\"a.test\"} 0.0\n"),
            "{text}"
        );
        assert!(text.contains("reason=\"timeout\""), "{text}");
        assert!(!text.contains("matrix_federation_exporter_"), "{text}");
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(encode_reports_only(&[], Format::Text004), "");
    }
}
