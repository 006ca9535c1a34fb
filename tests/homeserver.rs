//! A homeserver as a target source, against a fake Synapse admin API on loopback HTTPS (test CA): pagination,
//! bounds (`max_destinations`, a hanging API, a 50 MB answer), a refused token, skipped destinations, the
//! verdict joined with our probes, dedup with configured servers, keeping the last good list, sharding and reload.

mod support;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use matrix_federation_exporter::config::homeservers::SynapseAdmin;
use matrix_federation_exporter::config::shard::Shard;
use matrix_federation_exporter::config::{Config, Source};
use matrix_federation_exporter::probe::connect::http_client::GetError;
use matrix_federation_exporter::probe::homeserver::{AdminError, MAX_PAGE_BYTES, fetch};
use matrix_federation_exporter::serve::daemon::{self, Exporter};
use support::admin_api::{FakeAdminApi, Mode, Row};
use support::{TIMEOUTS, Validity, World, Zone, world::delegated_and_expired_zone};

const TOKEN: &str = "syt_YWRtaW4_secretsecret_0abc";

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn token_file(test: &str, token: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mfe-homeserver-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    file
}

fn admin(api: &FakeAdminApi, token_file: PathBuf, max_destinations: usize) -> SynapseAdmin {
    SynapseAdmin {
        url: url::Url::parse(&api.url).unwrap(),
        access_token_file: token_file,
        refresh: Duration::from_secs(300),
        max_destinations,
        skip_failing_longer_than: Duration::from_secs(30 * 24 * 3600),
    }
}

async fn metrics(exporter: &Exporter) -> String {
    get(exporter, "/metrics").await
}

async fn get(exporter: &Exporter, path: &str) -> String {
    support::router::get(&exporter.router, path).await.body
}

/// Waits (bounded) until `done` holds, re-checking at every stored report or every 100 ms.
async fn wait_until(exporter: &Exporter, what: &str, done: impl Fn(&Exporter) -> bool) {
    let mut reports = exporter.reports();
    for _ in 0..300 {
        if done(exporter) {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), reports.changed()).await;
    }
    panic!("gave up waiting for {what}");
}

fn rows(n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| {
            if i % 3 == 0 {
                Row::failing(&format!("dest-{i:05}.example"), now_ms() - 60_000, 600_000)
            } else {
                Row::healthy(&format!("dest-{i:05}.example"))
            }
        })
        .collect()
}

#[tokio::test]
async fn ten_thousand_destinations_are_read_page_by_page() {
    let world = World::new("admin-pages", Zone::new(), TIMEOUTS).await;
    let api = FakeAdminApi::start(&world.ca, TOKEN, Mode::Serve(rows(10_000))).await;
    let file = token_file("pages", TOKEN);
    let fetched = fetch(
        &world.env,
        &admin(&api, file.clone(), 10_000),
        SystemTime::now(),
    )
    .await
    .unwrap();
    assert_eq!(fetched.listed, 10_000);
    assert_eq!(fetched.destinations.len(), 10_000);
    assert!(!fetched.truncated);
    assert_eq!(fetched.pages, 20);
    let requests = api.requests();
    assert_eq!(requests.len(), 20);
    assert!(requests.iter().all(|(_, authorized)| *authorized));
    // `next_token` is followed: the second page starts where the first ended.
    assert!(
        requests[1].0.contains("from=500&limit=500"),
        "{:?}",
        requests[1]
    );
    let first = &fetched.destinations[0];
    assert_eq!(&*first.server_name, "dest-00000.example");
    assert_eq!(first.retry_interval, 600_000);
    assert!(first.failure_ts.is_some());
    assert_eq!(fetched.destinations[1].failure_ts, None);

    // max_destinations stops the list, and reads no more pages than it needs.
    let fetched = fetch(&world.env, &admin(&api, file, 1_200), SystemTime::now())
        .await
        .unwrap();
    assert_eq!((fetched.listed, fetched.destinations.len()), (1_200, 1_200));
    assert!(fetched.truncated);
    assert_eq!(fetched.pages, 3);
}

#[tokio::test]
async fn plain_http_works_on_loopback() {
    let world = World::new("admin-plain", Zone::new(), TIMEOUTS).await;
    let api = FakeAdminApi::start_plain(TOKEN, Mode::Serve(rows(3))).await;
    assert!(api.url.starts_with("http://127.0.0.1:"));
    let file = token_file("plain", TOKEN);
    let fetched = fetch(&world.env, &admin(&api, file, 100), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(fetched.destinations.len(), 3);
    assert!(api.requests().iter().all(|(_, authorized)| *authorized));
}

#[tokio::test]
async fn a_refused_token_a_hang_and_a_huge_answer_are_errors_without_the_token() {
    let world = World::new("admin-errors", Zone::new(), TIMEOUTS).await;
    let api = FakeAdminApi::start(&world.ca, TOKEN, Mode::Serve(rows(3))).await;

    let wrong = token_file("refused", "syt_wrong_token_value");
    let e = fetch(&world.env, &admin(&api, wrong, 100), SystemTime::now())
        .await
        .unwrap_err();
    assert!(matches!(e, AdminError::Refused(401)), "{e:?}");
    for shown in [e.to_string(), format!("{e:?}")] {
        assert!(!shown.contains("syt_wrong"), "{shown}");
    }

    let file = token_file("errors", TOKEN);
    api.set_mode(Mode::Status(403));
    let e = fetch(
        &world.env,
        &admin(&api, file.clone(), 100),
        SystemTime::now(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, AdminError::Refused(403)), "{e:?}");

    api.set_mode(Mode::Hang);
    let e = fetch(
        &world.env,
        &admin(&api, file.clone(), 100),
        SystemTime::now(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, AdminError::Get { page: 1, source: GetError::Timeout(t) } if t == TIMEOUTS.http),
        "{e:?}"
    );

    api.set_mode(Mode::Big(50 * 1024 * 1024));
    let e = fetch(
        &world.env,
        &admin(&api, file.clone(), 100),
        SystemTime::now(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, AdminError::Get { page: 1, source: GetError::TooLarge(n) } if n == MAX_PAGE_BYTES),
        "{e:?}"
    );
    for shown in [e.to_string(), format!("{e:?}")] {
        assert!(!shown.contains(TOKEN), "{shown}");
    }

    // A certificate our roots do not trust: the token is never sent.
    let other = World::new("admin-other-ca", Zone::new(), TIMEOUTS).await;
    api.set_mode(Mode::Serve(rows(3)));
    let before = api.requests().len();
    let e = fetch(&other.env, &admin(&api, file, 100), SystemTime::now())
        .await
        .unwrap_err();
    assert!(matches!(e, AdminError::Certificate { .. }), "{e:?}");
    assert_eq!(api.requests().len(), before);
}

/// The scenario: good.test healthy on both sides (ok), us.test failing in Synapse but fine to us (us), bad.test
/// (expired certificate) fine in Synapse (`unseen_fault`), gone.test failing on both (them); old.test failing for
/// 40 days and a name that is not a server name are skipped. good.test is also configured: probed once.
#[tokio::test]
#[expect(
    clippy::too_many_lines,
    reason = "one scenario: probe, metrics, pages, then the admin API failing and shrinking"
)]
async fn destinations_are_probed_once_with_a_verdict_and_the_last_good_list_stays() {
    let zone = delegated_and_expired_zone().a("us.test", "127.0.0.5".parse().unwrap());
    let mut world = World::new("admin-verdict", zone, TIMEOUTS).await;
    world.serve_delegated_and_expired().await;
    world
        .homeserver([127, 0, 0, 5], "us.test", Validity::Valid)
        .await;
    let since = now_ms() - 3_600_000;
    let api = FakeAdminApi::start(
        &world.ca,
        TOKEN,
        Mode::Serve(vec![
            Row::healthy("good.test"),
            Row::failing("us.test", since, 1_200_000),
            Row::healthy("bad.test"),
            Row::failing("gone.test", since, 600_000),
            Row::failing("old.test", now_ms() - 40 * 24 * 3_600_000, 604_800_000),
            Row::healthy("not a server name"),
        ]),
    )
    .await;
    let file = token_file("verdict", TOKEN);
    let yaml = format!(
        "servers: [good.test]\nhomeservers:\n  - name: home\n    synapse_admin:\n      url: {}\n      access_token_file: {}\n      refresh: 200ms\n",
        api.url,
        file.display()
    );
    let config = Config::from_yaml(&yaml).unwrap();
    let exporter = world.exporter(&config).await;
    let probed = ["bad.test", "gone.test", "good.test", "us.test"];
    wait_until(&exporter, "every destination probed", |e| {
        probed.iter().all(|n| e.report(n).is_some())
    })
    .await;
    let scheduled: Vec<String> = exporter
        .scheduled()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(scheduled, probed);

    let text = metrics(&exporter).await;
    for (name, verdict) in [
        ("good.test", "ok"),
        ("us.test", "us"),
        ("bad.test", "unseen_fault"),
        ("gone.test", "them"),
    ] {
        let line = format!(
            "matrix_federation_destination_verdict{{homeserver=\"home\",server_name=\"{name}\",verdict=\"{verdict}\"}} 1"
        );
        assert!(text.contains(&line), "{line} missing in\n{text}");
    }
    assert_eq!(
        text.matches("matrix_federation_destination_verdict{")
            .count(),
        4
    );
    assert!(text.contains("matrix_federation_homeserver_up{homeserver=\"home\"} 1"));
    assert!(text.contains("matrix_federation_homeserver_destinations{homeserver=\"home\"} 6"));
    let failure = format!(
        "matrix_federation_homeserver_destination_failure_timestamp_seconds{{homeserver=\"home\",server_name=\"us.test\"}} {}",
        since as f64 / 1000.0
    );
    assert!(text.contains(&failure), "{failure} missing");
    assert!(!text.contains(
        "matrix_federation_homeserver_destination_failure_timestamp_seconds{homeserver=\"home\",server_name=\"good.test\"}"
    ));
    assert!(text.contains("matrix_federation_homeserver_destination_retry_interval_seconds{homeserver=\"home\",server_name=\"us.test\"} 1200"));
    assert!(!text.contains("old.test"));
    assert!(!text.contains(TOKEN));

    // The status page: Synapse says / we say / verdict, filterable to `us`; the index links to it.
    let page = get(&exporter, "/homeserver/home?verdict=us").await;
    assert!(page.contains(">us.test<"), "{page}");
    for other in [">good.test<", ">bad.test<", ">gone.test<"] {
        assert!(!page.contains(other), "{other} in {page}");
    }
    assert!(page.contains("failing for"));
    let all = get(&exporter, "/homeserver/home").await;
    assert!(all.contains(">gone.test<") && all.contains("unseen_fault"));
    let index = get(&exporter, "/").await;
    assert!(
        index.contains("href=\"/homeserver/home?verdict=us\""),
        "{index}"
    );
    for shown in [&page, &all, &index] {
        assert!(!shown.contains(TOKEN));
    }
    assert!(get(&exporter, "/homeserver/nope").await.contains("nope"));
    // The report API's extension key says what the homeserver says of it, and the verdict.
    let answer: serde_json::Value =
        serde_json::from_str(&get(&exporter, "/api/report?server_name=us.test").await).unwrap();
    let listed = &answer["MatrixFederationExporter"]["homeservers"][0];
    assert_eq!(listed["homeserver"], "home");
    assert_eq!(listed["verdict"], "us");
    assert_eq!(listed["failure_ts"], since);

    // The admin API fails: the last good list stays (and is still probed), the homeserver is down.
    api.set_mode(Mode::Status(500));
    wait_until(&exporter, "the homeserver down", |e| {
        e.homeservers().iter().all(|h| !h.up)
    })
    .await;
    let view = &exporter.homeservers()[0];
    assert_eq!(view.destinations.len(), 4);
    assert!(
        view.error.as_deref().unwrap().contains("HTTP 500"),
        "{:?}",
        view.error
    );
    let scheduled: Vec<String> = exporter
        .scheduled()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(scheduled, probed);
    let text = metrics(&exporter).await;
    assert!(text.contains("matrix_federation_homeserver_up{homeserver=\"home\"} 0"));
    assert_eq!(
        text.matches("matrix_federation_destination_verdict{")
            .count(),
        4
    );

    // It lists fewer: the one gone is no longer probed.
    api.set_mode(Mode::Serve(vec![
        Row::healthy("good.test"),
        Row::healthy("bad.test"),
    ]));
    wait_until(&exporter, "the shorter list", |e| e.scheduled().len() == 2).await;
    assert!(exporter.report("us.test").is_none());
}

#[tokio::test]
async fn each_shard_probes_its_share_of_the_destinations() {
    let world = World::new("admin-shard", Zone::new(), TIMEOUTS).await;
    let names: Vec<String> = (0..20).map(|i| format!("n{i}.test")).collect();
    let api = FakeAdminApi::start(
        &world.ca,
        TOKEN,
        Mode::Serve(names.iter().map(|n| Row::healthy(n)).collect()),
    )
    .await;
    let file = token_file("shard", TOKEN);
    let yaml = format!(
        "probe:\n  interval: 1h\nhomeservers:\n  - name: home\n    synapse_admin:\n      url: {}\n      access_token_file: {}\n",
        api.url,
        file.display()
    );
    let mut all: Vec<String> = Vec::new();
    for index in 0..2 {
        let mut config = Config::from_yaml(&yaml).unwrap();
        config.shard = Some(Shard::new(index, 2).unwrap());
        let exporter = world.exporter(&config).await;
        wait_until(&exporter, "the destinations", |e| {
            e.homeservers().iter().all(|h| h.up)
        })
        .await;
        let mine: Vec<String> = exporter
            .scheduled()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(!mine.is_empty() && mine.len() < names.len(), "{mine:?}");
        all.extend(mine);
    }
    all.sort();
    let mut want = names.clone();
    want.sort();
    assert_eq!(all, want);
}

/// `homeservers:` reloads like the rest of the config: added, its destinations are probed; removed, they go.
#[tokio::test]
async fn a_reload_adds_and_removes_a_homeserver() {
    let world = World::new("admin-reload", Zone::new(), TIMEOUTS).await;
    let api = FakeAdminApi::start(
        &world.ca,
        TOKEN,
        Mode::Serve(vec![Row::healthy("a.test"), Row::healthy("b.test")]),
    )
    .await;
    let file = token_file("reload", TOKEN);
    let dir = file.parent().unwrap().to_owned();
    let config = dir.join("config.yml");
    std::fs::write(&config, "servers: [c.test]\n").unwrap();
    let source = Source {
        file: Some(config.clone()),
        ..Source::default()
    };
    let env = world.env.clone();
    let exporter =
        daemon::start_reloadable(source, Box::new(move |_: &Config| Ok(env.clone()))).unwrap();
    let names =
        |e: &Exporter| -> Vec<String> { e.scheduled().iter().map(ToString::to_string).collect() };
    assert_eq!(names(&exporter), ["c.test"]);

    std::fs::write(
        &config,
        format!(
            "servers: [c.test]\nhomeservers:\n  - name: home\n    synapse_admin:\n      url: {}\n      access_token_file: {}\n",
            api.url,
            file.display()
        ),
    )
    .unwrap();
    exporter.reload().await.unwrap();
    wait_until(&exporter, "the destinations", |e| e.scheduled().len() == 3).await;
    assert_eq!(names(&exporter), ["a.test", "b.test", "c.test"]);

    std::fs::write(&config, "servers: [c.test]\n").unwrap();
    exporter.reload().await.unwrap();
    assert_eq!(names(&exporter), ["c.test"]);
    assert!(exporter.homeservers().is_empty());
}
