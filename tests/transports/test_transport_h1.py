"""The sans-I/O HTTP/1.1 client core: every response fed whole, byte by byte, and with trailing data."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.protocol.errors import ProtocolError, UsageError
from bench.transports.h1 import (
    MAX_BODY_BYTES,
    MAX_HEAD_BYTES,
    USER_AGENT,
    MalformedResponse,
    RequestTemplate,
    Response,
    ResponseParser,
    parse_head,
)

ACK = b'{"reportedIds":[1,2]}'
PLAIN = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 21\r\n\r\n" + ACK
CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;ext=1\r\n" + ACK[:5] + b"\r\n" + b"10\r\n" + ACK[5:] + b"\r\n0\r\nX-Trailer: t\r\n\r\n")
BARE_LF = b"HTTP/1.1 200 OK\nContent-Length: 21\n\n" + ACK


def feed_all(chunks: list[bytes]) -> list[Response]:
    parser = ResponseParser()
    out: list[Response] = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    return out


def ways(data: bytes) -> list[list[bytes]]:
    """The same bytes whole, byte by byte, and in two uneven halves."""
    return [[data], [data[i:i + 1] for i in range(len(data))], [data[:7], data[7:]]]


@pytest.mark.parametrize("data", [PLAIN, CHUNKED, BARE_LF], ids=["length", "chunked", "bare-lf"])
def test_a_response_parses_the_same_however_it_is_cut(data: bytes) -> None:
    """Whole, byte by byte or split anywhere: one response with the ack body, keep-alive."""
    for chunks in ways(data):
        (reply,) = feed_all(chunks)
        assert (reply.status, reply.body, reply.keep_alive) == (200, ACK, True)


@pytest.mark.parametrize("data", [PLAIN, CHUNKED, BARE_LF], ids=["length", "chunked", "bare-lf"])
def test_trailing_data_stays_for_the_next_response(data: bytes) -> None:
    """Two responses in one read come out as two; a partial third waits for its rest."""
    parser = ResponseParser()
    first = parser.feed(data + data + data[:10])
    assert [r.body for r in first] == [ACK, ACK] and not parser.idle
    assert [r.body for r in parser.feed(data[10:])] == [ACK] and parser.idle


def test_fields_are_lower_cased_stripped_and_unfolded() -> None:
    """Names lower case, values without surrounding space, obsolete folding joined by a space."""
    reply, = feed_all([b"HTTP/1.1 429 Too Many Requests\r\nRetry-After:  3 \r\nX-Long: a\r\n  b\r\n"
                       b"Content-Length: 0\r\n\r\n"])
    assert reply.status == 429 and reply.body == b""
    assert reply.header(b"retry-after") == b"3" and reply.header(b"x-long") == b"a b"
    assert reply.header(b"missing") is None


def test_interim_responses_are_skipped() -> None:
    """A 100 Continue before the final response is parsed and dropped (RFC 9110, 15.2)."""
    (reply,) = feed_all([b"HTTP/1.1 100 Continue\r\n\r\n" + PLAIN])
    assert reply.status == 200 and reply.body == ACK


def test_bodyless_statuses_and_leading_empty_lines() -> None:
    """204 and 304 have no body even with a length; stray empty lines before a status line are skipped."""
    replies = feed_all([b"\r\nHTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nHTTP/1.1 304 X\r\n\r\n"])
    assert [(r.status, r.body) for r in replies] == [(204, b""), (304, b"")]


@pytest.mark.parametrize(("head", "keep"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", True),
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", False),
    (b"HTTP/1.1 200 OK\r\nConnection: Upgrade, Close\r\nContent-Length: 0\r\n\r\n", False),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", False),
    (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", True),
])
def test_keep_alive_follows_the_version_and_connection_field(head: bytes, keep: bool) -> None:
    """HTTP/1.1 persists unless "close"; HTTP/1.0 only with "keep-alive" (RFC 9112, 9.3)."""
    (reply,) = feed_all([head])
    assert reply.keep_alive is keep


def test_a_body_without_length_ends_with_the_connection() -> None:
    """No Content-Length, no chunking: the body runs to the close, and the connection is not reused."""
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 200 OK\r\n\r\n" + ACK[:4]) == []
    assert parser.feed(ACK[4:]) == []
    (reply,) = parser.feed_eof()
    assert reply.body == ACK and reply.keep_alive is False


def test_transfer_encoding_overrides_content_length() -> None:
    """Both fields: the chunked coding frames the body (RFC 9112, 6.3)."""
    data = CHUNKED.replace(b"Transfer-Encoding", b"Content-Length: 3\r\nTransfer-Encoding")
    (reply,) = feed_all([data])
    assert reply.body == ACK


def test_an_idle_close_is_no_response_and_a_cut_one_is_malformed() -> None:
    """EOF between responses yields nothing; EOF inside one raises, and so does every later call."""
    assert ResponseParser().feed_eof() == []
    parser = ResponseParser()
    parser.feed(PLAIN[:-3])
    with pytest.raises(MalformedResponse, match="ended inside"):
        parser.feed_eof()
    with pytest.raises(MalformedResponse):
        parser.feed(b"more")


@pytest.mark.parametrize(("data", "what"), [
    (b"HTTX/1.1 200 OK\r\n\r\n", "status line"),
    (b"HTTP/1.1 20 OK\r\n\r\n", "status line"),
    (b"HTTP/1.1 099 Low\r\n\r\n", "out of range"),
    (b"HTTP/1.1 600 High\r\nContent-Length: 0\r\n\r\n", "out of range"),
    (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "101"),
    (b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "header line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\n", "header line"),
    (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "header line"),
    (b"HTTP/1.1 200 OK\r\n folded first\r\n\r\n", "folded"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "conflicting"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1), "over"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk-size"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX", "CRLF"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n", "header line"),
])
def test_broken_responses_raise_one_clear_error(data: bytes, what: str) -> None:
    """Each way of breaking RFC 9112 raises MalformedResponse (a ProtocolError) naming what broke."""
    for chunks in ways(data):
        with pytest.raises(MalformedResponse, match=what) as caught:
            feed_all(chunks)
        assert isinstance(caught.value, ProtocolError)
        assert "\n" not in str(caught.value)


def test_oversized_heads_and_chunk_lines_are_refused() -> None:
    """A head that never ends, or a chunk line that never ends, stops at its cap."""
    with pytest.raises(MalformedResponse, match="head over"):
        ResponseParser().feed(b"HTTP/1.1 200 OK\r\nX: " + b"a" * MAX_HEAD_BYTES)
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(MalformedResponse, match="chunk-size line"):
        parser.feed(b"1" * 5000)


def test_parse_head_returns_status_fields_framing_and_keep_alive() -> None:
    """The head alone: status, lower-case fields, a Content-Length framing with its length."""
    status, fields, _framing, length, keep = parse_head(b"HTTP/1.1 201 Created\r\nContent-Length: 7\r\n")
    assert (status, fields, length, keep) == (201, ((b"content-length", b"7"),), 7, True)


_responses = st.lists(st.tuples(st.sampled_from([200, 400, 429, 500]), st.binary(max_size=40),
                                st.booleans()), min_size=1, max_size=4)


@given(_responses, st.lists(st.integers(min_value=0, max_value=400), max_size=6))
def test_any_split_of_a_stream_gives_the_same_responses(
        replies: list[tuple[int, bytes, bool]], cuts: list[int]) -> None:
    """Length-framed and chunked responses back to back, cut anywhere: the same responses come out."""
    stream = b""
    for status, body, chunked in replies:
        if chunked:
            stream += b"HTTP/1.1 %d X\r\nTransfer-Encoding: chunked\r\n\r\n" % status
            stream += b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7])
                               for i in range(0, len(body), 7)) + b"0\r\n\r\n"
        else:
            stream += b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)
    points = sorted({min(c, len(stream)) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    got = feed_all(chunks)
    assert [(r.status, r.body) for r in got] == [(s, b) for s, b, _ in replies]


def test_the_request_template_writes_head_and_body_in_one_piece() -> None:
    """Request line, Host, fixed fields, the body's Content-Length, then the body (RFC 9112, 3)."""
    tpl = RequestTemplate.post("http://127.0.0.1:8000/app/abc/track?x=1")
    data = tpl.encode(b"{}")
    assert data == (b"POST /app/abc/track?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
                    b"Content-Type: application/json\r\nAccept-Encoding: identity\r\nAccept: */*\r\n"
                    b"User-Agent: " + USER_AGENT.encode()
                    + b"\r\nContent-Length: 2\r\n\r\n{}")
    assert tpl.head_len(2) == len(data) - 2 and tpl.head_len(10) == tpl.head_len(2) + 1
    assert (tpl.host, tpl.port, tpl.secure) == ("127.0.0.1", 8000, False)


@pytest.mark.parametrize(("url", "host", "port", "authority"), [
    ("https://example.com/t", "example.com", 443, b"example.com"),
    ("http://example.com:80/t", "example.com", 80, b"example.com"),
    ("http://[::1]:9000/t", "::1", 9000, b"[::1]:9000"),
    ("https://user:pw@h:8443", "h", 8443, b"h:8443"),
])
def test_the_template_connects_where_the_url_says(url: str, host: str, port: int, authority: bytes) -> None:
    """Default ports by scheme; IPv6 bracketed in Host only; user info never sent."""
    tpl = RequestTemplate.post(url)
    assert (tpl.host, tpl.port) == (host, port)
    assert b"\r\nHost: " + authority + b"\r\n" in tpl.prefix


@pytest.mark.parametrize("url", ["ftp://x/app/a/track", "http:///path", "http://h:99999/t"])
def test_a_bad_url_is_a_usage_error(url: str) -> None:
    """What cannot be posted to is the user's error, in one line."""
    with pytest.raises(UsageError, match="target"):
        RequestTemplate.post(url)
