//! The page at `/`: one row per server with its verdict, delegation path, addresses, certificate expiry, first
//! failure in words and last probe time, in the order a [`Sort`] asks for. It does not render one server's report
//! in full: that is `detail`'s page.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use maud::{Markup, html};

use super::{
    Esc, Sort, Status, all_failures, date, delegation, expiry, page, server_href, split_hint,
    time_tag,
};
use crate::render::format::unix;
use crate::render::{client_words, explain};
use crate::report::ServerReport;

struct Row<'a> {
    name: &'a str,
    report: Option<&'a ServerReport>,
    status: Status,
    expiry: Option<i64>,
}

/// The page at `/`: one row per server that has a report or is configured (then "pending" until probed).
#[must_use]
pub fn index_page<'a>(
    reports: &'a [Arc<ServerReport>],
    configured: impl IntoIterator<Item = &'a str>,
    sort: Sort,
    now: SystemTime,
) -> String {
    let probed: BTreeSet<&str> = reports.iter().map(|r| r.server_name.as_str()).collect();
    let mut rows: Vec<Row<'a>> = reports
        .iter()
        .map(|r| Row {
            name: &r.server_name,
            report: Some(r),
            status: Status::of(Some(r)),
            expiry: earliest_expiry(r),
        })
        .collect();
    let pending: BTreeSet<&str> = configured
        .into_iter()
        .filter(|n| !probed.contains(n))
        .collect();
    rows.extend(pending.into_iter().map(|name| Row {
        name,
        report: None,
        status: Status::Pending,
        expiry: None,
    }));
    rows.sort_by(|a, b| {
        let order = match sort {
            Sort::Worst => a
                .status
                .cmp(&b.status)
                .then_with(|| by_expiry(a.expiry, b.expiry)),
            Sort::Name => Ordering::Equal,
            Sort::Expiry => by_expiry(a.expiry, b.expiry).then_with(|| a.status.cmp(&b.status)),
        };
        order.then_with(|| a.name.cmp(b.name))
    });

    let count = |s: Status| rows.iter().filter(|r| r.status == s).count();
    let (ok, failing, pending) = (
        count(Status::Ok),
        count(Status::Failing),
        count(Status::Pending),
    );
    let title = if failing > 0 {
        format!("{failing} failing · Matrix federation status")
    } else {
        "Matrix federation status".to_owned()
    };
    let body = html! {
        header {
            h1 { "Matrix federation status" }
            p class="summary" {
                span class="count" { (rows.len()) " servers" }
                " "
                span class="pill ok" id="count-ok" { (ok) " ok" }
                " "
                span class="pill failing" id="count-failing" { (failing) " failing" }
                @if pending > 0 {
                    " "
                    span class="pill pending" id="count-pending" { (pending) " not yet probed" }
                }
            }
            p class="meta" { "Updated " (date(unix(now))) " · " a href="/metrics" { "/metrics" } }
        }
        main {
            @if rows.is_empty() {
                p class="empty" { "No servers are configured, and no probe has finished yet." }
            } @else {
                (table(&rows, sort, now))
            }
        }
    };
    page(&title, &body)
}

/// The earliest `notAfter` of any certificate any address presented.
fn earliest_expiry(report: &ServerReport) -> Option<i64> {
    report
        .addresses
        .iter()
        .filter_map(|a| a.certificate.as_ref()?.chain_not_after())
        .min()
}

/// Soonest first; no certificate sorts last.
fn by_expiry(a: Option<i64>, b: Option<i64>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(&b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

fn table(rows: &[Row<'_>], sort: Sort, now: SystemTime) -> Markup {
    html! {
        div class="table-wrap" {
            table id="servers" {
                thead {
                    tr {
                        (sort_header("Status", Sort::Worst, "Worst first", sort))
                        (sort_header("Server", Sort::Name, "By name", sort))
                        th scope="col" { "Delegation" }
                        th scope="col" { "Addresses" }
                        (sort_header("Cert expiry", Sort::Expiry, "Soonest expiry first", sort))
                        th scope="col" { "Problem" }
                        th scope="col" { "Last probe" }
                        th scope="col" { "Clients" }
                    }
                }
                tbody {
                    @for row in rows { (table_row(row, now)) }
                }
            }
        }
    }
}

/// A column header that sorts the table by `key`; marked when it is the current order.
fn sort_header(label: &str, key: Sort, title: &str, current: Sort) -> Markup {
    let sorted = key == current;
    html! {
        th scope="col"
            aria-sort=[sorted.then_some("ascending")]
            class=[sorted.then_some("sorted")] {
            a href={ "/?sort=" (key.as_str()) } title=(title) {
                (label)
                @if sorted { " ▾" }
            }
        }
    }
}

fn table_row(row: &Row<'_>, now: SystemTime) -> Markup {
    let status = row.status.as_str();
    let label = match row.status {
        Status::Pending => "not yet probed",
        s => s.as_str(),
    };
    html! {
        tr class={ "row status-" (status) } data-server=(Esc(row.name)) data-status=(status) {
            td data-label="Status" { span class={ "pill " (status) } { (label) } }
            td data-label="Server" class="name" {
                a href=(server_href(row.name)) { (Esc(row.name)) }
            }
            @if let Some(r) = row.report {
                (probed_cells(row.name, r, row.expiry, now))
            } @else {
                td data-label="Delegation" class="muted" { "—" }
                td data-label="Addresses" class="muted" { "—" }
                td data-label="Cert expiry" class="muted" { "—" }
                td data-label="Problem" class="muted" { "waiting for the first probe" }
                td data-label="Last probe" class="muted" { "never" }
                td data-label="Clients" class="muted" { "—" }
            }
        }
    }
}

/// The cells after the name of a server that has a report.
fn probed_cells(name: &str, r: &ServerReport, not_after: Option<i64>, now: SystemTime) -> Markup {
    let good = r.addresses.iter().filter(|a| a.success()).count();
    let total = r.addresses.len();
    let class = if total > 0 && good == total {
        "ok"
    } else {
        "bad"
    };
    html! {
        td data-label="Delegation" class="delegation" { (delegation(r)) }
        td data-label="Addresses" class="addresses" {
            span class=(class) { (good) "/" (total) }
            " ok"
        }
        td data-label="Cert expiry" class="expiry" { (expiry(not_after, now)) }
        td data-label="Problem" class="problem" {
            (problem(name, r))
            (super::keys::key_fault_line(name, r))
        }
        td data-label="Last probe" class="probed" { (time_tag(r.finished_at, now)) }
        td data-label="Clients" class="client" { (client_cell(r)) }
    }
}

/// Client discovery in a word: works, or what clients do instead (`—` when the check is off).
fn client_cell(r: &ServerReport) -> Markup {
    let Some(c) = &r.client else {
        return html! { span class="muted" { "—" } };
    };
    let class = if c.success() { "ok" } else { "bad" };
    html! {
        span class=(class) title=(Esc(&client_words::summary(c, &r.server_name))) {
            (client_words::outcome_words(c.outcome))
        }
        @if !c.success() { div class="where" { code { (c.outcome) "/" (c.result) } } }
    }
}

/// The first failure in words with its fix, where it happened, and a link to the others.
fn problem(name: &str, r: &ServerReport) -> Markup {
    let mut failures = all_failures(r);
    let Some((address, failure)) = failures.next() else {
        // A renewed certificate not served yet names its address and the reload (`local_certificates`).
        if let Some(note) = super::local_certs::index_note(r) {
            return note;
        }
        let warnings = r.warnings();
        return html! {
            @if let Some(w) = warnings.first() {
                span class="warn" title=(Esc(&explain::warning_message(w))) { "⚠ " (w.warning) }
                @if warnings.len() > 1 {
                    " · " a href=(server_href(name)) { "+" (warnings.len() - 1) " more" }
                }
            } @else {
                span class="muted" { "none" }
            }
        };
    };
    let more = failures.count();
    let hint = explain::hint(failure, r, address);
    let (what, fix) = split_hint(&hint);
    html! {
        span class="what" title=(Esc(&failure.message)) { (Esc(what)) }
        @if !fix.is_empty() { span class="fix" { ": " (Esc(fix)) } }
        div class="where" {
            code { (failure.stage) "/" (failure.reason) }
            " on "
            @if let Some(a) = address { (a.address) } @else { "the server" }
            @if more > 0 {
                " · "
                a href=(server_href(name)) { "+" (more) " more" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_page_links_metrics() {
        let page = index_page(&[], [], Sort::Worst, SystemTime::now());
        assert!(page.contains("<a href=\"/metrics\">"));
        assert!(page.contains("no probe has finished yet"));
    }
}
