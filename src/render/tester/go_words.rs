//! The words the federation tester's Go code prints, for the fields its consumers read or match on: the
//! well-known `result` texts (gomatrixserverlib `fclient/well_known.go` and the Go standard library errors it
//! passes on), `crypto/tls` cipher-suite and version names, and DNS names fully qualified as `net.LookupSRV`
//! and `net.LookupCNAME` return them, and the key document compacted as a `json.RawMessage`. Pure conversions of what the report already says; our own wording stays
//! in the extension key.

use serde_json::value::RawValue;

use crate::report::WellKnownOutcome;

/// gomatrixserverlib's `errNoWellKnown`, for any answer but 200 (and, here, for a lookup the spec skips).
pub(super) const NO_WELL_KNOWN: &str = "No .well-known found";

/// The tester's `WellKnownResult.result` for a well-known lookup that did not delegate, from our outcome and
/// our message. Where Go's text depends on a fact we do not keep (the byte a JSON syntax error stopped at, the
/// names a certificate is valid for), the nearest Go text is used; README lists these.
pub(super) fn well_known_result(
    outcome: WellKnownOutcome,
    message: &str,
    m_server: &str,
) -> String {
    match outcome {
        // Upstream asks for the well-known of every name; for an IP literal or a name with a port the spec
        // says not to, and the nearest upstream answer is "none found".
        WellKnownOutcome::Delegated | WellKnownOutcome::Skipped => NO_WELL_KNOWN.to_owned(),
        WellKnownOutcome::NotFound | WellKnownOutcome::HttpError
            if message.starts_with("HTTP ") =>
        {
            NO_WELL_KNOWN.to_owned()
        }
        WellKnownOutcome::InvalidJson if message.starts_with("no \"m.server\"") => {
            NO_M_SERVER.to_owned()
        }
        WellKnownOutcome::InvalidJson if message.contains("is not a string") => {
            "json: cannot unmarshal value into Go struct field WellKnownResult.m.server of type spec.ServerName"
                .to_owned()
        }
        WellKnownOutcome::InvalidJson => json_syntax(message),
        WellKnownOutcome::InvalidServerName if m_server.is_empty() => NO_M_SERVER.to_owned(),
        // Upstream accepts any non-empty `m.server` here and stops the whole report with this text as its
        // `Error`; the spec says to skip to the SRV step, so we do, and give the text as the result.
        WellKnownOutcome::InvalidServerName => {
            format!("Invalid server name '{m_server}' in .well-known result")
        }
        // hyper's "message head is too large": Go's client has its own limit (10 MiB) and says so in these words.
        WellKnownOutcome::HttpError if message.contains("too large") => {
            "net/http: server response headers exceeded the limit; aborted".to_owned()
        }
        WellKnownOutcome::RedirectLoop => "stopped after 10 redirects".to_owned(),
        WellKnownOutcome::TooLarge => format!(
            "well-known content length exceeds {} bytes",
            crate::probe::discovery::well_known::MAX_BODY
        ),
        WellKnownOutcome::Timeout => {
            "context deadline exceeded (Client.Timeout exceeded while awaiting headers)".to_owned()
        }
        WellKnownOutcome::DnsError => "no such host".to_owned(),
        WellKnownOutcome::ConnectionFailed if message.contains("refused") => {
            "connection refused".to_owned()
        }
        WellKnownOutcome::ConnectionFailed if message.contains("timed out") => {
            "i/o timeout".to_owned()
        }
        WellKnownOutcome::TlsError => x509_text(message),
        // Transport failures without a Go counterpart (an unreachable network, an address range a peer
        // refuses, an HTTP error that is no status): our words.
        WellKnownOutcome::NotFound
        | WellKnownOutcome::HttpError
        | WellKnownOutcome::ConnectionFailed
        | WellKnownOutcome::AddressNotPublic => message.to_owned(),
    }
}

const NO_M_SERVER: &str = "No m.server key found in well-known response";

/// `encoding/json`'s texts for the syntax errors serde reports: a body cut short, or one that is no JSON.
fn json_syntax(message: &str) -> String {
    if message.contains("EOF while parsing") {
        "unexpected end of JSON input".to_owned()
    } else if message.contains("invalid type") {
        "json: cannot unmarshal value into Go value of type fclient.WellKnownResult".to_owned()
    } else {
        "invalid character looking for beginning of value".to_owned()
    }
}

/// Go's `x509` error texts for a certificate our judge refused (the message starts with our reason label).
fn x509_text(message: &str) -> String {
    let reason = message.split(':').next().unwrap_or_default();
    match reason {
        "cert_unknown_issuer" => "x509: certificate signed by unknown authority",
        "cert_expired" | "cert_not_yet_valid" => {
            "x509: certificate has expired or is not yet valid"
        }
        "cert_hostname_mismatch" => "x509: certificate is not valid for this name",
        _ => "tls: handshake failure",
    }
    .to_owned()
}

/// A cipher suite by its `crypto/tls` constant name: rustls calls TLS 1.3 suites `TLS13_*`, Go `TLS_*`; the
/// TLS 1.2 names are the same in both.
pub(super) fn cipher_suite(rustls_name: &str) -> String {
    match rustls_name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => rustls_name.to_owned(),
    }
}

/// A DNS name fully qualified, as Go's resolver returns it (`matrix.example.org.`).
pub(super) fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

/// The key document as Go's `json.Marshal` writes a `json.RawMessage`: compacted (whitespace outside strings
/// removed), everything else as served: key order, number forms, escapes. `None` when it is not JSON.
pub(super) fn raw_json(raw: &[u8]) -> Option<Box<RawValue>> {
    let mut out = String::with_capacity(raw.len());
    let text = std::str::from_utf8(raw).ok()?;
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if matches!(c, ' ' | '\t' | '\n' | '\r') {
            continue;
        } else if c == '"' {
            in_string = true;
        }
        out.push(c);
    }
    RawValue::from_string(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_suites_are_gos_constant_names() {
        assert_eq!(
            cipher_suite("TLS13_AES_128_GCM_SHA256"),
            "TLS_AES_128_GCM_SHA256"
        );
        assert_eq!(
            cipher_suite("TLS13_CHACHA20_POLY1305_SHA256"),
            "TLS_CHACHA20_POLY1305_SHA256"
        );
        assert_eq!(
            cipher_suite("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
        );
    }

    #[test]
    fn well_known_texts_are_upstreams() {
        use WellKnownOutcome as O;
        let text = |o, m: &str| well_known_result(o, m, "");
        assert_eq!(text(O::NotFound, "HTTP 404 from https://x/"), NO_WELL_KNOWN);
        assert_eq!(
            text(O::HttpError, "HTTP 500 from https://x/"),
            NO_WELL_KNOWN
        );
        assert_eq!(text(O::Skipped, ""), NO_WELL_KNOWN);
        assert_eq!(
            text(O::InvalidJson, "no \"m.server\" property"),
            NO_M_SERVER
        );
        assert_eq!(
            text(
                O::InvalidJson,
                "body is not JSON: EOF while parsing a value at line 1 column 0"
            ),
            "unexpected end of JSON input"
        );
        assert_eq!(
            text(
                O::InvalidJson,
                "body is not JSON: expected value at line 1 column 1"
            ),
            "invalid character looking for beginning of value"
        );
        assert_eq!(
            text(O::InvalidServerName, "\"m.server\" \"\": empty"),
            NO_M_SERVER
        );
        assert_eq!(
            well_known_result(O::InvalidServerName, "bad", "https://x:443"),
            "Invalid server name 'https://x:443' in .well-known result"
        );
        assert_eq!(
            text(O::TlsError, "cert_unknown_issuer: unknown issuer"),
            "x509: certificate signed by unknown authority"
        );
        assert_eq!(text(O::DnsError, "x: NXDOMAIN"), "no such host");
        assert_eq!(
            text(O::HttpError, "message head is too large"),
            "net/http: server response headers exceeded the limit; aborted"
        );
        assert_eq!(
            text(O::HttpError, "HTTP 302 without a Location"),
            NO_WELL_KNOWN
        );
        assert_eq!(
            text(
                O::ConnectionFailed,
                "127.0.0.1:443: connection refused (os error 111)"
            ),
            "connection refused"
        );
        assert_eq!(fqdn("a.example"), "a.example.");
        assert_eq!(fqdn("a.example."), "a.example.");
    }

    #[test]
    fn the_key_document_is_compacted_and_otherwise_as_served() {
        let served = b"{ \"z\" : [1.50, 2e3],\n \"a\": \"x \\\" y\" }\n";
        let raw = raw_json(served).unwrap();
        assert_eq!(raw.get(), r#"{"z":[1.50,2e3],"a":"x \" y"}"#);
        assert!(raw_json(b"{\"cut\":").is_none());
        assert!(raw_json(b"\xff").is_none());
    }
}
