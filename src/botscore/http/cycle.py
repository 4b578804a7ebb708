"""The cycle of a request the connection answers itself, and the answers a connection owes.

A POST to a scoring route's exact path is not handed to the app over ASGI: the connection opens
its `ScoringCycle` from its head, which moves from NONE to READING its body (kept up to one chunk
past the route's bound, enough to answer 413) or ANSWERED from its head alone (401, 405, 413 by
length: the rest of its body is read and dropped), and to NONE again. When the body is complete, the
route decides. The answer goes out at once, unless it waits for the fsync that covers its record
(BOTSCORE_AUDIT_SYNC=always) or for an answer before it: then it is `Owed`, and the connection's
`Answers` writes it, in request order, from one task, as its fsync completes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import NamedTuple

from botscore.call import Answer, Call
from botscore.http.endpoints import Opened, ScoringRoute
from botscore.http.options import InFlight


class Reading(Enum):
    """What the next bytes of the connection are."""

    HEAD = "a request head"
    BODY = "the body of a request that is read: its framing and trailers too"
    SKIP = "the body of a request nobody reads (behind a refusal, a shed answer or a close)"


class Ending(Enum):
    """Whether the connection ends once the answers it owes are out."""

    OPEN = "serving"
    CLOSE = "close after the answers owed, saying nothing more"
    REFUSE = "write the refusal after the answers owed, then close"


class Stage(Enum):
    """Where the scoring request the connection answers itself stands."""

    NONE = "no such request: a head is being read, or the request is the app's"
    READING = "its body is being read"
    ANSWERED = "answered from its head; the rest of its body is dropped"


# Module names, read on every request: an Enum class attribute goes through a metaclass __getattr__ (3.11).
_NONE, _READING, _ANSWERED = Stage.NONE, Stage.READING, Stage.ANSWERED


class ScoringCycle:
    """The request to a scoring route the connection is answering itself, from its head to its answer
    (one a connection, opened again by each such request): its stage; outside NONE, the route, the call
    its head opened, and the body received so far (`chunks`, `size` bytes: kept while READING, up to
    one part past the route's bound, enough to answer 413)."""

    __slots__ = ("chunks", "opened", "route", "size", "stage")
    route: ScoringRoute
    opened: Opened
    chunks: list[bytes]
    size: int

    def __init__(self) -> None:
        self.stage = _NONE

    def open(self, route: ScoringRoute, opened: Opened) -> None:
        """A request to `route` whose head `opened` it: READING its body, or ANSWERED by its head alone."""
        self.route = route
        self.opened = opened
        self.stage = _READING if opened.refusal is None else _ANSWERED
        self.chunks = []
        self.size = 0


class Owed(NamedTuple):
    """An answer written by the connection that waits: for its fsync, or for an answer before it."""

    route: ScoringRoute
    call: Call
    answer: Answer
    close: bool


class Answers(deque[Owed]):
    """The answers a connection owes that wait, in request order, and the one task that writes them as
    their fsyncs complete (uvicorn's graceful shutdown waits for it, as it is in the server's tasks).
    A deque: "is any answer owed", asked on every request, is its length, with no Python call."""

    def __init__(
        self,
        write: Callable[[ScoringRoute, Call, Answer, bool], None],
        drained: Callable[[], None],
        in_flight: InFlight,
        loop: asyncio.AbstractEventLoop,
        tasks: set[asyncio.Task[None]],
    ) -> None:
        super().__init__()
        self._write = write  # sends one answer (unless its client left)
        self._drained = drained  # told when the last owed answer went out
        self._in_flight = in_flight
        self._loop = loop
        self._tasks = tasks
        self._writer: asyncio.Task[None] | None = None

    def owe(self, owed: Owed) -> None:
        """Queue an answer; it counts in flight until its record is on disk."""
        self.append(owed)
        self._in_flight.count += 1
        if self._writer is None:
            self._writer = self._loop.create_task(self._write_owed())
            self._tasks.add(self._writer)
            self._writer.add_done_callback(self._tasks.discard)

    async def _write_owed(self) -> None:
        try:
            while self:
                route, call, answer, close = self[0]
                try:
                    if answer.recorded and route.settles:
                        answer = await route.settle(call, answer)
                finally:
                    self.popleft()
                    self._in_flight.count -= 1
                self._write(route, call, answer, close)
        finally:
            self._writer = None
        self._drained()
