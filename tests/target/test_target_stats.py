"""``GET /stats``, ``/app/{appId}/stats``, ``/app/{appId}/stored-ids`` (api.md) and the idle timeout."""

from __future__ import annotations

import asyncio

from target_helpers import (
    TargetFactory,
    close_code,
    ev,
    init,
    message,
    post,
    request,
    run,
    send_and_ack,
    stats,
    ws_connect,
)
from timeouts import TIMEOUT_S

from bench.target.embedded import EmbeddedTarget

STATS_KEYS = {"stored", "duplicates", "rejected", "malformed_messages", "missing_fields", "orphans",
              "sessions", "devices", "heartbeats", "acked", "connections"}


def test_an_unknown_app_has_all_zero_stats(target: EmbeddedTarget, app_id: str) -> None:
    """Every key of api.md is there, zero, for an app the target never saw; stored-ids is empty."""
    st = stats(target, app_id)
    assert set(st) >= STATS_KEYS
    assert st["stored"] == {"total": 0, "by_type": {}}
    assert st["rejected"]["total"] == 0 and set(st["rejected"]["by_reason"].values()) == {0}
    assert st["connections"] == {"open": 0, "total": 0}
    assert request(target, "GET", f"/app/{app_id}/stored-ids").json() == {"ids": []}


def test_global_stats_sum_every_app(target_factory: TargetFactory) -> None:
    """``GET /stats`` is the sum over apps of each counter."""
    t = target_factory()
    post(t, "app-one", message(init(device="a"), ev(device="a"), ev("bogus")))
    heartbeat = {"type": "heartbeat", "deviceId": "b"}
    post(t, "app-two", message(init(device="b"), ev(device="b", session=99), heartbeat))
    total, one, two = stats(t), stats(t, "app-one"), stats(t, "app-two")
    assert total["stored"] == {"total": 4, "by_type": {"init": 2, "event": 2}}
    for key in ("duplicates", "orphans", "sessions", "devices", "heartbeats", "acked", "missing_fields"):
        assert total[key] == one[key] + two[key], key
    assert (total["orphans"], total["sessions"], total["devices"], total["heartbeats"]) == (1, 2, 2, 1)
    assert total["rejected"]["total"] == 1


def test_stats_token_is_required_once_set(target_factory: TargetFactory, app_id: str) -> None:
    """With ``--stats-token`` the stats answer only ``Authorization: Bearer <token>``, loopback or not."""
    t = target_factory(stats_token="s3cret")
    for path in ("/stats", f"/app/{app_id}/stats", f"/app/{app_id}/stored-ids"):
        assert request(t, "GET", path).status == 401
        assert request(t, "GET", path, headers={"Authorization": "Bearer wrong"}).status == 401
        assert request(t, "GET", path, headers={"Authorization": "Bearer s3cret"}).status == 200
    # Tracking needs no token.
    assert post(t, app_id, message(ev())).status == 200


def test_stats_of_a_bad_app_id_are_404(target: EmbeddedTarget) -> None:
    """The appId rule holds for the stats endpoints too."""
    assert request(target, "GET", "/app/bad.id/stats").status == 404
    assert request(target, "GET", "/app/bad.id/stored-ids").status == 404


def test_idle_sockets_close_and_heartbeats_keep_them_open(target_factory: TargetFactory, app_id: str) -> None:
    """``--idle-timeout-s``: a silent socket is closed with 1001; one that sends heartbeats stays open."""
    t = target_factory(idle_timeout_s=0.6)
    heartbeat = {"type": "heartbeat", "deviceId": "dev-1"}

    async def go() -> tuple[int | None, bool]:
        async with ws_connect(t, app_id) as silent, ws_connect(t, app_id) as busy:
            await send_and_ack(silent, ev())
            closing = asyncio.ensure_future(close_code(silent))
            # Keep the busy one talking until the silent one is closed, then a little longer.
            while not closing.done():
                await send_and_ack(busy, heartbeat)
                await asyncio.wait([closing], timeout=0.1)
            for _ in range(8):
                await asyncio.sleep(0.1)
                await send_and_ack(busy, heartbeat)
            return closing.result(), busy.close_code is None

    assert run(go(), TIMEOUT_S) == (1001, True)
    st = stats(t, app_id)
    assert st["idle_closed"] == 1
    assert st["heartbeats"] >= 8
