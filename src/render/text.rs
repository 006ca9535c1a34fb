//! The `check` command's human report: a [`ServerReport`] as plain text for an operator at a shell, with every
//! failure explained in plain words together with its likely fix.
//!
//! This module only lays the text out, colours it and makes remote text inert. The words for failures, warnings
//! and the discovery path come from `render/explain.rs` (shared with the status page), numbers and dates from
//! `render/format.rs`; probing, exit codes and `--json` (see `render/tester.rs`) belong to `check_command.rs`.
//!
//! Much of what a report holds comes from the probed servers (version, key ids, certificate names, error texts),
//! and a hostile one could put terminal controls there: clear the screen, retitle the window, or end a line and
//! forge a `✔` one. Every such string enters the text through `Inert`, which writes control and bidi
//! characters as visible escapes, and `Paint` passes what it colours through it too; so the only control
//! characters in the text are our own line ends and colour codes.

use std::fmt::{self, Write as _};
use std::time::SystemTime;

use anstyle::{AnsiColor, Style};

use crate::render::client_words;
use crate::render::explain::{self, cert_names};
use crate::render::faq;
use crate::render::format::{count, date, days_left, ms, relative, unix};
use crate::report::{
    AddressReport, ClientReport, ClientResult, Failure, KeysReport, Phase, RefusedAddress,
    ServerReport, ServerWarning, Warning,
};

/// The whole report of one server: verdict, discovery path, every address, and each failure with its fix.
/// `now` is the clock that "days left" and "valid until" are measured against. With `colour`, verdicts and
/// headings carry ANSI colours; without it the text holds no escape sequences at all.
#[must_use]
pub fn render(report: &ServerReport, now: SystemTime, colour: bool) -> String {
    let p = Paint(colour);
    let mut out = String::new();
    let ok = report.success();
    let verdict = if ok {
        p.good("✔ federation works")
    } else {
        p.bad("✘ federation fails")
    };
    let failing = report.addresses.iter().filter(|a| !a.success()).count();
    let refused = report.discovery.refused.len();
    let _ = writeln!(out, "{}: {verdict}", p.bold(&report.server_name));
    let _ = writeln!(
        out,
        "  {} · {} failing{} · probe took {}",
        count(report.addresses.len(), "address", "addresses"),
        failing,
        if refused > 0 {
            format!(" · {refused} not probed (peers refuse them)")
        } else {
            String::new()
        },
        ms(report.duration),
    );

    let _ = writeln!(out, "\n{}", p.bold("Discovery"));
    // Each line on its own through `Inert`: a line end in remote text cannot start a line of its own.
    for (i, step) in explain::discovery_steps(report).iter().enumerate() {
        let _ = writeln!(out, "  {}. {}", i + 1, Inert(&step.line));
        for line in &step.more {
            let _ = writeln!(out, "     {}", Inert(line));
        }
    }
    let d = &report.discovery;
    let _ = writeln!(
        out,
        "  certificate must name: {}; Host header: {}",
        Inert(&d.tls_name),
        Inert(&d.host_header)
    );
    if d.truncated {
        let _ = writeln!(
            out,
            "  {}",
            p.warn(
                "⚠ more targets or addresses than a probe follows: only the first 32 were probed"
            )
        );
    }
    for failure in &report.failures {
        write_failure(&mut out, &p, failure, report, None);
    }
    let warnings = report.warnings();
    let about_support = |w: &&ServerWarning| w.warning == Warning::SupportInvalid;
    for warning in warnings.iter().filter(|w| {
        w.address.is_none() && w.warning != Warning::ClientWellKnownNoCors && !about_support(w)
    }) {
        write_warning(&mut out, &p, warning);
    }

    let _ = writeln!(out, "\n{}", p.bold("Addresses"));
    if report.addresses.is_empty() && d.refused.is_empty() {
        let _ = writeln!(out, "  none: discovery found nothing to connect to");
    }
    for address in &report.addresses {
        write_address(&mut out, &p, report, address, now);
    }
    for r in &d.refused {
        write_refused(&mut out, &p, r, &warnings);
    }
    if let Some(client) = &report.client {
        write_client(&mut out, &p, report, client, &warnings);
    }
    if let Some(support) = &report.support {
        let _ = writeln!(
            out,
            "\n{}",
            p.bold("Whom to contact (/.well-known/matrix/support)")
        );
        for line in faq::support_lines(support) {
            let _ = writeln!(out, "  {}", Inert(&line));
        }
        for warning in warnings.iter().filter(about_support) {
            write_warning(&mut out, &p, warning);
        }
    }
    write_local_certs(&mut out, &p, report, now);
    out
}

/// Client discovery: what a user's client ends with, its failure and fix, and its warning. It never changes the
/// federation verdict above.
fn write_client(
    out: &mut String,
    p: &Paint,
    report: &ServerReport,
    c: &ClientReport,
    warnings: &[ServerWarning],
) {
    let verdict = if c.success() {
        p.good("✔ clients find the homeserver")
    } else {
        p.bad("✘ clients cannot find the homeserver")
    };
    let _ = writeln!(out, "\n{} {verdict}", p.bold("Client discovery"));
    let _ = writeln!(
        out,
        "  {}/{}: {}",
        c.outcome,
        c.result,
        Inert(&client_words::summary(c, &report.server_name))
    );
    if let Some(is) = &c.identity_server {
        let _ = writeln!(out, "  identity server: {}", Inert(is));
    }
    for failure in &c.failures {
        write_failure(out, p, failure, report, None);
    }
    if c.result == ClientResult::NotFound {
        let _ = writeln!(
            out,
            "      optional: {}",
            Inert(&client_words::fix(c, &report.server_name))
        );
    }
    for warning in warnings
        .iter()
        .filter(|w| w.warning == Warning::ClientWellKnownNoCors)
    {
        write_warning(out, p, warning);
    }
}

/// `local_certificates`: each file with its leaf or why it is unusable, then each address that still serves an
/// older certificate, with the reload to run and the deploy hook that makes it stick.
fn write_local_certs(out: &mut String, p: &Paint, report: &ServerReport, now: SystemTime) {
    let lc = &report.local_certs;
    if lc.files.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{}", p.bold("Local certificates"));
    for file in &lc.files {
        match &file.leaf {
            Ok(leaf) => {
                let _ = writeln!(
                    out,
                    "  {} {}: leaf for {}, {} ({})",
                    p.good("✔"),
                    Inert(&file.cert_file),
                    Inert(&leaf.dns_names.join(", ")),
                    crate::render::format::days_left(leaf.not_after, now),
                    crate::render::format::date_utc(leaf.not_after),
                );
            }
            Err(reason) => {
                let _ = writeln!(
                    out,
                    "  {} {}: {}",
                    p.warn("⚠ warning/local_cert_unreadable:"),
                    Inert(&file.cert_file),
                    Inert(reason)
                );
            }
        }
    }
    for n in &lc.not_reloaded {
        let _ = writeln!(
            out,
            "  {} {} ({}) still serves the old certificate",
            p.warn("⚠ warning/cert_not_reloaded:"),
            p.bold(&n.address.to_string()),
            if n.well_known {
                "the well-known's port 443"
            } else {
                "federation"
            },
        );
        let _ = writeln!(out, "        fix: {}", Inert(&explain::not_reloaded_fix(n)));
    }
}

/// An address the public-federation view left unprobed, with its warning (when some other address was probed).
fn write_refused(out: &mut String, p: &Paint, r: &RefusedAddress, warnings: &[ServerWarning]) {
    let _ = writeln!(
        out,
        "  {} {} ({}, from {}) · {}: not probed, default-configured peers refuse it",
        p.warn("⚠"),
        p.bold(&r.address.to_string()),
        r.family(),
        Inert(&r.target_host),
        r.class()
    );
    for warning in warnings.iter().filter(|w| w.address == Some(r.address)) {
        write_warning(out, p, warning);
    }
}

fn write_warning(out: &mut String, p: &Paint, warning: &ServerWarning) {
    let _ = writeln!(
        out,
        "      {} {}",
        p.warn(&format!("⚠ warning/{}:", warning.warning)),
        Inert(&explain::warning_message(warning))
    );
    let _ = writeln!(
        out,
        "        fix: {}",
        explain::warning_hint(warning.warning)
    );
}

/// Several reports in argument order, a blank line apart, then (for more than one) a one-line summary.
#[must_use]
pub fn render_all(reports: &[ServerReport], now: SystemTime, colour: bool) -> String {
    let p = Paint(colour);
    let mut out = reports
        .iter()
        .map(|r| render(r, now, colour))
        .collect::<Vec<_>>()
        .join("\n");
    if reports.len() > 1 {
        let good = reports.iter().filter(|r| r.success()).count();
        let failing: Vec<&str> = reports
            .iter()
            .filter(|r| !r.success())
            .map(|r| r.server_name.as_str())
            .collect();
        let line = if failing.is_empty() {
            p.good(&format!("✔ all {good} servers federate"))
        } else {
            p.bad(&format!(
                "✘ {good} of {} servers federate; failing: {}",
                reports.len(),
                failing.join(", ")
            ))
        };
        let _ = writeln!(out, "\n{line}");
    }
    out
}

fn write_address(
    out: &mut String,
    p: &Paint,
    report: &ServerReport,
    a: &AddressReport,
    now: SystemTime,
) {
    let mark = if a.success() {
        p.good("✔")
    } else {
        p.bad("✘")
    };
    let class = a.class();
    let _ = writeln!(
        out,
        "  {mark} {} ({}, from {}){}",
        p.bold(&a.address.to_string()),
        a.family(),
        Inert(&a.target_host),
        if class.is_public() {
            String::new()
        } else {
            format!(" · {class}")
        }
    );

    let phases: Vec<String> = a
        .phases
        .iter()
        .map(|(phase, t)| match (phase, &a.tls) {
            (Phase::TlsHandshake, Some(tls)) => {
                format!("TLS {} {} {}", Inert(tls.version), Inert(tls.cipher), ms(t))
            }
            (Phase::TlsHandshake, None) => format!("TLS {}", ms(t)),
            (phase, _) => format!("{phase} {}", ms(t)),
        })
        .collect();
    if !phases.is_empty() {
        let _ = writeln!(out, "      {}", phases.join(" · "));
    }

    if let Some(cert) = &a.certificate {
        let verdict = if cert.valid() {
            p.good("✔ valid")
        } else {
            let reasons: Vec<&str> = cert.failures.iter().map(|f| f.reason.as_str()).collect();
            p.bad(&format!("✘ {}", reasons.join(", ")))
        };
        match cert.chain.first() {
            Some(leaf) => {
                let names = cert_names(leaf);
                let names = if names.is_empty() {
                    "(none)".to_owned()
                } else {
                    names.join(", ")
                };
                let _ = writeln!(
                    out,
                    "      certificate: {}  {verdict}",
                    Inert(&leaf.subject)
                );
                let _ = writeln!(out, "        issuer:  {}", Inert(&leaf.issuer));
                let _ = writeln!(out, "        names:   {}", Inert(&names));
                let _ = writeln!(
                    out,
                    "        expires: {} ({})",
                    date(leaf.not_after),
                    days_left(leaf.not_after, now)
                );
                if let Some(earliest) = cert.chain_not_after()
                    && earliest < leaf.not_after
                {
                    let _ = writeln!(
                        out,
                        "        chain expires first: {} ({})",
                        date(earliest),
                        days_left(earliest, now)
                    );
                }
            }
            None => {
                let _ = writeln!(out, "      certificate: none presented  {verdict}");
            }
        }
    }

    if let Some(keys) = &a.keys {
        write_keys(out, p, keys, now);
    }
    if let Some(v) = &a.version {
        let _ = writeln!(
            out,
            "      version: {} {}",
            Inert(v.name.as_deref().unwrap_or("(no name)")),
            Inert(v.version.as_deref().unwrap_or("(no version)"))
        );
    }
    for failure in &a.failures {
        write_failure(out, p, failure, report, Some(a));
    }
}

fn write_keys(out: &mut String, p: &Paint, keys: &KeysReport, now: SystemTime) {
    let until = keys.valid_until_ts.map_or_else(
        || "no valid_until_ts".to_owned(),
        |ms| {
            let secs = ms.div_euclid(1000);
            format!(
                "valid until {} ({})",
                date(secs),
                relative(secs - unix(now))
            )
        },
    );
    let name = if keys.server_name.is_empty() {
        "(missing)"
    } else {
        keys.server_name.as_str()
    };
    let _ = writeln!(out, "      keys: server_name {}, {until}", Inert(name));
    for k in &keys.verify_keys {
        let line = if !k.valid_ed25519 {
            p.bad(&format!("✘ {} is not a usable ed25519 key", k.key_id))
        } else if !k.matching_signature {
            p.bad(&format!("✘ {} signature does not verify", k.key_id))
        } else {
            p.good(&format!("✔ {} signature verifies", k.key_id))
        };
        let _ = writeln!(out, "        {line}");
    }
    if !keys.old_verify_keys.is_empty() {
        let _ = writeln!(
            out,
            "        {}",
            count(keys.old_verify_keys.len(), "old key", "old keys")
        );
    }
    for w in &keys.warnings {
        let _ = writeln!(out, "        {}", p.warn(&format!("⚠ {w}")));
    }
}

fn write_failure(
    out: &mut String,
    p: &Paint,
    failure: &Failure,
    report: &ServerReport,
    address: Option<&AddressReport>,
) {
    let _ = writeln!(
        out,
        "      {} {}",
        p.bad(&format!("✘ {}/{}:", failure.stage, failure.reason)),
        Inert(&failure.message)
    );
    // The hint repeats remote names (certificate names, the served server name) and stays raw for the status
    // page, which HTML-escapes it: so it is made inert here.
    let _ = writeln!(
        out,
        "        fix: {}",
        Inert(&explain::hint(failure, report, address))
    );
}

/// Verdicts that pass: green (`\x1b[32m`).
const GOOD: Style = AnsiColor::Green.on_default();
/// Verdicts that fail: red (`\x1b[31m`).
const BAD: Style = AnsiColor::Red.on_default();
/// Warnings: yellow (`\x1b[33m`).
const WARN: Style = AnsiColor::Yellow.on_default();
/// Names and headings: bold (`\x1b[1m`).
const BOLD: Style = Style::new().bold();

/// ANSI styling when on, plain text when off; each styled piece ends with a reset (`\x1b[0m`). What it styles
/// often holds remote text (a key id, the server name), so it goes through [`Inert`]: the escape sequences are
/// ours alone.
struct Paint(bool);

impl Paint {
    fn style(&self, style: Style, text: &str) -> String {
        if self.0 {
            format!("{style}{}{style:#}", Inert(text))
        } else {
            Inert(text).to_string()
        }
    }

    fn good(&self, text: &str) -> String {
        self.style(GOOD, text)
    }

    fn bad(&self, text: &str) -> String {
        self.style(BAD, text)
    }

    fn warn(&self, text: &str) -> String {
        self.style(WARN, text)
    }

    fn bold(&self, text: &str) -> String {
        self.style(BOLD, text)
    }
}

/// Text from a probed server, made inert for a terminal: C0 controls (newlines and tabs too) and DEL become
/// `\xNN` (`\x1b`); C1 controls, the bidi embeddings, overrides and isolates, and the line and paragraph
/// separators become `\u{NNNN}` (`\u{202e}`); everything else stays as is. The output holds none of these, so
/// escaping twice changes nothing.
#[derive(Clone, Copy)]
struct Inert<'a>(&'a str);

impl fmt::Display for Inert<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut start = 0;
        for (i, c) in self.0.char_indices().filter(|&(_, c)| needs_escape(c)) {
            f.write_str(&self.0[start..i])?;
            match c {
                '\0'..='\x1f' | '\x7f' => write!(f, "\\x{:02x}", u32::from(c))?,
                _ => write!(f, "\\u{{{:04x}}}", u32::from(c))?,
            }
            start = i + c.len_utf8();
        }
        f.write_str(&self.0[start..])
    }
}

/// Whether a terminal would act on `c` (or reorder or break the line at it) rather than show it.
fn needs_escape(c: char) -> bool {
    matches!(
        c,
        '\0'..='\x1f'
            | '\x7f'..='\u{9f}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::render::fixtures::{DAY, NOW, delegated_ok, leaf_mut, now, srv_mismatch};
    use crate::report::{
        CertFacts, CertReport, DiscoveryReport, Hops, OldVerifyKey, Reason, ShadowedSrv,
        ShadowedSrvReport, SharedStr, SrvInfo, SrvRecordName, Stage, SupportContact, SupportReport,
        SupportResult, TargetReport, VerifyKey, VersionReport, WellKnownReport,
    };

    fn assert_contains(text: &str, wants: &[&str]) {
        for want in wants {
            assert!(text.contains(want), "missing {want:?} in:\n{text}");
        }
    }

    #[test]
    fn an_srv_path_with_a_wrong_certificate_and_a_dead_ipv6_address() {
        let text = render(&srv_mismatch(), now(), false);
        assert_contains(
            &text,
            &[
                "example.org: ✘ federation fails",
                "2 addresses · 2 failing",
                "1. .well-known: not_found (HTTP 404 from https://example.org/.well-known/matrix/server) → SRV",
                "2. SRV _matrix-fed._tcp.example.org: 1 target",
                "→ matrix.example.com:8448 (priority 10, weight 5)",
                "3. A/AAAA matrix.example.com: 203.0.113.5, 2001:db8::5",
                "certificate must name: example.org; Host header: example.org",
                "✘ 203.0.113.5:8448 (ipv4, from matrix.example.com)",
                "connect 1.5 ms · TLS TLSv1_3 TLS13_AES_256_GCM_SHA384 23 ms",
                "certificate: CN=matrix.example.com  ✘ cert_hostname_mismatch",
                "issuer:  CN=Test Intermediate",
                "names:   matrix.example.com",
                "expires: 2025-07-01 01:00:00Z (30 days left)",
                "✘ certificate/cert_hostname_mismatch:",
                "fix: certificate names matrix.example.com but must name example.org: get a certificate for \
                 example.org, or delegate with .well-known ({\"m.server\": \"matrix.example.com:8448\"})",
                "✘ [2001:db8::5]:8448 (ipv6, from matrix.example.com)",
                "✘ connect/connection_refused: TCP connect to [2001:db8::5]:8448",
                "fix: nothing listens on [2001:db8::5]:8448: open the port for IPv6",
                "remove the AAAA record for matrix.example.com",
            ],
        );
    }

    #[test]
    fn a_delegated_server_that_works() {
        let text = render(&delegated_ok(), now(), false);
        assert_contains(
            &text,
            &[
                "example.org: ✔ federation works",
                "1. .well-known: delegated to matrix.example.org:443 (cache 24h)",
                "2. matrix.example.org:443 has an explicit port: no SRV",
                "3. A/AAAA matrix.example.org: 198.51.100.7 (via CNAME)",
                "certificate must name: matrix.example.org; Host header: matrix.example.org:443",
                "✔ 198.51.100.7:443 (ipv4, from matrix.example.org)",
                "keys 4.0 ms · version 3.0 ms",
                "certificate: CN=matrix.example.org  ✔ valid",
                "(62 days left)",
                "chain expires first: 2025-06-21 00:00:00Z (20 days left)",
                "keys: server_name example.org, valid until 2025-06-04 00:00:00Z (in 3 days)",
                "✔ ed25519:a_AbCd signature verifies",
                "version: Synapse 1.120.0",
            ],
        );
        assert!(!text.contains("fix:"), "{text}");
    }

    #[test]
    fn expired_certificates_and_bad_keys_read_plainly() {
        let mut report = delegated_ok();
        let a = &mut report.addresses[0];
        leaf_mut(a).not_after = NOW - 3 * DAY - 10;
        let keys = a.keys.as_mut().unwrap();
        keys.verify_keys[0].matching_signature = false;
        keys.warnings
            .push("valid_until_ts is more than 7 days away".to_owned());
        a.failures.push(Failure::new(
            Stage::Keys,
            Reason::KeysBadSignature,
            "signature by ed25519:a_AbCd does not verify",
        ));
        let text = render(&report, now(), false);
        assert_contains(
            &text,
            &[
                "✘ federation fails",
                "(expired 3 days ago)",
                "✘ ed25519:a_AbCd signature does not verify",
                "⚠ valid_until_ts is more than 7 days away",
                "✘ keys/keys_bad_signature: signature by ed25519:a_AbCd does not verify",
                "fix: a signing key's signature over the key document does not verify",
            ],
        );
    }

    #[test]
    fn server_level_failures_and_timeouts() {
        let report = ServerReport::timed_out("slow.example", now(), Duration::from_secs(30));
        let text = render(&report, now(), false);
        assert_contains(
            &text,
            &[
                "slow.example: ✘ federation fails",
                "1. discovery did not finish",
                "✘ discovery/timeout: the probe did not finish within 30s",
                "fix: the probe did not finish in time",
                "none: discovery found nothing to connect to",
            ],
        );
    }

    fn refused(addr: &str, host: &str) -> RefusedAddress {
        RefusedAddress {
            address: addr.parse().unwrap(),
            target_host: host.into(),
        }
    }

    #[test]
    fn only_refused_addresses_fail_with_the_fix_and_are_listed() {
        let mut report = delegated_ok();
        report.addresses.clear();
        report.discovery.refused = vec![
            refused("10.0.0.5:443", "matrix.example.org"),
            refused("[::1]:443", "matrix.example.org"),
        ];
        report.failures = vec![Failure::new(
            Stage::Discovery,
            Reason::AddressNotPublic,
            "unreachable for default-configured peers: every address is in a range Synapse refuses",
        )];
        let text = render(&report, now(), false);
        assert_contains(
            &text,
            &[
                "example.org: ✘ federation fails",
                "0 addresses · 0 failing · 2 not probed (peers refuse them)",
                "✘ discovery/address_not_public: unreachable for default-configured peers",
                "fix: peers with a default configuration refuse loopback, private",
                "publish public A/AAAA records for matrix.example.org",
                "set probe.allow_private_addresses (--probe.allow-private-addresses)",
                "⚠ 10.0.0.5:443 (ipv4, from matrix.example.org) · private: not probed, default-configured \
                 peers refuse it",
                "⚠ [::1]:443 (ipv6, from matrix.example.org) · loopback: not probed",
            ],
        );
        assert!(!text.contains("none: discovery found nothing"), "{text}");
        assert!(
            !text.contains("warning/"),
            "all refused is a failure, not warnings:\n{text}"
        );
    }

    #[test]
    fn warnings_do_not_fail_and_come_with_a_fix() {
        let mut report = delegated_ok();
        report.discovery.refused = vec![refused("192.168.1.7:443", "matrix.example.org")];
        report.discovery.targets[0].srv = Some(SrvInfo {
            priority: 0,
            weight: 0,
        });
        let text = render(&report, now(), false);
        assert_contains(
            &text,
            &[
                "example.org: ✔ federation works",
                "1 address · 0 failing · 1 not probed (peers refuse them)",
                "⚠ warning/srv_target_cname: SRV target matrix.example.org is a CNAME",
                "fix: point the SRV record at the canonical host name",
                "⚠ 192.168.1.7:443 (ipv4, from matrix.example.org) · private: not probed",
                "⚠ warning/address_not_public: 192.168.1.7:443 (from matrix.example.org) is not public (private)",
                "fix: default-configured peers skip this address and use the others",
            ],
        );
    }

    #[test]
    fn an_inconsistent_well_known_shows_every_address_and_the_fix() {
        use crate::report::{WellKnownAddress, WellKnownOutcome};
        let mut report = delegated_ok();
        let at = |a: &str, outcome, m: Option<&str>, followed| WellKnownAddress {
            address: a.parse().unwrap(),
            outcome,
            m_server: m.map(Into::into),
            error: m
                .is_none()
                .then(|| "HTTP 404 from https://example.org/".into()),
            followed,
        };
        report.discovery.well_known.per_address = vec![
            at("[2001:db8::1]:443", WellKnownOutcome::NotFound, None, false),
            at(
                "192.0.2.1:443",
                WellKnownOutcome::Delegated,
                Some("matrix.example.org:443"),
                true,
            ),
        ];
        let text = render(&report, now(), false);
        assert_contains(
            &text,
            &[
                "example.org: ✔ federation works",
                "from [2001:db8::1]:443: not_found (HTTP 404 from https://example.org/)\n",
                "from 192.0.2.1:443: delegated to matrix.example.org:443 ← followed\n",
                "⚠ warning/well_known_inconsistent: the addresses of example.org answer",
                "fix: make every address serve the same /.well-known/matrix/server file",
            ],
        );
    }

    #[test]
    fn non_public_probed_addresses_show_their_class() {
        let text = render(&srv_mismatch(), now(), false);
        assert_contains(
            &text,
            &[
                "✘ 203.0.113.5:8448 (ipv4, from matrix.example.com) · documentation\n",
                "✘ [2001:db8::5]:8448 (ipv6, from matrix.example.com) · documentation\n",
            ],
        );
        let mut public = delegated_ok();
        public.addresses[0].address = "8.8.8.8:443".parse().unwrap();
        let text = render(&public, now(), false);
        assert_contains(&text, &["✔ 8.8.8.8:443 (ipv4, from matrix.example.org)\n"]);
    }

    #[test]
    fn client_discovery_has_its_own_verdict_fix_and_warning() {
        let mut r = delegated_ok();
        r.client = Some(crate::render::fixtures::client_failing());
        let text = render(&r, now(), false);
        assert_contains(
            &text,
            &[
                "example.org: ✔ federation works",
                "Client discovery ✘ clients cannot find the homeserver",
                "fail_error/versions_http_status: clients stop with an error",
                "✘ client/http_status: HTTP 404 from https://matrix.example.org/_matrix/client/versions",
                "fix: https://matrix.example.org/_matrix/client/versions must answer 200",
                "⚠ warning/client_well_known_no_cors:",
                "identity server: https://id.example.org",
            ],
        );
        r.client = Some(crate::render::fixtures::client_ok());
        let text = render(&r, now(), false);
        assert_contains(
            &text,
            &[
                "Client discovery ✔ clients find the homeserver",
                "success/ok: clients find the homeserver at https://matrix.example.org (spec v1.11)",
            ],
        );
        assert!(!text.contains("fix:"), "{text}");
    }

    #[test]
    fn colour_only_when_asked() {
        for report in [srv_mismatch(), delegated_ok()] {
            let plain = render_all(&[report.clone(), report.clone()], now(), false);
            assert!(!plain.contains('\x1b'), "{plain}");
            let coloured = render(&report, now(), true);
            assert!(coloured.contains("\x1b["), "{coloured}");
        }
    }

    /// The colour codes are plain SGR sequences, each piece reset on its own, as before anstyle.
    #[test]
    fn colours_are_plain_sgr_codes() {
        let p = Paint(true);
        assert_eq!(p.good("ok"), "\x1b[32mok\x1b[0m");
        assert_eq!(p.bad("ok"), "\x1b[31mok\x1b[0m");
        assert_eq!(p.warn("ok"), "\x1b[33mok\x1b[0m");
        assert_eq!(p.bold("ok"), "\x1b[1mok\x1b[0m");
        assert_eq!(p.bad("\x1b[2J"), "\x1b[31m\\x1b[2J\x1b[0m");
        assert_eq!(Paint(false).bold("ok\x1b"), "ok\\x1b");
    }

    #[test]
    fn several_reports_end_with_a_summary() {
        let text = render_all(&[delegated_ok(), srv_mismatch()], now(), false);
        assert!(
            text.ends_with("\n✘ 1 of 2 servers federate; failing: example.org\n"),
            "{text}"
        );
        let text = render_all(&[delegated_ok(), delegated_ok()], now(), false);
        assert!(text.ends_with("\n✔ all 2 servers federate\n"), "{text}");
        let one = render_all(&[delegated_ok()], now(), false);
        assert_eq!(one, render(&delegated_ok(), now(), false));
    }

    #[test]
    fn inert_escapes_controls_and_bidi_and_keeps_the_rest() {
        let clean = "matrix.example.org ✔ café 日本 \\ \"quoted\" {braces}";
        assert_eq!(Inert(clean).to_string(), clean);
        assert_eq!(
            Inert("a\x00b\tc\nd\re\x1b[2Jf\x7fg\u{80}h\u{9b}i\u{a0}j").to_string(),
            "a\\x00b\\x09c\\x0ad\\x0de\\x1b[2Jf\\x7fg\\u{0080}h\\u{009b}i\u{a0}j"
        );
        assert_eq!(
            Inert("\u{202a}\u{202e}\u{2066}\u{2069}\u{2028}\u{2029}\u{2065}\u{202f}\u{2027}")
                .to_string(),
            "\\u{202a}\\u{202e}\\u{2066}\\u{2069}\\u{2028}\\u{2029}\u{2065}\u{202f}\u{2027}"
        );
        let once = Inert(HOSTILE).to_string();
        assert_eq!(
            Inert(&once).to_string(),
            once,
            "escaping twice changes nothing"
        );
    }

    /// Terminal mischief a probed server could try: clear the screen, retitle the window (OSC ended by BEL),
    /// return to the line start and forge a verdict on a line of its own, a C1 CSI, DEL, a tab, a bidi override
    /// and a line separator.
    const HOSTILE: &str =
        "\x1b[2J\x1b]0;pwned\x07\r✔ federation works\n\u{9b}31m\x7f\t\u{202e}\u{2028}";

    /// What `HOSTILE` must read as once escaped.
    const HOSTILE_ESCAPED: &str = "\\x1b[2J\\x1b]0;pwned\\x07\\x0d✔ federation works\\x0a\\u{009b}31m\\x7f\\x09\\u{202e}\\u{2028}";

    /// The characters in `text` that a terminal acts on (or that reorder or break a line), other than the
    /// line ends and, with `colour`, the colour codes `Paint` writes. Independent of `needs_escape`, so that
    /// narrowing it fails the tests.
    fn stray_controls(text: &str, colour: bool) -> Vec<char> {
        let mut text = text.to_owned();
        if colour {
            for code in ["\x1b[0m", "\x1b[1m", "\x1b[31m", "\x1b[32m", "\x1b[33m"] {
                text = text.replace(code, "");
            }
        }
        text.chars()
            .filter(|&c| {
                (c.is_control() && c != '\n')
                    || matches!(c, '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
            })
            .collect()
    }

    /// `report` with a line of every kind the text has: a server-level failure, a refused address (a warning,
    /// as others were probed), truncation, SRV targets through a CNAME, and on the first address a key
    /// document with a good, a bad and an old key, a warning and a server-name mismatch, and a version.
    fn every_line(mut report: ServerReport) -> ServerReport {
        report.failures.push(Failure::new(
            Stage::Discovery,
            Reason::DnsError,
            "SERVFAIL from the name server",
        ));
        report
            .discovery
            .refused
            .push(refused("10.0.0.5:443", "matrix.example.org"));
        report.discovery.truncated = true;
        report.discovery.shadowed_srv = Some(Box::new(ShadowedSrvReport {
            records: vec![ShadowedSrv {
                record: SrvRecordName::MatrixFed,
                target: "old.example.org:8448".into(),
                priority: 10,
                weight: 5,
                elsewhere: true,
            }],
            duration: Duration::from_millis(2),
            errors: vec!["SERVFAIL".to_owned()],
        }));
        report.support = Some(SupportReport {
            result: SupportResult::Ok,
            contacts: vec![SupportContact {
                role: "m.role.admin".to_owned(),
                email_address: Some("admin@example.org".to_owned()),
                matrix_id: Some("@admin:example.org".to_owned()),
            }],
            role_counts: [1, 0, 0],
            support_page: Some("https://example.org/help".to_owned().into()),
            hops: [(
                "https://example.org/.well-known/matrix/support".to_owned(),
                200,
            )]
            .into_iter()
            .collect(),
            error: Some("none".to_owned().into()),
            duration: Duration::from_millis(4).into(),
        });
        for t in &mut report.discovery.targets {
            t.srv.get_or_insert(SrvInfo {
                priority: 0,
                weight: 0,
            });
            t.via_cname = true;
        }
        let template = delegated_ok().addresses.remove(0);
        let a = &mut report.addresses[0];
        let keys = a.keys.get_or_insert_with(|| template.keys.clone().unwrap());
        keys.verify_keys.push(VerifyKey {
            key_id: "ed25519:b".into(),
            key: "short".into(),
            valid_ed25519: false,
            matching_signature: false,
        });
        keys.old_verify_keys.push(OldVerifyKey {
            key_id: "ed25519:old".to_owned(),
            key: "x".repeat(43),
            expired_ts: Some(NOW * 1000),
        });
        keys.warnings
            .push("valid_until_ts is more than 7 days away".to_owned());
        keys.server_name = "other.example".into();
        a.version.get_or_insert_with(|| template.version.unwrap());
        a.failures.push(Failure::new(
            Stage::Keys,
            Reason::KeysServerNameMismatch,
            "the key document is for server_name \"other.example\"",
        ));
        report.client = Some(crate::render::fixtures::client_failing());
        report
    }

    /// `report` with [`HOSTILE`] appended to every string a probed server could control. The patterns name
    /// every field (no `..`), so a new field in any of these types does not compile here until it is poisoned
    /// or marked as not text (`_`); and the text then has to survive it.
    #[expect(
        clippy::too_many_lines,
        reason = "one exhaustive pattern per report type, so a new field cannot skip the poisoning"
    )]
    fn poisoned(mut report: ServerReport) -> ServerReport {
        fn text(s: &mut String) {
            s.push_str(HOSTILE);
        }
        fn boxed(s: &mut Box<str>) {
            *s = format!("{s}{HOSTILE}").into();
        }
        fn poison_hops(hops: &mut Hops) {
            *hops = hops
                .iter()
                .map(|(url, status)| (format!("{url}{HOSTILE}"), status))
                .collect();
        }
        fn shared(s: &mut SharedStr) {
            *s = format!("{s}{HOSTILE}").into();
        }
        fn failure(Failure { message, .. }: &mut Failure) {
            text(message);
        }
        let ServerReport {
            history: _,
            key_history: _,
            server_name,
            started_at: _,
            finished_at: _,
            duration: _,
            discovery,
            addresses,
            failures,
            client,
            support,
            local_certs,
        } = &mut report;
        shared(server_name);
        for file in &mut local_certs.files {
            shared(&mut file.cert_file);
            if let Err(reason) = &mut file.leaf {
                text(reason);
            }
        }
        for n in &mut local_certs.not_reloaded {
            shared(&mut n.cert_file);
            shared(&mut n.name);
        }
        failures.iter_mut().for_each(failure);
        if let Some(ClientReport {
            outcome: _,
            result: _,
            base_url,
            identity_server,
            hops,
            cors: _,
            versions: _,
            latest,
            well_known_duration: _,
            versions_duration: _,
            failures,
        }) = client
        {
            base_url.iter_mut().for_each(text);
            identity_server.iter_mut().chain(latest).for_each(boxed);
            poison_hops(hops);
            failures.iter_mut().for_each(failure);
        }
        for SupportReport {
            result: _,
            contacts,
            role_counts: _,
            support_page,
            hops,
            error,
            duration: _,
        } in support.iter_mut()
        {
            for SupportContact {
                role,
                email_address,
                matrix_id,
            } in contacts
            {
                text(role);
                email_address.iter_mut().chain(matrix_id).for_each(text);
            }
            poison_hops(hops);
            support_page.iter_mut().chain(error).for_each(boxed);
        }
        let DiscoveryReport {
            method: _,
            well_known,
            delegated_server,
            tls_name,
            host_header,
            targets,
            steps: _,
            truncated: _,
            refused,
            shadowed_srv,
        } = discovery;
        if let Some(ShadowedSrvReport {
            records,
            duration: _,
            errors,
        }) = shadowed_srv.as_deref_mut()
        {
            for ShadowedSrv {
                record: _,
                target,
                priority: _,
                weight: _,
                elsewhere: _,
            } in records
            {
                shared(target);
            }
            errors.iter_mut().for_each(text);
        }
        let WellKnownReport {
            per_address: _,
            outcome: _,
            cache_ttl: _,
            hops,
            error,
        } = well_known;
        poison_hops(hops);
        error.iter_mut().for_each(text);
        delegated_server.iter_mut().for_each(boxed);
        shared(tls_name);
        shared(host_header);
        for TargetReport {
            host,
            port: _,
            srv: _,
            addresses: _,
            via_cname: _,
        } in targets
        {
            shared(host);
        }
        for RefusedAddress {
            address: _,
            target_host,
        } in refused
        {
            shared(target_host);
        }
        for AddressReport {
            address: _,
            target_host,
            phases: _,
            // rustls's static names: nothing a server writes.
            tls: _,
            certificate,
            keys,
            version,
            failures,
        } in addresses
        {
            shared(target_host);
            if let Some(CertReport {
                chain,
                failures,
                verified_not_after: _,
            }) = certificate
            {
                for c in chain {
                    let CertFacts {
                        subject,
                        issuer,
                        dns_names,
                        ip_addresses: _,
                        serial,
                        fingerprint_sha256: _,
                        not_before: _,
                        not_after: _,
                    } = std::sync::Arc::make_mut(c);
                    shared(subject);
                    shared(issuer);
                    text(serial);
                    dns_names.iter_mut().for_each(text);
                }
                failures.iter_mut().for_each(failure);
            }
            if let Some(KeysReport {
                server_name,
                valid_until_ts: _,
                verify_keys,
                old_verify_keys,
                warnings,
                raw,
            }) = keys
            {
                shared(server_name);
                *raw = [raw.as_ref(), HOSTILE.as_bytes()].concat().into();
                warnings.iter_mut().for_each(text);
                for VerifyKey {
                    key_id,
                    key,
                    valid_ed25519: _,
                    matching_signature: _,
                } in verify_keys
                {
                    shared(key_id);
                    shared(key);
                }
                for OldVerifyKey {
                    key_id,
                    key,
                    expired_ts: _,
                } in old_verify_keys
                {
                    text(key_id);
                    text(key);
                }
            }
            if let Some(VersionReport { name, version }) = version {
                name.iter_mut().chain(version).for_each(text);
            }
            failures.iter_mut().for_each(failure);
        }
        report
    }

    /// Shadowed SRV records are a discovery step with their warning and fix; the support contacts and page are
    /// a section of their own.
    #[test]
    fn shadowed_records_and_contacts_are_in_plain_words() {
        let text = render(&every_line(delegated_ok()), now(), false);
        assert_contains(
            &text,
            &[
                "SRV records of example.org itself: 1 record, shadowed by the delegation",
                "→ _matrix-fed._tcp.example.org → old.example.org:8448 (priority 10, weight 5): not where the \
                 delegation leads",
                "⚠ warning/srv_shadowed_elsewhere: an SRV record of the server name itself points at \
                 old.example.org:8448",
                "fix: remove the stale _matrix-fed._tcp or _matrix._tcp record",
                "Whom to contact (/.well-known/matrix/support)\n  ok: 1 contact and a support page",
                "  m.role.admin: @admin:example.org, admin@example.org\n",
                "  support page: https://example.org/help\n",
            ],
        );
    }

    /// Issue 11: a hostile server's text cannot act on the terminal. With every remote string poisoned, the
    /// text holds no control character but its own line ends (and colour codes), has as many lines as with
    /// clean strings, and shows the hostile text escaped.
    #[test]
    fn remote_text_is_inert_in_every_field() {
        let clean = [every_line(srv_mismatch()), every_line(delegated_ok())];
        let hostile = clean.clone().map(poisoned);
        for colour in [false, true] {
            let want = render_all(&clean, now(), colour);
            let text = render_all(&hostile, now(), colour);
            assert_eq!(
                stray_controls(&text, colour),
                Vec::<char>::new(),
                "colour {colour}:\n{text}"
            );
            assert_eq!(
                text.matches('\n').count(),
                want.matches('\n').count(),
                "colour {colour}: the same lines as with clean strings:\n{text}"
            );
            assert_contains(&text, &[HOSTILE_ESCAPED]);
            assert!(
                !text.contains("\n✔ federation works") && !text.contains("\n✔ all"),
                "no forged verdict line:\n{text}"
            );
            if colour {
                assert!(text.contains("\x1b[31m✘ federation fails\x1b[0m"), "{text}");
            }
        }
        // Where the hostile text arrives, line by line (colour off).
        let srv: &[&str] = &[
            "  1. .well-known: not_found (HTTP 404 from https://example.org",
            "     → matrix.example.com",
            "  3. A/AAAA matrix.example.com",
            "        fix: certificate names matrix.example.com",
            "      ✘ connect/connection_refused: TCP connect to [2001:db8::5]:8448",
            "        fix: nothing listens on [2001:db8::5]:8448: open the port for IPv6 (let the server or proxy \
             listen on [::]) or remove the AAAA record for matrix.example.com",
        ];
        let delegated: &[&str] = &[
            "example.org",
            "  1. .well-known: delegated to matrix.example.org:443",
            "  certificate must name: matrix.example.org",
            "      certificate: CN=matrix.example.org",
            "        issuer:  CN=Test Intermediate",
            "        names:   matrix.example.org",
            "      keys: server_name other.example",
            "        ✔ ed25519:a_AbCd",
            "        ✘ ed25519:b",
            "        ⚠ valid_until_ts is more than 7 days away",
            "      version: Synapse",
            "      ✘ keys/keys_server_name_mismatch: the key document is for server_name",
            "        fix: the key document names other.example",
            "      ⚠ warning/srv_target_cname: SRV target matrix.example.org",
            "  ✘ 198.51.100.7:443 (ipv4, from matrix.example.org",
            "  ⚠ 10.0.0.5:443 (ipv4, from matrix.example.org",
        ];
        for (report, prefixes) in hostile.iter().zip([srv, delegated]) {
            let text = render(report, now(), false);
            for prefix in prefixes {
                let line = text
                    .lines()
                    .find(|l| l.starts_with(prefix))
                    .unwrap_or_else(|| panic!("no line starts with {prefix:?}:\n{text}"));
                assert!(line.contains(HOSTILE_ESCAPED), "{line}");
            }
        }
    }
}
