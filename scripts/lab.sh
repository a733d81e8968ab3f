#!/usr/bin/env bash
# The main job: deploy the stack to a local lab of containers described by inventories/lab/hosts.yml.
# Usage: scripts/lab.sh up | verify | down | status | targets-up | smoke | smoke-defaults [HOST] | site [ARGS] |
#        site-args | tuning-loop [HOST] | dashboards [HOST] | main-job
#   site: site.yml once on the lab as it is, with this lab's extra variables (site-args prints them) and ARGS.
#   verify: on a converged lab, site.yml again and then with --check --diff must both report zero changes.
#   targets-up: every host's node-exporter and every agent's Falco up in the lab's Prometheus with host and cloud
#               labels (lab/targets_up.py).
#   smoke: playbooks/smoke.yml on the lab: events on every Falco agent, each seen in its alert and in Prometheus.
#   smoke-defaults: HOST (default lab-agent-2) back to the falco role's defaults, then smoke.yml on it.
#   tuning-loop: the tuning loop with the real Falco on HOST (default lab-agent-1): noise, triage.yml's proposal,
#                the exception applied, the noise gone while other readers still alert (lab/tuning_loop.py).
#   dashboards: every panel query of the Falco fleet dashboard against the lab's Prometheus, for the whole fleet and
#               for HOST (default lab-agent-1, given an event first) (lab/dashboards.py).
#   main-job: the main job as CI runs it (scripts/test.sh): a new lab up, targets-up, verify, then with Falco
#             smoke.yml, the tuning loop, the dashboards and smoke-defaults; the lab is removed at the end, passed
#             or not.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT" || exit 1
INVENTORY=${FLEETWATCH_LAB_INVENTORY:-inventories/lab/hosts.yml}

# Falco: from the real package next to the project by default (../shared/packages, the air-gapped way a site
# without internet mirrors Falco; inventories/lab/group_vars/falco.yml), from Falco's own repository with
# FLEETWATCH_LAB_FALCO=yes, and not at all on a checkout without the package.
FALCO_PACKAGE="$REPO_ROOT/../shared/packages/falco_0.44.1_amd64.deb"
if [ "${FLEETWATCH_LAB_FALCO:-no}" = yes ]; then
  FALCO_SOURCE=repository
elif [ -f "$FALCO_PACKAGE" ]; then
  FALCO_SOURCE=package
else
  FALCO_SOURCE=none
fi
FALCO_HOSTS=$([ "$FALCO_SOURCE" = none ] && echo no_falco_in_this_lab || echo falco)
GRAFANA_ENABLED=$([ "${FLEETWATCH_LAB_GRAFANA:-no}" = yes ] && echo true || echo false)

# Components that cannot be deployed here, and why.
report_limits() {
  [ "$FALCO_SOURCE" != none ] && [ "$GRAFANA_ENABLED" = true ] && return 0
  echo "Not deployed in this lab:"
  [ "$FALCO_SOURCE" != none ] || echo "  - Falco: no package at ../shared/packages/falco_0.44.1_amd64.deb and no" \
    "access to Falco's repository (set FLEETWATCH_LAB_FALCO=yes where it can be reached)."
  [ "$GRAFANA_ENABLED" = true ] || echo "  - Grafana: its image and packages come from Grafana's registry and repositories, which this machine cannot reach" \
    "(set FLEETWATCH_LAB_GRAFANA=yes and grafana_admin_password where it can)."
}

up() {
  bash scripts/setup.sh
  use_source_collection
  say "lab: creating hosts from $INVENTORY"
  [ "$FALCO_SOURCE" != none ] || say "lab: Falco is left out: ../shared/packages/falco_0.44.1_amd64.deb is not there"
  python lab/fleet.py up "$INVENTORY" --privileged-group "$FALCO_HOSTS" >/dev/null
  say "lab: preparing hosts"
  ansible-playbook -i "$INVENTORY" lab/prepare.yml >/dev/null
  say "lab: running playbooks/site.yml"
  site
  status
}

# The extra variables site.yml gets in this lab, one command-line word per line (scripts/ee.sh passes the same ones to
# the run inside the execution environment).
site_args() {
  printf '%s\n' -e "fleetwatch_falco_group=$FALCO_HOSTS"
  [ "$FALCO_SOURCE" != repository ] || printf '%s\n' -e '{"falco_install_method": "repo", "falco_rulesets": []}'
  printf '%s\n' -e "fleetwatch_grafana_enabled=$GRAFANA_ENABLED"
}

site() {
  local args
  mapfile -t args < <(site_args)
  ansible-playbook -i "$INVENTORY" "${args[@]}" playbooks/site.yml "$@"
}

# Runs site.yml with the given options; fails unless every host's recap says changed=0.
expect_no_change() {
  local log
  log=$(mktemp)
  site "$@" >"$log" 2>&1 || { tail -n 40 "$log"; rm -f "$log"; return 1; }
  local changed
  changed=$(awk '/^PLAY RECAP/{recap=1; next} recap && /changed=/{split($0, f, "changed="); split(f[2], n, " ");
                 if (n[1] > 0) print $1 "=" n[1]}' "$log" | sort -u)
  rm -f "$log"
  if [ -n "$changed" ]; then
    echo "site.yml${*:+ $*} changed: $changed" >&2
    return 1
  fi
  say "lab: site.yml${*:+ $*} reported no change on any host"
}

verify() {
  use_source_collection
  expect_no_change
  expect_no_change --check --diff
}

status() {
  activate_venv
  echo "Lab hosts (addresses reachable from this machine):"
  python lab/fleet.py list "$INVENTORY" | while read -r name ip; do
    printf '  %-14s node_exporter http://%s:9100/metrics\n' "$name" "$ip"
    [ "$FALCO_SOURCE" = none ] || [[ "$name" != *-agent-* ]] \
      || printf '  %-14s Falco http://%s:8765/metrics (from the %s)\n' "" "$ip" "$FALCO_SOURCE"
    case "$name" in
      *-monitor)
        printf '  %-14s Prometheus http://%s:9090  Alertmanager http://%s:9093\n' "" "$ip" "$ip"
        [ "$GRAFANA_ENABLED" = false ] || printf '  %-14s Grafana http://%s:3000\n' "" "$ip" ;;
    esac
  done
  report_limits
}

# The address of the lab's monitoring host (the one whose name ends in "monitor").
monitor_address() {
  python lab/fleet.py list "$INVENTORY" | awk '$1 ~ /monitor$/ { print $2; exit }'
}

# The Falco parts need Falco in the lab.
need_falco() {
  [ "$FALCO_SOURCE" != none ] || { report_limits; exit 1; }
}

tuning_loop() {
  need_falco
  use_source_collection
  python lab/tuning_loop.py --inventory "$INVENTORY" --host "${1:-lab-agent-1}"
}

dashboards() {
  need_falco
  activate_venv
  local host=${1:-lab-agent-1} monitor
  monitor=$(monitor_address)
  # Two events on the host, a scrape apart (30 s scrape interval): a rule's series appears at its first match,
  # and increase() needs a second sample to rise.
  podman exec "$host" sh -c 'cat /etc/shadow > /dev/null' && sleep 35
  podman exec "$host" sh -c 'cat /etc/shadow > /dev/null' && sleep 70
  python lab/dashboards.py --prometheus "http://$monitor:9090" --host "$host"
}

smoke() {
  use_source_collection
  ansible-playbook -i "$INVENTORY" playbooks/smoke.yml
}

# Every host's node-exporter and every Falco agent's Falco up in the lab's Prometheus, with host and cloud labels.
targets_up() {
  activate_venv
  python lab/targets_up.py --inventory "$INVENTORY" --prometheus "http://$(monitor_address):9090" \
    --falco-group "$FALCO_HOSTS"
}

# The smoke test on a default deployment: HOST's Falco back to the falco role's defaults (the stable rules only, where
# the tutorial's rules are not loaded), then smoke.yml on it; `lab.sh up` (or site.yml) puts the lab's rulesets back.
smoke_defaults() {
  local host=${1:-lab-agent-2}
  use_source_collection
  ansible-playbook -i "$INVENTORY" playbooks/falco.yml --limit "$host" -e '{"falco_rulesets": []}' >/dev/null
  ansible-playbook -i "$INVENTORY" playbooks/smoke.yml -e "fleetwatch_falco_hosts=$host"
}

main_job() {
  trap down EXIT
  down
  up
  targets_up
  verify
  if [ "$FALCO_SOURCE" = none ]; then
    say "lab: smoke test, tuning loop and dashboards skipped: no Falco in this lab"
    return 0
  fi
  smoke
  tuning_loop
  dashboards
  smoke_defaults
}

down() {
  activate_venv
  python lab/fleet.py down "$INVENTORY"
  say "lab: removed"
}

case "${1:-}" in
  up|verify|down|status|smoke) "$1" ;;
  targets-up) targets_up ;;
  smoke-defaults) shift; smoke_defaults "$@" ;;
  main-job) main_job ;;
  site)
    shift
    use_source_collection
    site "$@" ;;
  site-args) site_args ;;
  tuning-loop) shift; tuning_loop "$@" ;;
  dashboards) shift; dashboards "$@" ;;
  *) echo "usage: $0 up|verify|down|status|targets-up|smoke|smoke-defaults [HOST]|site [ARGS]|site-args|tuning-loop [HOST]|dashboards [HOST]|main-job" >&2
     exit 2 ;;
esac
