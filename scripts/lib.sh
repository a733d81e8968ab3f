# shellcheck shell=bash
# Paths and helpers shared by the setup, test and lab scripts.
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FLEETWATCH_CACHE=${FLEETWATCH_CACHE:-/var/cache/fleetwatch}
PYTHON=${FLEETWATCH_PYTHON:-python3}
requirements_hash() {
  cat "$REPO_ROOT/requirements/test.txt" <("$PYTHON" -VV) | sha256sum | cut -c1-12
}
VENV="$FLEETWATCH_CACHE/venv-$(requirements_hash)"
# Where the built collection is installed for Molecule, and where ansible-test gets its git checkout: one of each
# per checkout, so two checkouts on one machine never install over each other.
CHECKOUT_ID=$(printf %s "$REPO_ROOT" | sha256sum | cut -c1-8)
COLLECTIONS_DIR="$FLEETWATCH_CACHE/collections-$CHECKOUT_ID"
SANITY_TREE="$FLEETWATCH_CACHE/sanity-$CHECKOUT_ID/ansible_collections/fleetwatch/falco_stack"
export FLEETWATCH_CACHE REPO_ROOT VENV COLLECTIONS_DIR SANITY_TREE

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
# A collection tree that points at this checkout, so linters and unit tests see the live source by FQCN.
SOURCE_COLLECTIONS_DIR="$FLEETWATCH_CACHE/source-$CHECKOUT_ID"
link_source_collection() {
  mkdir -p "$SOURCE_COLLECTIONS_DIR/ansible_collections/fleetwatch"
  ln -sfn "$REPO_ROOT" "$SOURCE_COLLECTIONS_DIR/ansible_collections/fleetwatch/falco_stack"
}
activate_venv() {
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
  export ANSIBLE_COLLECTIONS_PATH="$COLLECTIONS_DIR"
}
# The venv, with ansible-playbook finding this checkout's collection by FQCN (the lab and the benches run it).
use_source_collection() {
  activate_venv
  link_source_collection
  export ANSIBLE_COLLECTIONS_PATH="$SOURCE_COLLECTIONS_DIR"
}
