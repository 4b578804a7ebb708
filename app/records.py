"""Audit records: one JSON object per line, the schema documented in the README.

    {"id", "ts", "method", "path", "status", "request", "response", "model_version", "latency_ms"}
    plus "raw" (the body, cut to RAW_LIMIT characters) when the body could not be parsed.
"""

from __future__ import annotations

import json
import time
from typing import Any

RAW_LIMIT = 1024

_second = -1
_second_text = ""


def rfc3339_ms(now: float) -> str:
    """UTC time with milliseconds, e.g. 2026-11-27T01:02:03.456Z (formatting cached per second)."""
    global _second, _second_text
    whole = int(now)
    if whole != _second:
        _second, _second_text = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_second_text}.{int((now - whole) * 1000):03d}Z"


def scored_line(
    request_id: str, now: float, x1: float, x2: float, response: bytes, model_version_json: str, latency_ms: float
) -> bytes:
    """The record of a 200. Built by formatting because it is on every request; every part is
    already valid JSON (the id is checked for safe characters, floats use repr)."""
    return (
        f'{{"id":"{request_id}","ts":"{rfc3339_ms(now)}","method":"POST","path":"/bot-score","status":200,'
        f'"request":{{"x1":{x1!r},"x2":{x2!r}}},"response":{response.decode()},'
        f'"model_version":{model_version_json},"latency_ms":{latency_ms:.3f}}}\n'
    ).encode()


def json_line(
    request_id: str,
    now: float,
    method: str,
    path: str,
    status: int,
    request: Any,
    raw: bytes | None,
    response: dict[str, Any],
    model_version: str,
    latency_ms: float,
) -> bytes:
    """Any record, built with json: errors (with `raw`, cut, when the body could not be parsed) and batches."""
    record: dict[str, Any] = {
        "id": request_id,
        "ts": rfc3339_ms(now),
        "method": method,
        "path": path,
        "status": status,
        "request": request,
        "response": response,
        "model_version": model_version,
        "latency_ms": round(latency_ms, 3),
    }
    if raw is not None:
        record["raw"] = raw[:RAW_LIMIT].decode("utf-8", "backslashreplace")
    return json.dumps(record, separators=(",", ":"), default=str, allow_nan=False).encode() + b"\n"
