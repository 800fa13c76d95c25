#!/usr/bin/env python3
"""Follows Vigil's alert feed (AlertFeed.Subscribe, a server-streaming RPC)
and prints each event: its number, type, patient and the alert's summary.

Every event has a number that rises by one across the service, so the feed is
resumable: --after=N asks for every event after N (0: from the first), then
live events. Without --after only new events are sent. When the stream ends
with UNAVAILABLE (the server is shutting down: "subscribe again elsewhere") or
RESOURCE_EXHAUSTED (this subscriber fell behind, or the server has no free
subscription slot), the subscriber reconnects with exponential backoff and
resumes after the last event number it saw, so it loses and repeats nothing.
Heartbeats on an idle stream carry the service's latest event number; having
seen every matching event up to it, the subscriber resumes after it.

    PYTHONPATH=gen python3 feed_subscriber.py --target 127.0.0.1:50051
    PYTHONPATH=gen python3 feed_subscriber.py --after 0 --max_events 10
    PYTHONPATH=gen python3 feed_subscriber.py --after 41 --seconds 30 --patient ward-3-bed-12

Events go to stdout, one a line:
    event 7  RAISED  patient ward-3-bed-12  MAJOR  DRUG_INTERACTION  Ibuprofen with ...  (al-...)
Connection notes (subscribed, reconnecting, heartbeats with --show_heartbeats)
go to stderr.

Exit status: 0 after --max_events events, after --seconds, or on Ctrl-C; 1
when the server refuses the subscription (a bad request, no token, no role)
or --max_retries reconnections failed; 2 on a usage error.
"""

from __future__ import annotations

import argparse
import random
import re
import signal
import sys
import threading
import time
from typing import Iterable, List, Optional

import grpc

import vigil_common
from vigil.v1 import alert_feed_pb2, alert_feed_pb2_grpc

# Status codes after which the subscription is resumed (elsewhere, or later).
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
RESUME_POINT = re.compile(r"after_event_number=(\d+)")
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 15.0


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    vigil_common.add_connection_args(parser)
    parser.add_argument(
        "--after",
        type=int,
        default=None,
        metavar="N",
        help="resume: every event after event number N (0: from the first), then live events; "
        "default: only events written from now on",
    )
    parser.add_argument("--max_events", type=int, default=0, metavar="N", help="stop after N events (0: no limit)")
    parser.add_argument("--seconds", type=float, default=0, metavar="S", help="stop after S seconds (0: no limit)")
    parser.add_argument("--patient", action="append", default=[], metavar="ID", help="only this patient's events (repeatable)")
    parser.add_argument(
        "--min_severity", type=vigil_common.parse_severity, default=0, help="only alerts at this severity or higher (e.g. major)"
    )
    parser.add_argument("--heartbeat", type=int, default=0, metavar="S", help="heartbeat interval asked for, 1-300 s (0: the server's 15)")
    parser.add_argument(
        "--max_events_per_message", type=int, default=0, metavar="N", help="let the server batch up to N events a message (0: one)"
    )
    parser.add_argument("--show_heartbeats", action="store_true", help="note heartbeats on stderr")
    parser.add_argument(
        "--max_retries", type=int, default=0, metavar="N", help="give up after N reconnections in a row fail (0: never)"
    )
    args = parser.parse_args(argv)
    if args.after is not None and args.after < 0:
        parser.error("--after must be 0 or more")
    return args


def note(text: str) -> None:
    """A connection note, on stderr."""
    print(f"# {text}", file=sys.stderr, flush=True)


class Subscriber:
    """Follows the feed across reconnections, remembering where to resume."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        # The event number to resume after; None: live only (nothing seen yet).
        self.resume_after: Optional[int] = args.after
        self.printed = 0
        self.deadline = time.monotonic() + args.seconds if args.seconds > 0 else None
        self.call: Optional[grpc.Call] = None
        self.last_message = time.monotonic()
        # Why the watchdog cancelled the call in flight: "deadline", "silent" or "".
        self.cancel_reason = ""
        # A stream silent for this long (no event, no heartbeat) is dead.
        self.silence_limit = 2.0 * (args.heartbeat or 15) + 5.0

    def request(self) -> alert_feed_pb2.SubscribeRequest:
        """The Subscribe request, resuming after the last event seen."""
        request = alert_feed_pb2.SubscribeRequest(
            patient_ids=self.args.patient,
            min_severity=self.args.min_severity,
            heartbeat_interval_seconds=self.args.heartbeat,
            max_events_per_message=self.args.max_events_per_message,
        )
        if self.resume_after is not None:
            # A proto3 `optional` field: absent means "live only", 0 means "from the first".
            request.after_event_number = self.resume_after
        return request

    def remaining(self) -> Optional[float]:
        """Seconds left before --seconds is up; None without --seconds."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def done(self) -> bool:
        """True once --max_events events were printed or --seconds are up."""
        if self.args.max_events > 0 and self.printed >= self.args.max_events:
            return True
        remaining = self.remaining()
        return remaining is not None and remaining <= 0

    def position(self) -> str:
        """Where the next subscription starts, for the notes."""
        return "live" if self.resume_after is None else f"after event {self.resume_after}"

    def handle(self, message: alert_feed_pb2.SubscribeResponse) -> None:
        """Prints one event or notes a heartbeat, and moves the resume point."""
        which = message.WhichOneof("payload")
        if which == "heartbeat":
            # Every matching event up to the heartbeat's number was delivered.
            if self.resume_after is None or message.event_number > self.resume_after:
                self.resume_after = message.event_number
            if self.args.show_heartbeats:
                note(f"heartbeat: latest event {message.event_number}")
            return
        if which == "batch":
            for event in message.batch.events:
                if self.done():
                    return
                self.handle(event)
            return
        if which != "alert_event":
            return
        if self.resume_after is not None and message.event_number <= self.resume_after:
            return  # Already seen (cannot happen with a server that keeps its promise).
        event = message.alert_event
        alert = event.alert
        kind = alert_feed_pb2.AlertEventType.Name(event.type).removeprefix("ALERT_EVENT_TYPE_")
        summary = "(erased: the patient was deleted)" if event.erased else alert.summary
        print(
            f"event {message.event_number}  {kind}  patient {event.patient_id}  "
            f"{vigil_common.severity_label(alert.severity)}  {vigil_common.kind_label(alert.kind)}  {summary}  ({alert.id})",
            flush=True,
        )
        self.resume_after = message.event_number
        self.printed += 1

    def watch(self, call: grpc.Call) -> None:
        """Cancels `call` when --seconds are up, or when the stream has been
        silent (no event, no heartbeat) for longer than two heartbeat
        intervals: a connection lost without a status is noticed too."""
        while call.is_active():
            remaining = self.remaining()
            if remaining is not None and remaining <= 0:
                self.cancel_reason = "deadline"
                call.cancel()
                return
            if time.monotonic() - self.last_message > self.silence_limit:
                self.cancel_reason = "silent"
                call.cancel()
                return
            time.sleep(0.1)

    def follow_once(self) -> None:
        """One subscription on a new channel: prints its messages until it
        ends, or until done. Raises grpc.RpcError when the stream fails."""
        # A new channel for each subscription, so that a resume goes wherever
        # the target leads now ("subscribe again elsewhere"). Retries are off:
        # a call refused by a server going away fails at once, and this loop
        # resumes it.
        with vigil_common.open_channel(self.args, [("grpc.enable_retries", 0)]) as channel:
            stub = alert_feed_pb2_grpc.AlertFeedStub(channel)
            self.cancel_reason = ""
            self.last_message = time.monotonic()
            self.call = stub.Subscribe(self.request(), metadata=vigil_common.call_metadata(self.args))
            threading.Thread(target=self.watch, args=(self.call,), daemon=True).start()
            note(f"subscribed to {self.args.target} ({self.position()})")
            messages: Iterable[alert_feed_pb2.SubscribeResponse] = self.call
            for message in messages:
                self.last_message = time.monotonic()
                self.handle(message)
                if self.done():
                    self.call.cancel()
                    return

    def run(self) -> int:
        """Follows the feed until done; the exit status."""
        backoff = FIRST_BACKOFF_SECONDS
        failures = 0
        while not self.done():
            printed_before = self.printed
            resume_before = self.resume_after
            try:
                self.follow_once()
                if self.done():
                    break
                # The server ended the stream with OK (it does not): resume, after a pause.
                code, details = None, "the stream ended"
            except grpc.RpcError as error:
                code = error.code() if isinstance(error, grpc.Call) else None
                details = error.details() if isinstance(error, grpc.Call) else str(error)
                if code == grpc.StatusCode.CANCELLED and self.cancel_reason == "deadline":
                    break  # --seconds are up.
                if code == grpc.StatusCode.CANCELLED and self.cancel_reason == "silent":
                    details = f"no event or heartbeat for {self.silence_limit:.0f} s"
                elif code not in RETRYABLE:
                    print(f"error: Subscribe failed: {vigil_common.describe_error(error)}", file=sys.stderr)
                    return vigil_common.EXIT_ERROR
                if self.resume_after is None:
                    # Nothing seen yet: take the resume point the server names, if any.
                    found = RESUME_POINT.search(details or "")
                    if found:
                        self.resume_after = int(found.group(1))
            if self.printed > printed_before or self.resume_after != resume_before:
                backoff, failures = FIRST_BACKOFF_SECONDS, 0  # The stream made progress.
            failures += 1
            if self.args.max_retries > 0 and failures > self.args.max_retries:
                print(f"error: giving up after {self.args.max_retries} reconnections: {details}", file=sys.stderr)
                return vigil_common.EXIT_ERROR
            wait = backoff * random.uniform(0.8, 1.2)
            remaining = self.remaining()
            if remaining is not None:
                wait = min(wait, remaining)
            note(f"stream ended: {code.name if code else 'OK'}: {details}; reconnecting in {wait:.1f} s ({self.position()})")
            time.sleep(wait)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        resume = self.resume_after if self.resume_after is not None else "N"
        note(f"done: {self.printed} event(s); resume with --after={resume}")
        return vigil_common.EXIT_OK

    def stop(self) -> None:
        """Cancels the stream in flight (on SIGTERM or Ctrl-C)."""
        if self.call is not None:
            self.call.cancel()


def interrupt(signum: int, frame: object) -> None:
    """SIGTERM handler: stops like Ctrl-C."""
    raise KeyboardInterrupt


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point."""
    args = parse_args(argv)
    subscriber = Subscriber(args)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        return subscriber.run()
    except KeyboardInterrupt:
        subscriber.stop()
        resume = subscriber.resume_after if subscriber.resume_after is not None else "N"
        note(f"interrupted after {subscriber.printed} event(s); resume with --after={resume}")
        return vigil_common.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
