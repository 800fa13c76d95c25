#!/usr/bin/env bash
# The PythonExamples test: runs the Python examples against a real server.
#
#   bash examples/python/run_examples.sh SERVER_BIN KB_DIR
#
# In a temporary folder: generates the Python stubs from proto/ with protoc and
# grpc_python_plugin, starts SERVER_BIN in development mode on a free loopback
# port with a new database, then asserts that
#   1. check_medications.py streams the MAJOR warfarin/ibuprofen interaction
#      (and, with --with_silperisone, the silperisone renal contraindication)
#      and the closing summary;
#   2. feed_subscriber.py, following the feed, prints the RAISED event of a
#      patient stored with put_patient.py;
#   3. it survives a server restart: the stream ends with UNAVAILABLE, it
#      reconnects and resumes, and prints the next patient's RAISED event with
#      no event twice;
#   4. feed_subscriber.py --after=N prints only events after N.
# The server is always stopped on exit. On a failure: a message, the logs'
# tails, and a non-zero exit status.
#
# Environment: PYTHON, an interpreter with Debian's python3-grpcio and
# python3-protobuf (default: the first of python3 and /usr/bin/python3 that can
# import grpc); PROTOC and GRPC_PYTHON_PLUGIN (default: protoc and
# /usr/bin/grpc_python_plugin).
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 SERVER_BIN KB_DIR" >&2
  exit 2
fi
SERVER_BIN="$(realpath "$1")"
KB_DIR="$(realpath "$2")"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PROTOC="${PROTOC:-protoc}"
GRPC_PYTHON_PLUGIN="${GRPC_PYTHON_PLUGIN:-/usr/bin/grpc_python_plugin}"

WORK="$(mktemp -d /tmp/vigil-python-examples-XXXXXX)"
SERVER_PID=""
SUBSCRIBER_PID=""
SERVER_LOG="$WORK/server.log"

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
  stop_pid "$SUBSCRIBER_PID"
  stop_pid "$SERVER_PID"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo "FAIL: $*" >&2
  for log in "$WORK"/server*.log; do
    [ -f "$log" ] || continue
    echo "--- last lines of $(basename "$log") ---" >&2
    tail -n 25 "$log" >&2
  done
  for out in "$WORK"/*.out "$WORK"/*.err; do
    [ -s "$out" ] || continue
    echo "--- $(basename "$out") ---" >&2
    tail -n 20 "$out" >&2
  done
  exit 1
}

step() { echo "== $*"; }

# Python with grpc.
if [ -z "${PYTHON:-}" ]; then
  for candidate in python3 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import grpc, google.protobuf' 2>/dev/null; then
      PYTHON="$candidate"
      break
    fi
  done
fi
[ -n "${PYTHON:-}" ] || fail "no python3 with grpc and protobuf (install python3-grpcio and python3-protobuf, or set PYTHON)"

step "generating the Python stubs with $("$PROTOC" --version) and $GRPC_PYTHON_PLUGIN"
GEN="$WORK/gen"
mkdir -p "$GEN"
(cd "$ROOT" && "$PROTOC" -I proto --python_out="$GEN" --grpc_out="$GEN" \
  --plugin=protoc-gen-grpc="$GRPC_PYTHON_PLUGIN" proto/vigil/v1/*.proto proto/google/rpc/*.proto) ||
  fail "protoc could not generate the stubs"
export PYTHONPATH="$GEN${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

# Starts the server on $1 (HOST:PORT; port 0 picks one) with $2 as its log;
# sets SERVER_PID and PORT from the "listening" line of the log.
start_server() {
  local listen="$1" log="$2"
  "$SERVER_BIN" --listen="$listen" --kb="$KB_DIR" --db="$WORK/vigil.db" 2>"$log" &
  SERVER_PID=$!
  SERVER_LOG="$log"
  for _ in $(seq 200); do
    if grep -q '"event":"listening"' "$log"; then break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || fail "the server exited at start"
    sleep 0.1
  done
  PORT="$(grep '"event":"listening"' "$log" | head -n 1 | sed -E 's/.*"port":"([0-9]+)".*/\1/')"
  [ -n "$PORT" ] || fail "the server did not log its port within 20 s"
}

step "starting $SERVER_BIN (development mode, new database)"
start_server 127.0.0.1:0 "$WORK/server.log"
TARGET="127.0.0.1:$PORT"
echo "server listening on $TARGET"

# Waits up to $3 seconds for the extended regex $2 in file $1.
wait_for() {
  local file="$1" pattern="$2" seconds="$3"
  for _ in $(seq $((seconds * 10))); do
    if grep -Eq -- "$pattern" "$file" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

# The event numbers feed_subscriber.py printed to $1, one a line.
event_numbers() { awk '$1 == "event" { print $2 }' "$1"; }

# ---------------------------------------------------------------------------
step "check_medications.py: warfarin + proposed ibuprofen"
"$PYTHON" "$HERE/check_medications.py" --target "$TARGET" >"$WORK/check.out" 2>"$WORK/check.err" ||
  fail "check_medications.py exited with $?"
cat "$WORK/check.out"
grep -Eq '^MAJOR  DRUG_INTERACTION  \[(ibuprofen, warfarin|warfarin, ibuprofen)\]' "$WORK/check.out" ||
  fail "check_medications.py did not print the MAJOR warfarin/ibuprofen DRUG_INTERACTION alert"
grep -q 'rule ddi-nsaids-anticoagulants' "$WORK/check.out" ||
  fail "the interaction alert does not name rule ddi-nsaids-anticoagulants"
grep -Eq '^summary: 1 alert\(s\); screened: ibuprofen, warfarin; .*screening complete$' "$WORK/check.out" ||
  fail "check_medications.py did not print the expected summary (1 alert, ibuprofen and warfarin screened, complete)"

step "check_medications.py --with_silperisone: severe renal impairment"
"$PYTHON" "$HERE/check_medications.py" --target "$TARGET" --with_silperisone >"$WORK/check2.out" 2>"$WORK/check2.err" ||
  fail "check_medications.py --with_silperisone exited with $?"
cat "$WORK/check2.out"
grep -Eq '^CONTRAINDICATED  CONTRAINDICATION  \[silperisone\]' "$WORK/check2.out" ||
  fail "no CONTRAINDICATED silperisone CONTRAINDICATION alert for a patient with N18.4 and eGFR 24"
head -n 2 "$WORK/check2.out" | tail -n 1 | grep -q '^CONTRAINDICATED ' ||
  fail "the most severe alert did not stream first"
grep -Eq '^MAJOR  DRUG_INTERACTION  \[(ibuprofen, warfarin|warfarin, ibuprofen)\]' "$WORK/check2.out" ||
  fail "the warfarin/ibuprofen interaction is missing with --with_silperisone"

step "check_medications.py --batch=2: the same answer in batches"
"$PYTHON" "$HERE/check_medications.py" --target "$TARGET" --with_silperisone --details --batch=2 \
  >"$WORK/check3.out" 2>"$WORK/check3.err" || fail "check_medications.py --batch=2 exited with $?"
"$PYTHON" "$HERE/check_medications.py" --target "$TARGET" --with_silperisone --details \
  >"$WORK/check4.out" 2>"$WORK/check4.err" || fail "check_medications.py --details exited with $?"
grep -q '^summary: 3 alert(s)' "$WORK/check3.out" || fail "the batched check did not print its summary"
cmp -s "$WORK/check3.out" "$WORK/check4.out" || {
  diff "$WORK/check4.out" "$WORK/check3.out" >&2
  fail "the batched check printed something else than the unbatched one"
}

# ---------------------------------------------------------------------------
step "feed_subscriber.py follows the feed; put_patient.py raises an alert"
"$PYTHON" "$HERE/feed_subscriber.py" --target "$TARGET" --after=0 --heartbeat=1 --seconds=90 \
  >"$WORK/feed.out" 2>"$WORK/feed.err" &
SUBSCRIBER_PID=$!
wait_for "$WORK/feed.err" '^# subscribed' 10 || fail "feed_subscriber.py did not subscribe"
"$PYTHON" "$HERE/put_patient.py" --target "$TARGET" --patient_id=py-feed-1 >"$WORK/put1.out" 2>"$WORK/put1.err" ||
  fail "put_patient.py exited with $?"
cat "$WORK/put1.out"
grep -q '^raised: MAJOR  DRUG_INTERACTION' "$WORK/put1.out" || fail "PutPatient of warfarin + ibuprofen raised no interaction alert"
FIRST_LAST="$(sed -nE 's/^last event number: ([0-9]+)$/\1/p' "$WORK/put1.out")"
[ -n "$FIRST_LAST" ] || fail "put_patient.py printed no last event number"
wait_for "$WORK/feed.out" '^event [0-9]+  RAISED  patient py-feed-1  MAJOR  DRUG_INTERACTION ' 15 ||
  fail "feed_subscriber.py did not print the RAISED event of patient py-feed-1"
echo "subscriber saw:"
cat "$WORK/feed.out"

step "the server restarts: the subscriber reconnects and resumes"
stop_pid "$SERVER_PID"
SERVER_PID=""
wait_for "$WORK/feed.err" 'stream ended: UNAVAILABLE' 15 ||
  fail "feed_subscriber.py did not see the stream end with UNAVAILABLE on shutdown"
start_server "127.0.0.1:$PORT" "$WORK/server-restarted.log"
"$PYTHON" "$HERE/put_patient.py" --target "$TARGET" --patient_id=py-feed-2 >"$WORK/put2.out" 2>"$WORK/put2.err" ||
  fail "put_patient.py exited with $? after the restart"
cat "$WORK/put2.out"
SECOND_LAST="$(sed -nE 's/^last event number: ([0-9]+)$/\1/p' "$WORK/put2.out")"
[ -n "$SECOND_LAST" ] || fail "put_patient.py printed no last event number"
wait_for "$WORK/feed.out" '^event [0-9]+  RAISED  patient py-feed-2  MAJOR  DRUG_INTERACTION ' 30 ||
  fail "feed_subscriber.py did not resume after the restart (no RAISED event of py-feed-2)"
stop_pid "$SUBSCRIBER_PID"
SUBSCRIBER_PID=""
echo "subscriber saw:"
cat "$WORK/feed.out"
grep '^#' "$WORK/feed.err"
SEEN="$(event_numbers "$WORK/feed.out" | tr '\n' ' ')"
EXPECTED="$(seq 1 "$SECOND_LAST" | tr '\n' ' ')"
[ "$SEEN" = "$EXPECTED" ] ||
  fail "the subscriber's events are not exactly 1..$SECOND_LAST in order, each once: got [$SEEN]"

# ---------------------------------------------------------------------------
step "feed_subscriber.py --after=$FIRST_LAST: only the events after it"
"$PYTHON" "$HERE/feed_subscriber.py" --target "$TARGET" --after="$FIRST_LAST" \
  --max_events=$((SECOND_LAST - FIRST_LAST)) --seconds=20 >"$WORK/resume.out" 2>"$WORK/resume.err" ||
  fail "feed_subscriber.py --after exited with $?"
cat "$WORK/resume.out"
grep -Eq '^event [0-9]+  RAISED  patient py-feed-2 ' "$WORK/resume.out" ||
  fail "the resumed subscriber did not print the RAISED event of py-feed-2"
for n in $(event_numbers "$WORK/resume.out"); do
  [ "$n" -gt "$FIRST_LAST" ] || fail "the resumed subscriber printed event $n, at or below --after=$FIRST_LAST"
done
if grep -q 'patient py-feed-1 ' "$WORK/resume.out"; then
  fail "the resumed subscriber printed an event of py-feed-1 (all at or below $FIRST_LAST)"
fi
[ "$(event_numbers "$WORK/resume.out" | wc -l)" -eq $((SECOND_LAST - FIRST_LAST)) ] ||
  fail "the resumed subscriber did not print exactly the $((SECOND_LAST - FIRST_LAST)) event(s) after $FIRST_LAST"

echo "PASS: Python examples (check_medications.py, put_patient.py, feed_subscriber.py) against $SERVER_BIN"
