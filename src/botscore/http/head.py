"""The bounds of one request's head and trailers, as a connection reads them.

A head is counted by scanning each read up to its end (`\r\n\r\n`, also when split across two
reads), from the read it begins in: a head that begins inside a read, after the request before it
ended there, is measured from its parsed fields when complete instead (the scans saw only part
of it). Trailer fields are counted and dropped, and the bytes after a head that are not body
(chunk framing, trailers) are counted over the reads that hold nothing else: httptools keeps a
trailer field whole until it ends, growing it by `bytes +=`, so a trailer section that never
ends must be cut by bytes, not by fields. The fields a head must not repeat or combine are
checked as they arrive.
"""

from __future__ import annotations

MAX_TRAILER_FIELDS = 64  # a request's trailer fields, read and dropped; 431 and the close past it
TOO_LARGE = "request_header_too_large"

Refusal = tuple[int, str, str]  # status, code, message


class Head:
    """The head and trailers of the request a connection is reading."""

    __slots__ = (
        "_authorized",
        "_codings",
        "_fault",
        "_framing",
        "_trailers",
        "bytes",
        "exact",
        "max_bytes",
        "plain",
        "tail",
    )

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes  # BOTSCORE_MAX_HEADER_BYTES
        self.bytes = 0  # of the head being read, counted by the scans
        self.tail = b""  # the last bytes of a read that ended inside a head (a split \r\n\r\n)
        self.exact = True  # the head began at the start of a read: the scans count all of it
        self._fault: Refusal | None = None  # what the head's fields alone refuse
        self._authorized = False
        self._codings: list[bytes] = []  # the transfer codings, in order, over every such field
        self._trailers = 0
        self._framing = 0
        # Nothing was counted, checked or noted past the one search of the read its head ended in: nearly
        # every request; the connection then asks nothing more of it (one test a request).
        self.plain = True

    def end(self) -> None:
        """The request's message is complete: the next bytes are a head again (not needed while `plain`)."""
        self.plain = True
        self.exact = True
        self.bytes = 0
        self.tail = b""
        self._fault = None
        self._authorized = False
        self._codings = []
        self._trailers = 0
        self._framing = 0

    def began_inside(self) -> None:
        """The head began inside a read, after the request before it ended there: the scans will see only
        part of it, so it is measured from its parsed fields when complete (`refusal`)."""
        self.plain = False
        self.exact = False

    def scan(self, data: bytes) -> Refusal | None:
        """Count a read that begins in a head: up to the head's end when it ends in it, else all of it."""
        self.plain = False
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            counted = end + 4
        elif self.tail and (split := (self.tail + data[:3]).find(b"\r\n\r\n")) >= 0:
            counted = split + 4 - len(self.tail)  # the head's end began in the previous read
        else:
            counted = len(data)
            self.tail = data[-3:]
        self.bytes += counted
        return None if self.bytes <= self.max_bytes else (431, TOO_LARGE, f"request head over {self.max_bytes} bytes")

    def after(self, other: int) -> Refusal | None:
        """Count a read, all of it after the head, of which `other` bytes were not body."""
        self.plain = False
        self._framing += other
        if self._framing > self.max_bytes:
            return 431, TOO_LARGE, f"request trailers over {self.max_bytes} bytes"
        return None

    def trailer(self) -> Refusal | None:
        """Count a trailer field (it is dropped)."""
        self.plain = False
        self._trailers += 1
        if self._trailers > MAX_TRAILER_FIELDS:
            return 431, TOO_LARGE, f"request trailers over {MAX_TRAILER_FIELDS} fields"
        return None

    def check(self, name: bytes, value: bytes) -> None:
        """An Authorization or Transfer-Encoding field of the head."""
        self.plain = False
        if name == b"authorization":
            if self._authorized:  # RFC 9110 11.6.2: one field, not a list: which one would be the key?
                self._fault = (400, "bad_request", "more than one Authorization field")
            self._authorized = True
        else:
            self._codings.extend(coding.strip().lower() for coding in value.split(b","))

    def refusal(self, url: bytes, method: bytes, headers: list[tuple[bytes, bytes]]) -> Refusal | None:
        """What the complete head alone refuses: its size, if the scans did not see all of it; its fields."""
        if not self.exact:
            size = len(url) + len(method) + 16  # the request line and the final CRLF
            for name, value in headers:
                size += len(name) + len(value) + 4
            if size > self.max_bytes:
                return 431, TOO_LARGE, f"request head over {self.max_bytes} bytes"
        codings = self._codings
        if codings:
            if codings[-1] != b"chunked":
                return 400, "bad_request", "Transfer-Encoding must end with chunked"  # RFC 9112 6.3: length unknown
            if len(codings) > 1:
                return 501, "not_implemented", "only the chunked transfer coding is supported"  # RFC 9112 6.1
        return self._fault
