"""HTTP transport: batches POSTed over a pool of keep-alive HTTP/1.1 connections, one write choke point.

Theory of operation: the scheduler hands each condensed batch to ``HttpTransport.send``. When an open
connection is idle the batch is written at once; otherwise it waits in one queue, and a new connection
is opened while the pool (``TransportOptions.http_concurrency`` connections, spread over the source
addresses) has room. Each connection is an ``asyncio.Protocol`` (``_HttpConn``) that carries one
request at a time and drives the sans-I/O core in ``bench.transports.h1``: a request template built
once (only Content-Length changes) and a response parser fed from ``data_received``. When a reply is
complete, the connection takes the next queued batch itself. No task and no future per request: a
task only per connection opened.

Every request leaves through ``_HttpConn._post``, the one choke point: it stamps the actual send time,
registers the batch with the ack sink and writes through ``_HttpConn._write``, the only caller of
``transport.write``, which counts the bytes exactly as written (request line, headers and body).

Replies are dispatched by status class (table ``_STATUS_HANDLERS``), contract.md, "Limits":
- 2xx: the body must be exactly ``{"reportedIds": [...]}``; anything else is a malformed reply (counted)
  and the batch stays pending, so the ack timeout decides.
- 429 (and 503 with ``Retry-After``): back off for ``Retry-After`` seconds and re-send the same bytes
  under a new token (counted in ``http_429`` and ``retries``); the intended time is kept, so the wait
  shows in the corrected latency.
- other 4xx and 5xx (and 3xx, which the contract does not allow): the server refused the batch; its
  events count as rejected.
- a connection that fails to open, ends before the reply, or outlives the request timeout: counted in
  ``request_errors``; the events stay pending (the server may have stored them). A failed connect costs
  one queued batch, as a failed request would, so an unreachable server cannot stall the queue.
- bytes that are not an HTTP/1.1 response (``h1.MalformedResponse``): counted in ``malformed_replies``,
  the batch stays pending and the connection is dropped (the stream cannot be framed any more).

A reply with ``Connection: close`` (or an HTTP/1.0 one without keep-alive, RFC 9112, 9.3) retires its
connection; the next batch opens a new one. ``bytes_received`` counts response bodies only.
"""

from __future__ import annotations

import asyncio
import email.utils
from collections import deque
from collections.abc import Callable
from typing import cast

from bench.protocol.errors import MalformedAck, UsageError
from bench.protocol.events import EventId
from bench.protocol.message import parse_ack_ids
from bench.transports.common import (
    AckSink,
    Clock,
    TransportOptions,
    TransportStats,
    abort_after,
    client_ssl_context,
    source_addr,
    spawn,
)
from bench.transports.h1 import MalformedResponse, RequestTemplate, Response, ResponseParser

#: Back-off when a 429 carries no usable Retry-After.
DEFAULT_RETRY_AFTER_S = 1.0
#: A request unanswered this many connect timeouts after it was written fails (counted, connection dropped).
REQUEST_TIMEOUT_FACTOR = 3

#: (device, payload, ids, intended_ns, created_ns)
_Batch = tuple[int, bytes, tuple[EventId, ...], int, tuple[int, ...]]


def http_url(base_url: str, app_id: str) -> str:
    """The tracking endpoint of a target base URL: ``http(s)://h:p/app/{appId}/track``."""
    return f"{base_url.rstrip('/')}/app/{app_id}/track"


def request_overhead(url: str, body_len: int) -> int:
    """Bytes of the request line and headers sent with one POST of ``body_len`` bytes to ``url``.

    Raises:
        UsageError: ``url`` is not an http:// or https:// URL.
    """
    return RequestTemplate.post(url).head_len(body_len)


def retry_after_s(value: str | None) -> float:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; default when absent."""
    if not value:
        return DEFAULT_RETRY_AFTER_S
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_S
    import datetime as _dt  # only on this rare path

    now = _dt.datetime.now(when.tzinfo or _dt.UTC)
    return max(0.0, (when - now).total_seconds())


class _HttpConn(asyncio.Protocol):
    """One keep-alive connection: at most one request in flight, replies parsed as they arrive."""

    __slots__ = ("batch", "live", "owner", "parser", "sent_ns", "slot", "token", "transport")

    def __init__(self, owner: HttpTransport, slot: int) -> None:
        self.owner = owner
        self.slot = slot  # its place in the pool, which picks its source address
        self.transport: asyncio.Transport | None = None
        self.parser = ResponseParser()
        self.batch: _Batch | None = None  # the request in flight
        self.token = 0
        self.sent_ns = 0
        self.live = True  # False once retired: never given another request

    # -- the write choke point ---------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        """The only caller of ``transport.write``: every byte this connection sends is counted here."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(data)
        self.owner.stats.bytes_sent += len(data)

    def _post(self, batch: _Batch) -> None:
        """Stamp the actual send time, register the batch with the sink, write the request."""
        owner = self.owner
        device, payload, ids, intended_ns, created_ns = batch
        self.sent_ns = actual_ns = owner.clock()
        self.token = owner.sink.on_send(device, ids, intended_ns, actual_ns, created_ns)
        self.batch = batch
        owner.busy += 1
        owner.stats.messages_sent += 1
        self._write(owner.template.encode(payload))

    def take_reply(self) -> tuple[_Batch, int] | None:
        """Clear the request in flight; returns it and its token, or None when there was none."""
        batch = self.batch
        if batch is None:
            return None
        self.batch = None
        self.owner.busy -= 1
        return batch, self.token

    def retire(self) -> None:
        """Take this connection out of service and close it (its reply, if any, is dropped)."""
        self.live = False
        self.owner.forget_idle(self)
        if self.transport is not None:
            self.transport.close()

    # -- asyncio.Protocol callbacks ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's TCPTransport is not a subclass

    def data_received(self, data: bytes) -> None:
        if not self.live:
            return  # retired (broken, stray reply, Connection: close): what follows is not counted again
        try:
            replies = self.parser.feed(data)
        except MalformedResponse:
            self.owner.on_broken(self)
            return
        for reply in replies:
            self.owner.on_reply(self, reply)

    def eof_received(self) -> bool | None:
        self.live = False  # the peer sends nothing more: no new request on this connection
        self.owner.forget_idle(self)
        try:
            replies = self.parser.feed_eof()  # a body delimited by the close ends here
        except MalformedResponse:
            if self.batch is not None:  # cut before or inside the reply: a request error (on_lost)
                return None
            replies = []
        for reply in replies:
            self.owner.on_reply(self, reply)
        return None  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.on_lost(self)


class HttpTransport:
    """HTTP batches of every device of one process.

    Args:
        url: the tracking URL, ``http(s)://host:port/app/{appId}/track`` (see ``http_url``).
        sink: the ack tracker; the device index is the ``conn`` it sees.
        clock: monotonic ns since the run's start.
        options: TLS, source addresses (the pool spread over them), concurrency.

    Raises:
        UsageError: ``url`` is not an http:// or https:// URL.
    """

    def __init__(self, url: str, sink: AckSink, clock: Clock,
                 options: TransportOptions | None = None) -> None:
        self.template = RequestTemplate.post(url)
        self.url = url
        self.sink = sink
        self.clock = clock
        self.options = opts = options or TransportOptions()
        self.stats = TransportStats()
        self.reported: list[EventId] | None = [] if opts.record_reported else None
        self.busy = 0  # connections with a request in flight
        addrs = len(opts.source_addrs) or 1
        # as many connections per source address, slot k binding address k % len (source_addr)
        self._free_slots = list(range(max(1, opts.http_concurrency // addrs) * addrs))[::-1]
        self._ssl = client_ssl_context(opts.insecure) if self.template.secure else None
        self._timeout_ns = int(opts.connect_timeout_s * REQUEST_TIMEOUT_FACTOR * 1e9)
        self._queue: deque[_Batch] = deque()
        self._idle: list[_HttpConn] = []  # open, live, nothing in flight
        self._conns: set[_HttpConn] = set()  # every connection open or opening
        self._opening = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._quiet: asyncio.Event | None = None  # set while nothing is queued, in flight or backing off
        self._all_closed: asyncio.Event | None = None
        self._retry_handles: set[asyncio.TimerHandle] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closing = False

    async def start(self) -> None:
        """Start the request-timeout sweep; call once inside the running loop (connections open on demand)."""
        self._sweep()

    # -- what the scheduler calls ---------------------------------------------------------------------
    def connect(self, device: int) -> None:
        """HTTP has no per-device connection: coming online is a no-op."""

    def send(self, device: int, payload: bytes, ids: tuple[EventId, ...], intended_ns: int,
             created_ns: tuple[int, ...]) -> None:
        """Post one batch now on an idle connection, or queue it for the next free one. Never blocks."""
        if self._idle and not self._queue:
            self._idle.pop()._post((device, payload, ids, intended_ns, created_ns))
            return
        self._queue.append((device, payload, ids, intended_ns, created_ns))
        self._pump()

    def send_untracked(self, device: int, payload: bytes) -> None:
        """Heartbeats are WebSocket-only (tracking-api.md, "Event Types"): nothing to do over HTTP."""

    def send_client(self, send: object) -> None:
        """Client profiles imitate the WebSocket modules: the plan refuses them over HTTP before any send."""
        raise UsageError("client profiles are WebSocket behaviours: run this scenario with --transport ws")

    @property
    def pending_writes(self) -> int:
        """Batches queued, in flight, or waiting to be re-sent after a 429."""
        return len(self._queue) + self.busy + len(self._retry_handles)

    async def wait_idle(self) -> None:
        """Wait until nothing is queued, in flight or waiting to be re-sent."""
        while self.pending_writes:
            if self._quiet is None:
                self._quiet = asyncio.Event()
            self._quiet.clear()
            await self._quiet.wait()

    def _settled(self) -> None:
        if self._quiet is not None and not self.pending_writes:
            self._quiet.set()

    def abandon_unsent(self) -> int:
        """End of the run: give never-posted batches to the sink as sent now, so they end as lost."""
        for handle in self._retry_handles:
            handle.cancel()  # already registered with the sink: they are pending and will be lost
        self._retry_handles.clear()
        now = self.clock()
        total = 0
        while self._queue:
            device, _payload, ids, intended_ns, created_ns = self._queue.popleft()
            if ids:
                self.sink.on_send(device, ids, intended_ns, now, created_ns)
                total += len(ids)
        self.stats.unsent_events += total
        self._settled()
        return total

    async def close(self, timeout_s: float = 2.0) -> None:
        """Close every connection and wait up to ``timeout_s`` for them to go."""
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout_s)
        for conn in list(self._conns):
            conn.retire()
        if self._conns:
            self._all_closed = asyncio.Event()
            await abort_after(self._all_closed, timeout_s, self._conns)
        self._idle.clear()

    # -- the pool ---------------------------------------------------------------------------------------
    def _pump(self) -> None:
        """Give queued batches to idle connections; open connections for the rest while the pool has room."""
        if self._closing:
            return
        queue, idle = self._queue, self._idle
        while queue and idle:
            idle.pop()._post(queue.popleft())
        want = len(queue) - self._opening
        while want > 0 and self._free_slots:
            self._open(self._free_slots.pop())
            want -= 1

    def _open(self, slot: int) -> None:
        self._opening += 1
        conn = _HttpConn(self, slot)
        self._conns.add(conn)
        spawn(self._tasks, self._connect(conn))

    async def _connect(self, conn: _HttpConn) -> None:
        """Open one connection; a failure is counted and costs one queued batch (module docstring)."""
        loop = asyncio.get_running_loop()
        tpl = self.template
        try:
            async with asyncio.timeout(self.options.connect_timeout_s):
                await loop.create_connection(
                    lambda: conn, tpl.host, tpl.port, ssl=self._ssl,
                    server_hostname=tpl.host if self._ssl else None,
                    local_addr=source_addr(self.options, conn.slot))
        except (OSError, TimeoutError):  # their fault or the network's (refused, reset, TLS): counted
            self._opening -= 1
            self._on_connect_failed(conn)
            return
        except asyncio.CancelledError:  # close() while connecting
            self._opening -= 1
            self._on_connect_failed(conn)
            raise
        self._opening -= 1
        self.stats.connects += 1
        if conn.live:
            self._on_idle(conn)

    def _on_connect_failed(self, conn: _HttpConn) -> None:
        conn.live = False
        if conn.transport is not None:
            conn.transport.abort()  # connection_lost releases the slot
        else:
            self._release(conn)
        if self._queue and not self._closing:
            device, _payload, ids, intended_ns, created_ns = self._queue.popleft()
            now = self.clock()
            self.sink.on_send(device, ids, intended_ns, now, created_ns)
            self.stats.request_errors += 1
        self._pump()
        self._settled()

    def _release(self, conn: _HttpConn) -> None:
        if conn in self._conns:
            self._conns.discard(conn)
            self._free_slots.append(conn.slot)
        if self._closing and not self._conns and self._all_closed is not None:
            self._all_closed.set()

    def _on_idle(self, conn: _HttpConn) -> None:
        """A live connection with nothing in flight: the next queued batch, or the idle list."""
        if self._queue:
            conn._post(self._queue.popleft())
        else:
            self._idle.append(conn)

    def forget_idle(self, conn: _HttpConn) -> None:
        """Take a connection off the idle list (it is closing); rare, so a linear search is fine."""
        if conn in self._idle:
            self._idle.remove(conn)

    def _sweep(self) -> None:
        """Every second (or sooner for short timeouts): fail requests older than the request timeout."""
        oldest = self.clock() - self._timeout_ns
        for conn in list(self._conns):
            if conn.batch is not None and conn.sent_ns < oldest and conn.transport is not None:
                conn.live = False
                conn.transport.abort()  # connection_lost counts the request error
        period = min(1.0, self._timeout_ns / 4e9)
        self._sweeper = asyncio.get_running_loop().call_later(period, self._sweep)

    # -- what the connections report ------------------------------------------------------------------
    def on_reply(self, conn: _HttpConn, reply: Response) -> None:
        """A complete response: hand it to its status handler, then reuse or retire the connection."""
        taken = conn.take_reply()
        if taken is None:  # a response nobody asked for: the stream is out of step
            self.stats.malformed_replies += 1
            conn.retire()
            return
        batch, token = taken
        self.stats.bytes_received += len(reply.body)
        if not reply.keep_alive:
            conn.retire()  # Connection: close (RFC 9112, 9.6): the next batch opens a new connection
        status = reply.status
        _STATUS_HANDLERS.get(status // 100, HttpTransport._on_refused)(self, batch, token, status, reply)
        if conn.live:
            self._on_idle(conn)
        else:
            self._pump()
        self._settled()

    def on_broken(self, conn: _HttpConn) -> None:
        """Bytes that are not an HTTP/1.1 response: counted, the batch stays pending, the connection goes."""
        self.stats.malformed_replies += 1
        conn.take_reply()
        conn.retire()
        self._settled()

    def on_lost(self, conn: _HttpConn) -> None:
        """The TCP connection is gone: a request still in flight is a request error (events stay pending)."""
        conn.live = False
        self.forget_idle(conn)
        if conn.take_reply() is not None and not self._closing:
            self.stats.request_errors += 1  # their fault or the network's: the timeout decides the events
        self._release(conn)
        if not self._closing:
            self._pump()
        self._settled()

    # -- status handlers (table dispatch by status class) ---------------------------------------------
    def _on_ok(self, batch: _Batch, token: int, status: int, reply: Response) -> None:
        try:
            reported = parse_ack_ids(reply.body)
        except MalformedAck:
            self.stats.malformed_replies += 1  # a measurement; the batch stays pending
            return
        self.sink.on_http_reply(batch[0], token, reported, self.clock())
        if self.reported is not None:
            self.reported.extend(reported)

    def _on_client_error(self, batch: _Batch, token: int, status: int, reply: Response) -> None:
        if status == 429:
            self._back_off(batch, token, reply)
            return
        self.stats.http_4xx += 1
        self.sink.on_http_failure(batch[0], token, self.clock(), retry=False)

    def _on_server_error(self, batch: _Batch, token: int, status: int, reply: Response) -> None:
        if status == 503 and reply.header(b"retry-after") is not None:
            self._back_off(batch, token, reply)
            return
        self.stats.http_5xx += 1
        self.sink.on_http_failure(batch[0], token, self.clock(), retry=False)

    def _on_refused(self, batch: _Batch, token: int, status: int, reply: Response) -> None:
        """3xx (1xx never gets here: h1 skips interim replies): not an answer the contract allows."""
        self.stats.http_4xx += 1
        self.sink.on_http_failure(batch[0], token, self.clock(), retry=False)

    def _back_off(self, batch: _Batch, token: int, reply: Response) -> None:
        """429: keep the events pending and re-send after Retry-After (contract.md, "Limits")."""
        self.stats.http_429 += 1
        self.sink.on_http_failure(batch[0], token, self.clock(), retry=True)
        value = reply.header(b"retry-after")
        delay = retry_after_s(value.decode("latin-1") if value is not None else None)
        handle: asyncio.TimerHandle | None = None

        def resend() -> None:
            if handle is not None:
                self._retry_handles.discard(handle)
            self.stats.retries += 1
            self.send(*batch)

        handle = asyncio.get_running_loop().call_later(delay, resend)
        self._retry_handles.add(handle)


_Handler = Callable[[HttpTransport, _Batch, int, int, Response], None]
_STATUS_HANDLERS: dict[int, _Handler] = {
    2: HttpTransport._on_ok,
    4: HttpTransport._on_client_error,
    5: HttpTransport._on_server_error,
}
