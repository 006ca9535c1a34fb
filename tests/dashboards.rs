//! The Grafana dashboards in `dashboards/`: the classic JSON model that current Grafana imports, the variables and
//! data source conventions of the monitoring mixins, and `PromQL` that uses only documented metrics and labels.
//!
//! This checks structure and names only. `tests/promql.rs` runs every expression against a real Prometheus.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The dashboards we ship, by file name, with their uid.
const DASHBOARDS: &[(&str, &str)] = &[
    ("matrix-federation-overview.json", "mfe-overview"),
    ("matrix-federation-server.json", "mfe-server"),
    ("matrix-federation-exporter.json", "mfe-exporter"),
];

/// Panel types that need no plugin and no Angular (`graph` and `singlestat` are gone from current Grafana).
const PANEL_TYPES: &[&str] = &["stat", "table", "timeseries", "state-timeline", "text"];

/// The variables an expression may use: the dashboards' own, and Grafana's built-in intervals. `tests/promql.rs`
/// substitutes exactly these.
const EXPR_VARIABLES: &[&str] = &[
    "$job",
    "$instance",
    "$server_name",
    "$__rate_interval",
    "$__interval",
    "$__range",
];

/// Every selector of an exporter metric carries these matchers.
const JOB_MATCHER: &str = r#"job=~"$job""#;
const INSTANCE_MATCHER: &str = r#"instance=~"$instance""#;
/// ... and on the server dashboard, every per-server metric this one.
const SERVER_MATCHER: &str = r#"server_name="$server_name""#;

/// Metrics each dashboard must show (the issue's list of what it is for).
const MUST_SHOW: &[(&str, &[&str])] = &[
    (
        "mfe-overview",
        &[
            "matrix_federation_probe_success",
            "matrix_federation_discovery_info",
            "matrix_federation_address_success",
            "matrix_federation_cert_chain_earliest_not_after_timestamp_seconds",
            "matrix_federation_failure_info",
        ],
    ),
    (
        "mfe-server",
        &[
            "matrix_federation_discovery_info",
            "matrix_federation_cert_not_after_timestamp_seconds",
            "matrix_federation_cert_valid",
            "matrix_federation_resolution_duration_seconds",
            "matrix_federation_connection_duration_seconds",
            "matrix_federation_keys_valid",
            "matrix_federation_keys_valid_until_timestamp_seconds",
            "matrix_federation_server_version_info",
            "matrix_federation_failure_info",
        ],
    ),
    (
        "mfe-exporter",
        &[
            "matrix_federation_exporter_probes_total",
            "matrix_federation_failure_info",
            "matrix_federation_probe_duration_seconds",
            "matrix_federation_exporter_config_last_reload_successful",
            "matrix_federation_exporter_config_last_reload_success_timestamp_seconds",
            "matrix_federation_exporter_build_info",
        ],
    ),
];

#[test]
fn dashboards_directory_holds_exactly_our_dashboards() {
    let mut found: Vec<String> = std::fs::read_dir(repo_path("dashboards"))
        .expect("dashboards/ exists")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut want: Vec<String> = DASHBOARDS.iter().map(|(f, _)| (*f).to_owned()).collect();
    want.sort();
    assert_eq!(
        found, want,
        "add a new dashboard to DASHBOARDS so it is checked"
    );
}

#[test]
fn classic_model_that_grafana_imports() {
    for (file, uid) in DASHBOARDS {
        let d = load(file);
        let ctx = |what: &str| format!("{file}: {what}");
        assert_eq!(d["uid"], *uid, "{}", ctx("uid"));
        let schema = d["schemaVersion"].as_u64().expect("schemaVersion");
        assert!((39..=41).contains(&schema), "{}", ctx("schemaVersion"));
        assert!(
            d["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("Matrix federation")),
            "{}",
            ctx("title")
        );
        let tags: Vec<&str> = d["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            tags.contains(&"matrix") && tags.contains(&"federation"),
            "{}",
            ctx("tags")
        );
        assert!(
            d["time"]["from"].is_string() && d["time"]["to"].is_string(),
            "{}",
            ctx("time")
        );
        assert!(d["refresh"].is_string(), "{}", ctx("refresh"));
        // The v2 / Kubernetes-style resource format nests everything under `spec`.
        assert!(
            d.get("spec").is_none() && d.get("apiVersion").is_none(),
            "{}",
            ctx("classic model")
        );
        assert!(d["panels"].is_array(), "{}", ctx("panels"));
    }
}

#[test]
fn panels_have_unique_ids_known_types_and_a_sane_layout() {
    for (file, _) in DASHBOARDS {
        let dashboard = load(file);
        let panels = panels(&dashboard);
        assert!(!panels.is_empty(), "{file}: no panels");
        let mut ids = BTreeSet::new();
        let mut boxes: Vec<(u64, [u64; 4])> = Vec::new();
        for panel in &panels {
            let id = panel["id"].as_u64().expect("panel id");
            let title = panel["title"].as_str().unwrap_or("");
            assert!(ids.insert(id), "{file}: panel id {id} used twice");
            assert!(!title.is_empty(), "{file}: panel {id} has no title");
            let kind = panel["type"].as_str().unwrap_or("");
            assert!(
                PANEL_TYPES.contains(&kind),
                "{file}: panel {id} ({title}) has type {kind:?}; allowed: {PANEL_TYPES:?}"
            );
            let grid = &panel["gridPos"];
            let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| {
                grid[k]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{file}: panel {id} gridPos.{k}"))
            });
            assert!(
                w > 0 && h > 0 && x + w <= 24,
                "{file}: panel {id} gridPos {grid}"
            );
            for (other, [ox, oy, ow, oh]) in &boxes {
                let overlap = x < ox + ow && *ox < x + w && y < oy + oh && *oy < y + h;
                assert!(!overlap, "{file}: panels {other} and {id} overlap");
            }
            boxes.push((id, [x, y, w, h]));
        }
    }
}

#[test]
fn variables_for_datasource_job_and_instance() {
    for (file, uid) in DASHBOARDS {
        let d = load(file);
        let vars = variables(&d);
        let ds = vars
            .get("datasource")
            .unwrap_or_else(|| panic!("{file}: no datasource variable"));
        assert_eq!(ds["type"], "datasource", "{file}");
        assert_eq!(ds["query"], "prometheus", "{file}");
        for name in ["job", "instance"] {
            let v = vars
                .get(name)
                .unwrap_or_else(|| panic!("{file}: no {name} variable"));
            assert_eq!(v["type"], "query", "{file}: {name}");
            let query = variable_query(v);
            assert!(
                query.starts_with("label_values(matrix_federation_")
                    && query.ends_with(&format!(", {name})")),
                "{file}: {name} variable query {query:?}"
            );
            assert_eq!(v["includeAll"], true, "{file}: {name} offers All");
            assert_eq!(v["multi"], true, "{file}: {name} is multi-value");
        }
        assert!(
            variable_query(vars["instance"]).contains(JOB_MATCHER),
            "{file}: instance values follow the chosen job"
        );
        if *uid == "mfe-server" {
            let v = vars.get("server_name").expect("server_name variable");
            let query = variable_query(v);
            assert!(
                query.starts_with("label_values(matrix_federation_probe_success{")
                    && query.contains(JOB_MATCHER)
                    && query.contains(INSTANCE_MATCHER)
                    && query.ends_with(", server_name)"),
                "{file}: server_name variable query {query:?}"
            );
            // The expressions match it with `=`, which needs one plain value.
            assert_eq!(v["multi"], false, "{file}: server_name is single-value");
            assert_eq!(v["includeAll"], false, "{file}: server_name has no All");
        }
    }
}

#[test]
fn every_datasource_is_the_variable() {
    for (file, _) in DASHBOARDS {
        let d = load(file);
        let mut seen = 0;
        walk(&d, &mut |key, value| {
            if key != "datasource" {
                return;
            }
            seen += 1;
            let uid = value["uid"].as_str();
            assert!(
                matches!(uid, Some("${datasource}" | "$datasource")),
                "{file}: hard-coded datasource {value}"
            );
            assert_eq!(value["type"], "prometheus", "{file}: datasource {value}");
        });
        assert!(seen > 0, "{file}: no datasource references at all");
        for p in panels(&d) {
            if p["type"] != "text" && p["type"] != "row" {
                assert!(
                    p["datasource"].is_object(),
                    "{file}: panel {} has no datasource",
                    p["id"]
                );
            }
        }
    }
}

#[test]
fn every_target_has_a_ref_id_and_an_expression_filtered_by_job_and_instance() {
    for (file, uid) in DASHBOARDS {
        let d = load(file);
        for p in panels(&d) {
            let id = &p["id"];
            let kind = p["type"].as_str().unwrap_or("");
            if kind == "text" || kind == "row" {
                continue;
            }
            let targets = p["targets"].as_array().map_or(&[][..], Vec::as_slice);
            assert!(!targets.is_empty(), "{file}: panel {id} has no targets");
            let mut ref_ids = BTreeSet::new();
            for t in targets {
                let ref_id = t["refId"].as_str().unwrap_or("");
                assert!(
                    !ref_id.is_empty(),
                    "{file}: panel {id}: target without refId"
                );
                assert!(
                    ref_ids.insert(ref_id),
                    "{file}: panel {id}: refId {ref_id} twice"
                );
                let expr = t["expr"].as_str().unwrap_or("");
                assert!(
                    !expr.trim().is_empty(),
                    "{file}: panel {id}/{ref_id}: no expr"
                );
                let at = format!("{file}: panel {id}/{ref_id}: {expr}");
                check_variables(expr, &at);
                let selectors = selectors(expr);
                assert!(!selectors.is_empty(), "{at}: no exporter metric");
                for (metric, matchers) in &selectors {
                    assert!(
                        matchers.iter().any(|m| m == JOB_MATCHER)
                            && matchers.iter().any(|m| m == INSTANCE_MATCHER),
                        "{at}: {metric} is not filtered by {JOB_MATCHER} and {INSTANCE_MATCHER}"
                    );
                    if *uid == "mfe-server" && !metric.starts_with("matrix_federation_exporter_") {
                        assert!(
                            matchers.iter().any(|m| m == SERVER_MATCHER),
                            "{at}: {metric} is not filtered by {SERVER_MATCHER}"
                        );
                    }
                }
            }
            if kind == "table" {
                // Tables show the latest values, one row per series, not a range.
                for t in targets {
                    assert_eq!(t["instant"], true, "{file}: table panel {id} query");
                    assert_eq!(t["format"], "table", "{file}: table panel {id} format");
                }
            }
        }
    }
}

#[test]
fn metrics_labels_and_label_values_are_documented() {
    let doc = std::fs::read_to_string(repo_path("METRICS.md")).expect("METRICS.md");
    let metrics = documented_metrics(&doc);
    let values = documented_label_values(&doc);
    assert!(metrics.len() > 20, "METRICS.md table not found");
    for (file, _) in DASHBOARDS {
        let d = load(file);
        for (expr, at) in expressions(&d) {
            for (metric, matchers) in selectors(&expr) {
                let labels = metrics
                    .get(&metric)
                    .unwrap_or_else(|| panic!("{file}: {at}: {metric} is not in METRICS.md"));
                for m in &matchers {
                    let (label, op, value) = split_matcher(m);
                    assert!(
                        label == "job" || label == "instance" || labels.contains(label),
                        "{file}: {at}: {metric} has no label {label} (METRICS.md)"
                    );
                    if op == "="
                        && !value.starts_with('$')
                        && let Some(closed) = values.get(label)
                    {
                        assert!(
                            closed.iter().any(|v| v == value),
                            "{file}: {at}: {label}={value:?} is not a documented value"
                        );
                    }
                }
            }
            for label in grouping_labels(&expr) {
                assert!(
                    label == "job"
                        || label == "instance"
                        || metrics.values().any(|l| l.contains(&label)),
                    "{file}: {at}: grouping by unknown label {label}"
                );
            }
            // Metric names outside selectors (there should be none) must exist too.
            for name in metric_names(&expr) {
                assert!(
                    metrics.contains_key(&name),
                    "{file}: {at}: {name} is not in METRICS.md"
                );
            }
        }
    }
}

/// The overview dashboard and the alert rules read only families the observer profile renders, so they work in
/// both profiles (METRICS.md, "Profiles", lists the families the observer profile drops).
#[test]
fn the_overview_and_the_rules_use_no_family_the_observer_profile_drops() {
    let doc = std::fs::read_to_string(repo_path("METRICS.md")).unwrap();
    let dropped: Vec<String> = doc
        .split("The observer profile renders none of:")
        .nth(1)
        .and_then(|rest| rest.split(" (all ").next())
        .expect("METRICS.md lists what the observer profile drops")
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|name| format!("matrix_federation_{name}"))
        .collect();
    assert!(dropped.len() > 10, "{dropped:?}");
    for file in [
        "dashboards/matrix-federation-overview.json",
        "alerts/matrix-federation.rules.yml",
    ] {
        let text = std::fs::read_to_string(repo_path(file)).unwrap();
        // Plain text, quoted or not (JSON strings, annotation templates): the name followed by no identifier
        // character.
        for name in &dropped {
            let used = text.match_indices(name.as_str()).any(|(at, _)| {
                !text[at + name.len()..]
                    .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            });
            assert!(
                !used,
                "{file} uses {name}, which the observer profile does not render"
            );
        }
        assert!(text.contains("matrix_federation_probe_success"), "{file}");
    }
}

#[test]
fn each_dashboard_shows_what_it_is_for() {
    for (file, uid) in DASHBOARDS {
        let d = load(file);
        let used: BTreeSet<String> = expressions(&d)
            .iter()
            .flat_map(|(e, _)| metric_names(e))
            .collect();
        let want = MUST_SHOW
            .iter()
            .find(|(u, _)| u == uid)
            .expect("MUST_SHOW")
            .1;
        for metric in want {
            assert!(used.contains(*metric), "{file} does not show {metric}");
        }
    }

    // Exporter health: the probe rate is a rate over Grafana's rate interval.
    let exporter = load("matrix-federation-exporter.json");
    assert!(
        expressions(&exporter).iter().any(|(e, _)| e.contains(
            "rate(matrix_federation_exporter_probes_total{job=~\"$job\", instance=~\"$instance\"}[$__rate_interval])"
        )),
        "exporter dashboard: probe rate"
    );
    assert!(
        expressions(&exporter)
            .iter()
            .any(|(e, _)| e.starts_with("count by (reason) (matrix_federation_failure_info{")),
        "exporter dashboard: failures by reason"
    );
}

#[test]
fn overview_table_joins_one_row_per_server_and_links_to_the_server_dashboard() {
    let d = load("matrix-federation-overview.json");
    let panels = panels(&d);
    let table = panels
        .iter()
        .find(|p| p["type"] == "table" && p["title"] == "Servers")
        .expect("the Servers table");
    let targets = table["targets"].as_array().unwrap();
    assert!(
        targets.len() >= 5,
        "status, delegation, addresses, expiry, reason"
    );
    for t in targets {
        let expr = t["expr"].as_str().unwrap();
        assert!(
            expr.contains("by (server_name")
                || expr.starts_with("topk by (server_name)")
                || expr.starts_with("max by (server_name)"),
            "every query of the joined table is aggregated by server_name: {expr}"
        );
    }
    let ids: Vec<&str> = table["transformations"]
        .as_array()
        .expect("transformations")
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"merge") || ids.contains(&"joinByField"),
        "the queries are joined: {ids:?}"
    );
    assert!(ids.contains(&"organize"), "columns are organized: {ids:?}");
    let text = table.to_string();
    assert!(
        text.contains("\"FAILING\"") && text.contains("\"OK\""),
        "status value mappings"
    );
    assert!(
        text.contains("/d/mfe-server/")
            && text.contains("var-server_name=${__data.fields.server_name}"),
        "link to the server dashboard"
    );

    let kinds: Vec<&str> = panels.iter().filter_map(|p| p["type"].as_str()).collect();
    assert!(kinds.iter().filter(|k| **k == "stat").count() >= 3);
    assert!(panels.iter().any(|p| p["type"] == "state-timeline"
        && p.to_string().contains("matrix_federation_probe_success")));
}

#[test]
fn links_point_at_shipped_dashboards() {
    let uids: BTreeSet<&str> = DASHBOARDS.iter().map(|(_, u)| *u).collect();
    for (file, _) in DASHBOARDS {
        let d = load(file);
        walk(&d, &mut |key, value| {
            let Some(url) = value.as_str() else { return };
            if key != "url" || url.is_empty() {
                return;
            }
            let uid = url
                .strip_prefix("/d/")
                .and_then(|rest| rest.split('/').next())
                .unwrap_or_else(|| panic!("{file}: link {url} is not to a dashboard"));
            assert!(
                uids.contains(uid),
                "{file}: link to unknown dashboard {url}"
            );
        });
    }
}

// ---------------------------------------------------------------- dashboard JSON helpers

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn load(file: &str) -> Value {
    let path = repo_path("dashboards").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every panel, with those nested in collapsed rows.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

fn variables(d: &Value) -> BTreeMap<&str, &Value> {
    d["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .map(|v| (v["name"].as_str().expect("variable name"), v))
        .collect()
}

/// A query variable's query: a string, or the object the Prometheus variable editor saves.
fn variable_query(v: &Value) -> &str {
    v["query"]
        .as_str()
        .or_else(|| v["query"]["query"].as_str())
        .expect("variable query")
}

/// Every `PromQL` expression of the dashboard with where it is: panel targets, and the series selector inside each
/// `label_values(...)` variable query.
fn expressions(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = t["expr"].as_str() {
                out.push((expr.to_owned(), format!("panel {} {}", p["id"], t["refId"])));
            }
        }
    }
    for (name, v) in variables(d) {
        if v["type"] == "query" {
            let q = variable_query(v);
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.rsplit_once(','))
                .map_or(q, |(sel, _)| sel);
            out.push((inner.to_owned(), format!("variable {name}")));
        }
    }
    out
}

/// Calls `f(key, value)` for every object member, depth first.
fn walk(v: &Value, f: &mut dyn FnMut(&str, &Value)) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                f(k, child);
                walk(child, f);
            }
        }
        Value::Array(items) => items.iter().for_each(|c| walk(c, f)),
        _ => {}
    }
}

// ---------------------------------------------------------------- a little PromQL scanning

/// Each `matrix_federation_*` metric in `expr` with its matchers (normalized to `label op "value"`).
fn selectors(expr: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for (start, name) in identifiers(expr) {
        if !name.starts_with("matrix_federation_") {
            continue;
        }
        let rest = expr[start + name.len()..].trim_start();
        let matchers = rest
            .strip_prefix('{')
            .and_then(|r| r.split_once('}'))
            .map(|(inside, _)| {
                inside
                    .split(',')
                    .map(|m| m.split_whitespace().collect::<String>())
                    .filter(|m| !m.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        out.push((name.to_owned(), matchers));
    }
    out
}

fn metric_names(expr: &str) -> BTreeSet<String> {
    identifiers(expr)
        .into_iter()
        .map(|(_, n)| n)
        .filter(|n| n.starts_with("matrix_federation_"))
        .map(str::to_owned)
        .collect()
}

/// Identifiers outside string literals, with their byte offsets.
fn identifiers(expr: &str) -> Vec<(usize, &str)> {
    let bytes = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c.is_ascii_alphabetic() || c == b'_' || (c == b'$' && i + 1 < bytes.len()) {
            let start = i;
            i += 1;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            if c != b'$' {
                out.push((start, &expr[start..i]));
            }
        } else {
            i += 1;
        }
    }
    out
}

/// `label op "value"` → (label, op, value).
fn split_matcher(m: &str) -> (&str, &str, &str) {
    let at = m
        .find(['=', '!'])
        .unwrap_or_else(|| panic!("matcher {m:?}"));
    let (label, rest) = m.split_at(at);
    let op_len = if rest.starts_with("=~") || rest.starts_with("!=") || rest.starts_with("!~") {
        2
    } else {
        1
    };
    let (op, value) = rest.split_at(op_len);
    (label, op, value.trim_matches('"'))
}

/// Labels named in `by (...)` and `on (...)` / `ignoring (...)` / `group_left (...)` clauses.
fn grouping_labels(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ids = identifiers(expr);
    for (start, word) in ids {
        if !matches!(
            word,
            "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
        ) {
            continue;
        }
        let rest = expr[start + word.len()..].trim_start();
        if let Some((inside, _)) = rest.strip_prefix('(').and_then(|r| r.split_once(')')) {
            out.extend(
                inside
                    .split(',')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned),
            );
        }
    }
    out
}

/// Only the variables `tests/promql.rs` knows how to substitute, and range selectors only over Grafana's
/// intervals (a fixed `[5m]` is wrong at some zoom levels).
fn check_variables(expr: &str, at: &str) {
    for (i, _) in expr.match_indices('$') {
        let rest = &expr[i..];
        let name_len = rest[1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(rest.len(), |n| n + 1);
        let var = &rest[..name_len];
        assert!(
            EXPR_VARIABLES.contains(&var),
            "{at}: unknown variable {var:?}"
        );
    }
    for (i, _) in expr.match_indices('[') {
        let inside = expr[i + 1..].split(']').next().unwrap_or("");
        assert!(
            matches!(inside, "$__rate_interval" | "$__interval" | "$__range"),
            "{at}: range [{inside}] should be a Grafana interval variable"
        );
    }
}

// ---------------------------------------------------------------- METRICS.md

fn backticked(cell: &str) -> impl Iterator<Item = &str> {
    cell.split('`').skip(1).step_by(2)
}

/// Metric name -> its labels, from the rows `| `name` | type | `label`, … | meaning |`.
fn documented_metrics(doc: &str) -> BTreeMap<String, BTreeSet<String>> {
    doc.lines()
        .filter(|l| l.starts_with("| `matrix_federation_"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let name = backticked(cells[1]).next().expect("metric name").to_owned();
            let labels = backticked(cells[3]).map(str::to_owned).collect();
            (name, labels)
        })
        .collect()
}

/// Label -> its closed set of values, from the tables under ``### `label` `` headings.
fn documented_label_values(doc: &str) -> BTreeMap<String, Vec<String>> {
    let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        if line.starts_with('#') {
            current = line
                .strip_prefix("### ")
                .and_then(|h| backticked(h).next())
                .map(str::to_owned);
        } else if let (Some(label), Some(cell)) = (&current, line.strip_prefix("| `"))
            && let Some(value) = cell.split('`').next()
        {
            values
                .entry(label.clone())
                .or_default()
                .push(value.to_owned());
        }
    }
    values
}
