"""benchmarks/ runs from the repository root and is not part of the installed package."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from setuptools import find_packages
from timeouts import PROCESS_TIMEOUT_S

ROOT = Path(__file__).resolve().parents[2]
#: Every benchmark with a command line: ``python -m benchmarks.<name>``.
COMMANDS = ("client", "target", "target_stages", "plan_cost", "plan_speed", "tracker_cost", "locust_cost")


def test_the_package_is_bench_alone() -> None:
    """pyproject's package list finds bench and its subpackages, never benchmarks (``bench*`` would)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found = find_packages(str(ROOT), **config["tool"]["setuptools"]["packages"]["find"])
    assert "bench" in found
    assert [p for p in found if p != "bench" and not p.startswith("bench.")] == []


def test_the_package_never_imports_the_benchmarks() -> None:
    """bench/ is what users run: no module of it imports benchmarks (which is not installed with it)."""
    offenders = []
    for path in sorted(ROOT.glob("bench/**/*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "benchmarks"]
    assert offenders == []


@pytest.mark.parametrize("name", COMMANDS)
def test_each_benchmark_answers_help_from_the_root(name: str) -> None:
    """``python -m benchmarks.<name> --help`` from the repository root: exit 0, its command in the usage."""
    proc = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: python -m benchmarks.{name}")
