"""One simulated device: its attributes, its sessions and the events it creates, at intended times.

A ``Device`` draws everything from its own random stream, seeded from (seed, device index) only, in a fixed
order: first its attributes, then its timeline. Nothing it draws depends on the transport or the shard, so the
WebSocket and HTTP plans, and every sharding of them, see the very same events.

Timeline of a device (all times in integer ns since the run's start, never a clock)::

    connect ──init──ev──ev─ev────ev──┤ session end ····· idle gap ····· init──ev──ev──┤ ... ──┤ duration
              └ a new sessionId per session; events come in bursts of events_per_message

- The device comes online at ``connect_ns`` (the ramp) and starts a session there: an ``init`` first
  (contract.md, "Sessions"), with the extra data (platform, osVersion, totalRam, version, language/locale).
- Events arrive as a seeded Poisson process at ``device_rate / events_per_message`` bursts per second, or on a
  fixed interval with a seeded phase (``arrival = "fixed"``). A burst is ``events_per_message`` events created
  at the same instant. The rate counts only while a session is open; inits are on top of it.
- With ``sessions.length`` > 0 a session lasts length x U(0.5, 1.5), then the device is idle for
  idle_gap x U(0.5, 1.5) and starts a new session: a new ``init`` with a new sessionId.
- contract.md, "Sessions": 30 minutes of silence end a session. Whatever the scenario says, a burst that comes
  ``SILENCE_NS`` or more after the device's previous event is preceded by a new ``init`` and sessionId.
- Nothing is created before ``connect_ns`` or at/after the end of the run.

The random draws, in order: 5 for the attributes; per session 1+ for the sessionId (redrawn while it equals
the previous one), 1 for the session length (when sessions end), 1 for the first gap (when there are events);
per event 1 for its kind, then 2 for ``event`` and ``error`` (name, payload variant), 1 for ``props``
(variant), 0 for ``userid``; per burst 1 for the next gap (Poisson only); per session 1 for the idle gap (when
sessions end). Heartbeats and HTTP flushes draw nothing (their phases are hashes of seed and device).

Two functions walk that stream. ``Device.sends`` makes its events and messages, one tick at a time: it makes a
tick's events only when the tick is due, then draws the next tick's time, so it always knows when it is due
next (``due_ns``, which the plan's merge orders devices by) and holds nothing built for a device that waits.
``count_events`` replays the same draws and only counts, so ``Plan.expected_events()`` builds no device and
no event. The first is the timeline unrolled into a loop over pending ticks, for speed; the second is the
timeline as written above. tests/fleet check that they agree on many scenarios, seeds and shardings, and pin
the stream's bytes.

Speed, because the plan feeds the hot path: a device makes its events as bytes, not values (``Send``
holds them so): the common ``event`` type from byte templates (``track_wire``), the rarer types as values
built without their dataclass ``__init__`` (``_Event``), then serialized. Devices that draw the same
attributes share one ``Extra``, and a device's heartbeat is built and encoded once, when first due. Where
``bench._native`` is built (``bench.native``), runs of the common ``event`` are written by its ``track_run``
in C: the same draws in the same order and the same bytes as ``Device._events_py``, which stays as its twin;
and its ``Ticks`` walks the timeline (``Device._sends_py``'s twin: the same messages, draws and ``due_ns``;
inits, the rarer kinds and the heartbeat's bytes are still made by the Python methods here, which
``sends_made`` hands it with the device's state: the C side spells no field name of ``Device``).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar, cast

import orjson

from bench.fleet.content import Content, Seeds
from bench.fleet.send import Send, WireSend, encode_parts, event_part, make_send, make_wire
from bench.native import twins
from bench.protocol.errors import UsageError
from bench.protocol.events import DeviceKey, Error, Event, Extra, Heartbeat, Init, Props, Track, UserId
from bench.scenario import MAX_DEVICE_EVENTS, Scenario

#: contract.md, "Sessions": the silence after which the next event needs a new init and sessionId.
SILENCE_NS = 30 * 60 * 1_000_000_000
#: Event id = device * ID_STRIDE + per-device sequence (from 1): unique within a run, and below 2**53 (exact
#: in any JSON reader) because a scenario has at most 2**25 devices.
ID_STRIDE = MAX_DEVICE_EVENTS + 1
#: contract.md, "Messages": sessionId is a positive integer; real clients send up to 8 digits.
MAX_SESSION_ID = 99_999_999
NS = 1_000_000_000
#: What a device's messages are built as: ``Send`` (``make_send``) or the hot path's ``WireSend``.
_S = TypeVar("_S", Send, WireSend)
#: Random draws of a device's attributes (platform, OS version, RAM, version, locale): one each.
ATTRIBUTE_DRAWS = 5
#: Random draws after the kind draw of one event, by kind (the order of ``KINDS``).
KIND_DRAWS = (2, 2, 0, 1)


class _Event(Event):
    """Builds an event of class ``cls`` as ``cls(device_id=device, session_id=session, id=event_id, name=name,
    user_id=user, payload=payload, extra=extra, device_key=key)`` would, the other fields at their defaults.

    Why: the frozen dataclass ``__init__`` sets each field through ``object.__setattr__``, and building events
    is most of the plan's work. This subclass adds no slot and lets plain attribute stores through (both
    ``__setattr__`` and ``__delattr__``, which share one type slot, are object's), so its stores are the
    interpreter's fast slot stores; the last one makes the object a ``cls`` (``__class__`` assignment between
    classes of the same layout). The result is exactly a ``cls`` (``type(e) is cls``, equal to the one the
    dataclass ``__init__`` builds); the asserts below keep the field list and that equality true.
    """

    __slots__ = ()
    __setattr__ = object.__setattr__
    __delattr__ = object.__delattr__

    def __init__(self, cls: type[Event], device: str, session: int | None, event_id: int | None,
                 name: str | None, user: str | None, payload: dict[str, Any] | None, extra: Extra | None,
                 key: DeviceKey = "deviceId") -> None:
        this: Any = self  # the dataclass's fields are read-only to the type checker: they are set here, once
        this.device_id = device
        this.session_id = session
        this.id = event_id
        this.name = name
        this.date = None
        this.user_id = user
        this.anon_id = None
        this.payload = payload
        this.extra = extra
        this.device_key = key
        this.unknown = None
        this.__class__ = cls


assert tuple(f.name for f in fields(Event)) == (
    "device_id", "session_id", "id", "name", "date", "user_id", "anon_id", "payload", "extra", "device_key",
    "unknown"), "bench.fleet.device._Event sets a stale list of fields"
_check: Event = _Event(Track, "d", 1, 2, "n", "u", {}, None)
assert type(_check) is Track and _check == Track(
    device_id="d", session_id=1, id=2, name="n", user_id="u", payload={}), "_Event builds another event"


def to_ns(seconds: float) -> int:
    return round(seconds * NS)


# --- the ``event`` type as bytes ---------------------------------------------------------------------------
# Most events of a plan are plain ``event``s: the device writes them from byte templates instead of building
# an Event and a dict for orjson. The bytes are what ``event_part`` writes (``Event.to_obj``'s key order:
# type, name, sessionId, id, userId, deviceId, payload); ``track_wire`` checks that on a sample of every
# name and variant, and tests/fleet pin the plan's bytes.
#
#     head(name) + session_part(session) + b"%d" % id + device_part(device, user) + tail(payload)

def session_part(session: int) -> bytes:
    """The sessionId's value and the key after it."""
    return b'%d,"id":' % session


def device_part(device_id: str, user_id: str | None) -> bytes:
    """The userId (when set) and deviceId of a device's events."""
    user = b',"userId":' + orjson.dumps(user_id) if user_id is not None else b""
    return user + b',"deviceId":' + orjson.dumps(device_id)


def track_wire(name: str, pool: tuple[dict[str, Any] | None, ...]) -> tuple[bytes, tuple[bytes, ...]]:
    """The template of the ``event`` named ``name``: its head, and one tail per payload of its pool.

    Raises:
        AssertionError: the template writes other bytes than ``event_part`` (a bug, never input).
    """
    head = b'{"type":' + orjson.dumps(Track.TYPE.value) + b',"name":' + orjson.dumps(name) + b',"sessionId":'
    tails = tuple(b',"payload":' + orjson.dumps(p) + b"}" if p is not None else b"}" for p in pool)
    for user in (None, "user-sample"):
        for payload, tail in zip(pool, tails, strict=True):
            made = head + session_part(7) + b"%d" % 9 + device_part("dev", user) + tail
            sample = Track(device_id="dev", session_id=7, id=9, name=name, user_id=user, payload=payload)
            if made != event_part(sample):
                raise AssertionError(f"the byte template of event {name!r} writes {made!r}")
    return head, tails


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """The scenario in integer nanoseconds, plus the shared payload pools; one per plan."""

    scenario: Scenario
    content: Content
    seeds: Seeds             # the seed's per-device derivations
    end_ns: int
    ramp_ns: int
    burst: int               # events per burst (= events_per_message)
    burst_gap_ns: float      # mean time between bursts of one device; 0: the device sends no events
    poisson: bool
    session_ns: int          # mean session length; 0: one session for the whole run
    idle_ns: int
    heartbeat_ns: int        # 0: no heartbeats
    flush_ns: int
    http_max_events: int
    limits: tuple[float, ...]  # cumulative shares of the kinds of ``KINDS``, in that order
    # per event name, in the order of the scenario's event_names mix: (its byte template's head, one tail per
    # payload variant), see ``track_wire``; ``_track`` picks by the mix's bounds
    track_wire: tuple[tuple[bytes, tuple[bytes, ...]], ...] = field(repr=False, compare=False)
    track_bounds: tuple[float, ...] = field(repr=False, compare=False)
    # Devices that draw the same attributes share one Extra (a cache: frozen values, nobody mutates them).
    extras: dict[tuple[Any, ...], Extra] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(cls, s: Scenario) -> FleetConfig:
        rate = s.device_rate
        others = s.error_share + s.userid_share + s.props_share
        shares = (max(0.0, 1.0 - others), s.error_share, s.userid_share, s.props_share)
        cumulative = [sum(shares[: i + 1]) for i in range(len(shares))]
        cumulative[-1] = 2.0  # any u in [0, 1) lands, whatever the rounding of the sums
        content = Content.build(s)
        return cls(
            scenario=s, content=content, seeds=Seeds(s.seed), end_ns=to_ns(s.duration_s),
            ramp_ns=to_ns(s.connect_ramp_s),
            # at least 1 ns between bursts, so time always moves on (a fixed gap of 0 would never end)
            burst=s.events_per_message,
            burst_gap_ns=max(1.0, s.events_per_message * NS / rate) if rate > 0 else 0.0,
            poisson=s.arrival == "poisson", session_ns=to_ns(s.session_s), idle_ns=to_ns(s.idle_gap_s),
            heartbeat_ns=to_ns(s.heartbeat_s), flush_ns=to_ns(s.http_flush_s),
            http_max_events=s.http_max_events, limits=tuple(cumulative),
            track_wire=tuple(track_wire(name, content.track[name]) for name in s.event_names.values),
            track_bounds=s.event_names.bounds,
        )

    def connect_ns(self, device: int) -> int:
        """Devices arrive evenly over the ramp: device d of n at ramp * d / n."""
        return self.ramp_ns * device // self.scenario.devices

    def extra(self, platform: str, os_version: str, ram: int, version: str, locale: str) -> Extra:
        """The (shared) extra data of a device with these attributes, under the scenario's locale key."""
        key = (platform, os_version, ram, version, locale)
        found = self.extras.get(key)
        if found is None:
            as_language = self.scenario.locale_field == "language"  # the document's key, or the newer one
            found = self.extras[key] = Extra(
                platform=platform, os_version=os_version, total_ram=ram, version=version,
                language=locale if as_language else None, locale=None if as_language else locale)
        return found


def _too_many(index: int) -> UsageError:
    return UsageError(f"device {index} would send more than {ID_STRIDE - 1} events in one run; "
                      "lower the rate or the duration")


class Device:
    """One device of the fleet: its identity, attributes and state, and ``sends()``, its messages in order.

    ``due_ns`` is the intended time of the Send that the device's running ``sends()`` yields next (None: it
    has no more); the plan's merge reads it to order devices without building anything ahead of time.
    """

    __slots__ = (
        "_beat",
        "_device_b",
        "_heartbeat",
        "_session_b",
        "cfg",
        "connect_ns",
        "device_id",
        "due_ns",
        "extra",
        "index",
        "last_id",
        "next_id",
        "random",
        "session",
        "user_id",
    )
    cfg: FleetConfig
    index: int
    connect_ns: int
    device_id: str
    random: Callable[[], float]
    extra: Extra
    session: int
    next_id: int
    last_id: int
    user_id: str | None
    due_ns: int | None

    def __init__(self, cfg: FleetConfig, index: int) -> None:
        s = cfg.scenario
        self.cfg = cfg
        self.index = index
        self.connect_ns = cfg.connect_ns(index)
        self.device_id = cfg.seeds.device_id(index)
        self.random = rnd = cfg.seeds.device_rng(index).random
        platform = s.platforms.pick(rnd())  # attributes first, in this order: the stream is shared
        os_version = s.os_version_mix(platform).pick(rnd())
        ram, version, locale = s.total_ram.pick(rnd()), s.versions.pick(rnd()), s.locales.pick(rnd())
        self.extra = cfg.extra(platform, os_version, ram, version, locale)  # ATTRIBUTE_DRAWS draws
        self._heartbeat: Heartbeat | None = None
        self._beat: tuple[tuple[bytes, ...], bytes] | None = None  # the heartbeat's part and its message
        self.session = 0
        self._session_b = b""  # session_part(session): set by init, which comes first
        self._device_b = device_part(self.device_id, None)
        self.next_id = index * ID_STRIDE + 1
        self.last_id = (index + 1) * ID_STRIDE - 1
        self.user_id = None
        self.due_ns = self.connect_ns if self.connect_ns < cfg.end_ns else None  # the first init

    @property
    def heartbeat(self) -> Heartbeat:
        """The device's heartbeat event (the same object every time)."""
        if self._heartbeat is None:
            # tracking-api.md, "Event Types": a heartbeat needs machineId; it carries no session and no id.
            beat = _Event(Heartbeat, self.device_id, None, None, None, None, None, None, "machineId")
            self._heartbeat = cast(Heartbeat, beat)  # _Event made it a Heartbeat
        return self._heartbeat

    def phase_ns(self, period_ns: int, purpose: str) -> int:
        """A seeded phase in (0, period] so periodic sends of many devices do not line up."""
        return max(1, round(period_ns * (1.0 - self.cfg.seeds.unit(purpose, self.index))))

    def sends(self, beat_ns: int = 0) -> Iterator[Send]:
        """The device's messages in time order as ``Send``\\ s (see ``sends_made``)."""
        return self.sends_made(make_send, beat_ns)

    def sends_made(self, make: Callable[..., _S], beat_ns: int = 0) -> Iterator[_S]:
        """The device's messages in time order: one per init and per burst, at its creation time, each
        built by ``make`` (``make_send``, or ``make_wire`` for the hot path: the same arguments).

        ``bench._native.Ticks`` (C) walks the timeline when it is built, ``_sends_py`` otherwise: the same
        messages, draws and ``due_ns``; see ``_sends_py``.
        """
        cfg = self.cfg
        c_ticks = twins.Ticks
        if c_ticks is None or cfg.end_ns >= 1 << 61 or cfg.session_ns >= 1 << 61 or cfg.idle_ns >= 1 << 61:
            return self._sends_py(make, beat_ns)
        beat_at = self.connect_ns + self.phase_ns(beat_ns, "heartbeat") if beat_ns else cfg.end_ns
        # Everything the C side reads or writes of the device is named here, not in C: its state, the two
        # slots it writes back after each message, and the Python of the rare steps.
        ticks: Iterator[_S] = c_ticks(
            (self, _DUE_SLOT, _NEXT_ID_SLOT),
            (self.random, self.index, self.connect_ns, self.next_id, self.last_id, self._session_b,
             self._device_b),
            (self._init_for_c, self._events_after_for_c, self._beat_wire, make),
            WireSend if make is make_wire else None, beat_ns, beat_at, cfg.end_ns, cfg.session_ns,
            cfg.idle_ns, cfg.burst_gap_ns, cfg.poisson, cfg.burst, cfg.limits[0], cfg.track_wire,
            cfg.track_bounds)
        return ticks

    def _init_for_c(self, next_id: int) -> tuple[bytes, int, bytes]:
        """``init`` for ``bench._native.Ticks``: the id to start from in, the state it changed out."""
        self.next_id = next_id
        part = self.init()
        return part, self.next_id, self._session_b

    def _events_after_for_c(self, made: list[bytes], u: float, n: int,
                            next_id: int) -> tuple[tuple[bytes, ...], int, bytes]:
        """``_events_after`` for ``bench._native.Ticks``: the id to start from in, the state it changed out
        (a ``userid`` event changes the device's bytes)."""
        self.next_id = next_id
        parts = self._events_after(made, u, n)
        return parts, self.next_id, self._device_b

    def _sends_py(self, make: Callable[..., _S], beat_ns: int = 0) -> Iterator[_S]:
        """``sends_made`` in Python, the twin of ``bench._native.Ticks``.

        With ``beat_ns`` > 0, a heartbeat every ``beat_ns`` from a seeded phase after ``connect_ns`` until the
        end of the run, in between (on a tie, the events first). The timeline is the module docstring's; each
        tick's events are made only when the tick is yielded, and the next tick's time is drawn right after
        them (the stream's order), so ``due_ns`` is always known and nothing is built ahead of its time.

        Raises:
            UsageError: the device would use up its block of ids (at the event that would).
        """
        cfg, rnd, index = self.cfg, self.random, self.index
        end, session_ns, idle_ns, mean = cfg.end_ns, cfg.session_ns, cfg.idle_ns, cfg.burst_gap_ns
        poisson, log = cfg.poisson, math.log
        burst = self.burst
        t = stop = last = at = self.connect_ns  # session start and end, previous tick, pending tick
        kind = _OPEN  # of the pending tick at `at`: an init that opens a session, a burst, or an init first
        beat_at = t + self.phase_ns(beat_ns, "heartbeat") if beat_ns else end
        nxt: int | None = at if at < end else None
        # The pending tick's events wait here while the next tick's time is drawn, and leave as they are
        # yielded: a suspended generator keeps its locals alive, and thousands of devices each holding their
        # last events would give the garbage collector a large, ever-young pile to walk.
        box: list[tuple[bytes, ...]] = []
        while nxt is not None:
            if beat_at < at:
                beat_at = yield from self._beats(make, beat_at, at, beat_ns, at)
            first = self.next_id  # every event takes the next id: a tick's ids are a range
            if kind is _BURST:
                box.append(burst())  # one call per burst: the C twin (Ticks) is the fast path
                last = at
                at += int(-log(1.0 - rnd()) * mean) if poisson else int(mean)
            else:
                box.append((self.init(),))
                if kind is _OPEN:
                    t = last = at
                    stop = end if not session_ns else min(end, t + max(1, int(session_ns * (0.5 + rnd()))))
                    at = stop
                    if mean:
                        at = t + (int(-log(1.0 - rnd()) * mean) if poisson else int(rnd() * mean))
            created = nxt
            if kind is _SILENCE:  # its burst, at the same time
                kind = _BURST
            elif at < stop:
                # contract.md, "Sessions": 30 minutes of silence end a session
                kind = _SILENCE if at - last >= SILENCE_NS else _BURST
                nxt = at
            elif session_ns:  # the session ends; the next opens after an idle gap
                at = stop + int(idle_ns * (0.5 + rnd()))
                kind, nxt = _OPEN, at if at < end else None
            else:
                nxt = None
            if nxt is not None:
                self.due_ns = nxt if nxt <= beat_at else beat_at
            else:
                self.due_ns = beat_at if beat_at < end else None
            taken = self.next_id - first
            ids = (first,) if taken == 1 else tuple(range(first, first + taken))
            yield make(created, index, box.pop(), ids)
        if beat_at < end:
            yield from self._beats(make, beat_at, end, beat_ns, None)

    def _beats(self, make: Callable[..., _S], at: int, until: int, period: int,
               then: int | None) -> Generator[_S, None, int]:
        """Heartbeats from ``at`` every ``period`` while before ``until`` (``then``: the Send due after them).

        Returns the time of the next heartbeat.
        """
        parts, encoded = self._beat_wire()
        index = self.index
        while at < until:
            nxt = at + period
            self.due_ns = nxt if nxt < until else then
            yield make(at, index, parts, (), (at,), encoded)
            at = nxt
        return at

    def _beat_wire(self) -> tuple[tuple[bytes, ...], bytes]:
        """The heartbeat's part and its message (built on first use, then the same)."""
        if self._beat is None:
            beat: tuple[bytes, ...] = (event_part(self.heartbeat),)
            self._beat = beat, encode_parts(beat)
        return self._beat

    def burst(self) -> tuple[bytes, ...]:
        """The events of one burst as bytes (``event_part``), each of a kind drawn by share (table dispatch
        over the cumulative shares).

        Raises:
            UsageError: the device would use up its block of ids.
        """
        cfg, rnd = self.cfg, self.random
        limits = cfg.limits
        if cfg.burst == 1:
            u = rnd()
            return (self._track() if u < limits[0] else self._kind(u),)
        return self._events(cfg.burst)

    def _kind(self, u: float) -> bytes:
        """The event of the kind that the kind draw ``u`` picks (table dispatch over the cumulative shares):
        the one dispatch of ``burst``, ``_events_after`` and ``_events_py``; ``burst`` and ``_events_py``
        test the common kind first (a compare, no call), so this runs for the rarer kinds."""
        return _KIND_MAKERS[bisect_right(self.cfg.limits, u)](self)

    def _events(self, n: int) -> tuple[bytes, ...]:
        """``n`` events of drawn kinds: runs of the common kind by ``bench._native.track_run`` (C) when it
        is built, else by ``_events_py``; the other kinds by the table, in Python."""
        track_run = twins.track_run
        if track_run is None:
            return self._events_py(n)
        cfg = self.cfg
        out: list[bytes] = []
        self.next_id, u = track_run(self.random, n, cfg.limits[0], cfg.track_wire, cfg.track_bounds,
                                     self._session_b, self._device_b, self.next_id, self.last_id, out)
        return tuple(out) if u is None else self._events_after(out, u, n)

    def _events_after(self, out: list[bytes], u: float, n: int) -> tuple[bytes, ...]:
        """``_events(n)`` after ``track_run`` made the events ``out`` and stopped at the kind draw ``u``:
        that event by the table, then runs of the common kind again, until ``n`` are made."""
        cfg = self.cfg
        limits = cfg.limits
        while True:
            if u < 0.0:
                raise _too_many(self.index)
            out.append(self._kind(u))
            if len(out) == n:
                return tuple(out)
            # the same draws and bytes as _events_py's loop, up to the next event of another kind
            track_run = twins.track_run
            assert track_run is not None  # only reached from _events, with it
            self.next_id, cut = track_run(self.random, n - len(out), limits[0], cfg.track_wire,
                                           cfg.track_bounds, self._session_b, self._device_b, self.next_id,
                                           self.last_id, out)
            if cut is None:
                return tuple(out)
            u = cut

    def _events_py(self, n: int) -> tuple[bytes, ...]:
        """``n`` events of drawn kinds: ``_track`` written out inline for the common kind (the same draws and
        bytes: a kind, a name, a payload variant), the other kinds by the table. The reference of
        ``_events`` with ``bench._native``."""
        cfg, rnd = self.cfg, self.random
        limits, wire, bounds = cfg.limits, cfg.track_wire, cfg.track_bounds
        limit = limits[0]
        session_b, device_b = self._session_b, self._device_b
        event_id, last_id = self.next_id, self.last_id  # the next id, kept here and stored back after
        out: list[bytes] = []
        for _ in range(n):
            u = rnd()
            if u < limit:
                head, tails = wire[bisect_right(bounds, rnd())]
                if event_id > last_id:
                    raise _too_many(self.index)
                tail = tails[int(rnd() * len(tails))]
                out.append(b"%b%b%d%b%b" % (head, session_b, event_id, device_b, tail))
                event_id += 1
            else:
                self.next_id = event_id
                out.append(self._kind(u))
                event_id = self.next_id
                device_b = self._device_b  # a userid event changes it for the events after it
        self.next_id = event_id
        return tuple(out)

    def init(self) -> bytes:
        """A new session's ``init``, with a new sessionId (contract.md, "Sessions")."""
        session = self.session
        while session == self.session:  # a new session always gets a new sessionId
            session = 1 + int(self.random() * MAX_SESSION_ID)
        self.session = session
        self._session_b = session_part(session)
        return event_part(_Event(Init, self.device_id, session, self._take_id(), None, self.user_id, None,
                                 self.extra))

    def _take_id(self) -> int:
        event_id = self.next_id
        if event_id > self.last_id:
            raise _too_many(self.index)
        self.next_id = event_id + 1
        return event_id

    def _track(self) -> bytes:
        rnd = self.random
        cfg = self.cfg
        head, tails = cfg.track_wire[bisect_right(cfg.track_bounds, rnd())]  # event_names.pick, by index
        event_id = self.next_id  # _take_id, inline: this is the common event
        if event_id > self.last_id:
            raise _too_many(self.index)
        self.next_id = event_id + 1
        tail = tails[int(rnd() * len(tails))]
        return b"%b%b%d%b%b" % (head, self._session_b, event_id, self._device_b, tail)

    def _error(self) -> bytes:
        rnd = self.random
        cfg = self.cfg
        name = cfg.scenario.error_names.pick(rnd())
        pool = cfg.content.errors[name]
        return event_part(_Event(Error, self.device_id, self.session, self._take_id(), name, self.user_id,
                                 pool[int(rnd() * len(pool))], self.extra))

    def _userid(self) -> bytes:
        # later events of this device carry it, as the modules do
        self.user_id = user = f"user-{self.device_id[:12]}"
        self._device_b = device_part(self.device_id, user)
        event = _Event(UserId, self.device_id, self.session, self._take_id(), None, user, None, None)
        return event_part(event)

    def _props(self) -> bytes:
        pool = self.cfg.content.props
        return event_part(_Event(Props, self.device_id, self.session, self._take_id(), None, self.user_id,
                                 pool[int(self.random() * len(pool))], None))


#: Where ``bench._native.Ticks`` writes ``due_ns`` and ``next_id`` back after each message: the slots'
#: descriptors, handed to it, so that no field name is spelled in C.
_DUE_SLOT: object = Device.due_ns  # type: ignore[misc]  # the descriptor, not a value
_NEXT_ID_SLOT: object = Device.next_id  # type: ignore[misc]
#: The kinds of pending tick in ``Device.sends``: an init that opens a session, a burst, an init that a
#: silence of 30 minutes forces before a burst.
_OPEN, _BURST, _SILENCE = "open", "burst", "silence"
#: Table dispatch: the kinds of events in the order of ``FleetConfig.limits`` and ``KIND_DRAWS``.
KINDS = ("event", "error", "userid", "props")
_KIND_MAKERS: tuple[Callable[[Device], bytes], ...] = (Device._track, Device._error, Device._userid,
                                                      Device._props)


def count_events(cfg: FleetConfig, index: int) -> int:
    """How many events device ``index`` creates: the same draws as ``Device``, no device or event built.

    The timeline of the module docstring, written plainly; ``Device.sends`` is the same, unrolled for speed.

    Raises:
        UsageError: the device would use up its block of ids.
    """
    rnd = cfg.seeds.device_rng(index).random
    for _ in range(ATTRIBUTE_DRAWS):
        rnd()
    end, t = cfg.end_ns, cfg.connect_ns(index)
    session_ns, idle_ns, mean = cfg.session_ns, cfg.idle_ns, cfg.burst_gap_ns
    poisson, log, burst, limits = cfg.poisson, math.log, cfg.burst, cfg.limits
    track = limits[0]
    count = session = 0
    while t < end:
        count, session = count + 1, _new_session(rnd, session)  # the init
        last = t
        stop = end if not session_ns else min(end, t + max(1, int(session_ns * (0.5 + rnd()))))
        if mean:
            at = t + (int(-log(1.0 - rnd()) * mean) if poisson else int(rnd() * mean))
            while at < stop:
                if at - last >= SILENCE_NS:
                    count, session = count + 1, _new_session(rnd, session)
                for _ in range(burst):  # Device.burst's draws: per event a kind, then its content's
                    u = rnd()
                    if u < track:  # the common case first: the same as KIND_DRAWS[bisect_right(limits, u)]
                        rnd()
                        rnd()
                    else:
                        for _ in range(KIND_DRAWS[bisect_right(limits, u)]):
                            rnd()
                count += burst
                last = at
                at += int(-log(1.0 - rnd()) * mean) if poisson else int(mean)
        if not session_ns:
            break
        t = stop + int(idle_ns * (0.5 + rnd()))
    if count > ID_STRIDE - 1:
        raise _too_many(index)
    return count


def _new_session(rnd: Callable[[], float], previous: int) -> int:
    """``Device.init``'s draws: a sessionId other than the previous one."""
    session = previous
    while session == previous:
        session = 1 + int(rnd() * MAX_SESSION_ID)
    return session
