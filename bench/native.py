"""Which twins run the hot path's per-event steps: the C ones (``bench._native``) or the Python ones.

``bench/_native/*.c`` hold C twins of a few per-event steps (the plan's common event and a device's
timeline: ``track_run``, ``Ticks``; framing, the fast frame reader and the compact reply's parse:
``frame_masked``, ``read_frames``, ``parse_compact_ack``; the stamped socket read, the poller's pass and the
frame-and-send: ``recv_stamped``, ``poll_replies``, ``send_frame``); setup.py builds them where a C compiler
is found. Each step's Python twin stays beside its caller and gives the same results; tests compare them. Only
steps whose C twin pays in whole runs have one (the tracker's per-id dict work, the run's clock and the
merge of a shard's devices had twins that measured within the noise of whole runs: they are gone).

``twins`` is the one registry: chosen once per process, at import (``NUCLEUS_BENCH_PURE=1`` in the
environment selects the Python twins even when the C ones are built: ``make perf`` uses it to measure what
the C twins save, side by side). Each of its attributes is a C twin, or None where the Python twin runs;
their types come from the stub ``bench/_native.pyi`` alone. Callers read ``twins.<name>`` when they run
(never a copy taken at import), so ``switched`` turns every site at once: tests that compare the twins use
it (tests/conftest.py's ``twins`` fixture).

This module imports nothing of the package: every floor may use it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

#: The environment variable that turns the C twins off for a process (and the children it starts).
PURE_ENV = "NUCLEUS_BENCH_PURE"

Kind = Literal["c", "python"]
#: Both kinds, C first.
KINDS: tuple[Kind, ...] = ("c", "python")


def pure_requested() -> bool:
    """Whether this process's environment asks for the Python twins (``NUCLEUS_BENCH_PURE`` set, not 0)."""
    return os.environ.get(PURE_ENV, "") not in ("", "0")


def built() -> bool:
    """Whether ``bench._native`` was built (and imports)."""
    try:
        from bench import _native  # noqa: F401
    except ImportError:
        return False
    return True


class Twins:
    """The C twins in use, each None where its Python twin runs (all of them, or none: see ``use``)."""

    __slots__ = ("Ticks", "c", "frame_masked", "parse_compact_ack", "poll_replies", "read_frames",
                 "recv_stamped", "send_frame", "track_run")

    def __init__(self, kind: Kind | None = None) -> None:
        """``kind``: which twins; None: the C ones where built, unless ``NUCLEUS_BENCH_PURE`` says no."""
        self.use(kind if kind is not None else "python" if pure_requested() else "c")

    def use(self, kind: Kind) -> None:
        """Switch every site to the C twins (where built; else the Python ones) or to the Python twins."""
        c = kind == "c"
        if c:
            try:
                from bench import _native as m
            except ImportError:
                c = False
        # The attributes' types are the stub's (bench/_native.pyi): ``m.x if c else None``.
        self.c = c
        self.track_run = m.track_run if c else None
        self.Ticks = m.Ticks if c else None
        self.frame_masked = m.frame_masked if c else None
        self.read_frames = m.read_frames if c else None
        self.parse_compact_ack = m.parse_compact_ack if c else None
        self.recv_stamped = m.recv_stamped if c else None
        self.poll_replies = m.poll_replies if c else None
        self.send_frame = m.send_frame if c else None

    @property
    def kind(self) -> Kind:
        return "c" if self.c else "python"


#: The process's twins (see the module docstring).
twins = Twins()


def in_use() -> bool:
    """Whether this process runs the C twins."""
    return twins.c


@contextmanager
def switched(kind: Kind) -> Iterator[Twins]:
    """Every site runs ``kind``'s twins inside the block (the C ones only where built), then what it ran
    before. For tests that compare the twins, and benchmarks that time both."""
    before = twins.kind
    twins.use(kind)
    try:
        yield twins
    finally:
        twins.use(before)
