"""The HTTP transport against the real reference target (and, for status handling, a scripted peer)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import orjson
import pytest
import uvloop
from aiohttp import web
from transport_helpers import WaitingTracker, make_clock

from bench.protocol.errors import UsageError
from bench.protocol.events import Track
from bench.protocol.message import encode_events
from bench.runner.reconcile import fetch_json
from bench.target.embedded import EmbeddedTarget
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


def test_request_overhead_is_the_head_aiohttp_really_sends() -> None:
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
