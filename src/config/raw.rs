//! The raw YAML shape of the config file (serde, every field optional) and its one gate, [`RawConfig::validate`],
//! which applies the defaults and checks every value into a typed `Config`.
//!
//! It does not hold the typed config (`config/mod.rs`) or shape errors (`config/error.rs`), and reads no file
//! but the CA files it checks.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::error::ConfigError;
use crate::config::server_name::ServerName;
use crate::config::{
    ApiConfig, Checks, Config, DEFAULT_NAMESERVER_PORT, DEFAULT_RELOAD_GRACE, DnsConfig,
    LocalCertificates, MAX_CONCURRENCY, MAX_CONNECTIONS, MAX_LOCAL_CERT_FILES, MetricsConfig,
    ProbeConfig, Profile, TargetPattern, Timeouts, TlsConfig, TrustStore, WebLimits, check_ca_file,
};

// The raw YAML shape. Every field is optional, and an empty (null) value means the default too; defaults are
// applied in `RawConfig::validate`, the one place a raw config becomes a `Config`.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    servers: Option<Vec<String>>,
    probe: Option<RawProbe>,
    dns: Option<RawDns>,
    tls: Option<RawTls>,
    api: Option<RawApi>,
    web: Option<RawWeb>,
    target_files: Option<Vec<String>>,
    local_certificates: Option<Vec<RawLocalCertificates>>,
    homeservers: Option<Vec<crate::config::homeservers::RawHomeserver>>,
    notaries: Option<Vec<crate::config::notary::RawNotary>>,
    metrics: Option<RawMetrics>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    profile: Option<String>,
}

/// One `local_certificates` entry (DESIGN.md point 7).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocalCertificates {
    server_name: Option<String>,
    files: Option<Vec<String>>,
    #[serde(default, with = "humantime_serde")]
    reload_grace: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    max_connections: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    header_read_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    idle_timeout: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    probe_unconfigured: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChecks {
    keys: Option<bool>,
    version: Option<bool>,
    client: Option<bool>,
    support: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    #[serde(default, with = "humantime_serde")]
    interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    jitter: Option<Duration>,
    concurrency: Option<usize>,
    timeouts: Option<RawTimeouts>,
    checks: Option<RawChecks>,
    #[serde(default, with = "humantime_serde")]
    max_timeout: Option<Duration>,
    max_concurrent_probes: Option<usize>,
    allowed_targets: Option<Vec<String>>,
    allow_private_addresses: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    #[serde(default, with = "humantime_serde")]
    dns: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    connect: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    tls_handshake: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    well_known: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    http: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    nameservers: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    trust_store: Option<RawTrustStore>,
    ca_files: Option<Vec<PathBuf>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawTrustStore {
    #[default]
    System,
    Webpki,
}

pub(super) fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
    // An empty file (or one holding only comments) is an empty mapping: every default, no servers.
    let is_blank = text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    });
    let raw: RawConfig = if is_blank {
        RawConfig::default()
    } else {
        serde_saphyr::from_str(text).map_err(|e| duration_error(&e, text))?
    };
    raw.validate(base)
}

/// The accepted duration syntax, for the error of a value that is not one.
const DURATION_SYNTAX: &str =
    "write a number and a unit, as in 30s, 5m, 1h30m or 2d (units: ms, s, m, h, d)";

/// A YAML error as [`ConfigError::yaml`] reports it, except a bad duration: that one names its key (found from
/// the YAML position) and the accepted syntax, where the parser says only "expected a duration" at a line.
fn duration_error(error: &serde_saphyr::Error, text: &str) -> ConfigError {
    let (_, message) = crate::config::error::yaml_parts(error);
    let key = error
        .location()
        .filter(|_| message.contains("expected a duration"))
        .and_then(|l| key_path_at(text, usize::try_from(l.line()).ok()?));
    match key {
        Some((key, value)) => ConfigError::at(
            key,
            format!("{value:?} is not a duration: {DURATION_SYNTAX}"),
        ),
        None => ConfigError::yaml(error),
    }
}

/// The dotted key path and the value of the `key: value` line `line` (1-based) of block YAML, from the
/// indentation of the lines above it; a sequence entry (`- key: value`) adds its index (`notaries[1].interval`).
fn key_path_at(text: &str, line: usize) -> Option<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let here = lines.get(line.checked_sub(1)?)?;
    let indent = |l: &str| l.len() - l.trim_start().len();
    // The index of the sequence entry that starts at line `at` among the entries above it at its indentation.
    let entry_index = |at: usize| {
        let level = indent(lines[at]);
        lines[..at]
            .iter()
            .rev()
            .take_while(|l| {
                let t = l.trim();
                t.is_empty() || t.starts_with('#') || indent(l) >= level
            })
            .filter(|l| indent(l) == level && l.trim_start().starts_with("- "))
            .count()
    };
    let mut own = here.trim();
    let mut index = None;
    if let Some(rest) = own.strip_prefix("- ") {
        own = rest;
        index = Some(entry_index(line - 1));
    }
    let (key, value) = own.split_once(':')?;
    let mut path = vec![key.trim().to_owned()];
    let mut level = indent(here);
    for (at, above) in lines[..line - 1].iter().enumerate().rev() {
        let t = above.trim();
        if t.is_empty() || t.starts_with('#') || indent(above) >= level {
            continue;
        }
        level = indent(above);
        if t.starts_with("- ") && index.is_none() {
            // The key sits in this sequence entry, on a later line.
            index = Some(entry_index(at));
            let rest = t.trim_start_matches("- ");
            if rest.ends_with(':') {
                return None;
            }
            level += 1;
            continue;
        }
        let parent = t.strip_suffix(':')?;
        let parent = match index.take() {
            Some(i) => format!("{}[{i}]", parent.trim()),
            None => parent.trim().to_owned(),
        };
        path.push(parent);
        if level == 0 {
            break;
        }
    }
    path.reverse();
    Some((
        path.join("."),
        value.trim().trim_matches(['"', '\'']).to_owned(),
    ))
}

impl RawConfig {
    /// The one gate from raw YAML to a typed `Config`: defaults, ranges, cross-field checks, server names,
    /// nameserver addresses and CA files. `base` is the directory relative CA paths are resolved against.
    fn validate(self, base: &Path) -> Result<Config, ConfigError> {
        let raw_servers = self.servers.unwrap_or_default();
        let mut servers: Vec<ServerName> = Vec::with_capacity(raw_servers.len());
        // Where each name was first listed: a lookup per name, so a list of 100,000 names is checked in linear time.
        let mut first_at: std::collections::HashMap<ServerName, usize> =
            std::collections::HashMap::with_capacity(raw_servers.len());
        for (i, text) in raw_servers.iter().enumerate() {
            let key = || format!("servers[{i}]");
            let name = ServerName::parse(text).map_err(|e| {
                ConfigError::at(key(), format!("invalid server name {text:?}: {e}"))
            })?;
            if let Some(first) = first_at.insert(name.clone(), i) {
                return Err(ConfigError::at(
                    key(),
                    format!("duplicate server name {text:?} (first at servers[{first}])"),
                ));
            }
            servers.push(name);
        }

        let probe = self.probe.unwrap_or_default().validate()?;
        let web = self.web.unwrap_or_default().validate()?;

        let mut target_files = Vec::new();
        for (i, glob) in self.target_files.unwrap_or_default().iter().enumerate() {
            let full = base.join(glob).to_string_lossy().into_owned();
            glob::Pattern::new(&full).map_err(|e| {
                ConfigError::at(
                    format!("target_files[{i}]"),
                    format!("invalid glob {glob:?}: {e}"),
                )
            })?;
            target_files.push(full);
        }

        let local_certificates =
            validate_local_certificates(self.local_certificates.unwrap_or_default(), base)?;

        let homeservers =
            crate::config::homeservers::validate(self.homeservers.unwrap_or_default(), base)?;

        let raw_nameservers = self.dns.and_then(|d| d.nameservers).unwrap_or_default();
        let mut nameservers = Vec::with_capacity(raw_nameservers.len());
        for (i, text) in raw_nameservers.iter().enumerate() {
            let addr = parse_nameserver(text).ok_or_else(|| {
                ConfigError::at(
                    format!("dns.nameservers[{i}]"),
                    format!("invalid nameserver {text:?}: expected IP, IP:PORT or [IPv6]:PORT"),
                )
            })?;
            nameservers.push(addr);
        }

        let tls = self.tls.unwrap_or_default();
        let raw_ca_files = tls.ca_files.unwrap_or_default();
        let mut ca_files = Vec::with_capacity(raw_ca_files.len());
        for (i, path) in raw_ca_files.iter().enumerate() {
            let path = base.join(path);
            check_ca_file(&path).map_err(|e| {
                ConfigError::at(
                    format!("tls.ca_files[{i}]"),
                    format!("{}: {e}", path.display()),
                )
            })?;
            ca_files.push(path);
        }
        let trust_store = match tls.trust_store.unwrap_or_default() {
            RawTrustStore::System => TrustStore::System,
            RawTrustStore::Webpki => TrustStore::Webpki,
        };

        let notaries = crate::config::notary::validate(self.notaries.unwrap_or_default())?;

        let profile = match self.metrics.and_then(|m| m.profile) {
            None => Profile::default(),
            Some(text) => Profile::parse(&text).ok_or_else(|| {
                ConfigError::at(
                    "metrics.profile",
                    format!("{text:?} is not a profile: write full or observer"),
                )
            })?,
        };

        Ok(Config {
            servers,
            probe,
            dns: DnsConfig { nameservers },
            tls: TlsConfig {
                trust_store,
                ca_files,
            },
            target_files,
            local_certificates,
            homeservers,
            shard: None,
            web,
            api: ApiConfig {
                probe_unconfigured: self.api.and_then(|a| a.probe_unconfigured).unwrap_or(false),
            },
            notaries,
            metrics: MetricsConfig { profile },
        })
    }
}

impl RawWeb {
    fn validate(self) -> Result<WebLimits, ConfigError> {
        let d = WebLimits::default();
        let limits = WebLimits {
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            header_read_timeout: self.header_read_timeout.unwrap_or(d.header_read_timeout),
            idle_timeout: self.idle_timeout.unwrap_or(d.idle_timeout),
        };
        if !(1..=MAX_CONNECTIONS).contains(&limits.max_connections) {
            return Err(ConfigError::at(
                "web.max_connections",
                format!(
                    "{} is not between 1 and {MAX_CONNECTIONS}",
                    limits.max_connections
                ),
            ));
        }
        for (key, value) in [
            ("web.header_read_timeout", limits.header_read_timeout),
            ("web.idle_timeout", limits.idle_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::at(key, "must be greater than 0"));
            }
        }
        Ok(limits)
    }
}

/// `probe.timeouts`: unset ones take their default, shortened to the interval if that is shorter; none may be 0
/// or longer than the interval.
fn validate_timeouts(t: &RawTimeouts, interval: Duration) -> Result<Timeouts, ConfigError> {
    let d = Timeouts::default();
    let timeouts = Timeouts {
        dns: t.dns.unwrap_or(d.dns.min(interval)),
        connect: t.connect.unwrap_or(d.connect.min(interval)),
        tls_handshake: t.tls_handshake.unwrap_or(d.tls_handshake.min(interval)),
        well_known: t.well_known.unwrap_or(d.well_known.min(interval)),
        http: t.http.unwrap_or(d.http.min(interval)),
    };
    let named = [
        ("dns", timeouts.dns),
        ("connect", timeouts.connect),
        ("tls_handshake", timeouts.tls_handshake),
        ("well_known", timeouts.well_known),
        ("http", timeouts.http),
    ];
    for (name, value) in named {
        let key = format!("probe.timeouts.{name}");
        if value.is_zero() {
            return Err(ConfigError::at(key, "must be greater than 0"));
        }
        // One stage that may outlast the whole round cannot be what the operator meant.
        if value > interval {
            return Err(ConfigError::at(
                key,
                format!(
                    "{} is longer than probe.interval ({})",
                    show(value),
                    show(interval)
                ),
            ));
        }
    }
    Ok(timeouts)
}

/// `probe.allowed_targets`, each compiled; the error names the entry and the regex engine's reason on one line.
fn compile_patterns(raw: &[String]) -> Result<Vec<TargetPattern>, ConfigError> {
    let mut allowed_targets = Vec::with_capacity(raw.len());
    for (i, pattern) in raw.iter().enumerate() {
        let compiled = TargetPattern::new(pattern).map_err(|e| {
            let reason = e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            ConfigError::at(
                format!("probe.allowed_targets[{i}]"),
                format!("invalid regular expression {pattern:?}: {reason}"),
            )
        })?;
        allowed_targets.push(compiled);
    }
    Ok(allowed_targets)
}

impl RawProbe {
    fn validate(self) -> Result<ProbeConfig, ConfigError> {
        let defaults = ProbeConfig::default();
        let interval = self.interval.unwrap_or(defaults.interval);
        let jitter = self.jitter.unwrap_or(defaults.jitter.min(interval / 10));
        let concurrency = self.concurrency.unwrap_or(defaults.concurrency);
        if interval.is_zero() {
            return Err(ConfigError::at("probe.interval", "must be greater than 0"));
        }
        if jitter >= interval {
            return Err(ConfigError::at(
                "probe.jitter",
                format!(
                    "{} must be less than probe.interval ({})",
                    show(jitter),
                    show(interval)
                ),
            ));
        }
        if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
            return Err(ConfigError::at(
                "probe.concurrency",
                format!("{concurrency} is not between 1 and {MAX_CONCURRENCY}"),
            ));
        }

        let timeouts = validate_timeouts(&self.timeouts.unwrap_or_default(), interval)?;

        let c = self.checks.unwrap_or_default();
        let checks = Checks {
            keys: c.keys.unwrap_or(true),
            version: c.version.unwrap_or(true),
            client: c.client.unwrap_or(true),
            support: c.support.unwrap_or(true),
        };

        if self.max_timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::at(
                "probe.max_timeout",
                "must be greater than 0",
            ));
        }
        let max_concurrent_probes = self
            .max_concurrent_probes
            .unwrap_or(defaults.max_concurrent_probes);
        if !(1..=MAX_CONCURRENCY).contains(&max_concurrent_probes) {
            return Err(ConfigError::at(
                "probe.max_concurrent_probes",
                format!("{max_concurrent_probes} is not between 1 and {MAX_CONCURRENCY}"),
            ));
        }
        let allowed_targets = compile_patterns(&self.allowed_targets.unwrap_or_default())?;

        Ok(ProbeConfig {
            interval,
            jitter,
            concurrency,
            timeouts,
            checks,
            max_timeout: self.max_timeout,
            max_concurrent_probes,
            allowed_targets,
            allow_private_addresses: self.allow_private_addresses.unwrap_or(false),
        })
    }
}

/// `local_certificates`: each entry names a valid server name and at least one file glob (resolved against the
/// config file's directory). The files themselves are not read here: one that is missing now may be created by the
/// ACME client later, so it is a warning at probe time (`local_cert_unreadable`), never a load error.
fn validate_local_certificates(
    raw: Vec<RawLocalCertificates>,
    base: &Path,
) -> Result<Vec<LocalCertificates>, ConfigError> {
    let mut entries = Vec::with_capacity(raw.len());
    for (i, entry) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("local_certificates[{i}].{field}");
        let text = entry
            .server_name
            .ok_or_else(|| ConfigError::at(key("server_name"), "missing"))?;
        let server_name = ServerName::parse(&text).map_err(|e| {
            ConfigError::at(
                key("server_name"),
                format!("invalid server name {text:?}: {e}"),
            )
        })?;
        let raw_files = entry.files.unwrap_or_default();
        if raw_files.is_empty() {
            return Err(ConfigError::at(
                key("files"),
                "lists no file (give the PEM files the server serves, e.g. certbot's fullchain.pem)",
            ));
        }
        if raw_files.len() > MAX_LOCAL_CERT_FILES {
            return Err(ConfigError::at(
                key("files"),
                format!(
                    "{} files, more than {MAX_LOCAL_CERT_FILES}",
                    raw_files.len()
                ),
            ));
        }
        let mut files = Vec::with_capacity(raw_files.len());
        for (j, glob) in raw_files.iter().enumerate() {
            if glob.trim().is_empty() {
                return Err(ConfigError::at(key(&format!("files[{j}]")), "is empty"));
            }
            let full = base.join(glob).to_string_lossy().into_owned();
            glob::Pattern::new(&full).map_err(|e| {
                ConfigError::at(
                    key(&format!("files[{j}]")),
                    format!("invalid glob {glob:?}: {e}"),
                )
            })?;
            files.push(full);
        }
        let reload_grace = entry.reload_grace.unwrap_or(DEFAULT_RELOAD_GRACE);
        entries.push(LocalCertificates {
            server_name,
            files,
            reload_grace,
        });
    }
    Ok(entries)
}

fn show(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(d)
}

/// `IP`, `[IPv6]`, `IPv4:PORT` or `[IPv6]:PORT`; without a port, port 53. Port 0 is refused.
fn parse_nameserver(text: &str) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return (addr.port() != 0).then_some(addr);
    }
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, DEFAULT_NAMESERVER_PORT))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use crate::config::{Config, Timeouts};

    #[test]
    fn humantime_durations_and_partial_timeouts() {
        let c = Config::from_yaml(
            "probe:\n  interval: 1m30s\n  jitter: 500ms\n  timeouts:\n    dns: 2s\n",
        )
        .unwrap();
        assert_eq!(c.probe.interval, Duration::from_secs(90));
        assert_eq!(c.probe.jitter, Duration::from_millis(500));
        assert_eq!(c.probe.timeouts.dns, Duration::from_secs(2));
        assert_eq!(c.probe.timeouts.http, Timeouts::default().http);
    }

    #[test]
    fn unset_jitter_and_timeouts_shrink_to_fit_a_short_interval() {
        let c =
            Config::from_yaml("probe:\n  interval: 3s\n  timeouts:\n    connect: 1s\n").unwrap();
        assert_eq!(c.probe.jitter, Duration::from_millis(300));
        assert_eq!(c.probe.timeouts.connect, Duration::from_secs(1));
        assert_eq!(c.probe.timeouts.http, Duration::from_secs(3));
        let e =
            Config::from_yaml("probe:\n  interval: 3s\n  timeouts:\n    http: 4s\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "probe.timeouts.http: 4s is longer than probe.interval (3s)"
        );
    }

    #[test]
    fn nameservers_default_to_port_53() {
        let c = Config::from_yaml(
            "dns:\n  nameservers: ['9.9.9.9', '::1', '127.0.0.1:5353', '[::1]:54', '[::2]']\n",
        )
        .unwrap();
        let want: Vec<SocketAddr> = [
            "9.9.9.9:53",
            "[::1]:53",
            "127.0.0.1:5353",
            "[::1]:54",
            "[::2]:53",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert_eq!(c.dns.nameservers, want);
    }
}
