"""gevent stays on the Locust side: ``import locust`` monkey-patches the whole process (STYLE.md, point 8)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from locust_harness import ROOT
from timeouts import PROCESS_TIMEOUT_S

#: Modules whose import would load gevent or patch the process.
GEVENT_SIDE = ("locust", "gevent", "geventhttpclient", "websocket")
#: The only places allowed to import them.
ALLOWED = ("bench/locust_glue/", "locustfiles/")
#: Modules of the Locust side that must stay importable without gevent (benchmarks.locust_cost runs Locust
#: as a child process from asyncio code).
PURE_GLUE = ("bench.locust_glue", "bench.locust_glue.gates", "bench.locust_glue.options",
             "bench.locust_glue.runstate", "bench.locust_glue.messages", "bench.locust_glue.roster",
             "bench.locust_glue.shadow", "bench.locust_glue.detail", "bench.locust_glue.live",
             "bench.locust_glue.tab", "bench.locust_glue.form", "benchmarks.locust_cost")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_locust_side_imports_locust_or_gevent() -> None:
    """No module outside bench/locust_glue and locustfiles imports locust, gevent or their clients."""
    offenders = []
    for path in sorted([*ROOT.glob("bench/**/*.py"), *ROOT.glob("benchmarks/**/*.py"),
                        *ROOT.glob("locustfiles/*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        if not rel.startswith(ALLOWED) and _imports(path) & set(GEVENT_SIDE):
            offenders.append(rel)
    assert offenders == []


def test_core_and_pure_glue_load_neither_gevent_nor_locust() -> None:
    """In a fresh interpreter the core packages and the pure glue modules import without gevent or locust."""
    modules = ("bench.protocol", "bench.scenario", "bench.fleet", "bench.metrics", *PURE_GLUE)
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            f"print(sorted(m for m in {GEVENT_SIDE!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=PROCESS_TIMEOUT_S, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_the_locust_side_never_loads_the_hot_path() -> None:
    """The plugin and every Locust-side module import no ``bench.runner`` module: results, merge and
    summary come from bench.results, the floor both front ends stand on."""
    modules = ("bench.locust_glue.plugin", "bench.locust_glue.users", "bench.locust_glue.collect",
               "bench.locust_glue.joining", *PURE_GLUE)
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[:2] == ['bench', 'runner']))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=PROCESS_TIMEOUT_S, check=True)
    assert out.stdout.strip() == "[]", out.stderr
