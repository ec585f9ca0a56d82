"""Polled reads run twice: in C (bench._native's poll_replies pass and recv_stamped), and in Python (the
poller's own loop, the socket's recvmsg, each reply through the protocol's data_received); frames are
written by bench._native's send_frame, or framed and written by the socket's send."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.transports import polled


@pytest.fixture(scope="module", params=["c", "python"])
def recv_twins(request: pytest.FixtureRequest) -> Iterator[str]:
    """"c": the C pass and ``recv_stamped`` (skipped where bench._native is not built); "python": the
    Python loop and ``recvmsg``."""
    if request.param == "c" and polled._recv_stamped is None:
        pytest.skip("bench._native is not built (no C compiler at install)")
    with pytest.MonkeyPatch.context() as monkeypatch:
        if request.param == "python":
            monkeypatch.setattr(polled, "_recv_stamped", None)
            monkeypatch.setattr(polled, "_poll_replies", None)
            monkeypatch.setattr(polled, "_send_frame", None)
        yield request.param
