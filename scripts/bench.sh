#!/usr/bin/env bash
# Runs every benchmark of issue 6 in one go and writes the figures into
# docs/benchmarks.md, between the markers <!-- bench:begin --> and
# <!-- bench:end --> (the analysis around them is written by hand).
#
#   ./scripts/bench.sh                   # full run (a few minutes), rewrites the figures
#   VIGIL_BENCH_QUICK=1 ./scripts/bench.sh   # seconds-long smoke run; prints, writes nothing
#
# Builds in Release mode into build-release/ (or $VIGIL_BUILD_DIR; with
# VIGIL_BENCH_BUILD=0 it uses that build as it is, as the ctest smoke run
# does). Starts its
# own server (development mode, temporary database) on a free loopback port.
# DDInter is read from $VIGIL_SHARED_DATA/ddinter (default ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
export VIGIL_BUILD_DIR="${VIGIL_BUILD_DIR:-build-release}"
QUICK="${VIGIL_BENCH_QUICK:-0}"
if [ "${VIGIL_BENCH_BUILD:-1}" = 1 ]; then
  VIGIL_BUILD_TYPE=Release bash scripts/build.sh >&2
fi
BIN="$VIGIL_BUILD_DIR"
SHARED="${VIGIL_SHARED_DATA:-$PWD/../shared/data}"
if [ "$QUICK" = 1 ]; then
  E2E_SECONDS=1; ROUNDS=1; FANOUT_SECONDS=1; FANOUT_SUBSCRIBERS=10; ENGINE_MIN_TIME=0.01; KB_RUNS=1
else
  E2E_SECONDS="${VIGIL_BENCH_SECONDS:-10}"; ROUNDS=5; FANOUT_SECONDS=10; FANOUT_SUBSCRIBERS=100
  ENGINE_MIN_TIME=0.5; KB_RUNS=10
fi

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  local status=$?
  if [ -n "$SERVER_PID" ]; then
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "bench: the server exited during the run; its log ends:" >&2
      tail -20 "$WORK/server.log" >&2 || true
    fi
    kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "$status" != 0 ] && [ -f "$WORK/server.log" ]; then
    echo "bench: failed (status $status); the server's log ends:" >&2
    tail -20 "$WORK/server.log" >&2 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# Starts a server with the bundled base on a free port; sets ADDRESS.
start_server() {  # [extra server flags...]
  : >"$WORK/server.log"
  "$BIN/server/vigil-server" --listen=127.0.0.1:0 --kb="$PWD/data/kb" --db="$WORK/bench-$RANDOM.db" \
    --allow_plaintext "$@" 2>"$WORK/server.log" &
  SERVER_PID=$!
  for _ in $(seq 600); do  # up to a minute: importing DDInter takes seconds
    if grep -q '"event":"listening"' "$WORK/server.log"; then break; fi
    sleep 0.1
  done
  local port
  port="$(grep '"event":"listening"' "$WORK/server.log" | sed -E 's/.*"port":"([0-9]+)".*/\1/')"
  [ -n "$port" ] || { echo "bench: the server did not start:" >&2; cat "$WORK/server.log" >&2; exit 1; }
  ADDRESS="127.0.0.1:$port"
}

OUT="$WORK/figures.md"
run() {  # prints the command, then runs it, into the figures; its exit status
  echo '```' >>"$OUT"
  echo "\$ $*" | sed "s#$PWD/##g" >>"$OUT"
  local status=0
  "$@" >"$WORK/run.out" 2>&1 || status=$?
  tee -a "$OUT" <"$WORK/run.out" >&2
  echo '```' >>"$OUT"
  return "$status"
}

{
  echo "Figures from \`scripts/bench.sh\`, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
  echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')),"\
       "$(free -g | awk '/Mem:/{print $2}') GiB, $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)."
  echo "Release build; server and load generators share the machine's cores."
  echo
  echo "### Knowledge-base load (each line a fresh process)"
} >"$OUT"
run "$BIN/bench/vigil-bench-kb-load" --runs="$KB_RUNS" "$PWD/data/kb"
if [ -d "$SHARED/ddinter" ]; then
  run "$BIN/bench/vigil-bench-kb-load" --runs="$KB_RUNS" --import="$SHARED/ddinter" "$PWD/data/kb"
fi
echo -e "\n### Engine (Google Benchmark; time per check; heap allocations per check, in a heap copy of its result, and the long strings of its answer)" >>"$OUT"
run env VIGIL_SHARED_DATA="$SHARED" "$BIN/bench/vigil-bench-engine" --benchmark_min_time="$ENGINE_MIN_TIME"

start_server
echo -e "\n### End to end, one request in flight (floor: grpc.health.v1.Health/Check)" >>"$OUT"
run "$BIN/bench/vigil-bench" --server="$ADDRESS" --server_pid="$SERVER_PID" --channels=1 --in_flight=1 \
  --seconds="$E2E_SECONDS" --rounds="$ROUNDS"
echo -e "\nThe same with a check that finds nothing (one drug; the answer is its summary alone):" >>"$OUT"
run "$BIN/bench/vigil-bench" --server="$ADDRESS" --server_pid="$SERVER_PID" --channels=1 --in_flight=1 \
  --seconds="$E2E_SECONDS" --rounds="$ROUNDS" --request=clean
echo -e "\n### End to end, saturated (4 connections, 32 requests in flight)" >>"$OUT"
run "$BIN/bench/vigil-bench" --server="$ADDRESS" --server_pid="$SERVER_PID" --channels=4 --in_flight=32 \
  --seconds="$E2E_SECONDS" --rounds="$ROUNDS"
run "$BIN/bench/vigil-bench" --server="$ADDRESS" --server_pid="$SERVER_PID" --channels=4 --in_flight=32 \
  --seconds="$E2E_SECONDS" --rounds="$ROUNDS" --request=clean
echo -e "\n### Alert feed fan-out (10 subscribers at 5,000 events/s; 100 at 500/s; 100 at the target's 5,000/s; the target again with batches)" >>"$OUT"
# A run whose subscribers cannot keep up exits non-zero: the figures are the
# finding, so the script goes on.
run "$BIN/bench/vigil-bench-fanout" --server="$ADDRESS" --subscribers=10 --rate=5000 --writers=4 \
  --seconds="$FANOUT_SECONDS" || true
run "$BIN/bench/vigil-bench-fanout" --server="$ADDRESS" --subscribers="$FANOUT_SUBSCRIBERS" --rate=500 --writers=4 \
  --seconds="$FANOUT_SECONDS" || true
run "$BIN/bench/vigil-bench-fanout" --server="$ADDRESS" --subscribers="$FANOUT_SUBSCRIBERS" --rate=5000 --writers=4 \
  --seconds="$FANOUT_SECONDS" || true
# The target with batching (SubscribeRequest.max_events_per_message): first with
# the load generator reading only what its check needs from each event (number
# and time), then parsing every message in full as a real subscriber would,
# which on these shared cores is the load generator's own limit.
run "$BIN/bench/vigil-bench-fanout" --server="$ADDRESS" --subscribers="$FANOUT_SUBSCRIBERS" --rate=5000 --writers=4 \
  --seconds="$FANOUT_SECONDS" --max_events_per_message=1000 --parse=needed || true
run "$BIN/bench/vigil-bench-fanout" --server="$ADDRESS" --subscribers="$FANOUT_SUBSCRIBERS" --rate=5000 --writers=4 \
  --seconds="$FANOUT_SECONDS" --max_events_per_message=1000 --parse=full || true
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""

# Issue 18: what an answer weighs and what shapes of it cost, on the issue's
# realistic answer (the base with DDInter imported, when it is here: about
# a dozen alerts). Each line measures the floor, the stream and the unary
# call in one run; the flags shape both checks' answers.
if [ -d "$SHARED/ddinter" ]; then
  start_server --import="$SHARED/ddinter"
  echo -e "\n### Answer shapes (issue 18): the realistic check on the base with DDInter imported" >>"$OUT"
else
  start_server
  echo -e "\n### Answer shapes (issue 18): the realistic check on the bundled base (no DDInter here)" >>"$OUT"
fi
if [ "$QUICK" = 1 ]; then
  SHAPES=("--view=basic --sources_by_reference --max_alerts_per_message=1000")
else
  SHAPES=("" "--max_alerts_per_message=1000" "--sources_by_reference --max_alerts_per_message=1000"
    "--view=basic --max_alerts_per_message=1000")
fi
for load in "--channels=1 --in_flight=1" "--channels=4 --in_flight=32"; do
  for shape in "${SHAPES[@]}"; do
    # shellcheck disable=SC2086 # $load and $shape are flag lists
    run "$BIN/bench/vigil-bench" --server="$ADDRESS" --server_pid="$SERVER_PID" $load \
      --seconds="$E2E_SECONDS" --rounds="$ROUNDS" $shape
  done
done
# The same server measured from outside gRPC's C++ client, as the issue's
# authors did: h2load (nghttp2-client) posts the framed requests that
# vigil-bench writes, the same small client cost for every workload
# (bench/h2load_grpc.py).
echo -e "\nThe same answers posted by h2load, which costs every workload alike (the figures are the server's):" >>"$OUT"
if [ "$QUICK" = 1 ]; then
  H2_SHAPES=("--view=basic --max_alerts_per_message=1000")
else
  H2_SHAPES=("" "--max_alerts_per_message=1000" "--view=basic --max_alerts_per_message=1000")
fi
for shape in "${H2_SHAPES[@]}"; do
  rm -rf "$WORK/requests" && mkdir -p "$WORK/requests"
  # shellcheck disable=SC2086 # $shape is a flag list
  "$BIN/bench/vigil-bench" --server="$ADDRESS" --write_requests="$WORK/requests" $shape
  echo -e "\nRequests of \`vigil-bench ${shape:-(one alert per message)}\`:" >>"$OUT"
  for load in "--connections=1 --streams=1" "--connections=4 --streams=8"; do
    # shellcheck disable=SC2086 # $load is a flag list
    run python3 bench/h2load_grpc.py --server="$ADDRESS" --requests="$WORK/requests" $load \
      --seconds="$E2E_SECONDS" --rounds="$ROUNDS" --server_pid="$SERVER_PID"
  done
done
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""

if [ "$QUICK" = 1 ]; then
  echo "bench: quick run finished; docs/benchmarks.md left as it is" >&2
  exit 0
fi
DOC=docs/benchmarks.md
if ! grep -q '<!-- bench:begin -->' "$DOC"; then
  printf '\n## Latest figures\n\n<!-- bench:begin -->\n<!-- bench:end -->\n' >>"$DOC"
fi
python3 - "$DOC" "$OUT" <<'EOF'
import sys
doc, figures = sys.argv[1], open(sys.argv[2]).read()
text = open(doc).read()
begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
open(doc, "w").write(head + begin + "\n" + figures + end + tail)
EOF
echo "bench: figures written to $DOC" >&2
