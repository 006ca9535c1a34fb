#!/usr/bin/env bash
# Installs Debian's `chromium` (and a font, so pages render text) unless `chromium` is already on PATH.
# Idempotent: a second run does nothing. Used by .ci/run and, as a fallback, by tests/status.rs, whose status-page
# test loads the exporter's pages in headless Chromium. Needs root (CI runs as root) or passwordless sudo.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  echo "chromium: $(command -v chromium) (already installed)"
  exit 0
fi

source "$(dirname "$0")/apt-install.sh"
# fonts-dejavu-core gives the page a real font.
apt_install install-chromium.sh chromium fonts-dejavu-core

if ! command -v chromium >/dev/null 2>&1; then
  echo "install-chromium.sh: chromium is still not on PATH after installing Debian's chromium package" >&2
  exit 1
fi
echo "chromium: $(command -v chromium)"
# Chromium prints its version without starting a browser.
chromium --version 2>/dev/null || true
