//! Words for two of the certificates FAQ's questions, shared by the `check` text and the status page: the SRV
//! records a delegating well-known shadows (a discovery step of their own), and whom to contact (the support
//! well-known). Raw text that repeats what probed servers sent: each renderer makes it inert (`text::Inert`) or
//! escapes it (`html::Esc`).

use crate::render::format::{count, ms};
use crate::report::{ContactRole, ServerReport, SupportReport, SupportResult};

/// The shadowed-records step of the discovery path: a line, and one line per record. `None` when the records
/// were not looked up (no delegation, or a delegation to the server's own hostname without a port).
#[must_use]
pub fn shadowed_step(report: &ServerReport) -> Option<(String, Vec<String>)> {
    let s = report.discovery.shadowed_srv.as_ref()?;
    let name = &report.server_name;
    let took = format!(" [{}]", ms(s.duration));
    let mut more: Vec<String> = s
        .records
        .iter()
        .map(|r| {
            let verdict = if r.elsewhere {
                "not where the delegation leads: stale?"
            } else {
                "where the delegation leads too"
            };
            format!(
                "→ {}.{name} → {} (priority {}, weight {}): {verdict}",
                r.record, r.target, r.priority, r.weight
            )
        })
        .collect();
    more.extend(s.errors.iter().map(|e| format!("lookup failed: {e}")));
    let line = if s.records.is_empty() {
        format!("SRV records of {name} itself, which the delegation shadows: none{took}")
    } else {
        format!(
            "SRV records of {name} itself: {}, shadowed by the delegation (peers never read them; older \
             software and people reading DNS do){took}",
            count(s.records.len(), "record", "records")
        )
    };
    Some((line, more))
}

/// The support well-known in plain words: a verdict line, then one line per contact and the support page.
#[must_use]
pub fn support_lines(s: &SupportReport) -> Vec<String> {
    let why = s
        .error_text()
        .map_or_else(String::new, |e| format!(" ({e})"));
    let redirects = match s.hops.len() {
        0 | 1 => String::new(),
        n => format!(" after {}", count(n - 1, "redirect", "redirects")),
    };
    let took = format!(" [{}]", ms(s.duration.get()));
    let verdict = match s.result {
        SupportResult::Ok => {
            let total: u32 = s.role_counts.iter().sum();
            format!(
                "ok: {}{}{redirects}{took}",
                count(total as usize, "contact", "contacts"),
                if s.support_page.is_some() {
                    " and a support page"
                } else {
                    ""
                }
            )
        }
        SupportResult::NotFound => {
            format!("not_found: no /.well-known/matrix/support (optional in the spec){took}")
        }
        result => format!("{result}{why}{redirects}{took}"),
    };
    let mut lines = vec![verdict];
    for c in &s.contacts {
        let role = match ContactRole::of(&c.role) {
            ContactRole::Other => format!("{} (other)", c.role),
            _ => c.role.clone(),
        };
        let ways: Vec<&str> = [c.matrix_id.as_deref(), c.email_address.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        lines.push(format!("{role}: {}", ways.join(", ")));
    }
    let listed: u32 = s.role_counts.iter().sum();
    if listed as usize > s.contacts.len() {
        lines.push(format!("… and {} more", listed as usize - s.contacts.len()));
    }
    if let Some(page) = &s.support_page {
        lines.push(format!("support page: {page}"));
    }
    lines
}
