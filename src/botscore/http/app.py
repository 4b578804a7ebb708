"""HTTP: the app that joins the scoring endpoints, health, metrics and the self-hosted API page.

The scoring routes are plain ASGI callables (`endpoints.py`, the hot path); everything else
is an ordinary FastAPI app whose OpenAPI document also describes the scoring routes, from the
same pydantic schemas. The Open Inference Protocol's GET routes (health, metadata) are FastAPI
routes here, answered by the data plane's `inference` module; its infer route is a scoring route.
Swagger UI's assets come from the pinned `fastapi-offline` package, so /docs works with no
internet and under a strict content policy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
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

import botscore
from botscore.dataplane import inference, validation
from botscore.dataplane.handler import Handler
from botscore.errors import AuditUnavailable, BotscoreError, RequestError, error_body
from botscore.http.auth import ApiKeys
from botscore.http.endpoints import (
    BATCH_BODY_FACTOR,
    BATCH_PATH,
    INFER_PATH,
    SCORE_PATH,
    ScoringRoute,
    scoring_routes,
)
from botscore.http.ids import request_id
from botscore.http.limits import Limits
from botscore.http.protocol import BotscoreProtocol, ConnectionOptions, bounded
from botscore.http.schemas import (
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    Health,
    InferenceErrorResponse,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ModelReady,
    Ready,
    ScoreRequest,
    ScoreResponse,
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
_VERSIONS = f"{MODEL_PATH}/versions/"
OIP_GET_PATHS = ("/v2", "/v2/health/live", "/v2/health/ready", MODEL_PATH, f"{MODEL_PATH}/ready")
_KNOWN_ROUTES = {LIVENESS_PATH, READINESS_PATH, METRICS_PATH, "/docs", "/openapi.json", *OIP_GET_PATHS}


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


def _documented_infer(request: InferenceRequest) -> InferenceResponse:  # pragma: no cover - served by ScoringRoute
    """Score 1 to 1,000 transactions: the Open Inference Protocol (KServe v2, as Triton and MLServer speak it).

    The features come as two `[N]` tensors named `x1` and `x2`, or as one `[N, 2]` tensor named
    `features` (row i is instance i's x1, x2), each FP64 or FP32, in JSON (flat or nested like the
    shape) or as binary tensor data after the JSON (`parameters.binary_data_size` and the
    `Inference-Header-Content-Length` header; `Content-Type` then `application/octet-stream` or
    absent). `p_bot` comes back as an FP64 tensor of shape `[N]`, each score equal to /bot-score's for
    the same features, in JSON or, when asked (`binary_data` on the output or `binary_data_output`
    on the request), as binary data. The request's `id` is echoed. Every value is checked like a
    /bot-score field; errors are `{"error": "message"}`. Each score is one audit row.
    """
    raise NotImplementedError


def _refusal(parse: Callable[[bytes], object], body: bytes) -> RequestError:
    """The error the data plane really answers to `body`: the documented examples are its own words."""
    try:
        parse(body)
    except RequestError as exc:
        return exc
    raise AssertionError(f"{body!r} was not refused")  # pragma: no cover - a wrong example body


_Examples = dict[int, dict[str, Any]]  # status -> named examples of one operation


def _error_responses(path: str, max_body_bytes: int) -> tuple[dict[int | str, dict[str, Any]], _Examples]:
    """Each error status of a scoring route, and its own examples in that route's error shape."""
    oip = path == INFER_PATH
    media = (
        "application/json, or application/octet-stream with Inference-Header-Content-Length"
        if oip
        else "application/json"
    )
    if oip:
        bad_request = [
            _refusal(lambda body: inference.parse(body, None), body)
            for body in (
                b'{"inputs": [{"name": "x1", "shape": [1], "datatype": "FP64", "data": [NaN]}]}',
                b'{"inputs": [{"name": "x1", "shape": [1], "datatype": "INT64", "data": [1]}]}',
                b'{"inputs": [{"name": "x3", "shape": [1], "datatype": "FP64", "data": [0.1]}]}',
            )
        ]
        invalid = []
    else:
        bad_request = [_refusal(validation.decode, b'{"x1": 0.1,')]
        parse = validation.parse if path == SCORE_PATH else lambda body: validation.instances(validation.decode(body))
        invalid = [
            _refusal(
                parse,
                b'{"x1": "0.1", "x2": 0.2}' if path == SCORE_PATH else b'{"instances": [{"x1": 0.1, "x2": null}]}',
            )
        ]
    errors: dict[int, tuple[str, list[RequestError] | list[AuditUnavailable]]] = {
        400: (
            "Anything the protocol's parser refuses: malformed JSON, unknown inputs or outputs, a wrong datatype or "
            "shape, a value that is not a finite number, N outside 1 to 1,000."
            if oip
            else "Malformed JSON, an empty body, or a body that is not UTF-8.",
            bad_request,
        ),
        401: (
            "BOTSCORE_API_KEYS is set and the request has no `Authorization: Bearer` with one of them.",
            [
                RequestError(
                    "missing or unknown API key: send Authorization: Bearer <key>", status=401, code="unauthorized"
                )
            ],
        ),
        405: (
            "A method other than POST (`Allow: POST`).",
            [RequestError(f"method GET is not allowed on {path}; use POST", status=405, code="method_not_allowed")],
        ),
        413: (
            f"A body larger than the bound ({max_body_bytes} bytes by default settings).",
            [RequestError(f"request body is larger than {max_body_bytes} bytes", status=413, code="body_too_large")],
        ),
        415: (
            f"A Content-Type other than {media}.",
            [
                RequestError(
                    f"Content-Type 'text/plain' is not supported; send {media}",
                    status=415,
                    code="unsupported_media_type",
                )
            ],
        ),
        503: (
            "The audit log cannot record the request (spool full or unwritable); see Retry-After.",
            [
                AuditUnavailable(
                    "audit spool is full (BOTSCORE_AUDIT_SPOOL_MAX_BYTES=1073741824); "
                    "request not scored because it could not be recorded"
                )
            ],
        ),
    }
    if invalid:
        errors[422] = ("Valid JSON of the wrong shape; `field` names the culprit.", invalid)
    render = inference.error_bytes if oip else BotscoreError.body_bytes
    responses: dict[int | str, dict[str, Any]] = {}
    examples: _Examples = {}
    for status, (description, refusals) in sorted(errors.items()):
        assert all(error.status == status for error in refusals), status
        responses[status] = {"model": InferenceErrorResponse if oip else ErrorResponse, "description": description}
        examples[status] = {error.code: {"value": json.loads(render(error))} for error in refusals}
    return responses, examples


def _put_examples(operation: dict[str, Any], examples: _Examples) -> None:
    """Examples put into the generated document: FastAPI would drop their nulls (`"field": null`)."""
    for status, named in examples.items():
        operation["responses"][str(status)]["content"]["application/json"]["examples"] = named


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

    score_errors, score_examples = _error_responses(SCORE_PATH, max_body_bytes)
    batch_errors, batch_examples = _error_responses(BATCH_PATH, max_body_bytes * BATCH_BODY_FACTOR)
    infer_errors, infer_examples = _error_responses(INFER_PATH, max_body_bytes * BATCH_BODY_FACTOR)
    not_ready = error_body(
        "not_ready", "audit spool holds 858993460 bytes, above 80% of BOTSCORE_AUDIT_SPOOL_MAX_BYTES=1073741824"
    )
    documented = [
        APIRoute(
            SCORE_PATH,
            _documented_score,
            methods=["POST"],
            response_model=ScoreResponse,
            responses=score_errors,
            summary="Score a transaction",
            tags=["scoring"],
            operation_id="score",
        ),
        APIRoute(
            BATCH_PATH,
            _documented_batch,
            methods=["POST"],
            response_model=BatchResponse,
            responses=batch_errors,
            summary="Score up to 1,000 transactions",
            tags=["scoring"],
            operation_id="score_batch",
        ),
        APIRoute(
            INFER_PATH,
            _documented_infer,
            methods=["POST"],
            response_model=InferenceResponse,
            response_model_exclude_none=True,
            responses=infer_errors,
            summary="Infer: score 1 to 1,000 transactions (Open Inference Protocol)",
            tags=[_OIP_TAG],
            operation_id="infer",
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
                "`Authorization: Bearer <key>`; health, readiness, metrics and these docs stay open. "
                "The model is also served by the Open Inference Protocol (KServe v2, as Triton and MLServer "
                "speak it) under `/v2`, with that protocol's error shape.",
                routes=[*documented, *app.routes],
            )
            schema.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            for path in (SCORE_PATH, BATCH_PATH, INFER_PATH):
                schema["paths"][path]["post"]["security"] = [{"bearer": []}, {}]
            # The protocol answers 400 to a request it cannot run, and a version path takes any text: no 422s.
            for path, operations in schema["paths"].items():
                if path.startswith(OIP_PREFIX):
                    for operation in operations.values():
                        operation["responses"].pop("422", None)
            if "#/components/schemas/HTTPValidationError" not in json.dumps(schema["paths"]):
                for name in ("HTTPValidationError", "ValidationError"):
                    schema["components"]["schemas"].pop(name, None)
            _put_examples(schema["paths"][SCORE_PATH]["post"], score_examples)
            _put_examples(schema["paths"][BATCH_PATH]["post"], batch_examples)
            _put_examples(schema["paths"][INFER_PATH]["post"], infer_examples)
            _put_examples(schema["paths"][READINESS_PATH]["get"], {503: {"not_ready": {"value": not_ready}}})
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema
    return app


_OIP_TAG = "open inference protocol"


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

    @app.get("/v2", response_model=ServerMetadata, summary="Server metadata", tags=[_OIP_TAG])
    async def server_metadata() -> dict[str, Any]:
        return inference.server_metadata(botscore.__version__)

    @app.get("/v2/health/live", response_model=ServerLive, summary="Server live", tags=[_OIP_TAG])
    async def server_live() -> dict[str, bool]:
        return {"live": True}

    @app.get(
        "/v2/health/ready",
        response_model=ServerReady,
        summary="Server ready: the readiness of /readyz",
        tags=[_OIP_TAG],
        responses=not_ready,
    )
    async def server_ready() -> Any:
        return ready() or {"ready": True}

    @app.get(
        MODEL_PATH,
        response_model=ModelMetadata,
        summary="Model metadata: x1 and x2 as FP64 [-1] (or features as [-1, 2]), p_bot as FP64 [-1]",
        tags=[_OIP_TAG],
    )
    async def model_metadata() -> dict[str, Any]:
        return inference.model_metadata(model.scorer.version)

    @app.get(
        f"{MODEL_PATH}/ready",
        response_model=ModelReady,
        summary="Model ready: the readiness of /readyz (the model cannot score what the audit log cannot keep)",
        tags=[_OIP_TAG],
        responses=not_ready,
    )
    async def model_ready() -> Any:
        return ready() or {"name": inference.MODEL_NAME, "ready": True}

    @app.get(
        _VERSIONS + "{model_version}",
        response_model=ModelMetadata,
        summary="Model metadata of a version (the one serving now)",
        tags=[_OIP_TAG],
        responses=unknown_version,
    )
    async def version_metadata(model_version: str) -> Any:
        return other_version(model_version) or inference.model_metadata(model.scorer.version)

    @app.get(
        _VERSIONS + "{model_version}/ready",
        response_model=ModelReady,
        summary="Model ready, of a version (the one serving now)",
        tags=[_OIP_TAG],
        responses={**unknown_version, **not_ready},
    )
    async def version_ready(model_version: str) -> Any:
        return other_version(model_version) or ready() or {"name": inference.MODEL_NAME, "ready": True}

    # POST to the version serving now goes to the infer route (BotscoreApp); any other version ends here.
    @app.post(_VERSIONS + "{model_version}/infer", include_in_schema=False)
    async def version_infer(model_version: str) -> Any:
        return other_version(model_version) or JSONResponse(
            {"error": f"model {inference.MODEL_NAME} changed version; try again"}, status_code=404
        )


class BotscoreApp:
    """The ASGI app: scoring routes to their endpoints, the rest to FastAPI; ids on every answer."""

    def __init__(
        self,
        routes: dict[str, ScoringRoute],
        docs: FastAPI,
        model: ModelSlot,
        metrics: Metrics,
        limits: Limits | None,
    ) -> None:
        self.routes = routes
        self.docs = docs
        self.model = model
        self.metrics = metrics
        self.limits = limits  # None: the app is served without connection bounds (tests in-process)
        self.bounded = False  # True once a protocol factory with these bounds was made (`protocol`)

    def protocol(self) -> type[BotscoreProtocol]:
        """uvicorn's `http` option for this app: connections built with its bounds, its shedding,
        and its scoring routes answered by the connection (not when answers wait for an fsync)."""
        if self.limits is None:
            raise ValueError("an app built without limits has no bounds to serve with")
        self.bounded = True
        inline = {} if any(route.settles for route in self.routes.values()) else self.routes
        return bounded(
            ConnectionOptions(
                self.limits,
                routes={path.encode(): route for path, route in inline.items()},
                shed=self.shed,
                refused=self.refused,
            )
        )

    def route(self, path: str) -> ScoringRoute | None:
        """The scoring route of a path: its own, or the infer route's versioned path of the version serving now."""
        found = self.routes.get(path)
        if found is None and path.startswith(_VERSIONS) and path == f"{_VERSIONS}{self.model.scorer.version}/infer":
            return self.routes[INFER_PATH]
        return found

    def shed(self, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> bytes | None:
        """The answer to a request past the in-flight bound, or None: only scoring requests are shed
        (health checks must keep answering, or the load balancer takes an overloaded task for dead)."""
        route = self.route(path)
        return None if route is None or method != "POST" else route.shed(method, headers)

    def refused(self, status: int) -> None:
        """Count a request the connection refused before it had a route (400, 431, 408 on an unfinished head)."""
        self.metrics.note_request(("incomplete", status, 0.0, None))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.docs(scope, receive, send)
            return
        route = self.route(scope["path"])
        if route is not None:
            await route(scope, receive, send)
            return
        started = time.perf_counter()
        rid = request_id(dict(scope["headers"]).get(b"x-request-id"))
        version = self.model.scorer.version_bytes
        name = scope["path"] if scope["path"] in _KNOWN_ROUTES else "other"

        async def send_with_ids(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"x-request-id", rid), (b"x-model-version", version)]
                message = {**message, "headers": headers}
                self.metrics.note_request((name, message["status"], time.perf_counter() - started, None))
            await send(message)

        await self.docs(scope, receive, send_with_ids)


def create_app(
    handler: Handler,
    model: ModelSlot,
    metrics: Metrics,
    *,
    max_body_bytes: int,
    limits: Limits | None = None,
    api_keys: ApiKeys | None = None,
    lifespan: Any = None,
) -> BotscoreApp:
    """Build the ASGI app from its parts; `lifespan` starts and stops them with the server."""
    keys = api_keys or ApiKeys([])
    routes = scoring_routes(handler, model, metrics, keys, max_body_bytes=max_body_bytes)
    docs = _build_docs_app(model, handler, metrics, max_body_bytes, lifespan)
    return BotscoreApp(routes, docs, model, metrics, limits)
