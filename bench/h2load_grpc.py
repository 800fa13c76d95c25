#!/usr/bin/env python3
"""Measures the server from outside gRPC's C++ client, as issue 18's authors did.

h2load (Debian's nghttp2-client) posts the gRPC-framed requests that
`vigil-bench --write_requests=DIR` wrote, for the floor (the health check), the
streamed check and the unary check, in alternating rounds on the same
connections settings. The load generator is then the same small cost for every
workload, so what differs between them is the server.

h2load cannot read gRPC statuses (they travel in trailers). Each answer's size
is known from the manifest, so a workload whose bytes per call fall short of
it (an error is a few bytes) fails the run instead of being measured.

With --server_pid (the server runs on this machine), it also reads the
server's CPU time (every thread, from /proc) around each run and reports the
server's CPU per call, and the audit trail writer's share (the thread named
vigil-audit): a measure of each workload's cost that does not depend on how the
two cores happened to be shared at the moment of a call.

  h2load_grpc.py --server=127.0.0.1:50051 --requests=DIR --connections=1 --streams=1 --seconds=10 --rounds=5
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile


WARM_UP_SECONDS = 0.2


def server_cpu(pid):
    """(CPU seconds of every thread of `pid`, of its audit writer), user and system."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = audit = 0
    task_dir = f"/proc/{pid}/task"
    for tid in os.listdir(task_dir):
        try:
            with open(f"{task_dir}/{tid}/stat") as f:
                stat = f.read()
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        # The name is in parentheses and may hold spaces; the counters follow.
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        used = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        total += used
        if name == "vigil-audit":
            audit += used
    return total / ticks, audit / ticks


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]


def run_h2load(args, path, body, seconds, log):
    command = [
        "h2load", f"http://{args.server}{path}", "-d", body,
        "-H", "content-type: application/grpc", "-H", "te: trailers",
        "-c", str(args.connections), "-m", str(args.streams), "-t", "1",
        "-D", f"{max(1, round(seconds * 1000))}ms", "--warm-up-time", f"{round(WARM_UP_SECONDS * 1000)}ms",
        f"--log-file={log}",
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"h2load_grpc: h2load failed ({out.returncode}): {out.stderr or out.stdout}")
    return out.stdout


def parse_run(stdout, log):
    """(latencies in us, seconds measured, bytes received, requests failed, requests done).

    The log and the counts cover the main period (not the warm-up); h2load's
    "traffic: ... total" does too, while its "data" figure counts the warm-up."""
    latencies = []
    # The log holds the main period's requests (not the warm-up's).
    with open(log) as f:
        for line in f:
            fields = line.split("\t")
            if len(fields) >= 3 and fields[1] == "200":
                latencies.append(float(fields[2]))
    rate = float(re.search(r"finished in \S+, ([0-9.]+) req/s", stdout).group(1))
    requests = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", stdout)
    done = int(requests.group(1))
    received = int(re.search(r"traffic: \S+ \((\d+)\) total", stdout).group(1))
    return latencies, done / rate if rate > 0 else 0.0, received, int(requests.group(3)), done


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--requests", required=True, help="directory written by vigil-bench --write_requests")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--streams", type=int, default=1, help="concurrent streams per connection")
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds per workload")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--server_pid", type=int, default=0, help="the server's pid, to report its CPU per call")
    args = parser.parse_args()
    if shutil.which("h2load") is None:
        sys.exit("h2load_grpc: h2load is not installed (Debian's nghttp2-client; scripts/install-deps.sh installs it)")

    workloads = []
    with open(os.path.join(args.requests, "workloads.tsv")) as f:
        for line in f:
            name, path, body, answer_bytes = line.rstrip("\n").split("\t")
            workloads.append((name, path, os.path.join(args.requests, body), int(answer_bytes)))
    results = {name: {"latencies": [], "seconds": 0.0, "data": 0, "calls": 0, "failed": 0, "cpu": 0.0, "audit": 0.0,
                      "cpu_calls": 0.0}
               for name, _, _, _ in workloads}
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(args.rounds):
            order = workloads if round_index % 2 == 0 else list(reversed(workloads))
            for name, path, body, _ in order:
                log = os.path.join(tmp, f"{name}-{round_index}.log")  # h2load appends to a log
                before = server_cpu(args.server_pid) if args.server_pid else (0.0, 0.0)
                stdout = run_h2load(args, path, body, args.seconds / args.rounds, log)
                after = server_cpu(args.server_pid) if args.server_pid else (0.0, 0.0)
                latencies, seconds, data, failed, done = parse_run(stdout, log)
                r = results[name]
                r["cpu"] += after[0] - before[0]
                r["audit"] += after[1] - before[1]
                # The CPU covers the warm-up too, whose calls h2load does not
                # count: they are taken at the measured rate.
                r["cpu_calls"] += done * (seconds + WARM_UP_SECONDS) / seconds if seconds > 0 else 0
                r["latencies"] += latencies
                r["seconds"] += seconds
                r["data"] += data
                r["calls"] += done
                r["failed"] += failed

    print(f"h2load: server {args.server}, {args.connections} connections x {args.streams} streams, "
          f"{args.seconds:g} s each in {args.rounds} alternating rounds")
    ok = True
    for name, _, _, answer_bytes in workloads:
        r = results[name]
        r["latencies"].sort()
        per_call = r["data"] / max(1, r["calls"])
        # What a call received: its answer's gRPC messages (the manifest's
        # bytes) and a few bytes of compressed headers and frames.
        full = r["failed"] == 0 and per_call >= 0.98 * answer_bytes
        ok = ok and full
        print(f"{name:8s}  {len(r['latencies']) / r['seconds']:9.0f} req/s  p50 {percentile(r['latencies'], 0.5):8.1f} us  "
              f"p90 {percentile(r['latencies'], 0.9):8.1f} us  p99 {percentile(r['latencies'], 0.99):8.1f} us  "
              f"({len(r['latencies'])} calls, {per_call:.0f} bytes received each{'' if full else ', SHORT: errors'})")
        if args.server_pid:
            calls = max(1.0, r["cpu_calls"])
            print(f"{'':8s}  server CPU per call {1e6 * r['cpu'] / calls:6.1f} us, "
                  f"of which the audit writer {1e6 * r['audit'] / calls:5.1f} us")

    def ratio(a, b):
        ra, rb = results[a], results[b]
        la, lb = ra["latencies"], rb["latencies"]
        cpu = ""
        if args.server_pid and ra["cpu_calls"] > 0 and rb["cpu_calls"] > 0 and rb["cpu"] > 0:
            cpu = f"  server CPU per call {(ra['cpu'] / ra['cpu_calls']) / (rb['cpu'] / rb['cpu_calls']):.2f}"
        print(f"ratio {a}/{b}: p50 {percentile(la, 0.5) / percentile(lb, 0.5):.2f}  "
              f"p99 {percentile(la, 0.99) / percentile(lb, 0.99):.2f}  "
              f"throughput {(len(la) / ra['seconds']) / (len(lb) / rb['seconds']):.2f}{cpu}")

    ratio("stream", "health")
    ratio("unary", "health")
    ratio("stream", "unary")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
