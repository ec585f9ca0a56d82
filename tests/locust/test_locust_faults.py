"""Locust devices against a faulty reference target: lost acks, closed sockets, HTTP rate limits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from locust_harness import SMOKE, RunLocust, TargetFactory, run_locust_fixture

run_locust = run_locust_fixture()


@pytest.fixture
def short_timeout(tmp_path: Path) -> Path:
    """The smoke scenario with a 1 s ack timeout, so that lost events are decided within the run."""
    path = tmp_path / "smoke-1s.toml"
    path.write_text(SMOKE.read_text().replace('ack_timeout = "5s"', 'ack_timeout = "1s"'))
    assert 'ack_timeout = "1s"' in path.read_text()
    return path


def _rows(prefix: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(Path(f"{prefix}.json").read_text())
    return rows


def test_unacked_events_are_lost_failures_and_closed_sockets_reopen(
        run_locust: RunLocust, target_factory: TargetFactory, short_timeout: Path, tmp_path: Path) -> None:
    """Dropped acks end as Locust failures named lost; a device whose socket is closed reconnects."""
    faulty_ws = target_factory(drop_ack_ratio=0.2, close_ratio=0.2, fault_seed=3)
    prefix = tmp_path / "stats"
    run = run_locust("ws.py", "--host", faulty_ws.url, "--json-file", str(prefix), "--endpoint", "short",
                     "--check-lost-ratio", "1", scenario=short_timeout)
    assert run.returncode == 0, run.stderr[-3000:]  # thresholds decide the exit code, and this one holds
    summary = run.summary()
    ws = summary["transports"]["ws"]
    events, wire = ws["events"], ws["wire"]
    assert summary["locust"]["endpoint"] == "short" and events["acked"] > 0
    assert events["lost"] > 0 and events["sent"] == events["acked"] + events["rejected"] + events["lost"]
    lost_rows = [r for r in _rows(prefix) if r["method"] == "WS" and r["name"] == "lost"]
    assert lost_rows and lost_rows[0]["num_failures"] == events["lost"]
    assert wire["closed_by_peer"] > 0 and wire["connects"] > 3  # each of the 3 devices came back
    rec = ws["reconciliation"]  # dropped acks: stored but never acknowledged; no ack without a store
    assert rec["acked_not_stored"] == 0 and 0 < rec["stored_not_acked"] <= events["lost"]


def test_http_429_backs_off_by_retry_after_and_resends(run_locust: RunLocust,
                                                      target_factory: TargetFactory) -> None:
    """Rate-limited batches are re-sent after Retry-After; no event is counted twice."""
    rate_limited = target_factory(http_rate=2, http_burst=1)
    run = run_locust("http.py", "--host", rate_limited.url, "--check-fail-ratio", "1")
    assert run.returncode == 0, run.stderr[-3000:]
    http = run.summary()["transports"]["http"]
    events, wire = http["events"], http["wire"]
    assert wire["http_429"] > 0 and wire["retries"] > 0 and events["resent"] > 0
    assert http["accounting"]["ok"] and events["acked"] > 0
    assert http["reconciliation"]["acked_not_stored"] == 0
