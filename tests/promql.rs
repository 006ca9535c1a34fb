//! Every `PromQL` expression we ship, run by a real Prometheus: each rule in `alerts/*.rules.yml` and each query
//! in `dashboards/*.json`, against a Prometheus (Debian's `prometheus` package) that scrapes the exporter while it
//! probes the hermetic test world. Each expression must parse and return data, or be listed with the reason it
//! cannot in `tests/promql/no-data.txt`. Also here: the alert conventions (runbook section and URL, unit tests
//! that fire and stay quiet, a reason comment on every `for:`), `promtool` itself, and that every metric the rules
//! and dashboards name is documented in METRICS.md.
//!
//! Hermetic like every test here: the exporter, the fake homeservers, DNS and Prometheus all listen on loopback.
//! When `prometheus` or `promtool` is missing, `tests/tools/install-prometheus.sh` installs it (as `.ci/run`
//! does first); if that fails the tests fail, they never skip.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use matrix_federation_exporter::config::server_name::ServerName;
use matrix_federation_exporter::config::{Config, MetricsConfig, ProbeConfig, Profile, Timeouts};
use matrix_federation_exporter::probe::env::{Ports, ProbeEnv};
use matrix_federation_exporter::serve::daemon;
use serde::Deserialize;
use serde_json::Value;
use support::https::WELL_KNOWN_SERVER;
use support::{
    Behaviour, FakeDns, FakeServer, PortAnchor, Reply, Routes, TestCa, Validity, Zone, keys,
};

/// The scrape job, as the dashboards' `$job` and the deploy examples call it.
const JOB: &str = "matrix-federation";
/// The servers of the world, each there to give some rule or panel data (see [`start_world`]).
const SERVERS: &[&str] = &[
    "deleg.test",
    "oldsrv.test",
    "soon.test",
    "expiring.test",
    "wrongname.test",
    "dual.test",
    "badkeys.test",
    "keysoon.test",
    "split.test",
    "moved.test",
];
/// `$server_name` for the dashboards: delegated by `.well-known`, dual-stack with a dead IPv6 address, so every
/// per-server panel (failures included) has data. Other servers are tried when an expression finds nothing here.
const DASHBOARD_SERVER: &str = "dual.test";
/// The alerts the world must make pending, as (alertname, severity, `server_name`), once moved.test lost its
/// delegation. Every alert not listed in no-data.txt appears here.
const EXPECTED_ALERTS: &[(&str, &str, &str)] = &[
    ("MatrixFederationDown", "critical", "wrongname.test"),
    ("MatrixFederationDown", "critical", "badkeys.test"),
    ("MatrixFederationDown", "critical", "moved.test"),
    ("MatrixFederationDegraded", "warning", "dual.test"),
    (
        "MatrixFederationCertificateExpiring",
        "warning",
        "soon.test",
    ),
    (
        "MatrixFederationCertificateExpiring",
        "critical",
        "expiring.test",
    ),
    (
        "MatrixFederationCertificateInvalid",
        "critical",
        "wrongname.test",
    ),
    (
        "MatrixFederationCertificateNotReloaded",
        "warning",
        "soon.test",
    ),
    (
        "MatrixFederationCertificateNotReloaded",
        "critical",
        "expiring.test",
    ),
    ("MatrixFederationWellKnownBroken", "warning", "moved.test"),
    (
        "MatrixFederationDeprecatedSrvOnly",
        "warning",
        "oldsrv.test",
    ),
    (
        "MatrixFederationSigningKeysInvalid",
        "critical",
        "badkeys.test",
    ),
    (
        "MatrixFederationSigningKeysExpiringSoon",
        "warning",
        "keysoon.test",
    ),
    (
        "MatrixFederationSigningKeysMismatch",
        "warning",
        "split.test",
    ),
    // Nothing listens on port 443 for these names, so clients cannot fetch the client well-known (fail_prompt);
    // deleg.test and moved.test answer 404 there (ignore), dual.test publishes a working one.
    (
        "MatrixFederationClientDiscoveryBroken",
        "critical",
        "oldsrv.test",
    ),
    (
        "MatrixFederationClientDiscoveryBroken",
        "critical",
        "soon.test",
    ),
    (
        "MatrixFederationClientDiscoveryBroken",
        "critical",
        "expiring.test",
    ),
    (
        "MatrixFederationClientDiscoveryBroken",
        "critical",
        "wrongname.test",
    ),
    (
        "MatrixFederationClientDiscoveryBroken",
        "critical",
        "badkeys.test",
    ),
    (
        "MatrixFederationClientDiscoveryBroken",
        "critical",
        "keysoon.test",
    ),
    (
        "MatrixFederationClientDiscoveryBroken",
        "critical",
        "split.test",
    ),
];
const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// Probe timeouts no longer than the interval (as config validation demands); everything answers in
/// milliseconds on loopback.
const WORLD_TIMEOUTS: Timeouts = Timeouts {
    dns: Duration::from_secs(2),
    connect: Duration::from_secs(2),
    tls_handshake: Duration::from_secs(2),
    well_known: Duration::from_secs(2),
    http: Duration::from_secs(2),
};
/// Bound on each wait for Prometheus (start, data, alerts); the whole test takes about 15 s.
const WAIT: Duration = Duration::from_secs(30);
/// Every `runbook_url` is the URL the recording rule `matrix_federation_exporter:runbook_url:info` holds (the one
/// place to change it), then `#` and the alert name in lower case.
const RUNBOOK_URL: &str = "{{ with query \"matrix_federation_exporter:runbook_url:info\" }}{{ (. | first).Labels.url }}{{ end }}#";
/// Where that rule points by default: the exporter's own `/runbook`.
const DEFAULT_RUNBOOK: &str = "http://matrix-federation-exporter:9448/runbook#";
const SEVERITIES: &[&str] = &["critical", "warning", "info"];

// ---------------------------------------------------------------- every expression in a real Prometheus

#[test]
fn every_expression_returns_data_in_a_real_prometheus() {
    every_expression_returns_data(Profile::Full);
}

/// The same against an exporter in the observer profile (`metrics.profile: observer`): the alerts fire as in the
/// full profile, and every rule and every query of the overview dashboard returns data where it does in the full
/// profile. The server dashboard shows per-address detail and needs the full profile (METRICS.md, "Profiles").
#[test]
fn every_rule_and_overview_query_returns_data_in_the_observer_profile() {
    every_expression_returns_data(Profile::Observer);
}

/// Runs every expression (rules, recording rules and dashboard queries; in the observer profile only the rules
/// and the overview dashboard) against a real Prometheus scraping an exporter in `profile`.
#[expect(
    clippy::too_many_lines,
    reason = "one run: world, exporter, Prometheus, data, alerts, then every expression"
)]
fn every_expression_returns_data(profile: Profile) {
    let started = Instant::now();
    let (prometheus_bin, _) = prometheus_binaries();
    let expressions: Vec<_> = collect_expressions()
        .into_iter()
        .filter(|e| profile == Profile::Full || !e.id.contains("matrix-federation-server:"))
        .collect();
    // `observer:ID` lines of the list hold only in the observer profile, where they add to the others.
    let (observer_only, mut no_data): (BTreeMap<_, _>, BTreeMap<_, _>) = no_data_list()
        .into_iter()
        .partition(|(id, _)| id.starts_with("observer:"));
    if profile == Profile::Observer {
        no_data.extend(
            observer_only
                .into_iter()
                .map(|(id, why)| (id["observer:".len()..].to_owned(), why)),
        );
    }
    let ids: BTreeSet<&str> = expressions.iter().map(|e| e.id.as_str()).collect();
    let stale: Vec<&String> = no_data
        .keys()
        .filter(|id| !ids.contains(id.as_str()))
        .collect();
    assert!(
        profile == Profile::Observer || stale.is_empty(),
        "tests/promql/no-data.txt lists expressions that do not exist (any more): {stale:?}\nknown: {ids:#?}"
    );

    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let world = runtime.block_on(start_world());
    let (exporter, target) = runtime.block_on(start_exporter_in(&world, SERVERS, profile));
    let (_, metrics) = http_get(target, "/metrics").expect("GET /metrics");
    assert!(
        metrics.contains(&format!(
            "matrix_federation_exporter_metrics_profile_info{{profile=\"{profile}\"}}"
        )),
        "{metrics}"
    );
    let world_ready = started.elapsed();

    let prometheus = Prometheus::start(&prometheus_bin, target, &rule_files());
    let prometheus_ready = started.elapsed();

    // Every server scraped at least three times, so rate() and friends have points.
    let servers = SERVERS.len();
    prometheus.wait_for("three scrapes of every server", |p| {
        let q = format!(
            r#"count(count_over_time(matrix_federation_probe_success{{job="{JOB}"}}[1m]) >= 3)"#
        );
        let n = p.query(&q)?.first_value().unwrap_or(0.0);
        Ok((n as usize == servers, format!("{n} of {servers} servers")))
    });
    // Break moved.test's delegation, so "used to delegate, no longer does" has data.
    prometheus.wait_for("moved.test delegated", |p| {
        let r = p.query(
            r#"matrix_federation_discovery_info{server_name="moved.test",well_known="delegated"}"#,
        )?;
        Ok((!r.is_empty(), r.describe()))
    });
    world.moved_well_known.set_route(
        WELL_KNOWN_SERVER,
        Reply::json(404, r#"{"errcode":"M_NOT_FOUND"}"#),
    );
    prometheus.wait_for("moved.test's .well-known seen broken", |p| {
        let r = p.query(
            r#"matrix_federation_discovery_info{server_name="moved.test",well_known="not_found"}"#,
        )?;
        Ok((!r.is_empty(), r.describe()))
    });
    let data_ready = started.elapsed();

    // The rules evaluate without error on real data, and make exactly the expected alerts pending.
    check_rules_and_alerts(&prometheus);
    let alerts_ready = started.elapsed();
    // Where the alerts' runbook_url points by default: the exporter serves the runbook, an anchor per alert.
    let (status, page) = http_get(target, "/runbook").expect("GET /runbook");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("id=\"matrixfederationdown\""), "{page}");

    let mut report = String::new();
    let mut failures = Vec::new();
    for expression in &expressions {
        let outcome = run_expression(&prometheus, expression, target);
        let listed = no_data.get(&expression.id);
        let line = match (&outcome, listed) {
            (Err(e), _) => {
                failures.push(format!(
                    "{}: query failed: {e}\n    {}",
                    expression.id, expression.text
                ));
                format!("ERROR    {}: {e}", expression.id)
            }
            (Ok(Some(what)), None) => format!("data     {}: {what}", expression.id),
            (Ok(None), Some(reason)) => format!("no data  {} (listed: {reason})", expression.id),
            (Ok(None), None) => {
                failures.push(format!(
                    "{}: returned no data in the test world; make the world produce some, or list it in \
                     tests/promql/no-data.txt with the reason\n    {}",
                    expression.id, expression.text
                ));
                format!("NO DATA  {}", expression.id)
            }
            (Ok(Some(what)), Some(_)) => {
                failures.push(format!(
                    "{}: listed in tests/promql/no-data.txt but returns data ({what}); remove it from the list",
                    expression.id
                ));
                format!("LISTED   {}: {what}", expression.id)
            }
        };
        writeln!(report, "{line}").unwrap();
    }
    let total = started.elapsed();
    println!("{report}");
    println!(
        "{} expressions; world and exporter ready {world_ready:.1?}, Prometheus up {prometheus_ready:.1?}, data \
         {data_ready:.1?}, alerts {alerts_ready:.1?}, done {total:.1?}",
        expressions.len()
    );
    assert!(
        failures.is_empty(),
        "{}\n\n{}",
        failures.join("\n"),
        prometheus.log_tail()
    );
    drop(prometheus);
    drop(exporter);
    drop(world);
}

/// Watch the watcher: with every `for:` shortened to 1s (the rules as shipped otherwise), a federation alert fires;
/// then the exporter stops, `MatrixFederationExporterDown` fires, and the federation alerts keep firing
/// (`keep_firing_for`) instead of resolving into a false "all clear".
#[test]
fn stopping_the_exporter_fires_the_watcher_while_federation_alerts_stay() {
    const SERVERS_HERE: &[&str] = &["wrongname.test", "dual.test"];
    let (prometheus_bin, _) = prometheus_binaries();
    let world_runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let world = world_runtime.block_on(start_world());
    // The exporter on a runtime of its own: shutting it down closes the listener and every open connection.
    let exporter_runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    // The exporter (its scheduler) lives as long as the task that serves it.
    let (_, target) = exporter_runtime.block_on(start_exporter(&world, SERVERS_HERE));

    let dir = std::env::temp_dir().join(format!("mfe-promql-watcher-{}", std::process::id()));
    let rules_files = rules_with_short_for(&dir);
    let prometheus = Prometheus::start(&prometheus_bin, target, &rules_files);

    let down = (
        "MatrixFederationDown".to_owned(),
        "wrongname.test".to_owned(),
    );
    let degraded = (
        "MatrixFederationDegraded".to_owned(),
        "dual.test".to_owned(),
    );
    let watcher = ("MatrixFederationExporterDown".to_owned(), String::new());
    prometheus.wait_for("the federation alerts firing, the watcher quiet", |p| {
        let got = firing(p)?;
        let done = got.contains(&down) && got.contains(&degraded);
        if got.contains(&watcher) {
            return Err(format!(
                "the watcher fires while the exporter is up: {got:?}"
            ));
        }
        Ok((done, format!("{got:?}")))
    });

    exporter_runtime.shutdown_background();
    prometheus.wait_for(
        "the watcher firing, the federation alerts still firing",
        |p| {
            let got = firing(p)?;
            if !(got.contains(&down) && got.contains(&degraded)) {
                return Err(format!(
                    "a federation alert resolved when the exporter stopped: {got:?}"
                ));
            }
            Ok((got.contains(&watcher), format!("{got:?}")))
        },
    );
    // And a few evaluations later, still so (keep_firing_for is 15m).
    std::thread::sleep(Duration::from_secs(3));
    let got = firing(&prometheus).expect("alerts");
    assert!(
        got.contains(&down) && got.contains(&degraded) && got.contains(&watcher),
        "{got:?}"
    );
    drop(prometheus);
    let _ = std::fs::remove_dir_all(&dir);
    drop(world);
}

/// The firing alerts, as (alertname, `server_name`).
fn firing(p: &Prometheus) -> Result<BTreeSet<(String, String)>, String> {
    let alerts = p.api("/api/v1/alerts")?;
    Ok(alerts["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["state"] == "firing")
        .map(|a| {
            let label = |k: &str| a["labels"][k].as_str().unwrap_or("").to_owned();
            (label("alertname"), label("server_name"))
        })
        .collect())
}

/// The shipped rules with every `for:` 1s, so that alerts fire within a test instead of staying pending; written
/// into `dir`.
fn rules_with_short_for(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).expect("create the rules directory");
    let mut rules_files = Vec::new();
    for file in rule_files() {
        let text = std::fs::read_to_string(&file).expect("read the rules");
        let short: Vec<String> = text
            .lines()
            .map(|line| match line.split_once("for: ") {
                Some((indent, _)) if indent.trim().is_empty() => format!("{indent}for: 1s"),
                _ => line.to_owned(),
            })
            .collect();
        let path = dir.join(file.file_name().expect("a file name"));
        std::fs::write(&path, short.join("\n")).expect("write the rules");
        rules_files.push(path);
    }
    rules_files
}

/// The rules are all healthy after an evaluation on real data, their annotations expand, and the pending and
/// firing alerts are exactly [`EXPECTED_ALERTS`].
fn check_rules_and_alerts(prometheus: &Prometheus) {
    prometheus.wait_for("every rule evaluated without error", |p| {
        let rules = p.api("/api/v1/rules")?;
        let mut pending = Vec::new();
        for group in rules["groups"].as_array().into_iter().flatten() {
            for rule in group["rules"].as_array().into_iter().flatten() {
                let name = rule["name"].as_str().unwrap_or("?");
                match rule["health"].as_str() {
                    Some("ok") => {}
                    Some("err") => {
                        return Err(format!("rule {name} fails: {}", rule["lastError"]));
                    }
                    other => pending.push(format!("{name}: {other:?}")),
                }
            }
        }
        Ok((pending.is_empty(), pending.join(", ")))
    });
    let want: BTreeSet<(String, String, String)> = EXPECTED_ALERTS
        .iter()
        .map(|(a, s, n)| ((*a).to_owned(), (*s).to_owned(), (*n).to_owned()))
        .collect();
    let mut last = Vec::new();
    prometheus.wait_for("the expected alerts", |p| {
        let alerts = p.api("/api/v1/alerts")?;
        let mut got = BTreeSet::new();
        last.clear();
        for alert in alerts["alerts"].as_array().into_iter().flatten() {
            let label = |k: &str| alert["labels"][k].as_str().unwrap_or("").to_owned();
            for (key, value) in alert["annotations"].as_object().into_iter().flatten() {
                let value = value.as_str().unwrap_or("");
                if value.contains("error expanding template") || value.contains("<no value>") {
                    return Err(format!("{} {key}: {value}", label("alertname")));
                }
                if key == "runbook_url" && !value.starts_with(DEFAULT_RUNBOOK) {
                    return Err(format!("{} runbook_url: {value}", label("alertname")));
                }
            }
            last.push(format!(
                "{} {} {} [{}]: {}",
                label("alertname"),
                label("severity"),
                label("server_name"),
                alert["state"].as_str().unwrap_or("?"),
                alert["annotations"]["description"].as_str().unwrap_or("")
            ));
            got.insert((label("alertname"), label("severity"), label("server_name")));
        }
        let missing: Vec<_> = want.difference(&got).collect();
        let extra: Vec<_> = got.difference(&want).collect();
        Ok((
            missing.is_empty() && extra.is_empty(),
            format!("missing {missing:?}, unexpected {extra:?}"),
        ))
    });
    println!("pending alerts in the world:\n  {}", last.join("\n  "));
}

/// Runs one expression: `Ok(Some(summary))` when it returns data, `Ok(None)` when it returns nothing.
fn run_expression(
    prometheus: &Prometheus,
    expression: &Expression,
    target: SocketAddr,
) -> Result<Option<String>, String> {
    let uses_server = ["$server_name", "${server_name", "[[server_name"]
        .iter()
        .any(|v| expression.text.contains(v));
    let candidates: Vec<&str> = if uses_server {
        std::iter::once(DASHBOARD_SERVER)
            .chain(SERVERS.iter().copied().filter(|s| *s != DASHBOARD_SERVER))
            .collect()
    } else {
        vec![DASHBOARD_SERVER]
    };
    for server in candidates {
        let mut vars = expression.variables.clone();
        vars.insert("job".into(), JOB.into());
        vars.insert("instance".into(), target.to_string());
        vars.insert("server_name".into(), server.into());
        let text = substitute(&expression.text, &vars);
        let found = match &expression.kind {
            Kind::PromQl => {
                let r = prometheus.query(&text)?;
                (!r.is_empty()).then(|| r.describe())
            }
            Kind::LabelValues {
                selector: None,
                label,
            } => {
                let values = prometheus.api(&format!("/api/v1/label/{label}/values"))?;
                let values = values.as_array().cloned().unwrap_or_default();
                (!values.is_empty()).then(|| format!("{} values of {label}", values.len()))
            }
            Kind::LabelValues {
                selector: Some(selector),
                label,
            } => {
                let r = prometheus.query(&substitute(selector, &vars))?;
                let values: BTreeSet<&str> = r
                    .series
                    .iter()
                    .filter_map(|s| s["metric"][label].as_str())
                    .collect();
                (!values.is_empty()).then(|| format!("{label} = {values:?}"))
            }
        };
        if let Some(what) = found {
            let at = if uses_server {
                format!(" (server_name={server})")
            } else {
                String::new()
            };
            return Ok(Some(format!("{what}{at}")));
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------- the world

/// The hermetic world: fake DNS, a test CA, and fake homeservers on 127.0.0.0/8 (and a refused `[::1]`).
struct World {
    dns: FakeDns,
    ca: TestCa,
    ports: Ports,
    /// The `.well-known` server of moved.test, whose delegation the test breaks halfway.
    moved_well_known: FakeServer,
    _servers: Vec<FakeServer>,
    _anchors: (PortAnchor, PortAnchor),
}

/// The exporter over `servers` of `world`, once every server was probed, served on 127.0.0.1 by a task that
/// holds it: it lives until that task's runtime shuts down, which also closes the listener.
async fn start_exporter(world: &World, servers: &[&str]) -> (daemon::Exporter, SocketAddr) {
    start_exporter_in(world, servers, Profile::Full).await
}

/// [`start_exporter`] in the given profile of series (`metrics.profile`).
async fn start_exporter_in(
    world: &World,
    servers: &[&str],
    profile: Profile,
) -> (daemon::Exporter, SocketAddr) {
    let config = Config {
        metrics: MetricsConfig { profile },
        servers: servers
            .iter()
            .map(|s| ServerName::parse(s).unwrap())
            .collect(),
        probe: ProbeConfig {
            interval: PROBE_INTERVAL,
            jitter: Duration::from_millis(200),
            timeouts: WORLD_TIMEOUTS,
            ..ProbeConfig::default()
        },
        ..Config::default()
    };
    let env = ProbeEnv::new(
        &[world.dns.addr],
        world.ca.root_store(),
        world.ports,
        WORLD_TIMEOUTS,
    )
    .expect("probe environment");
    let env = with_renewed_files(world, env);
    let mut exporter = daemon::start(&config, env);
    tokio::time::timeout(WAIT, exporter.ready.wait_for(|ready| *ready))
        .await
        .expect("every server probed once within the bound")
        .expect("ready channel open");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the exporter");
    let target = listener.local_addr().expect("exporter address");
    let serving = exporter.clone();
    tokio::spawn(async move {
        axum::serve(listener, serving.router.clone())
            .await
            .expect("serve the exporter");
        drop(serving);
    });
    (exporter, target)
}

/// `local_certificates` for soon.test and expiring.test: each has a renewed certificate on disk (changed 2 hours
/// ago) that it does not serve, so `cert_not_reloaded` warns on their addresses.
fn with_renewed_files(world: &World, mut env: ProbeEnv) -> ProbeEnv {
    use matrix_federation_exporter::config::LocalCertificates;
    use matrix_federation_exporter::probe::local_certs::LocalCerts;
    let dir = std::env::temp_dir().join(format!("mfe-promql-certs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut entries = Vec::new();
    for name in ["soon.test", "expiring.test"] {
        let leaf = world.ca.leaf(&[name], Validity::Valid);
        let pem: String = leaf.chain.iter().map(|c| pem_block(c.as_ref())).collect();
        let path = dir.join(format!("{name}.pem"));
        let file = std::fs::File::create(&path).expect("create the PEM");
        std::io::Write::write_all(&mut &file, pem.as_bytes()).expect("write the PEM");
        file.set_modified(std::time::SystemTime::now() - Duration::from_secs(7200))
            .expect("set mtime");
        entries.push(LocalCertificates {
            server_name: ServerName::parse(name).unwrap(),
            files: vec![path.to_string_lossy().into_owned()],
            reload_grace: Duration::from_secs(3600),
        });
    }
    env.local_certs = std::sync::Arc::new(LocalCerts::new(entries));
    env
}

/// One DER certificate as a PEM block.
fn pem_block(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|l| std::str::from_utf8(l).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// One server per state an alert or panel looks for:
/// - deleg.test: healthy, delegated by `.well-known` to host.deleg.test;
/// - oldsrv.test: found only through the deprecated `_matrix._tcp` SRV record;
/// - soon.test, expiring.test: certificates that expire in 10 and 2 days;
/// - wrongname.test: a certificate for another name (its only address fails);
/// - dual.test: delegated to host.dual.test, whose IPv4 address works and whose IPv6 address (`[::1]`) refuses;
/// - badkeys.test: serves the key document of another server;
/// - keysoon.test: a key document valid for only 30 more minutes;
/// - split.test: two addresses, two homeservers with different signing keys;
/// - moved.test: delegated by `.well-known`, until the test makes it answer 404.
#[expect(
    clippy::too_many_lines,
    reason = "the world of every scenario the rules fire on, set up in one place"
)]
async fn start_world() -> World {
    let (mut wk, mut fed) = (PortAnchor::new(), PortAnchor::new());
    let ca = TestCa::new("promql");
    let ip = |last: u8| Ipv4Addr::new(127, 0, 0, last);
    let zone = Zone::new()
        .a("deleg.test", ip(2))
        .a("host.deleg.test", ip(3))
        // A stale SRV record of a delegating name (the shadowed-record panels).
        .srv(
            "_matrix-fed._tcp.deleg.test",
            10,
            0,
            fed.port,
            "old.deleg.test",
        )
        .srv(
            "_matrix._tcp.oldsrv.test",
            10,
            0,
            fed.port,
            "target.oldsrv.test",
        )
        .a("target.oldsrv.test", ip(4))
        .a("soon.test", ip(5))
        .a("expiring.test", ip(6))
        .a("wrongname.test", ip(7))
        .a("dual.test", ip(8))
        .a("host.dual.test", ip(9))
        .aaaa("host.dual.test", Ipv6Addr::LOCALHOST)
        .a("badkeys.test", ip(10))
        .a("keysoon.test", ip(11))
        .a("split.test", ip(12))
        .a("split.test", ip(13))
        .a("moved.test", ip(14))
        .a("host.moved.test", ip(15));
    let dns = FakeDns::start(zone).await;

    let https = |leaf, routes| Behaviour::Https { leaf, routes };
    let valid = |name: &str| ca.leaf(&[name], Validity::Valid);
    let expires_in_days = |name: &str, days: u64| {
        ca.leaf(
            &[name],
            Validity::ExpiresIn(Duration::from_secs(days * 86_400)),
        )
    };
    let delegate = |to: &str| Routes::new().well_known_json(&format!(r#"{{"m.server":"{to}"}}"#));
    let short_lived_keys = {
        let key = keys::SigningKey::generate("ed25519:short");
        keys::key_document("keysoon.test", &[&key], keys::now_ms() + 30 * 60 * 1000)
    };
    let plan = vec![
        (
            wk.bind(ip(2)),
            https(
                valid("deleg.test"),
                // Whom to contact (the support panels).
                delegate("host.deleg.test").route(
                    "/.well-known/matrix/support",
                    Reply::json(
                        200,
                        r#"{"contacts":[{"role":"m.role.admin","email_address":"admin@deleg.test"}]}"#,
                    ),
                ),
            ),
        ),
        (
            fed.bind(ip(3)),
            https(valid("host.deleg.test"), keys::matrix_routes("deleg.test")),
        ),
        (
            fed.bind(ip(4)),
            https(valid("oldsrv.test"), keys::matrix_routes("oldsrv.test")),
        ),
        (
            fed.bind(ip(5)),
            https(
                expires_in_days("soon.test", 10),
                keys::matrix_routes("soon.test"),
            ),
        ),
        (
            fed.bind(ip(6)),
            https(
                expires_in_days("expiring.test", 2),
                keys::matrix_routes("expiring.test"),
            ),
        ),
        (
            fed.bind(ip(7)),
            https(valid("other.test"), keys::matrix_routes("wrongname.test")),
        ),
        (
            wk.bind(ip(8)),
            // dual.test also publishes client discovery (on the same origin), so the client panels have data.
            https(
                valid("dual.test"),
                delegate("host.dual.test")
                    .route(
                        "/.well-known/matrix/client",
                        Reply::json(200, r#"{"m.homeserver":{"base_url":"https://dual.test"}}"#),
                    )
                    .route(
                        "/_matrix/client/versions",
                        Reply::json(200, r#"{"versions":["v1.11"]}"#),
                    ),
            ),
        ),
        (
            fed.bind(ip(9)),
            https(valid("host.dual.test"), keys::matrix_routes("dual.test")),
        ),
        (
            fed.bind(ip(10)),
            https(
                valid("badkeys.test"),
                keys::matrix_routes("someone-else.test"),
            ),
        ),
        (
            fed.bind(ip(11)),
            https(
                valid("keysoon.test"),
                keys::matrix_routes_with_keys(short_lived_keys),
            ),
        ),
        (
            fed.bind(ip(12)),
            https(valid("split.test"), keys::matrix_routes("split.test")),
        ),
        (
            fed.bind(ip(13)),
            https(valid("split.test"), keys::matrix_routes("split.test")),
        ),
        (
            fed.bind(ip(15)),
            https(valid("host.moved.test"), keys::matrix_routes("moved.test")),
        ),
    ];
    let mut servers = Vec::new();
    for (bind, behaviour) in plan {
        servers.push(FakeServer::start(bind, behaviour).await);
    }
    let moved_well_known = FakeServer::start(
        wk.bind(ip(14)),
        https(valid("moved.test"), delegate("host.moved.test")),
    )
    .await;
    // Nothing listens on [::1] at these ports, so host.dual.test's IPv6 address is refused. The anchors keep
    // 127.0.0.1 at both ports, so no other test can take them.
    drop((wk.take_v6(), fed.take_v6()));
    let ports = Ports {
        well_known: wk.port,
        federation: fed.port,
    };
    World {
        dns,
        ca,
        ports,
        moved_well_known,
        _servers: servers,
        _anchors: (wk, fed),
    }
}

// ---------------------------------------------------------------- Prometheus

/// A Prometheus child process with its own config and storage in a temporary directory; killed and removed on
/// drop (also when the test panics).
struct Prometheus {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second with `rule_files`, and waits until it is ready.
    fn start(binary: &Path, target: SocketAddr, rule_files: &[PathBuf]) -> Self {
        let rules: Vec<String> = rule_files
            .iter()
            .map(|p| format!("  - {:?}\n", p.display().to_string()))
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n{}\
             scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: [\"{target}\"]\n",
            rules.concat()
        );
        // The port is picked by binding :0 and letting go; should another process take it in between,
        // Prometheus exits at once and we try another.
        let mut last_log = String::new();
        for attempt in 0..3 {
            let dir = std::env::temp_dir().join(format!(
                "mfe-promql-{}-{}-{attempt}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            ));
            std::fs::create_dir_all(&dir).expect("create the Prometheus directory");
            std::fs::write(dir.join("prometheus.yml"), &config).expect("write prometheus.yml");
            let addr = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
                l.local_addr().expect("free port")
            };
            let log =
                std::fs::File::create(dir.join("prometheus.log")).expect("create prometheus.log");
            let child = Command::new(binary)
                .arg(format!(
                    "--config.file={}",
                    dir.join("prometheus.yml").display()
                ))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone the log file"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
            let mut prometheus = Self { child, dir, addr };
            let deadline = Instant::now() + WAIT;
            loop {
                if let Ok((200, _)) = http_get(addr, "/-/ready") {
                    return prometheus;
                }
                if let Ok(Some(status)) = prometheus.child.try_wait() {
                    last_log = prometheus.log_tail();
                    eprintln!("Prometheus exited ({status}) on attempt {attempt}:\n{last_log}");
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "Prometheus not ready within {WAIT:?}\n{}",
                    prometheus.log_tail()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("Prometheus did not start:\n{last_log}");
    }

    /// `GET path` on the HTTP API: the `data` of a `status: success` answer.
    fn api(&self, path: &str) -> Result<Value, String> {
        let (status, body) = http_get(self.addr, path)?;
        let json: Value = serde_json::from_str(&body)
            .map_err(|e| format!("HTTP {status}, not JSON ({e}): {body}"))?;
        if json["status"] != "success" {
            return Err(format!(
                "HTTP {status}, {}: {}",
                json["errorType"].as_str().unwrap_or("error"),
                json["error"].as_str().unwrap_or(&body)
            ));
        }
        Ok(json["data"].clone())
    }

    /// An instant query at the current time.
    fn query(&self, expr: &str) -> Result<QueryResult, String> {
        let encoded: String = url::form_urlencoded::byte_serialize(expr.as_bytes()).collect();
        let data = self.api(&format!("/api/v1/query?query={encoded}"))?;
        let kind = data["resultType"].as_str().unwrap_or("").to_owned();
        let series = match &data["result"] {
            Value::Array(items) if kind == "vector" || kind == "matrix" => items.clone(),
            // A scalar or string is one value: always data.
            other => vec![serde_json::json!({ "metric": {}, "value": other })],
        };
        Ok(QueryResult { kind, series })
    }

    /// Polls `check` (bounded by [`WAIT`]) until it says done; panics with its last word otherwise.
    fn wait_for(&self, what: &str, mut check: impl FnMut(&Self) -> Result<(bool, String), String>) {
        let deadline = Instant::now() + WAIT;
        let mut last = String::new();
        while Instant::now() < deadline {
            match check(self) {
                Ok((true, _)) => return,
                Ok((false, state)) => last = state,
                Err(e) => last = format!("error: {e}"),
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "waited {WAIT:?} for {what}; last: {last}\n{}",
            self.log_tail()
        );
    }

    /// The last lines Prometheus logged.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "Prometheus log (tail):\n{}",
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct QueryResult {
    kind: String,
    series: Vec<Value>,
}

impl QueryResult {
    fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// The value of the first sample of an instant vector or scalar.
    fn first_value(&self) -> Option<f64> {
        let value = &self.series.first()?["value"];
        value[1].as_str()?.parse().ok()
    }

    fn describe(&self) -> String {
        let first = self
            .series
            .first()
            .map(|s| s["metric"].to_string())
            .unwrap_or_default();
        format!("{} {} series, first {first}", self.series.len(), self.kind)
    }
}

/// A plain HTTP/1.0 GET (Prometheus then closes the connection after the whole body, unchunked).
fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP header end in {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP status in {head:?}"))?;
    Ok((status, body.to_owned()))
}

/// `prometheus` and `promtool`, from PATH, installed by `tests/tools/install-prometheus.sh` when missing.
fn prometheus_binaries() -> (PathBuf, PathBuf) {
    static BINARIES: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BINARIES
        .get_or_init(|| {
            let find = || Some((on_path("prometheus")?, on_path("promtool")?));
            if let Some(found) = find() {
                return found;
            }
            let script = repo_path("tests/tools/install-prometheus.sh");
            eprintln!("prometheus/promtool not on PATH: running {}", script.display());
            let status = Command::new("bash").arg(&script).status();
            find().unwrap_or_else(|| {
                panic!(
                    "prometheus and promtool are needed and not on PATH; {} ran with {status:?} and did not install \
                     them. Install Debian's prometheus package (apt-get install prometheus) or put both binaries \
                     on PATH.",
                    script.display()
                )
            })
        })
        .clone()
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

// ---------------------------------------------------------------- the expressions we ship

/// One expression and where it comes from.
struct Expression {
    /// `alert:<AlertName>:<severity>`, `record:<name>`, `panel:<dashboard>:<panel id>:<refId>`,
    /// `annotation:<dashboard>:<name>` or `variable:<dashboard>:<name>` (dashboard = file name without `.json`).
    id: String,
    text: String,
    kind: Kind,
    /// The dashboard's own variables (custom, constant, textbox, interval) and Grafana's built-ins.
    variables: BTreeMap<String, String>,
}

enum Kind {
    PromQl,
    /// A Grafana `label_values([selector,] label)` variable query.
    LabelValues {
        selector: Option<String>,
        label: String,
    },
}

fn collect_expressions() -> Vec<Expression> {
    let mut out = Vec::new();
    for file in rule_files() {
        for group in load_rules(&file).groups {
            for rule in group.rules {
                let id = match (&rule.alert, &rule.record) {
                    (Some(alert), _) => format!(
                        "alert:{alert}:{}",
                        rule.labels.get("severity").map_or("", String::as_str)
                    ),
                    (None, Some(record)) => format!("record:{record}"),
                    (None, None) => {
                        panic!("{}: a rule with neither alert nor record", file.display())
                    }
                };
                out.push(Expression {
                    id,
                    text: rule.expr,
                    kind: Kind::PromQl,
                    variables: BTreeMap::new(),
                });
            }
        }
    }
    for file in files_with_extension(&repo_path("dashboards"), "json") {
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        let dashboard: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let variables = dashboard_variables(&dashboard);
        let mut push = |id: String, text: &str, kind: Kind| {
            out.push(Expression {
                id,
                text: text.to_owned(),
                kind,
                variables: variables.clone(),
            });
        };
        let mut panels = Vec::new();
        collect_panels(&dashboard["panels"], &mut panels);
        for panel in panels {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    let id = format!(
                        "panel:{stem}:{}:{}",
                        panel["id"],
                        target["refId"].as_str().unwrap_or("?")
                    );
                    push(id, expr, Kind::PromQl);
                }
            }
        }
        for annotation in dashboard["annotations"]["list"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(expr) = annotation["expr"].as_str().filter(|e| !e.is_empty()) {
                let id = format!(
                    "annotation:{stem}:{}",
                    annotation["name"].as_str().unwrap_or("?")
                );
                push(id, expr, Kind::PromQl);
            }
        }
        for variable in dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if variable["type"] != "query" {
                continue;
            }
            let query = match &variable["query"] {
                Value::String(q) => q.as_str(),
                other => other["query"].as_str().unwrap_or(""),
            };
            let id = format!(
                "variable:{stem}:{}",
                variable["name"].as_str().unwrap_or("?")
            );
            push(id, query, variable_kind(query));
        }
    }
    out
}

/// The `PromQL` behind a Grafana Prometheus variable query.
fn variable_kind(query: &str) -> Kind {
    let query = query.trim();
    if let Some(inner) = query
        .strip_prefix("query_result(")
        .and_then(|q| q.strip_suffix(')'))
    {
        return variable_kind(inner);
    }
    if let Some(args) = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
    {
        return match args.rsplit_once(',') {
            Some((selector, label)) => Kind::LabelValues {
                selector: Some(selector.trim().to_owned()),
                label: label.trim().to_owned(),
            },
            None => Kind::LabelValues {
                selector: None,
                label: args.trim().to_owned(),
            },
        };
    }
    assert!(
        !query.starts_with("label_names(") && !query.starts_with("metrics("),
        "variable query {query:?}: only label_values(...), query_result(...) and plain PromQL are checked"
    );
    Kind::PromQl
}

fn collect_panels<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
    for panel in panels.as_array().into_iter().flatten() {
        out.push(panel);
        collect_panels(&panel["panels"], out);
    }
}

/// A dashboard's fixed-value variables (custom, constant, textbox, interval) and Grafana's built-in ones.
fn dashboard_variables(dashboard: &Value) -> BTreeMap<String, String> {
    let mut vars: BTreeMap<String, String> = [
        ("__rate_interval", "1m"),
        ("__interval", "15s"),
        ("__interval_ms", "15000"),
        ("__range", "5m"),
        ("__range_s", "300"),
        ("__range_ms", "300000"),
        ("datasource", "prometheus"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = variable["name"].as_str().unwrap_or_default();
        if !matches!(
            variable["type"].as_str(),
            Some("custom" | "constant" | "textbox" | "interval")
        ) {
            continue;
        }
        let current = &variable["current"]["value"];
        let value = current
            .as_str()
            .or_else(|| current[0].as_str())
            .or_else(|| variable["options"][0]["value"].as_str())
            .map(str::to_owned)
            .or_else(|| {
                variable["query"]
                    .as_str()
                    .and_then(|q| q.split(',').next())
                    .map(|v| v.trim().to_owned())
            })
            .unwrap_or_default();
        vars.insert(name.to_owned(), value);
    }
    vars
}

/// Grafana's variable interpolation: `$var`, `${var}`, `${var:format}` and `[[var]]`. Unknown names stay as they
/// are (as in Grafana; `$1` in `label_replace` is not a variable). `:regex` escapes for a `PromQL` regex string.
fn substitute(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['$', '[']) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let (spec, len) = if let Some(inner) = rest.strip_prefix("${") {
            match inner.find('}') {
                Some(end) => (&inner[..end], end + 3),
                None => ("", 0),
            }
        } else if let Some(inner) = rest.strip_prefix("[[") {
            match inner.find("]]") {
                Some(end) => (&inner[..end], end + 4),
                None => ("", 0),
            }
        } else if let Some(inner) = rest.strip_prefix('$') {
            let end = inner
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(inner.len());
            (&inner[..end], end + 1)
        } else {
            ("", 0)
        };
        let (name, format) = spec.split_once(':').unwrap_or((spec, ""));
        match vars.get(name) {
            Some(value) if len > 0 => {
                if format == "regex" {
                    for c in value.chars() {
                        if r"\.+*?()|[]{}^$".contains(c) {
                            out.push_str(r"\\");
                        }
                        out.push(c);
                    }
                } else {
                    out.push_str(value);
                }
                rest = &rest[len..];
            }
            _ => {
                out.push_str(&rest[..1]);
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `tests/promql/no-data.txt`: `ID | reason` per line; `#` comments and blank lines are ignored.
fn no_data_list() -> BTreeMap<String, String> {
    let path = repo_path("tests/promql/no-data.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (id, reason) = line.split_once(" | ").unwrap_or_else(|| {
            panic!(
                "{}:{}: want `ID | reason`, got {line:?}",
                path.display(),
                n + 1
            )
        });
        assert!(
            !reason.trim().is_empty(),
            "{}:{}: give a reason",
            path.display(),
            n + 1
        );
        let previous = out.insert(id.trim().to_owned(), reason.trim().to_owned());
        assert!(
            previous.is_none(),
            "{}:{}: {id} listed twice",
            path.display(),
            n + 1
        );
    }
    out
}

// ---------------------------------------------------------------- rule files

#[derive(Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
struct RuleGroup {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    alert: Option<String>,
    record: Option<String>,
    expr: String,
    #[serde(rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct UnitTestFile {
    rule_files: Vec<String>,
    tests: Vec<UnitTestGroup>,
}

#[derive(Deserialize)]
struct UnitTestGroup {
    #[serde(default)]
    alert_rule_test: Vec<AlertRuleTest>,
}

#[derive(Deserialize)]
struct AlertRuleTest {
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpectedAlert>,
}

#[derive(Deserialize)]
struct ExpectedAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

fn rule_files() -> Vec<PathBuf> {
    let files: Vec<PathBuf> = files_with_extension(&repo_path("alerts"), "yml")
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".rules.yml"))
        .collect();
    assert!(!files.is_empty(), "no alerts/*.rules.yml");
    files
}

fn load_rules(path: &Path) -> RuleFile {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------- conventions, promtool, METRICS.md

/// Mixin conventions, and what the issue asks of every alert: a CamelCase name, a severity, a summary and a
/// description, a `runbook_url` to its section of docs/runbook.md, a reason comment on every `for:` and
/// unit tests that both fire it (per severity) and keep it quiet.
#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one pass over every rule, checking each convention in turn"
)]
fn every_alert_follows_the_conventions_and_has_a_runbook_section_and_unit_tests() {
    let runbook = std::fs::read_to_string(repo_path("docs/runbook.md")).expect("docs/runbook.md");
    let sections: BTreeSet<&str> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(str::trim)
        .collect();
    let runbook_page = matrix_federation_exporter::render::html::runbook_page();
    let tests = unit_tests();
    let mut alerts = BTreeSet::new();
    let mut problems = Vec::new();
    for file in rule_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with("for:") && !line.contains('#') {
                let previous = lines[..n].iter().rev().find(|l| !l.trim().is_empty());
                if !previous.is_some_and(|l| l.trim_start().starts_with('#')) {
                    problems.push(format!(
                        "{}:{}: `for:` without a reason comment",
                        file.display(),
                        n + 1
                    ));
                }
            }
        }
        for group in load_rules(&file).groups {
            assert!(!group.name.is_empty());
            for rule in group.rules {
                let Some(name) = rule.alert else { continue };
                let mut problem = |p: String| problems.push(format!("{name}: {p}"));
                if !(name.starts_with("MatrixFederation")
                    && name.chars().all(|c| c.is_ascii_alphanumeric()))
                {
                    problem("not a CamelCase name starting with MatrixFederation".into());
                }
                let severity = rule.labels.get("severity").map_or("", String::as_str);
                if !SEVERITIES.contains(&severity) {
                    problem(format!(
                        "severity {severity:?} is not one of {SEVERITIES:?}"
                    ));
                }
                if rule.for_.is_none() {
                    problem(
                        "no `for:` (write `for: 0m` with a reason if it must fire at once)".into(),
                    );
                }
                for key in ["summary", "description"] {
                    if rule
                        .annotations
                        .get(key)
                        .is_none_or(|v| !v.contains("$labels"))
                    {
                        problem(format!(
                            "annotation {key} missing or not templated with $labels"
                        ));
                    }
                }
                let url = format!("{RUNBOOK_URL}{}", name.to_lowercase());
                if rule.annotations.get("runbook_url") != Some(&url) {
                    problem(format!(
                        "runbook_url is {:?}, want {url}",
                        rule.annotations.get("runbook_url")
                    ));
                }
                if !sections.contains(name.as_str()) {
                    problem("no `## {name}` section in docs/runbook.md".into());
                }
                // The default runbook_url works: the exporter's /runbook has the anchor.
                if !runbook_page.contains(&format!("id=\"{}\"", name.to_lowercase())) {
                    problem("no anchor for it on the exporter's /runbook page".into());
                }
                let fired = tests.iter().any(|t| {
                    t.alertname == name
                        && t.exp_alerts.iter().any(|a| {
                            a.exp_labels.get("severity").map(String::as_str) == Some(severity)
                                && a.exp_annotations.contains_key("summary")
                                && a.exp_annotations.contains_key("description")
                                && a.exp_annotations.contains_key("runbook_url")
                        })
                });
                if !fired {
                    problem(format!(
                        "no unit test in alerts/tests/ fires it with severity {severity} and exact annotations"
                    ));
                }
                if !tests
                    .iter()
                    .any(|t| t.alertname == name && t.exp_alerts.is_empty())
                {
                    problem(
                        "no unit test in alerts/tests/ where it does not fire (exp_alerts: [])"
                            .into(),
                    );
                }
                alerts.insert(name);
            }
        }
    }
    for section in &sections {
        if section.starts_with("MatrixFederation") && !alerts.contains(*section) {
            problems.push(format!(
                "docs/runbook.md has a section for {section}, which is no alert"
            ));
        }
    }
    for test in &tests {
        if !alerts.contains(&test.alertname) {
            problems.push(format!(
                "alerts/tests/ tests {}, which is no alert",
                test.alertname
            ));
        }
    }
    // The live test expects every alert to fire in the world, unless no-data.txt says why it cannot.
    let live: BTreeSet<&str> = EXPECTED_ALERTS.iter().map(|(a, _, _)| *a).collect();
    let no_data = no_data_list();
    for alert in &alerts {
        let listed = no_data
            .keys()
            .any(|id| id.starts_with(&format!("alert:{alert}:")));
        if !live.contains(alert.as_str()) && !listed {
            problems.push(format!(
                "{alert}: neither in EXPECTED_ALERTS nor in tests/promql/no-data.txt"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(alerts.len() >= 12, "only {alerts:?}");
}

/// The `alert_rule_test`s of every `alerts/tests/*.yml`; each file loads our rules.
fn unit_tests() -> Vec<AlertRuleTest> {
    let mut out = Vec::new();
    let files = files_with_extension(&repo_path("alerts/tests"), "yml");
    assert!(!files.is_empty(), "no alerts/tests/*.yml");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let parsed: UnitTestFile =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            parsed.rule_files.iter().any(|f| f.ends_with(".rules.yml")),
            "{}: loads no rules file",
            file.display()
        );
        out.extend(parsed.tests.into_iter().flat_map(|t| t.alert_rule_test));
    }
    out
}

/// `promtool check rules` and `promtool test rules`, so that `cargo test` alone covers them too (`.ci/run` also
/// runs them first, with their own output).
#[test]
fn promtool_checks_the_rules_and_their_unit_tests_pass() {
    let (_, promtool) = prometheus_binaries();
    let rules: Vec<PathBuf> = rule_files();
    let tests = files_with_extension(&repo_path("alerts/tests"), "yml");
    for (what, files) in [("check", &rules), ("test", &tests)] {
        let output = Command::new(&promtool)
            .args([what, "rules"])
            .args(files.iter())
            .output()
            .expect("run promtool");
        assert!(
            output.status.success(),
            "promtool {what} rules failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Every metric name in the rules and dashboards (anything that looks like `matrix_federation_…`, also in
/// annotation templates and panel text) is a row of METRICS.md's table.
#[test]
fn every_metric_in_rules_and_dashboards_is_documented() {
    let doc = std::fs::read_to_string(repo_path("METRICS.md")).expect("METRICS.md");
    let documented: BTreeSet<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|name| name.starts_with("matrix_federation_"))
        .collect();
    assert!(
        documented.len() > 20,
        "METRICS.md table not found: {documented:?}"
    );
    let mut files = rule_files();
    files.extend(files_with_extension(&repo_path("dashboards"), "json"));
    let mut undocumented = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for name in metric_names(&text) {
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix).filter(|b| documented.contains(b)))
                .unwrap_or(&name);
            seen.insert(base.to_owned());
            if !documented.contains(base) {
                undocumented.insert(format!("{name} ({})", file.display()));
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "not in METRICS.md: {undocumented:#?}"
    );
    assert!(seen.len() > 10, "found too few metric names: {seen:?}");
}

/// Every `matrix_federation_[a-z0-9_]+` in `text` that is not part of a longer identifier or a recording rule name.
fn metric_names(text: &str) -> BTreeSet<String> {
    const PREFIX: &str = "matrix_federation_";
    let mut out = BTreeSet::new();
    for (at, _) in text.match_indices(PREFIX) {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        // A recording rule's name (`level:metric:operations`) is the rules' own, not an exporter metric.
        if text[at + name.len()..].starts_with(':') {
            continue;
        }
        out.insert(name);
    }
    out
}

// ---------------------------------------------------------------- helpers

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Files directly in `dir` whose name ends in `.ext`, sorted.
fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}
