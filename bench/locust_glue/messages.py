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

from bench.locust_glue.roster import LostWorker
from bench.locust_glue.runstate import RunSpec, RunState
from bench.metrics import COUNTERS
from bench.results.summary import RunHeader
from bench.results.transport import TransportResult, merge_all
from bench.scenario import Scenario

logger = logging.getLogger(__name__)

DRAIN_MSG = "nucleus_drain"
RESULT_MSG = "nucleus_result"
#: worker -> master when the worker starts: its ``Identity`` (user classes, locustfiles, version).
HELLO_MSG = "nucleus_hello"
#: master -> worker: the worker differs from the master (``{"reason": ...}``); it exits.
REFUSED_MSG = "nucleus_refused"
#: worker -> master: ``{run_id, devices}`` as each of its users starts a device.
RUNNING_MSG = "nucleus_running"


def result_message(run: RunState, worker: int) -> dict[str, Any]:
    """The ``nucleus_result`` payload of a drained run (JSON/msgpack-safe)."""
    results = run.results()
    for name, result in results.items():
        logger.info("nucleus-bench worker %d %s: %s", worker, name, result.accounting().line())
    return {"run_id": run.spec.run_id, "worker": worker, "devices": len(run.devices),
            "results": {name: r.to_json() for name, r in results.items()},
            "reported": {name: list(r.reported_ids or ()) for name, r in results.items()}}


def empty_message(run_id: str, worker: int, error: str) -> dict[str, Any]:
    """A result from a process that ran nothing this run (so the master need not wait for it)."""
    return {"run_id": run_id, "worker": worker, "devices": 0, "results": {}, "reported": {}, "error": error}


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
        row: dict[str, Any] = {"worker": int(msg["worker"]), "devices": int(msg.get("devices", 0))}
        for name, obj in sorted(msg["results"].items()):
            row[name] = {k: int(obj["tracker"][k]) for k in COUNTERS}
        if msg.get("error"):
            row["error"] = str(msg["error"])
        rows.append(row)
    return rows


def devices_run(messages: Mapping[str, Mapping[str, Any]], lost: Sequence[LostWorker]) -> int:
    """The devices that ran: every reporting process's count, plus what each lost worker last said it had
    started, or the users it was seen running if more (its own final count died with it)."""
    reported = sum(int(m.get("devices", 0)) for m in messages.values())
    return reported + sum(max(w.devices, w.users) for w in lost)


def lost_error(lost: Sequence[LostWorker]) -> str | None:
    """The summary's ``error`` when workers were lost: who, when, and what it means for the figures."""
    if not lost:
        return None
    return (f"{'; '.join(w.phrase() for w in lost)}: the events of "
            f"{'that worker' if len(lost) == 1 else 'those workers'} are not in these figures (the "
            f"target may have stored them: they count as stored but never acked)")


def run_header(scenario: Scenario, spec: RunSpec, messages: Mapping[str, Mapping[str, Any]], *, users: int,
               started: datetime, lost: Sequence[LostWorker], target_url: str, embedded: bool,
               locust_version: str, error: str | None = None) -> RunHeader:
    """The summary's header of a Locust run, in the hot path's schema.

    What Locust decides is written as it ran (``bench.results.summary.DRIVEN_KEYS``): the devices are the
    users that ran (one device per user: users Locust re-spawned or an Edit added count too) and each
    device's plan lasts ``spec.duration_s`` (it covers the Locust run). The ``locust`` block holds the
    per-worker counters the merged figures sum from and the workers that were lost.

    Args:
        scenario: the scenario as the master parsed it (``spec.scenario_text``).
        spec: the run's spec (plan duration, endpoint).
        messages: every worker's ``nucleus_result`` that came, by node id.
        users: the most users Locust ran at once.
        started: when the run started (UTC).
        lost: the workers that ran users but whose result never came (``error`` says so).
        target_url: the target's base URL.
        embedded: the target is the embedded reference target.
        locust_version: Locust's version.
        error: the run's error when it is not a lost worker (a worker's own partial result: its master).
    """
    return RunHeader(
        scenario=scenario, target_url=target_url, embedded=embedded, started=started,
        finished=datetime.now(UTC), processes=len(messages), error=error or lost_error(lost),
        devices=devices_run(messages, lost), duration_s=spec.duration_s, driver="locust",
        driver_block={"version": locust_version, "users": users, "endpoint": spec.endpoint,
                      "workers": worker_rows(messages), "missing_workers": [w.to_json() for w in lost]})
