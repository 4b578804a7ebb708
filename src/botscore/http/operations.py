"""HTTP: the routes that are not scoring routes, as one FastAPI app: liveness, readiness, metrics,
the Open Inference Protocol's GET routes (health, metadata: answered by the data plane's
`inference` module) and the API page. Swagger UI's assets come from the pinned
`fastapi-offline` package, so /docs works with no internet and under a strict content policy.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

import botscore
from botscore.dataplane import inference
from botscore.dataplane.handler import Handler
from botscore.errors import error_body
from botscore.http.schemas import (
    ErrorResponse,
    Health,
    InferenceErrorResponse,
    ModelMetadata,
    ModelReady,
    Ready,
    ServerLive,
    ServerMetadata,
    ServerReady,
)
from botscore.model.scorer import ModelSlot
from botscore.ops.metrics import Metrics

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
METRICS_PATH = "/metrics"
OIP_PREFIX = "/v2"
MODEL_PATH = f"/v2/models/{inference.MODEL_NAME}"
VERSIONS = f"{MODEL_PATH}/versions/"
OIP_GET_PATHS = ("/v2", "/v2/health/live", "/v2/health/ready", MODEL_PATH, f"{MODEL_PATH}/ready")
KNOWN_ROUTES = {LIVENESS_PATH, READINESS_PATH, METRICS_PATH, "/docs", "/openapi.json", *OIP_GET_PATHS}


def operations_app(
    model: ModelSlot, handler: Handler, metrics: Metrics, lifespan: Any, *, metrics_cache_seconds: float = 0.0
) -> FastAPI:
    """The FastAPI app of every route but the scoring ones: health, readiness, metrics (rendered at most
    once every `metrics_cache_seconds`), the Open Inference Protocol's GET routes, /docs; errors in
    botscore's shape (the protocol's under /v2)."""
    app = FastAPIOffline(
        title="botscore",
        summary="Probability that a bot made a transaction, from a logistic-regression model.",
        version="1.0.0",
        lifespan=lifespan,
        redoc_url=None,
    )

    @app.get(
        LIVENESS_PATH,
        response_model=Health,
        summary="Liveness: the process answers, and has no spool fault of its own.",
        tags=["operations"],
        responses={
            503: {
                "model": ErrorResponse,
                "description": "This task cannot use the audit spool while other workers write to it: replace it.",
            }
        },
    )
    async def healthz() -> Any:
        fault = handler.local_fault()  # a flag the housekeeping thread sets: no storage call here
        if fault is not None:
            return JSONResponse(error_body("local_fault", fault), status_code=503)
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
        return Response(rendered.get(), media_type=CONTENT_TYPE_LATEST)

    rendered = _Rendered(metrics, metrics_cache_seconds)

    _add_inference_routes(app, model, handler)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        path = request.url.path
        if path == OIP_PREFIX or path.startswith(OIP_PREFIX + "/"):  # the protocol's error shape on its routes
            return JSONResponse({"error": _inference_route_error(path, exc)}, exc.status_code, exc.headers)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        message = f"no route {path}" if exc.status_code == 404 else str(exc.detail)
        return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(part) for part in first.get("loc", ())[1:]) or None
        return JSONResponse(error_body("invalid_type", first.get("msg", "invalid request"), field), status_code=422)

    return app


class _Rendered:
    """The metrics' text, rendered again only once older than `seconds`: scrapes at any rate cost one
    render a period, not one each (a render costs 9-17 ms of CPU; 126 scrapes a second delayed keyed
    scoring past 3 s)."""

    def __init__(self, metrics: Metrics, seconds: float) -> None:
        self._metrics = metrics
        self._seconds = seconds
        self._body = b""
        self._due = 0.0

    def get(self) -> bytes:
        now = time.monotonic()
        if now >= self._due:
            self._body = self._metrics.exposition()
            self._due = now + self._seconds
        return self._body


OIP_TAG = "open inference protocol"


def _inference_route_error(path: str, exc: StarletteHTTPException) -> str:
    """The message of a FastAPI-level error under /v2: an unknown model is named as such."""
    parts = path.split("/")
    if exc.status_code == 404 and len(parts) > 3 and parts[2] == "models" and parts[3] != inference.MODEL_NAME:
        return f"unknown model {parts[3]!r}: this server serves one model, {inference.MODEL_NAME}"
    return f"no route {path}" if exc.status_code == 404 else str(exc.detail)


def _add_inference_routes(app: FastAPI, model: ModelSlot, handler: Handler) -> None:
    """The Open Inference Protocol's health and metadata routes for the one model (infer is a scoring route)."""
    not_ready: dict[int | str, dict[str, Any]] = {
        503: {
            "model": InferenceErrorResponse,
            "description": "Not ready: the same reason as /readyz's.",
            "content": {"application/json": {"example": {"error": "audit spool unavailable: cannot use /spool"}}},
        }
    }
    unknown_version: dict[int | str, dict[str, Any]] = {
        404: {
            "model": InferenceErrorResponse,
            "description": "Not the version serving now.",
            "content": {
                "application/json": {
                    "example": {"error": "model bot-score has no version 'lr-0'; it serves lr-0123456789abcdef"}
                }
            },
        }
    }

    def ready() -> JSONResponse | None:
        reason = handler.readiness()
        return None if reason is None else JSONResponse({"error": reason}, status_code=503)

    def other_version(version: str) -> JSONResponse | None:
        serving = model.scorer.version
        if version == serving:
            return None
        message = f"model {inference.MODEL_NAME} has no version {version!r}; it serves {serving}"
        return JSONResponse({"error": message}, status_code=404)

    @app.get("/v2", response_model=ServerMetadata, summary="Server metadata", tags=[OIP_TAG])
    async def server_metadata() -> dict[str, Any]:
        return inference.server_metadata(botscore.__version__)

    @app.get("/v2/health/live", response_model=ServerLive, summary="Server live", tags=[OIP_TAG])
    async def server_live() -> dict[str, bool]:
        return {"live": True}

    @app.get(
        "/v2/health/ready",
        response_model=ServerReady,
        summary="Server ready: the readiness of /readyz",
        tags=[OIP_TAG],
        responses=not_ready,
    )
    async def server_ready() -> Any:
        return ready() or {"ready": True}

    @app.get(
        MODEL_PATH,
        response_model=ModelMetadata,
        summary="Model metadata: x1 and x2 as FP64 [-1] (or features as [-1, 2]), p_bot as FP64 [-1]",
        tags=[OIP_TAG],
    )
    async def model_metadata() -> dict[str, Any]:
        return inference.model_metadata(model.scorer.version)

    @app.get(
        f"{MODEL_PATH}/ready",
        response_model=ModelReady,
        summary="Model ready: the readiness of /readyz (the model cannot score what the audit log cannot keep)",
        tags=[OIP_TAG],
        responses=not_ready,
    )
    async def model_ready() -> Any:
        return ready() or {"name": inference.MODEL_NAME, "ready": True}

    @app.get(
        VERSIONS + "{model_version}",
        response_model=ModelMetadata,
        summary="Model metadata of a version (the one serving now)",
        tags=[OIP_TAG],
        responses=unknown_version,
    )
    async def version_metadata(model_version: str) -> Any:
        return other_version(model_version) or inference.model_metadata(model.scorer.version)

    @app.get(
        VERSIONS + "{model_version}/ready",
        response_model=ModelReady,
        summary="Model ready, of a version (the one serving now)",
        tags=[OIP_TAG],
        responses={**unknown_version, **not_ready},
    )
    async def version_ready(model_version: str) -> Any:
        return other_version(model_version) or ready() or {"name": inference.MODEL_NAME, "ready": True}

    # POST to the version serving now goes to the infer route (BotscoreApp); any other version ends here.
    @app.post(VERSIONS + "{model_version}/infer", include_in_schema=False)
    async def version_infer(model_version: str) -> Any:
        return other_version(model_version) or JSONResponse(
            {"error": f"model {inference.MODEL_NAME} changed version; try again"}, status_code=404
        )
