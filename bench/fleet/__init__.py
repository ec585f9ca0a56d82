"""The fleet: a scenario and its seed in, a plan of intended sends out.

Pure: no sockets, no event loop, no clock.

See ``bench.fleet.plan`` for the theory of operation and ``bench.fleet.device`` for one device's timeline.
"""

from bench.fleet.clients import ClientSend
from bench.fleet.device import ID_STRIDE, MAX_SESSION_ID, SILENCE_NS
from bench.fleet.plan import TRANSPORTS, Plan
from bench.fleet.send import Send

__all__ = ["ID_STRIDE", "MAX_SESSION_ID", "SILENCE_NS", "TRANSPORTS", "ClientSend", "Plan", "Send"]
