"""What a Locust run measures beyond the hot path's books: latency per event type, rejections by reason.

Pure: numpy and bench.metrics, no gevent, no locust.

The ack tracker (bench.metrics) times every event of a transport in one histogram; a device fleet mixes
``init``, ``event``, ``userid``, ``props`` and ``error`` events whose sizes and server paths differ. Each
device already remembers, per unanswered id, its event type and when it was first written (to name its
Locust row), so it can time each acknowledged event per type as well: ``raw`` from that first write,
``corrected`` from the plan's intended send, as the tracker's own (results/README.md). ``Detail`` keeps
those samples per type and folds them into µs histograms once a second, the tracker's own way.

Rejections are one counter in the tracker; ``Detail`` splits them by reason: events of a batch the server
refused, by HTTP status, and (the rest) ids a reply left out of its ``reportedIds``.

Everything travels as plain JSON (``to_json``) and merges exactly across processes (``merge_json``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from bench.metrics import Histogram

#: The two latencies kept per event type (the tracker's names).
KINDS = ("corrected", "raw")


class Detail:
    """One transport's per-event-type latencies and refused events, in one process."""

    def __init__(self) -> None:
        self.types: dict[str, dict[str, Histogram]] = {}
        self.refused: dict[int, int] = {}  # HTTP status -> events of the batches it refused
        self._buf: dict[str, tuple[list[int], list[int]]] = {}

    def acked(self, event_type: str, raw_ns: int, corrected_ns: int) -> None:
        """One acknowledged event: ack time - its first write (raw), - its intended send (corrected)."""
        buf = self._buf.get(event_type)
        if buf is None:
            buf = self._buf[event_type] = ([], [])
        buf[0].append(raw_ns)
        buf[1].append(corrected_ns)

    def refuse(self, status: int, events: int) -> None:
        """``events`` events rejected because their batch was refused with HTTP ``status``."""
        if events:
            self.refused[status] = self.refused.get(status, 0) + events

    def fold(self) -> None:
        """Move the buffered samples into the histograms (ns -> µs). Call about once a second."""
        for event_type, (raw, corrected) in self._buf.items():
            if not raw:
                continue
            hists = self.types.get(event_type)
            if hists is None:
                hists = self.types[event_type] = {kind: Histogram() for kind in KINDS}
            hists["raw"].record_many(np.array(raw, dtype=np.int64) / 1000.0)
            hists["corrected"].record_many(np.array(corrected, dtype=np.int64) / 1000.0)
            raw.clear()
            corrected.clear()

    def to_json(self) -> dict[str, Any]:
        """``{"types": {type: {kind: histogram}}, "refused": {status: events}}`` (fold first)."""
        types = {t: {k: h.to_json() for k, h in hists.items()} for t, hists in sorted(self.types.items())}
        return {"types": types,
                "refused": {str(status): n for status, n in sorted(self.refused.items())}}


def merge_json(parts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Several processes' ``Detail.to_json()`` of one transport added up (histograms bucket by bucket).

    Returns ``{"types": {type: {kind: Histogram}}, "refused": {status: events}}``.
    """
    types: dict[str, dict[str, Histogram]] = {}
    refused: dict[int, int] = {}
    for part in parts:
        for event_type, hists in part.get("types", {}).items():
            into = types.setdefault(str(event_type), {kind: Histogram() for kind in KINDS})
            for kind in KINDS:
                if kind in hists:
                    into[kind].merge(Histogram.from_json(hists[kind], where=f"{event_type} {kind}"))
        for status, n in part.get("refused", {}).items():
            refused[int(status)] = refused.get(int(status), 0) + int(n)
    return {"types": dict(sorted(types.items())), "refused": dict(sorted(refused.items()))}
