"""Other clients measured beside the hot path: Debian's ``wrk`` and the Locust users of ``locustfiles/``.

- **wrk** posts the hot path's own 10-event body (written to a file, loaded by a small Lua script given
  with ``-s``) over a few keep-alive connections as fast as it can, for a fixed time. Its CPU time is the
  kernel's accounting of its PID when it is reaped (``os.wait4``): the whole process, which for a C
  program is the run itself. Requests come from its report ("N requests in S").
- **Locust** runs through ``benchmarks.locust_cost.measure`` (it starts ``locust --headless`` as a child
  process); its CPU is the run's own ``client.cpu_s`` from the summary.json it writes (start-up and
  imports left out), its counts the summary's ``events.sent`` and ``wire.messages_sent``.

A tool that is missing gives a ``PerfError`` with the reason, and the row says "not available".
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from benchmarks._cases import Sample
from benchmarks._proc import PerfError, cpu_s_of, wait_child

_LUA = """\
-- nucleus-bench perf: POST the hot path's own 10-event body, every request the same bytes
local f = assert(io.open("{body}", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
"""
_REQUESTS = re.compile(r"(\d+) requests in ([\d.]+)(ms|s|m)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: (.*)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0}
#: wrk's run time plus this much before its own PID is killed.
WRK_SLACK_S = 30.0


def run_wrk(url: str, body: bytes, *, connections: int, seconds: float, epm: int,
            target_pid: int) -> Sample:
    """POST ``body`` to ``url`` with wrk for ``seconds``; one sample (wrk's CPU from its PID).

    Raises:
        PerfError: wrk is not installed or its run failed.
    """
    exe = shutil.which("wrk")
    if exe is None:
        raise PerfError("wrk is not installed (make perf installs Debian's wrk with apt-get)")
    with tempfile.TemporaryDirectory(prefix="nucleus-perf-wrk-") as tmp:
        body_path = Path(tmp) / "body.json"
        body_path.write_bytes(body)
        script = Path(tmp) / "post.lua"
        script.write_text(_LUA.format(body=body_path))
        argv = [exe, "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", str(script), url]
        with tempfile.TemporaryFile() as out:
            target0 = cpu_s_of(target_pid)
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
            code, cpu = wait_child(proc, seconds + WRK_SLACK_S)
            target1 = cpu_s_of(target_pid)
            out.seek(0)
            text = out.read().decode(errors="replace")
    found = _REQUESTS.search(text)
    if code != 0 or found is None:
        tail = text.strip().splitlines()[-1] if text.strip() else "no output"
        raise PerfError(f"wrk failed (exit {code}): {tail}")
    requests, elapsed = int(found.group(1)), float(found.group(2)) * _UNIT_S[found.group(3)]
    notes = [f"{m.group(1)} non-2xx" for m in [_NON_2XX.search(text)] if m]
    notes += [f"socket errors: {m.group(1).strip()}" for m in [_SOCKET_ERRORS.search(text)] if m]
    return Sample(messages=requests, events=requests * epm, seconds=elapsed, client_cpu_s=cpu,
                  target_cpu_s=target1 - target0, note="; ".join(notes),
                  flags=("errors from wrk's report",) if notes else ())


def run_locust(transport: str, target_url: str, *, users: int, seconds: float, rate: float,
               flush_s: float, target_pid: int) -> Sample:
    """One headless Locust run of the ``transport`` user; figures from its summary.json.

    Raises:
        PerfError: the Locust glue or locustfiles are not there, or the run failed.
    """
    try:
        from benchmarks.locust_cost import measure
    except ImportError as exc:
        raise PerfError(f"benchmarks.locust_cost is not importable: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="nucleus-perf-locust-") as tmp:
        target0 = cpu_s_of(target_pid)
        try:
            result = measure(transport, target_url=target_url, users=users, seconds=seconds, rate=rate,
                             flush_s=flush_s, results_dir=tmp)
        except Exception as exc:  # their tool failed: the row says why, the benchmark goes on
            raise PerfError(f"locust {transport}: {exc}") from None
        target1 = cpu_s_of(target_pid)
        if not result.summary:
            raise PerfError(f"locust {transport}: the run wrote no summary.json")
        block = json.loads(Path(result.summary).read_text())["transports"][transport]
    events, messages = int(block["events"]["sent"]), int(block["wire"]["messages_sent"])
    if not messages:
        raise PerfError(f"locust {transport}: the run sent no message (acked {result.acked}, "
                        f"lost {result.lost})")
    lost = int(block["events"]["lost"])
    saturated = bool(block.get("generator", {}).get("saturated"))
    flags = (["events lost or refused"] if lost else []) + (["generator saturated (its own check)"]
                                                              if saturated else [])
    reasons = block.get("generator", {}).get("reasons", [])
    return Sample(messages=messages, events=events, seconds=float(block["throughput"]["send_s"]),
                  client_cpu_s=float(block["client"]["cpu_s"]), target_cpu_s=target1 - target0,
                  note="; ".join([f"{lost} lost"] * bool(lost) + [f"saturated: {r}" for r in reasons]),
                  flags=tuple(flags))
