"""The duplicate key: exact (never ``hash()``), the same from an event and from a store's row, and free for
the garbage collector (ingest.py, "Theory of operation")."""

from __future__ import annotations

import gc

from target_helpers import ev, init, message

from bench.protocol.message import parse_envelope
from bench.target.ingest import Ingest, Snapshot, dedup_key

S = 1_000_000_000


def _accept(ingest: Ingest, *events: object, now_ns: int = 0) -> list[object]:
    outcome = ingest.accept("app", parse_envelope(message(*events)), received_ms=1e12, now_ns=now_ns)
    ingest.settle(outcome, None)
    return [row[8] for row in outcome.rows]


def test_keys_tell_apart_what_a_tuple_would() -> None:
    """Ids "1" and 1, a name "5" and a name 5, dates 5 and 5.5, an id past 64 bits and its string: each
    pair is two events; 5 and 5.0 (and -0.0 and 0.0) are one date, as the tuple key had it."""
    ingest = Ingest(dedup_window_ns=60 * S, session_timeout_ms=1.8e6, now_ns=0)
    pairs = [(ev(eid=1), ev(eid="1")), (ev(eid=7, name="5"), ev(eid=7, name=5)),
             (ev(eid=8, date=5), ev(eid=8, date=5.5)), (ev(eid=2**64 - 1), ev(eid=str(2**64 - 1))),
             (ev(eid=9, session="99999999999999999999"), ev(eid=9, session=99))]
    for a, b in pairs:
        assert len(_accept(ingest, a, b)) == 2, (a, b)
    assert _accept(ingest, ev(eid=10, date=5), ev(eid=10, date=5.0)) == [10]
    assert _accept(ingest, ev(eid=11, date=-0.0), ev(eid=11, date=0.0)) == [11]
    assert ingest.stats("app").duplicates == 2


def test_restored_keys_are_the_keys_accept_builds() -> None:
    """The fields a store lists (name as stored: a str, or the JSON bytes of another value) give the key
    ``accept`` built from the event: a re-send after a restart is a duplicate."""
    ingest = Ingest(dedup_window_ns=60 * S, session_timeout_ms=1.8e6, now_ns=0)
    recent = (("app", "dev-1", 1000, 5, "event", "click", None),
              ("app", "dev-1", 1000, 6, "event", b'{"n":[1,2]}', 1.7e12),
              ("app", "dev-1", 2**64, 2**64 - 1, "event", "x", 0.0))
    ingest.restore(Snapshot(recent=recent))
    resent = [ev(eid=5), ev(eid=6, name={"n": [1, 2]}, date=1.7e12), ev(eid=2**64 - 1, name="x", date=0,
                                                                       session=str(2**64))]
    assert _accept(ingest, *resent) == []
    assert ingest.stats("app").duplicates == 3
    assert isinstance(dedup_key(recent[2]), str) and isinstance(dedup_key(recent[0]), bytes)


def test_the_window_costs_the_garbage_collector_nothing() -> None:
    """The duplicate window and the session table hold no object the collector tracks, so a collection
    never walks their millions of entries (a dict of tuples built at run time would be walked)."""
    ingest = Ingest(dedup_window_ns=60 * S, session_timeout_ms=1.8e6, now_ns=0)
    _accept(ingest, init(eid=1, device="d"), ev(eid=2, device="d", name={"deep": [1]}))
    gc.collect()
    tables = (ingest._keys, ingest._sessions)  # their content is the point of the test
    assert len(tables[0]) == 2 and len(tables[1]) == 1
    assert not any(gc.is_tracked(table) for table in tables)
    _accept(ingest, ev(eid=3, device="d"))
    assert not any(gc.is_tracked(table) for table in tables)  # a new key does not make it tracked
