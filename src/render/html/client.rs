//! The client discovery section of `/server/{name}`: what a user's client ends with, the steps it took, the
//! failure with its fix, and the CORS warning. It never changes the page's federation verdict.

use maud::{Markup, html};

use super::Esc;
use crate::render::client_words;
use crate::report::{ClientReport, ServerReport};

/// `<section id="client">`, or nothing when the check is off.
pub(super) fn client_section(r: &ServerReport) -> Markup {
    let Some(c) = &r.client else {
        return html! {};
    };
    let class = if c.success() { "ok" } else { "failing" };
    html! {
        section id="client" data-outcome=(c.outcome) data-result=(c.result) {
            h2 {
                "Client discovery "
                span class={ "pill " (class) } { (client_words::outcome_words(c.outcome)) }
            }
            p { (Esc(&client_words::summary(c, &r.server_name))) }
            (facts(c))
            @for failure in &c.failures {
                p class="failure" {
                    code { (failure.stage) "/" (failure.reason) } ": " (Esc(&failure.message))
                }
            }
            @if c.result != crate::report::ClientResult::Ok {
                p class="fix" { strong { "Fix:" } " " (Esc(&client_words::fix(c, &r.server_name))) }
            }
            @if c.no_cors() {
                p class="warning" {
                    code { "warning/client_well_known_no_cors" } ": "
                    (crate::render::explain::warning_hint(crate::report::Warning::ClientWellKnownNoCors))
                }
            }
        }
    }
}

/// The steps: each well-known hop with its status, the base URL, the identity server, the versions.
fn facts(c: &ClientReport) -> Markup {
    html! {
        dl class="client" {
            dt { "outcome / result" } dd { code { (c.outcome) "/" (c.result) } }
            @for (url, status) in c.hops.iter() {
                dt { "well-known" }
                dd { code { (Esc(url)) } " → " @if status == 0 { "no answer" } @else { "HTTP " (status) } }
            }
            @if let Some(base) = &c.base_url { dt { "base URL" } dd { code { (Esc(base)) } } }
            @if let Some(is) = &c.identity_server { dt { "identity server" } dd { code { (Esc(is)) } } }
            @if let Some(cors) = c.cors {
                dt { "CORS" } dd { @if cors { "Access-Control-Allow-Origin: *" } @else { "missing" } }
            }
            @if c.versions > 0 {
                dt { "versions" }
                dd {
                    @if let Some(latest) = &c.latest { "latest " code { (Esc(latest)) } " · " }
                    (c.versions) " advertised"
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::render::fixtures::{client_failing, client_ok, delegated_ok, now};
    use crate::render::html::{Sort, index_page, server_page};

    #[test]
    fn the_detail_page_has_a_client_section_with_the_fix_and_the_warning() {
        let mut r = delegated_ok();
        r.client = Some(client_failing());
        let page = server_page("example.org", Some(&r), now());
        for want in [
            r#"<section id="client" data-outcome="fail_error" data-result="versions_http_status">"#,
            "clients give up",
            "client/http_status",
            "Fix:",
            "warning/client_well_known_no_cors",
            "https://id.example.org",
        ] {
            assert!(page.contains(want), "{want} missing");
        }
        // The federation verdict is the federation's alone.
        assert!(page.contains("federation works"));

        r.client = None;
        assert!(!server_page("example.org", Some(&r), now()).contains(r#"id="client""#));
    }

    #[test]
    fn the_index_has_a_clients_column() {
        let mut good = delegated_ok();
        good.client = Some(client_ok());
        let mut bad = delegated_ok();
        bad.server_name = "other.example".into();
        bad.client = Some(client_failing());
        let page = index_page(&[Arc::new(good), Arc::new(bad)], [], Sort::Name, now());
        assert!(page.contains(r#"<th scope="col">Clients</th>"#));
        assert!(page.contains(r#"<span class="ok" title="clients find the homeserver at https://matrix.example.org (spec v1.11) through the well-known">works</span>"#), "{page}");
        assert!(page.contains("fail_error/versions_http_status"));
    }
}
