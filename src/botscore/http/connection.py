"""One client connection: reading, the bounds of a head and its trailers, deadlines, the worker's
connection count, and the refusals that end a connection.

uvicorn (pinned) bounds neither a request head's size, nor the time a client takes to send a request
or leaves an answer unread, nor a worker's connections; httptools hands it trailer fields as header
fields. `Connection` adds, with its options (`ConnectionOptions`, from the composition root):

- a head over `max_header_bytes`, counted from where its request starts (also inside a read in
  which another request ended): 431 and the close;
- trailer fields: read and dropped, never a request's field; more than MAX_TRAILER_FIELDS, or
  bytes after a head that are not body (chunk framing, trailers) over `max_header_bytes`: 431;
- a request not received whole `request_timeout` seconds after its first byte: 408;
- an answer the client does not read for `request_timeout` seconds: the connection is dropped;
- a connection idle for `timeout_keep_alive` seconds, before its first request too: closed;
- past `max_connections` connections of the worker: the longest idle one is closed (else 503);
- two Authorization fields (400), a transfer coding besides chunked (501, or 400 when chunked is
  not the last), Expect: 100-continue over HTTP/1.0 (ignored, RFC 9110 10.1.1).

Refusals leave after the answers still owed (in request order), then the connection closes: its
`Ending`. Routing, shedding and answering are `BotscoreProtocol`'s (protocol.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from botscore.call import Answer
from botscore.errors import error_bytes
from botscore.http.answers import encode
from botscore.http.cycle import Answers, Ending, Reading, ScoringCycle, Stage
from botscore.http.head import Head, Refusal
from botscore.http.ids import new_request_id
from botscore.http.options import ConnectionOptions

_on_message_begin = HttpToolsProtocol.on_message_begin
_on_headers_complete = HttpToolsProtocol.on_headers_complete
_CHECKED = frozenset((b"expect", b"authorization", b"transfer-encoding"))  # fields `on_header` looks into
_FULL = error_bytes("overloaded", "the worker holds as many connections as it can; retry after the Retry-After seconds")

_HEAD, _BODY, _SKIP, _OPEN, _NONE = Reading.HEAD, Reading.BODY, Reading.SKIP, Ending.OPEN, Stage.NONE


class Connection(HttpToolsProtocol):
    """A client connection bounded in head, trailers, time and the worker's connections."""

    options: ConnectionOptions  # set on the class by `protocol.bounded`

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = self.options
        self.limits = options.limits
        self.in_flight = options.in_flight
        self._reading = _HEAD
        self._head = Head(self.limits.max_header_bytes)
        self._served = options.served
        self._fresh = True  # no request ended yet in the read being parsed
        self._body_seen = 0  # body bytes parsed on this connection (to tell them from framing)
        self._receiving = False  # a request is being received: its deadline runs from `_began`
        self._began = 0.0  # loop.time() at the first byte of the request being received
        self._quiet_since = 0.0  # loop.time() since which nothing was asked or answered
        self._stalled_at = 0.0  # loop.time() when the client stopped reading answers (while flow.write_paused)
        self._unanswered = 0  # of this connection's requests, the one being worked on (0 or 1)
        self._parked = 0  # the same, while its answer waits for the client to read (not counted)
        self._running: RequestResponseCycle | None = None  # the cycle answering over ASGI now
        self._ending = _OPEN
        self._refusal = b""  # with Ending.REFUSE: the answer written before the close
        self._scoring = ScoringCycle()  # the request being answered here, not over ASGI
        self._answers: Answers  # the answers this connection owes: made by BotscoreProtocol, which writes them

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
        idle = [each for each in self.connections if isinstance(each, Connection) and each is not self and each.idle()]
        if idle:
            min(idle, key=lambda each: each._quiet_since).transport.close()
            return
        self.options.refused(503)
        answer = Answer(503, _FULL, headers=((b"retry-after", b"1"),))
        self.transport.write(encode(answer, new_request_id(), b"", close=True))
        self.transport.close()

    def idle(self) -> bool:
        """Nothing asked and nothing owed: closing it loses nothing (RFC 9112 9.6)."""
        return (
            not self._receiving
            and (self.cycle is None or self.cycle.response_complete)
            and not self._answers
            and self._ending is _OPEN
            and not self.transport.is_closing()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._receiving = False
        self._scoring.stage = _NONE  # a request whose client left: nothing was answered, nothing recorded
        self.in_flight.count -= self._unanswered  # requests whose client left: they will not be answered
        self._unanswered = 0
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """uvicorn's, bounded: a read from a head counted to the head's end; one after it, by what is not body."""
        if not self._receiving:
            self._receiving, self._began = True, self.loop.time()  # no timer a request: one sweep a worker
        self._fresh = True
        after_head = self._reading is not _HEAD
        body_before = self._body_seen
        if not after_head:
            head = self._head
            end = data.find(b"\r\n\r\n")
            if end < 0 or head.bytes + end + 4 > head.max_bytes:  # else the head ends in this read, within its bound
                too_large = head.scan(data)
                if too_large is not None:
                    self.refuse(*too_large)
                    return
        if self.timeout_keep_alive_task is not None:  # uvicorn's, set after an answer over ASGI
            self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")  # as uvicorn; answered in the error shape
            self.refuse(400, "bad_request", "invalid HTTP request: the parser could not read it")
            return
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()  # no WebSocket (ws="none"): on_headers_complete answered it
        if not self._fresh:  # a request ended in this read
            if self._receiving and self._reading is _HEAD:
                self._head.tail = data[-3:]  # a head began after it in this read: its end may be split
        elif after_head and self._reading is not _HEAD:  # the same request, still after its head
            too_large = self._head.after(len(data) - (self._body_seen - body_before))
            if too_large is not None:
                self._cut(*too_large)

    def pause_writing(self) -> None:
        self._stalled_at = self.loop.time()
        # An answer waiting for its client to read is not work: it stops counting in flight, so a
        # client that reads nothing holds its own connection (until the sweep drops it), nobody else's.
        self.in_flight.count -= self._unanswered
        self._parked += self._unanswered
        self._unanswered = 0
        super().pause_writing()

    def resume_writing(self) -> None:
        self.in_flight.count += self._parked
        self._unanswered += self._parked
        self._parked = 0
        super().resume_writing()
        if (self.cycle is None or self.cycle.response_complete) and self._ending is _OPEN and not self._answers:
            self.flow.resume_reading()  # paused while this client read none of its answers

    def on_message_begin(self) -> None:
        # uvicorn's, less the ASGI scope: a request the connection answers itself needs none, and one
        # handed to the app gets it then (`_to_app`).
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        if not self._receiving:  # it begins in the read in which the request before it ended
            self._receiving, self._began = True, self.loop.time()
            if not self._fresh:
                self._head.began_inside()

    def _to_app(self) -> None:
        """Hand the request to the app over ASGI: uvicorn's scope for it, as uvicorn makes it when a request
        begins (deferred to here: on_message_begin), then uvicorn's on_headers_complete."""
        url, headers, expect_100_continue = self.url, self.headers, self.expect_100_continue
        _on_message_begin(self)
        self.url, self.headers, self.expect_100_continue = url, headers, expect_100_continue
        self.scope["headers"] = headers
        _on_headers_complete(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        """A field of the head, or of the trailer section: trailer fields are counted and dropped, for
        a request's key, media type, length, host and id come from its head only."""
        if self._reading is not _HEAD:
            too_many = self._head.trailer()
            if too_many is not None:
                self._cut(*too_many)
            return
        name = name.lower()
        if name in _CHECKED:
            if name == b"expect":
                self.expect_100_continue = value.lower() == b"100-continue" or self.expect_100_continue
            else:
                self._head.check(name, value)
        self.headers.append((name, value))

    def head_refusal(self) -> Refusal | None:
        """What the complete head alone refuses (head.py); Expect over HTTP/1.0 is ignored (RFC 9110 10.1.1)."""
        if self.expect_100_continue and self.parser.get_http_version() != "1.1":
            self.expect_100_continue = False
        head = self._head
        if head.plain:
            return None
        return head.refusal(self.url, self.parser.get_method(), self.headers)

    def refuse(self, status: int, code: str, message: str) -> None:
        """Answer before any route saw the request, count it, close the connection; after the answers
        still owed on this connection, if any (answers leave in request order)."""
        self._receiving = False
        if self._ending is not _OPEN or self.transport.is_closing():
            return
        answer = Answer(status, error_bytes(code, message))
        self._ending, self._refusal = (
            Ending.REFUSE,
            encode(answer, new_request_id(), b"", close=True, server=self.served()),
        )
        self.options.refused(status)
        if (self.cycle is None or self.cycle.response_complete) and not self.pipeline and not self._answers:
            self.end()
        else:
            self.flow.pause_reading()

    def _cut(self, status: int, code: str, message: str) -> None:
        """A request that broke a bound inside its message: refused at once and the connection closed;
        answers still owed on it are abandoned (its client broke the bound)."""
        self._receiving = False
        self._reading = _SKIP
        self._scoring.stage = _NONE
        self.pipeline.clear()
        self._abandon()
        if self._ending is _OPEN and not self.transport.is_closing():
            self.options.refused(status)
            answer = Answer(status, error_bytes(code, message))
            self.transport.write(encode(answer, new_request_id(), b"", close=True, server=self.served()))
        self._ending = Ending.CLOSE
        self.transport.close()

    def end(self) -> None:
        """The answers owed are out: the refusal, if any, then the close."""
        if self._ending is Ending.REFUSE:
            self.transport.write(self._refusal)
        self.transport.close()

    def served(self) -> bytes:
        """The server's header lines (Date), made again when uvicorn renews them (once a second)."""
        served, fields = self._served, self.server_state.default_headers
        if fields is not served.fields:
            served.renew(fields)
        return served.lines

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: answers still owed here go out first, then the close."""
        if self._answers:
            if self._ending is _OPEN:
                self._ending = Ending.CLOSE
            return
        super().shutdown()

    def check_deadlines(self, now: float) -> None:
        """The request deadline (408), the unread-answer bound and the idle bound, at one sweep."""
        if self._receiving:
            if now - self._began > self.limits.request_timeout:
                self._receiving = False
                if not self.transport.is_closing():
                    self.timed_out()
        elif self.flow.write_paused:
            if now - self._stalled_at > self.limits.request_timeout:
                self._abandon()  # its client reads none of its answers
                self.transport.abort()
        elif (
            now - self._quiet_since > self.timeout_keep_alive
            and (self.cycle is None or self.cycle.response_complete)
            and not self.transport.is_closing()
        ):
            self.transport.close()

    def _abandon(self) -> None:
        """The answer being made over ASGI and the queued ones will not be sent (uvicorn marks only the
        newest cycle disconnected)."""
        for cycle in (self._running, self.cycle):
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()

    def timed_out(self) -> None:
        """The request being received is past its deadline (BotscoreProtocol answers it)."""
        raise NotImplementedError


def sweep(connections: set[Any]) -> None:
    """Check every connection of a worker against its deadlines: one periodic job a worker (the
    service's schedule, every SWEEP_SECONDS), not a timer per request (a timer costs ~6 µs)."""
    now = asyncio.get_running_loop().time()
    for connection in list(connections):
        if isinstance(connection, Connection):
            try:
                connection.check_deadlines(now)
            except Exception:  # one connection's failure must not end the deadlines of all
                connection.transport.abort()
