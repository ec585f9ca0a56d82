"""Helpers of the compare tests: runs made of known per-second latencies, built with the real result types."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.metrics import Histogram, SecondSeries, TrackerResult
from bench.results.read import Run
from bench.results.summary import SUMMARY_SCHEMA, transport_summary
from bench.results.transport import TransportResult

#: The scenario block every synthetic run shares unless told otherwise (same load: paired seconds).
SCENARIO: dict[str, Any] = {"name": "synthetic", "path": "synthetic.toml", "seed": 1, "duration_s": 30.0,
                            "devices": 10, "rate": 1000.0, "per_device_rate": 100.0, "events_per_message": 1,
                            "http_flush_s": 1.0, "ack_timeout_s": 5.0}


def synthetic_run(seed: int, *, seconds: int = 30, per_second: int = 1000, scale: float = 1.0,
                  lost_per_second: int = 0, transport: str = "ws", name: str = "run",
                  scenario: dict[str, Any] | None = None) -> Run:
    """A run of ``seconds`` seconds, ``per_second`` events acked each, their corrected latency lognormal
    around ``scale`` ms and their raw latency half of it; ``lost_per_second`` more sent and lost each second.
    The histograms, series and summary are the real types, filled as a run fills them."""
    rng = np.random.default_rng(seed)
    corrected, raw, series = Histogram(), Histogram(), SecondSeries()
    for s in range(seconds):
        lat = rng.lognormal(np.log(1000.0 * scale), 0.4, size=per_second)
        one, half = Histogram(), Histogram()
        one.record_many(lat)
        half.record_many(lat / 2)
        corrected.merge(one)
        raw.merge(half)
        series.add_histogram("corrected", s, one)
        series.add_histogram("raw", s, half)
        series.add(s, sent=per_second + lost_per_second, acked=per_second, lost=lost_per_second)
    sent = seconds * (per_second + lost_per_second)
    tracker = TrackerResult(sent=sent, acked=seconds * per_second, lost=seconds * lost_per_second,
                            corrected=corrected, raw=raw, delivery=corrected.copy())
    result = TransportResult(transport=transport, planned_events=sent, tracker=tracker, series=series,
                             cpu_s=1.0, send_s=float(seconds), wall_s=seconds + 1.0)
    summary = {"schema": SUMMARY_SCHEMA, "scenario": dict(scenario or SCENARIO),
               "started_at": "2026-12-06T12:00:00+00:00",
               "transports": {transport: transport_summary(result)}}
    return Run(path=Path(f"/synthetic/{name}-{seed}"), summary=summary, results={transport: result})


def write_run(directory: Path, run: Run) -> Path:
    """Write ``run``'s files into ``directory`` as ``nucleus-bench run`` does (bench.results.files)."""
    from bench.results.files import write_results

    directory.mkdir(parents=True, exist_ok=True)
    write_results(directory, run.summary, run.results, {"seed": 1})
    return directory
