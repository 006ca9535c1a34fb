//! Matrix server names, parsed once per the spec grammar.
//!
//! Matrix spec v1.19, Appendices, "Server Name":
//!
//! ```text
//! server_name = hostname [ ":" port ]
//! port        = 1*5DIGIT
//! hostname    = IPv4address / "[" IPv6address "]" / dns-name
//! IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT
//! IPv6address = 2*45IPv6char
//! IPv6char    = DIGIT / %x41-46 / %x61-66 / ":" / "."
//! dns-name    = 1*255dns-char
//! dns-char    = DIGIT / ALPHA / "-" / "."
//! ```
//!
//! The grammar gives no numeric range for the port; we accept 1 to 65535 (port 0 cannot be connected to).
//! Server names are case-sensitive, so the original text is kept as is. This module does no I/O.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;

/// The host part of a server name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name, exactly as written (case kept).
    Dns(String),
    Ip(IpAddr),
}

/// A valid Matrix server name: `hostname[:port]`.
///
/// Cheap to clone (one shared string): the configuration, the scheduler and the probes each hold a copy of
/// every name, which at ten thousand servers is worth keeping small.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerName {
    raw: Arc<str>,
    /// Whether the host is an IP literal; its address is read again from `raw` when asked (keeping it here
    /// would make every copy of every name 16 bytes larger).
    ip_literal: bool,
    port: Option<u16>,
}

/// Why a string is not a server name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServerNameError {
    #[error("server name is empty")]
    Empty,
    #[error("server name is {0} bytes long; a hostname has at most 255 characters")]
    TooLong(usize),
    #[error(
        "character {ch:?} at byte {at} is not allowed in a DNS name (only letters, digits, '-' and '.')"
    )]
    BadDnsChar { ch: char, at: usize },
    #[error("{0:?} looks like an IPv4 address but is not one (four numbers 0-255)")]
    BadIpv4(String),
    #[error("{0:?} is not a valid IPv6 address")]
    BadIpv6(String),
    #[error("an IPv6 address must be written in square brackets, as in [{0}]")]
    UnbracketedIpv6(String),
    #[error("missing ']' after the IPv6 address")]
    UnclosedBracket,
    #[error("port {0:?} is not a number from 1 to 65535")]
    BadPort(String),
    #[error("unexpected {0:?} after the host (expected ':' and a port)")]
    TrailingGarbage(String),
    /// A URL where a server name belongs: a newcomer's first mistake.
    #[error(
        "{given:?} is a URL, but a server name has no scheme or path: write {suggestion:?} (the part after @ \
         in a user ID)"
    )]
    Url { given: String, suggestion: String },
}

impl ServerName {
    /// Parses a server name. Equivalent to `s.parse()`.
    pub fn parse(s: &str) -> Result<Self, ServerNameError> {
        s.parse()
    }

    /// The server name exactly as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The server name as written, sharing this name's string (no copy).
    #[must_use]
    pub fn shared_str(&self) -> Arc<str> {
        self.raw.clone()
    }

    /// The host part.
    #[must_use]
    pub fn host(&self) -> Host {
        match self.ip() {
            Some(ip) => Host::Ip(ip),
            None => Host::Dns(self.dns_host().to_owned()),
        }
    }

    /// The address of an IP literal, `None` for a DNS name.
    fn ip(&self) -> Option<IpAddr> {
        if !self.ip_literal {
            return None;
        }
        match self.raw.strip_prefix('[') {
            // Parsed when the name was: `[` IPv6 `]`, then the port if any.
            Some(inner) => inner.split(']').next()?.parse().ok().map(IpAddr::V6),
            // The grammar's reading (it allows leading zeros, which `Ipv4Addr::from_str` refuses).
            None => parse_ipv4_or_dns(self.dns_host()).ok().flatten(),
        }
    }

    /// The host part before `:port`, when it is not a bracketed IPv6 literal.
    fn dns_host(&self) -> &str {
        // A DNS name or an IPv4 literal has no ':' of its own.
        self.raw.split(':').next().unwrap_or_default()
    }

    #[must_use]
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The hostname without port, as the certificate must name it: a DNS name as written, or the bare IP
    /// (IPv6 without brackets).
    #[must_use]
    pub fn hostname(&self) -> String {
        match self.ip() {
            Some(ip) => ip.to_string(),
            None => self.dns_host().to_owned(),
        }
    }
}

impl fmt::Display for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl FromStr for ServerName {
    type Err = ServerNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ServerNameError::Empty);
        }
        // 255 for the hostname, plus ":65535", plus brackets; anything longer cannot be valid, and this bounds
        // the work below.
        if s.len() > 255 + 8 {
            return Err(ServerNameError::TooLong(s.len()));
        }
        if let Some((scheme, rest)) = s.split_once("://")
            && !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            let suggestion = rest.split(['/', '?', '#']).next().unwrap_or_default();
            return Err(ServerNameError::Url {
                given: s.to_owned(),
                suggestion: suggestion.to_owned(),
            });
        }
        let (ip, rest) = if let Some(inner) = s.strip_prefix('[') {
            let end = inner.find(']').ok_or(ServerNameError::UnclosedBracket)?;
            let text = &inner[..end];
            let valid_chars = text.len() >= 2
                && text.len() <= 45
                && text
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
            let ip: Ipv6Addr = match text.parse() {
                Ok(ip) if valid_chars => ip,
                _ => return Err(ServerNameError::BadIpv6(text.to_owned())),
            };
            (Some(IpAddr::V6(ip)), &inner[end + 1..])
        } else {
            if s.parse::<Ipv6Addr>().is_ok() {
                return Err(ServerNameError::UnbracketedIpv6(s.to_owned()));
            }
            let end = s.find(':').unwrap_or(s.len());
            (parse_ipv4_or_dns(&s[..end])?, &s[end..])
        };
        let port = if rest.is_empty() {
            None
        } else {
            let digits = rest
                .strip_prefix(':')
                .ok_or_else(|| ServerNameError::TrailingGarbage(rest.to_owned()))?;
            Some(parse_port(digits)?)
        };
        Ok(Self {
            raw: s.into(),
            ip_literal: ip.is_some(),
            port,
        })
    }
}

/// An IPv4 literal (`Some`) or a DNS name (`None`), or why `text` is neither.
fn parse_ipv4_or_dns(text: &str) -> Result<Option<IpAddr>, ServerNameError> {
    if text.is_empty() {
        return Err(ServerNameError::Empty);
    }
    if text.len() > 255 {
        return Err(ServerNameError::TooLong(text.len()));
    }
    // IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT. A string of that shape is an IPv4
    // literal (and must then be a valid one); any other string of dns-chars is a DNS name.
    let parts: Vec<&str> = text.split('.').collect();
    let ipv4_shape = parts.len() == 4
        && parts
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    if ipv4_shape {
        let octets: Option<Vec<u8>> = parts.iter().map(|p| p.parse::<u8>().ok()).collect();
        return match octets.as_deref() {
            Some(&[a, b, c, d]) => Ok(Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))),
            _ => Err(ServerNameError::BadIpv4(text.to_owned())),
        };
    }
    if let Some((at, ch)) = text
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
    {
        return Err(ServerNameError::BadDnsChar { ch, at });
    }
    Ok(None)
}

fn parse_port(digits: &str) -> Result<u16, ServerNameError> {
    let bad = || ServerNameError::BadPort(digits.to_owned());
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match digits.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(p) => Ok(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_refused_with_the_name_to_write() {
        let err = ServerName::parse("https://matrix.example.org/_matrix").unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"https://matrix.example.org/_matrix\" is a URL, but a server name has no scheme or path: write \
             \"matrix.example.org\" (the part after @ in a user ID)"
        );
    }

    #[test]
    fn spec_examples_parse() {
        // The examples of the spec's "Server Name" appendix.
        let cases: &[(&str, Host, Option<u16>)] = &[
            ("matrix.org", Host::Dns("matrix.org".into()), None),
            (
                "matrix.org:8888",
                Host::Dns("matrix.org".into()),
                Some(8888),
            ),
            ("1.2.3.4", Host::Ip("1.2.3.4".parse().unwrap()), None),
            (
                "1.2.3.4:1234",
                Host::Ip("1.2.3.4".parse().unwrap()),
                Some(1234),
            ),
            (
                "[1234:5678::abcd]",
                Host::Ip("1234:5678::abcd".parse().unwrap()),
                None,
            ),
            (
                "[1234:5678::abcd]:5678",
                Host::Ip("1234:5678::abcd".parse().unwrap()),
                Some(5678),
            ),
        ];
        for (text, host, port) in cases {
            let n = ServerName::parse(text).unwrap();
            assert_eq!(&n.host(), host, "{text}");
            assert_eq!(n.port(), *port, "{text}");
            assert_eq!(n.as_str(), *text);
            assert_eq!(n.to_string(), *text);
        }
    }

    #[test]
    fn case_is_kept() {
        let n = ServerName::parse("Example.ORG").unwrap();
        assert_eq!(n.hostname(), "Example.ORG");
    }

    #[test]
    fn ipv6_hostname_has_no_brackets() {
        assert_eq!(ServerName::parse("[::1]:8448").unwrap().hostname(), "::1");
    }

    #[test]
    fn bad_names_say_why() {
        let cases: &[(&str, ServerNameError)] = &[
            ("", ServerNameError::Empty),
            (
                "https://matrix.org",
                ServerNameError::Url {
                    given: "https://matrix.org".into(),
                    suggestion: "matrix.org".into(),
                },
            ),
            (
                "matrix.org/",
                ServerNameError::BadDnsChar { ch: '/', at: 10 },
            ),
            (
                "mat rix.org",
                ServerNameError::BadDnsChar { ch: ' ', at: 3 },
            ),
            ("matrix.org:", ServerNameError::BadPort(String::new())),
            ("matrix.org:0", ServerNameError::BadPort("0".into())),
            ("matrix.org:65536", ServerNameError::BadPort("65536".into())),
            (
                "matrix.org:123456",
                ServerNameError::BadPort("123456".into()),
            ),
            (
                "matrix.org:8448:1",
                ServerNameError::BadPort("8448:1".into()),
            ),
            ("256.1.1.1", ServerNameError::BadIpv4("256.1.1.1".into())),
            ("::1", ServerNameError::UnbracketedIpv6("::1".into())),
            ("[::1", ServerNameError::UnclosedBracket),
            ("[::g]", ServerNameError::BadIpv6("::g".into())),
            ("[::1]x", ServerNameError::TrailingGarbage("x".into())),
            (":8448", ServerNameError::Empty),
            (
                "bücher.example",
                ServerNameError::BadDnsChar { ch: 'ü', at: 1 },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(ServerName::parse(text).as_ref(), Err(want), "{text:?}");
        }
        let long = "a".repeat(256);
        assert_eq!(ServerName::parse(&long), Err(ServerNameError::TooLong(256)));
        let huge = "a".repeat(10_000);
        assert!(matches!(
            ServerName::parse(&huge),
            Err(ServerNameError::TooLong(10_000))
        ));
    }
}
