"""Audit records: one JSON object per line, built from a Call (the schema is in the README).

{"id", "ts", "method", "path", "status", "request", "response", "model_version", "latency_ms"}
plus "raw" (the body, cut to RAW_LIMIT bytes) when the body could not be parsed.
"""

from __future__ import annotations

import json
import time
from typing import Any

from botscore.call import Call

RAW_LIMIT = 1024

_SCORED = (
    b'{"id":"%s","ts":"%s","method":"POST","path":"/bot-score","status":200,'
    b'"request":{"x1":%s,"x2":%s},"response":%s,"model_version":%s,"latency_ms":%.3f}\n'
)
_second = -1
_second_text = b""


def timestamp(now: float) -> bytes:
    """UTC time with milliseconds, e.g. 2026-11-27T01:02:03.045Z; the seconds are formatted once a second."""
    global _second, _second_text
    whole = int(now)
    if whole != _second:
        _second, _second_text = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)).encode()
    return b"%s.%03dZ" % (_second_text, int((now - whole) * 1000))


def scored(call: Call, x1: bytes, x2: bytes) -> bytes:
    """The record of a 200 on POST /bot-score, from parts that are already JSON: the id (checked for
    safe characters), the request's number tokens, the response body. Formatted, not json.dumps'd,
    because it is on every request."""
    return _SCORED % (
        call.id,
        timestamp(call.received_at),
        x1,
        x2,
        call.response,
        call.scorer.version_json,
        (time.perf_counter() - call.started) * 1000,
    )


def general(call: Call, request: Any, response: Any, raw: bytes | None = None) -> bytes:
    """Any other record (errors, batches), built with json; `raw` (cut) when the body did not parse."""
    record: dict[str, Any] = {
        "id": call.id.decode(),
        "ts": timestamp(call.received_at).decode(),
        "method": call.method,
        "path": call.route,
        "status": call.status,
        "request": request,
        "response": response,
        "model_version": call.scorer.version,
        "latency_ms": round((time.perf_counter() - call.started) * 1000, 3),
    }
    if raw is not None:
        record["raw"] = raw[:RAW_LIMIT].decode("utf-8", "backslashreplace")
    return json.dumps(record, separators=(",", ":"), default=str, allow_nan=False).encode() + b"\n"
