"""How many events a Locust WebSocket or HTTP user delivers per client CPU-second (``make perf``).

``measure("ws")`` runs ``locust -f locustfiles/ws.py --headless`` as a child process for a few seconds
against one reference target, takes the child's CPU time from the kernel when it exits (``os.wait4`` on
its PID: user + system, the whole process from start-up to exit) and the acknowledged events from the
summary.json it wrote, and returns both ratios: over the whole process, and over the run alone (the
summary's own ``client.cpu_s``, start-up and imports left out).

This module imports neither locust nor gevent (Locust runs in the child), so an asyncio harness can call
it. Command line::

    python -m benchmarks.locust_cost --transport both --seconds 10 --users 50 --rate 20
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.protocol.errors import UsageError
from benchmarks._proc import wait_child

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILES = {"ws": ROOT / "locustfiles" / "ws.py", "http": ROOT / "locustfiles" / "http.py"}
#: Time allowed beyond the run for start-up, the drain (ack timeout) and shutdown.
SLACK_S = 60.0

_SCENARIO = """\
# written by benchmarks.locust_cost: every device sends at a fixed rate, in one long session
name = "locust-perf"
seed = 7
duration = {seconds}
[events]
per_device_rate = {rate}
arrival = "fixed"
[errors]
share = 0.0
[transport]
heartbeat = 0
http_flush = "{flush}"
ack_timeout = "5s"
"""


@dataclass(frozen=True, slots=True)
class LocustPerf:
    """One measurement: a Locust user type against one target."""

    transport: str
    users: int
    seconds: float
    acked: int
    lost: int
    process_cpu_s: float       # the locust process, start to exit (kernel accounting of its PID)
    run_cpu_s: float           # CPU inside the run (summary.json client.cpu_s)
    events_per_cpu_s: float    # acked / process_cpu_s
    events_per_run_cpu_s: float
    saturated: bool            # the generator could not keep its plan (summary.json generator.saturated)
    summary: str               # path of the summary.json (empty when it went to a temporary directory)


def _run_child(argv: Sequence[str], timeout_s: float) -> tuple[int, float, str]:
    """Run ``argv``; (exit code, CPU seconds of the child by the kernel's accounting, standard error).

    The child is reaped with ``os.wait4`` on its PID, which returns its resource usage; a timer kills it
    (by that PID) if it outlives ``timeout_s``.
    """
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
        code, cpu_s = wait_child(proc, timeout_s)
        if code == -signal.SIGKILL:
            raise UsageError(f"locust did not finish within {timeout_s:g} s")
        err.seek(0)
        text = err.read().decode(errors="replace")
    return code, cpu_s, text


def measure(transport: str, *, target_url: str, users: int = 50, seconds: float = 10.0,
            rate: float = 20.0, flush_s: float = 1.0, results_dir: str | None = None) -> LocustPerf:
    """Run one headless Locust user type against ``target_url`` and measure its events per CPU-second.

    Args:
        transport: "ws" or "http".
        target_url: the target's base URL (start one with bench.target.embedded.EmbeddedTarget).
        users: Locust users (devices), all spawned within the first second.
        seconds: run time.
        rate: events per second per device.
        flush_s: HTTP devices post their condensed events this often.
        results_dir: where the run's results go (default: a temporary directory, removed after).

    Raises:
        UsageError: unknown transport, or the run failed (its last error line in the message).
    """
    if transport not in LOCUSTFILES:
        raise UsageError(f"unknown transport {transport!r}: use ws or http")
    with tempfile.TemporaryDirectory(prefix="nucleus-locust-perf-") as tmp:
        scenario = Path(tmp) / "perf.toml"
        scenario.write_text(_SCENARIO.format(seconds=seconds, rate=rate, flush=f"{flush_s:g}s"))
        out = Path(results_dir or tmp) / "results"
        argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILES[transport]), "--headless",
                "-u", str(users), "-r", str(users), "-t", f"{seconds:g}s", "--host", target_url,
                "--scenario", str(scenario), "--results-dir", str(out), "--only-summary"]
        code, cpu, err = _run_child(argv, seconds + SLACK_S)
        summaries = sorted(out.glob("*/summary.json"))
        if code not in (0, 1) or not summaries:
            tail = err.strip().splitlines()[-1] if err.strip() else "no output"
            raise UsageError(f"locust {transport} run failed (exit {code}): {tail}")
        doc = json.loads(summaries[-1].read_text())
        block = doc["transports"][transport]
        acked, run_cpu = int(block["events"]["acked"]), float(block["client"]["cpu_s"])
        return LocustPerf(transport=transport, users=users, seconds=seconds, acked=acked,
                          lost=int(block["events"]["lost"]), process_cpu_s=cpu, run_cpu_s=run_cpu,
                          events_per_cpu_s=acked / cpu if cpu else 0.0,
                          events_per_run_cpu_s=acked / run_cpu if run_cpu else 0.0,
                          saturated=bool(block["generator"]["saturated"]),
                          summary=str(summaries[-1]) if results_dir else "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.locust_cost",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--transport", choices=("ws", "http", "both"), default="both")
    parser.add_argument("--target", help="target base URL (default: start the embedded reference target)")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=20.0, help="events/s per device")
    args = parser.parse_args(argv)
    transports = ("ws", "http") if args.transport == "both" else (args.transport,)
    from bench.target.embedded import EmbeddedTarget

    try:
        with EmbeddedTarget(store="memory") as target:
            for transport in transports:
                result = measure(transport, target_url=args.target or target.url, users=args.users,
                                 seconds=args.seconds, rate=args.rate)
                print(f"locust {transport}: {result.acked} events acked in {result.seconds:g} s by "
                      f"{result.users} users; {result.events_per_cpu_s:.0f} events per client CPU-second "
                      f"(whole process), {result.events_per_run_cpu_s:.0f} (during the run)"
                      f"{'; GENERATOR SATURATED' if result.saturated else ''}")
                print(json.dumps(asdict(result)))
    except UsageError as exc:
        print(f"benchmarks.locust_cost: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
