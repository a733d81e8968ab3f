#!/usr/bin/env bash
# The main job: deploy the stack to a local lab of containers described by inventories/lab/hosts.yml.
# Usage: scripts/lab.sh up | verify | down | status
#   verify: on a converged lab, site.yml again and then with --check --diff must both report zero changes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT" || exit 1
INVENTORY=${FLEETWATCH_LAB_INVENTORY:-inventories/lab/hosts.yml}

# Falco's packages come from Falco's own repository; a lab with access to it sets FLEETWATCH_LAB_FALCO=yes.
FALCO_HOSTS=$([ "${FLEETWATCH_LAB_FALCO:-no}" = yes ] && echo falco || echo no_falco_in_this_lab)
GRAFANA_ENABLED=$([ "${FLEETWATCH_LAB_GRAFANA:-no}" = yes ] && echo true || echo false)

# Components that cannot be deployed here, and why.
report_limits() {
  echo "Not deployed in this lab:"
  [ "$FALCO_HOSTS" = falco ] || echo "  - Falco: its packages come from Falco's repository, which this machine cannot reach" \
    "(set FLEETWATCH_LAB_FALCO=yes where it can)."
  [ "$GRAFANA_ENABLED" = true ] || echo "  - Grafana: its image and packages come from Grafana's registry and repositories, which this machine cannot reach" \
    "(set FLEETWATCH_LAB_GRAFANA=yes and grafana_admin_password where it can)."
}

up() {
  bash scripts/setup.sh
  activate_venv
  link_source_collection
  export ANSIBLE_COLLECTIONS_PATH="$SOURCE_COLLECTIONS_DIR"
  say "lab: creating hosts from $INVENTORY"
  python lab/fleet.py up "$INVENTORY" >/dev/null
  say "lab: preparing hosts"
  ansible-playbook -i "$INVENTORY" lab/prepare.yml >/dev/null
  say "lab: running playbooks/site.yml"
  site
  status
}

site() {
  ansible-playbook -i "$INVENTORY" -e "fleetwatch_falco_group=$FALCO_HOSTS" \
    -e "fleetwatch_grafana_enabled=$GRAFANA_ENABLED" playbooks/site.yml "$@"
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
  activate_venv
  link_source_collection
  export ANSIBLE_COLLECTIONS_PATH="$SOURCE_COLLECTIONS_DIR"
  expect_no_change
  expect_no_change --check --diff
}

status() {
  activate_venv
  echo "Lab hosts (addresses reachable from this machine):"
  python lab/fleet.py list "$INVENTORY" | while read -r name ip; do
    printf '  %-14s node_exporter http://%s:9100/metrics\n' "$name" "$ip"
    case "$name" in
      lab-monitor)
        printf '  %-14s Prometheus http://%s:9090  Alertmanager http://%s:9093\n' "" "$ip" "$ip"
        [ "$GRAFANA_ENABLED" = false ] || printf '  %-14s Grafana http://%s:3000\n' "" "$ip" ;;
    esac
  done
  report_limits
}

down() {
  activate_venv
  python lab/fleet.py down "$INVENTORY"
  say "lab: removed"
}

case "${1:-}" in
  up|verify|down|status) "$1" ;;
  *) echo "usage: $0 up|verify|down|status" >&2; exit 2 ;;
esac
