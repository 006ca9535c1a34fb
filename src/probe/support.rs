//! Who to tell: `GET https://<hostname>/.well-known/matrix/support` (client-server API since spec v1.10, MSC1929).
//!
//! The spec: "Gets server admin contact and support page of the domain. ... this endpoint should be accessed with
//! the hostname of the homeserver's server name by making a GET request to
//! `https://hostname/.well-known/matrix/support`." The fetch follows the server well-known's rules (redirects
//! without loops, the 50 KiB cap, `probe.timeouts.well_known`, the certificate judged for the hostname) through
//! [`fetch::get_following`], on port 443 of the server name's hostname also when the server name has a port, and
//! over the connection the server well-known opened when it is still open.
//!
//! The document is optional ("Absent is fine"): 404 is `not_found`, not a warning. Contacts are foreign text: they
//! are kept as plain data, cut to [`MAX_FIELD`] bytes, and rendered escaped, never as labels.

use std::time::Instant;

use serde_json::Value;
use url::Url;

use crate::config::server_name::{Host, ServerName};
use crate::probe::discovery::dns::Known;
use crate::probe::discovery::fetch::{self, FetchErrorKind, Fetched, Kept};
use crate::probe::discovery::well_known::MAX_BODY;
use crate::probe::env::ProbeEnv;
use crate::report::{
    ContactRole, MAX_CONTACTS, MAX_FIELD, SupportContact, SupportReport, SupportResult,
};

/// The support document's URL for `name`: its hostname (an IP literal's hostname is the address), no port.
fn url(name: &ServerName) -> Result<Url, url::ParseError> {
    let host = match name.host() {
        Host::Ip(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        Host::Ip(ip) => ip.to_string(),
        Host::Dns(h) => h,
    };
    Url::parse(&format!("https://{host}/.well-known/matrix/support"))
}

/// Fetches and judges the support document of `name`, within `probe.timeouts.well_known`, riding `kept` when it
/// is a connection to the same origin, and using the addresses discovery already looked up (`known`).
pub async fn lookup(
    env: &ProbeEnv,
    name: &ServerName,
    known: &mut Known,
    kept: &mut Option<Kept>,
) -> SupportReport {
    let start = Instant::now();
    let mut report = SupportReport::unfetched();
    let url = match url(name) {
        Ok(url) => url,
        Err(e) => {
            report.error = Some(format!("cannot form the support URL: {e}").into());
            report.duration = start.elapsed().into();
            return report;
        }
    };
    let limit = env.timeouts.well_known;
    let fetching = fetch::get_following(env, url, MAX_BODY, known, &mut report.hops, kept);
    match tokio::time::timeout(limit, fetching).await {
        Ok(Ok(Fetched { response, .. })) => match response.status {
            200 => judge(&response.body, &mut report),
            404 => {
                // The words are the result's (`SupportReport::error_text`): no copy per server.
                report.result = SupportResult::NotFound;
            }
            status => report.error = Some(format!("HTTP {status}").into()),
        },
        Ok(Err(e)) => {
            if e.kind == FetchErrorKind::TooLarge {
                report.result = SupportResult::TooLarge;
            }
            report.error = Some(e.message.into());
        }
        Err(_) => {
            // The request was cut mid-way: the connection is in no state for another.
            *kept = None;
            report.error =
                Some(format!("no answer within {}", humantime::format_duration(limit)).into());
        }
    }
    report.duration = start.elapsed().into();
    report
}

/// Reads a 200 body: `invalid_json`, `invalid`, or `ok` with the contacts and the support page.
fn judge(body: &[u8], report: &mut SupportReport) {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            report.result = SupportResult::InvalidJson;
            report.error = Some(format!("not JSON: {e}").into());
            return;
        }
    };
    match parse(&value, report) {
        Ok(()) => report.result = SupportResult::Ok,
        Err(why) => {
            report.result = SupportResult::Invalid;
            report.error = Some(why.into());
            report.contacts.clear();
            report.role_counts = [0; 3];
            report.support_page = None;
        }
    }
}

/// The spec's shape. Response: "At least one of `contacts` or `support_page` is required. If only `contacts` is
/// set, it must contain at least one item." Contact: `role` is required, and "At least one of `matrix_id` or
/// `email_address` is required."
fn parse(value: &Value, report: &mut SupportReport) -> Result<(), String> {
    let object = value.as_object().ok_or("not a JSON object")?;
    let support_page = match object.get("support_page") {
        None => None,
        Some(Value::String(s)) => Some(cut(s)),
        Some(_) => return Err("support_page is not a string".to_owned()),
    };
    let contacts = match object.get("contacts") {
        None => &[][..],
        Some(Value::Array(list)) => list.as_slice(),
        Some(_) => return Err("contacts is not a list".to_owned()),
    };
    if support_page.is_none() && contacts.is_empty() {
        return Err("neither a support_page nor any contact".to_owned());
    }
    for (i, contact) in contacts.iter().enumerate() {
        let c = contact
            .as_object()
            .ok_or_else(|| format!("contact {i} is not an object"))?;
        let text = |key: &str| match c.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(cut(s))),
            Some(_) => Err(format!("contact {i}: {key} is not a string")),
        };
        let role = text("role")?.ok_or_else(|| format!("contact {i} has no role"))?;
        let email_address = text("email_address")?;
        let matrix_id = text("matrix_id")?;
        if email_address.is_none() && matrix_id.is_none() {
            return Err(format!(
                "contact {i} has neither email_address nor matrix_id"
            ));
        }
        let slot = ContactRole::ALL
            .iter()
            .position(|r| *r == ContactRole::of(&role))
            .unwrap_or(ContactRole::ALL.len() - 1);
        report.role_counts[slot] += 1;
        if report.contacts.len() < MAX_CONTACTS {
            report.contacts.push(SupportContact {
                role,
                email_address,
                matrix_id,
            });
        }
    }
    report.support_page = support_page.map(String::into_boxed_str);
    Ok(())
}

/// `s`, cut to at most [`MAX_FIELD`] bytes at a character boundary.
fn cut(s: &str) -> String {
    let mut end = s.len().min(MAX_FIELD);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(body: &str) -> SupportReport {
        let mut report = SupportReport::unfetched();
        judge(body.as_bytes(), &mut report);
        report
    }

    #[test]
    fn documents_are_judged_as_the_spec_says() {
        let ok = judged(
            r#"{"contacts":[{"role":"m.role.admin","matrix_id":"@a:x"},
                {"role":"m.role.security","email_address":"s@x"},{"role":"m.role.dpo","email_address":"d@x"}]}"#,
        );
        assert_eq!(ok.result, SupportResult::Ok);
        assert_eq!(ok.role_counts, [1, 1, 1]);
        assert_eq!(ok.count(ContactRole::Other), 1);
        let page = judged(r#"{"support_page":"https://x/help"}"#);
        assert_eq!(page.result, SupportResult::Ok);
        assert_eq!(page.support_page.as_deref(), Some("https://x/help"));
        for bad in [
            "{}",
            r#"{"contacts":[]}"#,
            r#"{"contacts":[{"role":"m.role.admin"}]}"#,
            r#"{"contacts":[{"matrix_id":"@a:x"}]}"#,
            r#"{"support_page":1}"#,
            "[]",
        ] {
            assert_eq!(judged(bad).result, SupportResult::Invalid, "{bad}");
        }
        assert_eq!(judged("<html>").result, SupportResult::InvalidJson);
    }

    #[test]
    fn long_fields_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_FIELD);
        assert!(cut(&long).len() <= MAX_FIELD);
        assert!(cut(&long).chars().all(|c| c == 'é'));
    }

    #[test]
    fn the_url_is_the_hostname_without_the_port() {
        let u = |n: &str| url(&ServerName::parse(n).unwrap()).unwrap().to_string();
        assert_eq!(
            u("example.org:8448"),
            "https://example.org/.well-known/matrix/support"
        );
        assert_eq!(
            u("[2001:db8::1]:8448"),
            "https://[2001:db8::1]/.well-known/matrix/support"
        );
    }
}
