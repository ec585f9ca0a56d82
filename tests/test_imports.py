"""The core imports in a fresh interpreter without locust, gevent, aiohttp, websockets or uvloop.

DESIGN.md, "Floors": only transports, runner and target may load the network libraries, and only
locust_glue and locustfiles may load locust or gevent (``import locust`` monkey-patches the process).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from timeouts import PROCESS_TIMEOUT_S

#: The pure floors of the house plan.
CORE_MODULES = ("bench", "bench.protocol", "bench.metrics", "bench.fleet", "bench.scenario")
#: The results layer: both front ends stand on it, the Locust side too, so it must load none of them either.
RESULTS_MODULES = ("bench.results.transport", "bench.results.summary", "bench.results.files",
                   "bench.results.terminal", "bench.results.reconcile", "bench.results.ids",
                   "bench.results.shards", "bench.results.merge_cli")
#: Reading finished runs: compare and export never need a socket, a front end or Locust.
READER_MODULES = ("bench.results.read", "bench.compare.report", "bench.compare.cli", "bench.export.hdr",
                  "bench.export.cli")
#: The report reads result files only: it loads none of the front ends' libraries either.
REPORT_MODULES = ("bench.report.load", "bench.report.model", "bench.report.tables", "bench.report.plots",
                  "bench.report.html", "bench.report.markdown", "bench.report.write", "bench.report.cli")
#: What none of them may load, directly or through a dependency.
FORBIDDEN = ("locust", "gevent", "aiohttp", "websockets", "uvloop")
#: The repository root: the probe runs there so that ``bench`` imports from this tree.
ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
import importlib, importlib.util, json, sys
name, forbidden = sys.argv[1], sys.argv[2].split(",")
try:
    spec = importlib.util.find_spec(name)
except ModuleNotFoundError:  # a parent package is missing
    spec = None
if spec is not None:
    importlib.import_module(name)
print(json.dumps({"missing": spec is None,
                  "loaded": sorted(m for m in sys.modules if m.split(".")[0] in forbidden)}))
"""


def probe(module: str) -> dict[str, object]:
    """Import ``module`` in a fresh interpreter run from the repository root; what did it load?"""
    proc = subprocess.run([sys.executable, "-c", _PROBE, module, ",".join(FORBIDDEN)],
                          capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S, check=False, cwd=ROOT)
    assert proc.returncode == 0, f"importing {module} failed:\n{proc.stderr}"
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("module", CORE_MODULES + RESULTS_MODULES + READER_MODULES + REPORT_MODULES)
def test_core_module_loads_no_network_or_gevent_library(module: str) -> None:
    """Importing the module in a fresh interpreter leaves every forbidden library out of sys.modules."""
    result = probe(module)
    if result["missing"]:
        pytest.skip(f"{module} does not exist yet (written concurrently); this check runs once it does")
    assert result["loaded"] == [], f"importing {module} loaded {result['loaded']}"


def test_probe_detects_a_forbidden_import() -> None:
    """The probe itself works: importing a module that loads aiohttp is caught."""
    result = probe("aiohttp")
    if result["missing"]:
        pytest.skip("aiohttp is not installed")
    assert "aiohttp" in result["loaded"]  # type: ignore[operator]
