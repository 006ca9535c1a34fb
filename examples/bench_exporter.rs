//! The exporter side of `bench/compare`: the real daemon (`daemon::start`: scheduler, store, routes) over the
//! benchmark world, with the spec ports 443 and 8448 remapped to the world's ports, one probe round at
//! concurrency 64, then `/metrics` served on 127.0.0.1 for timing. It exists only for benchmarks, so the
//! exporter needs no hidden production flag.
//!
//! `cargo run --release --example bench_exporter -- --world /tmp/world.json [--limit K] [--concurrency C]
//! [--profile full|observer] [--rounds R [--interval S]]`
//!
//! `--profile` is the config key `metrics.profile` (issue 19): the series `/metrics` renders.
//!
//! It talks to its driver in lines, so the driver can read this process's CPU time and peak RSS from `/proc`
//! between the phases: it prints `{"event":"loaded",…}` and waits for `go` on stdin, runs the round, prints
//! `{"event":"round",…}` (serving `/metrics` on the printed address from then on), and exits on `quit` or
//! at the end of stdin. Logs (our crate at info, as the binary's default) go to stderr.
//!
//! ## More than one round
//!
//! `--rounds R` (default 1) runs R rounds of the same daemon before the `round` event, so that what the store
//! keeps from round to round (each server's history and its signing keys of the last 7 days) is in the figures
//! read after it (issue 19: "RSS per additional server … after two rounds"). The rounds are the scheduler's
//! own, as in production: `probe.interval` is `--interval S` (default: [`default_interval`]) with no jitter, so
//! round k of every server is due (k − 1) × S after the start, and the daemon is idle between the end of one
//! round and the start of the next. The library offers no other way to start a round: the scheduler queues each
//! server's next round when its probe starts, and neither a reload nor any other call moves it earlier (a reload
//! that dropped and re-added the servers would drop their histories, a reload's second copy of the configuration
//! would count in the peak RSS measured, and `daemon::start` has no configuration source to reload from anyway).
//! Round k ends when the store has received k × servers reports (every probe, cut or not, ends in one).
//!
//! After each round but the last it prints `{"event":"round_end","round":k,…}` (its wall time and outcome), so
//! the driver can read `/proc` in the idle gap after it. The `round` event carries the first round's figures as
//! with one round (`wall_s`, `ok`, `failed`, `failures`) and the last round's (`rounds`, `last_round_wall_s`
//! from its due time to its last report, `last_round_ok`, `last_round_failed`, `last_round_failures`), the
//! interval, whether a round was still running when the next one was due (`overlapped`: then raise
//! `--interval`, as the rounds' CPU and wall times are mixed), and `next_round_in_s`, the time left before the
//! round after the last would start (measure before it does).

/// The binary's allocator (see `src/main.rs`), so that memory is measured as the exporter uses it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use matrix_federation_exporter::config::server_name::ServerName;
use matrix_federation_exporter::config::{Config, ProbeConfig, Timeouts, TrustStore};
use matrix_federation_exporter::probe::connect::tls;
use matrix_federation_exporter::probe::env::{Ports, ProbeEnv};
use matrix_federation_exporter::serve::daemon;
use matrix_federation_exporter::serve::listener;
use serde_json::{Value, json};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The parts of the world file (written by `bench_world`) that the exporter reads.
#[derive(serde::Deserialize)]
struct World {
    dns: SocketAddr,
    well_known_port: u16,
    federation_port: u16,
    ca_file: PathBuf,
    names: Vec<String>,
}

struct Args {
    world: PathBuf,
    limit: Option<usize>,
    concurrency: usize,
    /// `metrics.profile`: `full` (the default) or `observer`.
    profile: String,
    /// Probe rounds before the `round` event.
    rounds: usize,
    /// `probe.interval` when `rounds` > 1 (None: [`default_interval`]).
    interval: Option<Duration>,
}

/// The interval between rounds when `--interval` is not given: 2 s plus 6 ms per server. The slowest round in
/// BENCHMARKS.md took 3.2 ms per server (20,000 names at concurrency 64, load average 4 to 7), and a world with
/// `--healthy-client` (one more handshake for most names) took 2 ms per server at load average 2, so a round
/// should end, and the daemon go idle, well before the next is due; the `round` event says when it did not.
fn default_interval(servers: usize) -> Duration {
    Duration::from_secs(2) + Duration::from_millis(6) * u32::try_from(servers).unwrap_or(u32::MAX)
}

fn args() -> Args {
    let mut args = Args {
        world: PathBuf::from("bench-world.json"),
        limit: None,
        concurrency: 64,
        profile: "full".to_owned(),
        rounds: 1,
        interval: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--world" => args.world = PathBuf::from(value()),
            "--limit" => args.limit = Some(value().parse().expect("--limit K")),
            "--concurrency" => args.concurrency = value().parse().expect("--concurrency C"),
            "--profile" => args.profile = value(),
            "--rounds" => args.rounds = value().parse().expect("--rounds R"),
            "--interval" => {
                let seconds: f64 = value().parse().expect("--interval S (seconds)");
                args.interval = Some(Duration::from_secs_f64(seconds));
            }
            other => panic!(
                "unknown argument {other}; usage: bench_exporter --world FILE [--limit K] [--concurrency C] \
                 [--profile full|observer] [--rounds R [--interval S]]"
            ),
        }
    }
    assert!(args.rounds >= 1, "--rounds R: at least 1");
    assert!(
        args.interval.is_none_or(|i| !i.is_zero()),
        "--interval S: more than 0"
    );
    args
}

/// One line from stdin (None at its end), read off the async workers.
async fn command() -> Option<String> {
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        match std::io::stdin().lock().read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim().to_owned()),
        }
    })
    .await
    .ok()
    .flatten()
}

fn say(event: &Value) {
    println!("{event}");
}

/// How the latest round went: servers whose latest report passed, and the others by first failure.
struct Outcome {
    ok: usize,
    failures: std::collections::BTreeMap<String, usize>,
}

impl Outcome {
    fn of(exporter: &daemon::Exporter, count: usize) -> Self {
        let mut ok = 0usize;
        let mut failures = std::collections::BTreeMap::<String, usize>::new();
        let reports = exporter.all_reports();
        for r in &reports {
            if r.success() {
                ok += 1;
            } else {
                let why = r.all_failures().next().map_or_else(
                    || "no failure recorded".to_owned(),
                    |(_, f)| format!("{}/{}", f.stage, f.reason),
                );
                *failures.entry(why).or_default() += 1;
            }
        }
        if reports.len() < count {
            failures.insert("no report".to_owned(), count - reports.len());
        }
        Self { ok, failures }
    }

    /// The `round_end` event of round `round`, which took `wall`.
    fn round_end(&self, round: usize, wall: Duration) -> Value {
        let failed: usize = self.failures.values().sum();
        json!({
            "event": "round_end",
            "round": round,
            "servers": self.ok + failed,
            "wall_s": wall.as_secs_f64(),
            "ok": self.ok,
            "failed": failed,
            "failures": self.failures,
        })
    }
}

/// `config` with `metrics.profile` set from `--profile`.
fn with_profile(mut config: Config, profile: &str) -> anyhow::Result<Config> {
    config.metrics.profile = profile.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    Ok(config)
}

fn main() -> anyhow::Result<()> {
    // The daemon's own runtime, as in production.
    daemon::runtime()?.block_on(bench(args()))
}

/// Logs as the binary's default: our crate at info, the libraries at warn, to stderr.
fn init_logging() {
    tracing_subscriber::registry()
        .with(
            Targets::new()
                .with_default(LevelFilter::WARN)
                .with_target("matrix_federation_exporter", LevelFilter::INFO),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(std::io::stderr),
        )
        .init();
}

async fn bench(args: Args) -> anyhow::Result<()> {
    init_logging();
    // Only what the exporter needs: the world file's per-target list is for blackbox and is never parsed.
    let world: World = serde_json::from_slice(&std::fs::read(&args.world)?)?;
    let ports = Ports {
        well_known: world.well_known_port,
        federation: world.federation_port,
    };
    let mut servers = world
        .names
        .iter()
        .map(|n| ServerName::parse(n))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("world file: bad name: {e}"))?;
    if let Some(limit) = args.limit {
        servers.truncate(limit);
    }

    // As in production: the system trust store plus the CA file (here the world's root).
    let roots = tls::load_roots(TrustStore::System, &[world.ca_file])?;
    let timeouts = Timeouts::default();
    let env = ProbeEnv::new(&[world.dns], roots, ports, timeouts)?;
    drop(world.names);
    let count = servers.len();
    let interval = if args.rounds == 1 {
        // One round: the next one would start only after the benchmark is over.
        Duration::from_secs(24 * 3600)
    } else {
        args.interval.unwrap_or_else(|| default_interval(count))
    };
    let config = Config {
        servers,
        probe: ProbeConfig {
            interval,
            // No jitter: round k of every server is due (k - 1) × interval after the start.
            jitter: Duration::ZERO,
            concurrency: args.concurrency,
            timeouts,
            ..ProbeConfig::default()
        },
        ..Config::default()
    };
    let config = with_profile(config, &args.profile)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let listen = listener.local_addr()?;
    say(&json!({ "event": "loaded", "servers": count, "listen": listen.to_string() }));
    if command().await.as_deref() != Some("go") {
        return Ok(());
    }

    let start = Instant::now();
    let mut exporter = daemon::start(&config, env);
    // The daemon keeps its own copy of the configuration, as in production (where `main` hands the loaded one
    // over); this one is the benchmark's and would only add to the RSS measured.
    drop(config);
    exporter.ready.wait_for(|ready| *ready).await?;
    let wall = start.elapsed();
    let first = Outcome::of(&exporter, count);

    let later = later_rounds(
        &exporter,
        args.rounds,
        count,
        (start, interval),
        (&first, wall),
    )
    .await?;
    let last = later.last.as_ref().unwrap_or(&first);
    let next_round = (args.rounds > 1).then(|| {
        let next = start + interval * u32::try_from(args.rounds).unwrap_or(u32::MAX);
        next.saturating_duration_since(Instant::now()).as_secs_f64()
    });

    let server = tokio::spawn(listener::serve(
        listener,
        exporter.router.clone(),
        None,
        exporter.web_limits(),
        std::future::pending(),
    ));
    say(&json!({
        "event": "round",
        "servers": count,
        "wall_s": wall.as_secs_f64(),
        "ok": first.ok,
        "failed": count - first.ok,
        "failures": first.failures,
        "rounds": args.rounds,
        "interval_s": (args.rounds > 1).then_some(interval.as_secs_f64()),
        "last_round_wall_s": later.wall.as_secs_f64(),
        "last_round_ok": last.ok,
        "last_round_failed": count - last.ok,
        "last_round_failures": last.failures,
        "overlapped": later.overlapped,
        "next_round_in_s": next_round,
    }));
    while let Some(line) = command().await {
        if line == "quit" {
            break;
        }
    }
    server.abort();
    drop(exporter);
    Ok(())
}

/// What rounds 2..=R did: the last one's outcome (None with one round) and wall time, and whether a round was
/// still running when the next was due.
struct Later {
    last: Option<Outcome>,
    wall: Duration,
    overlapped: bool,
}

/// Waits for rounds 2..=`rounds` of the daemon started at `start` with `interval`, printing the `round_end` event
/// of each round before it. Round k is due (k - 1) × interval after the start, and has ended when the store has
/// received k × `count` reports. `first` is the first round's outcome and wall time.
async fn later_rounds(
    exporter: &daemon::Exporter,
    rounds: usize,
    count: usize,
    (start, interval): (Instant, Duration),
    (first, first_wall): (&Outcome, Duration),
) -> anyhow::Result<Later> {
    let mut stored = exporter.reports();
    let mut later = Later {
        last: None,
        wall: first_wall,
        overlapped: false,
    };
    let mut ended = start + first_wall;
    for k in 2..=rounds {
        let previous = later.last.as_ref().unwrap_or(first);
        say(&previous.round_end(k - 1, later.wall));
        let due = start + interval * u32::try_from(k - 1)?;
        later.overlapped |= ended > due;
        let reports = u64::try_from(k * count)?;
        stored.wait_for(|n| *n >= reports).await?;
        let now = Instant::now();
        later.wall = now - due.min(now);
        ended = now;
        later.last = Some(Outcome::of(exporter, count));
    }
    Ok(later)
}
