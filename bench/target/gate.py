"""The door every TCP connection of the target comes through: the connection cap and the header timeout.

``Gate`` is the protocol factory the listening socket uses (``GatedSite``). Each accepted connection gets a
``_Door``, which either refuses it or hands it to aiohttp's own protocol and stands in front of it:

- Over the cap (``--max-connections``, never more than the open-file limit leaves room for), the door
  reads the request head and answers ``503`` with ``Retry-After`` and a one-line JSON reason, then ends
  its side: a client that is refused learns why, instead of being reset by a kernel out of file
  descriptors. (Answering before the head is legal, but trips clients that are still sending theirs.)
  What else the client sends is read and dropped until it closes, since closing on unread bytes would
  reset the connection and could destroy the reply before the client reads it. A refused connection
  lives at most ``LINGER_S``; past ``MAX_LINGERING`` of them at once, the door closes a new one at once.
- While a request head is open (``heads.RequestHeads``), the door runs the ``--header-timeout-s`` clock:
  a new connection's first head from the connection on, every later head from its first byte. A head still
  open at the deadline closes the connection (slowloris). Nothing is written then: the head was never
  read, and an earlier request's reply may still be on its way.

The door passes every byte and every transport callback to aiohttp's protocol unchanged; it never writes
on a connection it admitted. Counters (``open``, ``refused``, ``header_timeouts``) feed ``GET /stats``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

import orjson
from aiohttp import web

from bench.target.heads import RequestHeads

#: How long a connection the door closes may linger: a refused one is read (and dropped) while its client
#: takes the 503 and closes; a timed-out one may flush what aiohttp wrote to it. Then it is cut.
LINGER_S = 2.0
#: Refused connections lingering at once; more are closed right after the 503 (bounds their descriptors).
MAX_LINGERING = 64


def refusal(cap: int) -> bytes:
    """The whole reply to a connection over the cap: 503, ``Retry-After``, one line of JSON, then closed."""
    body = orjson.dumps({"error": f"too many connections: this target serves at most {cap} at once "
                                  "(--max-connections); try again later"})
    return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%b" % (len(body), body))


class Gate:
    """The protocol factory of the listening socket: one ``_Door`` per accepted connection.

    Args:
        serve: aiohttp's protocol factory (the runner's ``web.Server``) for connections let in.
        cap: connections served at once (``limits.connection_cap``).
        header_timeout_s: how long a request head may stay open (0: no limit).
    """

    def __init__(self, serve: Callable[[], asyncio.Protocol], *, cap: int, header_timeout_s: float) -> None:
        self.serve = serve
        self.cap = cap
        self.header_timeout_s = header_timeout_s
        self.reply = refusal(cap)
        self.open = 0
        self.lingering = 0
        self.refused = 0
        self.header_timeouts = 0

    def __call__(self) -> _Door:
        return _Door(self)


class _Door(asyncio.Protocol):
    """One connection: refused (``inner`` None) or served by aiohttp's protocol ``inner`` behind the clock."""

    __slots__ = ("gate", "heads", "inner", "timer", "transport")

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self.heads: RequestHeads | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Admission is decided here, not in Gate.__call__: the loop may call the factory for a socket it
        # then fails to accept (no file descriptor left), and such a socket never comes back to be counted.
        self.transport = transport = cast(asyncio.Transport, transport)
        gate = self.gate
        if gate.open >= gate.cap:
            self._refuse(transport)
            return
        gate.open += 1
        self.inner = inner = gate.serve()
        inner.connection_made(transport)
        if gate.header_timeout_s > 0:
            self.heads = RequestHeads()
            self._start_clock()  # the first head is due from the connection on

    def data_received(self, data: bytes) -> None:
        inner = self.inner
        heads = self.heads
        if inner is None:  # refused: the reply once the head is in; anything else is read and dropped
            if heads is not None and not heads.feed(data):
                self.heads = None
                self._reply()
            return
        if heads is not None:
            if heads.feed(data):
                if self.timer is None:
                    self._start_clock()
            else:
                self._stop_clock()
                if not heads.following:
                    self.heads = None
        inner.data_received(data)

    def eof_received(self) -> bool | None:
        inner = self.inner
        if inner is None:
            return None  # the refused client has closed its side: close ours
        return inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        inner = self.inner
        if inner is None:
            self.gate.lingering -= 1
            return
        self.gate.open -= 1
        inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def _refuse(self, transport: asyncio.Transport) -> None:
        gate = self.gate
        gate.refused += 1
        gate.lingering += 1
        if gate.lingering > MAX_LINGERING or not transport.can_write_eof():
            transport.write(gate.reply)
            transport.close()
            return
        self.heads = RequestHeads()
        self._cut_later(transport)

    def _reply(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(self.gate.reply)
            transport.write_eof()

    def _start_clock(self) -> None:
        self.timer = asyncio.get_running_loop().call_later(self.gate.header_timeout_s, self._head_late)

    def _stop_clock(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _head_late(self) -> None:
        self.timer = None
        self.gate.header_timeouts += 1
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()
            self._cut_later(transport)

    def _cut_later(self, transport: asyncio.Transport) -> None:
        """Abort ``transport`` after ``LINGER_S`` unless it is lost first (``connection_lost`` stops this)."""
        self.timer = asyncio.get_running_loop().call_later(LINGER_S, transport.abort)


class GatedSite(web.BaseSite):
    """A TCP site whose connections come through ``gate`` (aiohttp's ``TCPSite`` hands the runner's server
    to the loop directly, with no place for a cap or a header clock)."""

    __slots__ = ("_host", "_port", "gate")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, gate: Gate, *, backlog: int) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self.gate = gate

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self.gate, self._host, self._port, backlog=self._backlog)
