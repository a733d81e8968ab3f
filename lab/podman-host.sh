#!/usr/bin/env bash
# Configure podman on a lab/CI host (Debian 12, hybrid cgroups, no systemd as PID 1).
#
# Idempotent: installs missing apt packages, makes sure /etc/containers/containers.conf has
#   [containers] default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
#   [engine]     runtime = "runc"
# and raises the kernel's inotify limits to at least
#   fs.inotify.max_user_instances = 8192, fs.inotify.max_user_watches = 524288
# at once (sysctl -w) and for every boot (/etc/sysctl.d/60-fleetwatch-lab.conf); a limit already higher is kept.
# Other settings in an existing containers.conf are kept. Prints nothing when the host is already
# configured; prints one line per change otherwise.
#
# Why: crun fails on this host ("cgroups in hybrid mode not supported") and podman's default
# ulimits fail with setrlimit EPERM (see ../shared/LAB-NOTES.md). Every systemd container takes inotify
# instances from the same user (root) as the host: with the kernel's default of 128, a lab of about 20
# systemd containers runs out, and services in them fail with "too many open files".
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

# --- inotify limits ---------------------------------------------------------------------------
# At least these values, now and at boot. A limit the machine already has higher (max_user_watches scales with
# RAM on recent kernels) is written to the file as it is, so the file never lowers it at the next boot.
SYSCTL_FILE=${FLEETWATCH_SYSCTL_FILE:-/etc/sysctl.d/60-fleetwatch-lab.conf}
declare -A INOTIFY_MIN=([fs.inotify.max_user_instances]=8192 [fs.inotify.max_user_watches]=524288)
sysctl_wanted="# Written by lab/podman-host.sh (fleetwatch lab): every systemd container uses inotify instances of the
# host's root user; the kernel's default of 128 runs out at about 20 containers (\"too many open files\")."
for key in fs.inotify.max_user_instances fs.inotify.max_user_watches; do
  current=$(sysctl -n "${key}")
  value=$((current > INOTIFY_MIN[${key}] ? current : INOTIFY_MIN[${key}]))
  if ((current < value)); then
    if sysctl -q -w "${key}=${value}" >/dev/null 2>&1; then
      echo "podman-host.sh: ${key} = ${value} (was ${current})"
    else
      echo "podman-host.sh: WARNING: cannot raise ${key} to ${value} here (it stays ${current}); a lab of more than" \
        "about 10 systemd containers may fail with \"too many open files\"." >&2
    fi
  fi
  sysctl_wanted+=$'\n'"${key} = ${value}"
done
if [[ ! -f ${SYSCTL_FILE} ]] || [[ $(cat "${SYSCTL_FILE}") != "${sysctl_wanted}" ]]; then
  mkdir -p "$(dirname "${SYSCTL_FILE}")"
  printf '%s\n' "${sysctl_wanted}" >"${SYSCTL_FILE}.tmp"
  chmod 0644 "${SYSCTL_FILE}.tmp"
  mv "${SYSCTL_FILE}.tmp" "${SYSCTL_FILE}"
  echo "podman-host.sh: ${SYSCTL_FILE}: inotify limits for every boot"
fi
