"""Lenient types (contract.md, "Messages"): what a real module sends is acked and stored as it came."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from target_helpers import TargetFactory, ev, ids_of, init, message, post, stats, stored_ids

from bench.target.embedded import EmbeddedTarget

#: Events exactly as nucleus-python 0.3.0 (PyPI) builds them in Client.track: "arch" is an integer, and
#: name, userId, payload and locale may be null.
PYTHON_MODULE_EVENTS: list[dict[str, Any]] = [
    {"type": "init", "name": None, "date": "2026-12-06T21:04:05.123456", "appId": "app", "id": 4821,
     "userId": None, "machineId": "b1f5c5b7caf866bdaddd439b331f2640", "sessionId": 5169, "payload": None,
     "client": "python", "platform": "Linux", "osVersion": "6.1.0", "totalRam": 16, "version": "0.0.0",
     "locale": None, "arch": 64, "moduleVersion": "0.3"},
    {"type": "event", "name": "clicked", "date": "2026-12-06T21:04:06.000001", "appId": "app", "id": 77,
     "userId": None, "machineId": "b1f5c5b7caf866bdaddd439b331f2640", "sessionId": 5169,
     "payload": {"button": "ok"}},
    {"type": "error", "name": "ValueError", "date": "2026-12-06T21:04:07.5", "appId": "app", "id": 9001,
     "userId": None, "machineId": "b1f5c5b7caf866bdaddd439b331f2640", "sessionId": 5169,
     "payload": {"message": "bad", "stack": "  File \"x.py\", line 1\n"}, "client": "python",
     "platform": "Linux", "osVersion": "6.1.0", "totalRam": 16, "version": "0.0.0", "locale": "en_US",
     "arch": 64, "moduleVersion": "0.3"},
]

#: Every recorded field of another JSON type than the document's table gives it.
ODD_EXTRAS: dict[str, Any] = {"platform": 1, "osVersion": 23.1, "totalRam": "16", "version": True,
                              "language": ["en"], "locale": {"tag": "en-US"}, "arch": 64, "client": False,
                              "moduleVersion": 3}


def test_the_python_modules_events_are_acked_and_stored(target: EmbeddedTarget, app_id: str) -> None:
    """nucleus-python's init and error carry "arch": 64: acked and stored, its session starts, nothing
    refused (the target used to refuse the init as bad_field, so the module's sessions never began)."""
    reply = post(target, app_id, message(*PYTHON_MODULE_EVENTS))
    assert reply.json() == {"reportedIds": ids_of(PYTHON_MODULE_EVENTS)}
    st = stats(target, app_id)
    assert (st["stored"]["total"], st["rejected"]["total"]) == (3, 0)
    assert (st["sessions"], st["orphans"]) == (1, 0)
    assert sorted(stored_ids(target, app_id)) == sorted(ids_of(PYTHON_MODULE_EVENTS))


@pytest.mark.parametrize("kind", ["init", "error"])
def test_every_extra_of_any_json_type_is_kept_as_it_came(target_factory: TargetFactory, app_id: str,
                                                        tmp_path: Path, kind: str) -> None:
    """Numbers, booleans, arrays and objects in the extras of init and error are stored in their JSON type."""
    path = tmp_path / "events.sqlite3"
    t = target_factory(store=str(path))
    event = init(**ODD_EXTRAS) if kind == "init" else ev("error", **ODD_EXTRAS)
    assert post(t, app_id, message(event)).json() == {"reportedIds": [event["id"]]}
    assert stats(t, app_id)["rejected"]["total"] == 0
    assert t.stop() == 0
    with sqlite3.connect(path) as db:
        (extra,) = db.execute("SELECT extra FROM events WHERE app = ?", (app_id,)).fetchone()
    db.close()
    stored = orjson.loads(extra)
    assert stored == {"platform": 1, "os_version": 23.1, "total_ram": "16", "version": True,
                      "language": ["en"], "locale": {"tag": "en-US"}, "arch": 64, "client": False,
                      "module_version": 3}


def test_name_user_anon_and_payload_of_any_json_type(target_factory: TargetFactory, app_id: str,
                                                     tmp_path: Path) -> None:
    """A name, userId or anonId that is not a string is stored as its JSON (a BLOB: the column tells it from
    a string of the same digits); a payload that is not an object as its JSON; the re-send of such an event
    after a restart is still known as a duplicate."""
    path = tmp_path / "events.sqlite3"
    t = target_factory(store=str(path))
    t0 = 1_700_000_000_000
    events = [ev(eid=1, name=404, userId=42, anonId=True, payload=[1, "a"], date=t0),
              ev(eid=1, name="404", userId="42", payload="text", date=t0),
              {**ev("userid", eid=2, payload=7, date=t0), "name": {"n": 1}}]
    assert post(t, app_id, message(*events)).json() == {"reportedIds": [1, 1, 2]}
    assert stats(t, app_id)["rejected"]["total"] == 0
    assert t.stop() == 0
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT name, user_id, anon_id, payload FROM events WHERE app = ? ORDER BY rowid",
                          (app_id,)).fetchall()
    db.close()
    assert rows == [(b"404", b"42", b"true", b'[1,"a"]'), ("404", "42", None, b'"text"'),
                    (b'{"n":1}', None, None, b"7")]

    again = target_factory(store=str(path))
    assert post(again, app_id, message(*events)).json() == {"reportedIds": [1, 1, 2]}
    st = stats(again, app_id)
    assert (st["duplicates"], st["stored"]["total"]) == (3, 3)
