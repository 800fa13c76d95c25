#!/usr/bin/env bash
# Bounded soak: builds, starts a real vigil-server on a temporary database
# with the bundled knowledge base, and drives it with vigil-soak
# (tests/soak/) for VIGIL_SOAK_SECONDS while injecting faults: SIGHUP
# knowledge-base reloads, and one kill -9 in the middle followed by a restart
# on the same database and port. vigil-soak is told of the outage (SIGUSR1
# before the kill, SIGUSR2 once the server listens again), so that it accepts
# UNAVAILABLE only then; afterwards it verifies that no acknowledged write and
# no event was lost. At the end the server must hold no subscription and stop
# cleanly on SIGTERM. The results go to the "Bounded soak" section of
# docs/reliability.md (between <!-- soak:begin --> and <!-- soak:end -->;
# the rest of the file is kept).
#
# Environment:
#   VIGIL_BUILD_DIR     build directory (default build/)
#   VIGIL_SOAK_SECONDS  seconds of load (default 120)
#   VIGIL_SOAK_BUILD    0: use the build as it is (ctest does), else build first
#   VIGIL_SOAK_REPORT   0: do not write docs/reliability.md (ctest does)
#   VIGIL_SOAK_ARGS     extra vigil-soak flags, e.g. --rss_tolerance=0.1
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${VIGIL_BUILD_DIR:-build}"
SOAK_SECONDS="${VIGIL_SOAK_SECONDS:-120}"
REPORT="${VIGIL_SOAK_REPORT:-1}"
# The server's --shutdown_grace_seconds default, plus time to exit.
STOP_LIMIT=20

if [ "${VIGIL_SOAK_BUILD:-1}" != 0 ]; then
  bash scripts/build.sh
fi
SERVER="$BUILD_DIR/server/vigil-server"
SOAK="$BUILD_DIR/tests/soak/vigil-soak"
for binary in "$SERVER" "$SOAK"; do
  if [ ! -x "$binary" ]; then
    echo "soak: $binary is missing; build first (bash scripts/build.sh)" >&2
    exit 1
  fi
done

work="$(mktemp -d "${TMPDIR:-/tmp}/vigil-soak-XXXXXX")"
server_pid=""
soak_pid=""
cleanup() {
  # Only what this script started, by pid.
  if [ -n "$soak_pid" ]; then kill -9 "$soak_pid" 2>/dev/null || true; fi
  if [ -n "$server_pid" ]; then kill -9 "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

log() { echo "soak: $*" >&2; }
failures=()
faults=()

now_ns() { date +%s%N; }
# Seconds since the load started, one decimal.
elapsed() { awk -v a="$(now_ns)" -v b="$t0" 'BEGIN { printf "%.1f", (a - b) / 1e9 }'; }
# Sleeps until this fraction of the load's duration has passed.
sleep_until() {
  local wait
  wait="$(awk -v f="$1" -v s="$SOAK_SECONDS" -v a="$(now_ns)" -v b="$t0" \
    'BEGIN { w = f * s - (a - b) / 1e9; printf "%.3f", (w > 0 ? w : 0) }')"
  sleep "$wait"
}
# The value of field $2 in the last log line of event $1.
log_field() {
  grep "\"event\":\"$1\"" "$work/server.log" | tail -1 | sed -n "s/.*\"$2\":\"\\([^\"]*\\)\".*/\\1/p" || true
}
count_events() { grep -c "\"event\":\"$1\"" "$work/server.log" || true; }

# Starts the server on port $1 (0 picks one), metrics on $2, and waits
# until it logs that it is listening.
#
# The port is a free one below the kernel's ephemeral range: the server is
# restarted on it after the kill -9, and while nothing listens there the
# soak's clients keep reconnecting. With a port inside the ephemeral range a
# reconnect can be given that same port as its source, and TCP then connects
# the client to itself (it answered its own handshake for seconds once).
free_port_below_ephemeral() {
  python3 - <<'PY'
import random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
for _ in range(200):
    port = random.randrange(max(1024, low - 12000), low)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    print(0)
PY
}
port="$(free_port_below_ephemeral)"
metrics_port=0
start_server() {
  local before
  before="$(count_events listening)"
  "$SERVER" --listen="127.0.0.1:$1" --metrics_listen="127.0.0.1:$2" --kb="$PWD/data/kb" --db="$work/vigil.db" \
    2>>"$work/server.log" &
  server_pid=$!
  echo "$server_pid" >"$work/server.pid"
  for _ in $(seq 1 300); do
    if [ "$(count_events listening)" -gt "$before" ]; then
      port="$(log_field listening port)"
      metrics_port="$(log_field metrics_listening port)"
      return 0
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  log "the server did not start; its log:"
  tail -20 "$work/server.log" >&2
  exit 1
}

# The value of a metric of the server (empty when it cannot be read).
metric() {
  curl -sf --max-time 5 "http://127.0.0.1:$metrics_port/metrics" | awk -v m="$1" '$1 == m { print $2 }' || true
}

touch "$work/server.log"
start_server "$port" 0
log "server pid $server_pid on 127.0.0.1:$port (metrics :$metrics_port), database $work/vigil.db"

# shellcheck disable=SC2086  # VIGIL_SOAK_ARGS is a list of flags.
"$SOAK" --server="127.0.0.1:$port" --seconds="$SOAK_SECONDS" --server_pid_file="$work/server.pid" \
  --report="$work/report.md" ${VIGIL_SOAK_ARGS:-} >"$work/soak.out" &
soak_pid=$!
t0="$(now_ns)"

soak_running() { kill -0 "$soak_pid" 2>/dev/null; }
hups=0
reload() {
  sleep_until "$1"
  if soak_running; then
    kill -HUP "$server_pid"
    hups=$((hups + 1))
    faults+=("SIGHUP (knowledge-base reload) at $(elapsed) s")
    log "SIGHUP at $(elapsed) s"
  fi
}
reload 0.15
reload 0.30
sleep_until 0.45
if soak_running; then
  # Announce the outage, then kill without warning: nothing gets a chance to
  # flush. The server stays down for a moment so that clients see it.
  kill -USR1 "$soak_pid"
  sleep 0.2
  killed_at="$(elapsed)"
  kill -9 "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  sleep 1
  start_server "$port" "$metrics_port"
  kill -USR2 "$soak_pid"
  restarted_at="$(elapsed)"
  durable="$(log_field database_open latest_event_number)"
  faults+=("kill -9 at $killed_at s; restarted on the same database and port at $restarted_at s (pid $server_pid), with $durable events on disk")
  log "kill -9 at $killed_at s, restarted at $restarted_at s with $durable durable events"
fi
reload 0.65
reload 0.80

soak_rc=0
wait "$soak_pid" || soak_rc=$?
soak_pid=""
cat "$work/soak.out"
if [ "$soak_rc" -ne 0 ]; then
  failures+=("vigil-soak found violations (exit status $soak_rc)")
fi

reloads="$(grep '"event":"knowledge_base_reloaded"' "$work/server.log" | grep -c '"trigger":"SIGHUP"' || true)"
if [ "$reloads" -ne "$hups" ]; then
  failures+=("$hups SIGHUP sent, $reloads reloads logged")
fi

# Every subscription of vigil-soak has ended, so the server must hold none.
subscribers=""
for _ in $(seq 1 50); do
  subscribers="$(metric vigil_subscribers)"
  if [ "$subscribers" = 0 ]; then break; fi
  sleep 0.1
done
queued="$(metric vigil_subscriber_queued_events)"
if [ "$subscribers" != 0 ]; then
  failures+=("after the soak, with every client gone, the server still holds subscriptions: vigil_subscribers ${subscribers:-unreadable}, vigil_subscriber_queued_events ${queued:-unreadable}")
fi

kill -TERM "$server_pid"
stop_start="$(now_ns)"
stopped=""
for _ in $(seq 1 $((STOP_LIMIT * 10))); do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    stopped=yes
    break
  fi
  sleep 0.1
done
server_rc=0
if [ -n "$stopped" ]; then
  wait "$server_pid" || server_rc=$?
  stop_seconds="$(awk -v a="$(now_ns)" -v b="$stop_start" 'BEGIN { printf "%.1f", (a - b) / 1e9 }')"
  stop_text="stopped on SIGTERM in $stop_seconds s with exit status $server_rc"
  if [ "$server_rc" -ne 0 ]; then
    failures+=("the server exited with status $server_rc on SIGTERM")
  fi
else
  stop_text="did not stop within $STOP_LIMIT s of SIGTERM (killed)"
  failures+=("the server did not stop within $STOP_LIMIT s of SIGTERM")
  kill -9 "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
fi
server_pid=""
faults+=("SIGTERM at the end: $stop_text")
log "server $stop_text"

if [ ${#failures[@]} -eq 0 ]; then
  verdict="PASSED"
else
  verdict="FAILED"
fi
log "$verdict"
for f in "${failures[@]}"; do
  log "failure: $f"
done

if [ "$REPORT" != 0 ]; then
  {
    echo "<!-- soak:begin -->"
    echo "## Bounded soak"
    echo
    echo "Written by \`scripts/soak.sh\` (rerun it to refresh this section)."
    echo
    echo "- Date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "- Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB memory, Linux $(uname -r)"
    command="VIGIL_SOAK_SECONDS=$SOAK_SECONDS"
    for var in VIGIL_BUILD_DIR VIGIL_SOAK_BUILD VIGIL_SOAK_ARGS; do
      if [ -n "${!var:-}" ]; then command+=" $var=\"${!var}\""; fi
    done
    echo "- Command: \`$command scripts/soak.sh\` (build type ${VIGIL_BUILD_TYPE:-RelWithDebInfo};" \
      "development mode on loopback, so no rate limit)"
    echo "- Result: **$verdict**"
    echo "- Faults injected:"
    for f in "${faults[@]}"; do
      echo "  - $f"
    done
    echo
    echo "What vigil-soak measured and checked:"
    echo
    cat "$work/report.md" 2>/dev/null || echo "- (no report: vigil-soak exited with status $soak_rc)"
    echo
    if [ "$verdict" = PASSED ]; then
      echo "What survived: every write acknowledged before the kill -9 was stored and in the feed after the restart;"
      echo "every event kept its number and content (a replay from 0 matched the reference subscriber); every"
      echo "subscription saw every event of its window exactly once, in order, across leaving, resuming and the"
      echo "outage; GetPatient and ListAlerts matched the last acknowledged writes; the SIGHUP reloads took effect"
      echo "without failing a call; the server held no subscription after its clients left and stopped cleanly."
    else
      echo "What survived is in \"Verdict by check\" above. Failures:"
      echo
      for f in "${failures[@]}"; do
        echo "- $f"
      done
    fi
    echo "<!-- soak:end -->"
  } >"$work/section.md"
  python3 - "$work/section.md" docs/reliability.md <<'EOF'
import os
import re
import sys

section = open(sys.argv[1]).read().rstrip("\n") + "\n"
path = sys.argv[2]
text = open(path).read() if os.path.exists(path) else "# Reliability\n"
pattern = re.compile(r"<!-- soak:begin -->.*?<!-- soak:end -->\n?", re.S)
if pattern.search(text):
    text = pattern.sub(lambda _: section, text, count=1)
else:
    text = text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
EOF
  log "wrote the Bounded soak section of docs/reliability.md"
fi

[ "$verdict" = PASSED ]
