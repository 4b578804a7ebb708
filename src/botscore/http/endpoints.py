"""The scoring routes as plain ASGI callables: POST /bot-score, POST /bot-score/batch and the Open
Inference Protocol's POST /v2/models/bot-score/infer.

They are the hot path, and FastAPI's routing, dependency and pydantic layers would cost more
than the scoring and audit work together, so they read headers and bodies themselves. Every
request takes the same sequence: scan the headers once into a `Call`, refuse what HTTP rules
out (method, key, size, media type), hand the call to the data plane, send its answer with
X-Request-ID and X-Model-Version. The data plane records every answer before it is sent.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import re
import time
from collections.abc import Callable

from starlette.types import Message, Receive, Scope, Send

from botscore.call import Call
from botscore.dataplane import inference
from botscore.dataplane.handler import Handler
from botscore.errors import AuditUnavailable, BotscoreError, Overloaded, RequestError
from botscore.http.auth import ApiKeys
from botscore.http.limits import TIMED_OUT
from botscore.model.scorer import ModelSlot
from botscore.ops.metrics import Metrics

__all__ = [
    "BATCH_PATH",
    "INFER_PATH",
    "SCORE_PATH",
    "Receive",
    "Scope",
    "ScoringRoute",
    "Send",
    "new_request_id",
    "request_id",
]

SCORE_PATH = "/bot-score"
BATCH_PATH = "/bot-score/batch"
INFER_PATH = f"/v2/models/{inference.MODEL_NAME}/infer"
BATCH_BODY_FACTOR = 128  # the batch body bound is this many times BOTSCORE_MAX_BODY_BYTES

log = logging.getLogger("botscore.http")

_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
_JSON = b"application/json"
_EXTRA_HEADERS: dict[int, list[tuple[bytes, bytes]]] = {
    401: [(b"www-authenticate", b'Bearer realm="botscore"')],
    405: [(b"allow", b"POST")],
    408: [(b"connection", b"close")],
    503: [(b"retry-after", str(AuditUnavailable.retry_after_seconds).encode())],
}


class _RequestIds:
    """UUID4-formatted ids: a random prefix per process (os.urandom once, again after a fork) and a
    counter for the last 48 bits. Not uuid.uuid4(): its os.urandom call costs a syscall on every
    request, and ids need uniqueness, not secrecy."""

    def __init__(self) -> None:
        self._prefix = ""
        self._counter = itertools.count()
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        h = f"{random.SystemRandom().getrandbits(80):020x}"
        self._prefix = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-"
        self._counter = itertools.count(random.SystemRandom().getrandbits(47))

    def new(self) -> bytes:
        """A new id, unique per process by its counter and across processes by its prefix."""
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFFFFFF:012x}".encode()


new_request_id = _RequestIds().new


def request_id(raw: bytes | None) -> bytes:
    """The client's X-Request-ID if it is sane (1-128 of A-Z a-z 0-9 . _ : -), else a new UUID."""
    if raw is not None and _SANE_REQUEST_ID.fullmatch(raw):
        return raw
    return new_request_id()


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == _JSON or (media.startswith(b"application/") and media.endswith(b"+json"))


def _is_octet_stream(content_type: bytes) -> bool:
    return content_type.split(b";", 1)[0].strip().lower() == b"application/octet-stream"


class _Disconnected(Exception):
    pass


async def _read_rest(receive: Receive, message: Message, limit: int) -> bytes:
    """The body whose first message is `message`; reading stops once it is past `limit` bytes."""
    if message["type"] == "http.disconnect":
        raise _Disconnected
    chunks = [message.get("body", b"")]
    size = len(chunks[0])
    while message.get("more_body", False) and size <= limit:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
    return b"".join(chunks)


class ScoringRoute:
    """One scoring route: a request becomes a Call, `answer` (the data plane) fills it in, it is sent."""

    def __init__(
        self,
        path: str,
        answer: Callable[[Call], None],
        handler: Handler,
        model: ModelSlot,
        metrics: Metrics,
        keys: ApiKeys,
        *,
        max_body_bytes: int,
        render_error: Callable[[BotscoreError], bytes] = BotscoreError.body_bytes,
        binary: bool = False,
    ) -> None:
        self.path = path
        self.answer = answer
        self.handler = handler
        self.model = model
        self.keys = keys
        self.max_body_bytes = max_body_bytes
        self.render_error = render_error
        # A shed answer is the same every time: made once (shedding must cost little; see protocol.py).
        self._overloaded = Overloaded("the service is over its capacity; retry after the Retry-After seconds")
        self._overloaded_body = render_error(self._overloaded)
        # The Open Inference Protocol's binary tensor data: JSON, then raw tensors, sent as JSON or octet-stream.
        self.binary = binary
        self._media = (
            "application/json, or application/octet-stream with Inference-Header-Content-Length"
            if binary
            else "application/json"
        )
        self._note_request = metrics.note_request
        self._settles = handler.settles
        self._debug = log.isEnabledFor(logging.DEBUG)  # read once: logging is configured before the app is built

    def _call(self, method: str, rid: bytes | None, authorization: bytes | None, started: float) -> Call:
        """A call to this route: its id, the model serving now, its key's id, the route's error shape."""
        call = Call(
            self.path,
            method,
            new_request_id() if rid is None else request_id(rid),
            self.model.scorer,
            time.time(),
            started,
        )
        if self.keys.required:
            call.key_id = self.keys.identify(authorization)
        call.render_error = self.render_error
        return call

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        rid = content_type = content_length = authorization = header_length = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"x-request-id":
                rid = value
            elif name == b"content-length":
                content_length = value
            elif name == b"authorization":
                authorization = value
            elif name == b"inference-header-content-length":
                header_length = value
        call = self._call(scope["method"], rid, authorization, started)
        call.header_length = header_length
        refusal: BotscoreError | None = None
        if call.method != "POST":
            refusal = RequestError(
                f"method {call.method} is not allowed on {self.path}; use POST", status=405, code="method_not_allowed"
            )
        elif self.keys.required and call.key_id is None:
            refusal = RequestError(
                "missing or unknown API key: send Authorization: Bearer <key>", status=401, code="unauthorized"
            )
        elif content_length is not None and content_length.isdigit() and int(content_length) > self.max_body_bytes:
            refusal = self._too_large()
        else:
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                body = message.get("body", b"")  # the usual case: the whole body in one message
            else:
                try:
                    body = await _read_rest(receive, message, self.max_body_bytes)
                except _Disconnected:
                    return  # nobody to answer; nothing was answered, so there is nothing to record
            if TIMED_OUT in scope:  # the protocol ended the body at BOTSCORE_REQUEST_TIMEOUT_SECONDS
                call.body = body[: self.max_body_bytes]
                refusal = RequestError(
                    "request body not received whole within BOTSCORE_REQUEST_TIMEOUT_SECONDS",
                    status=408,
                    code="request_timeout",
                )
            elif len(body) > self.max_body_bytes:
                call.body = body[: self.max_body_bytes]
                refusal = self._too_large()
            else:
                call.body = body
                # An absent Content-Type is taken as JSON: minimal clients omit it, and the body is parsed strictly.
                if (
                    content_type is not None
                    and content_type != _JSON
                    and not _is_json(content_type)
                    and not (self.binary and header_length is not None and _is_octet_stream(content_type))
                ):
                    refusal = RequestError(
                        f"Content-Type {content_type.decode('latin-1')!r} is not supported; send {self._media}",
                        status=415,
                        code="unsupported_media_type",
                    )
        if refusal is None:
            self.answer(call)
        else:
            self.handler.fail(call, refusal)
        if self._settles:
            await self.handler.settle(call)  # BOTSCORE_AUDIT_SYNC=always: the record is on disk first
        status = call.status
        headers = [
            (b"content-type", call.content_type if status == 200 else _JSON),
            (b"content-length", b"%d" % len(call.response)),
            (b"x-request-id", call.id),
            (b"x-model-version", call.scorer.version_bytes),
        ]
        if status != 200 and status in _EXTRA_HEADERS:
            headers.extend(_EXTRA_HEADERS[status])
        elif status == 200 and call.extra_headers is not None:
            headers.extend(call.extra_headers)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": call.response})
        self._note_request((self.path, status, time.perf_counter() - started, call.key_id))
        if self._debug:
            log.debug(
                "answered",
                extra={
                    "request_id": call.id.decode(),
                    "route": self.path,
                    "status": status,
                    "latency_ms": (time.perf_counter() - started) * 1000,
                },
            )

    def shed(self, method: str, headers: list[tuple[bytes, bytes]]) -> bytes:
        """The whole HTTP answer to a request that arrived past the worker's in-flight bound: a 503
        with Retry-After, recorded like any answer, without reading the body (`BotscoreProtocol`)."""
        started = time.perf_counter()
        rid = authorization = None
        for name, value in headers:
            if name == b"x-request-id":
                rid = value
            elif name == b"authorization":
                authorization = value
        call = self._call(method, rid, authorization, started)
        self.handler.fail(call, self._overloaded, self._overloaded_body)
        self._note_request((self.path, call.status, time.perf_counter() - started, call.key_id))
        overloaded = call.response is self._overloaded_body  # else the audit log refused: its own Retry-After
        return (
            b"HTTP/1.1 %d Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"x-request-id: %s\r\nx-model-version: %s\r\nretry-after: %d\r\nconnection: close\r\n\r\n%s"
        ) % (
            call.status,
            len(call.response),
            call.id,
            call.scorer.version_bytes,
            Overloaded.retry_after_seconds if overloaded else AuditUnavailable.retry_after_seconds,
            call.response,
        )

    def _too_large(self) -> BotscoreError:
        return RequestError(
            f"request body is larger than {self.max_body_bytes} bytes", status=413, code="body_too_large"
        )


def scoring_routes(
    handler: Handler, model: ModelSlot, metrics: Metrics, keys: ApiKeys, *, max_body_bytes: int
) -> dict[str, ScoringRoute]:
    """The scoring routes by path; the bound of the routes that take up to 1,000 instances is BATCH_BODY_FACTOR
    times the single one's."""
    return {
        SCORE_PATH: ScoringRoute(
            SCORE_PATH, handler.score, handler, model, metrics, keys, max_body_bytes=max_body_bytes
        ),
        BATCH_PATH: ScoringRoute(
            BATCH_PATH,
            handler.score_batch,
            handler,
            model,
            metrics,
            keys,
            max_body_bytes=max_body_bytes * BATCH_BODY_FACTOR,
        ),
        INFER_PATH: ScoringRoute(
            INFER_PATH,
            handler.infer,
            handler,
            model,
            metrics,
            keys,
            max_body_bytes=max_body_bytes * BATCH_BODY_FACTOR,
            render_error=inference.error_bytes,
            binary=True,
        ),
    }
