"""Polled sockets (bench.transports.polled): kernel receive times, buffered writes, end of stream.

Real TCP connections on loopback; the test side plays the peer with plain blocking sockets.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest
import uvloop
from timeouts import TIMEOUT_S
from transport_helpers import WaitingTracker, loopback_pair, make_clock, read_frame

from bench.protocol.errors import UsageError
from bench.transports.common import TransportOptions
from bench.transports.polled import BUDGET_EVERY, PolledSocket, Poller, frame_length
from bench.transports.ws import WsTransport, frame_text_py

#: Each test runs with the C twins and with the Python ones (tests/conftest.py, module_twins).
pytestmark = pytest.mark.usefixtures("module_twins")

APP = "0123456789abcdef01234567"


class Recorder(asyncio.Protocol):
    """Records what a PolledSocket hands its protocol."""

    def __init__(self) -> None:
        self.rx_ns: int | None = None
        self.chunks: list[tuple[bytes, int | None]] = []
        self.eof = False
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self.made = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made = True

    def data_received(self, data: bytes) -> None:
        self.chunks.append((data, self.rx_ns))

    def eof_received(self) -> bool | None:
        self.eof = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)

    @property
    def data(self) -> bytes:
        return b"".join(c for c, _ in self.chunks)


def _run(main: Callable[[], Awaitable[None]]) -> None:
    uvloop.run(main())  # type: ignore[arg-type]


async def _until(poller: Poller, done: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        while not done():
            poller.poll()
            await asyncio.sleep(0.001)


def test_a_reply_is_timed_when_it_reached_the_socket_not_when_it_was_read() -> None:
    """The kernel's receive time is what the protocol sees: a read 50 ms late still reports the arrival."""

    async def main() -> None:
        clock = make_clock()
        poller = Poller(clock)
        ours, peer = loopback_pair()
        proto = Recorder()
        PolledSocket(poller, ours, proto)
        # The kernel turns receive stamps on a moment after the first socket asks: probe until it stamps.
        async with asyncio.timeout(TIMEOUT_S):
            while not proto.chunks or proto.chunks[-1][1] is None:
                size = len(proto.data)
                peer.sendall(b"probe")
                await _until(poller, lambda size=size: len(proto.data) == size + 5)  # type: ignore[misc]
        proto.chunks.clear()
        before = clock()
        peer.sendall(b"reply")
        after_send = clock()
        await asyncio.sleep(0.05)  # the reply waits in the socket; nothing reads it
        read_at = clock()
        await _until(poller, lambda: proto.data == b"reply")
        (_, rx), = proto.chunks
        assert rx is not None
        assert before <= rx <= after_send < read_at  # timed at its arrival, before the late read
        peer.close()
        await _until(poller, lambda: proto.lost.done())
        assert proto.eof and proto.lost.result() is None
        poller.close()

    _run(main)


def test_a_write_the_kernel_cannot_take_at_once_is_finished_in_order_later() -> None:
    """Writes beyond the socket buffers wait, in order, and leave as the peer reads; close flushes first."""
    big = bytes(range(256)) * 40_000  # ~10 MB: more than loopback socket buffers hold

    async def main() -> None:
        poller = Poller(make_clock())
        ours, peer = loopback_pair()
        proto = Recorder()
        ps = PolledSocket(poller, ours, proto)
        ps.write(big)
        ps.write(b"tail")
        ps.close()  # what is queued still goes out, then the socket closes
        assert ps.is_closing() and not proto.lost.done()
        received = bytearray()
        loop = asyncio.get_running_loop()

        def drain() -> None:
            while chunk := peer.recv(1 << 20):
                received.extend(chunk)

        reader = loop.run_in_executor(None, drain)
        await _until(poller, lambda: proto.lost.done())
        await asyncio.wait_for(reader, TIMEOUT_S)
        assert bytes(received) == big + b"tail"
        assert proto.lost.result() is None
        peer.close()
        poller.close()

    _run(main)


def test_text_frames_the_kernel_cannot_take_at_once_wait_in_order_behind_the_rest() -> None:
    """Text frames past the socket buffers: write_text (bench._native frames and sends in one step) queues
    what the kernel does not take, and later frames behind it, as write of frame_text's bytes (its twin)
    does; the peer reads every frame whole, in order; a closing socket takes nothing."""
    payloads = [bytes([k]) * 60_000 for k in range(40)] + [b"tail"]  # ~2.4 MB: past the socket buffers

    async def main() -> None:
        poller = Poller(make_clock())
        ours, peer = loopback_pair()
        proto = Recorder()
        ps = PolledSocket(poller, ours, proto)
        if ps.writes_text:
            counted = [ps.write_text(p) for p in payloads]
        else:
            frames = [frame_text_py(p) for p in payloads]
            for frame in frames:
                ps.write(frame)
            counted = [len(f) for f in frames]
        assert counted == [frame_length(len(p)) for p in payloads]
        ps.close()
        if ps.writes_text:
            assert ps.write_text(b"late") == 0  # counted as nothing: nothing is taken (the peer's read says)
        else:
            ps.write(frame_text_py(b"late"))
        received: list[bytes] = []
        loop = asyncio.get_running_loop()

        def drain() -> None:
            for _ in payloads:
                received.append(read_frame(peer)[1])

        reader = loop.run_in_executor(None, drain)
        await _until(poller, lambda: proto.lost.done())
        await asyncio.wait_for(reader, TIMEOUT_S)
        assert received == payloads and peer.recv(10) == b""  # nothing after the last frame, then the end
        peer.close()
        poller.close()

    _run(main)


def test_a_reset_connection_ends_with_its_error() -> None:
    """A peer that resets the connection: connection_lost gets the error, the socket leaves the poller."""

    async def main() -> None:
        poller = Poller(make_clock())
        ours, peer = loopback_pair()
        proto = Recorder()
        ps = PolledSocket(poller, ours, proto)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        peer.close()  # linger 0: RST
        await _until(poller, lambda: proto.lost.done())
        assert isinstance(proto.lost.result(), ConnectionResetError)
        assert ps.fd == -1 and poller.poll() == 0
        poller.close()

    _run(main)


def test_a_started_poller_reads_by_itself_until_closed() -> None:
    """start(): the ticks read what arrives with no other call; close() stops them."""

    async def main() -> None:
        poller = Poller(make_clock())
        ours, peer = loopback_pair()
        proto = Recorder()
        PolledSocket(poller, ours, proto)
        poller.start()
        peer.sendall(b"hello")
        async with asyncio.timeout(TIMEOUT_S):
            while proto.data != b"hello":
                await asyncio.sleep(0.001)
        assert poller.ticks > 0
        poller.close()
        ticks = poller.ticks
        await asyncio.sleep(0.02)
        assert poller.ticks == ticks and proto.lost.done()  # no tick after close; the socket was aborted
        peer.close()

    _run(main)


def test_a_poll_out_of_budget_leaves_the_rest_for_the_next() -> None:
    """A burst of replies on many sockets: a poll stops when its budget is spent (the clock is read every
    BUDGET_EVERY sockets) and the sockets it did not reach stay ready; a started poller reads them all."""
    n = 3 * BUDGET_EVERY + 2

    async def main() -> None:
        poller = Poller(make_clock(), budget_s=0.0)
        pairs = [loopback_pair() for _ in range(n)]
        protos = [Recorder() for _ in range(n)]
        for (ours, peer), proto in zip(pairs, protos, strict=True):
            PolledSocket(poller, ours, proto)
            peer.sendall(b"ack")
        await asyncio.sleep(0.05)  # every reply is in its socket
        assert poller.poll(0) == BUDGET_EVERY and poller.behind
        assert sum(p.data == b"ack" for p in protos) == BUDGET_EVERY
        poller.start()  # behind, each tick goes on at the loop's next turn until every socket is read
        async with asyncio.timeout(TIMEOUT_S):
            while not all(p.data == b"ack" for p in protos):
                await asyncio.sleep(0.001)
        assert poller.cut_ticks >= 2 and not any(len(p.chunks) > 1 for p in protos)  # each read once
        poller.close()
        for _, peer in pairs:
            peer.close()

    _run(main)


def test_polled_reads_need_plain_websocket() -> None:
    """--ws-io polled on wss:// is refused with one line (TLS keeps the event loop's transport)."""
    with pytest.raises(UsageError, match="--ws-io polled"):
        WsTransport(f"wss://127.0.0.1:1/app/{APP}/track", WaitingTracker(), make_clock(),
                    TransportOptions(ws_io="polled"))


def test_auto_reads_plain_websocket_polled_and_tls_as_a_stream() -> None:
    """auto: polled for ws://, the event loop's transport for wss://."""
    clock = make_clock()
    plain = WsTransport(f"ws://127.0.0.1:1/app/{APP}/track", WaitingTracker(), clock)
    tls = WsTransport(f"wss://127.0.0.1:1/app/{APP}/track", WaitingTracker(), clock)
    assert plain.polled and not tls.polled
