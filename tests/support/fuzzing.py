"""A bounded, seeded fuzzer of the reference target over both transports, checked after every input.

Usage, from the repository root with the project's interpreter (``make fuzz`` runs a longer one)::

    .venv/bin/python tests/support/fuzzing.py --inputs 20000 --seconds 120 --seed 1
    .venv/bin/python tests/support/fuzzing.py --seed 1 --only 4711     # replay one input

The script starts its own target (``EmbeddedTarget``, a real child process on a free loopback port, a
SQLite store in a temporary directory); ``tests/target/test_target_fuzz.py`` runs a short fuzz against the
target of the ``target_factory`` fixture. Inputs come from ``fuzz_cases.Generator`` (a pure function of
seed and index); each goes to the target over a real socket, one at a time, and after each:

- the target process is alive (``/proc/<pid>/stat``);
- the reply is one the contract allows for that input (``fuzz_oracle``): an ack that carries every id it
  must and none it may not, WebSocket 1007/1008 (malformed), 1009 (too big), 1002 (a frame RFC 6455
  forbids), a refused handshake (404), HTTP 400/404/413, or 429 with ``Retry-After``. Anything else
  (1006, 1011, 500, silence) is a finding.

Every ``check_every`` inputs, a burst of concurrent requests from a loopback address of its own meets the
target's per-IP rate limit (each reply an ack or 429). Then, and at the end: every id ever acked to an app
is in its ``stored-ids`` (contract.md, "Acknowledgements": an ack means stored durably), and the target's
standard error holds only its own one-line messages (no traceback, no store error). At the end, each app's
``acked`` counter equals the ids the fuzzer received. A finding prints the input (truncated) and the reply.
The one allowance beyond the contract is a connection reset (``judge``): a client still sending an
oversized WebSocket message may lose the target's 1009 and the acks before it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from fuzz_cases import BAD_REQUEST, CLOSED, EOF, NOT_FOUND, PROTOCOL, Case, Frame, Generator
from fuzz_oracle import ACK, MALFORMED, TOO_BIG, IdKey, id_key, only
from timeouts import TIMEOUT_S
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.protocol import State
from websockets.utils import apply_mask
from yarl import URL

from bench.protocol.message import DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS
from bench.target.embedded import EmbeddedTarget

RATE_LIMITED = "rate_limited"
OTHER = "other"
UNANSWERED = "unanswered"  # a pipelined message after the one that closed its WebSocket
#: WebSocket close codes (RFC 6455 7.4.1) and what contract.md means by them.
_WS_CLOSES = {1007: MALFORMED, 1008: MALFORMED, 1009: TOO_BIG, 1002: PROTOCOL}
#: The target's own stderr lines start so; anything else (a traceback) is a finding, as is a store error.
_OWN_LINE = "nucleus-bench target: "
_BAD_LINES = ("store error", "Unhandled exception", "Traceback")
_MAX_FINDINGS = 20
#: Loopback source addresses the fuzz inputs' HTTP requests take in turn (see ``Transports``).
LANES = 8
#: The rate limit of the fuzzed target (``--http-rate``, ``--http-burst``) and the burst that meets it: each
#: lane sends well under the rate, a burst is six bucketfuls at once.
FUZZ_HTTP_RATE = 50
FUZZ_HTTP_BURST = 10
FUZZ_BURST_REQUESTS = 60
FUZZ_TARGET_FLAGS = ("--http-rate", str(FUZZ_HTTP_RATE), "--http-burst", str(FUZZ_HTTP_BURST))
#: A WebSocket message this large may still be in flight when the target refuses it (see ``judge``).
_RESET_RACE_BYTES = 65536


@dataclass(slots=True)
class Reply:
    """What came back for one input: ``code`` as counted ("ack", "1007", "413", "hs-404", "eof"...) and
    ``outcome``, its class in the contract's terms."""

    code: str
    outcome: str
    ids: tuple[Any, ...] = ()
    detail: str = ""

    def describe(self) -> str:
        ids = f" reportedIds={list(self.ids)[:10]!r}" if self.outcome == ACK else ""
        return f"{self.code} ({self.outcome}){ids}{': ' + self.detail[:300] if self.detail else ''}"


def parse_ack(data: bytes | str) -> tuple[Any, ...]:
    """``{"reportedIds": [...]}`` exactly (contract.md), each id a string or an integer. Raises ValueError."""
    doc = json.loads(data)
    if type(doc) is not dict or list(doc) != ["reportedIds"] or type(doc["reportedIds"]) is not list:
        raise ValueError(f"not exactly {{'reportedIds': [...]}}: {str(data)[:200]}")
    ids = doc["reportedIds"]
    if any(type(i) is not int and type(i) is not str for i in ids):
        raise ValueError(f"an id is neither a string nor an integer: {ids[:10]!r}")
    return tuple(ids)


def judge(case: Case, reply: Reply) -> str | None:
    """Why ``reply`` breaks the contract for ``case``; None when it does not."""
    expect = case.expect
    allowed = set(expect.outcomes)
    if case.transport == "http" and NOT_FOUND not in allowed:
        allowed.add(RATE_LIMITED)  # contract.md, "Limits": any request may meet the rate limit
    if BAD_REQUEST in allowed:
        allowed.add(MALFORMED)  # the target's own 400 is as good as its parser's
    if case.transport == "ws" and TOO_BIG in allowed and len(case.body) > _RESET_RACE_BYTES:
        # aiohttp refuses an oversized message as soon as it sees the size, sends 1009 and closes the socket
        # with the rest of the message unread: the kernel then resets the connection, and a client still
        # sending may lose the close frame (1006). A limit of aiohttp's close, not of the contract's answer.
        allowed.add(EOF)
    if reply.outcome not in allowed:
        why = f" ({expect.why})" if expect.why else ""
        return f"got {reply.describe()}; the contract allows {', '.join(sorted(allowed))}{why}"
    if reply.outcome == CLOSED and reply.code != str(case.close_code):
        return f"the close code {case.close_code} came back as {reply.code}"
    if reply.outcome != ACK:
        return None
    keys = {id_key(i) for i in reply.ids}
    missing = expect.must - keys
    if missing:
        shown = sorted(map(str, missing))[:5]
        return f"the ack lacks {len(missing)} valid event id(s) {shown}: {reply.describe()}"
    if expect.may is not None:
        extra = {k for k in keys if k not in expect.may}
        if extra:
            shown = sorted(map(str, extra))[:5]
            return f"the ack holds id(s) the contract refuses {shown}: {reply.describe()}"
    return None


# ------------------------------------------------------------------------------------------ transports


def encode_frame(frame: Frame) -> bytes:
    """RFC 6455 5.2, written by hand: any opcode, reserved bits, unmasked, non-minimal or false lengths."""
    head = (0x80 if frame.fin else 0) | (frame.rsv << 4) | frame.opcode
    size = frame.length if frame.length is not None else len(frame.payload)
    mask_bit = 0x80 if frame.masked else 0
    if size < 126 and frame.minimal:
        out = bytes([head, mask_bit | size])
    elif size < 65536:
        out = bytes([head, mask_bit | 126]) + struct.pack(">H", size)
    else:
        out = bytes([head, mask_bit | 127]) + struct.pack(">Q", size)
    if not frame.masked:
        return out + frame.payload
    key = os.urandom(4)
    return out + key + apply_mask(frame.payload, key)


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readexactly(2)
    size = head[1] & 0x7F
    if size == 126:
        size = struct.unpack(">H", await reader.readexactly(2))[0]
    elif size == 127:
        size = struct.unpack(">Q", await reader.readexactly(8))[0]
    return head[0] & 0x0F, await reader.readexactly(size)


def _ws_data_reply(data: bytes | str) -> Reply:
    try:
        return Reply(ACK, ACK, parse_ack(data))
    except ValueError as exc:
        return Reply("bad ack", OTHER, detail=str(exc))


def _ws_close_reply(code: int | None, expected_echo: int | None = None) -> Reply:
    if code is None:
        return Reply(EOF, EOF, detail="closed without a close frame (1006)")
    outcome = CLOSED if code == expected_echo else _WS_CLOSES.get(code, OTHER)
    return Reply(str(code), outcome)


class Transports:
    """The fuzzer's clients: the websockets library, aiohttp, and raw sockets for what they refuse.

    HTTP goes out from ``LANES`` loopback addresses in turn (127.0.0.1, .2, ...), so the target's per-IP rate
    limit meets the fuzz inputs ``LANES`` times more slowly; a burst has an address of its own.
    """

    def __init__(self, base_url: str, timeout_s: float) -> None:
        self.base = base_url
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.ws_base = "ws" + base_url[len("http"):]
        self.timeout_s = timeout_s
        self.pool: dict[str, ClientConnection] = {}
        self.sessions = [self.session_from(lane) for lane in range(LANES)]
        self.session = self.sessions[0]

    def local_addr(self, lane: int) -> tuple[str, int] | None:
        """The source address of ``lane``: 127.0.0.(lane + 1) for a target on 127.0.0.1 (Linux routes all
        of 127/8 to loopback), else the system's choice."""
        return (f"127.0.0.{lane + 1}", 0) if self.host == "127.0.0.1" and lane > 0 else None

    def session_from(self, lane: int) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=0, local_addr=self.local_addr(lane))
        return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout_s))

    async def send(self, case: Case) -> Reply:
        if case.transport == "http":
            return await (self.raw_http(case) if case.send == "raw" else self.post(case))
        return await (self.raw_ws(case) if case.send == "frames" else self.ws(case))

    async def send_batch(self, case: Case) -> list[tuple[Case, Reply]]:
        """A pipeline: its messages at once; each as a case of its own, with its reply."""
        cases = [replace(case, body=body, wire=body, expect=expect, send="text" if case.transport == "ws"
                         else "post", batch=()) for body, expect in case.batch]
        if case.transport == "ws" and any(len(body) > _RESET_RACE_BYTES for body, _ in case.batch):
            # the reset race of ``judge``: every reply before the big message's 1009 may be lost with it
            cases = [replace(c, expect=c.expect.union(only(EOF))) for c in cases]
        if case.transport == "http":
            replies = await asyncio.gather(*(self.post(c) for c in cases))
        else:
            replies = await self.ws_pipeline(case.path, [c.body for c in cases])
        return list(zip(cases, replies, strict=True))

    async def ws_pipeline(self, path: str, bodies: list[bytes]) -> list[Reply]:
        conn = await self._connection(path)
        if isinstance(conn, Reply):
            return [conn] * len(bodies)
        replies: list[Reply] = []
        try:
            for body in bodies:
                await conn.send(body, text=True)
        except ConnectionClosed:
            pass  # closed by an earlier message of the batch: its reply says so
        for _ in bodies:
            try:
                replies.append(_ws_data_reply(await conn.recv(decode=False)))
            except ConnectionClosed as exc:
                self.pool.pop(self.ws_base + path, None)
                replies.append(_ws_close_reply(exc.rcvd.code if exc.rcvd is not None else None))
                break
        # After a close frame nothing more may come; after a reset, anything sent may have been lost with it.
        rest = replies[-1] if replies and replies[-1].outcome == EOF else Reply(UNANSWERED, UNANSWERED)
        return replies + [rest] * (len(bodies) - len(replies))

    async def close_websockets(self) -> None:
        for conn in self.pool.values():
            await conn.close()
        self.pool.clear()

    async def close(self) -> None:
        await self.close_websockets()
        for session in self.sessions:
            await session.close()

    # ------------------------------------------------------------------ WebSocket: the library
    async def _connection(self, path: str) -> ClientConnection | Reply:
        url = self.ws_base + path
        conn = self.pool.get(url)
        if conn is not None and conn.state is State.OPEN:
            return conn
        try:
            conn = await connect(url, compression=None, max_size=None, max_queue=None, ping_interval=None,
                                 open_timeout=self.timeout_s, close_timeout=self.timeout_s)
        except InvalidStatus as exc:
            status = exc.response.status_code
            return Reply(f"hs-{status}", NOT_FOUND if status == 404 else OTHER,
                         detail=exc.response.body.decode(errors="replace") if exc.response.body else "")
        except (InvalidHandshake, OSError) as exc:
            return Reply("hs-error", OTHER, detail=f"{type(exc).__name__}: {exc}")
        self.pool[url] = conn
        return conn

    async def ws(self, case: Case) -> Reply:
        conn = await self._connection(case.path)
        if isinstance(conn, Reply):
            return conn
        try:
            if case.send == "fragments":
                await conn.send(list(case.chunks), text=True)
            else:
                await conn.send(case.body, text=case.send == "text")
            return _ws_data_reply(await conn.recv(decode=False))
        except ConnectionClosed as exc:
            self.pool.pop(self.ws_base + case.path, None)
            return _ws_close_reply(exc.rcvd.code if exc.rcvd is not None else None)

    # ----------------------------------------------------------------- WebSocket: raw frames
    async def _open(self, lane: int = 0) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, self.port, local_addr=self.local_addr(lane))

    async def raw_ws(self, case: Case) -> Reply:
        reader, writer = await self._open()
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(handshake(case.path, f"{self.host}:{self.port}", key))
            head = await reader.readuntil(b"\r\n\r\n")
            status = head.split(b" ", 2)[1].decode(errors="replace")
            if status != "101":
                return Reply(f"hs-{status}", NOT_FOUND if status == "404" else OTHER)
            wire = b"".join(encode_frame(f) for f in case.frames)
            if case.bytewise:
                for i in range(len(wire)):
                    writer.write(wire[i:i + 1])
                    await writer.drain()
            else:
                writer.write(wire)
            return await self._ws_reply(reader, case.close_code)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            return Reply(EOF, EOF, detail=f"{type(exc).__name__}: {exc}")
        finally:
            writer.close()

    async def _ws_reply(self, reader: asyncio.StreamReader, echo: int | None) -> Reply:
        while True:
            opcode, payload = await read_frame(reader)
            if opcode in (9, 10):  # ping, pong: the target answers our pings; keep reading
                continue
            if opcode == 8:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                return _ws_close_reply(code, echo) if code is not None else Reply("1005", OTHER)
            return _ws_data_reply(payload)

    # ---------------------------------------------------------------------------------- HTTP
    async def post(self, case: Case, session: aiohttp.ClientSession | None = None) -> Reply:
        session = session or self.sessions[case.index % LANES]
        try:
            async with session.post(URL(self.base + case.path, encoded=True), data=case.wire,
                                    headers=dict(case.headers)) as resp:
                headers = {k.lower(): v for k, v in resp.headers.items()}
                return http_reply(resp.status, headers, await resp.read())
        except aiohttp.ClientError as exc:
            return Reply(EOF, EOF, detail=f"{type(exc).__name__}: {exc}")

    async def raw_http(self, case: Case) -> Reply:
        reader, writer = await self._open(case.index % LANES)
        try:
            writer.write(case.wire)
            if case.half_close:
                writer.write_eof()
            return await _read_response(reader)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            return Reply(EOF, EOF, detail=f"{type(exc).__name__}: {exc}")
        finally:
            writer.close()


async def _read_response(reader: asyncio.StreamReader) -> Reply:
    """One HTTP/1.1 response, read as far as its Content-Length (the server may keep the socket open
    after a 413, draining the rest of a body for a while); interim 1xx responses skipped."""
    while True:
        head = (await reader.readuntil(b"\r\n\r\n")).decode(errors="replace")
        lines = head.split("\r\n")
        status = int(lines[0].split(" ")[1])
        if not 100 <= status < 200:
            break
    fields = (line.partition(":") for line in lines[1:] if line)
    headers = {k.strip().lower(): v.strip() for k, _, v in fields}
    length = headers.get("content-length")
    body = await (reader.readexactly(int(length)) if length is not None else reader.read())
    return http_reply(status, headers, body)


def handshake(path: str, host: str, key: str) -> bytes:
    """A WebSocket opening handshake (RFC 6455 4.1), written by hand."""
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


def http_reply(status: int, headers: dict[str, str], body: bytes) -> Reply:
    """Classify an HTTP response; error statuses of the target carry ``{"error": "..."}``."""
    if status == 200:
        try:
            return Reply(ACK, ACK, parse_ack(body))
        except ValueError as exc:
            return Reply("200", OTHER, detail=str(exc))
    try:
        doc = json.loads(body)
        has_error = type(doc) is dict and type(doc.get("error")) is str
    except ValueError:
        has_error = False
    code = str(status)
    if status == 404:
        return Reply(code, NOT_FOUND)
    if status == 400:
        detail = body[:200].decode(errors="replace")
        return Reply(code, MALFORMED if has_error else BAD_REQUEST, detail=detail)
    if status == 413 and has_error:
        return Reply(code, TOO_BIG)
    if status == 429 and has_error and headers.get("retry-after", "").isdigit():
        return Reply(code, RATE_LIMITED)
    return Reply(code, OTHER, detail=body[:300].decode(errors="replace"))


# --------------------------------------------------------------------------------------------- engine


def rss_kib(pid: int) -> int | None:
    """VmRSS of ``pid`` in KiB (Linux ``/proc``); None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def alive(pid: int) -> bool:
    """The process runs (a zombie, not yet waited for, has died)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@dataclass(slots=True)
class Report:
    """What a fuzz run tried and saw."""

    seed: int
    tried: Counter[str] = field(default_factory=Counter)
    codes: dict[str, Counter[str]] = field(default_factory=lambda: {"ws": Counter(), "http": Counter()})
    findings: list[str] = field(default_factory=list)
    rss_before_kib: int | None = None
    rss_after_kib: int | None = None
    elapsed_s: float = 0.0
    acked_ids: int = 0
    stored_checks: int = 0
    burst_requests: int = 0

    def text(self) -> str:
        fuzzed = sum(self.tried.values()) - self.burst_requests
        http = self.tried["http"] - self.burst_requests
        lines = [f"fuzz: seed {self.seed}: {fuzzed} inputs (ws {self.tried['ws']}, http {http}) and "
                 f"{self.burst_requests} rate-limit burst requests in {self.elapsed_s:.1f} s"]
        for transport, codes in self.codes.items():
            ranked = sorted(codes.items(), key=lambda kv: (-kv[1], kv[0]))
            shown = "  ".join(f"{code} {n}" for code, n in ranked)
            lines.append(f"  {transport} replies: {shown or '-'}")
        lines.append(f"  acked ids: {self.acked_ids}, checked against stored-ids {self.stored_checks} times")

        def mib(kib: int | None) -> str:
            return "?" if kib is None else f"{kib / 1024:.1f} MiB"

        lines.append(f"  target RSS: {mib(self.rss_before_kib)} before, {mib(self.rss_after_kib)} after")
        lines.append(f"  findings: {len(self.findings)}")
        lines.extend(f"  - {finding}" for finding in self.findings)
        return "\n".join(lines)


class Fuzzer:
    """Sends the generator's inputs to one target and checks each reply and the target after it."""

    def __init__(self, url: str, pid: int, stderr: Callable[[], str], generator: Generator, *,
                 timeout_s: float = TIMEOUT_S, check_every: int = 500, burst: int = 0) -> None:
        """``burst``: requests of the burst sent every ``check_every`` inputs (0: none; give a few times the
        target's ``--http-burst``)."""
        self.url = url
        self.pid = pid
        self.stderr = stderr
        self.gen = generator
        self.timeout_s = timeout_s
        self.check_every = check_every
        self.burst = burst
        self.report = Report(generator.seed)
        self.acked: dict[str, dict[IdKey, int]] = {}  # app -> id -> the first input that got it acked
        self.ack_count: Counter[str] = Counter()
        self.ack_slack: Counter[str] = Counter()  # app -> ids whose ack may have been lost with a reset
        self.stderr_seen = 0
        self.baseline: dict[str, int] = {}  # app -> its acked counter before the run

    def find(self, text: str) -> None:
        self.report.findings.append(text)

    async def run(self, inputs: int, seconds: float, only: int | None = None) -> Report:
        report = self.report
        report.rss_before_kib = rss_kib(self.pid)
        start = time.monotonic()
        indices = range(only, only + 1) if only is not None else range(inputs)
        transports = Transports(self.url, self.timeout_s)
        session = transports.session
        try:
            await self.read_baseline(session)
            for n, index in enumerate(indices, 1):
                if time.monotonic() - start > seconds or len(report.findings) >= _MAX_FINDINGS:
                    break
                if not await self.one(transports, self.gen.case(index)):
                    break
                if n % self.check_every == 0:
                    if self.burst:
                        await self.run_burst(transports, index, n // self.check_every)
                    await self.check_store(session)
                    self.check_stderr(f"inputs up to #{index}")
            await transports.close_websockets()
            if alive(self.pid):
                await self.check_store(session)
                await self.check_counters(session)
            self.check_stderr("the last inputs")
        finally:
            await transports.close()
        report.elapsed_s = time.monotonic() - start
        report.rss_after_kib = rss_kib(self.pid)
        report.acked_ids = sum(len(ids) for ids in self.acked.values())
        return report

    async def run_burst(self, transports: Transports, index: int, k: int) -> None:
        """``burst`` copies of one valid batch at once, from an address of their own: past the target's
        bucket, each reply is an ack or 429 with ``Retry-After`` (contract.md, "Limits")."""
        body = self.gen.canonical(index)
        app = self.gen.apps[k % len(self.gen.apps)]
        case = Case(index, "http", "burst", f"/app/{app}/track", app, body, self.gen.expect(body), "post",
                    headers=(("Content-Type", "application/json"),), wire=body)
        session = transports.session_from(LANES + k % (250 - LANES))
        try:
            replies = await asyncio.gather(*(transports.post(case, session) for _ in range(self.burst)))
        finally:
            await session.close()
        for reply in replies:
            self.report.tried["http"] += 1
            self.report.burst_requests += 1
            self.note(case, reply)

    async def one(self, transports: Transports, case: Case) -> bool:
        """Send ``case`` and check the reply and the target; False when the target is gone."""
        self.report.tried[case.transport] += 1
        try:
            if case.batch:
                pairs = await asyncio.wait_for(transports.send_batch(case), self.timeout_s)
            else:
                pairs = [(case, await asyncio.wait_for(transports.send(case), self.timeout_s))]
        except TimeoutError:
            await transports.close_websockets()
            pairs = [(case, Reply("timeout", OTHER, detail=f"no reply within {self.timeout_s:g} s"))]
        closed = False
        for sub, reply in pairs:
            if reply.outcome == UNANSWERED and closed:
                self.report.codes[case.transport][reply.code] += 1
                continue
            self.note(sub, reply)
            closed = closed or reply.outcome != ACK
        reply = pairs[-1][1]
        if not alive(self.pid):
            self.find(f"the target died after {case.describe()}\n      last reply: {reply.describe()}")
            return False
        return True

    def note(self, case: Case, reply: Reply) -> None:
        """Count ``reply``, judge it, and remember the ids it acked."""
        self.report.codes[case.transport][reply.code] += 1
        problem = judge(case, reply)
        if problem is not None:
            self.find(f"{case.describe()}\n      {problem}")
        if reply.outcome == EOF and case.app is not None:  # an allowed loss: acks may have gone with it
            self.ack_slack[case.app] += len(case.expect.may) if case.expect.may is not None else 10_000
        if reply.outcome == ACK and case.app is not None:
            self.ack_count[case.app] += len(reply.ids)
            seen = self.acked.setdefault(case.app, {})
            for eid in reply.ids:
                key = id_key(eid)
                if key is not None:
                    seen.setdefault(key, case.index)

    async def _get(self, session: aiohttp.ClientSession, path: str) -> Any:
        async with session.get(URL(self.url + path, encoded=True)) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise ValueError(f"GET {path}: {resp.status} {body[:200]!r}")
            return json.loads(body)

    async def check_store(self, session: aiohttp.ClientSession) -> None:
        """Every id acked to an app is in its ``stored-ids`` (contract.md: an ack means stored)."""
        self.report.stored_checks += 1
        for app, acked in self.acked.items():
            try:
                stored = {id_key(i) for i in (await self._get(session, f"/app/{app}/stored-ids"))["ids"]}
            except (ValueError, aiohttp.ClientError) as exc:
                self.find(f"stored-ids of {app} cannot be read: {exc}")
                continue
            lost = [(key, index) for key, index in acked.items() if key not in stored]
            if lost:
                self.find(f"{len(lost)} acked id(s) of app {app} are not in stored-ids, e.g. "
                          + ", ".join(f"{key[1]!r} (acked to #{index})" for key, index in lost[:5]))

    async def read_baseline(self, session: aiohttp.ClientSession) -> None:
        """Each app's ``acked`` counter before the run (the target may have served others before)."""
        for app in self.gen.apps:
            try:
                self.baseline[app] = (await self._get(session, f"/app/{app}/stats"))["acked"]
            except (ValueError, aiohttp.ClientError) as exc:
                self.find(f"the stats of {app} cannot be read before the run: {exc}")
                return

    async def check_counters(self, session: aiohttp.ClientSession) -> None:
        """Each app's ``acked`` counter grew by the ids the fuzzer was sent (no ack counted and not sent),
        give or take the ids of replies lost to a connection reset (``judge``)."""
        for app, count in self.ack_count.items():
            acked = (await self._get(session, f"/app/{app}/stats"))["acked"] - self.baseline.get(app, 0)
            slack = self.ack_slack[app]
            if not count <= acked <= count + slack:
                lost = f" (and may have lost up to {slack})" if slack else ""
                self.find(f"app {app}: stats say {acked} ids acked in the run, the fuzzer got {count}{lost}")

    def check_stderr(self, where: str) -> None:
        text = self.stderr()
        new, self.stderr_seen = text[self.stderr_seen:], len(text)
        bad = [line for line in new.splitlines()
               if not line.startswith(_OWN_LINE) or any(mark in line for mark in _BAD_LINES)]
        if bad:
            self.find(f"the target's stderr after {where}: " + " | ".join(bad[:8])[:1500])


# ------------------------------------------------------------------------------------------------ CLI


async def fuzz_target(target: EmbeddedTarget, *, inputs: int, seed: int, seconds: float,
                      max_bytes: int = DEFAULT_MAX_BYTES, max_events: int = DEFAULT_MAX_EVENTS,
                      only: int | None = None, check_every: int = 500, burst: int = 0) -> Report:
    """Fuzz a started target whose limits are ``max_bytes`` and ``max_events``; ``burst``: see ``Fuzzer``."""
    generator = Generator(seed, max_bytes=max_bytes, max_events=max_events)
    fuzzer = Fuzzer(target.url, target.pid, target.stderr_text, generator, check_every=check_every,
                    burst=burst)
    return await fuzzer.run(inputs, seconds, only)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fuzz the reference target (bounded, seeded).")
    parser.add_argument("--inputs", type=int, default=2000, help="inputs to send at most (%(default)s)")
    parser.add_argument("--seconds", type=float, default=60.0, help="stop after this long (%(default)s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", type=int, metavar="INDEX", help="send input INDEX of the seed alone")
    parser.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=1, metavar="N",
                        help="send the same inputs N times to one target, its RSS after each (new state "
                             "comes with the first round; a leak would grow in every one)")
    args = parser.parse_args(argv)
    if args.inputs < 1 or args.seconds <= 0 or args.rounds < 1:
        parser.error("--inputs, --seconds and --rounds must be positive")
    findings = 0
    with tempfile.TemporaryDirectory(prefix="nucleus-fuzz-") as tmp:
        store = "memory" if args.store == "memory" else os.path.join(tmp, "fuzz.sqlite3")
        flags = ["--sync", "normal", *FUZZ_TARGET_FLAGS]
        print(f"fuzz: target --store {args.store} {' '.join(flags)}; seed {args.seed}, at most {args.inputs} "
              f"inputs or {args.seconds:g} s", flush=True)
        with EmbeddedTarget(store=store, extra_args=flags) as target:
            for round_ in range(1, args.rounds + 1):
                report = asyncio.run(fuzz_target(target, inputs=args.inputs, seed=args.seed, only=args.only,
                                                 seconds=args.seconds, burst=FUZZ_BURST_REQUESTS))
                findings += len(report.findings)
                if args.rounds > 1:
                    print(f"round {round_}: ", end="")
                print(report.text(), flush=True)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
