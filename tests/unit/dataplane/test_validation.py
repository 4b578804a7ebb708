"""The fast path and the full parser agree on every body; request ids are real UUID4s."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from botscore.dataplane import validation
from botscore.errors import RequestError
from botscore.http.ids import new_request_id

numbers = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(10**30), 10**30))


@given(x1=numbers, x2=numbers, pad=st.sampled_from(["", " ", "\n\t", "\r\n  "]))
def test_fast_path_equals_the_full_parser(x1: float, x2: float, pad: str) -> None:
    body = f'{pad}{{{pad}"x1"{pad}:{pad}{json.dumps(x1)}{pad},{pad}"x2":{pad}{json.dumps(x2)}{pad}}}{pad}'.encode()
    assert validation.parse(body) == validation.features(validation.decode(body)) == (float(x1), float(x2))


@pytest.mark.parametrize(
    "body",
    [
        b'{"x1": 1e999, "x2": 0}',
        b'{"x1": 01, "x2": 0}',
        b'{"x1": 1., "x2": 0}',
        b'{"x1": .5, "x2": 0}',
        b'{"x1": +1, "x2": 0}',
        b'{"x1": 1, "x2": 0}\x0b',
        b'{"x1": 0x10, "x2": 0}',
    ],
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
