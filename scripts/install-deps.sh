#!/usr/bin/env bash
# Installs the Debian bookworm packages Vigil builds and tests with, only
# those that are missing (idempotent). Needs root (or sudo) when something is
# missing.
set -euo pipefail

PACKAGES=(
  cmake make g++ pkg-config openssl sqlite3 curl python3 python3-yaml
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc
  libprotobuf-dev protobuf-compiler
  libabsl-dev libssl-dev libsqlite3-dev libcpp-httplib-dev libicu-dev libjemalloc-dev
  postgresql-15 libpq-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev
  chromium chromium-driver nghttp2-client
  python3-grpcio python3-grpc-tools python3-protobuf
  clang-14 libfuzzer-14-dev libclang-rt-14-dev
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "vigil: installing missing packages: ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
