//! What a homeserver source of 10,000 destinations costs beside the probes themselves (issue 16): one refresh
//! from a fake Synapse admin API on loopback (the test world's, 500 destinations a page), kept as the store keeps
//! it. Prints the resident memory the kept list adds per destination and the peak during the refresh:
//! `cargo run --release --example homeserver_memory -- 10000`.

/// The binary's allocator (see `src/main.rs`), so that memory is measured as the exporter uses it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use matrix_federation_exporter::config::homeservers::SynapseAdmin;
use matrix_federation_exporter::probe::homeserver::fetch;
use matrix_federation_exporter::schedule::homeservers::Refreshed;
use matrix_federation_exporter::schedule::store::Store;
use support::admin_api::{FakeAdminApi, Mode, Row};
use support::{TIMEOUTS, World, Zone};

/// `VmRSS` and `VmHWM` of this process, in KiB.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("a KiB figure")
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let now_ms = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits i64");
    let rows: Vec<Row> = (0..n)
        .map(|i| {
            let name = format!("dest-{i:06}.example");
            if i % 3 == 0 {
                Row::failing(&name, now_ms - 60_000, 600_000)
            } else {
                Row::healthy(&name)
            }
        })
        .collect();
    let world = World::new("homeserver-memory", Zone::new(), TIMEOUTS).await;
    let api = FakeAdminApi::start(&world.ca, "syt_bench", Mode::Serve(rows)).await;
    let dir = std::env::temp_dir().join(format!("mfe-homeserver-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let token = dir.join("token");
    std::fs::write(&token, "syt_bench\n").expect("token file");
    let admin = SynapseAdmin {
        url: url::Url::parse(&api.url).expect("the fake API's URL"),
        access_token_file: token,
        refresh: Duration::from_secs(300),
        max_destinations: n,
        skip_failing_longer_than: Duration::from_secs(30 * 24 * 3600),
    };
    let store = Store::new();
    store.homeservers.configure(&["home".to_owned()]);
    // One refresh first, so that the allocator, TLS and the fake API have warmed up.
    let warm = fetch(&world.env, &admin, SystemTime::now())
        .await
        .expect("a refresh");
    drop(warm);
    let (before, _) = memory();
    let fetched = fetch(&world.env, &admin, SystemTime::now())
        .await
        .expect("a refresh");
    let (during, peak) = memory();
    let listed = fetched.destinations.len();
    let (pages, took) = (fetched.pages, fetched.duration);
    store
        .homeservers
        .update("home", Refreshed::from(fetched), SystemTime::now());
    let (after, _) = memory();
    #[expect(clippy::cast_precision_loss, reason = "KiB figures of one process")]
    let per = (after.saturating_sub(before) as f64) * 1024.0 / listed as f64;
    println!(
        "{listed} destinations in {pages} pages ({took:?}): RSS {before} KiB before, {during} KiB after the refresh, \
         {after} KiB once stored (peak {peak} KiB): {per:.0} bytes per destination kept"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
