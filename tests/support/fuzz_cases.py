"""The fuzzer's inputs: valid messages built with ``bench.protocol``, then mutated; seeded, sans-I/O.

``Generator(seed, ...).case(index)`` is a pure function of (seed, index): input 4711 of seed 3 is the same
input in every run, so a finding is replayed with ``--seed 3 --only 4711``. Each input starts from valid
events made by the product's own event classes (``Init``, ``Track``, ``Error``... and ``to_obj()``) and then
goes through one family of mutations:

- ``events``: fields of every event type set to values of the wrong type, out of range, huge, empty,
  unicode edge cases (NUL, lone surrogates escaped, non-characters), nested up to and past the store's
  254 levels and orjson's 1,024, JSON orjson cannot write (NaN, 2**64, ``-0``, duplicate keys), deleted;
- ``envelope``: no ``data``, ``data`` of another type, a document that is not an object, extra keys;
- ``bytes``: the serialized message truncated, a byte inserted or replaced, invalid UTF-8 (overlong forms,
  encoded surrogates, stray continuation bytes), raw control characters, a byte order mark, trailing text;
- ``size`` and ``count``: exactly at, and one past, the byte and events-per-message caps;
- ``resend``: an earlier input's valid events again (duplicates: acked again, stored once);
- ``path``: appIds the contract refuses (HTTP 404, WebSocket handshake refused);
- ``pipeline``: 2-6 such messages at once, on one WebSocket or as concurrent HTTP requests (duplicates
  that arrive while the first write is still pending);
- WebSocket forms: text, binary and fragmented frames, and raw frames the client library would not send
  (reserved bits, unknown opcodes, unmasked, fragmented control frames, bad close frames, huge lengths);
- HTTP forms: gzip, deflate, brotli, corrupt and unknown ``Content-Encoding``; raw requests with chunked,
  truncated or contradictory bodies.

Every input carries what the contract allows as its reply (``Expect``, from ``fuzz_oracle`` for message
bodies, stated here for transport-level violations).
"""

from __future__ import annotations

import gzip
import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

import orjson
from fuzz_oracle import ACK, MALFORMED, TOO_BIG, Expect, expect_message, only

from bench.protocol.events import Error, Event, Extra, Heartbeat, Init, Props, Track, UserId, View

Transport = Literal["ws", "http"]

#: Reply classes beyond the oracle's ack / malformed / too_big.
PROTOCOL: Final = "protocol"        # WebSocket close 1002
NOT_FOUND: Final = "not_found"      # HTTP 404, WebSocket handshake answered 404
CLOSED: Final = "closed"            # the client's own close frame, echoed
BAD_REQUEST: Final = "bad_request"  # HTTP 400 from the server's request parser (no JSON body needed)
EOF: Final = "eof"                  # the connection ends without a reply (only where the client ended it)


@dataclass(frozen=True, slots=True)
class Raw:
    """JSON text spliced into a message as it is: what orjson will not write (NaN, 2**64, deep nesting)."""

    text: bytes


@dataclass(frozen=True, slots=True)
class Frame:
    """One WebSocket frame as the raw client writes it (RFC 6455 5.2)."""

    opcode: int
    payload: bytes
    fin: bool = True
    rsv: int = 0
    masked: bool = True
    length: int | None = None  # a declared payload length other than the real one
    minimal: bool = True       # False: the 16-bit length form for a payload under 126 bytes


@dataclass(frozen=True, slots=True)
class Case:
    """One fuzz input: where it goes, what it is, how it is sent and what the contract allows back."""

    index: int
    transport: Transport
    family: str
    path: str
    app: str | None  # the appId acks count against; None when the path names no valid appId
    body: bytes  # the message as the contract reads it
    expect: Expect
    send: str  # ws: text | binary | fragments | frames; http: post | raw
    chunks: tuple[bytes, ...] = ()
    frames: tuple[Frame, ...] = ()
    close_code: int | None = None  # the code of a raw close frame the target should echo
    headers: tuple[tuple[str, str], ...] = ()
    wire: bytes = b""  # http post: the body as sent (encoded); raw: the whole request
    half_close: bool = False
    bytewise: bool = False
    batch: tuple[tuple[bytes, Expect], ...] = ()  # pipeline: messages sent at once, each with its answer

    def describe(self, limit: int = 300) -> str:
        shown = self.wire if self.send == "raw" else self.body
        text = repr(shown[:limit]) + (f"... ({len(shown)} bytes)" if len(shown) > limit else "")
        how = self.send + (f" {dict(self.headers)}" if self.headers else "")
        return f"#{self.index} {self.transport} {self.family} {how} {self.path}: {text}"


# --------------------------------------------------------------------------------------- value pools

_DEEP_LEVELS = (2, 50, 200, 252, 253, 254, 255, 256, 300, 1000, 1019, 1020, 1021, 1022, 1030, 5000)


def deep(levels: int, shape: str = "[") -> Raw:
    """``levels`` nested arrays (or objects) around a 0: past 254 orjson cannot write it back."""
    if shape == "[":
        return Raw(b"[" * levels + b"0" + b"]" * levels)
    return Raw(b'{"a":' * levels + b"0" + b"}" * levels)


_SCALARS: tuple[Any, ...] = (
    None, True, False, 0, 1, -1, 7, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), 2**64 - 1,
    1.5, -1.5, 0.0, 1e308, 5e-324, 1700000000000.5,
    "", " ", "x", "0", "1", "-5", "0001", "12345678", "1" * 20, "1" * 21, "1" * 400, "\u0663", "NaN", "null",
    "true", "\u0000", "a\u0000b", "\u00e9", "\U0001f600", "\u202e", "\ufeff", "\uffff", "\U0010ffff", "\x7f",
    "2026-12-06T10:00:00Z", "2026-12-06T10:00:00.123+05:30", "2026-12-06", "2026-13-45T99:00", "yesterday",
    "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "2026-W49-7", "20261206T100000Z",
    [], [1, "a", None], {}, {"a": 1}, {"stack": "Error: x\n    at y (z.js:1:2)\n" * 50, "message": "boom"},
    {"": None, "\u0000": [], "\U0001f600": {"k": "v"}},
)
_RAWS: tuple[bytes, ...] = (
    b"-0", b"-0.0", b"1E2", b"1e-400", b"1e400", b"-1e400", b"NaN", b"Infinity", b"-Infinity",
    b"18446744073709551616", b"-9223372036854775809", b"1" * 30, b"9" * 5000, b"0.1e1",
    b'"\\ud800"', b'"\\udc00"', b'"a\\ud800b"', b'"\\ud83d\\ude00"', b'"\\u0000"', b'"\\/"', b'"\\u00e9"',
    b"01", b"+1", b".5", b"1.", b"0x10", b"tru", b"nul", b"'x'", b'"unterminated', b"[1,]", b"{,}",
    b'"\t"', b'"\x01"', b'"\xff"', b'"\xc0\xaf"', b'"\xed\xa0\x80"', b'"\xe2\x82"', b'"\xf4\x90\x80\x80"',
    b'"\\x41"', b'"\\u12"', b"[1 2]", b'{"a" 1}', b"{'a':1}", b"true false",
)
_SIZES = (0, 1, 255, 4096, 65535, 65536, 200_000)
_TYPES = ("init", "event", "error", "userid", "props", "heartbeat", "nucleus:view", "Event", "EVENT", "",
          " event", "nucleus:View", "view", "track")
_FIELDS = ("type", "name", "sessionId", "date", "id", "userId", "anonId", "deviceId", "machineId", "payload",
           "platform", "osVersion", "totalRam", "version", "language", "locale", "arch", "client",
           "moduleVersion", "__proto__", "extraKey")
_CLASSES: tuple[type[Event], ...] = (Init, Track, Track, Track, Error, UserId, Props, View)
_DEVICES = ("dev-1", "dev-2", "a1b2c3d4e5f6", "d\u00e9vice-\U0001f600", "x" * 200)


def _value(rng: random.Random, field: str) -> Any:
    """A value for ``field``: of any JSON type, unwritable by orjson, huge, or deep."""
    roll = rng.random()
    if roll < 0.45:
        return rng.choice(_SCALARS)
    if roll < 0.65:
        return Raw(rng.choice(_RAWS))
    if roll < 0.75:
        return deep(rng.choice(_DEEP_LEVELS), rng.choice("[{"))
    if roll < 0.85:
        return rng.choice("x\u00e9\U0001f600\u0000") * rng.choice(_SIZES)
    if field == "type":
        return rng.choice(_TYPES)
    return {"nested": rng.choice(_SCALARS), "list": [rng.choice(_SCALARS) for _ in range(rng.randint(0, 4))]}


# ------------------------------------------------------------------------------------------ building


def _event(rng: random.Random, eid: int | str) -> dict[str, Any]:
    """A valid event, built with the product's event classes (every type a client sends)."""
    cls = rng.choice(_CLASSES)
    if rng.random() < 0.05:
        cls = Heartbeat
    extra = None
    if cls.HAS_EXTRA:
        extra = Extra(platform=rng.choice(("linux", "darwin", "win32")), os_version="6.1",
                      total_ram=rng.choice((16, 8.5)), version="1.0.0",
                      language="en-US" if rng.random() < 0.5 else None,
                      locale=None if rng.random() < 0.5 else "fr-FR", arch=rng.choice((None, "x64", 64)))
    name = rng.choice(("click", "open", "Save file", "\u00e9v\u00e9nement", "a" * 100))
    event = cls(device_id=rng.choice(_DEVICES), session_id=None if cls is Heartbeat else rng.choice(
                    (1000, 4242, 12_345_678)),
                id=None if cls is Heartbeat else eid,
                name=name if cls.REQUIRES_NAME or rng.random() < 0.3 else None,
                date=rng.choice((None, 1_796_000_000_000 + rng.randint(0, 10**9), "2026-12-06T10:00:00Z")),
                user_id=rng.choice((None, "user@example.com")),
                payload=rng.choice((None, {"plan": "pro"}, {"stack": "at x\n" * 20, "message": "boom"})),
                extra=extra, device_key="machineId" if rng.random() < 0.15 else "deviceId")
    return event.to_obj()


def _ids(index: int, count: int, rng: random.Random) -> list[int | str]:
    """Ids unique to this input: integers (as every official module sends) or strings."""
    base = 1_000_000 + index * 64
    return [base + k if rng.random() < 0.7 else f"fz-{index}-{k}" for k in range(count)]


class _Render:
    """Objects with ``Raw`` leaves to JSON bytes: ``Raw`` text replaces a placeholder string."""

    def __init__(self) -> None:
        self.raws: list[bytes] = []

    def swap(self, value: Any) -> Any:
        if isinstance(value, Raw):
            self.raws.append(value.text)
            return f"@@raw{len(self.raws) - 1}@@"
        if isinstance(value, dict):
            return {k: self.swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.swap(v) for v in value]
        return value

    def dumps(self, value: Any) -> bytes:
        out = orjson.dumps(self.swap(value))
        for n, raw in enumerate(self.raws):
            out = out.replace(b'"@@raw%d@@"' % n, raw, 1)
        self.raws.clear()
        return out


def render_event(obj: dict[str, Any], splices: list[bytes]) -> bytes:
    """One event's JSON, with raw ``"key":value`` pairs (duplicate keys) spliced in first."""
    text = _Render().dumps(obj)
    if not splices:
        return text
    inner = b",".join(splices)
    return b"{" + inner + (b"," + text[1:] if text != b"{}" else b"}")


def envelope(events: list[bytes]) -> bytes:
    return b'{"data":[' + b",".join(events) + b"]}"


# ------------------------------------------------------------------------------------------- families


def _mutate_event(rng: random.Random, obj: dict[str, Any], splices: list[bytes]) -> str:
    """One mutation of one event in place; its label."""
    field = rng.choice(_FIELDS)
    roll = rng.random()
    if roll < 0.15:
        obj.pop(field, None)
        return f"-{field}"
    if roll < 0.25:
        value = _value(rng, field)
        raw = value.text if isinstance(value, Raw) else _Render().dumps(value)
        splices.append(b'"%s":%s' % (field.encode(), raw))
        return f"dup {field}"
    value = _value(rng, field)
    obj[field] = value
    shown = value.text[:24] if isinstance(value, Raw) else repr(value)[:24]
    return f"{field}={shown!s}"


def events_body(rng: random.Random, index: int) -> tuple[bytes, str]:
    """1-6 valid events, 1-3 of them mutated field by field."""
    count = rng.randint(1, 6)
    objs = [_event(rng, eid) for eid in _ids(index, count, rng)]
    splices: list[list[bytes]] = [[] for _ in objs]
    labels = []
    for _ in range(rng.randint(1, 3)):
        k = rng.randrange(count)
        labels.append(_mutate_event(rng, objs[k], splices[k]))
    return envelope([render_event(o, s) for o, s in zip(objs, splices, strict=True)]), ", ".join(labels)


def valid_body(rng: random.Random, index: int) -> bytes:
    objs = [_event(rng, eid) for eid in _ids(index, rng.randint(1, 6), rng)]
    return envelope([render_event(o, []) for o in objs])


_ENVELOPES: tuple[tuple[str, Callable[[bytes], bytes]], ...] = (
    ("no data", lambda d: b'{"events":' + d + b"}"),
    ("data null", lambda d: b'{"data":null}'),
    ("data object", lambda d: b'{"data":{"0":' + d + b"}}"),
    ("data string", lambda d: b'{"data":"' + d.replace(b'"', b"'") + b'"}'),
    ("data number", lambda d: b'{"data":1}'),
    ("Data", lambda d: b'{"Data":' + d + b"}"),
    ("array doc", lambda d: d),
    ("string doc", lambda d: b'"{\\"data\\":[]}"'),
    ("null doc", lambda d: b"null"),
    ("empty", lambda d: b""),
    ("blank", lambda d: b" \n\t "),
    ("empty object", lambda d: b"{}"),
    ("extra keys", lambda d: b'{"v":1,"data":' + d + b',"meta":{"x":[1,2,{"y":null}]}}'),
    ("duplicate data", lambda d: b'{"data":[],"data":' + d + b"}"),
    ("data of arrays", lambda d: b'{"data":[' + d + b"," + d + b"]}"),
    ("deep sibling", lambda d: b'{"data":' + d + b',"x":' + deep(1030).text + b"}"),
    ("deep sibling 1019", lambda d: b'{"data":' + d + b',"x":' + deep(1022).text + b"}"),
    ("data empty", lambda d: b'{"data":[]}'),
    ("whitespace", lambda d: b' \r\n{ "data" : ' + d.replace(b",", b" ,\n ") + b" } \n"),
)


def envelope_body(rng: random.Random, index: int) -> tuple[bytes, str]:
    data = valid_body(rng, index)[len(b'{"data":'):-1]
    name, build = rng.choice(_ENVELOPES)
    return build(data), name


_INSERTS = (b"\x00", b"\xff", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b'"', b"\\", b"{", b"]",
            b",", b" ", b"\n", b"\x1f", b"\xef\xbb\xbf")


def bytes_body(rng: random.Random, index: int) -> tuple[bytes, str]:
    body = valid_body(rng, index)
    at = rng.randrange(1, len(body))
    roll = rng.randrange(9)
    if roll == 0:
        return body[:at], f"truncated at {at}"
    if roll == 1:
        ins = rng.choice(_INSERTS)
        return body[:at] + ins + body[at:], f"inserted {ins!r} at {at}"
    if roll == 2:
        byte = bytes([rng.randrange(256)])
        return body[:at] + byte + body[at + 1:], f"byte {at} = {byte!r}"
    if roll == 3:  # inside a string value: after the first quote of "deviceId"'s value
        spot = body.find(b'Id":"') + 5
        bad = rng.choice((b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\x00", b"\x1f", b"\t"))
        return body[:spot] + bad + body[spot:], f"in a string {bad!r}"
    if roll == 4:
        return b"\xef\xbb\xbf" + body, "byte order mark"
    if roll == 5:
        return body + rng.choice((b"x", b"}", b"{}", b",", body)), "trailing text"
    if roll == 6:
        around = rng.choice((b" ", b"\n", b"\r\n\t "))
        return around + body + around[::-1], "whitespace around"
    if roll == 7:
        return body.decode().encode(rng.choice(("utf-16", "utf-16-le", "utf-32"))), "UTF-16/32"
    return body.replace(b'"', b"'", 1), "single quote"


def size_body(rng: random.Random, index: int, max_bytes: int) -> tuple[bytes, str]:
    """A message exactly ``max_bytes`` long (padded in a payload string), or a few bytes past it."""
    over = rng.choice((0, 0, 1, 2, -1, max_bytes))
    obj = _event(rng, _ids(index, 1, rng)[0])
    obj["payload"] = {"pad": ""}
    head = envelope([render_event(obj, [])])
    pad = max(0, max_bytes + over - len(head))
    obj["payload"] = {"pad": "x" * pad}
    return envelope([render_event(obj, [])]), f"{over:+d} bytes from the cap"


def count_body(rng: random.Random, index: int, max_events: int) -> tuple[bytes, str]:
    """``max_events`` items (one a valid event), or one more than that."""
    over = rng.choice((0, 1))
    obj = _event(rng, _ids(index, 1, rng)[0])
    filler = rng.choice((b"0", b"{}", b'{"type":"heartbeat","machineId":"m"}'))
    items = [filler] * (max_events - 1 + over) + [render_event(obj, [])]
    return envelope(items), f"{max_events + over} items"


# ------------------------------------------------------------------------------------ WebSocket forms


def _split(rng: random.Random, body: bytes, parts: int) -> tuple[bytes, ...]:
    if len(body) < 2:
        return (body,)
    cuts = sorted(rng.sample(range(1, len(body)), min(parts - 1, len(body) - 1)))
    return tuple(body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True))


def _close(code: int, reason: bytes = b"") -> bytes:
    return struct.pack(">H", code) + reason


def raw_frames(rng: random.Random, body: bytes,
               expect: Expect) -> tuple[str, tuple[Frame, ...], Expect, int | None]:
    """A frame sequence the library would not send; (name, frames, what may come back, code to echo)."""
    protocol = only(PROTOCOL)
    half = max(1, len(body) // 2)
    roll = rng.randrange(20)
    table: list[tuple[str, tuple[Frame, ...], Expect, int | None]] = [
        ("unmasked", (Frame(1, body, masked=False),), expect.union(protocol), None),
        ("rsv1", (Frame(1, body, rsv=4),), protocol, None),
        ("rsv3", (Frame(2, body, rsv=1),), protocol, None),
        ("opcode 3", (Frame(3, body),), protocol, None),
        ("opcode 11", (Frame(11, b"x"),), protocol, None),
        ("orphan continuation", (Frame(0, body),), protocol, None),
        ("fragmented ping", (Frame(9, b"x", fin=False),), protocol, None),
        ("ping of 126 bytes", (Frame(9, b"p" * 126),), protocol, None),
        # aiohttp tracks a fragmented message by its buffered bytes: after an empty first fragment it takes
        # the next text frame as a new message (RFC 6455 5.4: 1002). aiohttp's leniency, not the target's.
        ("text inside a fragmented message", (Frame(1, body[:half], fin=False), Frame(1, body)),
         protocol if body[:half] else protocol.union(expect), None),
        ("declared length 2**40", (Frame(1, b"abcd", length=1 << 40),), only(TOO_BIG).union(protocol), None),
        ("fragments with a ping", (Frame(1, body[:half], fin=False), Frame(9, b"hi"), Frame(0, body[half:])),
         expect, None),
        ("empty fragments", (Frame(2, b"", fin=False), Frame(0, body, fin=False), Frame(0, b"")), expect,
         None),
        ("non-minimal length", (Frame(1, body, minimal=False),), expect.union(protocol), None),
        ("unsolicited pong", (Frame(10, b"x"), Frame(1, body)), expect, None),
        ("byte by byte", (Frame(1, body),), expect, None),
        ("close 1-byte payload", (Frame(8, b"\x03"),), protocol, None),
        ("close bad UTF-8 reason", (Frame(8, _close(1000, b"\xff\xfe")),), only(MALFORMED), None),
    ]
    if roll < len(table):
        return table[roll]
    if roll == len(table):
        code = rng.choice((0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535))
        return f"close code {code}", (Frame(8, _close(code)),), protocol, None
    if rng.random() < 0.2:  # no code at all: answered 1000 (RFC 6455 7.1.5: "no status code", 1005)
        return "close without a code", (Frame(8, b""),), only(CLOSED), 1000
    code = rng.choice((1000, 1001, 1003, 1007, 1011, 1014, 3000, 4999))
    return f"close {code}", (Frame(8, _close(code, "bye \u00e9".encode())),), only(CLOSED), code


# ----------------------------------------------------------------------------------------- HTTP forms


def _encodings(rng: random.Random, body: bytes, expect: Expect, max_bytes: int) -> tuple[str, bytes, Expect]:
    """(Content-Encoding, encoded body, what may come back).

    A body that cannot be decoded is a 400: the target's own (``{"error": "unreadable body: ..."}``) when its
    handler reads it, or aiohttp's plain one when its parser meets the error first (a small body arrives
    with the headers, and the end of a bad deflate stream is found while parsing). ``BAD_REQUEST`` allows
    both.
    """
    undecodable = only(BAD_REQUEST)
    roll = rng.randrange(10)
    if roll == 0:
        return "gzip", gzip.compress(body), expect
    if roll == 1:
        return "deflate", zlib.compress(body), expect
    if roll == 2:
        return "deflate", zlib.compress(body)[2:-4], expect  # raw deflate, as some clients send it
    if roll == 3 and _brotli is not None:
        return "br", _brotli(body), expect
    if roll == 4:
        packed = gzip.compress(body)
        if rng.random() < 0.5:  # cut in the compressed data: what is left is not the message
            return "gzip", packed[:len(packed) // 2], undecodable
        # cut in the trailer (CRC and size): the data is whole; a decoder may check the CRC, or not
        return "gzip", packed[:-6], expect.union(undecodable)
    if roll == 5:
        return rng.choice(("gzip", "deflate", "br")), body, undecodable  # declared, not done
    if roll == 6:
        return "identity", body, expect
    if roll == 7:  # RFC 9110 8.4: a server may refuse a coding it does not know (415), or read as is
        return rng.choice(("x-bogus", "compress", "gzip;q=1", "*")), body, expect.union(undecodable)
    if roll == 8:
        bomb = b'{"data":[],"pad":"' + b"a" * (2 * max_bytes) + b'"}'  # small on the wire, too big decoded
        return "gzip", gzip.compress(bomb, 9), only(TOO_BIG)
    return "gzip", gzip.compress(gzip.compress(body)), only(MALFORMED)  # gzip inside gzip: JSON it is not


#: Raw requests carry bodies up to this size. A request the server's parser refuses is answered and the
#: socket closed at once: with much of a body still unread, the kernel resets the connection and the client
#: may lose the 400 (aiohttp does no lingering close there), which tells nothing about the contract.
_RAW_HTTP_BYTES = 65536


def raw_request(rng: random.Random, path: str, body: bytes, expect: Expect,
                max_bytes: int) -> tuple[str, bytes, Expect, bool]:
    """A hand-written request: (name, bytes, what may come back, half-close after writing)."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n".encode()
    end = b"Connection: close\r\n\r\n"

    def chunked(parts: tuple[bytes, ...]) -> bytes:
        return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p) + b"0\r\n\r\n"

    bad = only(BAD_REQUEST)
    chunked_head = head + b"Transfer-Encoding: chunked\r\n" + end
    length = b"Content-Length: %d\r\n" % len(body)
    utf8_path = head.replace(path.encode(), "/app/\u00e9/track".encode())
    declared = len(body) + 100
    cut_short = only(MALFORMED).union(only(EOF)).union(only(TOO_BIG) if declared > max_bytes else only(EOF))
    table: list[tuple[str, bytes, Expect, bool]] = [
        ("chunked", chunked_head + chunked(_split(rng, body, 4)), expect, False),
        ("chunk size not hex", chunked_head + b"zz\r\nabc\r\n0\r\n\r\n", bad, False),
        ("chunk longer than its size", chunked_head + b"3\r\nabcXX\r\n0\r\n\r\n", bad, False),
        ("Content-Length and chunked", head + length + chunked_head[len(head):] + chunked((body,)), bad,
         False),
        ("two Content-Lengths", head + length + b"Content-Length: %d\r\n" % (len(body) + 1) + end + body, bad,
         False),
        ("Content-Length not a number", head + b"Content-Length: abc\r\n" + end + body, bad, False),
        ("Content-Length 10**12", head + b"Content-Length: 1000000000000\r\n" + end + body[:10],
         only(TOO_BIG), False),
        ("body cut short", head + b"Content-Length: %d\r\n" % declared + end + body, cut_short, True),
        ("Expect: 100-continue", head + length + b"Expect: 100-continue\r\n" + end + body, expect, False),
        ("HTTP/1.0", head.replace(b"HTTP/1.1", b"HTTP/1.0") + length + b"\r\n" + body, expect, False),
        ("raw UTF-8 in the path", utf8_path + length + end + body, bad, False),
    ]
    return rng.choice(table)


def _load_brotli() -> Callable[[bytes], bytes] | None:
    """brotli's compressor where it is installed (geventhttpclient, a dependency of Locust, brings it)."""
    try:
        import brotli  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None
    compress: Callable[[bytes], bytes] = brotli.compress
    return compress


_brotli = _load_brotli()


# --------------------------------------------------------------------------------------------- paths

#: appIds the contract refuses (contract.md, "Endpoints": 1-64 of [A-Za-z0-9_-]), as they go in a path.
BAD_APPS = ("a" * 65, "a.b", "a%20b", "%C3%A9", "a%2Fb", "a%00b", "~x", "a+b", "a@b", "%2e%2e", "x%0Ay",
            "a:b", "%F0%9F%98%80")
#: WebSocket paths (contract.md, "Endpoints"); HTTP has the first only.
WS_PATHS = ("/app/{app}/track", "/{app}/", "/{app}")


def apps_for(seed: int) -> tuple[str, ...]:
    """The appIds of a run: three like real ones (24 hex characters) and the contract's edge cases."""
    rng = random.Random(f"apps/{seed}")
    real = tuple("".join(rng.choice("0123456789abcdef") for _ in range(24)) for _ in range(3))
    return (*real, "a", "Z-_9", "x" * 64, "app", "stats", "track")


class Generator:
    """Input ``index`` of ``seed``: a pure function of both (see the module docstring)."""

    def __init__(self, seed: int, *, max_bytes: int, max_events: int) -> None:
        self.seed = seed
        self.max_bytes = max_bytes
        self.max_events = max_events
        self.apps = apps_for(seed)

    def expect(self, body: bytes) -> Expect:
        return expect_message(body, max_bytes=self.max_bytes, max_events=self.max_events)

    def body(self, rng: random.Random, index: int) -> tuple[bytes, str]:
        roll = rng.random()
        if roll < 0.50:
            body, label = events_body(rng, index)
            return body, f"events: {label}"
        if roll < 0.60:
            body, label = envelope_body(rng, index)
            return body, f"envelope: {label}"
        if roll < 0.75:
            body, label = bytes_body(rng, index)
            return body, f"bytes: {label}"
        if roll < 0.78:
            body, label = size_body(rng, index, self.max_bytes)
            return body, f"size: {label}"
        if roll < 0.80:
            body, label = count_body(rng, index, self.max_events)
            return body, f"count: {label}"
        if roll < 0.88:
            earlier = self._last_valid(index)
            if earlier is not None:
                return self.canonical(earlier), f"resend of #{earlier}"
        return self.canonical(index), "valid"

    def canonical(self, index: int) -> bytes:
        """The valid message input ``index`` sends when its family is "valid" (and a resend sends again)."""
        return valid_body(random.Random(f"{self.seed}/{index}/valid"), index)

    def _last_valid(self, index: int) -> int | None:
        """The latest of the 50 inputs before ``index`` that sent its canonical message."""
        for earlier in range(index - 1, max(-1, index - 51), -1):
            rng = random.Random(f"{self.seed}/{earlier}")
            rng.random()  # its transport
            if rng.random() >= 0.88:
                return earlier
        return None

    def case(self, index: int) -> Case:
        rng = random.Random(f"{self.seed}/{index}")
        transport: Transport = "ws" if rng.random() < 0.5 else "http"
        body, family = self.body(rng, index)
        expect = self.expect(body)
        app: str | None = rng.choice(self.apps)
        bad_path = rng.random() < 0.04
        name = rng.choice(BAD_APPS) if bad_path else app
        if bad_path:
            app, expect = None, only(NOT_FOUND)
        template = rng.choice(WS_PATHS) if transport == "ws" else WS_PATHS[0]
        path = template.format(app=name)
        case = Case(index, transport, family + (" (bad appId)" if bad_path else ""), path, app, body, expect,
                    "text")
        if not bad_path and rng.random() < 0.06:
            return self._pipeline(rng, case)
        return self._ws(rng, case) if transport == "ws" else self._http(rng, case, bad_path)

    def _pipeline(self, rng: random.Random, case: Case) -> Case:
        """2-6 messages at once (one WebSocket, back to back; or concurrent HTTP requests): the same valid
        message again (duplicates that arrive while the first write is pending), recent ones, mutated and
        broken ones. Each reply is judged against its own message; a WebSocket answers in message order and
        nothing after the message that closed it."""
        batch = []
        earlier = self._last_valid(case.index)
        for _ in range(rng.randint(2, 6)):
            roll = rng.random()
            if roll < 0.4:
                body = self.canonical(case.index)
            elif roll < 0.6 and earlier is not None:
                body = self.canonical(earlier)
            elif roll < 0.9:
                body = events_body(rng, case.index)[0]
            else:
                body = bytes_body(rng, case.index)[0]
            batch.append((body, self.expect(body)))
        return replace(case, family=f"pipeline of {len(batch)}", send="pipeline", batch=tuple(batch),
                       headers=(("Content-Type", "application/json"),))

    def _ws(self, rng: random.Random, case: Case) -> Case:
        roll = rng.random()
        if roll < 0.55:
            return case
        if roll < 0.70:
            return replace(case, send="binary")
        if roll < 0.85:
            return replace(case, send="fragments", chunks=_split(rng, case.body, rng.randint(2, 6)))
        if case.app is None:
            return case
        name, frames, expect, code = raw_frames(rng, case.body, case.expect)
        if sum(len(f.payload) for f in frames if f.opcode in (0, 1, 2)) > self.max_bytes:
            expect = expect.union(only(TOO_BIG))  # which of two broken rules a server sees first is its own
        return replace(case, family=f"{case.family} | frames: {name}", send="frames", frames=frames,
                       expect=expect, close_code=code, bytewise=name == "byte by byte")

    def _http(self, rng: random.Random, case: Case, bad_path: bool) -> Case:
        roll = rng.random()
        headers = (("Content-Type", "application/json"),)
        if roll < 0.75 or bad_path:
            return replace(case, send="post", wire=case.body, headers=headers)
        if roll < 0.90:
            coding, wire, expect = _encodings(rng, case.body, case.expect, self.max_bytes)
            if len(wire) > self.max_bytes:  # refused on its Content-Length, before any decoding
                expect = expect.union(only(TOO_BIG))
            return replace(case, family=f"{case.family} | Content-Encoding: {coding}", send="post", wire=wire,
                           headers=(*headers, ("Content-Encoding", coding)), expect=expect)
        if len(case.body) > _RAW_HTTP_BYTES:
            return replace(case, send="post", wire=case.body, headers=headers)
        name, wire, expect, half = raw_request(rng, case.path, case.body, case.expect, self.max_bytes)
        return replace(case, family=f"{case.family} | raw: {name}", send="raw", wire=wire, expect=expect,
                       half_close=half)


__all__ = ["ACK", "BAD_REQUEST", "CLOSED", "EOF", "MALFORMED", "NOT_FOUND", "PROTOCOL", "TOO_BIG", "Case",
           "Frame", "Generator", "Transport"]
