"""BOTSCORE_AUDIT_RAW_MAX_BYTES: how much of a refused body the audit record keeps, from none to a bound."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from botscore.audit import record
from botscore.settings import Settings
from tests.support.records import shipped_records, spooled_records

JSON = {"content-type": "application/json"}
CARD = b'{"x1": 0.1, "x2": 0.2, "card": "4111111111111111", "name": "' + b"A" * 400 + b'"}'


def _kept(make_service: Callable[..., Any], tmp_path: Path, **settings: Any) -> dict[str, Any]:
    with TestClient(make_service(**settings).app) as client:
        response = client.post("/bot-score", content=CARD, headers=JSON)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "card"
    records = {r["id"]: r for r in shipped_records(tmp_path / "audit") + spooled_records(tmp_path / "audit")}
    return records[response.headers["x-request-id"]]


def test_by_default_a_refused_body_is_kept_up_to_256_bytes(make_service: Callable[..., Any], tmp_path: Path) -> None:
    assert Settings.model_fields["audit_raw_max_bytes"].default == record.RAW_LIMIT == 256
    kept = _kept(make_service, tmp_path)
    assert kept["raw"] == CARD[:256].decode()
    assert (kept["status"], kept["error_code"]) == (422, "unknown_field")


@pytest.mark.parametrize(("limit", "raw"), [(0, None), (16, CARD[:16].decode()), (4096, CARD.decode())])
def test_the_setting_keeps_none_or_that_many_bytes_and_the_refusal_is_still_recorded(
    make_service: Callable[..., Any], tmp_path: Path, limit: int, raw: str | None
) -> None:
    kept = _kept(make_service, tmp_path, audit_raw_max_bytes=limit, max_body_bytes=4096)
    assert kept.get("raw") == raw
    assert (kept["status"], kept["error_code"], kept["error_field"]) == (422, "unknown_field", "card")


CARD_AS_X1 = b'{"x1": "4111 1111 1111 1111", "x2": 0.2}'


@pytest.mark.parametrize(
    ("limit", "x1_text", "raw"),
    [(0, None, None), (8, '"4111 11', CARD_AS_X1[:8].decode()), (4096, '"4111 1111 1111 1111"', CARD_AS_X1.decode())],
)
def test_a_feature_sent_as_text_is_kept_no_more_than_the_raw_body(
    make_service: Callable[..., Any], tmp_path: Path, limit: int, x1_text: str | None, raw: str | None
) -> None:
    """A card number sent as x1 is kept in `x1_text` under the same bound as `raw`: none of it with 0."""
    with TestClient(make_service(audit_raw_max_bytes=limit, max_body_bytes=4096).app) as client:
        response = client.post("/bot-score", content=CARD_AS_X1, headers=JSON)
    assert (response.status_code, response.json()["error"]["field"]) == (422, "x1")
    records = {r["id"]: r for r in shipped_records(tmp_path / "audit") + spooled_records(tmp_path / "audit")}
    kept = records[response.headers["x-request-id"]]
    assert (kept.get("x1_text"), kept.get("raw"), kept["x2"]) == (x1_text, raw, 0.2)
    if limit == 0:
        assert "4111" not in json.dumps(kept)
