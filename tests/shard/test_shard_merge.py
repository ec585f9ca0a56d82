"""``run --shard I/N`` as separate processes, then ``nucleus-bench merge``: the merged run counts what one
process (here ``--processes 3``) counts on the same seeded stream, and the merge refuses, in one line,
what is not the N shards of one run."""

from __future__ import annotations

import csv
import json
import secrets
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from shard_helpers import SMOKE, bench, one_line_error, only_run, run_all, summary

from bench.cli import main
from bench.fleet import Plan
from bench.protocol.errors import UsageError
from bench.results.reconcile import fetch_json
from bench.results.shards import find_shards, parse_shard, select, wait_for_shards
from bench.scenario import Scenario, load_scenario
from bench.target.embedded import EmbeddedTarget

SHARDS = 3
TRANSPORTS = ("ws", "http")
#: Counters that depend only on the plan and a faultless target, not on timing.
EXACT = ("sent", "acked", "rejected", "lost", "in_flight", "planned", "duplicate_acks", "unknown_acks")
#: Wire counts that do too (HTTP's connections are per process: not among them).
WIRE = ("messages_sent", "heartbeats_sent", "bytes_sent", "unsent_events")


@dataclass(frozen=True)
class Runs:
    """Three shards run as three processes, their merge (a fourth), and one whole run on the same stream."""

    shards: Path  # the folder the shards wrote into
    merged: Path
    merge: subprocess.CompletedProcess[str]
    shard_runs: list[subprocess.CompletedProcess[str]]
    whole: Path
    ids: dict[str, tuple[str, str]]  # "shards" / "whole" -> (ws appId, http appId)
    target_url: str


def _ids() -> tuple[str, str]:
    return secrets.token_hex(12), secrets.token_hex(12)


@pytest.fixture(scope="module")
def runs(target: EmbeddedTarget, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    base = tmp_path_factory.mktemp("shard")
    ids = {"shards": _ids(), "whole": _ids()}
    common = ("--transport", "both", "--target", target.url, "--no-progress")
    shard_ids = ",".join(ids["shards"])
    shard_cmds = [bench("run", SMOKE, *common, "--shard", f"{i}/{SHARDS}", "--app-id", shard_ids,
                        "--out", str(base / "run"), *(("--processes", "2") if i == 0 else ()))
                  for i in range(SHARDS)]
    shard_runs = run_all(shard_cmds, base)  # at once, as the pods of an Indexed Job
    merge = run_all([bench("merge", str(base / "run"), "--out", str(base / "merged"))], base)[0]
    whole = run_all([bench("run", SMOKE, *common, "--processes", str(SHARDS), "--app-id",
                           ",".join(ids["whole"]), "--out", str(base / "whole"))], base)[0]
    assert whole.returncode == 0, whole.stderr
    return Runs(shards=base / "run", merged=only_run(base / "merged") if merge.returncode == 0 else base,
                merge=merge, shard_runs=shard_runs, whole=only_run(base / "whole"), ids=ids,
                target_url=target.url)


def _shard_dirs(runs: Runs) -> list[Path]:
    return sorted(p for p in runs.shards.iterdir() if (p / "summary.json").is_file())


def _by_type(url: str, app_id: str) -> dict[str, int]:
    stats = fetch_json(f"{url}/app/{app_id}/stats")
    by_type: dict[str, int] = stats["stored"]["by_type"]
    return by_type


def test_the_merged_shards_count_what_one_run_counts(runs: Runs) -> None:
    """Counters, wire counts, histogram totals and the target's stored events by type: the merge of three
    shard processes equals one --processes 3 run on the same seed, and reconciles exactly."""
    for proc in runs.shard_runs:
        assert proc.returncode == 0, proc.stderr
    assert runs.merge.returncode == 0, runs.merge.stderr
    assert f"merged {SHARDS} of {SHARDS} shards" in runs.merge.stderr
    merged, whole = summary(runs.merged), summary(runs.whole)
    assert merged["merged"]["merged"] == [0, 1, 2] and merged["merged"]["partial"] is False
    assert merged["processes"] == 4 and merged["ok"]  # shard 0 ran two processes
    histograms = json.loads((runs.merged / "histograms.json").read_text())["transports"]
    for k, name in enumerate(TRANSPORTS):
        got, want = merged["transports"][name], whole["transports"][name]
        assert got["app_id"] == runs.ids["shards"][k]
        assert {key: got["events"][key] for key in EXACT} == {key: want["events"][key] for key in EXACT}
        assert got["events"]["acked"] == got["events"]["planned"] > 0
        assert {key: got["wire"][key] for key in WIRE} == {key: want["wire"][key] for key in WIRE}
        if name == "ws":  # one connection per device
            assert got["wire"]["connects"] == want["wire"]["connects"] == 5
        for hist in ("corrected", "raw", "delivery"):
            h = histograms[name][hist]
            assert h["count"] + h["underflow"] + h["overflow"] == got["events"]["acked"], hist
        rec = got["reconciliation"]
        assert rec["done"] and rec["method"] == "reference" and rec["stored"] == got["events"]["acked"]
        assert (rec["acked_not_stored"], rec["stored_not_acked"], rec["duplicates_stored"]) == (0, 0, 0)
        url = runs.target_url
        assert _by_type(url, runs.ids["shards"][k]) == _by_type(url, runs.ids["whole"][k])
        with open(runs.merged / f"series-{name}.csv", newline="") as fh:
            assert sum(int(row["acked"]) for row in csv.DictReader(fh)) == got["events"]["acked"]


def test_each_shard_writes_a_shard_run_and_leaves_reconciliation_to_the_merge(runs: Runs) -> None:
    """A shard's run directory names its slice, carries the run's identity and its reported ids, and
    says it did not reconcile."""
    dirs = _shard_dirs(runs)
    assert [d.name.rsplit("-shard-", 1)[1] for d in dirs] == [f"{i}-of-{SHARDS}" for i in range(SHARDS)]
    planned = Plan(load_scenario(SMOKE)).expected_events()
    total = 0
    for i, run_dir in enumerate(dirs):
        doc = summary(run_dir)
        block = doc["shard"]
        assert (block["index"], block["count"], block["seed"]) == (i, SHARDS, 1)
        assert block["app_ids"] == dict(zip(TRANSPORTS, runs.ids["shards"], strict=True))
        assert doc["transports"]["ws"]["events"]["planned"] == Plan(
            load_scenario(SMOKE), shard=i, shards=SHARDS).expected_events()
        total += doc["transports"]["ws"]["events"]["planned"]
        for name in TRANSPORTS:
            rec = doc["transports"][name]["reconciliation"]
            assert not rec["done"] and "nucleus-bench merge" in rec["note"]
            ids = json.loads((run_dir / f"reported-ids-{name}.json").read_text())
            assert len(set(ids)) == doc["transports"][name]["events"]["acked"]
    assert total == planned


def test_a_shard_with_processes_runs_exactly_its_slice() -> None:
    """Shard I of N over M processes: process k's plan is shard I + N*k of N*M, and together they hold
    exactly the devices d with d % N == I."""
    scenario = Scenario(devices=23)
    for n in range(1, 5):
        for i in range(n):
            slice_devices = Plan(scenario, shard=i, shards=n).devices
            assert slice_devices == tuple(d for d in range(23) if d % n == i)
            for m in range(1, 4):
                parts = [Plan(scenario, shard=i + n * k, shards=n * m).devices for k in range(m)]
                assert sorted(d for part in parts for d in part) == list(slice_devices)


def _copy_shards(runs: Runs, dest: Path) -> list[Path]:
    """A copy of the three shard directories (the tests below change them, never the module's)."""
    out = []
    for src in _shard_dirs(runs):
        out.append(Path(shutil.copytree(src, dest / "run" / src.name)))
    return out


def _edit(run_dir: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc = summary(run_dir)
    change(doc)
    (run_dir / "summary.json").write_text(json.dumps(doc), encoding="utf-8")


def _merge(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    code = main(["merge", *map(str, args)])
    return code, capsys.readouterr().err


def _twin(dirs: list[Path], tmp: Path) -> list[Path]:
    return [*dirs, Path(shutil.copytree(dirs[0], tmp / "elsewhere" / dirs[0].name))]


def _other_seed(dirs: list[Path], tmp: Path) -> list[Path]:
    _edit(dirs[2], lambda d: d["shard"].update(seed=2))
    return dirs


def _unfinished(dirs: list[Path], tmp: Path) -> list[Path]:
    _edit(dirs[1], lambda d: d["transports"].pop("http"))
    return dirs


def _failed(dirs: list[Path], tmp: Path) -> list[Path]:
    _edit(dirs[1], lambda d: d.update(error="target http://x is unreachable"))
    return dirs


def _not_a_shard(dirs: list[Path], tmp: Path) -> list[Path]:
    _edit(dirs[0], lambda d: d.pop("shard"))
    return dirs


REFUSED: list[tuple[str, Callable[[list[Path], Path], list[Path]], str]] = [
    ("missing", lambda dirs, tmp: dirs[:2], "missing shard 2 of 3"),
    ("twin", _twin, "shard 0 of 3 twice"),
    ("other run", _other_seed, "shards of different runs"),
    ("unfinished", _unfinished, "has not finished (no results of http yet)"),
    ("failed", _failed, "stopped on an error: target http://x is unreachable"),
    ("not a shard", _not_a_shard, "is not a shard's run"),
    ("no such dir", lambda dirs, tmp: [tmp / "nowhere"], "no such directory"),
]


@pytest.mark.parametrize(("case", "make", "expected"), REFUSED, ids=[c[0] for c in REFUSED])
def test_merge_refuses_what_is_not_the_shards_of_one_run(
        runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str,
        make: Callable[[list[Path], Path], list[Path]], expected: str) -> None:
    """Missing, twin, foreign, unfinished or failed shards, or a run that is no shard: exit 2, one line,
    and nothing written."""
    dirs = make(_copy_shards(runs, tmp_path), tmp_path)
    code, err = _merge(capsys, *dirs, "--out", tmp_path / "merged", "--no-reconcile")
    assert code == 2
    assert expected in one_line_error(err)
    assert not (tmp_path / "merged").exists()


def test_partial_merge_marks_what_it_left_out_and_reconciles_its_own_shards(
        runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--partial without shard 2: the two others merged, the summary marked partial, and reconciliation
    compares only the stored ids of the merged shards' devices (none reported as dropped)."""
    dirs = _copy_shards(runs, tmp_path)
    code, err = _merge(capsys, dirs[0], dirs[1], "--partial", "--out", tmp_path / "merged")
    assert code == 0, err
    assert "merged 2 of 3 shards (partial: shards 2 left out)" in err
    doc = summary(only_run(tmp_path / "merged"))
    assert doc["merged"]["partial"] is True and doc["merged"]["missing"] == [2]
    parts = [summary(d)["transports"] for d in dirs[:2]]
    for name in TRANSPORTS:
        block = doc["transports"][name]
        assert block["events"]["acked"] == sum(p[name]["events"]["acked"] for p in parts)
        rec = block["reconciliation"]
        assert rec["done"] and rec["stored"] == block["events"]["acked"]
        assert (rec["acked_not_stored"], rec["stored_not_acked"]) == (0, 0)


def test_merge_waits_for_shards_still_writing(runs: Runs, tmp_path: Path) -> None:
    """--wait: shards appear one by one (and one first with only its WebSocket results) in a folder that
    did not exist; the wait ends once all three have finished, and not before (fake clock)."""
    sources = _copy_shards(runs, tmp_path / "src")
    folder = tmp_path / "shared"
    unfinished = Path(shutil.copytree(sources[2], tmp_path / "half" / sources[2].name))
    _edit(unfinished, lambda d: d["transports"].pop("http"))
    arrivals = [sources[0], unfinished, sources[1], sources[2]]
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds
        if arrivals:
            src = arrivals.pop(0)
            shutil.copytree(src, folder / src.name, dirs_exist_ok=True)

    found = wait_for_shards([folder], 60.0, clock=lambda: now[0], sleep=sleep)
    assert not arrivals and now[0] == 4.0
    assert select(found).indices() == [0, 1, 2]


def test_merge_wait_gives_up_in_time_and_names_the_missing_shard(runs: Runs, tmp_path: Path) -> None:
    """A shard that never comes: the wait ends at its deadline and the merge names it."""
    sources = _copy_shards(runs, tmp_path / "src")
    for src in sources[:2]:
        shutil.copytree(src, tmp_path / "shared" / src.name)
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    found = wait_for_shards([tmp_path / "shared"], 5.0, clock=lambda: now[0], sleep=sleep)
    assert now[0] == 5.0 and len(found) == 2
    with pytest.raises(UsageError, match="missing shard 2 of 3"):
        select(found)
    assert find_shards([tmp_path / "shared"])[0].info.count == 3


BAD_SPECS = [
    (("--shard", "3/3"), "0 <= I < N"),
    (("--shard", "1"), "expected I/N"),
    (("--shard", "a/b"), "expected I/N"),
    (("--shard", "0/0"), "N >= 1"),
    (("--shard", "0/6", "--target", "http://127.0.0.1:9", "--app-id", "a"), "more than the 5 devices"),
    (("--shard", "0/2"), "needs --target"),
    (("--shard", "0/2", "--target", "http://127.0.0.1:9"), "needs --app-id"),
    (("--shard", "0/2", "--target", "http://127.0.0.1:9", "--app-id", "a", "--verify-url", "http://127.0.0.1:9/n"),
     "give --verify-url to `nucleus-bench merge`"),
    (("--shard", "0/3", "--processes", "3", "--target", "http://127.0.0.1:9", "--app-id", "a"),
     "more than the 2 devices of the shard"),
]


@pytest.mark.parametrize(("args", "expected"), BAD_SPECS, ids=[" ".join(a) for a, _ in BAD_SPECS])
def test_a_bad_shard_run_exits_2_in_one_line_before_any_load(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], expected: str) -> None:
    """Malformed or out-of-range --shard, or a shard without the one target and appId it needs: exit 2,
    one line, no run directory (and nothing sent: the target named here listens nowhere)."""
    code = main(["run", SMOKE, *args, "--out", str(tmp_path / "out"), "--no-progress"])
    assert code == 2
    assert expected in one_line_error(capsys.readouterr().err)
    assert not any((tmp_path / "out").glob("*/summary.json"))


def test_parse_shard_takes_zero_based_indices() -> None:
    """I/N is 0-based (a Kubernetes Indexed Job's completion index): 0/1 and 3/4 are the ends."""
    assert parse_shard("0/1") == (0, 0 + 1) and parse_shard(" 3/4 ") == (3, 4)
    with pytest.raises(UsageError):
        parse_shard("4/4")


@pytest.mark.parametrize("how", ["verify-url", "no-reconcile", "unreachable target"])
def test_merge_reconciles_as_asked_or_says_it_did_not(runs: Runs, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str], how: str) -> None:
    """--verify-url: the stored count against the merged acked count; --no-reconcile, or a --target that
    does not answer: not done, and the note says why (the merge itself succeeds)."""
    args = {"verify-url": ["--verify-url", f"{runs.target_url}/app/{{appId}}/stats"],
            "no-reconcile": ["--no-reconcile"],
            "unreachable target": ["--target", "http://127.0.0.1:9", "--reconcile-timeout", "5"]}[how]
    code, err = _merge(capsys, runs.shards, "--out", tmp_path / "merged", *args)
    assert code == 0, err
    for name, block in summary(only_run(tmp_path / "merged"))["transports"].items():
        rec = block["reconciliation"]
        if how == "verify-url":
            assert rec["done"] and rec["method"] == "verify-url", name
            assert rec["stored"] == block["events"]["acked"] and "held no events before" in rec["note"]
        else:
            assert not rec["done"] and rec["note"], name
            assert ("--no-reconcile" in rec["note"]) == (how == "no-reconcile")


def test_merge_judges_the_whole_run_by_the_objective_the_shards_ran_with(
        runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Shards that ran with an objective record it, unjudged (met null, no verdict: a slice is not the fleet);
    the merge judges the merged figures by it, or by --slo-p99 over it: p99 <= 1 µs, which no ack meets, is
    missed on every transport (exit 3, a line each); without an objective nothing is judged (exit 0)."""
    dirs = _copy_shards(runs, tmp_path)
    recorded: dict[str, Any] = {"p99_us": 1.0, "max_loss": 0.0, "warmup_s": 0.5, "met": None,
                                "transports": {}}
    for run_dir in dirs:
        _edit(run_dir, lambda doc: doc.update(objective=recorded))
    code = main(["merge", str(tmp_path / "run"), "--out", str(tmp_path / "judged"), "--no-reconcile"])
    out = capsys.readouterr().out
    assert code == 3
    merged = summary(only_run(tmp_path / "judged"))
    objective = merged["objective"]
    assert (objective["p99_us"], objective["warmup_s"], objective["met"]) == (1.0, 0.5, False)
    for name in TRANSPORTS:
        verdict = objective["transports"][name]
        assert not verdict["met"] and verdict["sent"] == merged["transports"][name]["events"]["sent"]
        assert f"{name}: objective NOT met (" in out
    code, _ = _merge(capsys, tmp_path / "run", "--out", tmp_path / "flag", "--no-reconcile", "--warmup", "1s")
    assert code == 3 and summary(only_run(tmp_path / "flag"))["objective"]["warmup_s"] == 1.0
    code, err = _merge(capsys, runs.shards, "--out", tmp_path / "plain", "--no-reconcile")
    assert code == 0, err
    assert "objective" not in summary(only_run(tmp_path / "plain"))
    _edit(dirs[0], lambda doc: doc["objective"].update(p99_us="fast"))
    code, err = _merge(capsys, tmp_path / "run", "--out", tmp_path / "bad", "--no-reconcile")
    assert code == 2 and "summary.json: objective: not one a shard writes" in one_line_error(err), err


def test_a_shard_records_its_objective_and_leaves_the_verdict_to_the_merge(
        tmp_path: Path, target: EmbeddedTarget, capsys: pytest.CaptureFixture[str]) -> None:
    """run --shard with --slo-p99 0.001ms (1 µs, missed by any ack): the shard exits 0, writes the objective
    unjudged and says the merge judges it."""
    code = main(["run", SMOKE, "--shard", "0/2", "--target", target.url, "--app-id", secrets.token_hex(12),
                 "--duration", "2s", "--slo-p99", "0.001ms", "--warmup", "500ms",
                 "--out", str(tmp_path / "out"), "--no-progress"])
    assert code == 0
    assert "objective: not judged on a shard's slice" in capsys.readouterr().out
    objective = summary(only_run(tmp_path / "out"))["objective"]
    assert objective == {"p99_us": 1.0, "max_loss": 0.0, "warmup_s": 0.5, "met": None, "transports": {}}
