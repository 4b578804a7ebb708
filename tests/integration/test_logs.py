"""Logs are JSON lines on stdout; per-request lines only at DEBUG, with the request id."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx

from tests.support.servers import Service


def _lines(service: Service) -> list[dict]:
    text = service.log.read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_debug_logs_one_json_line_per_request_with_its_id(tmp_path: Path) -> None:
    service = Service(tmp_path, log_level="DEBUG").start()
    try:
        ok = httpx.post(service.url + "/bot-score", json={"x1": 0.1, "x2": 0.2}, headers={"x-request-id": "abc-1"})
        bad = httpx.post(service.url + "/bot-score", json={"x1": "a", "x2": 0.2})
    finally:
        service.stop(signal.SIGTERM)
    lines = _lines(service)  # every line parses as JSON
    answered = {entry["request_id"]: entry for entry in lines if entry["message"] == "answered"}
    assert answered["abc-1"]["status"] == ok.status_code == 200
    assert answered[bad.headers["x-request-id"]]["status"] == 422
    assert all({"ts", "level", "logger", "message"} <= set(entry) for entry in lines)


def test_info_logs_no_line_per_request(tmp_path: Path) -> None:
    service = Service(tmp_path, log_level="INFO").start()
    try:
        for _ in range(20):
            httpx.post(service.url + "/bot-score", json={"x1": 0.1, "x2": 0.2})
    finally:
        service.stop(signal.SIGTERM)
    assert not [entry for entry in _lines(service) if "request_id" in entry]
