//! Reload without restart: `POST /-/reload` and target-file changes add and remove servers (and their series),
//! keep the results of the others, and a bad config leaves the old one in force with the reload gauge at 0.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use matrix_federation_exporter::config::{Profile, Source, Timeouts};
use matrix_federation_exporter::probe::env::{Ports, ProbeEnv};
use matrix_federation_exporter::serve::daemon::{self, Exporter};
use support::{Behaviour, FakeDns, FakeServer, PortAnchor, TIMEOUTS, TestCa, Validity, Zone, keys};

/// Three healthy homeservers (`a.test`, `b.test`, `c.test` on one explicit port), `hang.test` (accepts TCP on
/// that port and never answers the TLS handshake) and a config directory.
struct World {
    port: u16,
    /// The probe timeouts of every environment the exporter builds (a test may change them before it starts).
    timeouts: Timeouts,
    hang: FakeServer,
    dir: PathBuf,
    root: PathBuf,
    dns: FakeDns,
    ca: TestCa,
    _servers: Vec<FakeServer>,
    _anchor: PortAnchor,
}

impl World {
    async fn start(label: &str) -> World {
        let mut anchor = PortAnchor::new();
        let port = anchor.port;
        let ca = TestCa::new(label);
        let names = ["a.test", "b.test", "c.test"];
        let mut zone = Zone::new();
        let mut servers = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let ip = std::net::Ipv4Addr::new(127, 0, 0, 2 + u8::try_from(i).unwrap());
            zone = zone.a(name, ip);
            let behaviour = Behaviour::Https {
                leaf: ca.leaf(&[name], Validity::Valid),
                routes: keys::matrix_routes(&format!("{name}:{port}")),
            };
            servers.push(FakeServer::start(anchor.bind(ip), behaviour).await);
        }
        let hang_ip = std::net::Ipv4Addr::new(127, 0, 0, 5);
        zone = zone.a("hang.test", hang_ip);
        let hang = FakeServer::start(anchor.bind(hang_ip), Behaviour::SilentTcp).await;
        let dns = FakeDns::start(zone).await;
        let dir = std::env::temp_dir().join(format!("mfe-reload-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let root = ca.write_root_pem(&dir);
        World {
            port,
            timeouts: TIMEOUTS,
            hang,
            dir,
            root,
            dns,
            ca,
            _servers: servers,
            _anchor: anchor,
        }
    }

    fn name(&self, host: &str) -> String {
        format!("{host}:{}", self.port)
    }

    /// Writes the config file with these servers (and target-file globs) and returns its path.
    fn write_config(&self, servers: &[&str], target_files: &[&str]) -> PathBuf {
        let list = |items: Vec<String>| format!("[{}]", items.join(", "));
        let servers = list(
            servers
                .iter()
                .map(|s| format!("\"{}\"", self.name(s)))
                .collect(),
        );
        let globs = list(target_files.iter().map(|g| format!("\"{g}\"")).collect());
        let text = format!(
            "servers: {servers}\ntarget_files: {globs}\nprobe:\n  interval: 1h\n  allow_private_addresses: true\n\
             dns:\n  nameservers: [\"{}\"]\ntls:\n  trust_store: webpki\n  ca_files: [\"{}\"]\n",
            self.dns.addr,
            self.root.display()
        );
        let path = self.dir.join("config.yml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn start_exporter(&self, config: &Path) -> Exporter {
        let source = Source {
            file: Some(config.to_owned()),
            ..Source::default()
        };
        let roots = self.ca.root_store();
        let timeouts = self.timeouts;
        let make_env = Box::new(move |c: &matrix_federation_exporter::config::Config| {
            // The config's resolver and roots, with the spec ports left alone (every name has an explicit port).
            let mut env = ProbeEnv::new(
                &c.dns.nameservers,
                roots.clone(),
                Ports::default(),
                timeouts,
            )?;
            env.checks = c.probe.checks;
            // The world is on loopback: the config must allow it, as the daemon's `ProbeEnv::from_config` would.
            env.allow_private_addresses = c.probe.allow_private_addresses;
            Ok(env)
        });
        daemon::start_reloadable(source, make_env).unwrap()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn request(exporter: &Exporter, method: &str, path: &str) -> (u16, String) {
    let method = http::Method::from_bytes(method.as_bytes()).expect("a method");
    let answer = support::router::request(&exporter.router, method, path, &[]).await;
    (answer.status.as_u16(), answer.body)
}

/// Waits (bounded) until `server_name` has a report.
async fn probed(exporter: &Exporter, server_name: &str) {
    let mut changes = exporter.reports();
    let wait = changes.wait_for(|_| exporter.report(server_name).is_some());
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .unwrap_or_else(|_| panic!("{server_name} was never probed"))
        .unwrap();
}

fn series_of(metrics: &str, server_name: &str) -> usize {
    let needle = format!("server_name=\"{server_name}\"");
    metrics.lines().filter(|l| l.contains(&needle)).count()
}

#[tokio::test]
async fn reload_adds_and_removes_servers_and_a_bad_config_keeps_the_old_one() {
    let world = World::start("api").await;
    let config = world.write_config(&["a.test", "b.test"], &[]);
    let exporter = world.start_exporter(&config);
    let mut ready = exporter.ready.clone();
    tokio::time::timeout(Duration::from_secs(20), ready.wait_for(|r| *r))
        .await
        .unwrap()
        .unwrap();
    let (a, b, c) = (
        world.name("a.test"),
        world.name("b.test"),
        world.name("c.test"),
    );
    let (_, m) = request(&exporter, "GET", "/metrics").await;
    assert!(series_of(&m, &a) > 10 && series_of(&m, &b) > 10, "{m}");
    let a_before = exporter.report(&a).unwrap();

    // b goes, c comes.
    world.write_config(&["a.test", "c.test"], &[]);
    let (status, body) = request(&exporter, "POST", "/-/reload").await;
    assert_eq!(status, 200, "{body}");
    let (_, m) = request(&exporter, "GET", "/metrics").await;
    assert_eq!(series_of(&m, &b), 0, "removed at once\n{m}");
    assert!(
        m.contains("matrix_federation_exporter_config_last_reload_successful 1"),
        "{m}"
    );
    probed(&exporter, &c).await;
    let (_, m) = request(&exporter, "GET", "/metrics").await;
    assert!(series_of(&m, &c) > 10, "{m}");
    // a kept its result (its hourly probe did not run again).
    assert!(std::sync::Arc::ptr_eq(
        &a_before,
        &exporter.report(&a).unwrap()
    ));

    // A bad config is refused: 500 with the reason, the old list stays, the gauge says so.
    std::fs::write(&config, "servers: [\"https://a.test\"]\n").unwrap();
    let (status, body) = request(&exporter, "POST", "/-/reload").await;
    assert_eq!(status, 500);
    assert!(
        body.contains("servers[0]") && body.contains("invalid server name"),
        "{body}"
    );
    let (_, m) = request(&exporter, "GET", "/metrics").await;
    assert!(
        m.contains("matrix_federation_exporter_config_last_reload_successful 0"),
        "{m}"
    );
    assert!(
        series_of(&m, &a) > 10 && series_of(&m, &c) > 10,
        "the old configuration stays\n{m}"
    );
    // PUT works as well (as for Prometheus), GET does not reload.
    world.write_config(&["a.test"], &[]);
    assert_eq!(request(&exporter, "GET", "/-/reload").await.0, 405);
    assert_eq!(request(&exporter, "PUT", "/-/reload").await.0, 200);
    let (_, m) = request(&exporter, "GET", "/metrics").await;
    assert_eq!(series_of(&m, &c), 0);
    assert!(
        m.contains("matrix_federation_exporter_config_last_reload_successful 1"),
        "{m}"
    );
}

/// `--probe.allow-private-addresses` (`Source::allow_private_addresses`) overrides the file at start and on every
/// reload; without it the file's `false` puts the loopback world out of reach (`address_not_public`).
#[tokio::test]
async fn the_allow_private_addresses_flag_survives_a_reload() {
    let world = World::start("private").await;
    let (a, b) = (world.name("a.test"), world.name("b.test"));
    let write = |servers: &[&str]| {
        let path = world.write_config(servers, &[]);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replace(
                "allow_private_addresses: true",
                "allow_private_addresses: false",
            ),
        )
        .unwrap();
        path
    };
    let config = write(&["a.test"]);
    let start = |flag: bool| {
        let source = Source {
            file: Some(config.clone()),
            allow_private_addresses: flag,
            ..Source::default()
        };
        // As the daemon builds it: the config's resolver, roots and flag, the spec ports (names have a port).
        daemon::start_reloadable(source, Box::new(ProbeEnv::from_config)).unwrap()
    };
    let success = |server: &str, value: u8| {
        format!("matrix_federation_probe_success{{server_name=\"{server}\"}} {value}")
    };

    let public = start(false);
    probed(&public, &a).await;
    let (_, m) = request(&public, "GET", "/metrics").await;
    assert!(m.contains(&success(&a, 0)), "{m}");
    assert!(m.contains("reason=\"address_not_public\""), "{m}");
    drop(public);

    let exporter = start(true);
    probed(&exporter, &a).await;
    let (_, m) = request(&exporter, "GET", "/metrics").await;
    assert!(m.contains(&success(&a, 1)), "{m}");
    write(&["a.test", "b.test"]);
    let (status, body) = request(&exporter, "POST", "/-/reload").await;
    assert_eq!(status, 200, "{body}");
    probed(&exporter, &b).await;
    let (_, m) = request(&exporter, "GET", "/metrics").await;
    assert!(
        m.contains(&success(&b, 1)),
        "the flag still applies after the reload\n{m}"
    );
    assert!(m.contains("class=\"loopback\""), "{m}");
}

/// `--metrics.profile` (`Source::profile`) overrides the file's `metrics.profile` at start and on every reload;
/// without the flag a reload applies the file's new value.
#[tokio::test]
async fn the_metrics_profile_flag_wins_over_the_file_and_survives_a_reload() {
    let world = World::start("profile").await;
    let a = world.name("a.test");
    let config = world.write_config(&["a.test"], &[]);
    let set_profile = |profile: &str| {
        let text = std::fs::read_to_string(&config).unwrap();
        let text = text.split("metrics:").next().unwrap().to_owned();
        std::fs::write(&config, format!("{text}metrics:\n  profile: {profile}\n")).unwrap();
    };
    let start = |flag: Option<Profile>| {
        let source = Source {
            file: Some(config.clone()),
            profile: flag,
            ..Source::default()
        };
        daemon::start_reloadable(source, Box::new(ProbeEnv::from_config)).unwrap()
    };
    let profile_of = |m: &str| {
        let observer =
            m.contains("matrix_federation_exporter_metrics_profile_info{profile=\"observer\"}");
        let full = m.contains("matrix_federation_exporter_metrics_profile_info{profile=\"full\"}");
        assert!(observer != full, "{m}");
        if observer { "observer" } else { "full" }
    };

    // The file says full, the flag observer: observer, also after a reload.
    set_profile("full");
    let flagged = start(Some(Profile::Observer));
    probed(&flagged, &a).await;
    let (_, m) = request(&flagged, "GET", "/metrics").await;
    assert_eq!(profile_of(&m), "observer");
    assert!(!m.contains("matrix_federation_tls_info"), "{m}");
    assert_eq!(request(&flagged, "POST", "/-/reload").await.0, 200);
    let (_, m) = request(&flagged, "GET", "/metrics").await;
    assert_eq!(
        profile_of(&m),
        "observer",
        "the flag still applies after the reload"
    );
    drop(flagged);

    // Without the flag, the file decides, and a reload applies its new value.
    let plain = start(None);
    probed(&plain, &a).await;
    let (_, m) = request(&plain, "GET", "/metrics").await;
    assert_eq!(profile_of(&m), "full");
    assert!(m.contains("matrix_federation_tls_info"), "{m}");
    set_profile("observer");
    assert_eq!(request(&plain, "POST", "/-/reload").await.0, 200);
    let (_, m) = request(&plain, "GET", "/metrics").await;
    assert_eq!(profile_of(&m), "observer");
    assert!(!m.contains("matrix_federation_tls_info"), "{m}");
}

#[tokio::test]
async fn a_target_file_edit_is_picked_up_without_a_signal_and_its_labels_are_added() {
    let world = World::start("files").await;
    let targets = world.dir.join("targets");
    std::fs::create_dir_all(&targets).unwrap();
    let file = targets.join("team.json");
    let (a, b) = (world.name("a.test"), world.name("b.test"));
    std::fs::write(
        &file,
        format!(r#"[{{"targets": ["{a}"], "labels": {{"team": "blue"}}}}]"#),
    )
    .unwrap();
    let config = world.write_config(&[], &["targets/*.json"]);
    let exporter = world.start_exporter(&config);
    let watcher = exporter.watch_target_files();
    probed(&exporter, &a).await;
    let (_, m) = request(&exporter, "GET", "/metrics").await;
    assert!(
        m.contains(&format!(
            r#"matrix_federation_probe_success{{server_name="{a}",team="blue"}} 1"#
        )),
        "{m}"
    );

    // Edit the file: b comes with its own label, a goes. No signal, no request.
    std::fs::write(
        &file,
        format!(r#"[{{"targets": ["{b}"], "labels": {{"team": "green"}}}}]"#),
    )
    .unwrap();
    probed(&exporter, &b).await;
    let (_, m) = request(&exporter, "GET", "/metrics").await;
    assert_eq!(series_of(&m, &a), 0, "{m}");
    assert!(
        m.contains(&format!(r#"server_name="{b}",team="green""#)),
        "{m}"
    );
    watcher.abort();
}

#[tokio::test]
async fn bad_target_files_are_refused_with_a_precise_message() {
    let world = World::start("bad").await;
    let dir = world.dir.join("t");
    std::fs::create_dir_all(&dir).unwrap();
    let a = world.name("a.test");
    let cases: &[(&str, String, &str)] = &[
        ("nothing.json", String::new(), "matches no file"),
        (
            "broken.json",
            "[{\"targets\": [".to_owned(),
            "not a file_sd JSON list",
        ),
        (
            "clash.json",
            format!(r#"[{{"targets": ["{a}"], "labels": {{"reason": "x"}}}}]"#),
            "clashes",
        ),
        (
            "dup.json",
            format!(r#"[{{"targets": ["{a}", "{a}"]}}]"#),
            "is already listed",
        ),
        (
            "name.yml",
            "- targets: [\"https://x.test\"]\n".to_owned(),
            "[0].targets[0]: invalid server name",
        ),
    ];
    for (file, content, want) in cases {
        if !content.is_empty() {
            std::fs::write(dir.join(file), content).unwrap();
        }
        let config = world.write_config(&[], &[&format!("t/{file}")]);
        let source = Source {
            file: Some(config),
            ..Source::default()
        };
        let error = match daemon::start_reloadable(source, Box::new(ProbeEnv::from_config)) {
            Ok(_) => panic!("{file} was accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(error.contains(want), "{file}: {error}");
        assert!(
            error.contains(file),
            "{file}: the message names the file: {error}"
        );
        let _ = std::fs::remove_file(dir.join(file));
    }
}

// ---- the /probe cap across reloads ----

/// Writes the config with no servers and `probe.max_concurrent_probes: cap`, and returns its path.
fn write_probe_cap(world: &World, cap: usize) -> PathBuf {
    let path = world.write_config(&[], &[]);
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace(
        "probe:\n",
        &format!("probe:\n  max_concurrent_probes: {cap}\n"),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// `matrix_federation_exporter_probes_in_flight` now.
async fn in_flight(exporter: &Exporter) -> usize {
    let (_, m) = request(exporter, "GET", "/metrics").await;
    m.lines()
        .find_map(|l| l.strip_prefix("matrix_federation_exporter_probes_in_flight "))
        .unwrap_or_else(|| panic!("no probes_in_flight\n{m}"))
        .parse()
        .unwrap()
}

/// Polls until `probes_in_flight` is `want` and the hang server has accepted `connections` (bounded).
async fn wait_for(world: &World, exporter: &Exporter, want: usize, connections: usize) {
    for _ in 0..400 {
        if in_flight(exporter).await == want && world.hang.connections() == connections {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "probes_in_flight never became {want} with {connections} connections (now {} and {})",
        in_flight(exporter).await,
        world.hang.connections()
    );
}

/// Sends `n` `/probe` requests for hang.test at once and checks that each is refused with 503 naming `cap`,
/// and that `probes_in_flight` never rises above `running` meanwhile. Refused requests never probe, so they
/// end at once; one that got a permit would hang, and shows in `probes_in_flight` first.
async fn refused_wave(world: &World, exporter: &Exporter, n: usize, cap: usize, running: usize) {
    let uri = format!("/probe?target={}", world.name("hang.test"));
    let wave: Vec<_> = (0..n)
        .map(|_| {
            let (exporter, uri) = (exporter.clone(), uri.clone());
            tokio::spawn(async move { request(&exporter, "GET", &uri).await })
        })
        .collect();
    for _ in 0..400 {
        let now = in_flight(exporter).await;
        assert!(
            now <= running,
            "{now} probes in flight with {running} running under a cap of {cap}"
        );
        if wave.iter().all(tokio::task::JoinHandle::is_finished) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for reply in wave {
        assert!(reply.is_finished(), "a request over the cap is waiting");
        let (status, body) = reply.await.unwrap();
        assert_eq!(status, 503, "{body}");
        assert_eq!(
            body,
            format!(
                "Too many /probe requests in flight (probe.max_concurrent_probes is {cap}); try again later\n"
            )
        );
    }
    assert_eq!(in_flight(exporter).await, running);
}

/// Issue 11: every reload built a new `/probe` limiter while the probes of the old one still ran, so 80 probes
/// ran at once under a cap of 16. The cap is one limiter for the exporter's life; a reload resizes it in place,
/// and shrinking it cuts no running probe.
#[tokio::test]
async fn the_probe_cap_holds_across_reloads_and_a_reload_resizes_it() {
    let mut world = World::start("cap").await;
    // hang.test holds its permit until the request is dropped (the handshake timeout is far away).
    world.timeouts.tls_handshake = Duration::from_secs(60);
    let config = write_probe_cap(&world, 2);
    let exporter = world.start_exporter(&config);
    let mut ready = exporter.ready.clone();
    tokio::time::timeout(Duration::from_secs(20), ready.wait_for(|r| *r))
        .await
        .unwrap()
        .unwrap();
    let uri = format!("/probe?target={}", world.name("hang.test"));
    let hold = || {
        let (exporter, uri) = (exporter.clone(), uri.clone());
        tokio::spawn(async move { request(&exporter, "GET", &uri).await })
    };

    // Two probes hold both permits; a third is refused.
    let mut holders = vec![hold(), hold()];
    wait_for(&world, &exporter, 2, 2).await;
    refused_wave(&world, &exporter, 1, 2, 2).await;

    // The same cap after a reload: still full, however many ask.
    let (status, body) = request(&exporter, "POST", "/-/reload").await;
    assert_eq!(status, 200, "{body}");
    refused_wave(&world, &exporter, 4, 2, 2).await;
    assert_eq!(world.hang.connections(), 2, "no refused request probed");

    // Grown to 3: exactly one more.
    write_probe_cap(&world, 3);
    assert_eq!(request(&exporter, "POST", "/-/reload").await.0, 200);
    holders.push(hold());
    wait_for(&world, &exporter, 3, 3).await;
    refused_wave(&world, &exporter, 3, 3, 3).await;

    // Shrunk to 1: the three running probes go on; new ones wait for the count to drop below the new cap.
    write_probe_cap(&world, 1);
    assert_eq!(request(&exporter, "POST", "/-/reload").await.0, 200);
    refused_wave(&world, &exporter, 2, 1, 3).await;
    for holder in holders.drain(..2) {
        holder.abort();
    }
    wait_for(&world, &exporter, 1, 3).await;
    refused_wave(&world, &exporter, 2, 1, 1).await;
    holders.pop().unwrap().abort();
    wait_for(&world, &exporter, 0, 3).await;
    let last = hold();
    wait_for(&world, &exporter, 1, 4).await;
    last.abort();
}
