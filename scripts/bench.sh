#!/usr/bin/env bash
# Reruns the benchmarks and prints their figures (copy them into
# docs/benchmarks.md with the date and machine). Builds in Release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
export VIGIL_BUILD_DIR="${VIGIL_BUILD_DIR:-build-release}"
VIGIL_BUILD_TYPE=Release bash scripts/build.sh
SHARED="${VIGIL_SHARED_DATA:-$PWD/../shared/data}"
echo "# machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)"
echo "## knowledge-base load (each line a fresh process)"
echo "curated only:      $("$VIGIL_BUILD_DIR"/bench/vigil-bench-kb-load --runs=10 data/kb)"
if [ -d "$SHARED/ddinter" ]; then
  echo "curated + DDInter: $("$VIGIL_BUILD_DIR"/bench/vigil-bench-kb-load --runs=10 --import="$SHARED/ddinter" data/kb)"
fi
echo "## engine (Google Benchmark)"
VIGIL_SHARED_DATA="$SHARED" "$VIGIL_BUILD_DIR"/bench/vigil-bench-engine --benchmark_min_time=0.5 2>&1 | grep -E "^BM_|^Benchmark"
