"""Each fault flag does exactly what it says, over real sockets (bench/target/faults.py).

The two faults that wait (ack delay, stall) run the target's app in this process on a clock the test moves by
hand (``bench.target.clock``): an ack is seen held until its deadline and released at it, with no wall clock
and no duration asserted.
"""

from __future__ import annotations

import asyncio
import http.client
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import orjson
import pytest
from aiohttp import web
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
from timeouts import TIMEOUT_S

from bench.target.app import TargetState, build_app
from bench.target.config import TargetConfig
from bench.target.embedded import EmbeddedTarget
from bench.target.faults import Delay, FaultConfig
from bench.target.store import MemoryStore


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


class ManualClock:
    """A clock the test moves by hand: ``sleep_until`` parks a waiter until ``advance_to`` reaches it."""

    def __init__(self, now_ns: int) -> None:
        self._now = now_ns
        self.sleepers: list[tuple[int, asyncio.Future[None]]] = []
        self._parked = asyncio.Event()

    def now_ns(self) -> int:
        return self._now

    async def sleep_until(self, deadline_ns: int) -> None:
        if deadline_ns <= self._now:
            return
        waiter = asyncio.get_running_loop().create_future()
        self.sleepers.append((deadline_ns, waiter))
        self._parked.set()
        await waiter

    async def parked(self) -> int:
        """The deadline of the first waiter parked on this clock (waits, bounded, for one to park)."""
        await asyncio.wait_for(self._parked.wait(), TIMEOUT_S)
        self._parked.clear()
        return self.sleepers[-1][0]

    def advance_to(self, now_ns: int) -> None:
        self._now = now_ns
        due = [s for s in self.sleepers if s[0] <= now_ns]
        self.sleepers = [s for s in self.sleepers if s[0] > now_ns]
        for _, waiter in due:
            if not waiter.done():
                waiter.set_result(None)


@asynccontextmanager
async def _target_on(clock: ManualClock, faults: FaultConfig) -> AsyncIterator[tuple[str, TargetState]]:
    """The target's app, in this process, on a free loopback port, reading and waiting on ``clock``."""
    state = TargetState(TargetConfig(faults=faults), MemoryStore(), clock.now_ns(), clock)
    runner = web.AppRunner(build_app(state), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}", state
    finally:
        await runner.cleanup()


_START_NS = 10**12
_MS = 1_000_000


def test_ack_delay_holds_each_ack_until_its_deadline(app_id: str) -> None:
    """``--ack-delay-ms 300``: a WebSocket ack and an HTTP response wait on the target's clock until 300 ms
    after their message arrived, and leave once it gets there."""
    clock = ManualClock(_START_NS)
    events = [init(), ev()]

    async def go() -> tuple[list[object], list[object], dict[str, int]]:
        async with _target_on(clock, FaultConfig(ack_delay=Delay("fixed", 300.0))) as (url, state), \
                aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{url}/app/{app_id}/track") as ws:
                await ws.send_bytes(message(*events))
                deadline = await clock.parked()
                assert deadline == _START_NS + 300 * _MS
                clock.advance_to(deadline - 1)
                assert len(clock.sleepers) == 1  # still held: no ack has left
                clock.advance_to(deadline)
                reply = await ws.receive(timeout=TIMEOUT_S)
            clock.advance_to(_START_NS + 1_000 * _MS)
            posted = asyncio.ensure_future(session.post(f"{url}/app/{app_id}/track", data=message(ev())))
            deadline = await clock.parked()
            assert deadline == _START_NS + 1_300 * _MS and not posted.done()
            clock.advance_to(deadline)
            async with await asyncio.wait_for(posted, TIMEOUT_S) as response:
                body = await response.json()
            faults = state.ingest.stats(app_id).faults
            return orjson.loads(reply.data)["reportedIds"], body["reportedIds"], faults

    ws_ids, http_ids, faults = run(go())
    assert ws_ids == ids_of(events) and len(http_ids) == 1
    assert faults["delayed_messages"] == 2


def test_stall_holds_a_message_until_its_window_ends(app_id: str) -> None:
    """``--stall-ms 300 --stall-every-ms 400``: a message that arrives 50 ms into a stall window (400-700 ms
    after start) waits on the target's clock for the window's end, counted, then is stored and acked."""
    clock = ManualClock(_START_NS)
    events = [init(), ev()]

    async def go() -> tuple[list[object], dict[str, int]]:
        async with _target_on(clock, FaultConfig(stall_ms=300.0, stall_every_ms=400.0)) as (url, state), \
                aiohttp.ClientSession() as session:
            clock.advance_to(_START_NS + 450 * _MS)
            async with session.ws_connect(f"{url}/app/{app_id}/track") as ws:
                await ws.send_bytes(message(*events))
                deadline = await clock.parked()
                assert deadline == _START_NS + 700 * _MS
                assert state.ingest.stats(app_id).stored == 0  # nothing is read in a stall
                clock.advance_to(deadline)
                reply = await ws.receive(timeout=TIMEOUT_S)
            return orjson.loads(reply.data)["reportedIds"], state.ingest.stats(app_id).faults

    ids, faults = run(go())
    assert ids == ids_of(events)
    assert faults["stalled_messages"] == 1


def test_faults_are_off_by_default(target: EmbeddedTarget, app_id: str) -> None:
    """The shared target drops, delays, lies about and closes nothing."""
    batches = [[ev()] for _ in range(30)]
    acks = run(_send_all_then_close(target, app_id, batches))
    assert acks == [ids_of(b) for b in batches]
    assert set(stats(target, app_id)["faults"].values()) == {0}
