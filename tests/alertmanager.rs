//! The example Alertmanager config (`deploy/alertmanager.yml`): `amtool` checks it, and a real Alertmanager
//! (Debian's `prometheus-alertmanager` package) applies its inhibit rules to the alerts that
//! `alerts/tests/paging.test.yml` expects, so that each root cause pages once: a certificate or TLS fault on one
//! address of two pages, so does a server that no address serves, and a refused address only warns.
//!
//! Hermetic: the Alertmanager listens on 127.0.0.1, with clustering off and the example's receivers stripped of
//! their webhooks. When `amtool` or the Alertmanager is missing, `tests/tools/install-alertmanager.sh` installs
//! them (as `.ci/run` does first); if that fails the tests fail, they never skip.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CONFIG: &str = "deploy/alertmanager.yml";
const PAGING_TESTS: &str = "alerts/tests/paging.test.yml";
/// Per server of `PAGING_TESTS`, the one alert that pages once the inhibitions apply, or `None` when peers
/// route around the fault and nothing pages.
const PAGES: &[(&str, Option<&str>)] = &[
    ("wrongname.test", Some("MatrixFederationCertificateInvalid")),
    ("expired.test", Some("MatrixFederationCertificateExpiring")),
    ("tls.test", Some("MatrixFederationTlsFailing")),
    ("alone.test", Some("MatrixFederationDown")),
    ("gap.test", Some("MatrixFederationDown")),
    ("refused.test", None),
    (
        "renewed.test",
        Some("MatrixFederationCertificateNotReloaded"),
    ),
];
const WAIT: Duration = Duration::from_secs(20);

#[test]
fn alertmanager_example_passes_amtool() {
    let (_, amtool) = alertmanager_binaries();
    let out = Command::new(amtool)
        .arg("check-config")
        .arg(repo_path(CONFIG))
        .output()
        .expect("run amtool");
    assert!(
        out.status.success(),
        "amtool check-config: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn each_root_cause_pages_once_through_the_example_inhibitions() {
    let (binary, amtool) = alertmanager_binaries();
    let moments = expected_alerts();
    let servers: BTreeSet<&str> = moments
        .values()
        .flatten()
        .filter_map(|a| a["server_name"].as_str())
        .collect();
    let listed: BTreeSet<&str> = PAGES.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        servers, listed,
        "every server of {PAGING_TESTS} has its expectation in PAGES"
    );

    let alertmanager = Alertmanager::start(&binary);
    let mut posted = Vec::new();
    for (moment, alerts) in &moments {
        for labels in alerts {
            let mut labels = labels.clone();
            // One instance per moment, so that alerts of different moments never inhibit each other.
            let instance = format!("{}#{moment}", labels["instance"].as_str().unwrap_or(""));
            labels["instance"] = json!(instance);
            posted.push(json!({ "labels": labels, "annotations": {} }));
        }
    }
    alertmanager.post("/api/v2/alerts", &Value::Array(posted.clone()));

    let deadline = Instant::now() + WAIT;
    loop {
        let alerts = alertmanager.get("/api/v2/alerts");
        let active: Vec<&Value> = alerts
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["status"]["state"] == "active")
            .map(|a| &a["labels"])
            .collect();
        let total = alerts.as_array().map_or(0, Vec::len);
        let problems = check_pages(&moments, &active);
        if total == posted.len() && problems.is_empty() {
            // Every alert still active reaches the receiver its severity promises.
            for labels in &active {
                check_route(&amtool, labels);
            }
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waited {WAIT:?} for one page per root cause; last: {total} of {} alerts in; {}\n{}",
            posted.len(),
            problems.join("; "),
            alertmanager.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What is wrong with the active (not inhibited) alerts, per moment and server, against [`PAGES`].
fn check_pages(moments: &BTreeMap<String, Vec<Value>>, active: &[&Value]) -> Vec<String> {
    let mut problems = Vec::new();
    for (moment, alerts) in moments {
        let here: Vec<&&Value> = active
            .iter()
            .filter(|a| {
                a["instance"]
                    .as_str()
                    .is_some_and(|i| i.ends_with(&format!("#{moment}")))
            })
            .collect();
        let servers: BTreeSet<&str> = alerts
            .iter()
            .filter_map(|a| a["server_name"].as_str())
            .collect();
        for server in servers {
            let want = PAGES
                .iter()
                .find(|(s, _)| *s == server)
                .and_then(|(_, a)| *a);
            let of_server: Vec<&&&Value> =
                here.iter().filter(|a| a["server_name"] == server).collect();
            let pages: Vec<&str> = of_server
                .iter()
                .filter(|a| a["severity"] == "critical")
                .filter_map(|a| a["alertname"].as_str())
                .collect();
            match want {
                Some(alert) if pages != [alert] => {
                    problems.push(format!(
                        "{moment} {server}: pages {pages:?}, want [{alert}]"
                    ));
                }
                None if !pages.is_empty() => {
                    problems.push(format!("{moment} {server}: pages {pages:?}, want none"));
                }
                None if !of_server
                    .iter()
                    .any(|a| a["alertname"] == "MatrixFederationDegraded") =>
                {
                    problems.push(format!(
                        "{moment} {server}: no MatrixFederationDegraded warning left"
                    ));
                }
                _ => {}
            }
        }
    }
    problems
}

/// `amtool config routes test`: a critical alert reaches the pager, a warning the ticket receiver.
fn check_route(amtool: &Path, labels: &Value) {
    let want = match labels["severity"].as_str() {
        Some("critical") => "matrix-federation-critical",
        Some("warning") => "matrix-federation",
        _ => "blackhole",
    };
    let args: Vec<String> = labels
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    let out = Command::new(amtool)
        .args(["config", "routes", "test", "--verify.receivers", want])
        .arg(format!("--config.file={}", repo_path(CONFIG).display()))
        .args(&args)
        .output()
        .expect("run amtool config routes test");
    assert!(
        out.status.success(),
        "{labels}: not routed to {want}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The labels of every alert `PAGING_TESTS` expects, grouped by moment (`<test group>@<eval_time>`), each with
/// its `alertname`.
fn expected_alerts() -> BTreeMap<String, Vec<Value>> {
    let text = std::fs::read_to_string(repo_path(PAGING_TESTS)).expect(PAGING_TESTS);
    let file: Value = serde_saphyr::from_str(&text).expect(PAGING_TESTS);
    let mut moments: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (group, test) in file["tests"].as_array().expect("tests").iter().enumerate() {
        for case in test["alert_rule_test"].as_array().into_iter().flatten() {
            let moment = format!("{group}@{}", case["eval_time"].as_str().expect("eval_time"));
            let alerts = moments.entry(moment).or_default();
            for alert in case["exp_alerts"].as_array().into_iter().flatten() {
                let mut labels = alert["exp_labels"].clone();
                labels["alertname"] = case["alertname"].clone();
                alerts.push(labels);
            }
        }
    }
    moments
}

// ---------------------------------------------------------------- Alertmanager

/// An Alertmanager child process with its own config and storage in a temporary directory; killed and removed on
/// drop (also when the test panics).
struct Alertmanager {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Alertmanager {
    /// Starts the example config, its webhooks removed (no notification leaves the machine), on 127.0.0.1.
    fn start(binary: &Path) -> Self {
        let mut config: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(repo_path(CONFIG)).expect(CONFIG))
                .expect(CONFIG);
        for receiver in config["receivers"].as_array_mut().expect("receivers") {
            receiver
                .as_object_mut()
                .expect("receiver")
                .retain(|k, _| k == "name");
        }
        let dir = std::env::temp_dir().join(format!(
            "mfe-alertmanager-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).expect("create the Alertmanager directory");
        // JSON is YAML: the config as the Alertmanager reads it.
        std::fs::write(dir.join("alertmanager.yml"), config.to_string()).expect("write the config");
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
            l.local_addr().expect("free port")
        };
        let log = std::fs::File::create(dir.join("alertmanager.log")).expect("create the log");
        let child = Command::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.join("alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            // No cluster: it would listen on 0.0.0.0:9094 and gossip.
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let mut alertmanager = Self { child, dir, addr };
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok((200, _)) = http(addr, "GET", "/-/ready", "") {
                return alertmanager;
            }
            if let Ok(Some(status)) = alertmanager.child.try_wait() {
                panic!(
                    "Alertmanager exited ({status}):\n{}",
                    alertmanager.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "Alertmanager not ready within {WAIT:?}\n{}",
                alertmanager.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn post(&self, path: &str, body: &Value) {
        let (status, answer) = http(self.addr, "POST", path, &body.to_string()).expect("POST");
        assert_eq!(status, 200, "POST {path}: {answer}\n{}", self.log_tail());
    }

    fn get(&self, path: &str) -> Value {
        let (status, body) = http(self.addr, "GET", path, "").expect("GET");
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("alertmanager.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "Alertmanager log (tail):\n{}",
            lines[lines.len().saturating_sub(20)..].join("\n")
        )
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A plain HTTP/1.0 request (the server closes the connection after the whole body).
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut raw = String::new();
    stream
        .read_to_string(&mut raw)
        .map_err(|e| format!("read: {e}"))?;
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line: {raw}"))?;
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    Ok((status, body))
}

/// The Alertmanager (Debian names it `prometheus-alertmanager`) and `amtool` from PATH, installed by
/// `tests/tools/install-alertmanager.sh` when missing: never skipped.
fn alertmanager_binaries() -> (PathBuf, PathBuf) {
    let find = || {
        let server = on_path("prometheus-alertmanager").or_else(|| on_path("alertmanager"))?;
        Some((server, on_path("amtool")?))
    };
    if let Some(found) = find() {
        return found;
    }
    let script = repo_path("tests/tools/install-alertmanager.sh");
    eprintln!(
        "alertmanager/amtool not on PATH: running {}",
        script.display()
    );
    let status = Command::new("bash").arg(&script).status();
    find().unwrap_or_else(|| {
        panic!(
            "the Alertmanager and amtool are needed and not on PATH; {} ran with {status:?}. Install Debian's \
             prometheus-alertmanager package.",
            script.display()
        )
    })
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}
