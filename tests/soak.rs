//! Soak, CI-sized: a flapping world (servers appear and vanish through the config file and a target file,
//! change certificates, time out, answer garbage, go down, vanish from DNS) probed by the whole reloadable
//! exporter for a few hundred rounds. `/metrics` must never show a removed server, every reload must succeed,
//! and RSS and open file descriptors must stay flat. See `tests/soak/world.rs` for the world and the checks;
//! `cargo run --release --example soak -- --rounds 5000` runs the long soak (figures in `docs/soak.md`).
//!
//! `SOAK_ROUNDS` overrides the number of rounds (300).

#[path = "soak/world.rs"]
mod flapping;
mod support;

use std::time::Duration;

/// Growth allowed between the end of the warm-up and the end of the run. A leak of one descriptor or of a
/// few KiB per round would pass these by the hundreds of rounds; the slack covers what is in flight when a
/// sample is taken and the allocator's own caching.
const FD_SLACK: usize = 32;
const RSS_SLACK_KIB: u64 = 32 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_world_keeps_memory_and_descriptors_flat_and_metrics_exact() {
    let rounds = std::env::var("SOAK_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let options = flapping::Options {
        rounds,
        slots: 8,
        seed: 7,
        interval: Duration::from_millis(200),
        round: Duration::from_millis(100),
        sample_every: 50,
        progress: false,
    };
    let summary = flapping::run(&options).await;
    eprintln!(
        "{}\nreloads {}, scrapes {}, probes {} ok / {} failed, flips {:?}, {:?}",
        summary.table(),
        summary.reloads,
        summary.scrapes,
        summary.probes_success,
        summary.probes_failure,
        summary.flips,
        summary.elapsed
    );
    let (warm, last) = (summary.warm, summary.last);
    assert!(
        last.fds <= warm.fds + FD_SLACK,
        "open file descriptors grew from {} to {}\n{}",
        warm.fds,
        last.fds,
        summary.table()
    );
    assert!(
        last.rss_kib <= warm.rss_kib + RSS_SLACK_KIB,
        "RSS grew from {} KiB to {} KiB\n{}",
        warm.rss_kib,
        last.rss_kib,
        summary.table()
    );
    // The soak did soak: probes passed and failed, and every kind of flip happened.
    assert!(summary.probes_success > 0 && summary.probes_failure > 0);
    assert!(summary.flips.len() >= 10, "{:?}", summary.flips);
}
