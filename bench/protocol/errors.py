"""The one exception tree of nucleus-bench.

Their fault versus our fault: a ``ProtocolError`` is something a peer sent that the contract does not
allow. The target answers it on the wire and counts it; the harness counts it as a measurement of the
server under test and goes on. A ``UsageError`` is the user's own input (scenario file, CLI flag): the
front door prints it as one line and exits 2. Anything else escaping is a bug in nucleus-bench and
fails loudly.

::

    BenchError
    ├── ProtocolError            a peer broke the wire contract (count it, answer it, go on)
    │   ├── MalformedMessage     not JSON, not an object, no "data" array    WS close 1007 / HTTP 400
    │   ├── MessageTooLarge      over the byte or events-per-message cap     WS close 1009 / HTTP 413
    │   ├── InvalidEvent         one event breaks a rule; the rest of its message stands
    │   └── MalformedAck         a server reply that is not {"reportedIds": [...]}
    ├── ServerFailure            the server under test failed a send: a measurement, counted, never fatal
    │   ├── EventRejected        left out of reportedIds, or its batch refused      Locust's "rejected"
    │   ├── EventLost            no ack within the scenario's ack_timeout            Locust's "lost"
    │   └── ConnectFailed        refused, timed out, TLS, or a refused handshake    a connect error
    ├── TargetStartError         the embedded reference target did not start      one line, exit 2
    ├── AccountingMismatch       sent != acked + rejected + lost + in flight: a bug of ours, exit 1
    │                            (bench.metrics.accounting)
    └── UsageError               the user's own input is wrong              one line, exit 2
        ├── ScenarioError        a scenario file: names file, line and key
        └── MetricsFormatError   a metrics document read back is wrong (bench.metrics.errors)

``ServerFailure`` exists because Locust records a failed request with an exception object: the Locust users
hand it these, and the hot path counts the same outcomes without raising. Two exceptions stay outside the
tree on purpose: ``bench.scenario``'s private ``_Bad``, a signal inside the scenario reader that always leaves
it as a ``ScenarioError`` with file, line and key; and the benchmarks' own ``PerfError`` (``benchmarks/``),
which measures the product from outside it.
"""

from __future__ import annotations

from enum import StrEnum


class BenchError(Exception):
    """Base of every error nucleus-bench raises on purpose."""


class ProtocolError(BenchError):
    """A peer sent something the wire contract does not allow."""


class MalformedMessage(ProtocolError):
    """A whole message is unusable: not JSON, not an object, or without a ``data`` array.

    contract.md, "Acknowledgements": WebSocket close 1007, HTTP 400 with ``{"error": ...}``.
    """


class MessageTooLarge(ProtocolError):
    """A message is over the byte cap or the events-per-message cap (WS close 1009, HTTP 413)."""


class Reason(StrEnum):
    """Why one event was refused. The target counts rejections by these names in ``/stats``."""

    NOT_OBJECT = "not_object"
    BAD_TYPE = "bad_type"
    MISSING_DEVICE = "missing_device"
    MISSING_NAME = "missing_name"
    BAD_SESSION = "bad_session"
    BAD_ID = "bad_id"
    BAD_DATE = "bad_date"
    BAD_FIELD = "bad_field"


class InvalidEvent(ProtocolError):
    """One event breaks a rule of contract.md; it is left out of ``reportedIds``, its message stands."""

    def __init__(self, reason: Reason, detail: str, event_id: str | int | None = None) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.event_id = event_id


class MalformedAck(ProtocolError):
    """A server reply that is not exactly ``{"reportedIds": [str | int, ...]}``."""


class ServerFailure(BenchError):
    """The server under test failed one send (a measurement of it, not an error of nucleus-bench)."""


class EventRejected(ServerFailure):
    """The server left an event out of ``reportedIds``, or refused its batch."""


class EventLost(ServerFailure):
    """No acknowledgement came within the scenario's ack timeout."""


class ConnectFailed(ServerFailure):
    """The TCP connect, TLS or the WebSocket handshake failed (counted as a connect error)."""


class TargetStartError(BenchError):
    """The embedded reference target did not print its URL: it exited (bad flag, busy port, bad store) or
    took too long. Its own last line is in the message."""


class UsageError(BenchError):
    """The user's own input (a CLI flag, a file) is wrong. Printed as one line; exit status 2."""


class ScenarioError(UsageError):
    """A scenario file is wrong. The message names the file, the line and the key."""

    def __init__(self, path: str, line: int | None, key: str, detail: str) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {key}: {detail}")
        self.path = path
        self.line = line
        self.key = key
        self.detail = detail
