//! The `matrix-federation-exporter` binary: command line, logging, and `run()`. The only place that prints errors
//! and picks exit codes: 0 success, 1 runtime failure, 2 usage or config error.
//!
//! Without a subcommand the binary runs the daemon. `check NAME...` probes the names once, prints a report, and
//! exits 0 when every name federates, 1 when any does not, and 2 on a usage or config error.

mod check_command;
mod logging;

/// jemalloc, not glibc's malloc. At 64 probes in flight, glibc placed the small long-lived parts of stored reports
/// in the holes that freed connection buffers left, so its heap kept growing: with 2,000 servers it held 13.4 MB
/// for 7.2 MB in use, and a change that cut what is in use grew the heap by 2.5 MB. jemalloc's size classes keep
/// the two apart: 4.6 KiB of RSS per server instead of 5.1 to 6.4 (BENCHMARKS.md, "Fourth session"). The
/// benchmark and memory examples use the same allocator, so they measure this binary.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use matrix_federation_exporter::config::server_name::ServerName;
use matrix_federation_exporter::config::shard::Shard;
use matrix_federation_exporter::config::targets;
use matrix_federation_exporter::config::{Config, Profile, Source, TrustStore};
use matrix_federation_exporter::serve::daemon;
use matrix_federation_exporter::serve::web::WebConfig;

use crate::check_command::check;
use crate::logging::{LogFormat, LogLevel, init_logging};

/// Prometheus exporter for Matrix federation health.
///
/// Without a subcommand, runs the exporter daemon with the flags below.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// YAML config file. Without one, only `--target` names are probed, with default settings.
    #[arg(long = "config.file", value_name = "FILE")]
    config_file: Option<PathBuf>,

    /// A server name to probe, in addition to the config file's `servers` (repeatable).
    #[arg(long = "target", value_name = "NAME")]
    targets: Vec<String>,

    /// A PEM file of extra trusted CAs, in addition to the config file's `tls.ca_files` (repeatable).
    #[arg(long = "ca-file", value_name = "PEM")]
    ca_files: Vec<PathBuf>,

    /// Address to serve /metrics on: `:PORT` (all interfaces), `IPv4:PORT` or `[IPv6]:PORT`.
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = ":9448"
    )]
    listen_address: String,

    /// Prometheus exporter-toolkit web config (YAML): TLS (`tls_server_config`) and basic auth
    /// (`basic_auth_users`) for the listener. A bad file is a config error.
    #[arg(long = "web.config.file", value_name = "FILE")]
    web_config_file: Option<PathBuf>,

    /// Only log messages at this level or more severe.
    #[arg(long = "log.level", value_name = "LEVEL", value_enum, default_value_t = LogLevel::Info)]
    log_level: LogLevel,

    /// Log line format (logs go to stderr).
    #[arg(long = "log.format", value_name = "FORMAT", value_enum, default_value_t = LogFormat::Logfmt)]
    log_format: LogFormat,

    /// Load and validate the configuration, print what would be probed, and exit.
    #[arg(long = "check-config")]
    check_config: bool,

    /// Probe only shard I of N (counting from 0): the servers whose stable hash of the name falls in it. N
    /// exporters with shards 0/N to N-1/N split one server list with no coordination.
    #[arg(long = "shard", value_name = "I/N")]
    shard: Option<Shard>,

    /// Probe loopback, private, link-local, CGNAT and other addresses that default-configured peers refuse
    /// (Synapse's `ip_range_blacklist`), for a private federation. Sets `probe.allow_private_addresses`, also
    /// across reloads.
    #[arg(long = "probe.allow-private-addresses")]
    allow_private_addresses: bool,

    /// Which series /metrics and /probe render: full (every series) or observer (per-server aggregates, failures
    /// and warnings, for exporters that watch many servers; METRICS.md, "Profiles"). Sets `metrics.profile`,
    /// also across reloads.
    #[arg(long = "metrics.profile", value_name = "PROFILE")]
    profile: Option<Profile>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Probe server names once, print a report, and exit 0 only if every name federates.
    ///
    /// Exit status: 0 when every name federates, 1 when any does not, 2 on a usage or config error. Reports
    /// are printed in argument order; with --json, stdout is one matrix-federation-tester report (JSON) for one
    /// name, one report per line (JSON Lines) for several, so `jq .FederationOK` reads each; an invalid name is
    /// a report with `Error` set there (and exit status 2). Colour is used only when stdout is a terminal (`TERM` set, not
    /// `dumb`) and `NO_COLOR` is unset or empty and `CLICOLOR` is not 0; `CLICOLOR_FORCE` forces it.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Server names to check, as `hostname[:port]` (an explicit port skips .well-known and SRV).
    // Parsed in `check`: with --json an invalid name is a report (as the tester's `-lookup`), not only an error.
    #[arg(value_name = "NAME", required = true)]
    names: Vec<String>,

    /// Print matrix-federation-tester reports instead of text: one JSON object for one NAME, one object per
    /// line (JSON Lines) for several.
    #[arg(long)]
    json: bool,

    /// YAML config file for DNS, trust store, timeouts, checks and concurrency; its `servers` are ignored.
    #[arg(long = "config.file", value_name = "FILE")]
    config_file: Option<PathBuf>,

    /// A PEM file of extra trusted CAs, in addition to the config file's `tls.ca_files` (repeatable).
    #[arg(long = "ca-file", value_name = "PEM")]
    ca_files: Vec<PathBuf>,

    /// Probe addresses that default-configured peers refuse (loopback, private, ...), for a private
    /// federation. Sets `probe.allow_private_addresses`.
    #[arg(long = "probe.allow-private-addresses")]
    allow_private_addresses: bool,

    /// Only log messages at this level or more severe (logs go to stderr).
    #[arg(long = "log.level", value_name = "LEVEL", value_enum, default_value_t = LogLevel::Warn)]
    log_level: LogLevel,
}

/// A usage or config error: exit code 2. Everything else that fails is a runtime failure: exit code 1.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub(crate) struct UsageError(pub(crate) anyhow::Error);

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap formats its own errors, help and version; it exits 2 on usage errors and 0 otherwise.
            let _ = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
        }
    };
    let result = match &cli.command {
        Some(Command::Check(args)) => check(args),
        None => run(&cli).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            if err.is::<UsageError>() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    init_logging(cli.log_level, cli.log_format)?;
    let (source, config, targets, listen) = settings(cli).map_err(UsageError)?;
    let web = cli
        .web_config_file
        .as_deref()
        .map(WebConfig::load)
        .transpose()
        .map_err(|e| UsageError(e.into()))?;

    if cli.check_config {
        let mut out = describe(cli, &config, &targets, listen);
        out.push('\n');
        std::io::stdout()
            .lock()
            .write_all(out.as_bytes())
            .context("cannot write to stdout")?;
        return Ok(());
    }

    if targets.is_empty() {
        tracing::warn!(
            "no servers to probe: give --target or `servers` in --config.file; /metrics will be empty"
        );
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        listen = %listen,
        servers = targets.len(),
        "starting matrix-federation-exporter"
    );
    let runtime = daemon::runtime().context("cannot start the async runtime")?;
    runtime.block_on(daemon::run(source, (config, targets), listen, web))
}

/// The validated settings from the command line, config file and target files: every usage and config error
/// comes from here. The source is kept so that a reload reads the same file and flags again.
fn settings(cli: &Cli) -> anyhow::Result<(Source, Config, Vec<targets::Target>, SocketAddr)> {
    let listen = parse_listen_address(&cli.listen_address)
        .with_context(|| format!("--web.listen-address {:?}", cli.listen_address))?;
    let mut targets = Vec::with_capacity(cli.targets.len());
    for target in &cli.targets {
        targets.push(ServerName::parse(target).with_context(|| format!("--target {target:?}"))?);
    }
    let source = Source {
        file: cli.config_file.clone(),
        targets,
        ca_files: cli.ca_files.clone(),
        shard: cli.shard,
        allow_private_addresses: cli.allow_private_addresses,
        profile: cli.profile,
    };
    let config = source.load()?;
    // The target files must be readable at start too; a reload that breaks them keeps the old list.
    let targets = targets::resolve(&config)?;
    Ok((source, config, targets, listen))
}

/// `:PORT` means all interfaces (`[::]:PORT`, which also accepts IPv4 where the OS allows); otherwise an IP
/// socket address. Host names are not resolved.
fn parse_listen_address(text: &str) -> anyhow::Result<SocketAddr> {
    if let Some(port) = text.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| anyhow::anyhow!("port {port:?} is not a number from 0 to 65535"))?;
        return Ok(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)));
    }
    text.parse()
        .map_err(|_| anyhow::anyhow!("expected :PORT, IPv4:PORT or [IPv6]:PORT"))
}

/// The `--check-config` report: what would be probed, and with which effective settings.
fn describe(cli: &Cli, config: &Config, targets: &[targets::Target], listen: SocketAddr) -> String {
    let d = humantime::format_duration;
    let p = &config.probe;
    let t = &p.timeouts;
    let mut out = String::new();
    // Writing to a String cannot fail.
    let mut line = |key: &str, value: &dyn fmt::Display| {
        let _ = writeln!(out, "{key}: {value}");
    };
    match &cli.config_file {
        Some(path) => line("config file", &path.display()),
        None => line("config file", &"none (defaults)"),
    }
    // Every section, an empty list as "(none)": what is not printed here is not in effect.
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "(none)".to_owned()
        } else {
            items.join(", ")
        }
    };
    line("servers", &targets.len());
    line("target_files", &list(config.target_files.clone()));
    let in_shard = |name: &ServerName| config.shard.is_none_or(|shard| shard.contains(name));
    if let Some(shard) = config.shard {
        let mine = targets.iter().filter(|t| in_shard(&t.name)).count();
        line("shard", &format_args!("{shard} ({mine} of these servers)"));
    }
    line("probe.interval", &d(p.interval));
    line("probe.jitter", &d(p.jitter));
    line("probe.concurrency", &p.concurrency);
    line("probe.timeouts.dns", &d(t.dns));
    line("probe.timeouts.connect", &d(t.connect));
    line("probe.timeouts.tls_handshake", &d(t.tls_handshake));
    line("probe.timeouts.well_known", &d(t.well_known));
    line("probe.timeouts.http", &d(t.http));
    line("probe.checks.keys", &p.checks.keys);
    line("probe.checks.version", &p.checks.version);
    line("probe.checks.client", &p.checks.client);
    line("probe.checks.support", &p.checks.support);
    line(
        "probe.max_timeout",
        &p.max_timeout
            .map_or_else(|| "(none)".to_owned(), |t| d(t).to_string()),
    );
    line("probe.max_concurrent_probes", &p.max_concurrent_probes);
    line(
        "probe.allowed_targets",
        &list(
            p.allowed_targets
                .iter()
                .map(|t| format!("{:?}", t.as_str()))
                .collect(),
        ),
    );
    line("probe.allow_private_addresses", &p.allow_private_addresses);
    if config.dns.nameservers.is_empty() {
        line("dns.nameservers", &"system (/etc/resolv.conf)");
    } else {
        let list: Vec<String> = config
            .dns
            .nameservers
            .iter()
            .map(ToString::to_string)
            .collect();
        line("dns.nameservers", &list.join(", "));
    }
    let store = match config.tls.trust_store {
        TrustStore::System => "system",
        TrustStore::Webpki => "webpki",
    };
    line("tls.trust_store", &store);
    line(
        "tls.ca_files",
        &list(
            config
                .tls
                .ca_files
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
        ),
    );
    line("api.probe_unconfigured", &config.api.probe_unconfigured);
    line("web.max_connections", &config.web.max_connections);
    line(
        "web.header_read_timeout",
        &d(config.web.header_read_timeout),
    );
    line("web.idle_timeout", &d(config.web.idle_timeout));
    line("homeservers", &homeservers_line(config));
    line("metrics.profile", &config.metrics.profile);
    let _ = writeln!(out, "web.listen-address: {listen}");
    would_probe(&mut out, targets.iter().filter(|t| in_shard(&t.name)));
    out.truncate(out.trim_end().len());
    out
}

/// The `homeservers` line of `--check-config`: each entry's settings (the token file's content is never read
/// here), or "(none)".
fn homeservers_line(config: &Config) -> String {
    let d = humantime::format_duration;
    let entries: Vec<String> = config
        .homeservers
        .iter()
        .map(|h| {
            let a = &h.synapse_admin;
            format!(
                "{} ({}, refresh {}, max_destinations {}, skip_failing_longer_than {}; destinations are listed when the exporter runs)",
                h.name,
                a.url,
                d(a.refresh),
                a.max_destinations,
                d(a.skip_failing_longer_than)
            )
        })
        .collect();
    if entries.is_empty() {
        "(none)".to_owned()
    } else {
        entries.join(", ")
    }
}

/// The `would probe:` list of `--check-config`, with labels, or "(none)".
fn would_probe<'a>(out: &mut String, targets: impl Iterator<Item = &'a targets::Target>) {
    let _ = writeln!(out, "would probe:");
    let mut none = true;
    for target in targets {
        none = false;
        let labels: Vec<String> = target
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        if labels.is_empty() {
            let _ = writeln!(out, "  {}", target.name);
        } else {
            let _ = writeln!(out, "  {} {{{}}}", target.name, labels.join(", "));
        }
    }
    if none {
        let _ = writeln!(out, "  (none)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::{Logfmt, LogfmtFields, push_pair};
    use tracing_subscriber::layer::SubscriberExt as _;

    #[test]
    fn logfmt_quotes_and_escapes_values() {
        let cases = [
            ("plain", "k=plain"),
            ("", "k=\"\""),
            ("two words", "k=\"two words\""),
            ("a=b", "k=\"a=b\""),
            ("say \"hi\"", "k=\"say \\\"hi\\\"\""),
            ("back\\slash", "k=\"back\\\\slash\""),
            ("line\nbreak", "k=\"line\\nbreak\""),
            ("bell\u{7}", "k=\"bell\\u{0007}\""),
        ];
        for (value, want) in cases {
            let mut out = String::new();
            push_pair(&mut out, "k", value);
            assert_eq!(out, want, "{value:?}");
        }
        let mut out = String::from("ts=1");
        push_pair(&mut out, "level", "info");
        assert_eq!(out, "ts=1 level=info");
    }

    #[test]
    fn logfmt_lines_carry_span_and_event_fields() {
        use std::sync::{Arc, Mutex};

        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .event_format(Logfmt)
                .fmt_fields(LogfmtFields)
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("probe", server_name = "example.org:8448");
            let _guard = span.enter();
            tracing::warn!(
                attempt = 2,
                reason = "tls handshake failed",
                "probe \"failed\""
            );
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let (ts, rest) = text.split_once(' ').unwrap();
        assert!(ts.starts_with("ts=") && ts.ends_with('Z'), "{ts}");
        assert_eq!(
            rest,
            "level=warn target=matrix_federation_exporter::tests msg=\"probe \\\"failed\\\"\" server_name=example.org:8448 \
             attempt=2 reason=\"tls handshake failed\"\n"
        );
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen_address(":9448").unwrap(),
            "[::]:9448".parse().unwrap()
        );
        assert_eq!(
            parse_listen_address("127.0.0.1:80").unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(
            parse_listen_address("[::1]:9448").unwrap(),
            "[::1]:9448".parse().unwrap()
        );
        for bad in ["nonsense", ":", ":70000", "localhost:9448", "9448", "[::1]"] {
            assert!(parse_listen_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn no_subcommand_runs_the_daemon_and_check_takes_names() {
        let cli =
            Cli::try_parse_from(["mfe", "--config.file", "x.yml", "--target", "a.org"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.config_file, Some(PathBuf::from("x.yml")));

        let cli = Cli::try_parse_from([
            "mfe",
            "check",
            "a.org",
            "b.org:8448",
            "--json",
            "--ca-file",
            "r.pem",
            "--config.file",
            "c.yml",
        ])
        .unwrap();
        let Some(Command::Check(args)) = cli.command else {
            panic!("check subcommand: {cli:?}");
        };
        let names: Vec<&str> = args.names.iter().map(String::as_str).collect();
        assert_eq!(names, ["a.org", "b.org:8448"]);
        assert!(args.json);
        assert_eq!(args.ca_files, [PathBuf::from("r.pem")]);
        assert_eq!(args.config_file, Some(PathBuf::from("c.yml")));

        for bad in [
            &["mfe", "check"][..],
            &["mfe", "--target", "a.org", "check", "b.org"],
            &["mfe", "a.org"],
        ] {
            let err = Cli::try_parse_from(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}: {err}");
        }
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
