"""Which twins run the hot path's per-event steps: the C ones (``bench._native``) or the Python ones.

``bench/_native.c`` holds C twins of a few per-event steps (the plan's common event, a device's timeline,
the merge of a shard's devices, framing, the fast frame reader, the compact reply's parse, the stamped
socket read, the tracker's per-id dict work); setup.py builds it where a C compiler is found. Each step's
Python twin stays beside its caller and gives the same results; tests compare them.
``NUCLEUS_BENCH_PURE=1`` in the environment makes a process use the Python twins even when the C ones are
built (read once, at import): ``make perf`` uses it to measure what the C twins save, side by side.
"""

from __future__ import annotations

import os
from types import ModuleType

#: The environment variable that turns the C twins off for a process (and the children it starts).
PURE_ENV = "NUCLEUS_BENCH_PURE"


def pure_requested() -> bool:
    """Whether this process's environment asks for the Python twins (``NUCLEUS_BENCH_PURE`` set, not 0)."""
    return os.environ.get(PURE_ENV, "") not in ("", "0")


def load() -> ModuleType | None:
    """``bench._native``, or None when it is not built or ``NUCLEUS_BENCH_PURE=1``."""
    if pure_requested():
        return None
    try:
        from bench import _native
    except ImportError:
        return None
    return _native


def in_use() -> bool:
    """Whether this process runs the C twins (checked where they are used: the plan's writer)."""
    from bench.fleet import device

    return device._track_run is not None
