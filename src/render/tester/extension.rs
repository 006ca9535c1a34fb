//! Our extension of the tester's report: the facts its schema cannot express (every address, the discovery path,
//! refused addresses, warnings, failures by stage and reason, certificates, keys, timings), under the one extra
//! top-level key [`EXTENSION_KEY`](super::EXTENSION_KEY), in `snake_case` and in the words of our metric labels.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::unix_seconds;
use crate::render::explain;
use crate::report::{
    AddressReport, ContactRole, Hops, ServerReport, ShadowedSrvReport, SupportReport,
};

// ---- our extension (snake_case, the words of our metric labels) ----

#[derive(Serialize)]
pub(super) struct Extension {
    server_name: String,
    /// Unix seconds.
    started_at: f64,
    finished_at: f64,
    duration_seconds: f64,
    method: &'static str,
    well_known: ExtWellKnown,
    tls_name: String,
    host_header: String,
    /// More targets or addresses were found than a probe follows.
    truncated: bool,
    /// Seconds per discovery step (`well_known`, `srv`, `address_lookup`).
    steps: BTreeMap<&'static str, f64>,
    /// Every current failure; `address` is "" for server-level ones (as the `failure_info` metric).
    failures: Vec<ExtFailure>,
    /// Every current warning (as the `warning_info` metric); warnings never clear `FederationOK`.
    warnings: Vec<ExtWarning>,
    addresses: Vec<ExtAddress>,
    /// Addresses left unprobed because default-configured peers refuse them (public-federation view).
    refused_addresses: Vec<ExtRefused>,
    /// The server's last state changes, newest first (scheduled servers only; absent otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    history: Vec<crate::render::history::JsonChange>,
    /// The server name's own SRV records a delegating well-known shadows (absent when not looked up).
    #[serde(skip_serializing_if = "Option::is_none")]
    shadowed_srv: Option<ExtShadowed>,
    /// `/.well-known/matrix/support` (absent with `probe.checks.support: false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    support: Option<ExtSupport>,
    /// Client discovery (`/.well-known/matrix/client`, then `/_matrix/client/versions`); `null` when
    /// `probe.checks.client` is off. Its failure (stage `client`) is in its own `failures`, not in the list
    /// above: it never clears `FederationOK`.
    client: Option<ExtClient>,
    /// The changes of the server's verify keys in the last 7 days, newest first (as the
    /// `signing_key_change_timestamp_seconds` metric; scheduled servers only, absent otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    key_changes: Vec<ExtKeyChange>,
    /// The `local_certificates` files and the addresses that still serve an older certificate.
    local_certificates: ExtLocalCerts,
    /// The configured homeservers whose admin API lists this server as a destination: what Synapse says, and
    /// the verdict joined with this report (absent when none lists it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    homeservers: Vec<ExtHomeserver>,
    /// What each configured notary serves for the server (`notaries:`; absent when none is configured).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) notaries: Vec<ExtNotary>,
}

#[derive(Serialize)]
struct ExtShadowed {
    records: Vec<ExtShadowedRecord>,
    duration_seconds: f64,
    errors: Vec<String>,
}

#[derive(Serialize)]
struct ExtShadowedRecord {
    srv_record: &'static str,
    srv_target: String,
    priority: u16,
    weight: u16,
    /// Not one of the `host:port` pairs the delegation leads to (the `srv_shadowed_elsewhere` warning).
    elsewhere: bool,
}

#[derive(Serialize)]
struct ExtSupport {
    result: &'static str,
    /// Contacts per role (`m.role.admin`, `m.role.security`, `other`), as the `support_contacts` metric.
    contact_counts: BTreeMap<&'static str, u32>,
    contacts: Vec<ExtContact>,
    support_page: Option<String>,
    hops: Vec<ExtHop>,
    error: Option<String>,
    duration_seconds: f64,
}

#[derive(Serialize)]
struct ExtContact {
    role: String,
    email_address: Option<String>,
    matrix_id: Option<String>,
}

fn ext_shadowed(s: &ShadowedSrvReport) -> ExtShadowed {
    ExtShadowed {
        records: s
            .records
            .iter()
            .map(|r| ExtShadowedRecord {
                srv_record: r.record.as_str(),
                srv_target: r.target.to_string(),
                priority: r.priority,
                weight: r.weight,
                elsewhere: r.elsewhere,
            })
            .collect(),
        duration_seconds: s.duration.as_secs_f64(),
        errors: s.errors.clone(),
    }
}

fn ext_support(s: &SupportReport) -> ExtSupport {
    ExtSupport {
        result: s.result.as_str(),
        contact_counts: ContactRole::ALL
            .iter()
            .map(|r| (r.as_str(), s.count(*r)))
            .collect(),
        contacts: s
            .contacts
            .iter()
            .map(|c| ExtContact {
                role: c.role.clone(),
                email_address: c.email_address.clone(),
                matrix_id: c.matrix_id.clone(),
            })
            .collect(),
        support_page: s.support_page.as_deref().map(str::to_owned),
        hops: ext_hops(&s.hops),
        error: s.error_text().map(str::to_owned),
        duration_seconds: s.duration.get().as_secs_f64(),
    }
}

#[derive(Serialize)]
struct ExtClient {
    /// 1 in `matrix_federation_client_success`: a client that follows the spec ends with a working homeserver.
    success: bool,
    /// `success`, `ignore`, `fail_prompt`, `fail_error` (the spec's words).
    outcome: &'static str,
    /// Which step decided and why (the `result` label of `client_discovery_info`).
    result: &'static str,
    base_url: Option<String>,
    identity_server: Option<String>,
    hops: Vec<ExtHop>,
    /// `Access-Control-Allow-Origin: *` on the well-known's 200 answer; `null` without one.
    cors: Option<bool>,
    /// How many versions `/_matrix/client/versions` advertised.
    versions: usize,
    latest: Option<String>,
    /// Seconds the well-known fetch and the versions request took.
    well_known_seconds: f64,
    versions_seconds: Option<f64>,
    error: Option<String>,
    /// As `failure_info{stage="client"}`: empty when `success`.
    failures: Vec<ExtFailure>,
}

fn ext_client(c: &crate::report::ClientReport) -> ExtClient {
    ExtClient {
        success: c.success(),
        outcome: c.outcome.as_str(),
        result: c.result.as_str(),
        base_url: c.base_url.clone(),
        identity_server: c.identity_server.as_deref().map(str::to_owned),
        hops: ext_hops(&c.hops),
        cors: c.cors,
        versions: c.versions as usize,
        latest: c.latest.as_deref().map(str::to_owned),
        well_known_seconds: c.well_known_duration.get().as_secs_f64(),
        versions_seconds: c.versions_duration.map(|d| d.get().as_secs_f64()),
        error: c.error().map(str::to_owned),
        failures: c
            .failures
            .iter()
            .map(|f| ExtFailure {
                address: String::new(),
                stage: f.stage.as_str(),
                reason: f.reason.as_str(),
                message: f.message.clone(),
            })
            .collect(),
    }
}

#[derive(Serialize)]
struct ExtKeyChange {
    key_id: String,
    /// `added`, `retired`, `dropped` or `replaced`.
    change: &'static str,
    /// When the exporter saw it, Unix seconds.
    at: u64,
}

#[derive(Serialize)]
struct ExtLocalCerts {
    files: Vec<ExtLocalFile>,
    not_reloaded: Vec<ExtNotReloaded>,
}

#[derive(Serialize)]
struct ExtLocalFile {
    cert_file: String,
    /// The leaf's notAfter (Unix seconds), when the file could be read.
    not_after: Option<i64>,
    not_before: Option<i64>,
    fingerprint_sha256: Option<String>,
    /// Why the file is unusable (`local_cert_unreadable`).
    error: Option<String>,
    /// The file's modification time (Unix seconds).
    modified: Option<i64>,
}

#[derive(Serialize)]
struct ExtNotReloaded {
    address: String,
    name: String,
    /// True for the well-known's port 443.
    well_known: bool,
    cert_file: String,
    served_not_after: i64,
    served_fingerprint_sha256: String,
    file_not_after: i64,
    file_fingerprint_sha256: String,
    /// What to run, in words.
    fix: String,
}

fn ext_local_certs(r: &ServerReport) -> ExtLocalCerts {
    let lc = &r.local_certs;
    ExtLocalCerts {
        files: lc
            .files
            .iter()
            .map(|f| ExtLocalFile {
                cert_file: f.cert_file.to_string(),
                not_after: f.leaf.as_ref().ok().map(|l| l.not_after),
                not_before: f.leaf.as_ref().ok().map(|l| l.not_before),
                fingerprint_sha256: f
                    .leaf
                    .as_ref()
                    .ok()
                    .map(|l| l.fingerprint_sha256.to_string()),
                error: f.leaf.as_ref().err().cloned(),
                modified: f.modified,
            })
            .collect(),
        not_reloaded: lc
            .not_reloaded
            .iter()
            .map(|n| ExtNotReloaded {
                address: n.address.to_string(),
                name: n.name.to_string(),
                well_known: n.well_known,
                cert_file: n.cert_file.to_string(),
                served_not_after: n.served.not_after,
                served_fingerprint_sha256: n.served.fingerprint_sha256.to_string(),
                file_not_after: n.on_disk.not_after,
                file_fingerprint_sha256: n.on_disk.fingerprint_sha256.to_string(),
                fix: explain::not_reloaded_fix(n),
            })
            .collect(),
    }
}

#[derive(Serialize)]
struct ExtHomeserver {
    homeserver: String,
    /// Synapse's `failure_ts` (ms since the epoch): a run of failures began; `null` when not failing.
    failure_ts: Option<i64>,
    /// Synapse's current backoff, in seconds (0: not backing off).
    retry_interval_seconds: f64,
    /// Synapse's `retry_last_ts` (ms since the epoch; 0: it never had to retry).
    retry_last_ts: i64,
    /// `ok`, `them`, `us` or `unseen_fault`, as `matrix_federation_destination_verdict`.
    verdict: &'static str,
}

impl Extension {
    pub(super) fn set_homeservers(&mut self, r: &ServerReport, listed_by: &[super::ListedBy<'_>]) {
        self.homeservers = listed_by
            .iter()
            .map(|l| ExtHomeserver {
                homeserver: l.homeserver.to_owned(),
                failure_ts: l.destination.failure_ts,
                retry_interval_seconds: l.destination.retry_interval as f64 / 1000.0,
                retry_last_ts: l.destination.retry_last_ts,
                verdict: l.destination.verdict(r.success()).as_str(),
            })
            .collect();
    }
}

/// One notary's view of the server (as the `notary_*` metrics), with its words.
#[derive(Serialize)]
pub(super) struct ExtNotary {
    notary: String,
    /// `notary_up`.
    up: bool,
    /// `notary_result_info`'s `result`.
    result: &'static str,
    /// Unix seconds of the notary's copy's `valid_until_ts`.
    #[serde(skip_serializing_if = "Option::is_none")]
    valid_until: Option<f64>,
    /// `key id` → key, of the correctly signed objects the notary returned.
    keys: BTreeMap<String, String>,
    /// What differs or failed ("" for a match).
    message: String,
}

/// Every notary's view of `server_name`, in notary order.
pub(super) fn notaries(
    server_name: &str,
    notaries: &[std::sync::Arc<crate::report::notary::NotaryReport>],
) -> Vec<ExtNotary> {
    notaries
        .iter()
        .filter_map(|n| {
            let v = n.view(server_name)?;
            Some(ExtNotary {
                notary: n.notary.clone(),
                up: n.up,
                result: v.result.as_str(),
                #[expect(
                    clippy::cast_precision_loss,
                    reason = "milliseconds since 1970 fit a double's 53 bits for ages"
                )]
                valid_until: v.valid_until_ts.map(|ms| ms as f64 / 1000.0),
                keys: v.keys.iter().cloned().collect(),
                message: if v.message.is_empty() {
                    n.message.clone()
                } else {
                    v.message.clone()
                },
            })
        })
        .collect()
}

#[derive(Serialize)]
struct ExtWarning {
    address: String,
    warning: &'static str,
    message: String,
}

#[derive(Serialize)]
struct ExtRefused {
    address: String,
    family: &'static str,
    class: &'static str,
    target_host: String,
}

#[derive(Serialize)]
struct ExtWellKnown {
    outcome: &'static str,
    delegated_server: Option<String>,
    cache_ttl_seconds: Option<f64>,
    hops: Vec<ExtHop>,
    error: Option<String>,
    /// Whether every address gave the same answer; null when the step was skipped or one address was asked.
    consistent: Option<bool>,
    /// The answer of every address asked (SNI and `Host` the server name), in resolver order.
    per_address: Vec<ExtWellKnownAddress>,
}

#[derive(Serialize)]
struct ExtWellKnownAddress {
    address: String,
    family: &'static str,
    outcome: &'static str,
    m_server: Option<String>,
    error: Option<String>,
    followed: bool,
}

/// Each URL asked, with the status it answered (0: no answer).
fn ext_hops(hops: &Hops) -> Vec<ExtHop> {
    hops.iter()
        .map(|(url, status)| ExtHop {
            url: url.to_owned(),
            status,
        })
        .collect()
}

#[derive(Serialize)]
struct ExtHop {
    url: String,
    status: u16,
}

#[derive(Serialize)]
struct ExtFailure {
    address: String,
    stage: &'static str,
    reason: &'static str,
    message: String,
}

#[derive(Serialize)]
struct ExtAddress {
    address: String,
    family: &'static str,
    /// The range the address falls in (`public`, `loopback`, `private`, ...).
    class: &'static str,
    target_host: String,
    success: bool,
    /// Seconds per phase (`connect`, `tls_handshake`, `keys`, `version`).
    phases: BTreeMap<&'static str, f64>,
    tls: Option<ExtTls>,
    certificate: Option<ExtCert>,
    keys: Option<ExtKeys>,
    version: Option<ExtVersion>,
}

#[derive(Serialize)]
struct ExtTls {
    version: String,
    cipher: String,
}

#[derive(Serialize)]
struct ExtCert {
    valid: bool,
    /// The leaf's validity window, unix seconds.
    not_before: Option<i64>,
    not_after: Option<i64>,
    /// The earliest `notAfter` on the verified path when the chain verifies, else in the presented chain.
    chain_not_after: Option<i64>,
}

#[derive(Serialize)]
struct ExtKeys {
    server_name: String,
    /// Milliseconds since the epoch, as served.
    valid_until_ts: Option<i64>,
    warnings: Vec<String>,
    old_verify_keys: Vec<ExtOldKey>,
}

#[derive(Serialize)]
struct ExtOldKey {
    key_id: String,
    key: String,
    expired_ts: Option<i64>,
}

#[derive(Serialize)]
struct ExtVersion {
    name: Option<String>,
    version: Option<String>,
}

pub(super) fn extension(r: &ServerReport) -> Extension {
    let d = &r.discovery;
    let wk = &d.well_known;
    let mut steps = BTreeMap::new();
    for (step, took) in d.steps.iter() {
        *steps.entry(step.as_str()).or_insert(0.0) += took.as_secs_f64();
    }
    Extension {
        server_name: r.server_name.to_string(),
        started_at: unix_seconds(r.started_at),
        finished_at: unix_seconds(r.finished_at),
        duration_seconds: r.duration.as_secs_f64(),
        method: d.method.as_str(),
        well_known: ExtWellKnown {
            outcome: wk.outcome.as_str(),
            delegated_server: d.delegated_server.as_deref().map(str::to_owned),
            cache_ttl_seconds: wk.cache_ttl.as_ref().map(Duration::as_secs_f64),
            hops: ext_hops(&wk.hops),
            error: wk.error_text().map(std::borrow::Cow::into_owned),
            consistent: wk.consistent(),
            per_address: wk
                .per_address
                .iter()
                .map(|a| ExtWellKnownAddress {
                    address: a.address.to_string(),
                    family: crate::report::Family::of(a.address.ip()).as_str(),
                    outcome: a.outcome.as_str(),
                    m_server: a.m_server.as_deref().map(str::to_owned),
                    error: wk.address_error(a).map(std::borrow::Cow::into_owned),
                    followed: a.followed,
                })
                .collect(),
        },
        tls_name: d.tls_name.to_string(),
        host_header: d.host_header.to_string(),
        truncated: d.truncated,
        steps,
        failures: r
            .all_failures()
            .map(|(address, f)| ExtFailure {
                address: address.map(|a| a.to_string()).unwrap_or_default(),
                stage: f.stage.as_str(),
                reason: f.reason.as_str(),
                message: f.message.clone(),
            })
            .collect(),
        warnings: r
            .warnings()
            .into_iter()
            .map(|w| ExtWarning {
                address: w.address.map(|a| a.to_string()).unwrap_or_default(),
                warning: w.warning.as_str(),
                message: explain::warning_message(&w),
            })
            .collect(),
        addresses: r.addresses.iter().map(ext_address).collect(),
        refused_addresses: d
            .refused
            .iter()
            .map(|a| ExtRefused {
                address: a.address.to_string(),
                family: a.family().as_str(),
                class: a.class().as_str(),
                target_host: a.target_host.to_string(),
            })
            .collect(),
        history: crate::render::history::json(&r.history),
        shadowed_srv: d.shadowed_srv.as_deref().map(ext_shadowed),
        support: r.support.as_ref().map(ext_support),
        client: r.client.as_ref().map(ext_client),
        key_changes: r
            .key_history
            .changes()
            .iter()
            .rev()
            .map(|c| ExtKeyChange {
                key_id: c.key_id.to_string(),
                change: c.change.as_str(),
                at: c.at,
            })
            .collect(),
        local_certificates: ext_local_certs(r),
        homeservers: Vec::new(),
        notaries: Vec::new(),
    }
}

fn ext_address(a: &AddressReport) -> ExtAddress {
    let mut phases = BTreeMap::new();
    for (phase, took) in a.phases.iter() {
        *phases.entry(phase.as_str()).or_insert(0.0) += took.as_secs_f64();
    }
    ExtAddress {
        address: a.address.to_string(),
        family: a.family().as_str(),
        class: a.class().as_str(),
        target_host: a.target_host.to_string(),
        success: a.success(),
        phases,
        tls: a.tls.as_ref().map(|t| ExtTls {
            version: t.version.to_string(),
            cipher: t.cipher.to_string(),
        }),
        certificate: a.certificate.as_ref().map(|c| ExtCert {
            valid: c.valid(),
            not_before: c.chain.first().map(|l| l.not_before),
            not_after: c.chain.first().map(|l| l.not_after),
            chain_not_after: c.chain_not_after(),
        }),
        keys: a.keys.as_ref().map(|k| ExtKeys {
            server_name: k.server_name.to_string(),
            valid_until_ts: k.valid_until_ts,
            warnings: k.warnings.clone(),
            old_verify_keys: k
                .old_verify_keys
                .iter()
                .map(|o| ExtOldKey {
                    key_id: o.key_id.clone(),
                    key: o.key.clone(),
                    expired_ts: o.expired_ts,
                })
                .collect(),
        }),
        version: a.version.as_ref().map(|v| ExtVersion {
            name: v.name.clone(),
            version: v.version.clone(),
        }),
    }
}
