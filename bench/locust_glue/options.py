"""The custom Locust command-line arguments of the device-fleet locustfiles, and their parsed form.

Locust parses them with its own parser (``events.init_command_line_parser``); ``include_in_web_ui=True``
puts the run-shaping ones in the web UI's start form, where they can be edited before each run. The
``--check-*`` gates are for headless CI and stay off the form. Each ``type=`` function raises
``argparse.ArgumentTypeError``, so a bad value is one line (``locust: error: argument --x: ...``), exit 2.

Distributed runs: Locust forwards every custom argument from the master to its workers with each spawn
message, so workers use the master's values. ``--scenario`` is read by the master only: its text goes to
the workers in the run's spec (``runstate.RunSpec``), so a worker needs no copy of the file.
``--master-timeout`` is the exception: a worker reads its own, when it starts (it is what the worker
does when its master is gone, so it cannot wait for the master to send it).

``align_forked_workers`` fixes the address ``--processes`` gives the workers it forks: Locust forks them
with the command line's ``--master-host``/``--master-port`` (default 127.0.0.1:5557) whatever port the
master binds, so ``--master-bind-port`` alone left the workers dialling a port nobody listened on.
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from bench.locust_glue.gates import Gates

DEFAULT_SCENARIO = "scenarios/desktop-fleet.toml"
DEFAULT_RESULTS_DIR = "results"
#: Seconds a worker waits for a heartbeat from its master before taking it for dead (Locust's own: 60).
DEFAULT_MASTER_TIMEOUT_S = 15.0
#: The range of ``--master-timeout``: heartbeats come once a second, so less than 3 s of silence is
#: jitter (the master, too, waits 3 missed heartbeats before it marks a worker missing); from 60 s on,
#: Locust's own limit ends the worker first, without its partial result.
MASTER_TIMEOUT_RANGE_S = (3.0, 60.0)
#: contract.md, "Endpoints": appId is 1-64 characters of [A-Za-z0-9_-].
_APP_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
Endpoint = Literal["app", "short"]
#: contract.md, "Endpoints": /app/{appId}/track (every official module) or /{appId}/ (the document's form).
ENDPOINTS: tuple[Endpoint, ...] = ("app", "short")


def _app_id(text: str) -> str:
    if text and not _APP_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not 1-64 characters of [A-Za-z0-9_-]")
    return text


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number >= 0")
    return value


def _ratio(text: str) -> float:
    value = _non_negative(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a ratio between 0 and 1")
    return value


def _master_timeout(text: str) -> float:
    value = _non_negative(text)
    low, high = MASTER_TIMEOUT_RANGE_S
    if not low <= value < high:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least {low:g} and below {high:g} (seconds)")
    return value


def add_arguments(parser: Any) -> None:
    """Add the custom arguments to Locust's parser (a ``LocustArgumentParser``, duck-typed here)."""
    parser.add_argument("--scenario", default=DEFAULT_SCENARIO, include_in_web_ui=True,
                        help="scenario TOML file: what each device (one Locust user) does")
    parser.add_argument("--app-id", default="", type=_app_id, include_in_web_ui=True,
                        help="appId to send to; empty: the scenario's, else a fresh 24-hex id per run")
    parser.add_argument("--endpoint", default="app", choices=ENDPOINTS, include_in_web_ui=True,
                        help="WebSocket path: app = /app/{appId}/track (the modules), short = /{appId}/ "
                             "(the document)")
    parser.add_argument("--results-dir", default=DEFAULT_RESULTS_DIR, include_in_web_ui=True,
                        help="summary.json goes to DIR/<UTC time>-locust-<scenario>/")
    parser.add_argument("--insecure", action="store_true", default=False, include_in_web_ui=False,
                        help="skip TLS certificate checks (wss:// and https:// test servers)")
    parser.add_argument("--master-timeout", type=_master_timeout, default=DEFAULT_MASTER_TIMEOUT_S,
                        include_in_web_ui=False,
                        help="worker: no heartbeat from the master for S seconds means it is gone: stop "
                             "sending, write this worker's partial result locally, exit 1 (default "
                             f"{DEFAULT_MASTER_TIMEOUT_S:g})")
    gates = (
        ("--check-p99-ms", _non_negative, "fail (exit 3) if a transport's p99 ack latency is above MS"),
        ("--check-lost-ratio", _ratio, "fail (exit 3) if lost events / sent events is above R"),
        ("--check-fail-ratio", _ratio, "fail (exit 3) if rejected + lost events / sent events is above R"),
        ("--check-min-eps", _non_negative, "fail (exit 3) if acknowledged events/s are below N"),
    )
    for flag, kind, text in gates:
        parser.add_argument(flag, type=kind, default=None, include_in_web_ui=False, help=text)


@dataclass(frozen=True, slots=True)
class GlueOptions:
    """The custom arguments of one run, read from Locust's parsed options."""

    scenario: str = DEFAULT_SCENARIO
    app_id: str = ""
    endpoint: Endpoint = "app"
    results_dir: str = DEFAULT_RESULTS_DIR
    insecure: bool = False
    master_timeout_s: float = DEFAULT_MASTER_TIMEOUT_S
    gates: Gates = field(default_factory=Gates)

    @classmethod
    def from_parsed(cls, ns: Any) -> GlueOptions:
        """From ``environment.parsed_options`` (None in a bare Environment: the defaults).

        Values typed into the web UI form arrive as strings; they are checked like the command line's.

        Raises:
            argparse.ArgumentTypeError: a value from the web UI form is out of range.
        """
        if ns is None:
            return cls()
        endpoint = str(getattr(ns, "endpoint", "app") or "app")
        if endpoint not in ENDPOINTS:
            raise argparse.ArgumentTypeError(f"--endpoint {endpoint!r}: use one of {', '.join(ENDPOINTS)}")
        return cls(
            scenario=str(getattr(ns, "scenario", None) or DEFAULT_SCENARIO),
            app_id=_app_id(str(getattr(ns, "app_id", "") or "")),
            endpoint="app" if endpoint == "app" else "short",
            results_dir=str(getattr(ns, "results_dir", None) or DEFAULT_RESULTS_DIR),
            insecure=bool(getattr(ns, "insecure", False)),
            master_timeout_s=_master_timeout(str(getattr(ns, "master_timeout", None)
                                                 or DEFAULT_MASTER_TIMEOUT_S)),
            gates=Gates(
                p99_ms=_opt(ns, "check_p99_ms", _non_negative),
                lost_ratio=_opt(ns, "check_lost_ratio", _ratio),
                fail_ratio=_opt(ns, "check_fail_ratio", _ratio),
                min_eps=_opt(ns, "check_min_eps", _non_negative),
            ),
        )


def _opt(ns: Any, name: str, kind: Any) -> float | None:
    value = getattr(ns, name, None)
    if value is None or value == "":
        return None
    return float(kind(str(value)))


def align_forked_workers(ns: Any, error: Any) -> None:
    """With ``--processes`` (and no ``--worker``), point the forked workers at the master's own address.

    Locust forks before the master binds, and each child dials ``--master-host``:``--master-port``; the
    master binds ``--master-bind-host``:``--master-bind-port``. Those are the same process here, so the
    bind address is the one to dial (127.0.0.1 when the master binds every interface).

    Args:
        ns: Locust's parsed options (changed in place).
        error: the parser's ``error`` (one line, exit 2): a port of 0 cannot be known before the fork.
    """
    if not getattr(ns, "processes", None) or getattr(ns, "worker", False):
        return
    port = int(getattr(ns, "master_bind_port", 5557))
    if port == 0:
        error("--processes forks its workers before the master binds: give --master-bind-port a fixed port")
    ns.master_port = port
    host = str(getattr(ns, "master_bind_host", "*") or "*")
    ns.master_host = "127.0.0.1" if host in ("*", "0.0.0.0") else ("::1" if host == "::" else host)
