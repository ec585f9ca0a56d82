"""The plain-script references: the bare send/ack loop, the naive timer per device, the plain epoll loop.

Both use the websockets library's asyncio client on uvloop (the library the hot path frames with) and
send one pre-encoded message taken from the hot path's own plan, so the bytes on the wire are the same:

- **bare loop**: a few connections, each sends a message and awaits its reply, N messages in all; the
  reply is not even parsed. What a WebSocket client cannot do for less on this machine.
- **naive timer per device**: one connection and one asyncio task per device, each sleeping its own
  exponential gap before every send and awaiting the reply: the obvious way to pace many devices, which
  the hot path's one central scheduler replaces.
- **plain epoll loop**: the same paced fleet with no event loop, no WebSocket library and no tracking: raw
  sockets after a hand-written handshake, one ``epoll`` in a plain loop, a 1 ms send tick, replies read
  and dropped, messages framed by the hot path's ``frame_text``. What paced sending costs in Python on
  this machine before any of the hot path's work (its plan, tracking, timing, event loop).

Each runs in a child process (``_proc``) and marks its measured window, after connecting and a warm-up.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import select
import socket
import time
from typing import Any
from urllib.parse import urlsplit

from benchmarks._proc import Link, self_cpu_s

#: Connections opened at once by the naive script (the target's accept queue stays short).
CONNECT_CONCURRENCY = 200
#: Messages each bare connection sends before the window opens (imports, caches, TCP windows warm).
WARMUP_MESSAGES = 200


async def _bare(link: Link, url: str, message: bytes, connections: int, total: int,
                limit_s: float) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    sockets = [await connect(url, compression=None, max_queue=None) for _ in range(connections)]

    async def loop(ws: Any, n: int) -> None:
        for _ in range(n):
            await ws.send(message, text=True)  # a text frame, as the contract's clients send
            await ws.recv(decode=False)

    await asyncio.gather(*(loop(ws, WARMUP_MESSAGES) for ws in sockets))
    per = total // connections
    t0, cpu0 = time.perf_counter(), self_cpu_s()
    link.mark("start")
    async with asyncio.timeout(limit_s):
        await asyncio.gather(*(loop(ws, per) for ws in sockets))
    cpu1, t1 = self_cpu_s(), time.perf_counter()
    link.mark("end")
    for ws in sockets:
        await ws.close()
    return {"messages": per * connections, "seconds": t1 - t0, "cpu_s": cpu1 - cpu0}


def bare_child(link: Link, url: str, message: bytes, connections: int, total: int,
               limit_s: float) -> dict[str, Any]:
    """Child main of the bare loop: ``total`` messages over ``connections`` connections."""
    import uvloop

    result: dict[str, Any] = uvloop.run(_bare(link, url, message, connections, total, limit_s))
    return result


class _Naive:
    """The naive script's shared state: a stop flag and the count of answered messages."""

    def __init__(self) -> None:
        self.running = True
        self.answered = 0
        self.failed = 0


async def _device(state: _Naive, ws: Any, message: bytes, rate: float, rnd: random.Random) -> None:
    await asyncio.sleep(rnd.random() / rate)  # a random phase, so devices do not start in step
    try:
        while state.running:
            await asyncio.sleep(rnd.expovariate(rate))  # the device's own timer
            await ws.send(message, text=True)
            await ws.recv(decode=False)
            state.answered += 1
    except Exception:  # a closed connection ends this device; counted, the run goes on
        state.failed += 1


async def _naive(link: Link, url: str, message: bytes, devices: int, rate: float, warm_s: float,
                 window_s: float) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def open_one() -> Any:
        async with gate:
            return await connect(url, compression=None, open_timeout=30)

    sockets = await asyncio.gather(*(open_one() for _ in range(devices)))
    state = _Naive()
    tasks = [asyncio.create_task(_device(state, ws, message, rate, random.Random(i)))
             for i, ws in enumerate(sockets)]
    await asyncio.sleep(warm_s)
    n0, t0, cpu0 = state.answered, time.perf_counter(), self_cpu_s()
    link.mark("start")
    await asyncio.sleep(window_s)
    cpu1, t1, n1 = self_cpu_s(), time.perf_counter(), state.answered
    link.mark("end")
    state.running = False
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {"messages": n1 - n0, "seconds": t1 - t0, "cpu_s": cpu1 - cpu0, "failed": state.failed}


def naive_child(link: Link, url: str, message: bytes, devices: int, rate: float, warm_s: float,
                window_s: float) -> dict[str, Any]:
    """Child main of the naive script: ``devices`` tasks, each on its own timer at ``rate`` messages/s."""
    import uvloop

    from bench.runner.engine import raise_nofile_limit

    raise_nofile_limit()
    result: dict[str, Any] = uvloop.run(_naive(link, url, message, devices, rate, warm_s, window_s))
    return result


#: Bytes that end the target's handshake response.
_END_OF_HEAD = b"\r\n\r\n"


def _open_plain(url: str, devices: int, limit_s: float) -> list[socket.socket]:
    """``devices`` WebSocket connections by hand (RFC 6455, 4.1), non-blocking once open."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    deadline = time.monotonic() + limit_s
    socks: list[socket.socket] = []
    try:
        for start in range(0, devices, CONNECT_CONCURRENCY):  # a batch of requests, then their answers
            batch = []
            for _ in range(min(CONNECT_CONCURRENCY, devices - start)):
                sock = socket.create_connection((host, port), timeout=max(1.0, deadline - time.monotonic()))
                socks.append(sock)
                batch.append(sock)
                key = base64.b64encode(os.urandom(16)).decode()
                sock.sendall((f"GET {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                              f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n").encode())
            for sock in batch:
                head = b""
                while _END_OF_HEAD not in head:
                    chunk = sock.recv(4096)
                    if not chunk:
                        raise ConnectionError("the target closed a connection during the handshake")
                    head += chunk
                if not head.startswith(b"HTTP/1.1 101"):
                    status = head.split(b"\r\n", 1)[0]
                    raise ConnectionError(f"handshake refused: {status!r}")
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setblocking(False)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def plain_child(link: Link, url: str, message: bytes, devices: int, rate: float, warm_s: float,
                window_s: float) -> dict[str, Any]:
    """Child main of the plain epoll loop: ``devices`` connections, each at ``rate`` messages/s on average,
    sent in turn on a 1 ms tick (the fleet's total rate, spread evenly), replies read as they come."""
    from bench.runner.engine import raise_nofile_limit
    from bench.transports.ws import frame_text

    raise_nofile_limit()
    socks = _open_plain(url, devices, 60.0)
    poller = select.epoll()
    by_fd = {s.fileno(): s for s in socks}
    for fd in by_fd:
        poller.register(fd, select.EPOLLIN)
    per_tick = rate * devices / 1000.0
    sent = replies = 0
    owed = 0.0
    turn = 0
    start = time.perf_counter()
    marks: dict[str, tuple[float, int, float]] = {}
    next_tick = start
    try:
        while True:
            now = time.perf_counter()
            if "start" not in marks and now - start >= warm_s:
                marks["start"] = (now, sent, self_cpu_s())
                link.mark("start")
            if now - start >= warm_s + window_s:
                marks["end"] = (now, sent, self_cpu_s())
                link.mark("end")
                break
            for fd, _ in poller.poll(max(0.0, next_tick - now)):
                if by_fd[fd].recv(8192):
                    replies += 1
            if time.perf_counter() >= next_tick:
                next_tick += 0.001
                owed += per_tick
                while owed >= 1.0:
                    socks[turn].send(frame_text(message))
                    turn = (turn + 1) % devices
                    sent += 1
                    owed -= 1.0
    finally:
        poller.close()
        for sock in socks:
            sock.close()
    (t0, n0, c0), (t1, n1, c1) = marks["start"], marks["end"]
    return {"messages": n1 - n0, "seconds": t1 - t0, "cpu_s": c1 - c0, "failed": 0, "replies": replies}
