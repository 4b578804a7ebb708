"""HTTP: the app that joins the scoring endpoints, health, metrics and the self-hosted API page.

The scoring routes are plain ASGI callables (`endpoints.py`, the hot path); everything else
is an ordinary FastAPI app whose OpenAPI document also describes the scoring routes, from the
same pydantic schemas. Swagger UI's assets come from the pinned `fastapi-offline` package, so
/docs works with no internet and under a strict content policy.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from botscore.dataplane.handler import Handler
from botscore.errors import error_body
from botscore.http.auth import ApiKeys
from botscore.http.endpoints import BATCH_PATH, SCORE_PATH, request_id, scoring_routes
from botscore.http.limits import Limits
from botscore.http.schemas import BatchRequest, BatchResponse, ErrorResponse, Health, Ready, ScoreRequest, ScoreResponse
from botscore.model.scorer import ModelSlot
from botscore.ops.metrics import Metrics

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
METRICS_PATH = "/metrics"
_KNOWN_ROUTES = {LIVENESS_PATH, READINESS_PATH, METRICS_PATH, "/docs", "/openapi.json"}


def _documented_score(request: ScoreRequest) -> ScoreResponse:  # pragma: no cover - served by ScoreEndpoint
    """Score one transaction.

    The body must be exactly `{"x1": number, "x2": number}`: unknown or duplicate fields,
    strings, booleans, nulls, NaN, Infinity and numbers beyond a double are refused with a 4xx
    that names the field. A missing Content-Type is taken as JSON. The request and the answer
    are appended to the audit log before the answer is sent.
    """
    raise NotImplementedError


def _documented_batch(request: BatchRequest) -> BatchResponse:  # pragma: no cover - served by BatchEndpoint
    """Score 1 to 1,000 transactions in one call.

    Each item is checked like a single request and an error names the item
    (`instances[3].x1`); the scores come back in order and equal the single route's.
    Each score is one audit row; the rows share the call's id and carry their `item`.
    """
    raise NotImplementedError


def _error_responses(max_body_bytes: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": ErrorResponse, "description": description}
        for status, description in {
            400: "Malformed JSON, an empty body, or a body that is not UTF-8.",
            401: "BOTSCORE_API_KEYS is set and the request has no `Authorization: Bearer` with one of them.",
            405: "A method other than POST.",
            413: f"A body larger than the bound ({max_body_bytes} bytes by default settings).",
            415: "A Content-Type other than application/json.",
            422: "Valid JSON of the wrong shape; `field` names the culprit.",
            503: "The audit log cannot record the request (spool full or unwritable); see Retry-After.",
        }.items()
    }


def _build_docs_app(
    model: ModelSlot, handler: Handler, metrics: Metrics, max_body_bytes: int, lifespan: Any
) -> FastAPI:
    app = FastAPIOffline(
        title="botscore",
        summary="Probability that a bot made a transaction, from a logistic-regression model.",
        version="1.0.0",
        lifespan=lifespan,
        redoc_url=None,
    )

    @app.get(LIVENESS_PATH, response_model=Health, summary="Liveness: the process answers.", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        READINESS_PATH,
        response_model=Ready,
        summary="Readiness: model loaded and the audit log accepting records.",
        tags=["operations"],
        responses={503: {"model": ErrorResponse, "description": "Not ready; the message says why."}},
    )
    async def readyz() -> Any:
        reason = handler.readiness()
        if reason is not None:
            return JSONResponse(error_body("not_ready", reason), status_code=503)
        return {"status": "ready", "model_version": model.scorer.version}

    @app.get(
        METRICS_PATH,
        summary="Prometheus metrics (text format), all workers.",
        tags=["operations"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}},
    )
    async def metrics_route() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

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

    responses = _error_responses(max_body_bytes)
    documented = [
        APIRoute(
            SCORE_PATH,
            _documented_score,
            methods=["POST"],
            response_model=ScoreResponse,
            responses=responses,
            summary="Score a transaction",
            tags=["scoring"],
            operation_id="score",
        ),
        APIRoute(
            BATCH_PATH,
            _documented_batch,
            methods=["POST"],
            response_model=BatchResponse,
            responses=responses,
            summary="Score up to 1,000 transactions",
            tags=["scoring"],
            operation_id="score_batch",
        ),
    ]

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description="Every response carries `X-Request-ID` (yours if sane, else a new UUID) and "
                "`X-Model-Version`. When `BOTSCORE_API_KEYS` is set, the scoring routes need "
                "`Authorization: Bearer <key>`; health, readiness, metrics and these docs stay open.",
                routes=[*documented, *app.routes],
            )
            schema.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            for path in (SCORE_PATH, BATCH_PATH):
                schema["paths"][path]["post"]["security"] = [{"bearer": []}, {}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema
    return app


class BotscoreApp:
    """The ASGI app: scoring routes to their endpoints, the rest to FastAPI; ids on every answer."""

    def __init__(
        self, routes: dict[str, Any], docs: FastAPI, model: ModelSlot, metrics: Metrics, limits: Limits
    ) -> None:
        self.routes = routes
        self.docs = docs
        self.model = model
        self.metrics = metrics
        self.limits = limits  # read by BotscoreProtocol, the connection it is served over

    def shed(self, method: str, path: str | bytes, headers: list[tuple[bytes, bytes]]) -> bytes | None:
        """The answer to a request past the in-flight bound, or None: only scoring requests are shed
        (health checks must keep answering, or the load balancer takes an overloaded task for dead)."""
        endpoint = self.routes.get(path if isinstance(path, str) else path.decode("latin-1"))
        return None if endpoint is None or method != "POST" else endpoint.shed(method, headers)

    def refused(self, status: int) -> None:
        """Count a request the protocol refused before it had a route (431, 408 on an unfinished head)."""
        self.metrics.note_request(("incomplete", status, 0.0, None))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.docs(scope, receive, send)
            return
        endpoint = self.routes.get(scope["path"])
        if endpoint is not None:
            await endpoint(scope, receive, send)
            return
        started = time.perf_counter()
        rid = request_id(dict(scope["headers"]).get(b"x-request-id"))
        version = self.model.scorer.version_bytes
        route = scope["path"] if scope["path"] in _KNOWN_ROUTES else "other"

        async def send_with_ids(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"x-request-id", rid), (b"x-model-version", version)]
                message = {**message, "headers": headers}
                self.metrics.note_request((route, message["status"], time.perf_counter() - started, None))
            await send(message)

        await self.docs(scope, receive, send_with_ids)


def create_app(
    handler: Handler,
    model: ModelSlot,
    metrics: Metrics,
    *,
    max_body_bytes: int,
    api_keys: ApiKeys | None = None,
    limits: Limits | None = None,
    lifespan: Any = None,
) -> BotscoreApp:
    """Build the ASGI app from its parts; `lifespan` starts and stops them with the server."""
    keys = api_keys or ApiKeys([])
    routes = scoring_routes(handler, model, metrics, keys, max_body_bytes=max_body_bytes)
    docs = _build_docs_app(model, handler, metrics, max_body_bytes, lifespan)
    return BotscoreApp(routes, docs, model, metrics, limits or Limits())
