//! The notaries' view in words: what `check NAME` prints when notaries are configured. Pure.

use std::fmt::Write as _;

use crate::render::format;
use crate::report::NotaryResult;
use crate::report::notary::NotaryReport;

/// One block per notary: whether it could be used, then one line per server with the result, the notary's
/// copy's validity and keys, and what differs.
#[must_use]
pub fn text(notaries: &[NotaryReport]) -> String {
    let mut out = String::new();
    for n in notaries {
        if n.up {
            let _ = writeln!(
                out,
                "Notary {} (POST /_matrix/key/v2/query, {}):",
                n.notary,
                format::count(n.requests, "request", "requests")
            );
        } else {
            let _ = writeln!(out, "Notary {}: not usable: {}", n.notary, n.message);
        }
        for v in &n.servers {
            let _ = write!(out, "  {}: {}", v.server_name, v.result);
            if let Some(ms) = v.valid_until_ts {
                let _ = write!(out, ", its copy valid until {}", format::date(ms / 1000));
            }
            if !v.keys.is_empty() {
                let keys: Vec<String> = v
                    .keys
                    .iter()
                    .map(|(id, key)| format!("{id} {key}"))
                    .collect();
                let _ = write!(out, ", keys {}", keys.join(", "));
            }
            let _ = writeln!(out);
            if v.result != NotaryResult::Match && !v.message.is_empty() {
                let _ = writeln!(out, "    {}", v.message);
            }
            let _ = write!(out, "{}", hint(v.result));
        }
    }
    out
}

/// What a result means for peers, for the results that need a word.
fn hint(result: NotaryResult) -> &'static str {
    match result {
        // A match needs no word; a failed request's message already says what failed.
        NotaryResult::Match | NotaryResult::RequestFailed => "",
        NotaryResult::Stale => {
            "    Peers that fetch keys through this notary cannot verify the server's new signatures until it refetches.\n"
        }
        NotaryResult::NoKeys => {
            "    The notary cannot reach or verify the server: peers that rely on it cannot verify its events.\n"
        }
        NotaryResult::BadSignature => {
            "    The notary's answer is not signed by the server and the notary as it must be.\n"
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::report::notary::NotaryView;

    #[test]
    fn every_server_gets_a_line_and_the_stale_one_says_why() {
        let report = NotaryReport {
            notary: "notary.example".into(),
            started_at: UNIX_EPOCH,
            duration: Duration::ZERO,
            up: true,
            message: String::new(),
            requests: 1,
            servers: vec![
                NotaryView {
                    server_name: "a.example".into(),
                    result: NotaryResult::Match,
                    valid_until_ts: Some(86_400_000),
                    keys: vec![("ed25519:a".into(), "AAAA".into())],
                    message: String::new(),
                },
                NotaryView {
                    server_name: "b.example".into(),
                    result: NotaryResult::Stale,
                    valid_until_ts: None,
                    keys: vec![("ed25519:b".into(), "BBBB".into())],
                    message:
                        "the notary does not serve the key the server serves directly for ed25519:c"
                            .into(),
                },
            ],
        };
        let text = text(&[report]);
        assert!(
            text.starts_with("Notary notary.example (POST /_matrix/key/v2/query, 1 request):\n"),
            "{text}"
        );
        assert!(
            text.contains("  a.example: match, its copy valid until 1970-01-02"),
            "{text}"
        );
        assert!(text.contains("keys ed25519:a AAAA\n"), "{text}");
        assert!(
            text.contains("  b.example: stale, keys ed25519:b BBBB\n    the notary does not serve"),
            "{text}"
        );
    }
}
