"""Open Inference Protocol requests without HTTP: every form the protocol allows reads the same features,
and everything else is a 400 that names the problem."""

from __future__ import annotations

import json
import math
import struct
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from botscore.audit.log import AuditLog
from botscore.call import Answer, Call, Failed
from botscore.dataplane import inference
from botscore.dataplane.handler import Handler
from botscore.errors import RequestError
from botscore.http.answers import rendered
from botscore.model import artifact
from botscore.model.scorer import Scorer
from botscore.ops.metrics import Metrics
from botscore.settings import SHIPPED_MODEL
from tests.support.records import spooled_records

SCORER = Scorer(artifact.load(SHIPPED_MODEL))
INFER = "/v2/models/bot-score/infer"
doubles = st.floats(allow_nan=False, allow_infinity=False)
instances = st.lists(st.tuples(doubles, doubles), min_size=1, max_size=40)


def _tensor(name: str, values: list[float], datatype: str = "FP64", shape: list[int] | None = None) -> dict[str, Any]:
    return {"name": name, "shape": shape or [len(values)], "datatype": datatype, "data": values}


def _body(*inputs: dict[str, Any], **fields: Any) -> bytes:
    return json.dumps({"inputs": list(inputs), **fields}).encode()


def _binary(inputs: list[tuple[str, list[float], str, list[int]]], **fields: Any) -> tuple[bytes, bytes]:
    """A body with the binary tensor data extension, and its Inference-Header-Content-Length."""
    described, data = [], b""
    for name, values, datatype, shape in inputs:
        raw = struct.pack(f"<{len(values)}{'d' if datatype == 'FP64' else 'f'}", *values)
        described.append(
            {"name": name, "shape": shape, "datatype": datatype, "parameters": {"binary_data_size": len(raw)}}
        )
        data += raw
    header = json.dumps({"inputs": described, **fields}).encode()
    return header + data, str(len(header)).encode()


def _refused(body: bytes, header_length: bytes | None = None) -> RequestError:
    with pytest.raises(RequestError) as raised:
        inference.parse(body, header_length)
    assert raised.value.status == 400
    return raised.value


@settings(max_examples=60, deadline=None)
@given(pairs=instances)
def test_every_form_of_the_features_reads_the_same_pairs(pairs: list[tuple[float, float]]) -> None:
    x1, x2 = [a for a, _ in pairs], [b for _, b in pairs]
    flat = [v for pair in pairs for v in pair]
    n = len(pairs)
    forms = [
        (_body(_tensor("x1", x1), _tensor("x2", x2)), None),
        (_body(_tensor("x2", x2), _tensor("x1", x1)), None),  # inputs in any order
        (_body(_tensor("features", flat, shape=[n, 2])), None),
        (_body(_tensor("features", [list(p) for p in pairs], shape=[n, 2])), None),  # nested like the shape
        _binary([("x1", x1, "FP64", [n]), ("x2", x2, "FP64", [n])]),
        _binary([("features", flat, "FP64", [n, 2])]),
    ]
    for body, header_length in forms:
        assert inference.parse(body, header_length).pairs == pairs


@settings(max_examples=60, deadline=None)
@given(pairs=instances)
def test_fp32_in_json_is_the_number_sent_and_in_binary_is_widened_exactly(pairs: list[tuple[float, float]]) -> None:
    x1, x2 = [a for a, _ in pairs], [b for _, b in pairs]
    as_json = inference.parse(_body(_tensor("x1", x1, "FP32"), _tensor("x2", x2, "FP32")), None)
    assert as_json.pairs == pairs  # not rounded to single precision: /bot-score's features exactly
    singles = [
        (struct.unpack("<f", struct.pack("<f", a))[0], struct.unpack("<f", struct.pack("<f", b))[0])
        for a, b in pairs
        if abs(a) < 3e38 and abs(b) < 3e38
    ]
    if singles:
        n = len(singles)
        body, length = _binary(
            [("x1", [a for a, _ in singles], "FP32", [n]), ("x2", [b for _, b in singles], "FP32", [n])]
        )
        assert inference.parse(body, length).pairs == singles


@settings(max_examples=60, deadline=None)
@given(pairs=instances, binary=st.booleans(), request_id=st.none() | st.text(max_size=20))
def test_the_answer_holds_each_score_to_the_last_bit(
    pairs: list[tuple[float, float]], binary: bool, request_id: str | None
) -> None:
    scores = [SCORER.p_bot(a, b) for a, b in pairs]
    body, header_length = inference.response(inference.InferRequest(pairs, request_id, binary), SCORER.version, scores)
    document = json.loads(body if header_length is None else body[:header_length])
    assert (document["model_name"], document["model_version"]) == ("bot-score", SCORER.version)
    assert document.get("id") == request_id and ("id" in document) == (request_id is not None)
    (output,) = document["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("p_bot", "FP64", [len(pairs)])
    if binary:
        assert header_length is not None
        assert output["parameters"] == {"binary_data_size": 8 * len(pairs)}
        assert list(struct.unpack(f"<{len(pairs)}d", body[header_length:])) == scores
    else:
        assert header_length is None and output["data"] == scores


def test_the_request_id_is_kept_and_binary_output_follows_the_output_then_the_request() -> None:
    x = (_tensor("x1", [0.1]), _tensor("x2", [0.2]))
    assert inference.parse(_body(*x, id="req-7"), None).id == "req-7"
    assert inference.parse(_body(*x), None).binary_output is False
    assert inference.parse(_body(*x, parameters={"binary_data_output": True}), None).binary_output is True
    own = {"name": "p_bot", "parameters": {"binary_data": False}}
    assert (
        inference.parse(_body(*x, parameters={"binary_data_output": True}, outputs=[own]), None).binary_output is False
    )
    plain = {"name": "p_bot"}
    assert inference.parse(_body(*x, parameters={"binary_data_output": True}, outputs=[plain]), None).binary_output
    # parameters of the protocol that do not change a score (priority, timeout, custom ones) are accepted
    assert inference.parse(_body(*x, parameters={"priority": 1, "timeout": 5, "team": "risk"}), None).pairs


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (b"[1, 2]", "invalid_body", 'must be an inference request like {"inputs": [...]}, got an array'),
        (b'{"inputs": []', "malformed_json", "malformed JSON"),
        (b"", "malformed_json", "request body is empty"),
        (_body(_tensor("x1", [0.1]), _tensor("x2", [0.2]), model="m"), "unknown_field", "unknown field 'model'"),
        (b"{}", "missing_field", "inputs is required"),
        (json.dumps({"inputs": {"x1": [0.1]}}).encode(), "invalid_type", "inputs must be an array, got an object"),
        (_body(_tensor("x1", [0.1]), _tensor("x2", [0.2]), id=7), "invalid_type", "id must be a string"),
        (_body(_tensor("x1", [0.1])), "missing_field", "input x2 is missing"),
        (_body(_tensor("x1", [0.1]), _tensor("x3", [0.2])), "unknown_field", "unknown input 'x3'"),
        (_body(_tensor("X1", [0.1]), _tensor("x2", [0.2])), "unknown_field", "unknown input 'X1'"),
        (_body(_tensor("x1", [0.1]), _tensor("x1", [0.2])), "duplicate_key", "input x1 appears twice"),
        (
            _body(_tensor("features", [0.1, 0.2], shape=[1, 2]), _tensor("x1", [0.1])),
            "invalid_body",
            "or features as one [N, 2] tensor, not both",
        ),
        (_body(_tensor("x1", [1.0], "INT64"), _tensor("x2", [0.2])), "invalid_datatype", "got 'INT64'"),
        (_body(_tensor("x1", [0.1], "BYTES"), _tensor("x2", [0.2])), "invalid_datatype", "FP64 or FP32"),
        (_body(_tensor("x1", [0.1], "fp64"), _tensor("x2", [0.2])), "invalid_datatype", "got 'fp64'"),
        (_body(_tensor("x1", [0.1, 0.2], shape=[2, 1]), _tensor("x2", [0.2])), "invalid_shape", "shape must be [N]"),
        (_body(_tensor("features", [0.1, 0.2], shape=[2])), "invalid_shape", "shape must be [N, 2], got [2]"),
        (_body(_tensor("features", [0.1, 0.2, 0.3], shape=[1, 3])), "invalid_shape", "shape must be [N, 2]"),
        (_body(_tensor("x1", [0.1, 0.2]), _tensor("x2", [0.2])), "invalid_shape", "x1 has shape [2] and x2 has shape"),
        (_body(_tensor("x1", [0.1, 0.2], shape=[3]), _tensor("x2", [0.2])), "invalid_shape", "data has 2 values"),
        (
            _body(_tensor("features", [[0.1, 0.2], [0.3]], shape=[2, 2])),
            "invalid_shape",
            "row 1 of data has 1 values",
        ),
        (_body(_tensor("x1", [], shape=[0]), _tensor("x2", [], shape=[0])), "invalid_batch_size", "1 to 1000"),
        (
            _body(_tensor("x1", [0.0] * 1001), _tensor("x2", [0.0] * 1001)),
            "invalid_batch_size",
            "N must be 1 to 1000 instances, got 1001",
        ),
        (_body(_tensor("x1", [0.1], shape=[-1]), _tensor("x2", [0.2])), "invalid_type", "non-negative integer"),
        (_body(_tensor("x1", [0.1], shape=[1.5]), _tensor("x2", [0.2])), "invalid_type", "non-negative integer"),
        (_body(_tensor("x1", ["0.1"]), _tensor("x2", [0.2])), "invalid_type", "x1[0] must be a number, got a string"),
        (_body(_tensor("x1", [0.1]), _tensor("x2", [True])), "invalid_type", "x2[0] must be a number, got a boolean"),
        (_body(_tensor("x1", [0.1]), _tensor("x2", [None])), "invalid_type", "x2[0] must be a number, got null"),
        (
            _body(_tensor("features", [0.1, "a"], shape=[1, 2])),
            "invalid_type",
            "features[0][1] must be a number, got a string",
        ),
        (b'{"inputs": [{"name": "x1", "shape": [1], "datatype": "FP64", "data": [NaN]}]}', "not_finite", "got NaN"),
        (
            b'{"inputs": [{"name": "x1", "shape": [2], "datatype": "FP32", "data": [0, Infinity]}]}',
            "not_finite",
            "x1[1] must be a finite number, got Infinity",
        ),
        (b'{"inputs": [{"name": "x1", "shape": [1], "datatype": "FP64", "data": [1e999]}]}', "not_finite", "1e999"),
        (b'{"inputs": [], "inputs": []}', "duplicate_key", "duplicate key 'inputs'"),
        (
            b'{"inputs": [{"name": "x1", "name": "x2", "shape": [1], "datatype": "FP64", "data": [1]}]}',
            "duplicate_key",
            "duplicate key 'name'",
        ),
        (b'{"inputs": ' + b"[" * 40 + b"]" * 40 + b"}", "malformed_json", "nested more than 32 levels deep"),
        (
            _body(_tensor("x1", [0.1]), _tensor("x2", [0.2]), outputs=[{"name": "p_human"}]),
            "unknown_field",
            "unknown output 'p_human': the only output is p_bot",
        ),
        (
            _body(
                _tensor("x1", [0.1]),
                _tensor("x2", [0.2]),
                outputs=[{"name": "p_bot", "parameters": {"classification": 2}}],
            ),
            "invalid_body",
            "that extension is not supported",
        ),
        (
            _body(_tensor("x1", [0.1]), _tensor("x2", [0.2]), parameters={"binary_data_output": "yes"}),
            "invalid_type",
            "binary_data_output must be true or false",
        ),
        (
            _body({"name": "x1", "shape": [1], "datatype": "FP64"}, _tensor("x2", [0.2])),
            "missing_field",
            "data is required",
        ),
        (_body({"name": "x1", "datatype": "FP64", "data": [1]}), "missing_field", "inputs[0].shape is required"),
        (_body({**_tensor("x1", [0.1]), "contents": [1]}), "unknown_field", "unknown field 'contents' in inputs[0]"),
    ],
)
def test_a_request_the_protocol_cannot_run_is_a_400_naming_the_problem(body: bytes, code: str, message: str) -> None:
    error = _refused(body)
    assert error.code == code
    assert message in error.message
    assert json.loads(rendered(Failed(error), "inference").body) == {"error": error.message}


def test_binary_tensor_data_must_add_up() -> None:
    body, length = _binary([("x1", [0.1, 0.2], "FP64", [2]), ("x2", [0.3, 0.4], "FP64", [2])])
    assert inference.parse(body, length).pairs == [(0.1, 0.3), (0.2, 0.4)]
    assert "Inference-Header-Content-Length must be the length" in _refused(body, b"x").message
    for hostile in (b"\xb2", b"1" * 5000, b"-1", b"0"):  # "²" passes str.isdigit(); int() refuses 4,300+ digits
        assert "Inference-Header-Content-Length must be the length" in _refused(body, hostile).message
    assert "Inference-Header-Content-Length must be the length" in _refused(body, str(len(body) + 1).encode()).message
    assert "no input's binary_data_size claims" in _refused(body + b"\0" * 8, length).message
    assert "end past the body" in _refused(body[:-1], length).message
    header_only = body[: int(length)]
    assert "binary_data_size needs the Inference-Header-Content-Length header" in _refused(header_only).message
    short, short_length = _binary([("x1", [0.1], "FP64", [2]), ("x2", [0.3, 0.4], "FP64", [2])])
    assert "binary_data_size is 8 bytes, but shape [2] of FP64 takes 16" in _refused(short, short_length).message
    nan, nan_length = _binary([("x1", [0.1, math.nan], "FP64", [2]), ("x2", [0.3, -math.inf], "FP64", [2])])
    error = _refused(nan, nan_length)
    assert (error.code, error.message, error.field) == ("not_finite", "x1[1] must be a finite number, got NaN", "x1[1]")
    both = json.loads(header_only)
    both["inputs"][0]["data"] = [0.1, 0.2]
    joined = json.dumps(both).encode()
    assert (
        "data and binary_data_size both given"
        in _refused(joined + body[int(length) :], str(len(joined)).encode()).message
    )


def test_metadata_names_the_model_its_version_and_its_tensors() -> None:
    assert inference.model_metadata("lr-1") == {
        "name": "bot-score",
        "versions": ["lr-1"],
        "platform": "botscore-logistic-regression",
        "inputs": [
            {"name": "x1", "datatype": "FP64", "shape": [-1]},
            {"name": "x2", "datatype": "FP64", "shape": [-1]},
        ],
        "outputs": [{"name": "p_bot", "datatype": "FP64", "shape": [-1]}],
    }
    assert inference.server_metadata("1.0.0")["extensions"] == ["binary_tensor_data"]


def _call(body: bytes, header_length: bytes | None = None) -> Call:
    started = time.perf_counter()
    return Call(INFER, "POST", b"call-1", SCORER, time.time(), started, body=body, header_length=header_length)


def test_infer_scores_with_the_scorer_and_keeps_one_row_per_score(audit: AuditLog, tmp_path: Path) -> None:
    call = _call(_body(_tensor("x1", [0.1, 2.0]), _tensor("x2", [0.2, 0.0]), id="r"))
    answer = Handler(audit, Metrics()).infer(call)
    assert isinstance(answer, Answer) and answer.status == 200
    assert answer.content_type == b"application/json" and answer.headers == ()
    expected = [SCORER.p_bot(0.1, 0.2), SCORER.p_bot(2.0, 0.0)]
    assert json.loads(answer.body)["outputs"][0]["data"] == expected
    rows = spooled_records(tmp_path / "audit")
    assert [(r["id"], r["item"], r["path"], r["x1"], r["x2"], r["p_bot"], r["status"]) for r in rows] == [
        ("call-1", 0, INFER, 0.1, 0.2, expected[0], 200),
        ("call-1", 1, INFER, 2.0, 0.0, expected[1], 200),
    ]


def test_binary_output_sets_the_header_length_and_octet_stream(audit: AuditLog) -> None:
    call = _call(_body(_tensor("x1", [0.1]), _tensor("x2", [0.2]), parameters={"binary_data_output": True}))
    answer = Handler(audit, Metrics()).infer(call)
    assert isinstance(answer, Answer) and answer.status == 200
    assert answer.content_type == b"application/octet-stream"
    ((name, value),) = answer.headers
    assert name == b"inference-header-content-length"
    assert struct.unpack("<d", answer.body[int(value) :]) == (SCORER.p_bot(0.1, 0.2),)


def test_a_refused_infer_is_rendered_in_the_protocols_shape_and_recorded(audit: AuditLog, tmp_path: Path) -> None:
    call = _call(_body(_tensor("x1", [0.1], "INT32"), _tensor("x2", [0.2])))
    failed = Handler(audit, Metrics()).infer(call)
    assert isinstance(failed, Failed)
    answer = rendered(failed, "inference")
    assert answer.status == 400
    assert json.loads(answer.body) == {"error": "input x1: datatype must be FP64 or FP32, got 'INT32'"}
    (row,) = spooled_records(tmp_path / "audit")
    assert (row["status"], row["path"], row["error_code"], row["error_field"]) == (
        400,
        INFER,
        "invalid_datatype",
        "inputs[0].datatype",
    )
    assert "item" not in row and "p_bot" not in row
    assert json.loads(row["raw"])["inputs"][0]["datatype"] == "INT32"
