//! The page at `/server/{name}`: one server's whole report (verdict, failures with their fixes, discovery, every
//! address with its certificate chain and keys, and the `check` command's text), and the page for a name that is
//! neither configured nor probed. It does not list or order servers: that is `index`'s page.

use std::time::{Duration, SystemTime};

use maud::{Markup, html};

use super::{
    Esc, Status, all_failures, anchor, at, date, delegation, expiry, method_words, page,
    split_hint, time_tag, timings,
};
use crate::render::format::{count, ms, unix};
use crate::render::{explain, history, text};
use crate::report::{
    AddressReport, CertFacts, CertReport, Failure, History, KeysReport, ServerReport,
    WellKnownReport,
};

/// The page at `/server/{name}`: verdict, failures with fixes, discovery, every address, and `check`'s text.
#[must_use]
pub fn server_page(name: &str, report: Option<&ServerReport>, now: SystemTime) -> String {
    server_page_with_notaries(name, report, &[], now)
}

/// [`server_page`] with what the configured notaries serve for the server (`notaries:`).
#[must_use]
pub fn server_page_with_notaries(
    name: &str,
    report: Option<&ServerReport>,
    notaries: &[std::sync::Arc<crate::report::notary::NotaryReport>],
    now: SystemTime,
) -> String {
    let status = Status::of(report);
    let verdict = match status {
        Status::Ok => "federation works",
        Status::Failing => "federation fails",
        Status::Pending => "not yet probed",
    };
    let s = status.as_str();
    let body = html! {
        header {
            p class="meta" { a href="/" { "← all servers" } }
            h1 id="server" class={ "status-" (s) } data-status=(s) {
                span class="name" { (Esc(name)) }
                " "
                span class={ "pill " (s) } { (verdict) }
            }
            @if let Some(r) = report {
                p class="meta" {
                    "Probed " (time_tag(r.finished_at, now)) " · took " (ms(r.duration)) " · "
                    (count(r.addresses.len(), "address", "addresses")) " · "
                    (r.addresses.iter().filter(|a| !a.success()).count()) " failing"
                }
            }
        }
        main {
            @if let Some(r) = report {
                (report_sections(r, now))
                (super::notary::notary_section(name, notaries))
            } @else {
                p class="empty" {
                    "This server is configured but its first probe has not finished yet. \
                     Reload this page in a moment."
                }
            }
        }
    };
    page(&format!("{name} · Matrix federation status"), &body)
}

/// The page for a name that is neither configured nor probed.
#[must_use]
pub fn not_found_page(name: &str) -> String {
    let body = html! {
        header {
            p class="meta" { a href="/" { "← all servers" } }
            h1 { "Not found" }
        }
        main {
            p class="empty" id="not-found" {
                "No server named " code { (Esc(name)) }
                " is configured or has been probed by this exporter."
            }
        }
    };
    page("Not found · Matrix federation status", &body)
}

/// Everything below the header of a probed server's page.
fn report_sections(r: &ServerReport, now: SystemTime) -> Markup {
    let total = all_failures(r).count();
    html! {
        @if total > 0 {
            section id="failures" {
                h2 { "What is wrong (" (total) ")" }
                ol class="failures" {
                    @for (address, failure) in all_failures(r) {
                        (failure_item(r, address, failure))
                    }
                }
            }
        }
        (super::faq::warnings_section(r))
        (discovery_section(r))
        section id="addresses" {
            h2 { "Addresses" }
            @if r.addresses.is_empty() {
                p class="empty" { "None: discovery found nothing to connect to." }
            }
            @for a in &r.addresses { (address_card(a, now)) }
        }
        (super::client::client_section(r))
        (super::faq::support_section(r))
        (super::local_certs::section(r, now))
        @if !r.history.changes().is_empty() {
            (history_section(r, now))
        }
        (super::keys::key_changes_section(r, now))
        section id="text" {
            h2 { "Plain-text report" }
            details {
                summary { "As the " code { "check" } " command prints it" }
                pre { (Esc(&text::render(r, now, false))) }
            }
        }
    }
}

/// The last state changes, newest first: when, what changed, and the state then.
fn history_section(r: &ServerReport, now: SystemTime) -> Markup {
    html! {
        section id="history" {
            h2 { "Recent changes" }
            p class="meta" {
                "The last " (History::CAPACITY) " changes of verdict, failures, delegation, certificate or key set \
                 that this exporter's probes saw (kept across reloads, not across restarts)."
            }
            table class="history" {
                thead { tr {
                    th { "when" } th { "changed" } th { "verdict" } th { "failures" } th { "delegation" }
                    th { "certificate (SHA-256)" } th { "key set" }
                } }
                tbody {
                    @for (c, changed) in history::changes(&r.history) {
                        @let s = &c.state;
                        tr data-changed=(changed.join(" ")) {
                            td { (time_tag(c.time(), now)) }
                            td { (changed.join(", ")) }
                            td { @if s.ok { "federation works" } @else { "federation fails" } }
                            td { @for (i, reason) in s.reasons().enumerate() {
                                @if i > 0 { ", " } code { (reason) }
                            } }
                            td class="delegation" { (Esc(&history::delegation_words(s))) }
                            td class="certificate" { code { (history::certificate_words(s)) } }
                            td class="key-set" { code { (history::key_set_words(s)) } }
                        }
                    }
                }
            }
        }
    }
}

fn failure_item(r: &ServerReport, address: Option<&AddressReport>, failure: &Failure) -> Markup {
    let hint = explain::hint(failure, r, address);
    let (what, fix) = split_hint(&hint);
    html! {
        li class="failure" data-reason=(failure.reason) {
            p {
                code { (failure.stage) "/" (failure.reason) }
                " on "
                @if let Some(a) = address {
                    a href={ "#" (anchor(a)) } { (a.address) }
                } @else {
                    // As on the index: the stage is the label's word (`dns`, `discovery`), the place is the server.
                    "the server"
                }
                ": "
                span class="what" { (Esc(what)) }
            }
            @if !fix.is_empty() {
                p class="fix" { strong { "Fix:" } " " (Esc(fix)) }
            }
            p class="message" { (Esc(&failure.message)) }
        }
    }
}

fn discovery_section(r: &ServerReport) -> Markup {
    let d = &r.discovery;
    let wk = &d.well_known;
    html! {
        section id="discovery" {
            h2 { "Discovery" }
            p class="path" { (delegation(r)) }
            dl {
                dt { "Method" }
                dd { code { (d.method) } " (" (method_words(d.method)) ")" }
                dt { ".well-known" }
                dd {
                    code { (wk.outcome) }
                    @if let Some(error) = wk.error_text() { ": " (Esc(&error)) }
                    @if let Some(ttl) = wk.cache_ttl {
                        " "
                        span class="muted" {
                            "(peers cache this for "
                            (humantime::format_duration(Duration::from_secs(ttl.as_secs())))
                            ")"
                        }
                    }
                    @if !wk.hops.is_empty() {
                        ul class="hops" {
                            @for (url, status) in wk.hops.iter() {
                                li {
                                    code { (Esc(url)) }
                                    " → "
                                    @if status == 0 { "no answer" } @else { "HTTP " (status) }
                                }
                            }
                        }
                    }
                }
                @if let Some(delegated) = &d.delegated_server {
                    dt { "Delegated to" }
                    dd { code { (Esc(delegated)) } }
                }
                dt { "Certificate must name" }
                dd { code { (Esc(&d.tls_name)) } }
                dt { "Host header" }
                dd { code { (Esc(&d.host_header)) } }
                @if !d.steps.is_empty() {
                    dt { "Steps" }
                    dd { (timings(&d.steps)) }
                }
                (super::faq::shadowed_rows(r))
            }
            @if d.truncated {
                p class="warn" {
                    "⚠ More targets or addresses than a probe follows: only the first were probed."
                }
            }
            @if !d.targets.is_empty() {
                div class="table-wrap" {
                    table class="targets" {
                        thead { tr { th { "Target" } th { "SRV" } th { "Addresses" } } }
                        tbody {
                            @for t in &d.targets {
                                tr {
                                    td { code { (Esc(&t.host)) ":" (t.port) } }
                                    td {
                                        @if let Some(s) = t.srv {
                                            "priority " (s.priority) ", weight " (s.weight)
                                        } @else {
                                            "—"
                                        }
                                    }
                                    td {
                                        @if t.addresses.is_empty() {
                                            "none"
                                        } @else {
                                            @for (i, address) in t.addresses.iter().enumerate() {
                                                @if i > 0 { ", " }
                                                (address)
                                            }
                                        }
                                        @if t.via_cname { " (via CNAME)" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (well_known_addresses(wk))
        }
    }
}

/// The well-known as each address of the server name served it, when more than one was asked.
fn well_known_addresses(wk: &WellKnownReport) -> Markup {
    let Some(consistent) = wk.consistent() else {
        return html! {};
    };
    html! {
        h3 { ".well-known from every address" }
        @if !consistent {
            p class="warn" {
                "⚠ The addresses answer differently: a peer finds this server or not depending on the address \
                 its resolver picks. Make every address serve the same file (typically the IPv6 virtual host or \
                 one load-balancer node)."
            }
        }
        div class="table-wrap" {
            table class="well-known-addresses" {
                thead { tr { th { "Address" } th { "Outcome" } th { "m.server" } th { "Followed" } } }
                tbody {
                    @for a in &wk.per_address {
                        tr {
                            td { (a.address) }
                            td {
                                code { (a.outcome) }
                                @if let Some(error) = wk.address_error(a) { ": " (Esc(&error)) }
                            }
                            td {
                                @if let Some(m) = &a.m_server { code { (Esc(m)) } } @else { "—" }
                            }
                            td { @if a.followed { "✔" } }
                        }
                    }
                }
            }
        }
    }
}

fn address_card(a: &AddressReport, now: SystemTime) -> Markup {
    let status = if a.success() { "ok" } else { "failing" };
    html! {
        article class={ "address status-" (status) } id=(anchor(a)) data-address=(a.address) {
            h3 { code { (a.address) } " " span class={ "pill " (status) } { (status) } }
            p class="meta" { (a.family()) " · from " code { (Esc(&a.target_host)) } }
            dl {
                @if !a.phases.is_empty() {
                    dt { "Timings" }
                    dd { (timings(&a.phases)) }
                }
                @if let Some(tls) = &a.tls {
                    dt { "TLS" }
                    dd { (Esc(tls.version)) " · " (Esc(tls.cipher)) }
                }
                @if let Some(cert) = &a.certificate { (certificate_item(cert, now)) }
                @if let Some(keys) = &a.keys { (keys_item(keys, now)) }
                @if let Some(v) = &a.version {
                    dt { "Version" }
                    dd {
                        (Esc(v.name.as_deref().unwrap_or("(no name)")))
                        " "
                        (Esc(v.version.as_deref().unwrap_or("(no version)")))
                    }
                }
            }
            @if !a.failures.is_empty() {
                ul class="address-failures" {
                    @for f in &a.failures {
                        li { code { (f.stage) "/" (f.reason) } ": " (Esc(&f.message)) }
                    }
                }
            }
        }
    }
}

/// The certificate verdict of one address and its chain, leaf first.
fn certificate_item(cert: &CertReport, now: SystemTime) -> Markup {
    html! {
        dt { "Certificate" }
        dd {
            @if cert.valid() {
                span class="ok" { "✔ valid" }
            } @else {
                span class="bad" {
                    "✘ "
                    @for (i, f) in cert.failures.iter().enumerate() {
                        @if i > 0 { ", " }
                        (f.reason.as_str())
                    }
                }
            }
            " · earliest expiry in the chain: " (expiry(cert.chain_not_after(), now))
            @if cert.chain.is_empty() { " · none presented" }
            ol class="chain" {
                @for (i, c) in cert.chain.iter().enumerate() { (cert_item(c, i == 0, now)) }
            }
        }
    }
}

fn cert_item(c: &CertFacts, leaf: bool, now: SystemTime) -> Markup {
    let names: Vec<String> = c
        .dns_names
        .iter()
        .cloned()
        .chain(c.ip_addresses.iter().map(ToString::to_string))
        .collect();
    html! {
        li class="cert" {
            span class="subject" { (Esc(&c.subject)) }
            @if leaf { " " em { "(leaf)" } }
            br;
            span class="muted" { "issuer" } " " (Esc(&c.issuer))
            @if !names.is_empty() {
                br;
                span class="muted" { "names" } " " (Esc(&names.join(", ")))
            }
            br;
            span class="muted" { "valid" } " " (date(c.not_before)) " – " (date(c.not_after))
            " (" (expiry(Some(c.not_after), now)) ")"
            br;
            span class="muted" { "serial" } " " code { (Esc(&c.serial)) } " "
            span class="muted" { "sha256" } " " code class="fp" { (c.fingerprint_sha256) }
        }
    }
}

fn keys_item(keys: &KeysReport, now: SystemTime) -> Markup {
    let name = if keys.server_name.is_empty() {
        "(missing)"
    } else {
        &keys.server_name
    };
    html! {
        dt { "Keys" }
        dd {
            "server_name " code { (Esc(name)) }
            @if let Some(ts) = keys.valid_until_ts {
                @let secs = ts.div_euclid(1000);
                " · "
                span class=(if secs < unix(now) { "bad" } else { "ok" }) {
                    "valid_until_ts " (time_tag(at(secs), now))
                }
            } @else {
                " · " span class="bad" { "no valid_until_ts" }
            }
            ul class="keys" {
                @for k in &keys.verify_keys {
                    @let (class, verdict) = if !k.valid_ed25519 {
                        ("bad", "✘ not a usable ed25519 key")
                    } else if !k.matching_signature {
                        ("bad", "✘ signature does not verify")
                    } else {
                        ("ok", "✔ signature verifies")
                    };
                    li { code { (Esc(&k.key_id)) } " " span class=(class) { (verdict) } }
                }
                @for k in &keys.old_verify_keys {
                    li { code { (Esc(&k.key_id)) } " " span class="muted" { "old key" } }
                }
                @for w in &keys.warnings {
                    li class="warn" { "⚠ " (Esc(w)) }
                }
            }
        }
    }
}
