//! The `check` command's human report: a [`ServerReport`] as plain text for an operator at a shell, with every
//! failure explained in plain words together with its likely fix.
//!
//! This module only formats. Probing, exit codes and `--json` (see `render/tester.rs`) belong to `main.rs`. The
//! fixes live in one table, [`hint`], keyed by the closed [`Reason`] set, so a new reason cannot ship without
//! one (the match is exhaustive, and a unit test checks that each hint says something).
//!
//! Much of what a report holds comes from the probed servers (version, key ids, certificate names, error texts),
//! and a hostile one could put terminal controls there: clear the screen, retitle the window, or end a line and
//! forge a `✔` one. Every such string enters the text through [`Inert`], which writes control and bidi
//! characters as visible escapes, and [`Paint`] passes what it colours through it too; so the only control
//! characters in the text are our own line ends and colour codes.

use std::fmt::{self, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::report::{
    AddressReport, CertFacts, Failure, Family, KeysReport, Method, Phase, Reason, RefusedAddress,
    ServerReport, ServerWarning, Stage, Step, TargetReport, Warning, WellKnownOutcome,
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
    for (i, step) in discovery_steps(report).iter().enumerate() {
        let mut lines = step.lines();
        if let Some(first) = lines.next() {
            let _ = writeln!(out, "  {}. {first}", i + 1);
        }
        for line in lines {
            let _ = writeln!(out, "     {line}");
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
    for warning in warnings.iter().filter(|w| w.address.is_none()) {
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
    out
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
        Inert(&warning.message)
    );
    let _ = writeln!(out, "        fix: {}", warning_hint(warning.warning));
}

/// What to do about a warning, in plain words.
#[must_use]
pub fn warning_hint(warning: Warning) -> &'static str {
    match warning {
        Warning::AddressNotPublic => {
            "default-configured peers skip this address and use the others: remove it from public DNS (often \
             an internal address leaking through split-horizon DNS); if it is there on purpose for a private \
             federation, set probe.allow_private_addresses"
        }
        Warning::SrvTargetCname => {
            "point the SRV record at the canonical host name (the name the CNAME leads to), which has the A/AAAA \
             records"
        }
    }
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

/// The likely fix for `failure`, in plain words, filled in from the report (the names the certificate holds
/// and must hold, the address and its family, the Host header). `address` is the address the failure belongs
/// to, `None` for a server-level failure.
#[must_use]
pub fn hint(failure: &Failure, report: &ServerReport, address: Option<&AddressReport>) -> String {
    let d = &report.discovery;
    let tls_name = d.tls_name.as_str();
    let addr = address.map_or_else(|| "the server".to_owned(), |a| a.address.to_string());
    let port = address.map_or(8448, |a| a.address.port());
    let ipv6 = address.is_some_and(|a| a.family() == Family::Ipv6);
    let host = address.map_or(tls_name, |a| a.target_host.as_str());
    // An IP literal has no AAAA record to remove.
    let or_remove_aaaa = if host.parse::<std::net::IpAddr>().is_ok() {
        String::new()
    } else {
        format!(" or remove the AAAA record for {host}")
    };
    let srv_record = match d.method {
        Method::SrvMatrix => format!("_matrix._tcp.{tls_name}"),
        _ => format!("_matrix-fed._tcp.{tls_name}"),
    };
    let path = match failure.stage {
        Stage::Version => "/_matrix/federation/v1/version",
        _ => "/_matrix/key/v2/server",
    };
    match failure.reason {
        Reason::DnsNxdomain => "the name does not exist in DNS: check its spelling (server name, SRV target \
             or .well-known m.server) and that the domain's zone is published"
            .to_owned(),
        Reason::DnsNoRecords => "the name exists but has no A or AAAA record: add one that points at the \
             homeserver or its reverse proxy"
            .to_owned(),
        Reason::DnsError => "the DNS servers failed to answer (SERVFAIL, REFUSED or a malformed answer): check \
             that the zone's nameservers work and its DNSSEC signatures are valid (dig +dnssec)"
            .to_owned(),
        Reason::DnsTimeout => "no DNS answer in time: check that the domain's nameservers are up and answer \
             on UDP and TCP port 53"
            .to_owned(),
        Reason::SrvTargetInvalid => format!(
            "fix the SRV record {srv_record}: its target must be a host name with A/AAAA records; or delete \
             it, and peers use {tls_name}:8448"
        ),
        Reason::ConnectionRefused if ipv6 => format!(
            "nothing listens on {addr}: open the port for IPv6 (let the server or proxy listen on \
             [::]){or_remove_aaaa}"
        ),
        Reason::ConnectionRefused => format!(
            "nothing listens on {addr}: start the homeserver or reverse proxy on port {port}, or forward the \
             port to it"
        ),
        Reason::ConnectionTimeout if ipv6 => format!(
            "{addr} did not accept the connection in time: a firewall probably drops port {port} over IPv6; \
             open it{or_remove_aaaa}"
        ),
        Reason::ConnectionTimeout => format!(
            "{addr} did not accept the connection in time: a firewall probably drops port {port}; open it"
        ),
        Reason::Unreachable if ipv6 => format!(
            "there is no route to {addr}: fix IPv6 routing to the server{or_remove_aaaa} (or this machine \
             has no IPv6 connectivity)"
        ),
        Reason::Unreachable => format!(
            "there is no route to {addr}: check that the A record for {host} holds the server's public address"
        ),
        Reason::TlsHandshakeFailed => format!(
            "TLS failed on {addr}: check that port {port} serves HTTPS (not plain HTTP) with a certificate \
             for {tls_name}, and that TLS 1.2 or 1.3 is enabled"
        ),
        Reason::TlsTimeout => format!(
            "{addr} accepted TCP but did not finish TLS in time: check what listens on port {port} (it may \
             speak plain HTTP, or be overloaded)"
        ),
        Reason::CertExpired => "the certificate has expired: renew it, reload the web server, and check the \
             renewal job (for example certbot's timer)"
            .to_owned(),
        Reason::CertNotYetValid => "the certificate is not valid yet: check the clock of the server that \
             issued or serves it, or wait until its notBefore"
            .to_owned(),
        Reason::CertHostnameMismatch => hostname_mismatch(report, address),
        Reason::CertUnknownIssuer => "the chain does not lead to a trusted CA: serve the full chain \
             (fullchain.pem), not just the leaf; self-signed and private-CA certificates do not federate"
            .to_owned(),
        Reason::CertInvalid => "the certificate cannot be used (unparseable, wrong key usage or an unsupported \
             algorithm): reissue it from a public CA as an ordinary TLS server certificate"
            .to_owned(),
        Reason::Timeout if address.is_none() => "the probe did not finish in time: DNS or the servers \
             answer too slowly; see the discovery steps above"
            .to_owned(),
        Reason::Timeout => format!(
            "{addr} accepted the request for {path} but did not answer in time: check that the homeserver \
             behind the proxy is running and not overloaded"
        ),
        Reason::HttpStatus => format!(
            "{path} did not answer 200: make the reverse proxy forward all of /_matrix/ to the homeserver \
             (requests carry Host: {})",
            d.host_header
        ),
        Reason::NotJson => format!(
            "{path} did not answer JSON: a proxy may be routing /_matrix to another backend (a web site or \
             an error page); forward all of /_matrix/ to the homeserver"
        ),
        Reason::KeysServerNameMismatch => {
            let served = address
                .and_then(|a| a.keys.as_ref())
                .map_or("", |k| k.server_name.as_str());
            let served = if served.is_empty() {
                "no server name".to_owned()
            } else {
                served.to_owned()
            };
            format!(
                "the key document names {served} but must name {}: {addr} serves another homeserver; check \
                 the homeserver's server_name, or the DNS, SRV or .well-known that points here",
                report.server_name
            )
        }
        Reason::KeysBadSignature => "a signing key's signature over the key document does not verify: \
             something between the homeserver and the internet rewrites the JSON, or the homeserver's \
             signing key does not match the key it publishes; serve /_matrix/key/v2/server unmodified"
            .to_owned(),
        Reason::KeysNoEd25519Key => "the key document has no usable ed25519 key: check the homeserver's \
             signing key file (Synapse: signing_key_path)"
            .to_owned(),
        Reason::KeysExpired => "the key document's valid_until_ts is missing or in the past: the homeserver \
             does not refresh it; check its clock and restart it"
            .to_owned(),
        Reason::AddressNotPublic => format!(
            "peers with a default configuration refuse loopback, private, link-local, CGNAT, documentation and \
             other reserved addresses (Synapse's ip_range_blacklist): publish public A/AAAA records for \
             {host} (check with a public resolver if your network answers differently); to monitor a private \
             federation, set probe.allow_private_addresses (--probe.allow-private-addresses)"
        ),
    }
}

/// `cert_hostname_mismatch`, with the names the certificate holds and the fix that fits the discovery path.
fn hostname_mismatch(report: &ServerReport, address: Option<&AddressReport>) -> String {
    let d = &report.discovery;
    let tls_name = d.tls_name.as_str();
    let leaf = address
        .and_then(|a| a.certificate.as_ref())
        .and_then(|c| c.chain.first());
    let names = leaf.map(|l| cert_names(l)).unwrap_or_default();
    let holds = if names.is_empty() {
        "the certificate names no host".to_owned()
    } else {
        format!("certificate names {}", names.join(", "))
    };
    let fix = match d.method {
        Method::SrvMatrixFed | Method::SrvMatrix if d.delegated_server.is_none() => {
            let target = address.map_or_else(
                || "the SRV target".to_owned(),
                |a| format!("{}:{}", a.target_host, a.address.port()),
            );
            format!(
                "get a certificate for {tls_name}, or delegate with .well-known \
                 ({{\"m.server\": \"{target}\"}}) so that peers expect the target's certificate; an SRV \
                 record never changes the name the certificate must hold"
            )
        }
        _ if d.delegated_server.is_some() => format!(
            "{tls_name} comes from .well-known m.server: add it to the certificate, or set m.server to a \
             name the certificate holds"
        ),
        Method::IpLiteral => format!(
            "get a certificate with {tls_name} as an IP subjectAltName, or use a DNS server name"
        ),
        _ => format!("get a certificate that includes {tls_name}"),
    };
    format!("{holds} but must name {tls_name}: {fix}")
}

/// One numbered discovery step per entry; continuation lines follow a `\n`.
fn discovery_steps(report: &ServerReport) -> Vec<String> {
    let d = &report.discovery;
    let took = |step: Step| {
        d.steps
            .iter()
            .find(|(s, _)| *s == step)
            .map_or_else(String::new, |(_, t)| format!(" [{}]", ms(*t)))
    };
    let mut steps = Vec::new();
    let wk = &d.well_known;
    match wk.outcome {
        WellKnownOutcome::Skipped => match d.method {
            Method::IpLiteral => {
                steps
                    .push("IP literal: connect to it directly (no .well-known, no SRV)".to_owned());
            }
            Method::ExplicitPort => {
                steps.push("explicit port: no .well-known, no SRV".to_owned());
            }
            _ => steps.push("discovery did not finish (see below)".to_owned()),
        },
        WellKnownOutcome::Delegated => {
            let delegated = Inert(d.delegated_server.as_deref().unwrap_or("?"));
            let ttl = wk
                .cache_ttl
                .map_or_else(String::new, |t| format!(" (cache {})", coarse(t)));
            let redirects = match wk.hops.len() {
                0 | 1 => String::new(),
                n => format!(" after {}", count(n - 1, "redirect", "redirects")),
            };
            steps.push(format!(
                ".well-known: delegated to {delegated}{ttl}{redirects}{}",
                took(Step::WellKnown)
            ));
            match d.method {
                Method::IpLiteral => {
                    steps.push(format!("{delegated} is an IP literal: no SRV"));
                }
                Method::ExplicitPort => {
                    steps.push(format!("{delegated} has an explicit port: no SRV"));
                }
                _ => {}
            }
        }
        outcome => {
            let why = wk
                .error
                .as_deref()
                .map_or_else(String::new, |e| format!(" ({})", Inert(e)));
            steps.push(format!(
                ".well-known: {outcome}{why} → SRV{}",
                took(Step::WellKnown)
            ));
        }
    }

    if d.steps.iter().any(|(s, _)| *s == Step::Srv) {
        let h = Inert(&d.tls_name);
        let srv = took(Step::Srv);
        let srv_targets = || {
            d.targets
                .iter()
                .filter_map(|t| {
                    t.srv.map(|s| {
                        format!(
                            "\n→ {}:{} (priority {}, weight {})",
                            Inert(&t.host),
                            t.port,
                            s.priority,
                            s.weight
                        )
                    })
                })
                .collect::<String>()
        };
        let n = count(d.targets.len(), "target", "targets");
        match d.method {
            Method::SrvMatrixFed => {
                steps.push(format!("SRV _matrix-fed._tcp.{h}: {n}{srv}{}", srv_targets()));
            }
            Method::SrvMatrix => steps.push(format!(
                "SRV _matrix-fed._tcp.{h}: not found; _matrix._tcp.{h} (deprecated, add a _matrix-fed \
                 record): {n}{srv}{}",
                srv_targets()
            )),
            Method::DefaultPort => {
                let port = d.targets.first().map_or(8448, |t| t.port);
                steps.push(format!(
                    "SRV: no _matrix-fed._tcp.{h} or _matrix._tcp.{h} record → port {port}{srv}"
                ));
            }
            _ => steps.push(format!("SRV _matrix-fed._tcp.{h}: lookup failed (see below){srv}")),
        }
    }

    let lookups: Vec<&TargetReport> = d
        .targets
        .iter()
        .filter(|t| t.host.parse::<std::net::IpAddr>().is_err())
        .collect();
    if !lookups.is_empty() {
        let lines: Vec<String> = lookups
            .iter()
            .map(|t| {
                let found = if t.addresses.is_empty() {
                    "no addresses".to_owned()
                } else {
                    t.addresses
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let cname = if t.via_cname { " (via CNAME)" } else { "" };
                format!("{}: {found}{cname}", Inert(&t.host))
            })
            .collect();
        let took = took(Step::AddressLookup);
        if let [one] = lines.as_slice() {
            steps.push(format!("A/AAAA {one}{took}"));
        } else {
            steps.push(format!("A/AAAA{took}\n{}", lines.join("\n")));
        }
    }
    steps
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
                format!(
                    "TLS {} {} {}",
                    Inert(&tls.version),
                    Inert(&tls.cipher),
                    ms(*t)
                )
            }
            (Phase::TlsHandshake, None) => format!("TLS {}", ms(*t)),
            (phase, _) => format!("{phase} {}", ms(*t)),
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
    // `hint` repeats remote names (certificate names, the served server name) and stays raw for the status
    // page, which HTML-escapes it: so it is made inert here.
    let _ = writeln!(
        out,
        "        fix: {}",
        Inert(&hint(failure, report, address))
    );
}

/// The names a certificate holds: DNS names, then IP addresses.
fn cert_names(c: &CertFacts) -> Vec<String> {
    c.dns_names
        .iter()
        .cloned()
        .chain(c.ip_addresses.iter().map(ToString::to_string))
        .collect()
}

/// `62 days left`, `5 hours left`, `expired 3 days ago`.
fn days_left(not_after: i64, now: SystemTime) -> String {
    let delta = not_after - unix(now);
    let days = delta.abs() / 86_400;
    match (delta >= 0, days) {
        (true, 0) => format!("expires {}", relative(delta)),
        (true, d) => format!("{} left", count(d as usize, "day", "days")),
        (false, 0) => format!("expired {}", relative(delta)),
        (false, d) => format!("expired {} ago", count(d as usize, "day", "days")),
    }
}

/// `in 3 days`, `in 5 hours`, `2 minutes ago`: the largest whole unit.
fn relative(delta_secs: i64) -> String {
    let n = delta_secs.unsigned_abs();
    let amount = match n {
        0..60 => count(n as usize, "second", "seconds"),
        60..3_600 => count((n / 60) as usize, "minute", "minutes"),
        3_600..86_400 => count((n / 3_600) as usize, "hour", "hours"),
        _ => count((n / 86_400) as usize, "day", "days"),
    };
    if delta_secs >= 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// A cache lifetime in its largest whole unit: `24h`, `5m`, `1h 30m` stays `90m`.
fn coarse(d: Duration) -> String {
    let s = d.as_secs();
    if s > 0 && s.is_multiple_of(3_600) {
        format!("{}h", s / 3_600)
    } else if s > 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// A Unix timestamp as `2025-01-31 12:00:00Z` (the epoch for anything before it).
fn date(secs: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replacen('T', " ", 1)
}

/// Unix seconds (negative before 1970).
pub(crate) fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Milliseconds, with one decimal under 10 ms.
pub(crate) fn ms(d: Duration) -> String {
    let millis = d.as_secs_f64() * 1000.0;
    if millis < 10.0 {
        format!("{millis:.1} ms")
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// `1 address`, `3 addresses`.
pub(crate) fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// ANSI styling when on, plain text when off. What it styles often holds remote text (a key id, the server
/// name), so it goes through [`Inert`]: the escape sequences are ours alone.
struct Paint(bool);

impl Paint {
    fn style(&self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{}\x1b[0m", Inert(text))
        } else {
            Inert(text).to_string()
        }
    }

    fn good(&self, text: &str) -> String {
        self.style("32", text)
    }

    fn bad(&self, text: &str) -> String {
        self.style("31", text)
    }

    fn warn(&self, text: &str) -> String {
        self.style("33", text)
    }

    fn bold(&self, text: &str) -> String {
        self.style("1", text)
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
    use std::net::IpAddr;

    use super::*;
    use crate::report::{
        CertReport, DiscoveryReport, OldVerifyKey, SharedStr, SrvInfo, TlsFacts, VerifyKey,
        VersionReport, WellKnownReport,
    };

    /// 2025-06-01 00:00:00Z.
    const NOW: i64 = 1_748_736_000;
    const DAY: i64 = 86_400;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW as u64)
    }

    fn leaf(names: &[&str], not_after: i64) -> CertFacts {
        CertFacts {
            subject: format!("CN={}", names.first().unwrap_or(&"")),
            issuer: "CN=Test Intermediate".to_owned(),
            dns_names: names.iter().map(|&n| n.to_owned()).collect(),
            ip_addresses: Vec::new(),
            serial: "01".to_owned(),
            fingerprint_sha256: crate::report::Fingerprint([0xab; 32]),
            not_before: NOW - 60 * DAY,
            not_after,
        }
    }

    fn address(addr: &str, host: &str) -> AddressReport {
        AddressReport {
            address: addr.parse().unwrap(),
            target_host: host.into(),
            phases: vec![(Phase::Connect, Duration::from_micros(1_500))],
            tls: None,
            certificate: None,
            keys: None,
            version: None,
            failures: Vec::new(),
        }
    }

    /// `example.org` → no well-known → SRV → `matrix.example.com`, whose certificate names only itself; its
    /// IPv6 address refuses connections.
    fn srv_mismatch() -> ServerReport {
        let mut v4 = address("203.0.113.5:8448", "matrix.example.com");
        v4.phases
            .push((Phase::TlsHandshake, Duration::from_millis(23)));
        v4.tls = Some(TlsFacts {
            version: "TLSv1_3".into(),
            cipher: "TLS13_AES_256_GCM_SHA384".into(),
        });
        let mismatch = Failure::new(
            Stage::Certificate,
            Reason::CertHostnameMismatch,
            "certificate not valid for name \"example.org\"",
        );
        v4.certificate = Some(CertReport {
            chain: vec![leaf(&["matrix.example.com"], NOW + 30 * DAY + 3_600).into()],
            failures: vec![mismatch.clone()],
        });
        v4.failures.push(mismatch);
        let mut v6 = address("[2001:db8::5]:8448", "matrix.example.com");
        v6.failures.push(Failure::new(
            Stage::Connect,
            Reason::ConnectionRefused,
            "TCP connect to [2001:db8::5]:8448: Connection refused (os error 111)",
        ));
        ServerReport {
            server_name: "example.org".into(),
            started_at: now(),
            finished_at: now(),
            duration: Duration::from_millis(140),
            discovery: DiscoveryReport {
                method: Method::SrvMatrixFed,
                well_known: WellKnownReport {
                    outcome: WellKnownOutcome::NotFound,
                    cache_ttl: None,
                    hops: vec![(
                        "https://example.org/.well-known/matrix/server".to_owned(),
                        404,
                    )],
                    error: Some(
                        "HTTP 404 from https://example.org/.well-known/matrix/server".to_owned(),
                    ),
                },
                delegated_server: None,
                tls_name: "example.org".into(),
                host_header: "example.org".into(),
                targets: vec![TargetReport {
                    host: "matrix.example.com".into(),
                    port: 8448,
                    srv: Some(SrvInfo {
                        priority: 10,
                        weight: 5,
                    }),
                    addresses: vec![
                        "203.0.113.5".parse().unwrap(),
                        "2001:db8::5".parse().unwrap(),
                    ],
                    via_cname: false,
                }],
                steps: vec![
                    (Step::WellKnown, Duration::from_millis(40)),
                    (Step::Srv, Duration::from_millis(3)),
                    (Step::AddressLookup, Duration::from_millis(2)),
                ],
                truncated: false,
                refused: Vec::new(),
            },
            addresses: vec![v4, v6],
            failures: Vec::new(),
        }
    }

    /// `example.org` delegates to `matrix.example.org:443`, which passes everything.
    fn delegated_ok() -> ServerReport {
        let mut a = address("198.51.100.7:443", "matrix.example.org");
        a.phases.extend([
            (Phase::TlsHandshake, Duration::from_millis(12)),
            (Phase::Keys, Duration::from_millis(4)),
            (Phase::Version, Duration::from_millis(3)),
        ]);
        a.tls = Some(TlsFacts {
            version: "TLSv1_3".into(),
            cipher: "TLS13_AES_128_GCM_SHA256".into(),
        });
        a.certificate = Some(CertReport {
            chain: vec![
                leaf(&["matrix.example.org"], NOW + 62 * DAY).into(),
                leaf(&[], NOW + 20 * DAY).into(),
            ],
            failures: Vec::new(),
        });
        a.keys = Some(KeysReport {
            server_name: "example.org".to_owned(),
            valid_until_ts: Some((NOW + 3 * DAY) * 1000),
            verify_keys: vec![VerifyKey {
                key_id: "ed25519:a_AbCd".to_owned(),
                key: "x".repeat(43),
                valid_ed25519: true,
                matching_signature: true,
            }],
            old_verify_keys: Vec::new(),
            warnings: Vec::new(),
            raw: String::new(),
        });
        a.version = Some(VersionReport {
            name: Some("Synapse".to_owned()),
            version: Some("1.120.0".to_owned()),
        });
        ServerReport {
            server_name: "example.org".into(),
            started_at: now(),
            finished_at: now(),
            duration: Duration::from_millis(80),
            discovery: DiscoveryReport {
                method: Method::ExplicitPort,
                well_known: WellKnownReport {
                    outcome: WellKnownOutcome::Delegated,
                    cache_ttl: Some(Duration::from_secs(24 * 3_600)),
                    hops: vec![(
                        "https://example.org/.well-known/matrix/server".to_owned(),
                        200,
                    )],
                    error: None,
                },
                delegated_server: Some("matrix.example.org:443".to_owned()),
                tls_name: "matrix.example.org".into(),
                host_header: "matrix.example.org:443".into(),
                targets: vec![TargetReport {
                    host: "matrix.example.org".into(),
                    port: 443,
                    srv: None,
                    addresses: vec!["198.51.100.7".parse().unwrap()],
                    via_cname: true,
                }],
                steps: vec![
                    (Step::WellKnown, Duration::from_millis(50)),
                    (Step::AddressLookup, Duration::from_millis(2)),
                ],
                truncated: false,
                refused: Vec::new(),
            },
            addresses: vec![a],
            failures: Vec::new(),
        }
    }

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
    fn every_reason_has_a_hint() {
        let report = srv_mismatch();
        let v4 = &report.addresses[0];
        let v6 = &report.addresses[1];
        let mut seen = std::collections::HashSet::new();
        for &reason in Reason::ALL {
            for address in [None, Some(v4), Some(v6)] {
                let failure = Failure::new(Stage::Connect, reason, "x");
                let text = hint(&failure, &report, address);
                assert!(text.len() > 40, "{reason}: {text:?}");
                assert!(
                    text.contains(':'),
                    "{reason}: says what and then the fix: {text:?}"
                );
            }
            let text = hint(&Failure::new(Stage::Keys, reason, "x"), &report, Some(v4));
            assert!(
                seen.insert(text.clone()),
                "{reason} shares its hint: {text}"
            );
        }
    }

    /// The leaf certificate of `a`, to change in a test.
    fn leaf_mut(a: &mut AddressReport) -> &mut CertFacts {
        std::sync::Arc::make_mut(&mut a.certificate.as_mut().unwrap().chain[0])
    }

    #[test]
    fn hostname_mismatch_hints_follow_the_discovery_path() {
        let failure = Failure::new(Stage::Certificate, Reason::CertHostnameMismatch, "x");
        let mut report = delegated_ok();
        leaf_mut(&mut report.addresses[0]).dns_names = vec!["example.org".to_owned()];
        let text = hint(&failure, &report, Some(&report.addresses[0]));
        assert_eq!(
            text,
            "certificate names example.org but must name matrix.example.org: matrix.example.org comes from \
             .well-known m.server: add it to the certificate, or set m.server to a name the certificate holds"
        );

        report.discovery.delegated_server = None;
        report.discovery.method = Method::ExplicitPort;
        leaf_mut(&mut report.addresses[0]).dns_names = Vec::new();
        let text = hint(&failure, &report, Some(&report.addresses[0]));
        assert_eq!(
            text,
            "the certificate names no host but must name matrix.example.org: get a certificate that \
             includes matrix.example.org"
        );

        report.discovery.method = Method::IpLiteral;
        report.discovery.tls_name = "198.51.100.7".into();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        leaf_mut(&mut report.addresses[0]).ip_addresses = vec![ip];
        let text = hint(&failure, &report, Some(&report.addresses[0]));
        assert!(
            text.starts_with(
                "certificate names 192.0.2.1 but must name 198.51.100.7: get a \
                                  certificate with 198.51.100.7 as an IP subjectAltName"
            ),
            "{text}"
        );
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
    fn times_read_as_whole_units() {
        let at = |s: i64| UNIX_EPOCH + Duration::from_secs(s as u64);
        assert_eq!(days_left(NOW + 62 * DAY + 5, at(NOW)), "62 days left");
        assert_eq!(days_left(NOW + DAY, at(NOW)), "1 day left");
        assert_eq!(days_left(NOW + 5 * 3_600, at(NOW)), "expires in 5 hours");
        assert_eq!(days_left(NOW - 120, at(NOW)), "expired 2 minutes ago");
        assert_eq!(days_left(NOW - 3 * DAY - 1, at(NOW)), "expired 3 days ago");
        assert_eq!(relative(0), "in 0 seconds");
        assert_eq!(relative(-1), "1 second ago");
        assert_eq!(coarse(Duration::from_secs(300)), "5m");
        assert_eq!(coarse(Duration::from_secs(90)), "90s");
        assert_eq!(date(NOW), "2025-06-01 00:00:00Z");
        assert_eq!(ms(Duration::from_micros(340)), "0.3 ms");
        assert_eq!(ms(Duration::from_millis(1234)), "1234 ms");
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
            key_id: "ed25519:b".to_owned(),
            key: "short".to_owned(),
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
        keys.server_name = "other.example".to_owned();
        a.version.get_or_insert_with(|| template.version.unwrap());
        a.failures.push(Failure::new(
            Stage::Keys,
            Reason::KeysServerNameMismatch,
            "the key document is for server_name \"other.example\"",
        ));
        report
    }

    /// `report` with [`HOSTILE`] appended to every string a probed server could control. The patterns name
    /// every field (no `..`), so a new field in any of these types does not compile here until it is poisoned
    /// or marked as not text (`_`); and the text then has to survive it.
    fn poisoned(mut report: ServerReport) -> ServerReport {
        fn text(s: &mut String) {
            s.push_str(HOSTILE);
        }
        fn shared(s: &mut SharedStr) {
            *s = format!("{s}{HOSTILE}").into();
        }
        fn cow(s: &mut std::borrow::Cow<'static, str>) {
            s.to_mut().push_str(HOSTILE);
        }
        fn failure(Failure { message, .. }: &mut Failure) {
            text(message);
        }
        let ServerReport {
            server_name,
            started_at: _,
            finished_at: _,
            duration: _,
            discovery,
            addresses,
            failures,
        } = &mut report;
        shared(server_name);
        failures.iter_mut().for_each(failure);
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
        } = discovery;
        let WellKnownReport {
            outcome: _,
            cache_ttl: _,
            hops,
            error,
        } = well_known;
        for (url, _) in hops {
            text(url);
        }
        error.iter_mut().chain(delegated_server).for_each(text);
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
            tls,
            certificate,
            keys,
            version,
            failures,
        } in addresses
        {
            shared(target_host);
            if let Some(TlsFacts { version, cipher }) = tls {
                cow(version);
                cow(cipher);
            }
            if let Some(CertReport { chain, failures }) = certificate {
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
                    text(subject);
                    text(issuer);
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
                text(server_name);
                text(raw);
                warnings.iter_mut().for_each(text);
                for VerifyKey {
                    key_id,
                    key,
                    valid_ed25519: _,
                    matching_signature: _,
                } in verify_keys
                {
                    text(key_id);
                    text(key);
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
            "      connect 1.5 ms · TLS TLSv1_3",
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
