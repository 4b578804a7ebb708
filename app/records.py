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
_second_text = b""

_SCORED = (
    b'{"id":"%s","ts":"%s","method":"POST","path":"/bot-score","status":200,'
    b'"request":{"x1":%s,"x2":%s},"response":%s,"model_version":%s,"latency_ms":%.3f}\n'
)


def rfc3339_ms(now: float) -> str:
    """UTC time with milliseconds, e.g. 2026-11-27T01:02:03.456Z."""
    return _rfc3339_ms_bytes(now).decode()


def _rfc3339_ms_bytes(now: float) -> bytes:
    global _second, _second_text
    whole = int(now)
    if whole != _second:  # formatting the seconds is cached: one strftime a second
        _second, _second_text = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)).encode()
    return b"%s.%03dZ" % (_second_text, int((now - whole) * 1000))


def scored_line(
    request_id: bytes, now: float, x1: bytes, x2: bytes, response: bytes, model_version_json: bytes, latency_ms: float
) -> bytes:
    """The record of a 200, from parts that are already JSON: the id (checked for safe characters),
    the number tokens of the request, the response body. Formatted, not json.dumps'd, because it
    is on every request."""
    global _second, _second_text
    whole = int(now)
    if whole != _second:  # _rfc3339_ms_bytes, inlined: this is on every request
        _second, _second_text = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)).encode()
    ts = b"%s.%03dZ" % (_second_text, int((now - whole) * 1000))
    return _SCORED % (request_id, ts, x1, x2, response, model_version_json, latency_ms)


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
