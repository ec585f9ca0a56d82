"""An acknowledged event is in its store: duplicate keys, unstorable events, failed writes (contract.md,
"Acknowledgements").

Over loopback against the real target where the wire can reach the case; the store's and the ingest's
own units where it cannot (a write that fails after validation).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from target_helpers import (
    TargetFactory,
    ack,
    ev,
    ids_of,
    init,
    message,
    post,
    run,
    send_and_ack,
    stats,
    stored_ids,
    ws_connect,
)

from bench.protocol.message import parse_envelope
from bench.target.ingest import Ingest, Outcome
from bench.target.store import SqliteStore


def _with_deep(event: dict[str, Any], key: str, depth: int) -> bytes:
    """``event`` as JSON with ``key`` set to a value ``depth`` objects deep: orjson parses up to 1,024 levels
    but encodes only 254, so the text is spliced by hand."""
    deep = b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)
    return orjson.dumps(event)[:-1] + b',"' + key.encode() + b'":' + deep + b"}"


def _raw_message(*events: bytes) -> bytes:
    return b'{"data":[' + b",".join(events) + b"]}"


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each wire test runs against both stores: what is acked must not depend on which one it is."""
    return "memory" if request.param == "memory" else str(tmp_path / "events.sqlite3")


# --------------------------------------------------------------------------- the duplicate key (items 2, 3)


def test_distinct_events_sharing_a_random_id_are_all_stored(target_factory: TargetFactory, app_id: str,
                                                            store: str) -> None:
    """Two different events of one session with one id (ids are random, 1..10,000 in the Python module)
    are both acked and both stored; ``stored-ids`` lists the id once per stored event."""
    t = target_factory(store=store)
    t0 = 1_700_000_000_000
    events = [init(eid=7, date=t0), ev(eid=7, name="click", date=t0 + 1), ev(eid=7, name="open", date=t0 + 1),
              ev("error", eid=7, name="click", date=t0 + 1)]
    assert post(t, app_id, message(*events)).json() == {"reportedIds": [7, 7, 7, 7]}
    st = stats(t, app_id)
    assert (st["stored"]["total"], st["duplicates"]) == (4, 0)
    assert stored_ids(t, app_id) == [7, 7, 7, 7]


def test_an_identical_resend_is_acked_again_and_stored_once(target_factory: TargetFactory, app_id: str,
                                                            store: str) -> None:
    """A re-send (same id, type, name, date, payload), dated or not, is a duplicate, in one message too."""
    t = target_factory(store=store)
    dated, undated = ev(eid=3, date=1_700_000_000_000), ev(eid=4)

    async def go() -> list[list[object]]:
        async with ws_connect(t, app_id) as ws:
            return [await send_and_ack(ws, dated, undated, dated), await send_and_ack(ws, undated, dated)]

    assert run(go()) == [[3, 4, 3], [4, 3]]
    st = stats(t, app_id)
    assert (st["stored"]["total"], st["duplicates"]) == (2, 3)
    assert sorted(stored_ids(t, app_id)) == [3, 4]


@pytest.mark.parametrize(("first", "second"), [(-1, -2), (5, 5 + 2**61 - 1)], ids=["-1,-2", "5,5+M61"])
def test_ids_whose_hashes_collide_are_two_events(target_factory: TargetFactory, app_id: str, store: str,
                                                 first: int, second: int) -> None:
    """Python's hash() folds these ids together (hash(-1) == hash(-2), ints modulo 2**61 - 1): the target
    keeps both events, because it compares keys, not hashes."""
    assert hash(first) == hash(second)  # the premise: a hash-keyed index would call them one event
    t = target_factory(store=store)
    events = [init(eid=first), ev(eid=second)]
    assert post(t, app_id, message(*events)).json() == {"reportedIds": [first, second]}
    assert post(t, app_id, message(ev(eid=first))).status == 200  # another event with a known id: stored
    st = stats(t, app_id)
    assert (st["stored"]["total"], st["duplicates"]) == (3, 0)
    assert sorted(stored_ids(t, app_id)) == sorted([first, second, first])


def test_the_key_survives_a_restart(target_factory: TargetFactory, app_id: str, tmp_path: Path) -> None:
    """After a restart the recent keys come back from the file as the same tuples: a re-send (dated or
    not, an ISO date, a wide id) is a duplicate, a new event with a known id is stored."""
    path = str(tmp_path / "events.sqlite3")
    t0 = 1_700_000_000_000
    sent = [init(eid=9, date="2023-11-14T22:13:20.123456"), ev(eid=9, date=t0), ev(eid=10),
            ev(eid=11, name="a", date=t0), ev(eid=2**64 - 1, session=2**63, date=t0)]
    t = target_factory(store=path)
    assert post(t, app_id, message(*sent)).json() == {"reportedIds": ids_of(sent)}
    assert t.stop() == 0

    again = target_factory(store=path)
    fresh = [ev(eid=9, name="other", date=t0), ev(eid=10, date=t0), ev(eid=11, name="a", date=t0 + 1)]
    assert post(again, app_id, message(*sent, *fresh)).json() == {"reportedIds": ids_of(sent + fresh)}
    st = stats(again, app_id)
    assert (st["duplicates"], st["stored"]["total"]) == (len(sent), len(sent) + len(fresh))
    assert sorted(stored_ids(again, app_id)) == sorted(ids_of(sent + fresh))


# ---------------------------------------------------------------------- what cannot be stored (item 4)


@pytest.mark.parametrize("depth", [255, 1000])
@pytest.mark.parametrize("where", ["payload", "arch", "name", "userId"])
def test_an_event_too_deep_to_store_is_refused_not_acked(target_factory: TargetFactory, app_id: str,
                                                         store: str, depth: int, where: str) -> None:
    """A value orjson parses but cannot encode (nested 255-1023 levels) is refused as bad_field before any
    ack; the rest of the message is stored; a re-send is refused again, never acked as a duplicate. The
    ids-only memory store answers alike: what the target acks does not depend on where it keeps it."""
    t = target_factory(store=store)
    deep_event = init() if where == "arch" else ev()
    deep = _with_deep(deep_event, where, depth)
    good = [init(), ev()]
    body = _raw_message(orjson.dumps(good[0]), deep, orjson.dumps(good[1]))
    acked = ids_of(good)

    async def go() -> list[list[object]]:
        async with ws_connect(t, app_id) as ws:
            await ws.send(body.decode())
            first = await ack(ws)
            await ws.send(_raw_message(deep).decode())
            return [first, await ack(ws)]

    assert run(go()) == [acked, []]
    assert post(t, app_id, body).json() == {"reportedIds": acked}
    st = stats(t, app_id)
    assert st["rejected"]["by_reason"]["bad_field"] == 3
    assert (st["stored"]["total"], st["duplicates"]) == (2, 2)
    assert sorted(stored_ids(t, app_id)) == sorted(acked)
    assert "Traceback" not in t.stderr_text()


def _accept(ingest: Ingest, *events: object) -> Outcome:
    return ingest.accept("app", parse_envelope(message(*events)), received_ms=1e12, now_ns=0)


def test_keys_enter_the_window_only_when_their_write_commits() -> None:
    """A failed write forgets its keys and its counts: the client's re-send is stored, not acked as a
    duplicate; a duplicate that came while the original was pending waits for it."""
    ingest = Ingest(dedup_window_ns=10**12, session_timeout_ms=1.8e6, now_ns=0)
    events = [init(eid=1), ev(eid=2)]
    first = _accept(ingest, *events)
    resent = _accept(ingest, *events, ev(eid=3))  # while the first write is pending
    assert (first.ack_ids, [len(r) for r in (first.rows, resent.rows)]) == ([1, 2], [2, 1])
    assert resent.waits == [(0, first.hold), (1, first.hold)]  # its acks for 1 and 2 wait on the first write
    ingest.settle(first, OSError("disk full"))
    ingest.settle(resent, None)
    st = ingest.stats("app")
    assert (st.stored, st.by_type) == (1, {"init": 0, "event": 1})
    third = _accept(ingest, *events, ev(eid=3))
    assert (len(third.rows), third.ack_ids, third.waits) == (2, [1, 2, 3], [])
    ingest.settle(third, None)
    assert (st.stored, _accept(ingest, *events).rows) == (3, [])


# ------------------------------------------------------------------- one message, one commit (item 5)


def test_a_message_with_nothing_to_store_waits_for_no_other_write(tmp_path: Path) -> None:
    """An empty batch, a heartbeat or all duplicates gets no future from the store, not the newest pending
    one: another connection's failed batch must not fail it (1011 / 503 to a bystander)."""
    ingest = Ingest(dedup_window_ns=10**12, session_timeout_ms=1.8e6, now_ns=0)
    bad: list[Any] = _accept(ingest, ev(eid=4)).rows
    bad[0] = (*bad[0][:12], {"not": "bytes"}, *bad[0][13:])  # a value SQLite cannot bind: the write fails

    async def go() -> tuple[object, BaseException | None]:
        store = SqliteStore(str(tmp_path / "events.sqlite3"))
        store.start(asyncio.get_running_loop())
        failing = store.write(bad)
        assert failing is not None
        bystander = store.write([])  # in the same step: the failing batch is still pending
        error = (await asyncio.gather(failing, return_exceptions=True))[0]
        await store.close()
        return bystander, error if isinstance(error, BaseException) else None

    bystander, error = run(go())
    assert bystander is None
    assert isinstance(error, sqlite3.Error)


def test_resends_racing_their_first_write_are_acked_once_it_commits(target_factory: TargetFactory,
                                                                    app_id: str, tmp_path: Path) -> None:
    """Re-sends pipelined behind their original, on its socket and on another, are acked (each after the
    original is durable, whether its commit is done yet or not) and stored once."""
    t = target_factory(store=str(tmp_path / "events.sqlite3"))
    events = [init(), ev(), ev("error")]
    body = message(*events).decode()

    async def one(copies: int) -> list[list[object]]:
        async with ws_connect(t, app_id) as ws:
            for _ in range(copies):
                await ws.send(body)
            return [await ack(ws) for _ in range(copies)]

    async def go() -> list[list[list[object]]]:
        return list(await asyncio.gather(one(5), one(5), one(1)))

    assert run(go()) == [[ids_of(events)] * 5, [ids_of(events)] * 5, [ids_of(events)]]
    st = stats(t, app_id)
    assert (st["stored"]["total"], st["duplicates"], st["acked"]) == (3, 30, 33)
    assert sorted(stored_ids(t, app_id)) == sorted(ids_of(events))


def test_a_file_from_before_the_dated_column_is_upgraded(target_factory: TargetFactory, app_id: str,
                                                         tmp_path: Path) -> None:
    """A SQLite file written before the ``dated`` column existed gets it: its rows are listed and restored,
    new events are stored beside them."""
    path = tmp_path / "events.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE events (app TEXT NOT NULL, type TEXT NOT NULL, orphan INTEGER NOT NULL, "
                   "missing INTEGER NOT NULL, event_ms REAL NOT NULL, received_ms REAL NOT NULL, "
                   "device TEXT NOT NULL, session INTEGER, id, name TEXT, user_id TEXT, anon_id TEXT, "
                   "payload BLOB, extra BLOB)")
        db.execute("INSERT INTO events VALUES (?, 'init', 0, 0, 1.7e12, 1.7e12, 'dev-1', 1000, 31, NULL, "
                   "NULL, NULL, NULL, NULL)", (app_id,))  # an init of device dev-1, session 1000
    db.close()
    t = target_factory(store=str(path))
    event = ev(eid=32, date=1_700_000_060_000)  # a minute into that session: not an orphan
    assert post(t, app_id, message(event)).json() == {"reportedIds": [32]}
    assert sorted(stored_ids(t, app_id)) == [31, 32]
    st = stats(t, app_id)
    assert (st["stored"]["total"], st["orphans"]) == (2, 0)
