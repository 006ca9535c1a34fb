//! Measures how long `/metrics` takes to render N dual-stack servers (release build), the servers of the
//! `metrics` criterion bench, and what gzip costs beside it at a few levels (the ratio chose
//! `serve::scrape::LEVEL`): `cargo run --release --example render_metrics -- 2000 10000`. With `--homeserver`,
//! every server is also a destination of one homeserver (a third of them failing in Synapse's view), so the render
//! includes the `homeserver_*` and `destination_verdict` series.

#[path = "../tests/support/metrics_fixture.rs"]
mod metrics_fixture;

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use matrix_federation_exporter::render::metrics::{self, ExporterMetrics, Format};
use matrix_federation_exporter::schedule::store::Store;

fn main() {
    let homeserver = std::env::args().any(|a| a == "--homeserver");
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![2_000, 10_000]
    } else {
        sizes
    };
    for n in sizes {
        let store = Arc::new(Store::new());
        for i in 0..n {
            store.insert(metrics_fixture::dual_stack_report(i));
        }
        if homeserver {
            list_as_destinations(&store, n);
        }
        let registry = metrics::registry(store, &ExporterMetrics::new());
        for format in [Format::Text004, Format::OpenMetrics] {
            let _warm = metrics::encode(&registry, format);
            let runs = 5;
            let start = Instant::now();
            let mut bytes = 0;
            for _ in 0..runs {
                bytes = metrics::encode(&registry, format).len();
            }
            let each = start.elapsed() / runs;
            println!("{n:>6} servers, {format:?}: {each:?} per render, {bytes} bytes");
            let text = metrics::encode(&registry, format);
            for level in [1, 3, 6] {
                let (took, zipped) = gzip(&text, level, runs);
                println!(
                    "        gzip level {level}: {took:?} ({:.2} x the render), {zipped} bytes ({:.1} %)",
                    took.as_secs_f64() / each.as_secs_f64(),
                    100.0 * zipped as f64 / text.len() as f64
                );
            }
        }
    }
}

/// The mean time to gzip `text` at `level` over `runs`, and the compressed size.
fn gzip(text: &str, level: u32, runs: u32) -> (Duration, usize) {
    let mut size = 0;
    let start = Instant::now();
    for _ in 0..runs {
        let mut encoder =
            flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        encoder
            .write_all(text.as_bytes())
            .expect("a Vec takes every byte");
        size = encoder.finish().expect("a Vec takes every byte").len();
    }
    (start.elapsed() / runs, size)
}

/// Makes the `n` servers of the fixture the destinations of one homeserver `home`, every third one failing.
fn list_as_destinations(store: &Store, n: usize) {
    use matrix_federation_exporter::report::homeserver::Destination;
    use matrix_federation_exporter::schedule::homeservers::Refreshed;
    let destinations = (0..n)
        .map(|i| Destination {
            server_name: std::sync::Arc::from(format!("s{i}.example.org")),
            retry_last_ts: 1_700_000_000_000,
            retry_interval: if i % 3 == 0 { 600_000 } else { 0 },
            failure_ts: (i % 3 == 0).then_some(1_700_000_000_000),
        })
        .collect();
    store.homeservers.configure(&["home".to_owned()]);
    store.homeservers.update(
        "home",
        Refreshed::Good {
            destinations,
            listed: n,
            skipped_failing: 0,
            skipped_invalid: 0,
            truncated: false,
        },
        std::time::SystemTime::now(),
    );
}
