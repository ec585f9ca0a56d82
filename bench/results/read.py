"""Reading a run back: its directory, ``summary.json`` and each transport's ``result-<t>.json``.

What ``nucleus-bench compare`` and ``nucleus-bench export`` stand on: a run is the user's input as soon as it
is read back, so every defect (a missing file, broken JSON, another schema, a histogram of another layout) is
a ``UsageError`` of one line naming the file, never a traceback.

A *run* is a directory written by ``bench.results.files.write_results`` (or its ``summary.json``); a *set of
runs* is a directory whose sub-directories are runs (``results/`` after a few runs of one build), or one run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.protocol.errors import UsageError
from bench.results.summary import SUMMARY_SCHEMA
from bench.results.transport import TransportResult


@dataclass(frozen=True, slots=True)
class Run:
    """One run read back.

    Attributes:
        path: its directory.
        summary: summary.json, decoded.
        results: each transport's lossless result, in the summary's order.
    """

    path: Path
    summary: Mapping[str, Any]
    results: Mapping[str, TransportResult]

    def block(self, transport: str) -> Mapping[str, Any]:
        """The summary's ``transports.<transport>`` block."""
        block: Mapping[str, Any] = self.summary["transports"][transport]
        return block


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not JSON ({exc})") from None


def _run_dir(path: Path) -> Path:
    """The run directory of ``path``: the directory itself, or the one its summary.json is in."""
    if path.is_file() and path.name == "summary.json":
        return path.parent
    if not path.exists():
        raise UsageError(f"{path}: no such run directory")
    if not (path / "summary.json").is_file():
        raise UsageError(f"{path}: not a run directory (no summary.json in it)")
    return path


def read_run(path: str | Path) -> Run:
    """The run in directory ``path`` (or whose summary.json ``path`` is).

    Raises:
        UsageError: a file is missing or malformed, or the summary is of another schema (one line).
    """
    run_dir = _run_dir(Path(path))
    summary_path = run_dir / "summary.json"
    summary = _load_json(summary_path)
    if not isinstance(summary, dict) or summary.get("schema") != SUMMARY_SCHEMA:
        got = summary.get("schema") if isinstance(summary, dict) else type(summary).__name__
        raise UsageError(f"{summary_path}: schema {got!r}, expected {SUMMARY_SCHEMA!r}")
    blocks = summary.get("transports")
    if not isinstance(blocks, dict) or not blocks or not all(isinstance(b, dict) for b in blocks.values()):
        raise UsageError(f"{summary_path}: no transport blocks ('transports' is empty or malformed)")
    results = {name: _read_result(run_dir / f"result-{name}.json", name) for name in blocks}
    return Run(path=run_dir, summary=summary, results=results)


def _read_result(path: Path, transport: str) -> TransportResult:
    obj = _load_json(path)
    try:
        result = TransportResult.from_json(obj)
    except UsageError as exc:  # MetricsFormatError: it names what, the file says where
        raise UsageError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UsageError(f"{path}: not a transport result ({type(exc).__name__}: {exc})") from None
    if result.transport != transport:
        raise UsageError(f"{path}: holds transport {result.transport!r}, not {transport!r}")
    return result


def read_runs(path: str | Path) -> list[Run]:
    """The runs at ``path``: one run directory (or its summary.json), or a directory of run directories
    (each sub-directory with a summary.json is one; others are ignored), in name order.

    Raises:
        UsageError: nothing there is a run, or one of the runs is unreadable (one line).
    """
    p = Path(path)
    if p.is_dir() and not (p / "summary.json").exists():
        runs = sorted(d for d in p.iterdir() if (d / "summary.json").is_file())
        if not runs:
            raise UsageError(f"{p}: neither a run directory nor a directory of runs (no summary.json found)")
        return [read_run(d) for d in runs]
    return [read_run(p)]
