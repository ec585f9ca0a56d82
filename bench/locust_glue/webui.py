"""Locust's web UI shows what the instrument measures: the Nucleus tab, honest columns, a checked form.

Everything goes through the extension points Locust documents (its ``extend_web_ui`` example and
"Customizing response time bucketing"); its front end is used as shipped.

- **The Nucleus tab** (``extended_tabs``/``extended_tables``): ``/stats/requests``, which the page asks for
  every 2 s while a test runs, carries the tab's rows in ``extended_stats`` (bench.locust_glue.tab). While
  the run is live they come from every process's books so far (bench.locust_glue.live: workers send a
  snapshot every 2 s, the master merges them exactly); once the run has ended, from the summary.json it
  wrote, so the tab and the file hold the same figures. The Download Data tab links the last run's
  ``summary.json`` and ``report.html`` (``extended_csv_files``; routes ``nucleus/summary.json`` and
  ``nucleus/report.html``).
- **Honest columns**: Locust keeps response times in whole-millisecond buckets below 100 ms, so the sub-
  millisecond acks of a fast target read 0 or 1 in its table and a flat 0 in its charts.
  ``bucket_response_time`` keeps two significant digits below 10 ms (0.13 stays 0.13), and the table's
  Min/Max, which Locust rounds to whole milliseconds, are given to two significant digits likewise.
- **A checked form**: ``POST /swarm`` is answered ``success: false`` with one line (bench.locust_glue.form)
  when a field is bad; the page shows it under the form and nothing starts.
- **The end of the run reaches the page**: the end-of-run lines go to the tab and to Locust's log buffer (the
  Logs tab). The page asks for the logs only while a test runs (every 5 s), so when one is watching, the
  end of the run waits (at most ``PAGE_WAIT_S``) until the page has fetched them before the test is
  stopped: after Stop, the Logs tab holds the lines too.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import gevent
import gevent.event
import locust.stats
from flask import Blueprint, Response, g, jsonify, make_response, request, send_file
from gevent import subprocess
from locust.env import Environment
from locust.rpc import Message
from locust.runners import MasterRunner, WorkerRunner

from bench.locust_glue import live, tab
from bench.locust_glue.devices import check_base_url
from bench.locust_glue.form import check_form
from bench.locust_glue.runstate import RunState

logger = logging.getLogger("nucleus_bench")

#: Locust's own bucketing, used from 10 ms up.
_LOCUST_BUCKET = locust.stats.bucket_response_time
#: The page asks for /logs every 5 s while a test runs: the end of a run waits at most this long for it.
PAGE_WAIT_S = 10.0
#: A page that asked for /logs within this many seconds is taken as watching.
PAGE_SEEN_S = 12.0
#: Live rows are rebuilt at most this often (the page asks every 2 s).
ROWS_TTL_S = 1.0
#: The longest the end of a web UI run waits for its report to be written.
REPORT_TIMEOUT_S = 120.0
#: Warnings and errors of a run kept for the tab.
PROBLEMS_KEPT = 20
#: The loggers whose warnings and errors the tab shows.
WATCHED_LOGGERS = ("nucleus_bench", "bench")


def bucket_response_time(response_time: float) -> float:
    """Locust's response-time bucket, two significant digits below ``tab.FINE_BELOW_MS`` (its documented
    hook, "Customizing response time bucketing")."""
    if 0 < response_time < tab.FINE_BELOW_MS:
        return tab.fine(response_time)
    return _LOCUST_BUCKET(response_time)


class GlueView(Protocol):
    """What the tab reads of bench.locust_glue.plugin's ``Glue`` (one process's listeners)."""

    run: RunState | None
    final: dict[str, Any] | None
    target: Any
    collection: Any


@dataclass(frozen=True, slots=True)
class Finished:
    """The last run that wrote a summary: its figures, folder and end-of-run lines."""

    summary: Mapping[str, Any]
    run_dir: Path
    lines: tuple[str, ...]
    details: Mapping[str, Mapping[str, Any]]


class Problems(logging.Handler):
    """The warnings and errors logged during the current run, for the tab's ``run`` rows."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: deque[str] = deque(maxlen=PROBLEMS_KEPT)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname.lower()}: {record.getMessage()}")


class WebTab:
    """The web UI side of one Locust process (see the module docstring)."""

    def __init__(self, environment: Environment, glue: GlueView) -> None:
        self.environment = environment
        self.glue = glue
        self.live: dict[str, Mapping[str, Any]] = {}  # master: the latest snapshot of each worker
        self.finished: Finished | None = None
        self.problems = Problems()
        self._rows: tuple[float, list[tab.Row]] | None = None
        self._logs_asked = 0     # /logs requests begun
        self._logs_answered = 0  # the latest /logs request answered (by its number)
        self._logs_seen_at: float | None = None
        self._logs_event = gevent.event.Event()
        self._sender: gevent.Greenlet | None = None
        self._writing_report = False

    # -- set-up -------------------------------------------------------------------------------------
    def install(self) -> None:
        env, runner = self.environment, self.environment.runner
        stats_module: Any = locust.stats  # typed to return int; the documented hook takes any number
        stats_module.bucket_response_time = bucket_response_time  # every process that logs requests
        events: Any = env.events  # locust's EventHook is untyped
        events.test_start.add_listener(self.on_test_start)
        if isinstance(runner, WorkerRunner):
            self._sender = gevent.spawn(self._send_live, runner)
            return
        for name in WATCHED_LOGGERS:
            logging.getLogger(name).addHandler(self.problems)
        if isinstance(runner, MasterRunner):
            runner.register_message(live.LIVE_MSG, self.on_live)
        if env.web_ui is not None:
            self._extend(env.web_ui)

    def _extend(self, web_ui: Any) -> None:
        """The tab, the download routes and the request hooks, on Locust's Flask app."""
        web_ui.template_args.update({
            "extended_tabs": [{"title": tab.TAB_TITLE, "key": tab.TAB_KEY}],
            "extended_tables": [{"key": tab.TAB_KEY, "structure": list(tab.STRUCTURE)}],
            "extended_csv_files": [
                {"href": tab.SUMMARY_HREF, "title": "Download summary.json of the last Nucleus run"},
                {"href": tab.REPORT_HREF, "title": "Download report.html of the last Nucleus run"}],
        })
        base = getattr(self.environment.parsed_options, "web_base_path", "") or ""
        blueprint = Blueprint("nucleus", __name__, url_prefix=base or None)
        auth = web_ui.auth_required_if_enabled
        blueprint.add_url_rule("/nucleus/summary.json", "summary", auth(self.download_summary))
        blueprint.add_url_rule("/nucleus/report.html", "report", auth(self.download_report))
        app = web_ui.app
        app.register_blueprint(blueprint)
        app.before_request(self.before_request)
        app.after_request(self.after_request)

    # -- Locust events and messages -----------------------------------------------------------------
    def on_test_start(self, **_: Any) -> None:
        """A new run: the tab forgets the last one (its files stay, and stay downloadable until it ends)."""
        self.live.clear()
        self.problems.lines.clear()
        self._rows = None

    def on_live(self, environment: Environment, msg: Message, **_: Any) -> None:
        """Master: a worker's snapshot of the current run (one of an earlier run is dropped)."""
        c = self.glue.collection
        if c is not None and not c.done and isinstance(msg.data, dict) \
                and msg.data.get("run_id") == c.spec.run_id:
            self.live[str(msg.node_id)] = msg.data

    def _send_live(self, runner: WorkerRunner) -> None:
        """Worker: a snapshot of its run every ``LIVE_S`` while it sends."""
        failed_run = ""
        while True:
            gevent.sleep(live.LIVE_S)
            run = self.glue.run
            if run is None or run.draining or self.glue.final is not None:
                continue
            try:
                runner.send_message(live.LIVE_MSG, live.snapshot(run, int(runner.worker_index)))
            except Exception:  # never let the tab stop a worker: say why (once a run), keep sending
                if failed_run != run.spec.run_id:
                    failed_run = run.spec.run_id
                    logger.exception("nucleus-bench: the live snapshot could not be sent")

    # -- the page's requests ------------------------------------------------------------------------
    def before_request(self) -> Response | None:
        """A bad start form is answered here, before Locust starts anything; /logs requests are counted."""
        endpoint = request.endpoint
        if endpoint == "locust.logs":
            self._logs_asked += 1
            g.nucleus_logs = self._logs_asked
        elif endpoint == "locust.swarm" and request.method == "POST":
            form = {k: str(v) for k, v in request.form.items()}
            problem = check_form(self.environment.parsed_options, form, embedded=self.glue.target is not None,
                                 check_host=check_base_url)
            if problem is not None:
                # INFO: the page shows it under the form; the terminal and the Logs tab keep it (it is no
                # problem of a run, for the tab's rows)
                logger.info("nucleus-bench: the start form was refused: %s", problem)
                return jsonify({"success": False, "message": problem, "host": self.environment.host})
        return None

    def after_request(self, response: Response) -> Response:
        endpoint = request.endpoint
        if endpoint == "locust.request_stats" and response.is_json:
            data = response.get_json()
            self._honest_min_max(data.get("stats", []))
            data["extended_stats"] = [{"key": tab.TAB_KEY, "data": self.rows()}]
            response.set_data(jsonify(data).get_data())
        elif endpoint == "locust.logs":
            self._logs_answered = max(self._logs_answered, int(getattr(g, "nucleus_logs", 0)))
            self._logs_seen_at = time.monotonic()
            self._logs_event.set()
        return response

    def _honest_min_max(self, rows: list[dict[str, Any]]) -> None:
        """Min/Max of Locust's table to two significant digits below 10 ms (it sends whole ms)."""
        runner = self.environment.runner
        if runner is None:
            return
        stats = runner.stats
        for r in rows:
            entry = stats.entries.get((str(r.get("name", "")), str(r.get("method", ""))))
            if entry is None and r.get("name") == "Aggregated":
                entry = stats.total
            if entry is not None:
                r["min_response_time"] = tab.ms_figure(entry.min_response_time)
                r["max_response_time"] = tab.ms_figure(entry.max_response_time)

    def download_summary(self) -> Response:
        return self._download("summary.json", "application/json")

    def download_report(self) -> Response:
        return self._download("report.html", "text/html")

    def _download(self, name: str, mimetype: str) -> Response:
        done = self.finished
        if done is None:
            return make_response(f"no Nucleus run has ended in this Locust yet: no {name} to give\n", 404)
        path = done.run_dir / name
        if not path.is_file():
            return make_response(f"{path} is not there (for report.html: nucleus-bench report "
                                 f"{done.run_dir})\n", 404)
        return send_file(path.resolve(), mimetype=mimetype, as_attachment=True,
                         download_name=f"{done.run_dir.name}-{name}", max_age=0)

    # -- the tab's rows -----------------------------------------------------------------------------
    def rows(self) -> list[tab.Row]:
        """The tab's rows now (live ones rebuilt at most every ``ROWS_TTL_S``)."""
        now = time.monotonic()
        if self._rows is not None and now - self._rows[0] < ROWS_TTL_S:
            return self._rows[1]
        try:
            rows = tab.rows(self.view())
        except Exception as exc:  # a bug here must not take Locust's own statistics down with it
            logger.exception("nucleus-bench: the Nucleus tab could not read the figures")
            why = f"the Nucleus tab could not read the figures: {exc!r}"
            rows = [tab.row("run", "", "problem", value=why)]
        self._rows = (now, rows)
        return rows

    def view(self) -> tab.View:
        """What the tab shows: the finished run, the live one, or nothing yet."""
        problems = tuple(self.problems.lines)
        done = self.finished
        c = self.glue.collection
        if done is not None and (c is None or c.done):
            return tab.View(state="finished", note=f"summary.json written to {done.run_dir}",
                            blocks=done.summary["transports"], details=done.details,
                            run_dir=str(done.run_dir), report=(done.run_dir / "report.html").is_file(),
                            writing_report=self._writing_report, lines=done.lines, problems=problems,
                            verdicts=(done.summary.get("objective") or {}).get("transports", {}))
        snaps = self._live_snapshots()
        if not snaps:
            note = "the run has started: figures come within 2 s" if c is not None else "no run yet"
            return tab.View(state="waiting" if c is not None else "idle", note=note, problems=problems)
        figs = live.figures(snaps)
        at = time.strftime("%H:%M:%S", time.localtime(min(float(s["at"]) for s in snaps)))
        note = (f"figures so far of {figs.processes} process(es), as of {at}"
                + ("; the run is ending (draining)" if c is not None and c.done else ""))
        return tab.View(state="live", note=note, blocks=figs.blocks, details=tab.detail_json(figs.details),
                        problems=problems)

    def _live_snapshots(self) -> list[Mapping[str, Any]]:
        if isinstance(self.environment.runner, MasterRunner):
            return list(self.live.values())
        run = self.glue.run
        return [live.snapshot(run, 0)] if run is not None and run.books else []

    # -- the end of a run ---------------------------------------------------------------------------
    def ended(self, summary: Mapping[str, Any], run_dir: Path | str, lines: list[str],
              results: Mapping[str, Mapping[str, Any]]) -> None:
        """Master/standalone: the run wrote ``summary`` to ``run_dir`` and printed ``lines``.

        The tab switches to the summary's figures. With the web UI on, the run's report is written
        (``nucleus-bench report``, a child process: the page links it), the lines go to Locust's log buffer,
        and a watching page is given the time to fetch them. None of that happens when Locust is quitting
        mid-run, or in the runner's own greenlet (which must go on hearing the workers): it must not wait.
        """
        details = tab.detail_json(live.merge_details(results.values()))
        done = Finished(summary=summary, run_dir=Path(run_dir).resolve(), lines=tuple(lines), details=details)
        self.finished, self._rows = done, None
        if self.environment.web_ui is None:
            return
        interrupted = any(t.get("interrupted") for t in summary.get("transports", {}).values())
        runner = self.environment.runner
        may_wait = not interrupted and runner is not None and gevent.getcurrent() not in runner.greenlet
        if may_wait:
            self._writing_report, self._rows = True, None
            try:
                line = write_report(done.run_dir)
            finally:
                self._writing_report = False
            print(line, flush=True)
            self.finished, self._rows = replace(done, lines=(*done.lines, line)), None
        to_log_buffer(self.finished.lines)
        if may_wait:
            self._wait_for_page()

    def _wait_for_page(self) -> bool:
        """Wait (at most ``PAGE_WAIT_S``) until a page that asks for /logs has asked once more."""
        seen = self._logs_seen_at
        if seen is None or time.monotonic() - seen > PAGE_SEEN_S:
            return False
        mark, deadline = self._logs_asked, time.monotonic() + PAGE_WAIT_S
        while self._logs_answered <= mark:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._logs_event.clear()
            self._logs_event.wait(left)
        return True


def write_report(run_dir: Path) -> str:
    """``nucleus-bench report run_dir`` in a child process (gevent runs on); its one-line outcome."""
    try:
        done = subprocess.run([sys.executable, "-m", "bench", "report", str(run_dir)], capture_output=True,
                              text=True, timeout=REPORT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"report: not written: {exc}"
    if done.returncode != 0:
        why = (str(done.stderr).strip().splitlines() or [f"exit {done.returncode}"])[-1]
        return f"report: not written: {why}"
    return (str(done.stdout).strip().splitlines() or [f"report: {run_dir / 'report.html'}"])[0]


def to_log_buffer(lines: Sequence[str]) -> None:
    """Add ``lines`` to Locust's in-memory log (its Logs tab), not to the terminal (they were printed)."""
    reader = next((h for h in logging.getLogger().handlers if h.name == "log_reader"), None)
    if reader is None:
        return
    for line in lines:
        reader.handle(logging.LogRecord("nucleus_bench", logging.INFO, __file__, 0, line, None, None))


def install(environment: Environment, glue: GlueView) -> WebTab:
    """The web UI side of this process, installed (call from ``init``, before the run's own listeners)."""
    web = WebTab(environment, glue)
    web.install()
    return web
