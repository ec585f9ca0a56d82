"""Micro-benchmark of the ack tracker's hot path: ``python -m benchmarks.tracker_cost``.

Prints the tracking overhead in µs per event for ``on_send`` + ``on_ws_ack`` (+ ``fold`` and ``expire``
about every 100k events, as the runner calls them about once a second), for WebSocket messages of 1 and
10 events and for 100-event HTTP batches. Replies are fresh tuples of fresh ints, as ``parse_ack``
returns them, so the tuple comparison of the fast path does real work. A benchmark, never a test.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import orjson

from bench.metrics.tracker import AckTracker

EventIds = tuple[int, ...]


class Sink(Protocol):
    def on_send(self, conn: int, ids: Sequence[int], intended_ns: int, actual_ns: int,
                created_ns: Sequence[int]) -> int: ...
    def on_ws_ack(self, conn: int, reported: Sequence[int], now_ns: int) -> None: ...
    def on_http_reply(self, conn: int, token: int, reported: Sequence[int], now_ns: int) -> None: ...
    def fold(self) -> None: ...
    def expire(self, now_ns: int) -> int: ...


class NullSink:
    """Does nothing: running the same loop with it measures the loop's own cost, subtracted."""

    def on_send(self, conn: int, ids: Sequence[int], intended_ns: int, actual_ns: int,
                created_ns: Sequence[int]) -> int:
        return 0

    def on_ws_ack(self, conn: int, reported: Sequence[int], now_ns: int) -> None:
        pass

    def on_http_reply(self, conn: int, token: int, reported: Sequence[int], now_ns: int) -> None:
        pass

    def fold(self) -> None:
        pass

    def expire(self, now_ns: int) -> int:
        return 0


def _tracker() -> AckTracker:
    return AckTracker(timeout_ns=30_000_000_000)


def _workload(events: int, per_message: int, conns: int, seed: int) -> list[tuple[int, EventIds, EventIds]]:
    """(conn, ids, reported) per message; ids random 53-bit ints like the official modules'."""
    rng = random.Random(seed)
    out = []
    for m in range(events // per_message):
        ids = tuple(rng.getrandbits(53) for _ in range(per_message))
        reported = tuple(orjson.loads(orjson.dumps(ids)))  # new objects, as parse_ack makes them
        out.append((m % conns, ids, reported))
    return out


def run_ws(tracker: Sink, work: list[tuple[int, EventIds, EventIds]], per_message: int, *,
           conns: int = 1000, in_flight: int = 4, fold_every: int = 100_000) -> int:
    """ns for the whole workload: each connection has ``in_flight`` messages unanswered, acked in order."""
    lag = conns * in_flight
    now = 0
    next_fold = fold_every
    start = time.perf_counter_ns()
    for k, (conn, ids, _) in enumerate(work):
        now += 10_000
        tracker.on_send(conn, ids, now - 500, now, (now - 500,) * len(ids))
        if k >= lag:
            back_conn, _, reported = work[k - lag]
            tracker.on_ws_ack(back_conn, reported, now)
        if k * per_message >= next_fold:
            tracker.fold()
            tracker.expire(now)
            next_fold += fold_every
    for conn, _, reported in work[max(0, len(work) - lag):]:
        tracker.on_ws_ack(conn, reported, now)
    tracker.fold()
    tracker.expire(now)
    return time.perf_counter_ns() - start


def run_http(tracker: Sink, work: list[tuple[int, EventIds, EventIds]], per_message: int) -> int:
    """ns for the whole workload of ``on_send`` + ``on_http_reply``, one request in flight per conn."""
    now = 0
    created = tuple(range(per_message))
    start = time.perf_counter_ns()
    for conn, ids, reported in work:
        now += 10_000
        token = tracker.on_send(conn, ids, now, now, created)
        tracker.on_http_reply(conn, token, reported, now + 5_000)
    tracker.fold()
    tracker.expire(now)
    return time.perf_counter_ns() - start


Runner = Callable[[Sink, list[tuple[int, EventIds, EventIds]], int], int]


def measure(run: Runner, events: int, per_message: int, repeat: int) -> tuple[float, float]:
    """(tracker µs per event net of the loop, the loop's own µs per event), best of ``repeat``."""
    work = _workload(events, per_message, 1000, seed=per_message)
    n = len(work) * per_message
    loop = min(run(NullSink(), work, per_message) for _ in range(repeat))
    best = 1 << 62
    for _ in range(repeat):
        tracker = _tracker()
        best = min(best, run(tracker, work, per_message))
        acc = tracker.accounting()
        assert tracker.acked == n and acc.ok and not acc.in_flight, acc.line()
    return (best - loop) / 1000 / n, loop / 1000 / n


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tracker_cost",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=400_000, help="events per case (default 400k)")
    parser.add_argument("--repeat", type=int, default=3, help="best of N (default 3)")
    args = parser.parse_args()
    cases: tuple[tuple[str, Runner, int], ...] = (
        ("ws, 1 event/message", run_ws, 1), ("ws, 10 events/message", run_ws, 10),
        ("http, 100 events/request", run_http, 100))
    print(f"tracking overhead per event (on_send + ack + fold + expire), best of {args.repeat}, "
          f"{args.events} events, net of the driving loop:")
    for name, run, per_message in cases:
        net, loop = measure(run, args.events, per_message, args.repeat)
        print(f"  {name:26s} {net:6.3f} µs/event   (driving loop alone: {loop:.3f} µs/event)")


if __name__ == "__main__":
    main()
