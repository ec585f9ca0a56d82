"""Sans-I/O ingestion: a parsed envelope in, the rows to store and the ids to acknowledge out.

Theory of operation
-------------------
The transport parses a message with ``bench.protocol.parse_envelope`` and hands the ``Envelope`` to
``Ingest.accept`` with the receive time (wall-clock ms, for events without a date) and a monotonic ``now``
(for the duplicate window). ``accept`` decides, event by event:

- heartbeat: counted, its device noted; never stored, never acknowledged (an ack means "stored").
- duplicate (the same event seen within the window): acknowledged again, stored once (contract.md,
  "Acknowledgements").
- not storable (a payload, extra, name, userId or anonId nested deeper than the store's JSON encoder goes,
  254 levels for orjson though its parser reads 1,024): refused as ``bad_field``, like any invalid event,
  before anything about it is counted or acknowledged. Every store gets the same answer: the ids-only
  memory store is sent the encoded fields too (and drops them), so what the target acknowledges does not
  depend on where it keeps it.
- otherwise stored: counted by type; an ``init`` starts a session, any other event whose session never had
  an ``init`` (or fell silent for the session timeout, 30 min by default) is an orphan (contract.md,
  "Sessions"); events missing fields the document requires are counted in ``missing_fields``.

Silence is measured on the events' own times (``date``, or the receive time when absent), so a device that
flushes an hour-old backlog keeps its sessions as they were on the device.

The duplicate key is the event itself (contract.md, "Acknowledgements"): (appId, device, sessionId, id,
type, name, date), the date as epoch ms (None when the event had none). Real modules draw ids at random
(1..10,000 in the Python module), so two different events of a session may share an id; a re-send is
identical in all of these. The key is kept exact, never as ``hash()`` of it: a dict compares keys by
equality, so two events whose hashes collide stay two events. It is kept as the JSON of those seven
fields (orjson, without the opening bracket), which is one-to-one: strings, integers, floats and null are
told apart, a name that is another JSON value is written as ``[its JSON]`` (a string name never is a list),
and ``-0.0`` is written ``0.0`` as SQLite gives it back. An int beyond orjson's 64 bits (a numeric-string
sessionId of 20 digits) makes the key the ``repr`` of the tuple instead, a str, never equal to any bytes.
Bytes rather than the tuple itself, for the garbage collector: a dict of tuples built at run time is
tracked, and every collection walked all its keys (130 ms for a million); a dict of bytes is not tracked
at all. And a copy (``[1:]``) rather than orjson's own output: that is a 1 KiB allocation shrunk in place,
and a million of them kept fragment the C heap until each new one costs microseconds.

Each key maps to the sequence number of the message that carried it, and a ``Hold`` per message tracks
its write while it is pending (or after it failed); the transport reports each write with ``settle``,
O(1) per message. A re-send whose original is durable is a plain duplicate. One that arrives while the
original's write is pending is a duplicate too (never stored twice) whose ack waits for that hold
(``Outcome.waits``): its id is acked once the original is durable, and left out if the original's write
failed (the client keeps it queued). A key whose write failed is no duplicate of anything, so the
client's re-send is stored (contract.md: "keys enter the dedup index when its write commits, not
before").

Bounds
------
Everything kept per app, per session and per event is bounded, and ``GET /stats`` shows each bound under
``bounds`` (an addition to api.md's shape), so a run can tell whether one was reached:

- apps: at most ``max_apps`` appIds (``--max-apps``, 10,000 by default, about 1.5 KiB each). A request
  naming another one is refused before anything about it is counted (``admit``; the transport answers HTTP
  503 or closes the WebSocket with 1013 and a reason) and counted in ``bounds.apps.refused``. Refusing
  rather than forgetting: an app's counters are what ``/app/{appId}/stats`` reports, and forgetting them
  would make it lie. Apps already in the store at start are all counted, over the cap or not.
- duplicate keys: two generations, each turned over when it is ``window`` old or holds half of
  ``dedup_max_keys`` (``--dedup-max-keys``, 2,000,000 by default; a key costs about 180 bytes with a
  24-character appId and a 16-character device), so a key is remembered for at least ``window``, or, when
  keys come faster than half the cap per window, for at least the shortest generation, which
  ``bounds.dedup.shortest_window_s`` reports (``count_rotations`` counts such early turns). A re-send
  that comes later than that is stored again.
- sessions: two generations, the current one turned over when it holds half of ``max_sessions``
  (``--max-sessions``, 1,000,000 by default, about 150 bytes each). A session is moved to the current
  one whenever one of its events comes, so what is forgotten is the sessions nothing was heard of for a
  whole generation; their number is ``bounds.sessions.forgotten``, and a later event of one counts as an
  orphan. Nothing is forgotten below the cap.
- devices: the per-app sets behind the ``devices`` counters hold at most ``max_devices`` devices in all
  (``--max-devices``, 2,000,000 by default, about 70 bytes each). Once full, a device not in them is not
  added, and each message that brings one counts in ``bounds.devices.overflow``: while that is 0 the
  ``devices`` counters are exact, after it they are lower bounds.
- each bound may be passed by the events of one message (at most ``--max-events``).

Nothing here does I/O or reads a clock. The transport applies the result: it writes ``rows`` to the store
and sends ``ack_ids`` once the store says they are durable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import orjson

from bench.protocol.errors import Reason
from bench.protocol.events import EVENT_CLASSES, Event, EventId, Heartbeat, Init, date_ms
from bench.protocol.message import Envelope

if TYPE_CHECKING:
    import asyncio

DEFAULT_SESSION_TIMEOUT_S = 30 * 60.0
DEFAULT_DEDUP_WINDOW_S = 600.0

#: A stored row, in the store's column order: (app, type, orphan, missing, event_ms, received_ms, device,
#: session, id, name, userId, anonId, payload, extra, dated). ``payload`` is the event's payload as JSON and
#: ``extra`` the ``Extra`` of init and error events as JSON, encoded here so that what cannot be encoded is
#: refused before it is acknowledged. ``name``, ``userId`` and ``anonId`` are a string, or the JSON of any
#: other value (bytes: a BLOB in their column). ``dated`` is 1 when the event had its own date (the
#: duplicate key's date is then ``event_ms``), 0 when ``event_ms`` is the receive time. Keys the contract
#: does not name are not kept.
Row = tuple[str, str, int, int, float, float, str, int | None, EventId | None, str | bytes | None,
            str | bytes | None, str | bytes | None, bytes | None, bytes | None, int]
ROW_ID: Final = 8

#: A duplicate key or a session key, as kept: the JSON of its fields (orjson), or, when one is an int beyond
#: orjson's 64 bits, the repr of their tuple (a str: never equal to any bytes). See the module docstring.
Key = bytes | str
#: The fields of a duplicate key, as ``Snapshot.recent`` lists them: (app, device, session, id, type, name as
#: stored, date ms or None).
KeyFields = tuple[str, str, int | None, EventId, str, str | bytes | None, float | None]

DEFAULT_MAX_APPS = 10_000
DEFAULT_MAX_SESSIONS = 1_000_000
DEFAULT_DEDUP_MAX_KEYS = 2_000_000
DEFAULT_MAX_DEVICES = 2_000_000

#: Names of the fault counters in ``stats["faults"]`` (an addition to api.md's stats shape).
FAULT_COUNTERS = ("delayed_messages", "dropped_ack_messages", "dropped_ack_ids", "lied_messages",
                  "lied_ids", "closed_connections", "stalled_messages")


#: Wire type of each event class (an Enum's ``.value`` is a slow property on the hot path).
_KINDS: dict[type[Event], str] = {cls: cls.TYPE.value for cls in EVENT_CLASSES.values()}


@dataclass(slots=True)
class AppStats:
    """The counters of one appId, as ``GET /app/{appId}/stats`` shows them (mutable state, not a value)."""

    stored: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys((r.value for r in Reason), 0))
    malformed_messages: int = 0
    oversized_messages: int = 0
    missing_fields: int = 0
    orphans: int = 0
    sessions: int = 0
    devices: set[str] = field(default_factory=set)
    heartbeats: int = 0
    acked: int = 0
    conn_open: int = 0
    conn_total: int = 0
    rate_limited: int = 0
    idle_closed: int = 0
    faults: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULT_COUNTERS, 0))

    def to_json(self) -> dict[str, Any]:
        return stats_json([self])


def stats_json(stats: Iterable[AppStats]) -> dict[str, Any]:
    """The api.md stats object, summed over ``stats`` (one app, or all of them for ``GET /stats``)."""
    by_type: dict[str, int] = {}
    rejected = dict.fromkeys((r.value for r in Reason), 0)
    faults = dict.fromkeys(FAULT_COUNTERS, 0)
    totals = dict.fromkeys(("stored", "duplicates", "malformed_messages", "oversized_messages",
                            "missing_fields", "orphans", "sessions", "devices", "heartbeats", "acked",
                            "open", "total", "rate_limited", "idle_closed"), 0)
    for st in stats:
        for key in ("stored", "duplicates", "malformed_messages", "oversized_messages", "missing_fields",
                    "orphans", "sessions", "heartbeats", "acked", "rate_limited", "idle_closed"):
            totals[key] += getattr(st, key)
        totals["devices"] += len(st.devices)
        totals["open"] += st.conn_open
        totals["total"] += st.conn_total
        for kind, count in st.by_type.items():
            by_type[kind] = by_type.get(kind, 0) + count
        for reason, count in st.rejected.items():
            rejected[reason] = rejected.get(reason, 0) + count
        for name, count in st.faults.items():
            faults[name] += count
    return {
        "stored": {"total": totals["stored"], "by_type": by_type},
        "duplicates": totals["duplicates"],
        "rejected": {"total": sum(rejected.values()), "by_reason": rejected},
        "malformed_messages": totals["malformed_messages"],
        "missing_fields": totals["missing_fields"],
        "orphans": totals["orphans"],
        "sessions": totals["sessions"],
        "devices": totals["devices"],
        "heartbeats": totals["heartbeats"],
        "acked": totals["acked"],
        "connections": {"open": totals["open"], "total": totals["total"]},
        # Additions to api.md's shape (owners may add keys): they let tests check each limit and fault.
        "oversized_messages": totals["oversized_messages"],
        "rate_limited": totals["rate_limited"],
        "idle_closed": totals["idle_closed"],
        "faults": faults,
    }


PENDING: Final = 0
DURABLE: Final = 1
FAILED: Final = 2


class Hold:
    """The write of one message while it is pending, or after it failed: PENDING, DURABLE or FAILED.

    ``waiter`` is set by the transport: the store's future for the write (None: durable already).
    """

    __slots__ = ("seq", "state", "waiter")

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.state = PENDING
        self.waiter: asyncio.Future[None] | None = None


#: The sequence number of keys restored from a store (durable; never a pending message's).
_RESTORED = -1


class Outcome:
    """What to do with one message: store ``rows``, then acknowledge ``ack_ids`` (in the events' order).

    Attributes:
        app: the appId of the message.
        rows: to store.
        ack_ids: to acknowledge once ``rows`` are durable.
        hold: the state of this message's write (the transport sets ``hold.waiter``).
        waits: (index in ``ack_ids``, the original's ``Hold``) of duplicates whose original's write was
            pending when they came: such an id may be sent only once that hold is durable.
    """

    __slots__ = ("ack_ids", "app", "hold", "rows", "waits")

    def __init__(self, app: str, rows: list[Row], ack_ids: list[EventId], hold: Hold) -> None:
        self.app = app
        self.rows = rows
        self.ack_ids = ack_ids
        self.hold = hold
        self.waits: list[tuple[int, Hold]] = []


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a store already holds when the target starts, so the stats reflect it (see ``Ingest.restore``).

    Attributes:
        counts: (app, type, stored, orphans, missing_fields) per app and type.
        session_counts: (app, sessions) of every app: how many sessions had an ``init``.
        sessions: (app, device, session, last event ms) of the sessions that had an ``init``, the latest
            ones only when there are more than the session table holds.
        devices: (app, device) of every device with a stored event.
        recent: the fields of the duplicate keys (``KeyFields``) of events received within the window.
    """

    counts: tuple[tuple[str, str, int, int, int], ...] = ()
    session_counts: tuple[tuple[str, int], ...] = ()
    sessions: tuple[tuple[str, str, int, float], ...] = ()
    devices: tuple[tuple[str, str], ...] = ()
    recent: tuple[KeyFields, ...] = ()


def _ack_only(app: str, envelope: Envelope) -> Outcome:
    """The lie fault: every id that would be acked, and nothing stored, counted or remembered."""
    return Outcome(app, [], [e.id for e in envelope.events if e.id is not None and type(e) is not Heartbeat],
                   Hold(0))


_dumps = orjson.dumps


_BAD_FIELD = Reason.BAD_FIELD.value


def _as_key(fields: tuple[Any, ...]) -> Key:
    try:
        return _dumps(fields)[1:]  # a copy, see the module docstring (``accept`` inlines this)
    except TypeError:  # an int beyond 64 bits: orjson writes none
        return repr(fields)


def session_key(app: str, device: str, session: int | None) -> Key:
    """The key of a session in the session table: its (app, device, session) as JSON."""
    return _as_key((app, device, session))


def _name_key(name: str | bytes | None) -> Any:
    """The name as a key holds it: a string or None as it is, another value's JSON bytes as ``[json]``."""
    return name if name is None or isinstance(name, str) else [name.decode()]


def dedup_key(fields: KeyFields) -> Key:
    """The duplicate key of an event, from its fields as stored (what ``accept`` builds from the event)."""
    app, device, session, eid, kind, name, date = fields
    return _as_key((app, device, session, eid, kind, _name_key(name), None if date is None else date + 0.0))


class Ingest:
    """Duplicate detection, session tracking and the per-app counters. One per target; not thread-safe.

    Everything it keeps is bounded (see the module docstring, "Bounds"): ``max_apps`` apps, ``max_sessions``
    sessions, ``dedup_max_keys`` duplicate keys, ``max_devices`` devices (plus one message's events over
    each bound).
    """

    __slots__ = ("_gen_first_seq", "_gen_keys", "_gen_ns", "_gen_start_ns", "_holds", "_keys", "_max_apps",
                 "_old_keys", "_old_sessions", "_seq", "_sessions", "_sessions_half", "_timeout_ms", "apps",
                 "apps_refused", "count_rotations", "dedup_max_keys", "devices_overflow", "devices_tracked",
                 "max_devices", "max_sessions", "sessions_forgotten", "shortest_generation_ns")

    def __init__(self, *, dedup_window_ns: int, session_timeout_ms: float, now_ns: int,
                 max_apps: int = DEFAULT_MAX_APPS, max_sessions: int = DEFAULT_MAX_SESSIONS,
                 dedup_max_keys: int = DEFAULT_DEDUP_MAX_KEYS,
                 max_devices: int = DEFAULT_MAX_DEVICES) -> None:
        self.apps: dict[str, AppStats] = {}
        self._max_apps = max_apps
        #: Requests refused because they named a new app while ``max_apps`` apps were tracked.
        self.apps_refused = 0
        # The two generations of the window: key -> sequence number of the message that carried it.
        self._keys: dict[Key, int] = {}
        self._old_keys: dict[Key, int] = {}
        # Messages whose write is pending or failed, by sequence number; a durable one is not here.
        self._holds: dict[int, Hold] = {}
        self._seq = 0
        self._gen_first_seq = 1  # the first message of the current generation
        self._gen_ns = max(1, dedup_window_ns)
        self._gen_start_ns = now_ns
        self.dedup_max_keys = dedup_max_keys
        self._gen_keys = max(1, dedup_max_keys // 2)
        #: Generations ended by their count of keys, not their age, and the shortest of them (ns; 0: none).
        self.count_rotations = 0
        self.shortest_generation_ns = 0
        self._timeout_ms = session_timeout_ms
        # Session key (``session_key``) -> time (ms) of the session's latest event; present only after an
        # init. Two generations, like the duplicate window: a session is moved to the current one when it
        # is used, and the old one is forgotten when the current one holds half of ``max_sessions``.
        self._sessions: dict[Key, float] = {}
        self._old_sessions: dict[Key, float] = {}
        self.max_sessions = max_sessions
        self._sessions_half = max(1, max_sessions // 2)
        #: Sessions forgotten to keep within ``max_sessions`` (their later events count as orphans).
        self.sessions_forgotten = 0
        #: Devices in all the apps' ``devices`` sets, their cap, and the messages that brought a device
        #: there was no room for.
        self.devices_tracked = 0
        self.max_devices = max_devices
        self.devices_overflow = 0

    def stats(self, app: str) -> AppStats:
        """The counters of ``app``, created if need be (whatever ``max_apps`` says: see ``admit``)."""
        st = self.apps.get(app)
        if st is None:
            st = self.apps[app] = AppStats()
        return st

    def admit(self, app: str) -> AppStats | None:
        """The counters of ``app`` for a request that names it; None (counted) for a new app over the cap."""
        st = self.apps.get(app)
        if st is None:
            if len(self.apps) >= self._max_apps:
                self.apps_refused += 1
                return None
            st = self.apps[app] = AppStats()
        return st

    def _add_device(self, devices: set[str], device: str) -> None:
        if self.devices_tracked < self.max_devices:
            devices.add(device)
            self.devices_tracked += 1
        else:
            self.devices_overflow += 1

    def bounds(self) -> dict[str, Any]:
        """What the bounds hold now, for ``GET /stats`` (an addition to api.md's shape)."""
        shortest = self.shortest_generation_ns
        return {
            "apps": {"tracked": len(self.apps), "max": self._max_apps, "refused": self.apps_refused},
            "sessions": {"tracked": len(self._sessions) + len(self._old_sessions), "max": self.max_sessions,
                         "forgotten": self.sessions_forgotten},
            "devices": {"tracked": self.devices_tracked, "max": self.max_devices,
                        "overflow": self.devices_overflow},
            "dedup": {"keys": len(self._keys) + len(self._old_keys), "max_keys": self.dedup_max_keys,
                      "window_s": self._gen_ns / 1e9, "count_rotations": self.count_rotations,
                      "shortest_window_s": shortest / 1e9 if shortest else None},
        }

    def _rotate(self, now_ns: int) -> None:
        age_ns = now_ns - self._gen_start_ns
        if age_ns >= self._gen_ns or len(self._keys) >= self._gen_keys:
            if age_ns < self._gen_ns:  # full before its time: keys are remembered for less than the window
                self.count_rotations += 1
                if not self.shortest_generation_ns or age_ns < self.shortest_generation_ns:
                    self.shortest_generation_ns = max(1, age_ns)
            # The old generation's keys go; so do the failed holds only they could point to (a message's
            # keys all go into the generation current when it came).
            current = self._gen_first_seq
            self._old_keys = self._keys
            self._keys = {}
            self._gen_start_ns = now_ns
            self._gen_first_seq = self._seq + 1
            holds = self._holds
            for seq in [q for q, h in holds.items() if h.state == FAILED and q < current]:
                del holds[seq]
        if len(self._sessions) >= self._sessions_half:
            self.sessions_forgotten += len(self._old_sessions)
            self._old_sessions = self._sessions
            self._sessions = {}

    def accept(self, app: str, envelope: Envelope, *, received_ms: float, now_ns: int,
               store: bool = True) -> Outcome:
        """Account for one message of ``app``. ``store=False`` (the lie fault) acks without storing.

        The caller writes ``rows`` and then calls ``settle`` exactly once with the write's result.
        """
        st = self.stats(app)
        rejected = st.rejected
        for rejection in envelope.rejected:
            rejected[rejection.reason.value] += 1
        if not store:
            return _ack_only(app, envelope)
        self._rotate(now_ns)
        keys, old_keys = self._keys, self._old_keys
        sessions, old_sessions, timeout = self._sessions, self._old_sessions, self._timeout_ms
        by_type, devices = st.by_type, st.devices
        rows: list[Row] = []
        ack: list[EventId] = []
        self._seq = seq = self._seq + 1
        holds = self._holds
        holds[seq] = hold = Hold(seq)
        out = Outcome(app, rows, ack, hold)
        waits = out.waits
        seen_device = None
        # The session key of the latest (device, session): a message's events mostly share one.
        skey: Key = b""
        skey_device: str | None = None
        skey_session: int | None = None
        for ev in envelope.events:
            cls = type(ev)
            device = ev.device_id
            if device != seen_device:  # a message's events mostly come from one device
                seen_device = device
                if device not in devices:
                    self._add_device(devices, device)
            if cls is Heartbeat:
                st.heartbeats += 1
                continue
            eid, session, date = ev.id, ev.session_id, ev.date
            if date is None:
                at = received_ms
            elif type(date) is int:
                at = float(date)
            else:  # + 0.0: -0.0 is 0.0, as SQLite gives it back (the key must survive a restart)
                at = date_ms(ev, received_ms) + 0.0
            kind = _KINDS[cls]
            name: Any = ev.name
            try:
                # The key's name is the name itself; another JSON value, which the store keeps as its JSON
                # bytes, is that JSON in a list (a string is never a list): see ``_name_key``.
                if name is None or type(name) is str:
                    name_key: Any = name
                else:
                    name = _dumps(name)
                    name_key = [name.decode()]
                if eid is not None:
                    fields = (app, device, session, eid, kind, name_key, None if date is None else at)
                    try:
                        key: Key = _dumps(fields)[1:]
                    except TypeError:  # an int beyond 64 bits (orjson's range): its repr, as a str
                        key = repr(fields)
                    seen = keys.get(key)
                    if seen is None and old_keys:
                        seen = old_keys.get(key)
                    if seen is not None:
                        first = holds.get(seen) if seen != seq else None  # None: durable, or this message
                        if first is None or first.state == PENDING:
                            if first is not None:  # the first send is not durable yet: its ack waits
                                waits.append((len(ack), first))
                            st.duplicates += 1
                            ack.append(eid)
                            continue
                # Encoded now, whatever the store: what cannot be stored is refused before any ack.
                user, anon, payload = ev.user_id, ev.anon_id, ev.payload
                if user is not None and type(user) is not str:
                    user = _dumps(user)
                if anon is not None and type(anon) is not str:
                    anon = _dumps(anon)
                if payload is not None:
                    payload = _dumps(payload)
                extra = None if ev.extra is None else _dumps(ev.extra)
            except TypeError:
                # orjson's encoder refuses what its parser read (nesting past 254 levels): an event that
                # cannot be stored is refused before anything about it is counted, remembered or acked.
                rejected[_BAD_FIELD] += 1
                continue
            if eid is not None:
                keys[key] = seq
            if session != skey_session or device != skey_device:
                skey, skey_device, skey_session = session_key(app, device, session), device, session
            last = sessions.get(skey)
            if last is None and old_sessions:
                last = old_sessions.pop(skey, None)
                if last is not None:
                    sessions[skey] = last
            if last is not None and at - last <= timeout:  # a live session: init again or not, no orphan
                orphan = 0
                if at > last:
                    sessions[skey] = at
            elif cls is Init:
                st.sessions += 1
                sessions[skey] = at
                orphan = 0
            else:
                orphan = 1
                st.orphans += 1
            # 0/1 rather than bools: sqlite3 binds exact ints directly, other types through its adapters.
            missing = 1 if cls.HAS_EXTRA and ev.missing_required() else 0
            if missing:
                st.missing_fields += 1
            by_type[kind] = by_type.get(kind, 0) + 1
            rows.append((app, kind, orphan, missing, at, received_ms, device, session, eid, name, user, anon,
                         payload, extra, 0 if date is None else 1))
            if eid is not None:
                ack.append(eid)
        st.stored += len(rows)
        return out

    def settle(self, outcome: Outcome, error: BaseException | None) -> None:
        """The write of ``outcome.rows`` is durable (``error`` None) or failed. Its keys count as seen from
        now on, or, after a failure, not at all (so the client's re-send is stored), and a failed write's
        rows leave the counts of stored events."""
        hold = outcome.hold
        if error is None:
            hold.state = DURABLE
            self._holds.pop(hold.seq, None)
            return
        hold.state = FAILED  # stays in _holds while its keys may be in the window (see _rotate)
        st = self.stats(outcome.app)
        by_type = st.by_type
        for row in outcome.rows:
            by_type[row[1]] -= 1
            st.orphans -= row[2]
            st.missing_fields -= row[3]
        st.stored -= len(outcome.rows)

    def restore(self, snapshot: Snapshot) -> None:
        """Start from what a store already holds: counts, live sessions, devices and recent keys.

        What is already stored is counted whatever ``max_apps`` says. The store lists no more sessions,
        keys and devices than the bounds hold (the latest sessions and keys, the others counted as
        forgotten; one device more than ``max_devices``, which then counts as an overflow).
        """
        for app, kind, stored, orphans, missing in snapshot.counts:
            st = self.stats(app)
            st.stored += stored
            st.by_type[kind] = st.by_type.get(kind, 0) + stored
            st.orphans += orphans
            st.missing_fields += missing
        for app, count in snapshot.session_counts:
            self.stats(app).sessions += count
        for app, device, session, last_ms in snapshot.sessions:
            self._sessions[session_key(app, device, session)] = last_ms
        # The sessions the store did not list (past the bound) are forgotten from the start.
        listed = sum(count for _, count in snapshot.session_counts)
        self.sessions_forgotten += max(0, listed - len(snapshot.sessions))
        for app, device in snapshot.devices:
            devices = self.stats(app).devices
            if device not in devices:
                self._add_device(devices, device)
        self._keys.update(dict.fromkeys(map(dedup_key, snapshot.recent), _RESTORED))
