"""Helpers of the reference target's tests: real clients (websockets, http.client), event builders.

Every wait in these tests scales from ``TIMEOUT_S``; nothing sleeps to synchronise: a test awaits the ack,
the close frame or the exit it expects.
"""

from __future__ import annotations

import asyncio
import http.client
import itertools
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson
from timeouts import TIMEOUT_S
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.target.embedded import EmbeddedTarget

#: The ``target_factory`` fixture of tests/conftest.py: keyword flags in, a started target out.
TargetFactory = Callable[..., EmbeddedTarget]

T = TypeVar("T")
_ids = itertools.count(1)


def run(coro: Coroutine[Any, Any, T], timeout_s: float = TIMEOUT_S) -> T:
    """Run ``coro`` on a fresh event loop, failing after ``timeout_s``."""
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


def next_id() -> int:
    """A fresh integer event id (every official module sends integers)."""
    return next(_ids)


def ev(kind: str = "event", *, device: str = "dev-1", session: int | str | None = 1000,
       eid: int | str | None = None, name: Any = "click", **fields: Any) -> dict[str, Any]:
    """One event object; ``eid`` defaults to a fresh integer, ``name`` is only set where it makes sense."""
    obj: dict[str, Any] = {"type": kind, "deviceId": device}
    if kind in ("event", "error") and name is not None:
        obj["name"] = name
    if session is not None:
        obj["sessionId"] = session
    obj["id"] = next_id() if eid is None else eid
    obj.update(fields)
    return obj


def init(*, device: str = "dev-1", session: int = 1000, eid: int | str | None = None,
         **fields: Any) -> dict[str, Any]:
    """An ``init`` carrying every field the document requires."""
    extra = {"platform": "linux", "osVersion": "6.1", "totalRam": 16, "version": "1.0.0", "language": "en-US"}
    return ev("init", device=device, session=session, eid=eid, **{**extra, **fields})


def message(*events: object) -> bytes:
    """``{"data": [...]}``; anything JSON goes, so tests can send invalid events too."""
    return orjson.dumps({"data": list(events)})


def ws_url(target: EmbeddedTarget, app_id: str, path: str = "/app/{app}/track") -> str:
    return "ws" + target.url[len("http"):] + path.format(app=app_id)


def ws_connect(target: EmbeddedTarget, app_id: str, path: str = "/app/{app}/track") -> Any:
    """A WebSocket client (``async with``) to the target: no compression, no cap on queued replies."""
    return connect(ws_url(target, app_id, path), compression=None, open_timeout=TIMEOUT_S,
                   close_timeout=TIMEOUT_S, max_size=None, max_queue=None)


async def ack(ws: ClientConnection) -> list[Any]:
    """The next reply: it must be exactly ``{"reportedIds": [...]}``; returns the ids."""
    reply = orjson.loads(await ws.recv())
    assert list(reply) == ["reportedIds"], reply
    ids = reply["reportedIds"]
    assert isinstance(ids, list)
    return ids


async def send_and_ack(ws: ClientConnection, *events: object) -> list[Any]:
    await ws.send(message(*events).decode())
    return await ack(ws)


async def close_code(ws: ClientConnection) -> int | None:
    """Wait for the target to close ``ws`` (no reply may come first); its close code."""
    try:
        reply = await ws.recv()
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else None
    raise AssertionError(f"expected a close, got {reply!r}")


async def replies_until_closed(ws: ClientConnection) -> tuple[list[list[Any]], int | None]:
    """Every ``reportedIds`` that arrives until the connection closes, and the close code."""
    acks: list[list[Any]] = []
    try:
        while True:
            reply = orjson.loads(await ws.recv())
            assert list(reply) == ["reportedIds"], reply
            acks.append(reply["reportedIds"])
    except ConnectionClosed as exc:
        return acks, exc.rcvd.code if exc.rcvd is not None else None


class Reply:
    """An HTTP response, read whole."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return orjson.loads(self.body)


def request(target: EmbeddedTarget, method: str, path: str, body: bytes | None = None,
         headers: Mapping[str, str] | None = None) -> Reply:
    """One request on a fresh connection to the target (``http.client``: a real socket, no retries)."""
    parts = urlsplit(target.url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=TIMEOUT_S)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def post(target: EmbeddedTarget, app_id: str, body: bytes) -> Reply:
    return request(target, "POST", f"/app/{app_id}/track", body, {"Content-Type": "application/json"})


def stats(target: EmbeddedTarget, app_id: str | None = None) -> dict[str, Any]:
    """``GET /app/{appId}/stats`` (or ``GET /stats``), which must answer 200."""
    reply = request(target, "GET", "/stats" if app_id is None else f"/app/{app_id}/stats")
    assert reply.status == 200, reply.body
    result: dict[str, Any] = reply.json()
    return result


def stored_ids(target: EmbeddedTarget, app_id: str) -> list[Any]:
    reply = request(target, "GET", f"/app/{app_id}/stored-ids")
    assert reply.status == 200, reply.body
    ids: list[Any] = reply.json()["ids"]
    return ids


def ids_of(events: Iterable[Mapping[str, Any]]) -> list[Any]:
    return [e["id"] for e in events]
