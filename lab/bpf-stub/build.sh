#!/bin/sh
# Builds the lab's BPF stub (too_large_stub.c beside this script) into the shared object OUTPUT, with the machine's
# gcc and libc6-dev (scripts/setup.sh installs them). Used by lab/falco-probe-stub.yml and molecule/falco_real/can-run.
# Usage: lab/bpf-stub/build.sh OUTPUT
set -eu
[ "$#" -eq 1 ] || { echo "usage: $0 OUTPUT" >&2; exit 2; }
exec gcc -shared -fPIC -O2 -o "$1" "$(dirname "$0")/too_large_stub.c" -ldl
