"""The fuzzer as a test: a short seeded run over both transports finds nothing, and the fuzzer can find.

``make fuzz`` runs a longer one (``tests/support/fuzzing.py``). The regressions at the end are the bugs
the fuzzer found in the target, one test each, named after what the input did.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import struct
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fuzz_cases import ACK, CLOSED, MALFORMED, NOT_FOUND, Case, Frame, Generator
from fuzz_oracle import TOO_BIG, Expect, expect_message, only
from fuzzing import (
    FUZZ_BURST_REQUESTS,
    FUZZ_HTTP_BURST,
    FUZZ_HTTP_RATE,
    Fuzzer,
    Reply,
    Report,
    encode_frame,
    fuzz_target,
    handshake,
    judge,
    read_frame,
)
from target_helpers import (
    TargetFactory,
    ev,
    message,
    post,
    request,
    send_and_ack,
    stats,
    stored_ids,
    ws_connect,
)
from target_helpers import run as run_async
from timeouts import PROCESS_TIMEOUT_S, TIMEOUT_S

from bench.protocol.message import parse_envelope
from bench.target.embedded import EmbeddedTarget

SEED = 20261206
#: Small caps, so the inputs at and past them stay cheap (the make target fuzzes the defaults).
MAX_BYTES = 65536
MAX_EVENTS = 200
LIMIT_FLAGS = {"max_message_bytes": MAX_BYTES, "max_events": MAX_EVENTS}


INPUTS = 600


def fuzz(t: EmbeddedTarget, inputs: int, seed: int = SEED, burst: int = 0) -> Report:
    return asyncio.run(fuzz_target(t, inputs=inputs, seed=seed, seconds=PROCESS_TIMEOUT_S,
                                   max_bytes=MAX_BYTES, max_events=MAX_EVENTS, check_every=200, burst=burst))


def test_a_short_fuzz_of_both_transports_finds_nothing(target_factory: TargetFactory, tmp_path: Path) -> None:
    """600 seeded inputs over WebSocket and HTTP against a SQLite target, and a burst past its rate limit
    every 200: every reply is one the contract allows, every acked id is stored, the target stays alive and
    writes no traceback; and the inputs did reach every kind of answer (acks, 1007, 1009, 1002, refused
    handshakes, 400, 404, 413, 429)."""
    t = target_factory(store=str(tmp_path / "fuzz.sqlite3"), sync="off", http_rate=FUZZ_HTTP_RATE,
                       http_burst=FUZZ_HTTP_BURST, **LIMIT_FLAGS)
    report = fuzz(t, INPUTS, burst=FUZZ_BURST_REQUESTS)
    assert report.findings == [], report.text()
    assert sum(report.tried.values()) == INPUTS + 3 * FUZZ_BURST_REQUESTS, report.text()
    assert {"ack", "1007", "1009", "1002", "hs-404"} <= set(report.codes["ws"]), report.text()
    assert {"ack", "400", "404", "413", "429"} <= set(report.codes["http"]), report.text()
    assert report.acked_ids > 200 and report.stored_checks >= 4, report.text()


def test_the_fuzzer_finds_acks_the_target_did_not_store(target_factory: TargetFactory) -> None:
    """Against a target that acks without storing (--lie-ack-ratio 1), the fuzzer reports acked ids missing
    from stored-ids: its check can fail."""
    t = target_factory(lie_ack_ratio=1, **LIMIT_FLAGS)
    report = fuzz(t, 40)
    assert any("not in stored-ids" in finding for finding in report.findings), report.text()


def test_the_fuzzer_reports_a_target_that_is_gone(target_factory: TargetFactory) -> None:
    """A target that has exited is a finding (and the run stops), not a hang or a pass."""
    t = target_factory(**LIMIT_FLAGS)
    url, pid = t.url, t.pid
    t.stop()
    fuzzer = Fuzzer(url, pid, t.stderr_text, Generator(SEED, max_bytes=MAX_BYTES, max_events=MAX_EVENTS))
    report = asyncio.run(fuzzer.run(inputs=10, seconds=PROCESS_TIMEOUT_S))
    assert sum(report.tried.values()) == 1
    assert any("the target died" in finding for finding in report.findings), report.text()


# ------------------------------------------------------------------------------------- the checks, pure


def _case(expect: Expect, transport: str = "ws") -> Case:
    return Case(0, "ws" if transport == "ws" else "http", "test", "/app/a/track", "a", b"{}", expect, "text")


ACK_1_MAY_2 = Expect(frozenset({ACK}), must=frozenset({("int", 1)}),
                     may=frozenset({("int", 1), ("str", "2")}))


@pytest.mark.parametrize(("reply", "finds"), [
    (Reply(ACK, ACK, (1,)), None),
    (Reply(ACK, ACK, (1, "2")), None),
    (Reply(ACK, ACK, ()), "lacks"),
    (Reply(ACK, ACK, ("1",)), "lacks"),  # "1" is not 1: ids keep their JSON type
    (Reply(ACK, ACK, (1, 2)), "refuses"),
    (Reply("1011", "other"), "allows ack"),
    (Reply("eof", "eof"), "allows ack"),
])
def test_judge_holds_acks_to_the_ids_the_contract_names(reply: Reply, finds: str | None) -> None:
    """An ack must carry every valid id and nothing the contract refuses; any other reply is a finding."""
    problem = judge(_case(ACK_1_MAY_2), reply)
    assert (problem is None) if finds is None else (problem is not None and finds in problem), problem


def test_judge_allows_429_on_http_only_and_checks_an_echoed_close() -> None:
    """A rate-limited HTTP request is always allowed; a close frame must come back with the client's code."""
    assert judge(_case(only(MALFORMED), "http"), Reply("429", "rate_limited")) is None
    assert judge(_case(only(MALFORMED)), Reply("429", "rate_limited")) is not None
    closing = Case(0, "ws", "t", "/a", "a", b"", only(CLOSED), "frames", close_code=4000)
    assert judge(closing, Reply("4000", CLOSED)) is None
    assert judge(closing, Reply("1000", CLOSED)) is not None


@pytest.mark.parametrize(("body", "outcomes"), [
    (b'{"data":[]}', {ACK}),
    (b' {"data":[], "x": 1}\n', {ACK}),
    (b'{"data":null}', {MALFORMED}),
    (b'[{"data":[]}]', {MALFORMED}),
    (b'{"data":[]', {MALFORMED}),
    (b'{"data":[NaN]}', {MALFORMED}),
    (b'{"data":["\xc0\xaf"]}', {MALFORMED}),  # an overlong UTF-8 form
    (b'{"data":["\x01"]}', {MALFORMED}),  # a raw control character in a string
    (b'\xef\xbb\xbf{"data":[]}', {MALFORMED, ACK}),  # RFC 8259 8.1: a parser may ignore a BOM
    (b'{"data":[18446744073709551616]}', {MALFORMED, ACK}),  # past 64 bits
    (b'{"data":["\\ud800"]}', {MALFORMED, ACK}),  # JSON, not Unicode
    (b'{"data":[],"data":[]}', {MALFORMED, ACK}),  # RFC 8259 4: names should be unique
    (b'{"data":[' + b"[" * 1030 + b"]" * 1030 + b"]}", {MALFORMED, ACK}),  # past orjson's depth
    (b'{"data":[' + b"0," * MAX_EVENTS + b"0]}", {TOO_BIG}),
    (b'{"data":["' + b"x" * MAX_BYTES + b'"]}', {TOO_BIG}),
])
def test_the_oracle_reads_messages_as_the_rfc_and_contract_do(body: bytes, outcomes: set[str]) -> None:
    """The oracle's verdict on whole messages, from the standard library's strict parser."""
    assert expect_message(body, max_bytes=MAX_BYTES, max_events=MAX_EVENTS).outcomes == outcomes


@pytest.mark.parametrize(("event", "verdict"), [
    ({"deviceId": "d", "sessionId": 1, "name": "n", "id": 1}, "must"),
    ({"type": "init", "machineId": "d", "sessionId": "0042", "id": 1}, "must"),
    ({"type": "init", "deviceId": "d", "sessionId": 1, "id": 1, "date": "2026-12-06T10:00:00Z"}, "must"),
    ({"type": "props", "deviceId": "d", "sessionId": 1, "id": 1, "payload": [1], "totalRam": "x"}, "must"),
    ({"type": "heartbeat", "deviceId": "d", "id": 1}, "never"),
    ({"deviceId": "d", "sessionId": 1, "id": 1}, "never"),  # an event without its name
    ({"type": "init", "sessionId": 1, "id": 1}, "never"),  # no device
    ({"type": "init", "deviceId": "d", "sessionId": 0, "id": 1}, "never"),
    ({"type": "init", "deviceId": "d", "sessionId": 1, "id": 1, "date": "yesterday"}, "never"),
    ({"type": "Init", "deviceId": "d", "sessionId": 1, "id": 1}, "never"),
    ({"type": "init", "deviceId": "d", "sessionId": 1.0, "id": 1}, "may"),
    ({"type": "init", "deviceId": "d", "sessionId": 1, "id": 1, "date": -5}, "may"),
    ({"type": None, "deviceId": "d", "sessionId": 1, "name": "n", "id": 1}, "may"),
])
def test_the_oracle_reads_events_as_the_contract_does(event: dict[str, Any], verdict: str) -> None:
    """Valid events must be acked, broken ones never, and what the contract leaves open may go either way."""
    expect = expect_message(message(event), max_bytes=MAX_BYTES, max_events=MAX_EVENTS)
    assert expect.may is not None
    got = "must" if ("int", 1) in expect.must else "may" if ("int", 1) in expect.may else "never"
    assert got == verdict


def test_inputs_are_a_pure_function_of_seed_and_index() -> None:
    """Input 123 of a seed is the same input in any run (so a finding replays with --only); seeds differ;
    every resent or valid message is made of events the product's own parser accepts."""
    a, b = Generator(7, max_bytes=MAX_BYTES, max_events=MAX_EVENTS), Generator(7, max_bytes=MAX_BYTES,
                                                                              max_events=MAX_EVENTS)
    assert [a.case(i) for i in range(123, 140)] == [b.case(i) for i in range(123, 140)]
    other = Generator(8, max_bytes=MAX_BYTES, max_events=MAX_EVENTS)
    assert [a.case(i).body for i in range(20)] != [other.case(i).body for i in range(20)]
    for i in range(50):
        body = a.canonical(i)
        events = json.loads(body)["data"]
        assert len(parse_envelope(body).events) == len(events)


# ------------------------------------------------------------------ regressions: what the fuzzer found


def _deep_type_message(eid: int) -> bytes:
    return (b'{"data":[{"type":' + b'{"a":' * 1000 + b"0" + b"}" * 1000
            + b',"deviceId":"d","sessionId":1,"id":1},' + message(ev(eid=eid))[len(b'{"data":['):])


def test_a_type_nested_a_thousand_deep_is_refused_not_a_500(target: EmbeddedTarget, app_id: str) -> None:
    """Found by the fuzzer (an event whose type was {"a":{"a":...}} 1,000 deep): the target answered HTTP
    500 with a traceback and dropped the WebSocket. That event is refused; the rest of its message is
    acked."""
    reply = post(target, app_id, _deep_type_message(7))
    assert (reply.status, reply.json()) == (200, {"reportedIds": [7]})

    async def go() -> Any:
        async with ws_connect(target, app_id) as ws:
            await ws.send(_deep_type_message(8), text=True)
            return json.loads(await ws.recv())

    assert run_async(go()) == {"reportedIds": [8]}
    assert stats(target, app_id)["rejected"]["by_reason"]["bad_type"] == 2
    assert "Traceback" not in target.stderr_text()


def test_a_websocket_on_slash_stats_is_the_app_stats(target: EmbeddedTarget) -> None:
    """Found by the fuzzer: "stats" is a valid appId, but a WebSocket handshake on ``/stats`` (the
    ``/{appId}`` form) got the stats JSON instead of an upgrade. Now it is that app's tracking endpoint; a
    plain GET of ``/stats`` still answers the stats."""
    event = ev(eid="on-slash-stats")

    async def go() -> list[object]:
        async with ws_connect(target, "stats", "/{app}") as ws:
            return await send_and_ack(ws, event)

    assert run_async(go()) == ["on-slash-stats"]
    assert "on-slash-stats" in stored_ids(target, "stats")
    assert "stored" in stats(target)


async def _close_reply(t: EmbeddedTarget, app_id: str, payload: bytes) -> int | None:
    """Send a close frame with ``payload`` on a raw WebSocket; the code of the target's close frame."""
    parts = urlsplit(t.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(handshake(f"/app/{app_id}/track", "x", "dGhlIHNhbXBsZSBub25jZQ=="))
        assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
        writer.write(encode_frame(Frame(8, payload)))
        opcode, reply = await read_frame(reader)
        assert opcode == 8
        return struct.unpack(">H", reply[:2])[0] if len(reply) >= 2 else None
    finally:
        writer.close()


@pytest.mark.parametrize(("sent", "answered"), [
    (1006, 1002), (5000, 1002), (65535, 1002), (1005, 1002), (1004, 1002),
    (1000, 1000), (1001, 1001), (1014, 1014), (3000, 3000), (4999, 4999), (None, 1000),
])
def test_a_client_close_code_is_echoed_only_when_it_may_be_sent(target: EmbeddedTarget, app_id: str,
                                                                sent: int | None, answered: int) -> None:
    """Found by the fuzzer: a client's close frame with 1006 came back as 1006 (a code RFC 6455 7.4.1 says
    never goes on the wire) and one with 5000 or 65535 as 1000. Codes no one may send are a protocol error,
    1002; the others are echoed; a close without a code is answered 1000."""
    payload = b"" if sent is None else struct.pack(">H", sent)
    assert run_async(_close_reply(target, app_id, payload)) == answered


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_body_left_unread_behind_a_413_that_cannot_be_decoded_is_one_line(target_factory: TargetFactory,
                                                                          app_id: str, encoding: str) -> None:
    """Found by the fuzzer (a 1 MiB + 1 body declared brotli, not compressed): the 413 went out on the
    Content-Length, then aiohttp drained the body, could not decode it, and the target printed an
    "Unhandled exception" traceback. It is one counted line now, like any request a client garbled."""
    t = target_factory(max_message_bytes=1000)
    garbage = gzip.compress(b"x" * 100)[::-1] * 100  # declared compressed, undecodable, 3 KB > the cap
    reply = request(t, "POST", f"/app/{app_id}/track", garbage, {"Content-Encoding": encoding})
    assert reply.status == 413
    assert asyncio.run(_wait_for_line(t, "unreadable body after the reply")), t.stderr_text()
    lines = t.stderr_text().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("nucleus-bench target: unreadable body after the reply: "), lines
    assert stats(t)["bad_requests"] == 1


async def _wait_for_line(t: EmbeddedTarget, text: str) -> bool:
    """Wait (up to TIMEOUT_S) for ``text`` on the target's stderr: it is written after the reply went out."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT_S
    while text not in t.stderr_text():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def test_the_not_found_class_covers_refused_handshakes() -> None:
    """A refused WebSocket handshake and HTTP 404 are the same answer to a bad appId."""
    case = _case(only(NOT_FOUND))
    assert judge(case, Reply("hs-404", NOT_FOUND)) is None
    assert judge(case, Reply("hs-200", "other")) is not None


async def _acks_then_close(t: EmbeddedTarget, app_id: str, frames: list[Frame]) -> list[object]:
    """Send ``frames`` at once on a raw WebSocket; every reply (ack ids, then the close code) in order."""
    parts = urlsplit(t.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    replies: list[object] = []
    try:
        writer.write(handshake(f"/app/{app_id}/track", "x", "dGhlIHNhbXBsZSBub25jZQ=="))
        assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
        writer.write(b"".join(encode_frame(f) for f in frames))
        while True:
            opcode, payload = await read_frame(reader)
            if opcode == 8:
                replies.append(struct.unpack(">H", payload[:2])[0])
                return replies
            replies.append(json.loads(payload)["reportedIds"])
    finally:
        writer.close()


@pytest.mark.parametrize(("last", "code"), [(Frame(1, b"abcd", length=1 << 40), 1009),
                                            (Frame(1, b"{}", rsv=4), 1002)], ids=["too big", "reserved bit"])
def test_acks_owed_go_out_before_a_close_aiohttp_makes(target_factory: TargetFactory, app_id: str,
                                                       tmp_path: Path, last: Frame, code: int) -> None:
    """Found by the fuzzer (a pipeline: valid messages, then one over the size cap): aiohttp closes the
    socket itself on a frame over the cap (1009) or against RFC 6455 (1002), and the acks of the earlier
    messages, still waiting on the SQLite commit, were never sent though their events were stored. They go
    out first now, in message order, then the close."""
    t = target_factory(store=str(tmp_path / "t.sqlite3"), max_message_bytes=1000)
    frames = [Frame(1, message(ev(eid=n))) for n in (1, 2, 3)]
    assert run_async(_acks_then_close(t, app_id, [*frames, last])) == [[1], [2], [3], code]
    assert sorted(stored_ids(t, app_id)) == [1, 2, 3]
