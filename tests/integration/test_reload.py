"""SIGHUP reloads the model without downtime: real `botscore serve` processes, real signals, real load.

A broken artifact leaves the old model serving and is logged; a good one is swapped in while
requests run, none fails, and X-Model-Version and the audit record say which model answered.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from botscore.model import artifact
from botscore.settings import SHIPPED_MODEL
from tests.support.load import Load
from tests.support.models import FAILED, NEW, NEW_DOCUMENT, OLD, SHIPPED, reload_log, replace, wait_for_log
from tests.support.records import shipped_records
from tests.support.servers import BIN, LOOPBACK, Service, wait_for

pytestmark = pytest.mark.slow


def version(url: str, request_id: str | None = None) -> str:
    headers = {"X-Request-ID": request_id} if request_id else {}
    response = httpx.post(url + "/bot-score", json={"x1": 0.1, "x2": 0.2}, headers=headers, timeout=5)
    assert response.status_code == 200
    return response.headers["x-model-version"]


def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.json"
    replace(path, SHIPPED_MODEL.read_bytes())
    return path


def test_reload_under_load_keeps_the_old_model_on_a_broken_artifact_then_swaps_in_a_good_one(tmp_path: Path) -> None:
    path = model_file(tmp_path)
    service = Service(tmp_path, model_path=path, audit_segment_max_age_seconds=1).start()
    load = Load(service.url, threads=3, max_requests=100_000, max_seconds=60).start()
    try:
        load.wait_for(200)
        replace(path, b'{"format": "botscore.logistic-regression/v1", "intercept": ')
        service.process.send_signal(signal.SIGHUP)
        [failed] = wait_for_log(service, FAILED, 1)
        assert failed["level"] == "ERROR"
        assert failed["serving_version"] == OLD
        assert failed["reason"].startswith(f"model artifact {path}: not valid JSON: ")
        assert version(service.url, "probe-old") == OLD

        answered = len(load.result.answered)
        load.wait_for(answered + 200)
        replace(path, NEW_DOCUMENT)
        service.process.send_signal(signal.SIGHUP)
        [reloaded] = wait_for_log(service, "model reloaded", 1)
        assert (reloaded["old_version"], reloaded["serving_version"]) == (OLD, NEW)
        assert version(service.url, "probe-new") == NEW
        load.wait_for(len(load.result.answered) + 200)
    finally:
        result = load.stop()
        assert service.stop() == -signal.SIGTERM
    assert result.failures == []
    assert set(result.answered.values()) == {200}
    records = {r["id"]: r for r in shipped_records(service.audit_dir)}
    assert set(result.ids()) | {"probe-old", "probe-new"} == set(records)
    assert (records["probe-old"]["model_version"], records["probe-new"]["model_version"]) == (OLD, NEW)
    versions = Counter(r["model_version"] for r in records.values())
    assert set(versions) == {OLD, NEW} and min(versions.values()) >= 200


def test_a_request_in_flight_finishes_on_the_model_it_started_with(tmp_path: Path) -> None:
    path = model_file(tmp_path)
    service = Service(tmp_path, model_path=path).start()
    body = b'{"x1": 0.1, "x2": 0.2}'
    head = (
        f"POST /bot-score HTTP/1.1\r\nHost: {LOOPBACK}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nX-Request-ID: in-flight\r\nConnection: close\r\n\r\n"
    ).encode()
    try:
        with socket.create_connection((LOOPBACK, service.port), timeout=10) as conn:
            conn.sendall(head + body[:8])  # the request has started: headers and part of the body are in
            replace(path, NEW_DOCUMENT)
            service.process.send_signal(signal.SIGHUP)
            wait_for_log(service, "model reloaded", 1)
            assert version(service.url) == NEW
            conn.sendall(body[8:])
            response = b""
            while chunk := conn.recv(65536):
                response += chunk
    finally:
        assert service.stop() == -signal.SIGTERM
    status, *header_lines = response.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in header_lines)}
    assert status == "HTTP/1.1 200 OK"
    assert headers["x-model-version"] == OLD
    [record] = [r for r in shipped_records(service.audit_dir) if r["id"] == "in-flight"]
    assert record["model_version"] == OLD


def test_signals_during_a_reload_fold_into_one_more_and_serving_never_blocks(tmp_path: Path) -> None:
    fifo = tmp_path / "model.fifo"
    os.mkfifo(fifo)

    def feed(content: bytes) -> threading.Thread:
        """Write one artifact into the FIFO when the service opens it (opening blocks until then)."""
        writer = threading.Thread(target=fifo.write_bytes, args=(content,), daemon=True)
        writer.start()
        return writer

    feed(SHIPPED_MODEL.read_bytes())  # the start-up read
    service = Service(tmp_path, model_path=fifo).start()
    try:
        service.process.send_signal(signal.SIGHUP)
        wait_for_log(service, "model reload started", 1)  # ...and now blocked reading the FIFO, in a thread
        for queued in (1, 2):
            service.process.send_signal(signal.SIGHUP)
            wait_for_log(service, "model reload queued behind the running one", queued)
        started = time.monotonic()
        assert version(service.url) == OLD  # the event loop serves while the reload waits
        assert time.monotonic() - started < 1
        feed(json.dumps(NEW_DOCUMENT).encode()).join(10)
        wait_for_log(service, "model reloaded", 1)
        feed(json.dumps(NEW_DOCUMENT).encode()).join(10)  # the one reload the two queued signals became
        wait_for_log(service, "model reload found the same model", 1)
        assert version(service.url) == NEW
        time.sleep(0.5)
        assert [e["message"] for e in reload_log(service)].count("model reload started") == 2
    finally:
        assert service.stop() == -signal.SIGTERM


def worker_pids(parent: int) -> set[int]:
    """uvicorn's worker processes (spawned children), not multiprocessing's resource tracker."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    workers = set()
    for pid in map(int, children):
        try:
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                workers.add(pid)
        except FileNotFoundError:
            pass
    return workers


def versions_seen(url: str, requests: int = 12) -> set[str]:
    """Versions answered over fresh connections, which the kernel spreads over the workers."""
    return {version(url) for _ in range(requests)}


def reload_command(parent: int) -> str:
    """`botscore reload --pid PARENT`, the documented way with several workers; its output."""
    result = subprocess.run(
        [str(BIN / "botscore"), "reload", "--pid", str(parent)], check=False, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_botscore_reload_signals_each_worker_which_swaps_in_place_under_load(tmp_path: Path) -> None:
    path = model_file(tmp_path)
    service = Service(tmp_path, model_path=path, workers=2).start()
    parent = service.process.pid
    wait_for(lambda: service.log.read_text().count("Application startup complete") == 2, 20, "2 workers up")
    workers = worker_pids(parent)
    assert len(workers) == 2
    load = Load(service.url, threads=3, max_requests=100_000, max_seconds=60).start()
    try:
        load.wait_for(200)
        replace(path, artifact.seal({**SHIPPED, "coefficients": [1.0]}))
        assert reload_command(parent) == f"sent SIGHUP to {', '.join(map(str, sorted(workers)))}"
        failures = wait_for_log(service, FAILED, 2)
        assert {e["pid"] for e in failures} == workers
        assert {e["reason"] for e in failures} == {
            f"model artifact {path}: coefficients must be a list of 2 finite numbers, got [1.0]"
        }
        assert versions_seen(service.url) == {OLD}

        replace(path, NEW_DOCUMENT)
        reload_command(parent)
        reloaded = wait_for_log(service, "model reloaded", 2)
        assert {e["pid"] for e in reloaded} == workers
        assert versions_seen(service.url) == {NEW}
        load.wait_for(len(load.result.answered) + 200)
        assert worker_pids(parent) == workers  # the same processes: swapped in place, nothing restarted
    finally:
        result = load.stop()
        assert service.stop() == 0  # uvicorn's parent exits 0 after stopping its workers
    assert result.failures == []
    assert set(result.answered.values()) == {200}


def test_sighup_to_the_parent_replaces_workers_but_never_with_a_broken_model(tmp_path: Path) -> None:
    path = model_file(tmp_path)
    service = Service(tmp_path, model_path=path, workers=2).start()
    try:
        parent = service.process.pid
        wait_for(lambda: len(worker_pids(parent)) == 2, 20, "2 workers")
        workers = worker_pids(parent)
        wait_for(lambda: service.log.read_text().count("Application startup complete") == 2, 20, "workers up")
        replace(path, b"not an artifact")
        service.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "aborting the restart" in service.log.read_text(), 20, "restart aborted")
        assert f"botscore: model artifact {path}: not valid JSON: " in service.log.read_text()
        assert worker_pids(parent) == workers
        assert versions_seen(service.url) == {OLD}

        replace(path, NEW_DOCUMENT)
        service.process.send_signal(signal.SIGHUP)
        wait_for(lambda: len(worker_pids(parent)) == 2 and not worker_pids(parent) & workers, 30, "workers replaced")
        assert versions_seen(service.url) == {NEW}
    finally:
        assert service.stop() == 0  # uvicorn's parent exits 0 after stopping its workers


def test_serve_pid_and_worker_pids_find_a_running_botscore_serve_and_its_workers(tmp_path: Path) -> None:
    import psutil

    from botscore.ops.processes import serve_pid, worker_pids

    service = Service(tmp_path, workers=2)
    service.argv += ["--workers", "2"]
    service.start()
    try:
        assert service.process is not None
        parent = psutil.Process(service.process.pid)
        workers = worker_pids(parent.pid)
        assert len(workers) == 2
        assert all(psutil.Process(pid).ppid() == parent.pid for pid in workers)
        found = serve_pid()
        assert found is not None  # this one, or an older `botscore serve` on the machine
        assert psutil.Process(found).create_time() <= parent.create_time()
    finally:
        service.stop(signal.SIGTERM)
