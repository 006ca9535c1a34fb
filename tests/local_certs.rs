//! `local_certificates` (DESIGN.md point 7): a renewed certificate on disk that the server does not serve yet.
//!
//! One world: renew.test (127.0.0.2) serves an old certificate (notBefore 30 days ago, 10 days left) on both its
//! federation port and the well-known's port 443. The files hold what an ACME client left: a renewed leaf, the
//! served leaf itself, or nothing usable.

mod support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use matrix_federation_exporter::config::{Config, LocalCertificates, server_name::ServerName};
use matrix_federation_exporter::probe::env::ProbeEnv;
use matrix_federation_exporter::probe::local_certs::LocalCerts;
use matrix_federation_exporter::probe::probe_server;
use matrix_federation_exporter::render::{explain, html, metrics, tester, text};
use matrix_federation_exporter::report::{ServerReport, Warning};
use rustls::pki_types::CertificateDer;
use support::{Leaf, Routes, TIMEOUTS, Validity, World, Zone, matrix_routes};

const NAME: &str = "renew.test";
const HOUR: Duration = Duration::from_secs(3600);

/// renew.test with the old certificate (10 days left) on both ports; its well-known answers 404 (no delegation).
async fn world(label: &str) -> (World, Leaf) {
    let mut world = World::new(
        label,
        Zone::new().a(NAME, "127.0.0.2".parse().unwrap()),
        TIMEOUTS,
    )
    .await;
    world.refuse_ipv6();
    let old = world.ca.leaf(
        &[NAME],
        Validity::ExpiresIn(Duration::from_secs(10 * 86400)),
    );
    let fed = support::Behaviour::Https {
        leaf: old.clone(),
        routes: matrix_routes(NAME),
    };
    world.serve_federation([127, 0, 0, 2], fed).await;
    let wk = support::Behaviour::Https {
        leaf: old.clone(),
        routes: Routes::new(),
    };
    world.serve_well_known([127, 0, 0, 2], wk).await;
    (world, old)
}

fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mfe-local-certs-{}-{label}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn pem(chain: &[CertificateDer<'_>]) -> String {
    use base64::Engine as _;
    use std::fmt::Write as _;
    let mut out = String::new();
    for c in chain {
        let b64 = base64::engine::general_purpose::STANDARD.encode(c.as_ref());
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            let _ = writeln!(out, "{}", std::str::from_utf8(line).unwrap());
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

/// Writes `contents` to `path` and sets its mtime `age` in the past.
fn write_aged(path: &Path, contents: &[u8], age: Duration) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(contents).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

fn env_with(world: &World, files: Vec<String>) -> ProbeEnv {
    let mut env = world.env.clone();
    env.local_certs = Arc::new(LocalCerts::new(vec![LocalCertificates {
        server_name: ServerName::parse(NAME).unwrap(),
        files,
        reload_grace: HOUR,
    }]));
    env
}

async fn probe(env: &ProbeEnv) -> ServerReport {
    probe_server(env, &ServerName::parse(NAME).unwrap()).await
}

fn warnings(report: &ServerReport, which: Warning) -> Vec<String> {
    report
        .warnings()
        .into_iter()
        .filter(|w| w.warning == which)
        .map(|w| w.address.map_or_else(String::new, |a| a.to_string()))
        .collect()
}

fn exposition(report: ServerReport) -> String {
    metrics::encode_reports_only(&[Arc::new(report)], metrics::Format::Text004)
}

#[tokio::test]
async fn a_renewed_certificate_not_served_on_the_federation_port_and_on_443_is_cert_not_reloaded() {
    let (world, old) = world("lc-renewed").await;
    let dir = temp_dir("renewed");
    let renewed = world.ca.leaf(&[NAME], Validity::Valid);
    let file = dir.join("fullchain.pem");
    write_aged(&file, pem(&renewed.chain).as_bytes(), 2 * HOUR);
    let env = env_with(&world, vec![file.to_string_lossy().into_owned()]);

    let report = probe(&env).await;
    assert!(
        report.success(),
        "{:?}",
        report.all_failures().collect::<Vec<_>>()
    );
    let mut at = warnings(&report, Warning::CertNotReloaded);
    at.sort();
    let mut want = vec![
        format!("127.0.0.2:{}", world.fed.port),
        format!("127.0.0.2:{}", world.wk.port),
    ];
    want.sort();
    assert_eq!(at, want);
    let nr = &report.local_certs.not_reloaded;
    assert!(nr.iter().any(|n| n.well_known) && nr.iter().any(|n| !n.well_known));
    let old_facts = matrix_federation_exporter::probe::connect::cert::facts(&old.chain[0]).unwrap();
    assert!(
        nr.iter()
            .all(|n| n.served.fingerprint_sha256 == old_facts.fingerprint_sha256)
    );

    // `check` names the address and what to run.
    let shown = text::render(&report, SystemTime::now(), false);
    assert!(shown.contains("cert_not_reloaded"), "{shown}");
    assert!(
        shown.contains("kill -HUP") && shown.contains("--deploy-hook"),
        "{shown}"
    );
    assert!(shown.contains(&world.fed_addr(2)), "{shown}");
    // The status page: the detail section and the index's problem column.
    let page = html::server_page(NAME, Some(&report), SystemTime::now());
    assert!(
        page.contains("Local certificates") && page.contains("kill -HUP"),
        "{page}"
    );
    assert!(page.contains(&world.fed_addr(2)), "{page}");
    let index = html::index_page(
        &[Arc::new(report.clone())],
        [NAME],
        html::Sort::default(),
        SystemTime::now(),
    );
    assert!(index.contains("renewed certificate not loaded"), "{index}");
    // The report API's extension key.
    let json = tester::tester_report(&report);
    let ext = &json[tester::EXTENSION_KEY]["local_certificates"];
    assert_eq!(ext["not_reloaded"].as_array().unwrap().len(), 2, "{ext}");
    let fix = explain::not_reloaded_fix(&nr[0]);
    assert!(fix.contains(&*nr[0].cert_file), "{fix}");

    // The metric: the renewed leaf's notAfter, labelled with the file.
    let renewed_facts =
        matrix_federation_exporter::probe::connect::cert::facts(&renewed.chain[0]).unwrap();
    let line = format!(
        "matrix_federation_local_cert_not_after_timestamp_seconds{{server_name=\"{NAME}\",cert_file=\"{}\"}} {}",
        file.display(),
        renewed_facts.not_after
    );
    let text = exposition(report);
    assert!(text.contains(&line), "{line}\n{text}");
    assert!(text.contains("warning=\"cert_not_reloaded\""), "{text}");
}

#[tokio::test]
async fn the_served_certificate_on_disk_and_a_renewal_within_the_grace_are_fine() {
    let (world, old) = world("lc-same").await;
    let dir = temp_dir("same");
    let same = dir.join("same.pem");
    write_aged(&same, pem(&old.chain).as_bytes(), 48 * HOUR);
    let fresh = dir.join("fresh.pem");
    let renewed = world.ca.leaf(&[NAME], Validity::Valid);
    write_aged(
        &fresh,
        pem(&renewed.chain).as_bytes(),
        Duration::from_secs(60),
    );
    let env = env_with(
        &world,
        vec![
            same.to_string_lossy().into_owned(),
            fresh.to_string_lossy().into_owned(),
        ],
    );
    let report = probe(&env).await;
    assert!(report.success());
    assert_eq!(report.warnings(), Vec::new());
    assert_eq!(report.local_certs.files.len(), 2);
    assert!(report.local_certs.files.iter().all(|f| f.leaf.is_ok()));

    // Once the grace has passed (the file is older), the renewal counts.
    write_aged(&fresh, pem(&renewed.chain).as_bytes(), 2 * HOUR);
    let report = probe(&env).await;
    assert_eq!(warnings(&report, Warning::CertNotReloaded).len(), 2);
}

#[tokio::test]
async fn missing_unreadable_oversized_and_garbage_files_are_local_cert_unreadable_never_failures() {
    let (world, _) = world("lc-unreadable").await;
    let dir = temp_dir("unreadable");
    let missing = dir.join("missing.pem");
    // Tests run as root, who reads a mode-000 file: a directory is a path no one can read a certificate from.
    let directory = dir.join("a-directory.pem");
    std::fs::create_dir(&directory).unwrap();
    let garbage = dir.join("garbage.pem");
    write_aged(&garbage, b"not a certificate\n", 2 * HOUR);
    let big = dir.join("big.pem");
    write_aged(&big, &vec![b'A'; 1024 * 1024 + 1], 2 * HOUR);
    let fifo = dir.join("fifo.pem");
    let made_fifo = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success());
    let mut files: Vec<String> = [&missing, &directory, &garbage, &big]
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if made_fifo {
        files.push(fifo.to_string_lossy().into_owned());
    }
    let env = env_with(&world, files.clone());
    let report = probe(&env).await;
    assert!(report.success(), "never a probe failure");
    assert_eq!(
        warnings(&report, Warning::LocalCertUnreadable),
        vec![String::new(); files.len()]
    );
    let reason = |path: &Path| {
        let file = report
            .local_certs
            .files
            .iter()
            .find(|f| *f.cert_file == *path.to_string_lossy())
            .unwrap();
        file.leaf.clone().unwrap_err()
    };
    assert!(
        reason(&missing).starts_with("missing"),
        "{}",
        reason(&missing)
    );
    assert!(reason(&directory).starts_with("not a regular file"));
    assert_eq!(reason(&garbage), "holds no PEM certificate");
    assert!(reason(&big).starts_with("over 1 MiB"), "{}", reason(&big));
    if made_fifo {
        // Never opened: opening a FIFO for reading would block the probe.
        assert!(reason(&fifo).starts_with("not a regular file"));
    }
    let shown = text::render(&report, SystemTime::now(), false);
    assert!(shown.contains("holds no PEM certificate"), "{shown}");
    let text = exposition(report);
    assert!(
        !text.contains("local_cert_not_after_timestamp_seconds{"),
        "{text}"
    );
    assert!(text.contains("warning=\"local_cert_unreadable\""), "{text}");
}

#[tokio::test]
async fn files_are_read_only_when_they_change_and_a_replaced_file_is_picked_up() {
    let (world, old) = world("lc-cache").await;
    let dir = temp_dir("cache");
    let file = dir.join("fullchain.pem");
    write_aged(&file, pem(&old.chain).as_bytes(), 48 * HOUR);
    let env = env_with(
        &world,
        vec![dir.join("*.pem").to_string_lossy().into_owned()],
    );

    let report = probe(&env).await;
    assert_eq!(report.warnings(), Vec::new());
    assert_eq!(env.local_certs.reads(), 1);
    let report = probe(&env).await;
    assert_eq!(
        env.local_certs.reads(),
        1,
        "an unchanged file is not read again"
    );
    assert_eq!(report.local_certs.files.len(), 1);

    // certbot renews: the file is replaced between two probes; the next probe reads it.
    let renewed = world.ca.leaf(&[NAME], Validity::Valid);
    write_aged(&file, pem(&renewed.chain).as_bytes(), 2 * HOUR);
    let report = probe(&env).await;
    assert_eq!(env.local_certs.reads(), 2);
    assert_eq!(warnings(&report, Warning::CertNotReloaded).len(), 2);
}

#[tokio::test]
async fn an_entry_for_a_server_this_replica_does_not_probe_changes_nothing() {
    let (world, _) = world("lc-other").await;
    let mut env = world.env.clone();
    env.local_certs = Arc::new(LocalCerts::new(vec![LocalCertificates {
        server_name: ServerName::parse("elsewhere.test").unwrap(),
        files: vec!["/nonexistent/mfe/fullchain.pem".to_owned()],
        reload_grace: HOUR,
    }]));
    let report = probe(&env).await;
    assert!(report.local_certs.files.is_empty());
    assert_eq!(report.warnings(), Vec::new());
    assert_eq!(env.local_certs.reads(), 0);
}

#[test]
fn relative_files_are_resolved_against_the_config_file() {
    let dir = temp_dir("config");
    let path = dir.join("config.yml");
    std::fs::write(
        &path,
        "servers: [renew.test]\nlocal_certificates:\n  - server_name: renew.test\n    files: [certs/*.pem]\n",
    )
    .unwrap();
    let config = Config::load(&path).unwrap();
    let entry = &config.local_certificates[0];
    assert_eq!(
        entry.files,
        vec![dir.join("certs/*.pem").to_string_lossy().into_owned()]
    );
    assert_eq!(entry.reload_grace, HOUR);
}

/// Waits (bounded) until the exporter's latest report of renew.test satisfies `want`.
async fn report_where(
    exporter: &matrix_federation_exporter::serve::daemon::Exporter,
    want: impl Fn(&ServerReport) -> bool,
) {
    let mut changes = exporter.reports();
    let wait = changes.wait_for(|_| exporter.report(NAME).is_some_and(|r| want(&r)));
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("a probe of renew.test with the expected local_certificates")
        .unwrap();
}

#[tokio::test]
async fn a_reload_that_adds_or_removes_an_entry_takes_effect_without_a_restart() {
    use matrix_federation_exporter::config::Source;
    use matrix_federation_exporter::probe::env::Ports;
    use matrix_federation_exporter::serve::daemon;

    let (world, _) = world("lc-reload").await;
    let dir = temp_dir("reload");
    let root = world.ca.write_root_pem(&dir);
    let renewed = world.ca.leaf(&[NAME], Validity::Valid);
    write_aged(
        &dir.join("fullchain.pem"),
        pem(&renewed.chain).as_bytes(),
        2 * HOUR,
    );
    let config = dir.join("config.yml");
    let write = |entry: &str| {
        let text = format!(
            "servers: [{NAME}]\nprobe:\n  interval: 1s\n  jitter: 0s\n  allow_private_addresses: true\n\
             dns:\n  nameservers: [\"{}\"]\ntls:\n  trust_store: webpki\n  ca_files: [\"{}\"]\n{entry}",
            world.dns.addr,
            root.display()
        );
        std::fs::write(&config, text).unwrap();
    };
    write("");
    let source = Source {
        file: Some(config.clone()),
        ..Source::default()
    };
    let ports = Ports {
        well_known: world.wk.port,
        federation: world.fed.port,
    };
    // The daemon's own environment (`ProbeEnv::from_config`), with the spec ports mapped to the world's.
    let make_env = Box::new(move |c: &Config| {
        let mut env = ProbeEnv::from_config(c)?;
        env.ports = ports;
        Ok(env)
    });
    let exporter = daemon::start_reloadable(source, make_env).unwrap();
    report_where(&exporter, |r| r.success() && r.local_certs.files.is_empty()).await;

    // Added: the relative path is the config file's neighbour; the next probe warns.
    write("local_certificates:\n  - server_name: renew.test\n    files: [fullchain.pem]\n");
    exporter.reload().await.unwrap();
    report_where(&exporter, |r| r.local_certs.not_reloaded.len() == 2).await;

    // Removed: the next probe has no local_certificates at all.
    write("");
    exporter.reload().await.unwrap();
    report_where(&exporter, |r| {
        r.local_certs.files.is_empty() && r.warnings().is_empty()
    })
    .await;
}
