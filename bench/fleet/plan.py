"""The plan: which device sends which events at which intended time, over WebSocket or HTTP.

Theory of operation
-------------------
The plan is pure scheduling (STYLE.md, "Fleet simulation is pure scheduling"): no sockets, no event loop, no
clock. Times are integer nanoseconds since the run's start (t = 0); the runner maps them onto its monotonic
clock and measures latency from these *intended* times, so a stalled server cannot hide its stall.

1. Each device (``bench.fleet.device.Device``) yields its events as (created_ns, events) ticks from its own
   random stream, seeded from (seed, device index). Sharding and transport change nothing in that stream.
2. A transport shapes a device's ticks into ``Send``\\ s:
   - ``"ws"``: one message per tick, at the tick's time (so ``created_ns == at_ns``), plus a ``heartbeat``
     every ``heartbeat_s`` with a seeded phase. The first Send of a device is its ``init``.
   - ``"http"``: the same events, queued and condensed per device into one request every ``http_flush_s``
     (seeded phase per device; tracking-api.md, "Track via HTTP"), the rest at the end of the run; a flush of
     more than ``http_max_events`` events is split into several requests at the same time. No heartbeats
     (contract.md, "Messages": WebSocket only).
3. ``sends()`` merges the devices of a shard through a heap keyed by (at_ns, device): non-decreasing at_ns,
   ties in device order, and within a device in its own order. Each device enters the heap as a placeholder at
   its connect time and is built only then, so a long ramp costs nothing up front. Shard k of n owns devices
   d with d % n == k; the union of the shards, merged by the same key, is the unsharded plan.

Events carry no ``date``: the plan cannot know wall time, and tracking-api.md lets the server use its
receive time when ``date`` is missing. Payload dicts are shared between events (see ``content``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from heapq import heapify, heappop, heapreplace
from typing import Literal

from bench.fleet.content import device_id
from bench.fleet.device import Device, FleetConfig
from bench.protocol.errors import UsageError
from bench.protocol.events import Event, Heartbeat
from bench.scenario import Scenario

Transport = Literal["ws", "http"]


@dataclass(frozen=True, slots=True)
class Send:
    """One message a device sends: at ``at_ns`` (intended, ns since the run's start), its ``events`` in order.

    ``created_ns[i]`` is when ``events[i]`` was created (== ``at_ns`` for WebSocket sends). A heartbeat Send
    holds exactly one ``Heartbeat`` whose id is None: never acknowledged, never tracked.
    """

    at_ns: int
    device: int
    events: tuple[Event, ...]
    created_ns: tuple[int, ...]

    @property
    def is_heartbeat(self) -> bool:
        return isinstance(self.events[0], Heartbeat)


def ws_sends(device: Device) -> Iterator[Send]:
    """A device's WebSocket sends: each tick one message, heartbeats in between (on a tie, the tick first)."""
    cfg, index = device.cfg, device.index
    period, end = cfg.heartbeat_ns, cfg.end_ns
    beat_at = device.connect_ns + device.phase_ns(period, "heartbeat") if period else end
    beat = (device.heartbeat,)
    for at, events in device.ticks():
        while beat_at < at:
            yield Send(beat_at, index, beat, (beat_at,))
            beat_at += period
        yield Send(at, index, events, (at,) * len(events))
    while beat_at < end:
        yield Send(beat_at, index, beat, (beat_at,))
        beat_at += period


def http_sends(device: Device) -> Iterator[Send]:
    """A device's HTTP requests: its events queued, flushed every ``http_flush_s``, the rest at the end."""
    cfg, index = device.cfg, device.index
    period = cfg.flush_ns
    flush_at = device.connect_ns + device.phase_ns(period, "http-flush")
    events: list[Event] = []
    created: list[int] = []
    for at, batch in device.ticks():
        if at > flush_at:  # an event created exactly at a flush time still makes that flush
            if events:
                yield from _requests(index, flush_at, events, created, cfg.http_max_events)
                events, created = [], []
            flush_at += period * ((at - flush_at + period - 1) // period)  # skip flushes with nothing queued
        events.extend(batch)
        created.extend((at,) * len(batch))
    if events:
        yield from _requests(index, min(flush_at, cfg.end_ns), events, created, cfg.http_max_events)


def _requests(index: int, at: int, events: list[Event], created: list[int], cap: int) -> Iterator[Send]:
    for start in range(0, len(events), cap):
        yield Send(at, index, tuple(events[start:start + cap]), tuple(created[start:start + cap]))


#: Table dispatch: transport name -> the shaper of one device's sends.
TRANSPORTS: dict[str, Callable[[Device], Iterator[Send]]] = {"ws": ws_sends, "http": http_sends}


class Plan:
    """The sends of one shard of a scenario's fleet.

    Same scenario, seed and shard: the same Sends, byte for byte.

    Args:
        scenario: the validated scenario (its seed included).
        shard: which shard this is, in [0, shards).
        shards: how many shards the fleet is split into; shard k owns the devices d with d % shards == k.

    Raises:
        UsageError: shard or shards out of range.
    """

    def __init__(self, scenario: Scenario, *, shard: int = 0, shards: int = 1) -> None:
        if shards < 1 or not 0 <= shard < shards:
            raise UsageError(f"shard {shard} of {shards}: need shards >= 1 and 0 <= shard < shards")
        self.scenario = scenario
        self.shard = shard
        self.shards = shards
        self.devices: tuple[int, ...] = tuple(range(shard, scenario.devices, shards))
        self._cfg = FleetConfig.build(scenario)
        self._expected: int | None = None

    @property
    def end_ns(self) -> int:
        """The end of the run in ns (duration_s as the plan rounds it): no event is created from then on."""
        return self._cfg.end_ns

    def _check(self, device: int) -> None:
        if not 0 <= device < self.scenario.devices:
            raise ValueError(f"device {device} is not in a fleet of {self.scenario.devices}")

    def device_id(self, device: int) -> str:
        """The deviceId string of a device of the fleet (any shard's)."""
        self._check(device)
        return device_id(self.scenario.seed, device)

    def connect_at_ns(self, device: int) -> int:
        """When a device comes online: devices arrive evenly over the ramp."""
        self._check(device)
        return self._cfg.connect_ns(device)

    def sends(self, transport: Transport) -> Iterator[Send]:
        """Every send of this shard, merged across devices in non-decreasing ``at_ns``, generated lazily.

        Raises:
            UsageError: an unknown transport (at the call, not at the first send).
        """
        return self._merge(_transport(transport))

    def _merge(self, shape: Callable[[Device], Iterator[Send]]) -> Iterator[Send]:
        cfg = self._cfg
        # A device enters as a placeholder (no Send, no generator) at its connect time and is built only when
        # that comes up. (at_ns, device) is unique in the heap (one entry per device), so tuples never compare
        # further and Sends are never compared.
        heap: list[tuple[int, int, Send | None, Iterator[Send] | None]] = [
            (cfg.connect_ns(d), d, None, None) for d in self.devices]
        heapify(heap)
        while heap:
            _, device, send, it = heap[0]
            if send is not None:
                yield send
            if it is None:  # the placeholder: the device comes online now
                it = shape(Device(cfg, device))
            nxt = next(it, None)
            if nxt is None:
                heappop(heap)
            else:
                heapreplace(heap, (nxt.at_ns, device, nxt, it))

    def iter_device(self, device: int, transport: Transport) -> Iterator[Send]:
        """The sends of one device (of any shard), in its own order; the same as its share of ``sends()``."""
        self._check(device)
        return _transport(transport)(Device(self._cfg, device))

    def expected_events(self) -> int:
        """How many trackable (id-carrying) events ``sends("ws")`` yields (``sends("http")``: the same)."""
        if self._expected is None:
            self._expected = sum(len(events) for d in self.devices
                                 for _, events in Device(self._cfg, d).ticks())
        return self._expected


def _transport(name: str) -> Callable[[Device], Iterator[Send]]:
    try:
        return TRANSPORTS[name]
    except KeyError:
        raise UsageError(f"unknown transport {name!r}: use one of {', '.join(TRANSPORTS)}") from None
