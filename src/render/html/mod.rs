//! The status page's shared parts: the page frame (head, inline CSS), the row order ([`Sort`]), links to the
//! detail page ([`server_href`]), escaping ([`Esc`]) and the pieces both pages show (delegation path, expiry,
//! times). `index` renders `GET /`; `detail` renders `GET /server/{name}` and the not-found page.
//!
//! Server-rendered HTML with inline CSS and no script, so it works without JavaScript and loads nothing from
//! elsewhere (a `Content-Security-Policy` header enforces that). Sorting is server-side through `?sort=` links.
//! The words for failures and their fixes come from [`explain::hint`](crate::render::explain::hint), the same table
//! the `check` command uses.
//!
//! The markup is written with maud's `html!` rather than askama templates: the markup is Rust, next to the code
//! that feeds it, each interpolation a type-checked Rust expression that is HTML-escaped unless wrapped in
//! `PreEscaped` (used here only for the constant CSS, besides maud's own `DOCTYPE`); no template directory ships,
//! and the dependency is one small proc-macro crate.
//!
//! Server names, certificate fields and error messages are untrusted text. maud escapes `& < > "` in every
//! interpolation; report text also goes through [`Esc`], which escapes `'` as well, so the bytes stay those the
//! page has always served.

mod client;
mod detail;
mod faq;
mod homeserver;
mod index;
mod keys;
mod local_certs;
mod notary;
mod runbook;

use std::fmt::{self, Write as _};
use std::time::SystemTime;

use maud::{DOCTYPE, Markup, PreEscaped, Render, html};

pub use self::detail::{not_found_page, server_page, server_page_with_notaries};
pub use self::homeserver::{VerdictFilter, homeserver_href, homeserver_page, with_homeservers};
pub use self::index::index_page;
pub use self::runbook::{RUNBOOK_MD, runbook_page};
use crate::render::format::{at, count, date_utc as date, ms, unix};
use crate::report::{
    AddressReport, Failure, Method, ServerReport, Timed, Timings, WellKnownOutcome,
};

/// Certificates expiring sooner than this are shown as a warning.
const WARN_DAYS: i64 = 14;
const DAY: i64 = 86_400;

/// The order of the rows on `/`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sort {
    /// Failing first, then not yet probed, then healthy; within each, the soonest certificate expiry first.
    #[default]
    Worst,
    /// By server name.
    Name,
    /// The soonest certificate expiry first; servers without a certificate last.
    Expiry,
}

impl Sort {
    /// The `sort` parameter of a query string; anything unknown is the default order.
    #[must_use]
    pub fn from_query(query: Option<&str>) -> Self {
        let value = query.and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "sort")
                .map(|(_, v)| v.into_owned())
        });
        match value.as_deref() {
            Some("name") => Sort::Name,
            Some("expiry") => Sort::Expiry,
            _ => Sort::Worst,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Sort::Worst => "worst",
            Sort::Name => "name",
            Sort::Expiry => "expiry",
        }
    }
}

/// The detail page of `name`: `/server/` and the name percent-encoded (IPv6 literals hold `[`, `]` and `:`).
#[must_use]
pub fn server_href(name: &str) -> String {
    let mut href = String::from("/server/");
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            href.push(char::from(b));
        } else {
            let _ = write!(href, "%{b:02X}");
        }
    }
    href
}

/// Untrusted text, HTML-escaped: `&<>"'`. Safe in text and in quoted attribute values. In `html!` it escapes one
/// character more than maud's own escaping (`'`, as `&#39;`); as `Display` it gives the escaped text.
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

impl Render for Esc<'_> {
    fn render_to(&self, buffer: &mut String) {
        // Writing to a String cannot fail.
        let _ = write!(buffer, "{self}");
    }
}

/// A server's verdict, in worst-first order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Status {
    Failing,
    Pending,
    Ok,
}

impl Status {
    fn of(report: Option<&ServerReport>) -> Self {
        match report {
            None => Status::Pending,
            Some(r) if r.success() => Status::Ok,
            Some(_) => Status::Failing,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Status::Failing => "failing",
            Status::Pending => "pending",
            Status::Ok => "ok",
        }
    }
}

/// A whole page: the head (title, viewport, inline CSS) and `body`.
fn page(title: &str, body: &Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                link rel="icon" href="data:,";
                title { (Esc(title)) }
                style { (PreEscaped(CSS)) }
            }
            body { (body) }
        }
    }
    .into_string()
}

// ---- pieces both pages show ----

/// Every failure with the address it belongs to (`None` for the server), server-level first.
fn all_failures(r: &ServerReport) -> impl Iterator<Item = (Option<&AddressReport>, &Failure)> {
    r.failures.iter().map(|f| (None, f)).chain(
        r.addresses
            .iter()
            .flat_map(|a| a.failures.iter().map(move |f| (Some(a), f))),
    )
}

/// A hint is "what is wrong: how to fix it"; split at the first `": "` (IPv6 addresses hold only bare colons).
fn split_hint(hint: &str) -> (&str, &str) {
    hint.split_once(": ").unwrap_or((hint, ""))
}

/// The delegation path in one line: `.well-known → m.server · method · first target`.
fn delegation(r: &ServerReport) -> Markup {
    let d = &r.discovery;
    html! {
        @match d.well_known.outcome {
            WellKnownOutcome::Skipped => {}
            WellKnownOutcome::Delegated => {
                span class="wk ok" {
                    ".well-known → " (Esc(d.delegated_server.as_deref().unwrap_or("?")))
                }
                " · "
            }
            outcome => {
                span class="wk" { ".well-known " (outcome.as_str().replace('_', " ")) }
                " · "
            }
        }
        @if d.well_known.consistent() == Some(false) {
            span class="wk bad" title="the server name's addresses answer the well-known differently" {
                "⚠ .well-known differs by address"
            }
            " · "
        }
        span class="method" { (method_words(d.method)) }
        @if let Some(first) = d.targets.first() {
            " · "
            span class="target" {
                (Esc(&first.host)) ":" (first.port)
                @if d.targets.len() > 1 { " (+" (d.targets.len() - 1) ")" }
            }
        }
    }
}

fn method_words(method: Method) -> &'static str {
    match method {
        Method::IpLiteral => "IP literal",
        Method::ExplicitPort => "explicit port",
        Method::SrvMatrixFed => "SRV _matrix-fed",
        Method::SrvMatrix => "SRV _matrix (deprecated)",
        Method::DefaultPort => "default port",
        Method::None => "no address",
    }
}

/// Days until a certificate expires, coloured: `45 days`, `3 days` (warning), `expired 2 days ago`.
fn expiry(not_after: Option<i64>, now: SystemTime) -> Markup {
    let Some(not_after) = not_after else {
        return html! { span class="muted" title="no certificate seen" { "—" } };
    };
    let delta = not_after - unix(now);
    // Whole days, towards zero: 2 days 23 hours ago is "expired 2 days ago" and data-days -2.
    let days = delta / DAY;
    let (class, text) = if delta < 0 {
        let ago = -days;
        (
            "bad",
            if ago == 0 {
                "expired today".to_owned()
            } else {
                format!("expired {} ago", count(ago as usize, "day", "days"))
            },
        )
    } else if days < WARN_DAYS {
        ("warn", count(days as usize, "day", "days"))
    } else {
        ("ok", count(days as usize, "day", "days"))
    };
    html! {
        span class={ "days " (class) } data-days=(days) title={ "notAfter " (date(not_after)) } {
            (text)
        }
    }
}

/// Timed steps or phases in order, `name 12 ms · name 3 ms`.
fn timings<T: Timed + fmt::Display>(items: &Timings<T>) -> String {
    items
        .iter()
        .map(|(what, took)| format!("{what} {}", ms(took)))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// `<time>` with a relative text (`12 s ago`) and the absolute UTC time as its title.
fn time_tag(t: SystemTime, now: SystemTime) -> Markup {
    let secs = unix(t);
    // The exact difference, in whole seconds towards zero (not a difference of two rounded timestamps).
    let delta = match now.duration_since(t) {
        Ok(ago) => i64::try_from(ago.as_secs()).unwrap_or(i64::MAX),
        Err(ahead) => -i64::try_from(ahead.duration().as_secs()).unwrap_or(i64::MAX),
    };
    let rel = |n: i64| match n {
        0..60 => format!("{n} s"),
        60..3_600 => format!("{} min", n / 60),
        3_600..86_400 => format!("{} h", n / 3_600),
        _ => format!("{} d", n / DAY),
    };
    let text = match delta {
        0 => "just now".to_owned(),
        d if d > 0 => format!("{} ago", rel(d)),
        d => format!("in {}", rel(-d)),
    };
    let iso = humantime::format_rfc3339_seconds(at(secs));
    html! {
        time class="time" datetime=(iso) title=(date(secs)) { (text) }
    }
}

/// A fragment id for an address card.
fn anchor(a: &AddressReport) -> String {
    let mut id = String::from("addr-");
    for c in a.address.to_string().chars() {
        id.push(if c.is_ascii_alphanumeric() { c } else { '-' });
    }
    id
}

const CSS: &str = r#"
:root{--ok:#1a7f37;--ok-bg:#dafbe1;--bad:#cf222e;--bad-bg:#ffebe9;--warn:#9a6700;--warn-bg:#fff8c5;
--pending:#57606a;--pending-bg:#eaeef2;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#fff;--head:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;padding:16px 24px;font:14px/1.45 system-ui,-apple-system,"Segoe UI","DejaVu Sans",sans-serif;
color:var(--fg);background:var(--bg)}
h1{font-size:22px;margin:0 0 6px}h2{font-size:17px;margin:24px 0 8px}h3{font-size:15px;margin:0 0 4px}
a{color:#0969da}code,pre{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12.5px}
header{margin-bottom:12px}.summary{margin:4px 0}.meta{color:var(--muted);margin:4px 0}
.muted{color:var(--muted)}.ok{color:var(--ok)}.bad{color:var(--bad)}.warn{color:var(--warn)}
.count{font-weight:600;margin-right:6px}
.pill{display:inline-block;padding:1px 9px;border-radius:999px;font-size:12px;font-weight:600;white-space:nowrap;
vertical-align:middle}
.pill.ok{background:var(--ok-bg);color:var(--ok)}.pill.failing{background:var(--bad-bg);color:var(--bad)}
.pill.pending{background:var(--pending-bg);color:var(--pending)}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:7px 10px;border-bottom:1px solid var(--line)}
th{background:var(--head);font-weight:600;white-space:nowrap}th a{color:inherit;text-decoration:none}
th.sorted a{text-decoration:underline}
tr.row td:first-child{border-left:4px solid var(--line)}
tr.status-ok td:first-child{border-left-color:var(--ok)}tr.status-failing td:first-child{border-left-color:var(--bad)}
tr.status-failing{background:#fffafa}
td.name a{font-weight:600;overflow-wrap:break-word}td.delegation{color:var(--muted);max-width:22em}
td.addresses,td.expiry,td.probed{white-space:nowrap}
td.problem{max-width:34em}.problem .what{font-weight:600}.problem .fix{color:var(--muted)}
.where{color:var(--muted);font-size:12px;margin-top:2px}
.days.warn{background:var(--warn-bg);padding:0 4px;border-radius:4px}.days.bad{font-weight:600}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 14px;margin:8px 0}dt{color:var(--muted)}dd{margin:0;min-width:0}
ul,ol{margin:4px 0;padding-left:20px}
.failures li{margin-bottom:10px}.failures p{margin:2px 0}.failures .message{color:var(--muted);font-size:12.5px}
article.address{border:1px solid var(--line);border-left:4px solid var(--line);border-radius:6px;padding:10px 14px;
margin:10px 0}
article.status-ok{border-left-color:var(--ok)}article.status-failing{border-left-color:var(--bad)}
.chain li{margin-bottom:6px;overflow-wrap:anywhere}.subject{font-weight:600}.fp{word-break:break-all}
.address-failures{color:var(--bad)}
pre{background:var(--head);border:1px solid var(--line);border-radius:6px;padding:10px;overflow-x:auto}
details summary{cursor:pointer;color:#0969da}.empty{color:var(--muted)}
@media (max-width:600px){
body{padding:10px 12px}h1{font-size:19px}
table#servers thead{display:none}
table#servers,table#servers tbody,table#servers tr,table#servers td{display:block;width:100%;max-width:none}
table#servers tr.row{border:1px solid var(--line);border-left:4px solid var(--line);border-radius:6px;margin:0 0 10px;
padding:4px 0}
table#servers tr.status-ok{border-left-color:var(--ok)}table#servers tr.status-failing{border-left-color:var(--bad)}
table#servers td{border:0;padding:3px 10px;white-space:normal}
table#servers tr.row td:first-child{border-left:0}
table#servers td::before{content:attr(data-label);display:inline-block;min-width:6.5em;color:var(--muted);
font-size:12px}
table#servers td.problem::before{display:block}
dl{grid-template-columns:1fr}dt{margin-top:6px}
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// The page pieces are maud `Markup`; these tests read the text it holds.
    fn time_tag(t: SystemTime, now: SystemTime) -> String {
        super::time_tag(t, now).into_string()
    }

    #[test]
    fn escapes_all_five() {
        assert_eq!(
            Esc("<a href='x'>&\"</a>").to_string(),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(Esc("plain ✔").to_string(), "plain ✔");
    }

    #[test]
    fn hrefs_are_percent_encoded() {
        assert_eq!(server_href("example.org"), "/server/example.org");
        assert_eq!(server_href("[::1]:8448"), "/server/%5B%3A%3A1%5D%3A8448");
    }

    #[test]
    fn sort_parameter() {
        assert_eq!(Sort::from_query(None), Sort::Worst);
        assert_eq!(Sort::from_query(Some("sort=name")), Sort::Name);
        assert_eq!(Sort::from_query(Some("x=1&sort=expiry")), Sort::Expiry);
        assert_eq!(Sort::from_query(Some("sort=<bogus>")), Sort::Worst);
    }

    #[test]
    fn relative_times() {
        let now = at(1_000_000);
        assert!(time_tag(at(1_000_000 - 12), now).contains(">12 s ago<"));
        assert!(time_tag(at(1_000_000 - 180), now).contains(">3 min ago<"));
        assert!(time_tag(at(1_000_000 - 7_200), now).contains(">2 h ago<"));
        assert!(time_tag(at(1_000_000 + 5), now).contains(">in 5 s<"));
        assert!(time_tag(at(1_000_000), now).contains("title=\"1970-01-12 13:46:40 UTC\""));
    }
}
