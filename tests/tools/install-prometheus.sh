#!/usr/bin/env bash
# Installs Debian's `prometheus` package (the server and `promtool`) unless both are already on PATH.
# Idempotent: a second run does nothing. Used by .ci/run and, as a fallback, by tests/promql.rs.
# Needs root (CI runs as root) or passwordless sudo; prints where the binaries are.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  echo "prometheus: $(command -v prometheus), promtool: $(command -v promtool) (already installed)"
  exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
  else
    echo "install-prometheus.sh: need root (or sudo) to apt-get install prometheus" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
# --no-install-recommends keeps the web console libraries and node exporter out; the package's maintainer
# script may try to start the service, which fails harmlessly without systemd.
"${SUDO[@]}" apt-get install -y --no-install-recommends prometheus

# The package's service is not wanted here: if an init system started it, stop it so it holds no port.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  "${SUDO[@]}" systemctl stop prometheus || true
fi

for bin in prometheus promtool; do
  if ! command -v "$bin" >/dev/null 2>&1; then
    echo "install-prometheus.sh: $bin is still not on PATH after installing the prometheus package" >&2
    exit 1
  fi
done
echo "prometheus: $(command -v prometheus), promtool: $(command -v promtool)"
prometheus --version 2>&1 | head -n 1
