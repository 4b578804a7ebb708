"""The request sequence without HTTP: a Call in, its answer (or its error, as a value) and its audit record out."""

from __future__ import annotations

import json
import time
from pathlib import Path

from botscore.audit import schema
from botscore.audit.log import AuditLog
from botscore.call import Answer, Call, Failed
from botscore.dataplane.handler import Handler, raw_limit
from botscore.errors import RequestError
from botscore.http.answers import rendered
from botscore.model import artifact
from botscore.model.scorer import Scorer
from botscore.ops.metrics import Metrics
from botscore.settings import SHIPPED_MODEL
from tests.support.models import shadow_as_recorded
from tests.support.records import spooled_records

SCORER = Scorer(artifact.load(SHIPPED_MODEL))


def _call(body: bytes | None, route: str = "/bot-score", request_id: bytes = b"call-1") -> Call:
    call = Call(route, "POST", request_id, SCORER, time.time(), time.perf_counter())
    call.body = body
    return call


def _records(tmp_path: Path) -> dict[str, dict[str, object]]:
    return {str(r["id"]): r for r in spooled_records(tmp_path / "audit")}


def test_a_score_returns_the_answer_and_keeps_its_record_before_returning(audit: AuditLog, tmp_path: Path) -> None:
    call = _call(b'{"x1": 0.1, "x2": 0.2}')
    answer = Handler(audit, Metrics()).score(call)
    assert isinstance(answer, Answer) and answer.status == 200
    assert json.loads(answer.body) == {"p_bot": SCORER.p_bot(0.1, 0.2)}
    kept = _records(tmp_path)["call-1"]
    assert (kept["x1"], kept["x2"], kept["p_bot"]) == (0.1, 0.2, SCORER.p_bot(0.1, 0.2))
    assert (kept["status"], kept["path"], kept["model_version"]) == (200, "/bot-score", SCORER.version)
    assert (kept["schema"], kept["item"]) == (schema.VERSION, 0)


def test_a_bad_body_is_a_422_error_naming_the_field_and_recorded(audit: AuditLog, tmp_path: Path) -> None:
    call = _call(b'{"x1": "a", "x2": 0.2}')
    failed = Handler(audit, Metrics()).score(call)
    assert isinstance(failed, Failed) and failed.recorded
    assert (failed.error.status, failed.error.code, failed.error.field) == (422, "invalid_type", "x1")
    assert json.loads(rendered(failed, "botscore").body)["error"] == {
        "code": "invalid_type",
        "message": "x1 must be a number, got a string",
        "field": "x1",
    }
    kept = _records(tmp_path)["call-1"]
    assert (kept["x1_text"], kept["x2"], kept["error_field"]) == ('"a"', 0.2, "x1")
    assert "x1" not in kept and "item" not in kept


def test_a_refusal_by_the_http_layer_is_recorded_with_the_raw_body(audit: AuditLog, tmp_path: Path) -> None:
    call = _call(b"\xff not json")
    failed = Handler(audit, Metrics()).fail(call, RequestError("Content-Type 'text/plain' ...", status=415, code="x"))
    assert failed.error.status == 415
    kept = _records(tmp_path)["call-1"]
    assert (kept["status"], kept["raw"], kept["error_code"]) == (415, "\\xff not json", "x")


def test_a_batch_is_scored_in_order_and_kept_as_one_record(audit: AuditLog, tmp_path: Path) -> None:
    call = _call(b'{"instances": [{"x1": 0.1, "x2": 0.2}, {"x1": 2, "x2": 0}]}', route="/bot-score/batch")
    answer = Handler(audit, Metrics()).score_batch(call)
    assert isinstance(answer, Answer) and answer.status == 200
    assert json.loads(answer.body) == {"p_bot": [SCORER.p_bot(0.1, 0.2), SCORER.p_bot(2.0, 0.0)]}
    rows = spooled_records(tmp_path / "audit")
    assert [(r["id"], r["item"], r["x1"], r["x2"]) for r in rows] == [("call-1", 0, 0.1, 0.2), ("call-1", 1, 2.0, 0.0)]


def test_a_bug_in_scoring_is_a_500_in_the_error_shape_and_recorded(audit: AuditLog, tmp_path: Path) -> None:
    class Broken(Scorer):
        def p_bot(self, x1: float, x2: float) -> float:
            raise ZeroDivisionError("a bug")

    call = Call("/bot-score", "POST", b"call-1", Broken(artifact.load(SHIPPED_MODEL)), time.time(), 0.0)
    call.body = b'{"x1": 0.1, "x2": 0.2}'
    failed = Handler(audit, Metrics()).score(call)
    assert isinstance(failed, Failed)
    assert (failed.error.status, failed.error.code) == (500, "internal_error")
    assert _records(tmp_path)["call-1"]["status"] == 500


def test_with_a_shadow_the_answer_is_productions_and_the_row_carries_both_scores(
    audit: AuditLog, tmp_path: Path
) -> None:
    challenger = Scorer(artifact.parse(artifact.seal({**json.loads(SHIPPED_MODEL.read_text()), "intercept": -3.0})))
    pair = Scorer(SCORER.artifact, challenger)
    call = Call("/bot-score", "POST", b"call-1", pair, time.time(), time.perf_counter(), body=b'{"x1":0.1,"x2":0.2}')
    metrics = Metrics(shadow_threshold=0.5)
    answer = Handler(audit, metrics).score(call)
    assert isinstance(answer, Answer) and json.loads(answer.body) == {"p_bot": SCORER.p_bot(0.1, 0.2)}
    batch = Call("/bot-score/batch", "POST", b"call-2", pair, time.time(), time.perf_counter())
    batch.body = b'{"instances": [{"x1": 0.1, "x2": 0.2}, {"x1": 3, "x2": 0}]}'
    batch_answer = Handler(audit, metrics).score_batch(batch)
    assert isinstance(batch_answer, Answer)
    assert json.loads(batch_answer.body) == {"p_bot": [SCORER.p_bot(0.1, 0.2), SCORER.p_bot(3, 0)]}
    rows = [r for r in spooled_records(tmp_path / "audit")]
    assert [(r["id"], r["p_bot"], r["shadow_version"], r["shadow_p_bot"]) for r in rows] == [
        ("call-1", SCORER.p_bot(0.1, 0.2), challenger.version, shadow_as_recorded(challenger.p_bot(0.1, 0.2))),
        ("call-2", SCORER.p_bot(0.1, 0.2), challenger.version, shadow_as_recorded(challenger.p_bot(0.1, 0.2))),
        ("call-2", SCORER.p_bot(3, 0), challenger.version, shadow_as_recorded(challenger.p_bot(3, 0))),
    ]
    assert rows[0]["model_version"] == SCORER.version


def test_without_a_shadow_the_row_has_no_shadow_columns(audit: AuditLog, tmp_path: Path) -> None:
    Handler(audit, Metrics()).score(_call(b'{"x1": 0.1, "x2": 0.2}'))
    kept = _records(tmp_path)["call-1"]
    assert "shadow_version" not in kept and "shadow_p_bot" not in kept


def test_a_bug_in_the_shadow_model_leaves_the_answer_and_its_score_counted_once(
    audit: AuditLog, tmp_path: Path
) -> None:
    class Broken(Scorer):
        def p_bot(self, x1: float, x2: float) -> float:
            raise ZeroDivisionError("a bug in the challenger")

    pair = Scorer(SCORER.artifact, Broken(SCORER.artifact))
    call = Call("/bot-score", "POST", b"call-1", pair, time.time(), time.perf_counter(), body=b'{"x1":0.1,"x2":0.2}')
    metrics = Metrics()
    answer = Handler(audit, metrics).score(call)
    assert isinstance(answer, Answer)
    assert (answer.status, json.loads(answer.body)) == (200, {"p_bot": SCORER.p_bot(0.1, 0.2)})
    row = _records(tmp_path)["call-1"]
    assert (row["p_bot"], "shadow_version" in row, "shadow_p_bot" in row) == (SCORER.p_bot(0.1, 0.2), False, False)
    assert "botscore_p_bot_count 1.0" in metrics.exposition().decode()


def test_a_refused_body_that_holds_the_next_request_keeps_only_what_came_before_it(
    audit: AuditLog, tmp_path: Path
) -> None:
    body = b'{"x1": 0.1, "x2": 0.2}POST /bot-score HTTP/1.1\r\nAuthorization: Bearer k-secret\r\n\r\n'
    Handler(audit, Metrics()).score(_call(body))
    assert _records(tmp_path)["call-1"]["raw"] == '{"x1": 0.1, "x2": 0.2}'


def test_raw_ends_before_another_message_or_an_authorization_field() -> None:
    assert raw_limit(b'{"x1": 1}', 256) == 256
    assert raw_limit(b'{"x1": 1}GET / HTTP/1.1\r\n', 256) == 9
    assert raw_limit(b'{"x1": 1}\r\nauthorization : Bearer k', 256) == 11
    assert raw_limit(b"{" * 300 + b"GET / HTTP/1.1", 256) == 256
    assert raw_limit(b"{" * 250 + b"GET / HTTP/1.1", 256) == 250  # found though it starts before the limit only
    assert raw_limit(None, 256) == 256
    assert raw_limit(b"GET / HTTP/1.1", 0) == 0


def test_on_a_canary_arm_every_row_names_the_candidate_and_the_arm_and_the_pair_reaches_the_tally(
    audit: AuditLog, tmp_path: Path
) -> None:
    candidate = Scorer(artifact.parse(artifact.seal({**json.loads(SHIPPED_MODEL.read_text()), "intercept": -3.0})))
    compared: list[float] = []
    arm = Scorer(candidate.artifact, SCORER, arm="canary", watch=lambda _: None, compared=compared.extend)
    metrics = Metrics(shadow_threshold=0.5)
    handler = Handler(audit, metrics)
    calls = {
        "score": Call("/bot-score", "POST", b"c-score", arm, time.time(), time.perf_counter(), body=b'{"x1":3,"x2":0}'),
        "batch": Call(
            "/bot-score/batch",
            "POST",
            b"c-batch",
            arm,
            time.time(),
            time.perf_counter(),
            body=b'{"instances": [{"x1": 0.1, "x2": 0.2}]}',
        ),
        "infer": Call(
            "/v2/models/bot-score/infer",
            "POST",
            b"c-infer",
            arm,
            time.time(),
            time.perf_counter(),
            body=b'{"inputs": [{"name": "x1", "shape": [1], "datatype": "FP64", "data": [0.5]},'
            b' {"name": "x2", "shape": [1], "datatype": "FP64", "data": [1.0]}]}',
        ),
        "invalid": Call("/bot-score", "POST", b"c-422", arm, time.time(), time.perf_counter(), body=b'{"x1":"a"}'),
    }
    handler.score(calls["score"])
    handler.score_batch(calls["batch"])
    handler.infer(calls["infer"])
    handler.score(calls["invalid"])
    handler.fail(Call("/bot-score", "POST", b"c-401", arm, time.time(), time.perf_counter()), RequestError("no key"))
    rows = _records(tmp_path)
    for rid in ("c-score", "c-batch", "c-infer", "c-422", "c-401"):
        assert (rows[rid]["model_version"], rows[rid]["arm"]) == (candidate.version, "canary"), rid
    assert rows["c-score"]["shadow_version"] == SCORER.version  # production, scored beside the candidate
    assert rows["c-score"]["shadow_p_bot"] == shadow_as_recorded(SCORER.p_bot(3, 0))
    pairs = [(candidate.p_bot(3, 0), SCORER.p_bot(3, 0)), (candidate.p_bot(0.1, 0.2), SCORER.p_bot(0.1, 0.2))]
    assert compared[:4] == [v for pair in pairs for v in pair]  # the guardrails' pairs, in order
