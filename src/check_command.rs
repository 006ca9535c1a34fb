//! The `check NAME...` command: probe each name once, print the reports (text for a shell, or the federation
//! tester's JSON), and pick the exit code.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use matrix_federation_exporter::config::server_name::ServerName;
use matrix_federation_exporter::config::{Config, Source};
use matrix_federation_exporter::probe::env::ProbeEnv;
use matrix_federation_exporter::probe::notary::{Asked, direct_keys};
use matrix_federation_exporter::probe::{probe_server, run_within};
use matrix_federation_exporter::render::{notary, tester, text};
use matrix_federation_exporter::report::ServerReport;
use matrix_federation_exporter::schedule::notaries::round_for;

use crate::logging::{LogFormat, init_logging};
use crate::{CheckArgs, UsageError};

/// The config file (or the defaults) with the `--ca-file` PEMs added to `tls.ca_files` and
/// `--probe.allow-private-addresses` applied.
fn load_config(
    file: Option<&Path>,
    ca_files: &[PathBuf],
    allow_private_addresses: bool,
) -> anyhow::Result<Config> {
    Source {
        file: file.map(Path::to_owned),
        ca_files: ca_files.to_vec(),
        allow_private_addresses,
        ..Source::default()
    }
    .load()
}

/// `check NAME...`: probes every name once (at most `probe.concurrency` at a time), prints the reports in
/// argument order, and picks the exit code: 0 when every name federates, 1 when any does not, 2 when a name is
/// invalid (with `--json`, after printing every report: the invalid name's has `Error` set, as the tester's
/// `-lookup` prints it).
pub(crate) fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    init_logging(args.log_level, LogFormat::Logfmt)?;
    let parsed: Vec<Result<ServerName, String>> = args
        .names
        .iter()
        .map(|raw| {
            ServerName::parse(raw)
                .map_err(|e| format!("invalid value '{raw}' for '<NAME>...': {e}"))
        })
        .collect();
    let invalid: Vec<&str> = parsed
        .iter()
        .filter_map(|p| p.as_ref().err().map(String::as_str))
        .collect();
    if !invalid.is_empty() && !args.json {
        return Err(UsageError(anyhow::anyhow!("{}", invalid.join("\n"))).into());
    }
    let names: Vec<ServerName> = parsed.iter().filter_map(|p| p.clone().ok()).collect();
    let config = load_config(
        args.config_file.as_deref(),
        &args.ca_files,
        args.allow_private_addresses,
    )
    .map_err(UsageError)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (reports, notaries) = runtime.block_on(async {
        // An unusable trust store or resolver setup is a config error, like a bad file.
        let env = ProbeEnv::from_config(&config).map_err(UsageError)?;
        let reports = probe_all(env.clone(), &names, config.probe.concurrency).await;
        // The notaries' view of these names, when the config has notaries (the text output shows it).
        let mut notaries = Vec::new();
        if !args.json {
            for notary in &config.notaries {
                let asked = reports
                    .iter()
                    .map(|r| Asked {
                        server_name: r.server_name.as_str().to_owned(),
                        direct: direct_keys(r),
                    })
                    .collect();
                notaries.push(round_for(&env, notary, asked).await);
            }
        }
        anyhow::Ok((reports, notaries))
    })?;

    let mut out = if args.json {
        json_reports(&args.names, &parsed, &reports)
    } else {
        // As clap decides for its own output: colour on a terminal whose TERM is not `dumb`, never with a
        // non-empty NO_COLOR (https://no-color.org) or CLICOLOR=0, always with a non-empty CLICOLOR_FORCE.
        let colour =
            anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never;
        let mut out = text::render_all(&reports, SystemTime::now(), colour);
        if !notaries.is_empty() {
            if !out.ends_with('\n') {
                out.push('\n');
            }
            out.push('\n');
            out.push_str(&notary::text(&notaries));
        }
        out
    };
    if !out.ends_with('\n') {
        out.push('\n');
    }
    std::io::stdout()
        .lock()
        .write_all(out.as_bytes())
        .context("cannot write to stdout")?;
    if !invalid.is_empty() {
        // The reports are out; main prints why and exits 2.
        return Err(UsageError(anyhow::anyhow!("{}", invalid.join("\n"))).into());
    }
    Ok(if reports.iter().all(ServerReport::success) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The tester's JSON, in argument order: the report as the tester's `-lookup` prints it for one name; one
/// report per line (JSON Lines) for several, so that `jq .FederationOK` reads each. An invalid name is a report
/// with `Error` set (upstream's text), as the tester gives it.
fn json_reports(
    raw: &[String],
    parsed: &[Result<ServerName, String>],
    reports: &[ServerReport],
) -> String {
    let mut reports = reports.iter();
    let one = parsed.len() == 1;
    let mut out = String::new();
    for (raw, parsed) in raw.iter().zip(parsed) {
        let line = match parsed {
            Ok(_) => {
                // Invariant: one report per valid name, in order (`probe_all`).
                let report = reports.next().expect("a report per valid name");
                if one {
                    tester::tester_report_pretty(report)
                } else {
                    tester::tester_report_line(report)
                }
            }
            Err(message) => {
                let text = format!("Invalid server name '{raw}'");
                if one {
                    tester::tester_error_pretty(&text, message)
                } else {
                    tester::tester_error_line(&text, message)
                }
            }
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Probes `names` concurrently, at most `concurrency` at a time, each cut at the environment's deadline (as the
/// daemon's scheduler does), and returns the reports in the order of `names`.
async fn probe_all(env: ProbeEnv, names: &[ServerName], concurrency: usize) -> Vec<ServerReport> {
    let env = Arc::new(env);
    let deadline = env.probe_deadline();
    futures_util::stream::iter(names.iter().cloned())
        .map(|name| {
            let env = env.clone();
            tokio::spawn(async move {
                run_within(&name, deadline, probe_server(&env, &name))
                    .await
                    .unwrap_or_else(|cut| cut)
            })
        })
        .buffered(concurrency.max(1))
        .map(|joined| match joined {
            Ok(report) => report,
            // A probe panicked: a bug, so let it end the process as it would have without the task.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        })
        .collect()
        .await
}
