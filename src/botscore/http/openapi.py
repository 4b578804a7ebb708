"""HTTP: the OpenAPI document of the scoring routes, which are plain ASGI callables (`endpoints.py`):
stub routes from the same pydantic schemas, and each error status with examples that are the
refusals the routes really answer (`refusals.py`, the data plane's parsers).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from botscore.call import Failed
from botscore.dataplane import inference, validation
from botscore.errors import AuditUnavailable, RequestError, error_body
from botscore.http import refusals
from botscore.http.answers import Shape, rendered
from botscore.http.endpoints import (
    BATCH_BODY_FACTOR,
    BATCH_PATH,
    INFER_PATH,
    SCORE_PATH,
)
from botscore.http.operations import OIP_PREFIX, OIP_TAG, READINESS_PATH, VERSIONS
from botscore.http.schemas import (
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    InferenceErrorResponse,
    InferenceRequest,
    InferenceResponse,
    ScoreRequest,
    ScoreResponse,
)


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
    media = refusals.BINARY_MEDIA if oip else refusals.JSON_MEDIA
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
            [refusals.unauthorized()],
        ),
        405: (
            "A method other than POST (`Allow: POST`).",
            [refusals.method_not_allowed("GET", path)],
        ),
        413: (
            f"A body larger than the bound ({max_body_bytes} bytes by default settings).",
            [refusals.too_large(max_body_bytes)],
        ),
        415: (
            f"A Content-Type other than {media}.",
            [refusals.unsupported_media("text/plain", media)],
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
    shape: Shape = "inference" if oip else "botscore"
    responses: dict[int | str, dict[str, Any]] = {}
    examples: _Examples = {}
    for status, (description, refused) in sorted(errors.items()):
        assert all(error.status == status for error in refused), status
        responses[status] = {"model": InferenceErrorResponse if oip else ErrorResponse, "description": description}
        examples[status] = {error.code: {"value": json.loads(rendered(Failed(error), shape).body)} for error in refused}
    return responses, examples


def _put_examples(operation: dict[str, Any], examples: _Examples) -> None:
    """Examples put into the generated document: FastAPI would drop their nulls (`"field": null`)."""
    for status, named in examples.items():
        operation["responses"][str(status)]["content"]["application/json"]["examples"] = named


VERSIONED_INFER = VERSIONS + "{model_version}/infer"


def _versioned_infer(paths: dict[str, Any]) -> None:
    """The Open Inference Protocol's versioned infer route, which the app answers outside the schema (the
    version serving now scores as the infer route, any other is a 404): the infer operation, under the
    version's path, with the version's parameter and 404, after the version's other routes."""
    operation = copy.deepcopy(paths[INFER_PATH]["post"])
    metadata = paths[VERSIONS + "{model_version}"]["get"]
    operation["summary"] = operation["summary"].replace("Infer:", "Infer, of a version (the one serving now):")
    operation["operationId"] = "infer_version"
    operation["parameters"] = copy.deepcopy(metadata["parameters"])
    operation["responses"]["404"] = copy.deepcopy(metadata["responses"]["404"])
    operation["responses"] = dict(sorted(operation["responses"].items()))
    paths[VERSIONED_INFER] = {"post": operation}


def document(app: FastAPI, max_body_bytes: int) -> None:
    """Make `app`'s OpenAPI document describe the scoring routes too, each error with its own examples."""
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
            tags=[OIP_TAG],
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
            _versioned_infer(schema["paths"])
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema
