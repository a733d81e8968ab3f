#!/usr/bin/env bash
# Configure podman on a lab/CI host (Debian 12, hybrid cgroups, no systemd as PID 1).
#
# Idempotent: installs missing apt packages and makes sure /etc/containers/containers.conf has
#   [containers] default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
#   [engine]     runtime = "runc"
# Other settings in an existing containers.conf are kept. Prints nothing when the host is already
# configured; prints one line per change otherwise.
#
# Why: crun fails on this host ("cgroups in hybrid mode not supported") and podman's default
# ulimits fail with setrlimit EPERM (see ../shared/LAB-NOTES.md).
set -euo pipefail

CONF=${CONTAINERS_CONF_PATH:-/etc/containers/containers.conf}
PACKAGES=(podman runc crun fuse-overlayfs netavark aardvark-dns slirp4netns debootstrap iptables)

if [[ ${EUID} -ne 0 ]]; then
  echo "podman-host.sh: must run as root (it writes ${CONF} and may apt-get install)." >&2
  exit 1
fi

# --- packages ---------------------------------------------------------------------------------
missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "${pkg}" 2>/dev/null || true)
  [[ ${status} == installed ]] || missing+=("${pkg}")
done
if ((${#missing[@]})); then
  echo "podman-host.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- containers.conf --------------------------------------------------------------------------
# set_key FILE SECTION KEY VALUE: print FILE with KEY=VALUE set inside [SECTION] (replacing an
# existing KEY line there, else adding it right after the section header; appending the section
# if it does not exist). Comments and all other lines are kept as they are.
set_key() {
  awk -v sect="$2" -v key="$3" -v val="$4" '
    function flush_missing() { if (in_sect && !done) { print key " = " val; done = 1 } }
    /^[[:space:]]*\[[^]]+\][[:space:]]*$/ {
      name = $0; gsub(/^[[:space:]]*\[|\][[:space:]]*$/, "", name)
      if (in_sect) flush_missing()
      in_sect = (name == sect)
      if (in_sect) seen = 1
      print; next
    }
    skip { if ($0 ~ /\]/) skip = 0; next }
    in_sect && !done && $0 ~ "^[[:space:]]*" key "[[:space:]]*=" {
      print key " = " val; done = 1
      if ($0 ~ /=[[:space:]]*\[/ && $0 !~ /\]/) skip = 1   # drop the rest of a multi-line array
      next
    }
    { print }
    END {
      if (in_sect) flush_missing()
      if (!seen) { if (NR) print ""; print "[" sect "]"; print key " = " val }
    }
  ' "$1"
}

mkdir -p "$(dirname "${CONF}")"
tmp=$(mktemp "${CONF}.XXXXXX")
trap 'rm -f "${tmp}" "${tmp}.next"' EXIT
if [[ -f ${CONF} ]]; then cat "${CONF}" >"${tmp}"; else : >"${tmp}"; fi

# A key that sits at the exact wanted value anywhere in its section is left alone; only missing or
# different values are rewritten (so a hand-formatted file stays byte-identical when correct).
ensure() { # SECTION KEY VALUE
  local current
  current=$(awk -v sect="$1" -v key="$2" '
    /^[[:space:]]*\[[^]]+\][[:space:]]*$/ { name = $0; gsub(/^[[:space:]]*\[|\][[:space:]]*$/, "", name); in_sect = (name == sect); next }
    in_sect && $0 ~ "^[[:space:]]*" key "[[:space:]]*=" { sub(/^[^=]*=[[:space:]]*/, ""); sub(/[[:space:]]+$/, ""); print; exit }
  ' "${tmp}")
  if [[ ${current} != "$3" ]]; then
    set_key "${tmp}" "$1" "$2" "$3" >"${tmp}.next"
    mv "${tmp}.next" "${tmp}"
    echo "podman-host.sh: ${CONF}: [$1] $2 = $3${current:+ (was ${current})}"
  fi
}

ensure containers default_ulimits '["nofile=1024:1024", "nproc=4096:4096"]'
ensure engine runtime '"runc"'

if [[ ! -f ${CONF} ]] || ! cmp -s "${tmp}" "${CONF}"; then
  chmod 0644 "${tmp}"
  mv "${tmp}" "${CONF}"
fi
