"""The pure parts behind Locust's web UI: live figures, the Nucleus tab's rows, the form check, honest ms.

None of them loads locust or gevent, so they run in this process; the web UI itself is tested in a real
Locust and a real browser (test_locust_webui_browser.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]  # how Locust carries custom messages
import pytest

from bench.locust_glue import live, tab
from bench.locust_glue.detail import Detail, merge_json
from bench.locust_glue.form import check_form
from bench.locust_glue.messages import merge_messages, result_message
from bench.locust_glue.runstate import RunSpec, RunState
from bench.protocol.errors import UsageError
from bench.results.summary import quantiles, transport_summary
from bench.scenario import load_scenario

SMOKE = load_scenario("scenarios/smoke.toml")
MS = 1_000_000


def _wire(msg: Any) -> Any:
    """``msg`` as it arrives after Locust's msgpack (what a worker's message looks like to the master)."""
    return msgpack.unpackb(msgpack.packb(msg), strict_map_key=False)


# -- honest milliseconds ----------------------------------------------------------------------------------
def test_sub_millisecond_times_keep_two_significant_digits() -> None:
    """What Locust shows as 0 or 1 (whole ms) keeps two significant digits; from 10 ms on, whole ms."""
    assert [tab.fine(v) for v in (0.1345, 0.0098, 3.456, 9.94)] == [0.13, 0.0098, 3.5, 9.9]
    assert [tab.ms_figure(v) for v in (None, 0.087, 0.1345, 3.456, 123.4)] == [0, 0.087, 0.13, 3.5, 123]


# -- per event type, merged ------------------------------------------------------------------------------
def test_event_type_histograms_merge_to_what_one_process_would_have_counted() -> None:
    """Two processes' ``Detail`` added up (after msgpack) equal one process that saw every sample."""
    samples = [("event", 300_000, 900_000), ("init", 1_200_000, 1_500_000), ("event", 50_000, 70_000),
               ("error", 2_000_000, 2_000_000), ("event", 10_000_000, 12_000_000)]
    one, parts = Detail(), [Detail(), Detail()]
    for k, (event_type, raw, corrected) in enumerate(samples):
        one.acked(event_type, raw, corrected)
        parts[k % 2].acked(event_type, raw, corrected)
    parts[1].refuse(400, 3)
    parts[0].refuse(400, 2)
    parts[0].refuse(503, 1)
    for d in (one, *parts):
        d.fold()
    merged = merge_json([_wire(p.to_json()) for p in parts])
    assert sorted(merged["types"]) == ["error", "event", "init"]
    for event_type, kinds in one.types.items():
        for kind, hist in kinds.items():
            assert merged["types"][event_type][kind] == hist, (event_type, kind)
    assert merged["types"]["event"]["raw"].count == 3
    assert merged["types"]["event"]["corrected"].max() == pytest.approx(12_000.0)  # µs, exact
    assert merged["refused"] == {400: 5, 503: 1}


# -- live figures --------------------------------------------------------------------------------------------
def _run(worker: int, acked: int, lost: int) -> RunState:
    """A RunState of one WebSocket connection fed ``acked + lost`` events (one message each)."""
    now = [0]
    spec = RunSpec(run_id="r", scenario_path=SMOKE.path, scenario_text="",
                   app_ids=(("ws", "a"), ("http", "h")), duration_s=5.0)
    run = RunState(spec, SMOKE, worker_index=worker, clock_ns=lambda: now[0])
    books = run.book("ws")
    conn = run.new_conn_id()
    for n in range(acked + lost):
        event_id = worker * 1000 + n
        intended = now[0]
        now[0] += 200_000  # written 0.2 ms late
        books.tracker.on_send(conn, (event_id,), intended, now[0], (intended,))
        now[0] += (n + 1) * MS
        if n < acked:
            books.tracker.on_ws_ack(conn, (event_id,), now[0])
            books.detail.acked("event" if n % 3 else "init", (n + 1) * MS, (n + 1) * MS + 200_000)
    now[0] += int(10 * SMOKE.ack_timeout_s * 1e9)
    books.tracker.expire(now[0])
    return run


def test_live_figures_are_the_exact_merge_of_the_workers_snapshots() -> None:
    """The master's live figures from two workers' snapshots are what the end of the run will merge:
    counters summed, latency objects from the added histograms, event types added."""
    runs = {"w0": _run(0, acked=7, lost=2), "w1": _run(1, acked=5, lost=1)}
    snaps = [_wire(live.snapshot(run, k)) for k, run in enumerate(runs.values())]
    figs = live.figures(snaps)
    assert figs.processes == 2
    block = figs.blocks["ws"]
    assert {k: block["events"][k] for k in ("sent", "acked", "lost", "in_flight")} == \
        {"sent": 15, "acked": 12, "lost": 3, "in_flight": 0}
    for run in runs.values():
        run.stop_sending()
        run.finish()
    messages = {node: _wire(result_message(run, k)) for k, (node, run) in enumerate(runs.items())}
    final = merge_messages(messages)
    end = transport_summary(final["ws"])
    assert block["ack_latency_us"]["corrected"] == end["ack_latency_us"]["corrected"]
    assert block["ack_latency_us"]["raw"] == end["ack_latency_us"]["raw"]
    assert block["accounting"] == end["accounting"]
    types = tab.detail_json(figs.details)["ws"]["types"]
    assert types["event"]["raw"]["count"] + types["init"]["raw"]["count"] == 12
    assert types["init"]["raw"]["count"] == 3 + 2  # n % 3 == 0: events 0, 3, 6 of w0; 0, 3 of w1


# -- the tab's rows --------------------------------------------------------------------------------------
def _cells(rows: list[tab.Row], figure: str, transport: str = "ws") -> tab.Row:
    (found,) = [r for r in rows if r["figure"] == figure and r["transport"] == transport]
    return found


def _finished_view(rec: dict[str, Any], refused: dict[str, int] | None = None) -> tab.View:
    run = _run(0, acked=7, lost=2)
    run.stop_sending()
    run.finish()
    block = transport_summary(run.results()["ws"])
    block["events"]["rejected"] = 4  # as if the server had refused some (the tab reads the block as given)
    block["reconciliation"] = rec
    details = {"ws": {"types": {t: {k: quantiles(h) for k, h in kinds.items()}
                                for t, kinds in run.books["ws"].detail.types.items()},
                      "refused": refused or {}}}
    return tab.View(state="finished", note="done", blocks={"ws": block}, details=details, run_dir="/r/x",
                    report=True, lines=("ws: line one", "results: /r/x"))


CLEAN = {"done": True, "method": "reference", "stored": 7, "acked_not_stored": 0, "stored_not_acked": 0,
         "duplicates_stored": 0, "note": ""}


def test_rows_print_the_summary_figures_and_the_accounting_terms() -> None:
    """Latency rows are the summary's latency objects in µs with one decimal; accounting rows its counts;
    rejections split by reason add up to the rejected count."""
    view = _finished_view(CLEAN, refused={"400": 3})
    rows = tab.rows(view)
    assert all(set(r) == set(tab.COLUMNS) and all(isinstance(v, str) for v in r.values()) for r in rows)
    assert rows[0]["figure"] == "state" and rows[0]["value"] == "finished: done"
    corrected = view.blocks["ws"]["ack_latency_us"]["corrected"]
    cells = _cells(rows, "ack latency, corrected (ack - intended send)")
    assert cells["count"] == "7" and cells["p50"] == f"{corrected['p50']:.1f}"
    assert cells["max"] == f"{corrected['max']:.1f}"
    assert _cells(rows, "lost")["count"] == "2" and _cells(rows, "sent")["count"] == "9"
    assert _cells(rows, "rejected: batch refused with HTTP 400")["count"] == "3"
    assert _cells(rows, "rejected: left out of reportedIds")["count"] == "1"
    assert _cells(rows, "identity")["value"] == view.blocks["ws"]["accounting"]["line"]
    assert _cells(rows, "type init: raw")["count"] == "3"  # events 0, 3 and 6
    assert _cells(rows, "results folder", "")["value"] == "/r/x"
    assert "./nucleus/report.html" in _cells(rows, "report.html", "")["value"]
    assert [r["value"] for r in rows if r["section"] == "end of run"] == ["ws: line one", "results: /r/x"]


@pytest.mark.parametrize(("rec", "verdict"), [
    (CLEAN, "reference: stored 7; OK: every acked event is stored once, and nothing else"),
    (CLEAN | {"acked_not_stored": 2, "stored": 5},
     "reference: stored 5; 2 acked but not stored (phantom acks)"),
    (CLEAN | {"duplicates_stored": 1}, "reference: stored 7; 1 duplicates stored"),
    ({"done": False, "method": "none", "stored": None, "acked_not_stored": None, "stored_not_acked": None,
      "duplicates_stored": None, "note": "target unreachable"}, "not done: target unreachable"),
])
def test_reconciliation_verdict_says_what_is_wrong(rec: dict[str, Any], verdict: str) -> None:
    assert _cells(tab.rows(_finished_view(rec)), "reconciliation")["value"] == verdict


def test_a_judged_run_has_an_objective_row_per_transport() -> None:
    """A run judged by the scenario's [objective]: the result rows say met, or missed, who and why."""
    view = _finished_view(CLEAN)
    assert not [r for r in tab.rows(view) if r["figure"] == "objective"]  # not judged: no row
    missed = {"met": False, "limit": "target", "reason": "latency: p99 55.3 ms > 10.0 ms", "warmup_s": 0.5}
    met = {"met": True, "limit": None, "reason": "p99 3.1 ms <= 250.0 ms, 0 lost", "warmup_s": 2.0}
    rows = tab.rows(tab.View(state="finished", note="done", blocks={**view.blocks, "http": view.blocks["ws"]},
                             verdicts={"ws": missed, "http": met}))
    assert [(r["transport"], r["value"]) for r in rows if r["figure"] == "objective"] == [
        ("ws", "MISSED (target): latency: p99 55.3 ms > 10.0 ms (after a 0.5 s warm-up)"),
        ("http", "met: p99 3.1 ms <= 250.0 ms, 0 lost (after a 2 s warm-up)")]


def test_a_live_view_has_no_result_rows_and_no_run_shows_how_to_start() -> None:
    view = _finished_view(CLEAN)
    live_rows = tab.rows(tab.View(state="live", note="so far", blocks=view.blocks, details=view.details))
    assert not [r for r in live_rows if r["section"] == "result"]
    idle = tab.row("run", "", "state", value="idle: no run yet: start one with the form")
    assert tab.rows(tab.View()) == [idle]


# -- the start form --------------------------------------------------------------------------------------
def _host(url: str | None) -> str:
    """A host check with the shape of ``devices.check_base_url`` (which loads the network libraries)."""
    if not url or not url.startswith(("http://", "https://")):
        raise UsageError(f"host {url!r} is not a base URL")
    return url


def _check(form: dict[str, str], *, embedded: bool = True, **parsed: Any) -> str | None:
    options = argparse.Namespace(scenario="scenarios/smoke.toml", app_id="", endpoint="app",
                                 results_dir="results") if not parsed else argparse.Namespace(**parsed)
    return check_form(options, form, embedded=embedded, check_host=_host)


def test_a_good_form_and_an_edit_form_pass() -> None:
    assert _check({"user_count": "3", "spawn_rate": "3", "host": "", "scenario": "scenarios/smoke.toml",
                   "app_id": "abc_1", "endpoint": "short", "results_dir": "results"}) is None
    assert _check({"user_count": "7", "spawn_rate": "1"}) is None  # Locust's Edit form: ours kept


def test_bad_fields_are_one_line_naming_the_field(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "x"\n[fleet\n')
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert _check({"scenario": "scenarios/nope.toml"}) == \
        "--scenario: scenarios/nope.toml: (file): No such file or directory"
    problem = _check({"scenario": str(broken)})
    assert problem is not None and problem.startswith(f"--scenario: {broken}:2:")
    assert _check({"app_id": "bad id!"}) == "--app-id: 'bad id!' is not 1-64 characters of [A-Za-z0-9_-]"
    assert _check({"endpoint": "other"}) == "--endpoint 'other': use one of app, short"
    assert _check({"results_dir": str(a_file / "results")}) == \
        f"--results-dir {a_file / 'results'}: {a_file} is not a folder"
    assert _check({"host": "localhost:8000"}) == "host 'localhost:8000' is not a base URL"
    assert _check({"host": ""}, embedded=False) == "host None is not a base URL"
    assert _check({"host": ""}, embedded=True) is None
    assert _check({"results_dir": str(tmp_path / "new" / "deeper")}) is None  # made when the run writes
