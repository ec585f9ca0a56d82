"""Locust users get the scenario's client profiles through the shared fleet model (bench.fleet.clients)."""

from __future__ import annotations

from pathlib import Path

from locust_harness import RunLocust, TargetFactory, run_locust_fixture

run_locust = run_locust_fixture()

#: Python-like devices whose ids are drawn in 1..40 and that report every 300 ms.
COLLIDING = """\
name = "locust-colliding"
seed = 3
duration = "3s"
[events]
per_device_rate = 30
payload_bytes = 20
[profiles]
tiny = 1
[profile.tiny]
base = "python"
tick = "300ms"
id_max = 40
"""


def test_ws_users_send_their_profile_and_are_reconciled_by_event(run_locust: RunLocust,
                                                                 target_factory: TargetFactory,
                                                                 tmp_path: Path) -> None:
    """Each user is a client device of its profile: its ids collide, its acks are matched by wire id per
    connection, every event is acked once, and the run is reconciled event by event, exactly."""
    target = target_factory(store=str(tmp_path / "t.sqlite3"))
    scenario = tmp_path / "colliding.toml"
    scenario.write_text(COLLIDING, encoding="utf-8")
    run = run_locust("ws.py", "--host", target.url, scenario=scenario, run_time="3s")
    assert run.returncode == 0, run.stderr[-3000:]
    ws = run.summary()["transports"]["ws"]
    events, rec = ws["events"], ws["reconciliation"]
    assert ws["accounting"]["ok"] and events["sent"] > 100
    assert events["acked"] == events["sent"] == events["planned"] and events["unknown_acks"] == 0
    assert rec["done"] and rec["method"] == "reference-events", rec
    assert (rec["acked_not_stored"], rec["stored_not_acked"], rec["duplicates_stored"]) == (0, 0, 0)
    assert rec["collisions"]["same_session"] > 0
