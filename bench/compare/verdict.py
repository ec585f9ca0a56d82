"""Per metric, a verdict on NEW against BASELINE: regressed, improved, no change or inconclusive.

Each metric has a direction (lower or higher is better) and an allowance (``--max-regression``, 5 % unless
told). Its bootstrap interval (bench.compare.stats, confidence 95 % unless told) of the relative change
``NEW / BASELINE - 1`` decides, the change counted in the metric's bad direction:

- **regressed**: the whole interval is worse than the allowance: a regression beyond it, with confidence;
- **improved**: the whole interval is better than the allowance, mirrored;
- **no change**: the whole interval lies within the allowance either way;
- **inconclusive**: the interval reaches past the allowance without lying wholly beyond it (the runs cannot
  tell; longer or repeated runs can), or there were too few seconds to resample (``MIN_SECONDS``).

The metrics, per transport:

- throughput: events acked per second of the send phase (higher is better), the mean of its seconds;
- ack latency p50, p99, p99.9, corrected and raw (lower is better): percentiles of the seconds pooled, so the
  interval is about the run's own percentile, the one its summary shows;
- lost and rejected events, per event sent (lower is better): none in BASELINE and some in NEW is a
  regression outright, no statistics needed (and the reverse an improvement); with some on both sides, the
  share of the seconds pooled is resampled like the rest;
- bad acks (duplicate and unknown ids) and phantom acks (acknowledged, not stored: reconciliation), kept only
  as totals: the same zero rule, else a Poisson interval of the rate per event sent;
- client CPU per event: one figure per run, shown and not judged.
"""

from __future__ import annotations

import fnmatch
import functools
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from bench.compare import stats
from bench.compare.samples import LATENCIES, Seconds, Side

Better = Literal["lower", "higher"]
Verdict = Literal["regressed", "improved", "no change", "inconclusive", "not judged"]

#: Fewer seconds than this on a side and a bootstrap would only reshuffle a handful of numbers: no verdict.
MIN_SECONDS = 5
#: The latency percentiles judged, with their metric names' suffixes.
QUANTILES: tuple[tuple[float, str], ...] = ((50.0, "p50"), (99.0, "p99"), (99.9, "p99.9"))


def metric_keys() -> list[str]:
    """Every metric name, as ``--max-regression NAME=N%`` matches them (``fnmatch`` patterns)."""
    latency = [latency_key(name, label) for name in LATENCIES for _, label in QUANTILES]
    return ["throughput", *latency, "lost", "rejected", "bad-acks", "phantom-acks", "cpu-per-event"]


def latency_key(name: str, label: str) -> str:
    """The metric name of percentile ``label`` of latency ``name``: ``p99`` (corrected), ``raw-p99``."""
    return label if name == "corrected" else f"{name}-{label}"


@dataclass(frozen=True, slots=True)
class Allowance:
    """How much worse a metric may get before it is a regression: a default and per-metric overrides.

    Attributes:
        default: the relative allowance of every metric (0.05: 5 %).
        overrides: (pattern, allowance) pairs; the last pattern matching a metric name wins.
    """

    default: float = 0.05
    overrides: tuple[tuple[str, float], ...] = ()

    def of(self, key: str) -> float:
        value = self.default
        for pattern, allowance in self.overrides:
            if fnmatch.fnmatchcase(key, pattern):
                value = allowance
        return value


@dataclass(frozen=True, slots=True)
class Options:
    """How a comparison is made. ``seed``: the bootstrap's, so the same runs give the same verdicts."""

    allowance: Allowance = field(default_factory=Allowance)
    confidence: float = 0.95
    resamples: int = 2000
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Row:
    """One metric of one transport: both sides' figures, the change, its interval and the verdict."""

    transport: str
    key: str
    label: str
    better: Better
    base: str
    new: str
    change: float | None
    interval: tuple[float, float] | None
    allowance: float
    verdict: Verdict
    note: str = ""


def verdict_of(interval: tuple[float, float], better: Better, allowance: float) -> Verdict:
    """The verdict of an interval of ``NEW / BASELINE - 1`` (see the module docstring)."""
    lo, hi = interval
    worse_lo, worse_hi = (lo, hi) if better == "lower" else (-hi, -lo)
    if worse_lo > allowance:
        return "regressed"
    if worse_hi < -allowance:
        return "improved"
    if worse_lo >= -allowance and worse_hi <= allowance:
        return "no change"
    return "inconclusive"


def _rng(options: Options, transport: str, group: str) -> np.random.Generator:
    """A generator per metric group, seeded from the seed and the group's name: a metric's interval does
    not depend on which other metrics were computed before it."""
    return np.random.default_rng([options.seed, zlib.crc32(f"{transport}/{group}".encode())])


def _ratio(base: float, new: float) -> float | None:
    return new / base - 1.0 if base else None


def _judged(row: Row, interval: tuple[float, float] | None, note: str = "") -> Row:
    """``row`` with its interval and the verdict it gives (inconclusive without one)."""
    if interval is None:
        return replace(row, verdict="inconclusive", note=note or row.note)
    return replace(row, interval=interval, verdict=verdict_of(interval, row.better, row.allowance),
                   note=note or row.note)


Pair = tuple[stats.Floats, tuple[int, ...]]


def _sides(base: Seconds, new: Seconds, paired: bool) -> tuple[Pair, Pair]:
    """Each side's samples and seconds per run, aligned second by second when ``paired``."""
    if paired:
        b, n = base.aligned(new)
        return (b, (len(b),)), (n, (len(n),))
    return base.pooled(), new.pooled()


def _too_few(*sides: Seconds) -> str:
    few = [s.count for s in sides if s.count < MIN_SECONDS]
    return f"{min(few)} second(s) of samples, fewer than {MIN_SECONDS}: no interval" if few else ""


def _ms(us: float) -> str:
    return f"{us / 1000:.3f} ms"


def _ratio_of_sums(weights: stats.Floats, values: stats.Floats) -> stats.Floats:
    """Column 0 pooled over column 1 pooled (acked per second, lost per sent)."""
    return stats.pooled_ratios(weights, values[:, 0], values[:, 1])


def latency_rows(transport: str, base: Side, new: Side, options: Options, paired: bool) -> list[Row]:
    """The percentile rows of both latencies (corrected and raw) of one transport."""
    saturated = [name for name, side in (("BASELINE", base), ("NEW", new)) if side.saturated]
    flag = (f"generator saturated in {' and '.join(saturated)}: its own delay is in the latency"
            if saturated else "")
    rows: list[Row] = []
    for name in LATENCIES:
        rows += _latency_name_rows(transport, name, base, new, options, paired, flag)
    return rows


def _latency_name_rows(transport: str, name: str, base: Side, new: Side, options: Options, paired: bool,
                       note: str) -> list[Row]:
    """The percentile rows of latency ``name``: whole-run figures, per-second intervals."""
    qs = [q for q, _ in QUANTILES]
    b_fig, n_fig = base.whole[name].percentiles(qs), new.whole[name].percentiles(qs)
    b_has, n_has = base.whole[name].count > 0, new.whole[name].count > 0
    drafts = [Row(transport, latency_key(name, label), f"ack {label} ({name})", "lower",
                  _ms(b) if b_has else "-", _ms(n) if n_has else "-", _ratio(b, n) if b_has else None,
                  None, options.allowance.of(latency_key(name, label)), "inconclusive", note)
              for (_, label), b, n in zip(QUANTILES, b_fig, n_fig, strict=True)]
    b_sec, n_sec = base.latency_seconds[name], new.latency_seconds[name]
    if b_sec is None or n_sec is None:
        side = "BASELINE" if b_sec is None else "NEW"
        return [_judged(r, None, f"{side} kept no per-second {name} histograms (an older result)")
                for r in drafts]
    if _too_few(b_sec, n_sec):
        return [_judged(r, None, _too_few(b_sec, n_sec)) for r in drafts]
    (b_val, b_sizes), (n_val, n_sizes) = _sides(b_sec, n_sec, paired)
    (b_val, n_val), used = stats.trim(b_val, n_val)
    low, width = (a[used] for a in stats.bucket_bounds(base.layout))
    quantiles = functools.partial(_pooled_quantiles, low=low, width=width, qs=qs)
    b_rep, n_rep = stats.replicates(_rng(options, transport, name), quantiles, (b_val, b_sizes),
                                    (n_val, n_sizes), options.resamples, paired=paired)
    return [_judged(r, stats.change_interval(b_rep[:, k], n_rep[:, k], options.confidence))
            for k, r in enumerate(drafts)]


def _pooled_quantiles(weights: stats.Floats, values: stats.Floats, *, low: stats.Floats, width: stats.Floats,
                      qs: list[float]) -> stats.Floats:
    return stats.pooled_quantiles(weights, values, low, width, qs)


def throughput_row(transport: str, base: Side, new: Side, options: Options, paired: bool) -> Row:
    """Events acked per second of the send phase: the mean of its seconds, resampled."""
    row = Row(transport, "throughput", "events/s acked", "higher", f"{base.events_per_s:.1f}",
              f"{new.events_per_s:.1f}", _ratio(base.events_per_s, new.events_per_s), None,
              options.allowance.of("throughput"), "inconclusive")
    if _too_few(base.acked, new.acked):
        return _judged(row, None, _too_few(base.acked, new.acked))
    b, n = _sides(base.acked, new.acked, paired)
    b_rep, n_rep = stats.replicates(_rng(options, transport, "throughput"), _ratio_of_sums, b, n,
                                    options.resamples, paired=paired)
    return _judged(row, stats.change_interval(b_rep, n_rep, options.confidence))


def _zero_rule(row: Row, b: int, n: int) -> Row | None:
    """The verdict of a count that is zero on one side or both (no statistics needed); None otherwise."""
    if b == 0 and n == 0:
        return replace(row, change=0.0, verdict="no change")
    if b == 0:
        return replace(row, verdict="regressed", note="none in BASELINE, some in NEW")
    if n == 0:
        return replace(row, change=-1.0, verdict="improved", note="some in BASELINE, none in NEW")
    return None


def _share(count: int, sent: int) -> str:
    return f"{count} ({count / sent:.3%})" if sent else str(count)


def share_row(transport: str, key: str, label: str, base: Side, new: Side, options: Options,
              paired: bool) -> Row:
    """Lost or rejected events per event sent: the zero rule, else the pooled seconds' share resampled."""
    b, n = base.totals[key] or 0, new.totals[key] or 0
    b_sent, n_sent = base.totals["sent"] or 0, new.totals["sent"] or 0
    b_share, n_share = (b / b_sent if b_sent else 0.0), (n / n_sent if n_sent else 0.0)
    row = Row(transport, key, label, "lower", _share(b, b_sent), _share(n, n_sent), _ratio(b_share, n_share),
              None, options.allowance.of(key), "inconclusive")
    ruled = _zero_rule(row, b, n)
    if ruled is not None:
        return ruled
    b_sec, n_sec = getattr(base, key), getattr(new, key)
    if _too_few(b_sec, n_sec):
        return _judged(row, None, _too_few(b_sec, n_sec))
    b_s, n_s = _sides(b_sec, n_sec, paired)
    b_rep, n_rep = stats.replicates(_rng(options, transport, key), _ratio_of_sums, b_s, n_s,
                                    options.resamples, paired=paired)
    return _judged(row, stats.change_interval(b_rep, n_rep, options.confidence))


def total_row(transport: str, key: str, total: str, label: str, base: Side, new: Side,
              options: Options) -> Row | None:
    """Metric ``key``, the counter ``total`` kept only as a total: the zero rule, else a Poisson interval of
    its rate per event sent. None when a side does not have it (phantom acks of a run not reconciled)."""
    b, n = base.totals[total], new.totals[total]
    if b is None or n is None:
        return None
    b_sent, n_sent = base.totals["sent"] or 0, new.totals["sent"] or 0
    row = Row(transport, key, label, "lower", _share(b, b_sent), _share(n, n_sent),
              _ratio(b / max(b_sent, 1), n / max(n_sent, 1)), None, options.allowance.of(key), "inconclusive",
              "Poisson interval: kept as a total only")
    ruled = _zero_rule(row, b, n)
    if ruled is not None:
        return ruled
    rng = _rng(options, transport, key)
    b_rep = stats.poisson_rates(rng, b, max(b_sent, 1), options.resamples)
    n_rep = stats.poisson_rates(rng, n, max(n_sent, 1), options.resamples)
    return _judged(row, stats.change_interval(b_rep, n_rep, options.confidence))


def cpu_row(transport: str, base: Side, new: Side, options: Options) -> Row | None:
    """Client CPU per event: shown, not judged (one figure per run, no per-second samples)."""
    b, n = base.cpu_us_per_event, new.cpu_us_per_event
    if b is None or n is None:
        return None
    return Row(transport, "cpu-per-event", "client CPU µs/event", "lower", f"{b:.1f}", f"{n:.1f}",
               _ratio(b, n), None, options.allowance.of("cpu-per-event"), "not judged",
               "the harness's own cost, one figure per run")


def transport_rows(transport: str, base: Side, new: Side, options: Options, *, paired: bool) -> list[Row]:
    """Every metric of one transport, in the table's order; ``paired``: each side is one run of the same
    plan, their seconds resampled together (bench.compare.stats)."""
    rows = [throughput_row(transport, base, new, options, paired),
            *latency_rows(transport, base, new, options, paired),
            share_row(transport, "lost", "lost events", base, new, options, paired),
            share_row(transport, "rejected", "rejected events", base, new, options, paired)]
    for key, total, label in (("bad-acks", "bad_acks", "duplicate/unknown acks"),
                              ("phantom-acks", "phantom_acks", "acked, not stored")):
        row = total_row(transport, key, total, label, base, new, options)
        if row is not None:
            rows.append(row)
    cpu = cpu_row(transport, base, new, options)
    return rows + ([cpu] if cpu is not None else [])


def regressions(rows: Sequence[Row]) -> list[Row]:
    return [r for r in rows if r.verdict == "regressed"]
