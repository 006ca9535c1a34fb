//! Trimming a finished report before it is kept: the store holds one report per server for a whole interval,
//! so the spare capacity that building it left behind (a `Vec` grown to 4 for one SRV target, one key, one
//! well-known hop) is returned first, text equal to the server name is pointed at the report's own copy, and
//! the well-known's words are dropped when they are only what its HTTP status and last hop say (they are given
//! again when shown). At 10,000 servers that is several MB.

use crate::report::{
    AddressReport, CertReport, DiscoveryReport, Failure, KeysReport, ServerReport,
};

/// Frees the spare capacity of every growable part of `report` (what any view shows of it is unchanged).
pub fn shrink(report: &mut ServerReport) {
    shrink_discovery(&mut report.discovery);
    report.addresses.shrink_to_fit();
    for address in &mut report.addresses {
        shrink_address(address);
        // A key document names the server it belongs to: nearly always this one.
        if let Some(keys) = &mut address.keys
            && keys.server_name == report.server_name
        {
            keys.server_name = report.server_name.clone();
        }
    }
    shrink_failures(&mut report.failures);
    if let Some(client) = &mut report.client {
        client.hops.shrink_to_fit();
        shrink_failures(&mut client.failures);
        shrink_text(&mut client.base_url);
    }
    if let Some(support) = &mut report.support {
        support.hops.shrink_to_fit();
        support.contacts.shrink_to_fit();
    }
}

fn shrink_text(text: &mut Option<String>) {
    if let Some(text) = text {
        text.shrink_to_fit();
    }
}

/// Messages are formatted piece by piece, so their `String`s may hold up to twice their length.
fn shrink_failures(failures: &mut Vec<Failure>) {
    failures.shrink_to_fit();
    for f in failures {
        f.message.shrink_to_fit();
    }
}

fn shrink_discovery(d: &mut DiscoveryReport) {
    d.targets.shrink_to_fit();
    for target in &mut d.targets {
        target.addresses.shrink_to_fit();
    }
    d.well_known.hops.shrink_to_fit();
    // "HTTP 404 from https://…/.well-known/matrix/server" says what the outcome and the last hop say: the
    // words are given again when shown (`WellKnownReport::error_text`), so a stored report does not keep them.
    if d.well_known.error.is_some() && d.well_known.error == d.well_known.http_error_words() {
        d.well_known.error = None;
    }
    shrink_text(&mut d.well_known.error);
    d.well_known.per_address.shrink_to_fit();
}

fn shrink_address(a: &mut AddressReport) {
    shrink_failures(&mut a.failures);
    if let Some(cert) = &mut a.certificate {
        shrink_cert(cert);
    }
    if let Some(keys) = &mut a.keys {
        shrink_keys(keys);
    }
}

fn shrink_cert(c: &mut CertReport) {
    // The facts themselves are built trimmed (see `probe/connect/cert.rs`), and may be shared.
    c.chain.shrink_to_fit();
    shrink_failures(&mut c.failures);
}

fn shrink_keys(k: &mut KeysReport) {
    k.verify_keys.shrink_to_fit();
    k.old_verify_keys.shrink_to_fit();
    k.warnings.shrink_to_fit();
    // `raw` is built at its exact length (`Bytes::copy_from_slice`) and may be shared between addresses.
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::report::{Reason, SharedStr, Stage, TargetReport};

    #[test]
    fn shrinking_keeps_the_content_and_drops_spare_capacity() {
        let mut discovery = DiscoveryReport::empty("example.org");
        discovery.targets.push(TargetReport {
            host: "example.org".into(),
            port: 8448,
            srv: None,
            addresses: vec!["192.0.2.1".parse().unwrap()],
            via_cname: false,
        });
        let mut report = ServerReport {
            history: crate::report::History::default(),
            key_history: crate::report::KeyHistory::default(),
            local_certs: crate::report::LocalCertsReport::default(),
            server_name: "example.org".into(),
            started_at: SystemTime::UNIX_EPOCH,
            finished_at: SystemTime::UNIX_EPOCH,
            duration: Duration::ZERO,
            discovery,
            addresses: Vec::with_capacity(8),
            failures: vec![Failure::new(
                Stage::Dns,
                Reason::DnsNxdomain,
                String::with_capacity(64) + "example.org: NXDOMAIN",
            )],
            client: None,
            support: None,
        };
        let mut address =
            AddressReport::new("192.0.2.1:8448".parse().unwrap(), "example.org".into());
        address.keys = Some(KeysReport {
            server_name: String::from("example.org").as_str().into(),
            ..KeysReport::default()
        });
        report.addresses.push(address);
        let before = format!("{report:?}");
        shrink(&mut report);
        assert_eq!(format!("{report:?}"), before);
        assert_eq!(report.discovery.targets.capacity(), 1);
        assert_eq!(report.addresses.capacity(), 1);
        let keys = report.addresses[0].keys.as_ref().unwrap();
        assert!(SharedStr::ptr_eq(&keys.server_name, &report.server_name));
        let message = &report.failures[0].message;
        assert_eq!(message.capacity(), message.len());
    }

    /// A well-known that answered with an HTTP status keeps no words in a stored report; the words shown are
    /// the same. Other words (a refused connection) are kept.
    #[test]
    fn the_words_of_an_http_answer_are_given_again_from_the_last_hop() {
        use crate::report::{Hops, WellKnownOutcome, WellKnownReport};
        let url = "https://example.org/.well-known/matrix/server";
        for (outcome, status, words, dropped) in [
            (
                WellKnownOutcome::NotFound,
                404,
                format!("HTTP 404 from {url}"),
                true,
            ),
            (
                WellKnownOutcome::HttpError,
                502,
                format!("HTTP 502 from {url}"),
                true,
            ),
            (
                WellKnownOutcome::HttpError,
                502,
                "HTTP 502 from elsewhere".to_owned(),
                false,
            ),
            (
                WellKnownOutcome::ConnectionFailed,
                0,
                "connection refused".to_owned(),
                false,
            ),
        ] {
            let mut d = DiscoveryReport::empty("example.org");
            d.well_known = WellKnownReport {
                outcome,
                cache_ttl: None,
                hops: [(url, status)].into_iter().collect::<Hops>(),
                error: Some(words.clone()),
                per_address: Vec::new(),
            };
            shrink_discovery(&mut d);
            assert_eq!(d.well_known.error.is_none(), dropped, "{words}");
            assert_eq!(d.well_known.error_text().as_deref(), Some(words.as_str()));
        }
    }
}
