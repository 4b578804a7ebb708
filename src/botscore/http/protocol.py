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
- a scoring request arriving while `max_in_flight` requests of this worker are received and
  unanswered: answered at once by the app's `shed` (503, Retry-After, recorded), with no task
  or scope, and the connection closed.

The bounds come from the app it serves (`BotscoreApp.limits`); another app gets the defaults.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import unquote

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


class _Shed:
    """Stands for the cycle of a request that was shed: answered, so uvicorn skips its body."""

    response_complete = True
    message_event = asyncio.Event()  # uvicorn's connection_lost sets it; nobody waits on it


_SHED: Any = _Shed()

# The overridden callbacks run on every request: they call the base class directly, not through
# super() (~1,500 instructions a call under callgrind), and the ones not needed are not overridden.
_data_received = HttpToolsProtocol.data_received
_on_headers_complete = HttpToolsProtocol.on_headers_complete
_on_message_complete = HttpToolsProtocol.on_message_complete
_on_response_complete = HttpToolsProtocol.on_response_complete


class _InFlight:
    """Requests this worker (this process) has received whole and not answered yet. Not uvicorn's
    `len(server_state.tasks)`: a task leaves that set a loop iteration after its answer, and the
    I/O of that next iteration runs first, so under load it counts hundreds of answered requests.
    A request counts once its body is in: a client sending slowly holds its own connection only
    (until BOTSCORE_REQUEST_TIMEOUT_SECONDS), not a place that would shed everybody else."""

    count = 0


def _served_app(app: Any) -> Any:
    """The botscore app behind uvicorn's wrappers (ProxyHeadersMiddleware, MessageLoggerMiddleware)."""
    while not hasattr(app, "limits") and hasattr(app, "app"):
        app = app.app
    return app


class BotscoreProtocol(HttpToolsProtocol):
    """One client connection, bounded in head size, time and this worker's requests in flight."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        served = _served_app(self.app)
        self.limits: Limits = getattr(served, "limits", None) or Limits()
        self._shed = getattr(served, "shed", None)
        self._refused = getattr(served, "refused", None)
        self._in_flight_bound = self.limits.max_in_flight if self._shed is not None else 0  # 0: none
        self._reading_head = True  # the next bytes are a request head
        self._head_bytes = 0
        self._events = 0  # heads and messages completed: data_received tells if one ended in a chunk
        self._began: float | None = None  # loop.time() at the first byte of the request being received
        self._unanswered = 0  # of this connection's requests (more than one when pipelined)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if id(self.server_state) not in _swept:
            _swept.add(id(self.server_state))
            self.loop.call_later(SWEEP_SECONDS, _sweep, self.loop, self.connections)
        # uvicorn times out idleness only after an answer; a connection that never sends is bounded too.
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def connection_lost(self, exc: Exception | None) -> None:
        self._began = None
        _InFlight.count -= self._unanswered  # requests whose client left: they will not be answered
        self._unanswered = 0
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._began is None:
            self._began = self.loop.time()  # not a timer per request: one sweep a worker (a timer costs ~6 µs)
        events = self._events
        _data_received(self, data)
        if self._events == events and self._reading_head and not self.transport.is_closing():
            # Neither a head nor a message ended in this chunk, and a head is being read: the chunk
            # was all head. (A head that ends in the chunk it overflows in is let through: the
            # bound holds to within one read, which is what keeps a worker's memory bounded.)
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(431, "request_header_too_large", f"request head over {self.limits.max_header_bytes} bytes")

    # -- parser callbacks ---------------------------------------------------------------

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._events += 1
        if self.transport.is_closing():
            return  # a pipelined head behind a refusal or a shed answer: nobody will read its answer
        if (
            self._in_flight_bound
            and _InFlight.count >= self._in_flight_bound
            and self._shed is not None
            and (self.cycle is None or self.cycle.response_complete)  # not behind a pipelined request
        ):
            path = httptools.parse_url(self.url).path.decode("latin-1")
            answer = self._shed(
                self.parser.get_method().decode("ascii"), unquote(path) if "%" in path else path, self.headers
            )
            if answer is not None:
                # Answered, and closed: what follows on the connection (its body, or pipelined
                # requests) is not read, so a shed costs one write, and a client that sends the body
                # after all (Expect: 100-continue) cannot have it taken for its next request.
                self.cycle = _SHED  # uvicorn's on_body and on_message_complete skip the rest
                self.transport.write(answer)
                self.transport.close()
                return
        _on_headers_complete(self)

    def on_message_complete(self) -> None:
        self._began = None
        self._reading_head = True
        self._head_bytes = 0
        self._events += 1
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:  # received whole, not answered yet
            _InFlight.count += 1
            self._unanswered += 1
        _on_message_complete(self)

    def on_response_complete(self) -> None:
        if self._unanswered:
            self._unanswered -= 1
            _InFlight.count -= 1
        _on_response_complete(self)

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
        pending = self.cycle is not None and not self.cycle.response_complete
        if self._reading_head and pending:
            # A pipelined head behind an answer still being made: that answer goes out, then the close.
            self.cycle.keep_alive = False
            return
        if self._reading_head:
            self._refuse(408, "request_timeout", f"request not received whole within {seconds:g} s")
            return
        if not pending:
            self.transport.close()  # answered already (a 401 or 413 before its body): the rest is not wanted
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
        if self._refused is not None:
            self._refused(status)


def _sweep(loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
    """Check every connection of this worker against its request deadline, then again in SWEEP_SECONDS."""
    now = loop.time()
    try:
        for connection in list(connections):
            if isinstance(connection, BotscoreProtocol):
                connection.check_deadline(now)
    finally:  # one connection's failure must not end the deadlines of all
        loop.call_later(SWEEP_SECONDS, _sweep, loop, connections)
