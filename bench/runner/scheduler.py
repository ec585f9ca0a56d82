"""The central scheduler: one task per process executes the fleet's plan of intended sends.

Theory of operation (open loop, as wrk2): ``bench.fleet.Plan.sends`` yields every send of this shard in
non-decreasing intended time. The scheduler wakes, takes *every* send whose intended time has come (for
all devices at once; no timer per device), encodes each message once and hands it to its device's
transport, then sleeps until the next intended time. It never waits for an ack before sending, so a
slow server cannot slow the offered load (no coordinated omission); if the process itself cannot keep
up, sends go out late and the lateness is recorded as *schedule lag* (actual dispatch - intended time),
which is what tells the generator's own saturation apart from the server's latency.

Devices come online at their ramp time (``Plan.connect_at_ns``): the scheduler calls the transport's
``connect`` then, merged into the same loop.

The plan is pulled ahead, ``STAGE`` sends at a time, at the end of a wake-up once fewer than ``LOW_STAGE``
are left (sooner only when a wake-up needs more): the plan's code then runs with warm caches for a run of
sends instead of going cold again between wake-ups (a paced fleet sends a few messages per millisecond,
and the first plan step after each sleep costs several times a warm one; ``make perf``'s breakdown). The
sends still go at their intended times: only when each is built changes, and a few dozen built sends are
all the memory it takes.

The monitor task beside it samples event-loop lag (a 100 ms sleep and its oversleep) and drives the
once-a-second bookkeeping (fold, expire, per-second series) through a callback.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Protocol, cast

from bench.fleet.clients import ClientSend
from bench.fleet.send import WireSend
from bench.protocol.events import EventId
from bench.transports.common import Clock

#: Sends dispatched per wake-up before yielding to the loop, so replies keep flowing under a backlog.
MAX_BATCH = 2048
#: The loop-lag probe's sleep (issue 7: "a task that sleeps 100 ms and measures oversleep").
LAG_PROBE_NS = 100_000_000
#: Timer resolution of the event loop (uvloop and asyncio both schedule in whole milliseconds).
TIMER_NS = 1_000_000
_NEVER = 1 << 62
#: Sends pulled from the plan at a time, and how few may be left before the next pull (see above).
STAGE = 64
LOW_STAGE = 16


class SendLike(Protocol):
    """What the scheduler reads of ``bench.fleet.Send``."""

    @property
    def at_ns(self) -> int: ...
    @property
    def device(self) -> int: ...
    @property
    def ids(self) -> tuple[EventId, ...]: ...
    @property
    def created_ns(self) -> tuple[int, ...]: ...
    @property
    def encoded(self) -> bytes: ...


class TransportLike(Protocol):
    """What the scheduler calls on a transport (``WsTransport`` and ``HttpTransport`` have this shape)."""

    def connect(self, device: int) -> None: ...
    def send(self, device: int, payload: bytes, ids: tuple[EventId, ...], intended_ns: int,
             created_ns: tuple[int, ...]) -> None: ...
    def send_untracked(self, device: int, payload: bytes) -> None: ...


class ClientTransportLike(TransportLike, Protocol):
    """A transport that carries client devices' sends too (``WsTransport``; plans with clients)."""

    def send_client(self, send: ClientSend) -> None: ...


class Scheduler:
    """Executes a plan of sends against one transport.

    Args:
        sends: the shard's sends in non-decreasing ``at_ns`` (consumed lazily).
        connects: ``(connect_at_ns, device)`` sorted by time.
        transport: where messages go.
        clock: monotonic ns since the run's start.

    Attributes:
        lags_ns: schedule lag of each dispatched send, in ns (drained by the bookkeeping).
        dispatched: sends handed to the transport (messages, heartbeats included).
        behind_ns: the largest schedule lag seen so far.
        last_at_ns: the intended time of the last send dispatched.
    """

    def __init__(self, sends: Iterable[SendLike], connects: Sequence[tuple[int, int]],
                 transport: TransportLike, clock: Clock) -> None:
        self._sends: Iterator[SendLike] = iter(sends)
        self._connects = connects
        self._transport = transport
        self._clock = clock
        self.lags_ns: list[int] = []
        self.dispatched = 0
        self.behind_ns = 0
        self.last_at_ns = 0
        self._nxt: SendLike | None = None  # the next send, taken from ``sends``
        self._staged: deque[SendLike] = deque()  # the sends after it, pulled ahead
        self._ci = 0  # connects done
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Future[None] | None = None
        self._wake: asyncio.Handle | None = None

    async def run(self) -> None:
        """Dispatch every send at (or as soon as possible after) its intended time; return when done.

        The wake-ups are timer callbacks (``loop.call_later``), not a task's sleeps: a sleeping task costs a
        future and a second turn of the loop per wake-up, which at a thousand wake-ups a second is a
        visible share of a fleet's CPU. Cancelling the caller cancels the pending wake-up.
        """
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._done = done = loop.create_future()
        self._nxt = self._pull()
        self._ci = 0
        self._wake = loop.call_soon(self._step)
        try:
            await done
        finally:
            self._wake.cancel()
            self._loop = None

    def _step(self) -> None:
        """One wake-up: connect and dispatch what is due, then set the next wake-up (or finish)."""
        done, loop = self._done, self._loop
        if done is None or loop is None or done.done():
            return  # the caller is gone (cancelled)
        try:
            due = self._dispatch_due()
        except Exception as exc:  # a bug or a refusal below: the caller raises it, as a task would
            done.set_exception(exc)
            return
        if due is None:
            done.set_result(None)  # the plan is done
        elif due < 0:
            self._wake = loop.call_soon(self._step)  # behind: let replies in, then carry on at once
        else:
            delay = due - self._clock()
            # Whole milliseconds, rounded up: the loop's timers have 1 ms resolution and a shorter wait
            # returns at once, which would spin the loop until the send is due.
            self._wake = loop.call_later(max(0, -(-delay // TIMER_NS)) * TIMER_NS / 1e9, self._step)

    def _dispatch_due(self) -> int | None:
        """Connect and dispatch everything due now (at most ``MAX_BATCH`` sends); returns when the next
        thing is due (-1: at once, a full batch went out; None: nothing is left)."""
        clock = self._clock
        transport = self._transport
        connects = self._connects
        lags = self.lags_ns
        staged = self._staged
        nxt = self._nxt
        ci = self._ci
        now = clock()
        while ci < len(connects) and connects[ci][0] <= now:
            transport.connect(connects[ci][1])
            ci += 1
        self._ci = ci
        n = 0
        try:
            # The clock is read per send, so a send that falls due while others go out goes in this batch
            # too (waking again at once for it would cost a turn of the loop).
            while nxt is not None and n < MAX_BATCH:
                at_ns = nxt.at_ns
                lag = clock() - at_ns
                if lag < 0:
                    break
                lags.append(lag)
                if lag > self.behind_ns:
                    self.behind_ns = lag
                dispatch(transport, nxt)
                last = nxt
                nxt = staged.popleft() if staged else self._pull()
                n += 1
        finally:
            self._nxt = nxt
            self.dispatched += n
            if n:
                self.last_at_ns = last.at_ns
        if nxt is not None and len(staged) < LOW_STAGE:
            staged.extend(islice(self._sends, STAGE))
        if n >= MAX_BATCH:
            return -1
        due = min(nxt.at_ns if nxt is not None else _NEVER,
                  connects[ci][0] if ci < len(connects) else _NEVER)
        return None if due == _NEVER else due

    def _pull(self) -> SendLike | None:
        """The next send of the plan, and the ``STAGE`` after it staged (None: the plan is done)."""
        sends = self._sends
        nxt = next(sends, None)
        if nxt is not None:
            self._staged.extend(islice(sends, STAGE))
        return nxt


def dispatch(transport: TransportLike, send: SendLike) -> None:
    """Hand one send over, encoded once by the plan; a heartbeat (no id) goes untracked. The one way a send
    reaches a transport (the scheduler's loop calls it per send: ~40 ns over the copy it used to inline)."""
    if type(send) is WireSend:  # the hot path's WireSend: its fields in one unpacking
        at_ns, device, encoded, ids, created_ns = send
    elif type(send) is ClientSend:  # a client device's: its transport does what its profile says
        cast(ClientTransportLike, transport).send_client(send)  # only plans with clients make them
        return
    else:
        at_ns, device, encoded = send.at_ns, send.device, send.encoded
        ids, created_ns = send.ids, send.created_ns
    if ids:
        # created_ns is parallel to the events, and every event of a tracked send carries an id
        transport.send(device, encoded, ids, at_ns, created_ns)
    else:
        transport.send_untracked(device, encoded)


class Monitor:
    """Event-loop lag probe and the heartbeat of the bookkeeping.

    Every 100 ms it measures how late its sleep ended (loop lag); at each whole second of the run it
    calls ``on_second(second_index)``; every ``progress_every`` probes it calls ``on_progress()``.
    """

    def __init__(self, clock: Clock, on_second: Callable[[int], None],
                 on_progress: Callable[[], None] | None = None, progress_every: int = 5) -> None:
        self._clock = clock
        self._on_second = on_second
        self._on_progress = on_progress
        self._progress_every = progress_every
        self.loop_lags_ns: list[int] = []
        self._next_second = 1

    async def run(self) -> None:
        """Probe forever (cancel to stop)."""
        clock = self._clock
        probes = 0
        while True:
            start = clock()
            await asyncio.sleep(LAG_PROBE_NS / 1e9)
            now = clock()
            self.loop_lags_ns.append(max(0, now - start - LAG_PROBE_NS))
            self.tick(now)
            probes += 1
            if self._on_progress is not None and probes % self._progress_every == 0:
                self._on_progress()

    def tick(self, now_ns: int) -> None:
        """Close every whole second that has passed by ``now_ns``."""
        while now_ns >= self._next_second * 1_000_000_000:
            self._on_second(self._next_second - 1)
            self._next_second += 1
