"""The core imports in a fresh interpreter without locust, gevent, aiohttp, websockets or uvloop.

DESIGN.md, "Floors": only transports, runner and target may load the network libraries, and only
locust_glue and locustfiles may load locust or gevent (``import locust`` monkey-patches the process).
"""

from __future__ import annotations

import ast
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
                   "bench.results.terminal", "bench.results.reconcile", "bench.results.ids")
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


@pytest.mark.parametrize("module", CORE_MODULES + RESULTS_MODULES)
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


#: DESIGN.md, "Floors", for the lower floors: a module imports only from floors below its own (and its own
#: package). ``bench`` (the version) and ``bench.native`` (which twins run) are the bottom floor.
FLOORS = {"bench": 0, "native": 0, "_native": 0, "protocol": 1, "scenario": 2, "fleet": 3, "metrics": 3,
          "transports": 4}


def _floor_of(module: str) -> tuple[str, int] | None:
    """(package, floor) of ``bench.<package>...`` when it is one of ``FLOORS``, else None."""
    parts = module.split(".")
    if parts[0] != "bench":
        return None
    name = parts[1] if len(parts) > 1 else "bench"
    return (name, FLOORS[name]) if name in FLOORS else None


def _imports(path: Path) -> list[str]:
    """Every ``bench`` module a file imports, at its top or inside a function."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            found += [f"{node.module}.{a.name}" for a in node.names]
    return [m for m in found if m.split(".")[0] == "bench"]


@pytest.mark.parametrize("package", [p for p in FLOORS if p not in ("bench", "_native")])
def test_lower_floors_import_only_from_below(package: str) -> None:
    """No module of a lower floor imports one of its own floor's other packages or of a floor above (no
    cycle through ``bench.native``: it imports nothing of the package)."""
    root = ROOT / "bench"
    single = root / f"{package}.py"
    files = [single] if single.exists() else sorted((root / package).rglob("*.py"))
    floor = FLOORS[package]
    bad = []
    for path in files:
        for module in _imports(path):
            target = _floor_of(module)
            if target is not None and target[0] != package and target[1] >= floor and target[1] > 0:
                bad.append(f"{path.relative_to(ROOT)} imports {module}")
            elif target is None and module.split(".")[1:2] and module.split(".")[1] not in FLOORS:
                name = module.split(".")[1]
                if (root / name).is_dir() or (root / f"{name}.py").exists():
                    bad.append(f"{path.relative_to(ROOT)} imports {module} (a higher floor)")
    assert bad == []
