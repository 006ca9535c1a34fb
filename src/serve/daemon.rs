//! Daemon mode: wires config, probe environment, scheduler, store and HTTP routes together; reloads them on
//! SIGHUP, `POST /-/reload` and target-file changes; stops them all on SIGTERM or Ctrl-C.
//!
//! This is the only place that knows all the parts; each part stays ignorant of the others. A reload builds
//! the new parts first and swaps them in only when everything loaded, so a bad config leaves the old one in
//! force.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::FutureExt as _;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, watch};
use tower::ServiceExt as _;

use crate::config::WebLimits;
use crate::config::server_name::ServerName;
use crate::config::targets::{self, Target};
use crate::config::{Config, Source};
use crate::probe::env::ProbeEnv;
use crate::probe::{Prober, probe_server};
use crate::render::metrics::{self, ExporterMetrics};
use crate::report::ServerReport;
use crate::schedule::notaries::Notaries;
use crate::schedule::scheduler::{OnReport, Schedule, Scheduler};
use crate::schedule::store::Store;
use crate::serve::homeservers::{self, Refreshers};
use crate::serve::limiter::Limiter;
use crate::serve::listener;
use crate::serve::routes::{self, AllowedTargets, AppState, ProbeEndpoint};
use crate::serve::triggers;
use crate::serve::web::WebConfig;

/// How often the target files are checked for changes (size, modification time, the set of matching files).
pub const TARGET_FILES_POLL: Duration = Duration::from_secs(2);

/// The runtime the daemon runs on: one thread for every probe, the scheduler and the HTTP side (rendering
/// `/metrics` and checking passwords go to tokio's blocking threads).
///
/// One thread is plenty: a whole probe is about half a millisecond of CPU, so a thread probes about two thousand
/// servers a second, and ten thousand servers every five minutes keep it under 2 % busy (see BENCHMARKS.md; more than that
/// is what `--shard` is for). It is also cheaper than a worker per core: measured with `bench/compare` at
/// 2,000 servers, it saves about 0.6 KiB of peak RSS per server (glibc gives each allocating thread its own
/// heap arena, and reports built on one worker and in-flight buffers on another fragment both) and some CPU
/// per probe (no wake-ups across threads).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Runs the exporter until SIGTERM or Ctrl-C, from the configuration and target files `source` gave at start
/// (`loaded`), reloading from `source` on SIGHUP, `POST /-/reload` and target-file changes.
pub async fn run(
    source: Source,
    loaded: (Config, Vec<Target>),
    listen: SocketAddr,
    web: Option<WebConfig>,
) -> anyhow::Result<()> {
    // Before anything opens a descriptor, so the connection cap is computed against the raised limit.
    let descriptors = listener::raise_descriptor_limit();
    tracing::debug!(limit = ?descriptors, "file-descriptor limit");
    // The loaded list goes at the end of this block: the daemon keeps its own (with 100,000 names from target
    // files, a copy held for the whole run would be about 60 MiB).
    let exporter = {
        let (config, targets) = loaded;
        start_loaded(source, config, &targets, Box::new(ProbeEnv::from_config))?
    };
    let listener = bind(listen).await?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    let reloading = exporter.clone();
    // The outcome of a reload is logged and exported by `reload`.
    let _hup = tokio::spawn(triggers::reload_on_sighup(async move || {
        let _ = reloading.reload().await;
    }));
    let _watch = exporter.watch_target_files();
    listener::serve(
        listener,
        exporter.router.clone(),
        web,
        exporter.web_limits(),
        triggers::shutdown_signal(),
    )
    .await
    .context("HTTP server failed")?;
    drop(exporter);
    tracing::info!("stopped");
    Ok(())
}

/// Builds the probe environment for a config (production: [`ProbeEnv::from_config`]; tests remap ports).
pub type MakeEnv = Box<dyn Fn(&Config) -> anyhow::Result<ProbeEnv> + Send + Sync>;

/// A running exporter: the probe loops and the routes that show their results. Cloning shares it; dropping the
/// last clone stops probing.
#[derive(Clone)]
pub struct Exporter {
    /// Every route; it always serves the routes of the configuration in force.
    pub router: Router,
    /// Turns true once every server configured at start has been probed once.
    pub ready: watch::Receiver<bool>,
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    /// The listener's limits in force (`web.*`, the cap lowered to the descriptor limit's headroom).
    web_limits: watch::Sender<WebLimits>,
    metrics: ExporterMetrics,
    ready: watch::Receiver<bool>,
    /// The routes of the configuration in force (rebuilt on reload).
    routes: RwLock<Router>,
    /// The caps on probes run on request, shared by every build of the routes.
    caps: Caps,
    /// The configuration in force; the lock also makes reloads one at a time.
    running: Mutex<Running>,
    /// Where a reload reads the configuration; `None` when started from a fixed config.
    source: Option<(Source, MakeEnv)>,
    /// Bumped by the homeserver refresh loops when a destination list may have changed.
    destinations_changed: watch::Sender<u64>,
}

struct Running {
    config: Config,
    scheduler: Scheduler,
    signature: targets::Signature,
    /// The servers of the config and the target files (before sharding), without homeserver destinations.
    configured: Vec<Target>,
    /// The servers scheduled now (configured ones and destinations, sharded).
    names: Vec<ServerName>,
    env: Arc<ProbeEnv>,
    prober: Prober,
    /// The homeserver refresh loops of this configuration.
    refreshers: Refreshers,
    /// The notary rounds (`notaries:`).
    notaries: Notaries,
}

/// Starts probing `config.servers` through `env` and builds the routes, without reload (tests drive the whole
/// exporter this way against the hermetic world; target files are read by [`start_reloadable`]).
#[must_use]
pub fn start(config: &Config, env: ProbeEnv) -> Exporter {
    let targets: Vec<Target> = config
        .servers
        .iter()
        .map(|name| Target {
            name: name.clone(),
            labels: targets::Labels::new(),
        })
        .collect();
    launch(config.clone(), &targets, env, None)
}

/// Loads the configuration and the target files from `source`, builds the environment with `make_env`, and
/// starts probing. Reloads read `source` again. Errors name the file, key or flag (exit code 2 at start).
pub fn start_reloadable(source: Source, make_env: MakeEnv) -> anyhow::Result<Exporter> {
    let config = source.load()?;
    let targets = targets::resolve(&config)?;
    start_loaded(source, config, &targets, make_env)
}

/// [`start_reloadable`] with the configuration and target files `source` already gave (the binary reads them
/// once at start, to check them before it starts; they are not read twice).
pub fn start_loaded(
    source: Source,
    config: Config,
    targets: &[Target],
    make_env: MakeEnv,
) -> anyhow::Result<Exporter> {
    let env = make_env(&config)?;
    Ok(launch(config, targets, env, Some((source, make_env))))
}

fn launch(
    config: Config,
    targets: &[Target],
    env: ProbeEnv,
    source: Option<(Source, MakeEnv)>,
) -> Exporter {
    let store = Arc::new(Store::new());
    let metrics = ExporterMetrics::new();
    let (ready_tx, ready) = watch::channel(false);
    let env = Arc::new(env);
    let (destinations_changed, changes) = watch::channel(0u64);
    let refreshers = homeservers::start(&config.homeservers, &env, &store, &destinations_changed);
    let configured = targets.to_vec();
    let targets = in_shard(&config, &homeservers::with_destinations(targets, &store));
    store.configure(&targets);
    let names: Vec<ServerName> = targets.iter().map(|t| t.name.clone()).collect();
    let prober = prober(env.clone(), metrics.clone());
    let on_report: OnReport = {
        let (store, metrics) = (store.clone(), metrics.clone());
        Arc::new(move |report: ServerReport| {
            metrics.record_probe(report.success());
            let name = report.server_name.clone();
            let previous = store.get(&name);
            store.insert(report);
            // Logged once the report is stored (and served), and only for a server still configured.
            if let Some(current) = store.get(&name) {
                log_state_change(previous.as_deref(), &current);
            }
        })
    };
    let scheduler = Scheduler::start(
        &names,
        schedule(&config, &env),
        prober.clone(),
        on_report,
        ready_tx,
    );
    metrics.config_loaded(true, SystemTime::now());
    metrics.set_probe_interval(config.probe.interval);
    metrics.set_servers(names.len());
    let caps = Caps::new(&config);
    let routes = routes(
        &config,
        &env,
        prober.clone(),
        &store,
        &metrics,
        &ready,
        &caps,
    );
    let signature = targets::signature(&config);
    let mut notaries = Notaries::new();
    notaries.update(&config.notaries, &env, &store, &ready);
    let (web_limits, _) = watch::channel(web_limits(&config));
    let inner = Arc::new(Inner {
        store,
        web_limits,
        metrics,
        ready: ready.clone(),
        routes: RwLock::new(routes),
        caps,
        running: Mutex::new(Running {
            config,
            scheduler,
            signature,
            configured,
            names,
            env,
            prober: prober.clone(),
            refreshers,
            notaries,
        }),
        source,
        destinations_changed,
    });
    tokio::spawn(apply_destinations_on_change(
        Arc::downgrade(&inner),
        changes,
    ));
    let dispatch = {
        let inner = inner.clone();
        tower::service_fn(move |request: Request| {
            let routes = inner
                .routes
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            async move { routes.oneshot(request).await }
        })
    };
    let router = Router::new()
        .route("/-/reload", post(reload_handler).put(reload_handler))
        .with_state(inner.clone())
        .fallback_service(dispatch);
    Exporter {
        router,
        ready,
        inner,
    }
}

impl Exporter {
    /// Reads the configuration and the target files again and applies them: removed servers vanish from
    /// `/metrics` at once, new servers are probed at once, the others keep their results. On any error the
    /// configuration in force stays, `config_last_reload_successful` turns 0, and the error is returned.
    pub async fn reload(&self) -> anyhow::Result<()> {
        self.inner.reload().await
    }

    /// Changes whenever a probe result is stored (tests wait on it instead of sleeping).
    #[must_use]
    pub fn reports(&self) -> watch::Receiver<u64> {
        self.inner.store.subscribe()
    }

    /// The latest report of every configured server that was probed, sorted by name.
    #[must_use]
    pub fn all_reports(&self) -> Vec<Arc<ServerReport>> {
        self.inner.store.snapshot()
    }

    /// The latest round of every configured notary that has finished one, sorted by notary name.
    #[must_use]
    pub fn notaries(&self) -> Vec<Arc<crate::report::notary::NotaryReport>> {
        self.inner.store.notaries()
    }

    /// The latest report of `server_name`, if it is configured and was probed.
    #[must_use]
    pub fn report(&self, server_name: &str) -> Option<Arc<ServerReport>> {
        self.inner.store.get(server_name)
    }

    /// Every configured homeserver's state (`homeservers:`): its last good destination list, up or not.
    #[must_use]
    pub fn homeservers(&self) -> Vec<Arc<crate::report::homeserver::HomeserverView>> {
        self.inner.store.homeservers.snapshot()
    }

    /// The server names probed on the schedule now (configured ones and homeserver destinations, sharded), sorted.
    #[must_use]
    pub fn scheduled(&self) -> Vec<Arc<str>> {
        self.inner.store.configured()
    }

    /// Polls the target files every [`TARGET_FILES_POLL`] and reloads when they change, without a signal
    /// (`run` starts this). The task keeps the exporter alive until it is aborted.
    #[must_use]
    pub fn watch_target_files(&self) -> tokio::task::JoinHandle<()> {
        let (asking, reloading) = (self.clone(), self.clone());
        tokio::spawn(triggers::reload_on_change(
            TARGET_FILES_POLL,
            async move || asking.target_files_changed().await,
            async move || {
                let _ = reloading.reload().await;
            },
        ))
    }

    /// The listener's limits in force; a reload changes them for the connections that follow.
    #[must_use]
    pub fn web_limits(&self) -> watch::Receiver<WebLimits> {
        self.inner.web_limits.subscribe()
    }

    /// Whether the target files changed since the configuration in force was loaded.
    async fn target_files_changed(&self) -> bool {
        let running = self.inner.running.lock().await;
        !running.config.target_files.is_empty()
            && targets::signature(&running.config) != running.signature
    }
}

impl Inner {
    /// See [`Exporter::reload`]; reloads run one at a time.
    async fn reload(&self) -> anyhow::Result<()> {
        let mut running = self.running.lock().await;
        let result = self.reload_locked(&mut running);
        self.metrics
            .config_loaded(result.is_ok(), SystemTime::now());
        match &result {
            Ok(()) => tracing::info!(servers = running.scheduler.len(), "configuration reloaded"),
            Err(e) => {
                tracing::error!("reload failed, the previous configuration stays in force: {e:#}");
            }
        }
        result
    }

    fn reload_locked(&self, running: &mut Running) -> anyhow::Result<()> {
        let (source, make_env) = self
            .source
            .as_ref()
            .context("this exporter was started without a config source, so it cannot reload")?;
        let config = source.load()?;
        let configured = targets::resolve(&config)?;
        let env = Arc::new(make_env(&config)?);
        // Everything loaded: from here on nothing fails, so the swap is all or nothing.
        running.refreshers = homeservers::start(
            &config.homeservers,
            &env,
            &self.store,
            &self.destinations_changed,
        );
        let targets = in_shard(
            &config,
            &homeservers::with_destinations(&configured, &self.store),
        );
        let names: Vec<ServerName> = targets.iter().map(|t| t.name.clone()).collect();
        let prober = prober(env.clone(), self.metrics.clone());
        self.store.configure(&targets);
        running
            .scheduler
            .update(&names, schedule(&config, &env), prober.clone());
        self.caps.resize(&config);
        running
            .notaries
            .update(&config.notaries, &env, &self.store, &self.ready);
        let routes = routes(
            &config,
            &env,
            prober.clone(),
            &self.store,
            &self.metrics,
            &self.ready,
            &self.caps,
        );
        *self.routes.write().unwrap_or_else(PoisonError::into_inner) = routes;
        self.metrics.set_probe_interval(config.probe.interval);
        self.metrics.set_servers(names.len());
        self.web_limits.send_replace(web_limits(&config));
        running.signature = targets::signature(&config);
        running.config = config;
        running.configured = configured;
        running.names = names;
        running.env = env;
        running.prober = prober;
        Ok(())
    }

    /// Makes the homeservers' current destination lists part of the scheduled servers (a no-op when the set of
    /// servers to probe did not change). Servers that stay keep their rhythm and results.
    async fn apply_destinations(&self) {
        let mut running = self.running.lock().await;
        let all = homeservers::with_destinations(&running.configured, &self.store);
        let targets = in_shard(&running.config, &all);
        let names: Vec<ServerName> = targets.iter().map(|t| t.name.clone()).collect();
        if names == running.names {
            return;
        }
        self.store.configure(&targets);
        let plan = schedule(&running.config, &running.env);
        let prober = running.prober.clone();
        running.scheduler.update(&names, plan, prober);
        self.metrics.set_servers(names.len());
        tracing::info!(
            servers = names.len(),
            "homeserver destinations changed the servers to probe"
        );
        running.names = names;
    }
}

/// Applies the homeservers' destination lists whenever a refresh ends, for as long as the exporter lives.
async fn apply_destinations_on_change(inner: Weak<Inner>, mut changes: watch::Receiver<u64>) {
    while changes.changed().await.is_ok() {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        inner.apply_destinations().await;
    }
}

/// `POST /-/reload` (and PUT, as Prometheus accepts): 200 when the new configuration is in force, else 500 with
/// the reason.
async fn reload_handler(State(inner): State<Arc<Inner>>) -> Response {
    match inner.reload().await {
        Ok(()) => (StatusCode::OK, "configuration reloaded\n").into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reload failed: {e:#}\n"),
        )
            .into_response(),
    }
}

/// With `--shard i/n`, this exporter probes (and serves on the API) only the servers of its shard.
fn in_shard(config: &Config, targets: &[Target]) -> Vec<Target> {
    targets
        .iter()
        .filter(|t| config.shard.is_none_or(|shard| shard.contains(&t.name)))
        .cloned()
        .collect()
}

/// Descriptors kept free below the limit for probes, reloads and the process itself, whatever clients do: a
/// base for the process (its listener, logs, config and target files, the resolver) and eight for each probe
/// that may run at once (the well-known fetch, DNS sockets, one connection per address), scheduled or on demand.
fn descriptor_reserve(config: &Config) -> usize {
    const BASE: usize = 64;
    const PER_PROBE: usize = 8;
    let probes =
        config.probe.concurrency + config.probe.max_concurrent_probes + routes::MAX_API_PROBES;
    BASE + PER_PROBE * probes
}

/// `web.*` of `config`, with the connection cap lowered to keep [`descriptor_reserve`] free below the
/// descriptor limit (logged when it is).
fn web_limits(config: &Config) -> WebLimits {
    let reserve = descriptor_reserve(config);
    let limit = listener::descriptor_limit();
    let cap = listener::connection_cap(config.web.max_connections, reserve, limit);
    if cap < config.web.max_connections {
        tracing::info!(
            max_connections = config.web.max_connections,
            cap,
            descriptor_limit = ?limit,
            reserve,
            "web.max_connections lowered to keep file descriptors for probes"
        );
    }
    WebLimits {
        max_connections: cap,
        ..config.web
    }
}

fn schedule(config: &Config, env: &ProbeEnv) -> Schedule {
    Schedule {
        interval: config.probe.interval,
        jitter: config.probe.jitter,
        concurrency: config.probe.concurrency,
        deadline: env.probe_deadline(),
    }
}

/// The caps on probes run on request (`GET /probe`, the report API). Each is one limiter for the exporter's life
/// that a reload resizes in place: new limiters per reload would let the probes of the old ones run uncounted
/// (issue 11: 80 `/probe` probes at once under a cap of 16).
struct Caps {
    /// `GET /probe`: `probe.max_concurrent_probes`.
    probe: Limiter,
    /// The report API: [`routes::MAX_API_PROBES`], which no config changes.
    api: Limiter,
}

impl Caps {
    fn new(config: &Config) -> Self {
        Self {
            probe: Limiter::new(config.probe.max_concurrent_probes),
            api: Limiter::new(routes::MAX_API_PROBES),
        }
    }

    /// Applies the caps of a reloaded `config`; probes running stay, over a smaller cap too.
    fn resize(&self, config: &Config) {
        self.probe.resize(config.probe.max_concurrent_probes);
    }
}

/// The routes of one configuration, over the shared store, metrics and caps.
fn routes(
    config: &Config,
    env: &ProbeEnv,
    prober: Prober,
    store: &Arc<Store>,
    metrics: &ExporterMetrics,
    ready: &watch::Receiver<bool>,
    caps: &Caps,
) -> Router {
    let state = AppState {
        registry: metrics::profiled_registry(store.clone(), metrics, config.metrics.profile),
        store: store.clone(),
        ready: ready.clone(),
        prober,
        probe_deadline: env.probe_deadline(),
        interval: config.probe.interval,
        probe_unconfigured: config.api.probe_unconfigured,
        allowed_targets: AllowedTargets::new(&config.probe.allowed_targets),
        api_probes: caps.api.clone(),
        exporter: metrics.clone(),
        probe: ProbeEndpoint::new(&config.probe, env.probe_deadline(), caps.probe.clone())
            .with_profile(config.metrics.profile),
        scrapes: crate::serve::scrape::SharedScrapes::default(),
    };
    routes::router(Arc::new(state))
}

/// Every probe (scheduled, `/probe`, the report API): `probe_server` through the shared `env`, counted in
/// `probes_in_flight` while it runs (or until cancelled). Each caller cuts it at its own deadline with
/// [`crate::probe::run_within`]: the scheduler and the report API at the probe deadline, `/probe` at its timeout.
fn prober(env: Arc<ProbeEnv>, metrics: ExporterMetrics) -> Prober {
    Arc::new(move |name| {
        let env = env.clone();
        let in_flight = metrics.probe_started();
        async move {
            let _in_flight = in_flight;
            probe_server(&env, &name).await
        }
        .boxed()
    })
}

/// One log line when a server's state changes (ok ↔ failing, or a different first reason), none per probe.
fn log_state_change(previous: Option<&ServerReport>, report: &ServerReport) {
    let reason = |r: &ServerReport| r.all_failures().next().map(|(_, f)| (f.stage, f.reason));
    let was = previous.map(|p| (p.success(), reason(p)));
    let now = (report.success(), reason(report));
    if was == Some(now) {
        return;
    }
    match reason(report) {
        None => tracing::info!(server_name = %report.server_name, "federation ok"),
        Some((stage, why)) => {
            let message = report
                .all_failures()
                .next()
                .map(|(_, f)| f.message.as_str())
                .unwrap_or_default();
            tracing::warn!(server_name = %report.server_name, %stage, reason = %why, message, "federation failing");
        }
    }
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
