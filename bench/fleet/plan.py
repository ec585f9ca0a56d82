"""The plan: which device sends which events at which intended time, over WebSocket or HTTP.

Theory of operation
-------------------
The plan is pure scheduling (STYLE.md, "Fleet simulation is pure scheduling"): no sockets, no event loop, no
clock. Times are integer nanoseconds since the run's start (t = 0); the runner maps them onto its monotonic
clock and measures latency from these *intended* times, so a stalled server cannot hide its stall.

1. Each device (``bench.fleet.device.Device``) makes its events as ticks (an init, or a burst of
   events_per_message events) from its own random stream, seeded from (seed, device index). Sharding and
   transport change nothing in that stream.
2. A transport shapes a device's ticks into ``Send``\\ s:
   - ``"ws"``: one message per tick, at the tick's time (so ``created_ns == at_ns``), plus a ``heartbeat``
     every ``heartbeat_s`` with a seeded phase. The first Send of a device is its ``init``.
   - ``"http"``: the same events, queued and condensed per device into one request every ``http_flush_s``
     (seeded phase per device; tracking-api.md, "Track via HTTP"), the rest within a second after the end of
     the run (at the device's phase, so the fleet does not flush at one instant); a flush of
     more than ``http_max_events`` events is split into several requests at the same time. No heartbeats
     (contract.md, "Messages": WebSocket only).
3. ``sends()`` merges the devices of a shard through a heap keyed by (at_ns, device): non-decreasing at_ns,
   ties in device order, and within a device in its own order. Each device enters the heap as a placeholder at
   its connect time and is built only then, so a long ramp costs nothing up front. Shard k of n owns devices
   d with d % n == k; the union of the shards, merged by the same key, is the unsharded plan.
4. Just in time: a device's Send (and its events) is built when it comes up in the merge, never earlier.
   Each shaper keeps ``device.due_ns``, the time of the device's next Send, which the heap orders by; a
   device that waits holds no event and no Send. So memory stays flat whatever the fleet, and the cyclic
   garbage collector, which walks every young object still alive, finds no pile of waiting Sends.
5. ``expected_events()`` replays the devices' random draws without building anything
   (``bench.fleet.device.count_events``).

Events carry no ``date``: the plan cannot know wall time, and tracking-api.md lets the server use its
receive time when ``date`` is missing. A Send holds its events as the bytes they go out as
(``bench.fleet.send``); payloads are encoded once per plan (see ``content`` and ``device.track_wire``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from heapq import heapify, heappop, heapreplace
from typing import Any

from bench.fleet.clients import ClientDevice, ClientPlan, ClientSend, Identity, client_sends, identity
from bench.fleet.device import ID_STRIDE, Device, FleetConfig, count_events
from bench.fleet.send import Send, WireSend, make_send, make_wire
from bench.profiles import DEFAULT, Profile
from bench.protocol.errors import UsageError
from bench.protocol.events import EventId
from bench.protocol.message import Transport
from bench.scenario import Scenario

#: HTTP: what no periodic flush has carried by the end of the run goes within this long after it, each device
#: at its own phase (see ``http_sends``).
FINAL_FLUSH_NS = 1_000_000_000


# --- transports: a device's ticks shaped into Sends ------------------------------------------------------
# A shaper returns the generator of a device's Sends; before it yields each, it sets ``device.due_ns`` to the
# time of the next one (None: no more), and it sets it for the first before it starts. A Send is built only
# when its time comes up in the merge: the plan holds no Send, no event, for a device that waits (and the
# garbage collector gets no growing pile of waiting objects to walk).


#: How a shaper builds what it yields: ``make_send`` (Sends) or ``make_wire`` (the hot path's WireSends).
Make = Callable[..., Any]


def ws_sends(device: Device, make: Make = make_send) -> Iterator[Any]:
    """A device's WebSocket sends: each tick one message, heartbeats in between (on a tie, the tick first)."""
    return device.sends_made(make, device.cfg.heartbeat_ns)  # due_ns: the first init's time from the start


def http_sends(device: Device, make: Make = make_send) -> Iterator[Any]:
    """A device's HTTP requests: its events queued, flushed every ``http_flush_s``, the rest after the end."""
    cfg = device.cfg
    phase = device.phase_ns(cfg.flush_ns, "http-flush")
    flush_at = device.connect_ns + phase
    # What no flush has carried by the end goes right after it, each device at its own phase within
    # FINAL_FLUSH_NS: devices' timers are independent, and one instant for the whole fleet would be a burst
    # no fleet makes (it would measure the generator and the server on a thundering herd of its own).
    final = cfg.end_ns + phase * min(cfg.flush_ns, FINAL_FLUSH_NS) // cfg.flush_ns
    ticks = device.sends()
    first = device.due_ns  # the first init, which waits for the first flush (or the final one)
    device.due_ns = (flush_at if flush_at <= cfg.end_ns else final) if first is not None else None
    return _http(device, ticks, first, flush_at, final, make)


def _http(device: Device, ticks: Iterator[Send], tick_at: int | None, flush_at: int, final: int,
          make: Make) -> Iterator[Any]:
    # device.due_ns serves two generators here: ``ticks`` sets it to its next tick's time (kept in tick_at),
    # and this one then sets it to its next request's time, for the merge.
    cfg, index = device.cfg, device.index
    period, cap, end = cfg.flush_ns, cfg.http_max_events, cfg.end_ns
    while tick_at is not None:
        # the flush that takes this tick: the first of the device's grid at or after it (tracking-api.md,
        # "Track via HTTP"); an event created exactly at a flush time still makes that flush
        if tick_at > flush_at:
            flush_at += period * ((tick_at - flush_at + period - 1) // period)
        parts: list[bytes] = []
        ids: list[EventId] = []
        created: list[int] = []
        while tick_at is not None and tick_at <= flush_at:
            tick = next(ticks)
            parts += tick.parts
            ids += tick.ids  # every event of a tick carries an id (no heartbeats over HTTP)
            created += tick.created_ns
            tick_at = device.due_ns
        at = flush_at if flush_at <= end else final  # what is left at the end goes right after it
        # a flush of more than cap events: several requests (popped as they go: see Device.sends on why
        # a waiting generator should hold nothing)
        requests = [make(at, index, tuple(parts[start:start + cap]), tuple(ids[start:start + cap]),
                         tuple(created[start:start + cap]))
                    for start in reversed(range(0, len(parts), cap))]
        del parts, ids, created, tick
        due = None
        if tick_at is not None:
            due = flush_at + period * ((tick_at - flush_at + period - 1) // period)
            due = due if due <= end else final
        while requests:
            device.due_ns = at if len(requests) > 1 else due
            yield requests.pop()


#: Table dispatch: transport name -> the shaper of one device's sends.
TRANSPORTS: dict[str, Callable[[Device, Make], Iterator[Any]]] = {"ws": ws_sends, "http": http_sends}


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
        # the scenario's clients (bench.fleet.clients); None: every device as without them
        self._clients = ClientPlan(self._cfg, scenario.clients) if scenario.clients is not None else None

    @property
    def end_ns(self) -> int:
        """The end of the run in (real) ns: duration_s as the plan rounds it, over the time scale. No event
        is created from then on."""
        clients = self._clients
        return self._cfg.end_ns if clients is None else clients.real(self._cfg.end_ns)

    def profile_of(self, device: int) -> Profile | None:
        """Device ``device``'s client profile, or None when it is planned as without clients (only devices
        with one send ``ClientSend``)."""
        clients = self._clients
        if clients is None or clients.plain(device):
            return None
        return clients.profile(device)

    @property
    def has_clients(self) -> bool:
        """Devices of the fleet may behave like client modules (their sends are ``ClientSend`` sends): a
        profile other than the default has a share, or a storm or time compression is asked for. Decided
        from the scenario alone, never device by device (a Locust fleet numbers millions)."""
        clients = self._clients
        if clients is None:
            return False
        c = clients.clients
        return (c.time_scale != 1.0 or c.outage is not None or c.release is not None
                or any(w > 0 and name != DEFAULT.name for name, w in c.shares))

    def _check(self, device: int) -> None:
        if not 0 <= device < self.scenario.devices:
            raise ValueError(f"device {device} is not in a fleet of {self.scenario.devices}")

    def device_id(self, device: int) -> str:
        """The deviceId string of a device of the fleet (any shard's)."""
        self._check(device)
        return self._cfg.seeds.device_id(device)

    def connect_at_ns(self, device: int) -> int:
        """When a device comes online: devices arrive evenly over the ramp."""
        self._check(device)
        clients = self._clients
        return self._cfg.connect_ns(device) if clients is None else clients.online_at_ns(device)

    def sends(self, transport: Transport) -> Iterator[Send]:
        """Every send of this shard, merged across devices in non-decreasing ``at_ns``, generated lazily.

        Raises:
            UsageError: an unknown transport (at the call, not at the first send), or a fleet with client
                devices (``mixed_sends`` yields theirs too).
        """
        return self._merge(self._shaper(transport, plain=True), make_send)

    def wire_sends(self, transport: Transport) -> Iterator[WireSend]:
        """``sends``, each as the hot path sends it (``WireSend``: its bytes, ids and times, no parts).

        Raises:
            UsageError: an unknown transport (at the call, not at the first send), or a fleet with client
                devices (``mixed_wire_sends`` yields theirs too).
        """
        return self._merge(self._shaper(transport, plain=True), make_wire)

    def mixed_sends(self, transport: Transport) -> Iterator[Send | ClientSend]:
        """``sends`` of a fleet that may have client devices: theirs are ``ClientSend``\\ s.

        Raises:
            UsageError: an unknown transport, or client devices over HTTP.
        """
        return self._merge(self._shaper(transport), make_send)

    def mixed_wire_sends(self, transport: Transport) -> Iterator[WireSend | ClientSend]:
        """``wire_sends`` of a fleet that may have client devices (the hot path's): theirs are
        ``ClientSend``\\ s.

        Raises:
            UsageError: an unknown transport, or client devices over HTTP.
        """
        return self._merge(self._shaper(transport), make_wire)

    def _shaper(self, transport: str, plain: bool = False) -> Callable[[Device, Make], Iterator[Any]]:
        """The shaper of ``transport``; with clients, devices that have a profile are shaped by it (WS only:
        every module the profiles imitate speaks WebSocket). ``plain``: a fleet with client devices is
        refused (the caller takes ``Send`` or ``WireSend`` only)."""
        shape = _transport(transport)
        if self._clients is None:
            return shape
        if plain and self.has_clients:
            raise UsageError("this fleet has client devices (bench.fleet.clients): their sends are "
                             "ClientSends, which only the mixed sends yield")
        if transport != "ws" and self.has_clients:
            raise UsageError("client profiles, outages, releases and time_scale imitate the WebSocket "
                             "modules: run this scenario with --transport ws")
        return lambda device, make: client_sends(device) if isinstance(device, ClientDevice) \
            else shape(device, make)

    def _device(self, index: int) -> Device:
        """Device ``index``, a ``ClientDevice`` when it behaves like a client module."""
        clients = self._clients
        if clients is None or clients.plain(index):
            return Device(self._cfg, index)
        return ClientDevice(self._cfg, index, clients)

    def _merge(self, shape: Callable[[Device, Make], Iterator[Any]], make: Make) -> Iterator[Any]:
        """The shard's devices' sends merged by (due time, position in the shard)."""
        cfg, devices = self._cfg, self.devices
        # One int per device in the heap: (due_ns << shift) | position in the shard, so the heap orders by
        # time, then device, and holds nothing the garbage collector walks. A device enters as a placeholder
        # at its connect time and is built only when that comes up, so a long ramp costs nothing up front.
        shift = max(1, len(devices).bit_length())
        mask = (1 << shift) - 1
        states: list[Device | None] = [None] * len(devices)
        gens: list[Iterator[Any] | None] = [None] * len(devices)
        clients = self._clients
        real = clients.real if clients is not None else None
        heap = [(cfg.connect_ns(d) if real is None else real(cfg.connect_ns(d))) << shift | pos
                for pos, d in enumerate(devices)]
        heapify(heap)
        while heap:
            pos = heap[0] & mask
            it, device = gens[pos], states[pos]
            send = None
            if it is None or device is None:  # the placeholder: the device comes online now
                index = devices[pos]
                device = states[pos] = Device(cfg, index) if real is None else self._device(index)
                gens[pos] = shape(device, make)
            else:
                send = next(it)  # due_ns said there is one
            due = device.due_ns
            if due is None:
                heappop(heap)
                states[pos] = gens[pos] = None
            else:
                heapreplace(heap, due << shift | pos)
            if send is not None:
                yield send

    def iter_device(self, device: int, transport: Transport) -> Iterator[Send]:
        """The sends of one device (of any shard), in its own order; the same as its share of ``sends()``.

        Raises:
            UsageError: a client device (``mixed_device_sends`` yields its ``ClientSend``\\ s).
        """
        self._check(device)
        if self.profile_of(device) is not None:
            raise UsageError(f"device {device} is a client device: its sends are ClientSends")
        return _transport(transport)(Device(self._cfg, device), make_send)

    def mixed_device_sends(self, device: int, transport: Transport) -> Iterator[Send | ClientSend]:
        """``iter_device`` of any device: a client device's are ``ClientSend``\\ s."""
        self._check(device)
        return self._shaper(transport)(self._device(device), make_send)

    def profile_counts(self) -> dict[str, int]:
        """How many devices of the fleet (every shard) each profile has, in the scenario's order."""
        clients = self._clients
        if clients is None:
            return {"default": self.scenario.devices}
        counts = dict.fromkeys((name for name, _ in clients.clients.shares), 0)
        for d in range(self.scenario.devices):
            counts[clients.profile(d).name] += 1
        return counts

    def identities(self, keys: Iterable[EventId]) -> list[Identity]:
        """The identity (``bench.fleet.clients.identity``) of each event ``keys`` names (device by device):
        what reconciling colliding ids compares with the target's ``stored-ids?by=event``. Builds again the
        sends of each device a key belongs to (key // ID_STRIDE, any shard's); a key no device made is left
        out."""
        by_device: dict[int, set[EventId]] = {}
        for key in keys:
            if isinstance(key, int) and 0 <= key // ID_STRIDE < self.scenario.devices:
                by_device.setdefault(key // ID_STRIDE, set()).add(key)
        out: list[Identity] = []
        for device in sorted(by_device):
            wanted = by_device[device]
            for send in self.mixed_device_sends(device, "ws"):
                ids = send.ids
                if not ids or wanted.isdisjoint(ids):
                    continue
                events = [e for e in send.events if e.id is not None]  # parallel to ids: beats carry none
                out += [identity(e) for key, e in zip(ids, events, strict=True) if key in wanted]
        return out

    def expected_events(self) -> int:
        """How many trackable (id-carrying) events ``sends("ws")`` yields (``sends("http")``: the same)."""
        if self._expected is None:
            # the same random draws as sends(), without building a device or an event (bench.fleet.device)
            cfg, clients = self._cfg, self._clients
            self._expected = sum(count_events(cfg, d) if clients is None or clients.plain(d)
                                 else _client_events(ClientDevice(cfg, d, clients)) for d in self.devices)
        return self._expected


def _client_events(device: ClientDevice) -> int:
    """How many events a client device sends (each once: re-sends are the transport's)."""
    return sum(len(send.ids) for send in client_sends(device))


def _transport(name: str) -> Callable[[Device, Make], Iterator[Any]]:
    try:
        return TRANSPORTS[name]
    except KeyError:
        raise UsageError(f"unknown transport {name!r}: use one of {', '.join(TRANSPORTS)}") from None
