"""Pydantic models of the API's bodies: the OpenAPI document is generated from these."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ScoreRequest(BaseModel):
    """Two features of one transaction (see the README for what they measure)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"x1": 0.1, "x2": 0.2}]})

    x1: float = Field(description="log10 of seconds from checkout page load to payment submit; finite.")
    x2: float = Field(description="log10(1 + checkout attempts from the client's IP in the past hour); finite.")


class ScoreResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"p_bot": 0.123}]})

    p_bot: float = Field(ge=0.0, le=1.0, description="Probability that a bot made the transaction.")


ErrorCode = Literal[
    "malformed_json",
    "invalid_encoding",
    "invalid_body",
    "duplicate_key",
    "unknown_field",
    "missing_field",
    "invalid_type",
    "not_finite",
    "invalid_batch_size",
    "unauthorized",
    "body_too_large",
    "unsupported_media_type",
    "method_not_allowed",
    "not_found",
    "not_ready",
    "audit_unavailable",
    "internal_error",
]


class BatchRequest(BaseModel):
    """Up to 1,000 transactions scored in one call; each item is checked like a single request."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"instances": [{"x1": 0.1, "x2": 0.2}, {"x1": 1.8, "x2": 0.3}]}]},
    )

    instances: list[ScoreRequest] = Field(min_length=1, max_length=1000)


class BatchResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"p_bot": [0.921, 0.004]}]})

    p_bot: list[float] = Field(description="Scores in the order of `instances`.")


class ErrorDetail(BaseModel):
    code: ErrorCode = Field(description="Stable machine-readable kind of error.")
    message: str = Field(description="What is wrong and how to fix it.")
    field: str | None = Field(description="The request field at fault, when there is one.")


class ErrorResponse(BaseModel):
    """The body of every 4xx and 5xx response."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"error": {"code": "invalid_type", "message": "x1 must be a number, got a string", "field": "x1"}}
            ]
        }
    )

    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    model_version: str
