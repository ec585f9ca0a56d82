"""Reading a run directory back: the report's one I/O.

A run directory (results/README.md) holds ``summary.json``, the lossless ``result-<t>.json`` of each
transport (its histograms and its per-second series) and ``meta.json``; a capacity search leaves
``capacity.json``. The summary and the results are read by ``bench.results.read``, which ``compare`` and
``export`` stand on too; this module adds the two files only the report shows (meta and capacity) and the
capacity search's directory, which has no summary. A missing or broken file is a ``UsageError`` whose one
line names it (the front door prints it and exits 2). What the figures mean is the model's business
(bench.report.model); this module only gets them off the disk intact.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.protocol.errors import UsageError
from bench.results.read import Run
from bench.results.read import read_run as read_results

SUMMARY = "summary.json"
META = "meta.json"
CAPACITY = "capacity.json"
#: The files that make a directory a run directory: a run's summary, a capacity search's result, or both.
MARKERS = (SUMMARY, CAPACITY)
#: The UTC timestamp a run directory's name starts with (bench.results.files.utc_stamp).
_STAMP = re.compile(r"\d{8}T\d{6}Z")


@dataclass(frozen=True, slots=True)
class RunFiles:
    """What one run directory holds, read and checked for form.

    Attributes:
        path: the directory.
        run: summary.json and each transport's result (None: a capacity search's directory, no summary).
        meta: meta.json (None when absent: the report shows what it has).
        capacity: capacity.json as decoded (None when the run was no capacity search).
    """

    path: Path
    run: Run | None = None
    meta: Mapping[str, Any] | None = None
    capacity: Mapping[str, Any] | None = None

    @property
    def label(self) -> str:
        """How the report names this run: its directory's name."""
        return self.path.name

    @property
    def summary(self) -> Mapping[str, Any] | None:
        return self.run.summary if self.run is not None else None


def read_object(path: Path) -> dict[str, Any]:
    """A JSON file holding one object; a missing, unreadable or malformed file is one line naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
                         ) from None
    if not isinstance(value, dict):
        raise UsageError(f"{path}: expected a JSON object, not {type(value).__name__}")
    return value


def _optional(path: Path) -> dict[str, Any] | None:
    return read_object(path) if path.is_file() else None


def read_run(path: str | os.PathLike[str]) -> RunFiles:
    """Every file of one run directory that the report reads, checked for form.

    Raises:
        UsageError: not a directory, no summary.json nor capacity.json in it, or a file that is missing
            (each transport's result-<t>.json) or broken.
    """
    run_dir = Path(path)
    if not run_dir.is_dir():
        what = "not a directory" if run_dir.exists() else "no such directory"
        raise UsageError(f"{run_dir}: {what}")
    if not any((run_dir / name).is_file() for name in MARKERS):
        raise UsageError(f"{run_dir}: neither {SUMMARY} nor {CAPACITY} there: not a run directory")
    capacity, meta = _optional(run_dir / CAPACITY), _optional(run_dir / META)
    run = read_results(run_dir) if (run_dir / SUMMARY).is_file() else None
    return RunFiles(path=run_dir, run=run, meta=meta, capacity=capacity)


def _written(run_dir: Path) -> tuple[str, float, str] | None:
    """When a run directory was written, to order runs: its name's UTC timestamp (which survives a copy),
    then its newest marker file's time; None when it is no run directory."""
    times = [p.stat().st_mtime for p in (run_dir / name for name in MARKERS) if p.is_file()]
    if not times:
        return None
    stamp = _STAMP.match(run_dir.name)
    return (stamp.group(0) if stamp else "", max(times), run_dir.name)


def latest_run(root: str | os.PathLike[str]) -> Path:
    """The run directory in ``root`` started last (see ``_written``).

    Raises:
        UsageError: ``root`` is no directory, or holds no run directory.
    """
    folder = Path(root)
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such directory")
    runs = [(key, child) for child in folder.iterdir() if child.is_dir() and (key := _written(child))]
    if not runs:
        raise UsageError(f"{folder}: no run directory in it (none holds a {SUMMARY} or {CAPACITY})")
    return max(runs)[1]
