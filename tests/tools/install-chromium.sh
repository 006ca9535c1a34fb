#!/usr/bin/env bash
# Installs Debian's `chromium` (and a font, so pages render text) unless `chromium` is already on PATH.
# Idempotent: a second run does nothing. Used by .ci/run and, as a fallback, by tests/status.rs, whose status-page
# test loads the exporter's pages in headless Chromium. Needs root (CI runs as root) or passwordless sudo.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  echo "chromium: $(command -v chromium) (already installed)"
  exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
  else
    echo "install-chromium.sh: need root (or sudo) to apt-get install chromium" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
# --no-install-recommends keeps the desktop integration out; fonts-dejavu-core gives the page a real font.
"${SUDO[@]}" apt-get install -y --no-install-recommends chromium fonts-dejavu-core

if ! command -v chromium >/dev/null 2>&1; then
  echo "install-chromium.sh: chromium is still not on PATH after installing Debian's chromium package" >&2
  exit 1
fi
echo "chromium: $(command -v chromium)"
# Chromium prints its version without starting a browser.
chromium --version 2>/dev/null || true
