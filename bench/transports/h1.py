"""A lean sans-I/O HTTP/1.1 client core: request bytes out, response events in (RFC 9112).

Theory of operation: the HTTP transport posts the same request (one method, one target, one header set)
again and again over keep-alive connections, so the request side is a template (``RequestTemplate``)
whose head is built once; only ``Content-Length`` changes per request. The response side is
``ResponseParser``: bytes in (``feed``, ``feed_eof``), complete ``Response`` values out, no sockets, no
clock, no event loop. It takes what a server may send to a POST:

- a status line ``HTTP/1.x NNN reason`` (the reason may be empty or missing, RFC 9112, 4);
- header fields, obsolete line folding replaced by a space (RFC 9112, 5.2), lines ending in CRLF or a
  bare LF (RFC 9112, 2.2 allows recognising a bare LF);
- a body delimited as RFC 9112, 6.3 orders it: none for 1xx, 204 and 304; chunked when
  Transfer-Encoding ends in ``chunked`` (chunk extensions and trailers read and dropped, 7.1); by
  Content-Length; else by the end of the connection;
- interim 1xx responses (other than 101) are skipped (RFC 9110, 15.2: a client must parse them).

Anything else (a broken status line or header, a bad or conflicting Content-Length, a head or body over
its cap, a connection that ends mid-response, an upgrade nobody asked for) raises ``MalformedResponse``:
the peer broke the contract, the transport counts it and drops the connection, since the stream can no
longer be framed. The parser never needs the whole response in one piece: tests feed it whole, byte by
byte, and with trailing data.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from bench import __version__
from bench.protocol.errors import ProtocolError, UsageError

#: Largest response head (status line + fields) accepted.
MAX_HEAD_BYTES = 64 << 10
#: Largest response body accepted (acks are small; a runaway body is malformed, as WS's 1009).
MAX_BODY_BYTES = 16 << 20
#: Longest chunk-size line (with extensions) accepted.
MAX_CHUNK_LINE = 4096

#: The end of a head: an empty line, CRLF or bare LF (RFC 9112, 2.2).
_HEAD_END = re.compile(rb"\r?\n\r?\n")
#: Status line: HTTP-version SP 3DIGIT [SP reason] (RFC 9112, 4; lenient on the reason).
_STATUS_LINE = re.compile(rb"HTTP/1\.([0-9]) ([0-9]{3})(?: [^\r\n]*)?\r?\n")
#: A field name is a token (RFC 9110, 5.1).
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: A whole field line starting a line: token ":" value, no stray CR (the fast path: when every line of a
#: head matches, a folded or broken line is not there and the fields come from one C scan).
_FIELD = re.compile(rb"^([!#$%&'*+.^_`|~0-9A-Za-z-]+):([^\r\n]*)\r?\n", re.MULTILINE)
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r?")
_DIGITS = re.compile(rb"[0-9]{1,15}")
_EOL = (13, 10)  # CR, LF

#: Body framing of a response (RFC 9112, 6.3).
_NONE, _LENGTH, _CHUNKED, _TO_EOF = 0, 1, 2, 3


class MalformedResponse(ProtocolError):
    """A server's bytes are not an HTTP/1.1 response this client can frame (RFC 9112)."""


@dataclass(frozen=True, slots=True)
class Response:
    """One complete final response.

    Attributes:
        status: the status code, 100-599.
        headers: the fields in order, names lower-cased, values stripped of surrounding whitespace.
        body: the body, de-chunked.
        keep_alive: whether the connection may carry the next request (RFC 9112, 9.3).
    """

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    keep_alive: bool

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 599:
            raise MalformedResponse(f"HTTP status {self.status} is out of range")

    def header(self, name: bytes) -> bytes | None:
        """The value of the last field named ``name`` (lower case), or None."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value
        return found


#: A parsed head: (status, fields, body framing, body length, keep-alive).
_Head = tuple[int, tuple[tuple[bytes, bytes], ...], int, int, bool]


def _split_fields(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    """Header lines to (lower-case name, value); obsolete folding joins with a space (RFC 9112, 5.2)."""
    fields: list[tuple[bytes, bytes]] = []
    for raw in lines:
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if line[:1] in (b" ", b"\t"):
            if not fields:
                raise MalformedResponse("HTTP response: a folded line before any header field")
            name, value = fields[-1]
            fields[-1] = (name, (value + b" " + line.strip(b" \t")).strip(b" \t"))
            continue
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):  # also no space before the colon (RFC 9112, 5.1)
            raise MalformedResponse(f"HTTP response: bad header line {line[:80]!r}")
        fields.append((name.lower(), value.strip(b" \t")))
    return fields


def _content_length(values: list[bytes]) -> int:
    """One Content-Length from its fields; equal repeats are fine, anything else is not (RFC 9112, 6.3)."""
    found: set[bytes] = set()
    for value in values:
        found.update(v.strip(b" \t") for v in value.split(b","))
    if len(found) != 1:
        raise MalformedResponse(f"HTTP response: conflicting Content-Length {sorted(found)!r}")
    text = found.pop()
    if not _DIGITS.fullmatch(text):
        raise MalformedResponse(f"HTTP response: bad Content-Length {text[:40]!r}")
    length = int(text)
    if length > MAX_BODY_BYTES:
        raise MalformedResponse(f"HTTP response: Content-Length {length} is over {MAX_BODY_BYTES}")
    return length


def _framing(status: int, fields: list[tuple[bytes, bytes]]) -> tuple[int, int, bytes]:
    """One pass over the fields: (framing, length, Connection options), in the order of RFC 9112, 6.3."""
    lengths: list[bytes] = []
    codings: list[bytes] = []
    connection = b""
    for name, value in fields:
        if name == b"content-length":
            lengths.append(value)
        elif name == b"transfer-encoding":
            codings.append(value)
        elif name == b"connection":
            connection = connection + b"," + value if connection else value
    if status < 200 or status in (204, 304):
        return _NONE, 0, connection
    if codings:  # Transfer-Encoding overrides Content-Length
        last = b",".join(codings).split(b",")[-1].strip(b" \t").lower()
        return (_CHUNKED if last == b"chunked" else _TO_EOF), 0, connection
    if not lengths:
        return _TO_EOF, 0, connection
    text = lengths[0]
    if len(lengths) == 1 and text.isdigit() and len(text) < 10:  # the usual case, without the set
        length = int(text)
        if length > MAX_BODY_BYTES:
            raise MalformedResponse(f"HTTP response: Content-Length {length} is over {MAX_BODY_BYTES}")
    else:
        length = _content_length(lengths)
    return (_LENGTH if length else _NONE), length, connection


def parse_head(head: bytes) -> _Head:
    """Parse a response head: the status line and the field lines, each with its line ending.

    Returns:
        (status, fields with lower-case names, body framing, body length, keep-alive).

    Raises:
        MalformedResponse: the status line or a field is broken, or the framing is contradictory.
    """
    match = _STATUS_LINE.match(head)
    if match is None:
        first = head.split(b"\n", 1)[0]
        raise MalformedResponse(f"HTTP response: bad status line {first[:80]!r}")
    minor, status = int(match[1]), int(match[2])
    if status < 100:
        raise MalformedResponse(f"HTTP response: status {status} is out of range")
    if status == 101:
        raise MalformedResponse("HTTP response: 101 Switching Protocols to a request that asked for none")
    at = match.end()
    found = _FIELD.findall(head, at)
    if len(found) == head.count(b"\n", at):
        fields = [(name.lower(), value.strip(b" \t")) for name, value in found]
    else:  # folded lines, or a broken one (which raises)
        fields = _split_fields(head[at:].split(b"\n")[:-1])
    framing, length, connection = _framing(status, fields)
    keep = minor >= 1  # RFC 9112, 9.3: 1.1 persists unless "close"; 1.0 only with "keep-alive"
    if connection:
        options = {t.strip(b" \t") for t in connection.lower().split(b",")}
        keep = b"close" not in options and (keep or b"keep-alive" in options)
    return status, tuple(fields), framing, length, keep and framing != _TO_EOF


class ResponseParser:
    """Bytes in, complete responses out, for one connection (no pipelining needed, but it is handled).

    ``feed`` returns every response the bytes completed (interim 1xx responses left out) and keeps the
    rest for the next call; ``feed_eof`` ends the stream. Once either has raised, the parser is broken
    and raises again: the connection must be dropped.
    """

    __slots__ = ("_broken", "_buf", "_chunks", "_got", "_head", "_last_head", "_last_raw", "_need", "_state")

    def __init__(self) -> None:
        self._buf = b""
        self._head: _Head | None = None
        self._chunks: list[bytes] = []
        self._need = 0  # bytes of the current chunk's data still to come
        self._got = 0  # bytes of chunk data so far in this response (capped)
        self._state = _S_HEAD
        self._broken: MalformedResponse | None = None
        self._last_raw = b""  # the latest head's bytes and what they parsed to
        self._last_head: _Head = (0, (), _NONE, 0, False)

    @property
    def idle(self) -> bool:
        """True between responses with nothing buffered."""
        return self._state == _S_HEAD and not self._buf

    def feed(self, data: bytes) -> list[Response]:
        """Take bytes from the peer; return the responses they complete.

        Raises:
            MalformedResponse: the bytes break RFC 9112 or a cap (and every later call raises too).
        """
        if self._broken is not None:
            raise self._broken
        buf = self._buf + data if self._buf else data
        out: list[Response] = []
        try:
            while buf:
                step = _STEPS[self._state](self, buf, out)
                if step < 0:
                    break
                buf = buf[step:]
        except MalformedResponse as exc:
            self._broken = exc
            raise
        self._buf = buf
        return out

    def feed_eof(self) -> list[Response]:
        """The peer ended the stream: finish a body delimited by the close, else fail mid-response.

        Raises:
            MalformedResponse: the stream ended inside a response.
        """
        if self._broken is not None:
            raise self._broken
        head = self._head
        if self._state == _S_EOF_BODY and head is not None:
            body, self._buf, self._head, self._state = self._buf, b"", None, _S_HEAD
            return [Response(head[0], head[1], body, False)]
        if self.idle:
            return []
        self._broken = MalformedResponse("HTTP response: the connection ended inside a response")
        raise self._broken

    # -- steps: each takes the buffer, consumes a prefix and returns its length, or -1 for "need more" --
    def _step_head(self, buf: bytes, out: list[Response]) -> int:
        if buf[0] in _EOL:  # empty lines before a status line are skipped (robustness, RFC 9112, 2.2)
            return len(buf) - len(buf.lstrip(b"\r\n"))
        at = buf.find(b"\r\n\r\n")  # a memchr scan; the regex only when a bare LF is about
        if at >= 0 and buf.count(b"\n", 0, at) == buf.count(b"\r\n", 0, at):
            cut, consumed = at + 2, at + 4
        else:
            end = _HEAD_END.search(buf)
            if end is None:
                if len(buf) > MAX_HEAD_BYTES:
                    raise MalformedResponse(f"HTTP response: head over {MAX_HEAD_BYTES} bytes")
                return -1
            cut, consumed = buf.index(b"\n", end.start()) + 1, end.end()
        raw = buf[:cut]
        if raw == self._last_raw:  # a server repeats its head (until its Date changes): parsed once
            head = self._last_head
        else:
            head = self._last_head = parse_head(raw)
            self._last_raw = raw
        status, fields, framing, _, keep_alive = head
        if framing == _NONE:
            if status >= 200:
                out.append(Response(status, fields, b"", keep_alive))
            return consumed
        self._head = head
        self._state = _FRAMING_STATE[framing]
        return consumed

    def _step_length_body(self, buf: bytes, out: list[Response]) -> int:
        head = self._head
        assert head is not None
        status, fields, _framing, length, keep_alive = head
        if len(buf) < length:
            return -1
        out.append(Response(status, fields, buf[:length], keep_alive))
        self._head, self._state = None, _S_HEAD
        return length

    def _step_eof_body(self, buf: bytes, out: list[Response]) -> int:
        if len(buf) > MAX_BODY_BYTES:
            raise MalformedResponse(f"HTTP response: body over {MAX_BODY_BYTES} bytes")
        return -1  # everything up to the close is the body (feed_eof takes it)

    def _step_chunk_size(self, buf: bytes, out: list[Response]) -> int:
        eol = buf.find(b"\n")
        if eol < 0:
            if len(buf) > MAX_CHUNK_LINE:
                raise MalformedResponse("HTTP response: chunk-size line too long")
            return -1
        match = _CHUNK_SIZE.fullmatch(buf, 0, eol)
        if match is None:
            raise MalformedResponse(f"HTTP response: bad chunk-size line {buf[:min(eol, 80)]!r}")
        size = int(match[1], 16)
        self._got += size
        if self._got > MAX_BODY_BYTES:
            raise MalformedResponse(f"HTTP response: body over {MAX_BODY_BYTES} bytes")
        self._need = size
        self._state = _S_CHUNK_DATA if size else _S_TRAILER
        return eol + 1

    def _step_chunk_data(self, buf: bytes, out: list[Response]) -> int:
        need = self._need
        if need:
            take = buf[:need]
            self._chunks.append(take)
            self._need = need - len(take)
            return len(take)
        # the CRLF after the chunk's data
        if buf[:1] == b"\n":
            self._state = _S_CHUNK_SIZE
            return 1
        if len(buf) < 2:
            return -1 if buf == b"\r" else self._bad_chunk_end(buf)
        if buf[:2] != b"\r\n":
            return self._bad_chunk_end(buf)
        self._state = _S_CHUNK_SIZE
        return 2

    @staticmethod
    def _bad_chunk_end(buf: bytes) -> int:
        raise MalformedResponse(f"HTTP response: chunk data not followed by CRLF: {buf[:20]!r}")

    def _step_trailer(self, buf: bytes, out: list[Response]) -> int:
        """Trailer fields after the last chunk, read and dropped, then the empty line (RFC 9112, 7.1.2)."""
        eol = buf.find(b"\n")
        if eol < 0:
            if len(buf) > MAX_HEAD_BYTES:
                raise MalformedResponse(f"HTTP response: trailer over {MAX_HEAD_BYTES} bytes")
            return -1
        if eol == 0 or (eol == 1 and buf[0:1] == b"\r"):
            head = self._head
            assert head is not None
            body, self._chunks, self._got = b"".join(self._chunks), [], 0
            out.append(Response(head[0], head[1], body, head[4]))
            self._head, self._state = None, _S_HEAD
            return eol + 1
        _split_fields([buf[:eol]])  # validated, then dropped
        return eol + 1


_S_HEAD, _S_LENGTH_BODY, _S_EOF_BODY, _S_CHUNK_SIZE, _S_CHUNK_DATA, _S_TRAILER = range(6)
#: Table dispatch of the parser's states.
_STEPS: dict[int, Callable[[ResponseParser, bytes, list[Response]], int]] = {
    _S_HEAD: ResponseParser._step_head,
    _S_LENGTH_BODY: ResponseParser._step_length_body,
    _S_EOF_BODY: ResponseParser._step_eof_body,
    _S_CHUNK_SIZE: ResponseParser._step_chunk_size,
    _S_CHUNK_DATA: ResponseParser._step_chunk_data,
    _S_TRAILER: ResponseParser._step_trailer,
}
#: The state that reads a body of each framing.
_FRAMING_STATE = {_LENGTH: _S_LENGTH_BODY, _CHUNKED: _S_CHUNK_SIZE, _TO_EOF: _S_EOF_BODY}

#: Sent with every request: a JSON body, replies parsed as they come (a compressed ack would be malformed).
USER_AGENT = f"nucleus-bench/{__version__}"


@dataclass(frozen=True, slots=True)
class RequestTemplate:
    """The bytes of one POST to a fixed URL, built once; only Content-Length varies (RFC 9112, 3 and 6.2).

    Attributes:
        host: the host to connect to (no brackets for IPv6).
        port: the TCP port.
        secure: https (TLS).
        prefix: request line and every field but Content-Length, ending in ``Content-Length: ``.
    """

    host: str
    port: int
    secure: bool
    prefix: bytes

    @classmethod
    def post(cls, url: str, content_type: str = "application/json") -> RequestTemplate:
        """The template of a POST to ``url``.

        Raises:
            UsageError: not an http:// or https:// URL with a host and a valid port.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"target: {url!r} is not an http:// or https:// URL")
        try:
            port = parts.port
        except ValueError:
            raise UsageError(f"target: {url!r} has a bad port") from None
        secure = parts.scheme == "https"
        host = parts.hostname
        authority = f"[{host}]" if ":" in host else host
        if port is not None and port != (443 if secure else 80):
            authority += f":{port}"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = (f"POST {target} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: {content_type}\r\n"
                f"Accept-Encoding: identity\r\nAccept: */*\r\nUser-Agent: {USER_AGENT}\r\nContent-Length: ")
        return cls(host, port if port is not None else (443 if secure else 80), secure, head.encode("ascii"))

    def encode(self, body: bytes) -> bytes:
        """The whole request: head and body, ready for one write."""
        return b"%b%d\r\n\r\n%b" % (self.prefix, len(body), body)

    def head_len(self, body_len: int) -> int:
        """Bytes of the request line and fields for a body of ``body_len`` bytes."""
        return len(self.prefix) + len(str(body_len)) + 4


__all__ = [
    "MAX_BODY_BYTES",
    "MAX_HEAD_BYTES",
    "USER_AGENT",
    "MalformedResponse",
    "RequestTemplate",
    "Response",
    "ResponseParser",
    "parse_head",
]
