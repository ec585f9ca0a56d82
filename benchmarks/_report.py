"""The figures of ``make perf``: medians over repeats, ratios to the bare loop of the same repeat, floors.

Plain aligned text (it is pasted into docs/performance.md as it is) and one JSON document with every run.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from benchmarks._breakdown import PACED_KEYS, PER_WAKE_KEY
from benchmarks._cases import CASES, DEVICES_FLOOR, RSS_FLOOR_KB, Case, Floor, Sample


@dataclass(slots=True)
class Row:
    """One case's runs: a sample per repeat, or the reason it could not be measured."""

    case: Case
    samples: list[Sample | None] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s is not None]

    def median(self, value: Callable[[Sample], float]) -> float:
        values = [v for v in map(value, self.ok()) if not math.isnan(v)]
        return statistics.median(values) if values else math.nan


def ratio(row: Row, bare: Row | None) -> float:
    """Median over repeats of (this case's CPU per message) / (the bare loop's in the same repeat)."""
    if bare is None or row.case.key == bare.case.key:
        return 1.0 if bare is not None else math.nan
    pairs = [a.us_per_msg / b.us_per_msg for a, b in zip(row.samples, bare.samples, strict=False)
             if a is not None and b is not None and b.us_per_msg > 0]
    return statistics.median(pairs) if pairs else math.nan


def floor_met(floor: Floor, row: Row, rat: float) -> bool | None:
    """Whether the row's medians reach ``floor`` (None: nothing to judge)."""
    value = {
        "us_per_msg_max": row.median(lambda s: s.us_per_msg),
        "ratio_max": rat,
        "events_per_cpu_min": 1e6 / row.median(lambda s: s.us_per_event),
        "msgs_per_cpu_min": 1e6 / row.median(lambda s: s.us_per_msg),
    }[floor.metric]
    if math.isnan(value):
        return None
    return value <= floor.value if floor.metric.endswith("_max") else value >= floor.value


def verdict(results: Sequence[bool | None]) -> str:
    if not results:
        return ""
    if any(r is None for r in results):
        return "not judged"
    return "met" if all(results) else "NOT MET"


def _num(value: float, fmt: str) -> str:
    return "-" if math.isnan(value) else format(value, fmt)


_HEAD = ("case", "events/s", "msgs/s", "CPU-us/ev", "CPU-us/msg", "x bare", "target us/msg", "floor", "")
_WIDTH = (32, 10, 9, 10, 11, 7, 14, 38, 10)


def _line(cells: Sequence[str], first_width: int = _WIDTH[0]) -> str:
    first = f"{cells[0]:<{first_width}}"
    middle = "".join(f"{c:>{w}}" for c, w in zip(cells[1:7], _WIDTH[1:7], strict=True))
    return f"{first}{middle}  {cells[7]:<{_WIDTH[7]}}{cells[8]}".rstrip()


def cpu_table(rows: dict[str, Row]) -> list[str]:
    """The CPU table, one line per case that ran, then the notes of runs that need one."""
    if not rows:
        return []
    # the first column fits the longest label (a paced fleet's size, a rate given by --rate)
    width = max(_WIDTH[0], *(len(row.case.label) + 1 for row in rows.values()))
    out = [_line(_HEAD, width), "-" * (sum(_WIDTH) - _WIDTH[0] + width + 2)]
    notes: list[str] = []
    for key in (c.key for c in CASES):
        row = rows.get(key)
        if row is None:
            continue
        case = row.case
        if not row.ok():
            out.append(_line((case.label, "-", "-", "-", "-", "-", "-", "not available", ""), width))
            first = row.errors[0] if row.errors else "no run"
            notes.append(first if first.startswith(f"{case.key}:") else f"{case.key}: {first}")
            continue
        rat = ratio(row, rows.get(case.bare))
        met = [floor_met(f, row, rat) for f in case.floors]
        figures = [_num(row.median(_MEDIANS[name]), fmt) for name, fmt in _COLUMNS]
        out.append(_line((case.label, *figures[:4], _num(rat, ".2f"), figures[4],
                          "; ".join(f.text for f in case.floors), verdict(met)), width))
        notes += _flag_notes(row)
        notes += [e if e.startswith(f"{case.key}:") else f"{case.key}: {e}" for e in row.errors]
    return out + ([""] + [f"  note: {n}" for n in dict.fromkeys(notes)] if notes else [])


def _flag_notes(row: Row) -> list[str]:
    """One note per flag of a case's runs, with how many of its runs carry it (details in the JSON)."""
    runs = row.ok()
    flags = [f for s in runs for f in s.flags]
    return [f"{row.case.key}: {flag} in {flags.count(flag)}/{len(runs)} runs"
            for flag in dict.fromkeys(flags)]


#: CPU-µs per message of the bare 1-event loop where the floors were measured (the issue that set them:
#: "the bare websockets loop is ~23").
REFERENCE_BARE_US = 23.0


def speed_lines(rows: dict[str, Row]) -> list[str]:
    """The floors judged at the speed of the machine they were set on, beside the table's own verdicts.

    A shared machine's speed moves from run to run, and absolute floors move with it: this run's bare
    1-event loop against its reference time gives a scale, and the hot path's figures are judged again at
    that scale (ratio floors need none). The table's verdicts stay the absolute ones.
    """
    bare = rows.get("bare-ws-1")
    now = bare.median(lambda s: s.us_per_msg) if bare is not None else math.nan
    if math.isnan(now) or now <= 0:
        return []
    scale = REFERENCE_BARE_US / now
    judged: list[str] = []
    for key in (c.key for c in CASES):
        row = rows.get(key)
        if row is None or not row.ok():
            continue
        for floor in row.case.floors:
            if floor.metric == "ratio_max":
                continue
            scaled = Row(row.case, [replace(s, client_cpu_s=s.client_cpu_s * scale) if s is not None else None
                                    for s in row.samples])
            met = floor_met(floor, scaled, math.nan)
            figure = {"us_per_msg_max": f"{scaled.median(lambda s: s.us_per_msg):.1f} us/msg",
                      "events_per_cpu_min": f"{1e6 / scaled.median(lambda s: s.us_per_event):,.0f} ev/CPU-s",
                      "msgs_per_cpu_min": f"{1e6 / scaled.median(lambda s: s.us_per_msg):,.0f} msg/CPU-s",
                      }[floor.metric]
            judged.append(f"{key} {figure} ({verdict([met])})")
    if not judged:
        return []
    return [f"machine speed: this run's bare 1-event loop took {now:.1f} CPU-us/msg, where the floors were "
            f"set ~{REFERENCE_BARE_US:g}; scaled by {scale:.2f} to that machine: " + ", ".join(judged)]


def paced_line(rows: dict[str, Row]) -> str | None:
    """Hot path against naive timers over the same number of paced connections (and the plain epoll loop,
    the cost of paced sending with none of the hot path's work, when it ran)."""
    hot, naive, plain = rows.get("hot-ws-paced"), rows.get("naive-ws-paced"), rows.get("plain-ws-paced")
    if hot is None or naive is None or not hot.ok() or not naive.ok() or hot.case.rate != naive.case.rate:
        return None  # (at different rates, see --rate, the two are not comparable)
    h = 1e6 / hot.median(lambda s: s.us_per_msg)
    n = 1e6 / naive.median(lambda s: s.us_per_msg)
    line = (f"device-paced: hot path {h:,.0f} msgs per client CPU-second, naive timer per device {n:,.0f} "
            f"({h / n:.2f}x)")
    if plain is not None and plain.ok() and plain.case.rate == hot.case.rate:
        line += f", plain epoll loop {1e6 / plain.median(lambda s: s.us_per_msg):,.0f}"
    return line


def memory_lines(idle: dict[str, Any] | None, held: dict[str, Any] | None) -> list[str]:
    """Idle memory per device and the most devices held, with their floors."""
    out: list[str] = []
    if idle is not None:
        kb = float(idle["client_kb_per_device"])
        tag = "met" if kb <= RSS_FLOOR_KB else "NOT MET"
        out.append(f"client RSS per idle connected device ({idle['held']:,} of {idle['devices']:,} held, "
                   f"{_when(idle)}): {kb:.1f} KiB (floor <= {RSS_FLOOR_KB:g} KiB: {tag}); "
                   f"target {float(idle['target_kb_per_device']):.1f} KiB per connection")
    if held is not None:
        n = int(held["steady"] or held["held"])
        judged = held["devices"] >= DEVICES_FLOOR
        tag = ("met" if n >= DEVICES_FLOOR else "NOT MET") if judged else "not judged (bound below floor)"
        if held["plateau_s"] is not None:
            rate = held["devices"] / max(held["plateau_s"], 1e-9)
            how = (f"all connected {held['plateau_s']:.1f} s after t=0 ({rate:,.0f} connects/s) and held; "
                   f"ESTABLISHED per the kernel: {held['client_tcp']:,} client ends, "
                   f"{held['target_tcp']:,} target ends")
        else:
            how = "never all connected: the most open at once"
        out.append(f"most devices held at once: {n:,} of {held['devices']:,} tried, "
                   f"{len(held['client_rss_kb'])} client + {len(held['target_rss_kb'])} target processes "
                   f"(floor >= {DEVICES_FLOOR:,}: {tag})")
        out.append(f"  {how}; {_when(held)}: client {float(held['client_kb_per_device']):.1f} KiB, "
                   f"target {float(held['target_kb_per_device']):.1f} KiB per device "
                   f"(client at the plateau: {float(held['client_kb_per_device_at_plateau']):.1f} KiB)")
    return out


def _when(hold: dict[str, Any]) -> str:
    """When memory was read: at the steady state (after a full heartbeat period) or only at the plateau."""
    if hold.get("steady_s") is not None:
        return f"steady state at t={float(hold['steady_s']):.0f} s"
    return "at the plateau only: the steady state was not reached"


def breakdown_lines(parts: dict[str, dict[str, float]], rows: dict[str, Row]) -> list[str]:
    """Per-message CPU of each pure step (timed alone, then paced like the run), the measured total, and
    what is left (socket, loop); see ``benchmarks._breakdown``."""
    keys = list(parts)
    extra = (*PACED_KEYS, PER_WAKE_KEY)
    steps = list(dict.fromkeys(step for key in keys for step in parts[key] if step not in extra))
    out = ["where the hot path's client CPU goes (us per message): each pure step timed alone (warm caches),",
           "then paced like the run (a 1 ms sleep between wake-ups, meanwhile the caches go cold):",
           f"  {'step':<40}" + "".join(f"{k:>14}" for k in keys)]
    for step in steps:
        cells = (_num(parts[k].get(step, math.nan), ".2f") for k in keys)
        out.append(f"  {step:<40}" + "".join(f"{c:>14}" for c in cells))

    def row(label: str, values: dict[str, float], fmt: str = ".2f") -> str:
        return f"  {label:<40}" + "".join(f"{_num(values[k], fmt):>14}" for k in keys)

    alone = {k: sum(v for step, v in parts[k].items() if step not in extra) for k in keys}
    paced = {k: parts[k].get(PACED_KEYS[0], math.nan) + parts[k].get(PACED_KEYS[1], math.nan) for k in keys}
    wake = {k: parts[k].get(PACED_KEYS[2], math.nan) for k in keys}
    measured = {k: rows[k].median(lambda s: s.us_per_msg) if k in rows else math.nan for k in keys}
    bare = {k: rows[BY_BARE[k]].median(lambda s: s.us_per_msg) if BY_BARE[k] in rows else math.nan
            for k in keys}
    out += [row("sum of the pure steps, timed alone", alone),
            row("messages per 1 ms wake-up", {k: parts[k].get(PER_WAKE_KEY, math.nan) for k in keys}, ".0f"),
            row("plan, paced like the run", {k: parts[k].get(PACED_KEYS[0], math.nan) for k in keys}),
            row("other pure steps, paced like the run", {k: parts[k].get(PACED_KEYS[1], math.nan)
                                                         for k in keys}),
            row("the wake-ups themselves", wake),
            row("measured (median)", measured),
            row("rest: sockets, event loop, scheduler", {k: measured[k] - paced[k] - wake[k] for k in keys}),
            row("bare loop, whole (same events/msg)", bare)]
    return out


BY_BARE = {c.key: c.bare for c in CASES}


def to_json(rows: dict[str, Row]) -> dict[str, Any]:
    """Every case's runs, medians, ratio and floors."""
    out: dict[str, Any] = {}
    for key, row in rows.items():
        c = row.case
        rat = ratio(row, rows.get(c.bare))
        out[key] = {
            "label": c.label, "kind": c.kind, "transport": c.transport, "events_per_message": c.epm,
            "devices": c.devices, "rate": c.rate,
            "runs": [s.to_json() if s is not None else None for s in row.samples], "errors": row.errors,
            "median": {name: row.median(fn) for name, fn in _MEDIANS.items()},
            "ratio_to_bare": rat, "bare": c.bare,
            "floors": [{"text": f.text, "met": floor_met(f, row, rat)} for f in c.floors],
        }
    return out


#: The figures of a table row, in column order, and their formats.
_COLUMNS = (("events_per_s", ",.0f"), ("msgs_per_s", ",.0f"), ("us_per_event", ".2f"), ("us_per_msg", ".1f"),
            ("target_us_per_msg", ".1f"))
_MEDIANS: dict[str, Callable[[Sample], float]] = {
    "events_per_s": lambda s: s.events_per_s, "msgs_per_s": lambda s: s.msgs_per_s,
    "us_per_event": lambda s: s.us_per_event, "us_per_msg": lambda s: s.us_per_msg,
    "target_us_per_msg": lambda s: s.target_us_per_msg,
}
