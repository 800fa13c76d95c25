#!/usr/bin/env bash
# Moves a hospital's Vigil data from its SQLite database to PostgreSQL, so
# that it can run several replicas of the server on one database.
#
#   scripts/migrate-sqlite-to-postgres.sh SQLITE_FILE POSTGRES_URI
#
# e.g. scripts/migrate-sqlite-to-postgres.sh /var/lib/vigil/vigil.db \
#        'postgresql://vigil@db.example:5432/vigil?sslmode=require'
#
# 1. Stop the vigil-server that uses SQLITE_FILE (the script refuses while
#    a process has the file open) and keep a backup of the file.
# 2. Create the PostgreSQL database (empty, or with the schema a
#    vigil-server created and no data in it) and a role that may create
#    tables in it; give the password with PGPASSWORD or ~/.pgpass rather
#    than in the URI.
# 3. Run this script. It copies patients (with their revisions), alerts,
#    events (numbers kept, tombstones of erased patients included) and the
#    audit trail, byte for byte, in one PostgreSQL transaction; sets the
#    event and audit counters to the copied maxima; compares row counts,
#    stored bytes and largest numbers with the SQLite file; and prints those
#    counts (never patient data). A target that already holds Vigil data is
#    refused and left as it was; on any error or mismatch nothing is
#    committed. An SQLite file of an older schema is upgraded in place
#    first, as vigil-server would upgrade it.
# 4. Start the replicas with --db=POSTGRES_URI. Subscribers resume with the
#    event numbers they had; the next event is the copied last one plus 1.
#
# Exit status: 0 copied and verified; 1 refused or failed (the message
# says why); 64 usage. The copy is done by vigil-migrate
# (server/store/migrate_main.cc): $VIGIL_MIGRATE, else
# ${VIGIL_BUILD_DIR:-build}/server/vigil-migrate in the source tree, else
# vigil-migrate on the PATH.
set -euo pipefail

usage() {
  echo "usage: $0 SQLITE_FILE POSTGRES_URI" >&2
  echo "  copies a Vigil SQLite database into an empty PostgreSQL database (postgresql://...)" >&2
  exit 64
}

die() {
  echo "migrate-sqlite-to-postgres: $*" >&2
  exit 1
}

[ $# -eq 2 ] || usage
SQLITE_FILE="$1"
POSTGRES_URI="$2"

[ -f "$SQLITE_FILE" ] || die "no SQLite database at $SQLITE_FILE"
case "$POSTGRES_URI" in
  postgresql://* | postgres://*) ;;
  *) die "the target must be a PostgreSQL URI (postgresql://USER@HOST:PORT/DATABASE)" ;;
esac

# A server still writing the file would lose what it writes after the copy.
if command -v fuser >/dev/null 2>&1; then
  if fuser -s "$SQLITE_FILE" 2>/dev/null; then
    die "$SQLITE_FILE is open in another process (a vigil-server?): stop it first"
  fi
else
  echo "migrate-sqlite-to-postgres: fuser not found: cannot check that no server uses $SQLITE_FILE" >&2
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MIGRATE="${VIGIL_MIGRATE:-}"
if [ -z "$MIGRATE" ]; then
  BUILD_DIR="${VIGIL_BUILD_DIR:-build}"
  case "$BUILD_DIR" in
    /*) ;;
    *) BUILD_DIR="$ROOT/$BUILD_DIR" ;;
  esac
  if [ -x "$BUILD_DIR/server/vigil-migrate" ]; then
    MIGRATE="$BUILD_DIR/server/vigil-migrate"
  elif command -v vigil-migrate >/dev/null 2>&1; then
    MIGRATE="$(command -v vigil-migrate)"
  else
    die "vigil-migrate not found (build it: cmake --build $BUILD_DIR --target vigil-migrate; or set VIGIL_MIGRATE)"
  fi
fi
[ -x "$MIGRATE" ] || die "$MIGRATE is not an executable"

exec "$MIGRATE" "$SQLITE_FILE" "$POSTGRES_URI"
