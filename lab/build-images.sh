#!/usr/bin/env bash
# Build the fleetwatch container lab images locally, without any registry:
#
#   localhost/fleetwatch-lab/debianN-base:latest       debootstrap minbase of Debian N's suite, podman import
#   localhost/fleetwatch-lab/debianN-systemd:latest    + systemd as PID 1 and what Ansible needs
#   localhost/fleetwatch-lab/debianN-podman:latest     + nested podman (lab host that runs containers; N >= 12)
#     for each release N given by --release (11 bullseye, 12 bookworm, 13 trixie; default 12 and 13), all three
#     from the same recipe (lab/images/debian-base, debian-systemd, debian-podman) with the release as parameter
#   localhost/fleetwatch-test/node-exporter:debian12   LOCAL TEST IMAGE standing in for quay.io/prometheus/node-exporter
#   localhost/fleetwatch-test/prometheus:v2.42.0-debian12    LOCAL TEST IMAGE standing in for docker.io/prom/prometheus
#   localhost/fleetwatch-test/alertmanager:v0.25.0-debian12  LOCAL TEST IMAGE standing in for docker.io/prom/alertmanager
#   localhost/fleetwatch-lab/ee-base:debian12          base of the execution environment (only when named: ee-base)
#
# Each image carries the label fleetwatch.recipe=<sha256 of its recipe inputs>: the files in
# lab/images/<dir>/, the builder function of this script, the apt mirror (base only) and the image ID
# of its parent image. An image whose label already matches is not rebuilt ("cached"), so a rebuilt
# parent rebuilds its children. Build logs: $FLEETWATCH_LAB_LOGDIR/<image>.log.
#
# Usage: lab/build-images.sh [--force] [--verbose] [--release N]... [IMAGE...]
#   IMAGE: base, systemd, podman, node-exporter, prometheus, alertmanager (default: these, in that order), ee-base
#          (only when named: scripts/ee.sh builds it). base, systemd and podman are built for every release asked
#          for; the test images and ee-base are Debian 12's (they need debian12-base).
#   --release N: 11, 12 or 13, repeatable (default: FLEETWATCH_LAB_RELEASES, else "12 13", what the scenarios use).
# Env:   FLEETWATCH_LAB_MIRROR, FLEETWATCH_LAB_SECURITY_MIRROR (default: taken from the host's apt sources, the
#        source of the release's suite, else the host's Debian source of another suite: one archive serves all;
#        FLEETWATCH_LAB_SECURITY_MIRROR=none leaves the security suite out), FLEETWATCH_LAB_RELEASES,
#        FLEETWATCH_LAB_LOGDIR (default /var/tmp/fleetwatch-lab/logs),
#        FLEETWATCH_LAB_CACHEDIR (debootstrap .deb cache, default /var/cache/fleetwatch-lab/debootstrap).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IMAGES_DIR=${HERE}/images
# Part of every recipe hash, as is the source of the builder function (build_base/build_containerfile):
# bump it when something else in this script changes what ends up in an image.
RECIPE_SCHEME=1
LOGDIR=${FLEETWATCH_LAB_LOGDIR:-/var/tmp/fleetwatch-lab/logs}
CACHEDIR=${FLEETWATCH_LAB_CACHEDIR:-/var/cache/fleetwatch-lab/debootstrap}

# Debian releases with lab host images, and debootstrap's suite of each.
declare -A DEBIAN_SUITES=([11]=bullseye [12]=bookworm [13]=trixie)
# Bullseye's podman (3.0) has no netavark, the network backend the podman recipe configures: no debian11-podman.
PODMAN_RELEASES=" 12 13 "
lab_image() { echo "localhost/fleetwatch-lab/debian$1-$2:latest"; } # RELEASE base|systemd|podman
# The parent of the test images and ee-base.
BASE=$(lab_image 12 base)
NODE_EXPORTER=localhost/fleetwatch-test/node-exporter:debian12
# Tags carry Debian 12's upstream versions: roles/prometheus picks its agent-mode flag from the tag's version.
PROMETHEUS=localhost/fleetwatch-test/prometheus:v2.42.0-debian12
ALERTMANAGER=localhost/fleetwatch-test/alertmanager:v0.25.0-debian12
EE_BASE=localhost/fleetwatch-lab/ee-base:debian12

FORCE=0
VERBOSE=0
SELECTED=()
RELEASES=()

usage() { sed -n '2,/^set -euo/{/^set -euo/d;/^# shellcheck/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
die() { echo "build-images.sh: $*" >&2; exit 1; }

while (($#)); do
  case $1 in
    --force | -f) FORCE=1 ;;
    --verbose | -v) VERBOSE=1 ;;
    -h | --help) usage; exit 0 ;;
    --release | -r)
      [[ -n ${2:-} && -n ${DEBIAN_SUITES[${2}]:-} ]] || die "--release takes one of: ${!DEBIAN_SUITES[*]}"
      RELEASES+=("$2"); shift ;;
    base | systemd | podman | node-exporter | prometheus | alertmanager | ee-base) SELECTED+=("$1") ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
  shift
done
((${#SELECTED[@]})) || SELECTED=(base systemd podman node-exporter prometheus alertmanager)
if ! ((${#RELEASES[@]})); then
  read -r -a RELEASES <<<"${FLEETWATCH_LAB_RELEASES:-12 13}"
  for r in "${RELEASES[@]}"; do [[ -n ${DEBIAN_SUITES[${r}]:-} ]] || die "FLEETWATCH_LAB_RELEASES: no release '${r}'"; done
fi

[[ ${EUID} -eq 0 ]] || die "must run as root (debootstrap and rootful podman)."
command -v podman >/dev/null || die "podman is not installed: run lab/podman-host.sh first."
command -v debootstrap >/dev/null || die "debootstrap is not installed: run lab/podman-host.sh first."
mkdir -p "${LOGDIR}"
# One build at a time on this host (podman tags and the debootstrap cache are shared).
exec 9>"${LOGDIR}/.build.lock"
if ! flock -n 9; then
  echo "build-images.sh: waiting for another build-images.sh to finish ..." >&2
  flock 9
fi

selected() { local s; for s in "${SELECTED[@]}"; do [[ $s == "$1" ]] && return 0; done; return 1; }

now() { echo "${EPOCHREALTIME}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

# Run a build step with its output in a log file (streamed too with --verbose); show the log's tail on failure.
run_logged() { # LOGFILE CMD...
  local log=$1; shift
  local rc=0
  if ((VERBOSE)); then
    "$@" 2>&1 | tee "${log}" || rc=$?
  else
    "$@" >"${log}" 2>&1 || rc=$?
  fi
  if ((rc)); then
    echo "build-images.sh: failed (exit ${rc}): $*" >&2
    echo "---- last lines of ${log} ----" >&2
    tail -n 30 "${log}" >&2
    exit "${rc}"
  fi
}

image_id() { podman image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }
image_recipe() { podman image inspect --format '{{index .Labels "fleetwatch.recipe"}}' "$1" 2>/dev/null || true; }

# sha256 over the recipe directory (file names and contents) plus extra inputs given as arguments.
recipe_hash() { # DIR EXTRA...
  local dir=$1; shift
  {
    echo "scheme=${RECIPE_SCHEME}"
    printf '%s\n' "$@"
    (cd "${dir}" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -d' ' -f1
}

# Drop the previous image of a tag once it has been replaced, if nothing uses it any more.
drop_replaced() { # OLD_ID NEW_ID
  [[ -n $1 && $1 != "$2" ]] || return 0
  podman image rm "$1" >/dev/null 2>&1 || true
}

# ---- apt mirror of the build host ----------------------------------------------------------------
# Prints "URI SUITE" for every enabled deb source of the host (one-line and deb822 formats).
host_apt_sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } print $i, $(i + 1) }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    awk '
      function flush(   u, s, nu, ns, a, b, i, j) {
        if (types ~ /(^|[[:space:]])deb([[:space:]]|$)/ && tolower(enabled) != "no") {
          nu = split(uris, a, /[[:space:]]+/); ns = split(suites, b, /[[:space:]]+/)
          for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) if (a[i] != "" && b[j] != "") print a[i], b[j]
        }
        types = uris = suites = ""; enabled = "yes"
      }
      BEGIN { enabled = "yes" }
      /^[[:space:]]*#/ { next }
      /^[[:space:]]*$/ { flush(); next }
      { key = tolower($1); sub(/^[^:]*:[[:space:]]*/, "") }
      key == "types:" { types = $0 } key == "uris:" { uris = $0 }
      key == "suites:" { suites = $0 } key == "enabled:" { enabled = $0 }
      END { flush() }
    ' "$f"
  done
}

mirror_for_suite() { # SUITE -> first URI of the host serving it
  host_apt_sources | awk -v s="$1" '$2 == s { sub(/\/+$/, "", $1); print $1; exit }'
}

# SUITE (bookworm) or SUITE-security -> the host's source of that suite, else its source of a Debian suite of the
# same kind (plain or -security: one archive serves every release; a bookworm host has no trixie source).
mirror_for() {
  local m
  m=$(mirror_for_suite "$1")
  [[ -n ${m} ]] || m=$(host_apt_sources | awk -v sec="$([[ $1 == *-security ]] && echo 1 || echo 0)" '
    { suite = $2; kind = (suite ~ /-security$/) }
    kind == sec && (sec || suite !~ /-/) && suite ~ /^(buster|bullseye|bookworm|trixie|forky|sid)/ {
      sub(/\/+$/, "", $1); print $1; exit }')
  echo "${m}"
}

# ---- image builders ------------------------------------------------------------------------------
build_base() { # HASH RELEASE
  local hash=$1 release=$2 rootfs log=${LOGDIR}/debian$2-base.log
  local suite=${DEBIAN_SUITES[${release}]} mirror=${MIRRORS[${release}]} security_mirror=${SECURITY_MIRRORS[${release}]}
  # shellcheck source=images/debian-base/debootstrap.conf
  source "${IMAGES_DIR}/debian-base/debootstrap.conf"
  mkdir -p "${CACHEDIR}"
  rootfs=$(mktemp -d /var/tmp/fleetwatch-lab-rootfs.XXXXXX)
  # shellcheck disable=SC2064 # expand now: rootfs is local
  trap "rm -rf --one-file-system '${rootfs}'" EXIT

  local t0
  t0=$(now)
  run_logged "${log}" debootstrap --variant="${VARIANT}" --components="${COMPONENTS}" \
    ${INCLUDE:+--include="${INCLUDE}"} --cache-dir="${CACHEDIR}" \
    "${suite}" "${rootfs}" "${mirror}"
  echo "  debootstrap ${suite} (${VARIANT}) from ${mirror}: $(elapsed "${t0}")"

  # apt sources of the image: the build host's mirror, with -updates (and -security when the host has it).
  {
    sed -e "s|@MIRROR@|${mirror}|g" -e "s|@SUITE@|${suite}|g" -e "s|@COMPONENTS@|${COMPONENTS}|g" \
      "${IMAGES_DIR}/debian-base/sources.list.in"
    if [[ ${security_mirror} != none ]]; then
      sed -e "s|@SECURITY_MIRROR@|${security_mirror}|g" -e "s|@SUITE@|${suite}|g" \
        -e "s|@COMPONENTS@|${COMPONENTS}|g" "${IMAGES_DIR}/debian-base/sources-security.list.in"
    fi
  } >"${rootfs}/etc/apt/sources.list"

  # What a container engine provides at run time, or what is only build leftovers.
  rm -rf "${rootfs:?}"/var/cache/apt/archives/*.deb "${rootfs}"/var/cache/apt/*.bin \
    "${rootfs}"/var/lib/apt/lists/* "${rootfs}"/tmp/* \
    "${rootfs}"/etc/resolv.conf "${rootfs}"/etc/hostname
  find "${rootfs}/var/log" -type f -delete
  mkdir -p "${rootfs}/var/lib/apt/lists/partial"

  t0=$(now)
  tar -C "${rootfs}" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . |
    podman import --quiet \
      --change 'CMD ["/bin/bash"]' \
      --change "LABEL fleetwatch.recipe=${hash}" \
      --change "LABEL org.opencontainers.image.description=\"fleetwatch lab: Debian ${release} minbase rootfs (debootstrap), local build\"" \
      --message "fleetwatch lab debootstrap ${suite} ${VARIANT}" - "$(lab_image "${release}" base)" >>"${log}"
  echo "  import: $(elapsed "${t0}")"
  rm -rf --one-file-system "${rootfs}"
  trap - EXIT
}

build_containerfile() { # NAME DIR HASH PARENT_ID RELEASE
  local name=$1 dir=$2 hash=$3 parent_id=$4 release=$5
  run_logged "${LOGDIR}/$(basename "${name%:*}").log" \
    podman build --pull=never --layers=false --build-arg "DEBIAN_RELEASE=${release}" \
    --label "fleetwatch.recipe=${hash}" --label "fleetwatch.parent-id=${parent_id}" \
    -f "${dir}/Containerfile" -t "${name}" "${dir}"
}

# ---- main ----------------------------------------------------------------------------------------
process() { # NAME DIR PARENT(or -) [RELEASE]
  local name=$1 dir=$2 parent=$3 release=${4:-12} hash parent_id="" old_id t0
  t0=$(now)
  if [[ ${parent} == - ]]; then
    hash=$(recipe_hash "${dir}" "release=${release}" "mirror=${MIRRORS[${release}]}" \
      "security_mirror=${SECURITY_MIRRORS[${release}]}" "$(declare -f build_base)")
  else
    parent_id=$(image_id "${parent}")
    [[ -n ${parent_id} ]] || die "${name}: parent image ${parent} is missing (build it first)."
    hash=$(recipe_hash "${dir}" "release=${release}" "parent=${parent_id}" "$(declare -f build_containerfile)")
  fi
  if ((!FORCE)) && [[ $(image_recipe "${name}") == "${hash}" ]]; then
    echo "${name}: cached (recipe ${hash:0:12}, $(elapsed "${t0}"))"
    return 0
  fi
  echo "${name}: building (recipe ${hash:0:12}) ..."
  old_id=$(image_id "${name}")
  if [[ ${parent} == - ]]; then
    build_base "${hash}" "${release}"
  else
    build_containerfile "${name}" "${dir}" "${hash}" "${parent_id}" "${release}"
  fi
  drop_replaced "${old_id}" "$(image_id "${name}")"
  echo "${name}: built in $(elapsed "${t0}") ($(podman image inspect --format '{{.Size}}' "${name}" |
    awk '{ printf "%.0f MB", $1 / 1e6 }'))"
}

declare -A MIRRORS=() SECURITY_MIRRORS=()
if selected base; then
  for release in "${RELEASES[@]}"; do
    suite=${DEBIAN_SUITES[${release}]}
    MIRRORS[${release}]=${FLEETWATCH_LAB_MIRROR:-$(mirror_for "${suite}")}
    SECURITY_MIRRORS[${release}]=${FLEETWATCH_LAB_SECURITY_MIRROR:-$(mirror_for "${suite}-security")}
    SECURITY_MIRRORS[${release}]=${SECURITY_MIRRORS[${release}]:-none}
    [[ -n ${MIRRORS[${release}]} ]] || die "no Debian apt source on this host for '${suite}': set FLEETWATCH_LAB_MIRROR."
  done
fi

total=$(now)
for release in "${RELEASES[@]}"; do
  selected base && process "$(lab_image "${release}" base)" "${IMAGES_DIR}/debian-base" - "${release}"
  selected systemd &&
    process "$(lab_image "${release}" systemd)" "${IMAGES_DIR}/debian-systemd" "$(lab_image "${release}" base)" "${release}"
  if selected podman; then
    if [[ ${PODMAN_RELEASES} == *" ${release} "* ]]; then
      process "$(lab_image "${release}" podman)" "${IMAGES_DIR}/debian-podman" "$(lab_image "${release}" systemd)" "${release}"
    else
      echo "$(lab_image "${release}" podman): not built (Debian ${release}'s podman has no netavark, which the recipe uses)"
    fi
  fi
done
selected node-exporter && process "${NODE_EXPORTER}" "${IMAGES_DIR}/node-exporter" "${BASE}"
selected prometheus && process "${PROMETHEUS}" "${IMAGES_DIR}/prometheus" "${BASE}"
selected alertmanager && process "${ALERTMANAGER}" "${IMAGES_DIR}/alertmanager" "${BASE}"
selected ee-base && process "${EE_BASE}" "${IMAGES_DIR}/ee-base" "${BASE}"
# Leftovers of earlier builds of ours (untagged, still carrying our label), nothing else.
podman images --quiet --filter dangling=true --filter label=fleetwatch.recipe | sort -u |
  while read -r id; do podman image rm "${id}" >/dev/null 2>&1 || true; done
echo "total: $(elapsed "${total}")"
