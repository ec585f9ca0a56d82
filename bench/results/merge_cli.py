"""``nucleus-bench merge DIR...``: merge the shards of a distributed run into one run directory, exactly.

Each DIR is a shard's run directory (``run --shard I/N``) or a folder holding them. The merge refuses, in one
line, shards of different runs (scenario, seed, shard count, transports, appIds or target differ), two runs
of one shard, and a missing, unfinished or failed shard (``--partial`` merges the others and marks the
summary ``merged.partial``). The result is a normal run directory (results/README.md) whose counters and
histograms are the sums of the shards': what one process driving the whole fleet would have reported.
Then it reconciles the union of the shards' acknowledged ids against the target (``bench.results.shards``).

Only bench.results and below: it runs where the shards' files are, with no load generator.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.protocol.errors import UsageError
from bench.results import objective_flags
from bench.results.files import make_run_dir, run_meta, write_results
from bench.results.shards import (
    MergeSet,
    ReconcileRequest,
    ShardRun,
    find_shards,
    merged_header,
    merged_reconciliation,
    merged_results,
    select,
    wait_for_shards,
)
from bench.results.summary import summary_document
from bench.results.terminal import transport_lines
from bench.results.transport import TransportResult
from bench.results.verdict import (
    EXIT_OBJECTIVE_MISSED,
    Judge,
    all_met,
    objective_in_force,
    objective_line,
    warmup_of,
)
from bench.scenario import Objective

#: The end of ``merge --help`` (docs/ci.md has every command's).
EXIT_STATUS = ("exit status: 0 merged, every identity holding (and the objective met, if any); 1 an identity "
               "does not hold; 2 bad input, or shards that are not the shards of one run; 3 the merged run "
               "missed the objective.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dirs", nargs="+", metavar="DIR",
                        help="a shard's run directory, or a folder of them (other runs in it are skipped)")
    parser.add_argument("--out", metavar="DIR", default="results",
                        help="merged run in DIR/<UTC timestamp>-<scenario>-merged/ (default: results)")
    parser.add_argument("--partial", action="store_true",
                        help="merge the shards there are when some are missing or failed; the summary says "
                             "which (merged.partial)")
    parser.add_argument("--wait", type=float, default=0.0, metavar="S",
                        help="wait up to S seconds for every shard to finish writing (a merge step started "
                             "beside the shards); default 0: take the directories as they are")
    parser.add_argument("--target", metavar="URL",
                        help="reconcile against this URL instead of the target the shards recorded (the "
                             "same server, seen from where the merge runs)")
    parser.add_argument("--verify-url", metavar="URL",
                        help="reconcile by count: a URL answering the app's stored count ({appId} is "
                             "replaced); the app must have held nothing before the run")
    parser.add_argument("--no-reconcile", action="store_true", help="do not ask the target anything")
    parser.add_argument("--reconcile-timeout", type=float, default=10.0, metavar="S",
                        help="how long each answer of the target may take (default 10)")
    parser.add_argument("--stats-token", metavar="T",
                        help="bearer token for a remote reference target's stats")
    parser.add_argument("--insecure", action="store_true", help="skip TLS certificate checks (https)")
    objective_flags.add_arguments(parser, judged="the merged run",
                                  source="the objective the shards ran with, if any", missed="a miss exits 3",
                                  warmup="the shards'")


def _check(args: argparse.Namespace) -> None:
    if not args.wait >= 0:
        raise UsageError(f"--wait must be 0 or more seconds, not {args.wait}")
    if not args.reconcile_timeout > 0:
        raise UsageError(f"--reconcile-timeout must be positive, not {args.reconcile_timeout}")
    if args.no_reconcile and (args.target or args.verify_url):
        raise UsageError("--no-reconcile with --target or --verify-url: choose one")
    if args.target is not None:
        parts = urlsplit(args.target)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"--target {args.target!r}: expected the server's base URL, http(s)://host:port")


def _reconcile_request(args: argparse.Namespace, first: ShardRun) -> ReconcileRequest:
    target = None if args.no_reconcile or args.verify_url else (args.target or first.info.target)
    return ReconcileRequest(target_url=target.rstrip("/") if target else None, verify_url=args.verify_url,
                            insecure=args.insecure, token=args.stats_token, timeout_s=args.reconcile_timeout)


def _recorded_objective(shard: ShardRun) -> Objective | None:
    """The objective a shard ran with (its summary's ``objective``, unjudged), None when it had none.

    Raises:
        UsageError: the block is not one ``run --shard`` writes (one line naming the file).
    """
    recorded = shard.summary.get("objective")
    if recorded is None:
        return None
    try:
        return Objective(float(recorded["p99_us"]), float(recorded["max_loss"]), float(recorded["warmup_s"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{shard.path / 'summary.json'}: objective: not one a shard writes "
                         f"({exc!r})") from None


def _judge(args: argparse.Namespace, first: ShardRun) -> Judge | None:
    """The objective the merged run is judged by: the flags over the one the shards ran with (not judged on
    a slice); None when neither gives one."""
    ran = _recorded_objective(first)
    flags = objective_flags.read(args)
    objective = objective_in_force(ran, p99_s=flags.p99_s, max_loss=flags.max_loss, warmup_s=flags.warmup_s)
    if objective is None:
        return None
    sc = first.summary["scenario"]
    scale = float((sc.get("clients") or {}).get("time_scale", 1.0))  # the verdict reads real seconds
    ramp_s, duration_s = float(sc["ramp_s"]) / scale, float(sc["duration_s"]) / scale
    return Judge(objective, warmup_of(objective, ramp_s, duration_s))


def _shard_meta(run: ShardRun) -> dict[str, Any]:
    return {"index": run.info.index, "dir": str(run.path), "host": run.meta.get("host"),
            "command_line": run.meta.get("command_line"), "native": run.meta.get("native")}


def _meta(args: argparse.Namespace, selected: MergeSet) -> dict[str, Any]:
    """meta.json of the merge: this command's, plus each shard's host and command line (where it ran)."""
    first = selected.runs[0]
    meta = run_meta(argv=sys.argv, seed=first.info.seed,
                    scenario_path=str(first.summary["scenario"].get("path", "")),
                    extra={"target": first.summary["target"], "app_ids": dict(first.info.app_ids),
                           "shards": [_shard_meta(run) for run in selected.runs]})
    if "scenario" in first.meta:  # the file's digest as the shard read it (the merge may not have the file)
        meta["scenario"] = first.meta["scenario"]
    return meta


def merge(args: argparse.Namespace) -> tuple[dict[str, Any], Path, int]:
    """Find, check and merge the shards, reconcile, write. Returns (summary, run directory, shards merged)."""
    runs = wait_for_shards(args.dirs, args.wait) if args.wait > 0 else find_shards(args.dirs)
    selected = select(runs, partial=args.partial)
    first = selected.runs[0]
    request = _reconcile_request(args, first)
    results: dict[str, TransportResult] = {}
    for name, result in merged_results(selected).items():
        rec = merged_reconciliation(request, selected, first.info.app_ids[name], result)
        results[name] = dataclasses.replace(result, reconciliation=rec)
    header = merged_header(selected)
    judge = _judge(args, first)
    if judge is not None:
        header["objective"] = judge.to_json({name: judge.verdict(r) for name, r in results.items()
                                             if not r.interrupted})
    summary = summary_document(header, results, first.info.app_ids)
    started = datetime.fromisoformat(header["started_at"]).astimezone(UTC)
    run_dir = make_run_dir(args.out, f"{first.info.scenario}-merged", started)
    write_results(run_dir, summary, results, _meta(args, selected))
    return summary, run_dir, len(selected.runs)


def run(args: argparse.Namespace) -> int:
    _check(args)
    summary, run_dir, merged = merge(args)
    block = summary["merged"]
    line = f"nucleus-bench merge: merged {merged} of {block['shards']} shards"
    if block["partial"]:
        left = [*block["missing"], *(f["index"] for f in block["failed"])]
        line += f" (partial: shards {', '.join(map(str, sorted(left)))} left out)"
    print(line, file=sys.stderr)
    for name, transport in summary["transports"].items():
        for text in transport_lines(name, transport):
            print(text)
    verdicts = summary.get("objective", {}).get("transports", {})
    for name, verdict in verdicts.items():
        print(objective_line(name, verdict))
    print(f"results: {run_dir}")
    if not summary["ok"]:
        return 1
    return 0 if all_met(verdicts) else EXIT_OBJECTIVE_MISSED
