"""BOTSCORE_API_KEYS: scoring routes need a key; health, readiness, metrics and docs stay open."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from botscore.http import auth
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
    keys = ApiKeys.load(None, path)
    assert keys.allows(b"Bearer key-a") and keys.allows(b"bearer key-b")
    assert not keys.allows(b"Bearer # rotated 2026-11") and not keys.allows(None)
    assert ApiKeys.load(None, None).allows(None)


def test_a_byte_order_mark_is_not_part_of_the_first_key(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_bytes("\ufeffkey-a\r\nkey-b\r\n".encode())  # as Notepad saves it
    keys = ApiKeys.load(None, path)
    assert keys.ids == [key_id("key-a"), key_id("key-b")]
    assert keys.allows(b"Bearer key-a")


@pytest.mark.parametrize("setting", ["k1,k2,", ",k1,,k2", " k1 , k2 , "])
def test_empty_entries_in_the_setting_are_not_keys(setting: str) -> None:
    keys = ApiKeys.load(setting, None)
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
    keys = ApiKeys.load(None, path)
    assert keys.identify(b"Bearer key-a") == hashlib.sha256(b"key-a").hexdigest()[:12] == key_id("key-a")
    assert not keys.refresh()  # unchanged: not read again
    _replace(path, "key-a, key-b\n")
    assert keys.refresh()
    assert keys.ids == [key_id("key-a"), key_id("key-b")]
    _replace(path, "key-b\n")
    assert keys.refresh()
    assert keys.identify(b"Bearer key-a") is None and keys.identify(b"Bearer key-b") == key_id("key-b")


@pytest.mark.parametrize("broken", ["missing", "empty", "comments only", "not utf-8", "a fifo"])
def test_a_keys_file_that_cannot_be_read_or_is_empty_keeps_the_keys(tmp_path: Path, broken: str) -> None:
    path = tmp_path / "keys"
    path.write_text("key-a\n")
    keys = ApiKeys.load(None, path)
    path.unlink()
    if broken == "a fifo":
        os.mkfifo(path)  # no writer: a plain open() would wait for one forever
    elif broken != "missing":
        path.write_bytes({"empty": b"", "comments only": b"# none yet\n", "not utf-8": b"\xff\xfe"}[broken])
    assert not keys.refresh(force=True)
    assert keys.required and keys.allows(b"Bearer key-a")  # a reload never opens the routes


def test_an_unreadable_keys_file_is_logged_once_and_again_when_it_changes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys"
    path.write_text("key-a\n")
    keys = ApiKeys.load(None, path)
    path.write_bytes(b"\xff not utf-8")
    with caplog.at_level(logging.ERROR, logger="botscore.auth"):
        for _ in range(20):  # five seconds of a worker's polling
            keys.refresh()
        keys.refresh(force=True)  # SIGHUP, same file: nothing new to say
        assert [r.getMessage() for r in caplog.records] == ["cannot read the API keys file; keeping the keys"]
        assert caplog.records[0].reason == "not UTF-8 text"  # type: ignore[attr-defined]  # a logging extra
        _replace(path, "\xfe also not utf-8")
        path.write_bytes(b"\xfe also not utf-8, longer")
        keys.refresh()
        assert len(caplog.records) == 2
        _replace(path, "key-b\n")
        assert keys.refresh()
        path.unlink()
        keys.refresh()
        keys.refresh()
    assert [r.getMessage() for r in caplog.records][2:] == ["cannot read the API keys file; keeping the keys"]
    assert keys.allows(b"Bearer key-b")


def test_the_keys_file_is_not_read_on_the_caller_thread_when_it_hangs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A hung NFS mount cannot be had here; a read that never returns stands in for it.
    path = tmp_path / "keys"
    path.write_text("key-a\n")
    released = threading.Event()

    def hung(_: Path) -> tuple[list[str], tuple[int, int, int]]:
        released.wait(30)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(auth, "read_keys_file", hung)
    started = time.monotonic()
    with pytest.raises(auth.KeysFileError, match=r"^not read within 0.2 s \(a hung network mount\?\)$"):
        ApiKeys.load(None, path, timeout=0.2)
    assert time.monotonic() - started < 2
    released.set()


def test_the_watcher_rereads_the_file_off_the_calling_thread_and_at_once_when_poked(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("key-a\n")
    keys = ApiKeys.load(None, path)
    watcher = keys.watch(0.05)
    assert watcher is not None and watcher.is_alive()
    try:
        _replace(path, "key-b\n")
        deadline = time.monotonic() + 5
        while not keys.allows(b"Bearer key-b"):
            assert time.monotonic() < deadline, "the watcher never re-read the file"
            time.sleep(0.01)
        seen = path.stat()
        path.write_text("key-c\n")  # in place, same size, the old mtime put back: only a poke sees it
        os.utime(path, ns=(seen.st_atime_ns, seen.st_mtime_ns))
        watcher.poke()
        while not keys.allows(b"Bearer key-c"):
            assert time.monotonic() < deadline, "a poke did not re-read the file"
            time.sleep(0.01)
    finally:
        watcher.stop()
    assert not watcher.is_alive()
    assert ApiKeys.load("k1", None).watch(0.05) is None


def test_inline_keys_are_logged_by_id_at_start(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="botscore.auth"):
        ApiKeys.load("key-one-1234,key-two-5678", None)
    [record] = caplog.records
    assert record.getMessage() == "API keys loaded"
    assert record.key_ids == [key_id("key-one-1234"), key_id("key-two-5678")]  # type: ignore[attr-defined]
    assert "key-one" not in caplog.text


def test_keys_from_a_file_setting_reach_the_service(make_service, tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("key-from-file-1\n")
    with TestClient(make_service(api_keys_file=str(path)).app) as client:
        allowed = client.post("/bot-score", json=SCORE, headers={"authorization": "Bearer key-from-file-1"})
        refused = client.post("/bot-score", json=SCORE)
    assert (allowed.status_code, refused.status_code) == (200, 401)


@pytest.mark.parametrize("value", ["keys.txt", "./keys", "~/keys", "/etc/botscore/keys", "k1,secrets.env", "api.KEYS"])
def test_a_path_in_the_keys_setting_stops_start_up(value: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(api_keys=value)
    assert str(refused.value) == (
        "BOTSCORE_API_KEYS=<hidden>: Value error, looks like a file path, not a key list; this variable holds "
        "the keys themselves (name a keys file with BOTSCORE_API_KEYS_FILE)"
    )


def test_an_existing_file_named_in_the_keys_setting_stops_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mykeys").write_text("key-a\n")
    with pytest.raises(SettingsError, match=r"^BOTSCORE_API_KEYS=<hidden>: .*looks like a file path"):
        load_settings(api_keys="mykeys")


@pytest.mark.parametrize("key", ["3f9c2a7d0b", "dGhpcyBpcyBhIGtleQ==", "k.v2", "key_with-dashes.and~tilde"])
def test_keys_that_are_tokens_are_accepted(key: str) -> None:
    assert ApiKeys.load(load_settings(api_keys=key).api_keys.get_secret_value(), None).ids == [key_id(key)]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "No such file or directory"),
        ("a fifo", "not a regular file"),
        ("a folder", "not a regular file"),
        ("empty", "holds no key; unset it to leave the scoring routes open"),
        ("comments only", "holds no key; unset it to leave the scoring routes open"),
    ],
)
def test_a_keys_file_that_is_no_keys_file_stops_start_up(make_service, tmp_path: Path, kind: str, message: str) -> None:
    path = tmp_path / "keys"
    if kind == "a fifo":
        os.mkfifo(path)
    elif kind == "a folder":
        path.mkdir()
    elif kind != "missing":
        path.write_text("" if kind == "empty" else "# keys go here\n")
    started = time.monotonic()
    with pytest.raises(SettingsError) as refused:
        make_service(api_keys_file=str(path))
    assert str(refused.value) == f"BOTSCORE_API_KEYS_FILE={str(path)!r}: {message}"
    assert time.monotonic() - started < 2  # a FIFO is refused at once, not waited on


def test_keys_and_a_keys_file_together_stop_start_up(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(api_keys="key-a", api_keys_file=str(tmp_path / "keys"))
    assert str(refused.value) == (
        f"BOTSCORE_API_KEYS_FILE={str(tmp_path / 'keys')!r}: Value error, "
        "set BOTSCORE_API_KEYS or BOTSCORE_API_KEYS_FILE, not both"
    )


@pytest.mark.parametrize("setting", [",", " , "])
def test_a_keys_setting_that_holds_no_key_stops_start_up(make_service, setting: str) -> None:
    # Set, yet no key: the routes must not open (a secret of ",").
    with pytest.raises(SettingsError, match=r"^BOTSCORE_API_KEYS=<hidden>: holds no key \(only separators\)"):
        make_service(api_keys=setting)


def test_a_keys_value_too_long_to_look_up_is_refused_without_showing_it() -> None:
    key = "/" + "k" * 5000
    with pytest.raises(SettingsError) as refused:
        load_settings(api_keys=key)
    assert "kkkk" not in str(refused.value)
