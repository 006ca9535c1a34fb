//! What a report means for an operator, in plain words: for each failure [`Reason`] what is wrong and its likely
//! fix ([`hint`]), for each [`Warning`] its message and fix, and the discovery path told step by step. Written
//! once here for the `check` text, the status page and the JSON report's warnings.
//!
//! The words only, as raw text that may repeat what probed servers sent (names, error texts): making it safe for
//! a terminal (`text::Inert`) or a page (`html::Esc`), colour and layout belong to each renderer; numbers and
//! dates to `render/format.rs`. The tables are exhaustive matches on the closed [`Reason`] and [`Warning`] sets,
//! so a new value cannot ship without its words (and a unit test checks that each says something of its own).

use crate::render::format::{coarse, count, ms};
use crate::report::{
    AddressClass, AddressReport, CertFacts, Failure, Family, Method, Reason, ServerReport,
    ServerWarning, Stage, Step, TargetReport, Warning, WellKnownOutcome, WellKnownReport,
};

/// The likely fix for `failure`, in plain words, filled in from the report (the names the certificate holds
/// and must hold, the address and its family, the Host header). `address` is the address the failure belongs
/// to, `None` for a server-level failure.
#[must_use]
pub fn hint(failure: &Failure, report: &ServerReport, address: Option<&AddressReport>) -> String {
    if failure.stage == Stage::Client {
        return report.client.as_ref().map_or_else(String::new, |c| {
            crate::render::client_words::fix(c, &report.server_name)
        });
    }
    let at = At::new(report, address);
    match failure.reason {
        Reason::DnsNxdomain
        | Reason::DnsNoRecords
        | Reason::DnsError
        | Reason::DnsTimeout
        | Reason::SrvTargetInvalid
        | Reason::AddressNotPublic => dns_hint(failure.reason, report, &at),
        Reason::ConnectionRefused
        | Reason::ConnectionTimeout
        | Reason::Unreachable
        | Reason::TlsHandshakeFailed
        | Reason::TlsTimeout => connection_hint(failure.reason, report, &at),
        Reason::CertExpired
        | Reason::CertNotYetValid
        | Reason::CertHostnameMismatch
        | Reason::CertUnknownIssuer
        | Reason::CertInvalid => certificate_hint(failure.reason, report, address),
        Reason::Timeout
        | Reason::HttpStatus
        | Reason::NotJson
        | Reason::KeysServerNameMismatch
        | Reason::KeysBadSignature
        | Reason::KeysNoEd25519Key
        | Reason::KeysExpired => answer_hint(failure, report, address, &at),
        // Stage `client` is answered above from the client report; these words stand when it is missing.
        Reason::ClientWellKnownInvalid => "the client well-known is not what the spec asks for: serve \
            /.well-known/matrix/client with {\"m.homeserver\": {\"base_url\": \"https://<homeserver>\"}}"
            .to_owned(),
        Reason::ClientVersionsInvalid => "the client base URL does not lead to a homeserver: \
            /_matrix/client/versions must answer {\"versions\": [...]}; route /_matrix/client to it"
            .to_owned(),
    }
}

/// Where a failure happened, in the words its hint uses.
struct At<'a> {
    /// The address, or "the server" for a server-level failure.
    addr: String,
    port: u16,
    ipv6: bool,
    /// The host the address came from (the certificate name for a server-level failure).
    host: &'a str,
}

impl<'a> At<'a> {
    fn new(report: &'a ServerReport, address: Option<&'a AddressReport>) -> Self {
        let tls_name = report.discovery.tls_name.as_str();
        Self {
            addr: address.map_or_else(|| "the server".to_owned(), |a| a.address.to_string()),
            port: address.map_or(8448, |a| a.address.port()),
            ipv6: address.is_some_and(|a| a.family() == Family::Ipv6),
            host: address.map_or(tls_name, |a| a.target_host.as_str()),
        }
    }

    /// " or remove the AAAA record for HOST", or nothing for an IP literal (it has no AAAA record to remove).
    fn or_remove_aaaa(&self) -> String {
        if self.host.parse::<std::net::IpAddr>().is_ok() {
            String::new()
        } else {
            format!(" or remove the AAAA record for {}", self.host)
        }
    }
}

/// DNS and the addresses it gave.
fn dns_hint(reason: Reason, report: &ServerReport, at: &At<'_>) -> String {
    let d = &report.discovery;
    let tls_name = d.tls_name.as_str();
    let host = at.host;
    match reason {
        Reason::DnsNxdomain => {
            "the name does not exist in DNS: check its spelling (server name, SRV target \
             or .well-known m.server) and that the domain's zone is published"
                .to_owned()
        }
        Reason::DnsNoRecords => {
            "the name exists but has no A or AAAA record: add one that points at the \
             homeserver or its reverse proxy"
                .to_owned()
        }
        Reason::DnsError => {
            "the DNS servers failed to answer (SERVFAIL, REFUSED or a malformed answer): check \
             that the zone's nameservers work and its DNSSEC signatures are valid (dig +dnssec)"
                .to_owned()
        }
        Reason::DnsTimeout => {
            "no DNS answer in time: check that the domain's nameservers are up and answer \
             on UDP and TCP port 53"
                .to_owned()
        }
        Reason::SrvTargetInvalid => {
            let srv_record = match d.method {
                Method::SrvMatrix => format!("_matrix._tcp.{tls_name}"),
                _ => format!("_matrix-fed._tcp.{tls_name}"),
            };
            format!(
                "fix the SRV record {srv_record}: its target must be a host name with A/AAAA records; or \
                 delete it, and peers use {tls_name}:8448"
            )
        }
        _ => format!(
            "peers with a default configuration refuse loopback, private, link-local, CGNAT, documentation and \
             other reserved addresses (Synapse's ip_range_blacklist): publish public A/AAAA records for \
             {host} (check with a public resolver if your network answers differently); to monitor a private \
             federation, set probe.allow_private_addresses (--probe.allow-private-addresses)"
        ),
    }
}

/// TCP and the TLS handshake.
fn connection_hint(reason: Reason, report: &ServerReport, at: &At<'_>) -> String {
    let tls_name = report.discovery.tls_name.as_str();
    let At {
        addr,
        port,
        ipv6,
        host,
    } = at;
    match reason {
        Reason::ConnectionRefused if *ipv6 => format!(
            "nothing listens on {addr}: open the port for IPv6 (let the server or proxy listen on \
             [::]){}",
            at.or_remove_aaaa()
        ),
        Reason::ConnectionRefused => format!(
            "nothing listens on {addr}: start the homeserver or reverse proxy on port {port}, or forward the \
             port to it"
        ),
        Reason::ConnectionTimeout if *ipv6 => format!(
            "{addr} did not accept the connection in time: a firewall probably drops port {port} over IPv6; \
             open it{}",
            at.or_remove_aaaa()
        ),
        Reason::ConnectionTimeout => format!(
            "{addr} did not accept the connection in time: a firewall probably drops port {port}; open it"
        ),
        Reason::Unreachable if *ipv6 => format!(
            "there is no route to {addr}: fix IPv6 routing to the server{} (or this machine \
             has no IPv6 connectivity)",
            at.or_remove_aaaa()
        ),
        Reason::Unreachable => format!(
            "there is no route to {addr}: check that the A record for {host} holds the server's public address"
        ),
        Reason::TlsHandshakeFailed => format!(
            "TLS failed on {addr}: check that port {port} serves HTTPS (not plain HTTP) with a certificate \
             for {tls_name}, and that TLS 1.2 or 1.3 is enabled"
        ),
        _ => format!(
            "{addr} accepted TCP but did not finish TLS in time: check what listens on port {port} (it may \
             speak plain HTTP, or be overloaded)"
        ),
    }
}

/// The certificate's verdict.
fn certificate_hint(
    reason: Reason,
    report: &ServerReport,
    address: Option<&AddressReport>,
) -> String {
    match reason {
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
        _ => "the certificate cannot be used (unparseable, wrong key usage or an unsupported \
             algorithm): reissue it from a public CA as an ordinary TLS server certificate"
            .to_owned(),
    }
}

/// The answers to the requests made on a judged connection: HTTP status, JSON, the key document.
fn answer_hint(
    failure: &Failure,
    report: &ServerReport,
    address: Option<&AddressReport>,
    at: &At<'_>,
) -> String {
    let addr = &at.addr;
    let path = match failure.stage {
        Stage::Version => "/_matrix/federation/v1/version",
        _ => "/_matrix/key/v2/server",
    };
    match failure.reason {
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
            report.discovery.host_header
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
        _ => "the key document's valid_until_ts is missing or in the past: the homeserver \
             does not refresh it; check its clock and restart it"
            .to_owned(),
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

/// What a warning is about, in plain words (the JSON report's `message`, and the `check` text).
#[must_use]
pub fn warning_message(w: &ServerWarning) -> String {
    let host = &w.host;
    match (w.warning, w.address) {
        (Warning::AddressNotPublic, Some(address)) => format!(
            "{address} (from {host}) is not public ({}): default-configured peers refuse it and use the other \
             addresses; it was not probed",
            AddressClass::of(address.ip())
        ),
        // Not produced: `ServerReport::warnings` gives this warning an address.
        (Warning::AddressNotPublic, None) => format!(
            "an address of {host} is not public: default-configured peers refuse it and use the other addresses"
        ),
        (Warning::SrvTargetCname, _) => format!(
            "SRV target {host} is a CNAME; RFC 2782 and the spec say an SRV target may not be an alias (most \
             resolvers follow it, some peers may not)"
        ),
        (Warning::ClientWellKnownNoCors, _) => format!(
            "the client well-known of {host} has no Access-Control-Allow-Origin: * header: web clients \
             (Element Web) cannot read it"
        ),
        (Warning::WellKnownInconsistent, _) => format!(
            "the addresses of {host} answer /.well-known/matrix/server differently: a peer finds this server or \
             not depending on the address its resolver picks"
        ),
        (Warning::SigningKeyDropped, _) => format!(
            "signing key {host} was served in the last 7 days and is gone, without an old_verify_keys entry: peers \
             that had not cached it can no longer verify the events it signed"
        ),
        (Warning::SigningKeyReplaced, _) => format!(
            "signing key {host} is served with a different public key than in the last 7 days: peers that cached \
             the old key reject what the new one signs until their copy expires"
        ),
        (Warning::SrvShadowedElsewhere, _) => format!(
            "an SRV record of the server name itself points at {host}, which the well-known delegation does not \
             lead to: peers that follow the spec never read it, but older software and people reading DNS go there"
        ),
        (Warning::SupportInvalid, _) => format!(
            "{host} serves /.well-known/matrix/support, but not as the spec asks: clients and observers cannot \
             read whom to contact"
        ),
        (Warning::LocalCertUnreadable, _) => format!(
            "the local certificate file {host} cannot be used, so it is not compared with what the server serves"
        ),
        (Warning::CertNotReloaded, Some(address)) => format!(
            "{address} still serves an older certificate than {host} holds: the renewed certificate is on disk \
             but was not loaded (reload the server or its reverse proxy)"
        ),
        // Not produced: `ServerReport::warnings` gives this warning an address.
        (Warning::CertNotReloaded, None) => format!(
            "an address still serves an older certificate than {host} holds: reload the server or its proxy"
        ),
    }
}

/// What to run when an address still serves the old certificate (`cert_not_reloaded`), in the words of Synapse's
/// certificates FAQ ("Synapse will reload the keys and certificates when it receives a SIGHUP"), for the `check`
/// text, the status page and the report API.
#[must_use]
pub fn not_reloaded_fix(n: &crate::report::NotReloaded) -> String {
    let who = if n.well_known {
        "the web server or reverse proxy that serves https://".to_owned() + &n.name + " (port 443)"
    } else {
        "the process that terminates TLS on ".to_owned()
            + &n.address.to_string()
            + " (Synapse itself, or the reverse proxy in front of it)"
    };
    format!(
        "{who} still serves the certificate that expires {}; {} holds the renewed one (expires {}). Reload it \
         now: Synapse: `kill -HUP <pid>` (the main process; or `systemctl reload \
         matrix-synapse`, or restart it); nginx: `systemctl reload nginx` (or `nginx -s reload`); HAProxy: \
         `systemctl reload haproxy`; Apache: `apachectl graceful`; Caddy and Traefik reload certificates \
         themselves. Then make it stick: renew with certbot's `--deploy-hook \"systemctl reload nginx\"` (or put \
         the command in /etc/letsencrypt/renewal-hooks/deploy/), so the next renewal is loaded at once.",
        crate::render::format::date_utc(n.served.not_after),
        n.cert_file,
        crate::render::format::date_utc(n.on_disk.not_after),
    )
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
        Warning::ClientWellKnownNoCors => {
            "add the header Access-Control-Allow-Origin: * to /.well-known/matrix/client (nginx: add_header \
             Access-Control-Allow-Origin *;), as the spec asks"
        }
        Warning::WellKnownInconsistent => {
            "make every address serve the same /.well-known/matrix/server file: typically the IPv6 virtual host \
             or one load-balancer node serves another file or none"
        }
        Warning::SigningKeyDropped => {
            "restore the old signing key file (Synapse: signing_key_path) from a backup; if the key was rotated on \
             purpose, list the old key in old_verify_keys (Synapse: old_signing_keys, with its expired_ts)"
        }
        Warning::SigningKeyReplaced => {
            "restore the signing key file this key id had (Synapse: signing_key_path); a new key needs a new key \
             id, with the old one listed in old_verify_keys (Synapse: old_signing_keys)"
        }
        Warning::SrvShadowedElsewhere => {
            "remove the stale _matrix-fed._tcp or _matrix._tcp record of the server name (the well-known decides \
             now), or re-point it at the host and port the delegation leads to"
        }
        Warning::SupportInvalid => {
            "serve JSON under 50 KiB with a contacts list (each with a role and an email_address or matrix_id) \
             and/or a support_page, or remove the file (it is optional)"
        }
        Warning::LocalCertUnreadable => {
            "check the path in local_certificates and let the exporter read it: certbot's live/ and archive/ are \
             root-only, so add the exporter's user (uid 10001 in the container) to a group with read access, grant \
             an ACL (setfacl -R -m u:10001:rX /etc/letsencrypt/live /etc/letsencrypt/archive), or copy \
             fullchain.pem somewhere readable from a certbot --deploy-hook"
        }
        Warning::CertNotReloaded => {
            "reload what serves TLS there (Synapse: SIGHUP, `systemctl reload matrix-synapse` or a restart; a \
             reverse proxy: its reload), then add a certbot --deploy-hook that does it after every renewal"
        }
    }
}

/// One step of the discovery path, as [`discovery_steps`] tells it: a line, and the lines that continue it (one
/// per SRV target, or per host looked up).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiscoveryStep {
    pub line: String,
    pub more: Vec<String>,
}

impl From<String> for DiscoveryStep {
    fn from(line: String) -> Self {
        Self {
            line,
            more: Vec::new(),
        }
    }
}

/// The discovery path in order: the `.well-known` lookup, the SRV lookup and the address lookups that ran, each
/// with what it found and how long it took.
#[must_use]
pub fn discovery_steps(report: &ServerReport) -> Vec<DiscoveryStep> {
    let d = &report.discovery;
    let mut steps = well_known_steps(report);
    if d.steps.get(Step::Srv).is_some() {
        steps.push(srv_step(report));
    }
    steps.extend(address_lookup_step(report));
    if let Some((line, more)) = crate::render::faq::shadowed_step(report) {
        steps.push(DiscoveryStep { line, more });
    }
    steps
}

/// ` [12 ms]`: how long `step` took, or nothing when it did not run.
fn took(report: &ServerReport, step: Step) -> String {
    report
        .discovery
        .steps
        .get(step)
        .map_or_else(String::new, |t| format!(" [{}]", ms(t)))
}

/// The `.well-known` step, and what delegation to an IP literal or an explicit port skips.
fn well_known_steps(report: &ServerReport) -> Vec<DiscoveryStep> {
    let d = &report.discovery;
    let wk = &d.well_known;
    let mut steps: Vec<DiscoveryStep> = Vec::new();
    match wk.outcome {
        WellKnownOutcome::Skipped => steps.push(
            match d.method {
                Method::IpLiteral => "IP literal: connect to it directly (no .well-known, no SRV)",
                Method::ExplicitPort => "explicit port: no .well-known, no SRV",
                _ => "discovery did not finish (see below)",
            }
            .to_owned()
            .into(),
        ),
        WellKnownOutcome::Delegated => {
            let delegated = d.delegated_server.as_deref().unwrap_or("?");
            let ttl = wk
                .cache_ttl
                .map_or_else(String::new, |t| format!(" (cache {})", coarse(t)));
            let redirects = match wk.hops.len() {
                0 | 1 => String::new(),
                n => format!(" after {}", count(n - 1, "redirect", "redirects")),
            };
            steps.push(
                format!(
                    ".well-known: delegated to {delegated}{ttl}{redirects}{}",
                    took(report, Step::WellKnown)
                )
                .into(),
            );
            match d.method {
                Method::IpLiteral => {
                    steps.push(format!("{delegated} is an IP literal: no SRV").into());
                }
                Method::ExplicitPort => {
                    steps.push(format!("{delegated} has an explicit port: no SRV").into());
                }
                _ => {}
            }
        }
        outcome => {
            let why = wk
                .error_text()
                .map_or_else(String::new, |e| format!(" ({e})"));
            steps.push(
                format!(
                    ".well-known: {outcome}{why} → SRV{}",
                    took(report, Step::WellKnown)
                )
                .into(),
            );
        }
    }
    if let Some(first) = steps.first_mut() {
        first.more.extend(well_known_address_lines(wk));
    }
    steps
}

/// One line per address asked for the well-known, when there were several: what each answered, and which one
/// discovery followed.
#[must_use]
pub fn well_known_address_lines(wk: &WellKnownReport) -> Vec<String> {
    if wk.per_address.len() < 2 {
        return Vec::new();
    }
    let same = wk.consistent() == Some(true);
    wk.per_address
        .iter()
        .map(|a| {
            let answer = match (&a.m_server, wk.address_error(a)) {
                (Some(m), _) => format!("delegated to {m}"),
                (None, Some(e)) => format!("{} ({e})", a.outcome),
                (None, None) => a.outcome.to_string(),
            };
            let mark = match (a.followed, same) {
                (true, false) => " ← followed",
                _ => "",
            };
            format!("from {}: {answer}{mark}", a.address)
        })
        .collect()
}

/// The SRV step: which record answered, and its targets.
fn srv_step(report: &ServerReport) -> DiscoveryStep {
    let d = &report.discovery;
    let h = &d.tls_name;
    let srv = took(report, Step::Srv);
    let srv_targets = || {
        d.targets
            .iter()
            .filter_map(|t| {
                t.srv.map(|s| {
                    format!(
                        "→ {}:{} (priority {}, weight {})",
                        t.host, t.port, s.priority, s.weight
                    )
                })
            })
            .collect()
    };
    let n = count(d.targets.len(), "target", "targets");
    match d.method {
        Method::SrvMatrixFed => DiscoveryStep {
            line: format!("SRV _matrix-fed._tcp.{h}: {n}{srv}"),
            more: srv_targets(),
        },
        Method::SrvMatrix => DiscoveryStep {
            line: format!(
                "SRV _matrix-fed._tcp.{h}: not found; _matrix._tcp.{h} (deprecated, add a _matrix-fed \
                 record): {n}{srv}"
            ),
            more: srv_targets(),
        },
        Method::DefaultPort => {
            let port = d.targets.first().map_or(8448, |t| t.port);
            format!("SRV: no _matrix-fed._tcp.{h} or _matrix._tcp.{h} record → port {port}{srv}")
                .into()
        }
        _ => format!("SRV _matrix-fed._tcp.{h}: lookup failed (see below){srv}").into(),
    }
}

/// The A/AAAA step: the addresses of every target host that is a name (IP literals need no lookup).
fn address_lookup_step(report: &ServerReport) -> Option<DiscoveryStep> {
    let lookups: Vec<&TargetReport> = report
        .discovery
        .targets
        .iter()
        .filter(|t| t.host.parse::<std::net::IpAddr>().is_err())
        .collect();
    if lookups.is_empty() {
        return None;
    }
    let mut lines: Vec<String> = lookups
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
            format!("{}: {found}{cname}", t.host)
        })
        .collect();
    let took = took(report, Step::AddressLookup);
    Some(if lines.len() == 1 {
        format!("A/AAAA {}{took}", lines.remove(0)).into()
    } else {
        DiscoveryStep {
            line: format!("A/AAAA{took}"),
            more: lines,
        }
    })
}

/// The names a certificate holds: DNS names, then IP addresses.
#[must_use]
pub fn cert_names(c: &CertFacts) -> Vec<String> {
    c.dns_names
        .iter()
        .cloned()
        .chain(c.ip_addresses.iter().map(ToString::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::render::fixtures::{delegated_ok, leaf_mut, srv_mismatch};

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
    fn every_warning_has_a_message_and_a_fix() {
        let mut seen = std::collections::HashSet::new();
        for &warning in Warning::ALL {
            let w = ServerWarning {
                warning,
                address: Some("10.0.0.5:443".parse().unwrap()),
                host: "matrix.example.org".into(),
            };
            let message = warning_message(&w);
            assert!(
                message.contains("matrix.example.org"),
                "{warning}: {message}"
            );
            let fix = warning_hint(warning);
            assert!(fix.len() > 40, "{warning}: {fix}");
            assert!(seen.insert(fix), "{warning} shares its fix: {fix}");
        }
    }
}
