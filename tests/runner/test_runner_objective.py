"""``run`` with an objective (``--slo-p99``, ``--max-loss``, ``--warmup``, or the scenario's ``[objective]``):
each transport judged after its warm-up, the verdict in summary.json and on the terminal, exit 3 when missed.

The real reference target holds every ack a fixed 50 ms (``--ack-delay-ms``) or drops a seeded share of them
(``--drop-ack-ratio``), so the verdict each objective must reach is known before the run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from runner_helpers import FAST_SCENARIO, one_line_error, run_cli, write_scenario

from bench.protocol.errors import ScenarioError
from bench.results.transport import TransportResult
from bench.results.verdict import EXIT_OBJECTIVE_MISSED, objective_in_force, warmup_of
from bench.runner.app import exit_status
from bench.scenario import Objective, parse_scenario
from bench.target.embedded import EmbeddedTarget

TargetFactory = Callable[..., EmbeddedTarget]

DELAY_MS = 50
#: The per-second histograms' resolution (bench.metrics.SECOND_LAYOUT): a 50 ms ack reads back within 3.2 %.
RESOLUTION = 0.032


def test_an_objective_below_the_ack_delay_is_missed_on_both_transports(
        tmp_path: Path, target_factory: TargetFactory, capsys: pytest.CaptureFixture[str]) -> None:
    """p99 <= 10 ms against acks held 50 ms: both transports miss it on latency, the target the limit; the
    verdict's p99 is the delay's; exit 3 with every identity holding."""
    target = target_factory(ack_delay_ms=DELAY_MS)
    code, summary, _ = run_cli(tmp_path, write_scenario(tmp_path), "--transport", "both", "--target",
                               target.url, "--slo-p99", "10ms")
    out = capsys.readouterr().out
    assert code == EXIT_OBJECTIVE_MISSED and summary is not None and summary["ok"]
    objective = summary["objective"]
    assert (objective["p99_us"], objective["max_loss"], objective["met"]) == (10_000.0, 0.0, False)
    assert objective["warmup_s"] == pytest.approx(1.0)  # the scenario's 2 s: at most half of it
    for name in ("ws", "http"):
        verdict = objective["transports"][name]
        assert not verdict["met"] and verdict["limit"] == "target", verdict
        assert verdict["reason"].startswith("latency: p99 ") and verdict["reason"].endswith(" > 10.0 ms")
        assert verdict["p99_us"] >= DELAY_MS * 1000 * (1 - RESOLUTION) and verdict["samples"] > 0
        assert verdict["lost"] == 0 and verdict["sent"] == summary["transports"][name]["events"]["sent"]
        assert f"{name}: objective NOT met (target): latency: p99 " in out
    row = next(line for line in out.splitlines() if "objective " in line and "│" in line)  # the table's
    assert row.count("MISSED (target)") == 2, out


def test_an_objective_above_the_ack_delay_is_met(tmp_path: Path, target_factory: TargetFactory,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """p99 <= 5 s against acks held 50 ms, nothing lost: met, exit 0, said after the transport's lines."""
    target = target_factory(ack_delay_ms=DELAY_MS)
    code, summary, _ = run_cli(tmp_path, write_scenario(tmp_path), "--target", target.url, "--slo-p99", "5s",
                               "--warmup", "500ms")
    out = capsys.readouterr().out
    assert code == 0 and summary is not None
    verdict = summary["objective"]["transports"]["ws"]
    assert summary["objective"]["met"] and verdict["met"] and verdict["limit"] is None
    assert verdict["warmup_s"] == 0.5 and verdict["reason"].startswith("p99 ")
    assert "ws: objective met: p99 " in out and "(after a 0.5 s warm-up)" in out


def test_loss_misses_the_objective_unless_the_share_is_allowed(tmp_path: Path,
                                                               target_factory: TargetFactory) -> None:
    """A target that drops a seeded 30 % of its acks: those events are lost, so no loss allowed is missed
    on loss; --max-loss 60% allows them, and the same run meets the objective."""
    target = target_factory(drop_ack_ratio=0.3, fault_seed=5)
    scenario = write_scenario(tmp_path)
    code, summary, _ = run_cli(tmp_path / "strict", scenario, "--target", target.url, "--slo-p99", "1h")
    assert code == EXIT_OBJECTIVE_MISSED and summary is not None
    verdict = summary["objective"]["transports"]["ws"]
    lost = summary["transports"]["ws"]["events"]["lost"]
    assert lost > 0 and verdict["lost"] == lost and verdict["limit"] == "target"
    assert verdict["reason"].startswith(f"loss: {lost} of {verdict['sent']} events lost")
    code, summary, _ = run_cli(tmp_path / "lenient", scenario, "--target", target.url, "--slo-p99", "1h",
                               "--max-loss", "60%")
    assert code == 0 and summary is not None and summary["objective"]["max_loss"] == 0.6
    verdict, lost = summary["objective"]["transports"]["ws"], summary["transports"]["ws"]["events"]["lost"]
    assert lost > 0 and verdict["met"] and verdict["reason"].endswith(f" ms <= 3600 s, {lost} lost"), verdict


def test_the_scenarios_objective_is_used_and_the_command_line_overrides_it(
        tmp_path: Path, target_factory: TargetFactory) -> None:
    """[objective] p99 = "10ms" in the scenario is missed against a 50 ms delay; --slo-p99 5s replaces its
    p99 and keeps its warm-up."""
    target = target_factory(ack_delay_ms=DELAY_MS)
    scenario = write_scenario(tmp_path, FAST_SCENARIO + '\n[objective]\np99 = "10ms"\nwarmup = "300ms"\n')
    code, summary, _ = run_cli(tmp_path / "file", scenario, "--target", target.url)
    assert code == EXIT_OBJECTIVE_MISSED and summary is not None
    assert (summary["objective"]["p99_us"], summary["objective"]["warmup_s"]) == (10_000.0, 0.3)
    code, summary, _ = run_cli(tmp_path / "flag", scenario, "--target", target.url, "--slo-p99", "5s")
    assert code == 0 and summary is not None
    assert (summary["objective"]["p99_us"], summary["objective"]["warmup_s"]) == (5_000_000.0, 0.3)


def test_without_an_objective_nothing_is_judged(tmp_path: Path, target_factory: TargetFactory,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """No --slo-p99 and no [objective]: no verdict, no objective block, exit 0 even with acks held 50 ms."""
    target = target_factory(ack_delay_ms=DELAY_MS)
    code, summary, _ = run_cli(tmp_path, write_scenario(tmp_path), "--target", target.url)
    assert code == 0 and summary is not None and "objective" not in summary
    assert "ws: objective" not in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "names"), [
    (["--max-loss", "0.1"], "--max-loss needs an objective: --slo-p99, or the scenario's [objective] p99"),
    (["--warmup", "1s"], "--warmup needs an objective"),
    (["--slo-p99", "0ms"], "--slo-p99 must be positive"),
    (["--slo-p99", "soon"], "bad duration 'soon'"),
    (["--slo-p99", "1s", "--max-loss", "1.5"], "--max-loss '1.5': expected a share"),
    (["--slo-p99", "1s", "--warmup", "2s"], "the warm-up of 2s must be shorter than the run's 2s"),
])
def test_a_bad_objective_is_one_line_before_the_load(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     argv: list[str], names: str) -> None:
    code, summary, _ = run_cli(tmp_path, write_scenario(tmp_path), *argv)
    assert code == 2 and summary is None
    assert names in one_line_error(capsys)


@pytest.mark.parametrize(("table", "names"), [
    ('[objective]\nmax_loss = 0.1\n', "objective: an objective needs its p99"),
    ('[objective]\np99 = "-5ms"\n', "objective.p99: bad duration"),
    ('[objective]\np99 = "1s"\nmax_loss = 2\n', "objective.max_loss: 2 is out of range"),
    ('[objective]\np99 = "1s"\nwarmup = "5s"\n', "objective.warmup: the warm-up of 5s leaves nothing"),
    ('[objective]\np99 = "1s"\np999 = "2s"\n', "objective.p999: unknown key"),
])
def test_a_bad_objective_table_names_file_line_and_key(table: str, names: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(FAST_SCENARIO + "\n" + table, "fast.toml")
    text = str(caught.value)
    line = FAST_SCENARIO.count("\n") + 2  # the [objective] header's line
    assert text.startswith("fast.toml:") and names in text, text
    assert int(text.split(":")[1]) >= line, text


def test_the_command_line_overrides_each_value_of_the_scenarios_objective() -> None:
    from_file = Objective(p99_us=10_000.0, max_loss=0.01, warmup_s=3.0)
    assert objective_in_force(None) is None
    assert objective_in_force(from_file) == from_file
    assert objective_in_force(from_file, p99_s=0.5) == Objective(500_000.0, 0.01, 3.0)
    assert objective_in_force(from_file, max_loss=0.0, warmup_s=0.0) == Objective(10_000.0, 0.0, 0.0)
    assert objective_in_force(None, p99_s=0.25) == Objective(250_000.0, 0.0, None)
    # the default warm-up is the ramp + 2 s, at most half the run
    assert warmup_of(Objective(1.0), ramp_s=1.0, duration_s=60.0) == 3.0
    assert warmup_of(Objective(1.0), ramp_s=10.0, duration_s=8.0) == 4.0
    assert warmup_of(Objective(1.0, warmup_s=7.0), ramp_s=10.0, duration_s=8.0) == 7.0


def test_a_failed_identity_outranks_a_missed_objective() -> None:
    """Exit 1 (the figures do not add up) says more than exit 3 (they add up to a miss)."""
    done = [TransportResult.empty("ws")]
    assert exit_status(done, ok=False, met=False) == 1
    assert exit_status(done, ok=True, met=False) == EXIT_OBJECTIVE_MISSED
    assert exit_status(done, ok=True, met=True) == 0
