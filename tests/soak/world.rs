//! The soak: a flapping world probed round after round by the whole reloadable exporter, with the checks that
//! must hold throughout. Shared by `tests/soak.rs` (a CI-sized run) and `examples/soak.rs` (thousands of
//! rounds); both include `tests/support` as `support` at their crate root.
//!
//! The world: `slots` fake homeservers on loopback (`127.0.0.2`, `127.0.0.3`, ...) on one port, a fake DNS
//! zone, and a test CA whose root the config trusts. Even slots are named with the port (`s0.test:P`), odd
//! slots without (`s1.test`: the well-known lookup is refused, then SRV leads to `s1.test:P`). Each round
//! flips one or two things at random (seeded, so a run can be repeated):
//! - a server appears in, or vanishes from, the config file or the target file;
//! - its certificate changes (a new key from the CA, an expired one, a self-signed one), with a new signing
//!   key for its key document;
//! - it starts timing out (a TLS handshake one byte per 100 ms), answers garbage, or goes down (refused);
//! - its name vanishes from DNS (NXDOMAIN) or comes back.
//!
//! Then the exporter reloads (`Exporter::reload`, while the target-file watcher also runs), `/metrics` is
//! scraped at once and again after the round, and neither scrape may show a server that is not configured.
//! RSS (`VmRSS` of `/proc/self/status`) and open file descriptors (`/proc/self/fd`) of the whole process
//! (exporter and world) are sampled as it goes. At the end every server is removed, and the exporter must
//! drop every series and end every probe (`probes_in_flight` back to 0).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use matrix_federation_exporter::config::{Config, Source};
use matrix_federation_exporter::probe::env::{Ports, ProbeEnv};
use matrix_federation_exporter::serve::daemon::{self, Exporter};

use crate::support::evil::{Evil, EvilServer};
use crate::support::{
    Behaviour, FakeDns, FakeServer, PortAnchor, TestCa, Validity, Zone, matrix_routes, self_signed,
};

/// How long and how hard to soak.
#[derive(Clone, Debug)]
pub struct Options {
    pub rounds: usize,
    /// Fake homeservers (at most 200).
    pub slots: usize,
    pub seed: u64,
    /// `probe.interval`; every probe timeout is three quarters of it.
    pub interval: Duration,
    /// How long each round lets the probes run after its reload.
    pub round: Duration,
    /// RSS and file descriptors are sampled every this many rounds (and at the start and the end).
    pub sample_every: usize,
    /// Prints each sample as it is taken.
    pub progress: bool,
}

/// One measurement of the whole process.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub round: usize,
    pub rss_kib: u64,
    pub fds: usize,
    /// Servers configured at that moment.
    pub configured: usize,
    /// `probes_total`, success and failure together.
    pub probes: u64,
}

/// What a soak did and measured.
#[derive(Debug)]
pub struct Summary {
    pub samples: Vec<Sample>,
    /// After the warm-up (the first tenth of the rounds, at least one sample in).
    pub warm: Sample,
    /// After every server was removed at the end and every probe had ended.
    pub last: Sample,
    pub reloads: usize,
    pub scrapes: usize,
    /// How many times each kind of flip happened.
    pub flips: BTreeMap<&'static str, usize>,
    pub probes_success: u64,
    pub probes_failure: u64,
    pub elapsed: Duration,
}

impl Summary {
    /// The samples as a Markdown table.
    #[must_use]
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| round | RSS (KiB) | open fds | servers configured | probes so far |\n|---:|---:|---:|---:|---:|\n",
        );
        for s in &self.samples {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                s.round, s.rss_kib, s.fds, s.configured, s.probes
            );
        }
        out
    }
}

/// Where a slot's server name is listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Listed {
    No,
    ConfigFile,
    TargetFile,
}

/// What a slot's address answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Healthy,
    Expired,
    SelfSigned,
    /// The TLS handshake, one byte per 100 ms: every probe times out.
    Slow,
    /// Plain text instead of TLS.
    Garbage,
    /// Nothing listens: refused.
    Down,
}

/// The running server of a slot: held only to keep it running (dropping it stops it).
#[allow(dead_code)]
enum Running {
    Fake(FakeServer),
    Evil(EvilServer),
    Nothing,
}

struct Slot {
    /// `sN.test`.
    host: String,
    /// The configured server name: `sN.test:P` (even N) or `sN.test` (odd N, found by SRV).
    name: String,
    ip: Ipv4Addr,
    srv: bool,
    listed: Listed,
    in_dns: bool,
    state: State,
    running: Running,
}

/// The world and the exporter that probes it.
struct World {
    dir: PathBuf,
    ca: TestCa,
    dns: FakeDns,
    port: u16,
    slots: Vec<Slot>,
    rng: u64,
    flips: BTreeMap<&'static str, usize>,
    fed_anchor: PortAnchor,
    wk_anchor: PortAnchor,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the soak; panics when a check fails (a removed server in `/metrics`, a failed reload, a probe that
/// never ends).
pub async fn run(options: &Options) -> Summary {
    assert!((1..=200).contains(&options.slots), "1 to 200 slots");
    let start = Instant::now();
    let mut world = World::start(options).await;
    world.write_files(options);
    let exporter = world.start_exporter();
    let watcher = exporter.watch_target_files();
    let mut ready = exporter.ready.clone();
    tokio::time::timeout(Duration::from_secs(60), ready.wait_for(|r| *r))
        .await
        .expect("the first round of probes ends")
        .expect("the exporter is running");

    let mut samples = vec![world.sample(0, &exporter).await];
    let warm_round = (options.rounds / 10).max(1);
    let mut warm = None;
    let (mut reloads, mut scrapes) = (0, 0);
    for round in 1..=options.rounds {
        for _ in 0..=world.random(2) {
            world.flip().await;
        }
        world.write_files(options);
        exporter
            .reload()
            .await
            .unwrap_or_else(|e| panic!("round {round}: reload failed: {e:#}"));
        reloads += 1;
        world.check_metrics(&exporter, round).await;
        tokio::time::sleep(options.round).await;
        world.check_metrics(&exporter, round).await;
        scrapes += 2;
        if round % options.sample_every == 0 || round == warm_round {
            let sample = world.sample(round, &exporter).await;
            if options.progress {
                eprintln!(
                    "round {round}: RSS {} KiB, {} fds, {} servers, {} probes",
                    sample.rss_kib, sample.fds, sample.configured, sample.probes
                );
            }
            if round == warm_round {
                warm = Some(sample);
            }
            samples.push(sample);
        }
    }

    // Everything goes: no series, and every probe ends.
    for slot in &mut world.slots {
        slot.listed = Listed::No;
    }
    world.write_files(options);
    exporter.reload().await.expect("the last reload");
    reloads += 1;
    world.check_metrics(&exporter, options.rounds + 1).await;
    let settled = async {
        loop {
            let text = scrape(&exporter).await;
            if counter(&text, "matrix_federation_exporter_probes_in_flight ") == Some(0) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let text = tokio::time::timeout(Duration::from_secs(30), settled)
        .await
        .expect("every probe of a removed server ends");
    assert!(
        !text.contains("server_name=\""),
        "no server is configured any more:\n{text}"
    );
    watcher.abort();
    let last = world.sample(options.rounds + 1, &exporter).await;
    samples.push(last);
    let probes_success = counter(
        &text,
        "matrix_federation_exporter_probes_total{result=\"success\"} ",
    )
    .unwrap_or(0);
    let probes_failure = counter(
        &text,
        "matrix_federation_exporter_probes_total{result=\"failure\"} ",
    )
    .unwrap_or(0);
    Summary {
        warm: warm.unwrap_or(samples[0]),
        last,
        samples,
        reloads,
        scrapes: scrapes + 1,
        flips: world.flips.clone(),
        probes_success,
        probes_failure,
        elapsed: start.elapsed(),
    }
}

impl World {
    async fn start(options: &Options) -> World {
        let mut fed = PortAnchor::new();
        let mut wk = PortAnchor::new();
        // Only A records are served, so nothing connects to [::1]; release it (the anchor keeps 127.0.0.1).
        drop(fed.take_v6());
        drop(wk.take_v6());
        let dir =
            std::env::temp_dir().join(format!("mfe-soak-{}-{}", std::process::id(), options.seed));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("targets")).expect("create the soak directory");
        let ca = TestCa::new("soak");
        ca.write_root_pem(&dir);
        let port = fed.port;
        let slots = (0..options.slots)
            .map(|i| {
                let host = format!("s{i}.test");
                let srv = i % 2 == 1;
                Slot {
                    name: if srv {
                        host.clone()
                    } else {
                        format!("{host}:{port}")
                    },
                    host,
                    ip: Ipv4Addr::new(127, 0, 0, 2 + u8::try_from(i).expect("at most 200 slots")),
                    srv,
                    listed: if i % 2 == 0 {
                        Listed::ConfigFile
                    } else {
                        Listed::TargetFile
                    },
                    in_dns: true,
                    state: State::Down,
                    running: Running::Nothing,
                }
            })
            .collect();
        let dns = FakeDns::start(Zone::new()).await;
        let mut world = World {
            dir,
            ca,
            dns,
            port,
            slots,
            rng: options.seed | 1,
            flips: BTreeMap::new(),
            fed_anchor: fed,
            wk_anchor: wk,
        };
        for i in 0..world.slots.len() {
            world.serve(i, State::Healthy).await;
        }
        world.dns.set_zone(world.zone());
        world
    }

    fn start_exporter(&self) -> Exporter {
        let source = Source {
            file: Some(self.dir.join("config.yml")),
            ..Source::default()
        };
        let ports = Ports {
            well_known: self.wk_anchor.port,
            federation: self.fed_anchor.port,
        };
        // The production environment from the config (resolver, trust roots, timeouts, checks), with the spec
        // ports remapped to the world's.
        let make_env = Box::new(move |c: &Config| {
            let mut env = ProbeEnv::from_config(c)?;
            env.ports = ports;
            Ok(env)
        });
        daemon::start_reloadable(source, make_env).expect("the soak config loads")
    }

    /// xorshift64: a number below `n`.
    fn random(&mut self, n: usize) -> usize {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        usize::try_from(self.rng % n as u64).expect("below n")
    }

    /// One random change to the world (files and DNS are written by the caller).
    async fn flip(&mut self) {
        let i = self.random(self.slots.len());
        let roll = self.random(100);
        let kind = if roll < 40 {
            let slot = &mut self.slots[i];
            slot.listed = match slot.listed {
                Listed::ConfigFile | Listed::TargetFile => Listed::No,
                Listed::No if roll.is_multiple_of(2) => Listed::ConfigFile,
                Listed::No => Listed::TargetFile,
            };
            match slot.listed {
                Listed::No => "vanish",
                Listed::ConfigFile => "appear in the config file",
                Listed::TargetFile => "appear in the target file",
            }
        } else if roll < 85 {
            let state = [
                State::Healthy,
                State::Healthy,
                State::Healthy,
                State::Expired,
                State::SelfSigned,
                State::Slow,
                State::Garbage,
                State::Down,
            ][self.random(8)];
            self.serve(i, state).await;
            match state {
                State::Healthy => "new certificate and key",
                State::Expired => "expired certificate",
                State::SelfSigned => "self-signed certificate",
                State::Slow => "time out",
                State::Garbage => "garbage instead of TLS",
                State::Down => "down",
            }
        } else {
            self.slots[i].in_dns = !self.slots[i].in_dns;
            self.dns.set_zone(self.zone());
            if self.slots[i].in_dns {
                "back in DNS"
            } else {
                "gone from DNS"
            }
        };
        *self.flips.entry(kind).or_default() += 1;
    }

    /// Replaces slot `i`'s server with one in `state`.
    async fn serve(&mut self, i: usize, state: State) {
        let slot = &mut self.slots[i];
        slot.running = Running::Nothing;
        slot.state = state;
        if state == State::Down {
            return;
        }
        let addr = SocketAddr::new(slot.ip.into(), self.port);
        let listener = rebind(addr).await;
        let names = [slot.host.as_str()];
        let healthy = |leaf| Behaviour::Https {
            leaf,
            routes: matrix_routes(&slot.name),
        };
        slot.running = match state {
            State::Healthy => Running::Fake(
                FakeServer::start(listener, healthy(self.ca.leaf(&names, Validity::Valid))).await,
            ),
            State::Expired => Running::Fake(
                FakeServer::start(listener, healthy(self.ca.leaf(&names, Validity::Expired))).await,
            ),
            State::SelfSigned => Running::Fake(
                FakeServer::start(listener, healthy(self_signed(&names, Validity::Valid))).await,
            ),
            State::Slow => Running::Evil(
                EvilServer::start(
                    listener,
                    Evil::SlowTls {
                        leaf: self.ca.leaf(&names, Validity::Valid),
                        every: Duration::from_millis(100),
                    },
                )
                .await,
            ),
            State::Garbage => Running::Fake(FakeServer::start(listener, Behaviour::Garbage).await),
            State::Down => unreachable!("handled above"),
        };
    }

    fn zone(&self) -> Zone {
        let mut zone = Zone::new();
        for slot in self.slots.iter().filter(|s| s.in_dns) {
            zone = zone.a(&slot.host, slot.ip);
            if slot.srv {
                zone = zone.srv(
                    &format!("_matrix-fed._tcp.{}", slot.host),
                    10,
                    0,
                    self.port,
                    &slot.host,
                );
            }
        }
        zone
    }

    fn configured(&self) -> BTreeSet<&str> {
        self.slots
            .iter()
            .filter(|s| s.listed != Listed::No)
            .map(|s| s.name.as_str())
            .collect()
    }

    /// Writes the config file and the target file (each replaced whole, so a reload never reads half a file).
    fn write_files(&self, options: &Options) {
        let quoted = |listed: Listed| {
            self.slots
                .iter()
                .filter(|s| s.listed == listed)
                .map(|s| format!("\"{}\"", s.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        let timeout = ms(options.interval * 3 / 4);
        let config = format!(
            "servers: [{servers}]\n\
             target_files: [\"targets/*.json\"]\n\
             probe:\n  interval: {interval}\n  jitter: {jitter}\n  concurrency: {concurrency}\n\
             \x20 allow_private_addresses: true\n\
             \x20 timeouts: {{dns: {timeout}, connect: {timeout}, tls_handshake: {timeout}, \
             well_known: {timeout}, http: {timeout}}}\n\
             dns:\n  nameservers: [\"{dns}\"]\n\
             tls:\n  trust_store: webpki\n  ca_files: [\"{root}\"]\n",
            servers = quoted(Listed::ConfigFile),
            interval = ms(options.interval),
            jitter = ms(options.interval / 10),
            concurrency = self.slots.len(),
            dns = self.dns.addr,
            root = self.dir.join("soak-root.pem").display(),
        );
        let targets = format!(
            "[{{\"targets\": [{}], \"labels\": {{\"source\": \"file\"}}}}]\n",
            quoted(Listed::TargetFile)
        );
        replace(&self.dir.join("config.yml"), &config);
        replace(&self.dir.join("targets").join("flap.json"), &targets);
    }

    /// `/metrics` shows only configured servers.
    async fn check_metrics(&self, exporter: &Exporter, round: usize) {
        let text = scrape(exporter).await;
        let configured = self.configured();
        for name in server_names(&text) {
            assert!(
                configured.contains(name),
                "round {round}: /metrics shows {name}, which is not configured ({configured:?})"
            );
        }
    }

    async fn sample(&self, round: usize, exporter: &Exporter) -> Sample {
        let text = scrape(exporter).await;
        let probes = ["success", "failure"]
            .iter()
            .filter_map(|r| {
                counter(
                    &text,
                    &format!("matrix_federation_exporter_probes_total{{result=\"{r}\"}} "),
                )
            })
            .sum();
        Sample {
            round,
            rss_kib: rss_kib(),
            fds: open_fds(),
            configured: self.configured().len(),
            probes,
        }
    }
}

/// Binds `addr` again once the server that had it is gone (its task ends soon after it is dropped).
async fn rebind(addr: SocketAddr) -> std::net::TcpListener {
    for _ in 0..1000 {
        match std::net::TcpListener::bind(addr) {
            Ok(listener) => return listener,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => panic!("bind {addr}: {e}"),
        }
    }
    panic!("{addr} stayed in use");
}

/// Writes `path` through a temporary file and a rename.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write a soak file");
    std::fs::rename(&tmp, path).expect("rename a soak file");
}

async fn scrape(exporter: &Exporter) -> String {
    crate::support::router::get_ok(&exporter.router, "/metrics").await
}

/// Every `server_name` label value in `text`.
fn server_names(text: &str) -> BTreeSet<&str> {
    text.split("server_name=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect()
}

/// The value of the sample line starting with `prefix`.
fn counter(text: &str, prefix: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

/// `VmRSS` of this process, in KiB.
#[must_use]
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Open file descriptors of this process (not counting the one that lists them).
#[must_use]
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count().saturating_sub(1))
}
