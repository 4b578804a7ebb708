"""uvicorn's `http` option: a bounded `Connection` (connection.py) that routes each request.

A POST to a scoring route's exact path, with no ASGI answer pending on the connection, is answered
here, as a `ScoringCycle` (cycle.py): no task, scope or ASGI messages, most of what a request costs
uvicorn; answers waiting for their fsync (BOTSCORE_AUDIT_SYNC=always) are the connection's `Answers`.
Anything else is the app's, over ASGI, as under plain uvicorn. Past `max_in_flight` requests of the
worker, a scoring request or /metrics is shed at once (503, Retry-After) and the connection closed;
`Connection: Upgrade` with a body is refused (the parser stops at an upgrade, so the body would be
read as a request of its own). uvicorn's internals used: internals.py.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import unquote

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from botscore.call import Answer, Call
from botscore.http.answers import encode
from botscore.http.connection import Connection, sweep
from botscore.http.cycle import Answers, Ending, Owed, Reading, ScoringCycle, Stage
from botscore.http.endpoints import ScoringRoute
from botscore.http.internals import UVICORN_INTERNALS
from botscore.http.limits import TIMED_OUT
from botscore.http.options import ConnectionOptions

__all__ = ["SWEEP_SECONDS", "UVICORN_INTERNALS", "BotscoreProtocol", "ConnectionOptions", "bounded", "sweep"]

SWEEP_SECONDS = 0.25  # how often a worker checks its connections' deadlines: a 408 comes up to this late

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_on_body = HttpToolsProtocol.on_body
_on_message_complete = HttpToolsProtocol.on_message_complete
_on_response_complete = HttpToolsProtocol.on_response_complete
_perf_counter = time.perf_counter
_HEAD, _BODY, _SKIP, _OPEN = Reading.HEAD, Reading.BODY, Reading.SKIP, Ending.OPEN
# Module names, read on every request: an Enum class attribute goes through a metaclass __getattr__ (3.11).
_NONE, _READING, _ANSWERED = Stage.NONE, Stage.READING, Stage.ANSWERED


def bounded(options: ConnectionOptions) -> type[BotscoreProtocol]:
    """The protocol class for uvicorn's `http` option: BotscoreProtocol whose connections are built
    with `options` (a class, as uvicorn takes one and builds it with its own `Config`)."""
    return type("BoundedBotscoreProtocol", (BotscoreProtocol,), {"options": options})


def from_config(*args: Any, config: Config, **kwargs: Any) -> BotscoreProtocol:
    """uvicorn's `http` option in a worker of `botscore serve --workers N`: a connection of the app this
    worker built (uvicorn's `config` holds it once loaded), with that app's options."""
    protocol = getattr(config.loaded_app, "connection_class", None)
    if protocol is None:
        raise RuntimeError("this protocol serves an app built by botscore.service:app_from_environment (factory)")
    connection: BotscoreProtocol = protocol(*args, config=config, **kwargs)
    return connection


class BotscoreProtocol(Connection):
    """One client connection: bounded (Connection), and routing each request it reads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = self.options
        self._routes = options.routes
        self._in_flight_bound = options.limits.max_in_flight if options.shed is not None else 0  # 0: none
        self._answers = Answers(self._write, self._drained, self.in_flight, self.loop, self.tasks)

    def on_headers_complete(self) -> None:
        skip = self._reading = _SKIP  # until the request is found to be read
        if self.transport.is_closing() or self._ending is not _OPEN:
            return  # behind a refusal or a shed answer: nobody will read its answer
        if not self._head.plain or self.expect_100_continue:  # else the head refuses nothing
            refusal = self.head_refusal()
            if refusal is not None:
                self.refuse(*refusal)
                return
        parser = self.parser
        if parser.should_upgrade():
            if any(name in (b"content-length", b"transfer-encoding") for name, _ in self.headers):
                self.refuse(400, "upgrade_not_supported", "Connection: Upgrade is not supported with a body")
                return
            self._reading = _BODY
            self._to_app()
            self.cycle.keep_alive = False  # the parser stops at an upgrade: nothing after it can be read safely
            return
        idle = self.cycle is None or self.cycle.response_complete
        if self._in_flight_bound and self.in_flight.count >= self._in_flight_bound and idle and self._shed():
            return
        self._reading = _BODY
        route = self._routes.get(self.url)
        if route is not None and idle and parser.get_method() == b"POST":
            scoring = self._scoring
            scoring.open(route, route.open("POST", self.headers, _perf_counter()))
            if scoring.stage is _ANSWERED:  # decided by the head: answered now, the body is dropped
                self._answer(scoring, None)
            elif self.expect_100_continue and not self._answers:  # (behind answers owed: no 100, the client
                self.transport.write(_CONTINUE)  # sends its body after its own wait)
            return
        if self._answers:
            # Over ASGI behind answers this connection still owes, it could be answered first: those
            # go out, then the connection closes, and this request is neither answered nor recorded.
            self._ending = Ending.CLOSE
            self._reading = skip
            return
        self._to_app()
        if self.expect_100_continue:
            # The app may answer without asking for the body; the client then may never send it, and
            # what it sends next would be read as that body: the connection closes after the answer.
            self.cycle.keep_alive = False

    def on_body(self, body: bytes) -> None:
        self._body_seen += len(body)
        scoring = self._scoring
        stage = scoring.stage
        if stage is _READING:
            if scoring.size <= scoring.route.max_body_bytes:
                scoring.chunks.append(body)  # kept up to one part past the bound: enough to answer 413
                scoring.size += len(body)
        elif stage is _NONE and self._reading is _BODY:  # else ANSWERED: the rest of its body is dropped
            _on_body(self, body)

    def on_message_complete(self) -> None:
        reading = self._reading  # the message is complete: the next bytes are a head again
        self._receiving = False
        self._reading = _HEAD
        self._fresh = False
        if not self._head.plain:
            self._head.end()
        if reading is _SKIP:
            return
        scoring = self._scoring
        if scoring.stage is not _NONE:
            if scoring.stage is _READING:
                self._answer(scoring, b"".join(scoring.chunks))
            scoring.stage = _NONE
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and not (self.pipeline and self.pipeline[0][0] is cycle):
            self._started()
        _on_message_complete(self)

    def on_response_complete(self) -> None:
        if self._unanswered:
            self._unanswered -= 1
            self.in_flight.count -= 1
        elif self._parked:
            self._parked -= 1
        following = self.pipeline[-1][0] if self.pipeline else None  # the request uvicorn starts next
        _on_response_complete(self)
        if following is not None:
            self._running = following
        self._quiet_since = self.loop.time()
        if following is not None and not following.more_body and not following.response_complete:
            self._started()  # received whole while queued: worked on from now
        if self._ending is not _OPEN and not self.pipeline and self.cycle.response_complete and not self._answers:
            self.end()

    def _started(self) -> None:
        """A request of this connection is being worked on: counted in flight, unless its answer
        will only wait for a client that reads none (parked, see pause_writing)."""
        self._running = self.cycle if self._running is None or self._running.response_complete else self._running
        if self.flow.write_paused:
            self._parked += 1
        else:
            self.in_flight.count += 1
            self._unanswered += 1

    def _answer(self, scoring: ScoringCycle, body: bytes | None, *, timed_out: bool = False) -> None:
        """Decide a scoring request and write its answer (closing after it when it must); an answer
        that waits for an fsync, and any behind it, are owed (`Answers`)."""
        scoring.stage = _ANSWERED  # the rest of its body, if any, is dropped
        route, call = scoring.route, scoring.opened.call
        answer = route.answer(scoring.opened, body, timed_out=timed_out)
        # An Expect request refused before its body: the client may never send it (RFC 9110 10.1.1).
        close = timed_out or not self.parser.should_keep_alive() or (body is None and self.expect_100_continue)
        if not self._answers and not (answer.recorded and route.settles):
            self._send(route, call, answer, close)  # its client is here: this read brought its body
            return
        self._answers.owe(Owed(route, call, answer, close))
        self.flow.pause_reading()  # one client's pipelined requests wait for its answers

    def _write(self, route: ScoringRoute, call: Call, answer: Answer, close: bool) -> None:
        """An owed answer, unless its client left while it waited (then not sent, nothing more recorded)."""
        if not self.transport.is_closing():
            self._send(route, call, answer, close)

    def _send(self, route: ScoringRoute, call: Call, answer: Answer, close: bool) -> None:
        self.transport.write(encode(answer, call.id, call.scorer.version_bytes, close=close, server=self.served()))
        route.noted(call, answer)
        self.server_state.total_requests += 1
        self._quiet_since = self.loop.time()
        if close:
            self.transport.close()
        elif self.flow.write_paused:
            self.flow.pause_reading()  # a client that reads no answers is not read either

    def _drained(self) -> None:
        if self._ending is not _OPEN and (self.cycle is None or self.cycle.response_complete):
            self.end()
        elif not self.flow.write_paused:
            self.flow.resume_reading()

    def _shed(self) -> bool:
        """Answer a request past the in-flight bound with a 503, and close; False: not one that is shed."""
        assert self.options.shed is not None
        path = httptools.parse_url(self.url).path.decode("latin-1")
        answer = self.options.shed(
            self.parser.get_method().decode("ascii"), unquote(path) if "%" in path else path, self.headers
        )
        if answer is None:
            return False
        # Answered, and closed: what follows (its body, pipelined requests) is not read, so a shed costs one
        # write, and a client that sends the body after all (Expect: 100-continue) cannot have it taken for a request.
        self.transport.write(answer)
        self.transport.close()
        return True

    def timed_out(self) -> None:
        seconds = self.limits.request_timeout
        scoring = self._scoring
        if scoring.stage is not _NONE:
            if scoring.stage is _ANSWERED:
                self.transport.close()  # answered already (a 401 or 413 before its body): the rest is not wanted
            else:
                self._answer(scoring, b"".join(scoring.chunks), timed_out=True)
            scoring.stage = _NONE
            return
        pending = self.cycle is not None and not self.cycle.response_complete
        reading_head = self._reading is _HEAD
        if reading_head and pending:
            # A pipelined head behind an answer still being made: that answer goes out, then the close.
            self.cycle.keep_alive = False
            return
        if reading_head:
            self.refuse(408, "request_timeout", f"request not received whole within {seconds:g} s")
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
