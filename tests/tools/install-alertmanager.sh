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

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
  else
    echo "install-alertmanager.sh: need root (or sudo) to apt-get install prometheus-alertmanager" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
# The package's maintainer script may try to start the service, which fails harmlessly without systemd.
"${SUDO[@]}" apt-get install -y --no-install-recommends prometheus-alertmanager

# The package's service is not wanted here: if an init system started it, stop it so it holds no port.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus-alertmanager 2>/dev/null; then
  "${SUDO[@]}" systemctl stop prometheus-alertmanager || true
fi

if ! have_alertmanager || ! command -v amtool >/dev/null 2>&1; then
  echo "install-alertmanager.sh: alertmanager or amtool is still not on PATH after installing the package" >&2
  exit 1
fi
echo "amtool: $(command -v amtool)"
amtool --version 2>&1 | head -n 1
