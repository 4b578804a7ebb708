"""POST /bot-score/batch: the single route's answers, in order; errors name the item."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.support.records import shipped_records, spooled_records


def test_batch_equals_the_single_route_in_order(client: TestClient) -> None:
    rng = random.Random(7)
    instances = [{"x1": rng.uniform(-1, 4), "x2": rng.uniform(0, 3)} for _ in range(1000)]
    response = client.post("/bot-score/batch", json={"instances": instances})
    assert response.status_code == 200
    assert response.headers["x-model-version"].startswith("lr-")
    singles = [client.post("/bot-score", json=item).json()["p_bot"] for item in instances[:50]]
    assert response.json()["p_bot"][:50] == singles
    assert len(response.json()["p_bot"]) == 1000


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"instances": [{"x1": 0.1, "x2": 0.2}, {"x1": "a", "x2": 0.2}]}, "invalid_type", "instances[1].x1"),
        ({"instances": [{"x1": 0.1, "x2": 0.2}, {"x1": 0.1}]}, "missing_field", "instances[1].x2"),
        ({"instances": [{"x1": 0.1, "x2": 0.2, "x3": 1}]}, "unknown_field", "instances[0].x3"),
        ({"instances": [[0.1, 0.2]]}, "invalid_body", "instances[0]"),
        ({"instances": []}, "invalid_batch_size", "instances"),
        ({"instances": [{"x1": 0.1, "x2": 0.2}] * 1001}, "invalid_batch_size", "instances"),
        ({"instances": {"x1": 0.1}}, "invalid_type", "instances"),
        ({"items": []}, "unknown_field", "items"),
        ({}, "missing_field", "instances"),
    ],
)
def test_batch_errors_name_the_item(client: TestClient, body: object, code: str, field: str) -> None:
    response = client.post("/bot-score/batch", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert error["message"].startswith(field) or code in ("invalid_batch_size", "missing_field", "unknown_field")


def test_non_finite_item_is_refused_by_index(client: TestClient) -> None:
    response = client.post(
        "/bot-score/batch",
        content=b'{"instances": [{"x1": 0, "x2": 0}, {"x1": NaN, "x2": 0}]}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "instances[1].x1"
    assert "got NaN" in response.json()["error"]["message"]


def test_one_audit_row_per_score_sharing_the_calls_id(make_service, tmp_path: Path) -> None:
    with TestClient(make_service().app) as client:
        response = client.post("/bot-score/batch", json={"instances": [{"x1": 0.1, "x2": 0.2}, {"x1": 2, "x2": 0}]})
    rows = shipped_records(tmp_path / "audit") + spooled_records(tmp_path / "audit")
    assert [row["item"] for row in rows] == [0, 1]
    assert {row["id"] for row in rows} == {response.headers["x-request-id"]}
    assert {row["path"] for row in rows} == {"/bot-score/batch"}
    assert [(row["x1"], row["x2"]) for row in rows] == [(0.1, 0.2), (2.0, 0.0)]
    assert [row["p_bot"] for row in rows] == response.json()["p_bot"]
