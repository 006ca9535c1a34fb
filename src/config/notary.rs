//! `notaries:`: the key notaries whose cached copies of every scheduled server's keys are checked
//! (`probe/notary.rs`). None by default: nobody queries matrix.org without choosing to.

use std::time::Duration;

use serde::Deserialize;

use crate::config::error::ConfigError;
use crate::config::server_name::ServerName;

/// Default `notaries[].interval`.
pub const DEFAULT_NOTARY_INTERVAL: Duration = Duration::from_secs(3600);
/// Default `notaries[].batch_size`: server names per `POST /_matrix/key/v2/query`.
pub const DEFAULT_NOTARY_BATCH_SIZE: usize = 100;
/// Upper bound on `notaries[].batch_size` (an answer is read into memory whole, at most 64 KiB per name).
pub const MAX_NOTARY_BATCH_SIZE: usize = 1000;
/// The shortest `notaries[].interval`: a public notary is somebody else's server.
pub const MIN_NOTARY_INTERVAL: Duration = Duration::from_secs(1);

/// One notary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotaryConfig {
    /// Resolved and judged like any server name (the `notary` label).
    pub server_name: ServerName,
    /// How often every scheduled server is asked about.
    pub interval: Duration,
    /// Server names per request (1 to [`MAX_NOTARY_BATCH_SIZE`]).
    pub batch_size: usize,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotary {
    server_name: Option<String>,
    #[serde(default, with = "humantime_serde")]
    interval: Option<Duration>,
    batch_size: Option<usize>,
}

/// `notaries`: each entry checked, with the defaults applied; a notary listed twice is an error.
pub(super) fn validate(raw: Vec<RawNotary>) -> Result<Vec<NotaryConfig>, ConfigError> {
    let mut notaries: Vec<NotaryConfig> = Vec::with_capacity(raw.len());
    for (i, raw) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("notaries[{i}].{field}");
        let text = raw
            .server_name
            .ok_or_else(|| ConfigError::at(key("server_name"), "is required"))?;
        let server_name = ServerName::parse(&text).map_err(|e| {
            ConfigError::at(
                key("server_name"),
                format!("invalid server name {text:?}: {e}"),
            )
        })?;
        if let Some(first) = notaries.iter().position(|n| n.server_name == server_name) {
            return Err(ConfigError::at(
                key("server_name"),
                format!("duplicate notary {text:?} (first at notaries[{first}])"),
            ));
        }
        let interval = raw.interval.unwrap_or(DEFAULT_NOTARY_INTERVAL);
        if interval < MIN_NOTARY_INTERVAL {
            return Err(ConfigError::at(
                key("interval"),
                format!(
                    "{} is shorter than {}",
                    humantime::format_duration(interval),
                    humantime::format_duration(MIN_NOTARY_INTERVAL)
                ),
            ));
        }
        let batch_size = raw.batch_size.unwrap_or(DEFAULT_NOTARY_BATCH_SIZE);
        if !(1..=MAX_NOTARY_BATCH_SIZE).contains(&batch_size) {
            return Err(ConfigError::at(
                key("batch_size"),
                format!("{batch_size} is not between 1 and {MAX_NOTARY_BATCH_SIZE}"),
            ));
        }
        notaries.push(NotaryConfig {
            server_name,
            interval,
            batch_size,
        });
    }
    Ok(notaries)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::Config;

    #[test]
    fn none_by_default_and_defaults_per_entry() {
        assert!(Config::default().notaries.is_empty());
        let c = Config::from_yaml("notaries:\n  - server_name: matrix.org\n").unwrap();
        assert_eq!(c.notaries.len(), 1);
        assert_eq!(c.notaries[0].server_name.as_str(), "matrix.org");
        assert_eq!(c.notaries[0].interval, Duration::from_secs(3600));
        assert_eq!(c.notaries[0].batch_size, 100);
    }
}
