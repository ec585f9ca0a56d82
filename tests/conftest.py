"""Fixtures shared by every test: the real reference target on a free loopback port.

Fixtures:
    target: one ``EmbeddedTarget`` for the whole session: memory store, default limits, no faults. Tests
        share it, so each test should use its own appId (the ``app_id`` fixture) and read the counters of
        that app only (``GET /app/{appId}/stats``).
    target_factory: a function that starts a target with custom flags and returns it, started; every
        target it started is stopped when the test ends. Keyword arguments::

            target_factory()                                   # like ``target``, but the test's own
            target_factory(store=str(tmp_path / "t.sqlite3"))  # SQLite in a file
            target_factory(drop_ack_ratio=0.5, fault_seed=7)   # --drop-ack-ratio 0.5 --fault-seed 7
            target_factory(ack_delay_ms="uniform:10:50")       # any flag of ``nucleus-bench target``
            target_factory(extra_args=["--http-rate", "1"])    # raw flags, as they are

        ``store``, ``host``, ``port`` and ``startup_timeout_s`` go to ``EmbeddedTarget``; every other keyword
        ``name=value`` becomes ``--name-with-dashes value`` (``True`` gives the bare flag, ``None`` or
        ``False`` leaves it out).
    app_id: a fresh random appId for this test (24 lowercase hex characters, like real ones).
    twins / module_twins: the test (every test of the module) runs twice, with the C twins of
        ``bench.native`` (skipped where ``bench._native`` is not built) and with the Python twins; the value
        is "c" or "python". ``module_twins`` is for modules whose Hypothesis tests use it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from chromium import CHROMIUM

from bench import native
from bench.target.embedded import EmbeddedTarget

TargetFactory = Callable[..., EmbeddedTarget]

_EMBEDDED_KEYS = ("store", "host", "port", "startup_timeout_s")


def target_flags(flags: dict[str, Any]) -> list[str]:
    """``{"drop_ack_ratio": 0.5, "sync": "off"}`` -> ``["--drop-ack-ratio", "0.5", "--sync", "off"]``."""
    argv: list[str] = []
    for name, value in flags.items():
        if value is None or value is False:
            continue
        argv.append("--" + name.replace("_", "-"))
        if value is not True:
            argv.append(str(value))
    return argv


@pytest.fixture(scope="session")
def target() -> Iterator[EmbeddedTarget]:
    """The shared reference target (memory store, no faults); stopped at the end of the session."""
    with EmbeddedTarget(store="memory") as t:
        yield t


@pytest.fixture
def target_factory() -> Iterator[TargetFactory]:
    """Start targets with custom flags (see the module docstring); all are stopped after the test."""
    started: list[EmbeddedTarget] = []

    def start(*, extra_args: tuple[str, ...] | list[str] = (), **kwargs: Any) -> EmbeddedTarget:
        embedded = {k: kwargs.pop(k) for k in _EMBEDDED_KEYS if k in kwargs}
        t = EmbeddedTarget(extra_args=[*target_flags(kwargs), *extra_args], **embedded)
        started.append(t)
        return t.start()

    yield start
    for t in started:
        t.stop()


def _switch_twins(request: pytest.FixtureRequest) -> Iterator[native.Kind]:
    kind: native.Kind = request.param
    if kind == "c" and not native.built():
        pytest.skip("bench._native is not built (no C compiler at install)")
    with native.switched(kind):
        yield kind


@pytest.fixture(params=native.KINDS)
def twins(request: pytest.FixtureRequest) -> Iterator[native.Kind]:
    """The test with the C twins, then with the Python twins (see the module docstring)."""
    yield from _switch_twins(request)


@pytest.fixture(scope="module", params=native.KINDS)
def module_twins(request: pytest.FixtureRequest) -> Iterator[native.Kind]:
    """``twins`` for every test of a module at once (Hypothesis tests may use it)."""
    yield from _switch_twins(request)


@pytest.fixture
def app_id() -> str:
    """A fresh appId, so the counters a test reads are its own."""
    return secrets.token_hex(12)


@pytest.fixture
def chromium() -> Path:
    """Debian's headless Chromium for the page tests (reports, Locust's web UI), or a skip that says why."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: Debian's chromium is not installed (`make test` installs it "
                    "with apt-get where it can; else `apt-get install chromium` as root)")
    return CHROMIUM
