"""`nucleus-bench run` says when the per-event steps run in Python because bench._native is not built."""

from __future__ import annotations

import pytest

from bench.native import PURE_ENV, in_use, switched
from bench.runner.app import note_twins


def test_a_missing_build_is_named(monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(PURE_ENV, raising=False)
    with switched("python"):  # as where the C file was never built
        note_twins()
        assert "bench._native is not built" in capsys.readouterr().err
        monkeypatch.setenv(PURE_ENV, "1")  # asked for: nothing to say
        note_twins()
    assert capsys.readouterr().err == ""


def test_nothing_is_said_when_the_c_twins_run(capsys: pytest.CaptureFixture[str]) -> None:
    if not in_use():
        pytest.skip("bench._native is not built here")
    note_twins()
    assert capsys.readouterr().err == ""
