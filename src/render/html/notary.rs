//! The notaries' section of a server's page (`/server/{name}`): what each configured notary serves for it.

use maud::{Markup, html};

use super::{Esc, date};
use crate::report::NotaryResult;
use crate::report::notary::NotaryReport;

/// One row per notary that has a view of `name` (nothing when no notary is configured or none asked yet).
#[must_use]
pub fn notary_section(name: &str, notaries: &[std::sync::Arc<NotaryReport>]) -> Markup {
    let rows: Vec<_> = notaries
        .iter()
        .filter_map(|n| n.view(name).map(|v| (n, v)))
        .collect();
    html! {
        @if !rows.is_empty() {
            section id="notaries" {
                h2 { "What the notaries serve" }
                p class="meta" {
                    "The keys each configured notary returns for this server (POST /_matrix/key/v2/query), \
                     against the keys it serves directly. Peers that fetch keys through a notary see these."
                }
                table class="notaries" {
                    thead { tr { th { "notary" } th { "result" } th { "its copy valid until" } th { "keys" } th { "why" } } }
                    tbody {
                        @for (n, v) in &rows {
                            tr data-result=(v.result.as_str()) {
                                td { code { (Esc(&n.notary)) } }
                                td { (v.result.as_str()) }
                                td { @if let Some(ms) = v.valid_until_ts { (date(ms / 1000)) } }
                                td {
                                    @for (id, key) in &v.keys { code { (Esc(id)) " " (Esc(key)) } " " }
                                }
                                td {
                                    @if v.result != NotaryResult::Match { (Esc(&v.message)) }
                                    @if !n.up { " " (Esc(&n.message)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
