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

A POST to a scoring route's exact path is answered here, when no ASGI answer is pending on the
connection: the route opens the call from the head, decides with the body, and the answer goes
out through `answers.encode` (no task, scope or ASGI messages: most of what a request costs
uvicorn); under BOTSCORE_AUDIT_SYNC=always one task of the connection writes the answers in
order as their fsyncs complete. Anything else (other routes, query strings, Expect:
100-continue, pipelined behind an ASGI answer) is the app's, over ASGI, as under plain uvicorn.

What this class relies on in uvicorn beyond its public options is listed in `UVICORN_INTERNALS`,
and tests/unit/http/test_protocol.py names the attribute an upgrade of uvicorn changed.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import unquote

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from botscore.call import Answer, Call
from botscore.errors import error_bytes
from botscore.http.answers import encode, server_fields
from botscore.http.endpoints import Opened, ScoringRoute
from botscore.http.ids import new_request_id
from botscore.http.limits import TIMED_OUT, Limits

MAX_TRAILER_FIELDS = 64  # a request's trailer fields, read and dropped; 431 and the close past it
_CHECKED = frozenset((b"expect", b"authorization", b"transfer-encoding"))  # fields `on_header` looks into
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_FULL = error_bytes("overloaded", "the worker holds as many connections as it can; retry after the Retry-After seconds")
SWEEP_SECONDS = 0.25  # how often a worker checks its connections' deadlines: a 408 comes up to this late

# Every uvicorn name this module uses beyond the documented options: (owner, attribute).
UVICORN_INTERNALS: tuple[tuple[type, str], ...] = (
    (HttpToolsProtocol, "data_received"),
    (HttpToolsProtocol, "on_message_begin"),
    (HttpToolsProtocol, "on_header"),
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
    (ServerState, "default_headers"),  # the Date header uvicorn renews every second
    (ServerState, "total_requests"),
    # the request-response cycle of a request answered over ASGI
    (RequestResponseCycle, "response_complete"),
    (RequestResponseCycle, "keep_alive"),
    (RequestResponseCycle, "more_body"),
    (RequestResponseCycle, "message_event"),
    (RequestResponseCycle, "disconnected"),
)


@dataclass(frozen=True)
class ConnectionOptions:
    """What a connection is built with: its bounds, the routes it answers itself (by exact request
    target), what sheds a request past the in-flight bound, and what counts its own refusals."""

    limits: Limits
    routes: Mapping[bytes, ScoringRoute] = field(default_factory=dict)
    shed: Callable[[str, str, list[tuple[bytes, bytes]]], bytes | None] | None = None
    refused: Callable[[int], None] = lambda status: None
    # Told each connection's set of its worker's connections: the owner of the worker's schedule
    # runs `sweep` over it every SWEEP_SECONDS (it sees the same set again and again).
    watch: Callable[[set[Any]], None] = lambda connections: None


def bounded(options: ConnectionOptions) -> type[BotscoreProtocol]:
    """The protocol class for uvicorn's `http` option: BotscoreProtocol whose connections are built
    with `options` (a class, as uvicorn takes one and builds it with its own `Config`)."""
    return type("BoundedBotscoreProtocol", (BotscoreProtocol,), {"options": options})


# The overridden callbacks run on every request: they call the base class directly, not through
# super() (~1,500 instructions a call under callgrind).
_data_received = HttpToolsProtocol.data_received
_on_message_begin = HttpToolsProtocol.on_message_begin
_on_headers_complete = HttpToolsProtocol.on_headers_complete
_on_body = HttpToolsProtocol.on_body
_on_message_complete = HttpToolsProtocol.on_message_complete
_on_response_complete = HttpToolsProtocol.on_response_complete
_perf_counter = time.perf_counter


class _Served:
    """The server's own header fields as uvicorn last renewed them, and as lines (made once a second)."""

    fields: list[tuple[bytes, bytes]] | None = None
    lines = b""


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
        # True while the head being read began at the start of a read, so that the scan of each read
        # counts all of it; a head that begins after another request ended in the same read is
        # measured from its fields when complete (`_head_size`).
        self._head_exact = True
        self._fresh = True  # no request ended yet in the read being parsed
        self._fault: tuple[int, str, str] | None = None  # what the head's fields alone refuse
        self._authorized = False  # the head had an Authorization field
        self._codings: list[bytes] = []  # the head's transfer codings, in order
        self._trailers = 0  # trailer fields of the request being read (read, bounded, never kept)
        self._framing = 0  # bytes after the head that are neither body nor in the first read: chunk framing, trailers
        self._body_seen = 0  # body bytes parsed on this connection (to tell them from framing)
        self._began: float | None = None  # loop.time() at the first byte of the request being received
        self._quiet_since = 0.0  # loop.time() since which nothing was asked or answered
        self._stalled_since: float | None = None  # loop.time() since which the client reads no answer
        self._unanswered = 0  # of this connection's requests, the one being worked on (0 or 1)
        self._parked = 0  # the same, while its answer waits for the client to read (not counted)
        self._running: RequestResponseCycle | None = None  # the cycle answering over ASGI now
        self._last_word: bytes | None = None  # a refusal waiting for the answers before it
        # The scoring request being received and answered here (not over ASGI), if any.
        self._route: ScoringRoute | None = None
        self._opened: Opened | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        self._skipping = False  # the request being parsed is not read (behind a refusal or a close)
        # Answers written here that wait for an fsync, in request order, and the task that writes them.
        self._pending: deque[tuple[ScoringRoute, Call, Answer, bool]] = deque()
        self._writer: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.options.watch(self.connections)
        self._quiet_since = self.loop.time()  # uvicorn bounds idleness only after an answer; the sweep, always
        if self.limits.max_connections and len(self.connections) > self.limits.max_connections:
            self._make_room()

    def _make_room(self) -> None:
        """Past the worker's connection bound: the connection idle the longest is closed (it asks
        nothing, so nothing is lost), so that a new client, a health check first, gets in before
        the worker runs out of file descriptors; with none idle, this one is answered 503 and closed."""
        idle = [
            connection
            for connection in self.connections
            if isinstance(connection, BotscoreProtocol) and connection is not self and connection._idle()
        ]
        if idle:
            min(idle, key=lambda connection: connection._quiet_since).transport.close()
            return
        self.options.refused(503)
        self.transport.write(
            encode(Answer(503, _FULL, headers=((b"retry-after", b"1"),)), new_request_id(), b"", close=True)
        )
        self.transport.close()

    def _idle(self) -> bool:
        """Nothing asked and nothing owed: closing it loses nothing (RFC 9112 9.6)."""
        return (
            self._began is None
            and (self.cycle is None or self.cycle.response_complete)
            and not self._pending
            and self._last_word is None
            and not self.transport.is_closing()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._began = None
        self._route = self._opened = None  # a request whose client left: nothing was answered, nothing recorded
        _InFlight.count -= self._unanswered  # requests whose client left: they will not be answered
        self._unanswered = 0
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._began is None:
            self._began = self.loop.time()  # not a timer per request: one sweep a worker (a timer costs ~6 µs)
        self._fresh = True
        if not self._reading_head:
            self._read_after_head(data)
            return
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
        if not self._fresh and self._reading_head:
            self._tail = data[-3:]  # a head may have begun after another ended in this read: its end may be split

    def _read_after_head(self, data: bytes) -> None:
        """A read that begins in a body, its chunk framing or its trailers. The bytes of it that are
        not body count against the bound of a head when the request is still unfinished after it:
        httptools keeps a trailer field whole until it ends (growing it by `bytes +=`), so a trailer
        section that never ends must be cut by bytes, not by fields."""
        body_before = self._body_seen
        _data_received(self, data)
        if self._fresh and not self._reading_head:  # the same request, still after its head
            self._framing += len(data) - (self._body_seen - body_before)
            if self._framing > self.limits.max_header_bytes:
                bound = self.limits.max_header_bytes
                self._cut(431, "request_header_too_large", f"request trailers over {bound} bytes")

    def send_400_response(self, msg: str) -> None:
        """The parser refused the request: a 400 in the error shape, after the answers before it."""
        self._refuse(400, "bad_request", "invalid HTTP request: the parser could not read it")

    def pause_writing(self) -> None:
        self._stalled_since = self.loop.time()
        # An answer waiting for its client to read is not work: it stops counting in flight, so a
        # client that reads nothing holds its own connection (until the sweep drops it), nobody else's.
        _InFlight.count -= self._unanswered
        self._parked += self._unanswered
        self._unanswered = 0
        super().pause_writing()

    def resume_writing(self) -> None:
        self._stalled_since = None
        _InFlight.count += self._parked
        self._unanswered += self._parked
        self._parked = 0
        super().resume_writing()
        if (self.cycle is None or self.cycle.response_complete) and self._last_word is None and not self._pending:
            self.flow.resume_reading()  # paused while this client read none of its answers

    # -- parser callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        _on_message_begin(self)
        if self._began is None:  # it begins in the read in which the request before it ended
            self._began = self.loop.time()
        self._head_exact = self._fresh
        self._fault = None
        self._authorized = False
        self._codings = []
        self._trailers = 0
        self._framing = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        """A field of the head (uvicorn's own, plus the fields this class checks), or of the trailer
        section: those are counted and bounded, never added to the request's fields, for the
        request's key, media type, length, host and id come from its head only."""
        if not self._reading_head:
            self._trailer(name, value)
            return
        name = name.lower()
        if name in _CHECKED:
            self._check(name, value)
        self.headers.append((name, value))

    def _check(self, name: bytes, value: bytes) -> None:
        if name == b"expect":
            if value.lower() == b"100-continue":
                self.expect_100_continue = True
        elif name == b"authorization":
            if self._authorized:  # RFC 9110 11.6.2: one field, not a list; which one would be the key?
                self._fault = (400, "bad_request", "more than one Authorization field")
            self._authorized = True
        else:  # transfer-encoding, over every field of that name
            self._codings.extend(coding.strip().lower() for coding in value.split(b","))
            if self._codings[-1] != b"chunked":
                # RFC 9112 6.3: chunked not last, the body's length is unknown: 400, and the close.
                self._fault = (400, "bad_request", "Transfer-Encoding must end with chunked")
            elif len(self._codings) > 1:
                # RFC 9112 6.1: a coding the server does not understand (it would be served as if uncoded).
                self._fault = (501, "not_implemented", "only the chunked transfer coding is supported")
            else:
                self._fault = None if self._fault is None or self._fault[0] == 501 else self._fault

    def _trailer(self, name: bytes, value: bytes) -> None:
        self._trailers += 1
        if self._trailers > MAX_TRAILER_FIELDS:
            self._cut(431, "request_header_too_large", f"request trailers over {MAX_TRAILER_FIELDS} fields")

    def on_headers_complete(self) -> None:
        self._reading_head = False
        if self.transport.is_closing() or self._last_word is not None:
            self._skipping = True  # behind a refusal or a shed answer: nobody will read its answer
            return
        if not self._head_exact and self._head_size() > self.limits.max_header_bytes:
            self._skipping = True
            self._refuse(431, "request_header_too_large", f"request head over {self.limits.max_header_bytes} bytes")
            return
        if self._fault is not None:
            self._skipping = True
            self._refuse(*self._fault)
            return
        parser = self.parser
        if self.expect_100_continue and parser.get_http_version() != "1.1":
            self.expect_100_continue = False  # RFC 9110 10.1.1: an HTTP/1.0 server ignores it
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
        if route is not None and idle and parser.get_method() == b"POST":
            self._route = route
            self._opened = route.open("POST", self.headers, _perf_counter())
            self._chunks = []
            self._size = 0
            if self._opened.refusal is not None:  # decided by the head: answered now, the body is skipped
                self._answer(route, self._opened, None)
            elif self.expect_100_continue and not self._pending:  # (behind pending answers: no 100, the
                self.transport.write(_CONTINUE)  # client sends its body after its own wait)
            return
        if self._pending:
            # Over ASGI behind answers this connection still owes, it could be answered first: those
            # go out, then the connection closes, and this request is neither answered nor recorded.
            self._last_word = b""
            self._skipping = True
            return
        _on_headers_complete(self)
        if self.expect_100_continue:
            # The app may answer without asking for the body; the client then may never send it, and
            # what it sends next would be read as that body: the connection closes after the answer.
            self.cycle.keep_alive = False

    def on_body(self, body: bytes) -> None:
        self._body_seen += len(body)
        route = self._route
        if route is None:
            if not self._skipping:
                _on_body(self, body)
        elif self._opened is not None and self._size <= route.max_body_bytes:
            self._chunks.append(body)  # kept up to one chunk past the bound: enough to answer 413
            self._size += len(body)

    def on_message_complete(self) -> None:
        self._began = None
        self._reading_head = True
        self._fresh = False
        self._head_bytes = 0
        self._tail = b""
        if self._skipping:
            self._skipping = False
            return
        route = self._route
        if route is not None:
            opened = self._opened
            self._route = self._opened = None
            if opened is not None:
                self._answer(route, opened, b"".join(self._chunks))
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and not self._queued(cycle):
            self._started()
        _on_message_complete(self)

    def on_response_complete(self) -> None:
        if self._unanswered:
            self._unanswered -= 1
            _InFlight.count -= 1
        elif self._parked:
            self._parked -= 1
        following = self.pipeline[-1][0] if self.pipeline else None  # the request uvicorn starts next
        _on_response_complete(self)
        if following is not None:
            self._running = following
        self._quiet_since = self.loop.time()
        if following is not None and not following.more_body and not following.response_complete:
            self._started()  # received whole while queued: worked on from now
        if self._last_word is not None and not self.pipeline and self.cycle.response_complete and not self._pending:
            self._say_last_word()

    def _started(self) -> None:
        """A request of this connection is being worked on: counted in flight, unless its answer
        will only wait for a client that reads none (parked, see pause_writing)."""
        self._running = self.cycle if self._running is None or self._running.response_complete else self._running
        if self.flow.write_paused:
            self._parked += 1
        else:
            _InFlight.count += 1
            self._unanswered += 1

    def _queued(self, cycle: RequestResponseCycle) -> bool:
        return bool(self.pipeline) and self.pipeline[0][0] is cycle

    # -- answers written here --------------------------------------------------------------

    def _answer(self, route: ScoringRoute, opened: Opened, body: bytes | None, *, timed_out: bool = False) -> None:
        """Decide a scoring request and write its answer (closing after it when it must); an answer
        that waits for an fsync (BOTSCORE_AUDIT_SYNC=always), and any behind it, go out in order
        from one task of the connection."""
        self._opened = None  # answered: the rest of its body, if any, is skipped
        answer = route.answer(opened, body, timed_out=timed_out)
        # An Expect request refused before its body: the client may never send it (RFC 9110 10.1.1).
        close = timed_out or not self.parser.should_keep_alive() or (body is None and self.expect_100_continue)
        if not self._pending and not (answer.recorded and route.settles):
            self._write(route, opened.call, answer, close)
            return
        self._pending.append((route, opened.call, answer, close))
        _InFlight.count += 1  # worked on until its record is on disk
        self.flow.pause_reading()  # one client's pipelined requests wait for its answers
        if self._writer is None:
            self._writer = self.loop.create_task(self._write_pending())
            self.tasks.add(self._writer)  # uvicorn's graceful shutdown waits for it
            self._writer.add_done_callback(self.tasks.discard)

    async def _write_pending(self) -> None:
        pending = self._pending
        try:
            while pending:
                route, call, answer, close = pending[0]
                try:
                    if answer.recorded and route.settles:
                        answer = await route.settle(call, answer)
                finally:
                    pending.popleft()
                    _InFlight.count -= 1
                if not self.transport.is_closing():  # else its client left: not sent, nothing more recorded
                    self._write(route, call, answer, close)
        finally:
            self._writer = None
        if self._last_word is not None and (self.cycle is None or self.cycle.response_complete):
            self._say_last_word()
        elif self._stalled_since is None:
            self.flow.resume_reading()

    def _write(self, route: ScoringRoute, call: Call, answer: Answer, close: bool) -> None:
        self.transport.write(encode(answer, call.id, call.scorer.version_bytes, close=close, server=self._server()))
        route.noted(call, answer)
        self.server_state.total_requests += 1
        self._quiet_since = self.loop.time()
        if close:
            self.transport.close()
        elif self.flow.write_paused:
            self.flow.pause_reading()  # a client that reads no answers is not read either

    def _server(self) -> bytes:
        """The server's header lines (Date), made again when uvicorn renews them (once a second)."""
        fields = self.server_state.default_headers
        if fields is not _Served.fields:
            _Served.fields, _Served.lines = fields, server_fields(fields)
        return _Served.lines

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
        self._skipping = True  # its body is not read
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
        self._last_word = encode(answer, new_request_id(), b"", close=True, server=self._server())
        self.options.refused(status)
        if (self.cycle is None or self.cycle.response_complete) and not self.pipeline and not self._pending:
            self._say_last_word()
        else:
            self.flow.pause_reading()

    def _head_size(self) -> int:
        """The head's size from its parsed parts (a head that began inside a read is not scanned whole)."""
        size = len(self.url) + 16 + len(self.parser.get_method())  # request line, final CRLF
        for name, value in self.headers:
            size += len(name) + len(value) + 4
        return size

    def _cut(self, status: int, code: str, message: str) -> None:
        """A request that broke a bound in the middle of its message: refused at once, and the
        connection closed; answers still owed on it are abandoned (its client broke the bound)."""
        self._began = None
        self._skipping = True
        self._route = self._opened = None
        self.pipeline.clear()
        for cycle in (self._running, self.cycle):
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
        if self._last_word is None and not self.transport.is_closing():
            self.options.refused(status)
            answer = Answer(status, error_bytes(code, message))
            self.transport.write(encode(answer, new_request_id(), b"", close=True, server=self._server()))
        self._last_word = b""
        self.transport.close()

    def _say_last_word(self) -> None:
        assert self._last_word is not None
        if self._last_word:
            self.transport.write(self._last_word)
        self.transport.close()

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: answers still owed here go out first, then the close."""
        if self._pending:
            if self._last_word is None:
                self._last_word = b""
            return
        super().shutdown()

    # -- the bounds ----------------------------------------------------------------------

    def check_deadlines(self, now: float) -> None:
        """The request deadline (408), the unread-answer bound and the idle bound, at one sweep."""
        if self._began is not None:
            if now - self._began > self.limits.request_timeout:
                self._timed_out()
        elif self._stalled_since is not None:
            if now - self._stalled_since > self.limits.request_timeout:
                self._drop()
        elif (
            now - self._quiet_since > self.timeout_keep_alive
            and (self.cycle is None or self.cycle.response_complete)
            and not self.transport.is_closing()
        ):
            self.transport.close()

    def _drop(self) -> None:
        """Close a connection whose client reads none of its answers: the answer being sent and the
        queued requests are abandoned (uvicorn marks only the newest cycle disconnected)."""
        for cycle in (self._running, self.cycle):
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
        self.transport.abort()

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


def sweep(connections: set[Any]) -> None:
    """Check every connection of a worker against its deadlines: one periodic job a worker (the
    service's schedule, every SWEEP_SECONDS), not a timer per request (a timer costs ~6 µs)."""
    now = asyncio.get_running_loop().time()
    for connection in list(connections):
        if isinstance(connection, BotscoreProtocol):
            try:
                connection.check_deadlines(now)
            except Exception:  # one connection's failure must not end the deadlines of all
                connection.transport.abort()
