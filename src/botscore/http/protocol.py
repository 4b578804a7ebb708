"""The HTTP/1.1 connection: uvicorn's httptools protocol, with the bounds it lacks, answering the
scoring routes itself.

uvicorn (0.54, pinned) bounds neither the size of a request head nor the time a client takes
to send a request, nor the time an answer waits for a client that does not read; and an app
cannot shed load cheaply, for by the time it runs a request has cost a task and a scope. This
subclass adds, with the options it is built with (`ConnectionOptions`, handed by the
composition root through `bounded`, as uvicorn hands its own `Config`):

- a head (request line and headers) over `max_header_bytes`, counted over every read: 431;
- a request not received whole `request_timeout` seconds after its first byte: 408 (the
  scoring route answers and records it when the head had arrived, this class when not);
- an answer the client does not read for `request_timeout` seconds: the connection is dropped;
- a connection idle for `timeout_keep_alive` seconds, before its first request too: closed;
- a scoring request arriving while `max_in_flight` requests of this worker are being worked on:
  answered at once by `shed` (503, Retry-After, recorded), with no task or scope, and closed;
- `Connection: Upgrade` with a body: 400 and closed (the parser stops at an upgrade, so the
  body would be read as a request of its own); without a body, answered, then closed;
- a request the parser refuses, behind answers not yet sent: its 400 goes after them.

A POST to a scoring route's exact path is answered here, when no other answer is pending on
the connection: the route opens the call from the head, decides with the body, and the answer
goes out through `answers.encode` (no task, scope or ASGI messages: most of what a request
costs uvicorn). Anything else (other routes, query strings, Expect: 100-continue, pipelined
behind an ASGI answer, BOTSCORE_AUDIT_SYNC=always) is the app's, over ASGI, as under plain uvicorn.

What this class relies on in uvicorn beyond its public options is listed in `UVICORN_INTERNALS`,
and tests/unit/http/test_protocol.py names the attribute an upgrade of uvicorn changed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import unquote

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from botscore.call import Answer
from botscore.errors import error_bytes
from botscore.http.answers import encode
from botscore.http.endpoints import Opened, ScoringRoute
from botscore.http.ids import new_request_id
from botscore.http.limits import TIMED_OUT, Limits

SWEEP_SECONDS = 0.25  # how often a worker checks its connections' deadlines: a 408 comes up to this late

# Every uvicorn name this module uses beyond the documented options: (owner, attribute).
UVICORN_INTERNALS: tuple[tuple[type, str], ...] = (
    (HttpToolsProtocol, "data_received"),
    (HttpToolsProtocol, "on_headers_complete"),
    (HttpToolsProtocol, "on_body"),
    (HttpToolsProtocol, "on_message_complete"),
    (HttpToolsProtocol, "on_response_complete"),
    (HttpToolsProtocol, "send_400_response"),
    (HttpToolsProtocol, "pause_writing"),
    (HttpToolsProtocol, "resume_writing"),
    (HttpToolsProtocol, "timeout_keep_alive_handler"),
    # per-connection state, set in __init__ / connection_made / the parser callbacks
    (HttpToolsProtocol, "parser"),
    (HttpToolsProtocol, "url"),
    (HttpToolsProtocol, "headers"),
    (HttpToolsProtocol, "scope"),
    (HttpToolsProtocol, "cycle"),
    (HttpToolsProtocol, "pipeline"),
    (HttpToolsProtocol, "flow"),
    (HttpToolsProtocol, "transport"),
    (HttpToolsProtocol, "loop"),
    (HttpToolsProtocol, "connections"),
    (HttpToolsProtocol, "server_state"),
    (HttpToolsProtocol, "expect_100_continue"),
    (HttpToolsProtocol, "timeout_keep_alive"),
    # the request-response cycle of a request answered over ASGI
    (RequestResponseCycle, "response_complete"),
    (RequestResponseCycle, "keep_alive"),
    (RequestResponseCycle, "more_body"),
    (RequestResponseCycle, "message_event"),
)


@dataclass(frozen=True)
class ConnectionOptions:
    """What a connection is built with: its bounds, the routes it answers itself (by exact request
    target), what sheds a request past the in-flight bound, and what counts its own refusals."""

    limits: Limits
    routes: Mapping[bytes, ScoringRoute] = field(default_factory=dict)
    shed: Callable[[str, str, list[tuple[bytes, bytes]]], bytes | None] | None = None
    refused: Callable[[int], None] = lambda status: None


def bounded(options: ConnectionOptions) -> type[BotscoreProtocol]:
    """The protocol class for uvicorn's `http` option: BotscoreProtocol whose connections are built
    with `options` (a class, as uvicorn takes one and builds it with its own `Config`)."""
    return type("BoundedBotscoreProtocol", (BotscoreProtocol,), {"options": options})


class _Shed:
    """Stands for the cycle of a request that was shed: answered, so uvicorn skips its body."""

    response_complete = True
    message_event = asyncio.Event()  # uvicorn's connection_lost sets it; nobody waits on it


_SHED: Any = _Shed()

# The overridden callbacks run on every request: they call the base class directly, not through
# super() (~1,500 instructions a call under callgrind).
_data_received = HttpToolsProtocol.data_received
_on_headers_complete = HttpToolsProtocol.on_headers_complete
_on_body = HttpToolsProtocol.on_body
_on_message_complete = HttpToolsProtocol.on_message_complete
_on_response_complete = HttpToolsProtocol.on_response_complete
_perf_counter = time.perf_counter


class _InFlight:
    """Requests this worker (this process) is working on: received whole and being answered.
    Not one queued behind another answer on its connection (it is not being worked on), and not
    uvicorn's `len(server_state.tasks)`, which keeps answered requests for a loop iteration."""

    count = 0


class BotscoreProtocol(HttpToolsProtocol):
    """One client connection, bounded in head size, time and this worker's requests in flight."""

    options: ClassVar[ConnectionOptions]  # set by `bounded`

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = self.options
        self.limits = options.limits
        self._routes = options.routes
        self._in_flight_bound = options.limits.max_in_flight if options.shed is not None else 0  # 0: none
        self._reading_head = True  # the next bytes are a request head
        self._head_bytes = 0
        self._tail = b""  # the last bytes of a read that ended inside a head (a split \r\n\r\n)
        self._began: float | None = None  # loop.time() at the first byte of the request being received
        self._quiet_since = 0.0  # loop.time() since which nothing was asked or answered
        self._stalled_since: float | None = None  # loop.time() since which the client reads no answer
        self._unanswered = 0  # of this connection's requests, the one being worked on (0 or 1)
        self._last_word: bytes | None = None  # a refusal waiting for the answers before it
        # The scoring request being received and answered here (not over ASGI), if any.
        self._route: ScoringRoute | None = None
        self._opened: Opened | None = None
        self._chunks: list[bytes] = []
        self._size = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        _Sweep.watch(self.loop, self.connections)
        self._quiet_since = self.loop.time()  # uvicorn bounds idleness only after an answer; the sweep, always

    def connection_lost(self, exc: Exception | None) -> None:
        self._began = None
        self._route = self._opened = None  # a request whose client left: nothing was answered, nothing recorded
        _InFlight.count -= self._unanswered  # requests whose client left: they will not be answered
        self._unanswered = 0
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._began is None:
            self._began = self.loop.time()  # not a timer per request: one sweep a worker (a timer costs ~6 µs)
        if self._reading_head:
            # The head's bytes, over every read: up to its end when it ends in this read, else all of it.
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                counted = end + 4
            elif self._tail and (split := (self._tail + data[:3]).find(b"\r\n\r\n")) >= 0:
                counted = split + 4 - len(self._tail)  # the head's end began in the previous read
            else:
                counted = len(data)
                self._tail = data[-3:]
            self._head_bytes += counted
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(431, "request_header_too_large", f"request head over {self.limits.max_header_bytes} bytes")
                return
        _data_received(self, data)

    def send_400_response(self, msg: str) -> None:
        """The parser refused the request: a 400 in the error shape, after the answers before it."""
        self._refuse(400, "bad_request", "invalid HTTP request: the parser could not read it")

    def pause_writing(self) -> None:
        self._stalled_since = self.loop.time()
        super().pause_writing()

    def resume_writing(self) -> None:
        self._stalled_since = None
        super().resume_writing()
        if (self.cycle is None or self.cycle.response_complete) and self._last_word is None:
            self.flow.resume_reading()  # paused while this client read none of its answers

    # -- parser callbacks ---------------------------------------------------------------

    def on_headers_complete(self) -> None:
        self._reading_head = False
        if self.transport.is_closing() or self._last_word is not None:
            return  # behind a refusal or a shed answer: nobody will read its answer
        parser = self.parser
        if parser.should_upgrade():
            if any(name in (b"content-length", b"transfer-encoding") for name, _ in self.headers):
                self._refuse(400, "upgrade_not_supported", "Connection: Upgrade is not supported with a body")
                return
            _on_headers_complete(self)
            self.cycle.keep_alive = False  # the parser stops at an upgrade: nothing after it can be read safely
            return
        idle = self.cycle is None or self.cycle.response_complete
        if self._in_flight_bound and _InFlight.count >= self._in_flight_bound and idle and self._shed():
            return
        route = self._routes.get(self.url)
        if route is not None and idle and not self.expect_100_continue and parser.get_method() == b"POST":
            self._route = route
            self._opened = route.open("POST", self.headers, _perf_counter())
            self._chunks = []
            self._size = 0
            if self._opened.refusal is not None:  # decided by the head: answered now, the body is skipped
                self._answer(route, self._opened, None)
            return
        _on_headers_complete(self)

    def on_body(self, body: bytes) -> None:
        route = self._route
        if route is None:
            _on_body(self, body)
        elif self._opened is not None and self._size <= route.max_body_bytes:
            self._chunks.append(body)  # kept up to one chunk past the bound: enough to answer 413
            self._size += len(body)

    def on_message_complete(self) -> None:
        self._began = None
        self._reading_head = True
        self._head_bytes = 0
        self._tail = b""
        route = self._route
        if route is not None:
            opened = self._opened
            self._route = self._opened = None
            if opened is not None:
                self._answer(route, opened, b"".join(self._chunks))
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and not self._queued(cycle):
            _InFlight.count += 1
            self._unanswered += 1
        _on_message_complete(self)

    def on_response_complete(self) -> None:
        if self._unanswered:
            self._unanswered -= 1
            _InFlight.count -= 1
        following = self.pipeline[-1][0] if self.pipeline else None  # the request uvicorn starts next
        _on_response_complete(self)
        self._quiet_since = self.loop.time()
        if following is not None and not following.more_body and not following.response_complete:
            _InFlight.count += 1  # received whole while queued: worked on from now
            self._unanswered += 1
        if self._last_word is not None and not self.pipeline and self.cycle.response_complete:
            self._say_last_word()

    def _queued(self, cycle: RequestResponseCycle) -> bool:
        return bool(self.pipeline) and self.pipeline[0][0] is cycle

    # -- answers written here --------------------------------------------------------------

    def _answer(self, route: ScoringRoute, opened: Opened, body: bytes | None, *, timed_out: bool = False) -> None:
        """Decide a scoring request and write its answer (closing after it when it must)."""
        self._opened = None  # answered: the rest of its body, if any, is skipped
        answer = route.answer(opened, body, timed_out=timed_out)
        call = opened.call
        close = timed_out or not self.parser.should_keep_alive()
        self.transport.write(encode(answer, call.id, call.scorer.version_bytes, close=close))
        route.noted(call, answer)
        self.server_state.total_requests += 1
        self._quiet_since = self.loop.time()
        if close:
            self.transport.close()
        elif self.flow.write_paused:
            self.flow.pause_reading()  # a client that reads no answers is not read either

    def _shed(self) -> bool:
        """Answer a scoring request past the in-flight bound with a 503, and close; False: not a scoring request."""
        assert self.options.shed is not None
        path = httptools.parse_url(self.url).path.decode("latin-1")
        answer = self.options.shed(
            self.parser.get_method().decode("ascii"), unquote(path) if "%" in path else path, self.headers
        )
        if answer is None:
            return False
        # Answered, and closed: what follows on the connection (its body, or pipelined requests) is
        # not read, so a shed costs one write, and a client that sends the body after all (Expect:
        # 100-continue) cannot have it taken for its next request.
        self.cycle = _SHED  # uvicorn's on_body and on_message_complete skip the rest
        self.transport.write(answer)
        self.transport.close()
        return True

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer before any route saw the request, count it, close the connection; after the
        answers still owed on this connection, if any (answers leave in request order)."""
        self._began = None
        if self._last_word is not None or self.transport.is_closing():
            return
        answer = Answer(status, error_bytes(code, message))
        self._last_word = encode(answer, new_request_id(), b"", close=True)
        self.options.refused(status)
        if (self.cycle is None or self.cycle.response_complete) and not self.pipeline:
            self._say_last_word()
        else:
            self.flow.pause_reading()

    def _say_last_word(self) -> None:
        assert self._last_word is not None
        self.transport.write(self._last_word)
        self.transport.close()

    # -- the bounds ----------------------------------------------------------------------

    def check_deadlines(self, now: float) -> None:
        """The request deadline (408), the unread-answer bound and the idle bound, at one sweep."""
        if self._began is not None:
            if now - self._began > self.limits.request_timeout:
                self._timed_out()
        elif self._stalled_since is not None:
            if now - self._stalled_since > self.limits.request_timeout:
                self.transport.abort()  # its answers wait for a client that reads none: dropped
        elif (
            now - self._quiet_since > self.timeout_keep_alive
            and (self.cycle is None or self.cycle.response_complete)
            and not self.transport.is_closing()
        ):
            self.transport.close()

    def _timed_out(self) -> None:
        self._began = None
        if self.transport.is_closing():
            return
        seconds = self.limits.request_timeout
        route, opened = self._route, self._opened
        if route is not None:
            self._route = None
            if opened is None:
                self.transport.close()  # answered already (a 401 or 413 before its body): the rest is not wanted
            else:
                self._answer(route, opened, b"".join(self._chunks), timed_out=True)
            return
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


class _Sweep:
    """One timer a worker checks every connection's deadlines (a timer per request costs ~6 µs)."""

    _watched: ClassVar[set[int]] = set()  # the connection sets (one per worker's server) a sweep already checks

    @classmethod
    def watch(cls, loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        if id(connections) not in cls._watched:
            cls._watched.add(id(connections))
            loop.call_later(SWEEP_SECONDS, cls._sweep, loop, connections)

    @classmethod
    def _sweep(cls, loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        now = loop.time()
        try:
            for connection in list(connections):
                if isinstance(connection, BotscoreProtocol):
                    connection.check_deadlines(now)
        finally:  # one connection's failure must not end the deadlines of all
            loop.call_later(SWEEP_SECONDS, cls._sweep, loop, connections)
