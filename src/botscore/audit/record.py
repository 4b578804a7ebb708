"""Audit record lines, one JSON object per line, in the columns of `schema.py`.

A score's row is formatted from parts that are already JSON (it is on every request); every
other row is built with json. Neither can fail to encode: what the client sent is kept as
text, and if a row still cannot be built, a row with the raw body and the answer's status is.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from typing import Any, NamedTuple

from botscore.audit import schema
from botscore.call import Call
from botscore.errors import BotscoreError

log = logging.getLogger("botscore.audit")

RAW_LIMIT = 256  # bytes of a refused body kept in `raw` unless BOTSCORE_AUDIT_RAW_MAX_BYTES says otherwise

_SCORED = (
    b'{"schema":' + str(schema.VERSION).encode() + b',"id":"%s","item":%d,"ts":"%s","method":"POST","path":"%s",'
    b'"status":200,"x1":%s,"x2":%s,"p_bot":%s,"model_version":%s,"latency_ms":%.3f%s%s}\n'
)
# The same row with the shadow model's version and score, formatted in the same pass. 12 significant
# digits, not repr's 17: the shortest round-trip repr of a float costs about three times as much
# (~450 ns against ~155 ns here), and no comparison of two models needs more digits.
_SCORED_SHADOWED = _SCORED[:-2] + b',"shadow_version":%s,"shadow_p_bot":%.12g}\n'
_second = -1
_second_text = b""


class Sent(NamedTuple):
    """The features of a call that was not scored, as the record keeps them (see schema.COLUMNS)."""

    x1: float | None = None
    x2: float | None = None
    x1_text: str | None = None
    x2_text: str | None = None


def timestamp(now: float) -> bytes:
    """UTC time with milliseconds, e.g. 2026-11-27T01:02:03.045Z; the seconds are formatted once a second."""
    global _second, _second_text
    whole = int(now)
    if whole != _second:
        _second, _second_text = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)).encode()
    return b"%s.%03dZ" % (_second_text, int((now - whole) * 1000))


def scored(call: Call, item: int, x1: bytes, x2: bytes, p_bot: bytes, shadow_p_bot: float | None = None) -> bytes:
    """The row of one score: the call's id (checked for safe characters), the features and the score as
    JSON number tokens (the client's own features on the usual path; the score as its answer has it),
    and the shadow model's score if one was set."""
    scorer = call.scorer
    ts = timestamp(call.received_at)
    latency_ms = (time.perf_counter() - call.started) * 1000
    key = b"" if call.key_id is None else b',"key_id":"%s"' % call.key_id.encode()
    path, version = call.route.encode(), scorer.version_json
    # Two literal tuples, not one extended: one tuple of every field costs ~140 ns less a row.
    if shadow_p_bot is None or scorer.shadow is None:
        return _SCORED % (call.id, item, ts, path, x1, x2, p_bot, version, latency_ms, key, scorer.arm)
    shadow = scorer.shadow.version_json
    return _SCORED_SHADOWED % (
        call.id,
        item,
        ts,
        path,
        x1,
        x2,
        p_bot,
        version,
        latency_ms,
        key,
        scorer.arm,
        shadow,
        shadow_p_bot,
    )


_REFUSED = (
    b'{"schema":' + str(schema.VERSION).encode() + b',"id":"%s","ts":"%s","method":%s,"path":%s,"status":%d,'
    b'"error_code":%s%s,"error_message":%s,"model_version":%s,"latency_ms":%.3f%s%s}\n'
)


def failed(call: Call, error: BotscoreError, sent: Sent, *, raw_limit: int = RAW_LIMIT) -> bytes:
    """The one row of a call that scored nothing. What the client sent as text (`raw`, and `x1_text`,
    `x2_text` for a feature that was no number) is kept to its first `raw_limit` bytes each, 0: none;
    a card number sent as x1 is as sensitive as one sent in an extra field."""
    if call.body is None and not any(sent):
        return _refused(call, error)
    raw = None if call.body is None or not raw_limit else call.body[:raw_limit].decode("utf-8", "backslashreplace")
    sent = sent._replace(x1_text=_bounded(sent.x1_text, raw_limit), x2_text=_bounded(sent.x2_text, raw_limit))
    row: dict[str, Any] = {
        "schema": schema.VERSION,
        "id": call.id.decode(),
        "ts": timestamp(call.received_at).decode(),
        "method": call.method,
        "path": call.route,
        "status": error.status,
        **{name: value for name, value in sent._asdict().items() if value is not None},
        "raw": raw,
        "error_code": error.code,
        "error_field": error.field,
        "error_message": error.message,
        "model_version": call.scorer.version,
        "latency_ms": round((time.perf_counter() - call.started) * 1000, 3),
        "key_id": call.key_id,
        "arm": call.scorer.arm_name,
    }
    try:
        return _dumps(row)
    except (ValueError, TypeError, RecursionError) as exc:  # what the client sent defeated the encoder
        log.error("audit record kept without its features", extra={"request_id": row["id"], "reason": repr(exc)})
        return _dumps({key: value for key, value in row.items() if key not in Sent._fields})


def _bounded(text: str | None, limit: int) -> str | None:
    """`text`'s first `limit` bytes in UTF-8 (a character cut in two is dropped), None for 0 bytes."""
    if text is None or not limit:
        return None
    return text.encode("utf-8", "backslashreplace")[:limit].decode("utf-8", "ignore") or None


def _refused(call: Call, error: BotscoreError) -> bytes:
    """The row of a call answered before its body was read (401, 405, 413 by length, a shed 503): the
    same columns as `failed` builds, formatted from parts, for a shed answer must cost little."""
    return _REFUSED % (
        call.id,
        timestamp(call.received_at),
        _json(call.method),
        _json(call.route),
        error.status,
        _json(error.code),
        b"" if error.field is None else b',"error_field":' + _json(error.field),
        _json(error.message),
        call.scorer.version_json,
        (time.perf_counter() - call.started) * 1000,
        b"" if call.key_id is None else b',"key_id":"%s"' % call.key_id.encode(),
        call.scorer.arm,
    )


@functools.lru_cache(maxsize=256)
def _json(text: str) -> bytes:
    """A string as JSON (methods, routes, codes and messages repeat: each is encoded once)."""
    return json.dumps(text).encode()


def _dumps(row: dict[str, Any]) -> bytes:
    """A row as one line; null columns are left out (a reader takes an absent key as null)."""
    present = {key: value for key, value in row.items() if value is not None}
    return json.dumps(present, separators=(",", ":"), allow_nan=False).encode() + b"\n"
