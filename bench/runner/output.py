"""The result files of a run and what the terminal shows at its end.

One run writes ``<out>/<UTC timestamp>-<scenario>/`` (results/README.md documents every file):
``summary.json`` (schema ``nucleus-bench/summary/1``), ``histograms.json`` (lossless), ``series-<t>.csv``,
``result-<t>.json`` (the lossless, mergeable ``TransportResult`` of each transport) and ``meta.json``.
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
from bench.runner.result import TransportResult, transport_summary

SUMMARY_SCHEMA = "nucleus-bench/summary/1"
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


def build_summary(results: Mapping[str, TransportResult], app_ids: Mapping[str, str],
                  header: Mapping[str, Any]) -> dict[str, Any]:
    """summary.json: the header (scenario, target, times) and one block per transport that ran."""
    transports = {}
    for name, result in results.items():
        transports[name] = {"app_id": app_ids.get(name)} | transport_summary(result)
    return {"schema": SUMMARY_SCHEMA, **header, "transports": transports,
            "ok": all(r.accounting().ok for r in results.values())}


def _dump(path: Path, obj: Any, *, compact: bool = False) -> None:
    """Write ``obj`` as JSON, whole or not at all; ``compact``: no indentation (files read by programs)."""
    tmp = path.with_name(path.name + ".tmp")
    text = (json.dumps(obj, separators=(",", ":"), default=str) if compact
            else json.dumps(obj, indent=2, sort_keys=False, default=str))
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)


def write_results(run_dir: Path, summary: Mapping[str, Any], results: Mapping[str, TransportResult],
                  meta: Mapping[str, Any]) -> None:
    """Write every file of the run; safe to call again (files are replaced whole)."""
    _dump(run_dir / "summary.json", summary)
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


# -- terminal ---------------------------------------------------------------------------------------
def _ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def transport_lines(name: str, block: Mapping[str, Any]) -> list[str]:
    """Plain-words end-of-run lines for one transport (accounting, saturation, loss, reconciliation)."""
    ev, lat, gen, rec = block["events"], block["ack_latency_us"], block["generator"], block["reconciliation"]
    cor, raw = lat["corrected"], lat["raw"]
    out = [f"{name}: {block['accounting']['line']}",
           f"{name}: {block['throughput']['events_per_s']:.0f} events/s acked, ack latency p50 "
           f"{_ms(cor['p50'])} ms p99 {_ms(cor['p99'])} ms (corrected), p99 {_ms(raw['p99'])} ms (raw); "
           f"{block['client']['cpu_us_per_event']:.1f} client CPU-us/event"]
    if gen["saturated"]:
        out.append(f"{name}: WARNING: the load generator could not keep its plan "
                   f"({'; '.join(gen['reasons'])}). The latency figures include the generator's own delay: "
                   "they are flagged, not the server's.")
    if ev["lost"] or ev["rejected"] or ev["duplicate_acks"] or ev["unknown_acks"]:
        out.append(f"{name}: lost {ev['lost']}, rejected {ev['rejected']}, duplicate acks "
                   f"{ev['duplicate_acks']}, unknown acks {ev['unknown_acks']}")
    if rec["done"]:
        out.append(f"{name}: reconciliation ({rec['method']}): stored {rec['stored']}, acked but not stored "
                   f"{rec['acked_not_stored']}, stored but never acked {rec['stored_not_acked']}, "
                   f"duplicates stored {rec['duplicates_stored']}")
    else:
        out.append(f"{name}: reconciliation not done ({rec['note']})")
    return out


def _latency_cell(key: str) -> Any:
    def cell(b: Mapping[str, Any]) -> str:
        lat = b["ack_latency_us"]
        return f"{_ms(lat['corrected'][key])} / {_ms(lat['raw'][key])}"
    return cell


#: (row label, getter over a transport block) of the side-by-side table.
_ROWS: tuple[tuple[str, Any], ...] = (
    ("events/s (acked)", lambda b: f"{b['throughput']['events_per_s']:.0f}"),
    *((f"ack {label} corrected / raw (ms)", _latency_cell(key))
      for label, key in (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99.9", "p999"), ("max", "max"))),
    ("delivery delay p50 / p99 (ms)",
     lambda b: f"{_ms(b['delivery_delay_us']['p50'])} / {_ms(b['delivery_delay_us']['p99'])}"),
    ("client CPU per 1k events (ms)", lambda b: f"{b['client']['cpu_us_per_event']:.1f}"),
    ("bytes per event", lambda b: f"{b['client']['bytes_per_event']:.0f}"),
    ("lost / rejected", lambda b: f"{b['events']['lost']} / {b['events']['rejected']}"),
    ("acked not stored / stored not acked",
     lambda b: (f"{b['reconciliation']['acked_not_stored']} / {b['reconciliation']['stored_not_acked']}"
                if b["reconciliation"]["done"] else "not done")),
    ("generator saturated", lambda b: "YES" if b["generator"]["saturated"] else "no"),
)


def comparison_table(summary: Mapping[str, Any]) -> Any:
    """A rich Table with one column per transport."""
    from rich.table import Table

    blocks = summary["transports"]
    table = Table(title=f"{summary['scenario']['name']}: WebSocket vs HTTP, same seeded events")
    table.add_column("")
    for name in blocks:
        table.add_column(name, justify="right")
    for label, get in _ROWS:
        table.add_row(label, *(get(b) for b in blocks.values()))
    return table
