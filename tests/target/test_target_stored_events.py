"""``GET /app/{appId}/stored-ids?by=event``: each stored event by its duplicate key, for ids that collide.

contract.md, "Acknowledgements": the modules draw ids at random, so two different events of one session may
share an id; the reference target stores both and a re-send once. Reconciliation then needs the whole key.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from target_helpers import TargetFactory, ev, init, request, run, send_and_ack, stats, ws_connect


def test_colliding_ids_string_sessions_and_a_resend_are_answered_by_event(
        target_factory: TargetFactory, app_id: str, tmp_path: Path) -> None:
    """Two events sharing id 5 in one session are two stored events; the re-sent message is stored once;
    a numeric-string sessionId comes back as the integer session; dates come back as epoch ms."""
    target = target_factory(store=str(tmp_path / "t.sqlite3"))
    events = [init(session=42, eid=5), ev(session="42", eid=5, name="open", date=1_800_000_000_000),
              ev(session=42, eid=5, name="save"), ev(device="dev-2", session=42, eid=5, name="open")]

    async def main() -> None:
        async with ws_connect(target, app_id) as ws:
            assert await send_and_ack(ws, *events) == [5, 5, 5, 5]
            assert await send_and_ack(ws, *events) == [5, 5, 5, 5]  # the whole queue again: acked again

    run(main())
    reply = request(target, "GET", f"/app/{app_id}/stored-ids?by=event")
    assert reply.status == 200
    rows = Counter(tuple(row) for row in reply.json()["events"])
    assert rows == Counter({("dev-1", 42, 5, "init", None, None): 1,
                            ("dev-1", 42, 5, "event", "open", 1_800_000_000_000.0): 1,
                            ("dev-1", 42, 5, "event", "save", None): 1,
                            ("dev-2", 42, 5, "event", "open", None): 1})
    assert stats(target, app_id)["duplicates"] == 4


def test_a_store_of_ids_only_says_it_cannot_answer_by_event(target_factory: TargetFactory,
                                                            app_id: str) -> None:
    """The memory store keeps ids only: by=event is 501 with a reason, and the plain answer still works."""
    target = target_factory(store="memory")
    reply = request(target, "GET", f"/app/{app_id}/stored-ids?by=event")
    assert reply.status == 501 and "ids only" in reply.json()["error"]
    assert request(target, "GET", f"/app/{app_id}/stored-ids").status == 200
