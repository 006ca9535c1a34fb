//! The server name's own SRV records after a delegating well-known: the ones a spec-following peer never reads.
//!
//! Spec v1.19, server-server API, "Resolving server names", step 3.3: "If `<delegated_hostname>` is not an IP
//! literal and no `<delegated_port>` is present, an SRV record is looked up for
//! `_matrix-fed._tcp.<delegated_hostname>`." After a valid delegation the SRV steps use the **delegated**
//! hostname, so `_matrix-fed._tcp.<server_name>` and `_matrix._tcp.<server_name>` are shadowed; older software
//! and people reading DNS still follow them (the certificates FAQ: "I have created a .well-known URI. Do I still
//! need an SRV record?"). Nothing here connects to their targets.

use std::time::Instant;

use futures_util::future::join;

use crate::config::server_name::{Host, ServerName};
use crate::probe::discovery::MAX_TARGETS;
use crate::probe::discovery::dns::{self, Answer, Known};
use crate::probe::env::ProbeEnv;
use crate::report::{ShadowedSrv, ShadowedSrvReport, SrvRecordName, TargetReport};

/// Whether a delegation to `delegated` shadows `hostname`'s own SRV records: every delegation does, except one
/// to the server's own hostname without a port, for which steps 3.3 and 3.4 read those very records.
#[must_use]
pub fn shadows(hostname: &str, delegated: &ServerName) -> bool {
    match (delegated.host(), delegated.port()) {
        (Host::Dns(h), None) => !same_host(&h, hostname),
        _ => true,
    }
}

/// Both SRV names of `hostname`: as the server name's first exchange got them (`known`, see
/// `Dns::server_name_once`), or looked up now, at once, each under the resolver's DNS timeout. A name that is not
/// found has no records; a lookup that fails is noted in `errors`, never a failure of the probe.
pub async fn lookup(env: &ProbeEnv, hostname: &str, known: &Known) -> ShadowedSrvReport {
    let start = Instant::now();
    let [fed, legacy] = dns::srv_names(hostname);
    let ((fed_answer, fed_took), (legacy_answer, _)) = join(
        env.dns.srv_once(&fed, known),
        env.dns.srv_once(&legacy, known),
    )
    .await;
    let mut report = ShadowedSrvReport::default();
    for (record, answer) in [
        (SrvRecordName::MatrixFed, fed_answer),
        (SrvRecordName::Matrix, legacy_answer),
    ] {
        match answer {
            Ok(Answer::Found((records, _))) => {
                for r in records {
                    // "." is "service decidedly not available" (RFC 2782): it sends nobody anywhere.
                    if r.target == "." || report.records.len() == 2 * MAX_TARGETS {
                        continue;
                    }
                    let target = format!("{}:{}", r.target, r.port);
                    if report
                        .records
                        .iter()
                        .any(|s| s.record == record && s.target.as_str() == target)
                    {
                        continue;
                    }
                    report.records.push(ShadowedSrv {
                        record,
                        target: target.into(),
                        priority: r.priority,
                        weight: r.weight,
                        elsewhere: false,
                    });
                }
            }
            Ok(Answer::NxDomain | Answer::NoData) => {}
            Err(f) => report.errors.push(f.message),
        }
    }
    report.duration = fed_took.unwrap_or_else(|| start.elapsed());
    report
}

/// Marks each record whose `host:port` is none of the pairs the followed delegation leads to (`targets`; names
/// compared as text, without resolving anything).
pub fn judge(report: &mut ShadowedSrvReport, targets: &[TargetReport]) {
    for r in &mut report.records {
        let (host, port) = split(r.target.as_str());
        r.elsewhere = !targets
            .iter()
            .any(|t| t.port == port && same_host(t.host.as_str(), host));
    }
}

/// `host:port` split at its last colon.
fn split(target: &str) -> (&str, u16) {
    match target.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().unwrap_or(0)),
        None => (target, 0),
    }
}

/// DNS names are compared without case and without a trailing dot.
fn same_host(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ServerName {
        ServerName::parse(s).unwrap()
    }

    #[test]
    fn only_a_delegation_to_the_same_host_without_a_port_reads_the_records() {
        assert!(!shadows("example.org", &name("example.org")));
        assert!(!shadows("example.org", &name("EXAMPLE.org")));
        assert!(shadows("example.org", &name("example.org:8448")));
        assert!(shadows("example.org", &name("matrix.example.org")));
        assert!(shadows("example.org", &name("192.0.2.1")));
    }

    fn target(host: &str, port: u16) -> TargetReport {
        TargetReport {
            host: host.into(),
            port,
            srv: None,
            addresses: Vec::new(),
            via_cname: false,
        }
    }

    fn record(target: &str) -> ShadowedSrv {
        ShadowedSrv {
            record: SrvRecordName::MatrixFed,
            target: target.into(),
            priority: 0,
            weight: 0,
            elsewhere: false,
        }
    }

    #[test]
    fn a_record_is_elsewhere_unless_its_host_and_port_are_a_target() {
        let mut report = ShadowedSrvReport {
            records: vec![
                record("Matrix.Example.org:8448"),
                record("matrix.example.org:443"),
                record("old.example.org:8448"),
            ],
            ..ShadowedSrvReport::default()
        };
        judge(&mut report, &[target("matrix.example.org", 8448)]);
        let elsewhere: Vec<bool> = report.records.iter().map(|r| r.elsewhere).collect();
        assert_eq!(elsewhere, [false, true, true]);
    }
}
