#!/usr/bin/env bash
# The execution environment without a registry: build it, run site.yml from inside it, compare with the controller.
# Usage: scripts/ee.sh build | run | check | all
#   build: the Debian base (lab/build-images.sh --release 12 base ee-base), the collection tarballs (this one, and its
#          dependencies packed from the venv's `ansible` package by scripts/ee_collections.py), then ansible-builder
#          build of execution-environment-airgapped.yml with podman; prints the time it took and the image size.
#   run:   site.yml from inside the image, by ansible-runner, against the lab of $FLEETWATCH_LAB_INVENTORY (default
#          inventories/lab-ee/hosts.yml, which must be up) over SSH; prints the recap (log and artifacts kept).
#   check: with the image built: the lab up (site.yml from the controller), site.yml again from the controller, then
#          from the image; fails unless both say changed=0 for every host and their recaps are the same. Removes the
#          lab afterwards (FLEETWATCH_EE_KEEP_LAB=yes keeps it).
#   all:   build, then check.
# Env: FLEETWATCH_EE_IMAGE (default localhost/fleetwatch-ee:VERSION from galaxy.yml).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT" || exit 1
export FLEETWATCH_LAB_INVENTORY=${FLEETWATCH_LAB_INVENTORY:-inventories/lab-ee/hosts.yml}
INVENTORY=$FLEETWATCH_LAB_INVENTORY
VERSION=$(awk '$1 == "version:" { print $2 }' galaxy.yml)
IMAGE=${FLEETWATCH_EE_IMAGE:-localhost/fleetwatch-ee:$VERSION}
# Outside the checkout: the build context (ansible-builder's copy of everything it builds from) and the runs' logs.
WORK="$FLEETWATCH_CACHE/ee-$CHECKOUT_ID"
# The user the image runs jobs as (ansible-builder's options.user default), and its home there (options.workdir).
EE_UID=1000
EE_HOME=/runner

elapsed() { printf '%d min %02d s' $(($1 / 60)) $(($1 % 60)); }

build() {
  bash scripts/setup.sh
  activate_venv
  local start=$SECONDS step
  step=$SECONDS
  bash lab/build-images.sh --release 12 base ee-base
  say "ee: base image ready in $(elapsed $((SECONDS - step)))"
  # ee-build/ is where both EE definitions read the collections from (additional_build_files, galaxy requirements);
  # ee-wheels/ the Python wheels the air-gapped build installs from, with no package index.
  rm -rf ee-build ee-wheels
  trap 'rm -rf "$REPO_ROOT/ee-build" "$REPO_ROOT/ee-wheels"' EXIT
  step=$SECONDS
  ansible-galaxy collection build --output-path ee-build . >/dev/null
  python scripts/ee_collections.py ee-build
  say "ee: collection tarballs in $(elapsed $((SECONDS - step)))"
  step=$SECONDS
  rm -rf "$WORK/introspect"
  mkdir -p "$WORK/introspect"
  # requirements.yml names the tarballs as the build context holds them (collections/...).
  ln -sfn "$REPO_ROOT/ee-build" "$WORK/introspect/collections"
  (cd "$WORK/introspect" && ansible-galaxy collection install --offline -r collections/requirements.yml -p installed >/dev/null)
  python scripts/ee_wheelhouse.py execution-environment-airgapped.yml "$WORK/introspect/installed" ee-wheels
  say "ee: Python wheels in $(elapsed $((SECONDS - step)))"
  step=$SECONDS
  mkdir -p "$WORK"
  rm -rf "$WORK/context"
  ansible-builder build --container-runtime podman -f execution-environment-airgapped.yml --context "$WORK/context" \
    --tag "$IMAGE" --verbosity 2 >"$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log"; die "ansible-builder build failed (log: $WORK/build.log)"; }
  say "ee: ansible-builder build in $(elapsed $((SECONDS - step))) (log: $WORK/build.log)"
  rm -rf ee-build ee-wheels
  trap - EXIT
  say "ee: $IMAGE built in $(elapsed $((SECONDS - start))), $(podman image inspect --format '{{.Size}}' "$IMAGE" |
    awk '{ printf "%.0f MB", $1 / 1e6 }')"
  podman run --rm "$IMAGE" sh -c 'ansible --version | head -n 1; ansible-runner --version; ansible-galaxy collection list 2>/dev/null | grep -E "^(fleetwatch|ansible|community|containers)\."'
}

# The recap of a run's output as "HOST ok=N changed=N unreachable=N failed=N skipped=N rescued=N ignored=N" lines.
recap() {
  sed 's/\x1b\[[0-9;]*m//g' "$1" |
    awk '/PLAY RECAP/ { on = 1; next } on && / : ok=/ { sub(/ +: +/, " "); gsub(/ +/, " "); sub(/[ \t\r]+$/, ""); print }' | sort
}

# The lab's SSH directory on this machine: the inventory's own lab_ssh_dir (inventories/lab/group_vars/all.yml).
lab_ssh_dir() {
  ANSIBLE_LOAD_CALLBACK_PLUGINS=1 ANSIBLE_STDOUT_CALLBACK=json ansible "$1" -i "$INVENTORY" \
    -m ansible.builtin.debug -a var=lab_ssh_dir |
    python -c 'import json, sys; print(next(iter(json.load(sys.stdin)["plays"][0]["tasks"][0]["hosts"].values()))["lab_ssh_dir"])'
}

run() {
  activate_venv
  [ "${FLEETWATCH_LAB_TRANSPORT:-ssh}" = ssh ] || die "the run from the image reaches the hosts over SSH: unset FLEETWATCH_LAB_TRANSPORT"
  podman image exists "$IMAGE" || die "no image $IMAGE: run scripts/ee.sh build first"
  local hosts=() name _ip
  while read -r name _ip; do hosts+=("$name"); done < <(python lab/fleet.py list "$INVENTORY")
  [ "${#hosts[@]}" -gt 0 ] || die "no lab host of $INVENTORY exists: FLEETWATCH_LAB_INVENTORY=$INVENTORY scripts/lab.sh up"
  local ssh_dir
  ssh_dir=$(lab_ssh_dir "${hosts[0]}")
  [ -f "$ssh_dir/config" ] || die "$ssh_dir/config is missing: the lab is not prepared (scripts/lab.sh up)"

  # ansible-runner's private data directory, as AWX hands it to a job: the project (this checkout, read-only), the
  # extra variables of lab.sh's runs (env/cmdline), and the job's home, where the inventory's lab_ssh_dir points
  # (the lab's key, known_hosts and SSH client configuration, with their paths as seen from inside).
  local pdd="$WORK/run" inner_ssh_dir args
  rm -rf "$pdd"
  mkdir -p "$pdd/env" "$pdd/project"
  inner_ssh_dir="$EE_HOME/${ssh_dir#"$HOME"/}"
  mkdir -p "$pdd/${ssh_dir#"$HOME"/}"
  cp "$ssh_dir/id_ed25519" "$ssh_dir/known_hosts" "$pdd/${ssh_dir#"$HOME"/}/"
  sed "s|$ssh_dir|$inner_ssh_dir|g" "$ssh_dir/config" >"$pdd/${ssh_dir#"$HOME"/}/config"
  mapfile -t args < <(bash scripts/lab.sh site-args)
  printf '%q ' "${args[@]}" >"$pdd/env/cmdline"
  chown -R "$EE_UID:0" "$pdd"
  chmod -R go-rwx "$pdd"

  # The checkout at /runner/project and the reference data beside it at /runner/shared: the inventory's paths
  # (../shared, relative to the checkout) resolve inside as they do here.
  local mounts=(-v "$REPO_ROOT:$EE_HOME/project:ro")
  [ ! -d "$REPO_ROOT/../shared" ] || mounts+=(-v "$(cd "$REPO_ROOT/../shared" && pwd):$EE_HOME/shared:ro")
  say "ee: site.yml from inside $IMAGE on ${hosts[*]}"
  local start=$SECONDS rc=0
  podman run --rm --name fleetwatch-ee-run --user "$EE_UID" -e HOME="$EE_HOME" \
    -v "$pdd:$EE_HOME" "${mounts[@]}" "$IMAGE" \
    ansible-runner run "$EE_HOME" --ident site -p playbooks/site.yml \
      --inventory "$EE_HOME/project/$INVENTORY" >"$WORK/run.log" 2>&1 || rc=$?
  say "ee: ansible-runner exited $rc after $(elapsed $((SECONDS - start))) (log: $WORK/run.log, artifacts: $pdd/artifacts/site)"
  # The job's output as ansible-runner keeps it for AWX (the console copy in run.log is the same text).
  recap "$pdd/artifacts/site/stdout" 2>/dev/null | tee "$WORK/recap-ee.txt" || true
  [ "$rc" = 0 ] || { tail -n 40 "$WORK/run.log"; return 1; }
}

no_change() { # RECAP_FILE WHAT
  [ -s "$1" ] || { echo "$2: no recap" >&2; return 1; }
  if awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^changed=/ && $i != "changed=0") bad = 1 } END { exit !bad }' "$1"; then
    echo "$2 changed something:" >&2; cat "$1" >&2; return 1
  fi
}

check() {
  local start=$SECONDS step
  activate_venv
  podman image exists "$IMAGE" || die "no image $IMAGE: run scripts/ee.sh build first"
  mkdir -p "$WORK"
  [ "${FLEETWATCH_EE_KEEP_LAB:-no}" = yes ] || trap 'bash "$REPO_ROOT/scripts/lab.sh" down' EXIT
  step=$SECONDS
  bash scripts/lab.sh up >"$WORK/up.log" 2>&1 || { tail -n 40 "$WORK/up.log"; die "lab up failed (log: $WORK/up.log)"; }
  say "ee: lab up with site.yml from the controller in $(elapsed $((SECONDS - step)))"
  step=$SECONDS
  bash scripts/lab.sh site >"$WORK/controller.log" 2>&1 || { tail -n 40 "$WORK/controller.log"; die "site.yml from the controller failed"; }
  say "ee: site.yml again from the controller in $(elapsed $((SECONDS - step))) (log: $WORK/controller.log)"
  recap "$WORK/controller.log" | tee "$WORK/recap-controller.txt"
  run
  no_change "$WORK/recap-controller.txt" "site.yml from the controller"
  no_change "$WORK/recap-ee.txt" "site.yml from the execution environment"
  diff -u "$WORK/recap-controller.txt" "$WORK/recap-ee.txt" || die "the recaps differ (above)"
  say "ee: the same recap from the controller and from the image, no change on any host ($(elapsed $((SECONDS - start))) in all)"
}

case "${1:-}" in
  build|run|check) "$1" ;;
  all) build; check ;;
  *) echo "usage: $0 build|run|check|all" >&2; exit 2 ;;
esac
