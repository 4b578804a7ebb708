"""One scoring call: what arrived (`Call`) and what is answered to it (`Answer`, a value).

The HTTP layer makes the `Call` from the request; the data plane decides and returns the
`Answer`, or the error as a value (`Failed`), which the HTTP layer renders in its route's shape
and writes (`botscore.http.answers`). Nothing below the
HTTP layer writes into an object it was handed: a decision is returned.
"""

from __future__ import annotations

from typing import NamedTuple

from botscore.errors import BotscoreError
from botscore.model.scorer import Scorer

JSON = b"application/json"


class Call:
    """The state of one request to a scoring route, as it arrived."""

    __slots__ = ("body", "header_length", "id", "key_id", "method", "received_at", "route", "scorer", "started")

    def __init__(
        self,
        route: str,
        method: str,
        request_id: bytes,
        scorer: Scorer,
        received_at: float,
        started: float,
        *,
        body: bytes | None = None,
        key_id: str | None = None,
        header_length: bytes | None = None,
    ) -> None:
        self.route = route
        self.method = method
        self.id = request_id  # X-Request-ID: the client's when sane, else a new UUID
        self.received_at = received_at  # wall clock (time.time()) when the request arrived
        self.started = started  # time.perf_counter() when the request arrived, for latencies
        self.scorer = scorer  # one model per call, even if a reload swaps it meanwhile
        self.body = body  # None: refused before its body was read
        self.key_id = key_id  # the id of the API key the call carried (never the key); None: no keys
        # Open Inference Protocol, binary tensor data: the request's Inference-Header-Content-Length, as sent.
        self.header_length = header_length


class Answer(NamedTuple):
    """What a call is answered: status, body, its media type and any headers of its own.

    `recorded` says the call's audit row was spooled for this answer, so that under
    BOTSCORE_AUDIT_SYNC=always it waits for the fsync that covers it; a refusal by the audit
    log itself was not (or only best effort) and goes out at once.
    """

    status: int
    body: bytes
    content_type: bytes = JSON
    headers: tuple[tuple[bytes, bytes], ...] = ()
    recorded: bool = True


class Failed(NamedTuple):
    """A call that failed, as a value: the error (its status and code), rendered by the HTTP layer in
    the route's shape. `recorded` as in `Answer`: False when the audit log itself refused the row."""

    error: BotscoreError
    recorded: bool = True


Decision = Answer | Failed  # what the data plane returns for a call
