#!/usr/bin/env bash
# Benchmarks: scripts/bench.sh [NAME...] [OPTION...]  (names: the bench/*_bench.py files without the suffix, default
# all; the options, from the first argument starting with "-" on, go to each bench named)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT" || exit 1
bash scripts/setup.sh
use_source_collection
names=()
while [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; do names+=("$1"); shift; done
if [ ${#names[@]} -eq 0 ]; then
  for f in bench/*_bench.py; do names+=("$(basename "$f" _bench.py)"); done
fi
for name in "${names[@]}"; do
  say "bench $name"
  python "bench/${name}_bench.py" "$@"
done
