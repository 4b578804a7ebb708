"""Audit record lines: one JSON object each, the same `ts` format and fields for every kind of record."""

from __future__ import annotations

import json
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from botscore.audit import record
from botscore.call import Call
from botscore.dataplane import validation
from botscore.errors import RequestError
from botscore.model import artifact
from botscore.model.scorer import Scorer
from botscore.settings import SHIPPED_MODEL

SCORER = Scorer(artifact.load(SHIPPED_MODEL))
RFC3339_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
numbers = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(10**30), 10**30))


def _call(received_at: float, route: str = "/bot-score", status: int = 200, response: bytes = b"{}") -> Call:
    call = Call(route, "POST", b"id-1", SCORER, received_at, time.perf_counter())
    call.status = status
    call.response = response
    return call


@pytest.mark.parametrize("fraction", [0.0, 0.0625, 0.5, 0.9990234375])  # 000, 062, 500, 999 ms, exact in binary
def test_every_kind_of_record_has_an_rfc3339_ts_with_three_millisecond_digits(fraction: float) -> None:
    now = 1_795_000_000 + fraction
    expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(now))) + f".{int(fraction * 1000):03d}Z"
    lines = {
        "scored": record.scored(_call(now, response=b'{"p_bot":0.5}'), b"0.1", b"0.2"),
        "error": record.general(_call(now, status=422), {"x1": "a"}, {"error": {}}),
        "unparsed": record.general(_call(now, status=400), None, {"error": {}}, raw=b"{nope"),
        "batch": record.general(_call(now, route="/bot-score/batch"), {"instances": []}, {"p_bot": []}),
    }
    for kind, line in lines.items():
        ts = json.loads(line)["ts"]
        assert RFC3339_MS.fullmatch(ts), (kind, ts)
        assert ts == expected, kind


def test_every_kind_of_record_has_the_same_fields() -> None:
    common = {"id", "ts", "method", "path", "status", "request", "response", "model_version", "latency_ms"}
    scored = json.loads(record.scored(_call(1.5e9, response=b'{"p_bot":0.5}'), b"0.1", b"0.2"))
    error = json.loads(record.general(_call(1.5e9, status=422), {"x1": "a"}, {"error": {}}))
    unparsed = json.loads(record.general(_call(1.5e9, status=400), None, {"error": {}}, raw=b"\xff" * 2000))
    assert set(scored) == set(error) == common
    assert set(unparsed) == common | {"raw"}
    assert unparsed["raw"] == "\\xff" * record.RAW_LIMIT  # cut to the bound, undecodable bytes escaped


@given(x1=numbers, x2=numbers, exponent=st.sampled_from(["", "e0", "E+2", "e-3"]))
def test_the_200_record_is_json_with_the_parsed_values(x1: float, x2: float, exponent: str) -> None:
    body = f'{{"x1": {json.dumps(x1)}{exponent if isinstance(x1, int) else ""}, "x2": {json.dumps(x2)}}}'.encode()
    try:
        v1, v2, t1, t2 = validation.parse_with_tokens(body)
    except RequestError:
        return  # an exponent that overflows: refused, nothing to record
    line = record.scored(_call(1.5e9, response=b'{"p_bot":0.5}'), t1, t2)
    parsed = json.loads(line)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert (parsed["request"]["x1"], parsed["request"]["x2"]) == (v1, v2)
    assert parsed["ts"] == "2017-07-14T02:40:00.000Z"
    assert parsed["model_version"] == SCORER.version
