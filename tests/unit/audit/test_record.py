"""Audit rows: one JSON object per line, only the schema's columns, each with its one type, the same `ts` format."""

from __future__ import annotations

import json
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from botscore.audit import record, schema
from botscore.call import Call
from botscore.dataplane import validation
from botscore.errors import AuditUnavailable, RequestError
from botscore.model import artifact
from botscore.model.scorer import Scorer
from botscore.settings import SHIPPED_MODEL

SCORER = Scorer(artifact.load(SHIPPED_MODEL))
RFC3339_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
JSON_TYPES = {"string": (str,), "int": (int,), "double": (float, int)}
numbers = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(10**30), 10**30))


def _call(received_at: float, route: str = "/bot-score", body: bytes | None = None) -> Call:
    return Call(route, "POST", b"id-1", SCORER, received_at, time.perf_counter(), body=body)


def _rows_of_every_kind(now: float) -> dict[str, bytes]:
    invalid = RequestError("x1 must be a number, got a string", field="x1", code="invalid_type")
    return {
        "scored": record.scored(_call(now), 0, b"0.1", b"2E3", b"0.5"),
        "batch item": record.scored(_call(now, route="/bot-score/batch"), 7, b"0.1", b"-0.0", b"1.0"),
        "invalid": record.failed(_call(now, body=b'{"x1":"a","x2":1}'), invalid, record.Sent(x1_text='"a"', x2=1.0)),
        "unparsed": record.failed(
            _call(now, body=b"\xff{"),
            RequestError("not UTF-8", status=400, code="invalid_encoding"),
            record.Sent(),
        ),
        "refused": record.failed(_call(now, body=b"{}"), AuditUnavailable("spool full"), record.Sent()),
        "unread": record.failed(_call(now), RequestError("use POST", status=405, code="x"), record.Sent()),
    }


@pytest.mark.parametrize("fraction", [0.0, 0.0625, 0.5, 0.9990234375])  # 000, 062, 500, 999 ms, exact in binary
def test_every_kind_of_row_has_an_rfc3339_ts_with_three_millisecond_digits(fraction: float) -> None:
    now = 1_795_000_000 + fraction
    expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(now))) + f".{int(fraction * 1000):03d}Z"
    for kind, line in _rows_of_every_kind(now).items():
        ts = json.loads(line)["ts"]
        assert RFC3339_MS.fullmatch(ts), (kind, ts)
        assert ts == expected, kind


def test_every_kind_of_row_has_only_schema_columns_each_of_its_one_type() -> None:
    types = {column.name: JSON_TYPES[column.type] for column in schema.COLUMNS}
    for kind, line in _rows_of_every_kind(1.5e9).items():
        assert line.endswith(b"\n") and line.count(b"\n") == 1, kind
        row = json.loads(line)
        assert set(row) <= set(schema.NAMES), (kind, set(row) - set(schema.NAMES))
        for name, value in row.items():
            assert isinstance(value, types[name]) and not isinstance(value, bool), (kind, name, value)
        assert row["schema"] == schema.VERSION


def test_a_failed_row_keeps_the_body_and_the_error() -> None:
    row = json.loads(_rows_of_every_kind(1.5e9)["invalid"])
    assert row["raw"] == '{"x1":"a","x2":1}'
    assert (row["x1_text"], row["x2"], row["status"]) == ('"a"', 1.0, 422)
    assert (row["error_code"], row["error_field"]) == ("invalid_type", "x1")
    assert "item" not in row and "p_bot" not in row
    unparsed = json.loads(_rows_of_every_kind(1.5e9)["unparsed"])
    assert unparsed["raw"] == "\\xff{"  # undecodable bytes escaped, never lost


@given(x1=numbers, x2=numbers, exponent=st.sampled_from(["", "e0", "E+2", "e-3"]))
def test_a_score_row_is_json_with_the_parsed_values(x1: float, x2: float, exponent: str) -> None:
    body = f'{{"x1": {json.dumps(x1)}{exponent if isinstance(x1, int) else ""}, "x2": {json.dumps(x2)}}}'.encode()
    try:
        v1, v2, t1, t2 = validation.parse_with_tokens(body)
    except RequestError:
        return  # an exponent that overflows: refused, nothing to record
    line = record.scored(_call(1.5e9), 0, t1, t2, b"0.25")
    parsed = json.loads(line)
    assert (parsed["x1"], parsed["x2"], parsed["p_bot"]) == (v1, v2, 0.25)
    assert parsed["ts"] == "2017-07-14T02:40:00.000Z"
    assert parsed["model_version"] == SCORER.version


@pytest.mark.parametrize("key_id", [None, "0123456789ab"])
@pytest.mark.parametrize("field", [None, 'x"1\\'])
def test_a_row_of_a_call_refused_before_its_body_holds_what_the_general_row_would(
    field: str | None, key_id: str | None
) -> None:
    # Rows of body-less refusals (401, 405, a shed 503) are formatted from parts; they must read as
    # the json-built row would, characters that need escaping included.
    call = _call(1.5e9, route="/v2/models/bot-score/infer")
    call.key_id = key_id
    error = RequestError('over "capacity" \\ é\n', status=503, code="overloaded", field=field)
    row = json.loads(record.failed(call, error, record.Sent()))
    latency = row.pop("latency_ms")
    expected = {
        "schema": schema.VERSION,
        "id": "id-1",
        "ts": record.timestamp(1.5e9).decode(),
        "method": "POST",
        "path": "/v2/models/bot-score/infer",
        "status": 503,
        "error_code": "overloaded",
        "error_message": 'over "capacity" \\ é\n',
        "model_version": SCORER.version,
        **({} if field is None else {"error_field": field}),
        **({} if key_id is None else {"key_id": key_id}),
    }
    assert row == expected and latency >= 0
