"""BOTSCORE_API_KEYS: scoring routes need a key; health, readiness, metrics and docs stay open."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from botscore.http.auth import ApiKeys, key_id
from botscore.settings import SettingsError, load_settings
from tests.support.records import shipped_records, spooled_records

SCORE = {"x1": 0.1, "x2": 0.2}


@pytest.fixture
def keyed(make_service) -> TestClient:
    with TestClient(make_service(api_keys="key-one-1234,key-two-5678").app) as client:
        yield client


@pytest.mark.parametrize("path", ["/bot-score", "/bot-score/batch"])
@pytest.mark.parametrize(
    "header", [None, "Bearer wrong", "Bearer key-one-123", "Basic a2V5LW9uZS0xMjM0", "key-one-1234"]
)
def test_scoring_without_a_valid_key_is_401(keyed: TestClient, path: str, header: str | None) -> None:
    headers = {"authorization": header} if header else {}
    body = SCORE if path == "/bot-score" else {"instances": [SCORE]}
    response = keyed.post(path, json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "unauthorized"
    assert "key-one" not in response.text


@pytest.mark.parametrize("key", ["key-one-1234", "key-two-5678"])
def test_each_key_is_accepted(keyed: TestClient, key: str) -> None:
    response = keyed.post("/bot-score", json=SCORE, headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"])
def test_operational_routes_stay_open(keyed: TestClient, path: str) -> None:
    assert keyed.get(path).status_code == 200


def test_keys_never_reach_records_or_logs(make_service, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with TestClient(make_service(api_keys="secret-key-9999", log_level="DEBUG").app) as client:
        client.post("/bot-score", json=SCORE, headers={"authorization": "Bearer secret-key-9999"})
        client.post("/bot-score", json=SCORE, headers={"authorization": "Bearer wrong-key-0000"})
    records = shipped_records(tmp_path / "audit") + spooled_records(tmp_path / "audit")
    assert [r["status"] for r in records] == [200, 401]
    assert records[0]["key_id"] == key_id("secret-key-9999") and "key_id" not in records[1]
    assert "secret-key" not in str(records) and "wrong-key" not in str(records)
    assert "secret-key" not in caplog.text and "wrong-key" not in caplog.text


def test_keys_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("# rotated 2026-11\nkey-a\n\n  key-b  \n")
    keys = ApiKeys.from_setting(str(path))
    assert keys.allows(b"Bearer key-a") and keys.allows(b"bearer key-b")
    assert not keys.allows(b"Bearer # rotated 2026-11") and not keys.allows(None)
    assert ApiKeys.from_setting(None).allows(None)


@pytest.mark.parametrize("setting", ["k1,k2,", ",k1,,k2", " k1 , k2 , "])
def test_empty_entries_in_the_setting_are_not_keys(setting: str) -> None:
    keys = ApiKeys.from_setting(setting)
    assert len(keys) == 2
    assert keys.allows(b"Bearer k1") and keys.allows(b"Bearer k2")
    assert not keys.allows(b"Bearer ")
    assert not keys.allows(b"Bearer")


@pytest.mark.parametrize("header", ["Bearer ", "Bearer   ", "Bearer"])
def test_a_trailing_comma_does_not_open_the_routes_to_an_empty_bearer(make_service, header: str) -> None:
    with TestClient(make_service(api_keys="k1,k2,").app) as client:
        response = client.post("/bot-score", json=SCORE, headers={"authorization": header})
        allowed = client.post("/bot-score", json=SCORE, headers={"authorization": "Bearer k2"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert allowed.status_code == 200


def _replace(path: Path, text: str) -> None:
    aside = path.with_suffix(".new")
    aside.write_text(text)
    os.replace(aside, path)


def test_a_changed_keys_file_is_read_again_and_its_keys_known_by_id(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("key-a\n")
    keys = ApiKeys.from_setting(str(path))
    assert keys.identify(b"Bearer key-a") == hashlib.sha256(b"key-a").hexdigest()[:12] == key_id("key-a")
    assert not keys.refresh()  # unchanged: not read again
    _replace(path, "key-a, key-b\n")
    assert keys.refresh()
    assert keys.ids == [key_id("key-a"), key_id("key-b")]
    _replace(path, "key-b\n")
    assert keys.refresh()
    assert keys.identify(b"Bearer key-a") is None and keys.identify(b"Bearer key-b") == key_id("key-b")


@pytest.mark.parametrize("broken", ["missing", "empty", "comments only", "not utf-8"])
def test_a_keys_file_that_cannot_be_read_or_is_empty_keeps_the_keys(tmp_path: Path, broken: str) -> None:
    path = tmp_path / "keys"
    path.write_text("key-a\n")
    keys = ApiKeys.from_setting(str(path))
    if broken == "missing":
        path.unlink()
    else:
        path.write_bytes({"empty": b"", "comments only": b"# none yet\n", "not utf-8": b"\xff\xfe"}[broken])
    assert not keys.refresh(force=True)
    assert keys.required and keys.allows(b"Bearer key-a")  # a reload never opens the routes


def test_a_keys_path_whose_file_is_missing_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"BOTSCORE_API_KEYS=<hidden>: .*keys file that does not exist"):
        load_settings(api_keys=str(tmp_path / "nowhere"))


@pytest.mark.parametrize("setting", [",", " , ", "empty file", "comments only"])
def test_a_keys_setting_that_holds_no_key_stops_start_up(make_service, tmp_path: Path, setting: str) -> None:
    # Set, yet no key: the routes must not open (a secret of ",", a file still being written).
    path = tmp_path / "keys"
    path.write_text("# keys go here\n" if setting == "comments only" else "")
    value = setting if setting.strip(" ,") == "" else str(path)
    with pytest.raises(SettingsError, match=r"BOTSCORE_API_KEYS=<hidden>: .*no key"):
        make_service(api_keys=value)


def test_a_keys_path_too_long_to_look_up_is_refused_without_showing_it() -> None:
    key = "/" + "k" * 5000
    with pytest.raises(SettingsError) as refused:
        load_settings(api_keys=key)
    assert "kkkk" not in str(refused.value)
