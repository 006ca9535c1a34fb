//! The status page: `GET /` lists every server with its verdict, delegation path, addresses, certificate expiry,
//! first failure in words and last probe time; `GET /server/{name}` shows one server's whole report.
//!
//! Server-rendered HTML with inline CSS and no script, so it works without JavaScript and loads nothing from
//! elsewhere (a `Content-Security-Policy` header enforces that). Sorting is server-side through `?sort=` links.
//! Server names, certificate fields and error messages are untrusted text: every one goes through [`Esc`].
//! The words for failures and their fixes come from [`explain::hint`], the same table the `check` command uses.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::render::format::{at, count, date_utc as date, ms, unix};
use crate::render::{explain, text};
use crate::report::{
    AddressReport, CertFacts, Failure, KeysReport, Method, ServerReport, WellKnownOutcome,
};

/// Certificates expiring sooner than this are shown as a warning.
const WARN_DAYS: i64 = 14;
const DAY: i64 = 86_400;

/// Timed steps or phases in order, `name 12 ms · name 3 ms`.
fn timings<T: fmt::Display>(items: &[(T, Duration)]) -> String {
    items
        .iter()
        .map(|(what, took)| format!("{what} {}", ms(*took)))
        .collect::<Vec<_>>()
        .join(" · ")
}

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

struct Row<'a> {
    name: &'a str,
    report: Option<&'a ServerReport>,
    status: Status,
    expiry: Option<i64>,
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

    let mut page = String::with_capacity(4096 + 1024 * rows.len());
    let title = if failing > 0 {
        format!("{failing} failing · Matrix federation status")
    } else {
        "Matrix federation status".to_owned()
    };
    head(&mut page, &title);
    page.push_str("<header><h1>Matrix federation status</h1>\n<p class=\"summary\">");
    let _ = write!(
        page,
        "<span class=\"count\">{} servers</span> \
         <span class=\"pill ok\" id=\"count-ok\">{ok} ok</span> \
         <span class=\"pill failing\" id=\"count-failing\">{failing} failing</span>",
        rows.len()
    );
    if pending > 0 {
        let _ = write!(
            page,
            " <span class=\"pill pending\" id=\"count-pending\">{pending} not yet probed</span>"
        );
    }
    let _ = write!(
        page,
        "</p>\n<p class=\"meta\">Updated {} · <a href=\"/metrics\">/metrics</a></p></header>\n<main>\n",
        date(unix(now))
    );

    if rows.is_empty() {
        page.push_str(
            "<p class=\"empty\">No servers are configured, and no probe has finished yet.</p>\n",
        );
    } else {
        index_table(&mut page, &rows, sort, now);
    }
    page.push_str("</main>\n</body>\n</html>\n");
    page
}

fn index_table(page: &mut String, rows: &[Row<'_>], sort: Sort, now: SystemTime) {
    let th = |page: &mut String, label: &str, key: Sort, title: &str| {
        if key == sort {
            let _ = write!(
                page,
                "<th scope=\"col\" aria-sort=\"ascending\" class=\"sorted\">\
                 <a href=\"/?sort={}\" title=\"{title}\">{label} ▾</a></th>",
                key.as_str()
            );
        } else {
            let _ = write!(
                page,
                "<th scope=\"col\"><a href=\"/?sort={}\" title=\"{title}\">{label}</a></th>",
                key.as_str()
            );
        }
    };
    page.push_str("<div class=\"table-wrap\"><table id=\"servers\">\n<thead><tr>");
    th(page, "Status", Sort::Worst, "Worst first");
    th(page, "Server", Sort::Name, "By name");
    page.push_str("<th scope=\"col\">Delegation</th><th scope=\"col\">Addresses</th>");
    th(page, "Cert expiry", Sort::Expiry, "Soonest expiry first");
    page.push_str(
        "<th scope=\"col\">Problem</th><th scope=\"col\">Last probe</th></tr></thead>\n<tbody>\n",
    );
    for row in rows {
        let status = row.status.as_str();
        let _ = write!(
            page,
            "<tr class=\"row status-{status}\" data-server=\"{}\" data-status=\"{status}\">\
             <td data-label=\"Status\"><span class=\"pill {status}\">{}</span></td>\
             <td data-label=\"Server\" class=\"name\"><a href=\"{}\">{}</a></td>",
            Esc(row.name),
            match row.status {
                Status::Pending => "not yet probed",
                s => s.as_str(),
            },
            server_href(row.name),
            Esc(row.name),
        );
        let Some(r) = row.report else {
            page.push_str(
                "<td data-label=\"Delegation\" class=\"muted\">—</td>\
                 <td data-label=\"Addresses\" class=\"muted\">—</td>\
                 <td data-label=\"Cert expiry\" class=\"muted\">—</td>\
                 <td data-label=\"Problem\" class=\"muted\">waiting for the first probe</td>\
                 <td data-label=\"Last probe\" class=\"muted\">never</td></tr>\n",
            );
            continue;
        };
        let _ = write!(
            page,
            "<td data-label=\"Delegation\" class=\"delegation\">{}</td>",
            Delegation(r)
        );
        let good = r.addresses.iter().filter(|a| a.success()).count();
        let total = r.addresses.len();
        let class = if total > 0 && good == total {
            "ok"
        } else {
            "bad"
        };
        let _ = write!(
            page,
            "<td data-label=\"Addresses\" class=\"addresses\"><span class=\"{class}\">{good}/{total}</span> ok</td>"
        );
        let _ = write!(
            page,
            "<td data-label=\"Cert expiry\" class=\"expiry\">{}</td>",
            Expiry(row.expiry, now)
        );
        page.push_str("<td data-label=\"Problem\" class=\"problem\">");
        let mut failures = all_failures(r);
        if let Some((address, failure)) = failures.next() {
            let hint = explain::hint(failure, r, address);
            let (what, fix) = split_hint(&hint);
            let _ = write!(
                page,
                "<span class=\"what\" title=\"{}\">{}</span>",
                Esc(&failure.message),
                Esc(what)
            );
            if !fix.is_empty() {
                let _ = write!(page, "<span class=\"fix\">: {}</span>", Esc(fix));
            }
            let more = failures.count();
            let _ = write!(
                page,
                "<div class=\"where\"><code>{}/{}</code> on {}",
                failure.stage,
                failure.reason,
                Esc(&address.map_or_else(|| "the server".to_owned(), |a| a.address.to_string())),
            );
            if more > 0 {
                let _ = write!(
                    page,
                    " · <a href=\"{}\">+{more} more</a>",
                    server_href(row.name)
                );
            }
            page.push_str("</div>");
        } else {
            page.push_str("<span class=\"muted\">none</span>");
        }
        let _ = writeln!(
            page,
            "</td><td data-label=\"Last probe\" class=\"probed\">{}</td></tr>",
            time_tag(r.finished_at, now)
        );
    }
    page.push_str("</tbody></table></div>\n");
}

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

/// The page at `/server/{name}`: verdict, failures with fixes, discovery, every address, and `check`'s text.
#[must_use]
pub fn server_page(name: &str, report: Option<&ServerReport>, now: SystemTime) -> String {
    let mut page = String::with_capacity(16 * 1024);
    let status = Status::of(report);
    head(&mut page, &format!("{name} · Matrix federation status"));
    let _ = write!(
        page,
        "<header><p class=\"meta\"><a href=\"/\">← all servers</a></p>\n\
         <h1 id=\"server\" class=\"status-{s}\" data-status=\"{s}\"><span class=\"name\">{}</span> \
         <span class=\"pill {s}\">{}</span></h1>\n",
        Esc(name),
        match status {
            Status::Ok => "federation works",
            Status::Failing => "federation fails",
            Status::Pending => "not yet probed",
        },
        s = status.as_str(),
    );
    let Some(r) = report else {
        page.push_str(
            "</header>\n<main><p class=\"empty\">This server is configured but its first probe has not \
             finished yet. Reload this page in a moment.</p></main>\n</body>\n</html>\n",
        );
        return page;
    };
    let failing = r.addresses.iter().filter(|a| !a.success()).count();
    let _ = write!(
        page,
        "<p class=\"meta\">Probed {} · took {} · {} · {failing} failing</p></header>\n<main>\n",
        time_tag(r.finished_at, now),
        ms(r.duration),
        count(r.addresses.len(), "address", "addresses"),
    );

    let total = all_failures(r).count();
    if total > 0 {
        let _ = write!(
            page,
            "<section id=\"failures\"><h2>What is wrong ({total})</h2>\n<ol class=\"failures\">\n"
        );
        for (address, failure) in all_failures(r) {
            failure_item(&mut page, r, address, failure);
        }
        page.push_str("</ol></section>\n");
    }

    discovery_section(&mut page, r);

    page.push_str("<section id=\"addresses\"><h2>Addresses</h2>\n");
    if r.addresses.is_empty() {
        page.push_str("<p class=\"empty\">None: discovery found nothing to connect to.</p>\n");
    }
    for a in &r.addresses {
        address_card(&mut page, a, now);
    }
    page.push_str("</section>\n");

    let _ = write!(
        page,
        "<section id=\"text\"><h2>Plain-text report</h2>\n<details><summary>As the <code>check</code> \
         command prints it</summary>\n<pre>{}</pre></details></section>\n",
        Esc(&text::render(r, now, false))
    );
    page.push_str("</main>\n</body>\n</html>\n");
    page
}

fn failure_item(
    page: &mut String,
    r: &ServerReport,
    address: Option<&AddressReport>,
    failure: &Failure,
) {
    let hint = explain::hint(failure, r, address);
    let (what, fix) = split_hint(&hint);
    let place = address.map_or_else(
        || "discovery".to_owned(),
        |a| {
            format!(
                "<a href=\"#{}\">{}</a>",
                anchor(a),
                Esc(&a.address.to_string())
            )
        },
    );
    let _ = write!(
        page,
        "<li class=\"failure\" data-reason=\"{}\"><p><code>{}/{}</code> on {place}: \
         <span class=\"what\">{}</span></p>",
        failure.reason,
        failure.stage,
        failure.reason,
        Esc(what),
    );
    if !fix.is_empty() {
        let _ = write!(
            page,
            "<p class=\"fix\"><strong>Fix:</strong> {}</p>",
            Esc(fix)
        );
    }
    let _ = writeln!(
        page,
        "<p class=\"message\">{}</p></li>",
        Esc(&failure.message)
    );
}

fn discovery_section(page: &mut String, r: &ServerReport) {
    let d = &r.discovery;
    let wk = &d.well_known;
    let _ = write!(
        page,
        "<section id=\"discovery\"><h2>Discovery</h2>\n<p class=\"path\">{}</p>\n<dl>\
         <dt>Method</dt><dd><code>{}</code> ({})</dd>\
         <dt>.well-known</dt><dd><code>{}</code>",
        Delegation(r),
        d.method,
        method_words(d.method),
        wk.outcome,
    );
    if let Some(error) = &wk.error {
        let _ = write!(page, ": {}", Esc(error));
    }
    if let Some(ttl) = wk.cache_ttl {
        let _ = write!(
            page,
            " <span class=\"muted\">(peers cache this for {})</span>",
            humantime::format_duration(Duration::from_secs(ttl.as_secs()))
        );
    }
    if !wk.hops.is_empty() {
        page.push_str("<ul class=\"hops\">");
        for (url, status) in &wk.hops {
            let status = if *status == 0 {
                "no answer".to_owned()
            } else {
                format!("HTTP {status}")
            };
            let _ = write!(page, "<li><code>{}</code> → {status}</li>", Esc(url));
        }
        page.push_str("</ul>");
    }
    page.push_str("</dd>");
    if let Some(delegated) = &d.delegated_server {
        let _ = write!(
            page,
            "<dt>Delegated to</dt><dd><code>{}</code></dd>",
            Esc(delegated)
        );
    }
    let _ = write!(
        page,
        "<dt>Certificate must name</dt><dd><code>{}</code></dd>\
         <dt>Host header</dt><dd><code>{}</code></dd>",
        Esc(&d.tls_name),
        Esc(&d.host_header)
    );
    if !d.steps.is_empty() {
        let _ = write!(page, "<dt>Steps</dt><dd>{}</dd>", timings(&d.steps));
    }
    page.push_str("</dl>\n");
    if d.truncated {
        page.push_str(
            "<p class=\"warn\">⚠ More targets or addresses than a probe follows: only the first were probed.</p>\n",
        );
    }
    if !d.targets.is_empty() {
        page.push_str(
            "<div class=\"table-wrap\"><table class=\"targets\"><thead><tr><th>Target</th><th>SRV</th>\
             <th>Addresses</th></tr></thead><tbody>\n",
        );
        for t in &d.targets {
            let srv = t.srv.map_or_else(
                || "—".to_owned(),
                |s| format!("priority {}, weight {}", s.priority, s.weight),
            );
            let addresses = if t.addresses.is_empty() {
                "none".to_owned()
            } else {
                t.addresses
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                page,
                "<tr><td><code>{}:{}</code></td><td>{srv}</td><td>{}{}</td></tr>",
                Esc(&t.host),
                t.port,
                Esc(&addresses),
                if t.via_cname { " (via CNAME)" } else { "" }
            );
        }
        page.push_str("</tbody></table></div>\n");
    }
    page.push_str("</section>\n");
}

fn address_card(page: &mut String, a: &AddressReport, now: SystemTime) {
    let status = if a.success() { "ok" } else { "failing" };
    let _ = write!(
        page,
        "<article class=\"address status-{status}\" id=\"{}\" data-address=\"{}\">\
         <h3><code>{}</code> <span class=\"pill {status}\">{status}</span></h3>\n\
         <p class=\"meta\">{} · from <code>{}</code></p>\n<dl>",
        anchor(a),
        Esc(&a.address.to_string()),
        Esc(&a.address.to_string()),
        a.family(),
        Esc(&a.target_host),
    );
    if !a.phases.is_empty() {
        let _ = write!(page, "<dt>Timings</dt><dd>{}</dd>", timings(&a.phases));
    }
    if let Some(tls) = &a.tls {
        let _ = write!(
            page,
            "<dt>TLS</dt><dd>{} · {}</dd>",
            Esc(&tls.version),
            Esc(&tls.cipher)
        );
    }
    if let Some(cert) = &a.certificate {
        let verdict = if cert.valid() {
            "<span class=\"ok\">✔ valid</span>".to_owned()
        } else {
            let reasons: Vec<&str> = cert.failures.iter().map(|f| f.reason.as_str()).collect();
            format!("<span class=\"bad\">✘ {}</span>", reasons.join(", "))
        };
        let _ = write!(
            page,
            "<dt>Certificate</dt><dd>{verdict} · earliest expiry in the chain: {}",
            Expiry(cert.chain_not_after(), now)
        );
        if cert.chain.is_empty() {
            page.push_str(" · none presented");
        }
        page.push_str("<ol class=\"chain\">");
        for (i, c) in cert.chain.iter().enumerate() {
            cert_item(page, c, i == 0, now);
        }
        page.push_str("</ol></dd>");
    }
    if let Some(keys) = &a.keys {
        keys_item(page, keys, now);
    }
    if let Some(v) = &a.version {
        let _ = write!(
            page,
            "<dt>Version</dt><dd>{} {}</dd>",
            Esc(v.name.as_deref().unwrap_or("(no name)")),
            Esc(v.version.as_deref().unwrap_or("(no version)"))
        );
    }
    page.push_str("</dl>\n");
    if !a.failures.is_empty() {
        page.push_str("<ul class=\"address-failures\">");
        for f in &a.failures {
            let _ = write!(
                page,
                "<li><code>{}/{}</code>: {}</li>",
                f.stage,
                f.reason,
                Esc(&f.message)
            );
        }
        page.push_str("</ul>\n");
    }
    page.push_str("</article>\n");
}

fn cert_item(page: &mut String, c: &CertFacts, leaf: bool, now: SystemTime) {
    let names: Vec<String> = c
        .dns_names
        .iter()
        .cloned()
        .chain(c.ip_addresses.iter().map(ToString::to_string))
        .collect();
    let _ = write!(
        page,
        "<li class=\"cert\"><span class=\"subject\">{}</span>{}<br>\
         <span class=\"muted\">issuer</span> {}",
        Esc(&c.subject),
        if leaf { " <em>(leaf)</em>" } else { "" },
        Esc(&c.issuer),
    );
    if !names.is_empty() {
        let _ = write!(
            page,
            "<br><span class=\"muted\">names</span> {}",
            Esc(&names.join(", "))
        );
    }
    let _ = write!(
        page,
        "<br><span class=\"muted\">valid</span> {} – {} ({})\
         <br><span class=\"muted\">serial</span> <code>{}</code> \
         <span class=\"muted\">sha256</span> <code class=\"fp\">{}</code></li>",
        date(c.not_before),
        date(c.not_after),
        Expiry(Some(c.not_after), now),
        Esc(&c.serial),
        c.fingerprint_sha256,
    );
}

fn keys_item(page: &mut String, keys: &KeysReport, now: SystemTime) {
    let name = if keys.server_name.is_empty() {
        "(missing)"
    } else {
        &keys.server_name
    };
    let _ = write!(
        page,
        "<dt>Keys</dt><dd>server_name <code>{}</code>",
        Esc(name)
    );
    match keys.valid_until_ts {
        Some(ts) => {
            let secs = ts.div_euclid(1000);
            let class = if secs < unix(now) { "bad" } else { "ok" };
            let _ = write!(
                page,
                " · <span class=\"{class}\">valid_until_ts {}</span>",
                time_tag(at(secs), now)
            );
        }
        None => page.push_str(" · <span class=\"bad\">no valid_until_ts</span>"),
    }
    page.push_str("<ul class=\"keys\">");
    for k in &keys.verify_keys {
        let (class, verdict) = if !k.valid_ed25519 {
            ("bad", "✘ not a usable ed25519 key")
        } else if !k.matching_signature {
            ("bad", "✘ signature does not verify")
        } else {
            ("ok", "✔ signature verifies")
        };
        let _ = write!(
            page,
            "<li><code>{}</code> <span class=\"{class}\">{verdict}</span></li>",
            Esc(&k.key_id)
        );
    }
    for k in &keys.old_verify_keys {
        let _ = write!(
            page,
            "<li><code>{}</code> <span class=\"muted\">old key</span></li>",
            Esc(&k.key_id)
        );
    }
    for w in &keys.warnings {
        let _ = write!(page, "<li class=\"warn\">⚠ {}</li>", Esc(w));
    }
    page.push_str("</ul></dd>");
}

/// The page for a name that is neither configured nor probed.
#[must_use]
pub fn not_found_page(name: &str) -> String {
    let mut page = String::with_capacity(2048);
    head(&mut page, "Not found · Matrix federation status");
    let _ = write!(
        page,
        "<header><p class=\"meta\"><a href=\"/\">← all servers</a></p><h1>Not found</h1></header>\n\
         <main><p class=\"empty\" id=\"not-found\">No server named <code>{}</code> is configured or has \
         been probed by this exporter.</p></main>\n</body>\n</html>\n",
        Esc(name)
    );
    page
}

// ---- pieces ----

/// The delegation path in one line: `.well-known → m.server · method · first target`.
struct Delegation<'a>(&'a ServerReport);

impl fmt::Display for Delegation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.0.discovery;
        let mut parts = Vec::new();
        match d.well_known.outcome {
            WellKnownOutcome::Skipped => {}
            WellKnownOutcome::Delegated => parts.push(format!(
                "<span class=\"wk ok\">.well-known → {}</span>",
                Esc(d.delegated_server.as_deref().unwrap_or("?"))
            )),
            outcome => parts.push(format!(
                "<span class=\"wk\">.well-known {}</span>",
                outcome.as_str().replace('_', " ")
            )),
        }
        parts.push(format!(
            "<span class=\"method\">{}</span>",
            method_words(d.method)
        ));
        if let Some(first) = d.targets.first() {
            let more = if d.targets.len() > 1 {
                format!(" (+{})", d.targets.len() - 1)
            } else {
                String::new()
            };
            parts.push(format!(
                "<span class=\"target\">{}:{}{more}</span>",
                Esc(&first.host),
                first.port
            ));
        }
        f.write_str(&parts.join(" · "))
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
struct Expiry(Option<i64>, SystemTime);

impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(not_after) = self.0 else {
            return f.write_str("<span class=\"muted\" title=\"no certificate seen\">—</span>");
        };
        let delta = not_after - unix(self.1);
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
        write!(
            f,
            "<span class=\"days {class}\" data-days=\"{days}\" title=\"notAfter {}\">{text}</span>",
            date(not_after)
        )
    }
}

/// `<time>` with a relative text (`12 s ago`) and the absolute UTC time as its title.
fn time_tag(t: SystemTime, now: SystemTime) -> String {
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
    format!(
        "<time class=\"time\" datetime=\"{iso}\" title=\"{}\">{text}</time>",
        date(secs)
    )
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

/// A fragment id for an address card.
fn anchor(a: &AddressReport) -> String {
    let mut id = String::from("addr-");
    for c in a.address.to_string().chars() {
        id.push(if c.is_ascii_alphanumeric() { c } else { '-' });
    }
    id
}

/// HTML-escapes `&<>"'` when displayed; safe in text and in quoted attribute values.
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

fn head(page: &mut String, title: &str) {
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <link rel=\"icon\" href=\"data:,\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        Esc(title)
    );
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

    #[test]
    fn empty_page_links_metrics() {
        let page = index_page(&[], [], Sort::Worst, SystemTime::now());
        assert!(page.contains("<a href=\"/metrics\">"));
        assert!(page.contains("no probe has finished yet"));
    }
}
