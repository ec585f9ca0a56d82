"""The hot path under measurement: ``bench.runner``'s library entry, one shard in a child process.

The child runs ``bench.runner.engine.run_shard`` (the same code ``nucleus-bench run`` runs: plan,
central scheduler, transport, ack tracker, once-a-second bookkeeping) with a progress callback. The
runner calls it about twice a second from inside the event loop with cumulative counters; the callback
reads the process's CPU time there, so the measured window is steady sending only: it opens once the
fleet is connected and warm (``start_s`` after the run's t=0) and closes shortly before the send phase
ends (``end_s``), leaving out connects, handshakes, the drain and the close.

Events in the window are counted by the tracker (``sent``); every message of the window holds exactly
``events_per_message`` events (one session per device: its init is sent at connect, before the window;
HTTP batches are exactly one burst, see ``client.py``). Whole-run figures from the runner's own
``TransportResult`` are returned beside, for the JSON and as a check.
"""

from __future__ import annotations

import cProfile
import pstats
from typing import Any

from bench.metrics import Histogram
from benchmarks._proc import Link, self_cpu_s

#: A window shorter than this is no measurement.
MIN_WINDOW_S = 1.0
#: Seconds from "every device connected" to the window of a gated run (the backlog of late devices drains).
SETTLE_S = 1.0
#: Functions listed by a window profile.
TOP = 30


class _Window:
    """Marks the measured window from the runner's progress snapshots (and profiles it, if asked)."""

    def __init__(self, link: Link, start_s: float, end_s: float, profile: bool, gate: bool) -> None:
        self.link = link
        self.start_s = start_s
        self.end_s = end_s
        self.gated = gate  # the window waits for the parent's word that every device is connected
        self.gate_t: float | None = None  # the run's time when that word was read
        self.start: tuple[float, int, float] | None = None  # (t, sent, cpu)
        self.end: tuple[float, int, float] | None = None
        self.last: tuple[float, int, float] | None = None  # the latest snapshot before end_s
        # the schedule-lag histogram at the window's start, at its end (and at the latest snapshot)
        self.lags: dict[str, Histogram] = {}
        # cProfile's own clock is wall time: cheap enough for per-call timing (a CPU clock costs a system
        # call per reading, which would swamp every small function). Pure Python code is timed right; a
        # write that wakes the target can be preempted by it on 2 cores, and then shows more than its CPU.
        self.profiler = cProfile.Profile() if profile else None

    def on_progress(self, snap: dict[str, Any]) -> None:
        t = float(snap["t"])
        if self.gated:
            if not self.link.poll():
                return
            self.link.wait()
            self.gated = False
            self.gate_t = t
            self.start_s = max(self.start_s, t + SETTLE_S)
        if self.start is None and t >= self.start_s and t + MIN_WINDOW_S <= self.end_s:
            self.start = (t, int(snap["sent"]), self_cpu_s())
            self.lags["start"] = snap["schedule_lag"]
            self.link.mark("start")
            if self.profiler is not None:
                self.profiler.enable()
        elif self.start is not None and self.end is None:
            now = (t, int(snap["sent"]), self_cpu_s())
            if t >= self.end_s:
                self.lags["end"] = snap["schedule_lag"]
                self._close(now)
            else:
                self.lags["last"] = snap["schedule_lag"]
                self.last = now

    def _close(self, end: tuple[float, int, float]) -> None:
        if self.profiler is not None:
            self.profiler.disable()
        self.end = end
        self.link.mark("end")

    def figures(self) -> dict[str, float]:
        """The window's counts; when the loop was too busy to report at ``end_s``, up to the last report."""
        if self.end is None and self.last is not None and self.start is not None \
                and self.last[0] - self.start[0] >= MIN_WINDOW_S:
            self.lags["end"] = self.lags["last"]
            self._close(self.last)  # late: the target's CPU window then runs into the drain
        if self.start is None or self.end is None:
            raise RuntimeError(f"the run never covered the window {self.start_s:g}-{self.end_s:g} s"
                               f"{self._gate_said()}")
        (t0, n0, c0), (t1, n1, c1) = self.start, self.end
        lag = self.lags["end"].since(self.lags["start"])
        return {"seconds": t1 - t0, "events": n1 - n0, "cpu_s": c1 - c0,
                "lag_p99_us": lag.percentile(99.0), "lag_max_us": lag.max()}


    def _gate_said(self) -> str:
        if self.gated:
            return " (the word that every device is connected never came: the fleet was still connecting)"
        if self.gate_t is not None:
            return f" (every device was connected at t={self.gate_t:.1f} s)"
        return ""


def top_functions(profiler: cProfile.Profile, n: int = TOP) -> list[tuple[str, int, float, float]]:
    """The ``n`` functions with the most own time: (file:line(function), calls, own s, cumulative s)."""
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]  # the documented raw table
    rows = [(_where(key), int(v[1]), float(v[2]), float(v[3])) for key, v in stats.items()]
    return sorted(rows, key=lambda r: -r[2])[:n]


def _where(key: tuple[str, int, str]) -> str:
    path, line, func = key
    for marker in ("/site-packages/", "/bench/"):
        if marker in path:
            path = ("bench/" if marker == "/bench/" else "") + path.split(marker, 1)[1]
            break
    return f"{path}:{line}({func})" if line else func


def hot_child(link: Link, config: Any, start_s: float, end_s: float, profile: bool = False,
              gate: bool = False) -> dict[str, Any]:
    """Child main: run one shard of ``config`` (a ``bench.runner.RunConfig``), measure the window.

    Args:
        profile: run cProfile over the window too (its overhead inflates the window's CPU figures).
        gate: open the window no earlier than ``SETTLE_S`` after the parent says (one word on the pipe)
            that the target counts every device connected: a big fleet's handshakes can lag its ramp,
            and the messages of devices not yet connected go out in a burst when they open.

    Returns:
        ``{"window": {seconds, events, cpu_s}, "whole": {...}, "profile": [...]}`` (whole-run counters of
        the runner; the profile's top functions by own time, empty unless asked).
    """
    from bench.runner.engine import run_shard

    window = _Window(link, start_s, end_s, profile, gate)
    result = run_shard(config, progress=window.on_progress)
    t, st = result.tracker, result.stats
    whole = {
        "cpu_s": result.cpu_s, "send_s": result.send_s, "events_sent": t.sent, "acked": t.acked,
        "lost": t.lost, "rejected": t.rejected, "messages": st.messages_sent, "connects": st.connects,
        "connect_errors": st.connect_errors, "closed_by_peer": st.closed_by_peer,
        "saturated": result.saturation_reasons(), "max_rss_kb": result.max_rss_kb,
    }
    figures = window.figures()
    top = top_functions(window.profiler) if window.profiler is not None else []
    from bench import native

    return {"window": figures, "whole": whole, "profile": top, "native": native.in_use()}
