# Sourced by the install-*.sh scripts beside it: `apt_install SCRIPT PACKAGE... [--stop SERVICE]` installs Debian
# packages non-interactively as root, or through passwordless sudo, and stops SERVICE if an init system started
# it (so it holds no port). Exits 1 with a message naming SCRIPT when neither root nor sudo is available.

apt_install() {
  local script="$1"
  shift
  local packages=() stop=""
  while [ "$#" -gt 0 ]; do
    if [ "$1" = "--stop" ]; then
      stop="$2"
      shift 2
    else
      packages+=("$1")
      shift
    fi
  done
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo -n)
    else
      echo "$script: need root (or sudo) to apt-get install ${packages[*]}" >&2
      exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update
  # --no-install-recommends keeps desktop integration, web consoles and node exporters out. A package's
  # maintainer script may try to start its service, which fails harmlessly without systemd.
  "${sudo[@]}" apt-get install -y --no-install-recommends "${packages[@]}"
  if [ -n "$stop" ] && command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$stop" 2>/dev/null; then
    "${sudo[@]}" systemctl stop "$stop" || true
  fi
}
