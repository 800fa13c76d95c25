#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, and starts
# the server on 127.0.0.1:50051 with the bundled knowledge base (data/kb).
# Extra arguments go to vigil-server (e.g. --listen=127.0.0.1:6000).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
BUILD_DIR="${VIGIL_BUILD_DIR:-build}"
echo "vigil: starting the server on 127.0.0.1:50051 (Ctrl-C stops it);" \
     "try: $BUILD_DIR/client/vigil demo" >&2
exec "$BUILD_DIR/server/vigil-server" --listen=127.0.0.1:50051 --kb="$PWD/data/kb" \
  --db="${VIGIL_DB:-$PWD/vigil.db}" "$@"
