"""One scoring call as it travels: what arrived, which model answers, and what was answered.

The HTTP layer creates it from the request, the data plane fills in the answer and keeps its
audit record, and the HTTP layer sends it. One object instead of eight positional arguments.
"""

from __future__ import annotations

from botscore.model.scorer import Scorer


class Call:
    """The state of one request to a scoring route."""

    __slots__ = ("body", "id", "key_id", "method", "received_at", "response", "route", "scorer", "started", "status")

    def __init__(self, route: str, method: str, request_id: bytes, scorer: Scorer, received_at: float, started: float):
        self.route = route
        self.method = method
        self.id = request_id  # X-Request-ID: the client's when sane, else a new UUID
        self.received_at = received_at  # wall clock (time.time()) when the request arrived
        self.started = started  # time.perf_counter() when the request arrived, for latencies
        self.scorer = scorer  # one model per call, even if a reload swaps it meanwhile
        self.body: bytes | None = None  # None until read (a request refused before its body has none)
        self.status = 0
        self.response = b""
        self.key_id: str | None = None  # the id of the API key the call carried (never the key); None: no keys
