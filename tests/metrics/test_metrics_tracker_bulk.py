"""Bulk paths: weighted record_many equals repeated values; the tracker equals one latency per event.

The tracker buffers one weighted latency for the events of a message that share it. These tests hold
it to a straightforward per-event model (one latency recorded per acked event), in counters, buckets,
minimum and maximum, down to the JSON text of the result.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.metrics import HOUR_US, AckTracker, Histogram, Layout, TrackerResult
from bench.protocol.events import EventId

FAST = settings(max_examples=200, deadline=None)
MS = 1_000_000
HOUR_NS = HOUR_US * 1_000

#: Below, inside and above the default range, infinities included (no NaN).
any_value = st.one_of(st.floats(min_value=1.0, max_value=float(HOUR_US)), st.floats(allow_nan=False),
                      st.integers(-10, 10).map(float))
weighted = st.lists(st.tuples(any_value, st.integers(0, 5)), max_size=40)


def repeated(pairs: list[tuple[float, int]], layout: Layout | None = None) -> Histogram:
    h = Histogram() if layout is None else Histogram(layout)
    h.record_many([v for v, w in pairs for _ in range(w)])
    return h


def weighed(pairs: list[tuple[float, int]], layout: Layout | None = None) -> Histogram:
    h = Histogram() if layout is None else Histogram(layout)
    h.record_many([v for v, _ in pairs], [w for _, w in pairs])
    return h


# -- Histogram.record_many with weights ----------------------------------------------------------------
@FAST
@given(weighted)
def test_weighted_equals_repeated(pairs: list[tuple[float, int]]) -> None:
    """Each value counted `weight` times, in range, underflow and overflow, equals the value repeated."""
    h = weighed(pairs)
    assert h == repeated(pairs)
    assert h.total == sum(w for _, w in pairs)
    assert h.to_json() == repeated(pairs).to_json()


@FAST
@given(weighted)
def test_weighted_equals_repeated_in_another_layout(pairs: list[tuple[float, int]]) -> None:
    """The same holds when the lowest value of the range is not 1 µs."""
    lay = Layout(lowest_us=4, highest_us=1 << 20, sub_buckets=16)
    assert weighed(pairs, lay) == repeated(pairs, lay)


def test_zero_weight_counts_nothing() -> None:
    """A value of weight 0 is not counted anywhere, not even in the exact min and max."""
    h = weighed([(5.0, 1), (1e3, 0), (0.1, 0), (1e12, 0), (7.0, 2)])
    assert (h.count, h.underflow, h.overflow) == (3, 0, 0)
    assert (h.min(), h.max()) == (5.0, 7.0)
    assert weighed([(5.0, 0), (0.5, 0)]) == Histogram()


def test_weights_of_other_numeric_types() -> None:
    """numpy unsigned and integral float weights count like ints; an empty batch counts nothing."""
    expected = weighed([(3.0, 2), (4.0, 1)])
    h = Histogram()
    h.record_many(np.array([3.0, 4.0]), np.array([2, 1], dtype=np.uint8))
    assert h == expected
    h = Histogram()
    h.record_many([3.0, 4.0], [2.0, 1.0])
    assert h == expected
    h.record_many([], [])
    assert h == expected


@pytest.mark.parametrize("w", [2**40, 2**60], ids=["float-exact", "integer-fallback"])
def test_huge_weights_are_counted_exactly(w: int) -> None:
    """Weights too large for exact float sums still give exact integer counts."""
    h = Histogram()
    h.record_many([10.0, 10.0, 20.0, 0.5, 1e12], [w, w, 3, w, w + 1])
    assert h.count == 2 * w + 3 and h.underflow == w and h.overflow == w + 1
    lay = h.layout
    assert int(h.buckets[lay.index(10.0)]) == 2 * w and int(h.buckets[lay.index(20.0)]) == 3


@pytest.mark.parametrize(("weights", "match"), [
    pytest.param([1, -1], ">= 0", id="negative"),
    pytest.param([1.5, 1], "whole", id="fractional"),
    pytest.param([math.nan, 1], "whole", id="nan"),
    pytest.param([math.inf, 1], "whole", id="inf"),
    pytest.param([1], "1 weights for 2 values", id="too-few"),
    pytest.param([1, 2, 3], "3 weights for 2 values", id="too-many"),
    pytest.param(["1", "2"], "integers", id="strings"),
    pytest.param([True, False], "integers", id="bools"),
    pytest.param([2**70, 1], "integers", id="beyond-int64"),
    pytest.param(np.array([2**63, 1], dtype=np.uint64), "too large", id="beyond-int64-unsigned"),
    pytest.param([2.0**63, 1.0], "too large", id="beyond-int64-float"),
])
def test_bad_weights_raise_and_record_nothing(weights: Any, match: str) -> None:
    """Weights must be non-negative integers, one per value; otherwise ValueError and nothing recorded."""
    h = weighed([(5.0, 1)])
    with pytest.raises(ValueError, match=match):
        h.record_many([3.0, 1e12], weights)
    assert h == weighed([(5.0, 1)])


@pytest.mark.parametrize("w", [0, 3])
def test_nan_raises_whatever_its_weight(w: int) -> None:
    """A NaN value is a harness bug even with weight 0: ValueError, and nothing of the batch recorded."""
    h = Histogram()
    with pytest.raises(ValueError, match="NaN"):
        h.record_many([5.0, math.nan, 0.5, 1e12], [1, w, 1, 1])
    assert h.total == 0


# -- the tracker against a per-event model -------------------------------------------------------------
Msg = tuple[int, tuple[EventId, ...], tuple[int, ...], int, int]


@dataclass
class Reference:
    """Per-event model of the tracker's sends and replies (no clock steps): one latency per acked event.

    It follows the rules of the tracker's module docstring: a reply answers the oldest queued message
    holding a reported id (older ones are set aside), latency is timed from an id's first send, the
    creation time from the answered message (from the first send for an id outside it).
    """

    queues: dict[int, list[Msg]] = field(default_factory=dict)
    pending: dict[EventId, Msg] = field(default_factory=dict)
    finished: dict[EventId, str] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, list[int]] = field(
        default_factory=lambda: {"corrected": [], "raw": [], "delivery": []})
    folded: int = 0  # acks whose latencies the tracker has folded at the same point
    token: int = 0

    def send(self, conn: int, ids: tuple[EventId, ...], intended: int, actual: int,
             created: tuple[int, ...]) -> int:
        self.token += 1
        msg = (self.token, ids, created, intended, actual)
        self.queues.setdefault(conn, []).append(msg)
        for i in ids:
            if i in self.pending:
                self.counts["resent"] += 1
            else:
                self.pending[i] = msg
                self.counts["sent"] += 1
        return self.token

    def ws_reply(self, conn: int, reported: tuple[EventId, ...], now: int) -> None:
        queue = self.queues.get(conn, [])
        if queue and queue[0][1] == reported:
            self._answer(queue.pop(0), None, now)
        elif not reported:
            if queue:
                self._answer(queue.pop(0), set(), now)
            else:
                self.counts["stray_replies"] += 1
        else:
            want = self._want(reported)
            k = next((k for k, m in enumerate(queue) if want & set(m[1])), -1)
            if k < 0:
                self._stray(want, now)
            else:
                del queue[:k]  # set aside: their events stay pending
                self._answer(queue.pop(0), want, now)

    def http_reply(self, conn: int, token: int, reported: tuple[EventId, ...], now: int) -> None:
        queue = self.queues.get(conn, [])
        msg = next((m for m in queue if m[0] == token), None)
        if msg is None:
            self._stray(self._want(reported), now)
            return
        queue.remove(msg)
        self._answer(msg, None if msg[1] == reported else self._want(reported), now)

    def _want(self, reported: tuple[EventId, ...]) -> set[EventId]:
        self.counts["duplicate_acks"] += len(reported) - len(set(reported))
        return set(reported)

    def _stray(self, want: set[EventId], now: int) -> None:
        self.counts["stray_replies"] += 1
        for i in want:
            self._ack(i, None, now, known=False)

    def _answer(self, msg: Msg, want: set[EventId] | None, now: int) -> None:
        """``want`` None: every id of ``msg`` was reported."""
        for i, t in zip(msg[1], msg[2], strict=True):
            if want is None or i in want:
                self._ack(i, t, now, known=True)
            elif self.pending.pop(i, None) is not None:
                self.counts["rejected"] += 1
                self.finished[i] = "rejected"
        for i in (want or set()).difference(msg[1]):
            self._ack(i, None, now, known=False)

    def _ack(self, i: EventId, created: int | None, now: int, *, known: bool) -> None:
        first = self.pending.pop(i, None)
        if first is None:
            state = self.finished.get(i)
            kind = ("duplicate_acks" if state == "acked" or (state is None and known)
                    else "late_acks" if state else "unknown_acks")
            self.counts[kind] += 1
            return
        if created is None:
            created = first[2][first[1].index(i)]
        for key, since in (("corrected", first[3]), ("raw", first[4]), ("delivery", created)):
            self.latencies[key].append(now - since)
        self.counts["acked"] += 1
        self.finished[i] = "acked"

    def result(self) -> TrackerResult:
        hists = {}
        for key, ns in self.latencies.items():
            hists[key] = Histogram()
            for v in ns:  # one value at a time, nothing batched or weighted
                hists[key].record(v / 1000)
        c = self.counts
        return TrackerResult(
            sent=c["sent"], acked=c["acked"], rejected=c["rejected"], in_flight=len(self.pending),
            duplicate_acks=c["duplicate_acks"], unknown_acks=c["unknown_acks"], late_acks=c["late_acks"],
            resent=c["resent"], stray_replies=c["stray_replies"], corrected=hists["corrected"],
            raw=hists["raw"], delivery=hists["delivery"])


#: (kind, conn, a, b, flag, picks): one step; what a, b, flag and picks mean depends on kind.
Step = tuple[str, int, int, int, bool, list[int]]
steps = st.lists(st.tuples(
    st.sampled_from(["send", "send", "ws", "ws", "http", "fold", "tick"]), st.integers(0, 2),
    st.integers(0, 12), st.integers(0, 5), st.booleans(), st.lists(st.integers(-2, 40), max_size=4)),
    min_size=4, max_size=50)
#: Clock steps: none (latencies under 1 µs: underflow), ordinary ones, and past the hour (overflow).
ticks = (0, 300, 5 * MS, 80 * MS, HOUR_NS + 1)


@dataclass
class Run:
    """The tracker and the model fed the same steps."""

    t: AckTracker = field(default_factory=lambda: AckTracker(timeout_ns=10 * HOUR_NS))
    ref: Reference = field(default_factory=Reference)
    now: int = 10 * MS
    next_id: int = 0
    sent: dict[int, list[tuple[int, tuple[EventId, ...]]]] = field(default_factory=dict)  # conn -> sends

    def ids(self, picks: list[int]) -> tuple[EventId, ...]:
        known = [i for sends in self.sent.values() for _, ids in sends for i in ids]
        return tuple(known[p % len(known)] if known and p >= 0 else f"u{p}" for p in picks)

    def send(self, conn: int, n: int, b: int, same_created: bool, picks: list[int]) -> None:
        """``n`` new ids, up to two known or unknown ones, and (``b`` > 3) its first id again."""
        spread = b % 4  # 0: sub-µs latencies (underflow)
        ids = tuple(range(self.next_id, self.next_id + n)) + self.ids(picks[: spread % 3])
        ids += ids[:1] if b > 3 else ()
        self.next_id += n
        intended = self.now - (700 if spread == 0 else MS)
        created = tuple(intended - (0 if same_created else k * spread * MS) for k in range(len(ids)))
        args = (conn, ids, intended, self.now, created)
        token = self.t.on_send(*args)
        assert self.ref.send(*args) == token
        self.sent.setdefault(conn, []).append((token, ids))

    def reply(self, kind: str, conn: int, k: int, how: int, picks: list[int]) -> None:
        """Mostly replies to unanswered messages (the head for WebSocket), sometimes to answered ones."""
        queued = [(m[0], m[1]) for m in self.ref.queues.get(conn, [])]
        sends = (queued if queued and k % 4 else self.sent.get(conn)) or [(0, ())]
        token, ids = sends[0 if kind == "ws" else k % len(sends)]
        reported = (ids, ids[::-1] + ids[:1], self.ids(picks), ids[: len(ids) // 2] + self.ids(picks))[
            max(0, how - 2)]  # half of them exactly the ids
        if kind == "ws":
            self.t.on_ws_ack(conn, reported, self.now)
            self.ref.ws_reply(conn, reported, self.now)
        else:
            self.t.on_http_reply(conn, token, reported, self.now)
            self.ref.http_reply(conn, token, reported, self.now)

    def step(self, step: Step) -> None:
        kind, conn, a, b, flag, picks = step
        if kind == "send":
            self.send(conn, a % 11, b, flag, picks)
        elif kind in ("ws", "http"):
            self.reply(kind, conn, a, b, picks)
        elif kind == "fold":
            self.t.fold()
            self.ref.folded = self.ref.counts["acked"]
        else:
            self.now += ticks[a % len(ticks)]
        assert self.t.buffered == self.ref.counts["acked"] - self.ref.folded


@settings(max_examples=300, deadline=None)
@given(steps)
def test_tracker_equals_per_event_model(ops: list[Step]) -> None:
    """After any sends and replies, counters and histograms equal one latency recorded per acked event."""
    run = Run()
    for op in ops:
        run.step(op)
    got, want = run.t.result(), run.ref.result()
    assert got == want
    assert json.dumps(got.to_json()) == json.dumps(want.to_json())
    assert got.accounting().ok


def test_ten_event_message_is_one_weighted_sample() -> None:
    """A full ack of a 10-event WebSocket message buffers 10 samples and folds into 10 equal values."""
    t = AckTracker(timeout_ns=HOUR_NS)
    ids = tuple(range(10))
    t.on_send(1, ids, 0, 2 * MS, (0,) * 10)
    t.on_ws_ack(1, list(ids), 5 * MS)
    assert t.buffered == 10 and t.corrected.total == 0
    r = t.result()
    assert t.buffered == 0
    for h, us in ((r.corrected, 5_000.0), (r.raw, 3_000.0), (r.delivery, 5_000.0)):
        assert h.count == 10 and h.min() == h.max() == us


def test_http_batch_keeps_one_delivery_per_event() -> None:
    """A batch of events created at different times has one delivery delay per event, one corrected."""
    t = AckTracker(timeout_ns=HOUR_NS)
    tok = t.on_send(1, (1, 2, 3), 10 * MS, 10 * MS, (1 * MS, 2 * MS, 2 * MS))
    t.on_http_reply(1, tok, (1, 2, 3), 12 * MS)
    r = t.result()
    assert r.corrected.count == r.delivery.count == 3 and r.corrected.min() == r.corrected.max() == 2_000.0
    assert (r.delivery.min(), r.delivery.max()) == (10_000.0, 11_000.0)


def test_id_twice_in_a_message_acked_in_full() -> None:
    """A message with an id twice, answered with exactly its ids: one event acked, one duplicate ack."""
    t = AckTracker(timeout_ns=HOUR_NS)
    t.on_send(1, (7, 8, 7), 0, 0, (0, 0, 0))
    t.on_ws_ack(1, (7, 8, 7), MS)
    r = t.result()
    assert (r.sent, r.resent, r.acked, r.duplicate_acks, r.in_flight) == (2, 1, 2, 1, 0)
    assert r.corrected.count == r.delivery.count == 2


def test_message_resending_a_pending_id_is_acked_per_event() -> None:
    """A message re-sending a pending id: it is timed from its first send, the others from this one."""
    t = AckTracker(timeout_ns=HOUR_NS)
    t.on_send(1, (1,), 0, 0, (0,))
    t.on_conn_closed(1, MS)
    t.on_send(2, (1, 2, 3), 4 * MS, 4 * MS, (4 * MS,) * 3)
    t.on_ws_ack(2, (1, 2, 3), 6 * MS)
    r = t.result()
    assert (r.sent, r.resent, r.acked) == (3, 1, 3)
    assert (r.corrected.min(), r.corrected.max(), r.corrected.count) == (2_000.0, 6_000.0, 3)
    assert (r.delivery.min(), r.delivery.max()) == (2_000.0, 2_000.0)
