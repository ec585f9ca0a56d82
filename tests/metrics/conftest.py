"""The tracker's tests run twice: with bench._native's C twins of its per-id dict work, and without."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.metrics import tracker


@pytest.fixture(scope="module", params=["c", "python"])
def tracker_twins(request: pytest.FixtureRequest) -> Iterator[str]:
    """Module-wide (Hypothesis tests may use it): "c" runs the C twins (skipped where not built), "python"
    the Python lines they stand in for."""
    if request.param == "c" and (tracker._pending_add is None or tracker._pop_acked is None):
        pytest.skip("bench._native is not built (no C compiler at install)")
    with pytest.MonkeyPatch.context() as monkeypatch:
        if request.param == "python":
            monkeypatch.setattr(tracker, "_pending_add", None)
            monkeypatch.setattr(tracker, "_pop_acked", None)
        yield request.param
