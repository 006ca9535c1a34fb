//! `--shard i/n`: shards of one server list cover it exactly once, end to end through the daemon (what each
//! replica probes and shows), and the flag's command-line behaviour.

mod support;

use std::collections::BTreeSet;
use std::process::Command;

use matrix_federation_exporter::config::Config;
use matrix_federation_exporter::config::server_name::ServerName;
use matrix_federation_exporter::config::shard::Shard;
use matrix_federation_exporter::probe::env::{Ports, ProbeEnv};
use matrix_federation_exporter::serve::daemon;
use support::{FakeDns, PortAnchor, TIMEOUTS, TestCa, Zone};

async fn get(router: &axum::Router, uri: &str) -> (u16, String) {
    let answer = support::router::get(router, uri).await;
    (answer.status.as_u16(), answer.body)
}

/// The `server_name`s of the `probe_success` samples.
fn probed(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("matrix_federation_probe_success{server_name=\""))
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn two_shards_cover_a_list_exactly_once() {
    // No name resolves, so every probe ends at once (failing, which still renders every per-server family).
    let (wk, fed) = (PortAnchor::new(), PortAnchor::new());
    let dns = FakeDns::start(Zone::new()).await;
    let ports = Ports {
        well_known: wk.port,
        federation: fed.port,
    };
    let env = ProbeEnv::new(
        &[dns.addr],
        TestCa::new("shard").root_store(),
        ports,
        TIMEOUTS,
    )
    .unwrap();
    let names: Vec<ServerName> = (0..24)
        .map(|i| ServerName::parse(&format!("s{i}.shard.test")).unwrap())
        .collect();
    let all: BTreeSet<String> = names.iter().map(|n| n.as_str().to_owned()).collect();

    let mut seen = Vec::new();
    for index in 0..2 {
        let shard = Shard::new(index, 2).unwrap();
        let config = Config {
            servers: names.clone(),
            shard: Some(shard),
            ..Config::default()
        };
        let mut exporter = daemon::start(&config, env.clone());
        exporter.ready.wait_for(|r| *r).await.unwrap();
        let (status, metrics) = get(&exporter.router, "/metrics").await;
        assert_eq!(status, 200);
        let mine = probed(&metrics);
        let expected: BTreeSet<String> = names
            .iter()
            .filter(|n| shard.contains(n))
            .map(|n| n.as_str().to_owned())
            .collect();
        assert_eq!(mine, expected, "shard {shard} probes exactly its names");
        assert!(
            !mine.is_empty() && mine.len() < names.len(),
            "{shard}: {mine:?}"
        );
        assert!(
            metrics.contains(&format!(
                "matrix_federation_exporter_servers {}\n",
                mine.len()
            )),
            "{metrics}"
        );
        // A name of the other shard is not this replica's: the report API treats it as unconfigured.
        let other = all.difference(&mine).next().unwrap();
        let (status, _) = get(
            &exporter.router,
            &format!("/api/report?server_name={other}"),
        )
        .await;
        assert_eq!(status, 403);
        seen.push(mine);
    }
    assert!(seen[0].is_disjoint(&seen[1]), "no name in both shards");
    let union: BTreeSet<String> = seen[0].union(&seen[1]).cloned().collect();
    assert_eq!(union, all, "every name in one shard");
}

fn exporter(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_matrix-federation-exporter"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn shard_flag_filters_what_check_config_would_probe() {
    let args = [
        "--check-config",
        "--target",
        "example.org",
        "--target",
        "matrix.org",
        "--target",
        "mozilla.org",
    ];
    let mut listed = BTreeSet::new();
    for shard in ["0/2", "1/2"] {
        let out = exporter(&[&args[..], &["--shard", shard]].concat());
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        let (_, would) = stdout.split_once("would probe:\n").unwrap();
        let names: Vec<&str> = would.lines().map(str::trim).collect();
        let expected: Vec<&str> = ["example.org", "matrix.org", "mozilla.org"]
            .into_iter()
            .filter(|n| {
                shard
                    .parse::<Shard>()
                    .unwrap()
                    .contains(&ServerName::parse(n).unwrap())
            })
            .collect();
        assert_eq!(names, expected, "{shard}");
        assert!(
            stdout.contains(&format!(
                "shard: {shard} ({} of these servers)\n",
                names.len()
            )),
            "{stdout}"
        );
        listed.extend(names.iter().map(|n| (*n).to_owned()));
    }
    assert_eq!(listed.len(), 3);
}

#[test]
fn bad_shard_values_exit_2_with_the_reason() {
    for (value, reason) in [
        (
            "3/3",
            "shard 3 does not exist: shards of 3 are numbered 0 to 2",
        ),
        ("0/0", "the shard count must be at least 1"),
        (
            "1",
            "expected I/N, such as 0/3 (shard I of N, counting from 0)",
        ),
        ("x/2", "\"x\" is not a whole number"),
    ] {
        let out = exporter(&["--check-config", "--shard", value]);
        assert_eq!(out.status.code(), Some(2), "{value}: {out:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.contains(&format!(
                "invalid value '{value}' for '--shard <I/N>': {reason}"
            )),
            "{value}: {stderr}"
        );
    }
}
