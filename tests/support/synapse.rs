//! A real Synapse for interop tests: its python (built by `tests/synapse/setup.sh`), its config, and a running
//! process that is killed on drop. Hermetic: it listens on loopback only, runs under `tests/synapse/no_egress.py`,
//! and its config turns every outbound feature off unless a test adds config that turns one on.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use rustls::pki_types::{CertificateDer, ServerName as TlsName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::{Leaf, TestCa};

/// Synapse's `server_name`, and the name its certificate is for.
pub const SERVER_NAME: &str = "synapse.test";
/// The version part of the signing key id, and the key id Synapse serves the key under.
pub const KEY_VERSION: &str = "mfe_test";
pub const KEY_ID: &str = "ed25519:mfe_test";
/// How long Synapse may take to start serving (it usually takes 2 to 4 s).
pub const START_DEADLINE: Duration = Duration::from_secs(60);
/// Bound of one readiness attempt (connect, TLS handshake, `GET`).
pub const POLL_TIMEOUT: Duration = Duration::from_secs(2);
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// A file in the Synapse directory whose text is appended to `homeserver.yaml` (see `Synapse::try_start`).
pub const EXTRA_CONFIG: &str = "extra.yaml";
/// Starts tried when the chosen port turned out to be taken between choosing it and Synapse binding it.
pub const START_ATTEMPTS: usize = 3;

// ---------------------------------------------------------------- the Synapse python

/// `$MFE_SYNAPSE_PYTHON`, or the venv python that `tests/synapse/setup.sh` builds (or finds) and prints.
pub fn synapse_python() -> PathBuf {
    if let Some(python) = std::env::var_os("MFE_SYNAPSE_PYTHON").filter(|p| !p.is_empty()) {
        let python = PathBuf::from(python);
        assert!(
            python.is_file(),
            "MFE_SYNAPSE_PYTHON={} is not a file: run tests/synapse/setup.sh and point it at the python it prints",
            python.display()
        );
        return python;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(root.join("tests/synapse/setup.sh"))
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .expect("run bash tests/synapse/setup.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tests/synapse/setup.sh could not provide Synapse ({}), so the Synapse interop test cannot run. \
         It needs PyPI the first time (or set MFE_SYNAPSE_PYTHON to a python with matrix-synapse installed). \
         Its output:\n{stderr}",
        out.status
    );
    eprint!("{stderr}");
    eprintln!(
        "tests/synapse/setup.sh took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let python = PathBuf::from(
        stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map_or_else(
                || panic!("tests/synapse/setup.sh printed no python path:\n{stderr}"),
                str::trim,
            ),
    );
    assert!(
        python.is_file(),
        "setup.sh printed {}, not a file",
        python.display()
    );
    python
}

/// The `matrix-synapse==X` pin of `tests/synapse/requirements.txt`.
pub fn pinned_version() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/synapse/requirements.txt");
    let text = std::fs::read_to_string(&path).expect("read tests/synapse/requirements.txt");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("matrix-synapse=="))
        .map(|v| v.split_whitespace().next().unwrap_or_default().to_owned())
        .filter(|v| !v.is_empty())
        .expect("requirements.txt pins matrix-synapse==VERSION")
}

// ---------------------------------------------------------------- the homeserver

/// Synapse's ed25519 signing key, as the 32-byte seed its key file holds.
pub struct SigningSeed(pub [u8; 32]);

impl SigningSeed {
    pub fn generate() -> Self {
        let mut seed = [0; 32];
        SystemRandom::new().fill(&mut seed).expect("random seed");
        Self(seed)
    }

    /// Synapse's `signing_key_path` format: `<algorithm> <version> <unpadded base64 seed>`.
    pub fn key_file(&self) -> String {
        format!("ed25519 {KEY_VERSION} {}\n", STANDARD_NO_PAD.encode(self.0))
    }

    pub fn public_base64(&self) -> String {
        let pair = Ed25519KeyPair::from_seed_unchecked(&self.0).expect("a 32-byte seed");
        STANDARD_NO_PAD.encode(pair.public_key().as_ref())
    }
}

/// A running Synapse; killed (and reaped) on drop, also when the test panics.
pub struct Synapse {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    pub polls: usize,
}

impl Drop for Synapse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub enum StartError {
    /// Another process took the port between choosing it and Synapse binding it.
    PortTaken(String),
    Other(String),
}

impl Synapse {
    pub async fn start(
        python: &Path,
        dir: &Path,
        leaf: &Leaf,
        key: &SigningSeed,
        ca: &TestCa,
    ) -> Self {
        Self::start_edited(python, dir, leaf, key, ca, &|config| config).await
    }

    /// [`Synapse::start`] with `homeserver.yaml` (as [`homeserver_config`] writes it for the chosen port)
    /// passed through `edit` first: a test that lets Synapse federate turns one outbound feature on there.
    pub async fn start_edited(
        python: &Path,
        dir: &Path,
        leaf: &Leaf,
        key: &SigningSeed,
        ca: &TestCa,
        edit: &dyn Fn(String) -> String,
    ) -> Self {
        std::fs::write(dir.join("tls.crt"), pem_chain(&leaf.chain)).expect("write tls.crt");
        std::fs::write(
            dir.join("tls.key"),
            pem("PRIVATE KEY", leaf.key.secret_der()),
        )
        .expect("write tls.key");
        std::fs::write(dir.join("signing.key"), key.key_file()).expect("write signing.key");
        std::fs::write(dir.join("log.yaml"), log_config(dir)).expect("write log.yaml");
        let mut last = String::new();
        for attempt in 1..=START_ATTEMPTS {
            match Self::try_start_edited(python, dir, ca, edit).await {
                Ok(synapse) => return synapse,
                Err(StartError::PortTaken(logs)) => {
                    eprintln!("attempt {attempt}: the port was taken, trying another");
                    last = logs;
                }
                Err(StartError::Other(why)) => panic!("Synapse did not start: {why}"),
            }
        }
        panic!("Synapse found its port taken {START_ATTEMPTS} times:\n{last}");
    }

    pub async fn try_start(python: &Path, dir: &Path, ca: &TestCa) -> Result<Self, StartError> {
        Self::try_start_edited(python, dir, ca, &|config| config).await
    }

    pub async fn try_start_edited(
        python: &Path,
        dir: &Path,
        ca: &TestCa,
        edit: &dyn Fn(String) -> String,
    ) -> Result<Self, StartError> {
        let port = free_port();
        // A test may add config in `extra.yaml` (`{PORT}` stands for the listener's port): YAML's last duplicate
        // key wins in Synapse's loader, so it may also replace keys of the base config.
        let extra = std::fs::read_to_string(dir.join(EXTRA_CONFIG))
            .unwrap_or_default()
            .replace("{PORT}", &port.to_string());
        std::fs::write(
            dir.join("homeserver.yaml"),
            edit(homeserver_config(dir, port) + &extra),
        )
        .expect("write homeserver.yaml");
        let open = |name: &str| {
            std::fs::File::create(dir.join(name)).unwrap_or_else(|e| panic!("create {name}: {e}"))
        };
        let guard = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/synapse/no_egress.py");
        let child = Command::new(python)
            .arg(guard)
            .arg(dir.join("egress.log"))
            .arg("--")
            .arg("--config-path")
            .arg(dir.join("homeserver.yaml"))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(open("stdout.log"))
            .stderr(open("stderr.log"))
            // Synapse appends the branch and commit of any git checkout around its install to its version
            // string (and this repo contains the default venv): keep git from finding one.
            .env("GIT_DIR", dir.join("no-git"))
            .env("GIT_CEILING_DIRECTORIES", dir)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env_remove("SYNAPSE_VERSION_STRING")
            .envs(
                [
                    "http_proxy",
                    "https_proxy",
                    "HTTP_PROXY",
                    "HTTPS_PROXY",
                    "no_proxy",
                    "NO_PROXY",
                ]
                .map(|v| (v, "")),
            )
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", python.display()));
        let mut synapse = Self {
            child,
            port,
            dir: dir.to_owned(),
            polls: 0,
        };
        synapse.wait_ready(ca).await?;
        Ok(synapse)
    }

    /// Polls `GET /_matrix/federation/v1/version` over TLS (bounded) until Synapse answers 200.
    pub async fn wait_ready(&mut self, ca: &TestCa) -> Result<(), StartError> {
        let tls = tls_connector(ca);
        let deadline = Instant::now() + START_DEADLINE;
        let mut last_error = String::from("no attempt made");
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("poll the Synapse process") {
                let logs = self.logs();
                return Err(
                    if logs.contains("Address already in use") || logs.contains("CannotListenError")
                    {
                        StartError::PortTaken(logs)
                    } else {
                        StartError::Other(format!("it exited with {status}:\n{logs}"))
                    },
                );
            }
            self.polls += 1;
            match tokio::time::timeout(POLL_TIMEOUT, version_over_tls(&tls, self.port)).await {
                Ok(Ok(head)) if head.starts_with("HTTP/1.1 200") => return Ok(()),
                Ok(Ok(head)) => last_error = format!("answered {head:?}"),
                Ok(Err(e)) => last_error = e.to_string(),
                Err(_) => last_error = format!("no answer within {POLL_TIMEOUT:?}"),
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        Err(StartError::Other(format!(
            "not serving on 127.0.0.1:{} after {START_DEADLINE:?} (last poll: {last_error}):\n{}",
            self.port,
            self.logs()
        )))
    }

    /// The ends of Synapse's log, stdout and stderr, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["homeserver.log", "stdout.log", "stderr.log", "egress.log"] {
            let text = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            let _ = writeln!(out, "--- {name} (last {} lines) ---", tail.len());
            for line in tail {
                let _ = writeln!(out, "{line}");
            }
        }
        out
    }

    pub fn assert_alive_and_no_egress(&mut self) {
        let egress = std::fs::read_to_string(self.dir.join("egress.log")).unwrap_or_default();
        assert!(
            egress.trim().is_empty(),
            "Synapse tried to reach beyond loopback (refused):\n{egress}"
        );
        if let Some(status) = self.child.try_wait().expect("poll the Synapse process") {
            panic!(
                "Synapse exited ({status}) during the test:\n{}",
                self.logs()
            );
        }
    }
}

/// One `GET /_matrix/federation/v1/version` over a fresh TLS connection; returns the status line.
pub async fn version_over_tls(
    tls: &tokio_rustls::TlsConnector,
    port: u16,
) -> std::io::Result<String> {
    let tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
    let name = TlsName::try_from(SERVER_NAME).expect("a DNS name");
    let mut stream = tls.connect(name, tcp).await?;
    stream
        .write_all(
            format!(
                "GET /_matrix/federation/v1/version HTTP/1.1\r\nHost: {SERVER_NAME}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

pub fn tls_connector(ca: &TestCa) -> tokio_rustls::TlsConnector {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default versions")
    .with_root_certificates(ca.root_store())
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A loopback port nothing listens on right now (Synapse binds it moments later; see `START_ATTEMPTS`).
pub fn free_port() -> u16 {
    let listener =
        std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// `homeserver.yaml`: one TLS federation listener on loopback, an `SQLite` database, and every outbound feature off.
pub fn homeserver_config(dir: &Path, port: u16) -> String {
    let p = |name: &str| yaml_string(&dir.join(name));
    format!(
        r#"# Written by tests/synapse.rs: a federation-only Synapse on loopback that makes no outbound connections.
server_name: "{SERVER_NAME}"
pid_file: {pid}
signing_key_path: {signing_key}
log_config: {log_config}
media_store_path: {media}
database:
  name: sqlite3
  args:
    database: {db}
tls_certificate_path: {cert}
tls_private_key_path: {key}
listeners:
  - port: {port}
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: true
    x_forwarded: false
    resources:
      - names: [federation, client]     # client: /_matrix/client/versions and /.well-known/matrix/client
        compress: false
public_baseurl: "https://{SERVER_NAME}:{port}/"   # the client well-known's m.homeserver.base_url
serve_client_wellknown: true
macaroon_secret_key: "mfe-synapse-interop-test-not-a-secret"

# No outbound traffic of any kind:
report_stats: false                      # no phone-home usage statistics
enable_metrics: false
trusted_key_servers: []                  # never fetch keys from matrix.org (or any notary)
suppress_key_server_warning: true
federation_domain_whitelist: []          # federate with nobody (inbound /version and /key need no auth)
federation_sender_instances: []          # no process sends federation transactions
pusher_instances: []                     # no process sends push notifications
push:
  enabled: false
url_preview_enabled: false               # no URL previews (oEmbed included)
enable_media_repo: false                 # no remote media fetching
presence:
  enabled: false                         # no presence EDUs
ip_range_blacklist: ["0.0.0.0/0", "::/0"] # and, should anything try, its HTTP clients may reach no address
"#,
        pid = p("homeserver.pid"),
        signing_key = p("signing.key"),
        log_config = p("log.yaml"),
        media = p("media_store"),
        db = p("homeserver.db"),
        cert = p("tls.crt"),
        key = p("tls.key"),
    )
}

/// Python logging config: WARNING and above to `homeserver.log`.
pub fn log_config(dir: &Path) -> String {
    format!(
        r"version: 1
formatters:
  plain:
    format: '%(asctime)s %(name)s %(levelname)s %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: plain
    filename: {}
    encoding: utf8
root:
  level: WARNING
  handlers: [file]
disable_existing_loggers: false
",
        yaml_string(&dir.join("homeserver.log"))
    )
}

/// A path as a YAML double-quoted scalar (JSON string syntax is valid YAML).
pub fn yaml_string(path: &Path) -> String {
    serde_json::to_string(path.to_str().expect("a UTF-8 temp path")).expect("a JSON string")
}

pub fn pem_chain(chain: &[CertificateDer<'_>]) -> String {
    chain.iter().map(|c| pem("CERTIFICATE", c)).collect()
}

pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    let _ = writeln!(out, "-----END {label}-----");
    out
}

/// A fresh directory under the system temp dir; removed on drop unless the test is failing (then kept, and
/// its path printed, for the logs).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!("mfe-synapse-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create the temp dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} (Synapse config and logs)", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
