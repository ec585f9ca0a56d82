"""Shards of a distributed run: which slice of the fleet a run drove, and the exact merge of the slices.

``nucleus-bench run --shard I/N`` drives the devices d with ``d % N == I`` (0-based I, the slice
``--processes N`` gives its process I; ``bench.fleet.Plan``), from the same seed, into the same appId as
every other shard of the run, and writes an ordinary run directory whose ``summary.json`` carries a
``shard`` block (``ShardInfo``) and which also holds ``reported-ids-<t>.json``. ``nucleus-bench merge``
(``bench.results.merge_cli``) finds those directories, checks that they are the N shards of one run, merges
their ``result-<t>.json`` exactly (counters add, histograms add bucket by bucket: ``merge_all``) and
writes one run directory whose figures are those one process would have reported for the whole fleet.

A shard cannot reconcile on its own: the other shards store into the same app while it runs. The merge
reconciles the union of the shards' reported ids against the target (``merged_reconciliation``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fleet import ID_STRIDE
from bench.protocol.errors import UsageError
from bench.protocol.events import EventId
from bench.results.reconcile import (
    FETCH_TIMEOUT_S,
    Reconciliation,
    compare_counts,
    compare_ids,
    fetch_json,
    fetch_stored_count,
    not_done,
    reconcile_reference,
    reference_stats,
    verify_url_for,
)
from bench.results.transport import TransportResult, merge_all
from bench.scenario import Scenario

#: The summary.json key of a shard's block, and of the block a merged run writes.
SHARD_KEY = "shard"
MERGED_KEY = "merged"
_SPEC = re.compile(r"(\d+)/(\d+)")


def parse_shard(text: str, devices: int | None = None) -> tuple[int, int]:
    """``"I/N"`` -> (I, N): shard I (0-based, as a Kubernetes Indexed Job numbers its pods) of N.

    Raises:
        UsageError: not two integers with 0 <= I < N, or more shards than ``devices``.
    """
    match = _SPEC.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"--shard {text!r}: expected I/N, shard I (0-based) of N shards: 0/4 ... 3/4")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or index >= count:
        raise UsageError(f"--shard {text}: need N >= 1 and 0 <= I < N (shards are numbered from 0)")
    if devices is not None and count > devices:
        raise UsageError(f"--shard {text}: {count} shards is more than the {devices} devices")
    return index, count


def scenario_digest(scenario: Scenario) -> str:
    """sha256 of everything of the scenario that shapes the plan, overrides applied, the path left out (two
    machines may keep the same file at different paths; a different ``--duration`` is a different run)."""
    fields = dataclasses.asdict(scenario)
    fields.pop("path")
    if fields.get("clients"):  # each shard dates its client devices' events from its own start
        fields["clients"].pop("epoch_ms", None)
    text = json.dumps(fields, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ShardInfo:
    """What a shard's ``summary.json`` says of it (``"shard": {...}``); all but ``index`` is the run's."""

    index: int
    count: int
    seed: int
    scenario: str
    scenario_digest: str
    transports: tuple[str, ...]
    app_ids: Mapping[str, str]
    target: str

    def run_key(self) -> dict[str, Any]:
        """What every shard of one run shares, in the order a mismatch is reported."""
        return {"count": self.count, "seed": self.seed, "scenario_digest": self.scenario_digest,
                "transports": list(self.transports), "app_ids": dict(self.app_ids), "target": self.target}

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "scenario": self.scenario, **self.run_key()}

    @classmethod
    def from_json(cls, obj: Any, where: str) -> ShardInfo:
        """Read ``to_json``'s form back (UsageError naming ``where`` on a malformed block)."""
        try:
            info = cls(index=int(obj["index"]), count=int(obj["count"]), seed=int(obj["seed"]),
                       scenario=str(obj["scenario"]), scenario_digest=str(obj["scenario_digest"]),
                       transports=tuple(str(t) for t in obj["transports"]),
                       app_ids={str(k): str(v) for k, v in dict(obj["app_ids"]).items()},
                       target=str(obj["target"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{where}: malformed shard block ({type(exc).__name__}: {exc})") from None
        if not 0 <= info.index < info.count:
            raise UsageError(f"{where}: shard {info.index} of {info.count} is out of range")
        return info


@dataclass(slots=True)
class ShardRun:
    """One shard's run directory as read back: its summary, meta and shard block."""

    path: Path
    summary: dict[str, Any]
    info: ShardInfo
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def error(self) -> str | None:
        """The run's one-line error (it stopped early: an unreachable target, Ctrl-C), or None."""
        error = self.summary.get("error")
        return str(error) if error else None

    def finished(self) -> bool:
        """Every transport of the run is written, or the run stopped on an error (it writes no more)."""
        return self.error is not None or set(self.summary.get("transports", {})) >= set(self.info.transports)

    def results(self) -> dict[str, TransportResult]:
        """Each transport's lossless result, its reported ids beside it (None when the file is missing)."""
        out = {}
        for name in self.info.transports:
            obj = read_json(self.path / f"result-{name}.json")
            ids_path = self.path / f"reported-ids-{name}.json"
            ids = read_json(ids_path) if ids_path.is_file() else None
            if ids is not None and not isinstance(ids, list):
                raise UsageError(f"{ids_path}: expected a JSON list of ids")
            try:
                out[name] = TransportResult.from_json(obj, reported_ids=ids)
            except (KeyError, TypeError, ValueError) as exc:
                raise UsageError(f"{self.path / f'result-{name}.json'}: not a transport result "
                                 f"({type(exc).__name__}: {exc})") from None
        return out


def read_json(path: Path) -> Any:
    """A JSON file, or one line saying why it cannot be read (UsageError)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"{path}: not JSON ({exc})") from None


def read_shard(path: Path) -> ShardRun | None:
    """The shard run in ``path``, or None when its summary has no shard block (not a shard's run)."""
    summary = read_json(path / "summary.json")
    block = summary.get(SHARD_KEY) if isinstance(summary, dict) else None
    if block is None:
        return None
    meta_path = path / "meta.json"
    meta = read_json(meta_path) if meta_path.is_file() else {}
    return ShardRun(path=path, summary=summary, info=ShardInfo.from_json(block, str(path / "summary.json")),
                    meta=meta if isinstance(meta, dict) else {})


def find_shards(dirs: Iterable[str | Path], *, must_exist: bool = True) -> list[ShardRun]:
    """The shard runs named by ``dirs``: a run directory itself, or a folder whose run directories are
    taken (those of shards; other runs beside them, a merged one included, are passed over).

    Raises:
        UsageError: a path that does not exist (when ``must_exist``), or a run directory named on its own
            that is not a shard's.
    """
    found: list[ShardRun] = []
    for arg in dirs:
        path = Path(arg)
        if (path / "summary.json").is_file():
            run = read_shard(path)
            if run is None:
                raise UsageError(f"{path} is not a shard's run (its summary.json has no shard block: "
                                 "run it with --shard I/N)")
            found.append(run)
        elif path.is_dir():
            children = sorted(p for p in path.iterdir() if (p / "summary.json").is_file())
            found += [run for run in map(read_shard, children) if run is not None]
        elif must_exist:
            raise UsageError(f"{path}: no such directory")
    return found


@dataclass(frozen=True, slots=True)
class MergeSet:
    """The shards a merge takes, by index, and those it leaves out (only with ``--partial``)."""

    count: int
    runs: tuple[ShardRun, ...]
    missing: tuple[int, ...] = ()
    failed: tuple[tuple[int, str], ...] = ()  # (index, why it is left out)

    @property
    def partial(self) -> bool:
        return bool(self.missing or self.failed)

    def indices(self) -> list[int]:
        return [run.info.index for run in self.runs]


def select(runs: Sequence[ShardRun], *, partial: bool = False) -> MergeSet:
    """Check that ``runs`` are the shards of one run and pick those to merge.

    Raises:
        UsageError: no shard; shards of different runs; two runs of one shard; a shard missing, unfinished
            or stopped on an error (without ``partial``: then they are left out and listed).
    """
    if not runs:
        raise UsageError("no shard's run found in the directories given")
    first = runs[0]
    for run in runs[1:]:
        _same_run(first, run)
    by_index: dict[int, ShardRun] = {}
    for run in runs:
        if (twin := by_index.get(run.info.index)) is not None:
            raise UsageError(f"shard {run.info.index} of {first.info.count} twice: {twin.path} and "
                             f"{run.path} (name one of them)")
        by_index[run.info.index] = run
    count = first.info.count
    missing = tuple(i for i in range(count) if i not in by_index)
    failed = tuple((i, _why_left_out(run)) for i, run in sorted(by_index.items()) if not _usable(run))
    if (missing or failed) and not partial:
        raise UsageError(_incomplete_line(count, missing, failed))
    kept = tuple(run for i, run in sorted(by_index.items()) if _usable(run))
    if not kept:
        raise UsageError(_incomplete_line(count, missing, failed).replace("give --partial", "nothing"))
    return MergeSet(count=count, runs=kept, missing=missing, failed=failed)


def _usable(run: ShardRun) -> bool:
    return run.error is None and run.finished()


def _why_left_out(run: ShardRun) -> str:
    if run.error is not None:
        return f"{run.path} stopped on an error: {run.error}"
    return f"{run.path} has not finished (no results of {', '.join(_unwritten(run))} yet)"


def _unwritten(run: ShardRun) -> list[str]:
    return [t for t in run.info.transports if t not in run.summary.get("transports", {})]


def _incomplete_line(count: int, missing: Sequence[int], failed: Sequence[tuple[int, str]]) -> str:
    parts = []
    if missing:
        parts.append(f"missing shard{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} "
                     f"of {count}")
    parts += [f"shard {i}: {why}" for i, why in failed]
    return "; ".join(parts) + " (give --partial to merge the others, marked partial)"


def _same_run(a: ShardRun, b: ShardRun) -> None:
    key_a, key_b = a.info.run_key(), b.info.run_key()
    for name, value in key_a.items():
        if key_b[name] != value:
            raise UsageError(f"shards of different runs: {a.path} has {name} {_show(value)}, {b.path} has "
                             f"{_show(key_b[name])}")


def _show(value: Any) -> str:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, dict | list) else str(value)


def merged_results(selected: MergeSet) -> dict[str, TransportResult]:
    """Each transport's exact merge over the selected shards, in shard order (reported ids joined; None
    when any shard kept none)."""
    per_run = [run.results() for run in selected.runs]
    out = {}
    for name in selected.runs[0].info.transports:
        parts = [results[name] for results in per_run]
        merged = merge_all(parts)
        if any(p.reported_ids is None for p in parts):
            merged = dataclasses.replace(merged, reported_ids=None)
        out[name] = merged
    return out


def merged_header(selected: MergeSet) -> dict[str, Any]:
    """The header of the merged summary.json: the shards' scenario and target, the run's span (first start,
    last finish), the processes of every shard, and the ``merged`` block (which shards, which are not)."""
    summaries = [run.summary for run in selected.runs]
    first = selected.runs[0]
    return {
        "scenario": summaries[0]["scenario"], "target": summaries[0]["target"],
        "started_at": min(s["started_at"] for s in summaries),
        "finished_at": max(s["finished_at"] for s in summaries),
        "processes": sum(int(s.get("processes", 1)) for s in summaries), "error": None,
        MERGED_KEY: {
            "shards": selected.count, "merged": selected.indices(), "missing": list(selected.missing),
            "failed": [{"index": i, "why": why} for i, why in selected.failed], "partial": selected.partial,
            "seed": first.info.seed, "scenario_digest": first.info.scenario_digest,
            "from": [str(run.path) for run in selected.runs],
        },
    }


@dataclass(frozen=True, slots=True)
class ReconcileRequest:
    """How ``merge`` reconciles: against the reference target at ``target_url``, or ``--verify-url``."""

    target_url: str | None = None
    verify_url: str | None = None
    insecure: bool = False
    token: str | None = None
    timeout_s: float = FETCH_TIMEOUT_S


def merged_reconciliation(request: ReconcileRequest, selected: MergeSet, app_id: str,
                          result: TransportResult) -> Reconciliation:
    """Reconcile one transport's merged result against what the target stored in its app.

    The reference target: every stored id against the union of the shards' reported ids (a partial merge
    keeps only the stored ids of its shards' devices: device = id // ID_STRIDE, shard = device % N).
    ``--verify-url``: the stored count against the merged acked count; there is no count from before the
    run, so the app must have held nothing before it (a fresh ``--app-id`` per run).
    """
    if request.verify_url is not None:
        if selected.partial:
            return not_done("partial merge: the stored count includes the left-out shards' events")
        after = fetch_stored_count(verify_url_for(request.verify_url, app_id), insecure=request.insecure,
                                   timeout_s=request.timeout_s)
        if isinstance(after, str):
            return not_done(after)
        rec = compare_counts(after, result.tracker.acked)
        return dataclasses.replace(rec, note=rec.note + "; assumes the app held no events before the run")
    if request.target_url is None:
        return not_done("not asked (--no-reconcile)")
    if any("clients" in run.summary.get("scenario", {}) for run in selected.runs):
        return not_done("client devices' ids collide, and each shard dated its events from its own start: "
                        "the merge cannot rebuild them to reconcile by event (a run on one machine does)")
    if result.reported_ids is None:
        return not_done("a shard's reported-ids file is missing: the acknowledged ids are not known")
    if not selected.partial:
        return reconcile_reference(request.target_url, app_id, result.reported_ids, insecure=request.insecure,
                                   token=request.token, timeout_s=request.timeout_s)
    return _reconcile_slices(request, selected, app_id, result.reported_ids)


def _reconcile_slices(request: ReconcileRequest, selected: MergeSet, app_id: str,
                      reported: list[EventId]) -> Reconciliation:
    """Reference reconciliation of a partial merge: only the stored ids of the merged shards' devices."""
    base = request.target_url or ""
    if reference_stats(base, app_id, insecure=request.insecure, token=request.token,
                       timeout_s=request.timeout_s) is None:
        return not_done(f"{base} did not answer /app/{app_id}/stats like the reference target")
    try:
        doc = fetch_json(f"{base.rstrip('/')}/app/{app_id}/stored-ids", insecure=request.insecure,
                         token=request.token, timeout_s=request.timeout_s)
    except (OSError, ValueError) as exc:
        return not_done(f"stored-ids could not be read: {exc}")
    ids = doc.get("ids") if isinstance(doc, dict) else None
    if not isinstance(ids, list):
        return not_done("stored-ids did not answer {\"ids\": [...]}")
    kept = set(selected.indices())
    mine = [i for i in ids if not isinstance(i, int) or (i // ID_STRIDE) % selected.count in kept]
    rec = compare_ids(mine, None, reported)
    return dataclasses.replace(rec, note=f"partial merge: only the stored ids of shards {sorted(kept)}")


def wait_for_shards(dirs: Sequence[str | Path], timeout_s: float, *, clock: Any = None, sleep: Any = None,
                    poll_s: float = 1.0) -> list[ShardRun]:
    """The shard runs in ``dirs`` once every shard of the run has finished, or as they are when
    ``timeout_s`` has passed (``select`` then names what is missing). Folders that do not exist yet are
    waited for too (a shared volume the shards have not written to).

    Args:
        clock, sleep: ``time.monotonic`` and ``time.sleep`` unless given (tests pass their own).
    """
    import time

    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    deadline = clock() + timeout_s
    while True:
        runs = find_shards(dirs, must_exist=False)
        if _all_finished(runs) or clock() >= deadline:
            return runs
        sleep(poll_s)


def _all_finished(runs: Sequence[ShardRun]) -> bool:
    if not runs:
        return False
    done = {run.info.index for run in runs if run.finished()}
    return done >= set(range(runs[0].info.count))
