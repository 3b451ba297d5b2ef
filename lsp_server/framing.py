"""LSP's base protocol framing (``Content-Length: N\\r\\n ... \\r\\n\\r\\n`` + N bytes), with recovery.

A wrong Content-Length must not desynchronise the stream for good. Recovery rests on one fact: a JSON
body can never contain a header line, because JSON forbids raw CR and LF inside strings and
``Content-Length`` is not a JSON token. So a header found where a body should be proves the length was
too long, and the body is cut there; bytes left over from a length that was too short, or any other
garbage, are skipped up to the next header.

A header's lines may end with LF alone, as a hand-written client's often do: LSP says CRLF, but such a client
was left unanswered, without a word in the log, and a raw LF is no more possible inside a JSON string than CRLF.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 << 20  # larger than any document an editor sends; more is a framing error

_HEADER = re.compile(rb"content-length:[ \t]{0,8}(\d{1,12})[ \t]{0,8}\r?\n", re.IGNORECASE)
_HEADER_MAX = 64  # longer than any match of _HEADER
_NAME = b"content-length:"
_VALUE_PREFIX = re.compile(rb"[ \t]{0,8}(?:\d{1,12}[ \t]{0,8}\r?)?")
# Another header field (Content-Type), a prefix of one, and the longest we wait for.
_FIELD = re.compile(rb"[!-9;-~]+:[^\r\n]*\r?\n")
_FIELD_PREFIX = re.compile(rb"\r|[!-9;-~]*(?::[^\r\n]*\r?)?")
_FIELD_MAX = 1024


def _header_prefix(tail: bytes | bytearray) -> bool:
    """Whether `tail` (the end of the buffer) could still grow into a Content-Length header."""
    if not tail or not _NAME.startswith(bytes(tail[: len(_NAME)]).lower()):
        return False
    return len(tail) <= len(_NAME) or _VALUE_PREFIX.fullmatch(tail, len(_NAME)) is not None


def _end_of_header(buf: bytearray, pos: int) -> int | None:
    """Where the body starts when the blank line that ends a header is at `pos`, else None."""
    if buf.startswith(b"\r\n", pos):
        return pos + 2
    return pos + 1 if buf.startswith(b"\n", pos) else None


class Framer:
    """Turns a byte stream, fed in chunks of any size, into message bodies."""

    def __init__(self, max_body: int = MAX_BODY_BYTES) -> None:
        self.max_body = max_body
        self._buf = bytearray()
        self._body_start: int | None = None  # set while a header has been read and its body is awaited
        self._length = 0
        self._scanned = 0  # the body bytes before this hold no header (searched already)
        self._skipped = 0  # bytes of garbage skipped since the last header, reported once

    def feed(self, data: bytes) -> list[bytes]:
        """The bodies completed by `data`, in order."""
        self._buf += data
        bodies = []
        while (body := self._next()) is not None:
            bodies.append(body)
        return bodies

    def _next(self) -> bytes | None:
        if self._body_start is None and not self._read_header():
            return None
        return self._read_body()

    def _skip(self, n: int) -> None:
        if n and bytes(self._buf[:n]).strip():  # blank lines between messages are harmless
            self._skipped += n
        del self._buf[:n]

    def _read_header(self) -> bool:
        """Move to the next complete header block; False when more input is needed."""
        buf = self._buf
        while True:
            m = _HEADER.search(buf)
            if m is None:
                # Keep only what may be the start of a header that is still arriving.
                tail = max(0, len(buf) - _HEADER_MAX)
                keep = next((i for i in range(tail, len(buf)) if buf[i] in b"Cc" and _header_prefix(buf[i:])),
                            len(buf))
                self._skip(keep)
                return False
            length, pos = int(m.group(1)), m.end() - m.start()
            self._skip(m.start())
            while (end_of_header := _end_of_header(buf, pos)) is None:
                field = _FIELD.match(buf, pos)
                if field is not None:
                    pos = field.end()
                    continue
                if len(buf) - pos < _FIELD_MAX and _FIELD_PREFIX.fullmatch(buf, pos) is not None:
                    return False  # a field still arriving
                break
            else:
                if self._skipped:
                    log.warning("skipped %d bytes that were not part of a message", self._skipped)
                    self._skipped = 0
                if length <= self.max_body:
                    self._body_start, self._length, self._scanned = end_of_header, length, end_of_header
                    return True
                log.warning("a message of %d bytes is over the %d-byte limit: skipped", length, self.max_body)
            self._skip(1)  # not a usable header: look for the next one

    def _read_body(self) -> bytes | None:
        buf, start = self._buf, self._body_start
        assert start is not None
        end = start + self._length
        header = _HEADER.search(buf, max(start, self._scanned - _HEADER_MAX))
        if header is not None and header.start() < end:
            log.warning("Content-Length %d ran into the next message: cut at its header", self._length)
            return self._take(start, header.start())
        if len(buf) < end:
            self._scanned = len(buf)
            return None
        # A header that begins inside the body but has not fully arrived: wait for it before deciding.
        if any(buf[i] in b"Cc" and _header_prefix(buf[i:]) for i in range(max(start, end - _HEADER_MAX), end)):
            return None
        return self._take(start, end)

    def _take(self, start: int, end: int) -> bytes:
        body = bytes(self._buf[start:end])
        del self._buf[:end]
        self._body_start = None
        return body


def frame(body: bytes) -> bytes:
    """`body` with its header, ready to write."""
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
