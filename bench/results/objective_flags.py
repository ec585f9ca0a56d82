"""The objective's three flags (``--slo-p99``, ``--max-loss``, ``--warmup``): one definition for ``run``,
``capacity`` and ``merge``, which judge by them (``bench.results.verdict``).

Only stdlib and bench.protocol at module level: the commands' flag modules import it to build --help;
reading the flags loads bench.scenario.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from bench.protocol.errors import UsageError


@dataclass(frozen=True, slots=True)
class ObjectiveFlags:
    """What the command line says of the objective; None where it says nothing (the default applies)."""

    p99_s: float | None = None
    max_loss: float | None = None
    warmup_s: float | None = None


def add_arguments(parser: argparse.ArgumentParser, *, judged: str, source: str, warmup: str,
                  missed: str) -> None:
    """The three flags. ``judged``: what each verdict is of ("each transport's run"); ``source``: where the
    objective comes from when no flag gives it; ``warmup``: the warm-up when none is given; ``missed``: what
    a miss does."""
    parser.add_argument("--slo-p99", metavar="T",
                        help=f"the objective: ack latency p99 (from the intended send, after the warm-up) of "
                             f"{judged} at most T: 250ms, 1s; {missed} (default: {source})")
    parser.add_argument("--max-loss", metavar="SHARE",
                        help=f"the share of the events of {judged} that may be lost: 0, 0.001 or 0.1%% "
                             f"(default: {source}, else 0)")
    parser.add_argument("--warmup", metavar="D",
                        help=f"the first D of {judged} are left out of its latency (default: {warmup})")


def read(args: argparse.Namespace) -> ObjectiveFlags:
    """The flags parsed and checked.

    Raises:
        UsageError: a duration or share that is not one, or a p99 that is not positive.
    """
    from bench.scenario import parse_duration, parse_share

    p99 = parse_duration(args.slo_p99) if args.slo_p99 is not None else None
    if p99 is not None and not p99 > 0:
        raise UsageError(f"--slo-p99 must be positive, not {args.slo_p99}")
    return ObjectiveFlags(
        p99_s=p99, max_loss=parse_share(args.max_loss, "--max-loss") if args.max_loss is not None else None,
        warmup_s=parse_duration(args.warmup) if args.warmup is not None else None)
