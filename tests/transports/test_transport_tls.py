"""wss:// and https:// targets: certificates are checked unless --insecure (contract.md, "Endpoints").

The reference target speaks plain HTTP, so these tests run a small TLS peer of their own with a
self-signed certificate made by the openssl command line (skipped where it is missing).
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import pytest
import uvloop
from aiohttp import web
from timeouts import TIMEOUT_S
from transport_helpers import WaitingTracker, make_clock
from websockets.asyncio.server import ServerConnection, serve

from bench.protocol.events import Track
from bench.protocol.message import encode_events
from bench.transports.common import TransportOptions
from bench.transports.http import HttpTransport
from bench.transports.ws import WsTransport

APP = "aaaabbbbccccddddeeeeffff"
pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


@pytest.fixture(scope="module")
def server_tls(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for 127.0.0.1."""
    where: Path = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True, timeout=TIMEOUT_S)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def _event(k: int) -> tuple[bytes, tuple[int, ...]]:
    return encode_events([Track(device_id="device-0", session_id=1, id=k, name="export")]), (k,)


def _run(coro: Callable[[], Awaitable[None]]) -> None:
    uvloop.run(coro())  # type: ignore[arg-type]


async def _ack_all(conn: ServerConnection) -> None:
    async for message in conn:
        await conn.send(orjson.dumps({"reportedIds": [e["id"] for e in orjson.loads(message)["data"]]}))


@pytest.mark.parametrize("insecure", [True, False])
def test_wss_checks_the_certificate_unless_insecure(server_tls: ssl.SSLContext, insecure: bool) -> None:
    """--insecure: the self-signed server is used; without it the connect fails and is counted."""

    async def main() -> None:
        async with serve(_ack_all, "127.0.0.1", 0, ssl=server_tls) as server:
            port = server.sockets[0].getsockname()[1]
            tracker = WaitingTracker()
            ws = WsTransport(f"wss://127.0.0.1:{port}/app/{APP}/track", tracker, make_clock(),
                             TransportOptions(insecure=insecure))
            payload, ids = _event(1)
            ws.send(0, payload, ids, 0, (0,))
            await ws.wait_connects()
            if insecure:
                await tracker.until(lambda: tracker.acked == 1)
            await ws.close()
        assert (ws.stats.connects, ws.stats.connect_errors) == ((1, 0) if insecure else (0, 1))

    _run(main)


@pytest.mark.parametrize("insecure", [True, False])
def test_https_checks_the_certificate_unless_insecure(server_tls: ssl.SSLContext, insecure: bool) -> None:
    """--insecure: the self-signed server answers; without it the request fails and is counted."""

    async def handle(request: web.Request) -> web.Response:
        ids = [e["id"] for e in orjson.loads(await request.read())["data"]]
        return web.json_response({"reportedIds": ids})

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/app/{app_id}/track", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls).start()
        port = runner.addresses[0][1]
        tracker = WaitingTracker()
        http = HttpTransport(f"https://127.0.0.1:{port}/app/{APP}/track", tracker, make_clock(),
                             TransportOptions(insecure=insecure))
        await http.start()
        payload, ids = _event(2)
        http.send(0, payload, ids, 0, (0,))
        await http.wait_idle()
        await http.close()
        await runner.cleanup()
        assert (tracker.acked, http.stats.request_errors) == ((1, 0) if insecure else (0, 1))

    _run(main)
