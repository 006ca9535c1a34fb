#!/usr/bin/env bash
# Creates the Python venv with the pinned Synapse that tests/synapse.rs federates with, and prints the path of
# its python (the only line on stdout; everything else goes to stderr).
#
# Idempotent: a venv whose stamp matches the pins and the base Python is reused as is; anything else (missing,
# half-built, other pins) is rebuilt from scratch. Concurrent runs wait for each other (flock).
#
#   MFE_SYNAPSE_VENV         where the venv lives (default: target/synapse-venv, relative to the repo root)
#   MFE_SYNAPSE_BASE_PYTHON  the Python that creates it (default: python3; Synapse needs 3.10 or later)
#
# Needs PyPI (through pip as configured on the machine) only when the venv is (re)built; fails with a clear
# message and a non-zero status when it cannot install.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

venv="${MFE_SYNAPSE_VENV:-target/synapse-venv}"
case "$venv" in /*) ;; *) venv="$root/$venv" ;; esac
base_python="${MFE_SYNAPSE_BASE_PYTHON:-python3}"
requirements="$here/requirements.txt"
constraints="$here/constraints.txt"

say() { printf 'synapse setup: %s\n' "$*" >&2; }
die() { printf 'synapse setup: ERROR: %s\n' "$*" >&2; exit 1; }

command -v "$base_python" >/dev/null 2>&1 || die "no '$base_python' on PATH (set MFE_SYNAPSE_BASE_PYTHON)"
"$base_python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || die "$("$base_python" --version 2>&1) is too old: Synapse needs Python 3.10 or later"
"$base_python" -c 'import venv, ensurepip' 2>/dev/null \
  || die "'$base_python -m venv' is unavailable (on Debian: apt-get install python3-venv)"

pin="$(sed -n 's/^matrix-synapse==\([^[:space:]#]*\).*/\1/p' "$requirements")"
[ -n "$pin" ] || die "$requirements pins no matrix-synapse==VERSION"

# What the venv was built from: the pins, the base interpreter and this script.
stamp="$(
  {
    cat "$requirements" "$constraints" "${BASH_SOURCE[0]}"
    "$base_python" -c 'import sys; print(sys.version, sys.platform)'
  } | sha256sum | cut -d' ' -f1
)"

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock -w 900 9 || die "timed out waiting for another setup.sh holding $venv.lock"

python="$venv/bin/python"
if [ -f "$venv/.mfe-stamp" ] && [ "$(cat "$venv/.mfe-stamp")" = "$stamp" ] \
  && "$python" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("synapse") is None)' >/dev/null 2>&1; then
  say "reusing $venv (matrix-synapse $pin)"
  echo "$python"
  exit 0
fi

start=$(date +%s)
say "building $venv with matrix-synapse $pin (from PyPI)"
rm -rf "$venv"
"$base_python" -m venv "$venv" >&2 || die "'$base_python -m venv $venv' failed"
if ! PIP_DISABLE_PIP_VERSION_CHECK=1 "$python" -m pip install --quiet --no-input --only-binary=:all: \
  --retries 2 -r "$requirements" -c "$constraints" >&2; then
  rm -rf "$venv"
  die "pip could not install matrix-synapse $pin and its pinned dependencies (binary wheels only). Is PyPI reachable from this machine? See pip's error above."
fi
# Not synapse.__version__: that appends the branch and commit of any git checkout around the venv (this repo's).
got="$("$python" -c 'import importlib.metadata as m, synapse; print(m.version("matrix-synapse"))')" \
  || die "matrix-synapse installed but 'import synapse' fails"
[ "$got" = "$pin" ] || die "installed matrix-synapse $got, but requirements.txt pins $pin"
echo "$stamp" >"$venv/.mfe-stamp"
say "built $venv in $(($(date +%s) - start)) s"
echo "$python"
