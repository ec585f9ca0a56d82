"""The report's model: run files in, the figures a reader looks for out. Pure: no I/O, no plotting.

A report has one *column* per transport of each run (``ws``, ``http``; with several runs, each run's
transports side by side), and for each: the headline figures (events sent, acked, lost; ack latency p50,
p99 and p99.9 from the intended send and from the actual write; throughput), the verdicts a reader must
not miss (accounting, generator saturation, loss, reconciliation, how the run ended), the percentile
spectrum of its histograms and its per-second rows. A capacity search adds one *curve* per transport: its
steps (offered load, p99, loss, verdict) and the knee.

The figures are those of the summary.json the run wrote (results/README.md), read through ``Doc``, which
names the file and the key of a value that is missing or of the wrong type: a hand-edited or truncated
file is one line, not a traceback. The spectra come from each transport's lossless histograms and the
per-second rows from its series (``result-<t>.json``, read and checked by bench.results.read).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.metrics import Histogram, SecondSeries
from bench.protocol.errors import UsageError
from bench.report.load import CAPACITY, SUMMARY, RunFiles

SUMMARY_SCHEMA = "nucleus-bench/summary/1"
CAPACITY_SCHEMA = "nucleus-bench/capacity/1"
#: The spectrum's deepest percentile: 1 - 10**-6 (99.9999 %), whatever the number of values.
SPECTRUM_NINES = 6.0
#: Points per decade of the spectrum's 1/(1 - q) axis.
SPECTRUM_POINTS_PER_DECADE = 40


class Doc:
    """A decoded JSON object read by key path; a missing or mistyped value raises one line naming the file
    and the value's full key (``summary.json: transports.ws.events.sent is missing``)."""

    __slots__ = ("file", "obj", "path")

    def __init__(self, obj: Any, file: str, path: tuple[str, ...] = ()) -> None:
        self.obj = obj
        self.file = file
        self.path = path

    @property
    def where(self) -> str:
        return f"{self.file}: {'.'.join(self.path)}" if self.path else self.file

    def _get(self, keys: tuple[str, ...]) -> Any:
        value = self.obj
        for depth, key in enumerate(keys):
            if not isinstance(value, dict) or key not in value:
                raise UsageError(f"{self.file}: {'.'.join(self.path + keys[:depth + 1])} is missing")
            value = value[key]
        return value

    def _bad(self, keys: tuple[str, ...], what: str, value: Any) -> UsageError:
        return UsageError(f"{self.file}: {'.'.join(self.path + keys)} must be {what}, not {value!r}")

    def sub(self, *keys: str) -> Doc:
        value = self._get(keys)
        if not isinstance(value, dict):
            raise self._bad(keys, "an object", value)
        return Doc(value, self.file, self.path + keys)

    def num(self, *keys: str) -> float:
        value = self._get(keys)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self._bad(keys, "a number", value)
        return float(value)

    def count(self, *keys: str) -> int:
        value = self._get(keys)
        if type(value) is not int or value < 0:
            raise self._bad(keys, "an integer >= 0", value)
        return value

    def flag(self, *keys: str) -> bool:
        value = self._get(keys)
        if not isinstance(value, bool):
            raise self._bad(keys, "true or false", value)
        return value

    def opt(self, *keys: str) -> Any:
        """The value, or None when absent (for keys a run may not write: driver, error, note)."""
        try:
            return self._get(keys)
        except UsageError:
            return None


@dataclass(frozen=True, slots=True)
class Latency:
    """One latency object of summary.json (µs): quantiles of the in-range values, out-of-range counts."""

    count: int
    p50: float
    p90: float
    p99: float
    p999: float
    max: float
    underflow: int
    overflow: int

    @classmethod
    def read(cls, doc: Doc) -> Latency:
        return cls(doc.count("count"), doc.num("p50"), doc.num("p90"), doc.num("p99"), doc.num("p999"),
                   doc.num("max"), doc.count("underflow"), doc.count("overflow"))


@dataclass(frozen=True, slots=True)
class Verdict:
    """One thing a reader must not miss. ``state``: ok, warn, fail, or none (not known: not done)."""

    name: str
    state: str
    text: str


@dataclass(frozen=True, slots=True)
class SecondRow:
    """One second of a run (results/README.md, ``series-<t>.csv``): its counts, and the ack latency from
    the intended send of the events acknowledged in it and the schedule lag of its sends, in µs (None: none).
    """

    second: int
    sent: int
    acked: int
    rejected: int
    lost: int
    bytes_sent: int
    ack_p50_us: float | None
    ack_p99_us: float | None
    ack_max_us: float | None
    lag_p99_us: float | None


def second_rows(series: SecondSeries) -> tuple[SecondRow, ...]:
    """Every second of the series, gaps as zeros, with its latencies: the rows of ``series-<t>.csv``."""
    out = []
    for row in series.rows():
        lat = series.latency(row["second"])
        out.append(SecondRow(row["second"], row["sent"], row["acked"], row["rejected"], row["lost"],
                             row["bytes_sent"], lat["ack_p50_us"], lat["ack_p99_us"], lat["ack_max_us"],
                             lat["lag_p99_us"]))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Spectrum:
    """The percentile spectrum of a histogram: ``values_us[k]`` is the ``percentiles[k]``-th percentile."""

    percentiles: tuple[float, ...] = ()
    values_us: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class Column:
    """One transport of one run: every figure the report shows of it.

    ``block`` is the transport's summary.json block, for the tables' less central rows.
    """

    run: str
    transport: str
    label: str
    sent: int
    acked: int
    rejected: int
    lost: int
    in_flight: int
    events_per_s: float
    corrected: Latency
    raw: Latency
    delivery: Latency
    events_per_cpu_s: float
    bytes_per_event: float
    saturated: bool
    verdicts: tuple[Verdict, ...]
    spectra: Mapping[str, Spectrum]
    series: tuple[SecondRow, ...]
    block: Doc

    @property
    def lost_share(self) -> float:
        """Lost and rejected events as a share of those sent (0 when none were sent)."""
        return (self.lost + self.rejected) / self.sent if self.sent else 0.0


@dataclass(frozen=True, slots=True)
class CapacityStep:
    """One step of a capacity search: the load offered, what it measured, and whether it passed."""

    rate: float
    devices: int | None
    p99_us: float | None
    lost: int
    errors: int
    ok: bool
    reason: str


@dataclass(frozen=True, slots=True)
class CapacityCurve:
    """One transport's capacity search: its steps in order of load, the knee (None: no step passed)."""

    run: str
    transport: str
    label: str
    steps: tuple[CapacityStep, ...]
    knee_rate: float | None
    knee_reason: str
    slo_p99_us: float | None


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One run: its label, how it ended, and the facts of its Run table, as (name, text) pairs."""

    label: str
    scenario: str
    started_at: str
    error: str | None
    facts: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Report:
    """Everything a report shows, in the order it shows it."""

    title: str
    runs: tuple[RunInfo, ...]
    columns: tuple[Column, ...]
    capacity: tuple[CapacityCurve, ...]


# -- spectra ---------------------------------------------------------------------------------------------
def spectrum(h: Histogram) -> Spectrum:
    """The HDR-style percentile spectrum of ``h``: percentiles evenly spaced on a log scale of 1/(1 - q),
    from 0 % to the last rank the histogram's values can tell (1 - 1/count), at most 99.9999 %."""
    if h.count == 0:
        return Spectrum()
    nines = min(SPECTRUM_NINES, max(1.0, math.log10(h.count)))
    n = max(2, int(nines * SPECTRUM_POINTS_PER_DECADE) + 1)
    qs = [100.0 * (1.0 - 10.0 ** (-nines * k / (n - 1))) for k in range(n)]
    return Spectrum(tuple(qs), tuple(h.percentiles(qs)))


# -- columns ---------------------------------------------------------------------------------------------
def _verdicts(block: Doc, error: str | None, objective: Doc | None = None) -> tuple[Verdict, ...]:
    ev, rec = block.sub("events"), block.sub("reconciliation")
    sent, lost, rejected = ev.count("sent"), ev.count("lost"), ev.count("rejected")
    # an interruption is the user's choice (the run's error then says so): a warning, not a failure
    out = [Verdict("run", "warn", "interrupted (Ctrl-C): figures up to then") if block.flag("interrupted")
           else Verdict("run", "fail", error) if error else Verdict("run", "ok", "finished")]
    accounting = block.sub("accounting")
    out.append(Verdict("accounting", "ok" if accounting.flag("ok") else "fail", str(accounting.opt("line"))))
    gen = block.sub("generator")
    out.append(Verdict("generator", "warn", "saturated: " + "; ".join(map(str, gen.opt("reasons") or [])))
               if gen.flag("saturated") else Verdict("generator", "ok", "kept its plan"))
    share = 100.0 * (lost + rejected) / sent if sent else 0.0
    out.append(Verdict("loss", "fail", f"{lost:,} lost, {rejected:,} rejected ({share:.2f} % of sent)")
               if lost or rejected else Verdict("loss", "ok", "none lost or rejected"))
    if not rec.flag("done"):
        out.append(Verdict("reconciliation", "none", f"not done ({rec.opt('note') or 'no reason given'})"))
    else:
        phantom, dropped = rec.count("acked_not_stored"), rec.count("stored_not_acked")
        bad = phantom or dropped or rec.opt("duplicates_stored")  # null: not known (--verify-url)
        out.append(Verdict("reconciliation", "fail" if bad else "ok",
                           f"{rec.opt('method')}: stored {rec.count('stored'):,}, acked not stored "
                           f"{phantom:,}, stored not acked {dropped:,}"))
    if objective is not None:  # the run was judged (run --slo-p99, [objective]): this transport's verdict
        met, reason = objective.flag("met"), str(objective.opt("reason"))
        warmup = f" (after a {objective.num('warmup_s'):g} s warm-up)"
        out.append(Verdict("objective", "ok" if met else "fail",
                           (reason if met else f"missed ({objective.opt('limit')}): {reason}") + warmup))
    return tuple(out)


def _column(run: RunFiles, transport: str, block: Doc, label: str, error: str | None,
            objective: Doc | None) -> Column:
    ev, lat, client = block.sub("events"), block.sub("ack_latency_us"), block.sub("client")
    result = run.run.results[transport] if run.run is not None else None
    return Column(
        run=run.label, transport=transport, label=label, sent=ev.count("sent"), acked=ev.count("acked"),
        rejected=ev.count("rejected"), lost=ev.count("lost"), in_flight=ev.count("in_flight"),
        events_per_s=block.num("throughput", "events_per_s"),
        corrected=Latency.read(lat.sub("corrected")), raw=Latency.read(lat.sub("raw")),
        delivery=Latency.read(block.sub("delivery_delay_us")),
        events_per_cpu_s=client.num("events_per_cpu_s"), bytes_per_event=client.num("bytes_per_event"),
        saturated=block.flag("generator", "saturated"), verdicts=_verdicts(block, error, objective),
        spectra={} if result is None else {"corrected": spectrum(result.tracker.corrected),
                                           "raw": spectrum(result.tracker.raw)},
        series=() if result is None else second_rows(result.series), block=block)


def _document(obj: Any, path: Path, schema: str) -> Doc:
    """A result file's document, refused in one line when it is not of ``schema``."""
    doc = Doc(obj, str(path))
    found = doc.opt("schema")
    if found != schema:
        raise UsageError(f"{doc.where}: schema {found!r} is not {schema!r}")
    return doc


def columns(run: RunFiles, several: bool) -> list[Column]:
    """One column per transport of the run's summary.json; labelled by run too when ``several`` runs."""
    if run.summary is None:
        return []
    doc = _document(run.summary, run.path / SUMMARY, SUMMARY_SCHEMA)
    error = doc.opt("error")
    blocks = doc.sub("transports")
    judged = doc.sub("objective", "transports") if doc.opt("objective") is not None else None
    return [_column(run, t, blocks.sub(t), f"{run.label} {t}" if several else t,
                    str(error) if error else None,
                    judged.sub(t) if judged is not None and t in judged.obj else None) for t in blocks.obj]


# -- capacity --------------------------------------------------------------------------------------------
def _step(doc: Doc) -> CapacityStep:
    p99 = doc.opt("p99_us")
    devices = doc.opt("devices")
    return CapacityStep(
        rate=doc.num("rate"), devices=doc.count("devices") if devices is not None else None,
        p99_us=doc.num("p99_us") if p99 is not None else None,
        lost=_count_or_zero(doc, "lost"),
        errors=_count_or_zero(doc, "errors") + _count_or_zero(doc, "rejected"),
        ok=doc.flag("ok"), reason=str(doc.opt("reason") or ""))


def _count_or_zero(doc: Doc, key: str) -> int:
    return doc.count(key) if doc.opt(key) is not None else 0


def _knee(block: Doc) -> tuple[float | None, str]:
    """The knee's rate (None: none found) and why; no knee object at all: the search did not finish."""
    if block.opt("knee") is None:
        return None, "the search did not finish"
    knee = block.sub("knee")
    found = knee.num("rate") if knee.opt("rate") is not None else None
    return found, str(knee.opt("reason") or ("" if found is not None else "no step kept its limits"))


def capacity_curves(run: RunFiles, several: bool) -> list[CapacityCurve]:
    """One curve per transport of the run's capacity.json (schema in results/README.md)."""
    if run.capacity is None:
        return []
    doc = _document(run.capacity, run.path / CAPACITY, CAPACITY_SCHEMA)
    slo = doc.sub("slo") if doc.opt("slo") is not None else None
    slo_p99 = slo.num("p99_us") if slo is not None and slo.opt("p99_us") is not None else None
    out = []
    for transport in doc.sub("transports").obj:
        block = doc.sub("transports", transport)
        steps = block.opt("steps")
        if not isinstance(steps, list):
            raise UsageError(f"{block.where}.steps must be a list, not {steps!r}")
        parsed = sorted((_step(Doc(step, block.file, (*block.path, f"steps[{k}]")))
                         for k, step in enumerate(steps)), key=lambda s: s.rate)
        knee_rate, knee_reason = _knee(block)
        out.append(CapacityCurve(
            run=run.label, transport=transport, label=f"{run.label} {transport}" if several else transport,
            steps=tuple(parsed), knee_rate=knee_rate, knee_reason=knee_reason, slo_p99_us=slo_p99))
    return out


# -- runs ------------------------------------------------------------------------------------------------
def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return " ".join(map(str, value))
    return str(value)


def _facts(run: RunFiles) -> list[tuple[str, str]]:
    s, m = Doc(run.summary or run.capacity or {}, ""), Doc(run.meta or {}, "")
    rows: list[tuple[str, Any]] = [("directory", str(run.path))]
    for key in ("name", "path", "seed", "duration_s", "devices", "rate", "per_device_rate",
                "events_per_message", "http_flush_s", "ack_timeout_s"):
        rows.append((f"scenario {key}", s.opt("scenario", key)))
    rows += [("target", s.opt("target", "url")), ("embedded target", s.opt("target", "embedded")),
             ("driver", s.opt("driver") or ("nucleus-bench " + ("run" if run.summary else "capacity"))),
             ("started", s.opt("started_at") and when(s.opt("started_at"))),
             ("finished", s.opt("finished_at") and when(s.opt("finished_at"))),
             ("processes", s.opt("processes")), ("error", s.opt("error")),
             ("host", m.opt("host", "name")), ("platform", m.opt("host", "platform")),
             ("CPUs", m.opt("host", "cpus")), ("C twins (bench._native)", m.opt("native"))]
    versions = m.opt("versions")
    if isinstance(versions, dict):
        rows += [(f"version {name}", version) for name, version in versions.items()]
    rows.append(("command line", m.opt("command_line")))
    return [(name, _text(value)) for name, value in rows if value is not None]


def when(iso: Any) -> str:
    """An ISO 8601 time of the summary as a reader writes it: "2026-12-06 22:49:44 UTC"."""
    try:
        return datetime.fromisoformat(str(iso)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return str(iso or "")


def run_info(run: RunFiles) -> RunInfo:
    s = Doc(run.summary or run.capacity or {}, "")  # a capacity search's header has the same keys
    name = s.opt("scenario", "name")
    error = s.opt("error")
    return RunInfo(label=run.label, scenario=str(name or run.label), started_at=when(s.opt("started_at")),
                   error=str(error) if error else None, facts=tuple(_facts(run)))


def build_report(runs: Sequence[RunFiles]) -> Report:
    """The report of these runs, side by side in the order given.

    Raises:
        UsageError: no run, or a file whose figures are missing or of the wrong type (named in one line).
    """
    if not runs:
        raise UsageError("no result directory to report on")
    several = len(runs) > 1
    infos = tuple(run_info(r) for r in runs)
    names = sorted({i.scenario for i in infos})
    title = f"{names[0]}" if len(names) == 1 and not several else f"{len(runs)} runs: {', '.join(names)}"
    return Report(title=title, runs=infos,
                  columns=tuple(c for r in runs for c in columns(r, several)),
                  capacity=tuple(c for r in runs for c in capacity_curves(r, several)))
