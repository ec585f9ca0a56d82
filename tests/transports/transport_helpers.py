"""Helpers of the transport tests: a tracker that can be awaited, a clock, the one timeout constant."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Sequence

from timeouts import TIMEOUT_S
from websockets.utils import apply_mask

from bench.metrics import AckTracker
from bench.protocol.events import EventId


class WaitingTracker(AckTracker):
    """An ``AckTracker`` that wakes waiters whenever a reply or a close reaches it."""

    def __init__(self, timeout_s: float = TIMEOUT_S) -> None:
        super().__init__(timeout_ns=int(timeout_s * 1e9))
        self.changed = asyncio.Event()
        self.closed = 0

    def on_ws_ack(self, conn: int, reported: Sequence[EventId], now_ns: int) -> None:
        super().on_ws_ack(conn, reported, now_ns)
        self.changed.set()

    def on_http_reply(self, conn: int, token: int, reported: Sequence[EventId], now_ns: int) -> None:
        super().on_http_reply(conn, token, reported, now_ns)
        self.changed.set()

    def on_http_failure(self, conn: int, token: int, now_ns: int, *, retry: bool) -> None:
        super().on_http_failure(conn, token, now_ns, retry=retry)
        self.changed.set()

    def on_conn_closed(self, conn: int, now_ns: int) -> None:
        super().on_conn_closed(conn, now_ns)
        self.closed += 1
        self.changed.set()

    async def until(self, done: Callable[[], bool], timeout_s: float = TIMEOUT_S) -> None:
        """Wait until ``done()`` holds, re-checked after each reply or close."""
        async with asyncio.timeout(timeout_s):
            while not done():
                self.changed.clear()
                await self.changed.wait()


def make_clock() -> Callable[[], int]:
    """Monotonic ns since now: the transports' time base."""
    t0 = time.monotonic_ns()
    return lambda: time.monotonic_ns() - t0


def loopback_pair() -> tuple[socket.socket, socket.socket]:
    """A connected loopback TCP pair: (ours, non-blocking; the peer's, blocking with ``TIMEOUT_S``)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        ours = socket.create_connection(listener.getsockname())
        peer, _ = listener.accept()
    ours.setblocking(False)
    peer.settimeout(TIMEOUT_S)
    return ours, peer


def read_frame(sock: socket.socket) -> tuple[bytes, bytes]:
    """One client frame from a blocking socket: (its bytes, the unmasked payload)."""
    def exactly(n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            assert chunk, "the stream ended inside a frame"
            out += chunk
        return out

    head = exactly(2)
    n = head[1] & 0x7F
    ext = exactly(2 if n == 126 else 8 if n == 127 else 0)
    if ext:
        n = int.from_bytes(ext, "big")
    mask = exactly(4)
    body = exactly(n)
    return head + ext + mask + body, apply_mask(body, mask)
