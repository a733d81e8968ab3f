#!/usr/bin/env bash
# Benchmarks: scripts/bench.sh [NAME...]  (names: the bench/*_bench.py files without the suffix; default all)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT" || exit 1
bash scripts/setup.sh
use_source_collection
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in bench/*_bench.py; do names+=("$(basename "$f" _bench.py)"); done
fi
for name in "${names[@]}"; do
  say "bench $name"
  python "bench/${name}_bench.py"
done
