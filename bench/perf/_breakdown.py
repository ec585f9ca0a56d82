"""Where the hot path's client CPU goes, per message: each pure step timed alone, in this process.

The hot path's per-message work outside the socket is a chain of pure calls, each timed here over the
same sends the hot-path case produces (same scenario), with ``time.process_time`` around a loop:

- ``plan``: ``bench/fleet/plan.py:Plan._merge`` pulling the next Send (``Device.sends``: seeded draws and
  each event's bytes from its template), once every device has started (each device's first Send, its
  init, is left out, as a case's measured window leaves out the fleet's start);
- ``encode``: ``bench/runner/scheduler.py:dispatch`` minus the transport, i.e. ``Send.encoded`` (the
  events' bytes joined into the message, ``bench/fleet/send.py``);
- ``frame``: ``bench/transports/ws.py:frame_text`` (header, mask key, C masking);
- ``track send`` / ``track ack``: ``bench/metrics/tracker.py:AckTracker.on_send`` / ``on_ws_ack``
  (``on_http_reply`` for HTTP);
- ``parse ack``: ``bench/protocol/message.py:parse_ack_ids`` of the reply bytes;
- ``fold``: ``AckTracker.fold`` (latency lists into histograms), per message.

The rest of the measured figure is the socket, the event loop, the scheduler's wake-ups and the cyclic
garbage collector (off while the steps are timed): compared with the bare loop's whole cost, which is
nothing else.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from itertools import islice
from typing import Any

from bench.perf._cases import scenario_toml

#: Sends timed per component.
SENDS = 30_000


class _NullTransport:
    def connect(self, device: int) -> None:
        pass

    def send(self, device: int, payload: bytes, ids: tuple[Any, ...], intended_ns: int,
             created_ns: tuple[int, ...]) -> None:
        pass

    def send_untracked(self, device: int, payload: bytes) -> None:
        pass


def _timed(fn: Callable[[], object]) -> float:
    """CPU seconds of ``fn()`` with the cyclic GC off: a batch of 30,000 sends held at once would make it
    scan far more objects than the hot path (which pulls sends one by one) ever keeps alive."""
    gc.collect()
    gc.disable()
    try:
        t0 = time.process_time()
        fn()
        return time.process_time() - t0
    finally:
        gc.enable()


def breakdown(transport: str, epm: int, devices: int, rate: float, *, flush_s: float = 30.0,
              arrival: str = "poisson") -> dict[str, float]:
    """CPU µs per message of each pure step of the hot path for one case's scenario.

    Returns:
        step name -> µs per message (see the module docstring for the file:function of each).
    """
    from bench.fleet import Plan
    from bench.metrics import AckTracker
    from bench.protocol.message import encode_ack, parse_ack_ids
    from bench.runner.scheduler import dispatch
    from bench.scenario import parse_scenario
    from bench.transports.ws import frame_text

    duration = max(2.0, 2 * (SENDS + devices) / rate)
    text = scenario_toml(devices=devices, rate=rate, epm=epm, duration_s=duration, arrival=arrival,
                         http_flush_s=flush_s)
    plan = Plan(parse_scenario(text, "perf-breakdown.toml"))
    stream = plan.sends(transport)  # type: ignore[arg-type]
    # Every device starts at t = 0 here (no ramp) and its first send is its init: those come first, and
    # are left out, as the measured window of a case leaves out the fleet's start.
    for _ in islice(stream, devices):
        pass
    sends: list[Any] = []
    plan_s = _timed(lambda: sends.extend(islice(stream, SENDS)))
    plan_us = plan_s * 1e6 / len(sends)
    sends = [s for s in sends if len(s.ids) == epm]  # leave out the inits and heartbeats
    n = len(sends)
    payloads = [s.encoded for s in sends]
    ids = [s.ids for s in sends]
    replies = [encode_ack(i) for i in ids]
    null = _NullTransport()
    tracker = AckTracker(timeout_ns=10**12)
    conns = [s.device for s in sends]
    tokens: list[int] = []

    def track_send() -> None:
        for c, i, s in zip(conns, ids, sends, strict=True):
            tokens.append(tracker.on_send(c, i, s.at_ns, s.at_ns, s.created_ns))

    def track_ack() -> None:
        if transport == "ws":
            for c, i, s in zip(conns, ids, sends, strict=True):
                tracker.on_ws_ack(c, i, s.at_ns + 1000)
        else:
            for c, t, i, s in zip(conns, tokens, ids, sends, strict=True):
                tracker.on_http_reply(c, t, i, s.at_ns + 1000)

    def encode() -> None:
        for s in sends:
            dispatch(null, s)

    steps: dict[str, Callable[[], object]] = {
        "encode": encode,
        "frame": lambda: [frame_text(p) for p in payloads] if transport == "ws" else None,
        "track send": track_send,
        "parse ack": lambda: [parse_ack_ids(r) for r in replies],
        "track ack": track_ack,
        "fold": tracker.fold,
    }
    out = {"plan": plan_us}
    for name, fn in steps.items():
        out[name] = _timed(fn) * 1e6 / n
    if transport != "ws":
        out.pop("frame")
    return out
