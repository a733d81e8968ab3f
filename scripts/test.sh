#!/usr/bin/env bash
# The whole test suite: set-up, linters, sanity, unit tests, the collection build, then every Molecule scenario.
# Usage: scripts/test.sh [STAGE...]   (stages: setup lint sanity unit build molecule; default all)
#        MOLECULE_SCENARIOS="node_exporter" scripts/test.sh molecule
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT" || exit 1

# Target Python versions ansible-core 2.19 supports for modules.
TARGET_PYTHONS=${TARGET_PYTHONS:-"3.8 3.9 3.10 3.11 3.12 3.13"}
declare -a SUMMARY=()
failed=0
passed=0

run_stage() {
  local name=$1; shift
  local start=$SECONDS rc=0
  say "stage $name"
  "$@" || rc=$?
  local took=$((SECONDS - start))
  if [ "$rc" = 0 ]; then
    SUMMARY+=("$(printf '%-28s ok     %5d s' "$name" "$took")"); passed=$((passed + 1))
  else
    SUMMARY+=("$(printf '%-28s FAILED %5d s (exit %d)' "$name" "$took" "$rc")"); failed=$((failed + 1))
  fi
  return "$rc"
}

stage_setup() { bash "$REPO_ROOT/scripts/setup.sh"; }

# ansible-lint also looks in ~/.ansible/collections, where Molecule installs the collection under test: a copy from
# another checkout or an older run would be linted against instead of this tree. It gets a home of its own.
lint_home() {
  LINT_HOME="$FLEETWATCH_CACHE/lint-home-$CHECKOUT_ID"
  rm -rf "$LINT_HOME/.ansible/collections" && mkdir -p "$LINT_HOME"
}

stage_lint() {
  activate_venv
  link_source_collection
  yamllint --strict . \
    && lint_home \
    && HOME="$LINT_HOME" ANSIBLE_COLLECTIONS_PATH="$SOURCE_COLLECTIONS_DIR" ansible-lint --profile production --offline \
    && antsibull-changelog lint \
    && python scripts/role_specs.py \
    && python scripts/role_docs.py --check \
    && shellcheck --severity=warning scripts/*.sh lab/*.sh .ci/run molecule/*/can-run
}

stage_sanity() {
  activate_venv
  mkdir -p "$SANITY_TREE"
  rsync -a --delete --exclude tests/output "$REPO_ROOT/" "$SANITY_TREE/"
  local controller
  controller=$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  (cd "$SANITY_TREE" && ansible-test sanity --venv --python "$controller" --color no) || return 1
  # Modules run on the managed hosts' Python: compile and import them on every target version this machine has.
  local version bin candidate
  for version in $TARGET_PYTHONS; do
    [ "$version" = "$controller" ] && continue
    bin=""
    for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin; do
      [ -x "$candidate/python$version" ] && bin=$candidate
    done
    if [ -z "$bin" ]; then echo "Python $version not on this machine: target sanity skipped for it"; continue; fi
    (cd "$SANITY_TREE" && PATH="$bin:$PATH" ansible-test sanity --venv --python "$version" --test compile --test import \
      --color no) || return 1
  done
}

stage_unit() {
  activate_venv
  link_source_collection
  (cd "$SOURCE_COLLECTIONS_DIR/ansible_collections/fleetwatch/falco_stack" \
    && PYTHONPATH="$SOURCE_COLLECTIONS_DIR" ANSIBLE_COLLECTIONS_PATH="$SOURCE_COLLECTIONS_DIR" \
       python -m pytest -q -p no:cacheprovider tests/unit)
}

stage_build() {
  activate_venv
  local out="$FLEETWATCH_CACHE/build-$CHECKOUT_ID"
  rm -rf "$out" && mkdir -p "$out" "$COLLECTIONS_DIR"
  ansible-galaxy collection build --force --output-path "$out" "$REPO_ROOT" >/dev/null \
    && ansible-galaxy collection install --offline --force -p "$COLLECTIONS_DIR" "$out"/fleetwatch-falco_stack-*.tar.gz \
    && for role in roles/[a-z]*/; do ansible-doc -t role "fleetwatch.falco_stack.$(basename "$role")" >/dev/null || return 1; done \
    && BUILT=1
}

# A scenario that needs data from outside the project lists it in molecule/NAME/requires (paths relative to the
# project root, such as the real Falco package in ../shared/packages); on a checkout without it, it is skipped and
# says why. One that needs something of the machine has an executable molecule/NAME/can-run: exit 77 skips the
# scenario with the reason it prints (falco_real: a kernel that refuses the real Falco's probe), another non-zero
# exit fails it; what it prints on exit 0 is a note for the log.
stage_molecule() {
  activate_venv
  local scenario=$1 path reason rc=0
  if [ -f "molecule/$scenario/requires" ]; then
    while read -r path; do
      [ -z "$path" ] || [ -e "$path" ] || { echo "molecule:$scenario skipped: $path not found"; return 0; }
    done < "molecule/$scenario/requires"
  fi
  if [ -x "molecule/$scenario/can-run" ]; then
    reason=$("molecule/$scenario/can-run") || rc=$?
    if [ "$rc" = 77 ]; then echo "molecule:$scenario skipped: $reason"; return 0; fi
    [ "$rc" = 0 ] || { echo "molecule:$scenario: its can-run check failed (exit $rc): $reason"; return 1; }
    [ -z "$reason" ] || echo "molecule:$scenario: $reason"
  fi
  molecule test -s "$scenario"
}

# The main job on the lab (scripts/lab.sh main-job, whose usage lists its steps) runs as one more item of the
# scenarios' queue, named "lab" there (MOLECULE_SCENARIOS may name it too).
scenarios() {
  if [ -n "${MOLECULE_SCENARIOS:-}" ]; then echo "$MOLECULE_SCENARIOS"; return; fi
  local d
  for d in molecule/*/molecule.yml; do basename "$(dirname "$d")"; done
  echo lab
}

queue_label() {
  if [ "$1" = lab ]; then echo "lab:main-job"; else echo "molecule:$1"; fi
}

stage_queue_item() {
  if [ "$1" = lab ]; then bash scripts/lab.sh main-job; else stage_molecule "$1"; fi
}

# Molecule scenarios run in MOLECULE_JOBS lanes at once (default 2: most of a scenario's time is spent waiting on
# containers and services, so two overlap well on 2 cores). Each lane takes the next scenario from one queue, longest
# first. In a run of every stage, the checks that need no containers (lint, sanity, unit) go in one more lane beside
# them, which then takes scenarios from the queue too (CHECKS_BESIDE_MOLECULE=0 runs the checks first, one after the
# other, as a run of those stages alone does).
MOLECULE_JOBS=${MOLECULE_JOBS:-2}
CHECKS_BESIDE_MOLECULE=${CHECKS_BESIDE_MOLECULE:-1}
# Known to take longest (measured in CI): started first so the lanes end close together.
LONGEST_FIRST="uninstall falco monitoring lab falco_real faults tls monitoring_container"

queue_order() {
  local name
  for name in $LONGEST_FIRST; do
    [[ " $* " == *" $name "* ]] && echo "$name"
  done
  for name in "$@"; do
    [[ " $LONGEST_FIRST " == *" $name "* ]] || echo "$name"
  done
}

# A stage run in a lane: its output is kept in DIR/NAME.log and printed whole when it ends (under the queue's lock,
# so the outputs of the lanes never interleave); "NAME EXIT SECONDS" goes to DIR/results.
# The sh -c scripts get their arguments as $1..$4 on purpose: single quotes keep this shell from expanding them.
# shellcheck disable=SC2016
run_logged() {
  local dir=$1 name=$2 start=$SECONDS rc=0
  shift 2
  say "$name started"
  "$@" > "$dir/$name.log" 2>&1 || rc=$?
  flock "$dir/queue" sh -c 'cat "$1"; printf "==> %s exit %s after %s s\n" "$2" "$3" "$4"' \
    sh "$dir/$name.log" "$name" "$rc" "$((SECONDS - start))"
  echo "$name $rc $((SECONDS - start))" >> "$dir/results"
}

# shellcheck disable=SC2016
molecule_lane() {
  local dir=$1 name
  while name=$(flock "$dir/queue" sh -c 'head -n 1 "$1" && sed -i 1d "$1"' sh "$dir/queue") && [ -n "$name" ]; do
    run_logged "$dir" "$(queue_label "$name")" stage_queue_item "$name"
  done
}

checks_lane() {
  local dir=$1 stage
  shift
  for stage in "$@"; do run_logged "$dir" "$stage" "stage_$stage"; done
}

# The lanes' results, in the order given, into the timing table.
summarize_lanes() {
  local dir=$1 name rc took
  shift
  for name in "$@"; do
    read -r _ rc took < <(grep "^$name " "$dir/results" || echo "$name 1 0")
    if [ "$rc" = 0 ]; then
      SUMMARY+=("$(printf '%-28s ok     %5d s' "$name" "$took")"); passed=$((passed + 1))
    else
      SUMMARY+=("$(printf '%-28s FAILED %5d s (exit %d)' "$name" "$took" "$rc")"); failed=$((failed + 1))
    fi
  done
}

# Every scenario in MOLECULE_JOBS lanes, and the given check stages in a lane of their own beside them.
run_lanes() {
  local -a names checks=("$@") labels=()
  read -r -a names <<< "$(scenarios | tr '\n' ' ')"
  # Molecule's prerun is off (.config/molecule/config.yml): the scenarios test the tree as this run built it.
  if [ ${#names[@]} -gt 0 ] && [ "${BUILT:-0}" != 1 ]; then run_stage build stage_build || names=(); fi
  local dir name start=$SECONDS
  dir=$(mktemp -d)
  queue_order "${names[@]}" > "$dir/queue"
  : > "$dir/results"
  if [ ${#names[@]} -gt 0 ]; then
    for _ in $(seq "$MOLECULE_JOBS"); do molecule_lane "$dir" & done
  fi
  # The checks' lane then takes scenarios from the same queue, so the last ones run three at a time.
  [ ${#checks[@]} -eq 0 ] || { checks_lane "$dir" "${checks[@]}"; molecule_lane "$dir"; } &
  wait
  for name in "${names[@]}"; do labels+=("$(queue_label "$name")"); done
  summarize_lanes "$dir" "${checks[@]}" "${labels[@]}"
  [ ${#names[@]} -eq 0 ] || SUMMARY+=("$(printf '%-28s        %5d s (%d lanes%s)' "molecule, wall time" \
    "$((SECONDS - start))" "$MOLECULE_JOBS" "${checks[*]:+, and ${checks[*]} beside them}")")
  rm -rf "$dir"
}

main() {
  local stages=("$@") checks=() stage
  [ ${#stages[@]} -gt 0 ] || stages=(setup lint sanity unit build molecule)
  # With Molecule in the run, the checks wait for it and go in a lane beside the scenarios.
  if [ "$CHECKS_BESIDE_MOLECULE" = 1 ] && [[ " ${stages[*]} " == *" molecule "* ]]; then
    for stage in lint sanity unit; do [[ " ${stages[*]} " == *" $stage "* ]] && checks+=("$stage"); done
  fi
  for stage in "${stages[@]}"; do
    case "$stage" in
      setup) run_stage setup stage_setup || break ;;  # nothing else can run without it
      lint|sanity|unit)
        [[ " ${checks[*]} " == *" $stage "* ]] || run_stage "$stage" "stage_$stage" || true ;;
      build) run_stage build stage_build || true ;;
      molecule) run_lanes "${checks[@]}" ;;
      *) die "unknown stage $stage (setup lint sanity unit build molecule)" ;;
    esac
  done
  echo
  echo "Timing per stage"
  printf '  %s\n' "${SUMMARY[@]}"
  echo "stages: $passed passed, $failed failed"
  [ "$failed" = 0 ]
}
main "$@"
