//! The scrape-time side of the metric contract: collectors that turn the latest reports into every per-server,
//! per-address, certificate, key, failure and warning series, one family at a time. Names and help texts come
//! from the family constants in `render/metrics/mod.rs`; nothing here does I/O.
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, LabelSetEncoder,
};

use super::aggregates::{
    encode_aggregates, encode_observer_address_rows, keys_checked, observer_keeps_change,
};
use super::family::{
    AddressHeads, CertLabels, FamilyWriter, Row, ServerLabels, Shown, flag, leaf, server,
};
use super::{
    ADDRESS_INFO, ADDRESS_SUCCESS, ADDRESSES, CERT_CHAIN_NOT_AFTER, CERT_INFO, CERT_NOT_AFTER,
    CERT_NOT_BEFORE, CERT_VALID, CLIENT_DISCOVERY_INFO, CLIENT_SUCCESS, CLIENT_VERSIONS_INFO,
    CONNECTION_DURATION, DISCOVERY_INFO, FAILURE_INFO, KEYS_VALID, KEYS_VALID_UNTIL,
    LOCAL_CERT_NOT_AFTER, PROBE_DURATION, PROBE_SUCCESS, PROBE_TIMESTAMP, RESOLUTION_DURATION,
    SERVER_VERSION_INFO, SHADOWED_SRV_INFO, SIGNING_KEY_CHANGE, SIGNING_KEY_INFO, SUPPORT_CONTACTS,
    SUPPORT_INFO, TLS_INFO, WARNING_INFO, WELL_KNOWN_ADDRESS_INFO, WELL_KNOWN_CACHE_TTL,
    WELL_KNOWN_CONSISTENT, unix_seconds,
};
use crate::config::Profile;
use crate::report::Labels;
use crate::report::{
    AddressClass, CertReport, ClientReport, ContactRole, Family, Reason, ServerReport, Stage,
    SupportReport, SupportResult, Warning,
};
use crate::schedule::store::Store;

/// Renders the latest report of every server in the store at scrape time.
#[derive(Debug)]
pub struct StoreCollector {
    pub store: Arc<Store>,
    /// Which series to render (`metrics.profile`).
    pub profile: Profile,
}

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        encode_reports(&mut encoder, &self.store.snapshot_labeled(), self.profile)
    }
}

/// Renders a fixed list of reports (one `/probe` answer).
#[derive(Debug)]
pub(super) struct ReportsCollector {
    pub(super) reports: Vec<Row>,
    pub(super) profile: Profile,
}

impl Collector for ReportsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        encode_reports(&mut encoder, &self.reports, self.profile)
    }
}

/// Each family is one pass over the reports, so that all its samples are contiguous (`OpenMetrics` requires it).
/// The observer profile skips the detail families (`full` false) and keeps of some only the rows that show a
/// fault (METRICS.md, "Profiles").
fn encode_reports(enc: &mut DescriptorEncoder, reports: &[Row], profile: Profile) -> fmt::Result {
    let full = profile == Profile::Full;
    let mut fam = FamilyWriter::new(enc, &PROBE_SUCCESS);
    for (r, extra) in reports {
        fam.gauge(&server(r, extra), flag(r.success()))?;
    }
    let mut fam = FamilyWriter::new(enc, &PROBE_DURATION);
    for (r, extra) in reports.iter().filter(|_| full) {
        fam.gauge(&server(r, extra), r.duration.as_secs_f64())?;
    }
    let mut fam = FamilyWriter::new(enc, &PROBE_TIMESTAMP);
    for (r, extra) in reports {
        fam.gauge(&server(r, extra), unix_seconds(r.finished_at))?;
    }
    let mut fam = FamilyWriter::new(enc, &DISCOVERY_INFO);
    for (r, extra) in reports {
        let d = &r.discovery;
        fam.info(&(
            server(r, extra),
            [
                ("method", d.method.as_str()),
                ("well_known", d.well_known.outcome.as_str()),
                (
                    "delegated_server",
                    d.delegated_server.as_deref().unwrap_or(""),
                ),
                ("tls_name", d.tls_name.as_str()),
                ("host_header", d.host_header.as_str()),
            ],
        ))?;
    }
    let mut fam = FamilyWriter::new(enc, &WELL_KNOWN_CACHE_TTL);
    for (r, extra) in reports.iter().filter(|_| full) {
        if let Some(ttl) = r.discovery.well_known.cache_ttl {
            fam.gauge(&server(r, extra), ttl.as_secs_f64())?;
        }
    }
    let mut fam = FamilyWriter::new(enc, &RESOLUTION_DURATION);
    for (r, extra) in reports.iter().filter(|_| full) {
        for (step, took) in r.discovery.steps.iter() {
            fam.gauge(
                &(server(r, extra), [("step", step.as_str())]),
                took.as_secs_f64(),
            )?;
        }
    }
    let mut fam = FamilyWriter::new(enc, &ADDRESSES);
    for (r, extra) in reports.iter().filter(|_| full) {
        let ok = r.addresses.iter().filter(|a| a.success()).count();
        let failed = r.addresses.len() - ok;
        fam.gauge(&(server(r, extra), [("result", "ok")]), ok as f64)?;
        fam.gauge(&(server(r, extra), [("result", "failed")]), failed as f64)?;
    }
    if full {
        encode_address_info(enc, reports)?;
    }
    encode_address_families(enc, reports, full)?;
    encode_failures(enc, reports)?;
    encode_warnings(enc, reports)?;
    encode_client(enc, reports, full)?;
    encode_well_known_addresses(enc, reports, full)?;
    encode_key_changes(enc, reports, full)?;
    encode_shadowed_and_support(enc, reports, full)?;
    if full {
        encode_local_certs(enc, reports)?;
    }
    encode_aggregates(enc, reports, full)
}

/// Client discovery: success, what the spec tells clients (outcome, result, base URL), and the latest version.
/// Observer: success and outcome only while client discovery fails, no version.
fn encode_client(enc: &mut DescriptorEncoder, reports: &[Row], full: bool) -> fmt::Result {
    fn failing(r: &ServerReport, full: bool) -> Option<&ClientReport> {
        r.client.as_ref().filter(|c| full || !c.success())
    }
    let mut fam = FamilyWriter::new(enc, &CLIENT_SUCCESS);
    for (r, extra) in reports {
        if let Some(c) = failing(r, full) {
            fam.gauge(&server(r, extra), flag(c.success()))?;
        }
    }
    let mut fam = FamilyWriter::new(enc, &CLIENT_DISCOVERY_INFO);
    for (r, extra) in reports {
        if let Some(c) = failing(r, full) {
            fam.info(&(
                server(r, extra),
                [
                    ("outcome", c.outcome.as_str()),
                    ("result", c.result.as_str()),
                    ("base_url", c.base_url.as_deref().unwrap_or("")),
                ],
            ))?;
        }
    }
    let mut fam = FamilyWriter::new(enc, &CLIENT_VERSIONS_INFO);
    for (r, extra) in reports.iter().filter(|_| full) {
        if let Some(latest) = r.client.as_ref().and_then(|c| c.latest.as_deref()) {
            fam.info(&(server(r, extra), [("latest", latest)]))?;
        }
    }
    Ok(())
}

/// `well_known_address_info` per address asked (observer: only while the answers differ), and
/// `well_known_consistent` when more than one was asked.
fn encode_well_known_addresses(
    enc: &mut DescriptorEncoder,
    reports: &[Row],
    full: bool,
) -> fmt::Result {
    let mut fam = FamilyWriter::new(enc, &WELL_KNOWN_ADDRESS_INFO);
    let shown = |r: &&Row| full || r.0.discovery.well_known.consistent() == Some(false);
    for (r, extra) in reports.iter().filter(shown) {
        for a in &r.discovery.well_known.per_address {
            let labels = AddressLabels {
                server_name: &r.server_name,
                extra,
                address: a.address,
                family: Family::of(a.address.ip()).as_str(),
            };
            fam.info(&(
                labels,
                [
                    ("well_known", a.outcome.as_str()),
                    ("m_server", a.m_server.as_deref().unwrap_or("")),
                ],
            ))?;
        }
    }
    let mut fam = FamilyWriter::new(enc, &WELL_KNOWN_CONSISTENT);
    for (r, extra) in reports {
        if let Some(consistent) = r.discovery.well_known.consistent() {
            fam.gauge(&server(r, extra), flag(consistent))?;
        }
    }
    Ok(())
}

/// `signing_key_change_timestamp_seconds{key_id, change}`: every change row of the store's key history (empty
/// in `/probe` answers, whose reports have no history). Observer: only the rows the key-continuity alerts fire on.
fn encode_key_changes(enc: &mut DescriptorEncoder, reports: &[Row], full: bool) -> fmt::Result {
    let mut fam = FamilyWriter::new(enc, &SIGNING_KEY_CHANGE);
    for (r, extra) in reports {
        for c in r.key_history.changes() {
            if !full && !observer_keeps_change(r, c) {
                continue;
            }
            #[allow(
                clippy::cast_precision_loss,
                reason = "Unix seconds fit in f64's 53 bits"
            )]
            let at = c.at as f64;
            fam.gauge(
                &(
                    server(r, extra),
                    [("key_id", c.key_id.as_str()), ("change", c.change.as_str())],
                ),
                at,
            )?;
        }
    }
    Ok(())
}

/// The shadowed SRV records, and the support well-known's result and contact counts (never the contacts).
/// Observer: the records that point elsewhere (the warning's), the result only when it is a warning's.
fn encode_shadowed_and_support(
    enc: &mut DescriptorEncoder,
    reports: &[Row],
    full: bool,
) -> fmt::Result {
    let mut fam = FamilyWriter::new(enc, &SHADOWED_SRV_INFO);
    for (r, extra) in reports {
        let records = r.discovery.shadowed_srv.iter().flat_map(|s| &s.records);
        for s in records.filter(|s| full || s.elsewhere) {
            fam.info(&(
                server(r, extra),
                [
                    ("srv_record", s.record.as_str()),
                    ("srv_target", s.target.as_str()),
                ],
            ))?;
        }
    }
    let mut fam = FamilyWriter::new(enc, &SUPPORT_INFO);
    let invalid = |s: &&SupportReport| {
        matches!(
            s.result,
            SupportResult::Invalid | SupportResult::InvalidJson | SupportResult::TooLarge
        )
    };
    for (r, extra) in reports {
        if let Some(s) = r.support.as_ref().filter(|s| full || invalid(s)) {
            fam.info(&(server(r, extra), [("result", s.result.as_str())]))?;
        }
    }
    let mut fam = FamilyWriter::new(enc, &SUPPORT_CONTACTS);
    for (r, extra) in reports.iter().filter(|_| full) {
        for s in r.support.iter().filter(|s| s.result == SupportResult::Ok) {
            for &role in ContactRole::ALL {
                fam.gauge(
                    &(server(r, extra), [("contact_role", role.as_str())]),
                    f64::from(s.count(role)),
                )?;
            }
        }
    }
    Ok(())
}

/// `local_cert_not_after_timestamp_seconds{cert_file}`: the leaf of every readable `local_certificates` file.
fn encode_local_certs(enc: &mut DescriptorEncoder, reports: &[Row]) -> fmt::Result {
    let mut fam = FamilyWriter::new(enc, &LOCAL_CERT_NOT_AFTER);
    for (r, extra) in reports {
        for file in &r.local_certs.files {
            if let Ok(leaf) = &file.leaf {
                fam.gauge(
                    &(server(r, extra), [("cert_file", &*file.cert_file)]),
                    leaf.not_after as f64,
                )?;
            }
        }
    }
    Ok(())
}

/// `address_info{class}`: every probed address, then every address the public-federation view refused.
fn encode_address_info(enc: &mut DescriptorEncoder, reports: &[Row]) -> fmt::Result {
    let mut fam = FamilyWriter::new(enc, &ADDRESS_INFO);
    for (r, extra) in reports {
        let probed = r.addresses.iter().map(|a| a.address);
        let refused = r.discovery.refused.iter().map(|a| a.address);
        for address in probed.chain(refused) {
            let labels = AddressLabels {
                server_name: &r.server_name,
                extra,
                address,
                family: Family::of(address.ip()).as_str(),
            };
            fam.info(&(labels, [("class", AddressClass::of(address.ip()).as_str())]))?;
        }
    }
    Ok(())
}

fn encode_warnings(enc: &mut DescriptorEncoder, reports: &[Row]) -> fmt::Result {
    let mut fam = FamilyWriter::new(enc, &WARNING_INFO);
    let mut seen: Vec<(Option<SocketAddr>, Warning)> = Vec::new();
    for (r, extra) in reports {
        seen.clear();
        for (warning, address) in r.warning_labels() {
            if seen.contains(&(address, warning)) {
                continue;
            }
            seen.push((address, warning));
            fam.info(&(
                server(r, extra),
                [
                    ("address", address.map_or(Shown::Str(""), Shown::Addr)),
                    ("warning", Shown::Str(warning.as_str())),
                ],
            ))?;
        }
    }
    Ok(())
}

/// Observer: `address_success`, `cert_info` of a rejected certificate, `keys_valid` while 0, and
/// `signing_key_info` while the addresses disagree.
fn encode_address_families(
    enc: &mut DescriptorEncoder,
    reports: &[Row],
    full: bool,
) -> fmt::Result {
    let heads = AddressHeads::of(reports);
    let mut fam = FamilyWriter::new(enc, &ADDRESS_SUCCESS);
    for (labels, _, a) in heads.iter() {
        fam.gauge(&labels, flag(a.success()))?;
    }
    if !full {
        return encode_observer_address_rows(enc, &heads);
    }
    let mut fam = FamilyWriter::new(enc, &CONNECTION_DURATION);
    for (labels, _, a) in heads.iter() {
        for (phase, took) in a.phases.iter() {
            fam.gauge(&(labels, [("phase", phase.as_str())]), took.as_secs_f64())?;
        }
    }
    let mut fam = FamilyWriter::new(enc, &CERT_VALID);
    for (labels, _, a) in heads.iter() {
        if let Some(cert) = &a.certificate {
            fam.gauge(&labels, flag(cert.valid()))?;
        }
    }
    let mut fam = FamilyWriter::new(enc, &CERT_NOT_AFTER);
    for (labels, _, a) in heads.iter() {
        if let Some(leaf) = leaf(a) {
            fam.gauge(&labels, leaf.not_after as f64)?;
        }
    }
    let mut fam = FamilyWriter::new(enc, &CERT_NOT_BEFORE);
    for (labels, _, a) in heads.iter() {
        if let Some(leaf) = leaf(a) {
            fam.gauge(&labels, leaf.not_before as f64)?;
        }
    }
    let mut fam = FamilyWriter::new(enc, &CERT_CHAIN_NOT_AFTER);
    for (labels, _, a) in heads.iter() {
        if let Some(not_after) = a.certificate.as_ref().and_then(CertReport::chain_not_after) {
            fam.gauge(&labels, not_after as f64)?;
        }
    }
    let mut fam = FamilyWriter::new(enc, &CERT_INFO);
    for (labels, _, a) in heads.iter() {
        if let Some(leaf) = leaf(a) {
            fam.info(&(labels, CertLabels(leaf)))?;
        }
    }
    let mut fam = FamilyWriter::new(enc, &TLS_INFO);
    for (labels, _, a) in heads.iter() {
        if let Some(tls) = &a.tls {
            fam.info(&(labels, [("version", tls.version), ("cipher", tls.cipher)]))?;
        }
    }
    let mut fam = FamilyWriter::new(enc, &KEYS_VALID);
    for (labels, _, a) in heads.iter() {
        if let Some(ok) = keys_checked(a) {
            fam.gauge(&labels, flag(ok))?;
        }
    }
    let mut fam = FamilyWriter::new(enc, &KEYS_VALID_UNTIL);
    for (labels, _, a) in heads.iter() {
        if let Some(ms) = a.keys.as_ref().and_then(|k| k.valid_until_ts) {
            fam.gauge(&labels, ms as f64 / 1000.0)?;
        }
    }
    let mut fam = FamilyWriter::new(enc, &SIGNING_KEY_INFO);
    for (labels, _, a) in heads.iter() {
        for key in a.keys.iter().flat_map(|k| &k.verify_keys) {
            fam.info(&(
                labels,
                [("key_id", key.key_id.as_str()), ("key", key.key.as_str())],
            ))?;
        }
    }
    let mut fam = FamilyWriter::new(enc, &SERVER_VERSION_INFO);
    for (labels, _, a) in heads.iter() {
        if let Some(v) = &a.version {
            fam.info(&(
                labels,
                [
                    ("name", v.name.as_deref().unwrap_or("")),
                    ("version", v.version.as_deref().unwrap_or("")),
                ],
            ))?;
        }
    }
    Ok(())
}

fn encode_failures(enc: &mut DescriptorEncoder, reports: &[Row]) -> fmt::Result {
    let mut fam = FamilyWriter::new(enc, &FAILURE_INFO);
    // Reused across servers: one allocation per scrape, not one per server.
    let mut seen: Vec<(Option<SocketAddr>, Stage, Reason)> = Vec::new();
    for (r, extra) in reports {
        seen.clear();
        let client = r.client_failures().map(|f| (None, f));
        for (address, failure) in r.all_failures().chain(client) {
            let key = (address, failure.stage, failure.reason);
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            fam.info(&(
                server(r, extra),
                [
                    ("address", address.map_or(Shown::Str(""), Shown::Addr)),
                    ("stage", Shown::Str(failure.stage.as_str())),
                    ("reason", Shown::Str(failure.reason.as_str())),
                ],
            ))?;
        }
    }
    Ok(())
}

/// `server_name`, `address` (`ip:port`, IPv6 in brackets) and `family`, written without allocating.
#[derive(Clone, Copy)]
struct AddressLabels<'a> {
    server_name: &'a str,
    extra: &'a Labels,
    address: SocketAddr,
    family: &'static str,
}

impl EncodeLabelSet for AddressLabels<'_> {
    fn encode(&self, enc: &mut LabelSetEncoder) -> fmt::Result {
        ServerLabels {
            server_name: self.server_name,
            extra: self.extra,
        }
        .encode(enc)?;
        ("address", Shown::Addr(self.address)).encode(enc.encode_label())?;
        ("family", self.family).encode(enc.encode_label())
    }
}
