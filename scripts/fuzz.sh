#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang, ASan and UBSan into
# build-fuzz/ and runs each for $VIGIL_FUZZ_SECONDS seconds (default 60) from
# its seed corpus in fuzz/corpus/. New corpus entries and any reproducer go to
# a scratch folder ($VIGIL_FUZZ_WORK, default a new folder under /tmp), never
# into the repository. Exits 1 if any target found a crash, leak, UB, timeout
# or out-of-memory input, after printing each reproducer and how to replay it.
#
#   VIGIL_FUZZ_SECONDS=20 scripts/fuzz.sh                 # every target, 20 s each
#   scripts/fuzz.sh check_request put_patient             # only these targets
# The targets run one per core at a time ($VIGIL_FUZZ_JOBS).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_PER_TARGET="${VIGIL_FUZZ_SECONDS:-60}"
BUILD_DIR=build-fuzz
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  TARGETS=(kb_textproto ddinter_import check_request put_patient cds_request)
fi

bash scripts/install-deps.sh
CC=clang-14 CXX=clang++-14 cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DVIGIL_BUILD_FUZZERS=ON -DVIGIL_BUILD_TESTS=OFF \
  -DVIGIL_SANITIZE=fuzzer-no-link,address,undefined \
  -DCMAKE_CXX_FLAGS=-fno-sanitize-recover=undefined >/dev/null
# Clang checks the thread-safety annotations of what it builds here
# (-Wthread-safety, an error; see CMakeLists.txt); the service layer is
# checked with VIGIL_FUZZ_BUILD_SERVICE=1 (it adds minutes to CI).
nice -n 10 cmake --build "$BUILD_DIR" --target vigil_fuzzers $([ "${VIGIL_FUZZ_BUILD_SERVICE:-0}" = 1 ] && echo vigil_service) -j2

WORK="${VIGIL_FUZZ_WORK:-$(mktemp -d /tmp/vigil-fuzz-run.XXXXXX)}"
# The targets write their input files under $TMPDIR; a crashing run cannot
# clean up after itself, so that is inside the scratch folder too.
export TMPDIR="$WORK/tmp"
mkdir -p "$TMPDIR"
# UB aborts (the code is built with -fno-sanitize-recover=undefined too), with
# a stack; leaks are reported by libFuzzer's own LeakSanitizer pass.
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"

dictionary_of() {
  case "$1" in
    check_request | put_patient) echo "$ROOT/fuzz/dict/requests.dict" ;;
    cds_request) echo "$ROOT/fuzz/dict/cds_request.dict" ;;
    *) echo "$ROOT/fuzz/dict/$1.dict" ;;
  esac
}

for target in "${TARGETS[@]}"; do
  if [ ! -x "$ROOT/$BUILD_DIR/fuzz/fuzz_$target" ]; then
    echo "vigil fuzz: no target '$target'" >&2
    exit 64
  fi
done

# Runs one target for its time; its exit status goes to $WORK/$target.status.
fuzz_one() {  # target
  local target=$1
  local binary="$ROOT/$BUILD_DIR/fuzz/fuzz_$target"
  local new_corpus="$WORK/corpus/$target"
  local artifacts="$WORK/artifacts/$target"
  mkdir -p "$new_corpus" "$artifacts"
  # The first corpus folder receives new entries; the committed seeds are
  # only read.
  local status=0
  nice -n 10 "$binary" "$new_corpus" "$ROOT/fuzz/corpus/$target" \
    -dict="$(dictionary_of "$target")" \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=30 -rss_limit_mb=4096 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 \
    >"$WORK/$target.log" 2>&1 || status=$?
  echo "$status" >"$WORK/$target.status"
}

# The targets run $VIGIL_FUZZ_JOBS at a time (default: one per core; each
# libFuzzer process uses one), then each is reported in order.
JOBS="${VIGIL_FUZZ_JOBS:-$(nproc)}"
running=0
for target in "${TARGETS[@]}"; do
  echo "== fuzz_$target: ${SECONDS_PER_TARGET}s (log $WORK/$target.log)"
  fuzz_one "$target" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

failed=()
for target in "${TARGETS[@]}"; do
  artifacts="$WORK/artifacts/$target"
  status=$(cat "$WORK/$target.status" 2>/dev/null || echo 1)
  echo "-- fuzz_$target:"
  grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$WORK/$target.log" || true
  reproducers=$(find "$artifacts" -type f | sort)
  if [ "$status" -ne 0 ] || [ -n "$reproducers" ]; then
    failed+=("$target")
    echo "!! fuzz_$target failed (exit $status); the report:" >&2
    first=$(grep -n -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|invariant broken' \
      "$WORK/$target.log" | cut -d: -f1 || true)
    sed -n "${first:-1},$((${first:-1} + 30))p" "$WORK/$target.log" >&2
    for r in $reproducers; do
      echo "!! reproducer: $r   (replay: $BUILD_DIR/fuzz/fuzz_$target $r)" >&2
    done
  fi
done

echo "vigil fuzz: scratch folder (new corpus entries, logs): $WORK"
if [ ${#failed[@]} -gt 0 ]; then
  echo "vigil fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "vigil fuzz: no findings in ${TARGETS[*]}"
