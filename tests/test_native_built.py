"""Where a C compiler is found, the install built bench._native and the hot path uses it.

setup.py marks the extension optional so that an install without a compiler still works (the Python twins
run). That must not hide a C file that stopped compiling: on a machine with a compiler, its absence is a
failure here.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sysconfig
from pathlib import Path

import pytest

from bench import native


def test_built_where_a_compiler_is_found() -> None:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc}) on this machine: the Python twins run")
    importlib.import_module("bench._native")  # ImportError: the C file no longer builds
    assert native.built()
    if os.environ.get(native.PURE_ENV, "") in ("", "0"):
        assert native.in_use() and native.twins.track_run is not None


def test_pure_env_turns_the_c_twins_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.PURE_ENV, "1")
    chosen = native.Twins()  # what a process started with it chooses
    assert not chosen.c and chosen.track_run is None and chosen.Ticks is None
    monkeypatch.delenv(native.PURE_ENV)
    assert native.Twins().c == native.built()


def test_the_c_side_names_no_python_attribute() -> None:
    """bench/_native/ gets the state it needs as arguments: no attribute of a Python object is read, written
    or called by name in C, so renaming a Python field cannot leave the C twin reading a stale one."""
    sources = sorted((Path(__file__).resolve().parents[1] / "bench" / "_native").glob("*.[ch]"))
    assert sources
    for path in sources:
        text = path.read_text()
        assert text.startswith("/* bench._native"), f"{path.name}: no header comment naming its twins"
        for call in ("PyObject_GetAttr", "PyObject_SetAttr", "PyObject_CallMethod", "InternFromString"):
            assert call not in text, f"{path.name} uses {call}"
