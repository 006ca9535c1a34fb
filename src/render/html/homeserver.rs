//! `GET /homeserver/{name}`: "Synapse says / we say / verdict" for every destination a configured homeserver's
//! admin API lists, filterable by verdict (`?verdict=us`), with the admin API's own state (up, the last error,
//! when the last good list was read). No I/O; the verdict is the one `/metrics` shows.

use std::sync::Arc;
use std::time::SystemTime;

use maud::{Markup, html};

use super::{Esc, page, server_href, time_tag};
use crate::render::format::{coarse, count};
use crate::report::homeserver::{Destination, HomeserverView};
use crate::report::{ServerReport, Verdict};

/// Which rows `/homeserver/{name}` shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VerdictFilter {
    #[default]
    All,
    /// Only this verdict.
    Only(Verdict),
    /// Destinations we have not probed yet (no verdict).
    Unprobed,
}

impl VerdictFilter {
    /// From the query string: `verdict=ok|them|us|unseen_fault|none`; anything else shows all.
    #[must_use]
    pub fn from_query(query: Option<&str>) -> Self {
        let value = query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|pair| pair.strip_prefix("verdict="));
        match value {
            Some("none") => Self::Unprobed,
            Some(v) => Verdict::ALL
                .iter()
                .find(|x| x.as_str() == v)
                .map_or(Self::All, |x| Self::Only(*x)),
            None => Self::All,
        }
    }

    fn keeps(self, verdict: Option<Verdict>) -> bool {
        match self {
            Self::All => true,
            Self::Only(v) => verdict == Some(v),
            Self::Unprobed => verdict.is_none(),
        }
    }
}

/// The page of one homeserver. `reports` is sorted by server name (as the store gives it).
#[must_use]
pub fn homeserver_page(
    view: &HomeserverView,
    reports: &[Arc<ServerReport>],
    filter: VerdictFilter,
    now: SystemTime,
) -> String {
    let verdict_of = |d: &Destination| {
        reports
            .binary_search_by(|r| r.server_name.as_str().cmp(&d.server_name))
            .ok()
            .map(|i| (d.verdict(reports[i].success()), &reports[i]))
    };
    let counts: Vec<(Verdict, usize)> = Verdict::ALL
        .iter()
        .map(|v| {
            let n = view
                .destinations
                .iter()
                .filter(|d| verdict_of(d).is_some_and(|(x, _)| x == *v))
                .count();
            (*v, n)
        })
        .collect();
    let name = &*view.name;
    let href = homeserver_href(name);
    let body = html! {
        header {
            p class="meta" { a href="/" { "← all servers" } }
            h1 { "Homeserver " (Esc(name)) }
            p {
                @if view.up { "Admin API: up. " } @else { strong { "Admin API: down. " } }
                @if let Some(error) = &view.error { "Last refresh failed: " (Esc(error)) ". The last good list stays in force. " }
                @if let Some(at) = view.good_at { "Last good list read " (time_tag(at, now)) ". " }
                (count(view.listed, "destination", "destinations")) " listed"
                @if view.truncated { " (stopped at max_destinations)" }
                ", " (view.skipped_failing) " skipped as failing too long, "
                (view.skipped_invalid) " not server names."
            }
            p {
                "Show: " a href=(href) { "all" }
                @for (v, n) in &counts {
                    " · " a href={ (href) "?verdict=" (v.as_str()) } { (v.as_str()) " (" (n) ")" }
                }
                " · " a href={ (href) "?verdict=none" } { "not probed yet" }
            }
        }
        main {
            table {
                thead { tr { th { "Destination" } th { "Synapse says" } th { "We say" } th { "Verdict" } } }
                tbody {
                    @for d in view.destinations.iter() {
                        @let found = verdict_of(d);
                        @if filter.keeps(found.map(|(v, _)| v)) {
                            tr {
                                td { a href=(server_href(&d.server_name)) { (Esc(&d.server_name)) } }
                                td { (synapse_says(d, now)) }
                                td {
                                    @match found {
                                        Some((_, r)) if r.success() => "federation ok",
                                        Some(_) => "failing",
                                        None => "not probed yet",
                                    }
                                }
                                td { @if let Some((v, _)) = found { (v.as_str()) } @else { "—" } }
                            }
                        }
                    }
                }
            }
        }
    };
    page(&format!("{name} · homeserver destinations"), &body)
}

/// The index page with a line per configured homeserver after its header (admin API up or down, and a link to its
/// destinations, to the `us` ones first). The index itself knows nothing of homeservers; this is spliced in, so the
/// page is unchanged when none is configured.
#[must_use]
pub fn with_homeservers(index: String, views: &[Arc<HomeserverView>]) -> String {
    if views.is_empty() {
        return index;
    }
    let section = html! {
        section class="homeservers" {
            @for v in views {
                p {
                    "Homeserver " a href=(homeserver_href(&v.name)) { (Esc(&v.name)) } ": "
                    @if v.up { "admin API up" } @else { strong { "admin API down" } }
                    @if let Some(error) = &v.error { " (" (Esc(error)) "; the last good list stays)" }
                    ", " (count(v.destinations.len(), "destination", "destinations")) " probed · "
                    a href={ (homeserver_href(&v.name)) "?verdict=us" } { "failing on our side" }
                }
            }
        }
    };
    match index.find("</header>") {
        Some(i) => {
            let at = i + "</header>".len();
            format!("{}{}{}", &index[..at], section.into_string(), &index[at..])
        }
        None => index,
    }
}

/// `/homeserver/NAME`, the name percent-encoded as [`server_href`] does.
#[must_use]
pub fn homeserver_href(name: &str) -> String {
    server_href(name).replacen("/server/", "/homeserver/", 1)
}

fn synapse_says(d: &Destination, now: SystemTime) -> Markup {
    let since = |ms: i64| {
        let secs = crate::render::format::unix(now).saturating_sub(ms / 1000);
        coarse(std::time::Duration::from_secs(
            u64::try_from(secs).unwrap_or(0),
        ))
    };
    html! {
        @match d.failure_ts {
            Some(ts) => {
                "failing for " (since(ts))
                @if d.retry_interval > 0 {
                    ", backing off " (coarse(std::time::Duration::from_millis(u64::try_from(d.retry_interval).unwrap_or(0))))
                }
            }
            None => "not failing",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_comes_from_the_query() {
        assert_eq!(VerdictFilter::from_query(None), VerdictFilter::All);
        assert_eq!(
            VerdictFilter::from_query(Some("verdict=us")),
            VerdictFilter::Only(Verdict::Us)
        );
        assert_eq!(
            VerdictFilter::from_query(Some("x=1&verdict=unseen_fault")),
            VerdictFilter::Only(Verdict::UnseenFault)
        );
        assert_eq!(
            VerdictFilter::from_query(Some("verdict=none")),
            VerdictFilter::Unprobed
        );
        assert_eq!(
            VerdictFilter::from_query(Some("verdict=<b>")),
            VerdictFilter::All
        );
    }

    #[test]
    fn the_page_escapes_and_filters() {
        let mut view = HomeserverView::new(Arc::from("home"));
        view.destinations = Arc::from(vec![
            Destination {
                server_name: Arc::from("a.example"),
                retry_last_ts: 0,
                retry_interval: 600_000,
                failure_ts: Some(0),
            },
            Destination {
                server_name: Arc::from("b.example"),
                retry_last_ts: 0,
                retry_interval: 0,
                failure_ts: None,
            },
        ]);
        view.error = Some("<script>".into());
        let all = homeserver_page(&view, &[], VerdictFilter::All, SystemTime::now());
        assert!(all.contains("a.example") && all.contains("b.example"));
        assert!(all.contains("&lt;script&gt;") && !all.contains("<script>"));
        assert!(all.contains("not probed yet"));
        let us = homeserver_page(
            &view,
            &[],
            VerdictFilter::Only(Verdict::Us),
            SystemTime::now(),
        );
        assert!(!us.contains(">a.example<"));
    }
}
