"""Where a connection's bytes stand among its HTTP/1.1 request heads: the clock of the header timeout.

Sans-I/O: ``RequestHeads.feed`` takes the bytes a client sends, in the pieces they arrive in, and says
whether a request head (request line and headers, RFC 9112, 2.1) is open at their end: started, not yet
ended by its empty line. ``gate.py`` runs the ``--header-timeout-s`` clock only while one is. A client
that sends a head a line every few seconds (slowloris) keeps a head open; one that sends whole requests
never does, whatever it waits between them.

A body of known length (``Content-Length``) is skipped, so the next head is found after it. A connection
this cannot follow any further is let go (``following`` turns False): an upgrade (a WebSocket sends frames,
not heads, after its handshake), a chunked body, a ``Content-Length`` that is not a number (aiohttp refuses
that request itself), or a head longer than aiohttp would read. The handler's body timeout and aiohttp's
keep-alive timeout cover what comes after.
"""

from __future__ import annotations

import re

#: The empty line that ends a head: CRLF CRLF, or a bare LF where a lenient client sends one.
_HEAD_END = re.compile(rb"\n\r?\n")
#: Longer than aiohttp reads (128 headers of 8,190 bytes): such a head is refused by aiohttp anyway.
MAX_HEAD_BYTES = 1 << 20

_IDLE, _HEAD, _BODY, _GONE = range(4)


def body_length(head: bytes) -> int | None:
    """The body length a request head announces: 0 without ``Content-Length``; None when this cannot tell
    where the body ends (an upgrade, ``Transfer-Encoding``, a length that is not a number)."""
    lower = head.lower()
    if b"\nupgrade:" in lower or b"\ntransfer-encoding:" in lower:
        return None
    start = lower.find(b"\ncontent-length:")
    if start < 0:
        return 0
    start += len(b"\ncontent-length:")
    value = lower[start:lower.find(b"\n", start)].strip()
    return int(value) if value.isdigit() else None


class RequestHeads:
    """One connection's request framing, as far as timing its heads needs it (see the module docstring)."""

    __slots__ = ("_head", "_skip", "_state")

    def __init__(self) -> None:
        self._state = _IDLE
        self._head = bytearray()  # the open head so far, when it spans pieces
        self._skip = 0  # body bytes still to pass

    @property
    def following(self) -> bool:
        """False once the connection can no longer be followed (then ``feed`` always returns False)."""
        return self._state != _GONE

    def feed(self, data: bytes) -> bool:
        """Take the next bytes from the client; True when a request head is open at their end."""
        pos, size = 0, len(data)
        while pos < size:
            state = self._state
            if state == _BODY:
                taken = min(self._skip, size - pos)
                self._skip -= taken
                pos += taken
                if not self._skip:
                    self._state = _IDLE
            elif state == _IDLE:
                # RFC 9112, 2.2: empty lines before a request line are ignored (some clients end a body so).
                while pos < size and data[pos] in b"\r\n":
                    pos += 1
                if pos < size:
                    self._state = _HEAD
            elif state == _HEAD:
                pos = self._head_from(data, pos)
            else:
                return False
        return self._state == _HEAD

    def _head_from(self, data: bytes, pos: int) -> int:
        """Look for the end of the open head in ``data[pos:]``; where the rest of ``data`` starts."""
        head = self._head
        if not head:  # the usual case: a whole head in one piece, found without copying the body
            match = _HEAD_END.search(data, pos)
            if match is None:
                head += data[pos:]
                return self._check_size(len(data))
            return self._ended(data[pos:match.end()], match.end())
        start = len(head)
        head += data[pos:]
        match = _HEAD_END.search(head, max(0, start - 2))  # the empty line may span the two pieces
        if match is None:
            return self._check_size(len(data))
        end = match.end()
        whole = bytes(head[:end])
        head.clear()
        return self._ended(whole, pos + end - start)

    def _check_size(self, end: int) -> int:
        if len(self._head) > MAX_HEAD_BYTES:
            self._let_go()
        return end

    def _ended(self, head: bytes, rest: int) -> int:
        """A head ended (``head``, its empty line included); the body, if any, starts at ``rest``."""
        length = body_length(head)
        if length is None:
            self._let_go()
        elif length:
            self._state, self._skip = _BODY, length
        else:
            self._state = _IDLE
        return rest

    def _let_go(self) -> None:
        self._state = _GONE
        self._head = bytearray()
