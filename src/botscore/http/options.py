"""What a worker's connections are built with (`ConnectionOptions`), and the two objects they share."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botscore.http.answers import server_fields
from botscore.http.endpoints import ScoringRoute
from botscore.http.limits import Limits


class InFlight:
    """Requests one worker (one process) is working on: received whole and being answered. Not one
    queued behind another answer on its connection (it is not being worked on), and not uvicorn's
    `len(server_state.tasks)`, which keeps answered requests for a loop iteration."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class ServerLines:
    """The server's own header fields (Date) as uvicorn last renewed them (`fields`), as lines (`lines`)."""

    __slots__ = ("fields", "lines")

    def __init__(self) -> None:
        self.fields: list[tuple[bytes, bytes]] | None = None
        self.lines = b""

    def renew(self, fields: list[tuple[bytes, bytes]]) -> None:
        """uvicorn renewed its fields (once a second): the lines again."""
        self.fields, self.lines = fields, server_fields(fields)


@dataclass(frozen=True)
class ConnectionOptions:
    """What a connection is built with: its bounds, the routes it answers itself (by exact request
    target), what sheds a request past the in-flight bound, what counts its own refusals, and the
    worker's count of requests in flight (one per worker: its connections share it)."""

    limits: Limits
    routes: Mapping[bytes, ScoringRoute] = field(default_factory=dict)
    shed: Callable[[str, str, list[tuple[bytes, bytes]]], bytes | None] | None = None
    refused: Callable[[int], None] = lambda status: None
    # Told each connection's set of its worker's connections: the owner of the worker's schedule
    # runs `sweep` over it every SWEEP_SECONDS (it sees the same set again and again).
    watch: Callable[[set[Any]], None] = lambda connections: None
    in_flight: InFlight = field(default_factory=InFlight)
    served: ServerLines = field(default_factory=ServerLines)
