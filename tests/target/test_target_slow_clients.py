"""Slow and stuck clients: a WebSocket peer that never reads its acks, slow request heads and bodies
(slowloris), the connection cap, and shutdown with a peer that reads nothing.

The stuck peer is a raw socket: it does the WebSocket handshake, then only sends, with a 4 KiB receive
buffer and no ``recv``, until the target stops reading it (its sends stall). Every loop is bounded in
count and in time (``TIMEOUT_S``); nothing sleeps to synchronise except where the test is that a limit
does *not* fire within a while.
"""

from __future__ import annotations

import base64
import os
import select
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from target_helpers import TargetFactory, ev, message, post, stats, stored_ids, ws_url
from timeouts import TIMEOUT_S
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_sync_connect

from bench.protocol.errors import UsageError
from bench.target.embedded import EmbeddedTarget
from bench.target.heads import RequestHeads, body_length
from bench.target.limits import FD_RESERVE, Limits, connection_cap

#: Events per message of the stuck peer, each with an id of about 1 KB: its acks are big, so the buffers
#: between it and the target fill after a few hundred messages.
_EVENTS = 64
_ID_PAD = "x" * 1000
#: At most this many messages are sent by the stuck peer before its sends stall.
_MAX_MESSAGES = 5000
#: The stuck peer's sends have stalled when the socket takes no byte for this long.
_STALL_S = 1.0


def _address(target: EmbeddedTarget) -> tuple[str, int]:
    parts = urlsplit(target.url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def _frame(payload: bytes) -> bytes:
    """One masked client text frame (RFC 6455, 5.2), mask 0 (the bytes are sent as they are)."""
    size = len(payload)
    if size < 126:
        head = bytes((0x81, 0x80 | size))
    elif size < 65536:
        head = bytes((0x81, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x81, 0x80 | 127)) + size.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    """The server's (unmasked) frames in ``data``: (opcode, payload); a cut-off last frame is left out."""
    frames, pos = [], 0
    while pos + 2 <= len(data):
        opcode, size = data[pos] & 0x0F, data[pos + 1] & 0x7F
        pos += 2
        if size >= 126:
            width = 2 if size == 126 else 8
            size = int.from_bytes(data[pos:pos + width], "big")
            pos += width
        if pos + size > len(data):
            break
        frames.append((opcode, data[pos:pos + size]))
        pos += size
    return frames


class StuckPeer:
    """A WebSocket client that handshakes, then sends and never reads (a 4 KiB receive buffer)."""

    def __init__(self, target: EmbeddedTarget, app_id: str) -> None:
        self.sock = sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: it sets the window
        sock.settimeout(TIMEOUT_S)
        sock.connect(_address(target))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(f"GET /app/{app_id}/track HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(1)  # byte by byte: nothing after the handshake's reply is read
            assert chunk, "the target closed during the handshake"
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 101 "), reply
        self.sent: list[str] = []  # ids of the messages sent whole, in order

    def flood(self) -> None:
        """Send until the target stops reading: no byte taken for ``_STALL_S`` (a busy target that is
        still reading takes some within that)."""
        sock = self.sock
        deadline = time.monotonic() + TIMEOUT_S
        for n in range(_MAX_MESSAGES):
            ids = [f"{n:05d}-{k:02d}-{_ID_PAD}" for k in range(_EVENTS)]
            data = memoryview(_frame(message(*(ev(eid=eid) for eid in ids))))
            while data:
                if not select.select([], [sock], [], _STALL_S)[1]:
                    return  # stalled, maybe in the middle of this message: it is not counted as sent
                data = data[sock.send(data):]
            self.sent.extend(ids)
            assert time.monotonic() < deadline, "the target kept reading a peer that reads nothing"
        raise AssertionError(f"the target kept reading a peer that reads nothing ({_MAX_MESSAGES} messages)")

    def read_to_end(self) -> bytes:
        """Everything the target sent after the handshake, up to its end of the stream."""
        self.sock.settimeout(TIMEOUT_S)
        chunks = []
        while chunk := self.sock.recv(1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def stuck_peers() -> Iterator[list[StuckPeer]]:
    """Stuck peers a test opens, closed when it ends."""
    peers: list[StuckPeer] = []
    yield peers
    for peer in peers:
        peer.close()


def _ws(target: EmbeddedTarget, app_id: str) -> ClientConnection:
    return ws_sync_connect(ws_url(target, app_id), compression=None, open_timeout=TIMEOUT_S,
                           close_timeout=TIMEOUT_S, max_size=None)


def _send_and_ack(ws: ClientConnection, *events: dict[str, Any]) -> list[Any]:
    ws.send(message(*events).decode())
    reply = orjson.loads(ws.recv(timeout=TIMEOUT_S))
    assert list(reply) == ["reportedIds"], reply
    ids: list[Any] = reply["reportedIds"]
    return ids


# ------------------------------------------------------------------------------------- stuck readers


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_a_peer_that_reads_no_acks_is_closed_with_1008_and_others_keep_their_acks(
        target_factory: TargetFactory, app_id: str, stuck_peers: list[StuckPeer], store: str,
        tmp_path: Path) -> None:
    """A peer that never reads is no longer read, then closed with 1008 and counted in ``slow_closes``;
    a well-behaved client of the same app is acked all along; every ack the stuck one got was stored."""
    t = target_factory(store="memory" if store == "memory" else str(tmp_path / "t.sqlite3"),
                       slow_peer_timeout_s=3)
    with _ws(t, app_id) as good:
        assert _send_and_ack(good, first := ev()) == [first["id"]]
        peer = StuckPeer(t, app_id)
        stuck_peers.append(peer)
        peer.flood()
        deadline = time.monotonic() + TIMEOUT_S
        while stats(t)["slow_closes"] == 0:
            assert time.monotonic() < deadline, "the stuck peer was never closed"
            event = ev()
            assert _send_and_ack(good, event) == [event["id"]]
        frames = _frames(peer.read_to_end())
        assert _send_and_ack(good, last := ev()) == [last["id"]]
    opcode, payload = frames[-1]
    assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == 1008, frames[-1][:2]
    acked = [eid for op, data in frames[:-1] if op == 0x1 for eid in orjson.loads(data)["reportedIds"]]
    assert all(op == 0x1 for op, _ in frames[:-1])
    assert acked == peer.sent[:len(acked)]  # in order, nothing acked that was not sent
    assert len(acked) < len(peer.sent)  # it was stopped with acks it never read
    assert set(acked) <= set(stored_ids(t, app_id))  # acked means stored
    assert stats(t)["slow_closes"] == 1
    assert "Traceback" not in t.stderr_text()


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_shutdown_cuts_a_peer_that_reads_nothing_and_exits_0(target_factory: TargetFactory, app_id: str,
                                                             stuck_peers: list[StuckPeer], store: str,
                                                             tmp_path: Path) -> None:
    """SIGTERM with a peer stuck on its acks: the target cuts it after ``--shutdown-timeout-s`` and exits
    0, instead of waiting on its blocked sender (the slow-peer timeout is far off, so shutdown does it)."""
    t = target_factory(store="memory" if store == "memory" else str(tmp_path / "t.sqlite3"),
                       shutdown_timeout_s=1, slow_peer_timeout_s=600)
    peer = StuckPeer(t, app_id)
    stuck_peers.append(peer)
    peer.flood()
    t.signal(signal.SIGTERM)
    assert t.wait(TIMEOUT_S) == 0
    assert "shutdown cut 1 WebSocket(s)" in t.stderr_text()


# ------------------------------------------------------------------------------------ slow requests


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the target closes ``sock`` (end of stream, or a reset) within ``seconds``."""
    readable, _, _ = select.select([sock], [], [], seconds)
    if not readable:
        return False
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def _dribble_head(sock: socket.socket, first_line: bytes) -> int:
    """Send a request head one header line every 0.2 s until the target closes; the lines sent."""
    sock.sendall(first_line)
    deadline = time.monotonic() + TIMEOUT_S
    for n in range(1000):
        try:
            sock.sendall(b"X-Slow-%d: 1\r\n" % n)
        except (BrokenPipeError, ConnectionResetError):
            return n
        if _closed_within(sock, 0.2):
            return n + 1
        assert time.monotonic() < deadline, "the target kept a head open longer than TIMEOUT_S"
    raise AssertionError("the target kept a head open for 1000 lines")


def test_a_slowloris_head_is_dropped_and_a_whole_request_is_served(target_factory: TargetFactory,
                                                                   app_id: str) -> None:
    """``--header-timeout-s``: a head sent a line at a time is cut at the timeout, on a new connection
    and on a kept-alive one; whole requests meanwhile are served, and an idle kept-alive connection
    longer than the timeout is not a slow head."""
    t = target_factory(header_timeout_s=0.5)
    with socket.create_connection(_address(t), timeout=TIMEOUT_S) as fresh:
        assert _dribble_head(fresh, b"POST /app/%b/track HTTP/1.1\r\n" % app_id.encode()) >= 1
    assert post(t, app_id, message(e := ev())).json() == {"reportedIds": [e["id"]]}
    with socket.create_connection(_address(t), timeout=TIMEOUT_S) as kept:
        body = message(e := ev())
        request = (b"POST /app/%b/track HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%b"
                   % (app_id.encode(), len(body), body))
        kept.sendall(request)
        assert kept.recv(65536).startswith(b"HTTP/1.1 200 ")
        assert not _closed_within(kept, 1.0)  # idle for twice the timeout: no head is open
        kept.sendall(request)
        assert kept.recv(65536).startswith(b"HTTP/1.1 200 ")
        assert _dribble_head(kept, b"GET /stats HTTP/1.1\r\n") >= 1
    assert stats(t)["header_timeouts"] == 2


def test_a_body_that_stops_coming_is_408_and_counted(target_factory: TargetFactory, app_id: str) -> None:
    """``--body-timeout-s``: a body still short of its Content-Length at the timeout is answered 408 with
    a one-line JSON error, and the connection closes."""
    t = target_factory(body_timeout_s=0.5)
    with socket.create_connection(_address(t), timeout=TIMEOUT_S) as sock:
        sock.sendall(b"POST /app/%b/track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"data\": [" % app_id.encode())
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), head
    assert "--body-timeout-s" in orjson.loads(body)["error"]
    assert stats(t)["body_timeouts"] == 1
    assert post(t, app_id, message(e := ev())).json() == {"reportedIds": [e["id"]]}


# ----------------------------------------------------------------------------------- connection cap


def _served(target: EmbeddedTarget, app_id: str) -> Any:
    """POST one event as soon as the target has a free slot (it frees one when it sees a close)."""
    deadline = time.monotonic() + TIMEOUT_S
    while (reply := post(target, app_id, message(ev()))).status == 503:
        assert time.monotonic() < deadline, "no connection slot came free"
        time.sleep(0.05)
    return reply


def test_over_the_cap_a_new_client_gets_503_with_a_reason(target_factory: TargetFactory, app_id: str) -> None:
    """``--max-connections 2``: with two connections open, an HTTP client and a WebSocket handshake are
    answered 503 with Retry-After and a one-line reason; once one closes, a new client is served."""
    t = target_factory(max_connections=2)
    with _ws(t, app_id) as one:
        with _ws(t, app_id) as two:
            assert _send_and_ack(two, e := ev()) == [e["id"]]
            refused = post(t, app_id, message(ev()))
            assert refused.status == 503 and refused.headers["retry-after"] == "1"
            assert refused.headers["connection"] == "close"
            assert "too many connections" in refused.json()["error"]
            with pytest.raises(InvalidStatus) as info:
                _ws(t, app_id)
            assert info.value.response.status_code == 503
            assert _send_and_ack(one, e := ev()) == [e["id"]]  # those let in are served as before
        assert _served(t, app_id).status == 200
    assert stats(t)["refused_connections"] >= 2


# ------------------------------------------------------------------------------------------ units


def test_the_cap_is_the_flag_under_the_open_file_limit() -> None:
    """0 takes what the open-file limit leaves after the reserve; a flag above that is lowered to it."""
    assert connection_cap(0, 20_000) == 20_000 - FD_RESERVE
    assert connection_cap(500, 20_000) == 500
    assert connection_cap(50_000, 20_000) == 20_000 - FD_RESERVE
    assert connection_cap(0, 10) == 1


@pytest.mark.parametrize(("field", "value"), [
    ("max_connections", -1), ("header_timeout_s", -1.0), ("body_timeout_s", float("nan")),
    ("max_unsent_acks", 0), ("slow_peer_timeout_s", 0.0),
])
def test_bad_limits_are_usage_errors_naming_the_flag(field: str, value: float) -> None:
    """Each new limit is checked, and the error names its flag."""
    fields: dict[str, Any] = {field: value}
    with pytest.raises(UsageError, match="--" + field.replace("_", "-")):
        Limits(**fields)


_POST = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
_GET = b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n"


def _open_after_each_byte(data: bytes) -> list[bool]:
    heads = RequestHeads()
    return [heads.feed(data[i:i + 1]) for i in range(len(data))]


def test_a_head_is_open_from_its_first_byte_to_its_empty_line() -> None:
    """Fed byte by byte, a head is open from its first byte until its empty line; its body is skipped."""
    head_size = _POST.index(b"\r\n\r\n") + 4
    assert _open_after_each_byte(_POST) == [True] * (head_size - 1) + [False] * (len(_POST) - head_size + 1)
    assert _open_after_each_byte(_GET * 2) == ([True] * (len(_GET) - 1) + [False]) * 2


@pytest.mark.parametrize("pieces", [
    [_POST + _GET], [_POST, _GET], [_POST[:30], _POST[30:] + _GET[:5], _GET[5:]], [b"\r\n" + _GET],
    [_GET.replace(b"\r\n", b"\n")],
])
def test_whole_requests_leave_no_head_open_however_they_are_cut(pieces: list[bytes]) -> None:
    """Pipelined, split across pieces, after a stray empty line or with bare LFs: no head stays open."""
    heads = RequestHeads()
    results = [heads.feed(piece) for piece in pieces]
    assert results[-1] is False and heads.following


@pytest.mark.parametrize(("head", "length"), [
    (b"POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n", 12),
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0),
    (b"POST / HTTP/1.1\r\ncontent-length:  7 \r\n\r\n", 7),
    (b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", None),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", None),
    (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", None),
])
def test_body_length_reads_content_length_and_gives_up_where_it_cannot_tell(head: bytes,
                                                                            length: int | None) -> None:
    """Content-Length, case-insensitive; None for an upgrade, a chunked body or a length that is no number."""
    assert body_length(head) == length


def test_after_an_upgrade_the_frames_are_not_taken_for_heads() -> None:
    """A WebSocket handshake ends the following: the frames after it never open a head."""
    heads = RequestHeads()
    assert heads.feed(b"GET /app/a/track HTTP/1.1\r\nUpgrade: websocket\r\n\r\n\x81\x05hello") is False
    assert not heads.following
    assert heads.feed(b"\x81\x7e\x01\x00" + b"x" * 256) is False
