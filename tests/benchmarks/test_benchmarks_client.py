"""`python -m benchmarks.client` flags and table: checked before any case runs (nothing is measured here)."""

from __future__ import annotations

import multiprocessing
import os
import socket
import types

import pytest

from bench.protocol.errors import UsageError
from bench.target.embedded import EmbeddedTarget
from benchmarks import client
from benchmarks._cases import BY_KEY, FULL, QUICK, Sample
from benchmarks._report import Row, cpu_table, paced_line


def test_rates_parse_per_case() -> None:
    assert client.parse_rates(["hot-ws-1=30000", "hot-ws-paced=1.5,naive-ws-paced=1.5"]) == {
        "hot-ws-1": 30_000.0, "hot-ws-paced": 1.5, "naive-ws-paced": 1.5}
    assert client.parse_rates(None) == {}


@pytest.mark.parametrize(("item", "says"), [
    ("hot-ws-1", "give CASE=R"),
    ("bare-ws-1=5", "not a case whose rate can change"),
    ("wrk-http-10=5", "not a case whose rate can change"),
    ("nope=5", "not a case whose rate can change"),
    ("hot-ws-1=0", "R must be"),
    ("hot-ws-1=-3", "R must be"),
    ("hot-ws-1=abc", "R must be"),
    ("hot-ws-1=nan", "R must be"),
    ("hot-ws-1=1e9", "R must be"),
    ("hot-ws-1=5,hot-ws-1=6", "has a rate already"),
])
def test_bad_rates_are_refused(item: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        client.parse_rates([item])


def test_a_case_at_another_rate_drops_its_floors() -> None:
    case = BY_KEY["hot-ws-1"]
    assert case.floors
    moved = client.at_rate(case, 30_000.0)
    assert (moved.rate, moved.floors, moved.key) == (30_000.0, (), case.key)
    assert moved.label == "hot path WS, 1-event @ 30,000 msg/s"
    assert client.at_rate(case, None) is case
    paced = client.at_rate(BY_KEY["hot-ws-paced"].sized(FULL), 1.0)
    assert paced.label.endswith("@ 1/s per device")


def test_a_paced_fleet_smaller_than_its_floors_is_not_judged() -> None:
    """--quick runs the paced cases with 5,000 devices; their floor holds for 10,000 connections."""
    full, quick = BY_KEY["hot-ws-paced"].sized(FULL), BY_KEY["hot-ws-paced"].sized(QUICK)
    assert full.floors and full.devices == 10_000 and full.label == "hot path WS, paced, 10,000 dev"
    assert quick.floors == () and quick.devices == 5_000 and quick.label == "hot path WS, paced, 5,000 dev"


def test_bad_rate_flag_is_one_line_and_measures_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert client.main(["--rate", "bare-ws-1=5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("benchmarks.client: error: --rate 'bare-ws-1=5'")
    assert client.main(["--only", "hot-ws-1", "--rate", "hot-ws-10=5"]) == 2
    assert "'hot-ws-10' is not among the cases run" in capsys.readouterr().err


def _row(key: str, rate: float | None = None, us_per_msg: float = 30.0) -> Row:
    case = client.at_rate(BY_KEY[key].sized(FULL), rate)
    return Row(case, [Sample(1000, 1000, 1.0, us_per_msg * 1000 / 1e6)])


def test_table_fits_long_labels() -> None:
    rows = {k: _row(k, 30_000.0 if k == "hot-ws-1" else None) for k in ("bare-ws-1", "hot-ws-1",
                                                                          "plain-ws-paced")}
    lines = cpu_table(rows)
    starts = {line.index("1,000") for line in lines[2:5]}  # events/s column of every row
    assert len(starts) == 1
    moved = next(line for line in lines if line.startswith("hot path WS, 1-event @ 30,000 msg/s"))
    assert "NOT MET" not in moved and "<= 25 us/msg" not in moved  # its floors are not judged


def test_paced_comparison_needs_the_same_rate() -> None:
    same = {"hot-ws-paced": _row("hot-ws-paced", us_per_msg=50.0),
            "naive-ws-paced": _row("naive-ws-paced", us_per_msg=100.0)}
    line = paced_line(same)
    assert line is not None and "(2.00x)" in line
    moved = dict(same, **{"hot-ws-paced": _row("hot-ws-paced", 1.0, us_per_msg=50.0)})
    assert paced_line(moved) is None


def test_the_connect_gate_says_what_it_saw(target: EmbeddedTarget) -> None:
    """A paced run whose gate never opens names the target's count (real target), or why none was read."""
    sent: list[str] = []
    child = types.SimpleNamespace(conn=types.SimpleNamespace(send=sent.append))
    gate = client._ConnectGate(target.url, "0123456789abcdef01234567", 3)
    gate.tick(child)  # type: ignore[arg-type]
    assert not gate.said and not sent
    assert gate.why() == "gate never opened: the target counted 0 of 3 devices connected"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, not listening: connections refused
        gate = client._ConnectGate(closed, "0123456789abcdef01234567", 3)
        gate.tick(child)  # type: ignore[arg-type]
    assert gate.why().startswith("gate never opened: no count of connected devices read from the target; "
                                 "last read: URLError")


class _Link:
    """The parent's side as a gated window sees it: the word "every device is connected" comes at a time."""

    def __init__(self, word_at: float | None) -> None:
        self.word_at = word_at
        self.now = 0.0
        self.marks: list[str] = []

    def poll(self) -> bool:
        return self.word_at is not None and self.now >= self.word_at

    def wait(self) -> None:
        assert self.poll()

    def mark(self, name: str) -> None:
        self.marks.append(name)


@pytest.mark.parametrize(("word_at", "says"), [
    (None, "never came: the fleet was still connecting"),
    (15.4, "every device was connected at t=15.6 s"),
])
def test_a_gated_window_that_never_opens_says_when_the_fleet_was_connected(word_at: float | None,
                                                                         says: str) -> None:
    """A paced run's window opens 1 s after every device is connected: when that leaves less than a second
    before the window's end, it does not open (a window in the drain would measure no sending), and the error
    says when the fleet was connected (or that it never was)."""
    from bench.metrics import Histogram
    from benchmarks._hot import _Window

    link = _Link(word_at)
    window = _Window(link, 6.0, 16.0, profile=False, gate=True)  # type: ignore[arg-type]
    for step in range(36):  # the runner's progress, twice a second until 17.5 s
        link.now = t = step / 2
        window.on_progress({"t": t + 0.1, "sent": 100 * step, "schedule_lag": Histogram()})
    assert link.marks == []
    with pytest.raises(RuntimeError, match="never covered the window") as info:
        window.figures()
    assert says in str(info.value)


def _twins_in_use() -> bool:
    from bench import native

    return native.in_use()


def test_a_pure_case_runs_its_child_on_the_python_twins(monkeypatch: pytest.MonkeyPatch) -> None:
    """``_pure(True)`` sets NUCLEUS_BENCH_PURE for the children it starts (spawned, as the cases are) and
    restores the environment after; the child reports the Python twins in use."""
    from bench.native import PURE_ENV

    monkeypatch.delenv(PURE_ENV, raising=False)
    ctx = multiprocessing.get_context("spawn")
    with client._pure(True), ctx.Pool(1) as pool:
        assert os.environ[PURE_ENV] == "1"
        assert pool.apply(_twins_in_use) is False
    assert PURE_ENV not in os.environ
    monkeypatch.setenv(PURE_ENV, "0")
    with client._pure(False):
        assert os.environ[PURE_ENV] == "0"
    with client._pure(True):
        assert os.environ[PURE_ENV] == "1"
    assert os.environ[PURE_ENV] == "0"
