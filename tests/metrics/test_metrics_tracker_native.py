"""The tracker with bench._native's C twins and without them: the same state after every call.

Two trackers take the same random calls (sends that repeat ids, exact and partial and stray replies, HTTP
replies and failures, closes, expiry); one runs the C twins of the per-id dict work, the other the Python
lines they stand in for. After each call their pending and finished ids, queues, buffers and counters
must be equal.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import native
from bench.metrics import AckTracker

if not native.built():
    pytest.skip("bench._native is not built (no C compiler at install)", allow_module_level=True)

MS = 1_000_000

ids = st.lists(st.integers(0, 12), max_size=5).map(tuple)
ops = st.lists(st.one_of(
    st.tuples(st.just("send"), st.integers(0, 2), ids),
    st.tuples(st.just("ack_last"), st.integers(0, 2), st.booleans()),
    st.tuples(st.just("ack"), st.integers(0, 2), ids),
    st.tuples(st.just("http"), st.integers(0, 2), st.integers(0, 8), st.booleans()),
    st.tuples(st.just("fail"), st.integers(0, 2), st.integers(0, 8), st.booleans()),
    st.tuples(st.just("close"), st.integers(0, 2)),
    st.tuples(st.just("tick"), st.integers(1, 40)),
), max_size=40)


def state(t: AckTracker) -> dict[str, Any]:
    return {
        "pending": {i: m[0] for i, m in t._pending.items()},
        "finished": [dict(t._finished), *map(dict, t._old_finished)],
        "queues": {c: [m[0] for m in q] for c, q in t._queues.items()},
        "limbo": [(a, m[0]) for a, _, m in t._limbo],
        "stale": dict(t._stale),
        "buffers": [list(b) for b in (t._corr, t._raw, t._deliv, t._mcorr, t._mraw, t._w, t._mdeliv, t._dw)],
        "counters": t.result().counters(),
    }


def call(t: AckTracker, op: tuple[Any, ...], now: int, tokens: list[tuple[int, int, tuple[int, ...]]],
         c_twins: bool) -> None:
    native.twins.use("c" if c_twins else "python")
    kind = op[0]
    if kind == "send":
        _, conn, sent = op
        tokens.append((conn, t.on_send(conn, sent, now, now + 1, tuple(now - k for k in range(len(sent)))),
                       sent))
    elif kind == "ack_last":  # the reply to the connection's last send: whole, or all but its first id
        _, conn, whole = op
        last = next((s for c, _, s in reversed(tokens) if c == conn), ())
        t.on_ws_ack(conn, last if whole else last[1:], now)
    elif kind == "ack":
        t.on_ws_ack(op[1], op[2], now)
    elif kind in ("http", "fail") and tokens:
        _, conn, k, flag = op
        c, token, sent = tokens[k % len(tokens)]
        if kind == "http":
            t.on_http_reply(c, token, sent if flag else sent[:1], now)
        else:
            t.on_http_failure(c, token, now, retry=flag)
    elif kind == "close":
        t.on_conn_closed(op[1], now)
    elif kind == "tick":
        t.expire(now)


@settings(max_examples=400, deadline=None)
@given(ops=ops)
def test_c_twins_keep_the_same_state(ops: list[tuple[Any, ...]]) -> None:
    a = AckTracker(timeout_ns=50 * MS, remember_ns=20 * MS)
    b = AckTracker(timeout_ns=50 * MS, remember_ns=20 * MS)
    ta: list[tuple[int, int, tuple[int, ...]]] = []
    tb: list[tuple[int, int, tuple[int, ...]]] = []
    now = 0
    before = native.twins.kind
    try:
        for op in ops:
            now += op[1] * MS if op[0] == "tick" else MS
            call(a, op, now, ta, True)
            call(b, op, now, tb, False)
            assert state(a) == state(b), op
        a.finish(now)
        b.finish(now)
        assert state(a) == state(b)
    finally:
        native.twins.use(before)


def test_pop_acked_returns_what_each_id_held_when_not_all_were_the_message() -> None:
    from bench import _native

    msg, other = (1, (5, 6, 5), (0, 0, 0), 0, 0), (2, (6,), (0,), 0, 0)
    pending: dict[Any, Any] = {5: msg, 6: other}
    finished: dict[Any, int] = {}
    assert _native.pop_acked(pending, finished, msg, msg[1], 1) == [msg, other, None]
    assert pending == {} and finished == {}
    pending = {5: msg, 6: msg}
    assert _native.pop_acked(pending, finished, msg, (5, 6), 1) is None
    assert pending == {} and finished == {5: 1, 6: 1}
    with pytest.raises(TypeError):
        _native.pop_acked([], finished, msg, (5,), 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):  # an unhashable id: the dict's own error, no crash
        _native.pending_add({}, ([1],), msg)
