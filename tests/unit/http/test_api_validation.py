"""Every bad input gets the exact 4xx with an error naming the field, and is still audited."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from botscore.audit import record
from tests.support.records import shipped_records, spooled_records

JSON = {"content-type": "application/json"}


def _error(response):
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "field"}
    return body["error"]


@pytest.mark.parametrize(
    ("body", "status", "code", "field", "text"),
    [
        (b'{"x2": 0.2}', 422, "missing_field", "x1", "x1 is required"),
        (b'{"x1": 0.2}', 422, "missing_field", "x2", "x2 is required"),
        (b'{"X1": 0.1, "x2": 0.2}', 422, "unknown_field", "X1", "unknown field 'X1'"),
        (b'{"x1": 0.1, "x2": 0.2, "x3": 1}', 422, "unknown_field", "x3", "unknown field 'x3'"),
        (b'{"x1": "0.1", "x2": 0.2}', 422, "invalid_type", "x1", "x1 must be a number, got a string"),
        (b'{"x1": 0.1, "x2": true}', 422, "invalid_type", "x2", "x2 must be a number, got a boolean"),
        (b'{"x1": null, "x2": 0.2}', 422, "invalid_type", "x1", "x1 must be a number, got null"),
        (b'{"x1": [0.1], "x2": 0.2}', 422, "invalid_type", "x1", "x1 must be a number, got an array"),
        (b'{"x1": {"v": 1}, "x2": 0.2}', 422, "invalid_type", "x1", "x1 must be a number, got an object"),
        (b'{"x1": NaN, "x2": 0.2}', 422, "not_finite", "x1", "x1 must be a finite number, got NaN"),
        (b'{"x1": 0.1, "x2": Infinity}', 422, "not_finite", "x2", "got Infinity"),
        (b'{"x1": -Infinity, "x2": 0.2}', 422, "not_finite", "x1", "got -Infinity"),
        (b'{"x1": 1e999, "x2": 0.2}', 422, "not_finite", "x1", "got 1e999"),
        (b'{"x1": 0.1, "x2": 1' + b"0" * 400 + b"}", 422, "not_finite", "x2", "x2 must be a finite number"),
        (b'{"x1": 0.1, "x1": 0.3, "x2": 0.2}', 422, "duplicate_key", "x1", "duplicate key 'x1'"),
        (b"[0.1, 0.2]", 422, "invalid_body", None, "got an array"),
        (b'"x1"', 422, "invalid_body", None, "got a string"),
        (b'{"x1": 0.1, "x2": 0.2', 400, "malformed_json", None, "malformed JSON"),
        (b"{'x1': 0.1, 'x2': 0.2}", 400, "malformed_json", None, "malformed JSON"),
        (b"", 400, "malformed_json", None, "request body is empty"),
        (b'{"x1": 0.1, "x2": "\xff"}', 400, "invalid_encoding", None, "not valid UTF-8"),
    ],
)
def test_bad_body_gets_exact_status_and_error_naming_the_field(
    client: TestClient, body: bytes, status: int, code: str, field: str | None, text: str
) -> None:
    response = client.post("/bot-score", content=body, headers=JSON)
    assert response.status_code == status
    error = _error(response)
    assert error["code"] == code
    assert error["field"] == field
    assert text in error["message"]
    assert response.headers["x-request-id"]
    assert response.headers["x-model-version"].startswith("lr-")


def test_body_over_the_bound_is_413(client: TestClient) -> None:
    response = client.post("/bot-score", content=b'{"x1": 0.1, "x2": 0.2' + b" " * 2000 + b"}", headers=JSON)
    assert response.status_code == 413
    assert _error(response)["code"] == "body_too_large"
    assert "larger than 1024 bytes" in _error(response)["message"]


def test_chunked_body_over_the_bound_is_413(client: TestClient) -> None:
    def chunks():
        yield b'{"x1": 0.1, '
        yield b" " * 1500
        yield b'"x2": 0.2}'

    response = client.post("/bot-score", content=chunks(), headers=JSON)
    assert response.status_code == 413


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_content_type_that_is_not_json_is_415(client: TestClient, content_type: str) -> None:
    response = client.post("/bot-score", content=b'{"x1": 0.1, "x2": 0.2}', headers={"content-type": content_type})
    assert response.status_code == 415
    assert _error(response)["code"] == "unsupported_media_type"
    assert content_type in _error(response)["message"]


@pytest.mark.parametrize("content_type", [None, "application/json; charset=utf-8", "application/vnd.api+json"])
def test_json_content_types_and_an_absent_one_are_scored(client: TestClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    request = client.build_request("POST", "/bot-score", content=b'{"x1": 0.1, "x2": 0.2}', headers=headers)
    assert ("content-type" in request.headers) == (content_type is not None)
    response = client.send(request)
    assert response.status_code == 200
    assert 0.0 <= response.json()["p_bot"] <= 1.0


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_405_with_allow_header(client: TestClient, method: str) -> None:
    response = client.request(method, "/bot-score")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert _error(response)["code"] == "method_not_allowed"


def test_integers_are_numbers(client: TestClient) -> None:
    assert client.post("/bot-score", json={"x1": 1, "x2": 0}).status_code == 200


def test_bad_requests_are_audited_with_their_raw_body(make_service, tmp_path) -> None:
    with TestClient(make_service().app) as client:
        bad = client.post("/bot-score", content=b'{"x1": 0.1, "x2"', headers=JSON)
        typo = client.post("/bot-score", json={"X1": 0.1, "x2": 0.2})
    records = {r["id"]: r for r in shipped_records(tmp_path / "audit") + spooled_records(tmp_path / "audit")}
    malformed = records[bad.headers["x-request-id"]]
    assert malformed["status"] == 400
    assert "x1" not in malformed and "p_bot" not in malformed
    assert malformed["raw"] == '{"x1": 0.1, "x2"'
    assert malformed["error_code"] == bad.json()["error"]["code"] == "malformed_json"
    assert malformed["error_message"] == bad.json()["error"]["message"]
    unknown = records[typo.headers["x-request-id"]]
    assert unknown["status"] == 422
    assert (unknown.get("x1"), unknown["x2"], unknown["raw"]) == (None, 0.2, '{"X1":0.1,"x2":0.2}')
    assert (unknown["error_code"], unknown["error_field"]) == ("unknown_field", "X1")


@pytest.mark.parametrize(
    ("path", "max_body_bytes"),
    [("/bot-score", 1024), ("/bot-score/batch", 1024), ("/bot-score", 1_048_576)],
)
def test_the_deepest_bodies_the_limits_allow_get_a_400_with_their_id_and_are_recorded(
    make_service, tmp_path, path: str, max_body_bytes: int
) -> None:
    limit = max_body_bytes * (128 if path.endswith("batch") else 1)
    prefix = b'{"instances":' if path.endswith("batch") else b'{"x1":'
    body = prefix + b"[" * (limit - len(prefix))
    with TestClient(make_service(max_body_bytes=max_body_bytes).app) as client:
        response = client.post(path, content=body, headers=JSON)
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "malformed_json",
        "message": "malformed JSON: nested more than 32 levels deep",
        "field": None,
    }
    records = {r["id"]: r for r in shipped_records(tmp_path / "audit") + spooled_records(tmp_path / "audit")}
    kept = records[response.headers["x-request-id"]]
    assert kept["status"] == 400
    assert kept["raw"] == body[: record.RAW_LIMIT].decode()


def test_nesting_up_to_the_bound_is_read_and_named_not_refused(client: TestClient) -> None:
    at_bound = b'{"x1": ' + b"[" * 31 + b"]" * 31 + b', "x2": 0}'  # 32 levels with the object
    past = b'{"x1": ' + b"[" * 32 + b"]" * 32 + b', "x2": 0}'
    assert client.post("/bot-score", content=at_bound, headers=JSON).json()["error"]["code"] == "invalid_type"
    assert client.post("/bot-score", content=past, headers=JSON).json()["error"]["code"] == "malformed_json"
    strings = b'{"x1": "' + b"[" * 500 + b'", "x2": 0}'  # brackets inside a string do not nest
    assert client.post("/bot-score", content=strings, headers=JSON).json()["error"]["code"] == "invalid_type"
