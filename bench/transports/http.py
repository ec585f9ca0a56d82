"""HTTP transport: batches POSTed through one aiohttp session, one write choke point.

Theory of operation: the scheduler hands each condensed batch to ``HttpTransport.send``, which only
queues it (never blocks). A fixed pool of worker tasks (``TransportOptions.http_concurrency``, also
the connector's connection limit) takes batches off the queue and POSTs them through ``_post``, the
one choke point: it stamps the actual send time, counts the bytes and registers the batch with the ack
sink. No task is created per request.

Replies are dispatched by status class (table ``_STATUS_HANDLERS``), contract.md, "Limits":
- 2xx: the body must be exactly ``{"reportedIds": [...]}``; anything else is a malformed reply (counted)
  and the batch stays pending, so the ack timeout decides.
- 429 (and 503 with ``Retry-After``): back off for ``Retry-After`` seconds and re-send the same bytes
  under a new token (counted in ``http_429`` and ``retries``); the intended time is kept, so the wait
  shows in the corrected latency.
- other 4xx and 5xx: the server refused the batch; its events count as rejected.
- connection errors and timeouts: counted; the events stay pending (the server may have stored them).

Bytes on the wire per request: the body plus the request line and headers aiohttp sends
(``request_overhead``, checked against a real server by the tests); response bytes are the bodies only.
"""

from __future__ import annotations

import asyncio
import email.utils
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from bench.protocol.errors import MalformedAck, UsageError
from bench.protocol.events import EventId
from bench.protocol.message import parse_ack
from bench.transports.common import AckSink, Clock, TransportOptions, TransportStats, source_addr

#: Back-off when a 429 carries no usable Retry-After.
DEFAULT_RETRY_AFTER_S = 1.0
#: identity: replies are parsed as they come (auto_decompress is off, a compressed ack would be malformed).
_HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "identity"}

#: (device, payload, ids, intended_ns, created_ns)
_Batch = tuple[int, bytes, tuple[EventId, ...], int, tuple[int, ...]]


def http_url(base_url: str, app_id: str) -> str:
    """The tracking endpoint of a target base URL: ``http(s)://h:p/app/{appId}/track``."""
    return f"{base_url.rstrip('/')}/app/{app_id}/track"


def request_overhead(url: str, body_len: int) -> int:
    """Bytes of the request line and headers aiohttp sends for one POST with ``_HEADERS``."""
    parts = urlsplit(url)
    head = (f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/json\r\nAccept-Encoding: identity\r\nAccept: */*\r\n"
            f"User-Agent: {aiohttp.http.SERVER_SOFTWARE}\r\nContent-Length: {body_len}\r\n\r\n")
    return len(head)


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


class HttpTransport:
    """HTTP batches of every device of one process.

    Args:
        url: the tracking URL, ``http(s)://host:port/app/{appId}/track`` (see ``http_url``).
        sink: the ack tracker; the device index is the ``conn`` it sees.
        clock: monotonic ns since the run's start.
        options: TLS, source addresses (one connector per address), concurrency.
    """

    def __init__(self, url: str, sink: AckSink, clock: Clock,
                 options: TransportOptions | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"target: {url!r} is not an http:// or https:// URL")
        self.url = url
        self._url = URL(url)  # parsed once, not per request
        self.sink = sink
        self.clock = clock
        self.options = options or TransportOptions()
        self.stats = TransportStats()
        self.reported: list[EventId] | None = [] if self.options.record_reported else None
        self._overhead = request_overhead(url, 0) - 1  # + len(str(body_len)) per request
        self._queue: deque[_Batch] = deque()
        self._idle: deque[asyncio.Future[None]] = deque()  # workers waiting for a batch
        self._quiet: asyncio.Event | None = None  # set while nothing is queued, in flight or backing off
        self._busy = 0
        self._retry_handles: set[asyncio.TimerHandle] = set()
        self._sessions: list[aiohttp.ClientSession] = []
        self._workers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Open the session(s) and start the worker pool; call once inside the running loop."""
        opts = self.options
        ssl = not opts.insecure  # aiohttp: True verifies, False skips every check
        addrs = opts.source_addrs or ("",)
        per = max(1, opts.http_concurrency // len(addrs))
        for i, addr in enumerate(addrs):
            local = source_addr(opts, i) if addr else None
            connector = aiohttp.TCPConnector(limit=per, ssl=ssl, local_addr=local)
            self._sessions.append(aiohttp.ClientSession(
                connector=connector, headers=_HEADERS, cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False, timeout=aiohttp.ClientTimeout(total=opts.connect_timeout_s * 3)))
        loop = asyncio.get_running_loop()
        for i in range(per * len(addrs)):
            self._workers.append(loop.create_task(self._worker(self._sessions[i % len(self._sessions)])))

    # -- what the scheduler calls ---------------------------------------------------------------------
    def connect(self, device: int) -> None:
        """HTTP has no per-device connection: coming online is a no-op."""

    def send(self, device: int, payload: bytes, ids: tuple[EventId, ...], intended_ns: int,
             created_ns: tuple[int, ...]) -> None:
        """Queue one batch for the worker pool. Never blocks."""
        self._queue.append((device, payload, ids, intended_ns, created_ns))
        idle = self._idle
        while idle:  # wake exactly one idle worker (an Event would wake them all)
            waiter = idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    def send_untracked(self, device: int, payload: bytes) -> None:
        """Heartbeats are WebSocket-only (tracking-api.md, "Event Types"): nothing to do over HTTP."""

    @property
    def pending_writes(self) -> int:
        """Batches queued, in flight, or waiting to be re-sent after a 429."""
        return len(self._queue) + self._busy + len(self._retry_handles)

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
        return total

    async def close(self, timeout_s: float = 2.0) -> None:
        """Stop the workers and close the sessions."""
        for task in self._workers:
            task.cancel()
        if self._workers:
            await asyncio.wait(self._workers, timeout=timeout_s)
        for session in self._sessions:
            await session.close()
        self._workers.clear()
        self._sessions.clear()

    # -- the worker pool and the write choke point ---------------------------------------------------
    async def _worker(self, session: aiohttp.ClientSession) -> None:
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            if not queue:
                waiter = loop.create_future()
                self._idle.append(waiter)
                await waiter
                continue
            batch = queue.popleft()
            self._busy += 1
            try:
                await self._post(session, batch)
            finally:
                self._busy -= 1
                self._settled()

    async def _post(self, session: aiohttp.ClientSession, batch: _Batch) -> None:
        """The one choke point: stamp, count, register, POST, and hand the reply to its status handler."""
        device, payload, ids, intended_ns, created_ns = batch
        stats = self.stats
        actual_ns = self.clock()
        token = self.sink.on_send(device, ids, intended_ns, actual_ns, created_ns)
        stats.messages_sent += 1
        stats.bytes_sent += len(payload) + self._overhead + len(str(len(payload)))
        try:
            async with session.post(self._url, data=payload) as resp:
                body = await resp.read()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except (aiohttp.ClientError, OSError, TimeoutError):
            stats.request_errors += 1  # their fault or the network's: the timeout decides the events
            return
        stats.bytes_received += len(body)
        handler = _STATUS_HANDLERS.get(status // 100, HttpTransport._on_refused)
        handler(self, batch, token, status, body, retry_after)

    # -- status handlers (table dispatch by status class) ---------------------------------------------
    def _on_ok(self, batch: _Batch, token: int, status: int, body: bytes, retry_after: str | None) -> None:
        try:
            reported = parse_ack(body).reported_ids
        except MalformedAck:
            self.stats.malformed_replies += 1  # a measurement; the batch stays pending
            return
        self.sink.on_http_reply(batch[0], token, reported, self.clock())
        if self.reported is not None:
            self.reported.extend(reported)

    def _on_client_error(self, batch: _Batch, token: int, status: int, body: bytes,
                         retry_after: str | None) -> None:
        if status == 429:
            self._back_off(batch, token, retry_after)
            return
        self.stats.http_4xx += 1
        self.sink.on_http_failure(batch[0], token, self.clock(), retry=False)

    def _on_server_error(self, batch: _Batch, token: int, status: int, body: bytes,
                         retry_after: str | None) -> None:
        if status == 503 and retry_after is not None:
            self._back_off(batch, token, retry_after)
            return
        self.stats.http_5xx += 1
        self.sink.on_http_failure(batch[0], token, self.clock(), retry=False)

    def _on_refused(self, batch: _Batch, token: int, status: int, body: bytes,
                    retry_after: str | None) -> None:
        """1xx/3xx: not an answer the contract allows; the batch counts as refused."""
        self.stats.http_4xx += 1
        self.sink.on_http_failure(batch[0], token, self.clock(), retry=False)

    def _back_off(self, batch: _Batch, token: int, retry_after: str | None) -> None:
        """429: keep the events pending and re-send after Retry-After (contract.md, "Limits")."""
        self.stats.http_429 += 1
        self.sink.on_http_failure(batch[0], token, self.clock(), retry=True)
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def resend() -> None:
            if handle is not None:
                self._retry_handles.discard(handle)
            self.stats.retries += 1
            self.send(*batch)

        handle = loop.call_later(retry_after_s(retry_after), resend)
        self._retry_handles.add(handle)


_Handler = Callable[[HttpTransport, _Batch, int, int, bytes, "str | None"], None]
_STATUS_HANDLERS: dict[int, _Handler] = {
    2: HttpTransport._on_ok,
    4: HttpTransport._on_client_error,
    5: HttpTransport._on_server_error,
}
