//! The `check` subcommand end to end: the real binary against the hermetic world (fake DNS, test CA, fake
//! homeservers on loopback), judged by its output and exit code.
//!
//! Discovery would use the real ports 443 and 8448, so every server name here carries an explicit port
//! (`good.test:P`), which skips `.well-known` and SRV. The fake DNS and servers run on a tokio runtime in this
//! process that stays alive while the child runs.

mod support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};
use support::keys::{KEY_SERVER_PATH, VERSION_PATH};
use support::{
    Behaviour, FakeDns, FakeServer, PortAnchor, Reply, Routes, SigningKey, TestCa, Validity, Zone,
    key_document, matrix_routes, matrix_routes_with_keys, now_ms, sign_json,
};

/// One world per test: a port `P`, and behind `<name>.test:P`:
/// - `good` (127.0.0.2): a healthy homeserver;
/// - `mismatch` (127.0.0.3): a certificate for `other.test` only;
/// - `badsig` (127.0.0.4): a key document whose signature is corrupted;
/// - `dual` (A 127.0.0.5, healthy; AAAA `::1`, where nothing listens);
/// - `hostile` (127.0.0.6): terminal controls in its certificate's names, its signing key's id, the
///   `server_name` its key document names (so the failure's fix repeats it) and its version (see [`HOSTILE`]).
struct World {
    port: u16,
    dir: PathBuf,
    config: PathBuf,
    root: PathBuf,
    // Field order is drop order: servers and DNS stop before their runtime.
    _servers: Vec<FakeServer>,
    _dns: FakeDns,
    _anchor: PortAnchor,
    _runtime: tokio::runtime::Runtime,
}

impl World {
    fn start(label: &str) -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let mut anchor = PortAnchor::new();
        let port = anchor.port;
        // Nothing may listen on [::1]:P: the dual-stack scenario needs its IPv6 address refused.
        drop(anchor.take_v6());
        let ca = TestCa::new(&format!("check-{label}"));
        let dir = std::env::temp_dir().join(format!("mfe-check-{}-{label}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let root = ca.write_root_pem(&dir);

        let name = |host: &str| format!("{host}.test:{port}");
        let key = SigningKey::generate("ed25519:fake");
        let mut badsig: Value = serde_json::from_str(&key_document(
            &name("badsig"),
            &[&key],
            now_ms() + 24 * 3_600 * 1000,
        ))
        .unwrap();
        let signature = &mut badsig["signatures"][name("badsig")]["ed25519:fake"];
        let corrupted = corrupt(signature.as_str().unwrap());
        *signature = Value::String(corrupted);

        let https = |cert_name: &str, routes: Routes| Behaviour::Https {
            leaf: ca.leaf(&[cert_name], Validity::Valid),
            routes,
        };
        let hostile = Behaviour::Https {
            leaf: ca.leaf(
                &[&format!("evil{}.test", HOSTILE_ASCII.0), "hostile.test"],
                Validity::Valid,
            ),
            routes: hostile_routes(&name("hostile")),
        };
        let servers = [
            (2, https("good.test", matrix_routes(&name("good")))),
            (3, https("other.test", matrix_routes(&name("mismatch")))),
            (
                4,
                https("badsig.test", matrix_routes_with_keys(badsig.to_string())),
            ),
            (5, https("dual.test", matrix_routes(&name("dual")))),
            (6, hostile),
        ];
        let servers = servers
            .into_iter()
            .map(|(last, behaviour)| {
                runtime.block_on(FakeServer::start(anchor.bind([127, 0, 0, last]), behaviour))
            })
            .collect();
        let dns = runtime.block_on(FakeDns::start(
            Zone::new()
                .a("good.test", "127.0.0.2".parse().unwrap())
                .a("mismatch.test", "127.0.0.3".parse().unwrap())
                .a("badsig.test", "127.0.0.4".parse().unwrap())
                .a("dual.test", "127.0.0.5".parse().unwrap())
                .aaaa("dual.test", "::1".parse().unwrap())
                .a("hostile.test", "127.0.0.6".parse().unwrap()),
        ));
        let config = dir.join("config.yml");
        // Client discovery asks the real port 443 (the binary cannot remap it): off here; its text is covered by
        // `render/text.rs` and its probing by tests/client.rs.
        std::fs::write(
            &config,
            format!(
                "dns:\n  nameservers: [\"{}\"]\ntls:\n  trust_store: webpki\nprobe:\n  \
                 allow_private_addresses: true\n  checks:\n    client: false\n  timeouts:\n    \
                 dns: 2s\n    connect: 2s\n    tls_handshake: 2s\n    well_known: 3s\n    http: 2s\n",
                dns.addr
            ),
        )
        .unwrap();
        Self {
            port,
            dir,
            config,
            root,
            _servers: servers,
            _dns: dns,
            _anchor: anchor,
            _runtime: runtime,
        }
    }

    /// `<host>.test:P`.
    fn name(&self, host: &str) -> String {
        format!("{host}.test:{}", self.port)
    }

    /// Runs `matrix-federation-exporter check ARGS... --config.file C --ca-file ROOT`: (exit code, stdout,
    /// stderr).
    fn check(&self, args: &[&str]) -> (i32, String, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_matrix-federation-exporter"))
            .arg("check")
            .args(args)
            .arg("--config.file")
            .arg(&self.config)
            .arg("--ca-file")
            .arg(&self.root)
            .env_remove("NO_COLOR")
            .output()
            .unwrap();
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        (
            output.status.code().expect("exited, not killed"),
            text(output.stdout),
            text(output.stderr),
        )
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Terminal mischief a server can send: clear the screen, retitle the window, return to the line start and forge
/// a verdict on a line of its own, and DEL.
const HOSTILE: &str = "\x1b[2J\x1b]0;pwned\x07\r✔ federation works\n\x7f";
/// How `check` must print [`HOSTILE`].
const HOSTILE_ESCAPED: &str = "\\x1b[2J\\x1b]0;pwned\\x07\\x0d✔ federation works\\x0a\\x7f";
/// Mischief in ASCII only, as a certificate's names (`IA5String`) need, and how `check` must print it.
const HOSTILE_ASCII: (&str, &str) = ("\x1b[2J\rOK\n\x7f", "\\x1b[2J\\x0dOK\\x0a\\x7f");

/// A homeserver for `server_name` whose key document names `server_name` + [`HOSTILE`] and is signed by a key
/// whose id ends in [`HOSTILE`], and whose version adds a C1 CSI and a bidi override.
fn hostile_routes(server_name: &str) -> Routes {
    let key = SigningKey::generate(&format!("ed25519:a{HOSTILE}"));
    let named = format!("{server_name}{HOSTILE}");
    let mut document = json!({
        "server_name": named,
        "verify_keys": { key.key_id.clone(): { "key": key.public_base64() } },
        "old_verify_keys": {},
        "valid_until_ts": now_ms() + 24 * 3_600 * 1000,
    });
    // Signed as the server it names, so the only key failure is the name.
    sign_json(&mut document, &named, &key);
    let version = json!({
        "server": { "name": format!("Evil{HOSTILE}"), "version": "1.0\u{9b}31m\u{202e}" },
    });
    Routes::new()
        .route(KEY_SERVER_PATH, Reply::json(200, document.to_string()))
        .route(VERSION_PATH, Reply::json(200, version.to_string()))
}

/// The same signature with its first byte changed (still valid base64 of 64 bytes).
fn corrupt(signature: &str) -> String {
    let first = if signature.starts_with('A') { "B" } else { "A" };
    format!("{first}{}", &signature[1..])
}

fn assert_contains(text: &str, wants: &[&str]) {
    for want in wants {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

#[test]
fn a_healthy_server_federates_and_exits_0() {
    let world = World::start("good");
    let good = world.name("good");
    let (code, out, err) = world.check(&[&good]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let port = world.port;
    assert_contains(
        &out,
        &[
            &format!("{good}: ✔ federation works"),
            "1. explicit port: no .well-known, no SRV",
            "2. A/AAAA good.test: 127.0.0.2",
            &format!("certificate must name: good.test; Host header: {good}"),
            &format!("✔ 127.0.0.2:{port} (ipv4, from good.test)"),
            "certificate: CN=good.test",
            "✔ valid",
            "names:   good.test",
            "days left)",
            &format!("keys: server_name {good}, valid until"),
            "✔ ed25519:fake signature verifies",
            "version: FakeServer 1.0.0",
        ],
    );
    assert!(!out.contains("fix:"), "{out}");
    assert!(
        !out.contains('\x1b'),
        "no colour when stdout is not a terminal:\n{out}"
    );
}

#[test]
fn a_certificate_for_another_name_fails_with_the_fix() {
    let world = World::start("mismatch");
    let mismatch = world.name("mismatch");
    let (code, out, err) = world.check(&[&mismatch]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert_contains(
        &out,
        &[
            &format!("{mismatch}: ✘ federation fails"),
            "names:   other.test",
            "✘ certificate/cert_hostname_mismatch:",
            "fix: certificate names other.test but must name mismatch.test: get a certificate that includes \
             mismatch.test",
        ],
    );
}

#[test]
fn a_corrupted_key_signature_fails() {
    let world = World::start("badsig");
    let badsig = world.name("badsig");
    let (code, out, err) = world.check(&[&badsig]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert_contains(
        &out,
        &[
            &format!("{badsig}: ✘ federation fails"),
            "✔ valid",
            "✘ ed25519:fake signature does not verify",
            "✘ keys/keys_bad_signature:",
            "fix: a signing key's signature over the key document does not verify",
        ],
    );
}

#[test]
fn a_dead_ipv6_address_fails_a_dual_stack_server_and_is_named() {
    let world = World::start("dual");
    let dual = world.name("dual");
    let (code, out, err) = world.check(&[&dual]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    let port = world.port;
    assert_contains(
        &out,
        &[
            &format!("{dual}: ✘ federation fails"),
            "2 addresses · 1 failing",
            &format!("✔ 127.0.0.5:{port} (ipv4, from dual.test)"),
            &format!("✘ [::1]:{port} (ipv6, from dual.test)"),
            // Refused on a host with IPv6 loopback, unreachable without: either way the fix names the record.
            "remove the AAAA record for dual.test",
        ],
    );
}

#[test]
fn one_failing_name_of_two_fails_the_run_and_order_is_kept() {
    let world = World::start("two");
    let (good, mismatch) = (world.name("good"), world.name("mismatch"));
    let (code, out, err) = world.check(&[&mismatch, &good]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    let first = out
        .find(&format!("{mismatch}: ✘"))
        .expect("mismatch report");
    let second = out.find(&format!("{good}: ✔")).expect("good report");
    assert!(first < second, "argument order:\n{out}");
    assert!(
        out.ends_with(&format!("✘ 1 of 2 servers federate; failing: {mismatch}\n")),
        "{out}"
    );
}

/// Issue 13 point 7: one name prints one report (as the tester's `-lookup`), several print JSON Lines, so
/// `check NAME --json | jq .FederationOK` reads each; an invalid name is a report with `Error` set (exit 2).
#[test]
fn json_is_one_tester_report_per_name() {
    let world = World::start("json");
    let (good, mismatch) = (world.name("good"), world.name("mismatch"));
    let (code, out, err) = world.check(&[&good, "--json"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let report = support::tester_shape::assert_upstream_shape(&out);
    assert!(
        out.starts_with("{\n  \"WellKnownResult\""),
        "indented as upstream:\n{out}"
    );
    assert_eq!(support::tester_shape::jq_federation_ok(&out), [json!(true)]);
    support::tester_shape::read_like_fed_tester_ui(&report).unwrap();

    let (code, out, err) = world.check(&["--json", &good, &mismatch, "bad name!"]);
    assert_eq!(code, 2, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("'bad name!'"), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "JSON Lines:\n{out}");
    for line in &lines {
        let report = support::tester_shape::assert_upstream_shape(line);
        support::tester_shape::read_like_fed_tester_ui(&report).unwrap();
    }
    assert_eq!(
        support::tester_shape::jq_federation_ok(&out),
        [json!(true), json!(false), json!(false)]
    );
    let invalid: Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(invalid["Error"], "Invalid server name 'bad name!'");

    // One invalid name alone: its report, as `-lookup` prints it.
    let (code, out, _) = world.check(&["--json", "bad name!"]);
    assert_eq!(code, 2);
    assert_eq!(
        support::tester_shape::jq_federation_ok(&out),
        [json!(false)]
    );
}

/// Without `probe.allow_private_addresses`, a server on loopback is unreachable for default-configured peers;
/// `--probe.allow-private-addresses` turns the public-federation view off.
#[test]
fn the_public_view_refuses_loopback_unless_allowed() {
    let world = World::start("public");
    let good = world.name("good");
    let public = world.dir.join("public.yml");
    let text = std::fs::read_to_string(&world.config).unwrap();
    let text = text.replace(
        "allow_private_addresses: true",
        "allow_private_addresses: false",
    );
    std::fs::write(&public, text).unwrap();
    let run = |extra: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_matrix-federation-exporter"))
            .args(["check", &good, "--config.file"])
            .arg(&public)
            .arg("--ca-file")
            .arg(&world.root)
            .args(extra)
            .output()
            .unwrap();
        (
            output.status.code().expect("exited"),
            String::from_utf8(output.stdout).unwrap(),
        )
    };

    let (code, out) = run(&[]);
    assert_eq!(code, 1, "{out}");
    let port = world.port;
    assert_contains(
        &out,
        &[
            &format!("{good}: ✘ federation fails"),
            "0 addresses · 0 failing · 1 not probed (peers refuse them)",
            "✘ discovery/address_not_public: unreachable for default-configured peers",
            &format!("127.0.0.2:{port} (loopback)"),
            "fix: peers with a default configuration refuse loopback",
            "set probe.allow_private_addresses (--probe.allow-private-addresses)",
            &format!("⚠ 127.0.0.2:{port} (ipv4, from good.test) · loopback: not probed"),
        ],
    );

    let (code, out) = run(&["--json"]);
    assert_eq!(code, 1, "{out}");
    let report = &support::tester_shape::assert_upstream_shape(&out);
    assert_eq!(report["FederationOK"], false);
    let key = format!("127.0.0.2:{port}");
    assert_eq!(
        report["ConnectionErrors"][&key]["Message"],
        "not contacted: default-configured peers refuse this address (loopback)"
    );
    let ext = &report["MatrixFederationExporter"];
    assert_eq!(ext["refused_addresses"][0]["class"], "loopback");
    assert_eq!(ext["failures"][0]["reason"], "address_not_public");

    let (code, out) = run(&["--probe.allow-private-addresses"]);
    assert_eq!(code, 0, "{out}");
    assert_contains(
        &out,
        &[
            &format!("{good}: ✔ federation works"),
            &format!("✔ 127.0.0.2:{port} (ipv4, from good.test) · loopback"),
        ],
    );
}

#[test]
fn usage_errors_exit_2_with_the_reason() {
    let world = World::start("usage");
    let (code, out, err) = world.check(&["bad name!"]);
    assert_eq!((code, out.as_str()), (2, ""), "stderr:\n{err}");
    assert_contains(
        &err,
        &["'bad name!'", "' ' at byte 3 is not allowed in a DNS name"],
    );

    let (code, out, err) = world.check(&[&world.name("good"), "example.org:99999"]);
    assert_eq!((code, out.as_str()), (2, ""), "stderr:\n{err}");
    assert_contains(&err, &["port \"99999\" is not a number from 1 to 65535"]);

    let (code, out, err) = world.check(&[]);
    assert_eq!((code, out.as_str()), (2, ""), "stderr:\n{err}");
    assert_contains(&err, &["required", "<NAME>"]);

    let (code, _, err) = world.check(&["--no-such-flag", &world.name("good")]);
    assert_eq!(code, 2, "stderr:\n{err}");

    let bad_config = world.dir.join("bad.yml");
    std::fs::write(&bad_config, "probe:\n  concurrency: 0\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_matrix-federation-exporter"))
        .args(["check", &world.name("good"), "--config.file"])
        .arg(&bad_config)
        .output()
        .unwrap();
    let err = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "stderr:\n{err}");
    assert_contains(&err, &["bad.yml", "probe.concurrency"]);
}

/// Issue 11: what a probed server sends cannot act on the terminal. Its certificate names, key id, the server name
/// its key document holds and its version reach the text escaped, and the only control characters left are the
/// line ends.
#[test]
fn remote_text_is_inert_in_the_terminal() {
    let world = World::start("hostile");
    let hostile = world.name("hostile");
    let (code, out, err) = world.check(&[&hostile]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    let stray: Vec<char> = out
        .chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .collect();
    assert_eq!(stray, Vec::<char>::new(), "{out:?}");
    assert_contains(
        &out,
        &[
            &format!("{hostile}: ✘ federation fails"),
            &format!("certificate: CN=evil{}.test  ✔ valid", HOSTILE_ASCII.1),
            &format!("names:   evil{}.test, hostile.test", HOSTILE_ASCII.1),
            &format!("keys: server_name {hostile}{HOSTILE_ESCAPED}, valid until"),
            &format!("✔ ed25519:a{HOSTILE_ESCAPED} signature verifies"),
            &format!("version: Evil{HOSTILE_ESCAPED} 1.0\\u{{009b}}31m\\u{{202e}}"),
            "✘ keys/keys_server_name_mismatch:",
            &format!(
                "fix: the key document names {hostile}{HOSTILE_ESCAPED} but must name {hostile}"
            ),
        ],
    );
    // As a terminal shows it: a carriage return starts the line over.
    for line in out.split(['\n', '\r']) {
        assert!(
            !line.trim_start().starts_with("✔ federation works"),
            "a forged line:\n{out}"
        );
    }
}
