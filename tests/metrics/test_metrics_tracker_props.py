"""AckTracker properties: the accounting identity after any sequence, and exact merging of results."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from bench.metrics import AckTracker, TrackerResult
from bench.protocol.events import EventId

MS = 1_000_000
TIMEOUT = 50 * MS
CONNS = st.integers(min_value=0, max_value=3)


class TrackerMachine(RuleBasedStateMachine):
    """Random sends, replies, failures, closes and clock steps; the books must always balance."""

    def __init__(self) -> None:
        super().__init__()
        self.t = AckTracker(timeout_ns=TIMEOUT, remember_ns=20 * MS)
        self.now = 0
        self.next_id = 0
        self.sent_on: dict[int, list[tuple[int, tuple[EventId, ...]]]] = {}  # conn -> (token, ids)
        self.finished = False

    def _ids(self, conn: int, picks: list[int]) -> tuple[EventId, ...]:
        known = [i for _, ids in self.sent_on.get(conn, []) for i in ids]
        return tuple(known[p % len(known)] if known and p >= 0 else f"u{p}" for p in picks)

    @rule(conn=CONNS, n=st.integers(0, 4), resend=st.lists(st.integers(0, 50), max_size=2))
    def send(self, conn: int, n: int, resend: list[int]) -> None:
        ids = tuple(range(self.next_id, self.next_id + n)) + self._ids(conn, resend)
        self.next_id += n
        token = self.t.on_send(conn, ids, self.now - MS, self.now, tuple(self.now - 2 * MS for _ in ids))
        self.sent_on.setdefault(conn, []).append((token, ids))

    @rule(conn=CONNS, picks=st.lists(st.integers(-3, 60), max_size=4), head=st.booleans())
    def ws_reply(self, conn: int, picks: list[int], head: bool) -> None:
        sent = self.sent_on.get(conn)
        if head and sent:
            self.t.on_ws_ack(conn, sent[0][1], self.now)
            sent.pop(0)
        else:
            self.t.on_ws_ack(conn, self._ids(conn, picks), self.now)

    @rule(conn=CONNS, k=st.integers(0, 20), picks=st.lists(st.integers(-3, 60), max_size=4),
          whole=st.booleans())
    def http_reply(self, conn: int, k: int, picks: list[int], whole: bool) -> None:
        sent = self.sent_on.get(conn) or [(0, ())]
        token, ids = sent[k % len(sent)]
        self.t.on_http_reply(conn, token, ids if whole else self._ids(conn, picks), self.now)

    @rule(conn=CONNS, k=st.integers(0, 20), retry=st.booleans())
    def http_failure(self, conn: int, k: int, retry: bool) -> None:
        sent = self.sent_on.get(conn) or [(0, ())]
        self.t.on_http_failure(conn, sent[k % len(sent)][0], self.now, retry=retry)

    @rule(conn=CONNS)
    def close(self, conn: int) -> None:
        self.t.on_conn_closed(conn, self.now)

    @rule(dt=st.integers(0, 40 * MS))
    def tick(self, dt: int) -> None:
        self.now += dt
        lost_before = self.t.lost
        assert self.t.expire(self.now) == self.t.lost - lost_before

    @rule()
    def fold(self) -> None:
        self.t.fold()

    @precondition(lambda self: not self.finished)
    @rule()
    def finish(self) -> None:
        self.t.finish(self.now)
        self.finished = True
        assert self.t.in_flight == 0

    @invariant()
    def books_balance(self) -> None:
        acc = self.t.accounting()
        assert acc.ok, acc.line()
        assert min(acc.sent, acc.acked, acc.rejected, acc.lost, acc.in_flight) >= 0

    @invariant()
    def every_ack_has_its_latencies(self) -> None:
        t = self.t
        for h in (t.corrected, t.raw, t.delivery):
            assert h.total + t.buffered == t.acked


def test_tracker_machine() -> None:
    """The machine's rules in random order (a function, not its TestCase, so the twins fixture applies)."""
    run_state_machine_as_test(TrackerMachine, settings=settings(max_examples=200, stateful_step_count=30,
                                                                deadline=None))


# -- merging results: two trackers fed halves == one tracker fed everything --------------------------
@dataclass
class Feed:
    """One tracker and the tokens it gave to each conn's sends (tokens differ between trackers)."""

    t: AckTracker = field(default_factory=lambda: AckTracker(timeout_ns=TIMEOUT, remember_ns=20 * MS))
    tokens: dict[int, list[int]] = field(default_factory=dict)


Op = tuple[str, int, int, int]  # (kind, conn, a, b)
ops_strategy = st.lists(st.tuples(st.sampled_from(["send", "ws", "http", "fail", "close", "tick"]),
                                  st.integers(0, 5), st.integers(0, 30), st.integers(0, 3)), max_size=60)


def replay(ops: list[Op], feeds: dict[int, Feed], route: Callable[[int], list[int]]) -> None:
    """Apply ``ops`` to the feeds ``route(conn)`` names; ids are global, unknown ids per conn."""
    now, next_id = 0, 0
    ids_of: dict[int, list[tuple[EventId, ...]]] = {}
    for kind, conn, a, b in ops:
        if kind == "tick":
            now += a * 2 * MS
            for f in feeds.values():
                f.t.expire(now)
            continue
        sent = ids_of.setdefault(conn, [])
        if kind == "send":
            sent.append(tuple(range(next_id, next_id + b)))
            next_id += b
        pick = sent[a % len(sent)] if sent else ()
        reply = pick[: len(pick) - b % 2] + ((f"u{conn}-{a}",) if b == 3 else ())
        for f in (feeds[k] for k in route(conn)):
            toks = f.tokens.setdefault(conn, [])
            if kind == "send":
                toks.append(f.t.on_send(conn, sent[-1], now, now + a, tuple(now - b for _ in sent[-1])))
            elif kind == "ws":
                f.t.on_ws_ack(conn, reply, now)
            elif kind == "http" and toks:
                f.t.on_http_reply(conn, toks[a % len(toks)], reply, now)
            elif kind == "fail" and toks:
                f.t.on_http_failure(conn, toks[a % len(toks)], now, retry=b % 2 == 0)
            elif kind == "close":
                f.t.on_conn_closed(conn, now)


@settings(max_examples=200, deadline=None)
@given(ops_strategy, st.booleans())
def test_merged_results_equal_one_tracker_fed_the_union(ops: list[Op], end: bool) -> None:
    """Results of trackers fed disjoint connections merge into exactly the result of one fed them all."""
    parts = {0: Feed(), 1: Feed(), 2: Feed()}  # even connections, odd ones, all of them
    replay(ops, parts, lambda conn: [conn % 2, 2])
    if end:
        for f in parts.values():
            f.t.finish(10**12)
    merged = parts[0].t.result().merge(parts[1].t.result())
    whole = parts[2].t.result()
    assert merged == whole
    assert merged.accounting().ok


@settings(max_examples=100, deadline=None)
@given(ops_strategy)
def test_result_json_round_trip_and_merge_all(ops: list[Op]) -> None:
    """A result survives to_json/from_json exactly; merge_all of one result is that result."""
    feed = Feed()
    replay(ops, {0: feed}, lambda conn: [0])
    r = feed.t.result()
    assert TrackerResult.from_json(r.to_json()) == r
    assert TrackerResult.merge_all([r]) == r
    assert TrackerResult.merge_all([r, TrackerResult()]) == r
    assert r.merge(r).sent == 2 * r.sent
