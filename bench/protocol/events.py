"""Events of the Tracking API as frozen, slotted values, and their lenient parser.

Parsing follows contract.md, "Messages (client to server)": lenient in what it accepts (``deviceId`` or
``machineId``, ``locale`` or ``language``, ids as strings or integers with their JSON type kept,
``sessionId`` as an integer or a numeric string, ``date`` as ISO 8601 or epoch milliseconds) and strict
about what is really required (a device for every type, a name for ``event`` and ``error``, a positive
session for everything but ``heartbeat``). A broken event raises ``InvalidEvent``; nothing else escapes.

Fields the document requires on ``init`` and ``error`` but real modules leave out are not errors:
``Event.missing_required()`` names them so the target can count them.

Types are strict only where the value is used (contract.md, "Messages": "an optional extra of another JSON
type is stored as it came"). Field by field:

- ``type`` picks the class, ``id`` is echoed in the ack with its JSON type (string or integer; the Swift
  module decodes acks strictly), ``sessionId`` keys sessions, ``deviceId``/``machineId`` names the device
  and ``date`` places the event in time: these keep their types, and a wrong one refuses the event.
- ``name``, ``userId``, ``anonId``, ``payload`` and every extra (``platform``, ``osVersion``, ``totalRam``,
  ``version``, ``language``, ``locale``, ``arch``, ``client``, ``moduleVersion``) are only recorded: any JSON
  value is kept as it came (the Python module sends ``"arch": 64``, v3 a float ``totalRam``). ``null`` reads
  as absent; a ``name`` of ``event`` and ``error`` must be present and not ``""``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal, NewType

from bench.protocol.errors import InvalidEvent, Reason

#: An event id exactly as the client sent it; the ack echoes it with the same JSON type.
EventId = str | int
DeviceId = NewType("DeviceId", str)
DeviceKey = Literal["deviceId", "machineId"]
#: A field recorded as it came: any JSON value (see the module docstring).
JsonValue = Any


class EventType(StrEnum):
    INIT = "init"
    EVENT = "event"
    ERROR = "error"
    USERID = "userid"
    PROPS = "props"
    HEARTBEAT = "heartbeat"
    VIEW = "nucleus:view"


@dataclass(frozen=True, slots=True)
class Extra:
    """The extra data of ``init`` and ``error`` (tracking-api.md, "Extra events data")."""

    platform: JsonValue = None
    os_version: JsonValue = None
    total_ram: JsonValue = None
    version: JsonValue = None
    language: JsonValue = None
    locale: JsonValue = None
    arch: JsonValue = None
    client: JsonValue = None
    module_version: JsonValue = None

    def missing(self) -> tuple[str, ...]:
        """Wire names of the fields the document requires that are absent.

        ``locale`` stands for ``language``.
        """
        out = [wire for wire, attr in _REQUIRED_EXTRA if getattr(self, attr) is None]
        if self.language is None and self.locale is None:
            out.append("language")
        return tuple(out)


# (wire key, attribute) for the Extra fields; orders serialization.
_EXTRA_FIELDS: tuple[tuple[str, str], ...] = (
    ("platform", "platform"),
    ("osVersion", "os_version"),
    ("totalRam", "total_ram"),
    ("version", "version"),
    ("language", "language"),
    ("locale", "locale"),
    ("arch", "arch"),
    ("client", "client"),
    ("moduleVersion", "module_version"),
)
_REQUIRED_EXTRA = (("platform", "platform"), ("osVersion", "os_version"), ("totalRam", "total_ram"),
                   ("version", "version"))
_EXTRA_KEYS = frozenset(w for w, _ in _EXTRA_FIELDS)
_KNOWN_KEYS = frozenset({"type", "name", "sessionId", "date", "id", "userId", "anonId", "deviceId",
                         "machineId", "payload"}) | _EXTRA_KEYS


@dataclass(frozen=True, slots=True)
class Event:
    """One event. Subclasses fix ``TYPE``; build them directly or with ``parse_event``."""

    TYPE: ClassVar[EventType] = EventType.EVENT
    REQUIRES_NAME: ClassVar[bool] = False
    REQUIRES_SESSION: ClassVar[bool] = True
    HAS_EXTRA: ClassVar[bool] = False

    device_id: str
    session_id: int | None = None
    id: EventId | None = None
    name: JsonValue = None
    date: int | float | str | None = None
    user_id: JsonValue = None
    anon_id: JsonValue = None
    payload: JsonValue = None
    extra: Extra | None = None
    device_key: DeviceKey = "deviceId"
    unknown: dict[str, Any] | None = None

    def missing_required(self) -> tuple[str, ...]:
        """Fields tracking-api.md requires that this event lacks (counted by the target, never rejected)."""
        if not self.HAS_EXTRA:
            return ()
        return (self.extra or _NO_EXTRA).missing()

    def to_obj(self) -> dict[str, Any]:
        """The JSON object for this event, as the official modules lay it out."""
        # TYPE is a StrEnum: a str orjson writes as its value, without Enum's .value descriptor per event.
        obj: dict[str, Any] = {"type": self.TYPE}
        if self.name is not None:
            obj["name"] = self.name
        if self.session_id is not None:
            obj["sessionId"] = self.session_id
        if self.date is not None:
            obj["date"] = self.date
        if self.id is not None:
            obj["id"] = self.id
        if self.user_id is not None:
            obj["userId"] = self.user_id
        if self.anon_id is not None:
            obj["anonId"] = self.anon_id
        obj[self.device_key] = self.device_id
        if self.payload is not None:
            obj["payload"] = self.payload
        if self.extra is not None:
            for wire, attr in _EXTRA_FIELDS:
                value = getattr(self.extra, attr)
                if value is not None:
                    obj[wire] = value
        if self.unknown:
            for key, value in self.unknown.items():
                obj.setdefault(key, value)
        return obj


_NO_EXTRA = Extra()


@dataclass(frozen=True, slots=True)
class Init(Event):
    TYPE: ClassVar[EventType] = EventType.INIT
    HAS_EXTRA: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class Track(Event):
    """The default ``event`` type."""

    TYPE: ClassVar[EventType] = EventType.EVENT
    REQUIRES_NAME: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class Error(Event):
    TYPE: ClassVar[EventType] = EventType.ERROR
    REQUIRES_NAME: ClassVar[bool] = True
    HAS_EXTRA: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class UserId(Event):
    TYPE: ClassVar[EventType] = EventType.USERID


@dataclass(frozen=True, slots=True)
class Props(Event):
    TYPE: ClassVar[EventType] = EventType.PROPS


@dataclass(frozen=True, slots=True)
class Heartbeat(Event):
    """WebSocket keep-alive. Carries a device, needs no session, is never stored as an event."""

    TYPE: ClassVar[EventType] = EventType.HEARTBEAT
    REQUIRES_SESSION: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class View(Event):
    """``nucleus:view``: page and screen views (modules v3-v5)."""

    TYPE: ClassVar[EventType] = EventType.VIEW


#: Table dispatch: wire type -> event class.
EVENT_CLASSES: dict[str, type[Event]] = {
    cls.TYPE.value: cls for cls in (Init, Track, Error, UserId, Props, Heartbeat, View)
}


def _parse_id(value: Any) -> EventId | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidEvent(Reason.BAD_ID, "id must be a string or an integer")


#: Real clients send up to 8 digits (contract.md, "Messages"). A numeric string is read as far as a JSON
#: integer can go (orjson: 64 bits, 20 digits); a longer one is refused before int() has to read it.
_MAX_SESSION_DIGITS = len(str((1 << 64) - 1))


def _parse_session(value: Any, required: bool, event_id: EventId | None) -> int | None:
    if value is None:
        if required:
            raise InvalidEvent(Reason.BAD_SESSION, "sessionId is required", event_id)
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        session = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= _MAX_SESSION_DIGITS:
        session = int(value)  # v4 after a page reload (contract.md, "Messages")
    else:
        raise InvalidEvent(Reason.BAD_SESSION, "sessionId must be a positive integer", event_id)
    if session <= 0:
        raise InvalidEvent(Reason.BAD_SESSION, "sessionId must be a positive integer", event_id)
    return session


def _parse_date(value: Any, event_id: EventId | None) -> int | float | str | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or value < 0:
            raise InvalidEvent(Reason.BAD_DATE, "date must be non-negative epoch milliseconds", event_id)
        return value
    if isinstance(value, str):
        if value.isascii() and value.isdigit():
            return value
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise InvalidEvent(Reason.BAD_DATE, "date must be ISO 8601 or epoch milliseconds",
                               event_id) from None
        return value
    raise InvalidEvent(Reason.BAD_DATE, "date must be ISO 8601 or epoch milliseconds", event_id)


def _parse_extra(obj: dict[str, Any]) -> Extra | None:
    if _EXTRA_KEYS.isdisjoint(obj):
        return None
    # Recorded as they came, of any JSON type (contract.md, "Messages"): the Python module sends
    # "arch": 64, v3 a float totalRam; a string would only be asked for by the document's table.
    get = obj.get
    extra = Extra(get("platform"), get("osVersion"), get("totalRam"), get("version"), get("language"),
                  get("locale"), get("arch"), get("client"), get("moduleVersion"))
    # Extra keys that are all null carry nothing: the same event as one without them (keeps parse idempotent).
    return None if extra == _NO_EXTRA else extra


# Building an event without the generated __init__: a frozen dataclass's __init__ sets every field through
# object.__setattr__, and the slot descriptors' own setters take a tuple of arguments per call: either costs
# more than the rest of parsing (11 setter calls, 0.6 us). Each class has instead a builder: a subclass with
# no slots of its own and the plain __setattr__, whose fields are set as plain attribute stores. The built
# object then takes its real class (``__class__`` assignment, allowed between classes of one layout), and
# is the very object the constructor makes. No field has a default factory or a __post_init__, and the
# check below keeps parse_event's list of fields in step with the class.
_FIELD_NAMES = ("device_id", "session_id", "id", "name", "date", "user_id", "anon_id", "payload", "extra",
                "device_key", "unknown")
if tuple(f.name for f in fields(Event)) != _FIELD_NAMES:
    raise RuntimeError("parse_event's field list is stale")
_new_event = object.__new__


def _unknown_type(kind: Any) -> str:
    """The detail of a bad ``type``: a string is quoted (cut short), anything else named by its type only.

    Never the ``repr`` of a container: one nested a thousand levels deep (JSON allows it; orjson reads up to
    1,024) raises RecursionError there, which is not ``InvalidEvent`` and would escape the parser.
    """
    if isinstance(kind, str):
        return f"unknown type {kind[:64]!r}"
    return f"type must be a string, not {type(kind).__name__}"


def _builder(cls: type[Event]) -> type[Any]:
    namespace = {"__slots__": (), "__setattr__": object.__setattr__, "__delattr__": object.__delattr__}
    return type(f"_{cls.__name__}Builder", (cls,), namespace)


_BUILDERS: dict[type[Event], type[Any]] = {cls: _builder(cls) for cls in EVENT_CLASSES.values()}
#: Keys of an event with no extra, no machineId beside its deviceId and nothing unknown: the common case,
#: told in one set operation.
_PLAIN_KEYS = frozenset({"type", "name", "sessionId", "date", "id", "userId", "anonId", "deviceId",
                         "payload"})


def parse_event(obj: Any) -> Event:
    """Build an ``Event`` from one decoded JSON value of a ``data`` array.

    Raises:
        InvalidEvent: the value breaks a rule of contract.md; ``event_id`` is set when it could be read.
    """
    # Each check has a fast path for the exact types orjson returns and falls back to the full helper for
    # anything else, so the result and the first error raised are those of the helpers alone.
    if not isinstance(obj, dict):
        raise InvalidEvent(Reason.NOT_OBJECT, "event must be a JSON object")
    get = obj.get
    event_id = get("id")
    if event_id is not None and type(event_id) is not int and type(event_id) is not str:
        event_id = _parse_id(event_id)
    kind = get("type", "event")
    cls = EVENT_CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InvalidEvent(Reason.BAD_TYPE, _unknown_type(kind), event_id)
    device_key: DeviceKey = "deviceId"
    device = get("deviceId")
    if device is None:
        device_key, device = "machineId", get("machineId")
    if not isinstance(device, str) or not device:
        raise InvalidEvent(Reason.MISSING_DEVICE, "deviceId or machineId is required", event_id)
    name = get("name")  # any JSON value: recorded, never interpreted (the module docstring)
    if cls.REQUIRES_NAME and (name is None or name == ""):
        raise InvalidEvent(Reason.MISSING_NAME, f"name is required for {cls.TYPE.value}", event_id)
    unknown: dict[str, Any] | None = None
    extra: Extra | None = None
    if not _PLAIN_KEYS.issuperset(obj):
        unknown = None if _KNOWN_KEYS.issuperset(obj) else (
            {k: v for k, v in obj.items() if k not in _KNOWN_KEYS} or None)
        if device_key == "deviceId" and "machineId" in obj:
            unknown = {**(unknown or {}), "machineId": obj["machineId"]}
        extra = None if _EXTRA_KEYS.isdisjoint(obj) else _parse_extra(obj)
    session = get("sessionId")
    if type(session) is not int or session <= 0:
        session = _parse_session(session, cls.REQUIRES_SESSION, event_id)
    date = get("date")
    if date is not None and (type(date) is not int or date < 0):
        date = _parse_date(date, event_id)
    event = _new_event(_BUILDERS[cls])
    event.device_id = device
    event.session_id = session
    event.id = event_id
    event.name = name
    event.date = date
    event.user_id = get("userId")
    event.anon_id = get("anonId")
    event.payload = get("payload")
    event.extra = extra
    event.device_key = device_key
    event.unknown = unknown
    event.__class__ = cls
    built: Event = event
    return built


def date_ms(event: Event, received_ms: float) -> float:
    """The event's time in epoch milliseconds; the receive time when it has none (tracking-api.md)."""
    date = event.date
    if date is None:
        return received_ms
    if isinstance(date, str):
        if date.isdigit():
            return float(date)
        parsed = datetime.fromisoformat(date)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)  # a date without an offset is read as UTC
        return parsed.timestamp() * 1000.0
    return float(date)
