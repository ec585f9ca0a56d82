"""Reconciliation: id by id, count only, the --verify-url shapes, and a target that is not the reference."""

from __future__ import annotations

import pytest

from bench.protocol.errors import UsageError
from bench.results.reconcile import (
    compare_ids,
    parse_stored_count,
    reconcile_counts,
    reconcile_reference,
    verify_url_for,
)
from bench.target.embedded import EmbeddedTarget


def test_compare_ids_counts_phantoms_drops_and_duplicates() -> None:
    """Reported-but-not-stored, stored-but-not-reported and extra rows, id by id."""
    rec = compare_ids([1, 2, 3, 3], 5, [2, 3, 4, 4])
    assert (rec.stored, rec.acked_not_stored, rec.stored_not_acked, rec.duplicates_stored) == (3, 1, 1, 2)
    assert rec.done and rec.method == "reference"


@pytest.mark.parametrize("doc, stored", [(12, 12), ({"stored": 7}, 7), ({"count": 3}, 3),
                                         ({"stored": {"total": 9, "by_type": {}}, "acked": 9}, 9)])
def test_verify_url_accepts_the_documented_shapes(doc: object, stored: int) -> None:
    """A number, {"stored": n}, {"count": n} or the reference target's stats shape."""
    assert parse_stored_count(doc, "u") == stored


@pytest.mark.parametrize("doc", [{"total": 1}, "12", -1, True, [1]])
def test_verify_url_refuses_other_shapes_in_one_line(doc: object) -> None:
    """Anything else is named, in one line."""
    with pytest.raises(UsageError, match="--verify-url u"):
        parse_stored_count(doc, "u")


def test_count_reconciliation_is_the_net_difference() -> None:
    """Stored is after - before; an unreadable count means not done, with the reason."""
    rec = reconcile_counts(100, 180, 90)
    assert (rec.stored, rec.acked_not_stored, rec.stored_not_acked) == (80, 10, 0)
    assert not reconcile_counts("down", 5, 5).done
    assert verify_url_for("http://h/count?app={appId}", "abc") == "http://h/count?app=abc"


def test_reconciliation_with_the_target_down_says_unreachable() -> None:
    """Nothing listening: not done, and the note says the target could not be reached (never an
    exception, and never that it is not the reference target)."""
    rec = reconcile_reference("http://127.0.0.1:9", "abc", [1, 2])
    assert not rec.done and rec.note == "http://127.0.0.1:9 unreachable: connection refused"


def test_reconciliation_with_a_server_that_is_not_the_reference_says_so(target: EmbeddedTarget) -> None:
    """A server that answers, but not the reference target's stats (here a 404 under another path)."""
    url = f"{target.url}/elsewhere"
    rec = reconcile_reference(url, "abc", [1, 2])
    assert not rec.done and rec.note == f"{url} did not answer /app/abc/stats like the reference target"
