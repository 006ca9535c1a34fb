//! Config loading as users meet it: a table of bad files with their exact one-line errors, the shipped example,
//! and the binary's `--check-config` exit codes. Nothing here touches the network.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use matrix_federation_exporter::config::server_name::ServerName;
use matrix_federation_exporter::config::{Config, TrustStore};

/// One bad config: the YAML, extra files written next to it, and the error after `PATH: `. `{dir}` in `want`
/// stands for the directory holding the config file.
struct Bad {
    name: &'static str,
    yaml: &'static str,
    files: &'static [(&'static str, &'static str)],
    want: &'static str,
}

const NO_CERT_PEM: &str = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
const UNTERMINATED_PEM: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n";

const BAD: &[Bad] = &[
    Bad {
        name: "unknown metrics profile",
        yaml: "metrics:\n  profile: minimal\n",
        files: &[],
        want: "metrics.profile: \"minimal\" is not a profile: write full or observer",
    },
    Bad {
        name: "metrics profile in capitals",
        yaml: "metrics:\n  profile: Observer\n",
        files: &[],
        want: "metrics.profile: \"Observer\" is not a profile: write full or observer",
    },
    Bad {
        name: "unknown metrics key",
        yaml: "metrics:\n  profiles: observer\n",
        files: &[],
        want: "line 2 column 3: unknown field `profiles`, expected one of profile",
    },
    Bad {
        name: "support check not a bool",
        yaml: "probe:\n  checks:\n    support: maybe\n",
        files: &[],
        want: "line 3 column 14: invalid boolean",
    },
    Bad {
        name: "unknown check",
        yaml: "probe:\n  checks:\n    contacts: true\n",
        files: &[],
        want: "line 3 column 5: unknown field `contacts`, expected one of keys, version, client, support",
    },
    Bad {
        name: "local_certificates without server_name",
        yaml: "local_certificates:\n  - files: [fullchain.pem]\n",
        files: &[],
        want: "local_certificates[0].server_name: missing",
    },
    Bad {
        name: "local_certificates with a bad server_name",
        yaml: "local_certificates:\n  - server_name: 'a b'\n    files: [fullchain.pem]\n",
        files: &[],
        want: "local_certificates[0].server_name: invalid server name \"a b\": character ' ' at byte 1 is not allowed in a DNS name (only letters, digits, '-' and '.')",
    },
    Bad {
        name: "local_certificates without files",
        yaml: "local_certificates:\n  - server_name: example.org\n",
        files: &[],
        want: "local_certificates[0].files: lists no file (give the PEM files the server serves, e.g. certbot's fullchain.pem)",
    },
    Bad {
        name: "local_certificates with a bad glob",
        yaml: "local_certificates:\n  - server_name: example.org\n    files: ['/etc/letsencrypt/live/[x/fullchain.pem']\n",
        files: &[],
        want: "local_certificates[0].files[0]: invalid glob \"/etc/letsencrypt/live/[x/fullchain.pem\": Pattern syntax error near position 22: invalid range pattern",
    },
    Bad {
        name: "local_certificates with a bad reload_grace",
        yaml: "local_certificates:\n  - server_name: example.org\n    files: [fullchain.pem]\n    reload_grace: soon\n",
        files: &[],
        want: "local_certificates[0].reload_grace: \"soon\" is not a duration: write a number and a unit, as in 30s, 5m, 1h30m or 2d (units: ms, s, m, h, d)",
    },
    Bad {
        name: "local_certificates with an unknown key",
        yaml: "local_certificates:\n  - server_name: example.org\n    file: fullchain.pem\n",
        files: &[],
        want: "line 3 column 5: unknown field `file`, expected one of server_name, files, reload_grace",
    },
    Bad {
        name: "unknown top-level key",
        yaml: "servers: []\ntargets: [matrix.org]\n",
        files: &[],
        want: "line 2 column 1: unknown field `targets`, expected one of servers, probe, dns, tls, api, web, target_files, local_certificates, homeservers, notaries, metrics",
    },
    Bad {
        name: "no connections allowed",
        yaml: "web:\n  max_connections: 0\n",
        files: &[],
        want: "web.max_connections: 0 is not between 1 and 1000000",
    },
    Bad {
        name: "zero idle timeout",
        yaml: "web:\n  idle_timeout: 0s\n",
        files: &[],
        want: "web.idle_timeout: must be greater than 0",
    },
    Bad {
        name: "unknown web key",
        yaml: "web:\n  read_timeout: 5s\n",
        files: &[],
        want: "line 2 column 3: unknown field `read_timeout`, expected one of max_connections, header_read_timeout, idle_timeout",
    },
    Bad {
        name: "unknown nested key",
        yaml: "probe:\n  timeouts:\n    tls: 5s\n",
        files: &[],
        want: "line 3 column 5: unknown field `tls`, expected one of dns, connect, tls_handshake, well_known, http",
    },
    Bad {
        name: "unknown check",
        yaml: "probe:\n  checks:\n    clients: true\n",
        files: &[],
        want: "line 3 column 5: unknown field `clients`, expected one of keys, version, client, support",
    },
    Bad {
        name: "bad duration",
        yaml: "probe:\n  interval: 5 parsecs\n",
        files: &[],
        want: "probe.interval: \"5 parsecs\" is not a duration: write a number and a unit, as in 30s, 5m, 1h30m or 2d (units: ms, s, m, h, d)",
    },
    Bad {
        name: "duration without unit",
        yaml: "probe:\n  timeouts:\n    dns: 5\n",
        files: &[],
        want: "probe.timeouts.dns: \"5\" is not a duration: write a number and a unit, as in 30s, 5m, 1h30m or 2d (units: ms, s, m, h, d)",
    },
    Bad {
        name: "zero interval",
        yaml: "probe:\n  interval: 0s\n",
        files: &[],
        want: "probe.interval: must be greater than 0",
    },
    Bad {
        name: "jitter equal to interval",
        yaml: "probe:\n  interval: 10s\n  jitter: 10s\n",
        files: &[],
        want: "probe.jitter: 10s must be less than probe.interval (10s)",
    },
    Bad {
        name: "concurrency 0",
        yaml: "probe:\n  concurrency: 0\n",
        files: &[],
        want: "probe.concurrency: 0 is not between 1 and 100000",
    },
    Bad {
        name: "concurrency too large",
        yaml: "probe:\n  concurrency: 1000000\n",
        files: &[],
        want: "probe.concurrency: 1000000 is not between 1 and 100000",
    },
    Bad {
        name: "zero timeout",
        yaml: "probe:\n  timeouts:\n    tls_handshake: 0ms\n",
        files: &[],
        want: "probe.timeouts.tls_handshake: must be greater than 0",
    },
    Bad {
        name: "timeout longer than interval",
        yaml: "probe:\n  interval: 30s\n  timeouts:\n    well_known: 1m\n",
        files: &[],
        want: "probe.timeouts.well_known: 1m is longer than probe.interval (30s)",
    },
    Bad {
        name: "server name with a scheme",
        yaml: "servers:\n  - matrix.org\n  - https://matrix.org\n",
        files: &[],
        want: "servers[1]: invalid server name \"https://matrix.org\": \"https://matrix.org\" is a URL, but a server name has no scheme or path: write \"matrix.org\" (the part after @ in a user ID)",
    },
    Bad {
        name: "server name with port 0",
        yaml: "servers: [example.org:0]\n",
        files: &[],
        want: "servers[0]: invalid server name \"example.org:0\": port \"0\" is not a number from 1 to 65535",
    },
    Bad {
        name: "server name with a path",
        yaml: "servers: [example.org/matrix]\n",
        files: &[],
        want: "servers[0]: invalid server name \"example.org/matrix\": character '/' at byte 11 is not allowed in a DNS name (only letters, digits, '-' and '.')",
    },
    Bad {
        name: "unbracketed IPv6",
        yaml: "servers: [\"2001:db8::1\"]\n",
        files: &[],
        want: "servers[0]: invalid server name \"2001:db8::1\": an IPv6 address must be written in square brackets, as in [2001:db8::1]",
    },
    Bad {
        name: "duplicate server",
        yaml: "servers:\n  - matrix.org\n  - example.org\n  - matrix.org\n",
        files: &[],
        want: "servers[2]: duplicate server name \"matrix.org\" (first at servers[0])",
    },
    Bad {
        name: "nameserver by name",
        yaml: "dns:\n  nameservers: [\"9.9.9.9\", dns.google]\n",
        files: &[],
        want: "dns.nameservers[1]: invalid nameserver \"dns.google\": expected IP, IP:PORT or [IPv6]:PORT",
    },
    Bad {
        name: "nameserver with unbracketed IPv6 and port",
        yaml: "dns:\n  nameservers: [\"::1:53:x\"]\n",
        files: &[],
        want: "dns.nameservers[0]: invalid nameserver \"::1:53:x\": expected IP, IP:PORT or [IPv6]:PORT",
    },
    Bad {
        name: "unknown trust store",
        yaml: "tls:\n  trust_store: mozilla\n",
        files: &[],
        want: "line 2 column 16: unknown variant `mozilla`, expected one of system, webpki",
    },
    Bad {
        name: "missing CA file",
        yaml: "tls:\n  ca_files: [missing.pem]\n",
        files: &[],
        want: "tls.ca_files[0]: {dir}/missing.pem: cannot read: No such file or directory (os error 2)",
    },
    Bad {
        name: "CA file without a certificate",
        yaml: "tls:\n  ca_files: [key.pem]\n",
        files: &[("key.pem", NO_CERT_PEM)],
        want: "tls.ca_files[0]: {dir}/key.pem: contains no PEM CERTIFICATE block",
    },
    Bad {
        name: "CA file with a broken PEM block",
        yaml: "tls:\n  ca_files: [broken.pem]\n",
        files: &[("broken.pem", UNTERMINATED_PEM)],
        want: "tls.ca_files[0]: {dir}/broken.pem: invalid PEM: missing \"-----END CERTIFICATE-----\"",
    },
    Bad {
        name: "string where a list is expected",
        yaml: "servers: matrix.org\n",
        files: &[],
        want: "line 1 column 10: expected sequence start",
    },
    Bad {
        name: "section that is not a mapping",
        yaml: "probe: 5\n",
        files: &[],
        want: "line 1 column 8: expected mapping start",
    },
    Bad {
        name: "YAML syntax error",
        yaml: "servers: [matrix.org\n",
        files: &[],
        want: "line 1 column 10: unclosed bracket '['",
    },
    Bad {
        name: "duplicate key",
        yaml: "probe: {}\nprobe: {}\n",
        files: &[],
        want: "line 2 column 1: duplicate mapping key: probe, set DuplicateKeyPolicy in Options if acceptable",
    },
    Bad {
        name: "homeserver without a name",
        yaml: "homeservers:\n  - synapse_admin: {url: 'https://m.example', access_token_file: token}\n",
        files: &[("token", "syt_x\n")],
        want: "homeservers[0].name: is required (the `homeserver` label)",
    },
    Bad {
        name: "homeserver over plain http to a remote host",
        yaml: "homeservers:\n  - name: home\n    synapse_admin: {url: 'http://m.example:8008', access_token_file: token}\n",
        files: &[("token", "syt_x\n")],
        want: "homeservers[0].synapse_admin.url: \"http://m.example:8008\": http:// is allowed only on a loopback address (localhost, 127.0.0.0/8, ::1); use https://",
    },
    Bad {
        name: "homeserver token file missing",
        yaml: "homeservers:\n  - name: home\n    synapse_admin: {url: 'https://m.example', access_token_file: nope}\n",
        files: &[],
        want: "homeservers[0].synapse_admin.access_token_file: {dir}/nope: cannot read: No such file or directory (os error 2)",
    },
    Bad {
        name: "homeserver token file empty",
        yaml: "homeservers:\n  - name: home\n    synapse_admin: {url: 'https://m.example', access_token_file: token}\n",
        files: &[("token", "  \n")],
        want: "homeservers[0].synapse_admin.access_token_file: {dir}/token: holds no token",
    },
    Bad {
        name: "homeserver names twice",
        yaml: "homeservers:\n  - name: home\n    synapse_admin: {url: 'https://a.example', access_token_file: token}\n  - name: home\n    synapse_admin: {url: 'https://b.example', access_token_file: token}\n",
        files: &[("token", "syt_x\n")],
        want: "homeservers[1].name: duplicate homeserver name \"home\" (first at homeservers[0])",
    },
    Bad {
        name: "homeserver max_destinations 0",
        yaml: "homeservers:\n  - name: home\n    synapse_admin: {url: 'https://m.example', access_token_file: token, max_destinations: 0}\n",
        files: &[("token", "syt_x\n")],
        want: "homeservers[0].synapse_admin.max_destinations: 0 is not between 1 and 100000",
    },
    Bad {
        name: "homeserver refresh 0",
        yaml: "homeservers:\n  - name: home\n    synapse_admin: {url: 'https://m.example', access_token_file: token, refresh: 0s}\n",
        files: &[("token", "syt_x\n")],
        want: "homeservers[0].synapse_admin.refresh: must be greater than 0",
    },
    Bad {
        name: "homeserver unknown key",
        yaml: "homeservers:\n  - name: home\n    synapse_admin:\n      url: https://m.example\n      token: x\n",
        files: &[],
        want: "line 5 column 7: unknown field `token`, expected one of url, access_token_file, refresh, max_destinations, skip_failing_longer_than",
    },
    Bad {
        name: "notary without a server name",
        yaml: "notaries:\n  - interval: 1h\n",
        files: &[],
        want: "notaries[0].server_name: is required",
    },
    Bad {
        name: "notary with an invalid server name",
        yaml: "notaries:\n  - server_name: 'matrix.org:0'\n",
        files: &[],
        want: "notaries[0].server_name: invalid server name \"matrix.org:0\": port \"0\" is not a number from 1 to 65535",
    },
    Bad {
        name: "notary listed twice",
        yaml: "notaries:\n  - server_name: matrix.org\n  - server_name: matrix.org\n    batch_size: 5\n",
        files: &[],
        want: "notaries[1].server_name: duplicate notary \"matrix.org\" (first at notaries[0])",
    },
    Bad {
        name: "notary batch size 0",
        yaml: "notaries:\n  - server_name: matrix.org\n    batch_size: 0\n",
        files: &[],
        want: "notaries[0].batch_size: 0 is not between 1 and 1000",
    },
    Bad {
        name: "notary interval too short",
        yaml: "notaries:\n  - server_name: matrix.org\n    interval: 10ms\n",
        files: &[],
        want: "notaries[0].interval: 10ms is shorter than 1s",
    },
    Bad {
        name: "notary interval not a duration",
        yaml: "notaries:\n  - server_name: matrix.org\n    interval: hourly\n",
        files: &[],
        want: "notaries[0].interval: \"hourly\" is not a duration: write a number and a unit, as in 30s, 5m, 1h30m or 2d (units: ms, s, m, h, d)",
    },
    Bad {
        name: "unknown notary key",
        yaml: "notaries:\n  - server_name: matrix.org\n    batch: 5\n",
        files: &[],
        want: "line 3 column 5: unknown field `batch`, expected one of server_name, interval, batch_size",
    },
];

#[test]
fn bad_configs_fail_with_one_line_naming_file_and_place() {
    let mut failures = Vec::new();
    for case in BAD {
        let dir = temp_dir(case.name);
        for (name, text) in case.files {
            write(&dir.join(name), text);
        }
        let path = dir.join("config.yml");
        write(&path, case.yaml);
        let want = format!(
            "{}: {}",
            path.display(),
            case.want.replace("{dir}", &dir.display().to_string())
        );
        match Config::load(&path) {
            Ok(config) => failures.push(format!("{}: loaded, want error\n  {config:?}", case.name)),
            Err(err) => {
                let got = err.to_string();
                if got != want {
                    failures.push(format!("{}:\n  got  {got}\n  want {want}", case.name));
                }
            }
        }
        remove(&dir);
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        BAD.len(),
        failures.join("\n")
    );
}

#[test]
fn missing_config_file_is_named() {
    let path = temp_dir("missing file").join("nope.yml");
    let err = Config::load(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: cannot read: No such file or directory (os error 2)",
            path.display()
        )
    );
}

#[test]
fn ca_files_resolve_against_the_config_directory() {
    let dir = temp_dir("ca files");
    let cert = rcgen::generate_simple_self_signed(vec!["ca.test".to_owned()])
        .unwrap()
        .cert
        .pem();
    write(&dir.join("ca.pem"), &cert);
    let path = dir.join("config.yml");
    write(&path, "tls:\n  trust_store: webpki\n  ca_files: [ca.pem]\n");
    let config = Config::load(&path).unwrap();
    assert_eq!(config.tls.trust_store, TrustStore::Webpki);
    assert_eq!(config.tls.ca_files, vec![dir.join("ca.pem")]);
    remove(&dir);
}

#[test]
fn example_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config.yml");
    let config = Config::load(&path).unwrap();
    let names: Vec<&str> = config.servers.iter().map(ServerName::as_str).collect();
    assert_eq!(
        names,
        [
            "matrix.org",
            "mozilla.org",
            "element.io",
            "example.org:8448"
        ]
    );
    // The example documents the defaults.
    assert_eq!(
        Config {
            servers: Vec::new(),
            ..config
        },
        Config::default()
    );
}

#[test]
fn check_config_with_a_bad_file_exits_2_with_the_message() {
    let dir = temp_dir("cli bad file");
    let path = dir.join("config.yml");
    write(&path, "probe:\n  interval: 0s\n");
    let out = exporter(&["--check-config", "--config.file", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        stderr(&out),
        format!(
            "error: {}: probe.interval: must be greater than 0\n",
            path.display()
        )
    );
    assert!(out.stdout.is_empty());
    remove(&dir);
}

#[test]
fn check_config_with_the_example_prints_the_servers() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config.yml");
    let out = exporter(&["--check-config", "--config.file", example.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    for line in [
        "  matrix.org",
        "  example.org:8448",
        "probe.interval: 1m",
        "tls.trust_store: system",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "{line:?} missing from:\n{stdout}"
        );
    }
}

#[test]
fn check_config_prints_every_section_and_none_for_an_empty_list() {
    // A newcomer read an empty `target_files: ` as "broken", and missed the checks that were off.
    let dir = temp_dir("cli every section");
    let path = dir.join("config.yml");
    write(&path, "servers: []\n");
    let out = exporter(&["--check-config", "--config.file", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    for line in [
        "target_files: (none)",
        "probe.checks.keys: true",
        "probe.checks.version: true",
        "probe.checks.client: true",
        "probe.checks.support: true",
        "probe.allowed_targets: (none)",
        "tls.ca_files: (none)",
        "api.probe_unconfigured: false",
        "would probe:",
        "  (none)",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "{line:?} missing from:\n{stdout}"
        );
    }
    remove(&dir);
}

#[test]
fn a_bad_duration_names_its_key_and_the_syntax() {
    let dir = temp_dir("cli bad duration");
    let path = dir.join("config.yml");
    write(
        &path,
        "servers: [matrix.org]\nprobe:\n  timeouts:\n    dns: 5 secondz\n",
    );
    let out = exporter(&["--check-config", "--config.file", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        stderr(&out),
        format!(
            "error: {}: probe.timeouts.dns: \"5 secondz\" is not a duration: write a number and a unit, as in \
             30s, 5m, 1h30m or 2d (units: ms, s, m, h, d)\n",
            path.display()
        )
    );
    remove(&dir);
}

#[test]
fn a_url_in_servers_says_server_names_have_no_scheme_or_path() {
    let dir = temp_dir("cli url");
    let path = dir.join("config.yml");
    write(&path, "servers: [\"https://matrix.example.org/\"]\n");
    let out = exporter(&["--check-config", "--config.file", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains(
            "is a URL, but a server name has no scheme or path: write \"matrix.example.org\""
        ),
        "{err}"
    );
    remove(&dir);
}

#[test]
fn a_bad_metrics_profile_exits_2_naming_the_file_and_the_key() {
    let dir = temp_dir("cli bad profile");
    let path = dir.join("config.yml");
    write(&path, "metrics:\n  profile: everything\n");
    let out = exporter(&["--check-config", "--config.file", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        stderr(&out),
        format!(
            "error: {}: metrics.profile: \"everything\" is not a profile: write full or observer\n",
            path.display()
        )
    );
    // The flag is checked the same way (clap's usage error, also exit code 2).
    let out = exporter(&["--check-config", "--metrics.profile", "everything"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).contains("\"everything\" is not a profile: write full or observer"),
        "{}",
        stderr(&out)
    );
    // A good flag over a good file: accepted.
    write(&path, "metrics:\n  profile: full\n");
    let out = exporter(&[
        "--check-config",
        "--config.file",
        path.to_str().unwrap(),
        "--metrics.profile",
        "observer",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("metrics.profile: observer\n"), "{stdout}");
    remove(&dir);
}

#[test]
fn the_metrics_profile_flag_wins_over_the_file() {
    use matrix_federation_exporter::config::{Profile, Source};
    let dir = temp_dir("profile flag");
    let path = dir.join("config.yml");
    write(&path, "metrics:\n  profile: observer\n");
    let mut source = Source {
        file: Some(path.clone()),
        ..Source::default()
    };
    assert_eq!(source.load().unwrap().metrics.profile, Profile::Observer);
    source.profile = Some(Profile::Full);
    assert_eq!(source.load().unwrap().metrics.profile, Profile::Full);
    write(&path, "servers: []\n");
    assert_eq!(source.load().unwrap().metrics.profile, Profile::Full);
    source.profile = None;
    assert_eq!(
        source.load().unwrap().metrics.profile,
        Profile::Full,
        "the default"
    );
    remove(&dir);
}

#[test]
fn check_config_with_a_bad_target_exits_2() {
    let out = exporter(&["--check-config", "--target", "bad name"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        stderr(&out),
        "error: --target \"bad name\": character ' ' at byte 3 is not allowed in a DNS name (only letters, digits, '-' and '.')\n"
    );
}

#[test]
fn check_config_with_a_target_and_no_file_exits_0() {
    let out = exporter(&[
        "--check-config",
        "--target",
        "matrix.org",
        "--target",
        "matrix.org",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().filter(|l| *l == "  matrix.org").count(),
        1,
        "{stdout}"
    );
    assert!(stdout.contains("servers: 1\n"), "{stdout}");
}

#[test]
fn bad_listen_address_exits_2() {
    let out = exporter(&["--web.listen-address", "nonsense", "--check-config"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        stderr(&out),
        "error: --web.listen-address \"nonsense\": expected :PORT, IPv4:PORT or [IPv6]:PORT\n"
    );
}

#[test]
fn bad_ca_file_flag_exits_2() {
    let dir = temp_dir("cli ca file");
    let pem = dir.join("key.pem");
    write(&pem, NO_CERT_PEM);
    let out = exporter(&["--check-config", "--ca-file", pem.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        stderr(&out),
        format!(
            "error: --ca-file {:?}: contains no PEM CERTIFICATE block\n",
            pem.display().to_string()
        )
    );
    remove(&dir);
}

#[test]
fn unknown_flag_exits_2_and_version_exits_0() {
    assert_eq!(exporter(&["--no-such-flag"]).status.code(), Some(2));
    let out = exporter(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .starts_with("matrix-federation-exporter ")
    );
}

fn exporter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_matrix-federation-exporter"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// A fresh directory unique to this process and call.
fn temp_dir(label: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let slug: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let dir = std::env::temp_dir().join(format!("mfe-config-{}-{n}-{slug}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}
