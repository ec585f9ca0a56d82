"""``run_transport``: one transport's run, in this process or sharded over several, merged exactly.

With ``processes > 1`` the fleet is split with ``Plan(shard=k, shards=n)`` and each shard runs in its own
process (multiprocessing with *spawn*: a clean interpreter with its own uvloop loop, no inherited sockets or
locks). A run that drives one slice of a distributed fleet (``--shard I/N``) splits its slice the same way:
process k runs shard ``I + N * k`` of ``N * n``, whose devices are the slice's d with ``(d // N) % n == k``.

Protocol between the parent and a child, all over one queue:

- child -> ``("ready", k)`` once set up; parent -> child pipe: the shared t=0 (absolute monotonic ns)
  once every child is ready, so all shards start together;
- child -> ``("progress", k, snapshot)`` about twice a second;
- child -> ``("result", k, result_json, reported_ids)`` at the end, or ``("error", k, kind, line)``.

The parent merges the children's ``TransportResult`` JSON in shard order (counters add, histograms add
bucket by bucket), which gives exactly what one process would have counted.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

from bench.metrics import Histogram
from bench.protocol.errors import BenchError, UsageError
from bench.protocol.events import EventId
from bench.results.transport import TransportResult, merge_all
from bench.runner.engine import RunConfig, raise_nofile_limit, run_shard
from bench.runner.stops import STOPS, sigterm_as_interrupt

#: How long children get to start (spawn + imports) before the parent gives up.
CHILD_START_TIMEOUT_S = 60.0
#: Lead from "everyone is ready" to t=0.
START_LEAD_NS = 200_000_000
#: How long the parent waits for the shards' figures after Ctrl-C.
INTERRUPT_WAIT_S = 30.0

ProgressFn = Callable[[dict[str, Any]], None]


def run_transport(config: RunConfig, *, progress: ProgressFn | None = None) -> TransportResult:
    """Run ``config.transport`` over the whole fleet and return the merged result (no reconciliation).

    This is the library entry point (the CLI and capacity search call it).

    Raises:
        UsageError: the configuration is refused (e.g. more processes than devices).
        RuntimeError: a child process failed (a harness bug; its one-line reason is in the message).
    """
    if config.processes < 1:
        raise UsageError(f"--processes must be at least 1, not {config.processes}")
    if config.processes == 1:
        return run_shard(config, shard=config.shard, shards=config.shards, progress=progress)
    if config.processes > (devices := config.slice_devices()):
        raise UsageError(f"--processes {config.processes} is more than the {devices} devices "
                         f"{'of the shard' if config.shards > 1 else ''}".rstrip())
    return _run_sharded(config, progress)


def _child(config: RunConfig, shard: int, shards: int, out: Any, start_pipe: Connection,
           with_progress: bool) -> None:
    """A child process: run one shard and ship its result back (JSON + the reported ids).

    Its messages name it by its place among the parent's children, ``k`` (its plan is shard ``shard`` of
    ``shards``: the same as ``k`` of ``processes`` unless the run itself drives one slice of the fleet).
    """
    k = (shard - config.shard) // config.shards
    # SIGTERM (from the parent, or to the whole group) ends the run's send phase while it runs (the engine
    # takes it over then); before and after, it is only noted, so it never kills a shard that is sending
    # its figures, and one that came during start-up stops the run as soon as it starts
    signal.signal(signal.SIGTERM, _note_stop)

    def ready() -> int:
        out.put(("ready", k))
        return int(start_pipe.recv())

    def progress(snapshot: dict[str, Any]) -> None:
        out.put(("progress", k, snapshot))

    try:
        result = run_shard(config, shard=shard, shards=shards, ready=ready,
                           progress=progress if with_progress else None)
    except UsageError as exc:
        out.put(("error", k, "usage", str(exc)))
        return
    except BaseException as exc:  # a harness bug in a child: report it in one line, never hang the parent
        out.put(("error", k, "bug", f"{type(exc).__name__}: {exc}"))
        raise
    ids: list[EventId] | None = result.reported_ids
    out.put(("result", k, result.to_json(), ids))


def _note_stop(signum: int, _frame: Any) -> None:
    STOPS.record(signum)


class ShardLostError(BenchError, RuntimeError):
    """A shard process ended before the load started: nothing was measured (exit status 4 of ``run``)."""


class _ShardDied(BenchError):
    """A shard process ended before it sent its figures (``_Children.lost`` says which and when)."""


class _Children:
    """The child processes of one sharded run and the parent's side of their protocol."""

    def __init__(self, config: RunConfig, progress: ProgressFn | None) -> None:
        self.n = config.processes
        self.progress = progress
        ctx = mp.get_context("spawn")
        self.queue: Any = ctx.Queue()
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for k in range(self.n):
            child_end, parent_end = ctx.Pipe(duplex=False)  # (receive end, send end)
            shard, shards = config.shard + config.shards * k, config.shards * self.n
            proc = ctx.Process(target=_child, name=f"nucleus-bench-shard-{k}",
                               args=(config, shard, shards, self.queue, child_end, progress is not None))
            self.pipes.append(parent_end)
            self.procs.append(proc)
        self.ready: set[int] = set()
        self.results: dict[int, TransportResult] = {}
        self.snapshots: dict[int, dict[str, Any]] = {}
        #: shard -> one line: which process ended, how and when, before it sent its figures
        self.lost: dict[int, str] = {}
        self._t0_ns: int | None = None

    def run(self) -> list[TransportResult]:
        """Every shard's result; a shard lost mid-run is in ``lost`` and the others' results are kept.

        Raises:
            KeyboardInterrupt: Ctrl-C or SIGTERM before the shards started (nothing was measured).
            ShardLostError: a shard process ended before the load started.
            RuntimeError: a shard failed (a harness bug; its one-line reason is in the message).
        """
        for proc in self.procs:
            proc.start()
        try:
            with sigterm_as_interrupt():  # SIGTERM to this process: the KeyboardInterrupt of a Ctrl-C
                self._start_and_collect()
        finally:
            for proc in self.procs:
                proc.join(timeout=10.0)
                if proc.is_alive():
                    proc.kill()  # our own child, by its handle (SIGTERM is only noted by a shard)
                    proc.join(timeout=5.0)
        return [self.results[k] for k in sorted(self.results)]

    def _start_and_collect(self) -> None:
        """Wait for every shard to be ready, give them one t=0, then collect their figures (``run``)."""
        try:
            self._wait(lambda: len(self.ready) == self.n, CHILD_START_TIMEOUT_S, "start")
        except _ShardDied:
            self._signal_all()
            raise ShardLostError(next(iter(self.lost.values()))) from None
        except KeyboardInterrupt:
            self._signal_all()
            raise
        self._t0_ns = time.monotonic_ns() + START_LEAD_NS
        for pipe in self.pipes:
            pipe.send(self._t0_ns)
        try:
            self._wait(self._all_reported, None, "finish")
        except (KeyboardInterrupt, _ShardDied):
            # Ctrl-C (it reached the shards too when typed at a terminal), SIGTERM to this process, or a
            # shard gone: every shard still running is stopped as by Ctrl-C and sends what it measured
            self._signal_all()
            self._collect_after_stop()

    def _all_reported(self) -> bool:
        return len(self.results) + len(self.lost) == self.n

    def _signal_all(self) -> None:
        """SIGTERM to every shard still running (our own children, by PID): each ends as on Ctrl-C."""
        for k, proc in enumerate(self.procs):
            if k not in self.results and proc.pid is not None and proc.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)

    def _collect_after_stop(self) -> None:
        """Wait for the stopped shards' figures; one that never sends them is lost, the rest are kept."""
        deadline = time.monotonic() + INTERRUPT_WAIT_S
        while not self._all_reported():
            try:
                self._wait(self._all_reported, max(0.0, deadline - time.monotonic()), "finish after a stop")
            except _ShardDied:
                continue  # recorded in lost; keep collecting the others
            except RuntimeError:  # out of time: whoever has not reported is lost
                for k in range(self.n):
                    if k not in self.results and k not in self.lost:
                        self.lost[k] = (f"shard {k} (pid {self.procs[k].pid}) sent no figures within "
                                        f"{INTERRUPT_WAIT_S:g} s of the stop")
                return
            except KeyboardInterrupt:  # another Ctrl-C: stop waiting, keep what came
                for k in range(self.n):
                    if k not in self.results and k not in self.lost:
                        self.lost[k] = f"shard {k} (pid {self.procs[k].pid}) was abandoned by a second Ctrl-C"
                return

    def _wait(self, done: Callable[[], bool], timeout_s: float | None, what: str) -> None:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not done():
            try:
                message = self.queue.get(timeout=0.5)
            except queue_mod.Empty:
                self._note_deaths(what)
                if deadline is not None and time.monotonic() > deadline:
                    raise RuntimeError(f"shard processes did not {what} within {timeout_s:g} s") from None
                continue
            self._handle(message)

    def _note_deaths(self, what: str) -> None:
        """Record every shard that ended without its figures; raise ``_ShardDied`` if there is a new one."""
        new = False
        for k, proc in enumerate(self.procs):
            if k in self.results or k in self.lost or proc.exitcode in (None, 0):
                continue
            self.lost[k] = (f"shard {k} (pid {proc.pid}) {_how(proc.exitcode)}{self._when()} before it "
                            f"could {what}")
            new = True
        if new:
            raise _ShardDied

    def _when(self) -> str:
        if self._t0_ns is None:
            return ""
        return f" {max(0.0, (time.monotonic_ns() - self._t0_ns) / 1e9):.1f} s into the run"

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind, shard = message[0], message[1]
        if kind == "ready":
            self.ready.add(shard)
        elif kind == "progress":
            self.snapshots[shard] = message[2]
            if self.progress is not None:
                self.progress(merge_snapshots(list(self.snapshots.values())))
        elif kind == "result":
            self.results[shard] = TransportResult.from_json(message[2], reported_ids=message[3])
        elif kind == "error":
            if message[2] == "usage":
                raise UsageError(message[3])
            raise RuntimeError(f"shard {shard}: {message[3]}")


def _how(exitcode: int) -> str:
    """How a process ended, from its exit code (negative: the signal that killed it)."""
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"was killed by {name}"
    return f"exited with status {exitcode}"


def merge_snapshots(snaps: list[dict[str, Any]]) -> dict[str, Any]:
    """Progress of several shards: counters summed, percentiles the worst shard's (an upper bound), and
    the latency histograms, where the snapshots carry them (``--metrics-port``), added exactly."""
    out: dict[str, Any] = {"t": max(s["t"] for s in snaps)}
    for key in ("sent", "acked", "lost", "rejected", "in_flight", "errors"):
        out[key] = sum(s[key] for s in snaps)
    for key in ("p50", "p99", "lag_p99"):
        out[key] = max(s[key] for s in snaps)
    for key in ("p50_1s", "p99_1s"):  # None in a shard with no ack in its last second
        out[key] = max((s[key] for s in snaps if s.get(key) is not None), default=None)
    for key in ("corrected", "raw"):
        parts = [s[key] for s in snaps if key in s]
        if parts:
            out[key] = functools.reduce(_added, parts[1:], parts[0].copy())
    return out


def _added(into: Histogram, other: Histogram) -> Histogram:
    into.merge(other)
    return into


def _run_sharded(config: RunConfig, progress: ProgressFn | None) -> TransportResult:
    raise_nofile_limit()
    children = _Children(config, progress)
    results = children.run()
    merged = merge_all(results) if results else TransportResult.empty(config.transport)
    if children.lost:
        lost = [children.lost[k] for k in sorted(children.lost)]
        merged = replace(merged, lost_processes=lost, interrupted=True, planned_events=None)
    return merged
