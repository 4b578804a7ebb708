"""The HTTP/1.1 connection: uvicorn's httptools protocol, with the bounds it lacks.

uvicorn (0.54, pinned) bounds neither the size of a request head nor the time a client takes
to send a request, and does not time out a connection that never sends one; a client without
a key could hold a worker's memory and connections for ever. Nor can an app shed load cheaply:
by the time it runs, the request has cost a task and a scope. No server option does these, so
this subclass adds them where uvicorn parses (`uvicorn --http botscore.http.protocol:BotscoreProtocol`):

- a head (request line and headers) over `max_header_bytes`: 431, connection closed;
- a request not received whole `request_timeout` seconds after its first byte: 408 (the
  scoring route answers and records it when the head had arrived, this class when not);
- a connection idle for `timeout_keep_alive` seconds, before its first request too: closed;
- a scoring request arriving while `max_in_flight` requests of this worker are unanswered:
  answered at once by the app's `shed` (503, Retry-After, recorded), with no task or scope.

The bounds come from the app it serves (`BotscoreApp.limits`); another app gets the defaults.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from botscore.http.limits import TIMED_OUT, Limits

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
SWEEP_SECONDS = 0.25  # how often a worker checks its connections' deadlines: a 408 comes up to this late
_swept: set[int] = set()  # the server states (one per worker) whose connections a sweep already checks


def _refusal(status: int, code: str, message: str) -> bytes:
    body = json.dumps({"error": {"code": code, "message": message, "field": None}}).encode()
    return b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" % (
        status,
        _REASONS[status],
        len(body),
        body,
    )


class BotscoreProtocol(HttpToolsProtocol):
    """One client connection, bounded in head size, time and this worker's requests in flight."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits: Limits = getattr(self.app, "limits", None) or Limits()
        self._shed = getattr(self.app, "shed", None)
        self._reading_head = False
        self._head_bytes = 0
        self._began: float | None = None  # loop.time() at the first byte of the request being received
        self._discarding = False  # the request was shed: its body is read and dropped

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if id(self.server_state) not in _swept:
            _swept.add(id(self.server_state))
            self.loop.call_later(SWEEP_SECONDS, _sweep, self.loop, self.connections)
        # uvicorn times out idleness only after an answer; a connection that never sends is bounded too.
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def connection_lost(self, exc: Exception | None) -> None:
        self._began = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._reading_head and not self.transport.is_closing():
            self._head_bytes += len(data)  # all of this chunk was head: the head did not end in it
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(431, "request_header_too_large", f"request head over {self.limits.max_header_bytes} bytes")

    # -- parser callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head = True
        self._head_bytes = 0
        if self._began is None:
            self._began = self.loop.time()  # not a timer per request: one sweep a worker (a timer costs ~6 µs)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        if (
            self._shed is not None
            and self.limits.max_in_flight
            and len(self.tasks) >= self.limits.max_in_flight
            and (self.cycle is None or self.cycle.response_complete)  # not behind a pipelined request
        ):
            method = self.parser.get_method().decode("ascii")
            answer = self._shed(method, httptools.parse_url(self.url).path, self.headers)
            if answer is not None:
                self._discarding = True
                self.transport.write(answer)
                if not self.parser.should_keep_alive():
                    self.transport.close()
                return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._discarding:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._began = None
        if self._discarding:
            self._discarding = False
            self._unset_keepalive_if_required()
            if not self.transport.is_closing():
                self.timeout_keep_alive_task = self.loop.call_later(
                    self.timeout_keep_alive, self.timeout_keep_alive_handler
                )
            return
        super().on_message_complete()

    # -- the bounds ----------------------------------------------------------------------

    def check_deadline(self, now: float) -> None:
        """Answer 408 if the request being received is past BOTSCORE_REQUEST_TIMEOUT_SECONDS."""
        if self._began is not None and now - self._began > self.limits.request_timeout:
            self._timed_out()

    def _timed_out(self) -> None:
        self._began = None
        if self.transport.is_closing():
            return
        seconds = self.limits.request_timeout
        if self._reading_head or self.cycle is None or self.cycle.response_complete:
            self._refuse(408, "request_timeout", f"request not received whole within {seconds:g} s")
            return
        # The head arrived and the app is reading the body: end the body here and let the app answer
        # 408 (the scoring routes record it), then close, for the rest of the body may still come.
        self.scope[TIMED_OUT] = True  # type: ignore[literal-required]
        self.cycle.keep_alive = False
        self.cycle.more_body = False
        self.cycle.message_event.set()

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer before the app saw the request (it has no route yet), count it, close the connection."""
        self._began = None
        self.transport.write(_refusal(status, code, message))
        self.transport.close()
        refused = getattr(self.app, "refused", None)
        if refused is not None:
            refused(status)


def _sweep(loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
    """Check every connection of this worker against its request deadline, then again in SWEEP_SECONDS."""
    now = loop.time()
    for connection in list(connections):
        if isinstance(connection, BotscoreProtocol):
            connection.check_deadline(now)
    loop.call_later(SWEEP_SECONDS, _sweep, loop, connections)
