"""``capacity.json`` (schema ``nucleus-bench/capacity/1``, results/README.md) and what the terminal shows.

Pure: builds dicts and strings from the steps and the knee; the driver writes and prints them. The per-step
line is printed as each step ends (the progress of a search that runs for minutes), the table and the knee
lines at the end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.capacity.axis import Axis
from bench.capacity.search import Knee, Tried
from bench.results.verdict import StepFigures

CAPACITY_SCHEMA = "nucleus-bench/capacity/1"


@dataclass(frozen=True, slots=True)
class Step:
    """One step as run: its number in the search (from 1), its load and verdict, its figures, its appId, and
    the seconds at its start left out of its latency."""

    n: int
    tried: Tried
    figures: StepFigures
    app_id: str
    warmup_s: float = 0.0

    @property
    def load(self) -> float:
        return self.tried.load


def step_json(step: Step, axis: Axis) -> dict[str, Any]:
    """One entry of ``transports.<t>.steps``."""
    f, o = step.figures, step.tried.outcome
    return {
        "step": step.n, "rate": axis.rate_at(step.load), "devices": axis.devices_at(step.load),
        "p99_us": f.p99_us, "p50_us": f.p50_us, "samples": f.samples,
        "sent": f.sent, "lost": f.lost + f.in_flight, "rejected": f.rejected, "errors": f.error_count,
        "error_kinds": dict(f.errors), "sent_per_s": f.sent_per_s, "acked_per_s": f.acked_per_s,
        "generator_saturated": bool(f.generator), "ok": o.ok, "reason": o.reason, "limit": o.limit,
        "app_id": step.app_id, "warmup_s": step.warmup_s,
    }


def _find(steps: Sequence[Step], tried: Tried | None) -> Step | None:
    return next((s for s in steps if s.tried is tried), None)


def _ms(us: float | None) -> str:
    return "-" if us is None else f"{us / 1000:.1f}"


def knee_reason(knee: Knee, axis: Axis, steps: Sequence[Step]) -> str:
    """The knee in plain words: the load met, the load that broke and why, and who the limit was."""
    good, bad = knee.good, knee.bad
    met = f"met the objective at {axis.describe(good.load)}" if good is not None else ""
    broke = f"at {axis.describe(bad.load)}: {bad.outcome.reason}" if bad is not None else ""
    if knee.ending == "interrupted":
        so_far = "; ".join(p for p in (met, f"failed {broke}" if broke else "") if p) or "no step finished"
        return f"interrupted (Ctrl-C) after {len(steps)} steps: {so_far}"
    if knee.ending == "cap":
        return f"no knee up to the cap: {met}, the largest load allowed (--max); the knee is above it"
    if good is None:
        if knee.ending == "max-steps":
            return (f"no load tried met the objective in {len(steps)} steps (--max-steps); lowest tried "
                    f"{broke}")
        who = "the generator is the limit" if knee.limit == "generator" else "the target is the limit"
        return f"no load met the objective: even {broke} ({who})"
    if bad is None:  # max-steps while climbing
        return f"stopped after {len(steps)} steps (--max-steps) while climbing: {met}; the knee is above it"
    if knee.limit == "generator":
        return (f"the generator is the limit, not the target: {broke}. The target {met}, the most this "
                f"generator drove within its plan: the target's own knee is at least that (add --processes "
                f"or another machine to find it)")
    return f"the target is the limit: it {met}; {broke}"


def knee_json(knee: Knee, axis: Axis, steps: Sequence[Step]) -> dict[str, Any]:
    """``transports.<t>.knee``: the highest load that met the objective, where it broke and why."""
    good, bad = _find(steps, knee.good), _find(steps, knee.bad)
    return {
        "rate": axis.rate_at(good.load) if good is not None else None,
        "devices": axis.devices_at(good.load) if good is not None else None,
        "limit": knee.limit, "ending": knee.ending,
        "broke_at": step_json(bad, axis) if bad is not None else None,
        "reason": knee_reason(knee, axis, steps),
    }


def transport_json(steps: Sequence[Step], knee: Knee | None, axis: Axis) -> dict[str, Any]:
    """``transports.<t>``: every step in the order run, and the knee (None while the search runs)."""
    return {"steps": [step_json(s, axis) for s in steps],
            "knee": knee_json(knee, axis, steps) if knee is not None else None}


def step_line(transport: str, step: Step, axis: Axis) -> str:
    """The line printed when a step ends."""
    f, o = step.figures, step.tried.outcome
    verdict = "met" if o.ok else f"FAILED ({o.limit})"
    flagged = " (flagged: the generator's own delay is in it)" if f.generator else ""
    return (f"{transport} step {step.n}: {axis.describe(step.load)}: sent {f.sent_per_s:,.0f}/s, "
            f"p99 {_ms(f.p99_us)} ms{flagged}, lost {f.lost + f.in_flight}, errors "
            f"{f.error_count + f.rejected}: {verdict}: {o.reason}")


def knee_line(transport: str, block: Mapping[str, Any]) -> str:
    """The answer for one transport, in plain words."""
    knee = block["knee"]
    if knee is None:
        return f"{transport}: no answer (the search did not finish)"
    if knee["devices"] is None or knee["limit"] == "generator" or knee["ending"] == "interrupted":
        return f"{transport}: {knee['reason']}"  # no server figure to give, or none settled
    figure = f"{knee['devices']:,} devices ({knee['rate']:,.0f} events/s)"
    if knee["limit"] == "none":
        why = "no step failed up to --max" if knee["ending"] == "cap" else "--max-steps ended the climb"
        return f"{transport}: at least {figure} within the objective ({why}: the knee is above it)"
    broke = knee["broke_at"]
    unsettled = " (--max-steps reached before the resolution)" if knee["ending"] == "max-steps" else ""
    return (f"{transport}: capacity {figure} within the objective{unsettled}; the target is the limit: at "
            f"{broke['devices']:,} devices ({broke['rate']:,.0f} events/s), {broke['reason']}")


def steps_table(doc: Mapping[str, Any]) -> Any:
    """A rich Table of every step of every transport."""
    from rich.table import Table

    slo = doc["slo"]
    table = Table(title=f"{doc['scenario']['name']}: capacity at p99 <= {_ms(slo['p99_us'])} ms, "
                        f"loss <= {slo['max_loss']:.3%}",
                  caption="events/s: the plan's, every device in a session; sent/s, p99 and acks (the "
                          "acks the p99 is of): measured after each step's warm-up; flagged: the generator "
                          "could not keep its plan, so the figure includes its own delay")
    for name, justify in (("transport", "left"), ("step", "right"), ("devices", "right"),
                          ("events/s", "right"), ("sent/s", "right"), ("p99 ms", "right"), ("acks", "right"),
                          ("lost", "right"), ("errors", "right"), ("verdict", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for transport, block in doc["transports"].items():
        for s in block["steps"]:
            verdict = "met" if s["ok"] else s["reason"]
            p99 = _ms(s["p99_us"]) + (" (flagged)" if s["generator_saturated"] else "")
            table.add_row(transport, str(s["step"]), f"{s['devices']:,}", f"{s['rate']:,.0f}",
                          f"{s['sent_per_s']:,.0f}", p99, f"{s['samples']:,}", str(s["lost"]),
                          str(s["errors"] + s["rejected"]), verdict)
    return table
