"""The Open Inference Protocol's routes in-process: the request sequence of the other scoring routes
(keys, bounds, media type, audit, metrics, ids), its error shape, and the /docs page of every route."""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from botscore.audit.uploaders import LocalUploader
from botscore.service import Service
from tests.support.records import shipped_records, spooled_records

INFER = "/v2/models/bot-score/infer"
MakeService = Callable[..., Service]


def _infer_body(x1: list[float], x2: list[float], **fields: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "x1", "shape": [len(x1)], "datatype": "FP64", "data": x1},
            {"name": "x2", "shape": [len(x2)], "datatype": "FP64", "data": x2},
        ],
        **fields,
    }


def _only_error(response: Any) -> str:
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str)
    return str(body["error"])


def test_infer_answers_equal_bot_score_to_the_last_bit(client: TestClient) -> None:
    rng = random.Random(14)
    x1 = [rng.uniform(-1, 4) for _ in range(100)] + [0.1, 1e308, -1e308, 5e-324, -0.0]
    x2 = [rng.uniform(0, 3) for _ in range(100)] + [0.2, 1e308, 1e308, 0.0, 0.0]
    response = client.post(INFER, json=_infer_body(x1, x2, id="batch-1"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert (body["model_name"], body["id"]) == ("bot-score", "batch-1")
    assert body["model_version"] == response.headers["x-model-version"]
    scores = body["outputs"][0]["data"]
    singles = [client.post("/bot-score", json={"x1": a, "x2": b}).json()["p_bot"] for a, b in zip(x1, x2, strict=True)]
    assert [struct.pack("<d", s) for s in scores] == [struct.pack("<d", s) for s in singles]


def test_binary_in_and_out_over_http(client: TestClient) -> None:
    header = json.dumps(
        {
            "inputs": [
                {"name": "features", "shape": [2, 2], "datatype": "FP32", "parameters": {"binary_data_size": 16}}
            ],
            "outputs": [{"name": "p_bot", "parameters": {"binary_data": True}}],
        }
    ).encode()
    body = header + struct.pack("<4f", 0.5, 0.25, 1.75, 0.125)  # exact in single precision
    for content_type in ({"content-type": "application/octet-stream"}, {}):
        response = client.post(
            INFER, content=body, headers={"inference-header-content-length": str(len(header)), **content_type}
        )
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/octet-stream"
        length = int(response.headers["inference-header-content-length"])
        assert json.loads(response.content[:length])["outputs"][0]["parameters"] == {"binary_data_size": 16}
        expected = [
            client.post("/bot-score", json={"x1": a, "x2": b}).json()["p_bot"] for a, b in ((0.5, 0.25), (1.75, 0.125))
        ]
        assert list(struct.unpack("<2d", response.content[length:])) == expected
    # octet-stream only with the header that says where the JSON ends
    refused = client.post(INFER, content=body, headers={"content-type": "application/octet-stream"})
    assert refused.status_code == 415
    assert "application/octet-stream with Inference-Header-Content-Length" in _only_error(refused)


@pytest.mark.parametrize(
    ("request_kwargs", "status", "text"),
    [
        ({"content": b'{"inputs": [', "headers": {"content-type": "application/json"}}, 400, "malformed JSON"),
        ({"json": _infer_body([0.1], [0.2], model="x")}, 400, "unknown field 'model'"),
        ({"content": b'{"x1": 0.1, "x2": 0.2}', "headers": {"content-type": "text/plain"}}, 415, "'text/plain'"),
        ({"content": b" " * 131073, "headers": {"content-type": "application/json"}}, 413, "larger than 131072 bytes"),
    ],
)
def test_errors_are_the_protocols_shape_with_the_status_and_ids(
    client: TestClient, request_kwargs: dict[str, Any], status: int, text: str
) -> None:
    response = client.post(INFER, **request_kwargs)
    assert response.status_code == status
    assert text in _only_error(response)
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"] and response.headers["x-model-version"].startswith("lr-")


def test_other_methods_are_405_in_the_protocols_shape(client: TestClient) -> None:
    response = client.get(INFER)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert _only_error(response) == f"method GET is not allowed on {INFER}; use POST"


def test_api_keys_guard_infer_and_leave_health_and_metadata_open(make_service: MakeService) -> None:
    with TestClient(make_service(api_keys="key-one-1234").app) as keyed:
        refused = keyed.post(INFER, json=_infer_body([0.1], [0.2]))
        allowed = keyed.post(INFER, json=_infer_body([0.1], [0.2]), headers={"authorization": "Bearer key-one-1234"})
        opened = [keyed.get(path).status_code for path in ("/v2", "/v2/health/ready", "/v2/models/bot-score")]
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert _only_error(refused) == "missing or unknown API key: send Authorization: Bearer <key>"
    assert allowed.status_code == 200
    assert opened == [200, 200, 200]


def test_infer_calls_are_audited_one_row_per_score_and_failures_once(make_service: MakeService, tmp_path: Path) -> None:
    with TestClient(make_service().app) as client:
        scored = client.post(INFER, json=_infer_body([0.1, 2.0, -1.0], [0.2, 0.0, 3.0]))
        failed = client.post(INFER, json=_infer_body([0.1], [0.2, 0.3]))
    rows = shipped_records(tmp_path / "audit") + spooled_records(tmp_path / "audit")
    mine = [row for row in rows if row["id"] == scored.headers["x-request-id"]]
    assert [(r["item"], r["path"], r["status"], r["x1"], r["x2"]) for r in mine] == [
        (0, INFER, 200, 0.1, 0.2),
        (1, INFER, 200, 2.0, 0.0),
        (2, INFER, 200, -1.0, 3.0),
    ]
    assert [r["p_bot"] for r in mine] == scored.json()["outputs"][0]["data"]
    (refused,) = [row for row in rows if row["id"] == failed.headers["x-request-id"]]
    assert (refused["status"], refused["error_code"], refused["path"]) == (400, "invalid_shape", INFER)
    assert refused["error_message"] == _only_error(failed)


def test_infer_is_counted_in_the_metrics(client: TestClient) -> None:
    client.post(INFER, json=_infer_body([0.1, 0.2], [0.3, 0.4]))
    client.post(INFER, json=_infer_body([0.1], []))
    client.get("/v2/health/live")
    text = client.get("/metrics").text  # one scrape: a second within a second would be the first's copy
    assert f'botscore_requests_total{{route="{INFER}",status="200"}} 1.0' in text
    assert f'botscore_requests_total{{route="{INFER}",status="400"}} 1.0' in text
    assert 'botscore_requests_total{route="/v2/health/live",status="200"} 1.0' in text
    assert 'botscore_requests_total{route="/v2/health/ready"' not in text


def test_health_and_metadata_routes(client: TestClient) -> None:
    version = client.get("/readyz").json()["model_version"]
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/bot-score/ready").json() == {"name": "bot-score", "ready": True}
    assert client.get("/v2").json() == {"name": "botscore", "version": "1.0.0", "extensions": ["binary_tensor_data"]}
    metadata = client.get("/v2/models/bot-score").json()
    assert metadata["versions"] == [version]
    assert [(t["name"], t["datatype"], t["shape"]) for t in metadata["inputs"]] == [
        ("x1", "FP64", [-1]),
        ("x2", "FP64", [-1]),
    ]
    assert metadata["outputs"] == [{"name": "p_bot", "datatype": "FP64", "shape": [-1]}]
    assert client.get(f"/v2/models/bot-score/versions/{version}").json() == metadata
    assert client.get(f"/v2/models/bot-score/versions/{version}/ready").status_code == 200
    versioned = client.post(f"/v2/models/bot-score/versions/{version}/infer", json=_infer_body([0.1], [0.2]))
    assert versioned.status_code == 200


def test_unknown_models_and_versions_are_404_in_the_protocols_shape(client: TestClient) -> None:
    for path in ("/v2/models/fraud", "/v2/models/fraud/ready"):
        response = client.get(path)
        assert response.status_code == 404
        assert _only_error(response) == "unknown model 'fraud': this server serves one model, bot-score"
    response = client.post("/v2/models/fraud/infer", json=_infer_body([0.1], [0.2]))
    assert (response.status_code, _only_error(response)) == (
        404,
        "unknown model 'fraud': this server serves one model, bot-score",
    )
    for response in (
        client.get("/v2/models/bot-score/versions/lr-0"),
        client.get("/v2/models/bot-score/versions/lr-0/ready"),
        client.post("/v2/models/bot-score/versions/lr-0/infer", json=_infer_body([0.1], [0.2])),
    ):
        assert response.status_code == 404
        assert _only_error(response).startswith("model bot-score has no version 'lr-0'; it serves lr-")


def test_server_and_model_ready_follow_readyz(make_service: MakeService, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    bound = 65536
    service = make_service(
        uploader=LocalUploader(blocker / "shipped"), audit_spool_max_bytes=bound, audit_shutdown_seconds=0.5
    )
    with TestClient(service.app) as client:
        while service.audit.usage_bytes < 0.85 * bound:
            assert client.post(INFER, json=_infer_body([0.1] * 50, [0.2] * 50)).status_code == 200
        readyz = client.get("/readyz")
        ready = client.get("/v2/health/ready")
        model_ready = client.get("/v2/models/bot-score/ready")
        while client.post(INFER, json=_infer_body([0.1] * 50, [0.2] * 50)).status_code == 200:
            pass
        refused = client.post(INFER, json=_infer_body([0.1], [0.2]))
    assert readyz.status_code == ready.status_code == model_ready.status_code == 503
    assert _only_error(ready) == _only_error(model_ready) == readyz.json()["error"]["message"]
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "5"
    assert _only_error(refused).startswith("audit spool is full")


def test_openapi_documents_the_protocols_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/bot-score", "/v2/models/bot-score/ready"):
        assert "get" in spec["paths"][path], path
    infer = spec["paths"][INFER]["post"]
    assert infer["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/InferenceRequest"
    }
    assert infer["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/InferenceResponse"
    }
    assert set(infer["responses"]) == {"200", "400", "401", "405", "413", "415", "503"}
    assert infer["security"] == [{"bearer": []}, {}]
    error_schema = spec["components"]["schemas"]["InferenceErrorResponse"]
    assert error_schema["properties"]["error"]["type"] == "string"


# A request that gets each error status from each scoring route, as a client would send it.
_NAN = b'{"inputs": [{"name": "x1", "shape": [1], "datatype": "FP64", "data": [NaN]}]}'
_CAUSES: dict[int, Callable[[TestClient, str], Any]] = {
    400: lambda c, path: c.post(
        path, content=_NAN if path == INFER else b'{"x1": 0.1,', headers={"content-type": "application/json"}
    ),
    401: lambda c, path: c.post(path, json={}),
    405: lambda c, path: c.get(path),
    413: lambda c, path: c.post(path, content=b" " * 200_000, headers={"content-type": "application/json"}),
    415: lambda c, path: c.post(path, content=b"{}", headers={"content-type": "text/plain"}),
    422: lambda c, path: c.post(
        path, json={"x1": "0.1", "x2": 0.2} if path == "/bot-score" else {"instances": [{"x1": 0.1, "x2": None}]}
    ),
}


@pytest.mark.parametrize("path", ["/bot-score", "/bot-score/batch", INFER])
def test_each_error_status_has_its_own_example_and_it_is_what_the_route_answers(
    make_service: MakeService, path: str
) -> None:
    with TestClient(make_service(api_keys="key-one-1234").app) as keyed, TestClient(make_service().app) as open_:
        operation = open_.get("/openapi.json").json()["paths"][path]["post"]
        examples = {
            int(status): [example["value"] for example in response["content"]["application/json"]["examples"].values()]
            for status, response in operation["responses"].items()
            if status != "200"
        }
        for status, cause in _CAUSES.items():
            if status not in examples:
                assert (path, status) == (INFER, 422)  # the protocol answers 400 to what it cannot run
                continue
            answered = cause(keyed if status == 401 else open_, path)
            assert answered.status_code == status
            assert answered.json() in examples[status], status
    (unavailable,) = examples[503]
    assert (
        unavailable == {"error": unavailable["error"]}
        if path == INFER
        else unavailable["error"]["code"] == "audit_unavailable"
    )
    flattened = [json.dumps(example) for status_examples in examples.values() for example in status_examples]
    assert len(flattened) == len(set(flattened))  # no two statuses show the same example


def _binary_infer(x1: bytes, x1_size: int, x2: bytes, shape: int = 1) -> tuple[bytes, dict[str, str]]:
    """An infer call with x1 and x2 as binary tensor data of the sizes given, and its headers."""
    header = json.dumps(
        {
            "inputs": [
                {"name": "x1", "shape": [shape], "datatype": "FP64", "parameters": {"binary_data_size": x1_size}},
                {"name": "x2", "shape": [shape], "datatype": "FP64", "parameters": {"binary_data_size": len(x2)}},
            ]
        }
    ).encode()
    headers = {"content-type": "application/octet-stream", "inference-header-content-length": str(len(header))}
    return header + x1 + x2, headers


def test_a_binary_data_size_larger_than_the_shape_needs_is_refused_naming_it(client: TestClient) -> None:
    # 16 bytes claimed for one FP64: read anyway, x2 would come from the wrong offset and score wrong.
    body, headers = _binary_infer(struct.pack("<dd", 0.1, 9.0), 16, struct.pack("<d", 0.2))
    response = client.post(INFER, content=body, headers=headers)
    assert response.status_code == 400
    assert _only_error(response) == "input x1: binary_data_size is 16 bytes, but shape [1] of FP64 takes 8"


@pytest.mark.parametrize(("value", "shown"), [(float("inf"), "Infinity"), (float("-inf"), "-Infinity")])
def test_a_lone_infinity_in_binary_tensor_data_is_refused_naming_it(
    client: TestClient, value: float, shown: str
) -> None:
    # No NaN anywhere: a check for NaN only would let it reach the model (and answer 500).
    body, headers = _binary_infer(struct.pack("<dd", 0.1, 0.3), 16, struct.pack("<dd", 0.2, value), shape=2)
    response = client.post(INFER, content=body, headers=headers)
    assert response.status_code == 400
    assert _only_error(response) == f"x2[1] must be a finite number, got {shown}"
