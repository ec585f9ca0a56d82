"""End of a run across Locust processes: drain each process, ship its results, merge them exactly.

Theory of operation
-------------------
Locust's own master/worker statistics round response times to about two significant digits. Ours do not
travel that way: every process that runs users keeps the hot path's µs histograms and counters
(``RunState``), and at the end of a run ships them whole, as ``TransportResult.to_json()`` plus the ids
the server reported, in one custom message. The master adds them (counters summed, histograms added
bucket by bucket: ``bench.results.transport.merge_all``), so the merged figures are exactly what one process
would have counted.

The exchange, started by the master (or the standalone process) when the test is stopping, before
Locust stops any user::

    master/standalone                                    every process running users
    ── "nucleus_drain" {run_id} ──────────────────────▶  stop sending; HTTP devices post what they hold;
                                                         wait until nothing is in flight or the ack
                                                         timeout has passed; the rest is lost
    ◀── "nucleus_result" {run_id, worker, results, reported} ──

A standalone process runs both sides in one greenlet (``LocalRunner.send_message`` calls the listener
directly). A worker that quits on its own (Ctrl-C) drains and sends its result before it says goodbye,
so the master still counts it. ``run_id`` keeps a late message of an earlier run (web UI) out.

``Housekeeper`` is each process's once-a-second bookkeeping (expire, fold, series) and its 100 ms
event-loop-lag probe, as the hot path's monitor does.

Lost processes, both ways:

- a worker that dies or goes silent: the master's ``Roster`` (bench.locust_glue.roster) keeps it
  expected, and the summary lists it in ``missing_workers`` with when it was lost;
- a master that dies: each worker's ``MasterWatch`` notices (``master_gone``: no heartbeat from the
  master for ``--master-timeout`` seconds, or, for a worker forked by ``--processes``, its parent process
  gone) and the worker drains, writes its own partial result where it runs, and exits 1, rather than
  send events to nobody until Locust's own 60 s heartbeat limit and exit 0.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

import gevent

from bench.locust_glue.runstate import NS, RunState

logger = logging.getLogger(__name__)

#: Poll period of the drain (anything still in flight?), as the hot path's.
DRAIN_POLL_S = 0.01
#: The loop-lag probe's sleep.
LAG_PROBE_S = 0.1
#: (transport, how many events were just counted lost): fires Locust's ``lost`` failures.
LostFn = Callable[[str, int], None]


class Housekeeper:
    """The run's bookkeeping greenlet: loop lag every 100 ms; expire, fold and a series row every second."""

    def __init__(self, run: RunState, on_lost: LostFn) -> None:
        self.run = run
        self.on_lost = on_lost
        self._greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        run, probe_ns = self.run, int(LAG_PROBE_S * NS)
        second = 0
        while True:
            before = run.clock()
            gevent.sleep(LAG_PROBE_S)
            now = run.clock()
            run.loop_lags_ns.append(max(0, now - before - probe_ns))
            if now // NS > second:
                second = now // NS
                for name, books in run.books.items():
                    lost = books.on_second(second - 1, now)
                    if lost:
                        self.on_lost(name, lost)
                run.fold()

    def stop(self) -> None:
        self._greenlet.kill(block=False)


def drain(run: RunState, on_lost: LostFn, housekeeper: Housekeeper | None) -> None:
    """Stop sending and wait for the acks still due, up to the ack timeout; then close the books.

    HTTP devices post the events they created but had not flushed yet, so every created event is sent.
    """
    run.stop_sending()
    flushes = [gevent.spawn(device.final_flush) for device in run.devices]
    gevent.joinall(flushes, timeout=run.timeout_ns / NS)
    deadline = (run.send_end_ns or run.clock()) + run.timeout_ns
    while run.in_flight() and run.clock() < deadline:
        gevent.sleep(DRAIN_POLL_S)
    if housekeeper is not None:
        housekeeper.stop()
    before = {name: books.tracker.lost for name, books in run.books.items()}
    run.finish()
    for name, books in run.books.items():
        if books.tracker.lost > before[name]:
            on_lost(name, books.tracker.lost - before[name])


#: How often a worker looks for its master (heartbeat age, parent process).
WATCH_S = 0.5


def master_gone(now_s: float, last_heartbeat_s: float | None, timeout_s: float, parent_pid: int | None,
                current_parent_pid: int) -> str | None:
    """Why this worker's master is taken for gone, or None while it is not.

    Args:
        now_s: wall-clock seconds (the base of Locust's heartbeat timestamps).
        last_heartbeat_s: when the master's last heartbeat came (None: none yet, nothing to judge).
        timeout_s: ``--master-timeout``.
        parent_pid: the master's process id when it forked this worker (``--processes``), else None.
        current_parent_pid: this process's parent now (``os.getppid()``).
    """
    if parent_pid is not None and current_parent_pid != parent_pid:
        return f"the master process {parent_pid} that forked this worker exited"
    if last_heartbeat_s is not None and now_s - last_heartbeat_s > timeout_s:
        silent = now_s - last_heartbeat_s
        return f"no heartbeat from the master for {silent:.0f} s (--master-timeout {timeout_s:g})"
    return None


class MasterWatch:
    """A worker's look-out for its master: ``on_gone(reason)`` once, when ``master_gone`` says so.

    Args:
        last_heartbeat: when the master's last heartbeat came (``WorkerRunner.last_heartbeat_timestamp``).
        timeout_s: ``--master-timeout``.
        forked: this worker was forked by its master (``--processes``): its parent's exit is the master's.
        on_gone: what to do then (drain, write locally, exit); runs in the watch's greenlet.
    """

    def __init__(self, last_heartbeat: Callable[[], float | None], timeout_s: float, forked: bool,
                 on_gone: Callable[[str], None]) -> None:
        self._last_heartbeat = last_heartbeat
        self._timeout_s = timeout_s
        self._parent = os.getppid() if forked else None
        self._on_gone = on_gone
        self._greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        while True:
            gevent.sleep(WATCH_S)
            reason = master_gone(time.time(), self._last_heartbeat(), self._timeout_s, self._parent,
                                 os.getppid())
            if reason is not None:
                self._on_gone(reason)
                return

    def stop(self) -> None:
        self._greenlet.kill(block=False)
