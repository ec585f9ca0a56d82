"""What the client side costs, side by side on this machine (``make perf``): a benchmark, never a test.

Run: ``.venv/bin/python -m benchmarks.client [--quick] [--only CASE[,CASE]] [--json PATH] [--breakdown]
[--max-devices N]``, or ``--profile CASE`` for one hot-path case under cProfile instead of the table.

One run measures, against the reference target (``EmbeddedTarget``, memory store) in its own process,
each client in a fresh process of its own, its CPU read from inside that process around a measured
window of steady sending only (the target's CPU over the same window from its PID):

- the **bare loop** (websockets' asyncio client on uvloop, a pre-encoded message, await the reply, no
  parsing) with 1-event and 10-event messages: the reference every other row is a ratio to;
- the **hot path** (``bench.runner``'s ``run_shard``: plan, scheduler, transport, ack tracking) over
  WebSocket with 1-event and 10-event messages and over HTTP with 10-event batches, open loop;
- **wrk** posting the hot path's own 10-event body, and **Locust**'s WS and HTTP users (locustfiles/);
- **device-paced** sending over 10,000 connections: the hot path, a naive timer per device, and a plain
  ``epoll`` loop with none of the hot path's work (what paced sending costs in Python here at all);
- then client memory per idle connected device (10,000 devices), and the most devices this machine holds
  at once through the source-address pool, over several client and target processes.

The machine is shared and noisy: CPU cases are repeated (interleaved) and medians printed; ratios are
taken against the bare loop of the same repeat. When a hot-path floor is not met, each pure step of the
hot path is timed alone, to show where the CPU goes. Exit status: 0 when every case was measured (met
or not), 1 when one could not be (wrk and Locust rows excepted: they say "not available"), 2 on a bad
flag.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import secrets
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench.protocol.errors import UsageError
from bench.results.saturation import SATURATION_LAG_P99_US
from bench.scenario import DEFAULT_CONNECT_RATE
from benchmarks._cases import BY_KEY, CASES, EXTRA_KEYS, FULL, QUICK, Case, Sample, Sizes, scenario_toml
from benchmarks._proc import Child, PerfError, run_child
from benchmarks._report import (
    Row,
    breakdown_lines,
    cpu_table,
    memory_lines,
    paced_line,
    ratio,
    speed_lines,
    to_json,
)
from benchmarks._report import floor_met as _floor_met

#: Flags of every reference target started here: no HTTP rate limit (a 429 would be the limiter's cost,
#: not the client's).
TARGET_ARGS = ("--http-rate", "0")
#: Seconds a hot-path run sends before its window opens (connections open, caches warm).
WARM_S = 1.0
#: Seconds between the window's end and the end of the send phase.
TAIL_S = 1.0
#: Extra seconds in a paced run for handshakes that lag its ramp on a busy machine: its window opens once
#: every device is connected (the messages of devices still connecting wait, then go out at once).
PACED_SLACK_S = 6.0
#: Handshakes per second an idle fleet ramps at.
CONNECTS_PER_S = 2000.0
#: Handshakes per second a paced fleet ramps at. Its handshakes share the two cores with the traffic of the
#: devices already connected, on both sides: in the full run of 2026-11-27 09:38 UTC (a slow hour, the bare
#: 1-event loop at 35.9 CPU-µs per message), 10,000 devices ramped at 2,000/s were all connected at t=10-13 s
#: (the Python twins' client: 20.9 s, past the window's end); at 1,000/s the ramp itself takes that long.
PACED_CONNECTS_PER_S = 1000.0
#: A window this far above (below) the offered rate was catching up a backlog (falling behind): flagged.
CATCH_UP = 1.1
#: Seconds past a child's own length before it is given up.
SLACK_S = 90.0


@dataclass(frozen=True, slots=True)
class Context:
    """What every case runner needs: the shared target, the sizes, and the bodies to send."""

    url: str
    pid: int
    sizes: Sizes
    bodies: dict[int, bytes]    # events per message -> a pre-encoded message of the hot path's own plan


def sample_bodies() -> dict[int, bytes]:
    """A 1-event and a 10-event ``{"data": [...]}`` message taken from the cases' own plan."""
    from bench.fleet import Plan
    from bench.protocol.events import Track
    from bench.protocol.message import encode_events
    from bench.scenario import parse_scenario

    out: dict[int, bytes] = {}
    for epm in (1, 10):
        plan = Plan(parse_scenario(scenario_toml(devices=1, rate=100.0, epm=epm, duration_s=5.0), "bodies"))
        send = next(s for s in plan.sends("ws") if len(s.events) == epm and isinstance(s.events[0], Track))
        out[epm] = encode_events(send.events)
    return out


def _ws_url(ctx: Context) -> str:
    from bench.transports.ws import ws_url

    return ws_url(ctx.url, secrets.token_hex(12))


def run_bare(case: Case, ctx: Context) -> Sample:
    from benchmarks._loops import bare_child

    total = ctx.sizes.bare_messages // (1 if case.epm == 1 else 3)
    args = (_ws_url(ctx), ctx.bodies[case.epm], case.devices, total, SLACK_S)
    got, target_cpu = run_child(case.key, bare_child, args, target_pid=ctx.pid, timeout_s=2 * SLACK_S)
    return Sample(got["messages"], got["messages"] * case.epm, got["seconds"], got["cpu_s"], target_cpu)


def _hot_scenario(case: Case, ctx: Context) -> tuple[str, float, float]:
    """(scenario TOML, window start, window end) of a hot-path case."""
    if case.paced:
        ramp = case.devices / PACED_CONNECTS_PER_S
        start = ramp + WARM_S  # and 1 s after every device is connected (_ConnectGate)
        end = start + PACED_SLACK_S + ctx.sizes.paced_window_s
        return scenario_toml(devices=case.devices, rate=0.0, epm=1, duration_s=end + TAIL_S, ramp_s=ramp,
                             per_device_rate=case.rate), start, end
    end = WARM_S + ctx.sizes.window_s
    if case.transport == "http":
        # Fixed arrival, and a flush period equal to a device's gap between bursts of `epm` events: every
        # request after the first carries exactly one burst (bench/fleet/plan.py, http_sends).
        per_device = case.rate * case.epm / case.devices
        return scenario_toml(devices=case.devices, rate=case.rate * case.epm, epm=case.epm,
                             duration_s=end + TAIL_S, arrival="fixed",
                             http_flush_s=case.epm / per_device), WARM_S, end
    return scenario_toml(devices=case.devices, rate=case.rate * case.epm, epm=case.epm,
                         duration_s=end + TAIL_S), WARM_S, end


@contextlib.contextmanager
def _pure(on: bool) -> Iterator[None]:
    """With ``on``: ``NUCLEUS_BENCH_PURE=1`` while the block runs (children started in it use the Python
    twins of the per-event steps, ``bench.native``); the environment as it was afterwards."""
    from bench.native import PURE_ENV

    if not on:
        yield
        return
    before = os.environ.get(PURE_ENV)
    os.environ[PURE_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ[PURE_ENV]
        else:
            os.environ[PURE_ENV] = before


def _hot_run(case: Case, ctx: Context, profile: bool) -> tuple[Sample, list[Any]]:
    from bench.runner.engine import RunConfig
    from bench.scenario import parse_scenario
    from bench.transports.common import TransportOptions
    from benchmarks._hot import hot_child

    text, start, end = _hot_scenario(case, ctx)
    app_id = secrets.token_hex(12)
    config = RunConfig(parse_scenario(text, f"perf-{case.key}.toml"), case.transport, ctx.url, app_id,
                       TransportOptions(record_reported=False, ws_io=case.ws_io))
    gate = _ConnectGate(ctx.url, app_id, case.devices) if case.paced else None
    try:
        with _pure(case.pure):  # the child inherits the environment it starts with
            got, target_cpu = run_child(case.key, hot_child, (config, start, end, profile, gate is not None),
                                        target_pid=ctx.pid, timeout_s=end + SLACK_S,
                                        tick=gate.tick if gate is not None else None)
    except PerfError as exc:
        if gate is None or gate.said:
            raise
        raise PerfError(f"{exc} ({gate.why()})") from None
    if got["native"] != (not case.pure and native_built()):  # a -py case must not measure the C twins
        ran = "C" if got["native"] else "Python"
        raise PerfError(f"{case.key}: the per-event steps ran their {ran} twins")
    window, whole = got["window"], got["whole"]
    events = int(window["events"])
    sample = Sample(events // case.epm, events, window["seconds"], window["cpu_s"], target_cpu)
    return replace(sample, **_hot_notes(case, sample, whole, window)), list(got["profile"])


def _hot_notes(case: Case, sample: Sample, whole: dict[str, Any], window: dict[str, Any]) -> dict[str, Any]:
    """The note and flags of a hot-path run: losses, the runner's saturation rule over the window, a
    catching-up window."""
    counts = [f"{whole[k]} {k.replace('_', ' ')}" for k in ("lost", "rejected", "connect_errors",
                                                            "closed_by_peer") if whole[k]]
    flags = ["events lost or refused"] if counts else []
    offered = case.rate * case.devices if case.paced else case.rate
    if sample.msgs_per_s > CATCH_UP * offered:
        # The scheduler was behind its plan when the window opened and sent its backlog in it.
        flags.append("window above the offered rate (catching up)")
    elif sample.msgs_per_s * CATCH_UP < offered:
        flags.append("window below the offered rate (falling behind)")
    lag_p99 = float(window.get("lag_p99_us", 0.0))
    if lag_p99 > SATURATION_LAG_P99_US:
        # the runner's own rule, applied to the measured window (a whole short run's p99 also holds the
        # sends that waited for the fleet's connections and imports at its start)
        flags.append("generator saturated in the window (schedule lag p99 over 10 ms)")
    notes = [*counts, f"window schedule lag p99 {lag_p99 / 1000:.1f} ms",
             *(f"whole run: saturated: {r}" for r in whole["saturated"])]
    return {"note": "; ".join(notes), "flags": tuple(flags)}


class _ConnectGate:
    """Tells a paced run's child once the target counts all of its app's devices connected."""

    def __init__(self, url: str, app_id: str, devices: int) -> None:
        self.url = url
        self.app_id = app_id
        self.devices = devices
        self.said = False
        self.seen: int | None = None  # the target's last count of open connections
        self.error = ""  # why the last count could not be read

    def tick(self, child: Child) -> None:
        from benchmarks._capacity import open_connections

        if self.said:
            return
        try:
            self.seen = open_connections(self.url, self.app_id)
        except OSError as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            return
        if self.seen >= self.devices:
            child.conn.send("connected")
            self.said = True

    def why(self) -> str:
        """What the gate saw, for a run that never opened its window."""
        last = f"; last read: {self.error}" if self.error else ""
        if self.seen is None:
            return f"gate never opened: no count of connected devices read from the target{last}"
        return (f"gate never opened: the target counted {self.seen:,} of {self.devices:,} devices "
                f"connected{last}")


def run_hot(case: Case, ctx: Context) -> Sample:
    return _hot_run(case, ctx, profile=False)[0]


def run_naive(case: Case, ctx: Context) -> Sample:
    from benchmarks._loops import naive_child

    s = ctx.sizes
    args = (_ws_url(ctx), ctx.bodies[1], case.devices, case.rate, WARM_S + 0.5, s.paced_window_s)
    got, target_cpu = run_child(case.key, naive_child, args, target_pid=ctx.pid,
                                timeout_s=s.paced_window_s + 2 * SLACK_S)
    note = f"{got['failed']} devices failed" if got["failed"] else ""
    return Sample(got["messages"], got["messages"], got["seconds"], got["cpu_s"], target_cpu, note)


def run_plain(case: Case, ctx: Context) -> Sample:
    from benchmarks._loops import plain_child

    s = ctx.sizes
    args = (_ws_url(ctx), ctx.bodies[1], case.devices, case.rate, WARM_S + 0.5, s.paced_window_s)
    got, target_cpu = run_child(case.key, plain_child, args, target_pid=ctx.pid,
                                timeout_s=s.paced_window_s + 2 * SLACK_S)
    return Sample(got["messages"], got["messages"], got["seconds"], got["cpu_s"], target_cpu)


def run_wrk_case(case: Case, ctx: Context) -> Sample:
    from bench.transports.http import http_url
    from benchmarks._external import run_wrk

    return run_wrk(http_url(ctx.url, secrets.token_hex(12)), ctx.bodies[case.epm], connections=case.devices,
                   seconds=ctx.sizes.wrk_s, epm=case.epm, target_pid=ctx.pid)


def run_locust_case(case: Case, ctx: Context) -> Sample:
    from benchmarks._external import run_locust

    per_device = case.rate * case.epm / case.devices  # events/s of each Locust user
    return run_locust(case.transport, ctx.url, users=case.devices, seconds=ctx.sizes.locust_s,
                      rate=per_device, flush_s=case.epm / per_device, target_pid=ctx.pid)


#: Table dispatch: how each kind of case is driven.
RUNNERS: dict[str, Callable[[Case, Context], Sample]] = {
    "bare": run_bare, "hot": run_hot, "naive": run_naive, "plain": run_plain, "wrk": run_wrk_case,
    "locust": run_locust_case,
}


def selected(only: Sequence[str] | None) -> list[str]:
    """The case keys to run, in table order; a case's bare loop comes along (its ratio's reference).

    Raises:
        UsageError: an unknown case name.
    """
    known = [c.key for c in CASES] + list(EXTRA_KEYS)
    if not only:
        return known
    wanted = {k.strip() for item in only for k in item.split(",") if k.strip()}
    unknown = sorted(wanted - set(known))
    if unknown:
        raise UsageError(f"--only: unknown case {unknown[0]!r}; cases: {', '.join(known)}")
    wanted |= {BY_KEY[k].bare for k in wanted if k in BY_KEY}
    return [k for k in known if k in wanted]


#: Case kinds whose offered rate ``--rate`` may change (the others run flat out or at Locust's own pace).
RATED_KINDS = ("hot", "naive", "plain")
#: Highest rate ``--rate`` takes, messages/s (per device for a paced case).
MAX_RATE = 1_000_000.0


def parse_rates(items: Sequence[str] | None) -> dict[str, float]:
    """``--rate CASE=R`` items -> {case key: rate}.

    Raises:
        UsageError: not ``CASE=R``, an unknown case or one whose rate cannot change, or R not in
            (0, ``MAX_RATE``].
    """
    rates: dict[str, float] = {}
    for item in (part.strip() for text in items or () for part in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise UsageError(f"--rate {item!r}: give CASE=R, e.g. hot-ws-1=30000")
        case = BY_KEY.get(key)
        if case is None or case.kind not in RATED_KINDS:
            rated = ", ".join(c.key for c in CASES if c.kind in RATED_KINDS)
            raise UsageError(f"--rate {item!r}: {key!r} is not a case whose rate can change; "
                             f"use one of {rated}")
        if key in rates:
            raise UsageError(f"--rate {item!r}: {key!r} has a rate already (one per case and run)")
        try:
            rate = float(value)
        except ValueError:
            rate = math.nan
        if not 0 < rate <= MAX_RATE:
            raise UsageError(f"--rate {item!r}: R must be a number of messages/s in (0, {MAX_RATE:,.0f}]")
        rates[key] = rate
    return rates


def at_rate(case: Case, rate: float | None) -> Case:
    """``case`` offered ``rate`` instead of its own (None: unchanged), labelled so, its floors dropped."""
    if rate is None:
        return case
    unit = "/s per device" if case.paced else " msg/s"
    return replace(case, rate=rate, floors=(), label=f"{case.label} @ {rate:,.6g}{unit}")


def run_cpu_cases(keys: Sequence[str], sizes: Sizes,
                  rates: dict[str, float] | None = None) -> dict[str, Row]:
    """Every selected CPU case, ``sizes.repeats`` times, interleaved, against one shared target
    (``rates``: cases offered another rate than their own, see ``at_rate``)."""
    from bench.target.embedded import EmbeddedTarget

    rates = rates or {}
    cases = [at_rate(BY_KEY[k].sized(sizes), rates.get(k)) for k in keys if k in BY_KEY]
    rows = {c.key: Row(c) for c in cases}
    if not cases:
        return rows
    with EmbeddedTarget(store="memory", extra_args=TARGET_ARGS) as target:
        ctx = Context(target.url, target.pid, sizes, sample_bodies())
        for repeat in range(sizes.repeats):
            for case in cases:
                row = rows[case.key]
                try:
                    sample: Sample | None = RUNNERS[case.kind](case, ctx)
                except PerfError as exc:
                    sample = None
                    row.errors.append(str(exc))
                row.samples.append(sample)
                _progress(repeat, sizes.repeats, case, sample, row)
    return rows


def _progress(repeat: int, repeats: int, case: Case, sample: Sample | None, row: Row) -> None:
    if sample is None:
        text = f"failed: {row.errors[-1]}"
    else:
        text = (f"{sample.us_per_msg:.1f} CPU-us/msg, {sample.us_per_event:.2f} CPU-us/event, "
                f"{sample.msgs_per_s:,.0f} msgs/s")
    print(f"  [{repeat + 1}/{repeats}] {case.key}: {text}", file=sys.stderr, flush=True)


def run_idle_rss(sizes: Sizes) -> dict[str, Any]:
    """Client RSS per idle connected device: one client, one target, ``sizes.rss_devices`` devices."""
    from bench.target.embedded import EmbeddedTarget
    from benchmarks._capacity import hold_idle

    n = sizes.rss_devices
    with EmbeddedTarget(store="memory", extra_args=TARGET_ARGS) as target:
        hold = hold_idle([(target.url, target.pid)], n, ramp_s=n / CONNECTS_PER_S)
    return hold.to_json()


def run_max_devices(sizes: Sizes) -> dict[str, Any]:
    """The most idle devices held at once: one target and one client process per ``per_process`` devices,
    each client binding its own two loopback source addresses (127.0.0.10 and up)."""
    from bench.target.embedded import EmbeddedTarget
    from benchmarks._capacity import hold_idle

    procs = math.ceil(sizes.max_devices / sizes.per_process)
    per_client = sizes.max_devices // procs
    addrs = [(f"127.0.0.{10 + 2 * k}", f"127.0.0.{11 + 2 * k}") for k in range(procs)]
    with contextlib.ExitStack() as stack:
        targets = [stack.enter_context(EmbeddedTarget(store="memory", extra_args=TARGET_ARGS))
                   for _ in range(procs)]
        # the fleet's connects paced at the product's default rate (bench.scenario.DEFAULT_CONNECT_RATE):
        # asked for faster, this machine's handshakes time out and devices are lost
        hold = hold_idle([(t.url, t.pid) for t in targets], per_client,
                         ramp_s=sizes.max_devices / DEFAULT_CONNECT_RATE, source_addrs=addrs)
    return hold.to_json()


def _extra(name: str, fn: Callable[[Sizes], dict[str, Any]], sizes: Sizes,
           errors: dict[str, str]) -> dict[str, Any] | None:
    print(f"  {name} ...", file=sys.stderr, flush=True)
    try:
        return fn(sizes)
    except PerfError as exc:
        errors[name] = str(exc)
        print(f"  {name}: failed: {exc}", file=sys.stderr, flush=True)
        return None


def hot_floors_missed(rows: dict[str, Row]) -> list[str]:
    """Keys of hot-path cases with a floor not met."""
    out = []
    for key, row in rows.items():
        if row.case.kind == "hot" and row.ok():
            rat = ratio(row, rows.get(row.case.bare))
            if any(_floor_met(f, row, rat) is False for f in row.case.floors):
                out.append(key)
    return out


def run_breakdown(rows: dict[str, Row], keys: Sequence[str], sizes: Sizes) -> dict[str, dict[str, float]]:
    """Per-step CPU of the hot-path cases in ``keys``, each on its own case's scenario."""
    from benchmarks._breakdown import TICK_S, breakdown

    out: dict[str, dict[str, float]] = {}
    for key in keys:
        c = rows[key].case
        messages_per_s = c.rate * c.devices if c.paced else c.rate
        per_wake = max(1, round(messages_per_s * TICK_S))  # the run wakes about once per tick
        if c.paced:
            out[key] = breakdown("ws", c.epm, c.devices, c.rate * c.devices, per_wake=per_wake)
        elif c.transport == "http":
            per_device = c.rate * c.epm / c.devices
            out[key] = breakdown("http", c.epm, c.devices, c.rate * c.epm, flush_s=c.epm / per_device,
                                 arrival="fixed", per_wake=per_wake)
        else:
            out[key] = breakdown("ws", c.epm, c.devices, c.rate * c.epm, per_wake=per_wake)
    return out


def run_profile(key: str, sizes: Sizes) -> list[str]:
    """One run of a hot-path case at half its rate with cProfile over its window: the top functions, in µs
    per message.

    Raises:
        UsageError: ``key`` is not a hot-path case.
    """
    from bench.target.embedded import EmbeddedTarget

    case = BY_KEY.get(key)
    if case is None or case.kind != "hot":
        hot = ", ".join(c.key for c in CASES if c.kind == "hot")
        raise UsageError(f"--profile: {key!r} is not a hot-path case; use one of {hot}")
    # Half the case's rate: cProfile slows every call, and a generator that falls behind is another case.
    case = replace(case.sized(sizes), rate=case.rate / 2)
    with EmbeddedTarget(store="memory", extra_args=TARGET_ARGS) as target:
        ctx = Context(target.url, target.pid, sizes, sample_bodies())
        sample, top = _hot_run(case, ctx, profile=True)
    n = max(1, sample.messages)
    out = [f"{case.label} at half its rate: {sample.messages:,} messages in the window, "
           f"{sample.us_per_msg:.1f} CPU-us/msg "
           "under cProfile (its overhead inflates small functions). Own and cumulative wall time per "
           "message; a socket write that wakes the target may be preempted by it, so its wall time can "
           "exceed its CPU time:",
           f"  {'own us/msg':>10} {'cum us/msg':>10} {'calls/msg':>9}  function"]
    for where, calls, own, cum in top:
        out.append(f"  {own * 1e6 / n:>10.2f} {cum * 1e6 / n:>10.2f} {calls / n:>9.2f}  {where}")
    return out


def machine() -> dict[str, Any]:
    from importlib.metadata import version

    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            **{name: version(name) for name in ("websockets", "uvloop", "aiohttp", "orjson", "locust")}}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line and exits 2, as every error of ours does."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _Parser(prog="python -m benchmarks.client",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one repeat, shorter windows, 5,000 paced/idle devices, a 20,000-device bound")
    parser.add_argument("--only", action="append", metavar="CASE",
                        help="run only these cases (comma list, repeatable); a case's bare loop comes along. "
                             f"Cases: {', '.join([c.key for c in CASES] + list(EXTRA_KEYS))}")
    parser.add_argument("--rate", action="append", metavar="CASE=R",
                        help="run a hot-path, naive or plain case at R messages/s (per device for a paced "
                             "case) instead of its own rate (comma list, repeatable); its floors are then "
                             "not judged: they hold at the cases' own rates")
    parser.add_argument("--json", metavar="PATH", help="also write every figure as JSON to PATH")
    parser.add_argument("--breakdown", action="store_true",
                        help="time the hot path's pure steps even when every floor is met")
    parser.add_argument("--max-devices", type=int, metavar="N",
                        help="bound of the max-devices ramp (default 250,000; --quick 20,000)")
    parser.add_argument("--profile", metavar="CASE",
                        help="instead of the table: run one hot-path case once with cProfile over its window "
                             "and print where its CPU goes, per message")
    return parser.parse_args(argv)


def _check_json_path(path: str | None) -> None:
    """Refuse an unwritable ``--json`` path before minutes of measuring, not after."""
    if path is not None and not Path(path).resolve().parent.is_dir():
        raise UsageError(f"--json {path!r}: directory {str(Path(path).resolve().parent)!r} does not exist")


def native_built() -> bool:
    """Whether ``bench._native`` (the C twins of the per-event steps) was built and is in use here."""
    from bench import native

    return native.in_use()


def native_label() -> str:
    from bench.native import PURE_ENV, pure_requested

    if native_built():
        return "C (bench._native)"
    if pure_requested():
        return f"Python ({PURE_ENV} is set)"
    return "Python (bench._native is not built: no C compiler?)"


def measure(args: argparse.Namespace, keys: Sequence[str], sizes: Sizes, argv: Sequence[str],
            rates: dict[str, float] | None = None) -> int:
    """Run the selected cases (``rates``: see ``--rate``), print the tables, write the JSON. 1 when a case
    could not be measured."""
    print(f"client-side cost, {os.cpu_count()} CPUs, {sizes.repeats} repeat(s), medians "
          f"(command: python -m benchmarks.client {' '.join(argv)})".rstrip(), file=sys.stderr, flush=True)
    print(f"the per-event steps with C twins run in {native_label()}; "
          f"'-py' cases run the Python twins", file=sys.stderr, flush=True)
    rows = run_cpu_cases(keys, sizes, rates)
    errors: dict[str, str] = {}
    idle = _extra("idle-rss", run_idle_rss, sizes, errors) if "idle-rss" in keys else None
    held = _extra("max-devices", run_max_devices, sizes, errors) if "max-devices" in keys else None
    missed = hot_floors_missed(rows)
    wanted = [k for k in rows if rows[k].case.kind == "hot" and rows[k].ok()] if args.breakdown else missed
    parts = run_breakdown(rows, wanted, sizes)
    lines = cpu_table(rows)
    lines += [line for line in [paced_line(rows)] if line]
    lines += speed_lines(rows)
    lines += memory_lines(idle, held) + [f"  {k}: failed: {v}" for k, v in errors.items()]
    lines += ["", *breakdown_lines(parts, rows)] if parts else []
    print("\n".join(lines))
    if args.json:
        doc = {"schema": "nucleus-bench/perf-client/1", "machine": machine(), "argv": list(argv),
               "native": native_built(),
               "sizes": asdict(sizes), "cases": to_json(rows), "idle_rss": idle, "max_devices": held,
               "breakdown": parts, "errors": errors, "hot_floors_not_met": missed}
        Path(args.json).write_text(json.dumps(_finite(doc), indent=2, allow_nan=False) + "\n")
    ours = ("bare", "hot", "naive", "plain")
    failed = any(row.errors for row in rows.values() if row.case.kind in ours) or errors
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.client``: 0 when every case was measured (floors met or not), 1 when a
    case failed, 2 on a bad flag."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    try:
        if args.max_devices is not None:
            if not 2 <= args.max_devices <= 300_000:
                raise UsageError(f"--max-devices {args.max_devices}: give 2 to 300,000")
            sizes = replace(sizes, max_devices=args.max_devices)
        keys = selected(args.only)
        rates = parse_rates(args.rate)
        if not set(rates) <= set(keys):
            raise UsageError(f"--rate: {sorted(set(rates) - set(keys))[0]!r} is not among the cases run")
        _check_json_path(args.json)
        if args.profile:
            print("\n".join(run_profile(args.profile, sizes)))
            return 0
    except UsageError as exc:
        print(f"benchmarks.client: error: {exc}", file=sys.stderr)
        return 2
    except PerfError as exc:
        print(f"benchmarks.client: {args.profile} failed: {exc}", file=sys.stderr)
        return 1
    return measure(args, keys, sizes, argv, rates)


def _finite(obj: Any) -> Any:
    """``obj`` with every NaN float (a figure that could not be measured) as None, for strict JSON."""
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


if __name__ == "__main__":
    sys.exit(main())
