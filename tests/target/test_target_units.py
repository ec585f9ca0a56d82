"""The pure parts of the target, on a fake clock: token bucket, fault decisions, stall windows, ingestion."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from target_helpers import ev, init, message

from bench.protocol.errors import UsageError
from bench.protocol.message import parse_envelope
from bench.target.faults import NO_FAULT, Delay, FaultConfig, Faults, parse_delay
from bench.target.ingest import ROW_ID, Ingest, Snapshot
from bench.target.limits import Limits, TokenBuckets, retry_after_header

S = 1_000_000_000
MS = 1_000_000

# ------------------------------------------------------------------------------------------------ limits


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    """A full bucket passes ``burst`` requests at once, then one per 1/rate seconds; each IP has its own."""
    buckets = TokenBuckets(rate=2.0, burst=3)
    assert [buckets.take("a", 0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", 0) == pytest.approx(0.5)
    assert buckets.take("b", 0) == 0.0
    assert buckets.take("a", S // 2) == 0.0        # one token came back in 0.5 s
    assert buckets.take("a", S // 2) == pytest.approx(0.5)
    assert [buckets.take("a", 100 * S) for _ in range(4)][-1] > 0  # never more than burst saved up


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    """RFC 9110 Retry-After has no fractions; a wait under a second still says 1."""
    assert [retry_after_header(w) for w in (0.01, 1.0, 1.2, 7.9)] == ["1", "1", "2", "8"]


@pytest.mark.parametrize("kwargs", [{"max_bytes": 0}, {"max_events": 0}, {"http_rate": -1.0},
                                    {"http_burst": 0}, {"idle_timeout_s": float("nan")}])
def test_limits_refuse_nonsense(kwargs: dict[str, float]) -> None:
    """Each limit names its flag when its value makes no sense."""
    with pytest.raises(UsageError, match=r"^--"):
        Limits(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ faults


@pytest.mark.parametrize(("text", "delay"), [("250", Delay("fixed", 250.0)), ("0", Delay("fixed", 0.0)),
                                             ("uniform:10:20", Delay("uniform", 10.0, 20.0)),
                                             ("exp:50", Delay("exp", 50.0))])
def test_parse_delay(text: str, delay: Delay) -> None:
    """A number, ``uniform:LOW:HIGH`` or ``exp:MEAN``, in milliseconds."""
    assert parse_delay(text) == delay


@pytest.mark.parametrize("text", ["", "soon", "-1", "uniform:5", "uniform:9:3", "exp:", "exp:x", "norm:1:2",
                                  "inf", "nan"])
def test_parse_delay_refuses_anything_else(text: str) -> None:
    """Bad text names the flag and the text."""
    with pytest.raises(UsageError, match="--ack-delay-ms"):
        parse_delay(text)


def test_delay_samples_stay_in_their_distribution() -> None:
    """Uniform samples lie in [low, high]; exponential ones are non-negative with about the right mean."""
    rng = random.Random(1)
    uniform = [Delay("uniform", 10, 20).sample_ms(rng) for _ in range(1000)]
    assert min(uniform) >= 10 and max(uniform) <= 20
    exp = [Delay("exp", 50).sample_ms(rng) for _ in range(5000)]
    assert min(exp) >= 0 and 45 < sum(exp) / len(exp) < 55


def _decisions(config: FaultConfig, n: int = 200) -> list[tuple[int, bool, bool, bool]]:
    faults = Faults(config, 0)
    return [(d.delay_ns, d.drop_ack, d.lie, d.close) for d in (faults.decide() for _ in range(n))]


def test_no_fault_configured_decides_nothing() -> None:
    """All off: every message gets the shared no-fault decision."""
    faults = Faults(FaultConfig(), 0)
    assert all(faults.decide() is NO_FAULT for _ in range(10))
    assert not faults.stalls and faults.stall_remaining_ns(10 * S) == 0


def test_decisions_are_seeded_and_ratios_exact_at_the_ends() -> None:
    """Same seed, same decisions; another seed, others; ratio 1 always, ratio 0 never."""
    config = FaultConfig(drop_ack_ratio=0.3, close_ratio=0.1, seed=5)
    assert _decisions(config) == _decisions(config)
    assert _decisions(config) != _decisions(FaultConfig(drop_ack_ratio=0.3, close_ratio=0.1, seed=6))
    always = _decisions(FaultConfig(lie_ack_ratio=1.0))
    assert all(lie and not drop and not close for _, drop, lie, close in always)


def test_each_fault_draws_from_its_own_stream() -> None:
    """Turning another fault on does not change which messages a fault hits."""
    alone = [d[1] for d in _decisions(FaultConfig(drop_ack_ratio=0.4, seed=3))]
    mixed = [d[1] for d in _decisions(FaultConfig(drop_ack_ratio=0.4, lie_ack_ratio=0.5, close_ratio=0.2,
                                                  ack_delay=Delay("exp", 5), seed=3))]
    assert alone == mixed
    assert 40 < sum(alone) < 120


def test_stall_windows() -> None:
    """N ms of stall at the start of every M ms period after the first: [k*M, k*M + N)."""
    faults = Faults(FaultConfig(stall_ms=30, stall_every_ms=100), start_ns=5 * S)

    def at(ms: int) -> int:
        return faults.stall_remaining_ns(5 * S + ms * MS)

    assert [at(0), at(99), at(100), at(110), at(129), at(130), at(250), at(300)] == [
        0, 0, 30 * MS, 20 * MS, 1 * MS, 0, 0, 30 * MS]


@pytest.mark.parametrize("kwargs", [{"drop_ack_ratio": 1.5}, {"lie_ack_ratio": -0.1}, {"stall_ms": 5.0},
                                    {"stall_ms": 5.0, "stall_every_ms": 5.0}])
def test_fault_config_refuses_nonsense(kwargs: dict[str, float]) -> None:
    """Ratios in [0, 1]; a stall needs both flags and must be shorter than its period."""
    with pytest.raises(UsageError, match=r"^--"):
        FaultConfig(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ ingest


def _ingest() -> Ingest:
    return Ingest(dedup_window_ns=60 * S, session_timeout_ms=30 * 60_000.0, now_ns=0)


def _accept(ingest: Ingest, *events: object, now_ns: int = 0, store: bool = True) -> list[object]:
    outcome = ingest.accept("app", parse_envelope(message(*events)), received_ms=1e12, now_ns=now_ns,
                            store=store)
    ingest.settle(outcome, None)  # what the transport does once the write is durable
    stored = [row[ROW_ID] for row in outcome.rows if row[ROW_ID] is not None]
    assert set(stored) <= set(outcome.ack_ids)  # every stored event with an id is acked
    return list(outcome.ack_ids)


def test_duplicates_within_the_window_are_acked_not_stored() -> None:
    """Within the window a re-sent event is a duplicate; after two windows it is new again."""
    ingest = _ingest()
    first = [init(eid=1), ev(eid=2)]
    assert _accept(ingest, *first) == [1, 2]
    assert _accept(ingest, *first, now_ns=59 * S) == [1, 2]
    assert (ingest.stats("app").stored, ingest.stats("app").duplicates) == (2, 2)
    _accept(ingest, now_ns=61 * S)            # rotates: the keys are now in the old generation
    assert _accept(ingest, ev(eid=2), now_ns=100 * S) == [2]
    assert ingest.stats("app").duplicates == 3
    _accept(ingest, now_ns=130 * S)           # rotates again: the first keys are gone
    assert _accept(ingest, ev(eid=2), now_ns=131 * S) == [2]
    assert ingest.stats("app").stored == 3


def test_the_lie_fault_acks_without_any_bookkeeping() -> None:
    """store=False: the ids come back, nothing is counted as stored, nothing is remembered as seen."""
    ingest = _ingest()
    assert _accept(ingest, init(eid=1), {"type": "heartbeat", "deviceId": "d", "id": 9}, store=False) == [1]
    st = ingest.stats("app")
    assert (st.stored, st.sessions, st.duplicates) == (0, 0, 0)
    assert _accept(ingest, init(eid=1)) == [1]
    assert (st.stored, st.duplicates) == (1, 0)


def test_heartbeats_are_never_stored_or_acked() -> None:
    """A heartbeat, even with an id, is counted and its device noted; no ack (an ack means stored)."""
    ingest = _ingest()
    assert _accept(ingest, {"type": "heartbeat", "machineId": "m", "id": 4}) == []
    st = ingest.stats("app")
    assert (st.heartbeats, st.stored, len(st.devices)) == (1, 0, 1)


def test_restore_brings_back_counts_sessions_devices_and_recent_ids() -> None:
    """A snapshot of a store restores the counters, live sessions and the duplicate window."""
    ingest = _ingest()
    ingest.restore(Snapshot(counts=(("app", "init", 1, 0, 1), ("app", "event", 2, 1, 0)),
                            session_counts=(("app", 1),), sessions=(("app", "dev-1", 1000, 1e12),),
                            devices=(("app", "dev-1"),),
                            recent=(("app", "dev-1", 1000, 5, "event", "click", None),)))
    st = ingest.stats("app")
    assert (st.stored, st.by_type, st.orphans, st.missing_fields, st.sessions) == (
        3, {"init": 1, "event": 2}, 1, 1, 1)
    assert _accept(ingest, ev(eid=5), ev(eid=6)) == [5, 6]
    assert (st.duplicates, st.orphans, st.stored) == (1, 1, 4)


@given(st.lists(st.tuples(st.sampled_from(["init", "event", "heartbeat"]), st.integers(1, 3),
                          st.integers(1, 4), st.integers(0, 10**7)), max_size=30))
def test_every_event_ends_stored_duplicate_or_heartbeat(plan: list[tuple[str, int, int, int]]) -> None:
    """Accounting: each valid event is exactly one of stored, duplicate or heartbeat; acks = stored + dups."""
    ingest = _ingest()
    events = [{"type": "heartbeat", "deviceId": f"d{d}"} if kind == "heartbeat"
              else (init if kind == "init" else ev)(device=f"d{d}", session=s, eid=i % 7, date=ms)
              for kind, d, s, ms in plan for i in [ms]]
    acked = _accept(ingest, *events)
    state = ingest.stats("app")
    assert state.stored + state.duplicates + state.heartbeats == len(events)
    assert len(acked) == state.stored + state.duplicates
    assert state.orphans <= state.stored
