#!/usr/bin/env bash
# Installs Debian's `prometheus` package (the server and `promtool`) unless both are already on PATH.
# Idempotent: a second run does nothing. Used by .ci/run and, as a fallback, by tests/promql.rs.
# Needs root (CI runs as root) or passwordless sudo; prints where the binaries are.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  echo "prometheus: $(command -v prometheus), promtool: $(command -v promtool) (already installed)"
  exit 0
fi

source "$(dirname "$0")/apt-install.sh"
apt_install install-prometheus.sh prometheus --stop prometheus

for bin in prometheus promtool; do
  if ! command -v "$bin" >/dev/null 2>&1; then
    echo "install-prometheus.sh: $bin is still not on PATH after installing the prometheus package" >&2
    exit 1
  fi
done
echo "prometheus: $(command -v prometheus), promtool: $(command -v promtool)"
prometheus --version 2>&1 | head -n 1
