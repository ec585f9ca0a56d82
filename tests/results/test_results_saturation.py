"""Generator saturation: the limits, the reasons named, and the flags they raise in the summary."""

from __future__ import annotations

from results_helpers import make_result

from bench.results.saturation import process_reasons
from bench.results.summary import transport_summary
from bench.results.terminal import transport_lines


def test_a_saturated_generator_is_flagged_in_plain_words() -> None:
    """Schedule lag p99 over 10 ms (or a busy core) marks the run saturated and flags the latencies."""
    calm, late = make_result(5, 5, 500.0), make_result(5, 5, 20_000.0)
    busy = make_result(5, 5, 500.0, cpu_share=0.97)
    assert calm.saturation_reasons() == []
    assert "schedule lag p99" in late.saturation_reasons()[0]
    assert "CPU" in busy.saturation_reasons()[0]
    block = transport_summary(late)
    assert block["generator"]["saturated"] and block["ack_latency_us"]["flagged"]
    lines = transport_lines("ws", {"app_id": "x"} | block)
    assert any("could not keep its plan" in line and "not the server's" in line for line in lines)
    assert not transport_summary(calm)["generator"]["saturated"]
    assert process_reasons(0.1, 2_000_000.0)[0].startswith("scheduler fell 2.00 s behind")
