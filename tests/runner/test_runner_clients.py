"""``nucleus-bench run`` with client profiles and the shipped storm scenarios, end to end on the real target.

Each storm scenario of scenarios/ runs as shipped, on a faster clock (``--time-scale``) and a smaller fleet
so that it takes seconds: the accounting identity holds, nothing the target acknowledged is missing from its
store, duplicates are reported as duplicates, and the behaviour the scenario is for shows in the summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from runner_helpers import run_cli, write_scenario

from bench.results.reconcile import fetch_json
from bench.target.embedded import EmbeddedTarget

ROOT = Path(__file__).resolve().parents[2]


def exact(summary: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ws block's events and reconciliation, after checking what every run here must hold: the
    identity, nothing lost, and the store exactly what was acked (by event)."""
    ws = summary["transports"]["ws"]
    ev, rec = ws["events"], ws["reconciliation"]
    assert ws["accounting"]["ok"], ws["accounting"]
    assert ev["sent"] == ev["planned"] == ev["acked"] and ev["lost"] == ev["rejected"] == 0
    assert rec["done"] and rec["method"] == "reference-events", rec
    assert (rec["stored"], rec["acked_not_stored"], rec["stored_not_acked"], rec["duplicates_stored"]) == \
        (ev["acked"] - rec["collisions"]["merged"], 0, 0, 0)
    return ev, rec


def shipped(tmp_path: Path, name: str, *flags: str) -> dict[str, Any]:
    code, summary, _ = run_cli(tmp_path, str(ROOT / "scenarios" / f"{name}.toml"), *flags)
    assert code == 0 and summary is not None
    return summary


def test_reconnect_storm(tmp_path: Path) -> None:
    """Every device drops its socket for the outage and reconnects after it: twice the fleet's connects at
    least, none counted as closed by the peer, the events made meanwhile delivered late but delivered."""
    summary = shipped(tmp_path, "reconnect-storm", "--time-scale", "80", "--devices", "12")
    exact(summary)
    wire = summary["transports"]["ws"]["wire"]
    assert wire["connects"] >= 24 and wire["closed_by_peer"] == 0
    assert summary["scenario"]["clients"]["time_scale"] == 80.0
    assert summary["transports"]["ws"]["delivery_delay_us"]["max"] > 60e6 / 80  # waited out the outage


def test_offline_backlog(tmp_path: Path) -> None:
    """Hours of backlog in each device's first message: thousands of events, Python's ids colliding in their
    session, each of those stored exactly once."""
    summary = shipped(tmp_path, "offline-backlog", "--time-scale", "1500", "--devices", "3")
    ev, rec = exact(summary)
    assert ev["acked"] > 3000
    col = rec["collisions"]
    assert col["same_session"] > 0 and col["same_session_stored_once"] == col["same_session"] - col["merged"]


def test_error_storm(tmp_path: Path) -> None:
    """Half the fleet reports its file-write error every tick: errors are most of what the target stored."""
    summary = shipped(tmp_path, "error-storm", "--time-scale", "200", "--devices", "10")
    ev, rec = exact(summary)
    by_type = dict(part.split(" ") for part in rec["note"].split("stored by type: ")[1].split(", "))
    assert int(by_type["error"]) > ev["acked"] / 2


def test_release_day(tmp_path: Path) -> None:
    """The release restarts most devices with a new session: about two inits per device."""
    summary = shipped(tmp_path, "release-day", "--time-scale", "120", "--devices", "10")
    _, rec = exact(summary)
    by_type = dict(part.split(" ") for part in rec["note"].split("stored by type: ")[1].split(", "))
    assert int(by_type["init"]) > 10 + 5


def test_slow_acks(tmp_path: Path) -> None:
    """Acks slower than the tick: the modules re-send, the harness counts the re-sends and their acks as
    duplicates, the target saw duplicate deliveries and stored each event once."""
    summary = shipped(tmp_path, "slow-acks", "--time-scale", "40", "--devices", "5")
    ev, rec = exact(summary)
    assert ev["resent"] > 0 and ev["duplicate_acks"] > 0
    assert "duplicate deliveries" in rec["note"]


COLLIDING = """\
name = "colliding"
seed = 3
duration = "3s"
[fleet]
devices = 4
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


def test_colliding_ids_are_acked_stored_and_reconciled_exactly(tmp_path: Path) -> None:
    """Ids drawn in 1..40 collide within sessions and across the fleet: every event is acked once, stored
    once, and the reconciliation by event says so, collision by collision."""
    code, summary, _ = run_cli(tmp_path, write_scenario(tmp_path, COLLIDING))
    assert code == 0 and summary is not None
    _, rec = exact(summary)
    col = rec["collisions"]
    assert col["same_session"] > 100 and col["across_fleet"] > col["same_session"]
    assert col["same_session_stored_once"] == col["same_session"] - col["merged"]


STRINGS = """\
name = "strings"
seed = 5
duration = "2s"
[fleet]
devices = 3
[events]
per_device_rate = 10
[profiles]
reload = 1
[profile.reload]
base = "v4"
tick = "200ms"
open_delay = "100ms"
session_string = 1.0
"""


def test_string_session_ids_keep_their_sessions(tmp_path: Path, target_factory: Any) -> None:
    """v4 after a reload sends sessionIds as numeric strings: stored and reconciled exactly, and the target
    keeps them as sessions (no orphans, one session per device)."""
    target: EmbeddedTarget = target_factory(store=str(tmp_path / "t.sqlite3"))
    code, summary, _ = run_cli(tmp_path, write_scenario(tmp_path, STRINGS), "--target", target.url)
    assert code == 0 and summary is not None
    exact(summary)
    stats = fetch_json(f"{target.url}/app/{summary['transports']['ws']['app_id']}/stats")
    assert (stats["sessions"], stats["orphans"], stats["rejected"]["total"]) == (3, 0, 0)


def test_profiles_over_http_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Client profiles imitate WebSocket modules: asking for HTTP is one clear line and exit 2."""
    code, summary, _ = run_cli(tmp_path, write_scenario(tmp_path, STRINGS), "--transport", "http")
    assert code == 2 and summary is None
    assert "--transport ws" in capsys.readouterr().err
