"""Where the hot path's client CPU goes, per message: each pure step timed alone, in this process.

The hot path's per-message work outside the socket is a chain of pure calls, each timed here over the
same sends the hot-path case produces (same scenario), with ``time.process_time`` around a loop:

- ``plan``: ``bench/fleet/plan.py:Plan.wire_sends`` pulling the next send as the runner does
  (``Device.sends_made``: seeded draws, each event's bytes from its template, the message joined, a
  ``WireSend``), once every device has started (each device's first send, its init, is left out, as a
  case's measured window leaves out the fleet's start);
- ``dispatch``: ``bench/runner/scheduler.py:dispatch`` minus the transport (reading the send's fields);
- ``frame``: ``bench/transports/ws.py:frame_text`` (header, mask key, C masking);
- ``track send`` / ``track ack``: ``bench/metrics/tracker.py:AckTracker.on_send`` / ``on_ws_ack``
  (``on_http_reply`` for HTTP);
- ``parse ack``: ``bench/protocol/message.py:parse_ack_ids`` of the reply bytes;
- ``fold``: ``AckTracker.fold`` (latency lists into histograms), per message.

Timed alone, in a tight loop, the steps run with warm caches. In a run they do not: the process sleeps
between wake-ups (about one a millisecond), and what ran meanwhile (the target, the kernel, other guests of
a shared machine) has evicted the code and data they use, so the first sends after each wake-up run far
slower. The steps are therefore timed a second way, *paced like the run*: the same steps, ``per_wake``
messages at a time (the case's messages per millisecond), with a 1 ms sleep between the groups (the plan
pulled in stages, as ``bench/runner/scheduler.py:Scheduler`` pulls it); the
sleeps' own CPU (a sleep-only loop of as many sleeps, timed beside) is taken out and reported on its own:
it is what each wake-up costs the process here.

The rest of the measured figure is the socket, the event loop, the scheduler and the cyclic garbage
collector (off while the steps are timed): compared with the bare loop's whole cost, which is nothing else.
"""

from __future__ import annotations

import gc
import math
import time
from collections import deque
from collections.abc import Callable
from itertools import islice
from typing import Any

from benchmarks._cases import scenario_toml

#: Sends timed per component.
SENDS = 30_000
#: Wake-ups of the paced timing (``per_wake`` messages each, a ``TICK_S`` sleep after each group).
PACED_WAKES = 1_000
#: The sleep between groups: the poller's and the scheduler's tick.
TICK_S = 0.001


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


def _paced(step: Callable[[int], object], n: int, per_wake: int) -> float:
    """CPU seconds of ``step(0)`` .. ``step(n - 1)``, sleeping ``TICK_S`` after every ``per_wake`` calls,
    with the GC off (as ``_timed``); the sleeps' own CPU is included (see ``_sleeps``)."""
    def run() -> None:
        for start in range(0, n, per_wake):
            for i in range(start, min(n, start + per_wake)):
                step(i)
            time.sleep(TICK_S)
    return _timed(run)


def _sleeps(count: int) -> float:
    """CPU seconds of ``count`` sleeps of ``TICK_S`` with nothing between them."""
    def run() -> None:
        for _ in range(count):
            time.sleep(TICK_S)
    return _timed(run)


def breakdown(transport: str, epm: int, devices: int, rate: float, *, flush_s: float = 30.0,
              arrival: str = "poisson", per_wake: int = 1) -> dict[str, float]:
    """CPU µs per message of each pure step of the hot path for one case's scenario.

    Args:
        per_wake: messages per 1 ms wake-up in the case's run (its messages per second / 1,000), for the
            paced timing.

    Returns:
        step name -> µs per message (see the module docstring for the file:function of each), and under
        ``PACED_KEYS``: the plan and the other steps paced like the run, and a wake-up's own CPU per
        message; under ``PER_WAKE_KEY``, ``per_wake``.
    """
    from bench.fleet import Plan
    from bench.metrics import AckTracker
    from bench.protocol.message import encode_ack, parse_ack_ids
    from bench.runner.scheduler import dispatch
    from bench.scenario import parse_scenario
    from bench.transports.ws import frame_text

    # long enough for every timing: ``rate`` is events/s, a message holds ``epm`` of them
    duration = max(2.0, 2 * (SENDS + PACED_WAKES * max(1, per_wake) + devices) * epm / rate)
    text = scenario_toml(devices=devices, rate=rate, epm=epm, duration_s=duration, arrival=arrival,
                         http_flush_s=flush_s)
    plan = Plan(parse_scenario(text, "perf-breakdown.toml"))
    stream = plan.wire_sends(transport)  # type: ignore[arg-type]
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

    def dispatch_all() -> None:
        for s in sends:
            dispatch(null, s)

    steps: dict[str, Callable[[], object]] = {
        "dispatch": dispatch_all,
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
    out.update(_paced_figures(transport, stream, sends, payloads, ids, replies, conns, max(1, per_wake)))
    return out


#: The keys of ``breakdown``'s paced figures (the others are the steps timed alone), and of the messages per
#: wake-up they were paced at.
PACED_KEYS = ("plan, paced", "other steps, paced", "wake-up itself")
PER_WAKE_KEY = "messages per wake-up"


def _paced_figures(transport: str, stream: Any, sends: list[Any], payloads: list[bytes],
                   ids: list[tuple[Any, ...]], replies: list[bytes], conns: list[int],
                   per_wake: int) -> dict[str, float]:
    """The steps paced like the run (see the module docstring), µs per message."""
    from bench.metrics import AckTracker
    from bench.protocol.message import parse_ack_ids
    from bench.runner.scheduler import LOW_STAGE, STAGE, dispatch
    from bench.transports.ws import frame_text

    n = min(len(sends), PACED_WAKES * per_wake)
    null = _NullTransport()
    tracker = AckTracker(timeout_ns=10**12)
    ws = transport == "ws"

    pulled: list[object] = []
    staged: deque[Any] = deque()

    def pull(i: int) -> None:
        # as the scheduler pulls: STAGE sends at a time, topped up at the end of a wake-up (its group)
        if not staged:
            staged.extend(islice(stream, STAGE + 1))
        pulled.append(staged.popleft() if staged else None)  # None: the plan ran out (counted out below)
        if i % per_wake == per_wake - 1 and len(staged) < LOW_STAGE:
            staged.extend(islice(stream, STAGE))

    def chain(i: int) -> None:
        s = sends[i]
        dispatch(null, s)
        if ws:
            frame_text(payloads[i])
        token = tracker.on_send(conns[i], ids[i], s.at_ns, s.at_ns, s.created_ns)
        reported = parse_ack_ids(replies[i])
        if ws:
            tracker.on_ws_ack(conns[i], reported, s.at_ns + 1000)
        else:
            tracker.on_http_reply(conns[i], token, reported, s.at_ns + 1000)

    wakes = -(-n // per_wake)
    sleep_s = _sleeps(wakes)
    plan_s = _paced(pull, n, per_wake)
    chain_s = _paced(chain, n, per_wake)
    got = n - pulled.count(None) + len(staged)  # every send the plan made, staged ones included
    return {"plan, paced": max(0.0, plan_s - sleep_s) * 1e6 / got if got else math.nan,
            "other steps, paced": max(0.0, chain_s - sleep_s) * 1e6 / n,
            "wake-up itself": sleep_s * 1e6 / n, PER_WAKE_KEY: float(per_wake)}
