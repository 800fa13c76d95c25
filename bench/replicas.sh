#!/usr/bin/env bash
# PutPatient throughput and alert-feed delivery latency in three setups, with
# bench/replica_bench.cc (vigil-bench-replicas):
#   sqlite   one vigil-server on a SQLite file in a temporary folder;
#   pg1      one vigil-server on PostgreSQL (writes and subscribes on it);
#   pg2      two vigil-servers on the same PostgreSQL database: writes through
#            A, subscribes on B (B learns of A's commits by LISTEN/NOTIFY).
# and whether the audit trail's writer keeps up with saturated checks (every
# check writes an audit record; bench/audit_keepup.py, with h2load):
#   checks-sqlite   one vigil-server on a SQLite file;
#   checks-pg       one vigil-server on PostgreSQL.
# Starts a throwaway PostgreSQL cluster (as `nobody` when run as root; data in
# /tmp; durable settings: fsync and synchronous_commit on, PostgreSQL's
# defaults, as SQLite's synchronous=FULL), fresh databases and servers for
# every run, and stops all it started on exit. Runs the setups in alternating
# rounds; prints each run, then a Markdown table of the median and the range.
#
#   bench/replicas.sh                              # 3 rounds, 2000 patients, 4 writers
#   RUNS=1 PATIENTS=200 bench/replicas.sh          # quick
#
# Environment: VIGIL_BUILD_DIR (default build-pgbench; needs vigil-server,
# vigil-bench-replicas and vigil-bench built), VIGIL_PG_BINDIR (default: the
# newest /usr/lib/postgresql/N/bin), RUNS, PATIENTS, WRITERS, CHECK_SECONDS
# (default 10), SETUPS (default "sqlite pg1 pg2 checks-sqlite checks-pg").
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VIGIL_BUILD_DIR:-build-pgbench}"
RUNS="${RUNS:-3}"
PATIENTS="${PATIENTS:-2000}"
WRITERS="${WRITERS:-4}"
CHECK_SECONDS="${CHECK_SECONDS:-10}"
SETUPS="${SETUPS:-sqlite pg1 pg2 checks-sqlite checks-pg}"
SERVER="$BIN/server/vigil-server"
BENCH="$BIN/bench/vigil-bench-replicas"
LOAD_BENCH="$BIN/bench/vigil-bench"
for b in "$SERVER" "$BENCH" "$LOAD_BENCH"; do
  [ -x "$b" ] || {
    echo "replicas: $b is not built (cmake --build $BIN --target vigil-server vigil-bench-replicas vigil-bench)" >&2
    exit 1
  }
done
PGBIN="${VIGIL_PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"
[ -x "$PGBIN/postgres" ] || { echo "replicas: no PostgreSQL server binaries (set VIGIL_PG_BINDIR)" >&2; exit 1; }

WORK="$(mktemp -d /tmp/vigil-replicas-XXXXXX)"
SERVER_PIDS=()
PG_STARTED=0
as_owner() {  # runs a command as the cluster's owner (nobody when root)
  if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi
}
stop_servers() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${SERVER_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  SERVER_PIDS=()
}
cleanup() {
  local status=$?
  set +e
  stop_servers
  if [ "$PG_STARTED" = 1 ]; then
    if ! as_owner "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m fast -w -t 30 stop >/dev/null 2>&1; then
      # Only the postmaster of this cluster: its pid is postmaster.pid's first line.
      local pm
      pm="$(head -n1 "$WORK/pg/data/postmaster.pid" 2>/dev/null)"
      [ -n "$pm" ] && kill -KILL "$pm" 2>/dev/null
    fi
  fi
  if [ "$status" != 0 ]; then
    echo "replicas: failed (status $status); logs in $WORK were:" >&2
    for f in "$WORK"/*.log "$WORK"/pg/postgres.log; do
      [ -f "$f" ] && { echo "== $f" >&2; tail -15 "$f" >&2; }
    done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The cluster: in $WORK/pg, owned by nobody when root.
start_postgres() {
  mkdir -p "$WORK/pg"
  if [ "$(id -u)" = 0 ]; then chown nobody "$WORK" "$WORK/pg"; chmod 755 "$WORK"; fi
  chmod 700 "$WORK/pg"
  (cd "$WORK/pg" && as_owner "$PGBIN/initdb" -D "$WORK/pg/data" -U vigil --auth=trust -E UTF8 --no-locale \
    --no-instructions >"$WORK/initdb.log" 2>&1)
  PG_PORT="$(free_port)"
  (cd "$WORK/pg" && as_owner "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/postgres.log" -w -t 30 \
    -o "-p $PG_PORT -k $WORK/pg -c listen_addresses=127.0.0.1" start >"$WORK/pg_ctl.log" 2>&1)
  PG_STARTED=1
}
PG_DB_ID=0
new_pg_database() {  # sets DB_URI to a new empty database
  PG_DB_ID=$((PG_DB_ID + 1))
  local name="vigil_bench_$PG_DB_ID"
  "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "postgresql://vigil@127.0.0.1:$PG_PORT/postgres?sslmode=disable" \
    -c "CREATE DATABASE $name" >>"$WORK/psql.log" 2>&1
  DB_URI="postgresql://vigil@127.0.0.1:$PG_PORT/$name?sslmode=disable&connect_timeout=3"
}

# start_server NAME DB: a server with the bundled base on a free port; sets
# ADDRESS and METRICS (its metrics listener).
start_server() {
  local name="$1" db="$2" log="$WORK/$1.log"
  "$SERVER" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --kb="$PWD/data/kb" --db="$db" 2>"$log" &
  SERVER_PIDS+=($!)
  local port="" metrics_port=""
  for _ in $(seq 200); do
    port="$(grep -m1 '"event":"listening"' "$log" | sed -E 's/.*"port":"([0-9]+)".*/\1/')" || true
    metrics_port="$(grep -m1 '"event":"metrics_listening"' "$log" | sed -E 's/.*"port":"([0-9]+)".*/\1/')" || true
    [ -n "$port" ] && [ -n "$metrics_port" ] && break
    kill -0 "${SERVER_PIDS[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$port" ] && [ -n "$metrics_port" ] || { echo "replicas: server $name did not start:" >&2; cat "$log" >&2; exit 1; }
  ADDRESS="127.0.0.1:$port"
  METRICS="127.0.0.1:$metrics_port"
}

RESULTS="$WORK/results.txt"
: >"$RESULTS"
measure() {  # measure LABEL WRITER SUBSCRIBER
  local out="$WORK/run.out" status=0
  echo "\$ $BENCH --writer=$2 --subscriber=$3 --patients=$PATIENTS --writers=$WRITERS --label=$1"
  "$BENCH" --writer="$2" --subscriber="$3" --patients="$PATIENTS" --writers="$WRITERS" --label="$1" >"$out" 2>&1 ||
    status=$?
  cat "$out"
  grep '^RESULT ' "$out" >>"$RESULTS" || true
  [ "$status" = 0 ] || echo "replicas: run $1 exited with status $status (see above)" >&2
}
CHECKS="$WORK/checks.txt"
: >"$CHECKS"
CHECKS_FAILED=0
measure_checks() {  # measure_checks LABEL: the audit writer under saturated checks on the last server started
  rm -rf "$WORK/requests" && mkdir -p "$WORK/requests"
  "$LOAD_BENCH" --server="$ADDRESS" --write_requests="$WORK/requests" >/dev/null
  local status=0
  python3 bench/audit_keepup.py --server="$ADDRESS" --metrics="$METRICS" --server_pid="${SERVER_PIDS[-1]}" \
    --requests="$WORK/requests" --seconds="$CHECK_SECONDS" --label="$1" >"$WORK/run.out" 2>&1 || status=$?
  cat "$WORK/run.out"
  cat "$WORK/run.out" >>"$CHECKS"
  if [ "$status" != 0 ]; then
    echo "replicas: run $1 exited with status $status (see above)" >&2
    CHECKS_FAILED=1
  fi
}

case " $SETUPS " in *" pg"* | *" checks-pg"*) start_postgres ;; esac
echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "PostgreSQL: $("$PGBIN/postgres" --version)"
for round in $(seq "$RUNS"); do
  for setup in $SETUPS; do
    echo "== round $round, $setup"
    case "$setup" in
      sqlite)
        mkdir -p "$WORK/sqlite-$round"
        start_server sqlite "$WORK/sqlite-$round/vigil.db"
        measure sqlite "$ADDRESS" "$ADDRESS"
        ;;
      pg1)
        new_pg_database
        start_server pg1 "$DB_URI"
        measure pg1 "$ADDRESS" "$ADDRESS"
        ;;
      pg2)
        new_pg_database
        start_server pg2-a "$DB_URI"
        A_ADDRESS="$ADDRESS"
        start_server pg2-b "$DB_URI"
        measure pg2 "$A_ADDRESS" "$ADDRESS"
        ;;
      checks-sqlite)
        mkdir -p "$WORK/checks-$round"
        start_server checks-sqlite "$WORK/checks-$round/vigil.db"
        measure_checks checks-sqlite
        ;;
      checks-pg)
        new_pg_database
        start_server checks-pg "$DB_URI"
        measure_checks checks-pg
        ;;
      *) echo "replicas: unknown setup $setup" >&2; exit 64 ;;
    esac
    stop_servers
  done
done

if [ -s "$RESULTS" ]; then
  echo
  echo "Median of $RUNS runs (range), $PATIENTS patients, $WRITERS writers. Delivery: from just before the put is"
  echo "sent to the subscriber reading the patient's first RAISED event; also from the put's answer (negative: the"
  echo "event came first) and from the event's event_time (stamped by the writing server just before its commit):"
  python3 - "$RESULTS" "$SETUPS" <<'EOF'
import statistics, sys
rows = [dict(kv.split("=", 1) for kv in line.split()[1:]) for line in open(sys.argv[1])]
names = {"sqlite": "SQLite, one server", "pg1": "PostgreSQL, one replica",
         "pg2": "PostgreSQL, two replicas (write A, subscribe B)"}
def cell(runs, key, fmt):
    values = sorted(float(r[key]) for r in runs)
    med = statistics.median(values)
    return f"{fmt.format(med)} ({fmt.format(values[0])} to {fmt.format(values[-1])})" if len(values) > 1 else fmt.format(med)
print("| setup | puts/s | put p50 ms | put p99 ms | delivery p50 ms | delivery p99 ms | delivery max ms |"
      " answer to event p50 ms | p99 | event_time to event p50 ms | p99 |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for setup in sys.argv[2].split():
    runs = [r for r in rows if r["label"] == setup]
    if not runs:
        continue
    cells = [cell(runs, "puts_per_s", "{:.0f}")]
    cells += [cell(runs, k, "{:.1f}") for k in ("put_p50_ms", "put_p99_ms", "sent_p50_ms", "sent_p99_ms", "sent_max_ms",
                                                 "answered_p50_ms", "answered_p99_ms", "stamped_p50_ms",
                                                 "stamped_p99_ms")]
    bad = sum(int(r["errors"]) for r in runs), sum(int(r["missing"]) for r in runs)
    print(f"| {names.get(setup, setup)} | " + " | ".join(cells) + " |")
    if any(bad):
        print(f"({setup}: {bad[0]} failed puts, {bad[1]} events missing)")
EOF
fi
if [ -s "$CHECKS" ]; then
  echo
  echo "The audit trail under saturated checks (h2load, 4 connections x 8 streams, $CHECK_SECONDS s):"
  cat "$CHECKS"
fi
# A record dropped or never written fails the run (the ctest smoke run).
exit "$CHECKS_FAILED"
