"""Each fault flag does exactly what it says, over real sockets (bench/target/faults.py)."""

from __future__ import annotations

import http.client
import time

import pytest
from target_helpers import (
    TargetFactory,
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

from bench.target.embedded import EmbeddedTarget


async def _send_all_then_close(t: EmbeddedTarget, app_id: str,
                               batches: list[list[dict[str, object]]]) -> list[list[object]]:
    """Send every batch on one socket, then close it: the target answers what it owes, then closes."""
    async with ws_connect(t, app_id) as ws:
        for batch in batches:
            await ws.send(message(*batch).decode())
        await ws.close()
        acks, _ = await replies_until_closed(ws)
        return acks


def test_drop_all_acks_stores_everything_and_answers_nothing(target_factory: TargetFactory,
                                                             app_id: str) -> None:
    """``--drop-ack-ratio 1``: every event is stored, no reply is sent, the drops are counted."""
    t = target_factory(drop_ack_ratio=1)
    batches = [[init()], [ev(), ev()], [ev()]]
    assert run(_send_all_then_close(t, app_id, batches)) == []
    sent = [i for b in batches for i in ids_of(b)]
    assert sorted(stored_ids(t, app_id)) == sorted(sent)
    st = stats(t, app_id)
    assert st["faults"]["dropped_ack_messages"] == 3 and st["faults"]["dropped_ack_ids"] == 4
    assert st["acked"] == 0


def test_dropped_http_ack_cuts_the_connection_after_storing(target_factory: TargetFactory,
                                                            app_id: str) -> None:
    """Over HTTP a dropped ack is a connection cut without a response; the batch is stored."""
    t = target_factory(drop_ack_ratio=1)
    events = [init(), ev()]
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        post(t, app_id, message(*events))
    assert sorted(stored_ids(t, app_id)) == sorted(ids_of(events))
    assert "Traceback" not in t.stderr_text()


def _dropped_pattern(t: EmbeddedTarget, app_id: str) -> list[bool]:
    batches = [[ev()] for _ in range(40)]
    acked = {i for a in run(_send_all_then_close(t, app_id, batches)) for i in a}
    assert sorted(stored_ids(t, app_id)) == sorted(ids_of(b[0] for b in batches))
    return [b[0]["id"] not in acked for b in batches]


def test_drop_ratio_is_seeded_and_counted(target_factory: TargetFactory, app_id: str) -> None:
    """The same seed drops the same messages; every drop is counted; the rest are acked in order."""
    first = _dropped_pattern(target_factory(drop_ack_ratio=0.5, fault_seed=11), app_id)
    again = target_factory(drop_ack_ratio=0.5, fault_seed=11)
    assert _dropped_pattern(again, app_id) == first
    assert 0 < sum(first) < len(first)
    assert stats(again, app_id)["faults"]["dropped_ack_messages"] == sum(first)
    other = _dropped_pattern(target_factory(drop_ack_ratio=0.5, fault_seed=12), app_id)
    assert other != first


def test_lie_acks_without_storing(target_factory: TargetFactory, app_id: str) -> None:
    """``--lie-ack-ratio 1``: every id comes back, none is stored, the lies are counted."""
    t = target_factory(lie_ack_ratio=1)
    events = [init(), ev(), ev()]

    async def go() -> list[object]:
        async with ws_connect(t, app_id) as ws:
            return await send_and_ack(ws, *events)

    assert run(go()) == ids_of(events)
    assert post(t, app_id, message(ev())).status == 200
    assert stored_ids(t, app_id) == []
    st = stats(t, app_id)
    assert st["stored"]["total"] == 0
    assert (st["faults"]["lied_messages"], st["faults"]["lied_ids"], st["acked"]) == (2, 4, 4)


def test_close_after_each_message_follows_its_ack(target_factory: TargetFactory, app_id: str) -> None:
    """``--close-ratio 1``: the message's ack arrives, then the close (1001); HTTP says Connection: close."""
    t = target_factory(close_ratio=1)
    events = [init(), ev()]

    async def go() -> tuple[list[list[object]], int | None]:
        async with ws_connect(t, app_id) as ws:
            await ws.send(message(*events).decode())
            await ws.send(message(ev()).decode())  # never read: the socket closes after the first
            return await replies_until_closed(ws)

    assert run(go()) == ([ids_of(events)], 1001)
    reply = post(t, app_id, message(ev()))
    assert reply.status == 200 and reply.headers["connection"].lower() == "close"
    assert stats(t, app_id)["faults"]["closed_connections"] == 2


def test_ack_delay_holds_each_ack(target_factory: TargetFactory, app_id: str) -> None:
    """``--ack-delay-ms 300``: no ack leaves sooner than 300 ms after its message arrived."""
    t = target_factory(ack_delay_ms=300)
    delay_s = 0.3

    async def go() -> list[float]:
        waits = []
        async with ws_connect(t, app_id) as ws:
            for _ in range(2):
                start = time.monotonic()
                await send_and_ack(ws, ev())
                waits.append(time.monotonic() - start)
        return waits

    assert min(run(go())) >= delay_s
    start = time.monotonic()
    assert post(t, app_id, message(ev())).status == 200
    assert time.monotonic() - start >= delay_s
    assert stats(t, app_id)["faults"]["delayed_messages"] == 3


def test_stall_stops_all_processing_in_its_windows(target_factory: TargetFactory, app_id: str) -> None:
    """``--stall-ms 300 --stall-every-ms 400``: a message sent in a window waits for its end, counted."""
    t = target_factory(stall_ms=300, stall_every_ms=400)

    async def go() -> float:
        longest = 0.0
        deadline = time.monotonic() + 1.5  # spans at least three stall windows
        async with ws_connect(t, app_id) as ws:
            while time.monotonic() < deadline:
                start = time.monotonic()
                await send_and_ack(ws, ev())
                longest = max(longest, time.monotonic() - start)
        return longest

    # Messages go out back to back, so the first one in a window waits for most of it.
    assert run(go()) >= 0.15
    assert stats(t, app_id)["faults"]["stalled_messages"] >= 1


def test_faults_are_off_by_default(target: EmbeddedTarget, app_id: str) -> None:
    """The shared target drops, delays, lies about and closes nothing."""
    batches = [[ev()] for _ in range(30)]
    acks = run(_send_all_then_close(target, app_id, batches))
    assert acks == [ids_of(b) for b in batches]
    assert set(stats(target, app_id)["faults"].values()) == {0}
