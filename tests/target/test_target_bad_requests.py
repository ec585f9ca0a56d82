"""Malformed HTTP requests get a clear answer and one counted line on standard error, never a traceback."""

from __future__ import annotations

import gzip
import socket
from urllib.parse import urlsplit

import pytest
from target_helpers import TargetFactory, ev, message, request, stats
from timeouts import TIMEOUT_S

from bench.target.embedded import EmbeddedTarget


def _post_encoded(t: EmbeddedTarget, app_id: str, encoding: str, body: bytes) -> int:
    reply = request(t, "POST", f"/app/{app_id}/track", body,
                    {"Content-Type": "application/json", "Content-Encoding": encoding})
    assert reply.json()["error"].startswith("unreadable body: "), reply.body
    return reply.status


def _raw(t: EmbeddedTarget, data: bytes) -> bytes:
    """Send raw bytes on a fresh connection; the status line of the reply."""
    parts = urlsplit(t.url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=TIMEOUT_S) as s:
        s.sendall(data)
        reply = b""
        while b"\r\n" not in reply:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.split(b"\r\n", 1)[0]


@pytest.mark.parametrize(("encoding", "body"), [("br", b"\x00garbage"), ("gzip", b"not gzip at all"),
                                                ("deflate", b"\xff\xfe"),
                                                ("gzip", gzip.compress(message(ev()))[:-12] + b"x" * 12)],
                         ids=["br", "gzip", "deflate", "gzip-corrupt"])
def test_an_undecodable_body_is_400_with_one_line(target_factory: TargetFactory, app_id: str, encoding: str,
                                                  body: bytes) -> None:
    """A body whose Content-Encoding cannot be decoded: 400 with a JSON error, counted as malformed, one
    line on standard error (not a 500 and two tracebacks); the target goes on serving."""
    t = target_factory()
    assert _post_encoded(t, app_id, encoding, body) == 400
    assert stats(t, app_id)["malformed_messages"] == 1
    lines = t.stderr_text().splitlines()
    assert len(lines) == 1 and "unreadable body" in lines[0], lines
    ok = request(t, "POST", f"/app/{app_id}/track", gzip.compress(message(ev(eid=5))),
                 {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert ok.json() == {"reportedIds": [5]}


def test_requests_the_parser_refuses_are_one_counted_line_each(target_factory: TargetFactory) -> None:
    """A bad chunk size, a bad chunk end or a bad Content-Length: aiohttp's 400, one line each on standard
    error, counted in ``GET /stats`` as bad_requests; no traceback."""
    t = target_factory()
    head = b"POST /app/abc/track HTTP/1.1\r\nHost: x\r\n"
    bad = [head + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
           head + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcXX\r\n0\r\n\r\n",
           head + b"Content-Length: abc\r\n\r\n{}"]
    assert [_raw(t, data).split(b" ")[1] for data in bad] == [b"400"] * 3
    assert stats(t)["bad_requests"] == 3
    lines = t.stderr_text().splitlines()
    assert len(lines) == 3 and all(line.startswith("nucleus-bench target: ") for line in lines), lines
