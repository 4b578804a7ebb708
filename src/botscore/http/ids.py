"""Request ids: the client's X-Request-ID when it is sane, else a new UUID-formatted one."""

from __future__ import annotations

import itertools
import os
import random
import re

_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


class _RequestIds:
    """UUID4-formatted ids: a random prefix per process (os.urandom once, again after a fork) and a
    counter for the last 48 bits. Not uuid.uuid4(): its os.urandom call costs a syscall on every
    request, and ids need uniqueness, not secrecy."""

    def __init__(self) -> None:
        self._prefix = ""
        self._counter = itertools.count()
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        h = f"{random.SystemRandom().getrandbits(80):020x}"
        self._prefix = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-"
        self._counter = itertools.count(random.SystemRandom().getrandbits(47))

    def new(self) -> bytes:
        """A new id, unique per process by its counter and across processes by its prefix."""
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFFFFFF:012x}".encode()


new_request_id = _RequestIds().new


def request_id(raw: bytes | None) -> bytes:
    """The client's X-Request-ID if it is sane (1-128 of A-Z a-z 0-9 . _ : -), else a new UUID."""
    if raw is not None and _SANE_REQUEST_ID.fullmatch(raw):
        return raw
    return new_request_id()
