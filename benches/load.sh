#!/usr/bin/env bash
# The load benchmark, from a fresh clone: installs what it needs (cmake for
# the build, wrk and nginx for the runs, valgrind to count instructions), builds release, runs, and writes
# benches/RESULTS.md and benches/results.svg.
# Usage: bash benches/load.sh [--quick] [--soak] [--hold]
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup wrk nginx-light valgrind
exec cargo bench --bench load -- "$@"
