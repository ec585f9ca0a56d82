"""AckTracker with colliding wire ids (client profiles): acks are matched per connection and message, on a
fake clock. Keys are the events' unique keys; wire ids are what the server sees and echoes."""

from __future__ import annotations

from bench.metrics import AckTracker

MS = 1_000_000
TIMEOUT = 1_000 * MS


def counts(t: AckTracker) -> dict[str, int]:
    r = t.result()
    assert r.accounting().ok, r.accounting().line()
    return {k: v for k, v in r.counters().items() if v}


def test_same_wire_id_on_two_connections_acks_each_its_own() -> None:
    """Two devices draw the same id: each reply acks its own connection's event, never the other's."""
    t = AckTracker(timeout_ns=TIMEOUT)
    t.on_send_wire(1, (101,), (42,), 0, 0, (0,))
    t.on_send_wire(2, (202,), (42,), 0, 0, (0,))
    assert t.on_ws_ack_wire(2, (42,), 3 * MS) == (202,)
    assert t.is_pending(101) and not t.is_pending(202)
    assert t.on_ws_ack_wire(1, (42,), 5 * MS) == (101,)
    assert counts(t) == {"sent": 2, "acked": 2}


def test_two_events_sharing_an_id_in_one_message_are_both_acked() -> None:
    """An id reported twice takes the two events that share it, in the message's order."""
    t = AckTracker(timeout_ns=TIMEOUT)
    t.on_send_wire(1, (1, 2, 3), (7, 9, 7), 0, 0, (0, 0, 0))
    assert t.on_ws_ack_wire(1, (7, 9, 7), 2 * MS) == (1, 2, 3)
    assert counts(t) == {"sent": 3, "acked": 3}


def test_an_id_reported_once_for_two_events_acks_one_and_rejects_the_other() -> None:
    """The server stored one of the two events sharing id 7: the first is acked, the second rejected."""
    t = AckTracker(timeout_ns=TIMEOUT)
    t.on_send_wire(1, (1, 2, 3), (7, 9, 7), 0, 0, (0, 0, 0))
    assert t.on_ws_ack_wire(1, (7, 9), 2 * MS) == (1, 2)
    assert counts(t) == {"sent": 3, "acked": 2, "rejected": 1}


def test_a_resent_queue_is_acked_once_and_the_repeat_is_a_duplicate() -> None:
    """A resending client sends its unacked event again with a new one; the slow first reply and the second
    both name it: it is acked once, from its first send, and the second naming is a duplicate ack."""
    t = AckTracker(timeout_ns=TIMEOUT)
    t.on_send_wire(1, (1,), (500,), 0, 0, (0,))
    t.on_send_wire(1, (1, 2), (500, 500), 20 * MS, 20 * MS, (0, 20 * MS))  # re-sent with a colliding new one
    assert t.on_ws_ack_wire(1, (500,), 30 * MS) == (1,)
    assert t.on_ws_ack_wire(1, (500, 500), 31 * MS) == (1, 2)
    r = t.result()
    assert (r.sent, r.acked, r.resent, r.duplicate_acks) == (2, 2, 1, 1)
    assert r.corrected.max() >= 30_000  # event 1 is timed from its first send at 0


def test_a_dropped_reply_sets_its_message_aside_and_the_next_reply_maps_on_its_own_message() -> None:
    """The first message's reply never comes; the second's names ids both messages hold: they map onto
    the second message (the one answered), and the first one's events stay pending until the timeout."""
    t = AckTracker(timeout_ns=TIMEOUT)
    t.on_send_wire(1, (1,), (5,), 0, 0, (0,))
    t.on_send_wire(1, (2, 3), (6, 8), 1 * MS, 1 * MS, (MS, MS))
    assert t.on_ws_ack_wire(1, (6, 8), 4 * MS) == (2, 3)
    assert t.is_pending(1)
    t.expire(TIMEOUT + 1)
    assert counts(t) == {"sent": 3, "acked": 2, "lost": 1}


def test_an_id_no_message_holds_is_unknown() -> None:
    """A reported wire id that no unanswered message of the connection holds is an unknown ack."""
    t = AckTracker(timeout_ns=TIMEOUT)
    t.on_send_wire(1, (1,), (5,), 0, 0, (0,))
    assert t.on_ws_ack_wire(1, (5, 77), 2 * MS) == (1,)
    assert t.on_ws_ack_wire(3, (5,), 2 * MS) == ()
    assert counts(t) == {"sent": 1, "acked": 1, "unknown_acks": 2, "stray_replies": 1}


def test_an_empty_reply_answers_the_oldest_message() -> None:
    """An empty reply answers (and rejects) the oldest message, as on_ws_ack does."""
    t = AckTracker(timeout_ns=TIMEOUT)
    t.on_send_wire(1, (1,), (5,), 0, 0, (0,))
    assert t.on_ws_ack_wire(1, (), 2 * MS) == ()
    assert counts(t) == {"sent": 1, "rejected": 1}


def test_a_closed_connection_forgets_its_wire_ids() -> None:
    """After its connection closed, a late reply's ids are unknown there; the events time out as lost."""
    t = AckTracker(timeout_ns=TIMEOUT)
    t.on_send_wire(1, (1,), (5,), 0, 0, (0,))
    t.on_conn_closed(1, MS)
    assert t.on_ws_ack_wire(1, (5,), 2 * MS) == ()
    t.expire(TIMEOUT + 1)
    assert counts(t) == {"sent": 1, "lost": 1, "unknown_acks": 1, "stray_replies": 1}
