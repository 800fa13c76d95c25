#!/usr/bin/env python3
"""Whether the audit trail's writer keeps up with saturated checks.

Every check writes one audit record, off the call's path: the writer thread
(vigil-audit) commits them in groups. If it is slower than the checks, records
wait in the server's memory, and past 100,000 the oldest are dropped. This posts
the unary check that `vigil-bench --write_requests=DIR` wrote with h2load
(4 connections x 8 streams) for --seconds, then reads the server's
`vigil_audit_records` metric: how many of the checks' records were written when
the load stopped, and how long the rest took. It also reports the writer's CPU
per record (from /proc; the server runs on this machine). h2load counts the
calls completed within --seconds; the server also writes the records of the few
calls still in flight when it stopped, so "written" can exceed the checks by up
to the number of streams.

  audit_keepup.py --server=127.0.0.1:50051 --metrics=127.0.0.1:9090 --server_pid=PID --requests=DIR
"""
import argparse
import os
import re
import subprocess
import sys
import time
import urllib.request

from h2load_grpc import server_cpu


def audit_records(metrics):
    """The vigil_audit_records counters, by result."""
    with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {m.group(1): int(float(m.group(2)))
            for m in re.finditer(r'^vigil_audit_records\{result="(\w+)"\} (\S+)$', text, re.MULTILINE)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--metrics", required=True, help="the server's --metrics_listen address")
    parser.add_argument("--server_pid", type=int, required=True)
    parser.add_argument("--requests", required=True, help="directory written by vigil-bench --write_requests")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--label", default="")
    args = parser.parse_args()

    before = audit_records(args.metrics)
    cpu_before = server_cpu(args.server_pid)[1]
    command = ["h2load", f"http://{args.server}/vigil.v1.DecisionSupport/CheckMedicationsUnary",
               "-d", os.path.join(args.requests, "unary.grpc"),
               "-H", "content-type: application/grpc", "-H", "te: trailers",
               "-c", "4", "-m", "8", "-t", "1", "-D", f"{round(args.seconds * 1000)}ms"]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    at_end = audit_records(args.metrics)
    stopped = time.monotonic()
    if out.returncode != 0:
        sys.exit(f"audit_keepup: h2load failed ({out.returncode}): {out.stderr or out.stdout}")
    done = int(re.search(r"requests: \d+ total, \d+ started, (\d+) done", out.stdout).group(1))
    rate = float(re.search(r"finished in \S+, ([0-9.]+) req/s", out.stdout).group(1))

    # Every check's record, written or dropped: wait for all of them (60 s at most).
    expected = before.get("written", 0) + before.get("dropped", 0) + done
    now = at_end
    while now.get("written", 0) + now.get("dropped", 0) < expected and time.monotonic() - stopped < 60:
        time.sleep(0.1)
        now = audit_records(args.metrics)
    caught_up = time.monotonic() - stopped
    cpu = server_cpu(args.server_pid)[1] - cpu_before
    written_at_end = at_end.get("written", 0) - before.get("written", 0)
    written = now.get("written", 0) - before.get("written", 0)
    dropped = now.get("dropped", 0) - before.get("dropped", 0)
    settled = written + dropped >= done
    print(f"{args.label or 'checks'}: {rate:.0f} checks/s for {args.seconds:g} s; audit records written when the load "
          f"stopped: {written_at_end} of {done} ({100.0 * written_at_end / max(1, done):.0f}%); all settled "
          f"{'after %.1f s' % caught_up if settled else 'NOT within 60 s'}; dropped {dropped}; writer CPU "
          f"{1e6 * cpu / max(1, written):.1f} us per record")
    return 0 if settled and dropped == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
