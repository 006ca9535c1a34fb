//! Every promtool unit test of the alert rules (`alerts/tests/*.test.yml`) must pass in the observer profile too
//! (`metrics.profile: observer`, METRICS.md "Profiles"). The test files hold the series of an exporter in the full
//! profile; this test derives from each one the series an exporter in the observer profile would give for the
//! same servers, sample by sample, writes the variant next to nothing in the repository (a temporary directory),
//! and runs `promtool test rules` on the variants with the expectations unchanged: the rules read only what both
//! profiles render, so they must fire (and stay silent) the same way.
//!
//! What the observer profile keeps of each family is the table in METRICS.md; [`observer_keeps`] mirrors it
//! (`render/metrics/reports.rs` and `aggregates.rs` decide it for real, `tests/metrics.rs` checks the table
//! against the rendered exposition).

#[path = "support/promtool.rs"]
mod promtool;

use promtool::promtool;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Families the observer profile never renders (METRICS.md, "Profiles": "renders none of").
const DROPPED: &[&str] = &[
    "probe_duration_seconds",
    "well_known_cache_ttl_seconds",
    "resolution_duration_seconds",
    "addresses",
    "address_info",
    "connection_duration_seconds",
    "cert_valid",
    "cert_not_after_timestamp_seconds",
    "cert_not_before_timestamp_seconds",
    "cert_chain_not_after_timestamp_seconds",
    "tls_info",
    "keys_valid_until_timestamp_seconds",
    "server_version_info",
    "client_versions_info",
    "support_contacts",
    "local_cert_not_after_timestamp_seconds",
    "cert_earliest_not_after_timestamp_seconds",
];

/// One sample of an input series at one evaluation step.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Sample {
    Value(f64),
    Missing,
    Stale,
}

/// One input series: its name, labels and samples, expanded from promtool's notation.
#[derive(Debug)]
struct Series {
    name: String,
    labels: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Series {
    fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }

    fn value_at(&self, step: usize) -> Option<f64> {
        match self.samples.get(step) {
            Some(Sample::Value(v)) => Some(*v),
            _ => None,
        }
    }

    fn same(&self, other: &Series, labels: &[&str]) -> bool {
        labels.iter().all(|l| self.label(l) == other.label(l))
    }
}

/// `name{a="b",...}` as promtool reads it (label values in double quotes, `\"` escaped).
fn parse_series(text: &str) -> Series {
    let (name, rest) = text.split_once('{').unwrap_or((text, "}"));
    let mut labels = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        let key = key.trim_start_matches(',').trim().to_owned();
        if key.is_empty() || key == "}" {
            break;
        }
        assert_eq!(chars.next(), Some('"'), "label {key} of {text}");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.extend(chars.next()),
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(key, value);
    }
    Series {
        name: name.to_owned(),
        labels,
        samples: Vec::new(),
    }
}

/// promtool's expanding notation: `a`, `a+bxn` / `a-bxn` (n+1 values), `axn`, `_`, `_xn` (n missing), `stale`.
fn expand(values: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for token in values.split_whitespace() {
        if token == "stale" {
            out.push(Sample::Stale);
            continue;
        }
        if let Some(rest) = token.strip_prefix('_') {
            let n = rest.strip_prefix('x').map_or(1, |n| n.parse().unwrap());
            out.extend(std::iter::repeat_n(Sample::Missing, n));
            continue;
        }
        let (head, n) = match token.rsplit_once('x') {
            Some((head, n)) => (head, Some(n.parse::<usize>().unwrap())),
            None => (token, None),
        };
        let op = head
            .char_indices()
            .skip(1)
            .find(|(_, c)| *c == '+' || *c == '-')
            .map(|(i, _)| i);
        let (a, b) = match op {
            Some(i) => {
                let b: f64 = head[i + 1..].parse().unwrap();
                let b = if head[i..].starts_with('-') { -b } else { b };
                (head[..i].parse::<f64>().unwrap(), b)
            }
            None => (head.parse::<f64>().unwrap(), 0.0),
        };
        match n {
            #[allow(clippy::cast_precision_loss, reason = "small step counts")]
            Some(n) => out.extend((0..=n).map(|i| Sample::Value(a + b * i as f64))),
            None => out.push(Sample::Value(a)),
        }
    }
    out
}

/// Whether the observer profile renders `s` at `step`, given every series of its test group (the rows it keeps
/// only while they show a fault depend on the other series, as the exporter decides them from one report).
fn observer_keeps(s: &Series, group: &[Series], step: usize) -> bool {
    let Some(family) = s.name.strip_prefix("matrix_federation_") else {
        return true;
    };
    if DROPPED.contains(&family) {
        return false;
    }
    let others = |name: &'static str| {
        group
            .iter()
            .filter(move |o| o.name.strip_prefix("matrix_federation_") == Some(name))
    };
    let value = s.value_at(step);
    match family {
        "keys_valid" | "client_success" => value == Some(0.0),
        "client_discovery_info" => !["ok", "not_found"].contains(&s.label("result")),
        "support_info" => ["invalid", "invalid_json", "too_large"].contains(&s.label("result")),
        // The identity of a rejected certificate only.
        "cert_info" => others("failure_info").any(|f| {
            f.same(s, &["job", "instance", "server_name", "address"])
                && f.label("stage") == "certificate"
                && f.value_at(step).is_some()
        }),
        "well_known_address_info" => others("well_known_consistent").any(|c| {
            c.same(s, &["job", "instance", "server_name"]) && c.value_at(step) == Some(0.0)
        }),
        "shadowed_srv_info" => others("warning_info").any(|w| {
            w.same(s, &["job", "instance", "server_name"])
                && w.label("warning") == "srv_shadowed_elsewhere"
                && w.value_at(step).is_some()
        }),
        // Only while the server's addresses serve different key sets.
        "signing_key_info" => {
            let mut sets: BTreeMap<&str, BTreeSet<(&str, &str)>> = BTreeMap::new();
            for k in others("signing_key_info").filter(|k| {
                k.same(s, &["job", "instance", "server_name"]) && k.value_at(step).is_some()
            }) {
                sets.entry(k.label("address"))
                    .or_default()
                    .insert((k.label("key_id"), k.label("key")));
            }
            let mut distinct = sets.values().collect::<Vec<_>>();
            distinct.dedup();
            distinct.len() > 1
        }
        "signing_key_change_timestamp_seconds" => match s.label("change") {
            "replaced" => true,
            "dropped" => {
                let Some(at) = value else { return false };
                let key = ["job", "instance", "server_name", "key_id"];
                let retired = others("signing_key_change_timestamp_seconds").any(|r| {
                    r.same(s, &key)
                        && r.label("change") == "retired"
                        && r.value_at(step).is_some_and(|v| v >= at)
                });
                let served = others("signing_key_info")
                    .any(|k| k.same(s, &key) && k.value_at(step).is_some());
                !retired && !served
            }
            _ => false,
        },
        _ => true,
    }
}

/// The observer variant of one unit-test file: the same tests and expectations over the observer's series.
fn observer_variant(text: &str, rules: &Path) -> String {
    let lines: Vec<&str> = text.lines().collect();
    // Test groups start at `  - interval:` (or any `  - ` under `tests:`); series are `- series:` + `values:`.
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim() == "- ../matrix-federation.rules.yml" {
            out.push(format!("  - {}", rules.display()));
            i += 1;
            continue;
        }
        if !line.trim_start().starts_with("input_series:") {
            out.push(line.to_owned());
            i += 1;
            continue;
        }
        out.push(line.to_owned());
        i += 1;
        // The group's series, parsed, with their indentation; comments go.
        let mut group = Vec::new();
        let mut indent = String::new();
        while i < lines.len() {
            let t = lines[i].trim_start();
            if t.starts_with('#') {
                i += 1;
                continue;
            }
            let Some(series) = t.strip_prefix("- series: ") else {
                break;
            };
            lines[i][..lines[i].len() - t.len()].clone_into(&mut indent);
            let values = lines[i + 1].trim_start().strip_prefix("values: ").unwrap();
            let mut s = parse_series(&unquote(series));
            s.samples = expand(&unquote(values));
            group.push(s);
            i += 2;
        }
        for s in &group {
            let samples: Vec<Sample> = (0..s.samples.len())
                .map(|step| match s.samples[step] {
                    Sample::Value(_) if !observer_keeps(s, &group, step) => Sample::Missing,
                    other => other,
                })
                .collect();
            if !samples.iter().any(|x| matches!(x, Sample::Value(_))) {
                continue;
            }
            let tokens: Vec<String> = samples
                .iter()
                .map(|x| match x {
                    Sample::Value(v) => format!("{v}"),
                    Sample::Missing => "_".to_owned(),
                    Sample::Stale => "stale".to_owned(),
                })
                .collect();
            out.push(format!(
                "{indent}- series: '{}'",
                series_text(s).replace('\'', "''")
            ));
            out.push(format!("{indent}  values: '{}'", tokens.join(" ")));
        }
    }
    out.join("\n") + "\n"
}

/// A YAML single-quoted scalar's content.
fn unquote(text: &str) -> String {
    text.trim()
        .strip_prefix('\'')
        .and_then(|t| t.strip_suffix('\''))
        .unwrap_or(text)
        .replace("''", "'")
}

fn series_text(s: &Series) -> String {
    let labels: Vec<String> = s
        .labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{}{{{}}}", s.name, labels.join(","))
}

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn expanding_notation() {
    use Sample::{Missing, Stale, Value};
    assert_eq!(expand("1x2"), [Value(1.0), Value(1.0), Value(1.0)]);
    assert_eq!(
        expand("-10+60x1 _x2 stale"),
        [Value(-10.0), Value(50.0), Missing, Missing, Stale]
    );
    assert_eq!(expand("5-1x1 0"), [Value(5.0), Value(4.0), Value(0.0)]);
    let s = parse_series(r#"m{a="x,y",b="q\"uote"}"#);
    assert_eq!(s.label("a"), "x,y");
    assert_eq!(s.label("b"), "q\"uote");
}

#[test]
fn every_rule_unit_test_passes_on_the_observer_profile_series() {
    let dir = std::env::temp_dir().join(format!("mfe-alerts-observer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = repo_path("alerts/matrix-federation.rules.yml");
    let mut files = Vec::new();
    let mut changed = 0;
    for entry in std::fs::read_dir(repo_path("alerts/tests")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let variant = observer_variant(&text, &rules);
        if variant.lines().filter(|l| l.contains("- series:")).count()
            != text.lines().filter(|l| l.contains("- series:")).count()
        {
            changed += 1;
        }
        for family in DROPPED {
            assert!(
                !variant.contains(&format!("series: 'matrix_federation_{family}{{")),
                "{family} in the observer variant of {}",
                path.display()
            );
        }
        let out = dir.join(path.file_name().unwrap());
        std::fs::write(&out, variant).unwrap();
        files.push(out);
    }
    files.sort();
    assert!(files.len() >= 13, "{files:?}");
    assert!(
        changed >= 3,
        "the observer variants drop series in only {changed} files"
    );
    let output = Command::new(promtool())
        .args(["test", "rules"])
        .args(&files)
        .output()
        .expect("run promtool");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool test rules on the observer variants ({}):\n{report}",
        dir.display()
    );
    if std::env::var_os("MFE_KEEP_OBSERVER_VARIANTS").is_none() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
