#!/usr/bin/env bash
# The main job: deploy the stack to a local lab of containers described by inventories/lab/hosts.yml.
# Usage: scripts/lab.sh up | down | status
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT" || exit 1
INVENTORY=${FLEETWATCH_LAB_INVENTORY:-inventories/lab/hosts.yml}

# Components the collection has no role for yet, or that cannot be installed without a registry.
report_limits() {
  cat <<'TXT'
Not deployed in this lab:
  - Falco: no role yet, and Falco's packages cannot be downloaded without access to download.falco.org.
  - Prometheus, Alertmanager, Grafana: no roles yet (the Grafana image and packages also need a registry).
TXT
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
  ansible-playbook -i "$INVENTORY" playbooks/site.yml
  status
}

status() {
  activate_venv
  echo "Lab hosts and their node_exporter endpoints (reachable from this machine):"
  python lab/fleet.py list "$INVENTORY" | while read -r name ip; do
    printf '  %-14s http(s)://%s:9100/metrics\n' "$name" "$ip"
  done
  report_limits
}

down() {
  activate_venv
  python lab/fleet.py down "$INVENTORY"
  say "lab: removed"
}

case "${1:-}" in
  up|down|status) "$1" ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
