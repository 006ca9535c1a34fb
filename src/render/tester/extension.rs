//! Our extension of the tester's report: the facts its schema cannot express (every address, the discovery path,
//! refused addresses, warnings, failures by stage and reason, certificates, keys, timings), under the one extra
//! top-level key [`EXTENSION_KEY`](super::EXTENSION_KEY), in `snake_case` and in the words of our metric labels.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::unix_seconds;
use crate::render::explain;
use crate::report::{AddressReport, ServerReport};

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
    /// What each configured notary serves for the server (`notaries:`; absent when none is configured).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) notaries: Vec<ExtNotary>,
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
    /// The earliest `notAfter` in the presented chain.
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
    for (step, took) in &d.steps {
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
            delegated_server: d.delegated_server.clone(),
            cache_ttl_seconds: wk.cache_ttl.as_ref().map(Duration::as_secs_f64),
            hops: wk
                .hops
                .iter()
                .map(|(url, status)| ExtHop {
                    url: url.clone(),
                    status: *status,
                })
                .collect(),
            error: wk.error.clone(),
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
        notaries: Vec::new(),
    }
}

fn ext_address(a: &AddressReport) -> ExtAddress {
    let mut phases = BTreeMap::new();
    for (phase, took) in &a.phases {
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
            server_name: k.server_name.clone(),
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
