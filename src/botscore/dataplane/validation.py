"""Strict parsing of a scoring request body into (x1, x2), with errors that name the field.

The usual body is matched by one regular expression and converted with float(): no objects
built. Anything else goes through the standard library's `json` with hooks. Why not pydantic or
another JSON library: they keep the last of duplicate keys (`{"x1": 1, "x1": 2}` would score 2)
and pydantic's lax mode turns `true` into 1.0; the hooks refuse duplicate keys, NaN, Infinity and
numbers beyond a double by name. That refusal is the only hand-written part.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from botscore.errors import RequestError

FIELDS = ("x1", "x2")
MAX_DEPTH = 32  # nesting of arrays and objects; a batch body needs 3
_EXPECTED = 'a JSON object like {"x1": 0.1, "x2": 0.2}'
# Strings (skipped whole, so brackets inside them do not count) and the brackets that nest.
# An unterminated string takes the rest of the body (its closing quote is optional): the scan stays linear.
_NESTING = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]')


class _NonFinite:
    """Stands in for NaN, Infinity and numbers beyond a double, so the error can name the field."""

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token

    def __str__(self) -> str:  # how it appears in an audit record's `request`
        return self.token


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


def _float(token: str) -> float | _NonFinite:
    value = float(token)
    return value if math.isfinite(value) else _NonFinite(token)


def _int(token: str) -> float | _NonFinite:
    try:
        return float(int(token))
    except (OverflowError, ValueError):
        return _NonFinite(token if len(token) <= 20 else token[:20] + "...")


_decoder = json.JSONDecoder(object_pairs_hook=_pairs, parse_float=_float, parse_int=_int, parse_constant=_NonFinite)


def kind(value: Any) -> str:
    """What a decoded JSON value is, as an error message says it: null, a boolean, a string, ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _too_deep(body: bytes) -> bool:
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return False
    depth = 0
    for match in _NESTING.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


def decode(body: bytes) -> Any:
    """Bytes to a JSON value, refusing non-UTF-8, malformed JSON, deep nesting and duplicate keys."""
    if not body.strip():
        raise RequestError(f"request body is empty; expected {_EXPECTED}", status=400, code="malformed_json")
    if _too_deep(body):
        # Bounded before decoding: a deep value decodes, but cannot be encoded again into its record.
        raise RequestError(
            f"malformed JSON: nested more than {MAX_DEPTH} levels deep", status=400, code="malformed_json"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(
            f"request body is not valid UTF-8 (byte {exc.start}); expected {_EXPECTED}",
            status=400,
            code="invalid_encoding",
        ) from None
    try:
        return _decoder.decode(text)
    except _DuplicateKey as exc:
        raise RequestError(
            f"duplicate key {exc.key!r}: each field may appear once", field=exc.key, code="duplicate_key"
        ) from None
    except json.JSONDecodeError as exc:
        raise RequestError(
            f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", status=400, code="malformed_json"
        ) from None
    except RecursionError:
        raise RequestError("malformed JSON: nested too deeply", status=400, code="malformed_json") from None


def decoded(body: bytes | None) -> Any:
    """The body as JSON for the audit record of a refused request, or None when it does not parse."""
    if body is None:
        return None
    try:
        return decode(body)
    except RequestError:
        return None


def as_text(value: Any) -> str:
    """A value as the client sent it, in JSON: `"a"`, `true`, `null`, `1e999`, `[1, 2]`."""
    if isinstance(value, _NonFinite):
        return value.token
    return json.dumps(value, separators=(",", ":"), default=str, allow_nan=False)


def features(document: Any) -> tuple[float, float]:
    """A decoded body to (x1, x2): exactly the two fields, each a finite number."""
    if not isinstance(document, dict):
        raise RequestError(f"request body must be {_EXPECTED}, got {kind(document)}", code="invalid_body")
    if len(document) != 2 or "x1" not in document or "x2" not in document:
        for key in document:
            if key not in FIELDS:
                raise RequestError(
                    f"unknown field {key!r}: the only fields are x1 and x2 (names are case-sensitive)",
                    field=key,
                    code="unknown_field",
                )
        for key in FIELDS:
            if key not in document:
                raise RequestError(f"{key} is required", field=key, code="missing_field")
    values = []
    for key in FIELDS:
        value = document[key]
        if type(value) is not float:
            number(value, key)  # raises, naming the field
        values.append(value)
    return values[0], values[1]


def number(value: Any, name: str) -> float:
    """A decoded JSON value as a finite double, or RequestError naming `name`: the number rule of every feature."""
    if type(value) is float:
        return value
    if isinstance(value, _NonFinite):
        raise RequestError(f"{name} must be a finite number, got {value.token}", field=name, code="not_finite")
    raise RequestError(f"{name} must be a number, got {kind(value)}", field=name, code="invalid_type")


# The shape nearly every client sends, matched without building any objects. Anything else,
# including a number that is not finite, goes through the full parser, which names the problem.
_WS = rb"[ \t\n\r]*"
_NUMBER = rb"(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)"
_CANONICAL = re.compile(
    _WS
    + rb"\{"
    + _WS
    + rb'"x1"'
    + _WS
    + rb":"
    + _WS
    + _NUMBER
    + _WS
    + rb","
    + _WS
    + rb'"x2"'
    + _WS
    + rb":"
    + _WS
    + _NUMBER
    + _WS
    + rb"\}"
    + _WS
)


BATCH_MAX_ITEMS = 1000


def instances(document: Any) -> list[tuple[float, float]]:
    """A decoded batch body to its (x1, x2) pairs; an error names the item, e.g. `instances[3].x1`."""
    expected = 'a JSON object like {"instances": [{"x1": 0.1, "x2": 0.2}]}'
    if not isinstance(document, dict):
        raise RequestError(f"request body must be {expected}, got {kind(document)}", code="invalid_body")
    for key in document:
        if key != "instances":
            raise RequestError(f"unknown field {key!r}: the only field is instances", field=key, code="unknown_field")
    if "instances" not in document:
        raise RequestError("instances is required", field="instances", code="missing_field")
    items = document["instances"]
    if not isinstance(items, list):
        raise RequestError(f"instances must be an array, got {kind(items)}", field="instances", code="invalid_type")
    if not 1 <= len(items) <= BATCH_MAX_ITEMS:
        raise RequestError(
            f"instances must hold 1 to {BATCH_MAX_ITEMS} items, got {len(items)}",
            field="instances",
            code="invalid_batch_size",
        )
    pairs = []
    for index, item in enumerate(items):
        try:
            pairs.append(features(item))
        except RequestError as exc:
            where = f"instances[{index}]" + (f".{exc.field}" if exc.field else "")
            raise RequestError(f"{where}: {exc.message}", field=where, code=exc.code) from None
    return pairs


def parse(body: bytes) -> tuple[float, float]:
    """The whole check: bytes of a /bot-score body to (x1, x2), or RequestError naming the problem."""
    x1, x2, _, _ = parse_with_tokens(body)
    return x1, x2


def usual(body: bytes) -> tuple[float, float, bytes, bytes] | None:
    """(x1, x2) and their JSON number tokens when the body has the usual shape, else None.

    The tokens are the client's own digits (valid JSON numbers by the pattern), so the audit
    record needs no repr. None also for non-finite numbers (the full parser names them) and for
    integers past 2**53, which some JSON readers would read back exactly, not as the double scored.
    """
    match = _CANONICAL.fullmatch(body)
    if match is None:
        return None
    t1, t2 = match[1], match[2]
    x1, x2 = float(t1), float(t2)
    if (
        not (math.isfinite(x1) and math.isfinite(x2))
        or (len(t1) > 15 and t1.lstrip(b"-").isdigit())
        or (len(t2) > 15 and t2.lstrip(b"-").isdigit())
    ):
        return None
    return x1, x2, t1, t2


def parse_unusual(body: bytes) -> tuple[float, float, bytes, bytes]:
    """What `parse_with_tokens` does for a body that `usual` did not match: the full parser."""
    x1, x2 = features(decode(body))
    return x1, x2, repr(x1).encode(), repr(x2).encode()


def parse_with_tokens(body: bytes) -> tuple[float, float, bytes, bytes]:
    """(x1, x2) and each as a JSON number token for the audit record, or RequestError naming the problem."""
    return usual(body) or parse_unusual(body)
