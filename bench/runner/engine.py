"""Run one transport's plan in this process: scheduler, transport, tracker, bookkeeping, drain.

Theory of operation: time zero of the run is an absolute ``time.monotonic_ns()`` value that every
process of a sharded run shares (CLOCK_MONOTONIC is system-wide), so the ramp and every intended time
line up across processes. The run has three phases:

1. **send**: the scheduler executes the plan; the monitor folds latencies and expires timed-out events
   once a second and records one row of the per-second series.
2. **drain**: sending has stopped (HTTP posts the batches still queued); wait until nothing is in flight
   or the ack timeout has passed since the end of the send phase.
3. **finish**: never-written events are handed to the tracker (they end as lost), ``tracker.finish``
   counts whatever is still pending as lost, connections close.

Generator self-monitoring (issue 7): schedule lag per send, event-loop lag every 100 ms, and the process's
CPU share of one core during the send phase decide ``generator.saturated``.
"""

from __future__ import annotations

import asyncio
import gc
import resource
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from bench.fleet import Plan
from bench.metrics import AckTracker, Histogram, SecondSeries, SeriesRows
from bench.protocol.message import Transport
from bench.results.saturation import process_reasons
from bench.results.transport import TransportResult
from bench.runner.scheduler import Monitor, Scheduler
from bench.runner.stops import STOPS
from bench.scenario import Scenario
from bench.transports.clients import ClientQueue
from bench.transports.common import TransportOptions, TransportStats
from bench.transports.http import HttpTransport, http_url
from bench.transports.ws import WsTransport, ws_url

#: Poll period of the drain (nothing in flight yet?). Bounded by the ack timeout.
DRAIN_POLL_S = 0.01
#: How long before time zero a process gets to set up (connect pools, warm imports).
DEFAULT_LEAD_NS = 50_000_000

ProgressFn = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class RunConfig:
    """One transport's run against one target: what ``run_transport`` needs, all of it picklable.

    Attributes:
        scenario: the validated scenario, overrides applied.
        transport: "ws" or "http".
        target_url: the server's base URL, ``http(s)://host:port``.
        app_id: the app the events go to.
        options: TLS, source addresses, concurrency.
        processes: shards of this run's slice of the fleet, one process each.
        shard, shards: the slice of the fleet this run drives (``run --shard I/N``): the devices d with
            d % shards == shard, the same slice ``--processes N`` gives its process I. With processes M
            the slice is split further: process k runs shard ``shard + shards * k`` of ``shards * M``.
        live_histograms: progress snapshots carry copies of the latency histograms (``--metrics-port``).
    """

    scenario: Scenario
    transport: Transport
    target_url: str
    app_id: str
    options: TransportOptions = field(default_factory=TransportOptions)
    processes: int = 1
    shard: int = 0
    shards: int = 1
    live_histograms: bool = False

    def slice_devices(self) -> int:
        """How many devices this run's slice of the fleet holds."""
        return len(range(self.shard, self.scenario.devices, self.shards))


def raise_nofile_limit() -> int:
    """Raise this process's open-file soft limit to its hard limit (one fd per connection). Returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            return soft
    return soft


def _make_transport(config: RunConfig, tracker: AckTracker, clock: Callable[[], int],
                    plan: Plan) -> WsTransport | HttpTransport:
    if config.transport == "ws":
        scale = config.scenario.time_scale
        clients = None
        if plan.has_clients:  # client devices (bench.fleet.clients) keep a queue on the transport's side
            def clients(device: int) -> ClientQueue | None:
                profile = plan.profile_of(device)
                return ClientQueue(profile, scale) if profile is not None else None
        return WsTransport(ws_url(config.target_url, config.app_id), tracker, clock, config.options, clients)
    return HttpTransport(http_url(config.target_url, config.app_id), tracker, clock, config.options)


class _Books:
    """The once-a-second bookkeeping: fold, expire, one series row; and progress snapshots."""

    def __init__(self, tracker: AckTracker, stats: TransportStats, scheduler: Scheduler,
                 clock: Callable[[], int], progress: ProgressFn | None, histograms: bool = False) -> None:
        self.tracker = tracker
        self.histograms = histograms
        self.stats = stats
        self.scheduler = scheduler
        self.clock = clock
        self.progress = progress
        self.schedule_lag = Histogram()
        self.loop_lag = Histogram()
        self.series = SecondSeries()
        self.monitor: Monitor | None = None
        self._rows = SeriesRows(self.series)
        self._second = -1  # the last second recorded in the series

    def fold(self) -> None:
        self.tracker.fold()
        lags = self.scheduler.lags_ns
        if lags:
            self.schedule_lag.record_many(np.asarray(lags, dtype=np.float64) / 1000.0)
            lags.clear()
        if self.monitor is not None and self.monitor.loop_lags_ns:
            self.loop_lag.record_many(np.asarray(self.monitor.loop_lags_ns, dtype=np.float64) / 1000.0)
            self.monitor.loop_lags_ns.clear()

    def on_second(self, second: int) -> None:
        self.tracker.expire(self.clock())
        self.fold()
        self.row(second)

    def row(self, second: int) -> None:
        t = self.tracker
        self._second = max(self._second, second)
        self._rows.record(second, sent=t.sent, acked=t.acked, rejected=t.rejected, lost=t.lost,
                          bytes_sent=self.stats.bytes_sent,
                          histograms={"corrected": t.corrected, "raw": t.raw,
                                      "schedule_lag": self.schedule_lag})

    def snapshot(self) -> None:
        if self.progress is None:
            return
        self.fold()
        t = self.tracker
        recent = self.series.latency(self._second) if self._second >= 0 else {}
        self.progress({
            "t": self.clock() / 1e9, "sent": t.sent, "acked": t.acked, "lost": t.lost,
            "rejected": t.rejected, "in_flight": t.in_flight, "errors": self.stats.errors,
            "p50": t.corrected.percentile(50.0), "p99": t.corrected.percentile(99.0),
            # the last whole second's (None: no ack in it), beside the run's so far
            "p50_1s": recent.get("ack_p50_us"), "p99_1s": recent.get("ack_p99_us"),
            "lag_p99": self.schedule_lag.percentile(99.0),
            "schedule_lag": self.schedule_lag.copy(),  # for callers that judge a stretch of the run
            # the run's latency histograms so far, for the metrics endpoint (merged exactly across processes)
            **({"corrected": t.corrected.copy(), "raw": t.raw.copy()} if self.histograms else {}),
        })


def run_clock(origin_ns: int) -> tuple[Callable[[], int], Callable[[int], None]]:
    """The run's clock, ``time.monotonic_ns() - origin_ns``, and the setter of its origin.

    A closure (a C twin saved ~120 ns per read, nothing a whole run could measure).
    """
    t0 = [origin_ns]

    def clock() -> int:
        return time.monotonic_ns() - t0[0]

    def set_py(origin: int) -> None:
        t0[0] = origin

    return clock, set_py


async def run_shard_async(config: RunConfig, *, shard: int = 0, shards: int = 1,
                          start_at_ns: int | None = None, progress: ProgressFn | None = None,
                          ready: Callable[[], int] | None = None) -> TransportResult:
    """Run shard ``shard`` of ``shards`` of the plan over one transport in the running loop.

    Args:
        start_at_ns: absolute ``time.monotonic_ns()`` of the run's t=0; None: shortly from now.
        progress: called ~2 times a second with a snapshot dict (cumulative counters, p50/p99 µs).
        ready: called once set up; returns ``start_at_ns`` (how sharded runs agree on t=0).
    """
    sc = config.scenario
    tracker = AckTracker(timeout_ns=int(sc.ack_timeout_s * 1e9))
    plan = Plan(sc, shard=shard, shards=shards)
    clock, set_origin = run_clock(start_at_ns if start_at_ns is not None
                                  else time.monotonic_ns() + DEFAULT_LEAD_NS)
    transport = _make_transport(config, tracker, clock, plan)
    if isinstance(transport, HttpTransport):
        await transport.start()
    connects = sorted((plan.connect_at_ns(d), d) for d in plan.devices)
    scheduler = Scheduler(plan.mixed_wire_sends(config.transport), connects, transport, clock)
    books = _Books(tracker, transport.stats, scheduler, clock, progress, config.live_histograms)
    monitor = books.monitor = Monitor(clock, books.on_second, books.snapshot if progress else None)
    if ready is not None:
        set_origin(await asyncio.get_running_loop().run_in_executor(None, ready))
    if (wait := -clock()) > 0:
        await asyncio.sleep(wait / 1e9)
    cpu0 = time.process_time()
    watcher = asyncio.get_running_loop().create_task(monitor.run())
    ctrl_c = _CtrlC()
    try:
        try:
            await scheduler.run()
            send_ns, send_cpu = clock(), time.process_time() - cpu0
            await _drain(transport, tracker, clock, send_ns + int(sc.ack_timeout_s * 1e9))
        except asyncio.CancelledError:
            if not ctrl_c.take():
                raise  # cancelled by its caller
            send_ns, send_cpu = clock(), time.process_time() - cpu0
        ctrl_c.finishing = True  # from here a Ctrl-C only marks the result: it is nearly written
        transport.abandon_unsent()
        end_ns = clock()
        tracker.expire(end_ns)
        if not ctrl_c.pressed:  # cut short, what is still unanswered stays in flight: it was not seen lost
            tracker.finish(end_ns)
        books.fold()
        monitor.tick(end_ns)
        books.row(end_ns // 1_000_000_000)
        cpu = time.process_time() - cpu0
    finally:
        watcher.cancel()
        await transport.close()
        ctrl_c.remove()
    share = send_cpu / (send_ns / 1e9) if send_ns > 0 else 0.0
    behind_us = scheduler.behind_ns / 1000
    return replace(
        _result(config, plan, tracker, transport, books, interrupted=ctrl_c.pressed),
        cpu_s=cpu, send_cpu_s=send_cpu, send_s=send_ns / 1e9, wall_s=end_ns / 1e9,
        # HTTP's final flush is planned in the second after the end: that part of the send phase is the plan's
        plan_tail_s=max(0, scheduler.last_at_ns - plan.end_ns) / 1e9, cpu_share_max=share,
        behind_max_us=behind_us, reasons=process_reasons(share, behind_us), interrupted=ctrl_c.pressed)


class _CtrlC:
    """Ctrl-C or SIGTERM during a run stops it early and keeps what it measured (marked ``interrupted``).

    The first SIGINT or SIGTERM cancels the run's task, which ends the send phase or the drain, skips the
    rest of the drain (unanswered events stay in flight: they were not seen lost) and returns the figures;
    the caller writes them and stops (``bench.runner.stops`` records which signal it was). A second SIGINT
    is the default KeyboardInterrupt; more SIGTERMs change nothing (a sharded run's parent forwards its
    SIGTERM to every shard, which may have had one already). Only the main thread can own a signal:
    elsewhere this does nothing.
    """

    def __init__(self) -> None:
        self.pressed = False
        self.finishing = False
        self._task = asyncio.current_task()
        self._loop = asyncio.get_running_loop()
        self._term_before = signal.getsignal(signal.SIGTERM)
        self._int = self._add(signal.SIGINT, self._on_sigint)
        self._term = self._add(signal.SIGTERM, self._on_sigterm)
        if STOPS.first is not None:  # stopped before the run could start (a shard's start-up): stop now
            self._loop.call_soon(self._stop, STOPS.first)

    def _add(self, signum: int, handler: Callable[[], None]) -> bool:
        try:
            self._loop.add_signal_handler(signum, handler)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
            return False
        return True

    def _stop(self, signum: int) -> None:
        STOPS.record(signum)
        if not self.pressed:
            self.pressed = True
            if self._task is not None and not self.finishing:
                self._task.cancel()

    def _on_sigint(self) -> None:
        self._stop(signal.SIGINT)
        if self._int:  # the next one is the default KeyboardInterrupt
            self._int = False
            self._loop.remove_signal_handler(signal.SIGINT)

    def _on_sigterm(self) -> None:
        self._stop(signal.SIGTERM)

    def take(self) -> bool:
        """Whether the cancellation being handled is ours; if so the task is no longer cancelled."""
        if not self.pressed or self._task is None:
            return False
        self._task.uncancel()
        return True

    def remove(self) -> None:
        """Give both signals back: SIGINT to the default KeyboardInterrupt, SIGTERM to what it was before."""
        if self._int:
            self._int = False
            self._loop.remove_signal_handler(signal.SIGINT)
        if self._term:
            self._term = False
            self._loop.remove_signal_handler(signal.SIGTERM)
            before = self._term_before
            signal.signal(signal.SIGTERM, before if before is not None else signal.SIG_DFL)


async def _drain(transport: WsTransport | HttpTransport, tracker: AckTracker,
                 clock: Callable[[], int], deadline_ns: int) -> None:
    """Wait until every event is answered (or never written) or the deadline passes."""
    while clock() < deadline_ns:
        if tracker.in_flight == 0 and transport.pending_writes == 0:
            return
        await asyncio.sleep(DRAIN_POLL_S)


def _result(config: RunConfig, plan: Plan, tracker: AckTracker, transport: WsTransport | HttpTransport,
            books: _Books, *, interrupted: bool) -> TransportResult:
    """The process's result; an interrupted run's planned count is not taken (see ``planned_events``)."""
    return TransportResult(
        transport=config.transport, planned_events=None if interrupted else plan.expected_events(),
        processes=1,
        tracker=tracker.result(), stats=transport.stats, schedule_lag=books.schedule_lag,
        loop_lag=books.loop_lag, series=books.series,
        max_rss_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        reported_ids=transport.reported,
        devices_online=transport.devices_online if isinstance(transport, WsTransport) else 0,
        all_online_s=transport.all_online_ns / 1e9 if isinstance(transport, WsTransport) else 0.0,
    )


def run_shard(config: RunConfig, *, shard: int = 0, shards: int = 1, start_at_ns: int | None = None,
              progress: ProgressFn | None = None, ready: Callable[[], int] | None = None) -> TransportResult:
    """``run_shard_async`` in a fresh uvloop event loop (this process's)."""
    import uvloop

    raise_nofile_limit()
    with _quiet_gc():
        return uvloop.run(run_shard_async(config, shard=shard, shards=shards, start_at_ns=start_at_ns,
                                          progress=progress, ready=ready))


@contextmanager
def _quiet_gc() -> Iterator[None]:
    """Keep the cyclic collector from pausing the scheduler mid-run.

    A run holds many long-lived containers (thousands of connections, the plan's heap, the pending map);
    every full collection walks them all: with 10,000 devices that put the schedule lag's p99 at ~190 ms
    against ~8 ms without it (make perf). The hot path makes no reference cycles of its own, so what is
    alive at the start is frozen out of the collector and young collections run ~50x less often.
    """
    threshold = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(max(threshold[0], 50_000), threshold[1], threshold[2])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
