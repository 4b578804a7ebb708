"""HTTP: the scoring endpoint, health routes, the OpenAPI page, and the app that joins them.

`POST /bot-score` is a plain ASGI callable rather than a FastAPI route: it is the hot path,
and FastAPI's routing, dependency and pydantic layers would cost more than the scoring and
audit work together. Everything else (health, readiness, /docs) is an ordinary FastAPI app,
and the OpenAPI document describes /bot-score from the same pydantic schemas.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from app import records, validation
from app.audit import RETRY_AFTER_SECONDS, AuditLog
from app.errors import AuditUnavailable, BotscoreError, RequestError, error_body, error_bytes
from app.schemas import ErrorResponse, Health, Ready, ScoreRequest, ScoreResponse
from app.scoring import Scorer

SCORE_PATH = "/bot-score"
LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
_JSON = b"application/json"


class ModelSlot:
    """Holds the serving Scorer; replacing `scorer` swaps the model for the next request."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer


_UUID4_BITS = (0x4 << 76) | (0x2 << 62)  # version 4, RFC 4122 variant
_UUID4_MASK = ~((0xF << 76) | (0x3 << 62))


def new_request_id() -> bytes:
    """A random UUID4 string. Not uuid.uuid4(): its os.urandom call costs a syscall per request,
    and ids need uniqueness, not secrecy (the generator is reseeded in every process)."""
    h = "%032x" % (random.getrandbits(128) & _UUID4_MASK | _UUID4_BITS)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}".encode()


def _request_id(raw: bytes | None) -> bytes:
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


async def _read_body(receive: Receive, limit: int) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body", False) and message["type"] == "http.request":
        if len(body) > limit:
            raise _TooLarge(body[:limit])
        return body
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
    if message["type"] == "http.disconnect":
        raise _Disconnected
    if size > limit:
        raise _TooLarge(b"".join(chunks)[:limit])
    return b"".join(chunks)


class ScoreEndpoint:
    """POST /bot-score: validate, score, spool the audit record, then answer."""

    def __init__(self, model: ModelSlot, audit: AuditLog, *, max_body_bytes: int) -> None:
        self.model = model
        self.audit = audit
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        now = time.time()
        scorer = self.model.scorer  # one model per request, even if a reload swaps it meanwhile
        request_id = content_type = content_length = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"x-request-id":
                request_id = value
            elif name == b"content-length":
                content_length = value
        rid = _request_id(request_id)
        body: bytes | None = None
        try:
            if scope["method"] != "POST":
                raise RequestError(
                    f"method {scope['method']} is not allowed on {SCORE_PATH}; use POST",
                    status=405,
                    code="method_not_allowed",
                )
            if content_length is not None and content_length.isdigit() and int(content_length) > self.max_body_bytes:
                raise _TooLarge(b"")
            body = await _read_body(receive, self.max_body_bytes)
            if not _is_json(content_type):
                raise RequestError(
                    f"Content-Type {content_type.decode('latin-1')!r} is not supported; send application/json",
                    status=415,
                    code="unsupported_media_type",
                )
            x1, x2 = validation.parse(body)
        except _Disconnected:
            return  # nobody to answer; nothing was answered, so there is nothing to record
        except _TooLarge as exc:
            body = exc.head
            error = RequestError(
                f"request body is larger than {self.max_body_bytes} bytes", status=413, code="body_too_large"
            )
            await self._fail(scope, send, rid, now, started, scorer, error, None, body)
            return
        except RequestError as exc:
            await self._fail(scope, send, rid, now, started, scorer, exc, validation.decoded(body), body)
            return
        p_bot = scorer.p_bot(x1, x2)
        response = f'{{"p_bot":{p_bot!r}}}'.encode()
        line = records.scored_line(
            rid.decode(), now, x1, x2, response, scorer.version_json, (time.perf_counter() - started) * 1000
        )
        try:
            self.audit.record(line)
        except AuditUnavailable as exc:
            await _send(send, exc.status, exc.body_bytes(), rid, scorer, _RETRY_AFTER)
            return
        await _send(send, 200, response, rid, scorer)

    async def _fail(
        self,
        scope: Scope,
        send: Send,
        rid: bytes,
        now: float,
        started: float,
        scorer: Scorer,
        error: BotscoreError,
        document: Any,
        body: bytes | None,
    ) -> None:
        response = error.body()
        line = records.error_line(
            rid.decode(),
            now,
            scope["method"],
            scope["path"],
            error.status,
            document,
            body if document is None else None,
            response,
            scorer.version,
            (time.perf_counter() - started) * 1000,
        )
        try:
            self.audit.record(line)
        except AuditUnavailable as exc:
            await _send(send, exc.status, exc.body_bytes(), rid, scorer, _RETRY_AFTER)
            return
        extra = [(b"allow", b"POST")] if error.status == 405 else []
        await _send(send, error.status, error_bytes(error.code, error.message, error.field), rid, scorer, extra)


_RETRY_AFTER = [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())]


async def _send(
    send: Send, status: int, body: bytes, rid: bytes, scorer: Scorer, extra: list[tuple[bytes, bytes]] = []
) -> None:
    headers = [
        (b"content-type", _JSON),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", rid),
        (b"x-model-version", scorer.version_bytes),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _documented_score(request: ScoreRequest) -> ScoreResponse:  # pragma: no cover - never called
    """Score one transaction.

    The body must be exactly `{"x1": number, "x2": number}`: unknown or duplicate fields,
    strings, booleans, nulls, NaN, Infinity and numbers beyond a double are refused with a 4xx
    that names the field. A missing Content-Type is taken as JSON. The request and the answer
    are appended to the audit log before the answer is sent.
    """
    raise NotImplementedError


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "Malformed JSON, an empty body, or a body that is not UTF-8.",
        405: "A method other than POST.",
        413: "A body larger than BOTSCORE_MAX_BODY_BYTES.",
        415: "A Content-Type other than application/json.",
        422: "Valid JSON that is not exactly {x1: number, x2: number}; `field` names the culprit.",
        503: "The audit log cannot record the request (spool full or unwritable); see Retry-After.",
    }.items()
}


def _build_docs_app(model: ModelSlot, audit: AuditLog, lifespan: Any) -> FastAPI:
    app = FastAPI(
        title="botscore",
        summary="Probability that a bot made a transaction, from a logistic-regression model.",
        version="1.0.0",
        lifespan=lifespan,
    )

    @app.get(LIVENESS_PATH, response_model=Health, summary="Liveness: the process answers.")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        READINESS_PATH,
        response_model=Ready,
        summary="Readiness: model loaded and the audit log accepting records.",
        responses={503: {"model": ErrorResponse, "description": "Not ready; the message says why."}},
    )
    async def readyz() -> Any:
        reason = audit.readiness()
        if reason is not None:
            return JSONResponse(error_body("not_ready", reason), status_code=503)
        return {"status": "ready", "model_version": model.scorer.version}

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        message = f"no route {request.url.path}" if exc.status_code == 404 else str(exc.detail)
        return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(part) for part in first.get("loc", ())[1:]) or None
        return JSONResponse(error_body("invalid_type", first.get("msg", "invalid request"), field), status_code=422)

    score_route = APIRoute(
        SCORE_PATH,
        _documented_score,
        methods=["POST"],
        response_model=ScoreResponse,
        responses=_ERROR_RESPONSES,
        summary="Score a transaction",
        tags=["scoring"],
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description="Every response carries `X-Request-ID` (yours if sane, else a new UUID) "
                "and `X-Model-Version`.",
                routes=[score_route, *app.routes],
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


class BotscoreApp:
    """The ASGI app: /bot-score to the scoring endpoint, the rest to FastAPI, ids on every answer."""

    def __init__(self, score: ScoreEndpoint, docs: FastAPI, model: ModelSlot) -> None:
        self.score = score
        self.docs = docs
        self.model = model

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.docs(scope, receive, send)
            return
        if scope["path"] == SCORE_PATH:
            await self.score(scope, receive, send)
            return
        rid = _request_id(dict(scope["headers"]).get(b"x-request-id"))
        version = self.model.scorer.version_bytes

        async def send_with_ids(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"x-request-id", rid), (b"x-model-version", version)]
                message = {**message, "headers": headers}
            await send(message)

        await self.docs(scope, receive, send_with_ids)


def create_app(model: ModelSlot, audit: AuditLog, *, max_body_bytes: int, lifespan: Any = None) -> BotscoreApp:
    """Build the ASGI app from its parts; `lifespan` starts and stops them with the server."""
    docs = _build_docs_app(model, audit, lifespan)
    return BotscoreApp(ScoreEndpoint(model, audit, max_body_bytes=max_body_bytes), docs, model)
