//! The status pages' view of a scheduled server's signing-key continuity (`report/key_history.rs`): the detail
//! view's table of key changes, and the index's line when a key was dropped or replaced. Words only; the facts
//! and the fixes come from the report and `render/explain.rs`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use maud::{Markup, html};

use super::{Esc, server_href, time_tag};
use crate::render::explain;
use crate::report::{KeyChangeKind, ServerReport, Warning};

/// `Recent signing-key changes`, newest first, with what each means for peers and, for a fault, its fix. Empty
/// when the server's key history has no change (and always for `/probe`-like reports, which have none).
pub(super) fn key_changes_section(r: &ServerReport, now: SystemTime) -> Markup {
    let changes = r.key_history.changes();
    if changes.is_empty() {
        return html! {};
    }
    html! {
        section id="key-changes" {
            h2 { "Signing-key changes" }
            p class="meta" {
                "Changes of the verify keys this exporter's probes saw in the last 7 days (kept across reloads, \
                 not across restarts; each row lives 7 days)."
            }
            table class="history key-changes" {
                thead { tr { th { "when" } th { "key id" } th { "change" } th { "what it means" } } }
                tbody {
                    @for c in changes.iter().rev() {
                        tr data-change=(c.change.as_str()) {
                            td { (time_tag(UNIX_EPOCH + Duration::from_secs(c.at), now)) }
                            td { code { (Esc(&c.key_id)) } }
                            td { code { (c.change.as_str()) } }
                            td {
                                (meaning(c.change))
                                @if let Some(w) = warning(c.change) {
                                    span class="fix" { " Fix: " (explain::warning_hint(w)) "." }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A line for the index's problem cell when a key of `r` was dropped or replaced in the last 7 days.
pub(super) fn key_fault_line(name: &str, r: &ServerReport) -> Markup {
    let mut faults = r.key_history.faults().peekable();
    if faults.peek().is_none() {
        return html! {};
    }
    html! {
        div class="key-fault" {
            "⚠ signing key "
            @for (i, c) in faults.enumerate() {
                @if i > 0 { ", " }
                code { (Esc(&c.key_id)) } " " (c.change.as_str())
            }
            " · "
            a href={ (server_href(name)) "#key-changes" } { "key changes" }
        }
    }
}

fn warning(change: KeyChangeKind) -> Option<Warning> {
    match change {
        KeyChangeKind::Dropped => Some(Warning::SigningKeyDropped),
        KeyChangeKind::Replaced => Some(Warning::SigningKeyReplaced),
        KeyChangeKind::Added | KeyChangeKind::Retired => None,
    }
}

fn meaning(change: KeyChangeKind) -> &'static str {
    match change {
        KeyChangeKind::Added => "A new key id appeared in verify_keys.",
        KeyChangeKind::Retired => {
            "The key moved into old_verify_keys: peers can still verify the events it signed."
        }
        KeyChangeKind::Dropped => {
            "The key is gone without an old_verify_keys entry: peers that had not cached it can no longer verify \
             the events it signed."
        }
        KeyChangeKind::Replaced => {
            "The key id is served with a different public key: peers that cached the old key reject what the new \
             one signs until their copy expires."
        }
    }
}
