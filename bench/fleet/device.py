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
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bench.fleet.content import Content, device_id, device_rng, unit
from bench.protocol.errors import UsageError
from bench.protocol.events import Error, Event, Extra, Heartbeat, Init, Props, Track, UserId
from bench.scenario import Scenario

#: contract.md, "Sessions": the silence after which the next event needs a new init and sessionId.
SILENCE_NS = 30 * 60 * 1_000_000_000
#: Event id = device * ID_STRIDE + per-device sequence (from 1): unique within a run, and below 2**53 (exact
#: in any JSON reader) because a scenario has at most 2**25 devices.
ID_STRIDE = 1 << 28
#: contract.md, "Messages": sessionId is a positive integer; real clients send up to 8 digits.
MAX_SESSION_ID = 99_999_999
NS = 1_000_000_000


def to_ns(seconds: float) -> int:
    return round(seconds * NS)


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """The scenario in integer nanoseconds, plus the shared payload pools; one per plan."""

    scenario: Scenario
    content: Content
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
    kinds: tuple[tuple[float, str], ...]   # (cumulative share, builder method), most common first

    @classmethod
    def build(cls, s: Scenario) -> FleetConfig:
        rate = s.device_rate
        others = s.error_share + s.userid_share + s.props_share
        limits = (max(0.0, 1.0 - others), s.error_share, s.userid_share, s.props_share)
        cumulative = [sum(limits[: i + 1]) for i in range(len(limits))]
        cumulative[-1] = 2.0  # any u in [0, 1) lands, whatever the rounding of the sums
        return cls(
            scenario=s, content=Content.build(s), end_ns=to_ns(s.duration_s), ramp_ns=to_ns(s.ramp_s),
            # at least 1 ns between bursts, so time always moves on (a fixed gap of 0 would never end)
            burst=s.events_per_message,
            burst_gap_ns=max(1.0, s.events_per_message * NS / rate) if rate > 0 else 0.0,
            poisson=s.arrival == "poisson", session_ns=to_ns(s.session_s), idle_ns=to_ns(s.idle_gap_s),
            heartbeat_ns=to_ns(s.heartbeat_s), flush_ns=to_ns(s.http_flush_s),
            http_max_events=s.http_max_events,
            kinds=tuple(zip(cumulative, ("_track", "_error", "_userid", "_props"), strict=True)),
        )

    def connect_ns(self, device: int) -> int:
        """Devices arrive evenly over the ramp: device d of n at ramp * d / n."""
        return self.ramp_ns * device // self.scenario.devices


class Device:
    """One device of the fleet. ``ticks()`` yields its (created_ns, events) in time order."""

    __slots__ = (
        "_kinds",
        "_random",
        "cfg",
        "connect_ns",
        "device_id",
        "extra",
        "heartbeat",
        "index",
        "last_id",
        "next_id",
        "session",
        "user_id",
        "user_name",
    )

    def __init__(self, cfg: FleetConfig, index: int) -> None:
        s = cfg.scenario
        self.cfg = cfg
        self.index = index
        self.connect_ns = cfg.connect_ns(index)
        self.device_id = device_id(s.seed, index)
        self._random = rnd = device_rng(s.seed, index).random
        platform = s.platforms.pick(rnd())  # attributes first, in this order: the stream is shared
        os_version = s.os_version_mix(platform).pick(rnd())
        ram, version, locale = s.total_ram.pick(rnd()), s.versions.pick(rnd()), s.locales.pick(rnd())
        as_language = s.locale_field == "language"  # the document's key, or the one newer modules send
        self.extra = Extra(platform=platform, os_version=os_version, total_ram=ram, version=version,
                           language=locale if as_language else None, locale=None if as_language else locale)
        # tracking-api.md, "Event Types": a heartbeat needs machineId; it carries no session and no id.
        self.heartbeat = Heartbeat(device_id=self.device_id, device_key="machineId")
        self.session = 0
        self.next_id = index * ID_STRIDE + 1
        self.last_id = (index + 1) * ID_STRIDE - 1
        self.user_id: str | None = None
        self.user_name = f"user-{self.device_id[:12]}"
        self._kinds: tuple[tuple[float, Callable[[], Event]], ...] = tuple(
            (limit, getattr(self, method)) for limit, method in cfg.kinds)

    def phase_ns(self, period_ns: int, purpose: str) -> int:
        """A seeded phase in (0, period] so periodic sends of many devices do not line up."""
        return max(1, round(period_ns * (1.0 - unit(self.cfg.scenario.seed, purpose, self.index))))

    def ticks(self) -> Iterator[tuple[int, tuple[Event, ...]]]:
        """(created_ns, events) of every session, burst and init, in time order (see the module docstring)."""
        cfg, rnd = self.cfg, self._random
        end, t = cfg.end_ns, self.connect_ns
        while t < end:
            yield t, (self._init(),)
            last = t
            stop = end if not cfg.session_ns else min(end, t + max(1, int(cfg.session_ns * (0.5 + rnd()))))
            if cfg.burst_gap_ns:
                at = t + self._gap(first=True)
                while at < stop:
                    if at - last >= SILENCE_NS:  # contract.md, "Sessions": 30 min of silence end a session
                        yield at, (self._init(),)
                    yield at, self._burst()
                    last = at
                    at += self._gap(first=False)
            if not cfg.session_ns:
                return
            t = stop + int(cfg.idle_ns * (0.5 + rnd()))

    def _gap(self, *, first: bool) -> int:
        mean = self.cfg.burst_gap_ns
        if self.cfg.poisson:
            return int(-math.log(1.0 - self._random()) * mean)
        return int(self._random() * mean) if first else int(mean)

    def _burst(self) -> tuple[Event, ...]:
        if self.cfg.burst == 1:
            return (self._event(),)
        return tuple(self._event() for _ in range(self.cfg.burst))

    def _event(self) -> Event:
        """One event; its kind drawn by share (table dispatch over the cumulative shares)."""
        u = self._random()
        for limit, make in self._kinds:
            if u < limit:
                return make()
        raise AssertionError("the last share limit is above 1")

    def _take_id(self) -> int:
        event_id = self.next_id
        if event_id > self.last_id:
            raise UsageError(f"device {self.index} would send more than {ID_STRIDE - 1} events in one run; "
                             "lower the rate or the duration")
        self.next_id = event_id + 1
        return event_id

    def _init(self) -> Init:
        session = self.session
        while session == self.session:  # a new session always gets a new sessionId
            session = 1 + int(self._random() * MAX_SESSION_ID)
        self.session = session
        return Init(device_id=self.device_id, session_id=session, id=self._take_id(), user_id=self.user_id,
                    extra=self.extra)

    def _track(self) -> Event:
        rnd = self._random
        name = self.cfg.scenario.event_names.pick(rnd())
        pool = self.cfg.content.track[name]
        return Track(device_id=self.device_id, session_id=self.session, id=self._take_id(), name=name,
                     user_id=self.user_id, payload=pool[int(rnd() * len(pool))])

    def _error(self) -> Event:
        rnd = self._random
        name = self.cfg.scenario.error_names.pick(rnd())
        pool = self.cfg.content.errors[name]
        return Error(device_id=self.device_id, session_id=self.session, id=self._take_id(), name=name,
                     user_id=self.user_id, payload=pool[int(rnd() * len(pool))], extra=self.extra)

    def _userid(self) -> Event:
        self.user_id = self.user_name  # later events of this device carry it, as the modules do
        return UserId(device_id=self.device_id, session_id=self.session, id=self._take_id(),
                      user_id=self.user_id)

    def _props(self) -> Event:
        pool = self.cfg.content.props
        return Props(device_id=self.device_id, session_id=self.session, id=self._take_id(),
                     user_id=self.user_id, payload=pool[int(self._random() * len(pool))])
