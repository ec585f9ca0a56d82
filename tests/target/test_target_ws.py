"""Conformance of the reference target's WebSocket endpoints (contract.md), over real loopback sockets."""

from __future__ import annotations

import orjson
import pytest
from target_helpers import (
    ack,
    close_code,
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
from websockets.exceptions import InvalidStatus

from bench.target.embedded import EmbeddedTarget

ALL_STORED_TYPES = ("init", "event", "error", "userid", "props", "nucleus:view")


def test_every_event_type_is_stored_acked_and_counted(target: EmbeddedTarget, app_id: str) -> None:
    """Each stored type is acked in message order and counted by type; a heartbeat is counted, not stored."""
    events = [init(), ev("event"), ev("error", payload={"stack": "x" * 5000, "message": "boom"}),
              ev("userid", userId="u@example.com"), ev("props", payload={"plan": "pro"}), ev("nucleus:view")]
    heartbeat = {"type": "heartbeat", "machineId": "dev-1"}

    async def go() -> list[object]:
        async with ws_connect(target, app_id) as ws:
            return await send_and_ack(ws, *events, heartbeat)

    assert run(go()) == ids_of(events)
    st = stats(target, app_id)
    assert st["stored"] == {"total": 6, "by_type": dict.fromkeys(ALL_STORED_TYPES, 1)}
    assert st["heartbeats"] == 1
    assert st["acked"] == 6
    assert st["sessions"] == 1 and st["orphans"] == 0 and st["devices"] == 1
    assert st["missing_fields"] == 1  # the error event carries none of the extra fields
    assert sorted(stored_ids(target, app_id)) == sorted(ids_of(events))


@pytest.mark.parametrize("path", ["/app/{app}/track", "/{app}/", "/{app}"])
def test_each_websocket_path_takes_events(target: EmbeddedTarget, app_id: str, path: str) -> None:
    """``/app/{appId}/track``, ``/{appId}/`` and ``/{appId}`` are the same endpoint."""
    event = ev()

    async def go() -> list[object]:
        async with ws_connect(target, app_id, path) as ws:
            return await send_and_ack(ws, event)

    assert run(go()) == [event["id"]]
    assert stored_ids(target, app_id) == [event["id"]]


def test_binary_frames_are_accepted(target: EmbeddedTarget, app_id: str) -> None:
    """The Swift module sends its JSON in binary frames: same handling as text."""
    events = [init(), ev()]

    async def go() -> list[object]:
        async with ws_connect(target, app_id) as ws:
            await ws.send(message(*events))  # bytes: a binary frame
            return await ack(ws)

    assert run(go()) == ids_of(events)


def test_ids_keep_their_json_type(target: EmbeddedTarget, app_id: str) -> None:
    """A string id comes back as a string, an integer id as an integer, even when they look alike."""
    events = [init(eid="7"), ev(eid=7), ev(eid="abc-1"), ev(eid=2**53 + 1)]

    async def go() -> list[object]:
        async with ws_connect(target, app_id) as ws:
            return await send_and_ack(ws, *events)

    assert run(go()) == ["7", 7, "abc-1", 2**53 + 1]
    assert sorted(stored_ids(target, app_id), key=repr) == sorted(["7", 7, "abc-1", 2**53 + 1], key=repr)


def test_invalid_events_are_left_out_and_counted_by_reason(target: EmbeddedTarget, app_id: str) -> None:
    """Invalid events are missing from reportedIds; the rest of the message stands."""
    good = [init(), ev()]
    bad = [ev("bogus"), {"type": "event", "name": "x", "sessionId": 1, "id": 90},  # no device
           ev("event", name=None), ev(session=-3), ev(date="yesterday"), 42]

    async def go() -> list[object]:
        async with ws_connect(target, app_id) as ws:
            return await send_and_ack(ws, good[0], *bad, good[1])

    assert run(go()) == ids_of(good)
    st = stats(target, app_id)
    assert st["rejected"]["total"] == 6
    assert {k: v for k, v in st["rejected"]["by_reason"].items() if v} == {
        "bad_type": 1, "missing_device": 1, "missing_name": 1, "bad_session": 1, "bad_date": 1,
        "not_object": 1}
    assert st["stored"]["total"] == 2


def test_empty_data_gets_an_empty_ack(target: EmbeddedTarget, app_id: str) -> None:
    """``{"data": []}`` is legal (v4 sends it when idle) and answered ``{"reportedIds": []}``."""
    async def go() -> list[object]:
        async with ws_connect(target, app_id) as ws:
            return await send_and_ack(ws)

    assert run(go()) == []


def test_events_without_id_are_stored_but_not_acked(target: EmbeddedTarget, app_id: str) -> None:
    """No id, nothing to acknowledge; the event is stored all the same."""
    no_id = {"type": "event", "name": "x", "deviceId": "d", "sessionId": 5}

    async def go() -> list[object]:
        async with ws_connect(target, app_id) as ws:
            return await send_and_ack(ws, init(device="d", session=5), no_id)

    assert len(run(go())) == 1
    assert stats(target, app_id)["stored"]["total"] == 2


def test_duplicates_are_acked_again_and_stored_once(target: EmbeddedTarget, app_id: str) -> None:
    """A re-sent event (same device, session, id, type, name, date) is acked again, counted, stored once."""
    first = [init(), ev(), ev()]

    async def go() -> tuple[list[object], list[object]]:
        async with ws_connect(target, app_id) as ws:
            once = await send_and_ack(ws, *first)
            resent = [ev(eid=first[1]["id"]), ev(eid=first[1]["id"], session=2000)]
            again = await send_and_ack(ws, *first, *resent)
            return once, again

    once, again = run(go())
    assert once == ids_of(first)
    assert again == [*ids_of(first), first[1]["id"], first[1]["id"]]  # the last: another session, new event
    st = stats(target, app_id)
    assert st["duplicates"] == 4
    assert st["stored"]["total"] == 4
    assert st["acked"] == 3 + 5
    assert sorted(stored_ids(target, app_id)) == sorted([*ids_of(first), first[1]["id"]])


def test_orphans_are_events_of_sessions_without_init(target: EmbeddedTarget, app_id: str) -> None:
    """Events of a session that never had an init, or after 30 min of silence, are stored and counted."""
    t0 = 1_700_000_000_000
    events = [
        ev(session=1, date=t0),                          # orphan: session 1 never had an init
        init(session=2, date=t0),
        ev(session=2, date=t0 + 29 * 60_000),            # live: 29 min after the init
        ev(session=2, date=t0 + 60 * 60_000),            # orphan: 31 min of silence ended session 2
        ev("userid", session=3, date=t0, userId="u"),    # orphan
        {"type": "heartbeat", "deviceId": "dev-1"},      # no session, never an orphan
    ]

    async def go() -> list[object]:
        async with ws_connect(target, app_id) as ws:
            return await send_and_ack(ws, *events)

    assert len(run(go())) == 5
    st = stats(target, app_id)
    assert (st["orphans"], st["sessions"], st["stored"]["total"]) == (3, 1, 5)


def test_a_session_starts_again_with_a_new_init_after_silence(target: EmbeddedTarget, app_id: str) -> None:
    """After 30 minutes of silence an init (same sessionId or not) starts a new session."""
    t0 = 1_700_000_000_000
    events = [init(session=9, date=t0), init(session=9, date=t0 + 31 * 60_000),
              ev(session=9, date=t0 + 32 * 60_000)]

    async def go() -> list[object]:
        async with ws_connect(target, app_id) as ws:
            return await send_and_ack(ws, *events)

    run(go())
    st = stats(target, app_id)
    assert (st["sessions"], st["orphans"]) == (2, 0)


def test_pipelined_messages_are_acked_in_order(target: EmbeddedTarget, app_id: str) -> None:
    """Messages sent back to back get one reply each, in the order they were sent."""
    batches = [[init()], *([ev(), ev()] for _ in range(20))]

    async def go() -> list[list[object]]:
        async with ws_connect(target, app_id) as ws:
            for batch in batches:
                await ws.send(message(*batch).decode())
            return [await ack(ws) for _ in batches]

    assert run(go()) == [ids_of(b) for b in batches]


@pytest.mark.parametrize(("payload", "what"), [
    (b"{not json", "not JSON"), (b'{"events": []}', "no data"), (b'{"data": {}}', "data not an array"),
    (b"[1, 2]", "not an object")])
def test_a_malformed_message_closes_with_1007(target: EmbeddedTarget, app_id: str, payload: bytes,
                                               what: str) -> None:
    """Not JSON, not an object or no ``data`` array: close 1007 (invalid payload), counted."""
    async def go() -> int | None:
        async with ws_connect(target, app_id) as ws:
            await ws.send(payload.decode())
            return await close_code(ws)

    assert run(go()) == 1007, what
    assert stats(target, app_id)["malformed_messages"] == 1


def test_a_session_of_thousands_of_digits_is_one_rejected_event(target: EmbeddedTarget, app_id: str) -> None:
    """A sessionId of 5,000 digits is refused as bad_session; the rest of its message is stored and acked."""
    huge = {"type": "event", "name": "x", "deviceId": "d", "id": 1, "sessionId": "1" * 5000}

    async def go() -> list[object]:
        async with ws_connect(target, app_id) as ws:
            return await send_and_ack(ws, huge, init(eid=2))

    assert run(go()) == [2]
    assert post(target, app_id, message(huge)).json() == {"reportedIds": []}
    counts = stats(target, app_id)
    assert counts["rejected"]["by_reason"]["bad_session"] == 2
    assert counts["malformed_messages"] == 0


def test_acks_of_earlier_messages_come_before_a_1007_close(target: EmbeddedTarget, app_id: str) -> None:
    """A malformed message does not swallow the acks already owed for the messages before it."""
    event = ev()

    async def go() -> tuple[list[object], int | None]:
        async with ws_connect(target, app_id) as ws:
            await ws.send(message(event).decode())
            await ws.send("nope")
            return await ack(ws), await close_code(ws)

    assert run(go()) == ([event["id"]], 1007)


@pytest.mark.parametrize("bad", ["has.dot", "x" * 65, "sp ace", "%C3%A9"])
def test_a_bad_app_id_refuses_the_handshake(target: EmbeddedTarget, bad: str) -> None:
    """appId must be 1-64 characters of [A-Za-z0-9_-]: otherwise the handshake gets HTTP 404."""
    async def go() -> None:
        async with ws_connect(target, bad.replace(" ", "%20")):
            pass

    with pytest.raises(InvalidStatus) as info:
        run(go())
    assert info.value.response.status_code == 404


def test_the_longest_app_id_is_fine(target: EmbeddedTarget) -> None:
    """64 characters is within the rule."""
    app = "A-_9" * 16

    async def go() -> list[object]:
        async with ws_connect(target, app) as ws:
            return await send_and_ack(ws, init(eid=1))

    assert run(go()) == [1]


def test_connections_are_counted_open_and_total(target: EmbeddedTarget, app_id: str) -> None:
    """``connections.open`` counts open sockets of the app; ``total`` every one it had."""
    async def go() -> dict[str, int]:
        async with ws_connect(target, app_id) as a, ws_connect(target, app_id) as b:
            await send_and_ack(a)
            await send_and_ack(b)
            during: dict[str, int] = stats(target, app_id)["connections"]
        return during

    assert run(go()) == {"open": 2, "total": 2}

    async def again() -> None:
        async with ws_connect(target, app_id) as ws:
            await send_and_ack(ws)

    run(again())
    assert stats(target, app_id)["connections"]["total"] == 3


def test_the_ack_is_exactly_reported_ids(target: EmbeddedTarget, app_id: str) -> None:
    """The reply is byte for byte ``{"reportedIds":[...]}``: the Swift module decodes it strictly."""
    async def go() -> str | bytes:
        async with ws_connect(target, app_id) as ws:
            await ws.send(message(init(eid=5)).decode())
            reply: str | bytes = await ws.recv()
            return reply

    assert orjson.loads(run(go())) == {"reportedIds": [5]}
