"""The HTTP transport against the real reference target, and against scripted loopback peers for what the
target never does (status codes, Connection: close, chunked or broken replies, silence)."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Awaitable, Callable
from types import TracebackType

import orjson
import pytest
import uvloop
from aiohttp import web
from timeouts import TIMEOUT_S
from transport_helpers import WaitingTracker, make_clock

from bench.protocol.errors import UsageError
from bench.protocol.events import Track
from bench.protocol.message import encode_events
from bench.results.reconcile import fetch_json
from bench.target.embedded import EmbeddedTarget
from bench.transports.common import TransportOptions
from bench.transports.http import HttpTransport, http_url, request_overhead, retry_after_s

APP = "fedcba9876543210fedcba98"
TargetFactory = Callable[..., EmbeddedTarget]


def _batch(device: int, first_id: int, n: int) -> tuple[bytes, tuple[int, ...]]:
    events = [Track(device_id=f"device-{device}", session_id=3, id=first_id + k, name="search")
              for k in range(n)]
    return encode_events(events), tuple(e.id for e in events if isinstance(e.id, int))


def _run(coro: Callable[[], Awaitable[None]]) -> None:
    uvloop.run(coro())  # type: ignore[arg-type]


def test_batches_are_posted_and_acked_and_stored(target: EmbeddedTarget, app_id: str) -> None:
    """Each batch is one POST; its reportedIds ack its events; the target stored every one."""
    app = app_id

    async def main() -> None:
        tracker = WaitingTracker()
        http = HttpTransport(http_url(target.url, app), tracker, make_clock())
        await http.start()
        body_bytes = 0
        for k in range(6):
            payload, ids = _batch(k % 3, 100 * k, 10)
            body_bytes += len(payload)
            http.send(k % 3, payload, ids, 0, (0,) * len(ids))
        await tracker.until(lambda: tracker.acked == 60)
        await http.close()
        assert http.stats.messages_sent == 6 and http.pending_writes == 0
        assert 1 <= http.stats.connects <= 6 and http.stats.request_errors == 0
        assert http.stats.bytes_sent > body_bytes + 6 * 100  # bodies + request lines and headers
        assert http.reported is not None and len(set(http.reported)) == 60

    _run(main)
    assert fetch_json(f"{target.url}/app/{app}/stats")["stored"]["total"] == 60


def test_a_cut_connection_is_counted_and_its_events_stay_pending(target_factory: TargetFactory) -> None:
    """No response (the target cuts the connection): a request error; the events wait for the timeout."""
    dropping_target = target_factory(drop_ack_ratio=1)

    async def main() -> None:
        tracker = WaitingTracker()
        http = HttpTransport(http_url(dropping_target.url, APP), tracker, make_clock())
        await http.start()
        payload, ids = _batch(0, 1, 5)
        http.send(0, payload, ids, 0, (0,) * 5)
        await http.wait_idle()
        await http.close()
        assert http.stats.request_errors == 1
        assert (tracker.sent, tracker.in_flight, tracker.rejected) == (5, 5, 0)

    _run(main)


def test_status_codes_are_dispatched_by_class() -> None:
    """429 backs off and re-sends; 500 and 400 reject; a malformed 200 is counted and stays pending."""
    script: list[tuple[int, bytes, dict[str, str]]] = [
        (429, b"", {"Retry-After": "0"}),       # batch 1: re-sent ...
        (500, b"oops", {}),                     # batch 2: rejected
        (400, b'{"error": "bad"}', {}),         # batch 3: rejected
        (200, b"<html>", {}),                   # batch 4: malformed, pending
    ]

    async def handle(request: web.Request) -> web.Response:
        doc = orjson.loads(await request.read())
        ids = [e["id"] for e in doc["data"]]
        if script:
            status, body, headers = script.pop(0)
            return web.Response(status=status, body=body, headers=headers)
        return web.json_response({"reportedIds": ids})  # ... and acked the second time

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/app/{app_id}/track", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        tracker = WaitingTracker()
        http = HttpTransport(f"http://127.0.0.1:{port}/app/{APP}/track", tracker, make_clock())
        await http.start()
        for k in range(4):  # one at a time, so the script's order is the batches' order
            payload, ids = _batch(0, 10 * k, 2)
            http.send(0, payload, ids, 0, (0, 0))
            await http.wait_idle()
        await http.close()
        await runner.cleanup()
        st = http.stats
        assert (st.http_429, st.retries, st.http_5xx, st.http_4xx, st.malformed_replies) == (1, 1, 1, 1, 1)
        assert (tracker.sent, tracker.acked, tracker.rejected, tracker.in_flight) == (8, 2, 4, 2)
        assert tracker.resent == 2

    _run(main)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    """Retry-After is delta-seconds or an HTTP date; anything else falls back to the default."""
    assert retry_after_s("3") == 3.0
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry_after_s("soon") == retry_after_s(None) > 0


def test_http_url_and_request_overhead() -> None:
    """The tracking URL of a base URL; the header estimate grows with the Content-Length digits."""
    url = http_url("http://127.0.0.1:8000/", "abc")
    assert url == "http://127.0.0.1:8000/app/abc/track"
    assert request_overhead(url, 1000) == request_overhead(url, 10) + 2


def test_a_non_http_url_is_a_usage_error() -> None:
    """A target that is not http(s) is the user's error, in one line."""
    with pytest.raises(UsageError, match="not an http"):
        HttpTransport("ftp://x/app/a/track", WaitingTracker(), make_clock())


def test_request_overhead_is_the_head_really_sent() -> None:
    """The byte count of the request line and headers matches what a server receives."""
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        body = b'{"reportedIds":[1]}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        tracker = WaitingTracker()
        http = HttpTransport(f"http://127.0.0.1:{port}/app/{APP}/track", tracker, make_clock())
        await http.start()
        payload, ids = _batch(0, 1, 1)
        http.send(0, payload, ids, 0, (0,))
        await http.wait_idle()
        await http.close()
        server.close()
        assert tracker.acked == 1
        assert http.stats.bytes_sent == len(heads[0]) + len(payload)

    _run(main)


# -- scripted loopback peers -----------------------------------------------------------------------------
#: (request number from 0, request body) -> raw reply bytes; b"": answer nothing; None: close at once.
Script = Callable[[int, bytes], "bytes | None"]


def ack(body: bytes, status: str = "200 OK", fields: bytes = b"") -> bytes:
    """A reply acking every event of a request body, with extra header lines."""
    reply = orjson.dumps({"reportedIds": [e["id"] for e in orjson.loads(body)["data"]]})
    return b"HTTP/1.1 %s\r\n%sContent-Length: %d\r\n\r\n%s" % (status.encode(), fields, len(reply), reply)


def plain(status: str, fields: bytes = b"", body: bytes = b"") -> bytes:
    return b"HTTP/1.1 %s\r\n%sContent-Length: %d\r\n\r\n%s" % (status.encode(), fields, len(body), body)


class Peer:
    """A loopback HTTP/1.1 server that answers each request with the raw bytes its script gives."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests = 0
        self.peers: list[str] = []  # client address of each accepted connection
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/app/{APP}/track"

    async def __aenter__(self) -> Peer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peers.append(writer.get_extra_info("peername")[0])
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                found = re.search(rb"Content-Length: (\d+)", head)
                assert found is not None
                body = await reader.readexactly(int(found[1]))
                number, self.requests = self.requests, self.requests + 1
                reply = self.script(number, body)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if b"Connection: close" in reply:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away
        finally:
            writer.close()


def _send(http: HttpTransport, k: int, n: int = 2) -> None:
    payload, ids = _batch(0, 10 * k, n)
    http.send(0, payload, ids, 0, (0,) * n)

async def _one_by_one(peer: Peer, batches: int) -> tuple[WaitingTracker, HttpTransport]:
    """Send ``batches`` 2-event batches one at a time, each answered before the next, then close."""
    tracker = WaitingTracker()
    http = HttpTransport(peer.url, tracker, make_clock())
    await http.start()
    for k in range(batches):
        _send(http, k)
        await http.wait_idle()
    await http.close()
    return tracker, http



def test_connections_are_kept_alive_and_bounded_by_the_concurrency() -> None:
    """Eight batches at once over a pool of two: at most two connections, each reused."""

    async def main() -> None:
        async with Peer(lambda _n, body: ack(body)) as peer:
            tracker = WaitingTracker()
            http = HttpTransport(peer.url, tracker, make_clock(), TransportOptions(http_concurrency=2))
            await http.start()
            for k in range(8):
                _send(http, k)
            await http.wait_idle()
            await http.close()
        assert (tracker.acked, http.stats.messages_sent, http.stats.request_errors) == (16, 8, 0)
        assert http.stats.connects == len(peer.peers) <= 2

    _run(main)


def test_connection_close_is_honoured() -> None:
    """A reply with Connection: close retires its connection: each next batch opens a new one."""

    async def main() -> None:
        async with Peer(lambda _n, body: ack(body, fields=b"Connection: close\r\n")) as peer:
            tracker, http = await _one_by_one(peer, 3)
        st = http.stats
        assert (tracker.acked, st.connects, len(peer.peers), st.request_errors) == (6, 3, 3, 0)

    _run(main)


def test_chunked_and_close_delimited_replies_ack() -> None:
    """A chunked ack, then an ack whose body ends with the connection, both count."""

    def script(n: int, body: bytes) -> bytes:
        reply = ack(body)
        head, _, data = reply.partition(b"\r\n\r\n")
        framing = b"Connection: close" if n else b"Transfer-Encoding: chunked"
        head = re.sub(rb"Content-Length: \d+", framing, head)
        framed = data if n else b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)
        return head + b"\r\n\r\n" + framed

    async def main() -> None:
        async with Peer(script) as peer:
            tracker, http = await _one_by_one(peer, 2)
        assert (tracker.acked, http.stats.malformed_replies, http.stats.request_errors) == (4, 0, 0)

    _run(main)


def test_broken_http_is_a_malformed_reply_and_the_next_batch_uses_a_new_connection() -> None:
    """Bytes that are not HTTP: counted as malformed, the batch stays pending, the connection is dropped."""

    async def main() -> None:
        async with Peer(lambda n, body: b"garbage\r\n\r\n" if n == 0 else ack(body)) as peer:
            tracker, http = await _one_by_one(peer, 2)
        st = http.stats
        assert (st.malformed_replies, st.request_errors, st.connects) == (1, 0, 2)
        assert (tracker.acked, tracker.in_flight) == (2, 2)

    _run(main)


def test_a_reply_nobody_asked_for_is_malformed() -> None:
    """Two responses to one request: the first acks, the second is malformed and retires the connection."""

    async def main() -> None:
        async with Peer(lambda _n, body: ack(body) + plain("200 OK")) as peer:
            tracker, http = await _one_by_one(peer, 2)
        st = http.stats
        assert (tracker.acked, st.malformed_replies, st.connects, st.request_errors) == (4, 2, 2, 0)

    _run(main)


def test_503_with_retry_after_backs_off_and_other_statuses_refuse() -> None:
    """503 + Retry-After is re-sent like a 429; 503 without it and a 3xx reject their batch."""
    script = [plain("503 Busy", b"Retry-After: 0\r\n"), None, plain("503 Busy"),
              plain("302 Found", b"Location: /\r\n")]

    async def main() -> None:
        async with Peer(lambda n, body: script[n] or ack(body)) as peer:
            tracker, http = await _one_by_one(peer, 3)  # the script's order is the batches' order
        st = http.stats
        assert (st.http_429, st.retries, st.http_5xx, st.http_4xx) == (1, 1, 1, 1)
        assert (tracker.acked, tracker.rejected, tracker.resent) == (2, 4, 2)

    _run(main)


def test_a_request_past_its_timeout_is_a_request_error() -> None:
    """A peer that never answers: the request fails after its timeout, its events stay pending."""

    async def main() -> None:
        async with Peer(lambda _n, _body: b"") as peer:
            tracker = WaitingTracker()
            http = HttpTransport(peer.url, tracker, make_clock(),
                                 TransportOptions(connect_timeout_s=TIMEOUT_S / 400))
            await http.start()
            _send(http, 0)
            await http.wait_idle()
            await http.close()
        assert (http.stats.request_errors, tracker.in_flight) == (1, 2)

    _run(main)


def test_closing_with_a_request_in_flight_counts_no_error() -> None:
    """The end of a run is not the server's fault: a request cut by close() is no request error."""

    async def main() -> None:
        async with Peer(lambda _n, _body: b"") as peer:
            tracker = WaitingTracker()
            http = HttpTransport(peer.url, tracker, make_clock())
            await http.start()
            _send(http, 0)
            while not http.stats.messages_sent:
                await asyncio.sleep(0)  # the connection opens, then the request goes out
            await http.close()
        assert (http.stats.request_errors, tracker.in_flight, http.stats.messages_sent) == (0, 2, 1)

    _run(main)


def test_source_addresses_are_spread_over_the_pool() -> None:
    """Two source addresses, a pool of two: one connection from each address."""

    async def main() -> None:
        async with Peer(lambda _n, body: ack(body)) as peer:
            tracker = WaitingTracker()
            options = TransportOptions(source_addrs=("127.0.0.2", "127.0.0.3"), http_concurrency=2)
            http = HttpTransport(peer.url, tracker, make_clock(), options)
            await http.start()
            _send(http, 0)
            _send(http, 1)
            await http.wait_idle()
            await http.close()
        assert tracker.acked == 4 and sorted(peer.peers) == ["127.0.0.2", "127.0.0.3"]

    _run(main)


def test_an_unreachable_target_costs_one_batch_per_failed_connect() -> None:
    """Connection refused: each failed connect is a request error for one batch, which stays pending."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nobody listens there

    async def main() -> None:
        tracker = WaitingTracker()
        http = HttpTransport(f"http://127.0.0.1:{port}/app/{APP}/track", tracker, make_clock())
        await http.start()
        _send(http, 0)
        _send(http, 1)
        await http.wait_idle()
        await http.close()
        st = http.stats
        assert (st.request_errors, st.messages_sent, st.bytes_sent, st.connects) == (2, 0, 0, 0)
        assert (tracker.sent, tracker.in_flight) == (4, 4)

    _run(main)
