"""Sans-I/O ingestion: a parsed envelope in, the rows to store and the ids to acknowledge out.

Theory of operation
-------------------
The transport parses a message with ``bench.protocol.parse_envelope`` and hands the ``Envelope`` to
``Ingest.accept`` with the receive time (wall-clock ms, for events without a date) and a monotonic ``now``
(for the duplicate window). ``accept`` decides, event by event:

- heartbeat: counted, its device noted; never stored, never acknowledged (an ack means "stored").
- duplicate (same appId, device, sessionId and id seen within the window): acknowledged again, stored
  once (contract.md, "Acknowledgements").
- otherwise stored: counted by type; an ``init`` starts a session, any other event whose session never had
  an ``init`` (or fell silent for the session timeout, 30 min by default) is an orphan (contract.md,
  "Sessions"); events missing fields the document requires are counted in ``missing_fields``.

Silence is measured on the events' own times (``date``, or the receive time when absent), so a device that
flushes an hour-old backlog keeps its sessions as they were on the device.

The duplicate window keeps two generations of keys, each ``window`` long, so a key is remembered for at
least ``window`` and at most twice that. Keys are 64-bit hashes of (appId, device, sessionId, id): memory
stays near 70 bytes an event and a false match needs a hash collision (about n^2 / 2^65 for n keys).

Nothing here does I/O or reads a clock. The transport applies the result: it writes ``rows`` to the store
and sends ``ack_ids`` once the store says they are durable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from bench.protocol.errors import Reason
from bench.protocol.events import EVENT_CLASSES, Event, EventId, Extra, Heartbeat, Init, date_ms
from bench.protocol.message import Envelope

DEFAULT_SESSION_TIMEOUT_S = 30 * 60.0
DEFAULT_DEDUP_WINDOW_S = 600.0

#: A stored row, in the store's column order: (app, type, orphan, missing, event_ms, received_ms, device,
#: session, id, name, userId, anonId, payload, extra). ``payload`` is the event's JSON object and ``extra``
#: the ``Extra`` of init and error events; the store serializes them. Keys the contract does not name are
#: not kept.
Row = tuple[str, str, int, int, float, float, str, int | None, EventId | None, str | None, str | None,
            str | None, dict[str, Any] | None, Extra | None]
ROW_ID: Final = 8

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


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to do with one message: store ``rows``, then acknowledge ``ack_ids`` (in the events' order)."""

    rows: list[Row]
    ack_ids: list[EventId]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a store already holds when the target starts, so the stats reflect it (see ``Ingest.restore``).

    Attributes:
        counts: (app, type, stored, orphans, missing_fields) per app and type.
        sessions: (app, device, session, last event ms) of every session that had an ``init``.
        devices: (app, device) of every device with a stored event.
        recent: (app, device, session, id) of events received within the duplicate window.
    """

    counts: tuple[tuple[str, str, int, int, int], ...] = ()
    sessions: tuple[tuple[str, str, int, float], ...] = ()
    devices: tuple[tuple[str, str], ...] = ()
    recent: tuple[tuple[str, str, int | None, EventId], ...] = ()


def _ack_only(envelope: Envelope) -> Outcome:
    """The lie fault: every id that would be acked, and nothing stored, counted or remembered."""
    return Outcome([], [e.id for e in envelope.events if e.id is not None and type(e) is not Heartbeat])


class Ingest:
    """Duplicate detection, session tracking and the per-app counters. One per target; not thread-safe."""

    __slots__ = ("_gen_ns", "_gen_start_ns", "_keys", "_old_keys", "_sessions", "_timeout_ms", "apps")

    def __init__(self, *, dedup_window_ns: int, session_timeout_ms: float, now_ns: int) -> None:
        self.apps: dict[str, AppStats] = {}
        self._keys: set[int] = set()
        self._old_keys: set[int] = set()
        self._gen_ns = max(1, dedup_window_ns)
        self._gen_start_ns = now_ns
        self._timeout_ms = session_timeout_ms
        # (app, device, session) -> time (ms) of the session's latest event; present only after an init.
        self._sessions: dict[tuple[str, str, int | None], float] = {}

    def stats(self, app: str) -> AppStats:
        st = self.apps.get(app)
        if st is None:
            st = self.apps[app] = AppStats()
        return st

    def _rotate(self, now_ns: int) -> None:
        if now_ns - self._gen_start_ns >= self._gen_ns:
            self._old_keys = self._keys
            self._keys = set()
            self._gen_start_ns = now_ns

    def accept(self, app: str, envelope: Envelope, *, received_ms: float, now_ns: int,
               store: bool = True) -> Outcome:
        """Account for one message of ``app``. ``store=False`` (the lie fault) acks without storing."""
        st = self.stats(app)
        for rejection in envelope.rejected:
            st.rejected[rejection.reason.value] += 1
        if not store:
            return _ack_only(envelope)
        self._rotate(now_ns)
        keys, old_keys, sessions, timeout = self._keys, self._old_keys, self._sessions, self._timeout_ms
        by_type, devices = st.by_type, st.devices
        rows: list[Row] = []
        ack: list[EventId] = []
        seen_device = None
        for ev in envelope.events:
            cls = type(ev)
            device = ev.device_id
            if device != seen_device:  # a message's events mostly come from one device
                devices.add(device)
                seen_device = device
            if cls is Heartbeat:
                st.heartbeats += 1
                continue
            eid = ev.id
            session = ev.session_id
            if eid is not None:
                key = hash((app, device, session, eid))
                if key in keys or key in old_keys:
                    st.duplicates += 1
                    ack.append(eid)
                    continue
                keys.add(key)
            date = ev.date
            if date is None:
                at = received_ms
            else:
                at = float(date) if type(date) is int else date_ms(ev, received_ms)
            skey = (app, device, session)
            last = sessions.get(skey)
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
            kind = _KINDS[cls]
            by_type[kind] = by_type.get(kind, 0) + 1
            rows.append((app, kind, orphan, missing, at, received_ms, device, session, eid, ev.name,
                         ev.user_id, ev.anon_id, ev.payload, ev.extra))
            if eid is not None:
                ack.append(eid)
        st.stored += len(rows)
        return Outcome(rows, ack)

    def restore(self, snapshot: Snapshot) -> None:
        """Start from what a store already holds: counts, live sessions, devices and recent ids."""
        for app, kind, stored, orphans, missing in snapshot.counts:
            st = self.stats(app)
            st.stored += stored
            st.by_type[kind] = st.by_type.get(kind, 0) + stored
            st.orphans += orphans
            st.missing_fields += missing
        for app, device, session, last_ms in snapshot.sessions:
            self._sessions[(app, device, session)] = last_ms
            self.stats(app).sessions += 1
        for app, device in snapshot.devices:
            self.stats(app).devices.add(device)
        for key in snapshot.recent:
            self._keys.add(hash(key))  # the same tuple accept() hashes: (app, device, session, id)
