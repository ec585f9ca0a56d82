"""Reading a run directory back: the report's one I/O.

A run directory (results/README.md) holds ``summary.json``, ``histograms.json``, ``series-<t>.csv`` per
transport and ``meta.json``; a capacity search adds ``capacity.json``. ``read_run`` reads them into a
``RunFiles``, checking each file's form as it goes: a missing or broken file is a ``UsageError`` whose
one line names the file and what is wrong with it (the front door prints it and exits 2). What the figures
mean is the model's business (bench.report.model); this module only gets them off the disk intact.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.metrics import COLUMNS, LATENCY_COLUMNS, Histogram
from bench.protocol.errors import UsageError
from bench.results.files import SERIES_COLUMNS

SUMMARY = "summary.json"
HISTOGRAMS = "histograms.json"
META = "meta.json"
CAPACITY = "capacity.json"
#: The files that make a directory a run directory: a run's summary, a capacity search's result, or both.
MARKERS = (SUMMARY, CAPACITY)


@dataclass(frozen=True, slots=True)
class SecondRow:
    """One row of ``series-<t>.csv``: counts of one second of the run, its latencies in µs (None: none)."""

    second: int
    sent: int
    acked: int
    rejected: int
    lost: int
    bytes_sent: int
    ack_p50_us: float | None
    ack_p99_us: float | None
    ack_max_us: float | None
    lag_p99_us: float | None


@dataclass(frozen=True, slots=True)
class RunFiles:
    """What one run directory holds, read and checked for form.

    Attributes:
        path: the directory.
        summary: summary.json as decoded (None: a capacity-only directory).
        histograms: transport -> histogram name (corrected, raw, delivery, ...) -> histogram.
        series: transport -> its per-second rows, in order.
        meta: meta.json (None when absent: the report shows what it has).
        capacity: capacity.json as decoded (None when the run was no capacity search).
    """

    path: Path
    summary: Mapping[str, Any] | None = None
    histograms: Mapping[str, Mapping[str, Histogram]] = field(default_factory=dict)
    series: Mapping[str, tuple[SecondRow, ...]] = field(default_factory=dict)
    meta: Mapping[str, Any] | None = None
    capacity: Mapping[str, Any] | None = None

    @property
    def label(self) -> str:
        """How the report names this run: its directory's name."""
        return self.path.name


def read_json(path: Path) -> Any:
    """A JSON file, decoded; a missing, unreadable or malformed file is one line naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
                         ) from None


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UsageError(f"{where}: expected a JSON object, not {type(value).__name__}")
    return value


def read_histograms(path: Path, transports: list[str]) -> dict[str, dict[str, Histogram]]:
    """``histograms.json``: every histogram of the given transports, read back losslessly."""
    doc = _object(read_json(path), str(path))
    blocks = _object(doc.get("transports"), f"{path}: 'transports'")
    out: dict[str, dict[str, Histogram]] = {}
    for transport in transports:
        block = _object(blocks.get(transport), f"{path}: transports.{transport}")
        out[transport] = {name: Histogram.from_json(h, where=f"{path}: transports.{transport}.{name}")
                          for name, h in block.items()}
    return out


def _count(row: dict[str, str], column: str, where: str) -> int:
    text = row.get(column) or ""
    if not text.isdigit():
        raise UsageError(f"{where}: {column} {text!r} is not an integer >= 0")
    return int(text)


def _latency(row: dict[str, str], column: str, where: str) -> float | None:
    text = row.get(column) or ""
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # NaN, negative, or not a number at all
        raise UsageError(f"{where}: {column} {text!r} is not a latency in µs")
    return value


def _second_row(row: dict[str, str], where: str) -> SecondRow:
    counts = [_count(row, column, where) for column in ("second", *COLUMNS)]
    return SecondRow(*counts, *(_latency(row, column, where) for column in LATENCY_COLUMNS))


def read_series(path: Path) -> tuple[SecondRow, ...]:
    """``series-<t>.csv``: its rows, the header checked against the columns a run writes."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if tuple(reader.fieldnames or ()) != SERIES_COLUMNS:
                raise UsageError(f"{path}: the header must be {','.join(SERIES_COLUMNS)}")
            rows = [_second_row(row, f"{path}: line {reader.line_num}") for row in reader]
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"{path}: cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    return tuple(rows)


def read_run(path: str | os.PathLike[str]) -> RunFiles:
    """Every file of one run directory that the report reads, checked for form.

    Raises:
        UsageError: not a directory, no summary.json nor capacity.json in it, or a file that is missing
            (histograms and series of every transport the summary names) or broken.
    """
    run_dir = Path(path)
    if not run_dir.is_dir():
        what = "not a directory" if run_dir.exists() else "no such directory"
        raise UsageError(f"{run_dir}: {what}")
    if not any((run_dir / name).is_file() for name in MARKERS):
        raise UsageError(f"{run_dir}: neither {SUMMARY} nor {CAPACITY} there: not a run directory")
    capacity = _object(read_json(run_dir / CAPACITY), str(run_dir / CAPACITY)) \
        if (run_dir / CAPACITY).is_file() else None
    meta = _object(read_json(run_dir / META), str(run_dir / META)) if (run_dir / META).is_file() else None
    if not (run_dir / SUMMARY).is_file():
        return RunFiles(path=run_dir, meta=meta, capacity=capacity)
    summary = _object(read_json(run_dir / SUMMARY), str(run_dir / SUMMARY))
    transports = _object(summary.get("transports"), f"{run_dir / SUMMARY}: 'transports'")
    names = list(transports)
    return RunFiles(path=run_dir, summary=summary, histograms=read_histograms(run_dir / HISTOGRAMS, names),
                    series={t: read_series(run_dir / f"series-{t}.csv") for t in names},
                    meta=meta, capacity=capacity)


def latest_run(root: str | os.PathLike[str]) -> Path:
    """The run directory in ``root`` written last (its summary.json or capacity.json is the newest).

    Raises:
        UsageError: ``root`` is no directory, or holds no run directory.
    """
    folder = Path(root)
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such directory")
    newest: tuple[float, str, Path] | None = None
    for child in folder.iterdir():
        for name in MARKERS:
            try:
                stamp = (child / name).stat().st_mtime
            except OSError:
                continue
            if newest is None or (stamp, child.name) > newest[:2]:
                newest = (stamp, child.name, child)
    if newest is None:
        raise UsageError(f"{folder}: no run directory in it (none holds a {SUMMARY} or {CAPACITY})")
    return newest[2]
