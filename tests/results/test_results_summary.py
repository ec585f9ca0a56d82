"""The shape of summary.json."""

from __future__ import annotations

from results_helpers import make_result

from bench.results.summary import build_summary


def test_summary_holds_the_schema_and_the_accounting() -> None:
    """summary.json: the schema name, one block per transport, ok when every identity holds."""
    summary = build_summary({"ws": make_result(4, 3, 10.0)}, {"ws": "a" * 24}, {"scenario": {"name": "t"}})
    assert summary["schema"] == "nucleus-bench/summary/1" and summary["ok"]
    block = summary["transports"]["ws"]
    assert block["app_id"] == "a" * 24
    assert block["accounting"]["line"].endswith("OK")
    assert (block["events"]["acked"], block["events"]["rejected"]) == (3, 1)  # left out of the reply
