//! Daemon mode: wires config, probe environment, scheduler, store and HTTP server together, and stops them all
//! on SIGTERM or Ctrl-C.
//!
//! This is the only place that knows all the parts; each part stays ignorant of the others.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;
use axum::Router;
use futures_util::FutureExt as _;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::config::Config;
use crate::env::ProbeEnv;
use crate::http::{self, AppState, Prober};
use crate::metrics::{self, ExporterMetrics};
use crate::probe::probe_server;
use crate::report::ServerReport;
use crate::scheduler::{Schedule, Scheduler};
use crate::store::Store;

/// Runs the exporter until SIGTERM or Ctrl-C.
pub async fn run(config: Config, listen: SocketAddr) -> anyhow::Result<()> {
    let env = ProbeEnv::from_config(&config)?;
    let exporter = start(&config, env);
    let listener = bind(listen).await?;
    tracing::info!(address = %listener.local_addr()?, servers = config.servers.len(), "listening");
    axum::serve(listener, exporter.router.clone())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("HTTP server failed")?;
    drop(exporter);
    tracing::info!("stopped");
    Ok(())
}

/// A running exporter: the probe loops and the routes that show their results. Dropping it stops probing.
pub struct Exporter {
    pub router: Router,
    /// Turns true once every configured server has been probed once.
    pub ready: watch::Receiver<bool>,
    _scheduler: Scheduler,
}

/// Starts probing every configured server on its schedule through `env`, and builds the routes. Split from
/// [`run`] so tests can drive the whole exporter against the hermetic world without binding a port.
#[must_use]
pub fn start(config: &Config, env: ProbeEnv) -> Exporter {
    let env = Arc::new(env);
    let store = Arc::new(Store::new());
    let exporter = ExporterMetrics::new();
    exporter.config_loaded(true, SystemTime::now());
    exporter.set_probe_interval(config.probe.interval);
    let (ready_tx, ready) = watch::channel(false);
    let schedule = Schedule {
        interval: config.probe.interval,
        jitter: config.probe.jitter,
        concurrency: config.probe.concurrency,
        deadline: env.probe_deadline(),
    };
    let prober = api_prober(env.clone());
    let scheduler = {
        let (store, exporter) = (store.clone(), exporter.clone());
        Scheduler::start(
            config.servers.clone(),
            schedule,
            move |name| {
                let env = env.clone();
                async move { probe_server(&env, &name).await }
            },
            move |report| {
                exporter.record_probe(report.success());
                store.insert(report);
            },
            ready_tx,
        )
    };
    let state = AppState {
        registry: metrics::registry(store.clone(), &exporter),
        store,
        ready: ready.clone(),
        prober,
        servers: Arc::new(
            config
                .servers
                .iter()
                .map(|name| name.as_str().to_owned())
                .collect::<HashSet<_>>(),
        ),
        interval: config.probe.interval,
        probe_unconfigured: config.api.probe_unconfigured,
        api_probes: Semaphore::new(http::MAX_API_PROBES),
    };
    Exporter {
        router: http::router(Arc::new(state)),
        ready,
        _scheduler: scheduler,
    }
}

/// On-demand probes for the report API: `probe_server` through the shared `env`, cut at the same deadline as
/// scheduled probes.
fn api_prober(env: Arc<ProbeEnv>) -> Prober {
    Arc::new(move |name| {
        let env = env.clone();
        async move {
            let started_at = SystemTime::now();
            let deadline = env.probe_deadline();
            match tokio::time::timeout(deadline, probe_server(&env, &name)).await {
                Ok(report) => report,
                Err(_) => ServerReport::timed_out(name.as_str(), started_at, deadline),
            }
        }
        .boxed()
    })
}

/// Binds `addr`; `[::]:port` falls back to `0.0.0.0:port` on hosts without IPv6.
async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(e) if addr.ip().is_unspecified() && addr.is_ipv6() => {
            tracing::debug!("cannot bind {addr} ({e}); trying IPv4 only");
            let v4 = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), addr.port());
            TcpListener::bind(v4)
                .await
                .with_context(|| format!("cannot listen on {v4}"))
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen on {addr}")),
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = term => tracing::info!("SIGTERM received, shutting down"),
    }
}
