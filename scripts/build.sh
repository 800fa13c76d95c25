#!/usr/bin/env bash
# Configures and builds Vigil into build/ (or $VIGIL_BUILD_DIR).
# Extra arguments go to the CMake configure step, e.g. -DVIGIL_SANITIZE=address,undefined.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${VIGIL_BUILD_DIR:-build}"
bash scripts/install-deps.sh
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="${VIGIL_BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
