"""Rotating an API key under load, with no restart: `botscore serve --workers 2` and a keys file."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.records import shipped_records
from tests.support.servers import BIN, Service, free_port, service_env

OLD = "old-key-3b1f9a7c5d"
NEW = "new-key-8e2d4c6a0f"
SCORE = b'{"x1": 0.1, "x2": 0.2}'


def _key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _write_keys(path: Path, *keys: str) -> float:
    """Write the file the way docs/api.md says (aside, then rename); return when it was replaced."""
    aside = path.with_suffix(".new")
    aside.write_text("# botscore API keys\n" + "\n".join(keys) + "\n")
    os.replace(aside, path)
    return time.monotonic()


class _Holder(threading.Thread):
    """A client that keeps calling with one key (keep-alive connections) and notes each status and when."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=10)
        self.answers: list[tuple[float, int]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            status = self.client.post("/bot-score", content=SCORE).status_code
            self.answers.append((time.monotonic(), status))

    def stop(self) -> list[tuple[float, int]]:
        self.stopping.set()
        self.join(20)
        self.client.close()
        return self.answers


def _first_success(url: str, key: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
        while client.post("/bot-score", content=SCORE).status_code != 200:
            assert time.monotonic() < deadline, "the new key was never accepted"
            time.sleep(0.05)


def test_a_key_rotates_under_load_with_no_failed_request_and_no_restart(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    _write_keys(keys, OLD)
    service = Service(tmp_path, workers=2, api_keys_file=keys).start()
    pid = service.process.pid if service.process else 0
    old_holders = [_Holder(service.url, OLD) for _ in range(3)]
    new_holders: list[_Holder] = []
    try:
        for holder in old_holders:
            holder.start()
        time.sleep(1)
        _write_keys(keys, OLD, NEW)  # step 1: both keys
        _first_success(service.url, NEW)
        time.sleep(1)  # every worker re-reads within a housekeeping tick (0.25 s)
        new_holders = [_Holder(service.url, NEW) for _ in range(2)]
        for holder in new_holders:
            holder.start()
        time.sleep(1)
        removed = _write_keys(keys, NEW)  # step 2: the old key is removed
        time.sleep(2)
        metrics = httpx.get(service.url + "/metrics").text
    finally:
        old = [answer for holder in old_holders for answer in holder.stop()]
        new = [answer for holder in new_holders for answer in holder.stop()]
        service.stop()
    assert service.process is not None and service.process.pid == pid  # the same server throughout
    before = [status for at, status in old if at < removed]
    after = [status for at, status in old if at > removed + 1.0]
    assert len(before) > 100 and set(before) == {200}  # no failure for the old key's holders until removed
    assert len(after) > 10 and set(after) == {401}  # and refused from then on
    assert len(new) > 100 and {status for _, status in new} == {200}
    # Traceable by id, and the keys themselves nowhere: not in logs, records or metric labels.
    records = shipped_records(service.audit_dir)
    assert {r.get("key_id") for r in records if r["status"] == 200} == {_key_id(OLD), _key_id(NEW)}
    assert all("key_id" not in r for r in records if r["status"] == 401)
    assert f'key_id="{_key_id(NEW)}",status="200"' in metrics
    log = service.log.read_text()
    assert _key_id(NEW) in log  # "API keys loaded" names the ids
    for key in (OLD, NEW):
        assert key not in log
        assert key not in metrics
        assert not any(key in str(record) for record in records)


def test_sighup_reads_the_keys_file_again(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("key-aaaa\n")
    service = Service(tmp_path, api_keys_file=keys).start()
    try:
        seen = keys.stat()
        keys.write_text("key-bbbb\n")  # in place, same size, and the same mtime put back:
        os.utime(keys, ns=(seen.st_atime_ns, seen.st_mtime_ns))  # only the signal can tell
        time.sleep(1)
        assert (
            httpx.post(
                service.url + "/bot-score", content=SCORE, headers={"Authorization": "Bearer key-bbbb"}
            ).status_code
            == 401
        )
        assert service.process is not None
        service.process.send_signal(signal.SIGHUP)
        _first_success(service.url, "key-bbbb")
        assert (
            httpx.post(
                service.url + "/bot-score", content=SCORE, headers={"Authorization": "Bearer key-aaaa"}
            ).status_code
            == 401
        )
    finally:
        service.stop()


def test_a_fifo_put_at_the_keys_path_neither_blocks_the_worker_nor_floods_the_log(tmp_path: Path) -> None:
    # The file is read off the event loop: a path that would block a reader (a FIFO with no
    # writer, as a hung NFS mount would) leaves the worker answering with the keys it has.
    keys = tmp_path / "keys"
    _write_keys(keys, OLD)
    service = Service(tmp_path, api_keys_file=keys).start()
    try:
        fifo = tmp_path / "keys.fifo"
        os.mkfifo(fifo)
        os.replace(fifo, keys)
        time.sleep(2)  # eight polls
        with httpx.Client(base_url=service.url, timeout=2) as client:
            statuses = [
                client.post("/bot-score", content=SCORE, headers={"Authorization": f"Bearer {OLD}"}).status_code
                for _ in range(20)
            ]
            assert client.get("/healthz").status_code == 200
    finally:
        service.stop()
    assert statuses == [200] * 20
    log = service.log.read_text()
    assert log.count('"message": "cannot read the API keys file; keeping the keys"') == 1
    assert '"reason": "not a regular file"' in log


@pytest.mark.parametrize(
    ("setting", "value", "line"),
    [
        (
            "BOTSCORE_API_KEYS",
            "keys.txt",
            "botscore: BOTSCORE_API_KEYS=<hidden>: Value error, looks like a file path, not a key list; this variable "
            "holds the keys themselves (name a keys file with BOTSCORE_API_KEYS_FILE)",
        ),
        (
            "BOTSCORE_API_KEYS_FILE",
            "keys.txt",
            "botscore: BOTSCORE_API_KEYS_FILE='keys.txt': No such file or directory",
        ),
    ],
)
def test_a_keys_setting_that_is_neither_keys_nor_a_file_stops_serve_with_one_line(
    tmp_path: Path, setting: str, value: str, line: str
) -> None:
    env = service_env(tmp_path / "audit", **{setting: value})
    result = subprocess.run(
        [str(BIN / "botscore"), "serve", "--port", str(free_port())],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == line + "\n"
