"""The Open Inference Protocol (KServe v2) for the one model, without HTTP: an infer request's
tensors to (x1, x2) pairs, the scores back as the `p_bot` tensor, and the protocol's metadata.

A request holds the features as two [N] tensors named x1 and x2, or as one [N, 2] tensor named
`features` (row i is instance i's x1, x2), FP64 or FP32, with 1 <= N <= 1,000 (the batch route's
bound). Data comes in JSON (flat in row-major order, or nested like the shape), or as binary tensor
data after the JSON (the protocol's binary tensor data extension). The strictness is /bot-score's:
the same JSON decoder (duplicate keys, NaN, Infinity, numbers beyond a double and deep nesting are
refused) and the same number rule for every element. An FP32 value sent in JSON is read as the
number written, not rounded to single precision, so it scores exactly as /bot-score scores that
number; binary FP32 is widened to a double exactly. Every refusal is a 400, as Triton and KServe
answer, and its `code` is kept in the audit row.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any, NamedTuple

from botscore.dataplane import validation
from botscore.errors import RequestError

MODEL_NAME = "bot-score"
PLATFORM = "botscore-logistic-regression"
FEATURES = "features"  # the one-tensor form, [N, 2]
INPUTS = ("x1", "x2")
OUTPUT = "p_bot"
EXTENSIONS = ("binary_tensor_data",)
_FORMATS = {"FP64": ("d", 8), "FP32": ("f", 4)}
_REQUEST_FIELDS = ("id", "parameters", "inputs", "outputs")
_INPUT_FIELDS = ("name", "shape", "datatype", "parameters", "data")
_OUTPUT_FIELDS = ("name", "parameters")
_FORMS = "send x1 and x2 as two [N] tensors, or features as one [N, 2] tensor"


class InferRequest(NamedTuple):
    """What an infer request asks: the features in order, its id to echo, and how to send p_bot."""

    pairs: list[tuple[float, float]]
    id: str | None
    binary_output: bool


def parse(body: bytes, header_length: bytes | None) -> InferRequest:
    """An infer request's body (and its Inference-Header-Content-Length, if any) to what it asks,
    or RequestError (400) naming the problem."""
    try:
        return _parse(body, header_length)
    except RequestError as exc:
        exc.status = 400  # what the protocol's servers answer to a request they cannot run
        raise


def response(request: InferRequest, model_version: str, scores: list[float]) -> tuple[bytes, int | None]:
    """The answer's body, and the length of its JSON part when the scores follow it as binary data."""
    output: dict[str, Any] = {"name": OUTPUT, "datatype": "FP64", "shape": [len(scores)]}
    binary = b""
    if request.binary_output:
        binary = struct.pack(f"<{len(scores)}d", *scores)
        output["parameters"] = {"binary_data_size": len(binary)}
    else:
        output["data"] = scores  # repr of each double: read back, the very same bits
    document: dict[str, Any] = {"model_name": MODEL_NAME, "model_version": model_version}
    if request.id is not None:
        document["id"] = request.id
    document["outputs"] = [output]
    header = json.dumps(document, separators=(",", ":")).encode()
    if not request.binary_output:
        return header, None
    return header + binary, len(header)


def server_metadata(version: str) -> dict[str, Any]:
    """GET /v2: the server's name, version and the protocol extensions it speaks."""
    return {"name": "botscore", "version": version, "extensions": list(EXTENSIONS)}


def model_metadata(model_version: str) -> dict[str, Any]:
    """GET /v2/models/bot-score: the model's inputs and output (the [N, 2] `features` form is accepted too)."""
    return {
        "name": MODEL_NAME,
        "versions": [model_version],
        "platform": PLATFORM,
        "inputs": [{"name": name, "datatype": "FP64", "shape": [-1]} for name in INPUTS],
        "outputs": [{"name": OUTPUT, "datatype": "FP64", "shape": [-1]}],
    }


def _bad(message: str, code: str, field: str | None = None) -> RequestError:
    return RequestError(message, field=field, status=400, code=code)


def _parse(body: bytes, header_length: bytes | None) -> InferRequest:
    json_part, binary = _split(body, header_length)
    document = validation.decode(json_part)
    if not isinstance(document, dict):
        raise _bad(
            f'request body must be an inference request like {{"inputs": [...]}}, got {validation.kind(document)}',
            "invalid_body",
        )
    for key in document:
        if key not in _REQUEST_FIELDS:
            raise _bad(
                f"unknown field {key!r}: an inference request has id, parameters, inputs and outputs",
                "unknown_field",
                key,
            )
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise _bad(f"id must be a string, got {validation.kind(request_id)}", "invalid_type", "id")
    parameters = _object(document.get("parameters"), "parameters")
    binary_output = _flag(parameters, "binary_data_output", "parameters")
    binary_output = _outputs(document.get("outputs"), binary_output)
    if "inputs" not in document:
        raise _bad(f"inputs is required: {_FORMS}", "missing_field", "inputs")
    inputs = document["inputs"]
    if not isinstance(inputs, list):
        raise _bad(f"inputs must be an array, got {validation.kind(inputs)}", "invalid_type", "inputs")
    tensors: dict[str, tuple[int, list[float]]] = {}
    offset = 0
    for index, item in enumerate(inputs):
        name, count, values, offset = _tensor(item, f"inputs[{index}]", binary, offset)
        if name in tensors:
            raise _bad(f"input {name} appears twice", "duplicate_key", f"inputs[{index}].name")
        tensors[name] = (count, values)
    if binary is not None and offset != len(binary):
        raise _bad(
            f"{len(binary) - offset} bytes of binary data follow the JSON that no input's binary_data_size claims",
            "invalid_body",
        )
    return InferRequest(_pairs(tensors), request_id, binary_output)


def _split(body: bytes, header_length: bytes | None) -> tuple[bytes, bytes | None]:
    """The JSON part of the body, and the binary data after it (None without Inference-Header-Content-Length)."""
    if header_length is None:
        return body, None
    text = header_length.decode("latin-1").strip()
    # isascii: str.isdigit() takes "²" too, which int() refuses; 10 digits: int() refuses over 4,300
    if not (text.isascii() and text.isdigit() and len(text) <= 10) or not 0 < int(text) <= len(body):
        raise _bad(
            f"Inference-Header-Content-Length must be the length of the JSON part of the body "
            f"(1 to {len(body)} bytes here), got {text[:40]!r}",
            "invalid_body",
        )
    return body[: int(text)], body[int(text) :]


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(f"{where} must be an object, got {validation.kind(value)}", "invalid_type", where)
    return value


def _flag(parameters: dict[str, Any], name: str, where: str) -> bool:
    value = parameters.get(name, False)
    if not isinstance(value, bool):
        raise _bad(f"{where}.{name} must be true or false, got {validation.kind(value)}", "invalid_type")
    return value


def _count(value: Any, where: str) -> int:
    """A non-negative integer, as the decoder gives numbers: a float with no fraction."""
    if type(value) is not float or not value.is_integer() or value < 0:
        shown = validation.as_text(value) if type(value) is not float else repr(value)
        raise _bad(f"{where} must be a non-negative integer, got {shown}", "invalid_type", where)
    return int(value)


def _outputs(outputs: Any, binary_output: bool) -> bool:
    """Whether p_bot goes back as binary data: its own `binary_data`, else the request's `binary_data_output`."""
    if outputs is None:
        return binary_output
    if not isinstance(outputs, list):
        raise _bad(f"outputs must be an array, got {validation.kind(outputs)}", "invalid_type", "outputs")
    for index, item in enumerate(outputs):
        where = f"outputs[{index}]"
        if not isinstance(item, dict):
            raise _bad(f"{where} must be an object, got {validation.kind(item)}", "invalid_type", where)
        for key in item:
            if key not in _OUTPUT_FIELDS:
                raise _bad(f"unknown field {key!r} in {where}: it has name and parameters", "unknown_field", where)
        name = item.get("name")
        if name != OUTPUT:
            shown = repr(name) if isinstance(name, str) else validation.kind(name)
            raise _bad(f"unknown output {shown}: the only output is {OUTPUT}", "unknown_field", f"{where}.name")
        parameters = _object(item.get("parameters"), f"{where}.parameters")
        for unsupported in ("classification", "shared_memory_region"):
            if unsupported in parameters:
                raise _bad(
                    f"{where}.parameters.{unsupported}: that extension is not supported; "
                    "the supported extension is binary_tensor_data",
                    "invalid_body",
                    f"{where}.parameters",
                )
        if "binary_data" in parameters:
            binary_output = _flag(parameters, "binary_data", f"{where}.parameters")
    return binary_output


def _tensor(item: Any, where: str, binary: bytes | None, offset: int) -> tuple[str, int, list[float], int]:
    """One input: its name, its N, its values in row-major order, and the offset past its binary data."""
    if not isinstance(item, dict):
        raise _bad(f"{where} must be an object, got {validation.kind(item)}", "invalid_type", where)
    for key in item:
        if key not in _INPUT_FIELDS:
            raise _bad(
                f"unknown field {key!r} in {where}: an input has name, shape, datatype, parameters and data",
                "unknown_field",
                where,
            )
    for key in ("name", "shape", "datatype"):
        if key not in item:
            raise _bad(f"{where}.{key} is required", "missing_field", f"{where}.{key}")
    name = item["name"]
    if not isinstance(name, str):
        raise _bad(f"{where}.name must be a string, got {validation.kind(name)}", "invalid_type", f"{where}.name")
    if name not in (*INPUTS, FEATURES):
        raise _bad(f"unknown input {name!r}: {_FORMS} (names are case-sensitive)", "unknown_field", f"{where}.name")
    datatype = item["datatype"]
    if not isinstance(datatype, str) or datatype not in _FORMATS:
        shown = repr(datatype) if isinstance(datatype, str) else validation.kind(datatype)
        raise _bad(f"input {name}: datatype must be FP64 or FP32, got {shown}", "invalid_datatype", f"{where}.datatype")
    shape_value = item["shape"]
    if not isinstance(shape_value, list):
        raise _bad(
            f"input {name}: shape must be an array, got {validation.kind(shape_value)}",
            "invalid_type",
            f"{where}.shape",
        )
    shape = [_count(dim, f"{where}.shape[{i}]") for i, dim in enumerate(shape_value)]
    expected = "[N, 2]" if name == FEATURES else "[N]"
    if (len(shape) != 2 or shape[1] != 2) if name == FEATURES else len(shape) != 1:
        raise _bad(f"input {name}: shape must be {expected}, got {shape}", "invalid_shape", f"{where}.shape")
    count = shape[0]
    if not 1 <= count <= validation.BATCH_MAX_ITEMS:
        raise _bad(
            f"input {name}: N must be 1 to {validation.BATCH_MAX_ITEMS} instances, got {count}",
            "invalid_batch_size",
            f"{where}.shape",
        )
    width = 2 if name == FEATURES else 1
    parameters = _object(item.get("parameters"), f"{where}.parameters")
    if "shared_memory_region" in parameters:
        raise _bad(
            f"input {name}: the shared memory extension is not supported; the supported extension is "
            "binary_tensor_data",
            "invalid_body",
            f"{where}.parameters",
        )
    if "binary_data_size" in parameters:
        size = _count(parameters["binary_data_size"], f"{where}.parameters.binary_data_size")
        code, itemsize = _FORMATS[datatype]
        if "data" in item:
            raise _bad(f"input {name}: data and binary_data_size both given; send one", "invalid_body", where)
        if binary is None:
            raise _bad(
                f"input {name}: binary_data_size needs the Inference-Header-Content-Length header "
                "(the length of the JSON part of the body)",
                "invalid_body",
                where,
            )
        if size != count * width * itemsize:
            raise _bad(
                f"input {name}: binary_data_size is {size} bytes, but shape {shape} of {datatype} "
                f"takes {count * width * itemsize}",
                "invalid_shape",
                f"{where}.parameters.binary_data_size",
            )
        if offset + size > len(binary):
            raise _bad(
                f"input {name}: its {size} bytes of binary data end past the body "
                f"({len(binary) - offset} left after the JSON and the inputs before it)",
                "invalid_body",
                where,
            )
        values = list(struct.unpack_from(f"<{count * width}{code}", binary, offset))
        for index, value in enumerate(values):
            if not math.isfinite(value):
                element = _element(name, index, width)
                shown = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
                raise _bad(f"{element} must be a finite number, got {shown}", "not_finite", element)
        return name, count, values, offset + size
    if "data" not in item:
        raise _bad(f"input {name}: data is required (or binary_data_size)", "missing_field", f"{where}.data")
    return name, count, _data(item["data"], name, count, width, where), offset


def _data(data: Any, name: str, count: int, width: int, where: str) -> list[float]:
    """JSON tensor data, flat or nested like the shape, to its values in row-major order."""
    if not isinstance(data, list):
        raise _bad(f"input {name}: data must be an array, got {validation.kind(data)}", "invalid_type", f"{where}.data")
    flat = data
    if width == 2 and len(data) == count and all(isinstance(row, list) for row in data):
        flat = []
        for row_index, row in enumerate(data):
            if len(row) != 2:
                raise _bad(
                    f"input {name}: row {row_index} of data has {len(row)} values; shape [N, 2] needs 2",
                    "invalid_shape",
                    f"{where}.data[{row_index}]",
                )
            flat.extend(row)
    if len(flat) != count * width:
        raise _bad(
            f"input {name}: data has {len(flat)} values; shape {[count, 2] if width == 2 else [count]} "
            f"needs {count * width}",
            "invalid_shape",
            f"{where}.data",
        )
    values = []
    for index, value in enumerate(flat):
        if type(value) is not float:
            validation.number(value, _element(name, index, width))  # raises, naming the element
        values.append(value)
    return values


def _element(name: str, index: int, width: int) -> str:
    """An element as an error names it: x1[3], or features[3][0] (row, column)."""
    return f"{name}[{index // 2}][{index % 2}]" if width == 2 else f"{name}[{index}]"


def _pairs(tensors: dict[str, tuple[int, list[float]]]) -> list[tuple[float, float]]:
    if FEATURES in tensors:
        if len(tensors) > 1:
            raise _bad(f"inputs: {_FORMS}, not both", "invalid_body", "inputs")
        values = tensors[FEATURES][1]
        return list(zip(values[0::2], values[1::2], strict=True))
    for name in INPUTS:
        if name not in tensors:
            raise _bad(f"input {name} is missing: {_FORMS}", "missing_field", "inputs")
    (n1, x1), (n2, x2) = tensors["x1"], tensors["x2"]
    if n1 != n2:
        raise _bad(f"x1 has shape [{n1}] and x2 has shape [{n2}]: they must be the same", "invalid_shape", "inputs")
    return list(zip(x1, x2, strict=True))
