"""The result files of a run, and the directory and metadata they go with.

One run writes ``<out>/<UTC timestamp>-<scenario>/`` (results/README.md documents every file):
``summary.json`` (schema ``nucleus-bench/summary/1``), ``histograms.json`` (lossless), ``series-<t>.csv``,
``result-<t>.json`` (the lossless, mergeable ``TransportResult`` of each transport) and ``meta.json``; a
shard of a distributed run (``run --shard I/N``) also writes ``reported-ids-<t>.json``, the ids the server
acknowledged, which ``nucleus-bench merge`` reconciles for the whole run.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import socket
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.metrics import COLUMNS, LATENCY_COLUMNS
from bench.results.transport import TransportResult

HISTOGRAMS_SCHEMA = "nucleus-bench/histograms/1"
SERIES_COLUMNS = ("second", *COLUMNS, *LATENCY_COLUMNS)


def utc_stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def make_run_dir(root: str | os.PathLike[str], scenario_name: str, now: datetime) -> Path:
    """Create ``root/<UTC timestamp>-<scenario>/`` (``-2``, ``-3``... when it already exists)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in scenario_name) or "scenario"
    base = Path(root) / f"{utc_stamp(now)}-{safe}"
    path, n = base, 1
    while True:
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}-{n}")


def file_sha256(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return None


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def run_meta(*, argv: Sequence[str], seed: int, scenario_path: str,
             extra: Mapping[str, Any]) -> dict[str, Any]:
    """meta.json: versions, host, command line, seed, scenario path and sha256."""
    import bench

    versions: dict[str, str | None] = {"python": platform.python_version(),
                                       "nucleus-bench": bench.__version__}
    for dist in ("websockets", "aiohttp", "numpy", "uvloop", "orjson"):
        versions[dist] = _version(dist)
    from bench import native

    return {
        "versions": versions,
        "native": native.in_use(),  # bench._native's C twins ran the per-event steps
        "host": {"name": socket.gethostname(), "platform": platform.platform(), "machine": platform.machine(),
                 "cpus": os.cpu_count()},
        "command_line": list(argv), "executable": sys.executable, "seed": seed,
        "scenario": {"path": scenario_path, "sha256": file_sha256(scenario_path)},
        **extra,
    }


def _dump(path: Path, obj: Any, *, compact: bool = False) -> None:
    """Write ``obj`` as JSON, whole or not at all; ``compact``: no indentation (files read by programs)."""
    tmp = path.with_name(path.name + ".tmp")
    text = (json.dumps(obj, separators=(",", ":"), default=str) if compact
            else json.dumps(obj, indent=2, sort_keys=False, default=str))
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)


def write_results(run_dir: Path, summary: Mapping[str, Any], results: Mapping[str, TransportResult],
                  meta: Mapping[str, Any], *, reported_ids: bool = False) -> None:
    """Write every file of the run; safe to call again (files are replaced whole).

    ``summary.json`` goes last: a reader that sees a summary naming a transport finds every file of that
    transport already there (``nucleus-bench merge --wait`` relies on it while shards are still writing).
    ``reported_ids``: also write each transport's ``reported-ids-<t>.json`` (a shard's run).
    """
    if reported_ids:
        for name, result in results.items():
            if result.reported_ids is not None:
                _dump(run_dir / f"reported-ids-{name}.json", result.reported_ids, compact=True)
    _dump(run_dir / "histograms.json", {
        "schema": HISTOGRAMS_SCHEMA, "unit": "us",
        "transports": {n: {k: h.to_json() for k, h in r.histograms.items()} for n, r in results.items()},
    })
    for name, result in results.items():
        _dump(run_dir / f"result-{name}.json", result.to_json(), compact=True)  # per-second buckets: long
        with open(run_dir / f"series-{name}.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=SERIES_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            for row in result.series.rows():
                latency = result.series.latency(row["second"])
                writer.writerow({**row, **{k: "" if v is None else f"{v:.1f}" for k, v in latency.items()}})
    _dump(run_dir / "meta.json", meta)
    _dump(run_dir / "summary.json", summary)
