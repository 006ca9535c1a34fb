//! The long soak: the flapping world of `tests/soak/world.rs` (servers appear and vanish through the config
//! file and a target file, change certificates, time out, answer garbage, go down, vanish from DNS), probed by
//! the whole reloadable exporter for thousands of rounds, with RSS and open file descriptors sampled as it
//! goes. Panics (exit code 101) when a check fails: a removed server in `/metrics`, a failed reload, a probe
//! that never ends.
//!
//! `cargo run --release --example soak -- --rounds 5000`
//!
//! Flags: `--rounds N` (5000), `--slots N` fake homeservers (16), `--seed N` (1), `--interval-ms N` probe
//! interval (200; every timeout is 3/4 of it), `--round-ms N` pause after each reload (100), `--sample-every N`
//! rounds (250). Prints the samples as a Markdown table (the figures of `docs/soak.md`).

/// The binary's allocator (see `src/main.rs`), so that memory is measured as the exporter uses it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "../tests/soak/world.rs"]
mod flapping;

use std::time::Duration;

fn options() -> flapping::Options {
    let mut options = flapping::Options {
        rounds: 5000,
        slots: 16,
        seed: 1,
        interval: Duration::from_millis(200),
        round: Duration::from_millis(100),
        sample_every: 250,
        progress: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut number = || -> u64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{flag} needs a number"))
        };
        match flag.as_str() {
            "--rounds" => options.rounds = usize::try_from(number()).expect("rounds"),
            "--slots" => options.slots = usize::try_from(number()).expect("slots"),
            "--seed" => options.seed = number(),
            "--interval-ms" => options.interval = Duration::from_millis(number()),
            "--round-ms" => options.round = Duration::from_millis(number()),
            "--sample-every" => {
                options.sample_every = usize::try_from(number()).expect("sample-every").max(1);
            }
            other => panic!(
                "unknown flag {other}; use --rounds, --slots, --seed, --interval-ms, --round-ms, --sample-every"
            ),
        }
    }
    options
}

fn main() {
    let options = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let summary = runtime.block_on(flapping::run(&options));
    println!("{}", summary.table());
    println!(
        "rounds {}, slots {}, seed {}, interval {:?}, round {:?}",
        options.rounds, options.slots, options.seed, options.interval, options.round
    );
    println!(
        "reloads {}, scrapes {} (none showed a removed server), probes {} passed / {} failed, {:.0} s",
        summary.reloads,
        summary.scrapes,
        summary.probes_success,
        summary.probes_failure,
        summary.elapsed.as_secs_f64()
    );
    println!("flips: {:?}", summary.flips);
    println!(
        "after warm-up (round {}): RSS {} KiB, {} fds; at the end (round {}): RSS {} KiB, {} fds",
        summary.warm.round,
        summary.warm.rss_kib,
        summary.warm.fds,
        summary.last.round,
        summary.last.rss_kib,
        summary.last.fds
    );
}
