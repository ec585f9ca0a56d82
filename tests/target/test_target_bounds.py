"""What the target keeps per app, per session, per device and per event is bounded (ingest.py, "Bounds").

Each bound is tested on the real target over loopback with a small cap: what is refused is refused in one
clear answer, what is forgotten is counted in ``GET /stats``, and nothing already counted or stored changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from target_helpers import (
    TargetFactory,
    ev,
    ids_of,
    init,
    message,
    post,
    request,
    run,
    send_and_ack,
    stats,
    stored_ids,
    ws_connect,
)
from websockets.exceptions import ConnectionClosed

from bench.target.embedded import EmbeddedTarget


def _bounds(target: EmbeddedTarget) -> dict[str, Any]:
    """``bounds`` of ``GET /stats``."""
    bounds: dict[str, Any] = stats(target)["bounds"]
    return bounds


def test_apps_past_the_cap_are_refused_and_the_others_keep_working(target_factory: TargetFactory) -> None:
    """With ``--max-apps 2`` a third appId gets HTTP 503 and WebSocket close 1013, each with a reason;
    nothing is counted or stored for it, and the two apps it tracks go on as before."""
    t = target_factory(max_apps=2)
    assert post(t, "app-one", message(init(eid=1))).json() == {"reportedIds": [1]}
    assert post(t, "app-two", message(init(eid=2))).json() == {"reportedIds": [2]}

    refused = post(t, "app-three", message(init(eid=3)))
    assert refused.status == 503
    assert "too many apps" in refused.json()["error"] and "--max-apps" in refused.json()["error"]

    async def ws_refused() -> tuple[int | None, str]:
        async with ws_connect(t, "app-three") as ws:
            try:
                await ws.recv()
            except ConnectionClosed as exc:
                assert exc.rcvd is not None
                return exc.rcvd.code, exc.rcvd.reason
        raise AssertionError("the target did not close the WebSocket")

    code, reason = run(ws_refused())
    assert code == 1013 and "too many apps" in reason

    async def ws_tracked() -> list[object]:
        async with ws_connect(t, "app-one") as ws:
            return await send_and_ack(ws, ev(eid=4))

    assert run(ws_tracked()) == [4]
    assert stats(t, "app-three")["stored"]["total"] == 0
    assert stored_ids(t, "app-three") == []
    assert sorted(stored_ids(t, "app-one")) == [1, 4]
    assert _bounds(t)["apps"] == {"tracked": 2, "max": 2, "refused": 2}
    assert stats(t)["stored"]["total"] == 3


def test_the_dedup_window_turns_over_early_when_it_holds_its_cap(target_factory: TargetFactory,
                                                                  app_id: str) -> None:
    """With ``--dedup-max-keys 4`` each generation holds 2 keys: a re-send older than two generations is
    stored again, a newer one is still a duplicate, and /stats says the window turned over early."""
    t = target_factory(dedup_max_keys=4)
    first, second, third = [init(eid=1), ev(eid=2)], [ev(eid=3), ev(eid=4)], [ev(eid=5)]
    for events in (first, second, third):  # the 2nd and 3rd messages each start a generation
        assert post(t, app_id, message(*events)).json() == {"reportedIds": ids_of(events)}
    bounds = _bounds(t)["dedup"]
    assert (bounds["max_keys"], bounds["count_rotations"], bounds["keys"]) == (4, 2, 3)
    assert isinstance(bounds["shortest_window_s"], float) and bounds["shortest_window_s"] > 0

    resent = [first[1], second[0]]  # eid 2 was in the generation dropped, eid 3 in the one kept
    assert post(t, app_id, message(*resent)).json() == {"reportedIds": [2, 3]}
    st = stats(t, app_id)
    assert (st["stored"]["total"], st["duplicates"]) == (6, 1)
    assert sorted(stored_ids(t, app_id)) == [1, 2, 2, 3, 4, 5]


def test_sessions_past_the_cap_are_forgotten_least_recently_used_first(target_factory: TargetFactory,
                                                                       app_id: str) -> None:
    """With ``--max-sessions 4`` (2 per generation): a session heard of is kept, one nothing came from
    for a whole generation is forgotten, counted in /stats, and its next event is an orphan."""
    t = target_factory(max_sessions=4)
    for session in (1, 2):
        post(t, app_id, message(init(session=session)))
    post(t, app_id, message(init(session=3), ev(session=1)))  # turns over; session 1 is moved up again
    post(t, app_id, message(ev(session=3)))                    # turns over: session 2 is forgotten
    assert _bounds(t)["sessions"] == {"tracked": 2, "max": 4, "forgotten": 1}
    assert stats(t, app_id)["orphans"] == 0
    post(t, app_id, message(ev(session=1), ev(session=2)))
    st = stats(t, app_id)
    assert (st["orphans"], st["sessions"], st["stored"]["total"]) == (1, 3, 7)


def test_devices_past_the_cap_are_not_counted_and_stats_say_so(target_factory: TargetFactory,
                                                              app_id: str) -> None:
    """With ``--max-devices 2`` a third device's events are stored and acked, but it is not counted:
    /stats reports the overflow, so the devices counter reads as a lower bound."""
    t = target_factory(max_devices=2)
    events = [init(device=device) for device in ("d1", "d2", "d3")]
    for event in events:
        assert post(t, app_id, message(event)).json() == {"reportedIds": ids_of([event])}
    st = stats(t, app_id)
    assert (st["devices"], st["stored"]["total"]) == (2, 3)
    assert _bounds(t)["devices"] == {"tracked": 2, "max": 2, "overflow": 1}
    post(t, app_id, message(ev(device="d1")))  # a device already counted is no overflow
    assert _bounds(t)["devices"]["overflow"] == 1


def test_the_global_stats_show_every_bound(target_factory: TargetFactory) -> None:
    """``GET /stats`` has ``bounds`` with the defaults of a fresh target; an app's stats do not."""
    t = target_factory()
    bounds = _bounds(t)
    assert bounds["apps"] == {"tracked": 0, "max": 10_000, "refused": 0}
    assert bounds["sessions"] == {"tracked": 0, "max": 1_000_000, "forgotten": 0}
    assert bounds["devices"] == {"tracked": 0, "max": 2_000_000, "overflow": 0}
    assert bounds["dedup"] == {"keys": 0, "max_keys": 2_000_000, "window_s": 600.0, "count_rotations": 0,
                               "shortest_window_s": None}
    assert "bounds" not in request(t, "GET", "/app/any-app/stats").json()


def test_a_restart_within_smaller_bounds_counts_all_and_says_what_it_left_out(
        target_factory: TargetFactory, app_id: str, tmp_path: Path) -> None:
    """A SQLite file with more sessions and devices than the new caps: the counters are restored exactly,
    the latest session is kept, the older one counts as forgotten, the second device as an overflow."""
    path = str(tmp_path / "events.sqlite3")
    t = target_factory(store=path)
    first, second = init(device="d1", session=1, date=1_700_000_000_000), init(device="d2", session=2,
                                                                               date=1_700_000_060_000)
    assert post(t, app_id, message(first, second)).status == 200
    assert t.stop() == 0

    again = target_factory(store=path, max_sessions=2, max_devices=1)
    st = stats(again, app_id)
    assert (st["stored"]["total"], st["sessions"], st["devices"]) == (2, 2, 1)
    bounds = _bounds(again)
    assert bounds["sessions"] == {"tracked": 1, "max": 2, "forgotten": 1}
    assert bounds["devices"] == {"tracked": 1, "max": 1, "overflow": 1}
    later = [ev(device="d2", session=2, date=1_700_000_120_000), ev(device="d1", session=1,
                                                                   date=1_700_000_120_000)]
    assert post(again, app_id, message(*later)).status == 200
    assert stats(again, app_id)["orphans"] == 1  # d1's session was the older one, left out
