//! What we ship besides the binary: every YAML and JSON file under `deploy/`, `alerts/`, `dashboards/` and
//! `examples/` parses; the Kubernetes manifests fit together; the `PrometheusRule` embeds exactly the groups of
//! `alerts/matrix-federation.rules.yml`; the example Prometheus and Alertmanager configs use the documented
//! patterns; the Dockerfile runs as non-root on port 9448 with a health check and the documented config path.
//!
//! Regenerate the `PrometheusRule` after changing the rules with `UPDATE_DEPLOY=1 cargo test --test deploy`.

#[path = "support/promtool.rs"]
mod promtool;

use promtool::promtool;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use matrix_federation_exporter::config::Config;
use serde_json::Value;

/// Where the container image and the Kubernetes manifests put the configuration (documented in
/// deploy/README.md).
const CONFIG_PATH: &str = "/etc/matrix-federation-exporter/config.yml";
const PORT: u16 = 9448;
const RULES: &str = "alerts/matrix-federation.rules.yml";
const PROMETHEUS_RULE: &str = "deploy/kubernetes/prometheusrule.yaml";
/// Every alert name starts with this; the Alertmanager example routes on it.
const ALERT_PREFIX: &str = "MatrixFederation";

/// The generated manifest: this header, then the rules file indented under `spec:`, comments included.
const PROMETHEUS_RULE_HEADER: &str = "\
# GENERATED from alerts/matrix-federation.rules.yml: do not edit. Regenerate with
#   UPDATE_DEPLOY=1 cargo test --test deploy
# tests/deploy.rs fails when the two differ.
# Prometheus Operator: the Prometheus resource must select this object (spec.ruleSelector). If yours selects by
# a label (often `release: <helm release>`), add it under `labels:` in kustomization.yaml, not here.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: matrix-federation-exporter
  namespace: matrix-federation
  labels:
    app.kubernetes.io/name: matrix-federation-exporter
    app.kubernetes.io/part-of: matrix-federation-exporter
spec:
";

// ---------------------------------------------------------------- every file parses

#[test]
fn every_yaml_and_json_file_parses() {
    let mut checked = Vec::new();
    for dir in ["deploy", "alerts", "dashboards", "examples"] {
        for path in files_under(&repo_path(dir)) {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            match path.extension().and_then(|e| e.to_str()) {
                Some("json") => {
                    serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                }
                Some("yml" | "yaml") => {
                    let docs = yaml_documents(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert!(
                        docs.iter().any(|d| !d.is_null()),
                        "{name}: no YAML document"
                    );
                }
                _ => continue,
            }
            checked.push(name);
        }
    }
    // The dashboards, the rules and their tests, the example config and the deploy files.
    assert!(checked.len() >= 14, "only found {checked:#?}");
}

// ---------------------------------------------------------------- PrometheusRule

#[test]
fn prometheus_rule_embeds_the_alert_rules() {
    let rules_text = read(RULES);
    let want = prometheus_rule_text(&rules_text);
    let path = repo_path(PROMETHEUS_RULE);
    if std::env::var_os("UPDATE_DEPLOY").is_some() {
        std::fs::write(&path, &want).expect("write the PrometheusRule");
    }
    let got = std::fs::read_to_string(&path).unwrap_or_default();

    // The objects first, for a readable failure; then the text, so the comments stay in step too.
    let rules = single_document(&rules_text, RULES);
    let manifest = single_document(&got, PROMETHEUS_RULE);
    assert_eq!(manifest["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(manifest["kind"], "PrometheusRule");
    assert!(
        rules["groups"].as_array().is_some_and(|g| !g.is_empty()),
        "{RULES} has no groups"
    );
    if let Some(at) = first_difference(&manifest["spec"], &rules, "spec") {
        panic!(
            "{PROMETHEUS_RULE} differs from {RULES} at {at}: run UPDATE_DEPLOY=1 cargo test --test deploy"
        );
    }
    assert!(
        got == want,
        "{PROMETHEUS_RULE} is not the generated text: run UPDATE_DEPLOY=1 cargo test --test deploy"
    );
}

/// Where `got` and `want` first differ, as a path such as `spec.groups[0].rules[3].for`.
fn first_difference(got: &Value, want: &Value, path: &str) -> Option<String> {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            let keys: BTreeSet<&String> = g.keys().chain(w.keys()).collect();
            keys.into_iter().find_map(|k| {
                let (a, b) = (
                    g.get(k).unwrap_or(&Value::Null),
                    w.get(k).unwrap_or(&Value::Null),
                );
                first_difference(a, b, &format!("{path}.{k}"))
            })
        }
        (Value::Array(g), Value::Array(w)) if g.len() == w.len() => g
            .iter()
            .zip(w)
            .enumerate()
            .find_map(|(i, (a, b))| first_difference(a, b, &format!("{path}[{i}]"))),
        _ if got == want => None,
        _ => Some(format!("{path} ({got} instead of {want})")),
    }
}

/// The rules file indented under `spec:`. Indenting a whole YAML mapping keeps its meaning, block scalars
/// included, as long as it is one document.
fn prometheus_rule_text(rules: &str) -> String {
    let mut out = String::from(PROMETHEUS_RULE_HEADER);
    for line in rules.lines() {
        assert!(
            line != "---" && !line.starts_with('%'),
            "{RULES}: a single document without directives is expected"
        );
        if line.trim().is_empty() {
            out.push('\n');
        } else {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

// ---------------------------------------------------------------- Kubernetes

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "the manifests are checked against each other in one place"
)]
fn kubernetes_manifests_fit_together() {
    let dir = repo_path("deploy/kubernetes");
    let mut objects = Vec::new();
    let mut file_names = BTreeSet::new();
    for path in files_under(&dir) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in yaml_documents(&text).unwrap_or_else(|e| panic!("{name}: {e}")) {
            if doc.is_null() {
                continue;
            }
            assert!(
                doc["apiVersion"].is_string() && doc["kind"].is_string(),
                "{name}: apiVersion and kind"
            );
            if doc["kind"] != "Kustomization" {
                assert!(doc["metadata"]["name"].is_string(), "{name}: metadata.name");
            }
            objects.push((name.clone(), doc));
        }
        file_names.insert(name);
    }
    let find = |kind: &str| -> &Value {
        let found: Vec<&Value> = objects
            .iter()
            .filter(|(_, o)| o["kind"] == kind)
            .map(|(_, o)| o)
            .collect();
        assert_eq!(found.len(), 1, "one {kind} in deploy/kubernetes");
        found[0]
    };

    // Kustomization lists every other file.
    let kustomization = find("Kustomization");
    let listed: BTreeSet<String> = strings(&kustomization["resources"]).into_iter().collect();
    let others: BTreeSet<String> = file_names
        .iter()
        .filter(|n| *n != "kustomization.yaml")
        .cloned()
        .collect();
    assert_eq!(listed, others, "kustomization.yaml resources");

    let config_map = find("ConfigMap");
    let workload = find("StatefulSet");
    let service = find("Service");
    let monitor = find("ServiceMonitor");
    find("PrometheusRule");

    // The ConfigMap holds a config the exporter accepts.
    let (config_dir, config_file) = CONFIG_PATH.rsplit_once('/').unwrap();
    let config_text = config_map["data"][config_file]
        .as_str()
        .unwrap_or_else(|| panic!("ConfigMap data.{config_file}"));
    let config = Config::from_yaml(config_text)
        .unwrap_or_else(|e| panic!("the ConfigMap's {config_file}: {e}"));
    assert!(!config.servers.is_empty(), "the ConfigMap names servers");

    // The pods mount it at CONFIG_PATH and are started with it.
    let pod = &workload["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    let args = strings(&container["args"]);
    assert!(
        args.contains(&format!("--config.file={CONFIG_PATH}")),
        "container args {args:?}"
    );
    let volume = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["configMap"]["name"] == config_map["metadata"]["name"])
        .expect("a volume from the ConfigMap");
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .expect("the ConfigMap volume is mounted");
    assert_eq!(mount["mountPath"], config_dir);

    // Each replica takes its own shard: --shard=$(ORDINAL)/N with N the number of replicas.
    let replicas = workload["spec"]["replicas"].as_u64().expect("replicas");
    let shard = args
        .iter()
        .find_map(|a| a.strip_prefix("--shard="))
        .expect("--shard argument");
    let (index, count) = shard.split_once('/').expect("--shard=I/N");
    assert_eq!(count, replicas.to_string(), "--shard N equals replicas");
    let var = index
        .strip_prefix("$(")
        .and_then(|v| v.strip_suffix(')'))
        .expect("the shard index comes from an environment variable");
    let env = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == var)
        .unwrap_or_else(|| panic!("env {var}"));
    assert_eq!(
        env["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.labels['apps.kubernetes.io/pod-index']",
        "the shard index is the StatefulSet pod ordinal"
    );

    // The pods run as the image's non-root user and answer health checks on the named port.
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
    let port = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["containerPort"] == PORT)
        .expect("container port 9448");
    let port_name = port["name"].as_str().expect("named port");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], port_name);
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/-/ready");

    // Service -> pods, ServiceMonitor -> Service, StatefulSet -> governing Service.
    let pod_labels = &pod["metadata"]["labels"];
    assert_eq!(
        workload["spec"]["selector"]["matchLabels"],
        subset(pod_labels, &workload["spec"]["selector"]["matchLabels"])
    );
    assert!(
        matches_labels(&service["spec"]["selector"], pod_labels),
        "Service selects the pods"
    );
    assert_eq!(workload["spec"]["serviceName"], service["metadata"]["name"]);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], port_name);
    let service_port_name = &service["spec"]["ports"][0]["name"];
    assert!(
        matches_labels(
            &monitor["spec"]["selector"]["matchLabels"],
            &service["metadata"]["labels"]
        ),
        "ServiceMonitor selects the Service"
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], *service_port_name);
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");

    // One namespace for all.
    let namespaces: BTreeSet<String> = objects
        .iter()
        .filter_map(|(_, o)| o["metadata"]["namespace"].as_str().map(str::to_owned))
        .chain(kustomization["namespace"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(namespaces.len(), 1, "namespaces {namespaces:?}");
    let namespace = find("Namespace");
    assert!(namespaces.contains(namespace["metadata"]["name"].as_str().unwrap()));
}

// ---------------------------------------------------------------- Prometheus and Alertmanager examples

#[test]
fn prometheus_example_scrapes_both_modes_and_loads_the_rules() {
    let config = single_document(&read("deploy/prometheus.yml"), "deploy/prometheus.yml");
    for rule_file in strings(&config["rule_files"]) {
        let resolved = repo_path("deploy").join(&rule_file);
        assert!(
            resolved.exists(),
            "rule file {rule_file} does not resolve from deploy/"
        );
        assert_eq!(
            resolved.canonicalize().unwrap(),
            repo_path(RULES).canonicalize().unwrap()
        );
    }
    let jobs = config["scrape_configs"].as_array().expect("scrape_configs");

    // (1) The daemon's /metrics.
    let daemon = jobs
        .iter()
        .find(|j| j.get("metrics_path").is_none())
        .expect("a job scraping /metrics");
    let targets = strings(&daemon["static_configs"][0]["targets"]);
    assert!(
        targets.iter().all(|t| t.ends_with(&format!(":{PORT}"))),
        "{targets:?}"
    );

    // (2) /probe?target=NAME, relabelled as blackbox_exporter documents it.
    let probe = jobs
        .iter()
        .find(|j| j["metrics_path"] == "/probe")
        .expect("a /probe job");
    let relabel = probe["relabel_configs"]
        .as_array()
        .expect("relabel_configs");
    let step = |i: usize| (&relabel[i]["source_labels"], &relabel[i]["target_label"]);
    assert_eq!(
        step(0),
        (
            &serde_json::json!(["__address__"]),
            &serde_json::json!("__param_target")
        )
    );
    assert_eq!(
        step(1),
        (
            &serde_json::json!(["__param_target"]),
            &serde_json::json!("instance")
        )
    );
    assert_eq!(relabel[2]["target_label"], "__address__");
    assert!(
        relabel[2]["replacement"]
            .as_str()
            .is_some_and(|r| r.ends_with(&format!(":{PORT}"))),
        "__address__ becomes the exporter"
    );

    // promtool knows the format best, and checks the rule file it points at too.
    let out = Command::new(promtool())
        .args(["check", "config"])
        .arg(repo_path("deploy/prometheus.yml"))
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool check config deploy/prometheus.yml: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alertmanager_example_routes_every_alert_and_severity() {
    let config = single_document(&read("deploy/alertmanager.yml"), "deploy/alertmanager.yml");
    let receivers: BTreeSet<String> = config["receivers"]
        .as_array()
        .expect("receivers")
        .iter()
        .map(|r| r["name"].as_str().expect("receiver name").to_owned())
        .collect();
    let mut routes = Vec::new();
    collect_routes(&config["route"], &mut routes);
    for route in &routes {
        if let Some(receiver) = route["receiver"].as_str() {
            assert!(receivers.contains(receiver), "unknown receiver {receiver}");
        }
    }
    assert!(
        config["route"]["receiver"].is_string(),
        "a default receiver"
    );

    let matchers: Vec<String> = routes
        .iter()
        .flat_map(|r| strings(&r["matchers"]))
        .map(|m| m.split_whitespace().collect())
        .collect();
    assert!(
        matchers.contains(&format!("alertname=~\"{ALERT_PREFIX}.*\"")),
        "a route for the exporter's alerts: {matchers:?}"
    );
    let rules = single_document(&read(RULES), RULES);
    for rule in rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
    {
        let Some(alert) = rule["alert"].as_str() else {
            continue;
        };
        assert!(alert.starts_with(ALERT_PREFIX), "{alert} escapes the route");
        let severity = rule["labels"]["severity"].as_str().unwrap_or("");
        assert!(
            matchers.contains(&format!("severity=\"{severity}\"")),
            "{alert}: no route for severity {severity:?}"
        );
    }

    // Placeholders only: no real endpoint is configured.
    for receiver in config["receivers"].as_array().unwrap() {
        for hook in receiver["webhook_configs"].as_array().into_iter().flatten() {
            let url = hook["url"].as_str().expect("webhook url");
            let host = url
                .strip_prefix("https://")
                .and_then(|r| r.split('/').next())
                .expect("https URL");
            assert!(host.ends_with(".invalid"), "{url} is not a placeholder");
        }
    }
}

fn collect_routes<'a>(route: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(route);
    for child in route["routes"].as_array().into_iter().flatten() {
        collect_routes(child, out);
    }
}

// ---------------------------------------------------------------- Dockerfile

#[test]
fn dockerfile_runs_non_root_on_9448_with_health_check_and_documented_config() {
    let instructions = dockerfile_instructions(&read("Dockerfile"));
    let stages: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, (i, _))| i == "FROM")
        .map(|(n, _)| n)
        .collect();
    assert!(stages.len() >= 2, "a multi-stage build");
    let last = &instructions[*stages.last().unwrap()..];
    let get = |name: &str| -> Vec<&str> {
        last.iter()
            .filter(|(i, _)| i == name)
            .map(|(_, a)| a.as_str())
            .collect()
    };

    assert!(
        instructions
            .iter()
            .any(|(i, a)| i == "RUN" && a.contains("cargo build --release --locked")),
        "builds with the lock file"
    );
    let user = get("USER");
    let user = user.last().expect("USER in the runtime stage");
    let name = user.split(':').next().unwrap();
    assert!(!matches!(name, "root" | "0" | ""), "USER {user} is root");
    assert!(
        get("EXPOSE").iter().any(|a| a
            .split_whitespace()
            .any(|p| p == PORT.to_string() || p == format!("{PORT}/tcp"))),
        "EXPOSE {PORT}"
    );
    let health = get("HEALTHCHECK");
    let health = health.last().expect("HEALTHCHECK");
    assert!(
        health.contains(&format!("127.0.0.1:{PORT}/-/healthy")),
        "HEALTHCHECK {health}"
    );
    let entrypoint: Vec<String> =
        serde_json::from_str(get("ENTRYPOINT").last().expect("ENTRYPOINT")).expect("exec form");
    assert_eq!(entrypoint, ["matrix-federation-exporter"]);
    let cmd: Vec<String> =
        serde_json::from_str(get("CMD").last().expect("CMD")).expect("exec form");
    assert_eq!(cmd, [format!("--config.file={CONFIG_PATH}")]);

    // The image ships a config at CONFIG_PATH (the example), and the docs name that path.
    assert!(
        get("COPY")
            .iter()
            .any(|a| a.split_whitespace().last() == Some(CONFIG_PATH)),
        "COPY a default config to {CONFIG_PATH}"
    );
    assert!(
        read("deploy/README.md").contains(CONFIG_PATH),
        "deploy/README.md documents {CONFIG_PATH}"
    );

    // Whatever the build copies from the context exists and is not excluded by .dockerignore.
    let ignored: Vec<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_end_matches('/').to_owned())
        .collect();
    for required in ["target", ".git"] {
        assert!(
            ignored.iter().any(|l| l == required),
            ".dockerignore {required}"
        );
    }
    for (_, args) in instructions.iter().filter(|(i, _)| i == "COPY") {
        let words: Vec<&str> = args.split_whitespace().collect();
        if words.iter().any(|w| w.starts_with("--from")) {
            continue;
        }
        for source in &words[..words.len() - 1] {
            let source = source.trim_end_matches('/');
            assert!(
                repo_path(source).exists(),
                "COPY {source}: not in the repository"
            );
            let top = source.split('/').next().unwrap();
            // Excluded by a pattern naming it or its top folder, unless a `!` exception names it again.
            let reincluded = ignored.iter().any(|l| l.strip_prefix('!') == Some(source));
            assert!(
                reincluded || !ignored.iter().any(|l| l == source || l == top),
                "COPY {source} is excluded by .dockerignore"
            );
        }
    }
}

/// `(INSTRUCTION, arguments)` with continuation lines joined and comments dropped.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        let (part, continued) = match trimmed.strip_suffix('\\') {
            Some(p) => (p.trim(), true),
            None => (trimmed, false),
        };
        if !current.is_empty() && !part.is_empty() {
            current.push(' ');
        }
        current.push_str(part);
        if !continued {
            let (instruction, args) = current.split_once(' ').unwrap_or((&current, ""));
            out.push((instruction.to_uppercase(), args.trim().to_owned()));
            current.clear();
        }
    }
    out
}

// ---------------------------------------------------------------- helpers

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every file below `dir`, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Every document of a YAML stream, as JSON values.
fn yaml_documents(text: &str) -> Result<Vec<Value>, serde_saphyr::Error> {
    serde_saphyr::from_multiple::<Value>(text)
}

fn single_document(text: &str, name: &str) -> Value {
    let mut docs = yaml_documents(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(docs.len(), 1, "{name}: one YAML document");
    docs.pop().unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|s| s.as_str().expect("a string").to_owned())
        .collect()
}

/// Whether every `key: value` of `selector` is among `labels`.
fn matches_labels(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels[k] == *v))
}

/// `labels` restricted to the keys of `keys`.
fn subset(labels: &Value, keys: &Value) -> Value {
    Value::Object(
        keys.as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| (k.clone(), labels[k].clone()))
            .collect(),
    )
}
