"""What contract.md says the target must answer to a message: the fuzzer's oracle (sans-I/O, stdlib only).

The oracle reads the bytes a client sent with the standard library's strict JSON parser, not with the
product's parser (``bench.protocol`` uses orjson), and decides from contract.md alone:

- ``Expect.outcomes``: the reply classes the contract allows: ``ack``, ``malformed`` (WebSocket 1007/1008,
  HTTP 400), ``too_big`` (1009, 413). More than one where the contract leaves the choice to the server.
- ``Expect.must``: ids the ack has to carry (events that are valid by the contract);
  ``Expect.may``: ids the ack may carry (those, and events whose fate the contract leaves open). An id
  outside ``may`` in an ack is an event the target acknowledged but should have refused (or never got).

Where the contract leaves a choice, the oracle allows both answers rather than guessing the product's:
JSON the RFC calls valid but orjson refuses (integers beyond 64 bits, escaped lone surrogates, nesting past
orjson's 1,024 levels, duplicate keys: RFC 8259 sections 4, 6, 8.2, 9), a byte order mark (RFC 8259 8.1:
a parser *may* ignore it), fields nested deeper than a store can keep (``ingest``: 254 levels), and a few
readings the contract does not settle (a ``sessionId`` of 5.0, a negative ``date``).

Ids are compared with their JSON type (``IdKey``): the ack must echo ``7`` as ``7`` and ``"7"`` as ``"7"``.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

#: An event id with its JSON type: ("int", 7) or ("str", "7") (``True`` is not ``1`` here).
IdKey = tuple[str, int | str]

ACK: Final = "ack"
MALFORMED: Final = "malformed"
TOO_BIG: Final = "too_big"

#: orjson refuses documents nested deeper than this (the envelope's own two levels included).
ORJSON_DEPTH: Final = 1024
#: A field nested deeper than this may be refused as unstorable (the target's store keeps 254 levels).
STORABLE_DEPTH: Final = 200
#: Deeper than this the oracle does not parse at all (Python's parser recurses once per level).
PARSE_DEPTH: Final = 6000
#: contract.md, "Messages": a sessionId of more digits than a 64-bit integer may be refused.
_SESSION_DIGITS: Final = 20
_EVENT_TYPES: Final = frozenset({"init", "event", "error", "userid", "props", "nucleus:view"})
_NAMED_TYPES: Final = frozenset({"event", "error"})
#: ISO 8601 as RFC 3339 writes it (what every official module sends); other ISO forms are left open.
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2})?)?")
_ISO_LIKE = re.compile(r"\d{4}")


@dataclass(frozen=True, slots=True)
class Expect:
    """The replies the contract allows to one message, and the ids an ack must and may carry.

    ``may`` is None when the oracle cannot tell which ids the message holds (it is too deep to parse).
    """

    outcomes: frozenset[str]
    must: frozenset[IdKey] = frozenset()
    may: frozenset[IdKey] | None = frozenset()
    why: str = ""

    def union(self, other: Expect) -> Expect:
        """Either expectation holds: the outcomes of both, the ids both require, the ids either allows."""
        may = None if self.may is None or other.may is None else self.may | other.may
        must = self.must & other.must if ACK in self.outcomes and ACK in other.outcomes else (
            self.must if ACK in self.outcomes else other.must)
        why = "; ".join(w for w in (self.why, other.why) if w)
        return Expect(self.outcomes | other.outcomes, must, may, why)


def only(outcome: str, why: str = "") -> Expect:
    return Expect(frozenset({outcome}), why=why)


def id_key(value: Any) -> IdKey | None:
    """The typed key of an id as the oracle reads it; None when the value cannot be an id at all."""
    if isinstance(value, _OddNum):
        return ("int", value.value) if isinstance(value.value, int) else None
    if type(value) is int:
        return ("int", value)
    if type(value) is str:
        return ("str", value)
    return None


# ------------------------------------------------------------------------------------ strict parsing


class _OddNum:
    """A JSON number orjson does not read as the same number (beyond 64 bits, or infinite as a double)."""

    __slots__ = ("value",)

    def __init__(self, value: int | float | str) -> None:
        self.value = value


class _DupDict(dict[str, Any]):
    """A JSON object that had a key twice (RFC 8259 4: what a parser does with it is not defined)."""


def _parse_int(text: str) -> int | _OddNum:
    if len(text.lstrip("-")) > 400:
        return _OddNum(text)
    value = int(text)
    return value if -(1 << 63) <= value < (1 << 64) else _OddNum(value)


def _parse_float(text: str) -> float | _OddNum:
    value = float(text)
    return value if math.isfinite(value) else _OddNum(text)


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")  # NaN, Infinity, -Infinity (RFC 8259 6)


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)  # the last value of a repeated key wins, as in orjson
    return _DupDict(obj) if len(obj) != len(pairs) else obj


_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


def nesting(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text``, brackets inside strings not counted."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


@contextmanager
def _recursion(limit: int) -> Iterator[None]:
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def strict_loads(text: str, depth: int) -> Any:
    """RFC 8259 JSON with the standard library: no NaN/Infinity, no raw control characters in strings.

    Raises:
        ValueError: not JSON.
    """
    with _recursion(depth + 500):
        return json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_no_constant,
                          object_pairs_hook=_pairs, strict=True)


def _shape(value: Any) -> tuple[int, bool]:
    """(nesting depth, odd): odd when orjson may not read ``value`` as the RFC does (see the docstring)."""
    deepest, odd = 0, False
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, depth + 1)
            odd = odd or isinstance(item, _DupDict) or any(not _utf8(k) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, depth + 1)
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, _OddNum) or (isinstance(item, str) and not _utf8(item)):
            odd = True
    return deepest, odd


def _utf8(text: str) -> bool:
    """False for a string holding a lone surrogate (an escaped ``\\ud800``: JSON, but not Unicode)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# ------------------------------------------------------------------------------------------- events

_VERDICT_ACK, _VERDICT_REJECT, _VERDICT_EITHER = "ack", "reject", "either"


def _device_verdict(obj: dict[str, Any]) -> str:
    """contract.md: ``deviceId``, or ``machineId`` from older modules; one of them is required."""
    device, machine = obj.get("deviceId"), obj.get("machineId")
    if isinstance(device, str) and device:
        return _VERDICT_ACK
    if isinstance(machine, str) and machine:
        return _VERDICT_ACK if device is None else _VERDICT_EITHER  # a bad deviceId beside a good machineId
    return _VERDICT_REJECT


def _session_verdict(value: Any) -> str:
    """contract.md: a positive integer, or a numeric string (v4 after a page reload)."""
    if type(value) is int:
        return _VERDICT_ACK if value > 0 else _VERDICT_REJECT
    if type(value) is str and value.isascii() and value.isdigit():
        if int(value) <= 0:
            return _VERDICT_REJECT
        return _VERDICT_ACK if len(value) <= _SESSION_DIGITS else _VERDICT_EITHER
    if type(value) is float and value > 0 and value.is_integer():
        return _VERDICT_EITHER  # 5.0: an integer's value in a number's spelling
    return _VERDICT_REJECT


def _date_verdict(value: Any) -> str:
    """tracking-api.md: ISO 8601 or milliseconds since 1970; missing is the receive time."""
    if value is None:
        return _VERDICT_ACK
    if type(value) is int or type(value) is float:
        return _VERDICT_ACK if value >= 0 else _VERDICT_EITHER  # before 1970: not settled
    if type(value) is not str:
        return _VERDICT_REJECT
    if value.isascii() and value.isdigit():
        return _VERDICT_ACK
    if _ISO.fullmatch(value):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return _VERDICT_REJECT  # ISO's shape, an impossible date (month 13)
        return _VERDICT_ACK
    return _VERDICT_EITHER if _ISO_LIKE.match(value) else _VERDICT_REJECT


def event_verdict(obj: Any) -> tuple[IdKey | None, str]:
    """The id of one item of ``data`` and whether the contract says it is acked, refused or either."""
    if not isinstance(obj, dict):
        return None, _VERDICT_REJECT
    key = id_key(obj.get("id"))
    if key is None:
        return None, _VERDICT_REJECT  # no id (stored, never acked) or one that cannot be echoed
    kind = obj.get("type", "event")
    if not isinstance(kind, str) or kind not in _EVENT_TYPES:
        # null reads as absent elsewhere; for type the contract gives only the default
        return key, _VERDICT_EITHER if kind is None else _VERDICT_REJECT
    verdicts = [_device_verdict(obj)]
    if kind in _NAMED_TYPES:
        name = obj.get("name")
        verdicts.append(_VERDICT_REJECT if name is None or name == "" else _VERDICT_ACK)
    verdicts.append(_session_verdict(obj.get("sessionId")))
    verdicts.append(_date_verdict(obj.get("date")))
    depth, odd = _shape(obj)
    if odd or depth - 1 > STORABLE_DEPTH:
        verdicts.append(_VERDICT_EITHER)
    if _VERDICT_REJECT in verdicts:
        return key, _VERDICT_EITHER if odd else _VERDICT_REJECT
    return key, _VERDICT_EITHER if _VERDICT_EITHER in verdicts else _VERDICT_ACK


def _ids(items: list[Any]) -> tuple[frozenset[IdKey], frozenset[IdKey]]:
    must: set[IdKey] = set()
    may: set[IdKey] = set()
    for item in items:
        key, verdict = event_verdict(item)
        if key is None or verdict == _VERDICT_REJECT:
            continue
        may.add(key)
        if verdict == _VERDICT_ACK:
            must.add(key)
    return frozenset(must), frozenset(may)


# ----------------------------------------------------------------------------------------- messages


def expect_message(body: bytes, *, max_bytes: int, max_events: int) -> Expect:
    """What the contract allows as the answer to ``body`` (one WebSocket message or a decoded HTTP body).

    contract.md, "Acknowledgements" and "Limits": over ``max_bytes`` is too big; not JSON, not an object
    or no ``data`` array is malformed; more than ``max_events`` events is too big; otherwise an ack.
    """
    if len(body) > max_bytes:
        return only(TOO_BIG, f"{len(body)} bytes > {max_bytes}")
    try:
        text = body.decode("utf-8")  # strict: overlong forms, encoded surrogates and stray bytes fail
    except UnicodeDecodeError:
        return only(MALFORMED, "not UTF-8")
    if text.startswith("\ufeff"):  # RFC 8259 8.1: a parser may ignore a byte order mark, or refuse it
        rest = expect_message(text[1:].encode("utf-8"), max_bytes=max_bytes, max_events=max_events)
        return only(MALFORMED, "byte order mark").union(rest)
    depth = nesting(text)
    if depth > PARSE_DEPTH:
        return Expect(frozenset({MALFORMED, ACK}), may=None, why=f"nested {depth} deep")
    try:
        doc = strict_loads(text, depth)
    except (ValueError, RecursionError):
        return only(MALFORMED, "not JSON")
    expect = _expect_doc(doc, max_events)
    _, odd = _shape(doc)
    if odd or depth > ORJSON_DEPTH:  # valid JSON orjson refuses (integers past 64 bits, lone surrogates...)
        return only(MALFORMED, "JSON orjson may refuse").union(expect)
    return expect


def _expect_doc(doc: Any, max_events: int) -> Expect:
    if not isinstance(doc, dict):
        return only(MALFORMED, "not an object")
    items = doc.get("data")
    if not isinstance(items, list):
        return only(MALFORMED, "no data array")
    if len(items) > max_events:
        return only(TOO_BIG, f"{len(items)} events > {max_events}")
    must, may = _ids(items)
    if isinstance(doc, _DupDict):  # which "data" a server reads is not defined: any ids, none required
        return Expect(frozenset({ACK, MALFORMED}), may=None, why="duplicate keys")
    return Expect(frozenset({ACK}), must, may)
