//! The status pages' view of `local_certificates`: on `/server/{name}`, each file with its leaf or why it is
//! unusable, and each address that still serves the old certificate with the reload to run; on the index, the
//! one-line note for a server whose renewal was not loaded.

use std::time::SystemTime;

use maud::{Markup, html};

use super::{Esc, expiry};
use crate::render::explain;
use crate::report::ServerReport;

/// The detail page's section, empty when the server has no `local_certificates`.
pub(super) fn section(r: &ServerReport, now: SystemTime) -> Markup {
    let lc = &r.local_certs;
    if lc.files.is_empty() {
        return html! {};
    }
    html! {
        section id="local-certificates" {
            h2 { "Local certificates" }
            @if !lc.not_reloaded.is_empty() {
                ol class="failures" {
                    @for n in &lc.not_reloaded {
                        li class="warn" {
                            code { "warning/cert_not_reloaded" } " on " code { (n.address) }
                            @if n.well_known { " (the well-known's port 443)" } @else { " (federation)" }
                            ": still serves the old certificate. "
                            span class="fix" { (Esc(&explain::not_reloaded_fix(n))) }
                        }
                    }
                }
            }
            ul class="local-files" {
                @for f in &lc.files {
                    li {
                        code { (Esc(&f.cert_file)) } ": "
                        @match &f.leaf {
                            Ok(leaf) => { "leaf for " (Esc(&leaf.dns_names.join(", "))) ", " (expiry(Some(leaf.not_after), now)) },
                            Err(reason) => {
                                span class="warn" { "⚠ " code { "local_cert_unreadable" } ": " (Esc(reason)) }
                                " · " (explain::warning_hint(crate::report::Warning::LocalCertUnreadable))
                            },
                        }
                    }
                }
            }
        }
    }
}

/// The index's note for a server that fails nothing but serves an old certificate, `None` otherwise.
pub(super) fn index_note(r: &ServerReport) -> Option<Markup> {
    let n = r.local_certs.not_reloaded.first()?;
    Some(html! {
        span class="what warn" { "renewed certificate not loaded" }
        span class="fix" { ": reload what serves TLS on " (n.address) " and add a certbot --deploy-hook" }
        div class="where" { code { "warning/cert_not_reloaded" } " on " (n.address) }
    })
}
