//! `homeservers:`: homeservers whose admin API lists more servers to probe (their federation destinations), as
//! typed config ([`Homeserver`], [`SynapseAdmin`]) and the raw YAML shape with its validation, which
//! `config/raw.rs` calls.
//!
//! It reads the token file only to check that it holds a token; the token itself is read again on every refresh
//! (so a rotated token is picked up) by `probe/homeserver.rs`, and never kept in the config.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::error::ConfigError;

/// Default `synapse_admin.refresh`.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(5 * 60);
/// Default `synapse_admin.max_destinations`.
pub const DEFAULT_MAX_DESTINATIONS: usize = 10_000;
/// Upper bound on `synapse_admin.max_destinations` (beyond it, `--shard` several exporters).
pub const MAX_DESTINATIONS: usize = 100_000;
/// Default `synapse_admin.skip_failing_longer_than`: servers Synapse has given up on long ago.
pub const DEFAULT_SKIP_FAILING_LONGER_THAN: Duration = Duration::from_secs(30 * 24 * 3600);
/// Most bytes a token file may hold.
const MAX_TOKEN_FILE: u64 = 4096;

/// One `homeservers` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Homeserver {
    /// The `homeserver` label; unique among the entries.
    pub name: String,
    pub synapse_admin: SynapseAdmin,
}

/// Synapse's admin API: where it is, how to authenticate, and the bounds on what we read from it.
#[derive(Clone, PartialEq, Eq)]
pub struct SynapseAdmin {
    /// The homeserver's client-server base URL: `https://…`, or `http://` on a loopback address only.
    pub url: url::Url,
    /// The file holding the admin access token (read, trimmed, on every refresh; never logged).
    pub access_token_file: PathBuf,
    pub refresh: Duration,
    /// Most destinations read; the list stops there.
    pub max_destinations: usize,
    /// Destinations whose `failure_ts` is older than this are not probed.
    pub skip_failing_longer_than: Duration,
}

// Written by hand so that nothing about the token (only the file's path) can reach a log through `{:?}`.
impl std::fmt::Debug for SynapseAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SynapseAdmin")
            .field("url", &self.url.as_str())
            .field("access_token_file", &self.access_token_file)
            .field("refresh", &self.refresh)
            .field("max_destinations", &self.max_destinations)
            .field("skip_failing_longer_than", &self.skip_failing_longer_than)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHomeserver {
    name: Option<String>,
    synapse_admin: Option<RawSynapseAdmin>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSynapseAdmin {
    url: Option<String>,
    access_token_file: Option<PathBuf>,
    #[serde(default, with = "humantime_serde")]
    refresh: Option<Duration>,
    max_destinations: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    skip_failing_longer_than: Option<Duration>,
}

/// Validates the `homeservers` list; `base` is the directory relative token files are resolved against.
pub(super) fn validate(
    raw: Vec<RawHomeserver>,
    base: &Path,
) -> Result<Vec<Homeserver>, ConfigError> {
    let mut out: Vec<Homeserver> = Vec::with_capacity(raw.len());
    for (i, entry) in raw.into_iter().enumerate() {
        let at = |key: &str| format!("homeservers[{i}].{key}");
        let name = entry
            .name
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| ConfigError::at(at("name"), "is required (the `homeserver` label)"))?;
        if let Some(first) = out.iter().position(|h| h.name == name) {
            return Err(ConfigError::at(
                at("name"),
                format!("duplicate homeserver name {name:?} (first at homeservers[{first}])"),
            ));
        }
        let admin = entry.synapse_admin.ok_or_else(|| {
            ConfigError::at(at("synapse_admin"), "is required (the admin API to read)")
        })?;
        let synapse_admin = admin.validate(&|key| at(&format!("synapse_admin.{key}")), base)?;
        out.push(Homeserver {
            name,
            synapse_admin,
        });
    }
    Ok(out)
}

impl RawSynapseAdmin {
    fn validate(
        self,
        at: &dyn Fn(&str) -> String,
        base: &Path,
    ) -> Result<SynapseAdmin, ConfigError> {
        let text = self
            .url
            .ok_or_else(|| ConfigError::at(at("url"), "is required"))?;
        let url = parse_url(&text).map_err(|why| ConfigError::at(at("url"), why))?;
        let file = self
            .access_token_file
            .ok_or_else(|| ConfigError::at(at("access_token_file"), "is required"))?;
        let access_token_file = base.join(file);
        check_token_file(&access_token_file)
            .map_err(|why| ConfigError::at(at("access_token_file"), why))?;
        let refresh = self.refresh.unwrap_or(DEFAULT_REFRESH);
        if refresh.is_zero() {
            return Err(ConfigError::at(at("refresh"), "must be greater than 0"));
        }
        let max_destinations = self.max_destinations.unwrap_or(DEFAULT_MAX_DESTINATIONS);
        if !(1..=MAX_DESTINATIONS).contains(&max_destinations) {
            return Err(ConfigError::at(
                at("max_destinations"),
                format!("{max_destinations} is not between 1 and {MAX_DESTINATIONS}"),
            ));
        }
        let skip = self
            .skip_failing_longer_than
            .unwrap_or(DEFAULT_SKIP_FAILING_LONGER_THAN);
        if skip.is_zero() {
            return Err(ConfigError::at(
                at("skip_failing_longer_than"),
                "must be greater than 0",
            ));
        }
        Ok(SynapseAdmin {
            url,
            access_token_file,
            refresh,
            max_destinations,
            skip_failing_longer_than: skip,
        })
    }
}

/// An `https://` URL, or an `http://` one whose host is a loopback address (`localhost`, `127.0.0.0/8`, `::1`):
/// a token must not cross a network in clear, but a homeserver on the same host often listens in clear on
/// loopback only. No user info, query or fragment.
fn parse_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("invalid URL {text:?}: {e}"))?;
    let host = url.host().ok_or_else(|| format!("{text:?} has no host"))?;
    let loopback = match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => IpAddr::V4(ip).is_loopback(),
        url::Host::Ipv6(ip) => IpAddr::V6(ip).is_loopback(),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(format!(
                "{text:?}: http:// is allowed only on a loopback address (localhost, 127.0.0.0/8, ::1); use https://"
            ));
        }
        other => return Err(format!("{text:?}: scheme {other:?} is not https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{text:?}: no user or password in the URL (the token comes from access_token_file)"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{text:?}: no query or fragment (write the base URL)"
        ));
    }
    Ok(url)
}

/// The token file must be readable, small, and hold a non-empty token. The reason never quotes the file.
fn check_token_file(path: &Path) -> Result<(), String> {
    read_token(path).map(drop)
}

/// The token in `path`, trimmed. Errors say what is wrong with the file, never what it holds.
pub fn read_token(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    let mut text = String::new();
    file.take(MAX_TOKEN_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("{shown}: cannot read: {e}"))?;
    if text.len() as u64 > MAX_TOKEN_FILE {
        return Err(format!(
            "{shown}: larger than {MAX_TOKEN_FILE} bytes, not a token file"
        ));
    }
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("{shown}: holds no token"));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{shown}: the token has spaces or characters that cannot go in a header"
        ));
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_or_loopback_http() {
        assert!(parse_url("https://matrix.example.org").is_ok());
        assert!(parse_url("http://127.0.0.1:8008").is_ok());
        assert!(parse_url("http://[::1]:8008").is_ok());
        assert!(parse_url("http://localhost:8008").is_ok());
        assert!(
            parse_url("http://matrix.example.org")
                .unwrap_err()
                .contains("loopback")
        );
        assert!(
            parse_url("ftp://x.example")
                .unwrap_err()
                .contains("not https")
        );
        assert!(parse_url("https://u:p@x.example").is_err());
        assert!(parse_url("https://x.example/?a=b").is_err());
    }

    #[test]
    fn debug_shows_no_token() {
        let dir = std::env::temp_dir().join(format!("mfe-hs-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "  syt_secret_token\n").unwrap();
        assert_eq!(read_token(&file).unwrap(), "syt_secret_token");
        let admin = SynapseAdmin {
            url: url::Url::parse("https://x.example").unwrap(),
            access_token_file: file,
            refresh: DEFAULT_REFRESH,
            max_destinations: 1,
            skip_failing_longer_than: DEFAULT_SKIP_FAILING_LONGER_THAN,
        };
        assert!(!format!("{admin:?}").contains("syt_secret"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
