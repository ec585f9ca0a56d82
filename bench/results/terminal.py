"""What the terminal shows at the end of a run: plain-words lines per transport, a side-by-side table.

Both read only the summary's blocks (bench.results.summary), never the live run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def transport_lines(name: str, block: Mapping[str, Any]) -> list[str]:
    """Plain-words end-of-run lines for one transport (accounting, saturation, loss, reconciliation)."""
    ev, lat, gen, rec = block["events"], block["ack_latency_us"], block["generator"], block["reconciliation"]
    cor, raw = lat["corrected"], lat["raw"]
    out = [f"{name}: {block['accounting']['line']}",
           f"{name}: {block['throughput']['events_per_s']:.0f} events/s acked, ack latency p50 "
           f"{_ms(cor['p50'])} ms p99 {_ms(cor['p99'])} ms (corrected), p99 {_ms(raw['p99'])} ms (raw); "
           f"{block['client']['cpu_us_per_event']:.1f} client CPU-us/event"]
    if gen["saturated"]:
        out.append(f"{name}: WARNING: the load generator could not keep its plan "
                   f"({'; '.join(gen['reasons'])}). The latency figures include the generator's own delay: "
                   "they are flagged, not the server's.")
    if ev["lost"] or ev["rejected"] or ev["duplicate_acks"] or ev["unknown_acks"]:
        out.append(f"{name}: lost {ev['lost']}, rejected {ev['rejected']}, duplicate acks "
                   f"{ev['duplicate_acks']}, unknown acks {ev['unknown_acks']}")
    if rec["done"]:
        note = f" ({rec['note']})" if rec.get("note") else ""  # e.g. whose events a gap holds
        out.append(f"{name}: reconciliation ({rec['method']}): stored {rec['stored']}, acked but not stored "
                   f"{rec['acked_not_stored']}, stored but never acked {rec['stored_not_acked']}, "
                   f"duplicates stored {rec['duplicates_stored']}{note}")
        if (col := rec.get("collisions")) is not None:  # by event: the ids of client devices collide
            out.append(f"{name}: ids: {col['same_session']} acked events shared their id with another of "
                       f"their session, {col['same_session_stored_once']} of them stored once each; "
                       f"{col['across_fleet']} shared it across the fleet; {col['merged']} the key merges")
    else:
        out.append(f"{name}: reconciliation not done ({rec['note']})")
    return out


def _latency_cell(key: str) -> Any:
    def cell(b: Mapping[str, Any]) -> str:
        lat = b["ack_latency_us"]
        return f"{_ms(lat['corrected'][key])} / {_ms(lat['raw'][key])}"
    return cell


#: (row label, getter over a transport block) of the side-by-side table.
_ROWS: tuple[tuple[str, Any], ...] = (
    ("events/s (acked)", lambda b: f"{b['throughput']['events_per_s']:.0f}"),
    *((f"ack {label} corrected / raw (ms)", _latency_cell(key))
      for label, key in (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99.9", "p999"), ("max", "max"))),
    ("delivery delay p50 / p99 (ms)",
     lambda b: f"{_ms(b['delivery_delay_us']['p50'])} / {_ms(b['delivery_delay_us']['p99'])}"),
    ("client CPU per 1k events (ms)", lambda b: f"{b['client']['cpu_us_per_event']:.1f}"),
    ("bytes per event", lambda b: f"{b['client']['bytes_per_event']:.0f}"),
    ("lost / rejected", lambda b: f"{b['events']['lost']} / {b['events']['rejected']}"),
    ("acked not stored / stored not acked",
     lambda b: (f"{b['reconciliation']['acked_not_stored']} / {b['reconciliation']['stored_not_acked']}"
                if b["reconciliation"]["done"] else "not done")),
    ("generator saturated", lambda b: "YES" if b["generator"]["saturated"] else "no"),
)


def comparison_table(summary: Mapping[str, Any]) -> Any:
    """A rich Table with one column per transport."""
    from rich.table import Table

    blocks = summary["transports"]
    table = Table(title=f"{summary['scenario']['name']}: WebSocket vs HTTP, same seeded events")
    table.add_column("")
    for name in blocks:
        table.add_column(name, justify="right")
    for label, get in _ROWS:
        table.add_row(label, *(get(b) for b in blocks.values()))
    judged = (summary.get("objective") or {}).get("transports", {})
    if judged:  # the run was judged: each transport's verdict, its p99 after the warm-up
        table.add_row("objective", *(_verdict_cell(judged.get(name)) for name in blocks))
    return table


def _verdict_cell(verdict: Mapping[str, Any] | None) -> str:
    """``met (p99 3.60 ms)``, ``MISSED (target)``, or ``-`` for a transport that was not judged."""
    if verdict is None:
        return "-"
    if verdict["met"]:
        return f"met (p99 {_ms(verdict['p99_us'])} ms)"
    return f"MISSED ({verdict['limit']})"
