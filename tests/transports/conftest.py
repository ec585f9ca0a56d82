"""Polled reads run twice: with bench._native's recv_stamped (C), and with the socket's own recvmsg."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.transports import polled


@pytest.fixture(scope="module", params=["c", "python"])
def recv_twins(request: pytest.FixtureRequest) -> Iterator[str]:
    """"c": reads by ``recv_stamped`` (skipped where bench._native is not built); "python": ``recvmsg``."""
    if request.param == "c" and polled._recv_stamped is None:
        pytest.skip("bench._native is not built (no C compiler at install)")
    with pytest.MonkeyPatch.context() as monkeypatch:
        if request.param == "python":
            monkeypatch.setattr(polled, "_recv_stamped", None)
        yield request.param
