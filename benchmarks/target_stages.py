"""Where the reference target's CPU goes per event, stage by stage, in one process: a benchmark, never a test.

Run from the repository root::

    .venv/bin/python -m benchmarks.target_stages                  # 50-event messages, SQLite, --sync full
    .venv/bin/python -m benchmarks.target_stages --store memory --events 10

The messages are ``make perf-target``'s (``benchmarks.target``: 16 devices, unique ids, an init first). Each
message goes through what the target does with it, without the network: ``parse_envelope`` (parse),
``Ingest.accept`` (accept), then, every ``--group`` messages, one group commit of their rows
(``SqliteStore._commit``, as the writer thread calls it) and ``Ingest.settle`` of each (store); with
``--store memory``, ``MemoryStore.write`` and ``settle`` per message. The figures are CPU-ns per event of
each stage (``time.thread_time_ns``), medians of ``--rounds`` rounds with their spread, and the part of them
the cyclic garbage collector took (``gc.callbacks``), with the target's own collector threshold when its
``bench.target.server`` sets one. The duplicate window fills as in a long run: the rounds share one
``Ingest``.

Another tree's target (e.g. the last commit's) is measured by putting it first on the path; the first line
names the ``bench`` package measured::

    git archive HEAD bench | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before:. .venv/bin/python -P -m benchmarks.target_stages
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from typing import Any

import bench
from bench.protocol.message import parse_envelope
from bench.target import server
from bench.target.ingest import Ingest
from bench.target.store import MemoryStore, SqliteStore
from benchmarks.target import _Source

STAGES = ("parse", "accept", "store")


class _GcClock:
    """CPU time the collector takes in this thread, from ``gc.callbacks``."""

    def __init__(self) -> None:
        self.ns = 0
        self._start = 0
        gc.callbacks.append(self._on)

    def _on(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.thread_time_ns()
        else:
            self.ns += time.thread_time_ns() - self._start


def _round(sources: list[_Source], ingest: Ingest, store: SqliteStore | MemoryStore, messages: int,
           group: int) -> dict[str, int]:
    """One round of ``messages``: CPU-ns spent in each stage."""
    data = [sources[i % len(sources)].message() for i in range(messages)]
    spent = dict.fromkeys(STAGES, 0)
    pending: list[Any] = []
    clock = time.thread_time_ns
    for body in data:
        t0 = clock()
        envelope = parse_envelope(body)
        t1 = clock()
        outcome = ingest.accept("perf-stages-app-00000000", envelope, received_ms=time.time() * 1000.0,
                                now_ns=time.monotonic_ns())
        del envelope
        t2 = clock()
        if isinstance(store, MemoryStore):
            store.write(outcome.rows)
            ingest.settle(outcome, None)
        else:
            pending.append(outcome)
            if len(pending) >= group:
                store._commit([row for done in pending for row in done.rows])  # as the writer thread does
                for done in pending:
                    ingest.settle(done, None)
                pending = []
        t3 = clock()
        spent["parse"] += t1 - t0
        spent["accept"] += t2 - t1
        spent["store"] += t3 - t2
    return spent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.target_stages",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50, help="events per message (default 50)")
    parser.add_argument("--messages", type=int, default=4000, help="messages per round (default 4000)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds; medians are shown (default 7)")
    parser.add_argument("--group", type=int, default=40, help="messages per group commit (default 40)")
    parser.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument("--sync", choices=("full", "normal", "off"), default="full")
    args = parser.parse_args(argv)
    if min(args.events, args.messages, args.rounds, args.group) < 1:
        print("benchmarks.target_stages: error: --events, --messages, --rounds and --group must be "
              "at least 1", file=sys.stderr)
        return 2
    threshold = getattr(server, "GC_THRESHOLD", None)
    if threshold is not None:
        gc.set_threshold(threshold, *gc.get_threshold()[1:])
    sync = f" --sync {args.sync}" if args.store == "sqlite" else ""
    print(f"bench from {os.path.dirname(bench.__file__)}; {args.events}-event messages, {args.store}{sync}, "
          f"{args.rounds} x {args.messages} messages, gc threshold {gc.get_threshold()[0]}", flush=True)
    sources = [_Source(conn, args.events) for conn in range(16)]
    ingest = Ingest(dedup_window_ns=600 * 1_000_000_000, session_timeout_ms=1_800_000.0,
                    now_ns=time.monotonic_ns())
    gc_clock = _GcClock()
    per_event: dict[str, list[float]] = {name: [] for name in (*STAGES, "total", "gc")}
    with tempfile.TemporaryDirectory(prefix="nucleus-stages-") as tmp:
        store: SqliteStore | MemoryStore = (SqliteStore(os.path.join(tmp, "stages.sqlite3"), sync=args.sync)
                                            if args.store == "sqlite" else MemoryStore())
        for _ in range(args.rounds):
            gc_before = gc_clock.ns
            spent = _round(sources, ingest, store, args.messages, args.group)
            events = args.messages * args.events
            for name in STAGES:
                per_event[name].append(spent[name] / events)
            per_event["total"].append(sum(spent.values()) / events)
            per_event["gc"].append((gc_clock.ns - gc_before) / events)
        if isinstance(store, SqliteStore):
            store._conn.close()  # the writer thread was never started
    for name, values in per_event.items():
        note = "  (of the stages above)" if name == "gc" else ""
        spread = f"[{min(values):,.0f}-{max(values):,.0f}]"
        print(f"  {name:<7} {statistics.median(values):7,.0f} CPU-ns/event  {spread}{note}")
    total = statistics.median(per_event["total"])
    print(f"  -> {1e9 / total:,.0f} events per CPU-second for these stages alone (no network, no event loop)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
