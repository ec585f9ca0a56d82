"""One device's WebSocket connection under gevent: a websocket-client socket and a receiver greenlet.

Why websocket-client and not ``websockets.sync.client``: both work under gevent's monkey-patching, but
the websockets sync client runs a background thread per connection (a greenlet here) that reads frames
into a queue for ``recv()`` to hand over: one more greenlet and one more hand-off per reply. With
websocket-client the receiver greenlet reads the socket itself, so a reply is timed the moment its frame
is parsed, and it costs less CPU. Measured on this project's 2-core machine against the reference target
(50 gevent users, each a sender plus a receiver greenlet, 300 messages each, 3 runs per client):
websocket-client used 0.034-0.042 ms of client CPU per message (23,900-29,600 messages per CPU-second),
websockets' sync client 0.047-0.049 ms (20,300-21,400), i.e. 15-45 % more.

Writes go through ``send_text``, the one write choke point, which returns the bytes put on the wire
(frame header and mask included). Replies go to ``on_reply(data, now_ns)``; when the connection ends
for any reason ``on_closed()`` is called once, from the receiver greenlet.
"""

from __future__ import annotations

from collections.abc import Callable

import gevent
import websocket
from websocket import ABNF

from bench.protocol.errors import ConnectFailed
from bench.transports.common import client_ssl_context

#: Largest reply accepted (replies are small; the hot path allows the same, bench.transports.ws).
MAX_REPLY_BYTES = 16 << 20
#: How long ``close`` waits for the server's close frame before cutting the socket.
CLOSE_TIMEOUT_S = 1.0


def _shutdown(ws: websocket.WebSocket) -> None:
    """Cut the socket at once (websocket-client leaves ``shutdown`` unannotated)."""
    shutdown: Callable[[], None] = ws.shutdown
    shutdown()


class WsConnection:
    """One WebSocket connection and its receiver greenlet.

    Args:
        url: ``ws(s)://host:port/path``.
        on_reply: called with each complete data message (bytes) and the monotonic-ns clock reading.
        on_closed: called once when the connection is gone.
        clock: the run's clock (monotonic ns since the run's start).
        insecure: skip TLS certificate checks.
        timeout_s: connect + handshake timeout.
    """

    def __init__(self, url: str, *, on_reply: Callable[[bytes, int], None], on_closed: Callable[[], None],
                 clock: Callable[[], int], insecure: bool = False, timeout_s: float = 10.0) -> None:
        self.url = url
        self._on_reply = on_reply
        self._on_closed = on_closed
        self._clock = clock
        self._insecure = insecure
        self._timeout_s = timeout_s
        self._ws: websocket.WebSocket | None = None
        self._receiver: gevent.Greenlet | None = None
        self.closing = False

    def open(self) -> None:
        """Connect and handshake, then start the receiver.

        Raises:
            ConnectFailed: refused, timed out, TLS failure, or a refused handshake (e.g. 404 for a bad appId).
        """
        sslopt = {"context": client_ssl_context(self._insecure)} if self.url.startswith("wss:") else None
        try:
            ws = websocket.create_connection(self.url, timeout=self._timeout_s, sslopt=sslopt,
                                             skip_utf8_validation=True, enable_multithread=True,
                                             suppress_origin=True)
        except (OSError, ValueError, websocket.WebSocketException) as exc:  # ValueError: a URL it refuses
            raise ConnectFailed(f"{type(exc).__name__}: {exc}") from None
        ws.settimeout(None)  # the receiver blocks until a frame comes; the run's ack timeout decides
        self._ws = ws
        self._receiver = gevent.spawn(self._receive, ws)

    @property
    def is_open(self) -> bool:
        return self._ws is not None and not self.closing

    def send_text(self, payload: bytes) -> int:
        """The write choke point: one text frame. Returns the bytes written.

        Raises:
            OSError: the connection is gone (websocket-client's closed errors are OSError or
                WebSocketException; both are mapped here).
        """
        ws = self._ws
        if ws is None:
            raise ConnectionError("not connected")
        try:
            return int(ws.send(payload, ABNF.OPCODE_TEXT))
        except websocket.WebSocketException as exc:
            raise ConnectionError(str(exc)) from None

    def _receive(self, ws: websocket.WebSocket) -> None:
        """The receiver greenlet: every data frame to ``on_reply`` until the connection ends."""
        clock, on_reply = self._clock, self._on_reply
        try:
            while True:
                opcode, data = ws.recv_data()
                if opcode == ABNF.OPCODE_CLOSE:
                    break
                if len(data) > MAX_REPLY_BYTES:
                    break
                on_reply(data, clock())
        except (OSError, websocket.WebSocketException):
            pass  # reset, EOF or a protocol error: the connection is over either way
        finally:
            self._ws = None
            _shutdown(ws)
            self._on_closed()

    def close(self) -> None:
        """Close the connection (a close frame when possible) and stop the receiver."""
        self.closing = True
        ws, receiver = self._ws, self._receiver
        if ws is not None:
            try:
                ws.send_close()  # the receiver reads the server's close frame and ends the connection
            except (OSError, websocket.WebSocketException):
                _shutdown(ws)
        if receiver is not None and not receiver.dead:
            receiver.join(timeout=CLOSE_TIMEOUT_S)
            if not receiver.dead:
                if ws is not None:
                    _shutdown(ws)
                receiver.kill(block=True, timeout=CLOSE_TIMEOUT_S)
