"""The messages that end a run across Locust processes, their exact merge, and the summary header they make.

Pure: no gevent, no locust.

``nucleus_drain`` goes from the master (or the standalone process) to every process running users;
``nucleus_result`` comes back with that process's ``TransportResult`` of each transport
(``to_json()``) and the ids the server reported, as plain JSON-safe values (Locust carries custom
messages as msgpack). ``merge_messages`` adds them up exactly (bench.results.transport.merge_all).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bench.locust_glue.runstate import RunSpec, RunState
from bench.metrics import COUNTERS
from bench.results.summary import RunHeader
from bench.results.transport import TransportResult, merge_all
from bench.scenario import Scenario

logger = logging.getLogger(__name__)

DRAIN_MSG = "nucleus_drain"
RESULT_MSG = "nucleus_result"


def result_message(run: RunState, worker: int) -> dict[str, Any]:
    """The ``nucleus_result`` payload of a drained run (JSON/msgpack-safe)."""
    results = run.results()
    for name, result in results.items():
        logger.info("nucleus-bench worker %d %s: %s", worker, name, result.accounting().line())
    return {"run_id": run.spec.run_id, "worker": worker,
            "results": {name: r.to_json() for name, r in results.items()},
            "reported": {name: list(r.reported_ids or ()) for name, r in results.items()}}


def empty_message(run_id: str, worker: int, error: str) -> dict[str, Any]:
    """A result from a process that ran nothing this run (so the master need not wait for it)."""
    return {"run_id": run_id, "worker": worker, "results": {}, "reported": {}, "error": error}


def merge_messages(messages: Mapping[str, Mapping[str, Any]]) -> dict[str, TransportResult]:
    """Every process's results, merged per transport in worker order (exact: sums and added histograms)."""
    per: dict[str, list[TransportResult]] = {}
    for msg in sorted(messages.values(), key=lambda m: int(m["worker"])):
        for name, obj in msg["results"].items():
            reported = list(msg["reported"].get(name, ()))
            per.setdefault(name, []).append(TransportResult.from_json(obj, reported_ids=reported))
    return {name: merge_all(results) for name, results in sorted(per.items())}


def worker_rows(messages: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per-worker counters, for the summary (``locust.workers``): the merge must equal their sum."""
    rows = []
    for msg in sorted(messages.values(), key=lambda m: int(m["worker"])):
        row: dict[str, Any] = {"worker": int(msg["worker"])}
        for name, obj in sorted(msg["results"].items()):
            row[name] = {k: int(obj["tracker"][k]) for k in COUNTERS}
        if msg.get("error"):
            row["error"] = str(msg["error"])
        rows.append(row)
    return rows


def run_header(scenario: Scenario, spec: RunSpec, messages: Mapping[str, Mapping[str, Any]], *, users: int,
               started: datetime, missing: Sequence[str], target_url: str, embedded: bool,
               locust_version: str) -> RunHeader:
    """The summary's header of a Locust run, in the hot path's schema.

    What Locust decides is written as it ran (``bench.results.summary.DRIVEN_KEYS``): the devices are its
    users (one device per user) and each device's plan lasts ``spec.duration_s`` (it covers the Locust
    run). The ``locust`` block holds the per-worker counters the merged figures sum from.

    Args:
        scenario: the scenario as the master parsed it (``spec.scenario_text``).
        spec: the run's spec (plan duration, endpoint).
        messages: every worker's ``nucleus_result`` that came, by node id.
        users: Locust's target user count.
        started: when the run started (UTC).
        missing: the workers whose result never came (their events are left out; ``error`` says so).
        target_url: the target's base URL.
        embedded: the target is the embedded reference target.
        locust_version: Locust's version.
    """
    error = f"no result from worker(s) {', '.join(missing)}" if missing else None
    return RunHeader(
        scenario=scenario, target_url=target_url, embedded=embedded, started=started,
        finished=datetime.now(UTC), processes=len(messages), error=error, devices=users,
        duration_s=spec.duration_s, driver="locust",
        driver_block={"version": locust_version, "users": users, "endpoint": spec.endpoint,
                      "workers": worker_rows(messages), "missing_workers": list(missing)})
