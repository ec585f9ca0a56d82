"""AckTracker on a fake clock (plain ints of ns): matching, latencies, and where every event ends."""

from __future__ import annotations

import pytest

from bench.metrics import AckTracker, TrackerResult
from bench.metrics.tracker import GENERATION_NS

US = 1_000
MS = 1_000_000
TIMEOUT = 1_000 * MS


def tracker(remember_ns: int | None = None) -> AckTracker:
    return AckTracker(timeout_ns=TIMEOUT, remember_ns=remember_ns)


def counts(t: AckTracker) -> dict[str, int]:
    r = t.result()
    assert r.accounting().ok, r.accounting().line()
    return {k: v for k, v in r.counters().items() if v}


def test_acked_latencies_are_exact() -> None:
    """Corrected, raw and delivery latencies are ack minus intended, actual and creation time."""
    t = tracker()
    t.on_send(1, (7,), 1_000 * US, 1_250 * US, (400 * US,))
    t.on_ws_ack(1, (7,), 3_000 * US)
    t.fold()
    assert (t.corrected.min(), t.corrected.max()) == (2_000.0, 2_000.0)
    assert (t.raw.min(), t.raw.max()) == (1_750.0, 1_750.0)
    assert (t.delivery.min(), t.delivery.max()) == (2_600.0, 2_600.0)
    assert counts(t) == {"sent": 1, "acked": 1}


def test_multi_event_message_and_created_times() -> None:
    """Each event of a message gets its own delivery delay; corrected and raw are per message."""
    t = tracker()
    t.on_send(1, ("a", "b", 3), 10 * MS, 10 * MS, (1 * MS, 2 * MS, 10 * MS))
    t.on_ws_ack(1, ["a", "b", 3], 15 * MS)  # a list works as well as a tuple
    t.fold()
    assert t.corrected.count == t.raw.count == t.delivery.count == 3
    assert (t.delivery.min(), t.delivery.max()) == (5_000.0, 14_000.0)
    assert counts(t) == {"sent": 3, "acked": 3}


def test_nothing_folded_until_fold() -> None:
    """Latencies wait in plain lists until fold(); result() folds first."""
    t = tracker()
    t.on_send(1, (1,), 0, 0, (0,))
    t.on_ws_ack(1, (1,), 5 * MS)
    assert t.corrected.count == 0 and t.buffered == 1
    assert t.result().corrected.count == 1 and t.buffered == 0


def test_duplicate_ack_is_counted_not_acked_twice() -> None:
    """The same reply twice: the second one's id is a duplicate ack."""
    t = tracker()
    t.on_send(1, (5,), 0, 0, (0,))
    t.on_ws_ack(1, (5,), MS)
    t.on_ws_ack(1, (5,), 2 * MS)
    assert counts(t) == {"sent": 1, "acked": 1, "duplicate_acks": 1, "stray_replies": 1}


def test_id_repeated_in_one_reply_is_a_duplicate() -> None:
    """An id listed twice in one reply counts once as acked and once as duplicate."""
    t = tracker()
    t.on_send(1, (5, 6), 0, 0, (0, 0))
    t.on_ws_ack(1, (5, 5, 6), MS)
    assert counts(t) == {"sent": 2, "acked": 2, "duplicate_acks": 1}


def test_unknown_id_is_counted() -> None:
    """An id never sent is an unknown ack; the message it came with is still answered."""
    t = tracker()
    t.on_send(1, (5,), 0, 0, (0,))
    t.on_ws_ack(1, (99,), MS)  # no unanswered message holds 99
    assert counts(t) == {"sent": 1, "unknown_acks": 1, "stray_replies": 1, "in_flight": 1}
    t.on_ws_ack(1, (5, "x"), MS)
    assert counts(t) == {"sent": 1, "acked": 1, "unknown_acks": 2, "stray_replies": 1}


def test_partial_ack_rejects_the_rest() -> None:
    """Ids of the answered message left out of the reply are rejected (contract.md, Acknowledgements)."""
    t = tracker()
    t.on_send(1, (1, 2, 3), 0, 0, (0, 0, 0))
    t.on_ws_ack(1, (3, 1), MS)
    assert counts(t) == {"sent": 3, "acked": 2, "rejected": 1}


def test_empty_ack_rejects_the_oldest_message() -> None:
    """An empty reply answers the oldest unanswered message: all its events are rejected."""
    t = tracker()
    t.on_send(1, (1, 2), 0, 0, (0, 0))
    t.on_send(1, (3,), 0, 0, (0,))
    t.on_ws_ack(1, (), MS)
    assert counts(t) == {"sent": 3, "rejected": 2, "in_flight": 1}
    t.on_ws_ack(1, (3,), MS)
    assert counts(t) == {"sent": 3, "rejected": 2, "acked": 1}


def test_empty_message_takes_its_own_empty_reply() -> None:
    """A tracked message without ids ({"data": []}) is answered by an empty reply, not the next one."""
    t = tracker()
    t.on_send(1, (), 0, 0, ())
    t.on_send(1, (4,), 0, 0, (0,))
    t.on_ws_ack(1, (), MS)
    t.on_ws_ack(1, (4,), MS)
    assert counts(t) == {"sent": 1, "acked": 1}


def test_empty_reply_with_nothing_unanswered_is_stray() -> None:
    """An empty reply on a connection with nothing unanswered is a stray reply and changes nothing else."""
    t = tracker()
    t.on_ws_ack(3, (), 0)
    assert counts(t) == {"stray_replies": 1}


def test_timeout_counts_lost() -> None:
    """An event unacked timeout_ns after its actual send is lost, not before."""
    t = tracker()
    t.on_send(1, (1,), 0, 10 * MS, (0,))
    assert t.expire(10 * MS + TIMEOUT - 1) == 0
    assert t.expire(10 * MS + TIMEOUT) == 1
    assert counts(t) == {"sent": 1, "lost": 1}
    assert t.expire(20 * TIMEOUT) == 0


def test_late_ack_after_lost() -> None:
    """An ack after the event was counted lost is late: never acked, no latency recorded."""
    t = tracker()
    t.on_send(1, (1,), 0, 0, (0,))
    t.expire(TIMEOUT)
    t.on_ws_ack(1, (1,), TIMEOUT + MS)
    r = t.result()
    assert counts(t) == {"sent": 1, "lost": 1, "late_acks": 1}
    assert r.corrected.total == 0


def test_late_ack_after_rejected() -> None:
    """An ack of an event the server had left out of its reply is late too."""
    t = tracker()
    t.on_send(1, (1, 2), 0, 0, (0, 0))
    t.on_ws_ack(1, (1,), MS)
    t.on_ws_ack(1, (2,), 2 * MS)
    assert counts(t) == {"sent": 2, "acked": 1, "rejected": 1, "late_acks": 1, "stray_replies": 1}


def test_late_empty_reply_of_an_expired_message_does_not_reject_the_next() -> None:
    """After a message expired unanswered, the next empty reply is its own, late; the next message stands."""
    t = tracker()
    t.on_send(1, (1,), 0, 0, (0,))
    t.expire(TIMEOUT)
    t.on_send(1, (2,), TIMEOUT, TIMEOUT, (TIMEOUT,))
    t.on_ws_ack(1, (), TIMEOUT + MS)  # the late, empty reply of message 1
    assert counts(t) == {"sent": 2, "lost": 1, "in_flight": 1}
    t.on_ws_ack(1, (2,), TIMEOUT + 2 * MS)
    assert counts(t) == {"sent": 2, "lost": 1, "acked": 1}


def test_reply_to_a_later_message_sets_earlier_ones_aside() -> None:
    """A reply to message B answers B; an older A whose reply never came stays pending until its timeout."""
    t = tracker()
    t.on_send(1, (1,), 0, 0, (0,))
    t.on_send(1, (2,), MS, MS, (MS,))
    t.on_ws_ack(1, (2,), 2 * MS)
    assert counts(t) == {"sent": 2, "acked": 1, "in_flight": 1}
    t.on_ws_ack(1, (), 3 * MS)  # an empty reply now has no message to answer
    assert counts(t) == {"sent": 2, "acked": 1, "in_flight": 1, "stray_replies": 1}
    assert t.expire(TIMEOUT) == 1
    assert counts(t) == {"sent": 2, "acked": 1, "lost": 1, "stray_replies": 1}


def test_out_of_order_reply_still_acks() -> None:
    """A set-aside message's reply arriving late (but in time) acks its events, timed from their send."""
    t = tracker()
    t.on_send(1, (1,), 0, 0, (0,))
    t.on_send(1, (2,), MS, MS, (MS,))
    t.on_ws_ack(1, (2,), 2 * MS)
    t.on_ws_ack(1, (1,), 3 * MS)
    r = t.result()
    assert counts(t) == {"sent": 2, "acked": 2, "stray_replies": 1}
    assert r.corrected.max() == 3_000.0


def test_reply_on_another_connection_acks_a_pending_event() -> None:
    """Ids are global: a pending id reported on another connection is acked (the server stored it)."""
    t = tracker()
    t.on_send(1, (1,), 0, 0, (0,))
    t.on_ws_ack(2, (1,), MS)
    assert counts(t) == {"sent": 1, "acked": 1, "stray_replies": 1}


def test_http_reply_by_token_in_any_order() -> None:
    """HTTP replies name their request by token; partial replies reject the rest."""
    t = tracker()
    a = t.on_send(7, (1, 2), 0, 0, (0, 0))
    b = t.on_send(7, (3,), 0, 0, (0,))
    assert b > a
    t.on_http_reply(7, b, (3,), MS)
    t.on_http_reply(7, a, (2,), 2 * MS)
    assert counts(t) == {"sent": 3, "acked": 2, "rejected": 1}


def test_http_failure_without_retry_rejects() -> None:
    """A refused request (no retry) rejects its events; a late reply for it is stray and late."""
    t = tracker()
    tok = t.on_send(7, (1, 2), 0, 0, (0, 0))
    t.on_http_failure(7, tok, MS, retry=False)
    assert counts(t) == {"sent": 2, "rejected": 2}
    t.on_http_reply(7, tok, (1,), 2 * MS)
    assert counts(t) == {"sent": 2, "rejected": 2, "late_acks": 1, "stray_replies": 1}


def test_http_retry_keeps_events_pending_and_times_from_first_send() -> None:
    """retry=True: events stay pending; the re-send is not a new event; latency runs from the first send."""
    t = tracker()
    tok = t.on_send(7, (1, 2), 10 * MS, 11 * MS, (5 * MS, 6 * MS))
    t.on_http_failure(7, tok, 12 * MS, retry=True)
    assert counts(t) == {"sent": 2, "in_flight": 2}
    tok2 = t.on_send(7, (1, 2), 40 * MS, 41 * MS, (5 * MS, 6 * MS))
    t.on_http_reply(7, tok2, (1, 2), 50 * MS)
    r = t.result()
    assert counts(t) == {"sent": 2, "acked": 2, "resent": 2}
    assert r.corrected.min() == r.corrected.max() == 40_000.0
    assert r.raw.min() == r.raw.max() == 39_000.0
    assert (r.delivery.min(), r.delivery.max()) == (44_000.0, 45_000.0)


def test_retried_events_time_out_from_their_first_send() -> None:
    """A retried event that is never acked is lost timeout_ns after its first send, and counted once."""
    t = tracker()
    tok = t.on_send(7, (1,), 0, 0, (0,))
    t.on_http_failure(7, tok, MS, retry=True)
    t.on_send(7, (1,), 0, TIMEOUT // 2, (0,))
    assert t.expire(TIMEOUT) == 1
    assert counts(t) == {"sent": 1, "lost": 1, "resent": 1}
    assert t.expire(2 * TIMEOUT) == 0


def test_http_failure_of_unknown_token_is_ignored() -> None:
    """A failure for a token no longer unanswered (expired, answered) changes nothing."""
    t = tracker()
    t.on_http_failure(7, 12345, 0, retry=False)
    assert counts(t) == {}


def test_conn_closed_keeps_events_pending_until_timeout() -> None:
    """Closing a connection does not lose its events at once; the timeout does."""
    t = tracker()
    t.on_send(1, (1, 2), 0, 0, (0, 0))
    t.on_conn_closed(1, MS)
    assert counts(t) == {"sent": 2, "in_flight": 2}
    assert t.expire(TIMEOUT - 1) == 0
    assert t.expire(TIMEOUT) == 2
    assert counts(t) == {"sent": 2, "lost": 2}


def test_resend_on_a_new_connection_is_acked() -> None:
    """Events of a closed connection re-sent on a new one are acked there, once, timed from the first send."""
    t = tracker()
    t.on_send(1, (1,), 0, 0, (0,))
    t.on_conn_closed(1, MS)
    t.on_send(2, (1,), 0, 2 * MS, (0,))
    t.on_ws_ack(2, (1,), 3 * MS)
    assert counts(t) == {"sent": 1, "acked": 1, "resent": 1}
    assert t.result().raw.max() == 3_000.0
    assert t.expire(10 * TIMEOUT) == 0


def test_resend_while_pending_on_the_same_connection() -> None:
    """An unacked queue re-sent: the first reply acks, the second reply's id is a duplicate."""
    t = tracker()
    t.on_send(1, (1,), 0, 0, (0,))
    t.on_send(1, (1,), 0, 5 * MS, (0,))
    t.on_ws_ack(1, (1,), 6 * MS)
    t.on_ws_ack(1, (1,), 7 * MS)
    assert counts(t) == {"sent": 1, "acked": 1, "resent": 1, "duplicate_acks": 1}


def test_finish_loses_everything_pending() -> None:
    """finish() ends every pending event as lost; later acks are late, and the identity holds."""
    t = tracker()
    t.on_send(1, (1, 2), 0, 0, (0, 0))
    t.on_send(2, (3,), 0, 0, (0,))
    t.on_conn_closed(2, 0)
    t.on_ws_ack(1, (1, 2), MS)
    t.on_send(1, (4,), 0, 0, (0,))
    t.finish(2 * MS)
    assert t.in_flight == 0
    assert counts(t) == {"sent": 4, "acked": 2, "lost": 2}
    t.on_ws_ack(1, (4,), 3 * MS)
    assert counts(t) == {"sent": 4, "acked": 2, "lost": 2, "late_acks": 1}


def test_finished_ids_are_forgotten_after_the_memory_window() -> None:
    """An ack long after the id was acked counts as unknown, not duplicate (bounded memory)."""
    t = tracker(remember_ns=10 * MS)
    t.on_send(1, (1,), 0, 0, (0,))
    t.on_ws_ack(1, (1,), MS)
    t.expire(5 * MS)
    t.on_ws_ack(1, (1,), 6 * MS)
    assert counts(t)["duplicate_acks"] == 1
    t.expire(20 * MS)
    t.expire(40 * MS)
    t.on_ws_ack(1, (1,), 41 * MS)
    assert counts(t)["unknown_acks"] == 1


def test_a_long_memory_window_is_kept_in_generations_and_forgotten_after_it() -> None:
    """A window of several seconds is remembered in generations of a second (``GENERATION_NS``): an acked id
    re-acked within the window is a duplicate at every second of it, and unknown a generation after."""
    second = GENERATION_NS
    t = tracker(remember_ns=3 * second)
    t.on_send(1, (1,), 0, 0, (0,))
    t.on_ws_ack(1, (1,), second // 2)  # finished at 0.5 s
    seen: list[str] = []
    for k in range(1, 8):  # the runner's once-a-second expire
        t.expire(k * second)
        before = counts(t)
        t.on_ws_ack(1, (1,), k * second + 1)
        after = counts(t)
        seen.append("dup" if after.get("duplicate_acks", 0) > before.get("duplicate_acks", 0) else "unknown")
    assert seen[:3] == ["dup"] * 3  # 1, 2 and 3 s: within 3 s of 0.5 s
    assert seen[-1] == "unknown" and seen == sorted(seen)  # forgotten later, and for good


def test_tokens_increase_across_connections() -> None:
    """Tokens are increasing and never repeat, across connections."""
    t = tracker()
    toks = [t.on_send(c, (c,), 0, 0, (0,)) for c in (1, 2, 1, 3)]
    assert toks == sorted(set(toks))


def test_on_send_checks_lengths_and_accepts_lists() -> None:
    """ids and created_ns must have the same length; lists are accepted and copied."""
    t = tracker()
    with pytest.raises(ValueError):
        t.on_send(1, (1, 2), 0, 0, (0,))
    ids = [1, 2]
    t.on_send(1, ids, 0, 0, [0, 0])
    ids.append(3)
    t.on_ws_ack(1, (1, 2), MS)
    assert counts(t) == {"sent": 2, "acked": 2}


def test_duplicate_id_in_one_message_is_sent_once() -> None:
    """An id twice in one message is one event (resent once), so the identity still holds."""
    t = tracker()
    t.on_send(1, (1, 1), 0, 0, (0, 0))
    t.on_ws_ack(1, (1,), MS)
    c = counts(t)
    assert c["sent"] == 1 and c["acked"] == 1 and c["resent"] == 1


def test_timeout_must_be_positive() -> None:
    """A zero timeout is a configuration bug."""
    with pytest.raises(ValueError):
        AckTracker(timeout_ns=0)


def test_result_round_trips_and_is_a_copy() -> None:
    """result() is a frozen snapshot: later tracking does not change it; JSON round trip is exact."""
    t = tracker()
    t.on_send(1, (1,), 0, 0, (0,))
    t.on_ws_ack(1, (1,), MS)
    r = t.result()
    t.on_send(1, (2,), 0, 0, (0,))
    t.on_ws_ack(1, (2,), MS)
    t.fold()
    assert r.acked == 1 and r.corrected.count == 1
    assert TrackerResult.from_json(r.to_json()) == r
