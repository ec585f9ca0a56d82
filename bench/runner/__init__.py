"""The hot path: one scheduler per process drives a transport through a fleet's plan and measures it.

Library entry points (imported lazily, so ``import bench.runner.cli`` stays light for ``--help``):

- ``run_transport(RunConfig) -> TransportResult``: one transport over the whole fleet, sharded over
  ``RunConfig.processes`` processes and merged exactly (no reconciliation).
- ``run_shard_async(RunConfig, shard=, shards=)``: one shard inside a running event loop.
- ``execute(RunRequest) -> int``: the whole ``nucleus-bench run`` command.

What a run produced, and its files, are bench.results's (shared with the Locust side).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RunConfig": "bench.runner.engine",
    "run_shard": "bench.runner.engine",
    "run_shard_async": "bench.runner.engine",
    "run_transport": "bench.runner.procs",
    "TransportResult": "bench.results.transport",  # what run_transport returns
    "RunRequest": "bench.runner.app",
    "execute": "bench.runner.app",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bench.runner' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
