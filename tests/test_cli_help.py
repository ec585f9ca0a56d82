"""Every subcommand's --help prints and exits 0 (argparse expands each help text with ``%``: a stray percent
sign in one is a traceback for whoever asks for help), and the commands a CI gates on end with their exit
statuses."""

from __future__ import annotations

import pytest

from bench.cli import SUBCOMMANDS, main


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_every_subcommands_help_prints(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ended:
        main([command, "--help"])
    assert ended.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: nucleus-bench {command}") and "options:" in out


@pytest.mark.parametrize(("command", "statuses"), [
    ("run", ("0 finished", "1 the accounting", "2 bad input", "3 the objective was missed", "4 a process",
             "130 / 143")),
    ("merge", ("0 merged", "1 an identity", "2 bad input", "3 the merged run missed")),
    ("capacity", ("0 the search ended", "1 a step's", "2 bad input", "130 Ctrl-C")),
    ("compare", ("0 no regression", "1 a metric regressed", "2 unusable input")),
])
def test_the_help_of_a_gating_command_ends_with_its_exit_statuses(
        command: str, statuses: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    tail = " ".join(capsys.readouterr().out.split("exit status:", 1)[1].split())
    assert all(s in tail for s in statuses), tail
