//! The exporter side of `bench/compare`: the real daemon (`daemon::start`: scheduler, store, routes) over the
//! benchmark world, with the spec ports 443 and 8448 remapped to the world's ports, one probe round at
//! concurrency 64, then `/metrics` served on 127.0.0.1 for timing. It exists only for benchmarks, so the
//! exporter needs no hidden production flag.
//!
//! `cargo run --release --example bench_exporter -- --world /tmp/world.json [--limit K] [--concurrency C]
//! [--profile full|observer]`
//!
//! `--profile` is the config key `metrics.profile` (issue 19): the series `/metrics` renders.
//!
//! It talks to its driver in lines, so the driver can read this process's CPU time and peak RSS from `/proc`
//! between the phases: it prints `{"event":"loaded",…}` and waits for `go` on stdin, runs the round, prints
//! `{"event":"round",…}` (serving `/metrics` on the printed address from then on), and exits on `quit` or
//! at the end of stdin. Logs (our crate at info, as the binary's default) go to stderr.

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
}

fn args() -> Args {
    let mut args = Args {
        world: PathBuf::from("bench-world.json"),
        limit: None,
        concurrency: 64,
        profile: "full".to_owned(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--world" => args.world = PathBuf::from(value()),
            "--limit" => args.limit = Some(value().parse().expect("--limit K")),
            "--concurrency" => args.concurrency = value().parse().expect("--concurrency C"),
            "--profile" => args.profile = value(),
            other => panic!(
                "unknown argument {other}; usage: bench_exporter --world FILE [--limit K] [--concurrency C] \
                 [--profile full|observer]"
            ),
        }
    }
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

/// `config` with `metrics.profile` set from `--profile`.
fn with_profile(mut config: Config, profile: &str) -> anyhow::Result<Config> {
    config.metrics.profile = profile.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    Ok(config)
}

fn main() -> anyhow::Result<()> {
    // The daemon's own runtime, as in production.
    daemon::runtime()?.block_on(bench(args()))
}

async fn bench(args: Args) -> anyhow::Result<()> {
    // As the binary's default: our crate at info, the libraries at warn, to stderr.
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
    let config = Config {
        servers,
        probe: ProbeConfig {
            // One round: the next one would start only after the benchmark is over.
            interval: Duration::from_secs(24 * 3600),
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

    let mut ok = 0usize;
    let mut reasons = std::collections::BTreeMap::<String, usize>::new();
    let reports = exporter.all_reports();
    for r in &reports {
        if r.success() {
            ok += 1;
        } else {
            let why = r.all_failures().next().map_or_else(
                || "no failure recorded".to_owned(),
                |(_, f)| format!("{}/{}", f.stage, f.reason),
            );
            *reasons.entry(why).or_default() += 1;
        }
    }
    if reports.len() < count {
        reasons.insert("no report".to_owned(), count - reports.len());
    }
    drop(reports);
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
        "ok": ok,
        "failed": count - ok,
        "failures": reasons,
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
