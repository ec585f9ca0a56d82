"""Per-second time series of a run: counters indexed by whole seconds since the run's start.

A row is a handful of ints, added to in place; the hot path can call ``add`` per message, though the
cheaper use is to add counter deltas once a second (e.g. the tracker's ``sent``/``acked``/``lost``
since the last tick). Series from several processes merge by adding second by second (exact).
"""

from __future__ import annotations

from typing import Any

from bench.metrics.errors import MetricsFormatError, req_dict

#: The counters of a row, in JSON column order (after "second").
COLUMNS: tuple[str, ...] = ("sent", "acked", "rejected", "lost", "bytes_sent")


class SecondSeries:
    """Counters per whole second since the run's start (second 0 is ``[0 s, 1 s)``)."""

    __slots__ = ("_rows",)

    def __init__(self) -> None:
        self._rows: dict[int, list[int]] = {}

    def add(self, second: int, *, sent: int = 0, acked: int = 0, lost: int = 0, bytes_sent: int = 0,
            rejected: int = 0) -> None:
        """Add counts to second ``second`` (>= 0).

        Raises:
            ValueError: ``second`` is negative (a clock not based on the run's start: a harness bug).
        """
        row = self._rows.get(second)
        if row is None:
            if second < 0:
                raise ValueError(f"second must be >= 0, not {second}")
            row = self._rows[second] = [0, 0, 0, 0, 0]
        row[0] += sent
        row[1] += acked
        row[2] += rejected
        row[3] += lost
        row[4] += bytes_sent

    def merge(self, other: SecondSeries) -> None:
        """Add ``other`` into this series, second by second."""
        rows = self._rows
        for second, theirs in other._rows.items():
            mine = rows.get(second)
            if mine is None:
                rows[second] = list(theirs)
            else:
                for k, value in enumerate(theirs):
                    mine[k] += value

    def __len__(self) -> int:
        """Number of seconds from 0 to the last second with a row (0 when empty)."""
        return max(self._rows) + 1 if self._rows else 0

    def totals(self) -> dict[str, int]:
        """Each counter summed over the whole series."""
        sums = [0] * len(COLUMNS)
        for row in self._rows.values():
            for k, value in enumerate(row):
                sums[k] += value
        return dict(zip(COLUMNS, sums, strict=True))

    def rows(self) -> list[dict[str, int]]:
        """One dict per second from 0 to the last, gaps filled with zeros: ``{"second", "sent", ...}``."""
        zero = [0] * len(COLUMNS)
        return [{"second": s, **dict(zip(COLUMNS, self._rows.get(s, zero), strict=True))}
                for s in range(len(self))]

    def to_json(self) -> dict[str, Any]:
        """Sparse: ``{"columns": ["second", ...], "rows": [[second, sent, ...], ...]}``, seconds with data."""
        return {"columns": ["second", *COLUMNS],
                "rows": [[s, *self._rows[s]] for s in sorted(self._rows)]}

    @classmethod
    def from_json(cls, obj: Any, *, where: str = "series") -> SecondSeries:
        """Read ``to_json``'s form back.

        Raises:
            MetricsFormatError: malformed, other columns, or a second listed twice.
        """
        obj = req_dict(obj, where)
        columns = ["second", *COLUMNS]
        if obj.get("columns") != columns:
            raise MetricsFormatError(f"{where}: columns must be {columns}, not {obj.get('columns')!r}")
        rows = obj.get("rows")
        if not isinstance(rows, list):
            raise MetricsFormatError(f"{where}: 'rows' must be a list")
        out = cls()
        for n, row in enumerate(rows):
            if (not isinstance(row, list) or len(row) != len(columns)
                    or any(type(v) is not int or v < 0 for v in row)):
                raise MetricsFormatError(f"{where}: row {n} must be {len(columns)} integers >= 0")
            if row[0] in out._rows:
                raise MetricsFormatError(f"{where}: row {n}: second {row[0]} is listed twice")
            out._rows[row[0]] = row[1:]
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecondSeries):
            return NotImplemented
        return self.rows() == other.rows()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"SecondSeries(seconds={len(self)}, totals={self.totals()})"


class SeriesRows:
    """Feeds a ``SecondSeries`` from cumulative totals: each call adds what changed since the last one."""

    __slots__ = ("_last", "series")

    def __init__(self, series: SecondSeries) -> None:
        self.series = series
        self._last = (0, 0, 0, 0, 0)

    def record(self, second: int, *, sent: int, acked: int, rejected: int, lost: int,
               bytes_sent: int) -> None:
        """Add the deltas of these totals to second ``second``; a second where nothing changed adds no row."""
        now = (sent, acked, rejected, lost, bytes_sent)
        d_sent, d_acked, d_rejected, d_lost, d_bytes = (a - b for a, b in zip(now, self._last, strict=True))
        self._last = now
        if d_sent or d_acked or d_rejected or d_lost or d_bytes:
            self.series.add(second, sent=d_sent, acked=d_acked, rejected=d_rejected, lost=d_lost,
                            bytes_sent=d_bytes)
