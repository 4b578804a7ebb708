"""The scoring routes as plain ASGI callables: POST /bot-score and POST /bot-score/batch.

They are the hot path, and FastAPI's routing, dependency and pydantic layers would cost more
than the scoring and audit work together, so they parse headers and bodies themselves. Both
share one sequence: check method and key, read a bounded body, score, append the audit record,
answer; every answer, errors included, carries X-Request-ID and X-Model-Version and is audited.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from app import records, validation
from app.audit import RETRY_AFTER_SECONDS, AuditLog
from app.auth import ApiKeys
from app.errors import AuditUnavailable, BotscoreError, RequestError
from app.metrics import Metrics
from app.scoring import Scorer

SCORE_PATH = "/bot-score"
BATCH_PATH = "/bot-score/batch"
BATCH_BODY_FACTOR = 128  # the batch body bound is this many times BOTSCORE_MAX_BODY_BYTES

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

log = logging.getLogger("botscore.http")

_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
_JSON = b"application/json"
_RETRY_AFTER = [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())]
_UNAUTHORIZED = [(b"www-authenticate", b'Bearer realm="botscore"')]
_ALLOW_POST = [(b"allow", b"POST")]


class ModelSlot:
    """Holds the serving Scorer; replacing `scorer` swaps the model for the next request."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer


def _new_id_source() -> None:
    """A random UUID4 prefix per process (os.urandom once) and a counter for the last 48 bits."""
    global _id_prefix, _id_counter
    h = "%020x" % random.SystemRandom().getrandbits(80)
    _id_prefix = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-"
    _id_counter = itertools.count(random.SystemRandom().getrandbits(47))


_id_prefix = ""
_id_counter = itertools.count()
_new_id_source()
os.register_at_fork(after_in_child=_new_id_source)


def new_request_id() -> bytes:
    """A UUID4-formatted id, unique per process by its counter and across processes by its
    random prefix. Not uuid.uuid4(): its os.urandom call costs a syscall on every request,
    and ids need uniqueness, not secrecy."""
    return f"{_id_prefix}{next(_id_counter) & 0xFFFFFFFFFFFF:012x}".encode()


def request_id(raw: bytes | None) -> bytes:
    """The client's X-Request-ID if it is sane (1-128 of A-Z a-z 0-9 . _ : -), else a new UUID."""
    if raw is not None and _SANE_REQUEST_ID.fullmatch(raw):
        return raw
    return new_request_id()


def _is_json(content_type: bytes | None) -> bool:
    # An absent Content-Type is taken as JSON: minimal clients omit it, and the body is parsed strictly anyway.
    if content_type is None:
        return True
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == _JSON or (media.startswith(b"application/") and media.endswith(b"+json"))


class _TooLarge(Exception):
    def __init__(self, head: bytes) -> None:
        self.head = head


class _Disconnected(Exception):
    pass


async def _read_rest(receive: Receive, message: dict[str, Any], limit: int) -> bytes:
    """The body whose first message is `message`, at most `limit` bytes (_TooLarge beyond)."""
    body = message.get("body", b"")
    if message["type"] == "http.disconnect":
        raise _Disconnected
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        if size > limit:
            raise _TooLarge(b"".join(chunks)[:limit])
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise _TooLarge(b"".join(chunks)[:limit])
    return b"".join(chunks)


class _ScoringEndpoint:
    """The shared request sequence; subclasses only turn a body into (response, record line)."""

    route = ""

    def __init__(
        self, model: ModelSlot, audit: AuditLog, metrics: Metrics, keys: ApiKeys, *, max_body_bytes: int
    ) -> None:
        self.model = model
        self.audit = audit
        self.metrics = metrics
        self.keys = keys
        self.max_body_bytes = max_body_bytes
        self._debug = log.isEnabledFor(logging.DEBUG)  # read once: logging is configured before the app is built

    def answer(self, body: bytes, scorer: Scorer, rid: bytes, now: float, started: float) -> tuple[bytes, bytes]:
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.general(scope, receive, send)

    async def general(
        self, scope: Scope, receive: Receive, send: Send, first: dict[str, Any] | None = None
    ) -> None:
        """The full sequence, for every request and every error; `first` is a body message
        already received by a fast path that handed the request over."""
        started = time.perf_counter()
        now = time.time()
        scorer = self.model.scorer  # one model per request, even if a reload swaps it meanwhile
        request_id_header = content_type = content_length = authorization = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"x-request-id":
                request_id_header = value
            elif name == b"content-length":
                content_length = value
            elif name == b"authorization":
                authorization = value
        rid = request_id(request_id_header)
        body: bytes | None = None
        try:
            if scope["method"] != "POST":
                raise RequestError(
                    f"method {scope['method']} is not allowed on {self.route}; use POST",
                    status=405,
                    code="method_not_allowed",
                )
            if self.keys.required and not self.keys.allows(authorization):
                raise RequestError(
                    "missing or unknown API key: send Authorization: Bearer <key>", status=401, code="unauthorized"
                )
            if content_length is not None and content_length.isdigit() and int(content_length) > self.max_body_bytes:
                raise _TooLarge(b"")
            message = first if first is not None else await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                body = message.get("body", b"")  # the usual case: the whole body in one message
                if len(body) > self.max_body_bytes:
                    raise _TooLarge(body[: self.max_body_bytes])
            else:
                body = await _read_rest(receive, message, self.max_body_bytes)
            if not _is_json(content_type):
                raise RequestError(
                    f"Content-Type {content_type.decode('latin-1')!r} is not supported; send application/json",
                    status=415,
                    code="unsupported_media_type",
                )
            response, line = self.answer(body, scorer, rid, now, started)
        except _Disconnected:
            return  # nobody to answer; nothing was answered, so there is nothing to record
        except _TooLarge as exc:
            error = RequestError(
                f"request body is larger than {self.max_body_bytes} bytes", status=413, code="body_too_large"
            )
            await self._fail(scope, send, rid, now, started, scorer, error, exc.head)
            return
        except RequestError as exc:
            await self._fail(scope, send, rid, now, started, scorer, exc, body)
            return
        except Exception:  # a bug of ours: answer in the error shape, record it, log it with the id
            log.exception("unhandled error", extra={"request_id": rid.decode()})
            error = BotscoreError("internal error; the request id is in the logs")
            await self._fail(scope, send, rid, now, started, scorer, error, body)
            return
        try:
            self.audit.record(line)
        except AuditUnavailable as exc:
            await self._refuse(send, rid, started, scorer, exc)
            return
        await self._send(send, 200, response, rid, scorer, started)

    async def _fail(
        self,
        scope: Scope,
        send: Send,
        rid: bytes,
        now: float,
        started: float,
        scorer: Scorer,
        error: BotscoreError,
        body: bytes | None,
    ) -> None:
        document = validation.decoded(body)
        line = records.json_line(
            rid.decode(),
            now,
            scope["method"],
            scope["path"],
            error.status,
            document,
            body if document is None else None,
            error.body(),
            scorer.version,
            (time.perf_counter() - started) * 1000,
        )
        try:
            self.audit.record(line)
        except AuditUnavailable as exc:
            await self._refuse(send, rid, started, scorer, exc)
            return
        extra = _ALLOW_POST if error.status == 405 else _UNAUTHORIZED if error.status == 401 else []
        await self._send(send, error.status, error.body_bytes(), rid, scorer, started, extra)

    async def _refuse(self, send: Send, rid: bytes, started: float, scorer: Scorer, exc: AuditUnavailable) -> None:
        log.warning("request refused: audit spool unavailable", extra={"request_id": rid.decode(), "reason": exc.message})
        await self._send(send, exc.status, exc.body_bytes(), rid, scorer, started, _RETRY_AFTER)

    async def _send(
        self,
        send: Send,
        status: int,
        body: bytes,
        rid: bytes,
        scorer: Scorer,
        started: float,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        headers = [
            (b"content-type", _JSON),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", rid),
            (b"x-model-version", scorer.version_bytes),
        ]
        if extra:
            headers.extend(extra)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self.metrics.request(self.route, status, time.perf_counter() - started)
        if self._debug:
            self._log_answered(rid, status, time.perf_counter() - started)

    def _log_answered(self, rid: bytes, status: int, seconds: float) -> None:
        log.debug(
            "answered",
            extra={"request_id": rid.decode(), "route": self.route, "status": status, "latency_ms": seconds * 1000},
        )


class ScoreEndpoint(_ScoringEndpoint):
    """POST /bot-score: {"x1": number, "x2": number} -> {"p_bot": number}."""

    route = SCORE_PATH

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The path nearly every request takes, in one function: a JSON POST of the usual shape.

        Each Python call on the request path costs about 1 us in the server, and folding this
        one path is worth about 10 % of throughput (docs/performance.md). Anything else, and
        every error, is handed to `general`, which is the specification; the answer and the
        audit record are the same bytes either way (tests/test_api.py checks both paths).
        """
        if scope["method"] != "POST" or self.keys.required:
            await self.general(scope, receive, send)
            return
        usual = False
        rid_header = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                usual = value == _JSON
            elif name == b"x-request-id":
                rid_header = value
            elif name == b"content-length" and (not value.isdigit() or int(value) > self.max_body_bytes):
                usual = False
                break
        if not usual:
            await self.general(scope, receive, send)
            return
        started = time.perf_counter()
        now = time.time()
        message = await receive()
        parsed = None
        if message["type"] == "http.request" and not message.get("more_body", False):
            body = message.get("body", b"")
            if len(body) <= self.max_body_bytes:
                parsed = validation.usual(body)
        if parsed is None:  # an error to name, or an unusual body: the general sequence, same bytes
            await self.general(scope, receive, send, first=message)
            return
        x1, x2, x1_json, x2_json = parsed
        scorer = self.model.scorer
        p_bot = scorer.p_bot(x1, x2)
        rid = new_request_id() if rid_header is None else request_id(rid_header)
        response = b'{"p_bot":%r}' % p_bot
        line = records.scored_line(
            rid, now, x1_json, x2_json, response, scorer.version_json, (time.perf_counter() - started) * 1000
        )
        self.metrics.note_score((x1, x2, p_bot))  # where `answer` notes it too
        try:
            self.audit.record(line)
        except AuditUnavailable as exc:
            await self._refuse(send, rid, started, scorer, exc)
            return
        headers = [
            (b"content-type", _JSON),
            (b"content-length", b"%d" % len(response)),
            (b"x-request-id", rid),
            (b"x-model-version", scorer.version_bytes),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": response})
        self.metrics.note_request((SCORE_PATH, 200, time.perf_counter() - started))
        if self._debug:
            self._log_answered(rid, 200, time.perf_counter() - started)

    def answer(self, body: bytes, scorer: Scorer, rid: bytes, now: float, started: float) -> tuple[bytes, bytes]:
        x1, x2, x1_json, x2_json = validation.parse_with_tokens(body)
        p_bot = scorer.p_bot(x1, x2)
        self.metrics.note_score((x1, x2, p_bot))
        response = b'{"p_bot":%r}' % p_bot
        line = records.scored_line(
            rid, now, x1_json, x2_json, response, scorer.version_json, (time.perf_counter() - started) * 1000
        )
        return response, line


class BatchEndpoint(_ScoringEndpoint):
    """POST /bot-score/batch: {"instances": [{x1, x2}, ...]} (1 to 1,000) -> {"p_bot": [...]}, in order."""

    route = BATCH_PATH

    def answer(self, body: bytes, scorer: Scorer, rid: bytes, now: float, started: float) -> tuple[bytes, bytes]:
        document = validation.decode(body)
        instances = validation.instances(document)
        scores = []
        for x1, x2 in instances:
            p_bot = scorer.p_bot(x1, x2)
            self.metrics.scored(x1, x2, p_bot)
            scores.append(p_bot)
        response_document = {"p_bot": scores}
        line = records.json_line(
            rid.decode(),
            now,
            "POST",
            BATCH_PATH,
            200,
            {"instances": [{"x1": x1, "x2": x2} for x1, x2 in instances]},
            None,
            response_document,
            scorer.version,
            (time.perf_counter() - started) * 1000,
        )
        return json.dumps(response_document, separators=(",", ":")).encode(), line
