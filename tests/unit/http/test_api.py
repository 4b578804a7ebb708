"""The routes a client and a load balancer use, and the headers every response carries."""

from __future__ import annotations

import json
import uuid

import pytest
from starlette.testclient import TestClient

from botscore.model import artifact
from botscore.model.scorer import Scorer
from botscore.settings import SHIPPED_MODEL
from tests.support.records import shipped_records, spooled_records


def test_score_returns_p_bot_from_the_shipped_model(client: TestClient) -> None:
    response = client.post("/bot-score", json={"x1": 0.1, "x2": 0.2})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    expected = Scorer(artifact.load(SHIPPED_MODEL)).p_bot(0.1, 0.2)
    assert response.json() == {"p_bot": expected}
    assert response.headers["x-model-version"] == artifact.load(SHIPPED_MODEL).version


def test_a_sane_client_request_id_is_echoed(client: TestClient) -> None:
    response = client.post("/bot-score", json={"x1": 0.1, "x2": 0.2}, headers={"x-request-id": "order-42:try.1"})
    assert response.headers["x-request-id"] == "order-42:try.1"


def test_an_insane_request_id_is_replaced_by_a_uuid(client: TestClient) -> None:
    response = client.post("/bot-score", json={"x1": 0.1, "x2": 0.2}, headers={"x-request-id": 'a"b' + "x" * 300})
    assert uuid.UUID(response.headers["x-request-id"]).version == 4


def test_every_response_carries_request_id_and_model_version(client: TestClient) -> None:
    for response in (
        client.get("/healthz"),
        client.get("/readyz"),
        client.get("/no-such-route"),
        client.post("/bot-score", content=b"{", headers={"content-type": "application/json"}),
        client.get("/openapi.json"),
    ):
        assert response.headers["x-request-id"], response.url
        assert response.headers["x-model-version"].startswith("lr-"), response.url


def test_unknown_route_is_404_in_the_error_shape(client: TestClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "no route /nope", "field": None}}


def test_liveness_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "model_version": artifact.load(SHIPPED_MODEL).version}


def test_openapi_documents_the_real_request_response_and_errors(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/bot-score"]["post"]
    request_schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert request_schema == {"$ref": "#/components/schemas/ScoreRequest"}
    score_request = spec["components"]["schemas"]["ScoreRequest"]
    assert score_request["additionalProperties"] is False
    assert set(score_request["required"]) == {"x1", "x2"}
    assert score_request["examples"] == [{"x1": 0.1, "x2": 0.2}]
    assert set(operation["responses"]) == {"200", "400", "401", "405", "413", "415", "422", "503"}
    error_ref = operation["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
    assert error_ref == "#/components/schemas/ErrorResponse"
    assert "422" not in json.dumps(spec["paths"]["/healthz"])  # no phantom validation errors
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        b'{"x1": 0.1, "x2": 0.2}',
        b'{"x1":-1.5e2,"x2":3}',
        b' { "x1" : 0.9211156209223077 , "x2" : 12345678901234567890 } ',
    ],
)
def test_the_answer_and_record_do_not_depend_on_how_the_media_type_is_spelled(
    make_service, tmp_path, body: bytes
) -> None:
    service = make_service()
    with TestClient(service.app) as client:
        plain = client.post(
            "/bot-score", content=body, headers={"content-type": "application/json", "x-request-id": "f-1"}
        )
        spelled = client.post(
            "/bot-score",
            content=body,
            headers={"content-type": "application/json; charset=utf-8", "x-request-id": "g-1"},
        )
    assert plain.status_code == spelled.status_code == 200
    assert plain.content == spelled.content
    assert plain.headers["x-model-version"] == spelled.headers["x-model-version"]
    records = {r["id"]: r for r in shipped_records(tmp_path / "audit") + spooled_records(tmp_path / "audit")}
    strip = ("id", "ts", "latency_ms")
    assert {k: v for k, v in records["f-1"].items() if k not in strip} == {
        k: v for k, v in records["g-1"].items() if k not in strip
    }
