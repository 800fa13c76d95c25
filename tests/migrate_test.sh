#!/usr/bin/env bash
# The MigrateSqliteToPostgres test: scripts/migrate-sqlite-to-postgres.sh
# end to end, with real servers and a throwaway PostgreSQL cluster.
#
#   bash tests/migrate_test.sh SERVER_BIN CLIENT_BIN MIGRATE_BIN KB_DIR
#
# 1. A vigil-server on a new SQLite file stores patients with the `vigil`
#    client: an alert is acknowledged, one patient's alert resolved, one
#    patient deleted (its events become tombstones); a CDS Hooks order-sign
#    call leaves a remembered card. Its answers are saved:
#    the patients, their alerts with history, the feed from event 0 (events
#    1..N) and the audit trail.
# 2. The script refuses while the server has the file open, and a missing
#    file; the server stops; the script copies the file into an empty
#    database of a cluster started here (initdb/pg_ctl, as `nobody` when
#    run as root, on a unix socket in its own folder).
# 3. Every table (blobs as hex) reads the same in SQLite and PostgreSQL.
# 4. A vigil-server on the PostgreSQL database answers as the SQLite one
#    did: same patients (the deleted one not found), alerts and history,
#    the same N events numbered 1..N, the same audit records first; a new
#    put gets event N+1, and new audit records continue the copied ids.
# 5. A copy PostgreSQL refuses midway (an audit record that is not UTF-8)
#    commits nothing and prints no row; a retry into the empty schema it
#    leaves copies everything.
# 6. Migrating again into the now non-empty database is refused and changes
#    nothing.
# Processes this test starts are stopped on exit, the cluster with it.
set -euo pipefail

if [ $# -ne 4 ]; then
  echo "usage: $0 SERVER_BIN CLIENT_BIN MIGRATE_BIN KB_DIR" >&2
  exit 2
fi
SERVER_BIN="$(realpath "$1")"
CLIENT_BIN="$(realpath "$2")"
VIGIL_MIGRATE="$(realpath "$3")"
export VIGIL_MIGRATE
KB_DIR="$(realpath "$4")"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MIGRATE_SCRIPT="$ROOT/scripts/migrate-sqlite-to-postgres.sh"

WORK="$(mktemp -d /tmp/vigil-migrate-test-XXXXXX)"
# The cluster's own folder, which its owner must reach (WORK is private).
PGDIR="$(mktemp -d /tmp/vigil-migrate-pg-XXXXXX)"
PG_STARTED=""
SERVER_PID=""

# PostgreSQL's bin folder: $VIGIL_PG_BINDIR, or the newest Debian one.
PG_BIN="${VIGIL_PG_BINDIR:-$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}"

as_owner() {  # PostgreSQL refuses to run as root
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u nobody -- "$@"
  else
    "$@"
  fi
}

stop_pid() {  # stops one process we started: TERM, then KILL after 10 s
  local pid="$1"
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  stop_pid "$SERVER_PID"
  if [ -n "$PG_STARTED" ]; then
    as_owner "$PG_BIN/pg_ctl" -D "$PGDIR/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK" "$PGDIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo "FAIL: $*" >&2
  for log in "$WORK"/server-*.log "$PGDIR"/postgres.log; do
    [ -s "$log" ] || continue
    echo "--- last lines of $(basename "$log") ---" >&2
    tail -n 20 "$log" >&2
  done
  exit 1
}

step() { echo "== $*"; }

# ---------------------------------------------------------------------------
step "starting a throwaway PostgreSQL cluster ($PG_BIN)"
{ [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ]; } ||
  fail "the PostgreSQL server binaries are not installed (install postgresql-15: scripts/install-deps.sh)"
if [ "$(id -u)" -eq 0 ]; then
  chown nobody "$PGDIR"
fi
chmod 700 "$PGDIR"
(cd "$PGDIR" && as_owner "$PG_BIN/initdb" -D "$PGDIR/data" -U vigil --auth=trust -E UTF8 --no-locale --no-sync \
  --no-instructions >"$WORK/initdb.log" 2>&1) || fail "initdb failed: $(tail -n 20 "$WORK/initdb.log")"
(cd "$PGDIR" && as_owner "$PG_BIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/postgres.log" -w -t 30 \
  -o "-k '$PGDIR' -c listen_addresses='' -c fsync=off -c synchronous_commit=off" start >"$WORK/pg_ctl.log" 2>&1) ||
  fail "PostgreSQL did not start: $(tail -n 20 "$WORK/pg_ctl.log")"
PG_STARTED=1
pg_uri() { echo "postgresql://vigil@/$1?host=$PGDIR"; }
psql_at() {  # psql_at DATABASE SQL: unaligned rows, '|' between columns
  "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -d "$(pg_uri "$1")" -c "$2"
}
psql_at postgres "CREATE DATABASE migrate_target" >/dev/null || fail "cannot create the target database"
TARGET_URI="$(pg_uri migrate_target)"

# ---------------------------------------------------------------------------
# Starts the server with --db=$1 and log $2; sets SERVER_PID, VIGIL_ADDR and
# VIGIL_HTTP_PORT (its CDS Hooks listener).
start_server() {
  local db="$1" log="$2"
  "$SERVER_BIN" --listen=127.0.0.1:0 --http_listen=127.0.0.1:0 --kb="$KB_DIR" --db="$db" 2>"$log" &
  SERVER_PID=$!
  for _ in $(seq 300); do
    if grep -q '"event":"listening"' "$log"; then break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || fail "the server on $db exited at start"
    sleep 0.1
  done
  local port
  port="$(grep '"event":"listening"' "$log" | head -n 1 | sed -E 's/.*"port":"([0-9]+)".*/\1/')"
  [ -n "$port" ] || fail "the server did not log its port within 30 s"
  VIGIL_ADDR="127.0.0.1:$port"
  VIGIL_HTTP_PORT="$(grep '"event":"http_listening"' "$log" | head -n 1 | sed -E 's/.*"port":"([0-9]+)".*/\1/')"
  [ -n "$VIGIL_HTTP_PORT" ] || fail "the server did not log its HTTP port"
}

# POSTs file $2 to the CDS service $1; prints the number of cards answered.
cds_post() {
  python3 - "$VIGIL_HTTP_PORT" "$1" "$2" <<'PY'
import json, sys, urllib.request
port, service, path = sys.argv[1:]
request = urllib.request.Request(f"http://127.0.0.1:{port}/cds-services/{service}", data=open(path, "rb").read(),
                                 headers={"Content-Type": "application/json"})
print(len(json.load(urllib.request.urlopen(request, timeout=20))["cards"]))
PY
}

vigil() { "$CLIENT_BIN" --server="$VIGIL_ADDR" --timeout=20 "$@"; }

# A field of the JSON object on stdin (proto field names).
json_field() { python3 -c 'import json, sys; print(eval("json.load(sys.stdin)" + sys.argv[1]))' "$1"; }

patient_file() {  # patient_file ID DRUG...: a vigil.v1.Patient in JSON
  local id="$1"
  shift
  local meds="" drug
  for drug in "$@"; do
    meds="$meds${meds:+,}{\"drug\":\"$drug\"}"
  done
  echo "{\"id\":\"$id\",\"medications\":[$meds]}" >"$WORK/$id.json"
  echo "$WORK/$id.json"
}

# Saves what the server answers about the data into folder $1.
snapshot() {
  local dir="$WORK/$1" id
  mkdir -p "$dir"
  for id in mig-1 mig-2; do
    vigil --json patient get "$id" >"$dir/patient-$id" || fail "patient get $id failed ($1)"
  done
  for id in mig-1 mig-2; do
    vigil --json alerts "$id" --all >"$dir/alerts-$id" || fail "alerts $id failed ($1)"
  done
  # The deleted patient: not found, its alerts erased with it (exit 66).
  local status
  for command in "patient get" "alerts --all"; do
    set +e
    # shellcheck disable=SC2086  # the command's words
    vigil $command mig-3 >"$dir/mig-3.out" 2>&1
    status=$?
    set -e
    [ "$status" -eq 66 ] || fail "$command mig-3 exited $status, expected 66 (not found) ($1)"
  done
  vigil --json subscribe --after=0 --count="$LAST" >"$dir/feed" || fail "subscribe --after=0 failed ($1)"
  vigil audit >"$dir/audit" || fail "audit failed ($1)"
}

# ---------------------------------------------------------------------------
step "a vigil-server on SQLite: patients, an acknowledgement, a resolution, a deletion"
SQLITE_DB="$WORK/vigil.db"
start_server "$SQLITE_DB" "$WORK/server-sqlite.log"
ALERT="$(vigil --json patient put "$(patient_file mig-1 warfarin ibuprofen)" | json_field '["raised"][0]["id"]')" ||
  fail "patient put mig-1 raised no alert"
vigil patient put "$(patient_file mig-2 warfarin ibuprofen)" >/dev/null || fail "patient put mig-2 failed"
vigil patient put "$(patient_file mig-3 warfarin ibuprofen)" >/dev/null || fail "patient put mig-3 failed"
vigil ack "$ALERT" --user=dr-migrate --outcome=accepted >/dev/null || fail "ack $ALERT failed"
vigil patient put "$(patient_file mig-2 warfarin)" >/dev/null || fail "the update of mig-2 failed"
LAST="$(vigil --json patient delete mig-3 | json_field '.get("last_event_number", 0)')" || fail "delete mig-3 failed"
CARDS="$(cds_post vigil-order-sign "$ROOT/tests/data/cds-hooks/order-sign-warfarin-ibuprofen.json")" ||
  fail "the order-sign call failed"
[ "$CARDS" -ge 1 ] || fail "the order-sign call answered no card"
[ "$LAST" -ge 6 ] || fail "expected at least 6 events (3 raised, 1 acknowledged, 1 resolved, 1 erased), got $LAST"
echo "events 1..$LAST, alert $ALERT acknowledged, mig-3 deleted"
snapshot before
[ "$(wc -l <"$WORK/before/feed")" -eq "$LAST" ] || fail "the SQLite server's feed has not $LAST events"
grep -q '"erased":true' "$WORK/before/feed" || fail "the deleted patient's events are not tombstones"
AUDIT_BEFORE="$(wc -l <"$WORK/before/audit")"
[ "$AUDIT_BEFORE" -gt 0 ] || fail "the audit trail is empty"

step "the script refuses while the server uses the file, and a missing file"
if command -v fuser >/dev/null 2>&1; then
  if bash "$MIGRATE_SCRIPT" "$SQLITE_DB" "$TARGET_URI" >"$WORK/busy.out" 2>&1; then
    fail "the script migrated a file a running server has open"
  fi
  grep -q 'is open in another process' "$WORK/busy.out" || fail "no clear refusal: $(cat "$WORK/busy.out")"
  cat "$WORK/busy.out"
else
  echo "(fuser not installed: the in-use check is not tested)"
fi
if bash "$MIGRATE_SCRIPT" "$WORK/missing.db" "$TARGET_URI" >"$WORK/missing.out" 2>&1; then
  fail "the script accepted a missing SQLite file"
fi
grep -q 'no SQLite database at' "$WORK/missing.out" || fail "no clear refusal: $(cat "$WORK/missing.out")"
cat "$WORK/missing.out"
[ -z "$(psql_at migrate_target "SELECT 1 FROM pg_tables WHERE tablename = 'events'")" ] ||
  fail "a refused migration created tables in the target"
stop_pid "$SERVER_PID"
SERVER_PID=""

# ---------------------------------------------------------------------------
step "migrating $SQLITE_DB to $TARGET_URI"
bash "$MIGRATE_SCRIPT" "$SQLITE_DB" "$TARGET_URI" >"$WORK/migrate.out" 2>"$WORK/migrate.err" ||
  fail "the migration failed: $(cat "$WORK/migrate.out" "$WORK/migrate.err")"
cat "$WORK/migrate.out"
grep -Eq "^  events: $LAST rows, [0-9]+ stored bytes, largest number $LAST\$" "$WORK/migrate.out" ||
  fail "the migration did not report $LAST events up to $LAST"
grep -q "^  counters: event_counter $LAST, audit_counter " "$WORK/migrate.out" || fail "the counters were not reported"
grep -q '^verified: ' "$WORK/migrate.out" || fail "the migration did not report its verification"
grep -Eq "^  cds_cards: $CARDS rows, [0-9]+ stored bytes" "$WORK/migrate.out" ||
  fail "the migration did not report the $CARDS remembered card(s)"
if grep -Eq 'warfarin|ibuprofen|dr-migrate' "$WORK/migrate.out" "$WORK/migrate.err"; then
  fail "the migration printed patient data"
fi
AUDIT_COPIED="$(sed -nE 's/^  audit: ([0-9]+) rows.*/\1/p' "$WORK/migrate.out")"
[ "${AUDIT_COPIED:-0}" -ge "$AUDIT_BEFORE" ] || fail "fewer audit records copied ($AUDIT_COPIED) than read ($AUDIT_BEFORE)"

step "every table reads the same in SQLite and PostgreSQL (blobs as hex)"
if command -v sqlite3 >/dev/null 2>&1; then
  while IFS=';' read -r table lite pg; do
    sqlite3 "$SQLITE_DB" "$lite" >"$WORK/table-$table.sqlite" </dev/null || fail "sqlite3 cannot read $table"
    psql_at migrate_target "$pg" >"$WORK/table-$table.pg" </dev/null || fail "psql cannot read $table"
    cmp -s "$WORK/table-$table.sqlite" "$WORK/table-$table.pg" || fail "table $table differs after the copy"
    echo "$table: $(wc -l <"$WORK/table-$table.pg") rows identical"
  done <<'EOF'
patients;SELECT id, revision, hex(data), update_time FROM patients ORDER BY id;SELECT id, revision, upper(encode(data, 'hex')), update_time FROM patients ORDER BY id COLLATE "C"
patient_revisions;SELECT id, revision FROM patient_revisions ORDER BY id;SELECT id, revision FROM patient_revisions ORDER BY id COLLATE "C"
alerts;SELECT alert_id, patient_id, status, hex(data), update_time FROM alerts ORDER BY alert_id;SELECT alert_id, patient_id, status, upper(encode(data, 'hex')), update_time FROM alerts ORDER BY alert_id COLLATE "C"
events;SELECT event_number, patient_id, type, alert_id, hex(data), event_time FROM events ORDER BY event_number;SELECT event_number, patient_id, type, alert_id, upper(encode(data, 'hex')), event_time FROM events ORDER BY event_number
audit;SELECT * FROM audit ORDER BY id;SELECT * FROM audit ORDER BY id
cds_cards;SELECT uuid, patient_id, user_id, select_key, fingerprint, hex(alert), expires FROM cds_cards ORDER BY uuid;SELECT uuid, patient_id, user_id, select_key, fingerprint, upper(encode(alert, 'hex')), expires FROM cds_cards ORDER BY uuid COLLATE "C"
EOF
else
  echo "(sqlite3 not installed: the tables are compared through the servers only)"
fi
[ "$(psql_at migrate_target "SELECT last_number FROM event_counter")" = "$LAST" ] || fail "event_counter is not $LAST"
[ "$(psql_at migrate_target "SELECT last_id FROM audit_counter")" = "$AUDIT_COPIED" ] ||
  fail "audit_counter is not $AUDIT_COPIED"

# ---------------------------------------------------------------------------
step "a vigil-server on PostgreSQL answers as the SQLite one did"
start_server "$TARGET_URI" "$WORK/server-postgres.log"
snapshot after
for file in patient-mig-1 patient-mig-2 alerts-mig-1 alerts-mig-2 feed; do
  cmp -s "$WORK/before/$file" "$WORK/after/$file" || fail "$file differs: $(diff "$WORK/before/$file" "$WORK/after/$file" | head -n 5)"
done
grep -q '"user":"dr-migrate"' "$WORK/after/alerts-mig-1" || fail "the acknowledgement is missing from mig-1's history"
grep -q 'RESOLVED' "$WORK/after/alerts-mig-2" || fail "mig-2's resolved alert is missing"
NUMBERS="$(python3 -c 'import json, sys; print(" ".join(str(json.loads(l)["event_number"]) for l in sys.stdin))' \
  <"$WORK/after/feed")"
[ "$NUMBERS" = "$(seq -s ' ' 1 "$LAST")" ] || fail "the feed's numbers are not 1..$LAST: $NUMBERS"
head -n "$AUDIT_BEFORE" "$WORK/after/audit" | cmp -s - "$WORK/before/audit" ||
  fail "the first $AUDIT_BEFORE audit records differ"
echo "patients, alerts with history, events 1..$LAST and the first $AUDIT_BEFORE audit records are the same"

step "the counters continue: a new put gets event $((LAST + 1)), new audit records follow"
vigil patient put "$(patient_file mig-4 warfarin ibuprofen)" >/dev/null || fail "patient put mig-4 failed"
NEXT="$(vigil --json subscribe --after="$LAST" --count=1 | json_field '["event_number"]')"
[ "$NEXT" = "$((LAST + 1))" ] || fail "the next event is $NEXT, expected $((LAST + 1))"
vigil audit >"$WORK/audit-final" || fail "audit failed"
python3 - "$WORK/audit-final" "$AUDIT_COPIED" <<'EOF' || fail "the audit ids do not continue the copied ones"
import json, sys
ids = [int(json.loads(line)["id"]) for line in open(sys.argv[1])]
copied = int(sys.argv[2])
assert ids == list(range(1, len(ids) + 1)), ids
assert len(ids) > copied, (len(ids), copied)
print(f"audit ids 1..{len(ids)}: {copied} copied, {len(ids) - copied} new")
EOF
echo "event $NEXT"
stop_pid "$SERVER_PID"
SERVER_PID=""

# ---------------------------------------------------------------------------
step "a copy that fails midway commits nothing and prints no row"
if command -v sqlite3 >/dev/null 2>&1; then
  psql_at postgres "CREATE DATABASE migrate_failed" >/dev/null || fail "cannot create a second database"
  cp "$SQLITE_DB" "$WORK/bad.db"
  # The audit trail is copied last; a time that is not UTF-8 fails its COPY.
  sqlite3 "$WORK/bad.db" "INSERT INTO audit(recorded_time, action, method, agent, peer, patient_id, outcome, \
    alert_id) VALUES(CAST(X'ff' AS TEXT), 'R', 'm', 'a', 'p', 'secret-patient-7', 'OK', '')" </dev/null ||
    fail "cannot write the bad record"
  if bash "$MIGRATE_SCRIPT" "$WORK/bad.db" "$(pg_uri migrate_failed)" >"$WORK/bad.out" 2>&1; then
    fail "a record PostgreSQL refuses was migrated"
  fi
  cat "$WORK/bad.out"
  grep -q 'cannot copy the table audit' "$WORK/bad.out" || fail "no clear failure: $(cat "$WORK/bad.out")"
  if grep -q 'secret-patient-7' "$WORK/bad.out"; then
    fail "the failure printed the record"
  fi
  [ "$(psql_at migrate_failed "SELECT (SELECT COUNT(*) FROM patients) + (SELECT COUNT(*) FROM events) + \
    (SELECT COUNT(*) FROM audit) + (SELECT last_number FROM event_counter)")" = 0 ] ||
    fail "the failed migration left rows or a counter behind"
  echo "nothing committed; the schema stays, empty"
  bash "$MIGRATE_SCRIPT" "$SQLITE_DB" "$(pg_uri migrate_failed)" >"$WORK/retry.out" 2>&1 ||
    fail "migrating into the empty schema the failure left was refused: $(cat "$WORK/retry.out")"
  grep -q "^  events: $LAST rows" "$WORK/retry.out" || fail "the retry did not copy $LAST events"
  echo "a retry into that schema copies everything"
else
  echo "(sqlite3 not installed: the failure path is not tested)"
fi

# ---------------------------------------------------------------------------
step "migrating into the now non-empty database is refused and changes nothing"
BEFORE_COUNTS="$(psql_at migrate_target "SELECT (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM audit), \
  (SELECT last_number FROM event_counter)")"
if bash "$MIGRATE_SCRIPT" "$SQLITE_DB" "$TARGET_URI" >"$WORK/again.out" 2>&1; then
  fail "the script migrated into a database that holds Vigil data"
fi
cat "$WORK/again.out"
grep -q 'already holds Vigil data' "$WORK/again.out" || fail "no clear refusal: $(cat "$WORK/again.out")"
[ "$(psql_at migrate_target "SELECT (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM audit), \
  (SELECT last_number FROM event_counter)")" = "$BEFORE_COUNTS" ] || fail "the refused migration changed the target"

echo "PASS: SQLite ($LAST events, $AUDIT_COPIED audit records) migrated to PostgreSQL and served as before"
