"""The fast path and the full parser agree on every body; request ids are real UUID4s."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app import validation
from app.api import new_request_id
from app.errors import RequestError

numbers = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(10**30), 10**30))


@given(x1=numbers, x2=numbers, pad=st.sampled_from(["", " ", "\n\t", "\r\n  "]))
def test_fast_path_equals_the_full_parser(x1: float, x2: float, pad: str) -> None:
    body = f'{pad}{{{pad}"x1"{pad}:{pad}{json.dumps(x1)}{pad},{pad}"x2":{pad}{json.dumps(x2)}{pad}}}{pad}'.encode()
    assert validation.parse(body) == validation.features(validation.decode(body)) == (float(x1), float(x2))


@pytest.mark.parametrize(
    "body",
    [b'{"x1": 1e999, "x2": 0}', b'{"x1": 01, "x2": 0}', b'{"x1": 1., "x2": 0}', b'{"x1": .5, "x2": 0}',
     b'{"x1": +1, "x2": 0}', b'{"x1": 1, "x2": 0}\x0b', b'{"x1": 0x10, "x2": 0}'],
)
def test_what_the_fast_path_does_not_accept_the_full_parser_refuses(body: bytes) -> None:
    with pytest.raises(RequestError):
        validation.parse(body)


def test_new_request_ids_are_distinct_uuid4s() -> None:
    ids = {new_request_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    for rid in list(ids)[:100]:
        parsed = uuid.UUID(rid.decode())
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == rid.decode()


@given(x1=numbers, x2=numbers, exponent=st.sampled_from(["", "e0", "E+2", "e-3"]))
def test_the_200_audit_record_is_json_with_the_parsed_values(x1: float, x2: float, exponent: str) -> None:
    from app import records

    body = f'{{"x1": {json.dumps(x1)}{exponent if isinstance(x1, int) else ""}, "x2": {json.dumps(x2)}}}'.encode()
    try:
        v1, v2, t1, t2 = validation.parse_with_tokens(body)
    except RequestError:
        return  # an exponent that overflows: refused, nothing to record
    line = records.scored_line(b"id-1", 1.5e9, t1, t2, b'{"p_bot":0.5}', b'"lr-x"', 0.1234)
    record = json.loads(line)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert (record["request"]["x1"], record["request"]["x2"]) == (v1, v2)
    assert record["ts"] == "2017-07-14T02:40:00.000Z"
    assert record["latency_ms"] == 0.123
