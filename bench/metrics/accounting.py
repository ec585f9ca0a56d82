"""The accounting identity of a run: every sent event ends acked, rejected or lost, or is still in flight.

DESIGN.md, "Invariants": no event disappears from the accounting. The identity holds by construction in
the ack tracker (every pending event is counted once when it is sent and once when it ends), so a
mismatch is a bug of the harness, never a measurement of the server.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.protocol.errors import BenchError


class AccountingMismatch(BenchError, RuntimeError):
    """``sent != acked + rejected + lost + in_flight``: a harness bug (fails loudly, never counted)."""


@dataclass(frozen=True, slots=True)
class Accounting:
    """Where the sent events of a run (or of several merged runs) ended up."""

    sent: int
    acked: int
    rejected: int
    lost: int
    in_flight: int

    @property
    def ok(self) -> bool:
        """True when ``sent == acked + rejected + lost + in_flight``."""
        return self.sent == self.acked + self.rejected + self.lost + self.in_flight

    @property
    def unaccounted(self) -> int:
        """``sent`` minus the four outcomes: 0 when the identity holds."""
        return self.sent - (self.acked + self.rejected + self.lost + self.in_flight)

    def line(self) -> str:
        """One human line, e.g. ``sent 1000 = acked 990 + rejected 0 + lost 10 + in flight 0  OK``."""
        verdict = "OK" if self.ok else f"MISMATCH by {self.unaccounted:+d} (harness bug)"
        return (f"sent {self.sent} = acked {self.acked} + rejected {self.rejected} + lost {self.lost}"
                f" + in flight {self.in_flight}  {verdict}")

    def check(self) -> None:
        """Raise ``AccountingMismatch`` (with ``line()``) unless the identity holds."""
        if not self.ok:
            raise AccountingMismatch(self.line())

    def merge(self, other: Accounting) -> Accounting:
        """The accounting of two disjoint sets of events (sums; the identity is preserved)."""
        return Accounting(self.sent + other.sent, self.acked + other.acked, self.rejected + other.rejected,
                          self.lost + other.lost, self.in_flight + other.in_flight)

    def to_json(self) -> dict[str, int | bool]:
        return {"sent": self.sent, "acked": self.acked, "rejected": self.rejected, "lost": self.lost,
                "in_flight": self.in_flight, "ok": self.ok}
