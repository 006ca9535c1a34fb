//! (being written) Daemon mode: wires config, probe environment, scheduler and HTTP server together.

use std::net::SocketAddr;

use crate::config::Config;

/// Runs the exporter until SIGTERM or Ctrl-C.
pub async fn run(config: Config, listen: SocketAddr) -> anyhow::Result<()> {
    let _ = (config, listen);
    anyhow::bail!("daemon mode is being written")
}
