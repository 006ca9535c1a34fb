//! The per-server aggregates, rendered in both profiles, and the facts the observer profile filters the detail
//! families by (METRICS.md, "Profiles"). An aggregate folds what every address of a server showed into one
//! series per server, so rules and dashboards that read it work the same whichever profile an exporter runs;
//! the observer profile keeps the aggregates and drops the per-address rows they fold.
//!
//! Nothing here does I/O or keeps state: every value is computed from the `ServerReport` at scrape time.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::family::{AddressHeads, CertLabels, FamilyWriter, Row, flag, leaf, server};
use super::{
    CERT_CHAIN_EARLIEST_NOT_AFTER, CERT_EARLIEST_NOT_AFTER, CERT_INFO, KEYS_VALID, KEYS_VALID_ALL,
    KEYS_VALID_UNTIL_EARLIEST, SIGNING_KEY_INFO,
};
use crate::report::key_history::KeyChange;
use crate::report::{AddressReport, CertReport, KeyChangeKind, ServerReport, Stage, VerifyKey};

/// The aggregate families, one series each per server that has a value for it. The leaf's earliest expiry is
/// full-profile only: the chain's (never later, since the chain holds the leaf) is the one rules and the
/// overview read, and a healthy server of the observer profile stays at 7 series (20,000 single-address servers
/// within 160,000 series with the exporter's own).
pub(super) fn encode_aggregates(
    enc: &mut DescriptorEncoder,
    reports: &[Row],
    full: bool,
) -> fmt::Result {
    let mut fam = FamilyWriter::new(enc, &CERT_EARLIEST_NOT_AFTER);
    for (r, extra) in reports.iter().filter(|_| full) {
        let leaf = |a: &AddressReport| {
            let cert = a.certificate.as_ref()?;
            cert.chain.first().map(|c| c.not_after)
        };
        if let Some(earliest) = r.addresses.iter().filter_map(leaf).min() {
            fam.gauge(&server(r, extra), earliest as f64)?;
        }
    }
    let mut fam = FamilyWriter::new(enc, &CERT_CHAIN_EARLIEST_NOT_AFTER);
    for (r, extra) in reports {
        let chain =
            |a: &AddressReport| a.certificate.as_ref().and_then(CertReport::chain_not_after);
        if let Some(earliest) = r.addresses.iter().filter_map(chain).min() {
            fam.gauge(&server(r, extra), earliest as f64)?;
        }
    }
    let mut fam = FamilyWriter::new(enc, &KEYS_VALID_ALL);
    for (r, extra) in reports {
        if let Some(ok) = keys_valid_all(r) {
            fam.gauge(&server(r, extra), flag(ok))?;
        }
    }
    let mut fam = FamilyWriter::new(enc, &KEYS_VALID_UNTIL_EARLIEST);
    for (r, extra) in reports {
        let until = |a: &AddressReport| a.keys.as_ref().and_then(|k| k.valid_until_ts);
        if let Some(ms) = r.addresses.iter().filter_map(until).min() {
            fam.gauge(&server(r, extra), ms as f64 / 1000.0)?;
        }
    }
    Ok(())
}

/// The per-address rows the observer profile keeps beside `address_success`, each only while it shows a fault:
/// `cert_info` of a rejected certificate (`MatrixFederationCertificateInvalid`'s description), `keys_valid` 0
/// (`MatrixFederationSigningKeysInvalid`), and `signing_key_info` of a server whose addresses serve different
/// keys (`MatrixFederationSigningKeysMismatch`).
pub(super) fn encode_observer_address_rows(
    enc: &mut DescriptorEncoder,
    heads: &AddressHeads<'_>,
) -> fmt::Result {
    let mut fam = FamilyWriter::new(enc, &CERT_INFO);
    for (labels, _, a) in heads.iter() {
        let rejected = a.failures.iter().any(|f| f.stage == Stage::Certificate);
        if let Some(leaf) = leaf(a).filter(|_| rejected) {
            fam.info(&(labels, CertLabels(leaf)))?;
        }
    }
    let mut fam = FamilyWriter::new(enc, &KEYS_VALID);
    for (labels, _, a) in heads.iter() {
        if keys_checked(a) == Some(false) {
            fam.gauge(&labels, 0.0)?;
        }
    }
    let mut fam = FamilyWriter::new(enc, &SIGNING_KEY_INFO);
    for (labels, _, a) in heads.iter().filter(|(_, r, _)| !keys_agree(r)) {
        for key in a.keys.iter().flat_map(|k| &k.verify_keys) {
            fam.info(&(
                labels,
                [("key_id", key.key_id.as_str()), ("key", key.key.as_str())],
            ))?;
        }
    }
    Ok(())
}

/// The `keys_valid` value of an address: whether every signing-key check passed, when the address served a key
/// document or failed to (`None`: the probe never got as far as the keys, or the keys check is off).
pub(super) fn keys_checked(a: &AddressReport) -> Option<bool> {
    let failed = a.failures.iter().any(|f| f.stage == Stage::Keys);
    (a.keys.is_some() || failed).then_some(!failed)
}

/// `keys_valid_all`: every address's key document passed every check and every address that serves verify
/// keys serves the same ones; `None` when no address got as far as the keys.
fn keys_valid_all(r: &ServerReport) -> Option<bool> {
    let mut checked = r.addresses.iter().filter_map(keys_checked).peekable();
    checked.peek()?;
    let all_valid = checked.all(|ok| ok);
    Some(all_valid && keys_agree(r))
}

/// Whether every address that serves verify keys serves the same set of `(key_id, key)` (what the rule
/// `MatrixFederationSigningKeysMismatch` compares through `signing_key_info`). True with fewer than two such
/// addresses.
fn keys_agree(r: &ServerReport) -> bool {
    // Without allocating (this runs for every server at every scrape): each set contains the other.
    let mut sets = r
        .addresses
        .iter()
        .filter_map(|a| a.keys.as_ref())
        .map(|k| &k.verify_keys)
        .filter(|keys| !keys.is_empty());
    let Some(first) = sets.next() else {
        return true;
    };
    let within = |a: &[VerifyKey], b: &[VerifyKey]| {
        a.iter()
            .all(|k| b.iter().any(|o| o.key_id == k.key_id && o.key == k.key))
    };
    sets.all(|set| within(first, set) && within(set, first))
}

/// Whether the observer profile renders this key-change row: a `replaced` row, and a `dropped` row while
/// `MatrixFederationSigningKeyDropped` would fire on it (no `retired` row of the key id at or after it, and no
/// address serving the key id now). `added` and `retired` rows are history, not faults.
pub(super) fn observer_keeps_change(r: &ServerReport, c: &KeyChange) -> bool {
    match c.change {
        KeyChangeKind::Replaced => true,
        KeyChangeKind::Added | KeyChangeKind::Retired => false,
        KeyChangeKind::Dropped => {
            let retired = r.key_history.changes().iter().any(|later| {
                later.key_id == c.key_id
                    && later.change == KeyChangeKind::Retired
                    && later.at >= c.at
            });
            let served = r
                .addresses
                .iter()
                .flat_map(|a| a.keys.iter().flat_map(|k| &k.verify_keys))
                .any(|k| c.key_id == k.key_id);
            !retired && !served
        }
    }
}
