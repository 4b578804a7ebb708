"""The canary's plan, split and guardrails, and a worker steering it (against the in-memory registry of
test_follow; S3 itself and `botscore serve --workers 2`: tests/integration/test_canary.py)."""

from __future__ import annotations

import uuid

import pytest

from botscore.model.canary import Guardrails, Plan, PlanError, Split
from botscore.model.follow import Follower
from botscore.model.registry import RegistryError
from botscore.model.scorer import Scorer
from botscore.ops.metrics import P_BOT_BUCKETS
from tests.unit.model.test_follow import NEW, OLD, MemoryRegistry


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry() -> MemoryRegistry:
    memory = MemoryRegistry()
    memory.artifacts = {OLD.version: OLD, NEW.version: NEW}
    memory.move("production", OLD.version)
    return memory


def test_a_plan_survives_its_document_and_a_bad_one_is_named() -> None:
    plan = Plan(NEW.version, (5.0, 25.0, 100.0), 300.0, step=1, guardrails=Guardrails(window_seconds=30.0))
    assert Plan.decode(plan.encode(), "s3://b/canary") == plan
    assert plan.percent == 25.0 and not plan.last
    with pytest.raises(PlanError, match="steps must be increasing"):
        Plan(NEW.version, (25.0, 5.0), 300.0)
    with pytest.raises(PlanError, match="steps must be increasing"):
        Plan(NEW.version, (50.0, 150.0), 300.0)
    with pytest.raises(PlanError, match="s3://b/canary: guardrails must be an object of"):
        Plan.decode(plan.encode().replace(b'"min_calls"', b'"min_cals"'), "s3://b/canary")
    with pytest.raises(PlanError, match=r"not a botscore\.model-canary/v1 document"):
        Plan.decode(b'{"version": "x"}', "s3://b/canary")


def test_the_split_answers_the_share_by_request_id_the_same_on_every_call() -> None:
    ids = [str(uuid.uuid4()).encode() for _ in range(20_000)] + [b"pay-%06d" % i for i in range(20_000)]
    small, large = Split("p", "c", 5, NEW.version), Split("p", "c", 25, NEW.version)
    in_small = {rid for rid in ids if small.pick(rid) == "c"}
    in_large = {rid for rid in ids if large.pick(rid) == "c"}
    assert 0.045 < len(in_small) / len(ids) < 0.055
    assert 0.24 < len(in_large) / len(ids) < 0.26
    assert in_small <= in_large  # a step up keeps the requests the candidate answered
    assert all(small.pick(rid) == "c" for rid in in_small)  # a retry gets the same model


def _calls(n: int, status: int = 200, latency: float = 0.002) -> list[float]:
    return [status, latency] * n


def test_each_guardrail_names_its_breach_and_quiet_traffic_passes() -> None:
    g = Guardrails(min_calls=100)

    def breach(canary: list[float], scores: list[float]) -> str:
        return g.breach(canary, _calls(2000), scores, 0.5, P_BOT_BUCKETS) or ""

    same = [0.1, 0.1] * 50 + [0.9, 0.9] * 50 + [0.32, 0.33] * 100
    assert breach(_calls(200), same) == ""
    assert breach(_calls(99, 500), same) == ""  # too few canary calls to judge
    failing = _calls(180) + _calls(20, 500)
    assert "5xx share 10.0% against production's 0.0%" in (
        g.breach(failing, _calls(2000), same, 0.5, P_BOT_BUCKETS) or ""
    )
    refusing = _calls(180) + _calls(20, 422)
    assert "refusal share 10.0%" in breach(refusing, same)
    slow = _calls(200, latency=0.060)
    assert "p95 latency 60.0 ms against production's 25.0 ms" in (
        g.breach(slow, _calls(2000), same, 0.5, P_BOT_BUCKETS) or ""
    )
    high = [p for k in range(200) for p in (0.99, k / 400)]
    assert "score PSI" in breach(_calls(200), high)
    crossing = [0.49, 0.51] * 10 + [0.51, 0.49] * 10 + [0.3, 0.3] * 180  # same distribution, 10 % crossed
    assert "disagreement 10.0% with production at threshold 0.5" in breach(_calls(200), crossing)


def _follower(registry: MemoryRegistry, clock: Clock, rollbacks: list[int]) -> tuple[Follower, Scorer]:
    """A worker started while the canary runs: it serves the split from its first pair."""
    follower = Follower(registry, clock=clock, on_rollback=lambda: rollbacks.append(1))
    return follower, follower.first(lambda: OLD)


def _serve(pair: Scorer, n: int, *, scores: tuple[float, float] = (0.2, 0.2)) -> None:
    """n calls through the pair's split, each noted as the request path notes it."""
    assert pair.split is not None
    for i in range(n):
        scorer = pair.split.pick(b"id-%d" % i)
        assert scorer.watch is not None
        scorer.watch((200, 0.002))
        if scorer.compared is not None:
            scorer.compared(scores)


def test_a_good_canary_moves_through_its_steps_after_each_dwell_and_is_promoted(registry: MemoryRegistry) -> None:
    clock, rollbacks = Clock(), []
    registry.plan(Plan(NEW.version, (10.0, 100.0), 60.0, guardrails=Guardrails(min_calls=20)))
    follower, pair = _follower(registry, clock, rollbacks)
    assert pair.split is not None and pair.split.cut == 1000
    arms = (pair.arm_name, pair.split.canary.arm_name, pair.split.canary.version)
    assert arms == ("production", "canary", NEW.version)
    _serve(pair, 1000)
    clock.now += 59
    assert follower.poll() is None  # the dwell has not passed
    clock.now += 1
    pair = follower.poll()
    assert pair is not None and pair.split is not None and pair.split.cut == 10_000
    assert registry.stored_plan[0] is not None and registry.stored_plan[0].step == 1
    _serve(pair, 100)
    clock.now += 60
    pair = follower.poll()
    assert registry.stored_plan[0] is not None and registry.stored_plan[0].state == "promoted"
    assert registry.pointers["production"].version == NEW.version
    assert pair is not None and pair.split is None and pair.version == NEW.version and not rollbacks


def test_a_breach_rolls_the_canary_back_once_and_stops_serving_it(registry: MemoryRegistry) -> None:
    clock, rollbacks = Clock(), []
    registry.plan(Plan(NEW.version, (50.0,), 600.0, guardrails=Guardrails(min_calls=20)))
    follower, pair = _follower(registry, clock, rollbacks)
    assert pair.split is not None
    _serve(pair, 600, scores=(0.99, 0.1))
    pair = follower.poll()
    stored = registry.stored_plan[0]
    assert stored is not None and stored.state == "rolled_back" and "score PSI" in (stored.reason or "")
    assert pair is not None and pair.split is None and pair.version == OLD.version and rollbacks == [1]
    assert follower.poll() is None and rollbacks == [1]


def test_a_rollback_that_loses_the_write_still_stops_serving_the_candidate_here(registry: MemoryRegistry) -> None:
    clock, rollbacks = Clock(), []
    registry.plan(Plan(NEW.version, (50.0, 100.0), 600.0, guardrails=Guardrails(min_calls=20)))
    follower, pair = _follower(registry, clock, rollbacks)
    _serve(pair, 600, scores=(0.99, 0.1))
    moved = registry.stored_plan[0]
    assert moved is not None
    write = registry.plan

    def racing(plan: Plan, if_match: str | None = None) -> str | None:
        """Another worker moves the step on between this worker's read and its write: this write loses."""
        registry.plan = write  # type: ignore[method-assign]
        write(moved.moved(step=1))
        return write(plan, if_match)

    registry.plan = racing  # type: ignore[method-assign]
    pair = follower.poll()
    assert pair is not None and pair.split is None and not rollbacks  # lost, yet no candidate served here
    stored = registry.stored_plan[0]
    assert stored is not None and (stored.state, stored.step) == ("running", 1)
    assert follower.poll() is None  # read again: the breach still stands, and now the write wins
    stored = registry.stored_plan[0]
    assert stored is not None and stored.state == "rolled_back" and rollbacks == [1]


def test_a_canary_of_a_missing_version_or_an_unreadable_plan_is_refused_once(
    registry: MemoryRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused: list[str] = []
    registry.plan(Plan("lr-0000000000000000", (50.0,), 60.0))  # a version the registry does not hold
    follower = Follower(registry, on_refused=refused.append)
    pair = follower.first(lambda: OLD)
    assert pair.split is None and pair.version == OLD.version and refused == ["canary"]
    assert follower.poll() is None and refused == ["canary"]  # not fetched nor counted again

    def unreadable(etag: str | None = None) -> None:
        raise RegistryError("canary plan s3://memory/models/canary: not valid JSON")

    monkeypatch.setattr(registry, "canary", unreadable)
    follower = Follower(registry, on_refused=refused.append)
    assert follower.first(lambda: OLD).split is None
    assert follower.poll() is None and refused == ["canary", "canary"]


def test_in_an_s3_outage_a_breach_still_stops_the_candidate_and_is_written_once_s3_answers(
    registry: MemoryRegistry,
) -> None:
    clock, rollbacks = Clock(), []
    registry.plan(Plan(NEW.version, (50.0,), 600.0, guardrails=Guardrails(min_calls=20)))
    follower, pair = _follower(registry, clock, rollbacks)
    registry.down = {"production", "shadow", "canary"}
    _serve(pair, 600, scores=(0.99, 0.1))
    pair = follower.poll()
    assert pair is not None and pair.split is None and not rollbacks  # stopped here; nothing written yet
    stored = registry.stored_plan[0]
    assert stored is not None and stored.state == "running"
    registry.down = set()
    assert follower.poll() is None
    stored = registry.stored_plan[0]
    assert stored is not None and stored.state == "rolled_back" and rollbacks == [1]
