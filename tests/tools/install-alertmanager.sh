#!/usr/bin/env bash
# Installs Debian's `prometheus-alertmanager` package (the Alertmanager, as `prometheus-alertmanager`, and `amtool`)
# unless both are already on PATH. Idempotent: a second run does nothing. Used by .ci/run and, as a fallback, by
# tests/alertmanager.rs. Needs root (CI runs as root) or passwordless sudo; prints where the binaries are.
set -euo pipefail

have_alertmanager() { command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1; }

if have_alertmanager && command -v amtool >/dev/null 2>&1; then
  echo "alertmanager and amtool already installed: $(command -v amtool)"
  exit 0
fi

source "$(dirname "$0")/apt-install.sh"
apt_install install-alertmanager.sh prometheus-alertmanager --stop prometheus-alertmanager

if ! have_alertmanager || ! command -v amtool >/dev/null 2>&1; then
  echo "install-alertmanager.sh: alertmanager or amtool is still not on PATH after installing the package" >&2
  exit 1
fi
echo "amtool: $(command -v amtool)"
amtool --version 2>&1 | head -n 1
