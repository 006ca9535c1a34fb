//! The page at `/runbook`: `docs/runbook.md`, built into the binary, as HTML with one anchor per alert (the
//! alert name in lower case), so that the alerts' `runbook_url` works wherever the exporter runs and always
//! matches its version. A small Markdown subset, enough for that file: headings, fenced code, lists and
//! paragraphs; inline markup is shown as written.

use maud::{Markup, html};

use super::{Esc, page};

/// The runbook, as written in the repository.
pub const RUNBOOK_MD: &str = include_str!("../../../docs/runbook.md");

/// `/runbook`: the runbook as HTML; each `## Name` heading has the id `name` in lower case.
#[must_use]
pub fn runbook_page() -> String {
    let body = html! {
        header { p class="meta" { a href="/" { "← all servers" } } }
        main class="runbook" { @for block in blocks(RUNBOOK_MD) { (block) } }
    };
    page("Runbook · Matrix federation alerts", &body)
}

/// The file's blocks, each as markup.
fn blocks(text: &str) -> Vec<Markup> {
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(title) = line.strip_prefix("## ") {
            let id = anchor(title);
            out.push(html! { h2 id=(id) { a href={ "#" (id) } { (Esc(title.trim())) } } });
        } else if let Some(title) = line.strip_prefix("# ") {
            out.push(html! { h1 { (Esc(title.trim())) } });
        } else if line.trim_start().starts_with("```") {
            let mut code = Vec::new();
            for l in lines.by_ref() {
                if l.trim_start().starts_with("```") {
                    break;
                }
                code.push(l);
            }
            out.push(html! { pre { code { (Esc(&code.join("\n"))) } } });
        } else {
            // A paragraph or a list: every line up to a blank one, a heading or a fence, kept as written.
            let mut para = vec![line];
            while let Some(next) = lines.peek() {
                let t = next.trim_start();
                if next.trim().is_empty() || next.starts_with('#') || t.starts_with("```") {
                    break;
                }
                para.push(lines.next().unwrap_or_default());
            }
            out.push(html! { p style="white-space: pre-wrap" { (Esc(&para.join("\n"))) } });
        }
    }
    out
}

/// A heading's anchor: lower case, spaces as hyphens, other punctuation dropped (as GitHub does).
fn anchor(title: &str) -> String {
    title
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alert_section_has_its_anchor() {
        let page = runbook_page();
        for title in RUNBOOK_MD.lines().filter_map(|l| l.strip_prefix("## ")) {
            if title.starts_with("MatrixFederation") {
                let id = format!("id=\"{}\"", title.trim().to_lowercase());
                assert!(page.contains(&id), "no {id}");
            }
        }
        assert!(page.contains("id=\"matrixfederationexporterdown\""));
        assert!(!page.contains("<script"));
    }
}
