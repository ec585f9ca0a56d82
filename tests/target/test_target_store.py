"""Ack after store: what the target acknowledged is in its SQLite file after a stop and a restart."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from target_helpers import (
    TargetFactory,
    ack,
    ev,
    ids_of,
    init,
    message,
    post,
    replies_until_closed,
    run,
    send_and_ack,
    stats,
    stored_ids,
    ws_connect,
)
from timeouts import TIMEOUT_S

from bench.target.embedded import EmbeddedTarget


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_acked_events_survive_a_restart(target_factory: TargetFactory, app_id: str, tmp_path: Path,
                                        signum: int) -> None:
    """Stop the target (SIGTERM or SIGINT), start it on the same file: every acked id is there, stats too."""
    path = str(tmp_path / "events.sqlite3")
    t = target_factory(store=path)
    ws_events = [init(device="a", session=1), ev(device="a", session=1), ev(device="a", session=7)]
    http_events = [init(device="b", session=2, platform=None), ev("error", device="b", session=2)]

    async def go() -> list[object]:
        async with ws_connect(t, app_id) as ws:
            return await send_and_ack(ws, *ws_events)

    acked = run(go()) + post(t, app_id, message(*http_events)).json()["reportedIds"]
    assert acked == ids_of(ws_events) + ids_of(http_events)
    before = stats(t, app_id)
    t.signal(signum)
    assert t.wait(TIMEOUT_S) == 0

    again = target_factory(store=path)
    assert sorted(stored_ids(again, app_id)) == sorted(acked)
    after = stats(again, app_id)
    for key in ("stored", "orphans", "sessions", "devices", "missing_fields"):
        assert after[key] == before[key], key
    assert (after["orphans"], after["sessions"], after["devices"], after["missing_fields"]) == (1, 2, 2, 2)


def test_duplicates_are_known_across_a_restart(target_factory: TargetFactory, app_id: str,
                                               tmp_path: Path) -> None:
    """An event re-sent after a restart (within the window) is acked again and not stored twice."""
    path = str(tmp_path / "events.sqlite3")
    events = [init(), ev()]
    t = target_factory(store=path)
    assert post(t, app_id, message(*events)).status == 200
    assert t.stop() == 0
    again = target_factory(store=path)
    assert post(again, app_id, message(*events, ev())).json()["reportedIds"][:2] == ids_of(events)
    assert stats(again, app_id)["duplicates"] == 2
    assert len(stored_ids(again, app_id)) == 3


def test_a_session_continues_across_a_restart(target_factory: TargetFactory, app_id: str,
                                              tmp_path: Path) -> None:
    """The init stored before a restart still starts its session: later events are not orphans."""
    path = str(tmp_path / "events.sqlite3")
    t = target_factory(store=path)
    assert post(t, app_id, message(init(session=5))).status == 200
    assert t.stop() == 0
    again = target_factory(store=path)
    assert post(again, app_id, message(ev(session=5))).status == 200
    assert stats(again, app_id)["orphans"] == 0


def test_rows_hold_the_events(target_factory: TargetFactory, app_id: str, tmp_path: Path) -> None:
    """The SQLite rows keep each event's fields, its id's JSON type and its payload (readable by anyone)."""
    path = tmp_path / "events.sqlite3"
    t = target_factory(store=str(path))
    events = [init(eid="i-1", device="dev-9", session=3), ev(eid=77, device="dev-9", session=3,
                                                             userId="u@example.com", payload={"k": [1, 2]})]
    assert post(t, app_id, message(*events)).status == 200
    assert t.stop() == 0
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT type, device, session, id, typeof(id), name, user_id, payload, extra, "
                          "orphan "
                          "FROM events WHERE app = ? ORDER BY rowid", (app_id,)).fetchall()
    db.close()
    assert rows[0][:5] == ("init", "dev-9", 3, "i-1", "text")
    assert b'"platform":"linux"' in rows[0][8]
    assert rows[1][:8] == ("event", "dev-9", 3, 77, "integer", "click", "u@example.com", b'{"k":[1,2]}')
    assert [r[9] for r in rows] == [0, 0]


def test_ids_beyond_64_bits_are_stored_and_listed_as_integers(target_factory: TargetFactory, app_id: str,
                                                              tmp_path: Path) -> None:
    """JSON allows ids and sessionIds past SQLite's INTEGER: stored, listed and deduplicated as ints."""
    path = str(tmp_path / "events.sqlite3")
    t = target_factory(store=path)
    wide = [init(eid=2**64 - 1, session=2**63), ev(eid=2**63, session=2**63), ev(eid=-(2**63))]
    assert post(t, app_id, message(*wide)).json() == {"reportedIds": ids_of(wide)}
    assert t.stop() == 0
    again = target_factory(store=path)
    assert sorted(stored_ids(again, app_id)) == sorted(ids_of(wide))
    assert post(again, app_id, message(*wide)).status == 200
    st = stats(again, app_id)
    assert (st["duplicates"], st["stored"]["total"], st["orphans"]) == (3, 3, 1)


def test_many_concurrent_connections_share_group_commits(target_factory: TargetFactory, app_id: str,
                                                         tmp_path: Path) -> None:
    """Concurrent messages from many sockets are all acked (in order per socket) and all stored."""
    t = target_factory(store=str(tmp_path / "events.sqlite3"))
    batches = {conn: [[ev(device=f"d{conn}") for _ in range(5)] for _ in range(10)] for conn in range(20)}

    async def one(conn: int) -> list[list[object]]:
        async with ws_connect(t, app_id) as ws:
            for batch in batches[conn]:
                await ws.send(message(*batch).decode())
            return [await ack(ws) for _ in batches[conn]]

    async def go() -> list[list[list[object]]]:
        import asyncio

        return list(await asyncio.gather(*(one(c) for c in batches)))

    results = run(go())
    for conn, acks in zip(batches, results, strict=True):
        assert acks == [ids_of(b) for b in batches[conn]]
    assert len(stored_ids(t, app_id)) == 20 * 10 * 5


def test_shutdown_sends_owed_acks_then_closes_1001(target_factory: TargetFactory, app_id: str,
                                                   tmp_path: Path) -> None:
    """On SIGTERM an open socket gets the acks still owed (here held by a delay), then close 1001; exit 0."""
    t = target_factory(store=str(tmp_path / "events.sqlite3"), ack_delay_ms=400)
    event = ev()

    async def go() -> tuple[list[list[object]], int | None]:
        async with ws_connect(t, app_id) as ws:
            await send_and_ack(ws)  # the socket is open and served
            await ws.send(message(event).decode())
            t.signal(signal.SIGTERM)
            return await replies_until_closed(ws)

    assert run(go()) == ([[event["id"]]], 1001)
    assert t.wait(TIMEOUT_S) == 0
    assert "Traceback" not in t.stderr_text()


def test_an_idle_target_stops_on_sigint_and_sigterm(target_factory: TargetFactory) -> None:
    """Both signals stop a target cleanly (exit 0), with nothing on standard error."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        t = target_factory()
        t.signal(signum)
        assert t.wait(TIMEOUT_S) == 0
        assert t.stderr_text() == ""


def test_the_target_stops_when_its_parent_goes(app_id: str) -> None:
    """An embedded target whose parent closes its standard input shuts down by itself."""
    t = EmbeddedTarget().start()
    try:
        proc = t._proc
        assert proc is not None and proc.stdin is not None
        proc.stdin.close()
        assert t.wait(TIMEOUT_S) == 0
    finally:
        t.stop()


def test_memory_store_lists_stored_ids(target: EmbeddedTarget, app_id: str) -> None:
    """The memory store keeps the ids, so reconciliation works with it too."""
    events = [init(), ev()]

    async def go() -> list[list[object]]:
        async with ws_connect(target, app_id) as ws:
            await ws.send(message(*events).decode())
            await ws.close()
            acks, _ = await replies_until_closed(ws)
            return acks

    assert run(go()) == [ids_of(events)]
    assert sorted(stored_ids(target, app_id)) == sorted(ids_of(events))


def test_one_bad_batch_fails_alone_in_a_group_commit(tmp_path: Path) -> None:
    """A batch that cannot be written fails its own waiter only; the batches of the same commit are stored."""
    import asyncio

    from bench.protocol.message import parse_envelope
    from bench.target.ingest import Ingest
    from bench.target.store import SqliteStore

    ingest = Ingest(dedup_window_ns=10**12, session_timeout_ms=1.8e6, now_ns=0)

    def rows(*events: dict[str, object]) -> list[Any]:
        return ingest.accept("app", parse_envelope(message(*events)), received_ms=1e12, now_ns=0).rows

    good1, good2 = rows(init(eid=1)), rows(ev(eid=2), ev(eid=3))
    bad = rows(ev(eid=4))
    bad[0] = (*bad[0][:12], {"not": "bytes"}, *bad[0][13:])  # a value SQLite cannot bind

    async def go() -> list[BaseException | None]:
        store = SqliteStore(str(tmp_path / "events.sqlite3"))
        store.start(asyncio.get_running_loop())
        futures = [store.write(r) for r in (good1, bad, good2)]
        results = await asyncio.gather(*(f for f in futures if f is not None), return_exceptions=True)
        ids = await store.stored_ids("app")
        await store.close()
        assert sorted(ids) == [1, 2, 3]
        return [r if isinstance(r, BaseException) else None for r in results]

    outcome = run(go())
    assert outcome[0] is None and outcome[2] is None
    assert isinstance(outcome[1], sqlite3.Error)
