"""The ack tracker: matches ``reportedIds`` to the events sent, times them, and accounts for every one.

Theory of operation
-------------------
Every tracked send is a *message*: a plain tuple ``(token, ids, created_ns, intended_ns, actual_ns)``
(one per message, never one object per event). Each connection keeps a FIFO (``deque``) of its
unanswered messages, in send order. ``_pending`` maps every event id still waiting to the message that
first sent it (the *first send*: its intended and actual times are the ones latency is measured from,
even when a retry or a re-send is what gets acknowledged; wrk2's rule against coordinated omission).

Matching (contract.md, "Acknowledgements": one reply per message, in order):

- WebSocket: a reply answers the oldest unanswered message of its connection holding any of the
  reported ids; an empty reply answers the oldest unanswered message. The fast path is the usual case:
  the reply equals the ids of the queue's head, compared as tuples in C. Messages older than the one
  answered are set aside: the server is past them, so their reply was dropped; their events stay
  pending until the timeout (they may still be acked by a stray reply, counted as such).
- A message that expires unanswered leaves its queue but is still owed a reply: the connection counts
  it as *stale*, and the next reply that matches no queued message (an empty one first) is taken as
  its late reply instead of answering (and rejecting) the next message.
- HTTP: a reply names its message by the token ``on_send`` returned.
- Of the answered message, reported ids are *acked* (latencies appended) and the others *rejected*
  (contract.md: invalid events are left out of ``reportedIds``). A reported id outside the message is
  acked when pending anywhere, else classified below.

Every event ends exactly once: acked, rejected or lost (``expire``: unanswered ``timeout_ns`` after its
first actual send; ``finish``: still pending at the end of the drain). ``sent`` counts ids that became
pending, so ``sent == acked + rejected + lost + in_flight`` holds by construction (``accounting()``).
Re-sending an id that is still pending is counted in ``resent``, not in ``sent``.

An ack of an id that is not pending is never counted as acked twice. Finished ids are remembered for at
least ``remember_ns`` (default: the timeout) to tell a *duplicate* ack (it was acked) from a *late* ack
(it had been counted lost or rejected) and an *unknown* id (never sent, or forgotten). They live in
generations of dicts, each at most ``GENERATION_NS`` long, that ``expire`` rotates: forgetting costs
nothing per event, and the memory is one dict entry per event finished in the last ``remember_ns`` and
one generation. Dropping a generation frees its entries at once, in the event loop: a generation of a
second keeps that pause short (dropping ``remember_ns`` of them in one go, at 80,000 events/s and 5 s,
stalled the loop ~7 ms, and the sends due meanwhile went out late).

Latencies (ns ints) go to plain lists on the hot path. ``_corr``, ``_raw`` and ``_deliv`` hold one
value per event (a single-event message, an event acked on its own). The events of one message share
their intended and actual send times, so the full ack of a message that first sent all its n ids is
one corrected and one raw value of weight n (``_mcorr``, ``_mraw``, weights ``_w``); their delivery
delays (from each event's creation) are one value of weight n too when the creation times are equal,
as in a WebSocket message (``_mdeliv``, weights ``_dw``), else one value per event (HTTP batches).
``fold()`` (about once a second) moves them into the ``corrected`` (ack - intended send), ``raw``
(ack - actual send) and ``delivery`` (ack - event creation) histograms, in µs, with vectorised calls
(``record_many`` with weights for the shared values): the counts, minimum and maximum are exactly
those of one value per event. Time is passed in (monotonic ns since the run's start); nothing here
reads a clock.

Colliding ids (contract.md, "Acknowledgements": the modules draw ids at random, so two events of one
session, let alone of a fleet, may share one). A client device (``bench.fleet.clients``) gives each event
a *key*, unique in the run, besides its id on the wire; the tracker keeps keys (``_pending`` and every
message hold them), and ``on_send_wire`` notes each message's wire ids beside its keys, per connection
(``_wired``: token, wire ids, keys, in send order). ``on_ws_ack_wire`` turns a reply's wire ids into keys
on the connection it came on: the reply answers the oldest unanswered message of that connection holding
any of the reported ids (the rule above, on wire ids), and each reported id becomes the key of an event of
that message with that id, taken in the message's order, once each (an id reported twice takes two events
that share it). An id the answered message lacks is looked for in the connection's other unanswered
messages, else it is unknown. The keys then go through ``on_ws_ack`` like any reply: matching stays per
connection and in order, so ids that collide across devices never meet, and ids that collide within one
message are told apart by their multiplicity.

Expiry scans the head of each connection's queue (sends are in time order per connection) and a heap
of set-aside messages, so ``expire`` costs O(connections + expired), not O(pending).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Sequence
from itertools import repeat
from operator import sub
from typing import cast

import numpy as np
import numpy.typing as npt

from bench.metrics.accounting import Accounting
from bench.metrics.histogram import DEFAULT_LAYOUT, Histogram, Layout
from bench.metrics.result import TrackerResult
from bench.protocol.events import EventId

#: (token, ids, created_ns, intended_ns, actual_ns): one tracked message.
Msg = tuple[int, tuple[EventId, ...], tuple[int, ...], int, int]

# How a finished id ended, remembered for remember_ns to classify later acks.
_ACKED, _REJECTED, _LOST = 1, 2, 3
#: The longest generation of remembered finished ids (see the module docstring).
GENERATION_NS = 1_000_000_000


class UnknownId(tuple[str, EventId]):
    """A reported wire id that names no event of its connection: a key that is never pending (counted as an
    unknown ack), unlike any key of the run."""

    __slots__ = ()

    def __new__(cls, wire: EventId) -> UnknownId:
        return tuple.__new__(cls, ("unknown", wire))


def _unknown(wire: EventId) -> EventId:
    """``UnknownId(wire)``, passed where keys go: hashable, never pending, never equal to a key."""
    return cast(EventId, UnknownId(wire))


class AckTracker:
    """Matches reportedIds to pending events. Latency buffers are plain lists folded by ``fold()``.

    Attributes:
        sent: events that became pending (``on_send`` of an id not pending).
        acked / rejected / lost: how events ended (each exactly once).
        duplicate_acks: acks of ids already acked (or repeated within one reply).
        unknown_acks: acks of ids never sent (or forgotten: finished more than ``remember_ns`` ago).
        late_acks: acks of ids already counted lost or rejected (not counted as acked).
        resent: ids sent again while still pending (retries, re-sends of an unacked queue).
        stray_replies: replies that matched no unanswered message of their connection.
        corrected / raw / delivery: latency histograms in µs (filled by ``fold``).
    """

    __slots__ = ("_corr", "_deliv", "_dw", "_finished", "_generation_ns", "_keep", "_limbo", "_mcorr",
                 "_mdeliv", "_mraw", "_old_finished", "_pending", "_queues", "_raw", "_seq", "_span_ns",
                 "_stale", "_token", "_w", "_wired", "acked", "corrected", "delivery", "duplicate_acks",
                 "late_acks", "lost", "raw", "rejected", "remember_ns", "resent", "sent", "stray_replies",
                 "timeout_ns", "unknown_acks")

    def __init__(self, *, timeout_ns: int, remember_ns: int | None = None,
                 layout: Layout = DEFAULT_LAYOUT) -> None:
        """Args:
            timeout_ns: an event unacknowledged this long after its first actual send is lost.
            remember_ns: how long finished ids are at least remembered to classify later acks (default:
                ``timeout_ns``).
            layout: the histograms' bucket layout.
        """
        if timeout_ns <= 0:
            raise ValueError(f"timeout_ns must be > 0, not {timeout_ns}")
        self.timeout_ns = timeout_ns
        self.remember_ns = timeout_ns if remember_ns is None else remember_ns
        # conn -> its unanswered messages in send order.
        self._queues: dict[int, deque[Msg]] = {}
        # conn -> messages that expired unanswered: an empty reply arriving now is theirs, not the next one's.
        self._stale: dict[int, int] = {}
        # conn -> (token, wire ids, keys) of its messages whose ids are not their keys (on_send_wire).
        self._wired: dict[int, deque[tuple[int, tuple[EventId, ...], tuple[EventId, ...]]]] = {}
        self._pending: dict[EventId, Msg] = {}
        # Finished ids -> how they ended: the current generation and the older ones, newest first (see the
        # module docstring). A generation spans _span_ns; _keep older ones cover remember_ns.
        self._finished: dict[EventId, int] = {}
        self._old_finished: deque[dict[EventId, int]] = deque()
        self._span_ns = max(1, min(self.remember_ns, GENERATION_NS))
        self._keep = max(1, -(-self.remember_ns // self._span_ns))
        self._generation_ns = 0
        self._limbo: list[tuple[int, int, Msg]] = []  # (actual_ns, seq, msg) of set-aside first sends
        self._seq = itertools.count()
        self._token = 0
        # Latency buffers (ns), see the module docstring. One value per event:
        self._corr: list[int] = []
        self._raw: list[int] = []
        self._deliv: list[int] = []
        # One value for the events of a message that share it, counted as many (weight) times:
        self._mcorr: list[int] = []
        self._mraw: list[int] = []
        self._w: list[int] = []  # the weights of _mcorr and _mraw alike
        self._mdeliv: list[int] = []
        self._dw: list[int] = []  # the weights of _mdeliv
        self.corrected = Histogram(layout)
        self.raw = Histogram(layout)
        self.delivery = Histogram(layout)
        self.sent = self.acked = self.rejected = self.lost = 0
        self.duplicate_acks = self.unknown_acks = self.late_acks = 0
        self.resent = self.stray_replies = 0

    # -- the hot path --------------------------------------------------------------------------------
    def on_send(self, conn: int, ids: Sequence[EventId], intended_ns: int, actual_ns: int,
                created_ns: Sequence[int]) -> int:
        """Register one written message; returns its token (increasing, unique across connections).

        Pass tuples (the fleet's ``Send`` fields): they are kept, not copied. A message without ids is
        tracked too, so that its (empty) reply does not answer another message.
        """
        queue = self._queues.get(conn)
        if queue is None:
            queue = self._queues[conn] = deque()
        token = self._token = self._token + 1
        ids_t = ids if isinstance(ids, tuple) else tuple(ids)
        created_t = created_ns if isinstance(created_ns, tuple) else tuple(created_ns)
        n = len(ids_t)
        if len(created_t) != n:
            raise ValueError(f"on_send: {n} ids but {len(created_t)} creation times")
        msg: Msg = (token, ids_t, created_t, intended_ns, actual_ns)
        queue.append(msg)
        pending = self._pending
        if n == 1:
            if pending.setdefault(ids_t[0], msg) is msg:
                self.sent += 1
            else:
                self.resent += 1
            return token
        before = len(pending)
        if pending.keys().isdisjoint(ids_t):  # the usual case: all new, added at C speed
            pending.update(zip(ids_t, repeat(msg)))
        else:
            setdefault = pending.setdefault  # keeps the first send of an id already pending
            for i in ids_t:
                setdefault(i, msg)
        added = len(pending) - before  # an id twice in one message is one event, resent once
        self.sent += added
        self.resent += n - added
        return token

    def on_ws_ack(self, conn: int, reported: Sequence[EventId], now_ns: int) -> None:
        """A WebSocket reply ``{"reportedIds": reported}`` arrived on ``conn`` at ``now_ns``."""
        if not isinstance(reported, tuple):
            reported = tuple(reported)
        queue = self._queues.get(conn)
        if queue:
            msg = queue[0]
            ids = msg[1]
            # The fast path: the reply is exactly the head's ids (an empty one only when no expired
            # message is owed a reply first).
            if ids == reported and (ids or not self._stale.get(conn)):
                queue.popleft()
                if self._stale:
                    self._stale.pop(conn, None)
                if len(ids) != 1:
                    self._ack_all(msg, now_ns)
                    return
                i = ids[0]
                first = self._pending.pop(i, None)
                if first is msg:  # the commonest case of all, inlined
                    self._corr.append(now_ns - msg[3])
                    self._raw.append(now_ns - msg[4])
                    self._deliv.append(now_ns - msg[2][0])
                    self.acked += 1
                    self._finished[i] = _ACKED
                else:
                    self._ack_popped(i, first, msg[2][0], now_ns)
                return
        self._ws_ack_slow(conn, reported, now_ns)

    def _ack_all(self, msg: Msg, now: int) -> None:
        """Every id of ``msg`` was reported: a full ack."""
        _, ids, created, intended, actual = msg
        n = len(ids)
        if not n:
            return
        firsts = list(map(self._pending.pop, ids, repeat(None, n)))
        # The usual case: msg first sent every id (list.count compares identity first; tokens differ). An
        # id twice in msg pops None the second time, so it takes the per-id path, as do retries.
        if firsts.count(msg) != n:
            self._ack_each(msg, firsts, now)
            return
        self._finished.update(zip(ids, repeat(_ACKED)))
        self._mcorr.append(now - intended)
        self._mraw.append(now - actual)
        self._w.append(n)
        t = created[0]
        if created.count(t) == n:  # a WebSocket message: its events were created together
            self._mdeliv.append(now - t)
            self._dw.append(n)
        else:
            self._deliv.extend(map(sub, repeat(now, n), created))
        self.acked += n

    def _ack_each(self, msg: Msg, firsts: list[Msg | None], now: int) -> None:
        """The full ack of ``msg`` id by id (already popped; ``firsts``: their first sends, or None)."""
        _, ids, created, intended, actual = msg
        finished = self._finished
        deliv = self._deliv
        k = 0
        for i, first, t in zip(ids, firsts, created):  # noqa: B905  (equal lengths checked in on_send)
            if first is msg:
                k += 1
                deliv.append(now - t)
                finished[i] = _ACKED
            else:
                self._ack_popped(i, first, t, now)
        if k:
            self._mcorr.append(now - intended)
            self._mraw.append(now - actual)
            self._w.append(k)
            self.acked += k

    def _ack_popped(self, i: EventId, first: Msg | None, created: int, now: int) -> None:
        """A reported id of the answered message, just popped from pending (``first``: its first send)."""
        if first is None:
            self._ack_finished(i, known=True)
        else:
            self._ack_pending(i, first, created, now)

    def _ack_pending(self, i: EventId, first: Msg, created: int, now: int) -> None:
        """Ack a pending id (already popped), timed from its first send."""
        self._corr.append(now - first[3])
        self._raw.append(now - first[4])
        self._deliv.append(now - created)
        self.acked += 1
        self._finished[i] = _ACKED

    def _ack_finished(self, i: EventId, *, known: bool) -> None:
        """An ack of an id no longer pending: duplicate, late, or unknown (never acked twice)."""
        state = self._finished.get(i)
        if state is None:
            for older in self._old_finished:
                state = older.get(i)
                if state is not None:
                    break
        if state == _ACKED or (state is None and known):
            self.duplicate_acks += 1
        elif state is not None:
            self.late_acks += 1
        else:
            self.unknown_acks += 1

    # -- the general path ----------------------------------------------------------------------------
    def _ws_ack_slow(self, conn: int, reported: tuple[EventId, ...], now: int) -> None:
        queue = self._queues.get(conn) or deque()
        stale = self._stale
        if not reported:
            if stale.get(conn):
                stale[conn] -= 1  # the late reply of an expired message
            elif queue:
                self._answer(queue.popleft(), frozenset(), now)
            else:
                self.stray_replies += 1
            return
        want = set(reported)
        self.duplicate_acks += len(reported) - len(want)
        k = next((k for k, m in enumerate(queue) if not want.isdisjoint(m[1])), -1)
        if k < 0:
            if stale.get(conn):
                stale[conn] -= 1  # the late reply of an expired message
            else:
                self.stray_replies += 1
            for i in want:
                self._ack_loose(i, now)
            return
        for _ in range(k):
            self._set_aside(queue.popleft())  # in-order replies: theirs will not come
        stale.pop(conn, None)
        self._answer(queue.popleft(), want, now)

    def _answer(self, msg: Msg, want: set[EventId] | frozenset[EventId], now: int) -> None:
        """``msg`` was answered with the ids ``want``: those are acked, its other pending ids rejected."""
        _, ids, created, _, _ = msg
        pending = self._pending
        finished = self._finished
        for i, t in zip(ids, created):  # noqa: B905
            first = pending.pop(i, None)
            if i in want:
                self._ack_popped(i, first, t, now)
            elif first is not None:
                self.rejected += 1
                finished[i] = _REJECTED
        if want:
            for i in want.difference(ids):
                self._ack_loose(i, now)

    def _ack_loose(self, i: EventId, now: int) -> None:
        """A reported id outside the message answered (or with no message): ack it if pending anywhere."""
        first = self._pending.pop(i, None)
        if first is None:
            self._ack_finished(i, known=False)
        else:
            self._ack_pending(i, first, first[2][first[1].index(i)], now)

    def _set_aside(self, msg: Msg) -> None:
        """``msg`` leaves its queue unanswered; events it first sent stay pending, timed out from the heap."""
        pending = self._pending
        if any(pending.get(i) is msg for i in msg[1]):
            heapq.heappush(self._limbo, (msg[4], next(self._seq), msg))

    def _take(self, conn: int, token: int) -> Msg | None:
        """Remove and return the unanswered message ``token`` of ``conn`` (None when not there)."""
        queue = self._queues.get(conn)
        if queue:
            if queue[0][0] == token:  # requests of one connection are mostly answered in order
                return queue.popleft()
            for k, msg in enumerate(queue):
                if msg[0] == token:
                    del queue[k]
                    return msg
        return None

    # -- wire ids that may collide (see the module docstring) ---------------------------------------------
    def on_send_wire(self, conn: int, ids: tuple[EventId, ...], wire: tuple[EventId, ...], intended_ns: int,
                     actual_ns: int, created_ns: tuple[int, ...]) -> int:
        """``on_send`` of a message whose events go out with the ids ``wire`` (parallel to their keys
        ``ids``); its replies come through ``on_ws_ack_wire``."""
        token = self.on_send(conn, ids, intended_ns, actual_ns, created_ns)
        mirror = self._wired.get(conn)
        if mirror is None:
            mirror = self._wired[conn] = deque()
        mirror.append((token, wire, ids))
        return token

    def on_ws_ack_wire(self, conn: int, reported: Sequence[EventId], now_ns: int) -> tuple[EventId, ...]:
        """A reply of wire ids on ``conn`` (whose messages went through ``on_send_wire``); returns the keys it
        named (unknown ids left out), after handling it as ``on_ws_ack`` does."""
        keys = self._to_keys(conn, tuple(reported))
        self.on_ws_ack(conn, keys, now_ns)
        return tuple(k for k in keys if not isinstance(k, UnknownId))

    def _to_keys(self, conn: int, reported: tuple[EventId, ...]) -> tuple[EventId, ...]:
        """The keys of the events ``reported`` names on ``conn`` (see the module docstring)."""
        mirror = self._wired.get(conn)
        if not mirror:
            return tuple(map(_unknown, reported))
        queue = self._queues.get(conn)
        head = queue[0][0] if queue else None
        while mirror and (head is None or mirror[0][0] < head):  # answered, set aside or expired
            mirror.popleft()
        if not reported or not mirror:
            return tuple(map(_unknown, reported))
        want = set(reported)
        answered = next((m for m in mirror if not want.isdisjoint(m[1])), None)
        free: dict[EventId, list[EventId]] = {}
        if answered is not None:
            for w, key in zip(reversed(answered[1]), reversed(answered[2]), strict=True):
                free.setdefault(w, []).append(key)  # reversed: pop() takes them in the message's order
        out: list[EventId] = []
        for r in reported:
            taken = free.get(r)
            if taken:
                out.append(taken.pop())
                continue
            other = next((m[2][m[1].index(r)] for m in mirror if m is not answered and r in m[1]), None)
            out.append(other if other is not None else _unknown(r))
        return tuple(out)

    def is_pending(self, key: EventId) -> bool:
        """Whether the event ``key`` is still waiting for its ack (a resending client re-sends only those)."""
        return key in self._pending

    # -- HTTP ----------------------------------------------------------------------------------------
    def on_http_reply(self, conn: int, token: int, reported: Sequence[EventId], now_ns: int) -> None:
        """The HTTP request ``token`` of ``conn`` was answered ``200 {"reportedIds": reported}``."""
        if not isinstance(reported, tuple):
            reported = tuple(reported)
        msg = self._take(conn, token)
        if msg is not None and msg[1] == reported:
            self._ack_all(msg, now_ns)
            return
        want = set(reported)
        self.duplicate_acks += len(reported) - len(want)
        if msg is not None:
            self._answer(msg, want, now_ns)
            return
        self.stray_replies += 1  # expired or failed before its reply came
        for i in want:
            self._ack_loose(i, now_ns)

    def on_http_failure(self, conn: int, token: int, now_ns: int, *, retry: bool) -> None:
        """The HTTP request ``token`` failed (an error status).

        ``retry=True``: its events stay pending; they will be sent again (``on_send``, new token) and
        keep the times of their first send. ``retry=False``: its pending events are rejected.
        """
        msg = self._take(conn, token)
        if msg is None:
            return
        if retry:
            self._set_aside(msg)
            return
        pending = self._pending
        finished = self._finished
        for i in msg[1]:
            if pending.pop(i, None) is not None:
                self.rejected += 1
                finished[i] = _REJECTED

    # -- connections, time, the end ------------------------------------------------------------------
    def on_conn_closed(self, conn: int, now_ns: int) -> None:
        """``conn`` closed: no reply can come on it; its pending events stay pending until the timeout."""
        self._stale.pop(conn, None)
        self._wired.pop(conn, None)
        for msg in self._queues.pop(conn, ()):
            self._set_aside(msg)

    def expire(self, now_ns: int) -> int:
        """Count as lost every event pending ``timeout_ns`` after its first actual send.

        Also rotates the memory of finished ids. Call it about once a second.

        Returns:
            How many events this call counted lost.
        """
        deadline = now_ns - self.timeout_ns
        before = self.lost
        stale = self._stale
        for conn, queue in self._queues.items():
            while queue and queue[0][4] <= deadline:
                self._lose(queue.popleft())
                stale[conn] = stale.get(conn, 0) + 1
        limbo = self._limbo
        while limbo and limbo[0][0] <= deadline:
            self._lose(heapq.heappop(limbo)[2])
        if now_ns - self._generation_ns >= self._span_ns:
            # An id finished in a generation is dropped _keep rotations after it, each at least _span_ns
            # apart: no sooner than remember_ns after it finished.
            old = self._old_finished
            old.appendleft(self._finished)
            self._finished = {}
            self._generation_ns = now_ns
            while len(old) > self._keep:
                old.pop()
        return self.lost - before

    def _lose(self, msg: Msg) -> None:
        """Events first sent by ``msg`` and still pending are lost."""
        pending = self._pending
        finished = self._finished
        for i in msg[1]:
            if pending.get(i) is msg:
                del pending[i]
                finished[i] = _LOST
                self.lost += 1

    def finish(self, now_ns: int) -> None:
        """End of the drain: every event still pending is lost. Later acks still count as late."""
        pending = self._pending
        finished = self._finished
        for i in pending:
            finished[i] = _LOST
        self.lost += len(pending)
        pending.clear()
        self._limbo.clear()

    # -- results -------------------------------------------------------------------------------------
    def fold(self) -> None:
        """Move the buffered latencies into the histograms (ns -> µs). Call about once a second."""
        for buf, hist in ((self._corr, self.corrected), (self._raw, self.raw), (self._deliv, self.delivery)):
            if buf:
                _fold_into(hist, buf, None)
        if self._w:
            w = np.array(self._w, dtype=np.int64)
            _fold_into(self.corrected, self._mcorr, w)
            _fold_into(self.raw, self._mraw, w)
            self._w.clear()
        if self._dw:
            _fold_into(self.delivery, self._mdeliv, np.array(self._dw, dtype=np.int64))
            self._dw.clear()

    @property
    def in_flight(self) -> int:
        """Events sent and not yet acked, rejected or lost."""
        return len(self._pending)

    @property
    def buffered(self) -> int:
        """Latency samples (per histogram) waiting for the next ``fold``: one per event acked since."""
        return len(self._corr) + sum(self._w)

    def accounting(self) -> Accounting:
        return Accounting(self.sent, self.acked, self.rejected, self.lost, len(self._pending))

    def result(self) -> TrackerResult:
        """Fold, then a frozen copy of the counters and histograms (to ship to the parent and merge)."""
        self.fold()
        return TrackerResult(
            sent=self.sent, acked=self.acked, rejected=self.rejected, lost=self.lost,
            in_flight=len(self._pending), duplicate_acks=self.duplicate_acks,
            unknown_acks=self.unknown_acks, late_acks=self.late_acks, resent=self.resent,
            stray_replies=self.stray_replies, corrected=self.corrected.copy(), raw=self.raw.copy(),
            delivery=self.delivery.copy())


def _fold_into(hist: Histogram, buf: list[int], weights: npt.NDArray[np.int64] | None) -> None:
    """Record the latencies ``buf`` (ns) into ``hist`` (µs), each its weight (or one) times; empty ``buf``."""
    hist.record_many(np.array(buf, dtype=np.int64) / 1000.0, weights)  # int64 converts faster
    buf.clear()
