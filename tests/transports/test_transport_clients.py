"""Client devices on the WebSocket transport against the real reference target: the unacked queue re-sent,
reconnects that leave the old socket open, binary frames, the dropped socket of an outage.

Each test drives ``WsTransport.send_client`` with ``ClientSend``\\ s by hand (what the plan would hand it),
so it chooses exactly when a tick comes relative to the acks; the target is real, on a free loopback port.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import uvloop
from transport_helpers import WaitingTracker, make_clock

from bench.fleet.clients import BEAT, DROP, EVENTS, TICK, ClientSend
from bench.profiles import BUILTIN, Profile, derive_profile
from bench.results.reconcile import fetch_json
from bench.target.embedded import EmbeddedTarget
from bench.transports.clients import ClientQueue, frame_binary_py
from bench.transports.common import TransportOptions
from bench.transports.ws import WsTransport, ws_url

TargetFactory = Callable[..., EmbeddedTarget]
#: v5 without its open delay (a test need not wait a second), resending, reconnecting each tick.
V5 = derive_profile("v5-now", BUILTIN["v5"], {"open_delay_s": 0.0})


def _run(coro: Callable[[], Awaitable[None]]) -> None:
    uvloop.run(coro())  # type: ignore[arg-type]


def event(kind: str, wire: int, name: str | None = None, session: int | str = 77) -> bytes:
    obj: dict[str, Any] = {"type": kind, "sessionId": session, "id": wire, "deviceId": "dev-a"}
    if name is not None:
        obj["name"] = name
    if kind == "init":
        obj |= {"platform": "linux", "locale": "en-US"}
    return orjson.dumps(obj)


def events(at: int, *made: tuple[int, bytes], first_key: int = 1) -> ClientSend:
    """An EVENTS send of device 0 at ``at``: (wire id, bytes) each, keys from ``first_key``."""
    keys = tuple(range(first_key, first_key + len(made)))
    return ClientSend(at, 0, EVENTS, tuple(p for _, p in made), keys, tuple(w for w, _ in made),
                      (at,) * len(made))


def transport(target: EmbeddedTarget, app: str, tracker: WaitingTracker, profile: Profile) -> WsTransport:
    return WsTransport(ws_url(target.url, app), tracker, make_clock(), TransportOptions(ws_io="stream"),
                       lambda device: ClientQueue(profile))


def by_event(target: EmbeddedTarget, app: str) -> Counter[tuple[Any, ...]]:
    return Counter(tuple(row) for row in fetch_json(f"{target.url}/app/{app}/stored-ids?by=event")["events"])


def test_a_resending_client_sends_its_unacked_queue_again_and_the_target_stores_it_once(
        target_factory: TargetFactory, app_id: str, tmp_path: Path) -> None:
    """Acks slower than the tick: the next tick re-sends every unacked event with the new one (two of them
    sharing id 7); the tracker counts the re-sends and their second acks as such, the target stores each
    event once, and every event is acked once."""
    target = target_factory(store=str(tmp_path / "t.sqlite3"), ack_delay_ms=300)

    async def main() -> None:
        tracker = WaitingTracker()
        ws = transport(target, app_id, tracker, V5)
        ws.connect(0)
        await ws.wait_connects()
        ws.send_client(events(0, (7, event("init", 7)), (7, event("event", 7, "open"))))
        ws.send_client(events(1, (9, event("event", 9, "save")), first_key=3))  # before the first ack
        await tracker.until(lambda: tracker.acked == 3 and tracker.duplicate_acks == 2)
        assert (tracker.sent, tracker.resent) == (3, 2)
        await ws.close()

    _run(main)
    assert by_event(target, app_id) == Counter({("dev-a", 77, 7, "init", None, None): 1,
                                                 ("dev-a", 77, 7, "event", "open", None): 1,
                                                 ("dev-a", 77, 9, "event", "save", None): 1})
    st = fetch_json(f"{target.url}/app/{app_id}/stats")
    assert (st["stored"]["total"], st["duplicates"]) == (3, 2)


def test_a_client_that_does_not_resend_writes_each_event_once() -> None:
    """Without resend, a tick writes only the events never written (its queue forgets written ones)."""
    queue = ClientQueue(derive_profile("once", V5, {"resend": False}))
    queue.add(events(0, (1, b"{}"), (2, b"{}")))
    made = queue.compose(lambda key: True)
    assert made is not None and made[1] == (1, 2) and made[5] == 2
    assert queue.compose(lambda key: True) is None and queue.unsent == 0


def test_a_resending_queue_keeps_only_what_the_tracker_still_waits_for() -> None:
    """A resending queue re-sends written events while pending, and forgets them once finished."""
    queue = ClientQueue(V5)
    queue.add(events(5, (1, b"{}"), (2, b"{}")))
    assert queue.compose(lambda key: True) is not None
    queue.add(events(9, (3, b"{}"), first_key=3))
    made = queue.compose(lambda key: key == 2)
    assert made is not None and made[1] == (2, 3) and made[4] == 9 and made[5] == 1  # timed from its own tick


def test_a_tick_while_connecting_opens_a_new_socket_and_leaves_the_old_one_open(
        target_factory: TargetFactory, app_id: str) -> None:
    """A tick comes while the socket started a tick ago is still connecting: the modules open another and
    never close the first; both open, the events go on the newest, the old one stays open (the target
    counts two open). A connect and a tick at the same instant are one socket (the clock is the test's)."""
    target = target_factory()
    now = [0]

    async def main() -> None:
        tracker = WaitingTracker()
        ws = WsTransport(ws_url(target.url, app_id), tracker, lambda: now[0],
                         TransportOptions(ws_io="stream"), lambda device: ClientQueue(V5))
        ws.connect(0)
        ws.send_client(events(0, (4, event("init", 4))))  # the same instant: no second socket
        assert len(ws._tasks) == 1
        now[0] += 2_000_000_000  # v5's tick later, the socket still connecting (nothing ran meanwhile)
        ws.send_client(ClientSend(now[0], 0, TICK))
        await tracker.until(lambda: tracker.acked == 1)
        await ws.wait_connects()
        assert ws.stats.connects == 2 and len(ws.live) == 2
        st = fetch_json(f"{target.url}/app/{app_id}/stats")
        assert st["connections"]["open"] == 2 and st["stored"]["total"] == 1
        await ws.close()
        assert ws.stats.closed_by_peer == 0

    _run(main)


def test_binary_frames_are_acked_and_stored(target_factory: TargetFactory, app_id: str) -> None:
    """The Swift profile writes binary frames (opcode 0x2); the target acks and stores them as text ones."""
    assert frame_binary_py(b"{}", b"\0\0\0\0", lambda data, mask: data)[0] == 0x82
    target = target_factory()
    swift = derive_profile("swift-now", BUILTIN["swift"], {"open_delay_s": 0.0})

    async def main() -> None:
        tracker = WaitingTracker()
        ws = transport(target, app_id, tracker, swift)
        ws.send_client(events(0, (11, event("init", 11)), (12, event("event", 12, "open"))))
        await tracker.until(lambda: tracker.acked == 2)
        ws.send_client(ClientSend(2, 0, BEAT, (orjson.dumps({"type": "heartbeat", "deviceId": "dev-a"}),)))
        ws.send_client(events(3, (13, event("event", 13, "save")), first_key=3))
        await tracker.until(lambda: tracker.acked == 3)  # replies come in order: the heartbeat's first
        assert ws.stats.heartbeat_replies == 1
        await ws.close()

    _run(main)
    st = fetch_json(f"{target.url}/app/{app_id}/stats")
    assert (st["stored"]["total"], st["heartbeats"], st["rejected"]["total"]) == (3, 1, 0)


def test_an_outage_drops_the_socket_and_the_next_tick_reconnects_and_flushes(
        target_factory: TargetFactory, app_id: str) -> None:
    """DROP cuts the socket (not counted as the peer's close); events made meanwhile wait in the queue and
    go out on a new socket at the next tick, each acked once."""
    target = target_factory()

    async def main() -> None:
        tracker = WaitingTracker()
        ws = transport(target, app_id, tracker, V5)
        ws.send_client(events(0, (1, event("init", 1))))
        await tracker.until(lambda: tracker.acked == 1)
        ws.send_client(ClientSend(1, 0, DROP))
        await tracker.until(lambda: tracker.closed == 1)
        ws.send_client(events(2, (2, event("event", 2, "a")), (3, event("event", 3, "b")), first_key=2))
        await tracker.until(lambda: tracker.acked == 3)
        assert ws.stats.connects == 2 and ws.stats.closed_by_peer == 0 and ws.pending_writes == 0
        await ws.close()

    _run(main)
    assert fetch_json(f"{target.url}/app/{app_id}/stats")["stored"]["total"] == 3


def test_unwritten_events_are_given_to_the_tracker_at_the_end(target_factory: TargetFactory,
                                                              app_id: str) -> None:
    """A client device whose socket never opened: its queued events end as lost, never missing."""
    target = target_factory()

    async def main() -> None:
        tracker = WaitingTracker()
        ws = WsTransport(ws_url(target.url, "bad app id!"), tracker, make_clock(), TransportOptions(),
                         lambda device: ClientQueue(V5))
        ws.send_client(events(0, (1, b'{"type":"init"}'), (2, b'{"type":"event"}')))
        await ws.wait_connects()
        assert ws.pending_writes == 2
        assert ws.abandon_unsent() == 2 and ws.pending_writes == 0
        tracker.finish(0)
        assert (tracker.sent, tracker.lost) == (2, 2)
        await ws.close()

    _run(main)
