"""The run directory and its files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bench.results.files import make_run_dir


def test_run_directories_never_collide(tmp_path: Path) -> None:
    """Two runs in the same second get -2 appended; names are filesystem-safe."""
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    first, second = make_run_dir(tmp_path, "my run/x", now), make_run_dir(tmp_path, "my run/x", now)
    assert first.name == "20250102T030405Z-my_run_x" and second.name == first.name + "-2"
