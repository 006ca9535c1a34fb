//! The status page's sections for warnings, the SRV records a delegating well-known shadows, and whom to contact
//! (the support well-known). Every string a probed server sent goes through [`Esc`].

use maud::{Markup, html};

use super::Esc;
use crate::render::{explain, faq};
use crate::report::ServerReport;

/// Every current warning with its message and fix; nothing when there is none.
pub(super) fn warnings_section(r: &ServerReport) -> Markup {
    let warnings = r.warnings();
    html! {
        @if !warnings.is_empty() {
            section id="warnings" {
                h2 { "Worth a look (" (warnings.len()) ")" }
                ul class="warnings" {
                    @for w in &warnings {
                        li class="warn" {
                            code { "warning/" (w.warning) }
                            ": " (Esc(&explain::warning_message(w)))
                            div class="fix" { "Fix: " (Esc(explain::warning_hint(w.warning))) }
                        }
                    }
                }
            }
        }
    }
}

/// The server name's own SRV records that the delegation shadows, as a row of the discovery list.
pub(super) fn shadowed_rows(r: &ServerReport) -> Markup {
    html! {
        @if let Some((line, more)) = faq::shadowed_step(r) {
            dt { "Shadowed SRV" }
            dd {
                (Esc(&line))
                @if !more.is_empty() {
                    ul class="hops" { @for m in &more { li { code { (Esc(m)) } } } }
                }
            }
        }
    }
}

/// `/.well-known/matrix/support`: the result, the contacts and the support page, as text (never links: the
/// document is foreign).
pub(super) fn support_section(r: &ServerReport) -> Markup {
    html! {
        @if let Some(s) = &r.support {
            @let lines = faq::support_lines(s);
            section id="support" {
                h2 { "Whom to contact" }
                p { code { "/.well-known/matrix/support" } " → " (Esc(&lines[0])) }
                @if lines.len() > 1 {
                    ul class="contacts" { @for l in &lines[1..] { li { (Esc(l)) } } }
                }
            }
        }
    }
}
