"""The scoring routes: POST /bot-score, POST /bot-score/batch and the Open Inference Protocol's
POST /v2/models/bot-score/infer.

They are the hot path, and FastAPI's routing, dependency and pydantic layers would cost more
than the scoring and audit work together, so they read headers and bodies themselves. Every
request takes the same sequence: scan the headers once into a `Call` (`open`), refuse what HTTP
rules out (method, key, size, media type: `refusals.py`), hand the call to the data plane (the
one `Handler`), which returns its decision after recording it: an `Answer`, or the error as a
value, rendered here in the route's shape (`answers.rendered`); the connection writes the answer
(`protocol.py`, through `answers.encode`), or `__call__` sends it over ASGI under another
server protocol.
"""

from __future__ import annotations

import logging
import time
from typing import Literal

from starlette.types import Message, Receive, Scope, Send

from botscore.call import JSON, Answer, Call, Decision, Failed
from botscore.dataplane import inference
from botscore.dataplane.handler import Handler
from botscore.errors import BotscoreError, Overloaded
from botscore.http import refusals
from botscore.http.answers import Shape, encode, fields, rendered
from botscore.http.auth import ApiKeys
from botscore.http.ids import new_request_id, request_id
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
]

SCORE_PATH = "/bot-score"
BATCH_PATH = "/bot-score/batch"
INFER_PATH = f"/v2/models/{inference.MODEL_NAME}/infer"
BATCH_BODY_FACTOR = 128  # the batch body bound is this many times BOTSCORE_MAX_BODY_BYTES

log = logging.getLogger("botscore.http")


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == JSON or (media.startswith(b"application/") and media.endswith(b"+json"))


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


class Opened:
    """A request to a scoring route whose head was read: its call, what the head said, and the
    refusal the head alone decides (method, key, declared size), if any."""

    __slots__ = ("call", "content_type", "refusal")

    def __init__(self, call: Call, content_type: bytes | None, refusal: BotscoreError | None) -> None:
        self.call = call
        self.content_type = content_type
        self.refusal = refusal


Decide = Literal["score", "score_batch", "infer"]  # the data plane's decision a route asks for


class ScoringRoute:
    """One scoring route: a request becomes a Call, the data plane decides it.

    `open` reads the head, `answer` decides with the body; the connection (BotscoreProtocol)
    calls them itself and writes the answer, and `__call__` does the same over ASGI when the app
    runs under another server protocol (or the request took a path the connection leaves to it).
    """

    def __init__(
        self,
        path: str,
        decide: Decide,
        handler: Handler,
        model: ModelSlot,
        metrics: Metrics,
        keys: ApiKeys,
        *,
        max_body_bytes: int,
        shape: Shape = "botscore",
        binary: bool = False,
    ) -> None:
        self.path = path
        self.handler = handler
        self._decide = getattr(handler, decide)
        self.model = model
        self.keys = keys
        self.max_body_bytes = max_body_bytes
        self.shape = shape
        # A shed answer is the same every time: rendered once (shedding must cost little; see protocol.py).
        self._overloaded = Overloaded("the service is over its capacity; retry after the Retry-After seconds")
        self._shed_answer = rendered(Failed(self._overloaded, recorded=False), shape)
        # The Open Inference Protocol's binary tensor data: JSON, then raw tensors, sent as JSON or octet-stream.
        self.binary = binary
        self._media = refusals.BINARY_MEDIA if binary else refusals.JSON_MEDIA
        self._note_request = metrics.note_request
        self.settles = handler.settles
        self._debug = log.isEnabledFor(logging.DEBUG)  # read once: logging is configured before the app is built

    def open(self, method: str, headers: list[tuple[bytes, bytes]], started: float) -> Opened:
        """The call a request head makes (one scan of its headers), and what the head alone refuses."""
        rid = content_type = content_length = authorization = header_length = None
        for name, value in headers:
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
        rid = new_request_id() if rid is None else request_id(rid)
        scorer = self.model.scorer
        call = Call(
            self.path,
            method,
            rid,
            scorer if scorer.split is None else scorer.split.pick(rid),  # a canary's arm, by request id
            time.time(),
            started,
            key_id=self.keys.identify(authorization) if self.keys.required else None,
            header_length=header_length,
        )
        refusal: BotscoreError | None = None
        if method != "POST":
            refusal = refusals.method_not_allowed(method, self.path)
        elif self.keys.required and call.key_id is None:
            refusal = refusals.unauthorized()
        elif content_length is not None and content_length.isdigit() and int(content_length) > self.max_body_bytes:
            refusal = refusals.too_large(self.max_body_bytes)
        return Opened(call, content_type, refusal)

    def answer(self, opened: Opened, body: bytes | None, *, timed_out: bool = False) -> Answer:
        """The answer to an opened request with its body (None: refused before it was read)."""
        call = opened.call
        refusal = opened.refusal
        if refusal is None and body is not None:
            content_type = opened.content_type
            if timed_out:  # the connection ended the body at BOTSCORE_REQUEST_TIMEOUT_SECONDS
                refusal = refusals.timed_out()
            elif len(body) > self.max_body_bytes:
                refusal = refusals.too_large(self.max_body_bytes)
            # An absent Content-Type is taken as JSON: minimal clients omit it, and the body is parsed strictly.
            elif (
                content_type is not None
                and content_type != JSON
                and not _is_json(content_type)
                and not (self.binary and call.header_length is not None and _is_octet_stream(content_type))
            ):
                refusal = refusals.unsupported_media(content_type.decode("latin-1"), self._media)
            call.body = body if len(body) <= self.max_body_bytes else body[: self.max_body_bytes]
            if refusal is None:
                decision: Decision = self._decide(call)
                return rendered(decision, self.shape) if isinstance(decision, Failed) else decision
        assert refusal is not None
        return rendered(self.handler.fail(call, refusal), self.shape)

    async def settle(self, call: Call, answer: Answer) -> Answer:
        """BOTSCORE_AUDIT_SYNC=always: the answer once its record is on disk (or the 503 instead)."""
        if not answer.recorded:
            return answer
        failed = await self.handler.settle(call)
        return answer if failed is None else rendered(failed, self.shape)

    def noted(self, call: Call, answer: Answer) -> None:
        """Count the answer (route, status, latency, key id), in a canary's tally too, and log it at DEBUG."""
        latency = time.perf_counter() - call.started
        self._note_request((self.path, answer.status, latency, call.key_id))
        if call.scorer.watch is not None:
            call.scorer.watch((answer.status, latency))
        if self._debug:
            log.debug(
                "answered",
                extra={
                    "request_id": call.id.decode(),
                    "route": self.path,
                    "status": answer.status,
                    "latency_ms": (time.perf_counter() - call.started) * 1000,
                },
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        opened = self.open(scope["method"], scope["headers"], time.perf_counter())
        body: bytes | None = None
        if opened.refusal is None:
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                body = message.get("body", b"")  # the usual case: the whole body in one message
            else:
                try:
                    body = await _read_rest(receive, message, self.max_body_bytes)
                except _Disconnected:
                    return  # nobody to answer; nothing was answered, so there is nothing to record
        answer = self.answer(opened, body, timed_out=TIMED_OUT in scope)
        call = opened.call
        if self.settles:
            answer = await self.settle(call, answer)
        headers = fields(answer, call.id, call.scorer.version_bytes)
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})
        self.noted(call, answer)

    def shed(self, method: str, headers: list[tuple[bytes, bytes]]) -> bytes:
        """The whole HTTP answer to a request that arrived past the worker's in-flight bound: a 503
        with Retry-After, recorded like any answer, without reading the body (`BotscoreProtocol`)."""
        opened = self.open(method, headers, time.perf_counter())
        call = opened.call
        failed = self.handler.shed(call, self._overloaded)
        answer = self._shed_answer if failed.error is self._overloaded else rendered(failed, self.shape)
        self.noted(call, answer)
        return encode(answer, call.id, call.scorer.version_bytes, close=True)


def scoring_routes(
    handler: Handler, model: ModelSlot, metrics: Metrics, keys: ApiKeys, *, max_body_bytes: int
) -> dict[str, ScoringRoute]:
    """The scoring routes by path; the bound of the routes that take up to 1,000 instances is BATCH_BODY_FACTOR
    times the single one's."""
    return {
        SCORE_PATH: ScoringRoute(SCORE_PATH, "score", handler, model, metrics, keys, max_body_bytes=max_body_bytes),
        BATCH_PATH: ScoringRoute(
            BATCH_PATH,
            "score_batch",
            handler,
            model,
            metrics,
            keys,
            max_body_bytes=max_body_bytes * BATCH_BODY_FACTOR,
        ),
        INFER_PATH: ScoringRoute(
            INFER_PATH,
            "infer",
            handler,
            model,
            metrics,
            keys,
            max_body_bytes=max_body_bytes * BATCH_BODY_FACTOR,
            shape="inference",
            binary=True,
        ),
    }
