#!/usr/bin/env bash
# The README's second command: installs what is missing, builds, and runs
# every test (unit and end-to-end) with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
BUILD_DIR="${VIGIL_BUILD_DIR:-build}"
cd "$BUILD_DIR"
ctest --output-on-failure -j"$(nproc)" --timeout 300
