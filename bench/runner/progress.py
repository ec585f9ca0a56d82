"""Live progress on stderr (rich), about twice a second: events/s, p50/p99, lost, errors, schedule lag.

The latency shown is the last whole second's ("now"), beside the run's p99 so far: a spike early in a run
would otherwise hold the run's figures up long after the server recovered.

Only the terminal sees it: nothing here feeds the results. Off with ``--no-progress`` or when stderr is
not a terminal.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any


class Progress:
    """A one-line live status for the transport that is running; a context manager."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label = label
        self.enabled = enabled and sys.stderr.isatty()
        self._live: Any = None
        self._last: tuple[float, int] | None = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.live import Live

            self._live = Live("", console=Console(stderr=True), auto_refresh=False, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._live is not None:
            self._live.__exit__(et, ev, tb)
            self._live = None

    def update(self, snap: dict[str, Any]) -> None:
        """Show one snapshot (cumulative counters; the rate is taken between snapshots)."""
        if self._live is None:
            return
        self._live.update(self.line(snap), refresh=True)  # no refresh thread: we update ~2/s

    def line(self, snap: dict[str, Any]) -> str:
        t, acked = float(snap["t"]), int(snap["acked"])
        rate = 0.0
        if self._last is not None and t > self._last[0]:
            rate = (acked - self._last[1]) / (t - self._last[0])
        self._last = (t, acked)
        p50, p99 = snap.get("p50_1s"), snap.get("p99_1s")
        if p50 is not None and p99 is not None:  # the last second's, and the run's tail so far
            latency = f"p50 {p50 / 1000:.2f} p99 {p99 / 1000:.2f} ms now, run p99 {snap['p99'] / 1000:.2f}"
        else:
            latency = f"p50 {snap['p50'] / 1000:.2f} p99 {snap['p99'] / 1000:.2f} ms"
        return (f"{self.label} {t:5.1f}s {rate:7.0f} ev/s  acked {acked}/{snap['sent']}  {latency}  "
                f"lost {snap['lost']}  err {snap['errors']}  lag p99 {snap['lag_p99'] / 1000:.1f} ms")
