"""Conformance of ``POST /app/{appId}/track`` and of the limits (contract.md, "Limits")."""

from __future__ import annotations

import pytest
from target_helpers import (
    TargetFactory,
    ack,
    close_code,
    ev,
    ids_of,
    init,
    message,
    post,
    request,
    run,
    stats,
    stored_ids,
    ws_connect,
)

from bench.target.embedded import EmbeddedTarget


def test_a_batch_is_stored_and_answered_with_its_ids(target: EmbeddedTarget, app_id: str) -> None:
    """200 ``{"reportedIds": [...]}`` (JSON), every valid event stored, invalid ones left out."""
    events = [init(), ev(), ev("error", payload={"stack": "s", "message": "m"}), ev(eid="s-1")]
    reply = post(target, app_id, message(*events, ev("bogus")))
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json() == {"reportedIds": ids_of(events)}
    assert sorted(stored_ids(target, app_id), key=repr) == sorted(ids_of(events), key=repr)
    st = stats(target, app_id)
    assert (st["stored"]["total"], st["acked"], st["rejected"]["total"]) == (4, 4, 1)


def test_http_duplicates_are_acked_again_and_stored_once(target: EmbeddedTarget, app_id: str) -> None:
    """A batch re-sent after a lost reply is acknowledged in full and stored once."""
    body = message(init(), ev(), ev())
    first, second = post(target, app_id, body), post(target, app_id, body)
    assert first.json() == second.json()
    st = stats(target, app_id)
    assert (st["stored"]["total"], st["duplicates"], st["acked"]) == (3, 3, 6)


@pytest.mark.parametrize(("body", "what"), [(b"{oops", "not JSON"), (b'{"events": []}', "no data array"),
                                            (b'"data"', "not an object"), (b"", "empty body")])
def test_a_malformed_body_is_400_with_a_json_error(target: EmbeddedTarget, app_id: str, body: bytes,
                                                   what: str) -> None:
    """Not JSON or no ``data`` array: 400 with ``{"error": "..."}``, counted as malformed."""
    reply = post(target, app_id, body)
    assert reply.status == 400, what
    assert isinstance(reply.json()["error"], str)
    assert stats(target, app_id)["malformed_messages"] == 1


@pytest.mark.parametrize("bad", ["has.dot", "x" * 65, "%C3%A9"])
def test_a_bad_app_id_is_404(target: EmbeddedTarget, bad: str) -> None:
    """appId outside 1-64 characters of [A-Za-z0-9_-]: 404 with a JSON error."""
    reply = post(target, bad, message(ev()))
    assert reply.status == 404
    assert "appId" in reply.json()["error"]


def test_an_unknown_path_is_404(target: EmbeddedTarget) -> None:
    """Nothing is served outside the endpoints of the contract and api.md."""
    assert request(target, "GET", "/app/abc/nothing").status == 404


def test_size_and_count_limits(target_factory: TargetFactory, app_id: str) -> None:
    """Over the byte or events cap: HTTP 413, WebSocket close 1009, each counted; at the cap: fine."""
    t = target_factory(max_message_bytes=2000, max_events=5)
    at_cap = message(*(ev() for _ in range(5)))
    assert post(t, app_id, at_cap).status == 200
    too_many = message(*(ev() for _ in range(6)))
    padded = message(ev(padding="x" * 2000))
    exact = message(ev(eid=10**6, padding="x" * (2000 - len(message(ev(eid=10**6, padding=""))))))
    assert len(exact) == 2000
    assert post(t, app_id, exact).status == 200
    for body in (too_many, padded):
        reply = post(t, app_id, body)
        assert reply.status == 413
        assert "limit" in reply.json()["error"]

    async def ws_close(body: bytes) -> int | None:
        async with ws_connect(t, app_id) as ws:
            await ws.send(body.decode())
            return await close_code(ws)

    assert run(ws_close(too_many)) == 1009
    assert run(ws_close(padded)) == 1009

    async def ws_exact() -> list[object]:
        async with ws_connect(t, app_id) as ws:
            await ws.send(exact.decode())  # the same event again: a duplicate, acked all the same
            return await ack(ws)

    assert len(run(ws_exact())) == 1
    assert stats(t, app_id)["oversized_messages"] == 4


def test_the_rate_limit_answers_429_with_retry_after(target_factory: TargetFactory, app_id: str) -> None:
    """Over the per-IP token bucket: 429 with a whole-second Retry-After; nothing of that batch is stored."""
    t = target_factory(http_rate=0.5, http_burst=2)
    events = [ev(), ev(), ev()]
    replies = [post(t, app_id, message(e)) for e in events]
    assert [r.status for r in replies] == [200, 200, 429]
    assert int(replies[2].headers["retry-after"]) >= 1
    assert replies[2].json() == {"error": "rate limited"}
    assert sorted(stored_ids(t, app_id)) == sorted(ids_of(events[:2]))
    assert stats(t, app_id)["rate_limited"] == 1


def test_rate_limit_zero_is_off(target_factory: TargetFactory, app_id: str) -> None:
    """``--http-rate 0`` turns the limit off: a burst far over any bucket passes."""
    t = target_factory(http_rate=0, http_burst=1)
    assert {post(t, app_id, message(ev())).status for _ in range(20)} == {200}
