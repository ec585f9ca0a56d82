"""Devices that behave like the official modules: their profile's wire forms, report tick, heartbeats, storms.

Theory of operation
-------------------
A scenario with clients (``Scenario.clients``: ``[profiles]``, ``[outage]``, ``[release]``, ``time_scale``)
gives each device a profile (``bench.profiles``), drawn by share from a hash of (seed, device), so the
assignment is the same in every shard. A device whose profile is the default one, in a fleet without
storms and without time compression, is planned exactly as before (``bench.fleet.device.Device``); every
other one is a ``ClientDevice`` here and its sends are ``ClientSend``\\ s.

1. ``ClientDevice`` walks the very timeline of ``Device`` (the same draws of the device's random stream, in
   the same order: the same sessions, bursts, kinds, names and payloads), and writes each event in its
   profile's forms: the id drawn at random in 1..id_max (or unique), the sessionId in the profile's range
   (a numeric string for a share of sessions), the device id in its form under ``deviceId`` or
   ``machineId``, the profile's extra data. What only profiles draw (random ids, string sessions) comes
   from a second stream of the device, so the base timeline never moves. Each event also has a *key*:
   the unique id ``Device`` would have given it; the tracker and reconciliation tell events apart by it
   (the wire id may collide, the key never does).
2. ``client_sends`` shapes the device's events on its clock: each burst as made (``tick = 0``) or
   everything queued every report tick (from ``open_delay`` after the device comes online), heartbeats by
   pattern, an error every tick for an error storm, nothing while offline (an outage: the socket is dropped
   at its start, events are held, and the first tick after its end flushes them), an ``init`` with the new
   version on release day. An event's date (when the profile sends one) is its creation time.
3. Times are the scenario's (simulated) nanoseconds until the send is made: ``at_ns`` and ``created_ns``
   are divided by ``time_scale`` there, so the run goes that many times faster; dates stay simulated,
   anchored so that the last instant of the run is the real time of its end (``Clients.epoch_ms`` is the
   real time of its start).

What depends on the server (re-sending the unacked queue, reconnecting each tick without closing the old
socket, binary frames, the open delay after a reconnect) is the transport's (``bench.transports.ws``): a
``ClientSend`` says what the device does at that instant (``action``), and the transport does it.
"""

from __future__ import annotations

import base64
import hashlib
import random
from bisect import bisect_right
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, cast

import orjson

from bench.fleet.content import unit
from bench.fleet.device import KINDS, MAX_SESSION_ID, Device, FleetConfig, to_ns
from bench.fleet.send import Send, encode_parts
from bench.profiles import DEFAULT, Clients, Profile
from bench.protocol.events import EVENT_CLASSES, Event, EventId, date_ms
from bench.protocol.message import parse_envelope

#: What a ``ClientSend`` asks of the transport.
EVENTS, BEAT, TICK, DROP = 0, 1, 2, 3
ACTIONS = ("events", "beat", "tick", "drop")
#: Past the end of the run, what is still queued goes at the next tick, but no later than this (real time).
FINAL_FLUSH_NS = 1_000_000_000
_NEVER = 1 << 62
_NANOID = "useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict"
#: Node's ``os.type()`` and Python's ``platform.system()`` for Node's ``process.platform`` values.
_OS_TYPE = {"win32": "Windows_NT", "darwin": "Darwin", "linux": "Linux"}
_SYSTEM = {"win32": "Windows", "darwin": "Darwin", "linux": "Linux"}
#: The error an error storm reports every tick: the module failing to write its own queue file.
_STORM_ERROR = {"message": "EPERM: operation not permitted, open 'nucleus-queue.json'",
                "stack": "Error: EPERM: operation not permitted, open 'nucleus-queue.json'\n"
                         "    at Object.openSync (node:fs:573:3)\n"
                         "    at Object.writeFileSync (node:fs:2166:35)\n"
                         "    at save (nucleus/dist/index.js:1:4180)"}


class ClientSend:
    """What one device does at ``at_ns`` (real ns since the run's start).

    Attributes:
        action: ``EVENTS`` (send ``parts``, new events: a resending client puts its unacked queue first),
            ``BEAT`` (an untracked message: a heartbeat, or an empty batch when ``parts`` is empty),
            ``TICK`` (nothing new: a resending client re-sends its queue), ``DROP`` (the device loses the
            server: its socket is dropped, and it sends nothing until its next send).
        parts: each event's JSON object as bytes.
        ids: each event's key (unique in the run), parallel to ``parts`` for ``EVENTS``.
        wire: each event's id on the wire, parallel to ``ids`` (equal to them for unique ids).
        created_ns: when each event was created (real ns), parallel to ``ids``.
    """

    __slots__ = ("action", "at_ns", "created_ns", "device", "ids", "parts", "wire")

    def __init__(self, at_ns: int, device: int, action: int, parts: tuple[bytes, ...] = (),
                 ids: tuple[EventId, ...] = (), wire: tuple[EventId, ...] = (),
                 created_ns: tuple[int, ...] = ()) -> None:
        self.at_ns = at_ns
        self.device = device
        self.action = action
        self.parts = parts
        self.ids = ids
        self.wire = wire
        self.created_ns = created_ns

    @property
    def encoded(self) -> bytes:
        """The message of ``parts`` alone (``{"data": []}`` for an empty batch)."""
        return encode_parts(self.parts)

    @property
    def is_heartbeat(self) -> bool:
        """An untracked send (a heartbeat or an empty batch)."""
        return not self.ids

    @property
    def events(self) -> tuple[Event, ...]:
        """The events as values (parsed; for tests and readers, never on the hot path)."""
        return parse_envelope(self.encoded, max_bytes=1 << 62, max_events=1 << 62).events

    def __repr__(self) -> str:
        return (f"ClientSend(at_ns={self.at_ns}, device={self.device}, action={ACTIONS[self.action]!r}, "
                f"ids={self.ids!r}, wire={self.wire!r})")


#: An event as the reference target tells events apart (ingest.Key without the app): (device, session, id,
#: type, name, date in epoch ms or None). Reconciliation of colliding ids compares these.
Identity = tuple[str, int | None, EventId, str, str | None, float | None]
_TYPES: dict[type[Event], str] = {cls: cls.TYPE.value for cls in EVENT_CLASSES.values()}


def identity(event: Event) -> Identity:
    """The event's duplicate key (contract.md, "Acknowledgements"), as ``bench.target.ingest`` builds it and
    ``stored-ids?by=event`` answers it; ``event.id`` must be set."""
    assert event.id is not None
    name = event.name if event.name is None or type(event.name) is str else orjson.dumps(event.name).decode()
    date = event.date
    at = None if date is None else float(date) if type(date) is int else date_ms(event, 0.0)
    return event.device_id, event.session_id, event.id, _TYPES[type(event)], name, at


# --- one device's identity and forms -----------------------------------------------------------------------
def device_id_form(seed: int, index: int, form: str) -> str:
    """The device id of device ``index`` in ``form`` (bench.profiles.Profile.device_form); ``hex64`` is the
    default profile's own (``Seeds.device_id``)."""
    if form == "hex64":
        return hashlib.blake2b(f"{seed}:device-id:{index}".encode(), digest_size=32).hexdigest()
    digest = hashlib.sha256(f"{seed}:client-device:{index}".encode()).digest()
    if form == "sha256":
        return digest.hex()
    if form == "base64-15":
        return base64.b64encode(digest).decode()[:15]
    if form == "md5":
        return hashlib.md5(digest, usedforsecurity=False).hexdigest()
    return "".join(_NANOID[b & 63] for b in digest[:12])  # random-12: nanoid's alphabet


def format_date(ms: float, form: str) -> bytes:
    """A date of ``ms`` (epoch milliseconds) in ``form``, as the JSON value it is sent as."""
    if form == "epoch-ms":
        return b"%d" % int(ms)
    moment = datetime.fromtimestamp(ms / 1000.0, tz=UTC)
    if form == "iso-z":  # JavaScript's Date.toJSON(): milliseconds and Z
        return b'"%s.%03dZ"' % (moment.strftime("%Y-%m-%dT%H:%M:%S").encode(), moment.microsecond // 1000)
    return b'"%s"' % moment.replace(tzinfo=None).isoformat(timespec="microseconds").encode()  # iso-local


class ClientPlan:
    """What a plan needs of its scenario's clients: each device's profile, outage and release, and time."""

    def __init__(self, cfg: FleetConfig, clients: Clients) -> None:
        self.cfg = cfg
        self.clients = clients
        self.scale = clients.time_scale
        weights = [w for _, w in clients.shares]
        total = sum(weights)
        self._bounds = [sum(weights[: i + 1]) / total for i in range(len(weights))]
        self._bounds[-1] = 2.0
        self._profiles = [clients.profile(name) for name, _ in clients.shares]
        # dates: the simulated clock's end is the real end of the run (see the module docstring)
        self.lead_ns = cfg.end_ns - self.real(cfg.end_ns)
        self.epoch_ms = clients.epoch_ms
        self.outage = clients.outage
        self.release = clients.release

    def real(self, sim_ns: int) -> int:
        """A simulated time in real ns since the run's start."""
        return sim_ns if self.scale == 1.0 else int(sim_ns / self.scale)

    def profile(self, index: int) -> Profile:
        """Device ``index``'s profile, drawn by share (the same in every shard)."""
        u = unit(self.cfg.scenario.seed, "profile", index)
        for profile, bound in zip(self._profiles, self._bounds, strict=True):
            if u < bound:
                return profile
        return self._profiles[-1]

    def offline(self, index: int) -> tuple[int, int] | None:
        """The stretch (simulated ns) device ``index`` loses the server, or None."""
        out = self.outage
        if out is None or unit(self.cfg.scenario.seed, "outage", index) >= out.share:
            return None
        return to_ns(out.start_s), to_ns(out.end_s)

    def restart_at(self, index: int) -> int | None:
        """When device ``index`` restarts with the release's version (simulated ns), or None."""
        rel = self.release
        if rel is None or unit(self.cfg.scenario.seed, "release", index) >= rel.share:
            return None
        return to_ns(rel.at_s + rel.spread_s * unit(self.cfg.scenario.seed, "release-at", index))

    def plain(self, index: int) -> bool:
        """Device ``index`` is planned as without clients (the default profile, no storm, real time)."""
        return (self.profile(index) is DEFAULT and self.scale == 1.0 and self.offline(index) is None
                and self.restart_at(index) is None)

    def online_at_ns(self, index: int) -> int:
        """When device ``index`` first comes online (real ns): its connect time, or after its outage."""
        connect = self.cfg.connect_ns(index)
        window = self.offline(index)
        if window is not None and window[0] <= connect < window[1]:
            return self.real(window[1])
        return self.real(connect)

    def date(self, sim_ns: int, form: str) -> bytes:
        return format_date(self.epoch_ms + (sim_ns - self.lead_ns) / 1e6, form)


Raw = tuple[int, list[bytes], list[EventId], list[EventId]]  # (created sim ns, parts, keys, wire ids)


class ClientDevice(Device):
    """A ``Device`` that writes its events in its profile's forms; see the module docstring.

    ``wires`` collects the wire ids of the events made since the last ``raw`` (in order), ``raw`` hands a
    tick's events over with them.
    """

    __slots__ = ("_anon", "_extras", "_key", "_session_w", "clients", "draw", "profile", "wires")

    def __init__(self, cfg: FleetConfig, index: int, clients: ClientPlan) -> None:
        super().__init__(cfg, index)
        p = self.profile = clients.profile(index)
        self.clients = clients
        self.draw = random.Random(cfg.seeds.derive("client", index)).random  # the profile's own draws
        self.device_id = device_id_form(cfg.scenario.seed, index, p.device_form)
        self._key = p.device_key
        self._anon = "".join(_NANOID[int(self.draw() * 64)] for _ in range(12)) if p.extras == "js" else None
        self._extras = self._extra_data(self.extra.version)
        self._session_w: int | str = 0
        self.wires: list[EventId] = []

    def _extra_data(self, version: Any) -> dict[str, Any]:
        """The extra data of init and error in the profile's form (contract.md, "Messages")."""
        p, x = self.profile, self.extra
        locale = x.language if x.language is not None else x.locale
        key = p.locale_key if p.locale_key != "scenario" else self.cfg.scenario.locale_field
        platform = str(x.platform)
        forms: dict[str, dict[str, Any]] = {
            "document": {"platform": platform, "osVersion": x.os_version, "totalRam": x.total_ram,
                         "version": version, key: locale},
            "js": {"client": "js", "platform": _OS_TYPE.get(platform, platform), "osVersion": x.os_version,
                   "version": version, key: locale},
            "v3": {"platform": platform, "osVersion": x.os_version, "totalRam": float(x.total_ram or 0),
                   "version": version, key: locale, "arch": "x64"},
            "python": {"client": "python", "platform": _SYSTEM.get(platform, platform),
                       "osVersion": x.os_version, "totalRam": x.total_ram, "version": version,
                       key: locale, "arch": 64, "moduleVersion": "0.3"},
            "minimal": {"platform": platform, key: locale},
        }
        return forms[p.extras]

    # -- the raw timeline -------------------------------------------------------------------------------
    def raw(self, created: int, index: int, parts: tuple[bytes, ...], ids: tuple[EventId, ...],
            *_: Any) -> Raw:
        """``Device._sends_py``'s ``make``: a tick's events with their wire ids (and dates, when sent)."""
        wires, self.wires = self.wires, []
        return created, list(parts), list(ids), wires

    def timeline(self) -> Iterator[Raw]:
        """The device's events, tick by tick, in the timeline of ``Device`` (never the C twin: its events
        are written by the profile's methods below). ``due_ns`` is the next tick's simulated time."""
        return cast(Iterator[Raw], self._sends_py(cast(Callable[..., Send], self.raw), 0))

    # -- events in the profile's forms --------------------------------------------------------------
    def _event(self, kind: str, name: Any, payload: Any, extra: bool) -> bytes:
        p = self.profile
        key = self._take_id()
        wire: EventId = 1 + int(self.draw() * p.id_max) if p.id_max else key
        self.wires.append(wire)
        explicit = p.extras in ("python", "v3")  # these modules send their nulls
        obj: dict[str, Any] = {"type": kind}
        if name is not None or p.extras == "python":
            obj["name"] = name
        obj["sessionId"] = self._session_w
        obj["id"] = wire
        obj[self._key] = self.device_id
        if self.user_id is not None or explicit:
            obj["userId"] = self.user_id
        if self._anon is not None:
            obj["anonId"] = self._anon
        if payload is not None or explicit:
            obj["payload"] = payload
        if extra:
            obj.update(self._extras)
        return orjson.dumps(obj)

    def init(self) -> bytes:
        """A new session's ``init``: its sessionId drawn as ``Device.init`` does, in the profile's range."""
        session = self.session
        while session == self.session:
            session = 1 + int(self.random() * MAX_SESSION_ID)
        self.session = session
        p = self.profile
        wire: int | str = p.session_min + (session - 1) % (p.session_max - p.session_min + 1)
        if p.session_string and self.draw() < p.session_string:
            wire = str(wire)  # contract.md, "Messages": v4 after a page reload
        self._session_w = wire
        return self._event("init", None, {} if p.extras == "js" else None, True)

    def _track(self) -> bytes:
        rnd, cfg = self.random, self.cfg
        names = cfg.scenario.event_names
        name = names.values[int(_index(names.bounds, rnd()))]
        pool = cfg.content.track[name]
        payload = pool[int(rnd() * len(pool))]
        return self._event("event", name, payload, False)

    def _error(self) -> bytes:
        rnd, cfg = self.random, self.cfg
        name = cfg.scenario.error_names.pick(rnd())
        pool = cfg.content.errors[name]
        return self._event("error", name, pool[int(rnd() * len(pool))], True)

    def _userid(self) -> bytes:
        self.user_id = f"user-{self.device_id[:12]}"
        return self._event("userid", None, None, False)

    def _props(self) -> bytes:
        pool = self.cfg.content.props
        return self._event("props", None, pool[int(self.random() * len(pool))], False)

    def _kind(self, u: float) -> bytes:
        return _MAKERS[_index(self.cfg.limits, u)](self)

    def _events(self, n: int) -> tuple[bytes, ...]:
        """``n`` events: the draws of ``Device._events_py`` (a kind, then the kind's own), in Python."""
        rnd, limit = self.random, self.cfg.limits[0]
        return tuple(self._track() if (u := rnd()) < limit else self._kind(u) for _ in range(n))

    def storm_error(self) -> tuple[bytes, EventId]:
        """The error an error storm reports every tick; returns it and its key (its wire id in ``wires``)."""
        key = self.next_id
        return self._event("error", "EPERM", _STORM_ERROR, True), key

    def restart(self, version: str) -> tuple[bytes, EventId]:
        """Release day: the app restarts with ``version``: a new session; returns its init and key."""
        self._extras = self._extra_data(version)
        key = self.next_id
        return self.init(), key

    def heartbeat_part(self) -> bytes:
        """The profile's heartbeat (v4 sends the sessionId and anonId with it)."""
        obj: dict[str, Any] = {"type": "heartbeat", self._key: self.device_id}
        if self._anon is not None:  # the js module's: its queue entry, completed like any event
            obj["sessionId"] = self._session_w
            if self.user_id is not None:
                obj["userId"] = self.user_id
            obj["anonId"] = self._anon
        return orjson.dumps(obj)


def _index(bounds: tuple[float, ...], u: float) -> int:
    return bisect_right(bounds, u)


_MAKERS: tuple[Callable[[ClientDevice], bytes], ...] = (ClientDevice._track, ClientDevice._error,
                                                       ClientDevice._userid, ClientDevice._props)
assert len(_MAKERS) == len(KINDS)


# --- the device's sends -------------------------------------------------------------------------------------
def client_sends(device: ClientDevice) -> Iterator[ClientSend]:
    """The device's sends in time order; ``device.due_ns`` is the next one's real time (the plan's merge
    reads it), set before this returns and before each send is yielded."""
    inner = _shape(device)
    nxt = next(inner, None)
    device.due_ns = nxt.at_ns if nxt is not None else None
    return _ahead(device, inner, nxt)


def _ahead(device: ClientDevice, inner: Iterator[ClientSend], nxt: ClientSend | None) -> Iterator[ClientSend]:
    while nxt is not None:
        current = nxt
        nxt = next(inner, None)
        device.due_ns = nxt.at_ns if nxt is not None else None
        yield current


class _Queue:
    """The events a device made and has not sent yet (dated as made)."""

    __slots__ = ("created", "ids", "parts", "wire")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.ids: list[EventId] = []
        self.wire: list[EventId] = []
        self.created: list[int] = []

    def add(self, plan: ClientPlan, profile: Profile, created: int, parts: list[bytes], ids: list[EventId],
            wire: list[EventId]) -> None:
        if profile.date != "none":
            date = plan.date(created, profile.date)
            parts = [part[:-1] + b',"date":' + date + b"}" for part in parts]
        self.parts += parts
        self.ids += ids
        self.wire += wire
        self.created += [plan.real(created)] * len(ids)

    def take(self, at: int, device: int) -> ClientSend:
        send = ClientSend(at, device, EVENTS, tuple(self.parts), tuple(self.ids), tuple(self.wire),
                          tuple(self.created))
        self.parts, self.ids, self.wire, self.created = [], [], [], []
        return send


def _shape(device: ClientDevice) -> Iterator[ClientSend]:
    """The device's sends, unlooked-ahead: events, ticks, heartbeats, the outage and the release, merged in
    simulated time (on a tie: events first, so an event made at a tick goes with it)."""
    plan, p, cfg, index = device.clients, device.profile, device.cfg, device.index
    real, end = plan.real, cfg.end_ns
    raw = device.timeline()
    raw_at = device.due_ns
    queue = _Queue()
    connect = device.connect_ns
    window = plan.offline(index)
    offline = window is not None and window[0] <= connect < window[1]
    drop_at = window[0] if window is not None and window[0] > connect else _NEVER
    back_at = window[1] if window is not None else _NEVER
    rel_at = plan.restart_at(index)
    rel_at = rel_at if rel_at is not None and rel_at >= connect else _NEVER
    tick = to_ns(p.tick_s)
    first = connect + to_ns(p.open_delay_s)
    tick_at = first if tick else _NEVER
    beat_ns = cfg.heartbeat_ns if p.heartbeat == "interval" else 0
    beat_at = connect + device.phase_ns(beat_ns, "heartbeat") if beat_ns else _NEVER
    greet = p.heartbeat == "connect"  # a heartbeat is due with the next send (v3: on every (re)connect)
    alternate = False
    beat = device.heartbeat_part  # made when sent: v4's carries the current sessionId
    while True:
        t = min(raw_at if raw_at is not None else _NEVER, tick_at, beat_at, drop_at, rel_at,
                back_at if not tick and offline else _NEVER)
        if t >= end:
            break
        if raw_at is not None and t == raw_at:
            created, parts, ids, wire = next(raw)
            raw_at = device.due_ns
            queue.add(plan, p, created, parts, ids, wire)
            if not tick and not offline:
                if greet:
                    greet = False
                    yield ClientSend(real(t), index, BEAT, (beat(),))
                yield queue.take(real(t), index)
        elif t == rel_at:
            rel_at = _NEVER
            assert plan.release is not None
            part, key = device.restart(plan.release.version)
            created, parts, ids, wire = device.raw(t, index, (part,), (key,))
            queue.add(plan, p, created, parts, ids, wire)
            if not tick and not offline:
                yield queue.take(real(t), index)
        elif t == drop_at:
            drop_at, offline = _NEVER, True
            yield ClientSend(real(t), index, DROP)
        elif t == tick_at:
            tick_at = connect + ((t - connect) // tick + 1) * tick  # the module's interval runs from connect
            if offline and t >= back_at:
                offline, greet = False, p.heartbeat == "connect"
            if offline:
                continue
            if greet:
                greet = False
                yield ClientSend(real(t), index, BEAT, (beat(),))
            if p.error_every_tick:
                part, key = device.storm_error()
                created, parts, ids, wire = device.raw(t, index, (part,), (key,))
                queue.add(plan, p, created, parts, ids, wire)
            if queue.ids:
                yield queue.take(real(t), index)
            elif p.heartbeat == "alternate":
                alternate = not alternate
                yield ClientSend(real(t), index, BEAT, (beat(),) if alternate else ())
            elif p.heartbeat == "idle":
                yield ClientSend(real(t), index, BEAT, (beat(),))
            elif p.resend:
                yield ClientSend(real(t), index, TICK)
        elif t == beat_at:
            beat_at += beat_ns
            if not offline:
                yield ClientSend(real(t), index, BEAT, (beat(),))
        else:  # back online (each burst as made): the backlog goes now
            back_at, offline = _NEVER, False
            if greet or p.heartbeat == "connect":
                greet = False
                yield ClientSend(real(t), index, BEAT, (beat(),))
            if queue.ids:
                yield queue.take(real(t), index)
    if queue.ids:  # made before the end, not sent yet: at the next tick, no later than FINAL_FLUSH_NS after
        final = min(real(tick_at) if tick_at < _NEVER else real(end), real(end) + FINAL_FLUSH_NS)
        yield queue.take(max(final, real(end)), index)
