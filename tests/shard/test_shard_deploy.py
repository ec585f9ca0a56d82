"""deploy/k8s/indexed-job.yaml: the Kubernetes manifest of a distributed run is well formed, and its command
lines are ones nucleus-bench accepts: each pod's ``run --shard k/N`` and the merge step, read with the real
argument parser, and its scenario with the real scenario reader. (No cluster here: this checks what can be
checked without one.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.cli import build_parser
from bench.fleet import Plan
from bench.results.shards import parse_shard
from bench.scenario import load_scenario

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "indexed-job.yaml"
#: contract.md, "Endpoints": an appId is 1-64 characters of [A-Za-z0-9_-].
APP_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
INDEX_ANNOTATION = "metadata.annotations['batch.kubernetes.io/job-completion-index']"


@pytest.fixture(scope="module")
def docs() -> dict[str, dict[str, Any]]:
    """The manifest's documents by kind (and by name for the two Jobs)."""
    loaded = list(yaml.safe_load_all(MANIFEST.read_text(encoding="utf-8")))
    out: dict[str, dict[str, Any]] = {}
    for doc in loaded:
        assert doc["apiVersion"] and doc["metadata"]["name"], doc
        key = doc["metadata"]["name"] if doc["kind"] == "Job" else doc["kind"]
        assert key not in out, key
        out[key] = doc
    assert set(out) == {"ConfigMap", "PersistentVolumeClaim", "nucleus-bench-shards", "nucleus-bench-merge"}
    return out


def _container(job: dict[str, Any]) -> dict[str, Any]:
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    return dict(container)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def _expand(args: list[str], env: dict[str, str]) -> list[str]:
    """What the kubelet makes of $(VAR) in a container's args (every variable must be defined)."""
    def one(arg: str) -> str:
        return re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], arg)
    return [one(str(a)) for a in args]


def _shard_args(docs: dict[str, dict[str, Any]], index: int) -> tuple[Any, dict[str, Any]]:
    container = _container(docs["nucleus-bench-shards"])
    env = _env(container)
    values = {k: v for k, v in env.items() if isinstance(v, str)} | {"SHARD": str(index)}
    return build_parser().parse_args(_expand(container["args"], values)), env


def test_the_shard_job_is_an_indexed_job_of_n_pods_not_retried(docs: dict[str, dict[str, Any]]) -> None:
    """completions = parallelism = SHARDS, Indexed; a failed index is not run again; the pod learns its index
    from the completion-index annotation."""
    job = docs["nucleus-bench-shards"]["spec"]
    env = _env(_container(docs["nucleus-bench-shards"]))
    n = int(env["SHARDS"])
    assert job["completionMode"] == "Indexed" and job["completions"] == job["parallelism"] == n >= 2
    assert job["backoffLimitPerIndex"] == 0
    assert env["SHARD"] == {"fieldRef": {"fieldPath": INDEX_ANNOTATION}}


def test_every_pod_runs_its_shard_of_one_run(docs: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    """Pod k's command line parses as ``run --shard k/N`` with the run's one target, appId and folder, on
    the ConfigMap's scenario, which loads and has at least a device per shard."""
    n = int(_env(_container(docs["nucleus-bench-shards"]))["SHARDS"])
    scenario_text = docs["ConfigMap"]["data"]["scenario.toml"]
    path = tmp_path / "scenario.toml"
    path.write_text(scenario_text, encoding="utf-8")
    scenario = load_scenario(str(path))
    assert scenario.devices >= n and scenario.plannable() is None
    seen: set[int] = set()
    for k in range(n):
        args, env = _shard_args(docs, k)
        assert args.command == "run" and parse_shard(args.shard, scenario.devices) == (k, n)
        assert args.scenario == "/scenario/scenario.toml"
        assert args.target == env["TARGET"] and args.app_id == env["RUN"] and APP_ID.fullmatch(env["RUN"])
        assert args.out == f"/results/{env['RUN']}" and args.processes == 1
        seen.update(Plan(scenario, shard=k, shards=n).devices)
    assert seen == set(range(scenario.devices))


def test_the_pods_mount_the_shared_volume_and_the_scenario(docs: dict[str, dict[str, Any]]) -> None:
    """Both Jobs mount the one ReadWriteMany claim at /results; the shards mount the scenario's ConfigMap."""
    claim = docs["PersistentVolumeClaim"]
    assert "ReadWriteMany" in claim["spec"]["accessModes"]
    for name in ("nucleus-bench-shards", "nucleus-bench-merge"):
        pod = docs[name]["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
        assert volumes[mounts["/results"]]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    pod = docs["nucleus-bench-shards"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    assert volumes[mounts["/scenario"]]["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]


def test_the_merge_step_waits_for_the_same_run(docs: dict[str, dict[str, Any]]) -> None:
    """The merge Job's command line parses as ``merge /results/RUN --wait S`` for the shards' RUN, with the
    shards' image."""
    shards, merge = _container(docs["nucleus-bench-shards"]), _container(docs["nucleus-bench-merge"])
    run = _env(shards)["RUN"]
    assert _env(merge)["RUN"] == run and merge["image"] == shards["image"]
    args = build_parser().parse_args(_expand(merge["args"], {"RUN": run}))
    assert args.command == "merge" and args.dirs == [f"/results/{run}"] and args.wait > 0
    assert args.out.startswith(f"/results/{run}/") and not args.partial
    assert docs["nucleus-bench-merge"]["spec"]["backoffLimit"] == 0


def test_the_shards_serve_live_metrics_where_the_pod_says(docs: dict[str, dict[str, Any]]) -> None:
    """--metrics-port is the container's metrics port and the scrape annotation's, on every address."""
    args, _ = _shard_args(docs, 0)
    container = _container(docs["nucleus-bench-shards"])
    annotations = docs["nucleus-bench-shards"]["spec"]["template"]["metadata"]["annotations"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert args.metrics_port == ports["metrics"] == int(annotations["prometheus.io/port"])
    assert args.metrics_host == "0.0.0.0" and args.metrics_hold > 0
