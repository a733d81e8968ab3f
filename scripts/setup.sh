#!/usr/bin/env bash
# Prepares this machine for the lab and the tests: apt packages, podman, the Python venv, the lab images.
# Idempotent: a second run only checks and takes seconds.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

APT_PACKAGES=(podman runc crun fuse-overlayfs netavark aardvark-dns slirp4netns debootstrap iptables uidmap
  prometheus prometheus-alertmanager prometheus-node-exporter jq curl git rsync openssl python3-venv shellcheck
  dpkg-dev gnupg rpm gcc libc6-dev linux-libc-dev)

missing_packages() {
  local p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || printf '%s ' "$p"
  done
}

install_apt_packages() {
  local missing
  missing=$(missing_packages)
  [ -z "$missing" ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    die "cannot install packages here (needs root and apt). Install them yourself, then run again:
  sudo apt-get install -y $missing"
  fi
  say "apt: installing $missing"
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  # The Debian packages start their daemons where systemd runs; the tests start their own copies.
}

create_venv() {
  if [ -x "$VENV/bin/molecule" ] && [ -f "$VENV/.complete" ]; then return 0; fi
  say "python: creating $VENV"
  rm -rf "$VENV"
  mkdir -p "$FLEETWATCH_CACHE"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REPO_ROOT/requirements/test.txt"
  touch "$VENV/.complete"
}

# ansible-test fetches a pip bootstrap script from a host this machine cannot reach; a stand-in in its cache
# bootstraps pip from the interpreter itself and installs the same requirements from PyPI.
ansible_test_offline_pip() {
  local version cache
  version=$(grep -oP "^\s+pip='\K[0-9.]+" "$VENV"/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py) \
    || die "cannot find the pip version ansible-test bootstraps; update ansible_test_offline_pip in $0"
  cache="$HOME/.ansible/test/cache/get_pip_${version//./_}.py"
  [ -f "$cache" ] && return 0
  mkdir -p "$(dirname "$cache")"
  cat > "$cache" <<'PY'
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
if args:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check"] + args)
PY
}

main() {
  local start=$SECONDS
  install_apt_packages
  bash "$REPO_ROOT/lab/podman-host.sh"
  create_venv
  ansible_test_offline_pip
  bash "$REPO_ROOT/lab/build-images.sh"
  say "setup done in $((SECONDS - start)) s"
}
main "$@"
