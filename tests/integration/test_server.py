"""The real server as a subprocess: the brief's uvicorn command and `botscore serve`."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from tests.support.records import shipped_records
from tests.support.servers import BIN, LOOPBACK, Service, free_port


def test_brief_uvicorn_command_serves_scores_over_http(tmp_path: Path) -> None:
    port = free_port()
    argv = [str(BIN / "uvicorn"), "app.main:app", "--host", LOOPBACK, "--port", str(port)]
    service = Service(tmp_path, argv, port=port).start()
    try:
        response = httpx.post(service.url + "/bot-score", json={"x1": 0.1, "x2": 0.2}, timeout=5)
        assert response.status_code == 200
        assert 0.0 < response.json()["p_bot"] < 1.0
        assert httpx.get(service.url + "/docs", timeout=5).status_code == 200
    finally:
        # uvicorn shuts down gracefully, then re-raises the signal so the exit status tells why.
        assert service.stop(signal.SIGTERM) == -signal.SIGTERM
    assert '"message": "audit log closed"' in service.log.read_text()


def test_botscore_serve_is_graceful_on_sigterm_and_logs_no_line_per_request(tmp_path: Path) -> None:
    service = Service(tmp_path).start()
    ids = []
    with httpx.Client(base_url=service.url, timeout=5) as client:
        for i in range(50):
            response = client.post("/bot-score", json={"x1": i / 10, "x2": 0.5})
            assert response.status_code == 200
            ids.append(response.headers["x-request-id"])
    started = time.monotonic()
    assert service.stop(signal.SIGTERM) == -signal.SIGTERM
    assert time.monotonic() - started < 10
    log = service.log.read_text()
    assert "/bot-score" not in log  # no access-log line per request
    assert '"message": "audit log closed"' in log
    assert [r["id"] for r in shipped_records(service.audit_dir)] == ids
