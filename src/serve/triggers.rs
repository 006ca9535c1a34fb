//! What starts a reload or a shutdown of the daemon from outside: SIGHUP, a change of the target files (polled),
//! and SIGTERM or Ctrl-C. `POST /-/reload` is a route of the daemon itself. Each trigger only calls the `reload`
//! it is given, or completes; what a reload does is `daemon.rs`'s.

use std::time::Duration;

/// Reloads on every SIGHUP, for as long as the daemon runs.
pub(super) async fn reload_on_sighup(reload: impl AsyncFn()) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen for SIGHUP, reload with POST /-/reload instead: {e}");
            return;
        }
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP received, reloading");
        reload().await;
    }
}

/// Asks `changed` every `every` (the target files) and reloads when they changed, without a signal.
pub(super) async fn reload_on_change(
    every: Duration,
    changed: impl AsyncFn() -> bool,
    reload: impl AsyncFn(),
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if changed().await {
            tracing::info!("target files changed, reloading");
            reload().await;
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub(super) async fn shutdown_signal() {
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
