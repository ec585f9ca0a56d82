"""The shape of summary.json, and one header for both front ends (``nucleus-bench run`` and Locust)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from results_helpers import make_result

from bench.locust_glue import messages
from bench.locust_glue.runstate import RunSpec, plan_duration
from bench.results.summary import DRIVEN_KEYS, RunHeader, build_summary
from bench.runner.app import RunRequest, run_header
from bench.scenario import Scenario, load_scenario, parse_scenario, read_scenario_text

ROOT = Path(__file__).resolve().parents[2]
DESKTOP = str(ROOT / "scenarios" / "desktop-fleet.toml")
URL = "http://127.0.0.1:41234"
STARTED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
#: What only a Locust run's summary has: its driver's name and the block under it.
LOCUST_ONLY = {"driver", "locust"}
#: Header keys whose values are the moment of writing, not the run.
WRITTEN_AT = ("finished_at",)


def _header(scenario: Scenario) -> RunHeader:
    return RunHeader(scenario=scenario, target_url=URL, embedded=True, started=STARTED, finished=STARTED,
                     processes=1)


def test_summary_holds_the_schema_and_the_accounting() -> None:
    """summary.json: the schema name, the header, one block per transport, ok when every identity holds."""
    header = _header(Scenario(name="t"))
    summary = build_summary({"ws": make_result(4, 3, 10.0)}, {"ws": "a" * 24}, header)
    assert summary["schema"] == "nucleus-bench/summary/1" and summary["ok"]
    assert list(summary) == ["schema", *header.to_json(), "transports", "ok"]
    block = summary["transports"]["ws"]
    assert block["app_id"] == "a" * 24
    assert block["accounting"]["line"].endswith("OK")
    assert (block["events"]["acked"], block["events"]["rejected"]) == (3, 1)  # left out of the reply


def _hot_path_header(scenario: Scenario) -> dict[str, Any]:
    """The header ``nucleus-bench run`` writes (bench.runner.app) for this scenario, nothing overridden."""
    return run_header(RunRequest(scenario_path=scenario.path), scenario, URL, True, STARTED).to_json()


def _locust_header(path: str, users: int, run_time_s: float) -> dict[str, Any]:
    """The header the Locust plugin writes (bench.locust_glue.messages) for a standalone run of ``users``."""
    text = read_scenario_text(path)
    scenario = parse_scenario(text, path)  # what the master parses (and ships to the workers)
    spec = RunSpec(run_id="r", scenario_path=path, scenario_text=text, app_ids=(("ws", "a" * 24),),
                   duration_s=plan_duration(scenario, run_time_s))
    arrived = {"local": messages.empty_message("r", 0, "ran nothing") | {"devices": users}}
    return messages.run_header(scenario, spec, arrived, users=users, started=STARTED, lost=[],
                               target_url=URL, embedded=True, locust_version="2.x").to_json()


def _without(obj: dict[str, Any], keys: tuple[str, ...] | set[str]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in keys}


def test_both_front_ends_write_one_header_for_desktop_fleet() -> None:
    """For scenarios/desktop-fleet.toml the hot path and Locust write the same header, but for what
    Locust decides itself: the devices (its users) and the plan's duration (its run), and its own block."""
    hot = _hot_path_header(load_scenario(DESKTOP))
    loc = _locust_header(DESKTOP, users=3, run_time_s=4.0)
    assert set(loc) - set(hot) == LOCUST_ONLY and set(hot) <= set(loc)
    assert _without(loc, {*LOCUST_ONLY, *WRITTEN_AT, "scenario"}) == _without(hot, {*WRITTEN_AT, "scenario"})
    assert _without(loc["scenario"], DRIVEN_KEYS) == _without(hot["scenario"], DRIVEN_KEYS)
    assert (hot["scenario"]["devices"], hot["scenario"]["duration_s"]) == (300, 45.0)
    assert (loc["scenario"]["devices"], loc["scenario"]["duration_s"]) == (3, 45.0)  # -t 4s < 45 s of plan
    assert loc["driver"] == "locust" and loc["locust"]["users"] == 3


def test_per_device_rate_is_what_one_device_sends() -> None:
    """``per_device_rate`` is the events/s of one device in a session: a whole-fleet rate divided over the
    devices (desktop-fleet: 1,200 / 300 = 4), else the file's own per_device_rate."""
    desktop = load_scenario(DESKTOP)
    for header in (_hot_path_header(desktop), _locust_header(DESKTOP, users=3, run_time_s=4.0)):
        assert header["scenario"]["per_device_rate"] == pytest.approx(4.0)
    fewer = desktop.with_overrides(devices=100)  # `run --devices 100`: the fleet's rate over fewer devices
    assert _hot_path_header(fewer)["scenario"]["per_device_rate"] == pytest.approx(12.0)
    own = Scenario(per_device_rate=2.5)
    assert _header(own).scenario_json()["per_device_rate"] == 2.5


def test_a_driver_sets_only_the_driven_keys_of_the_scenario_block() -> None:
    """A header with devices and duration given differs from the scenario's in those keys only."""
    desktop = load_scenario(DESKTOP)
    plain = _header(desktop).scenario_json()
    driven = RunHeader(scenario=desktop, target_url=URL, embedded=True, started=STARTED, finished=STARTED,
                       processes=1, devices=7, duration_s=99.0).scenario_json()
    assert {k for k in plain if plain[k] != driven[k]} == set(DRIVEN_KEYS)
    assert "driver" not in _header(desktop).to_json()
