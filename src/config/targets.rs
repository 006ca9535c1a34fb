//! The list of servers to probe: the config's `servers` plus every server in the `target_files`
//! (Prometheus `file_sd` format), each with the extra labels its file gives it.
//!
//! A `file_sd` file is a JSON or YAML list of `{targets: [NAME, ...], labels: {NAME: VALUE, ...}}`. This module
//! reads files; it does not watch them (`serve/daemon.rs` polls their signatures) and does not probe.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;

use crate::config::Config;
use crate::config::error::{ConfigError, Place, yaml_parts};
use crate::config::server_name::ServerName;

/// The largest target file read (a file this size holds hundreds of thousands of names).
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Label names that our own series already carry, or that Prometheus sets itself: a target file may not use
/// them, or its label would silently replace ours.
pub const RESERVED_LABELS: &[&str] = &[
    "server_name",
    "address",
    "family",
    "method",
    "well_known",
    "delegated_server",
    "tls_name",
    "host_header",
    "step",
    "phase",
    "result",
    "stage",
    "reason",
    "subject",
    "issuer",
    "dns_names",
    "serial",
    "fingerprint_sha256",
    "version",
    "cipher",
    "key_id",
    "key",
    "name",
    "revision",
    "job",
    "instance",
];

/// One server to probe and the extra labels of its series (empty for servers from the config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub name: ServerName,
    pub labels: Labels,
}

pub use crate::report::Labels;

/// Every server of `config`: its `servers` first, then each target file's, in glob and file-name order.
pub fn resolve(config: &Config) -> Result<Vec<Target>, ConfigError> {
    let mut targets: Vec<Target> = config
        .servers
        .iter()
        .map(|name| Target {
            name: name.clone(),
            labels: Labels::new(),
        })
        .collect();
    let mut origin: BTreeMap<String, String> = config
        .servers
        .iter()
        .map(|n| (n.as_str().to_owned(), "servers".to_owned()))
        .collect();
    for path in files(config)? {
        read_file(&path, &mut targets, &mut origin)?;
    }
    Ok(targets)
}

/// The files the globs match now, in order, without duplicates.
pub fn files(config: &Config) -> Result<Vec<PathBuf>, ConfigError> {
    let mut out: Vec<PathBuf> = Vec::new();
    for (index, pattern) in config.target_files.iter().enumerate() {
        let glob_error = |message: String| {
            ConfigError::at(
                format!("target_files[{index}]"),
                format!("glob {pattern:?}: {message}"),
            )
        };
        let mut matched: Vec<PathBuf> = Vec::new();
        for entry in glob::glob(pattern).map_err(|e| glob_error(e.to_string()))? {
            matched.push(entry.map_err(|e| glob_error(e.to_string()))?);
        }
        if matched.is_empty() {
            return Err(ConfigError::at(
                format!("target_files[{index}]"),
                format!("glob {pattern:?} matches no file"),
            ));
        }
        matched.sort();
        for path in matched {
            if !out.contains(&path) {
                out.push(path);
            }
        }
    }
    Ok(out)
}

/// What identifies the current state of the target files (paths, sizes, modification times): when it changes,
/// the list must be read again. A glob error gives an empty signature (the reload reports the error).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Signature(Vec<(PathBuf, u64, Option<SystemTime>)>);

#[must_use]
pub fn signature(config: &Config) -> Signature {
    let files = files(config).unwrap_or_default();
    Signature(
        files
            .into_iter()
            .map(|path| {
                let meta = std::fs::metadata(&path).ok();
                let len = meta.as_ref().map_or(0, std::fs::Metadata::len);
                let modified = meta.and_then(|m| m.modified().ok());
                (path, len, modified)
            })
            .collect(),
    )
}

/// One `file_sd` group.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

fn read_file(
    path: &Path,
    targets: &mut Vec<Target>,
    origin: &mut BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    let file_error = |message: String| ConfigError::new(Place::None, message).in_file(path);
    let len = std::fs::metadata(path)
        .map_err(|e| file_error(format!("cannot read: {e}")))?
        .len();
    if len > MAX_FILE_BYTES {
        return Err(file_error(format!(
            "{len} bytes is more than the {MAX_FILE_BYTES} bytes a target file may have"
        )));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| file_error(format!("cannot read: {e}")))?;
    parse_text(path, &text, targets, origin)
}

/// The targets of one `file_sd` file's `text` alone (JSON when `path` ends in `.json`, else YAML), judged as a
/// reload judges them; `path` only names the file in errors. For tests and fuzzing.
pub fn parse_file(path: &Path, text: &str) -> Result<Vec<Target>, ConfigError> {
    let mut targets = Vec::new();
    parse_text(path, text, &mut targets, &mut BTreeMap::new())?;
    Ok(targets)
}

/// Adds the groups of one target file's `text` to `targets`; `origin` says where each name seen so far is listed.
fn parse_text(
    path: &Path,
    text: &str,
    targets: &mut Vec<Target>,
    origin: &mut BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    let file_error = |message: String| ConfigError::new(Place::None, message).in_file(path);
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let groups: Vec<Group> = if text.trim().is_empty() {
        Vec::new()
    } else if is_json {
        serde_json::from_str(text).map_err(|e| {
            // serde_json quotes an unknown key as it is, and a key may hold a line break.
            file_error(format!(
                "not a file_sd JSON list: {}",
                one_line(&e.to_string())
            ))
        })?
    } else {
        serde_saphyr::from_str(text).map_err(|e| {
            let (place, message) = yaml_parts(&e);
            ConfigError::new(place, format!("not a file_sd YAML list: {message}")).in_file(path)
        })?
    };
    for (group, g) in groups.into_iter().enumerate() {
        for name in g.labels.keys() {
            check_label(name).map_err(|message| {
                ConfigError::at(format!("[{group}].labels"), message).in_file(path)
            })?;
        }
        for (target, text) in g.targets.iter().enumerate() {
            let place = || format!("[{group}].targets[{target}]");
            let name = ServerName::parse(text).map_err(|e| {
                ConfigError::at(place(), format!("invalid server name {text:?}: {e}")).in_file(path)
            })?;
            let here = format!("{}: {}", path.display(), place());
            if let Some(first) = origin.get(name.as_str()) {
                return Err(ConfigError::at(
                    place(),
                    format!("server {text:?} is already listed in {first}"),
                )
                .in_file(path));
            }
            origin.insert(name.as_str().to_owned(), here);
            targets.push(Target {
                name,
                labels: g.labels.clone(),
            });
        }
    }
    Ok(())
}

/// `message` with its control characters and Unicode line separators escaped (`\n`, `\u{1b}`), so that an
/// error quoting the file's text stays one line.
fn one_line(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for c in message.chars() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`), not reserved (`__*`) and not one of ours.
fn check_label(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "{name:?} is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)"
        ));
    }
    if name.starts_with("__") {
        return Err(format!(
            "{name:?}: label names starting with \"__\" are reserved for Prometheus"
        ));
    }
    if RESERVED_LABELS.contains(&name) {
        return Err(format!(
            "{name:?} clashes with a label the exporter sets itself; rename it"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each error is one line: the file (or the config's `target_files` entry), the place, the reason.
    #[test]
    fn errors_name_the_file_the_place_and_the_reason() {
        let path = Path::new("t/team.yml");
        let cases = [
            (
                "- targets: [a.test]\n  labels: {reason: x}\n",
                "t/team.yml: [0].labels: \"reason\" clashes with a label the exporter sets itself; rename it",
            ),
            (
                "- targets: [a.test, 'bad name']\n",
                "t/team.yml: [0].targets[1]: invalid server name \"bad name\": character ' ' at byte 3 is not \
                 allowed in a DNS name (only letters, digits, '-' and '.')",
            ),
            (
                "- targets: [a.test]\n- targets: [a.test]\n",
                "t/team.yml: [1].targets[0]: server \"a.test\" is already listed in t/team.yml: [0].targets[0]",
            ),
            (
                "- targets: [a.test]\n  nope: 1\n",
                "t/team.yml: line 2 column 3: not a file_sd YAML list: unknown field `nope`, expected one of \
                 targets, labels",
            ),
        ];
        for (text, want) in cases {
            let got = parse_file(path, text).unwrap_err().to_string();
            assert_eq!(got, want, "{text:?}");
        }
        let json = parse_file(Path::new("t.json"), "[{")
            .unwrap_err()
            .to_string();
        assert!(
            json.starts_with("t.json: not a file_sd JSON list: "),
            "{json}"
        );
        let config = Config {
            target_files: vec!["/nonexistent/mfe/*.json".to_owned()],
            ..Config::default()
        };
        assert_eq!(
            files(&config).unwrap_err().to_string(),
            "target_files[0]: glob \"/nonexistent/mfe/*.json\" matches no file"
        );
    }

    #[test]
    fn label_names_are_checked() {
        assert!(check_label("team").is_ok());
        assert!(check_label("_x9").is_ok());
        assert!(
            check_label("9x")
                .unwrap_err()
                .contains("not a valid label name")
        );
        assert!(
            check_label("a-b")
                .unwrap_err()
                .contains("not a valid label name")
        );
        assert!(
            check_label("")
                .unwrap_err()
                .contains("not a valid label name")
        );
        assert!(
            check_label("__meta")
                .unwrap_err()
                .contains("reserved for Prometheus")
        );
        assert!(check_label("reason").unwrap_err().contains("clashes"));
        assert!(check_label("instance").unwrap_err().contains("clashes"));
    }
}
