"""The WebSocket transport against the real reference target (and, for broken replies, a broken peer)."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Literal

import orjson
import pytest
import uvloop
from timeouts import TIMEOUT_S
from transport_helpers import WaitingTracker, make_clock
from websockets.asyncio.server import ServerConnection, serve

from bench import native
from bench.protocol.events import Extra, Heartbeat, Init, Track
from bench.protocol.message import encode_events
from bench.results.reconcile import fetch_json
from bench.target.embedded import EmbeddedTarget
from bench.transports.common import TransportOptions
from bench.transports.ws import WsTransport, _WsConn, frame_text, ws_url

APP = "0123456789abcdef01234567"
TargetFactory = Callable[..., EmbeddedTarget]
IoMode = Literal["polled", "stream"]


@pytest.fixture(params=["polled", "polled-python", "stream"])
def io(request: pytest.FixtureRequest) -> Iterator[IoMode]:
    """Both ways of reading replies (TransportOptions.ws_io): every behaviour here holds for each. Polled
    runs twice: with bench._native's pass, which hands compact replies to the connection itself, and with
    the Python twins (every reply through data_received)."""
    if request.param == "polled-python":
        with native.switched("python"):
            yield "polled"
        return
    mode: IoMode = request.param
    yield mode


def _message(device: int, event_id: int, *, init: bool = False) -> tuple[bytes, tuple[int, ...]]:
    dev = f"device-{device}"
    event = (Init(device_id=dev, session_id=7, id=event_id, extra=Extra(platform="linux", os_version="6.8",
                                                                         total_ram=16, version="1.0",
                                                                         language="en-US"))
             if init else Track(device_id=dev, session_id=7, id=event_id, name="open_file"))
    return encode_events([event]), (event_id,)


def _run(coro: Callable[[], Awaitable[None]]) -> None:
    uvloop.run(coro())  # type: ignore[arg-type]


def test_every_message_is_written_once_and_every_ack_reaches_the_tracker(target: EmbeddedTarget,
                                                                         app_id: str, io: IoMode) -> None:
    """Each sent message is one frame; each reportedIds reply acks its events; the target stored them all."""
    app = app_id
    sizes: list[int] = []

    async def main() -> None:
        tracker = WaitingTracker()
        ws = WsTransport(ws_url(target.url, app), tracker, make_clock(), TransportOptions(ws_io=io))
        for k in range(20):
            device = k % 2
            payload, ids = _message(device, 1000 + k, init=k < 2)
            sizes.append(len(frame_text(payload)))
            ws.send(device, payload, ids, 0, (0,))
        await tracker.until(lambda: tracker.acked == 20)
        await ws.close()
        assert ws.stats.messages_sent == 20
        assert ws.stats.connects == 2
        assert ws.stats.malformed_replies == 0
        assert ws.reported is not None and sorted(ws.reported) == list(range(1000, 1020))
        assert ws.stats.bytes_sent > sum(sizes)  # every frame, plus two handshakes and close frames

    _run(main)
    stats = fetch_json(f"{target.url}/app/{app}/stats")
    assert stats["stored"]["total"] == 20


def test_routed_replies_reach_the_tracker_and_count_as_the_protocols_reader_counts_them(
        target: EmbeddedTarget) -> None:
    """With bench._native, the poller reads a connection's compact replies itself and hands their ids
    straight to the tracker (the route): the same acks, and the same bytes received, as when every reply goes
    through the protocol's reader (the Python twin of the pass)."""
    if not native.in_use():
        pytest.skip("bench._native is not built (no C compiler at install), or NUCLEUS_BENCH_PURE is set")

    async def main(app: str, out: dict[str, int]) -> None:
        tracker = WaitingTracker()
        ws = WsTransport(ws_url(target.url, app), tracker, make_clock(),
                         TransportOptions(ws_io="polled", record_reported=False))
        for k in range(40):
            payload, ids = _message(k % 2, 1000 + k, init=k < 2)
            ws.send(k % 2, payload, ids, 0, (0,))
            if k % 10 == 9:
                want = k + 1
                await tracker.until(lambda: tracker.acked == want)  # noqa: B023  (awaited within the iteration)
        assert ws._poller is not None
        out["routes"] = len(ws._poller._routes)
        await ws.close()
        out["acked"], out["sent"], out["rejected"] = tracker.acked, tracker.sent, tracker.rejected
        out["bytes_received"], out["malformed"] = ws.stats.bytes_received, ws.stats.malformed_replies

    routed: dict[str, int] = {}
    _run(lambda: main(secrets.token_hex(12), routed))
    twin: dict[str, int] = {}
    with native.switched("python"):
        _run(lambda: main(secrets.token_hex(12), twin))
    assert routed.pop("routes") == 2 and twin.pop("routes") == 0  # both connections routed, only with C
    assert routed == twin
    assert routed["acked"] == routed["sent"] == 40
    assert routed["bytes_received"] > 40 * len(b"{\"reportedIds\":[1000]}")


def test_heartbeats_are_untracked_and_their_empty_replies_answer_no_event(target: EmbeddedTarget,
                                                                          app_id: str, io: IoMode) -> None:
    """A heartbeat is written but never tracked; the target's empty reply to it rejects nothing."""
    app = app_id

    async def main() -> None:
        tracker = WaitingTracker()
        ws = WsTransport(ws_url(target.url, app), tracker, make_clock(), TransportOptions(ws_io=io))
        ws.send_untracked(0, encode_events([Heartbeat(device_id="device-0")]))
        payload, ids = _message(0, 5, init=True)
        ws.send(0, payload, ids, 0, (0,))
        ws.send_untracked(0, encode_events([Heartbeat(device_id="device-0")]))
        payload, ids = _message(0, 6)
        ws.send(0, payload, ids, 0, (0,))
        await tracker.until(lambda: tracker.acked == 2 and ws.stats.heartbeat_replies == 2)
        await ws.close()
        assert (tracker.sent, tracker.rejected, tracker.stray_replies) == (2, 0, 0)
        assert ws.stats.heartbeats_sent == 2 and ws.stats.messages_sent == 2

    _run(main)


def test_a_closed_connection_is_counted_and_the_next_send_reconnects(target_factory: TargetFactory,
                                                                     io: IoMode) -> None:
    """The server closes after each ack: counted in closed_by_peer; the next send opens a new connection."""
    closing_target = target_factory(close_ratio=1)

    async def main() -> None:
        tracker = WaitingTracker()
        ws = WsTransport(ws_url(closing_target.url, APP), tracker, make_clock(), TransportOptions(ws_io=io))
        for k in range(3):
            payload, ids = _message(0, 40 + k, init=k == 0)
            ws.send(0, payload, ids, 0, (0,))
            await tracker.until(lambda k=k: tracker.acked == k + 1 and tracker.closed == k + 1)  # type: ignore[misc]
        await ws.close()
        assert (ws.stats.connects, ws.stats.closed_by_peer) == (3, 3)
        assert (tracker.acked, tracker.lost, tracker.in_flight) == (3, 0, 0)

    _run(main)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_counts_connect_errors_and_never_written_events_end_lost(io: IoMode) -> None:
    """Refused connects are counted; what never reached the wire is handed to the tracker and ends lost."""

    async def main() -> None:
        tracker = WaitingTracker()
        ws = WsTransport(f"ws://127.0.0.1:{_free_port()}/app/{APP}/track", tracker, make_clock(),
                         TransportOptions(connect_timeout_s=TIMEOUT_S, ws_io=io))
        for k in range(3):
            payload, ids = _message(0, k, init=k == 0)
            ws.send(0, payload, ids, 0, (0,))
        await ws.wait_connects()
        assert ws.stats.connect_errors == 1 and ws.pending_writes == 3
        assert ws.abandon_unsent() == 3
        tracker.finish(1)
        await ws.close()
        assert (tracker.sent, tracker.lost, ws.stats.unsent_events, ws.stats.bytes_sent) == (3, 3, 3, 0)

    _run(main)


async def _send_to_peer(handler: Callable[[ServerConnection], Awaitable[None]], io: IoMode, *, count: int,
                        acked: int) -> tuple[WsTransport, WaitingTracker]:
    """Device 0 sends events 1..count to a websockets server answering with ``handler``; returns once
    ``acked`` are acknowledged and the transport is closed."""
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        tracker = WaitingTracker()
        ws = WsTransport(f"ws://127.0.0.1:{port}/app/{APP}/track", tracker, make_clock(),
                         TransportOptions(ws_io=io))
        for k in range(1, count + 1):
            payload, ids = _message(0, k)
            ws.send(0, payload, ids, 0, (0,))
        await tracker.until(lambda: tracker.acked == acked)
        await ws.close()
    return ws, tracker


def test_malformed_replies_are_counted_never_fatal(io: IoMode) -> None:
    """Replies that are not JSON or not exactly {"reportedIds": [...]} are counted; their events time out."""
    replies = [b"not json", orjson.dumps({"reportedIds": [2], "extra": 1}), b"[1, 2]"]

    async def handler(conn: ServerConnection) -> None:
        async for message in conn:
            doc = orjson.loads(message)
            ids = [e["id"] for e in doc["data"]]
            await conn.send(replies.pop(0) if replies else orjson.dumps({"reportedIds": ids}))

    async def main() -> None:
        ws, tracker = await _send_to_peer(handler, io, count=4, acked=1)
        tracker.finish(1)
        assert ws.stats.malformed_replies == 3
        assert (tracker.sent, tracker.acked, tracker.lost) == (4, 1, 3)

    _run(main)


def test_fragmented_and_binary_replies_are_reassembled(io: IoMode) -> None:
    """A reply split over continuation frames, or sent as a binary frame, is one ack."""

    async def handler(conn: ServerConnection) -> None:
        async for message in conn:
            ids = [e["id"] for e in orjson.loads(message)["data"]]
            reply = orjson.dumps({"reportedIds": ids})
            if ids[0] % 2:
                await conn.send([reply[:5], reply[5:9], reply[9:]])  # fragments: text + continuations
            else:
                await conn.send(reply)  # bytes: a binary frame (the Swift module's way)

    async def main() -> None:
        ws, _ = await _send_to_peer(handler, io, count=6, acked=6)
        assert ws.stats.malformed_replies == 0

    _run(main)


def test_ws_url_is_derived_from_the_base_url() -> None:
    """http -> ws and https -> wss, with the tracking path of contract.md."""
    assert ws_url("http://127.0.0.1:8000/", "abc") == "ws://127.0.0.1:8000/app/abc/track"
    assert ws_url("https://example.test", "abc") == "wss://example.test/app/abc/track"


def test_frame_text_is_a_masked_final_text_frame() -> None:
    """Header, mask and masked payload, for the three length encodings of RFC 6455, 5.2."""
    for n, head in ((5, 2), (300, 4), (70000, 10)):
        payload = b"x" * n
        frame = frame_text(payload)
        assert frame[0] == 0x81 and frame[1] & 0x80
        mask = frame[head:head + 4]
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(frame[head + 4:]))
        assert body == payload



def test_devices_bind_their_source_addresses(target: EmbeddedTarget, app_id: str, io: IoMode) -> None:
    """--source-addrs: device d's connection leaves from source_addrs[d % n]."""
    addrs = ("127.0.0.2", "127.0.0.3")
    local: dict[int, str] = {}

    async def main() -> None:
        tracker = WaitingTracker()
        options = TransportOptions(source_addrs=addrs, ws_io=io)
        ws = WsTransport(ws_url(target.url, app_id), tracker, make_clock(), options)
        for device in range(4):
            payload, ids = _message(device, 100 + device, init=True)
            ws.send(device, payload, ids, 0, (0,))
        await tracker.until(lambda: tracker.acked == 4)
        for conn in ws.live:
            assert conn.transport is not None
            local[conn.device.index] = conn.transport.get_extra_info("sockname")[0]
        await ws.close()

    _run(main)
    assert local == {0: "127.0.0.2", 1: "127.0.0.3", 2: "127.0.0.2", 3: "127.0.0.3"}


def test_every_message_leaves_and_every_reply_enters_through_the_connections_one_door(
        target: EmbeddedTarget, app_id: str, io: IoMode, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whichever way a message is written (framed and sent in one C step, or framed, then written) it
    leaves through ``_WsConn.write``; whichever reader takes a reply (the poller's C pass, a fast reader,
    the protocol) it enters through ``_WsConn.on_reply``."""
    texts: list[int] = []
    replies: list[object] = []
    real_write, real_reply = _WsConn.write, _WsConn.on_reply

    def write(self: _WsConn, data: bytes, text: bool = False) -> None:
        if text:
            texts.append(len(data))
        real_write(self, data, text)

    def on_reply(self: _WsConn, reply: bytes | tuple[int, ...], rx_ns: int | None) -> None:
        replies.append(reply)
        real_reply(self, reply, rx_ns)

    monkeypatch.setattr(_WsConn, "write", write)
    monkeypatch.setattr(_WsConn, "on_reply", on_reply)

    async def main() -> None:
        tracker = WaitingTracker()
        ws = WsTransport(ws_url(target.url, app_id), tracker, make_clock(), TransportOptions(ws_io=io))
        for k in range(12):
            payload, ids = _message(0, 2000 + k, init=k == 0)
            ws.send(0, payload, ids, 0, (0,))
        await tracker.until(lambda: tracker.acked == 12)
        await ws.close()

    _run(main)
    assert len(texts) == 12 and len(replies) == 12


async def _poll_until(done: Callable[[], bool]) -> None:
    """Wait (bounded) for something no reply signals, such as a connect retry."""
    async with asyncio.timeout(TIMEOUT_S):
        while not done():
            await asyncio.sleep(0.01)


def test_a_refused_device_retries_with_growing_jittered_backoff_and_connects_when_the_server_comes(
        io: IoMode) -> None:
    """Refused connects are counted by cause and retried after a backoff (not at the next send, not at
    once); once a server listens, the device connects, its backlog goes out in order and is acked."""
    port = _free_port()

    async def ack(conn: ServerConnection) -> None:
        async for data in conn:
            ids = [e["id"] for e in orjson.loads(data)["data"] if "id" in e]
            await conn.send(orjson.dumps({"reportedIds": ids}).decode())

    async def main() -> None:
        tracker = WaitingTracker()
        ws = WsTransport(f"ws://127.0.0.1:{port}/app/{APP}/track", tracker, make_clock(),
                         TransportOptions(connect_timeout_s=TIMEOUT_S, ws_io=io))
        payload, ids = _message(0, 1, init=True)
        ws.send(0, payload, ids, 0, (0,))
        stats = ws.stats
        # waiting out a backoff: every connect so far failed, each failure but the last was retried
        await _poll_until(lambda: stats.connect_errors >= 3
                          and stats.connect_errors == stats.connect_retries + 1)
        for k in range(2, 5):  # sends while the device waits out its backoff start no connect of their own
            payload, ids = _message(0, k)
            ws.send(0, payload, ids, 0, (0,))
        assert stats.connect_refused == stats.connect_errors and stats.connect_retries <= stats.connect_errors
        assert stats.connect_timeouts == stats.connect_resets == stats.connect_rejected == 0
        async with serve(ack, "127.0.0.1", port):
            await tracker.until(lambda: tracker.acked == 4)
            assert stats.connects == 1 and ws.pending_writes == 0
            # every connect was the first or a retry after a failure, none started by the sends: the
            # last retry is the one that connected
            assert stats.connect_errors == stats.connect_retries
            await ws.close()
        assert tracker.acked == tracker.sent == 4

    _run(main)


def test_a_refused_handshake_is_counted_as_rejected(target: EmbeddedTarget, io: IoMode) -> None:
    """An HTTP status instead of the upgrade (a bad appId: 404) is a rejected connect, not a reset."""

    async def main() -> None:
        tracker = WaitingTracker()
        base = target.url.replace("http://", "ws://", 1)
        ws = WsTransport(f"{base}/app/bad-id!/track", tracker, make_clock(),
                         TransportOptions(ws_io=io))
        payload, ids = _message(0, 1, init=True)
        ws.send(0, payload, ids, 0, (0,))
        await _poll_until(lambda: ws.stats.connect_errors >= 1)
        await ws.close()
        assert ws.stats.connect_rejected == ws.stats.connect_errors >= 1 and ws.stats.connects == 0

    _run(main)


@pytest.mark.parametrize("failures", [1, 2, 3, 8, 30])
def test_the_connect_backoff_doubles_up_to_its_cap_within_its_jitter(failures: int) -> None:
    """CONNECT_BACKOFF_S * 2^(failures - 1), capped at CONNECT_BACKOFF_MAX_S, times [0.5, 1.5)."""
    from bench.transports.ws import CONNECT_BACKOFF_MAX_S, CONNECT_BACKOFF_S, connect_backoff_s

    base = min(CONNECT_BACKOFF_MAX_S, CONNECT_BACKOFF_S * 2 ** (failures - 1))
    assert connect_backoff_s(failures, 0.0) == 0.5 * base
    assert connect_backoff_s(failures, 0.999) == pytest.approx(1.499 * base)
