"""Pydantic models of the API's bodies: the OpenAPI document is generated from these.

The Open Inference Protocol's bodies (KServe v2) are named as its specification names them.
"""

from __future__ import annotations

from typing import Any, Literal

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
    "invalid_datatype",
    "invalid_shape",
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
    """The body of every 4xx and 5xx response (each status's own example is on the operation)."""

    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    model_version: str


class ServerLive(BaseModel):
    live: Literal[True]


class ServerReady(BaseModel):
    ready: Literal[True]


class ModelReady(BaseModel):
    name: Literal["bot-score"]
    ready: Literal[True]


class ServerMetadata(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "botscore", "version": "1.0.0", "extensions": ["binary_tensor_data"]}]}
    )

    name: str
    version: str
    extensions: list[str] = Field(description="Protocol extensions spoken: `binary_tensor_data`.")


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1 for a dimension of any size.")


class ModelMetadata(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "bot-score",
                    "versions": ["lr-0123456789abcdef"],
                    "platform": "botscore-logistic-regression",
                    "inputs": [
                        {"name": "x1", "datatype": "FP64", "shape": [-1]},
                        {"name": "x2", "datatype": "FP64", "shape": [-1]},
                    ],
                    "outputs": [{"name": "p_bot", "datatype": "FP64", "shape": [-1]}],
                }
            ]
        }
    )

    name: str
    versions: list[str] = Field(description="The model version serving now (`X-Model-Version`).")
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class RequestInput(BaseModel):
    """One input tensor: x1 or x2 of shape [N], or features of shape [N, 2]; FP64 or FP32."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["x1", "x2", "features"]
    shape: list[int] = Field(min_length=1, max_length=2, description="[N] for x1 and x2, [N, 2] for features.")
    datatype: Literal["FP64", "FP32"]
    parameters: dict[str, Any] | None = Field(
        default=None, description="`binary_data_size` when the data follows the JSON as binary tensor data."
    )
    data: list[float] | list[list[float]] | None = Field(
        default=None, description="Row-major, flat or nested like the shape; absent with `binary_data_size`."
    )


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["p_bot"]
    parameters: dict[str, Any] | None = Field(
        default=None, description='`{"binary_data": true}` to get p_bot as binary tensor data.'
    )


class InferenceRequest(BaseModel):
    """The features of 1 to 1,000 instances; each is checked like a /bot-score request."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "42",
                    "inputs": [
                        {"name": "x1", "shape": [2], "datatype": "FP64", "data": [0.1, 1.8]},
                        {"name": "x2", "shape": [2], "datatype": "FP64", "data": [0.2, 0.3]},
                    ],
                }
            ]
        },
    )

    id: str | None = Field(default=None, description="Echoed in the response.")
    parameters: dict[str, Any] | None = Field(
        default=None, description='`{"binary_data_output": true}` to get outputs as binary tensor data.'
    )
    inputs: list[RequestInput] = Field(min_length=1, max_length=2)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: Literal["p_bot"]
    shape: list[int] = Field(description="[N].")
    datatype: Literal["FP64"]
    parameters: dict[str, Any] | None = Field(
        default=None, description="`binary_data_size` when p_bot follows the JSON as binary tensor data."
    )
    data: list[float] | None = Field(default=None, description="The scores, in the order of the instances.")


class InferenceResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model_name": "bot-score",
                    "model_version": "lr-0123456789abcdef",
                    "id": "42",
                    "outputs": [{"name": "p_bot", "shape": [2], "datatype": "FP64", "data": [0.921, 0.004]}],
                }
            ]
        }
    )

    model_name: Literal["bot-score"]
    model_version: str
    id: str | None = Field(default=None, description="The request's `id`, when it had one.")
    outputs: list[ResponseOutput]


class InferenceErrorResponse(BaseModel):
    """The Open Inference Protocol's error shape, on every 4xx and 5xx of its routes."""

    error: str = Field(description="What is wrong and how to fix it.")
